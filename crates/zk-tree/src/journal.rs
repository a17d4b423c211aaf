//! The change journal behind exact watch catch-up. ZooKeeper re-arms a reconnecting
//! client's persistent watches but silently loses the changes made while it was away;
//! zkd remembers the recent changes (every NodeCreated, NodeDeleted, NodeDataChanged and
//! NodeChildrenChanged, with its zxid and the node's ACL) for the last `retain_txns` txns,
//! so a client that comes back with a `relativeZxid` inside that window is sent exactly
//! the events it missed, in zxid order.
//!
//! A change costs 16 bytes plus whatever of its path is new. A create's or delete's
//! second change, the parent's NodeChildrenChanged, names a prefix of the path just
//! written, so it adds no bytes; a create under the parent of the last change adds only
//! its name. At the default 600,000 txns of a million-znode load the journal holds about
//! 35 MB (it held 75 MB, and a grown ring up to twice that, before).

use std::collections::VecDeque;
use std::sync::Arc;

use zk_proto::{Acl, EventType};

use crate::path;
use crate::tree::Event;
use crate::watch::WatcherId;

/// Path bytes the journal keeps at most, whatever `retain_txns` says: positions in the
/// byte log are kept modulo 2^32, so the live bytes (at most half the log, see
/// [`ChangeJournal::record`]) must stay well below that; and a journal of paths of a
/// megabyte each would otherwise grow to hundreds of gigabytes.
const MAX_PATH_BYTES: usize = 1 << 30;

/// Changes per block of [`Changes`].
const BLOCK: usize = 4096;

/// The longest path a change can name (its length shares a word with the event).
const MAX_PATH_LEN: usize = (1 << 28) - 1;

/// One change a watch could have seen; its path is in the journal's byte log, and its ACL
/// in the journal's list of ACL runs.
#[derive(Debug, Clone, Copy)]
struct Change {
    zxid: i64,
    /// Where the path starts in the byte log, as a position counted since the journal
    /// began, modulo 2^32.
    path_at: u32,
    /// The path's length (low 28 bits) and the event's wire code (high 4 bits).
    len_event: u32,
}

impl Change {
    fn path_len(&self) -> usize {
        (self.len_event as usize) & MAX_PATH_LEN
    }

    fn event(&self) -> EventType {
        match self.len_event >> 28 {
            0xF => EventType::None,
            code => EventType::from_code(code as i32).unwrap_or(EventType::None),
        }
    }
}

/// A deque of changes in fixed-size blocks. It holds at most one partly used block at each
/// end, where a `VecDeque` grown by doubling keeps up to twice its length resident once
/// its ring has wrapped around.
#[derive(Debug, Clone, Default)]
struct Changes {
    blocks: VecDeque<Vec<Change>>,
    /// Changes already dropped from the front block.
    head: usize,
    len: usize,
}

impl Changes {
    fn get(&self, i: usize) -> Option<&Change> {
        let j = i.checked_add(self.head)?;
        if i >= self.len {
            return None;
        }
        self.blocks.get(j / BLOCK)?.get(j % BLOCK)
    }

    fn front(&self) -> Option<&Change> {
        self.get(0)
    }

    fn back(&self) -> Option<&Change> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    fn push_back(&mut self, c: Change) {
        match self.blocks.back_mut() {
            Some(b) if b.len() < BLOCK => b.push(c),
            _ => {
                let mut b = Vec::with_capacity(BLOCK);
                b.push(c);
                self.blocks.push_back(b);
            }
        }
        self.len += 1;
    }

    fn pop_front(&mut self) -> Option<Change> {
        let c = *self.front()?;
        self.head += 1;
        self.len -= 1;
        if self.len == 0 {
            self.blocks.clear();
            self.head = 0;
        } else if self.head == BLOCK {
            self.blocks.pop_front();
            self.head = 0;
        }
        Some(c)
    }

    /// The index of the first change for which `pred` is false (`pred` holds for a prefix).
    fn partition_point(&self, pred: impl Fn(&Change) -> bool) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).is_some_and(&pred) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    fn heap_bytes(&self) -> u64 {
        self.blocks.len() as u64 * crate::memory::heap_bytes(BLOCK * std::mem::size_of::<Change>())
            + crate::memory::heap_bytes(self.blocks.capacity() * std::mem::size_of::<Vec<Change>>())
    }
}

