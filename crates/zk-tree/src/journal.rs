//! The change journal behind exact watch catch-up. ZooKeeper re-arms a reconnecting
//! client's persistent watches but silently loses the changes made while it was away;
//! zkd remembers the recent changes (every NodeCreated, NodeDeleted, NodeDataChanged and
//! NodeChildrenChanged, with its zxid and the node's ACL) for the last `retain_txns` txns,
//! so a client that comes back with a `relativeZxid` inside that window is sent exactly
//! the events it missed, in zxid order.

use std::collections::VecDeque;
use std::sync::Arc;

use zk_proto::{Acl, EventType};

use crate::path;
use crate::tree::Event;
use crate::watch::WatcherId;

/// One change a watch could have seen. The path's bytes are in the journal's byte log and
/// the ACL in its list of ACL runs, so a change costs 32 bytes plus its path (it cost
/// about 190 with a path and an ACL pointer of its own: 115 MB for the default 600,000
/// txns of a million-znode load).
#[derive(Debug, Clone)]
struct Change {
    zxid: i64,
    /// Where the path starts in the byte log (a position counted since the journal began).
    path_at: u64,
    path_len: u32,
    event: EventType,
    /// Which ACL run (counted since the journal began) holds the node's ACL at the change;
    /// events go only to watchers that may READ the node.
    acl_at: u64,
}

/// The recent changes, oldest first, bounded by a number of txns.
#[derive(Debug, Clone, Default)]
pub struct ChangeJournal {
    changes: VecDeque<Change>,
    /// The paths of the changes, back to back; `paths[0]` is at position `paths_base`.
    paths: Vec<u8>,
    paths_base: u64,
    /// Bytes at the front of `paths` that no change refers to any more (dropped in bulk).
    paths_dead: usize,
    /// ACLs of consecutive changes, one entry per run of equal ACLs; the front one is run
    /// number `acls_base`.
    acls: VecDeque<Arc<[Acl]>>,
    acls_base: u64,
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
        if self.changes.back().is_none_or(|c| c.zxid != zxid) {
            self.txns += 1;
        }
        let same_acl = self
            .acls
            .back()
            .is_some_and(|last| Arc::ptr_eq(last, &acl) || **last == *acl);
        if !same_acl {
            self.acls.push_back(acl);
        }
        let acl_at = self.acls_base + self.acls.len() as u64 - 1;
        let path_at = self.paths_base + self.paths.len() as u64;
        self.paths.extend_from_slice(p.as_bytes());
        self.changes.push_back(Change {
            zxid,
            path_at,
            path_len: u32::try_from(p.len()).unwrap_or(u32::MAX),
            event,
            acl_at,
        });
        while self.txns > self.retain_txns {
            let Some(first) = self.changes.front().map(|c| c.zxid) else {
                break;
            };
            while self.changes.front().is_some_and(|c| c.zxid == first) {
                if let Some(c) = self.changes.pop_front() {
                    self.paths_dead += c.path_len as usize;
                }
            }
            self.txns -= 1;
            self.forgotten_upto = self.forgotten_upto.max(first);
        }
        // ACL runs no change refers to any more.
        let oldest_acl = self.changes.front().map_or(u64::MAX, |c| c.acl_at);
        while self.acls_base < oldest_acl && !self.acls.is_empty() {
            self.acls.pop_front();
            self.acls_base += 1;
        }
        // Drop dead path bytes once they are most of the log (amortized: each byte moves
        // at most once more).
        if self.paths_dead >= 4096 && self.paths_dead * 2 >= self.paths.len() {
            self.paths.drain(..self.paths_dead);
            self.paths_base += self.paths_dead as u64;
            self.paths_dead = 0;
        }
    }

    fn path_of(&self, c: &Change) -> &str {
        let start = (c.path_at - self.paths_base) as usize;
        self.paths
            .get(start..start + c.path_len as usize)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    fn acl_of(&self, c: &Change) -> Arc<[Acl]> {
        self.acls
            .get((c.acl_at - self.acls_base) as usize)
            .cloned()
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
        let events = self
            .changes
            .range(start..)
            .filter_map(|c| {
                let path = self.path_of(c);
                let seen = persistent.iter().any(|p| p.as_str() == path)
                    || (c.event != EventType::NodeChildrenChanged
                        && recursive.iter().any(|p| path::is_under(path, p)));
                seen.then(|| Event {
                    watcher,
                    event: c.event,
                    path: path.to_owned(),
                    zxid: c.zxid,
                    acl: self.acl_of(c),
                })
            })
            .collect();
        Some(events)
    }

    /// Heap bytes held (see [`crate::memory`]).
    pub fn memory_bytes(&self) -> u64 {
        use crate::memory::heap_bytes;
        // The ring's length, not its capacity: a grown buffer's unused half is never
        // touched, so it is not resident.
        heap_bytes(self.changes.len() * std::mem::size_of::<Change>())
            + heap_bytes(self.paths.len())
            + heap_bytes(self.acls.len() * std::mem::size_of::<Arc<[Acl]>>())
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
}
