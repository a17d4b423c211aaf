//! The table of live sessions (ZooKeeper's `SessionTrackerImpl`): it negotiates timeouts,
//! issues ids and passwords, moves deadlines on every client packet and says which
//! sessions have expired. Time is always an argument.

use std::collections::BTreeMap;

use crate::config::SessionConfig;
use crate::error::{Result, SessionError};
use crate::expiry::ExpiryQueue;
use crate::password::{self, PASSWORD_LEN};

/// Session id that marks container nodes in `ephemeralOwner` (`Long.MIN_VALUE`); issuing
/// it as a session would make that session's ephemerals look like containers.
const CONTAINER_OWNER: i64 = i64::MIN;

/// One open (or closing) session, as the server and the `cons`/`dump` commands see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The session id: creating server's id in the top byte.
    pub id: i64,
    /// The negotiated timeout, as agreed at connect time.
    pub timeout_ms: i32,
    /// Set once a `closeSession` was prepared or the session expired: it can no longer be
    /// touched, and it waits only for its `closeSession` txn to be applied.
    pub closing: bool,
    /// The tick boundary at which it expires unless touched: `bucket(last touch + timeout)`.
    /// For a closing session, the deadline it had when it started closing.
    pub deadline_ms: u64,
    /// When the client was last heard from (registration counts), to explain an expiry.
    /// [`SessionTracker::extend_all`] moves deadlines but not this.
    pub last_touch_ms: u64,
    /// The server the client was last heard through: this one, or the follower whose
    /// ping carried the touch ([`SessionTracker::touch_from`]).
    pub last_server: u64,
}

/// The session table plus its expiry buckets. Deterministic: the same calls with the same
/// `now_ms` values give the same ids, deadlines and expiry lists.
#[derive(Debug, Clone)]
pub struct SessionTracker {
    /// Bounds, tick and server id, fixed at creation.
    config: SessionConfig,
    /// The next id to try to issue; ids only move forward.
    next_id: i64,
    /// Every known session by id; sorted so iteration order is stable.
    sessions: BTreeMap<i64, Session>,
    /// Deadline buckets of the sessions that are not closing.
    queue: ExpiryQueue,
}

impl SessionTracker {
    /// An empty tracker. `now_ms` seeds session ids the way ZooKeeper's
    /// `SessionTrackerImpl.initializeNextSession` does, so a restarted server (later `now_ms`)
    /// issues ids its previous run did not.
    ///
    /// # Panics
    /// If `config.tick_time_ms` is 0: expiry buckets need a width.
    pub fn new(config: SessionConfig, now_ms: u64) -> SessionTracker {
        assert!(config.tick_time_ms > 0, "tick_time_ms must be positive");
        SessionTracker {
            config,
            next_id: initial_session_id(config.server_id, now_ms),
            sessions: BTreeMap::new(),
            queue: ExpiryQueue::new(u64::from(config.tick_time_ms)),
        }
    }

    /// The settings this tracker was built with, so callers can report them (`conf`).
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// Clamp a client's requested timeout into [min, max] (ZooKeeper's negotiation).
    /// As in ZooKeeper, the minimum is applied first, so misconfigured bounds (min > max)
    /// yield max; a bound beyond `i32::MAX` yields `i32::MAX`.
    pub fn negotiate_timeout(&self, requested_ms: i32) -> i32 {
        let min = i64::from(self.config.min_session_timeout_ms);
        let max = i64::from(self.config.max_session_timeout_ms);
        let mut t = i64::from(requested_ms);
        if t < min {
            t = min;
        }
        if t > max {
            t = max;
        }
        i32::try_from(t).unwrap_or(i32::MAX)
    }

