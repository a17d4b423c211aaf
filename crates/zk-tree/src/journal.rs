//! The change journal behind exact watch catch-up. ZooKeeper re-arms a reconnecting
//! client's persistent watches but silently loses the changes made while it was away;
//! zkd remembers the recent changes (every NodeCreated, NodeDeleted, NodeDataChanged and
//! NodeChildrenChanged, with its zxid and the node's ACL) for the last `retain_txns` txns,
//! so a client that comes back with a `relativeZxid` inside that window is sent exactly
//! the events it missed, in zxid order.
//!
//! A change costs 16 bytes plus whatever of its path is new. A create's or delete's
//! second change, the parent's NodeChildrenChanged, is folded into the first as a flag
//! when the parent's ACL is the node's (the usual case), and otherwise names a prefix of
//! the path just written, so it adds no bytes; a create under the parent of the last
//! change adds only its name. At the default 600,000 txns of a million-znode load the
//! journal holds about 25 MB (it held 75 MB, and a grown ring up to twice that, before).

use std::collections::VecDeque;
use std::sync::Arc;

use zk_proto::{Acl, EventType};

use crate::path;
use crate::tree::Event;
use crate::watch::WatcherId;

/// Path bytes the journal keeps at most, whatever `retain_txns` says: positions in the
/// byte log are kept modulo 2^32, so the live bytes (plus at most a block, see
/// [`PathLog`]) must stay well below that; and a journal of paths of a megabyte each
/// would otherwise grow to hundreds of gigabytes.
const MAX_PATH_BYTES: usize = 1 << 30;

/// Bytes per block of [`PathLog`] (a longer path gets a block of its own).
const PATH_BLOCK: usize = 64 * 1024;

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
    /// The path's length (low 28 bits) and the event's wire code (high 4 bits), plus
    /// [`PARENT_TOO`] on a create or delete whose parent's NodeChildrenChanged is folded
    /// in.
    len_event: u32,
}

/// Added to a NodeCreated's or NodeDeleted's code (1 or 2, so 9 or 10): the same txn
/// also changed the parent's children, and the parent has the same ACL.
const PARENT_TOO: u32 = 8;

impl Change {
    fn path_len(&self) -> usize {
        (self.len_event as usize) & MAX_PATH_LEN
    }

    fn event(&self) -> EventType {
        match self.len_event >> 28 {
            0xF => EventType::None,
            code => EventType::from_code((code & !PARENT_TOO) as i32).unwrap_or(EventType::None),
        }
    }

    /// Whether the parent's NodeChildrenChanged is folded in.
    fn parent_too(&self) -> bool {
        matches!(self.len_event >> 28, c if c != 0xF && c & PARENT_TOO != 0)
    }

