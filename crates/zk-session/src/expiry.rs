//! Deadlines grouped into tick-wide buckets (ZooKeeper's `ExpiryQueue`): rounding every
//! deadline up to a tick boundary means one expiry pass per tick handles a whole batch, and
//! a touch that lands in the same bucket costs nothing.

use std::collections::{BTreeMap, BTreeSet};

/// Session ids by the bucket (a multiple of the interval, in ms) in which they expire.
/// Sorted maps only, so what comes out never depends on hashing.
#[derive(Debug, Clone)]
pub(crate) struct ExpiryQueue {
    /// The bucket width (`tickTime`), positive.
    interval_ms: u64,
    /// Bucket -> ids expiring there. Never holds an empty set.
    buckets: BTreeMap<u64, BTreeSet<i64>>,
}

impl ExpiryQueue {
    /// An empty queue with buckets `interval_ms` wide.
    pub(crate) fn new(interval_ms: u64) -> ExpiryQueue {
        assert!(interval_ms > 0, "expiry interval must be positive");
        ExpiryQueue {
            interval_ms,
            buckets: BTreeMap::new(),
        }
    }

    /// The bucket of a deadline: the first multiple of the interval strictly after `t`
    /// (`ExpiryQueue.roundToNextInterval`). Saturates instead of overflowing.
    pub(crate) fn bucket(&self, t: u64) -> u64 {
        (t / self.interval_ms)
            .saturating_add(1)
            .saturating_mul(self.interval_ms)
    }

    /// Puts `id` in `bucket`. It must not be in any bucket yet.
    pub(crate) fn insert(&mut self, id: i64, bucket: u64) {
        let fresh = self.buckets.entry(bucket).or_default().insert(id);
        assert!(fresh, "session 0x{id:x} already in bucket {bucket}");
    }

    /// Takes `id` out of `bucket`, where it must be.
    pub(crate) fn remove(&mut self, id: i64, bucket: u64) {
        let set = self.buckets.get_mut(&bucket);
        let removed = set.map(|s| s.remove(&id)).unwrap_or(false);
        assert!(removed, "session 0x{id:x} missing from bucket {bucket}");
        if self.buckets.get(&bucket).is_some_and(BTreeSet::is_empty) {
            self.buckets.remove(&bucket);
        }
    }

    /// Moves `id` from bucket `from` to bucket `to` (nothing to do when they are equal).
    pub(crate) fn update(&mut self, id: i64, from: u64, to: u64) {
        if from != to {
            self.remove(id, from);
            self.insert(id, to);
        }
    }

    /// Removes and returns every id whose bucket is at or before `now_ms`, earliest bucket
    /// first and by id within a bucket.
    pub(crate) fn poll(&mut self, now_ms: u64) -> Vec<(u64, i64)> {
        let mut out = Vec::new();
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now_ms {
                break;
            }
            let bucket = *entry.key();
            out.extend(entry.remove().into_iter().map(|id| (bucket, id)));
        }
        out
    }

    /// The earliest non-empty bucket, if any.
    pub(crate) fn next_bucket(&self) -> Option<u64> {
        self.buckets.keys().next().copied()
    }

    /// Every (bucket, id) pair, for consistency checks.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (u64, i64)> + '_ {
        self.buckets
            .iter()
            .flat_map(|(&b, ids)| ids.iter().map(move |&id| (b, id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference: ExpiryQueue.roundToNextInterval — (time / interval + 1) * interval.
    #[test]
    fn buckets_round_up_strictly() {
        let q = ExpiryQueue::new(2000);
        assert_eq!(q.bucket(0), 2000);
        assert_eq!(q.bucket(1999), 2000);
        assert_eq!(q.bucket(2000), 4000);
        assert_eq!(q.bucket(2001), 4000);
        assert_eq!(q.bucket(u64::MAX), u64::MAX);
    }

    #[test]
    fn poll_takes_due_buckets_in_order() {
        let mut q = ExpiryQueue::new(10);
        q.insert(5, 20);
        q.insert(3, 20);
        q.insert(9, 10);
        q.insert(1, 30);
        assert_eq!(q.next_bucket(), Some(10));
        assert_eq!(q.poll(9), vec![]);
        assert_eq!(q.poll(25), vec![(10, 9), (20, 3), (20, 5)]);
        assert_eq!(q.next_bucket(), Some(30));
        q.update(1, 30, 40);
        assert_eq!(q.entries().collect::<Vec<_>>(), vec![(40, 1)]);
        q.remove(1, 40);
        assert_eq!(q.next_bucket(), None);
    }

    #[test]
    #[should_panic(expected = "missing from bucket")]
    fn removing_an_absent_id_is_a_bug() {
        let mut q = ExpiryQueue::new(10);
        q.insert(1, 10);
        q.remove(2, 10);
    }
}
