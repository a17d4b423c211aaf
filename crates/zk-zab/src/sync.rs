//! How a leader brings a follower up to date (ZooKeeper's `LearnerHandler.syncFollower`):
//! send the txns it misses (DIFF), tell it to drop txns the leader never committed (TRUNC),
//! both, or send a whole snapshot (SNAP) when the leader's in-memory log no longer reaches
//! back far enough.

use crate::Zxid;

/// What the leader sends a follower before NEWLEADER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPlan {
    /// Send the committed txns after `after` (none when the follower is level).
    Diff { after: Zxid },
    /// The follower has txns past `to` that the leader does not have: drop them.
    Trunc { to: Zxid },
    /// The follower diverged at a txn the leader does not have: drop back to `to`, the last
    /// txn both have, then receive the txns after it.
    TruncThenDiff { to: Zxid },
    /// The follower is too far behind the leader's in-memory log: send a snapshot.
    Snap,
}

/// Chooses the sync for a follower whose log ends at `peer_last`, given the zxids of the
/// leader's in-memory committed log (ascending, possibly empty) and the leader's last zxid.
/// The log covers every committed txn after its first element.
pub fn plan_sync(committed: &[Zxid], leader_last: Zxid, peer_last: Zxid) -> SyncPlan {
    if peer_last == leader_last {
        return SyncPlan::Diff { after: peer_last };
    }
    let (Some(&min), Some(&max)) = (committed.first(), committed.last()) else {
        // No in-memory log: a follower ahead is truncated, one behind gets a snapshot.
        return if peer_last > leader_last {
            SyncPlan::Trunc { to: leader_last }
        } else {
            SyncPlan::Snap
        };
    };
    if peer_last > max {
        return SyncPlan::Trunc { to: max };
    }
    if peer_last < min {
        return SyncPlan::Snap;
    }
    match committed.binary_search(&peer_last) {
        Ok(_) => SyncPlan::Diff { after: peer_last },
        // The follower's last txn is not in the leader's log (it was proposed in an epoch
        // that did not commit it): back to the last common txn, then forward.
        Err(i) => {
            let to = committed[i.saturating_sub(1)];
            if i == 0 {
                SyncPlan::Snap
            } else {
                SyncPlan::TruncThenDiff { to }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(epoch: i64, n: i64) -> Zxid {
        (epoch << 32) | n
    }

    #[test]
    fn the_four_cases() {
        let log = [z(1, 1), z(1, 2), z(1, 3), z(2, 1), z(2, 2)];
        let last = z(2, 2);
        assert_eq!(plan_sync(&log, last, last), SyncPlan::Diff { after: last });
        assert_eq!(
            plan_sync(&log, last, z(1, 2)),
            SyncPlan::Diff { after: z(1, 2) }
        );
        assert_eq!(
            plan_sync(&log, last, z(2, 5)),
            SyncPlan::Trunc { to: z(2, 2) }
        );
        // z(1,4) was proposed in epoch 1 but never committed: back to z(1,3), then DIFF.
        assert_eq!(
            plan_sync(&log, last, z(1, 4)),
            SyncPlan::TruncThenDiff { to: z(1, 3) }
        );
        assert_eq!(plan_sync(&log, last, z(0, 9)), SyncPlan::Snap);
        assert_eq!(plan_sync(&[], last, z(1, 1)), SyncPlan::Snap);
        assert_eq!(plan_sync(&[], last, z(3, 1)), SyncPlan::Trunc { to: last });
    }
}
