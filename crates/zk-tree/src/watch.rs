//! The watch registry: which watcher wants which event on which path. It returns the
//! watchers an event fires; it never delivers anything (`WatchManager`, two of them in
//! ZooKeeper's `DataTree`: one for data/exist watches, one for child watches).
//!
//! Modes coexist per watcher and path (ZOOKEEPER-4466): a one-shot watch is removed when it
//! fires; persistent and persistent-recursive watches stay. Recursive watches fire for
//! events on the path and every descendant, and never for child-list changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use zk_proto::{EventType, WatcherType};

/// Who registered a watch: the server maps it to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WatcherId(pub u64);

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

/// A watch mode, as `addWatch` and the read ops set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// One-shot, set by getData/exists/getChildren.
    Standard,
    /// addWatch mode 0.
    Persistent,
    /// addWatch mode 1.
    PersistentRecursive,
}

impl WatchMode {
    fn bit(self) -> u8 {
        match self {
            WatchMode::Standard => STANDARD,
            WatchMode::Persistent => PERSISTENT,
            WatchMode::PersistentRecursive => RECURSIVE,
        }
    }
}

/// One table of watches (data or child).
#[derive(Debug, Default, Clone)]
struct WatchTable {
    by_path: HashMap<String, BTreeMap<WatcherId, u8>>,
    by_watcher: HashMap<WatcherId, BTreeSet<String>>,
    recursive_count: usize,
}

impl WatchTable {
    /// Heap bytes of both directions (see [`crate::memory`]).
    fn memory_bytes(&self) -> u64 {
        use crate::memory::{btree_map_bytes, btree_set_bytes, hash_map_bytes, string_bytes};
        let mut b = hash_map_bytes(&self.by_path) + hash_map_bytes(&self.by_watcher);
        for (path, watchers) in &self.by_path {
            b += string_bytes(path) + btree_map_bytes(watchers);
        }
        for paths in self.by_watcher.values() {
            b += btree_set_bytes(paths);
            b += paths.iter().map(|p| string_bytes(p)).sum::<u64>();
        }
        b
    }

    fn add(&mut self, path: &str, w: WatcherId, mode: WatchMode) -> bool {
        let modes = self
            .by_path
            .entry(path.to_owned())
            .or_default()
            .entry(w)
            .or_insert(0);
        if *modes & mode.bit() != 0 {
            return false;
        }
        *modes |= mode.bit();
        if mode == WatchMode::PersistentRecursive {
            self.recursive_count += 1;
        }
        self.by_watcher
            .entry(w)
            .or_default()
            .insert(path.to_owned());
        true
    }

    /// Removes the `mask` modes of `w` at `path`; true if any was there.
    fn remove(&mut self, path: &str, w: WatcherId, mask: u8) -> bool {
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(modes) = watchers.get_mut(&w) else {
            return false;
        };
        let removed = *modes & mask;
        if removed == 0 {
            return false;
        }
        *modes &= !mask;
        if removed & RECURSIVE != 0 {
            self.recursive_count -= 1;
        }
        if *modes == 0 {
            watchers.remove(&w);
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
            if let Some(paths) = self.by_watcher.get_mut(&w) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_watcher.remove(&w);
                }
            }
        }
        true
    }

    fn contains(&self, path: &str, w: WatcherId, mask: u8) -> bool {
        self.by_path
            .get(path)
            .and_then(|ws| ws.get(&w))
            .is_some_and(|m| m & mask != 0)
    }

    /// Fires watches for an event at `path`; returns the watchers, in id order, minus
    /// `suppress`. One-shot watches at `path` are consumed.
    fn trigger(&mut self, path: &str, suppress: &BTreeSet<WatcherId>) -> BTreeSet<WatcherId> {
        let mut fired = BTreeSet::new();
        if let Some(watchers) = self.by_path.get_mut(path) {
            let mut emptied = Vec::new();
            for (w, modes) in watchers.iter_mut() {
                // A suppressed watcher is still consumed; it just gets no second event.
                if !suppress.contains(w) {
                    fired.insert(*w);
                }
                if *modes & STANDARD != 0 {
                    *modes &= !STANDARD;
                    if *modes == 0 {
                        emptied.push(*w);
                    }
                }
            }
            for w in &emptied {
                watchers.remove(w);
            }
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
            for w in emptied {
                if let Some(paths) = self.by_watcher.get_mut(&w) {
                    paths.remove(path);
                    if paths.is_empty() {
                        self.by_watcher.remove(&w);
                    }
                }
            }
        }
        if self.recursive_count > 0 {
            let mut p = path;
            while p != "/" {
                p = crate::path::parent(p);
                if let Some(watchers) = self.by_path.get(p) {
                    for (w, modes) in watchers {
                        if modes & RECURSIVE != 0 && !suppress.contains(w) {
                            fired.insert(*w);
                        }
                    }
                }
            }
        }
        fired
    }

    fn remove_watcher(&mut self, w: WatcherId) {
        let Some(paths) = self.by_watcher.remove(&w) else {
            return;
        };
        for path in paths {
            if let Some(watchers) = self.by_path.get_mut(&path) {
                if let Some(modes) = watchers.remove(&w) {
                    if modes & RECURSIVE != 0 {
                        self.recursive_count -= 1;
                    }
                }
                if watchers.is_empty() {
                    self.by_path.remove(&path);
                }
            }
        }
    }

    fn count(&self) -> usize {
        self.by_path.values().map(BTreeMap::len).sum()
    }
}