/// The recent changes, oldest first, bounded by a number of txns.
#[derive(Debug, Clone, Default)]
pub struct ChangeJournal {
    changes: Changes,
    /// Changes dropped from the front since the journal began: the sequence number of
    /// `changes[0]`.
    dropped: u64,
    /// The paths of the changes, back to back; `paths[0]` is at position `paths_base`.
    paths: Vec<u8>,
    paths_base: u64,
    /// Where the path written last starts, and its length: the next path may be its
    /// prefix (nothing to write) or extend it (only the rest is written).
    tail: Option<(u64, usize)>,
    /// ACLs of consecutive changes, one entry per run of equal ACLs, each with the sequence
    /// number of its first change.
    acls: VecDeque<(u64, Arc<[Acl]>)>,
    /// How many txns to keep (0: the journal is off).
    retain_txns: usize,
    /// Distinct zxids held.
    txns: usize,
    /// Every change at or below this zxid is forgotten (or happened before the journal
    /// started): a `relativeZxid` below it cannot be caught up exactly.
    forgotten_upto: i64,
}

impl ChangeJournal {
    /// A journal keeping `retain_txns` txns, knowing nothing before `zxid`.
    pub fn new(retain_txns: usize, zxid: i64) -> ChangeJournal {
        ChangeJournal {
            retain_txns,
            forgotten_upto: zxid,
            ..ChangeJournal::default()
        }
    }

    /// Whether it records anything.
    pub fn enabled(&self) -> bool {
        self.retain_txns > 0
    }

    /// Forgets everything: the tree was replaced by a snapshot at `zxid`.
    pub fn reset(&mut self, zxid: i64) {
        *self = ChangeJournal::new(self.retain_txns, zxid);
    }

    pub(crate) fn record(&mut self, zxid: i64, event: EventType, p: &str, acl: Arc<[Acl]>) {
        if !self.enabled() {
            return;
        }
        if p.len() > MAX_PATH_LEN {
            // Too long to hold: forget up to this txn rather than tell part of it.
            self.reset(zxid);
            return;
        }
        if self.changes.back().is_none_or(|c| c.zxid != zxid) {
            self.txns += 1;
        }
        let seq = self.dropped + self.changes.len as u64;
        let same_acl = self
            .acls
            .back()
            .is_some_and(|(_, last)| Arc::ptr_eq(last, &acl) || **last == *acl);
        if !same_acl {
            self.acls.push_back((seq, acl));
        }
        let path_at = self.write_path(p.as_bytes());
        self.changes.push_back(Change {
            zxid,
            // Modulo 2^32 by design (see `MAX_PATH_BYTES`).
            path_at: path_at as u32,
            len_event: p.len() as u32 | ((event.code() as u32) & 0xF) << 28,
        });
        while self.txns > self.retain_txns || self.live_path_bytes() > MAX_PATH_BYTES {
            let Some(first) = self.changes.front().map(|c| c.zxid) else {
                break;
            };
            while self.changes.front().is_some_and(|c| c.zxid == first) {
                self.changes.pop_front();
                self.dropped += 1;
            }
            self.txns -= 1;
            self.forgotten_upto = self.forgotten_upto.max(first);
        }
        // ACL runs no change refers to any more: the next run starts at or before the
        // oldest change held.
        while self.acls.len() > 1 && self.acls[1].0 <= self.dropped {
            self.acls.pop_front();
        }
        // Drop dead path bytes once they are most of the log (amortized: each byte moves
        // at most once more). Paths are written in change order, so the bytes before the
        // oldest change's path are dead.
        let dead = self.paths.len() - self.live_path_bytes();
        if self.changes.len == 0 {
            self.paths.clear();
            self.paths_base += dead as u64;
            self.tail = None;
            self.acls.clear();
        } else if dead >= 4096 && dead * 2 >= self.paths.len() {
            self.paths.drain(..dead);
            self.paths_base += dead as u64;
        }
    }

    /// Puts `p` in the byte log, sharing the bytes of the path written last where one is
    /// a prefix of the other; returns where `p` starts.
    fn write_path(&mut self, p: &[u8]) -> u64 {
        let end = self.paths_base + self.paths.len() as u64;
        if let Some((start, len)) = self.tail {
            let last = start
                .checked_sub(self.paths_base)
                .and_then(|at| self.paths.get(at as usize..at as usize + len));
            if let Some(last) = last {
                if last.starts_with(p) {
                    return start;
                }
                if p.starts_with(last) && start + len as u64 == end {
                    self.paths.extend_from_slice(&p[len..]);
                    self.tail = Some((start, p.len()));
                    return start;
                }
            }
        }
        self.paths.extend_from_slice(p);
        self.tail = Some((end, p.len()));
        end
    }

    /// The index in `paths` of a position kept modulo 2^32.
    fn offset(&self, path_at: u32) -> usize {
        path_at.wrapping_sub(self.paths_base as u32) as usize
    }

    /// Path bytes from the oldest change's path on.
    fn live_path_bytes(&self) -> usize {
        self.changes.front().map_or(0, |c| {
            self.paths.len().saturating_sub(self.offset(c.path_at))
        })
    }

