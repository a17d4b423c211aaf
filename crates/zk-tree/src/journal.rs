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

/// One change a watch could have seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub zxid: i64,
    pub event: EventType,
    pub path: Arc<str>,
    /// The node's ACL at the change (events go only to watchers that may READ it).
    pub acl: Arc<[Acl]>,
}

/// The recent changes, oldest first, bounded by a number of txns.
#[derive(Debug, Clone, Default)]
pub struct ChangeJournal {
    changes: VecDeque<Change>,
    /// How many txns to keep (0: the journal is off).
    retain_txns: usize,
    /// Distinct zxids held.
    txns: usize,
    /// Every change at or below this zxid is forgotten (or happened before the journal
    /// started): a `relativeZxid` below it cannot be caught up exactly.
    forgotten_upto: i64,
    /// Path bytes held, for the memory report.
    path_bytes: u64,
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
        self.path_bytes += p.len() as u64;
        self.changes.push_back(Change {
            zxid,
            event,
            path: Arc::from(p),
            acl,
        });
        while self.txns > self.retain_txns {
            let Some(first) = self.changes.front().map(|c| c.zxid) else {
                break;
            };
            while self.changes.front().is_some_and(|c| c.zxid == first) {
                if let Some(c) = self.changes.pop_front() {
                    self.path_bytes -= c.path.len() as u64;
                }
            }
            self.txns -= 1;
            self.forgotten_upto = self.forgotten_upto.max(first);
        }
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
            .filter(|c| {
                persistent.iter().any(|p| **p == *c.path)
                    || (c.event != EventType::NodeChildrenChanged
                        && recursive.iter().any(|p| path::is_under(&c.path, p)))
            })
            .map(|c| Event {
                watcher,
                event: c.event,
                path: c.path.to_string(),
                zxid: c.zxid,
                acl: c.acl.clone(),
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
            + self
                .changes
                .iter()
                .map(|c| heap_bytes(16 + c.path.len()))
                .sum::<u64>()
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
}
