//! Model-based property test of session expiry. Reference: ZooKeeper's `ExpiryQueue` and
//! `SessionTrackerImpl` — a session touched at `now` expires at
//! `roundToNextInterval(now + timeout)`, i.e. `((now + timeout) / tick + 1) * tick`.
//!
//! Random sequences of add/touch/set_closing/remove/expire and clock advances run against
//! the tracker and against a naive model that stores each session's deadline and scans every
//! session on expiry. After every step the results, the table, and `next_expiry_ms` agree.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use zk_session::{SessionConfig, SessionError, SessionTracker};

/// A small pool of ids (including negative ones) so operations often hit the same session.
const IDS: [i64; 6] = [
    1,
    2,
    0x0100_0000_0000_0001,
    -5,
    i64::MIN + 1,
    0x7f00_0000_0000_0000,
];

#[derive(Debug, Clone)]
enum Op {
    Add { id: usize, timeout_ms: i32 },
    Touch { id: usize },
    SetClosing { id: usize },
    Remove { id: usize },
    Expire,
    Advance { ms: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..IDS.len(), -100i32..20_000).prop_map(|(id, timeout_ms)| Op::Add { id, timeout_ms }),
        4 => (0..IDS.len()).prop_map(|id| Op::Touch { id }),
        1 => (0..IDS.len()).prop_map(|id| Op::SetClosing { id }),
        1 => (0..IDS.len()).prop_map(|id| Op::Remove { id }),
        2 => Just(Op::Expire),
        4 => (0u64..6_000).prop_map(|ms| Op::Advance { ms }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct ModelSession {
    timeout_ms: i32,
    deadline_ms: u64,
    closing: bool,
}

/// The obvious implementation: a map of sessions, full scans, deadlines computed directly.
#[derive(Debug)]
struct Model {
    tick_ms: u64,
    sessions: BTreeMap<i64, ModelSession>,
}

impl Model {
    fn deadline(&self, timeout_ms: i32, now_ms: u64) -> u64 {
        let t = now_ms + timeout_ms.max(0) as u64;
        (t / self.tick_ms + 1) * self.tick_ms
    }

    fn add(&mut self, id: i64, timeout_ms: i32, now_ms: u64) {
        let deadline_ms = self.deadline(timeout_ms, now_ms);
        let closing = self.sessions.get(&id).is_some_and(|s| s.closing);
        self.sessions.insert(
            id,
            ModelSession {
                timeout_ms,
                deadline_ms,
                closing,
            },
        );
    }

    fn touch(&mut self, id: i64, now_ms: u64) -> Result<(), SessionError> {
        let tick_ms = self.tick_ms;
        let s = self
            .sessions
            .get_mut(&id)
            .ok_or(SessionError::Unknown(id))?;
        if s.closing {
            return Err(SessionError::Closing(id));
        }
        let t = now_ms + s.timeout_ms.max(0) as u64;
        s.deadline_ms = (t / tick_ms + 1) * tick_ms;
        Ok(())
    }

    fn set_closing(&mut self, id: i64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            s.closing = true;
        }
    }

    fn expire(&mut self, now_ms: u64) -> Vec<i64> {
        let mut due: Vec<(u64, i64)> = self
            .sessions
            .iter()
            .filter(|(_, s)| !s.closing && s.deadline_ms <= now_ms)
            .map(|(&id, s)| (s.deadline_ms, id))
            .collect();
        due.sort();
        for (_, id) in &due {
            self.sessions.get_mut(id).unwrap().closing = true;
        }
        due.into_iter().map(|(_, id)| id).collect()
    }

    fn next_expiry_ms(&self) -> Option<u64> {
        self.sessions
            .values()
            .filter(|s| !s.closing)
            .map(|s| s.deadline_ms)
            .min()
    }
}

fn assert_same(tracker: &SessionTracker, model: &Model) {
    tracker.assert_consistent();
    let ours: Vec<(i64, ModelSession)> = tracker
        .iter()
        .map(|s| {
            (
                s.id,
                ModelSession {
                    timeout_ms: s.timeout_ms,
                    deadline_ms: s.deadline_ms,
                    closing: s.closing,
                },
            )
        })
        .collect();
    let theirs: Vec<(i64, ModelSession)> = model
        .sessions
        .iter()
        .map(|(&id, s)| (id, s.clone()))
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(tracker.len(), model.sessions.len());
    assert_eq!(tracker.is_empty(), model.sessions.is_empty());
    assert_eq!(tracker.next_expiry_ms(), model.next_expiry_ms());
}

/// Runs `ops` against both and returns every `expire` result, for the determinism check.
fn run(tick_ms: u32, start_ms: u64, ops: &[Op]) -> Vec<Vec<i64>> {
    let mut tracker = SessionTracker::new(SessionConfig::new(1, tick_ms), start_ms);
    let mut model = Model {
        tick_ms: u64::from(tick_ms),
        sessions: BTreeMap::new(),
    };
    let mut now_ms = start_ms;
    let mut expired = Vec::new();
    for op in ops {
        match *op {
            Op::Add { id, timeout_ms } => {
                tracker.add(IDS[id], timeout_ms, now_ms);
                model.add(IDS[id], timeout_ms, now_ms);
            }
            Op::Touch { id } => {
                assert_eq!(tracker.touch(IDS[id], now_ms), model.touch(IDS[id], now_ms));
            }
            Op::SetClosing { id } => {
                tracker.set_closing(IDS[id]);
                model.set_closing(IDS[id]);
            }
            Op::Remove { id } => {
                let ours = tracker
                    .remove(IDS[id])
                    .map(|s| (s.timeout_ms, s.deadline_ms));
                let theirs = model
                    .sessions
                    .remove(&IDS[id])
                    .map(|s| (s.timeout_ms, s.deadline_ms));
                assert_eq!(ours, theirs);
            }
            Op::Expire => {
                let ours = tracker.expire(now_ms);
                assert_eq!(ours, model.expire(now_ms));
                // Everything due is gone: the next expiry is strictly in the future.
                assert!(tracker.next_expiry_ms().is_none_or(|t| t > now_ms));
                expired.push(ours);
            }
            Op::Advance { ms } => now_ms += ms,
        }
        assert_same(&tracker, &model);
    }
    expired
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tracker_agrees_with_model(
        tick_ms in prop_oneof![Just(1u32), Just(7), Just(500), Just(2000)],
        start_ms in 0u64..1_000_000_000,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let first = run(tick_ms, start_ms, &ops);
        // Same inputs, same outputs.
        prop_assert_eq!(first, run(tick_ms, start_ms, &ops));
    }
}
