//! When to take a snapshot (`SyncRequestProcessor.shouldSnapshot`): after a number of txns
//! drawn at random from `[snapCount/2 + 1, snapCount]`, or once the log since the last
//! snapshot exceeds `snapSizeLimitInKb`, so the members of an ensemble do not all snapshot
//! at the same moment. The randomness is an input: the caller passes a value it drew.

/// ZooKeeper's default `snapCount`.
pub const SNAP_COUNT_DEFAULT: u64 = 100_000;
/// ZooKeeper's default `snapSizeLimitInKb` (4 GiB).
pub const SNAP_SIZE_LIMIT_BYTES_DEFAULT: u64 = 4 * 1024 * 1024 * 1024;

/// Counts txns and bytes since the last snapshot and says when the next one is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapTrigger {
    snap_count: u64,
    size_limit_bytes: u64,
    /// The txn count (beyond `snap_count / 2`) this round waits for.
    roll: u64,
    txns: u64,
    bytes: u64,
}

impl SnapTrigger {
    /// A trigger for `snap_count` txns and `size_limit_bytes` of log (0 disables the size
    /// rule); `random` is any value the caller drew, reduced to this round's roll.
    pub fn new(snap_count: u64, size_limit_bytes: u64, random: u64) -> SnapTrigger {
        let snap_count = snap_count.max(2);
        SnapTrigger {
            snap_count,
            size_limit_bytes,
            roll: random % (snap_count / 2),
            txns: 0,
            bytes: 0,
        }
    }

    /// Counts one logged txn of `len` bytes; true when a snapshot is due now.
    pub fn record(&mut self, len: u64) -> bool {
        self.txns += 1;
        self.bytes += len;
        self.txns > self.snap_count / 2 + self.roll
            || (self.size_limit_bytes > 0 && self.bytes > self.size_limit_bytes)
    }

    /// Starts a new round after a snapshot, with a fresh random roll.
    pub fn reset(&mut self, random: u64) {
        self.roll = random % (self.snap_count / 2);
        self.txns = 0;
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_within_half_to_full_snap_count() {
        for random in [0, 1, 7, 49, 50, 12345] {
            let mut t = SnapTrigger::new(100, 0, random);
            let n = (1..=200).find(|_| t.record(10)).unwrap();
            assert!((51..=100).contains(&n), "random {random}: fired after {n}");
        }
    }

    #[test]
    fn size_limit_fires_early_and_reset_restarts() {
        let mut t = SnapTrigger::new(1_000_000, 1000, 3);
        assert!(!t.record(600));
        assert!(t.record(600));
        t.reset(3);
        assert!(!t.record(600));
    }
}