    /// Whether a NodeChildrenChanged of the path's parent could be folded in.
    fn can_fold(&self) -> bool {
        matches!(
            self.event(),
            EventType::NodeCreated | EventType::NodeDeleted
        ) && !self.parent_too()
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

    fn back_mut(&mut self) -> Option<&mut Change> {
        let j = self.len.checked_sub(1)? + self.head;
        self.blocks.get_mut(j / BLOCK)?.get_mut(j % BLOCK)
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

/// The changes' paths, back to back, in fixed-size blocks: the oldest blocks are dropped
/// whole once no change names them, so what is held is the live bytes and at most one
/// block more. (One growing buffer drained from the front, as before, held up to four
/// times the live bytes: half of it dead, and doubling slack on top.) A path never
/// straddles two blocks.
#[derive(Debug, Clone, Default)]
struct PathLog {
    /// Blocks oldest first, each with the position of its first byte.
    blocks: VecDeque<(u64, Vec<u8>)>,
    /// The position the next byte written gets: the bytes ever written.
    end: u64,
}

impl PathLog {
    /// The `len` bytes at position `at`.
    fn bytes(&self, at: u64, len: usize) -> Option<&[u8]> {
        let i = self
            .blocks
            .partition_point(|(start, _)| *start <= at)
            .checked_sub(1)?;
        let (start, b) = self.blocks.get(i)?;
        let from = usize::try_from(at - start).ok()?;
        b.get(from..from.checked_add(len)?)
    }

    /// Writes `p` in one piece; returns its position.
    fn push(&mut self, p: &[u8]) -> u64 {
        let at = self.end;
        if !self.extend(p) {
            let mut b = Vec::with_capacity(PATH_BLOCK.max(p.len()));
            b.extend_from_slice(p);
            self.blocks.push_back((at, b));
            self.end += p.len() as u64;
        }
        at
    }

    /// Writes `rest` right after the last byte written, in the same block, if it has
    /// room: a path that ends there then goes on with `rest`.
    fn extend(&mut self, rest: &[u8]) -> bool {
        match self.blocks.back_mut() {
            Some((_, b)) if b.capacity() - b.len() >= rest.len() => {
                b.extend_from_slice(rest);
                self.end += rest.len() as u64;
                true
            }
            _ => false,
        }
    }

    /// Drops the blocks that end at or before position `at`.
    fn forget_before(&mut self, at: u64) {
        while self.blocks.get(1).is_some_and(|(start, _)| *start <= at) {
            self.blocks.pop_front();
        }
    }

    /// The full position of one kept modulo 2^32, for a position among the last 2^32
    /// bytes written.
    fn unwrap_position(&self, at: u32) -> u64 {
        self.end - u64::from((self.end as u32).wrapping_sub(at))
    }

    fn heap_bytes(&self) -> u64 {
        use crate::memory::heap_bytes;
        self.blocks
            .iter()
            .map(|(_, b)| heap_bytes(b.capacity()))
            .sum::<u64>()
            + heap_bytes(self.blocks.capacity() * std::mem::size_of::<(u64, Vec<u8>)>())
    }
}

/// The recent changes, oldest first, bounded by a number of txns.
#[derive(Debug, Clone, Default)]
pub struct ChangeJournal {
    changes: Changes,
    /// Changes dropped from the front since the journal began: the sequence number of
    /// `changes[0]`.
    dropped: u64,
    /// The paths of the changes.
    paths: PathLog,
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
        if same_acl && event == EventType::NodeChildrenChanged {
            let fold = self.changes.back().is_some_and(|c| {
                c.zxid == zxid && c.can_fold() && path::parent(self.path_of(c)) == p
            });
            if fold {
                if let Some(c) = self.changes.back_mut() {
                    c.len_event |= PARENT_TOO << 28;
                    return;
                }
            }
        }
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
        // Paths are written in change order, so the bytes before the oldest change's
        // path are dead.
        match self.changes.front() {
            None => {
                self.paths.blocks.clear();
                self.tail = None;
                self.acls.clear();
            }
            Some(c) => {
                let oldest = self.paths.unwrap_position(c.path_at);
                self.paths.forget_before(oldest);
            }
        }
    }

    /// Puts `p` in the byte log, sharing the bytes of the path written last where one is
    /// a prefix of the other; returns where `p` starts.
    fn write_path(&mut self, p: &[u8]) -> u64 {
        if let Some((start, len)) = self.tail {
            if let Some(last) = self.paths.bytes(start, len) {
                if last.starts_with(p) {
                    return start;
                }
                if p.starts_with(last)
                    && start + len as u64 == self.paths.end
                    && self.paths.extend(&p[len..])
                {
                    self.tail = Some((start, p.len()));
                    return start;
                }
            }
        }
        let at = self.paths.push(p);
        self.tail = Some((at, p.len()));
        at
    }

    /// Path bytes from the oldest change's path on.
    fn live_path_bytes(&self) -> usize {
        self.changes.front().map_or(0, |c| {
            let oldest = self.paths.unwrap_position(c.path_at);
            usize::try_from(self.paths.end - oldest).unwrap_or(usize::MAX)
        })
    }

    fn path_of(&self, c: &Change) -> &str {
        self.paths
            .bytes(self.paths.unwrap_position(c.path_at), c.path_len())
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
        let mut events = Vec::new();
        for i in start..self.changes.len {
            let Some(c) = self.changes.get(i) else {
                continue;
            };
            let path = self.path_of(c);
            let seq = self.dropped + i as u64;
            let mut offer = |event: EventType, path: &str| {
                let seen = persistent.iter().any(|p| p.as_str() == path)
                    || (event != EventType::NodeChildrenChanged
                        && recursive.iter().any(|p| path::is_under(path, p)));
                if seen {
                    events.push(Event {
                        watcher,
                        event,
                        path: path.to_owned(),
                        zxid: c.zxid,
                        acl: self.acl_of(seq),
                    });
                }
            };
            offer(c.event(), path);
            if c.parent_too() {
                offer(EventType::NodeChildrenChanged, path::parent(path));
            }
        }
        Some(events)
    }

    /// Heap bytes held (see [`crate::memory`]).
    pub fn memory_bytes(&self) -> u64 {
        use crate::memory::heap_bytes;
        self.changes.heap_bytes()
            + self.paths.heap_bytes()
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
        // Dead path bytes and ACL runs were dropped along the way: 220 kB were written,
        // the last 1,100 bytes are live, in at most two blocks.
        assert_eq!(j.paths.end as usize, 20_000 * 11);
        assert!(j.paths.blocks.len() <= 2, "{} blocks", j.paths.blocks.len());
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
        assert_eq!(j.paths.end as usize, 3 * BLOCK * "/app/n000000".len());
        // A path that extends the one written last adds only the rest.
        z += 1;
        let last = format!("/app/n{:06}", 3 * BLOCK - 1);
        j.record(z, EventType::NodeCreated, &format!("{last}/x"), acl());
        assert_eq!(j.paths.end as usize, 3 * BLOCK * 12 + "/x".len());
        z += 1;
        j.record(z, EventType::NodeDataChanged, "/", acl());
        assert_eq!(
            j.paths.end as usize,
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
    fn a_parent_change_with_the_same_acl_is_folded_and_still_told() {
        let open = acl();
        let read_only: Arc<[Acl]> = Arc::from(zk_proto::well_known::read_acl_unsafe());
        // The same txns twice: parents sharing their children's ACL, then not.
        use EventType::{NodeChildrenChanged as Kids, NodeCreated, NodeDataChanged, NodeDeleted};
        // Creates and deletes with their parent's change fold. A data change is not
        // folded into; neither is a children change of another node, or of another txn.
        let txns = [
            (1, NodeCreated, "/a"),
            (1, Kids, "/"),
            (2, NodeCreated, "/a/b"),
            (2, Kids, "/a"),
            (3, NodeDataChanged, "/a/b"),
            (3, Kids, "/a"),
            (4, NodeDeleted, "/a/b"),
            (4, Kids, "/x"),
            (5, NodeDeleted, "/a/b"),
            (6, Kids, "/a"),
            (7, NodeDeleted, "/a"),
            (7, Kids, "/"),
        ];
        let record = |parent_acl: &Arc<[Acl]>| {
            let mut j = ChangeJournal::new(1_000, 0);
            for (zxid, event, path) in txns {
                let acl = if event == Kids { parent_acl } else { &open };
                j.record(zxid, event, path, acl.clone());
            }
            j
        };
        let folded = record(&open);
        let apart = record(&read_only);
        assert_eq!(folded.changes.len, 9, "three parent changes folded");
        assert_eq!(
            apart.changes.len, 12,
            "a different ACL keeps its own change"
        );
        let all = |j: &ChangeJournal| {
            j.missed(
                0,
                &["/".to_owned(), "/a".to_owned(), "/x".to_owned()],
                &["/".to_owned()],
                WatcherId(1),
            )
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.zxid, e.event, e.path, e.acl))
            .collect::<Vec<_>>()
        };
        let (f, a) = (all(&folded), all(&apart));
        assert_eq!(f.len(), 12);
        for ((fe, ae), parent_change) in f.iter().zip(&a).zip([
            false, true, false, true, false, true, false, true, false, true, false, true,
        ]) {
            assert_eq!(
                (fe.0, fe.1, &fe.2),
                (ae.0, ae.1, &ae.2),
                "same events, same order"
            );
            assert_eq!(fe.3, open);
            let want = if parent_change { &read_only } else { &open };
            assert_eq!(&ae.3, want, "{ae:?}");
        }
        assert_eq!(
            (f[1].0, f[1].1, f[1].2.as_str()),
            (1, EventType::NodeChildrenChanged, "/")
        );
        // A recursive watch does not see children changes, folded or not.
        let recursive = folded
            .missed(0, &[], &["/".to_owned()], WatcherId(1))
            .unwrap_or_default();
        assert_eq!(recursive.len(), 6);
        assert!(recursive
            .iter()
            .all(|e| e.event != EventType::NodeChildrenChanged));
    }

    #[test]
    fn paths_longer_than_a_block_or_across_its_end_stay_whole() {
        let mut j = ChangeJournal::new(1_000, 0);
        let long = format!("/{}", "l".repeat(PATH_BLOCK + 10));
        let mut want = Vec::new();
        let mut z = 0;
        for round in 0..3 {
            for n in 0..(PATH_BLOCK / 10) {
                // Each extends the one before while the block has room, then starts over.
                let p = format!("/r{round}/{}", "e".repeat(n % 40));
                z += 1;
                j.record(z, EventType::NodeDataChanged, &p, acl());
                want.push(p);
            }
            z += 1;
            j.record(z, EventType::NodeDataChanged, &long, acl());
            want.push(long.clone());
        }
        let got: Vec<String> = j
            .missed(z - 1_000, &[], &["/".to_owned()], WatcherId(1))
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(got.len(), 1_000);
        assert!(got == want[want.len() - 1_000..], "paths come back whole");
        // What is held: the live bytes (one long path and 999 short ones) and a block.
        assert!(j.memory_bytes() < 2 * PATH_BLOCK as u64 + 64 * 1024 + 2 * 40 * 1_000);
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