/// One event a watcher must receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub watcher: WatcherId,
    pub event: EventType,
    pub path: String,
}

/// All watches of one server's tree.
#[derive(Debug, Default, Clone)]
pub struct WatchRegistry {
    data: WatchTable,
    child: WatchTable,
}

impl WatchRegistry {
    /// Heap bytes of every watch table (an estimate; see [`crate::memory`]).
    pub fn memory_bytes(&self) -> u64 {
        self.data.memory_bytes() + self.child.memory_bytes()
    }

    /// One-shot data watch (getData, or exists on an existing node).
    pub fn add_data_watch(&mut self, path: &str, w: WatcherId) {
        self.data.add(path, w, WatchMode::Standard);
    }

    /// One-shot exist watch (exists on a missing node): lives with the data watches.
    pub fn add_exist_watch(&mut self, path: &str, w: WatcherId) {
        self.data.add(path, w, WatchMode::Standard);
    }

    /// One-shot child watch (getChildren).
    pub fn add_child_watch(&mut self, path: &str, w: WatcherId) {
        self.child.add(path, w, WatchMode::Standard);
    }

    /// addWatch: persistent watches see data and child events of the path; recursive ones
    /// see data events of the path and all descendants.
    pub fn add_persistent(&mut self, path: &str, w: WatcherId, recursive: bool) {
        if recursive {
            self.data.add(path, w, WatchMode::PersistentRecursive);
        } else {
            self.data.add(path, w, WatchMode::Persistent);
            self.child.add(path, w, WatchMode::Persistent);
        }
    }

    /// Fires the watches for one change, in ZooKeeper's order and with its de-duplication:
    /// a deleted node's data and child watchers get one NodeDeleted each.
    pub fn trigger(&mut self, path: &str, event: EventType) -> Vec<Fired> {
        let none = BTreeSet::new();
        let fired = match event {
            EventType::NodeCreated | EventType::NodeDataChanged => self.data.trigger(path, &none),
            EventType::NodeChildrenChanged => self.child.trigger(path, &none),
            EventType::NodeDeleted => {
                let mut first = self.data.trigger(path, &none);
                let second = self.child.trigger(path, &first);
                first.extend(second);
                first
            }
            _ => none,
        };
        fired
            .into_iter()
            .map(|watcher| Fired {
                watcher,
                event,
                path: path.to_owned(),
            })
            .collect()
    }