    /// A fresh, never-before-issued session id: ZooKeeper's layout,
    /// `((now_ms << 24) >>> 8) | (server_id << 56)` for the first (the low 40 bits of the time
    /// in bits 16..56, so a restart jumps far past the previous run's ids), then +1 each.
    /// Skips the container marker `i64::MIN`, the "new session" marker 0 of a
    /// `ConnectRequest`, and any id already in the table (a session loaded from a snapshot).
    pub fn next_session_id(&mut self) -> i64 {
        loop {
            let id = self.next_id;
            self.next_id = id.wrapping_add(1);
            if id != CONTAINER_OWNER && id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// The 16-byte password of a session, deterministic from the id so any server can
    /// validate it: ZooKeeper's `new java.util.Random(sessionId ^ 0xB3415C00L).nextBytes(16)`.
    pub fn password(session_id: i64) -> [u8; PASSWORD_LEN] {
        password::password(session_id)
    }

    /// Whether `passwd` is the session's password; false for any other length, and for
    /// session id 0 (as ZooKeeper's `checkPasswd`).
    pub fn check_password(session_id: i64, passwd: &[u8]) -> bool {
        password::check_password(session_id, passwd)
    }

    /// Registers a session (once its createSession txn is applied, or when loaded from a
    /// snapshot); its deadline starts now. Adding an id that is already known updates its
    /// timeout and restarts its deadline; a closing session stays closing. A negative
    /// timeout counts as 0.
    pub fn add(&mut self, id: i64, timeout_ms: i32, now_ms: u64) {
        let deadline_ms = deadline(&self.queue, timeout_ms, now_ms);
        match self.sessions.get_mut(&id) {
            Some(s) => {
                if !s.closing {
                    self.queue.update(id, s.deadline_ms, deadline_ms);
                }
                s.timeout_ms = timeout_ms;
                s.deadline_ms = deadline_ms;
                s.last_touch_ms = now_ms;
            }
            None => {
                self.queue.insert(id, deadline_ms);
                self.sessions.insert(
                    id,
                    Session {
                        id,
                        timeout_ms,
                        closing: false,
                        deadline_ms,
                        last_touch_ms: now_ms,
                        last_server: u64::from(self.config.server_id),
                    },
                );
            }
        }
    }

    /// Any packet from the client: moves the deadline to `bucket(now_ms + timeout)`
    /// (ZooKeeper's `touchSession`). Errors if unknown or closing, so the caller can answer
    /// `SESSIONEXPIRED` instead of reviving a session on its way out. `now_ms` should not go
    /// backwards; if it does, the deadline moves back with it.
    pub fn touch(&mut self, id: i64, now_ms: u64) -> Result<()> {
        self.touch_from(id, now_ms, u64::from(self.config.server_id))
    }

    /// [`SessionTracker::touch`] for a client heard through server `server` (an ensemble
    /// leader applying a follower's session pings).
    pub fn touch_from(&mut self, id: i64, now_ms: u64, server: u64) -> Result<()> {
        let s = self
            .sessions
            .get_mut(&id)
            .ok_or(SessionError::Unknown(id))?;
        if s.closing {
            return Err(SessionError::Closing(id));
        }
        let deadline_ms = deadline(&self.queue, s.timeout_ms, now_ms);
        self.queue.update(id, s.deadline_ms, deadline_ms);
        s.deadline_ms = deadline_ms;
        s.last_touch_ms = now_ms;
        s.last_server = server;
        Ok(())
    }

    /// Gives every open session a full timeout from `now_ms`, as if each had just been
    /// heard from, without changing when it really was: for a server that finds it was
    /// itself stalled (paused, starved), so its clients are not blamed for its silence.
    /// Returns how many sessions were extended.
    pub fn extend_all(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        for (&id, s) in self.sessions.iter_mut().filter(|(_, s)| !s.closing) {
            let deadline_ms = deadline(&self.queue, s.timeout_ms, now_ms);
            if deadline_ms > s.deadline_ms {
                self.queue.update(id, s.deadline_ms, deadline_ms);
                s.deadline_ms = deadline_ms;
                n += 1;
            }
        }
        n
    }

    /// Whether a request of this session may proceed, without touching it (ZooKeeper's
    /// `checkSession`): the same refusals as [`SessionTracker::touch`].
    pub fn check(&self, id: i64) -> Result<()> {
        match self.sessions.get(&id) {
            None => Err(SessionError::Unknown(id)),
            Some(s) if s.closing => Err(SessionError::Closing(id)),
            Some(_) => Ok(()),
        }
    }

    /// Marks a session closing (closeSession prepared or expired): touches then fail with
    /// Closing, and it leaves the expiry buckets so [`SessionTracker::expire`] never asks
    /// for a second `closeSession`. Unknown or already closing ids are left alone.
    pub fn set_closing(&mut self, id: i64) {
        if let Some(s) = self.sessions.get_mut(&id) {
            if !s.closing {
                self.queue.remove(id, s.deadline_ms);
                s.closing = true;
            }
        }
    }

    /// Forgets a session (its closeSession txn was applied), returning what was known of it.
    pub fn remove(&mut self, id: i64) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        if !s.closing {
            self.queue.remove(id, s.deadline_ms);
        }
        Some(s)
    }

    /// The session with this id, closing or not.
    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// How many sessions are known, closing ones included (`mntr`'s session count).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is known.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Sessions in id order (for `cons`, `dump`).
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }

    /// Sessions whose deadline bucket is <= now_ms, in deadline then id order; each is
    /// marked closing (the caller logs a closeSession txn for each). Deterministic, and each
    /// session is returned at most once.
    pub fn expire(&mut self, now_ms: u64) -> Vec<i64> {
        self.expire_at_most(now_ms, usize::MAX).0
    }

    /// [`SessionTracker::expire`], at most `limit` sessions: the rest of the due ones move
    /// to the next tick's bucket (their `last_touch_ms` unchanged) and are counted in the
    /// second value. A cap on expirations per tick keeps a mass expiry from becoming a
    /// burst of closeSession txns and ephemeral deletions.
    pub fn expire_at_most(&mut self, now_ms: u64, limit: usize) -> (Vec<i64>, usize) {
        let mut due = self.queue.poll(now_ms);
        let deferred = due.len().saturating_sub(limit);
        if deferred > 0 {
            let next = self.queue.bucket(now_ms);
            for (_, id) in due.split_off(limit) {
                self.queue.insert(id, next);
                if let Some(s) = self.sessions.get_mut(&id) {
                    s.deadline_ms = next;
                }
            }
        }
        let mut out = Vec::with_capacity(due.len());
        for (bucket, id) in due {
            let s = self.sessions.get_mut(&id);
            let s = s.unwrap_or_else(|| panic!("expired session 0x{id:x} is not in the table"));
            assert!(
                !s.closing && s.deadline_ms == bucket,
                "session 0x{id:x} was in the wrong bucket"
            );
            s.closing = true;
            out.push(id);
        }
        (out, deferred)
    }

    /// When `expire` will next return something (the earliest bucket), for the caller's
    /// timer; `None` when no open session is left.
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.queue.next_bucket()
    }

    /// Panics unless the table and the buckets agree: every open session is in the bucket of
    /// its deadline, no closing one is in any, and nothing else is. O(n); for tests and
    /// simulators that check invariants after each step.
    pub fn assert_consistent(&self) {
        let mut in_queue: Vec<(i64, u64)> = self.queue.entries().map(|(b, id)| (id, b)).collect();
        in_queue.sort_unstable();
        let expected: Vec<(i64, u64)> = self
            .sessions
            .values()
            .filter(|s| !s.closing)
            .map(|s| (s.id, s.deadline_ms))
            .collect();
        assert_eq!(in_queue, expected, "expiry buckets disagree with the table");
        for (&id, s) in &self.sessions {
            assert_eq!(id, s.id, "session filed under the wrong id");
            assert_eq!(
                s.deadline_ms % u64::from(self.config.tick_time_ms),
                0,
                "deadline of 0x{id:x} is not on a tick boundary"
            );
        }
    }
}

/// The bucketed deadline of a session with `timeout_ms` touched at `now_ms`; a negative
/// timeout counts as 0.
fn deadline(queue: &ExpiryQueue, timeout_ms: i32, now_ms: u64) -> u64 {
    let timeout = u64::try_from(timeout_ms).unwrap_or(0);
    queue.bucket(now_ms.saturating_add(timeout))
}