    fn path_of(&self, c: &Change) -> &str {
        let start = self.offset(c.path_at);
        self.paths
            .get(start..start + c.path_len())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// The ACL of the change numbered `seq`.
    fn acl_of(&self, seq: u64) -> Arc<[Acl]> {
        let run = self.acls.partition_point(|(first, _)| *first <= seq);
        run.checked_sub(1)
            .and_then(|i| self.acls.get(i))
            .map(|(_, acl)| acl.clone())
            .unwrap_or_else(|| Arc::from(Vec::new()))
    }

    /// Whether every change after `relative_zxid` is still held.
    pub fn covers(&self, relative_zxid: i64) -> bool {
        self.enabled() && relative_zxid >= self.forgotten_upto
    }

    /// Txns held.
    pub fn txns(&self) -> usize {
        self.txns
    }

    /// The events a watcher holding `persistent` and `recursive` watches missed after
    /// `relative_zxid`, in zxid order, one per change; `None` when the journal does not
    /// reach back that far. A persistent watch on P sees every change of P (children
    /// changes included); a recursive one on P every change of P and below, except
    /// children changes (as the watches themselves fire).
    pub fn missed(
        &self,
        relative_zxid: i64,
        persistent: &[String],
        recursive: &[String],
        watcher: WatcherId,
    ) -> Option<Vec<Event>> {
        if !self.covers(relative_zxid) {
            return None;
        }
        let start = self.changes.partition_point(|c| c.zxid <= relative_zxid);
        let events = (start..self.changes.len)
            .filter_map(|i| {
                let c = self.changes.get(i)?;
                let path = self.path_of(c);
                let event = c.event();
                let seen = persistent.iter().any(|p| p.as_str() == path)
                    || (event != EventType::NodeChildrenChanged
                        && recursive.iter().any(|p| path::is_under(path, p)));
                seen.then(|| Event {
                    watcher,
                    event,
                    path: path.to_owned(),
                    zxid: c.zxid,
                    acl: self.acl_of(self.dropped + i as u64),
                })
            })
            .collect();
        Some(events)
    }

    /// Heap bytes held (see [`crate::memory`]).
    pub fn memory_bytes(&self) -> u64 {
        use crate::memory::heap_bytes;
        self.changes.heap_bytes()
            + heap_bytes(self.paths.capacity())
            + heap_bytes(self.acls.capacity() * std::mem::size_of::<(u64, Arc<[Acl]>)>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> Arc<[Acl]> {
        Arc::from(zk_proto::well_known::open_acl_unsafe())
    }

    #[test]
    fn keeps_the_last_txns_and_answers_what_was_missed() {
        let mut j = ChangeJournal::new(3, 10);
        assert!(j.covers(10) && !j.covers(9));
        j.record(11, EventType::NodeCreated, "/w/a", acl());
        j.record(11, EventType::NodeChildrenChanged, "/w", acl());
        j.record(12, EventType::NodeDataChanged, "/w/a", acl());
        j.record(13, EventType::NodeDataChanged, "/other", acl());
        let w = WatcherId(1);
        let got = |j: &ChangeJournal, z: i64, p: &[&str], r: &[&str]| {
            let p: Vec<String> = p.iter().map(|s| (*s).to_owned()).collect();
            let r: Vec<String> = r.iter().map(|s| (*s).to_owned()).collect();
            j.missed(z, &p, &r, w).map(|v| {
                v.into_iter()
                    .map(|e| (e.zxid, e.event, e.path))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            got(&j, 10, &[], &["/w"]),
            Some(vec![
                (11, EventType::NodeCreated, "/w/a".to_owned()),
                (12, EventType::NodeDataChanged, "/w/a".to_owned()),
            ]),
            "recursive: the subtree, no child-list changes"
        );
        assert_eq!(
            got(&j, 11, &["/w"], &[]),
            Some(vec![]),
            "after 11, /w itself did not change"
        );
        assert_eq!(
            got(&j, 10, &["/w", "/w/a"], &["/"]).map(|v| v.len()),
            Some(4),
            "one event per change, however many watches match"
        );
        // A fourth txn pushes out zxid 11: 10 is no longer covered, 11 is.
        j.record(14, EventType::NodeDeleted, "/w/a", acl());
        assert_eq!(j.txns(), 3);
        assert!(!j.covers(10) && j.covers(11));
        assert_eq!(got(&j, 10, &[], &["/w"]), None);
        assert_eq!(
            got(&j, 11, &[], &["/w"]).map(|v| v.len()),
            Some(2),
            "data change 12 and delete 14"
        );
        assert!(j.memory_bytes() > 0);
        j.reset(20);
        assert!(!j.covers(19) && j.covers(20) && j.txns() == 0);
        let off = ChangeJournal::new(0, 0);
        assert!(!off.covers(0));
    }

    #[test]
    fn paths_and_acl_runs_survive_the_window_moving_on() {
        let open = acl();
        let read_only: Arc<[Acl]> = Arc::from(zk_proto::well_known::read_acl_unsafe());
        let mut j = ChangeJournal::new(100, 0);
        for z in 1..=20_000i64 {
            let a = if (z / 7) % 2 == 0 {
                open.clone()
            } else {
                read_only.clone()
            };
            j.record(z, EventType::NodeDataChanged, &format!("/p/{z:08}"), a);
        }
        assert_eq!(j.txns(), 100);
        assert!(j.covers(19_900) && !j.covers(19_899));
        let got = j
            .missed(19_900, &[], &["/p".to_owned()], WatcherId(1))
            .unwrap_or_default();
        assert_eq!(got.len(), 100);
        for (e, z) in got.iter().zip(19_901..) {
            assert_eq!(e.zxid, z);
            assert_eq!(e.path, format!("/p/{z:08}"));
            let want = if (z / 7) % 2 == 0 { &open } else { &read_only };
            assert_eq!(&e.acl, want, "zxid {z}");
        }
        // Dead path bytes and ACL runs were dropped along the way.
        assert!(
            j.paths.len() <= 2 * 100 * 11 + 4096,
            "{} path bytes",
            j.paths.len()
        );
        assert!(j.acls.len() <= 100 / 7 + 2, "{} ACL runs", j.acls.len());
    }
    #[test]
    fn a_parent_change_and_a_sibling_create_share_the_bytes_already_written() {
        let mut j = ChangeJournal::new(1_000_000, 0);
        let mut z = 0;
        for n in 0..3 * BLOCK {
            z += 1;
            j.record(z, EventType::NodeCreated, &format!("/app/n{n:06}"), acl());
            j.record(z, EventType::NodeChildrenChanged, "/app", acl());
        }
        // Each create wrote its path once; the parent's change reused its first bytes.
        assert_eq!(j.paths.len(), 3 * BLOCK * "/app/n000000".len());
        // A path that extends the one written last adds only the rest.
        z += 1;
        let last = format!("/app/n{:06}", 3 * BLOCK - 1);
        j.record(z, EventType::NodeCreated, &format!("{last}/x"), acl());
        assert_eq!(j.paths.len(), 3 * BLOCK * 12 + "/x".len());
        z += 1;
        j.record(z, EventType::NodeDataChanged, "/", acl());
        assert_eq!(
            j.paths.len(),
            3 * BLOCK * 12 + 2,
            "the root is a prefix too"
        );
        let got = j
            .missed(
                0,
                &["/app".to_owned(), "/".to_owned()],
                &[format!("{last}/x")],
                WatcherId(1),
            )
            .unwrap_or_default();
        assert_eq!(got.len(), 3 * BLOCK + 2);
        assert!(got[..3 * BLOCK]
            .iter()
            .all(|e| e.event == EventType::NodeChildrenChanged && e.path == "/app"));
        assert_eq!(
            (got[3 * BLOCK].event, got[3 * BLOCK].path.as_str()),
            (EventType::NodeCreated, format!("{last}/x").as_str())
        );
        assert_eq!(
            (got[3 * BLOCK + 1].event, got[3 * BLOCK + 1].path.as_str()),
            (EventType::NodeDataChanged, "/")
        );
        let all = j
            .missed(0, &[], &["/".to_owned()], WatcherId(1))
            .unwrap_or_default();
        for (n, e) in all.iter().take(3 * BLOCK).enumerate() {
            assert_eq!(e.path, format!("/app/n{n:06}"));
            assert_eq!(e.zxid, n as i64 + 1);
        }
    }

    #[test]
    fn memory_follows_what_is_held_not_what_was_ever_held() {
        let mut j = ChangeJournal::new(BLOCK, 0);
        for z in 1..=(20 * BLOCK) as i64 {
            j.record(
                z,
                EventType::NodeDataChanged,
                &format!("/q/{}", z % 977),
                acl(),
            );
            if z as usize == 2 * BLOCK {
                // Full: BLOCK txns in one or two blocks of changes.
                assert!(j.changes.blocks.len() <= 2);
            }
        }
        assert_eq!(j.txns(), BLOCK);
        assert!(
            j.changes.blocks.len() <= 2,
            "{} blocks",
            j.changes.blocks.len()
        );
        let first = (19 * BLOCK) as i64;
        assert!(j.covers(first) && !j.covers(first - 1));
        let got = j
            .missed(first + 10, &[], &["/q".to_owned()], WatcherId(1))
            .unwrap_or_default();
        assert_eq!(got.len(), BLOCK - 10);
        assert_eq!(got[0].zxid, first + 11);
        assert_eq!(got[0].path, format!("/q/{}", (first + 11) % 977));
    }
}