    /// removeWatches: true if anything was removed (else the caller answers NOWATCHER).
    pub fn remove(&mut self, path: &str, w: WatcherId, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => self.child.remove(path, w, STANDARD),
            WatcherType::Data => self.data.remove(path, w, STANDARD),
            WatcherType::Any => {
                let c = self
                    .child
                    .remove(path, w, STANDARD | PERSISTENT | RECURSIVE);
                let d = self.data.remove(path, w, STANDARD | PERSISTENT | RECURSIVE);
                c || d
            }
            WatcherType::Persistent => {
                let c = self.child.remove(path, w, PERSISTENT);
                let d = self.data.remove(path, w, PERSISTENT);
                c || d
            }
            WatcherType::PersistentRecursive => self.data.remove(path, w, RECURSIVE),
        }
    }

    /// checkWatches: whether `w` holds a watch of that kind on `path`.
    pub fn contains(&self, path: &str, w: WatcherId, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Children => self.child.contains(path, w, STANDARD),
            WatcherType::Data => self.data.contains(path, w, STANDARD),
            WatcherType::Any => {
                self.child
                    .contains(path, w, STANDARD | PERSISTENT | RECURSIVE)
                    || self
                        .data
                        .contains(path, w, STANDARD | PERSISTENT | RECURSIVE)
            }
            WatcherType::Persistent => {
                self.child.contains(path, w, PERSISTENT) || self.data.contains(path, w, PERSISTENT)
            }
            WatcherType::PersistentRecursive => self.data.contains(path, w, RECURSIVE),
        }
    }

    /// Forgets every watch of a watcher (its connection closed).
    pub fn remove_watcher(&mut self, w: WatcherId) {
        self.data.remove_watcher(w);
        self.child.remove_watcher(w);
    }

    /// Paths one watcher (a connection) watches, data and child tables together: what its
    /// end removes, for expiry reports.
    pub fn count_of(&self, w: WatcherId) -> usize {
        [&self.data, &self.child]
            .iter()
            .map(|t| t.by_watcher.get(&w).map_or(0, BTreeSet::len))
            .sum()
    }

    /// Number of (path, watcher) pairs, data and child tables together (`watch_count`).
    pub fn count(&self) -> usize {
        self.data.count() + self.child.count()
    }

    /// Paths watched, per watcher (`wchc`), in order.
    pub fn by_watcher(&self) -> BTreeMap<WatcherId, BTreeSet<String>> {
        let mut out: BTreeMap<WatcherId, BTreeSet<String>> = BTreeMap::new();
        for table in [&self.data, &self.child] {
            for (w, paths) in &table.by_watcher {
                out.entry(*w).or_default().extend(paths.iter().cloned());
            }
        }
        out
    }

    /// Watchers, per path (`wchp`), in order.
    pub fn by_path(&self) -> BTreeMap<String, BTreeSet<WatcherId>> {
        let mut out: BTreeMap<String, BTreeSet<WatcherId>> = BTreeMap::new();
        for table in [&self.data, &self.child] {
            for (p, ws) in &table.by_path {
                out.entry(p.clone()).or_default().extend(ws.keys().copied());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: WatcherId = WatcherId(1);
    const B: WatcherId = WatcherId(2);

    fn watchers(f: &[Fired]) -> Vec<WatcherId> {
        f.iter().map(|x| x.watcher).collect()
    }

    #[test]
    fn one_shot_fires_once() {
        let mut r = WatchRegistry::default();
        r.add_data_watch("/a", A);
        assert_eq!(
            watchers(&r.trigger("/a", EventType::NodeDataChanged)),
            vec![A]
        );
        assert!(r.trigger("/a", EventType::NodeDataChanged).is_empty());
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn delete_fires_data_and_child_watchers_once_each() {
        let mut r = WatchRegistry::default();
        r.add_data_watch("/a", A);
        r.add_child_watch("/a", A);
        r.add_child_watch("/a", B);
        let f = r.trigger("/a", EventType::NodeDeleted);
        assert_eq!(watchers(&f), vec![A, B]);
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn persistent_watch_stays_and_sees_children() {
        let mut r = WatchRegistry::default();
        r.add_persistent("/a", A, false);
        for _ in 0..2 {
            assert_eq!(
                watchers(&r.trigger("/a", EventType::NodeDataChanged)),
                vec![A]
            );
            assert_eq!(
                watchers(&r.trigger("/a", EventType::NodeChildrenChanged)),
                vec![A]
            );
        }
        assert!(r.trigger("/a/b", EventType::NodeCreated).is_empty());
    }

    // Reference: ZOOKEEPER-4475, recursive watches never get NodeChildrenChanged.
    #[test]
    fn recursive_watch_sees_descendants_but_not_child_changes() {
        let mut r = WatchRegistry::default();
        r.add_persistent("/a", A, true);
        assert_eq!(
            watchers(&r.trigger("/a/b/c", EventType::NodeCreated)),
            vec![A]
        );
        assert_eq!(watchers(&r.trigger("/a", EventType::NodeDeleted)), vec![A]);
        assert!(r.trigger("/a", EventType::NodeChildrenChanged).is_empty());
        assert!(r.trigger("/ab", EventType::NodeCreated).is_empty());
        assert!(r.contains("/a", A, WatcherType::PersistentRecursive));
    }

    #[test]
    fn modes_coexist_and_remove_individually() {
        let mut r = WatchRegistry::default();
        r.add_data_watch("/a", A);
        r.add_persistent("/a", A, false);
        r.add_persistent("/a", A, true);
        assert!(r.remove("/a", A, WatcherType::Persistent));
        assert!(!r.remove("/a", A, WatcherType::Persistent));
        assert!(r.contains("/a", A, WatcherType::Data));
        assert!(r.contains("/a", A, WatcherType::PersistentRecursive));
        assert!(r.remove("/a", A, WatcherType::Any));
        assert!(!r.contains("/a", A, WatcherType::Any));
        assert!(!r.remove("/a", A, WatcherType::Children));
        assert_eq!(r.count(), 0);
    }

    #[test]
    fn closing_a_watcher_forgets_everything() {
        let mut r = WatchRegistry::default();
        r.add_data_watch("/a", A);
        r.add_persistent("/", A, true);
        r.add_child_watch("/b", B);
        r.remove_watcher(A);
        assert!(r.trigger("/a", EventType::NodeDataChanged).is_empty());
        assert_eq!(r.count(), 1);
        assert_eq!(r.by_path().len(), 1);
    }
}