/// ZooKeeper's first session id for a server (`initializeNextSession`): the low 40 bits of
/// the time in bits 16..56 (the `<< 24 >>> 8` drops the top 24 bits), the server id on top.
fn initial_session_id(server_id: u8, now_ms: u64) -> i64 {
    let time_bits = (now_ms << 24) >> 8;
    (time_bits | (u64::from(server_id) << 56)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u32 = 2000;

    fn tracker() -> SessionTracker {
        SessionTracker::new(SessionConfig::new(1, TICK), 1_000_000)
    }

    // Reference: ZooKeeperServer.processConnectRequest — raise to min, then cap at max.
    #[test]
    fn negotiation_clamps_into_bounds() {
        let t = tracker();
        assert_eq!(t.config().min_session_timeout_ms, 4000);
        assert_eq!(t.negotiate_timeout(10), 4000);
        assert_eq!(t.negotiate_timeout(0), 4000);
        assert_eq!(t.negotiate_timeout(-5), 4000);
        assert_eq!(t.negotiate_timeout(i32::MIN), 4000);
        assert_eq!(t.negotiate_timeout(4000), 4000);
        assert_eq!(t.negotiate_timeout(30_000), 30_000);
        assert_eq!(t.negotiate_timeout(40_000), 40_000);
        assert_eq!(t.negotiate_timeout(40_001), 40_000);
        assert_eq!(t.negotiate_timeout(i32::MAX), 40_000);
    }

    #[test]
    fn negotiation_with_odd_bounds() {
        let mut c = SessionConfig::new(1, TICK);
        c.min_session_timeout_ms = 50_000;
        c.max_session_timeout_ms = 10_000;
        assert_eq!(SessionTracker::new(c, 0).negotiate_timeout(20_000), 10_000);
        c.min_session_timeout_ms = 0;
        c.max_session_timeout_ms = u32::MAX;
        let t = SessionTracker::new(c, 0);
        assert_eq!(t.negotiate_timeout(-1), 0);
        assert_eq!(t.negotiate_timeout(i32::MAX), i32::MAX);
    }

    // Reference: SessionTrackerImpl.initializeNextSession; the expected ids were printed by
    // JDK 17 for `((now << 24) >>> 8) | (sid << 56)` with now = 1_700_000_000_000.
    #[test]
    fn id_layout_matches_zookeeper() {
        let now = 1_700_000_000_000;
        let mut t = SessionTracker::new(SessionConfig::new(5, TICK), now);
        assert_eq!(t.next_session_id(), 0x058b_cfe5_6800_0000);
        assert_eq!(t.next_session_id(), 0x058b_cfe5_6800_0001);

        let mut t = SessionTracker::new(SessionConfig::new(200, TICK), now);
        let id = t.next_session_id();
        assert_eq!(id, -3_995_871_660_161_892_352);
        assert_eq!((id as u64 >> 56) as u8, 200);
    }

    #[test]
    fn ids_carry_the_server_id_and_are_unique() {
        for server_id in [0u8, 1, 7, 127, 128, 254, 255] {
            let mut t = SessionTracker::new(SessionConfig::new(server_id, TICK), u64::MAX);
            let mut seen = std::collections::BTreeSet::new();
            for _ in 0..1000 {
                let id = t.next_session_id();
                assert_eq!((id as u64 >> 56) as u8, server_id);
                assert!(seen.insert(id), "id 0x{id:x} issued twice");
            }
        }
    }

    #[test]
    fn container_marker_and_zero_are_never_issued() {
        // Server 128 at time 0 would start exactly at i64::MIN.
        let mut t = SessionTracker::new(SessionConfig::new(128, TICK), 0);
        assert_eq!(t.next_session_id(), i64::MIN + 1);
        // Server 0 at time 0 would start at 0, the "new session" marker.
        let mut t = SessionTracker::new(SessionConfig::new(0, TICK), 0);
        assert_eq!(t.next_session_id(), 1);
        assert_eq!(t.next_session_id(), 2);
        // The end of the id space wraps into i64::MIN, which is skipped.
        let mut t = SessionTracker::new(SessionConfig::new(0, TICK), 0);
        t.next_id = i64::MAX;
        assert_eq!(t.next_session_id(), i64::MAX);
        assert_eq!(t.next_session_id(), i64::MIN + 1);
    }

    #[test]
    fn ids_already_in_the_table_are_skipped() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        let first = 1 << 56;
        t.add(first, 4000, 0);
        t.add(first + 1, 4000, 0);
        assert_eq!(t.next_session_id(), first + 2);
    }

    #[test]
    fn passwords_are_zookeepers() {
        let p = SessionTracker::password(0x1234);
        assert_eq!(
            p,
            [
                0x3c, 0x18, 0xab, 0xe0, 0x5b, 0x0e, 0x61, 0x82, 0x74, 0x1d, 0x62, 0x5d, 0x12, 0x7c,
                0x15, 0xb0
            ]
        );
        assert!(SessionTracker::check_password(0x1234, &p));
        assert!(!SessionTracker::check_password(0x1234, &p[..8]));
        let mut bad = p;
        bad[15] = bad[15].wrapping_add(1);
        assert!(!SessionTracker::check_password(0x1234, &bad));
    }

    // Reference: SessionTrackerImpl.addSession/touchSession and ExpiryQueue.update — the
    // deadline is roundToNextInterval(now + timeout).
    #[test]
    fn deadline_starts_at_add_and_moves_by_buckets() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(7, 4000, 0);
        assert_eq!(t.get(7).unwrap().deadline_ms, 6000);
        assert_eq!(t.next_expiry_ms(), Some(6000));

        // Within the same bucket nothing moves.
        t.touch(7, 1999).unwrap();
        assert_eq!(t.get(7).unwrap().deadline_ms, 6000);
        // Crossing a tick boundary moves it one bucket.
        t.touch(7, 2000).unwrap();
        assert_eq!(t.get(7).unwrap().deadline_ms, 8000);
        t.touch(7, 9001).unwrap();
        assert_eq!(t.get(7).unwrap().deadline_ms, 14000);
        assert_eq!(t.next_expiry_ms(), Some(14000));
        t.assert_consistent();
    }

    #[test]
    fn expire_returns_exactly_the_due_sessions() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(30, 4000, 0); // 6000
        t.add(10, 4000, 1000); // 6000
        t.add(20, 4000, 2500); // 8000
        t.add(5, 10_000, 0); // 12000
        assert_eq!(t.next_expiry_ms(), Some(6000));

        assert_eq!(t.expire(5999), Vec::<i64>::new());
        assert!(!t.get(10).unwrap().closing);

        // Deadline order first, then id order within a bucket.
        assert_eq!(t.expire(9000), vec![10, 30, 20]);
        for id in [10, 20, 30] {
            assert!(t.get(id).unwrap().closing);
        }
        assert!(!t.get(5).unwrap().closing);
        assert_eq!(t.len(), 4, "expired sessions stay until removed");
        assert_eq!(t.next_expiry_ms(), Some(12000));

        // Nothing is reported twice.
        assert_eq!(t.expire(11_999), Vec::<i64>::new());
        assert_eq!(t.expire(12_000), vec![5]);
        assert_eq!(t.next_expiry_ms(), None);
        assert_eq!(t.expire(u64::MAX), Vec::<i64>::new());
        t.assert_consistent();
    }

    #[test]
    fn touching_keeps_a_session_alive() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(1, 4000, 0);
        t.add(2, 4000, 0);
        t.touch(1, 5000).unwrap(); // 10000
        assert_eq!(t.expire(6000), vec![2]);
        assert_eq!(t.expire(9999), Vec::<i64>::new());
        assert_eq!(t.expire(10_000), vec![1]);
    }

    #[test]
    fn closing_sessions_refuse_touches() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(1, 4000, 0);
        t.add(2, 4000, 0);
        t.set_closing(1);
        assert_eq!(t.touch(1, 100), Err(SessionError::Closing(1)));
        assert_eq!(t.check(1), Err(SessionError::Closing(1)));
        // A closing session is no longer due: its closeSession is already on its way.
        assert_eq!(t.expire(6000), vec![2]);
        assert_eq!(t.touch(2, 6000), Err(SessionError::Closing(2)));
        // set_closing twice (and on unknown ids) is harmless.
        t.set_closing(1);
        t.set_closing(99);
        t.assert_consistent();
        assert_eq!(t.remove(1).map(|s| s.closing), Some(true));
        assert_eq!(t.touch(1, 7000), Err(SessionError::Unknown(1)));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn unknown_sessions_are_refused() {
        let mut t = tracker();
        assert_eq!(t.touch(42, 0), Err(SessionError::Unknown(42)));
        assert_eq!(t.check(42), Err(SessionError::Unknown(42)));
        assert_eq!(t.remove(42), None);
        assert!(t.is_empty());
        assert_eq!(t.next_expiry_ms(), None);
    }

    #[test]
    fn remove_takes_the_session_out_of_its_bucket() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(1, 4000, 0);
        t.add(2, 8000, 0);
        let s = t.remove(1).unwrap();
        assert_eq!(
            s,
            Session {
                id: 1,
                timeout_ms: 4000,
                closing: false,
                deadline_ms: 6000,
                last_touch_ms: 0,
                last_server: 1,
            }
        );
        assert_eq!(t.next_expiry_ms(), Some(10_000));
        assert_eq!(t.expire(20_000), vec![2]);
        t.assert_consistent();
    }

    #[test]
    fn re_adding_updates_timeout_and_deadline() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(1, 4000, 0);
        t.add(1, 10_000, 1000);
        let s = t.get(1).unwrap();
        assert_eq!((s.timeout_ms, s.deadline_ms), (10_000, 12_000));
        assert_eq!(t.len(), 1);
        t.set_closing(1);
        t.add(1, 4000, 2000);
        assert!(t.get(1).unwrap().closing);
        assert_eq!(t.next_expiry_ms(), None);
        t.assert_consistent();
    }

    #[test]
    fn negative_timeouts_expire_at_the_next_tick() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(1, -100, 2500);
        assert_eq!(t.get(1).unwrap().deadline_ms, 4000);
    }

    #[test]
    fn iteration_is_by_id() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        for id in [5, -3, 9, 0x0100_0000_0000_0000, i64::MIN + 1] {
            t.add(id, 4000, 0);
        }
        let ids: Vec<i64> = t.iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![i64::MIN + 1, -3, 5, 9, 0x0100_0000_0000_0000]);
    }

    #[test]
    #[should_panic(expected = "tick_time_ms must be positive")]
    fn zero_tick_is_refused() {
        let _ = SessionTracker::new(SessionConfig::new(1, 0), 0);
    }

    #[test]
    fn touches_record_when_and_through_which_server() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(7, 4000, 100);
        assert_eq!(
            (
                t.get(7).unwrap().last_touch_ms,
                t.get(7).unwrap().last_server
            ),
            (100, 1)
        );
        t.touch_from(7, 2500, 3).unwrap();
        assert_eq!(
            (
                t.get(7).unwrap().last_touch_ms,
                t.get(7).unwrap().last_server
            ),
            (2500, 3)
        );
        t.touch(7, 3000).unwrap();
        assert_eq!(
            (
                t.get(7).unwrap().last_touch_ms,
                t.get(7).unwrap().last_server
            ),
            (3000, 1)
        );
        t.assert_consistent();
    }

    #[test]
    fn extend_all_moves_deadlines_but_not_last_contact() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        t.add(1, 4000, 0);
        t.add(2, 8000, 0);
        t.add(3, 4000, 0);
        t.set_closing(3);
        // A 60 s stall: without the extension both would be due.
        assert_eq!(t.extend_all(60_000), 2);
        t.assert_consistent();
        assert!(t.expire(60_000).is_empty());
        assert_eq!(t.get(1).unwrap().last_touch_ms, 0);
        assert_eq!(t.expire(66_000), vec![1]);
        assert_eq!(t.expire(70_000), vec![2]);
        t.assert_consistent();
    }

    #[test]
    fn expire_at_most_defers_the_rest_to_the_next_tick() {
        let mut t = SessionTracker::new(SessionConfig::new(1, TICK), 0);
        for id in 1..=5 {
            t.add(id, 4000, 0);
        }
        let (first, deferred) = t.expire_at_most(10_000, 2);
        assert_eq!((first, deferred), (vec![1, 2], 3));
        t.assert_consistent();
        assert!(
            t.expire_at_most(10_000, 2).0.is_empty(),
            "not before the next tick"
        );
        assert_eq!(t.expire_at_most(12_000, 2), (vec![3, 4], 1));
        assert_eq!(t.expire_at_most(14_000, 2), (vec![5], 0));
        t.assert_consistent();
    }
}
