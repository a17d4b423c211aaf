//! Quorum verification: which sets of servers may decide. ZooKeeper's default is a majority
//! of the voting members; `group.N` / `weight.N` lines configure hierarchical quorums (a
//! majority of groups, each by a majority of its weight).

use std::collections::{BTreeMap, BTreeSet};

use crate::ServerId;

/// The voting configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quorum {
    /// More than half of these voters.
    Majority(BTreeSet<ServerId>),
    /// More than half of the groups (with non-zero weight), each with more than half of its
    /// weight present. A voter with weight 0 never counts (and never leads).
    Hierarchical {
        groups: Vec<BTreeSet<ServerId>>,
        weights: BTreeMap<ServerId, u64>,
    },
    /// Both configurations at once, while a reconfiguration is not settled: a set decides
    /// only if it is a quorum of each.
    Joint(Box<Quorum>, Box<Quorum>),
}

impl Quorum {
    /// A plain majority over `voters`.
    pub fn majority(voters: impl IntoIterator<Item = ServerId>) -> Quorum {
        Quorum::Majority(voters.into_iter().collect())
    }

    /// Whether `id` has a vote.
    pub fn is_voter(&self, id: ServerId) -> bool {
        match self {
            Quorum::Majority(v) => v.contains(&id),
            Quorum::Hierarchical { groups, .. } => groups.iter().any(|g| g.contains(&id)),
            Quorum::Joint(a, b) => a.is_voter(id) || b.is_voter(id),
        }
    }

    /// A voter's weight (1 for majorities).
    pub fn weight(&self, id: ServerId) -> u64 {
        match self {
            Quorum::Majority(v) => u64::from(v.contains(&id)),
            Quorum::Hierarchical { weights, groups } => {
                if groups.iter().any(|g| g.contains(&id)) {
                    weights.get(&id).copied().unwrap_or(1)
                } else {
                    0
                }
            }
            Quorum::Joint(a, b) => a.weight(id).max(b.weight(id)),
        }
    }

    /// All voters.
    pub fn voters(&self) -> BTreeSet<ServerId> {
        match self {
            Quorum::Majority(v) => v.clone(),
            Quorum::Hierarchical { groups, .. } => groups.iter().flatten().copied().collect(),
            Quorum::Joint(a, b) => a.voters().union(&b.voters()).copied().collect(),
        }
    }

    /// Whether `ids` form a quorum.
    pub fn contains_quorum(&self, ids: &BTreeSet<ServerId>) -> bool {
        match self {
            Quorum::Majority(voters) => {
                let present = ids.iter().filter(|i| voters.contains(i)).count();
                present * 2 > voters.len()
            }
            Quorum::Hierarchical { groups, weights } => {
                let w = |i: &ServerId| weights.get(i).copied().unwrap_or(1);
                let live_groups: Vec<&BTreeSet<ServerId>> = groups
                    .iter()
                    .filter(|g| g.iter().map(w).sum::<u64>() > 0)
                    .collect();
                let winning = live_groups
                    .iter()
                    .filter(|g| {
                        let total: u64 = g.iter().map(w).sum();
                        let here: u64 = g.iter().filter(|i| ids.contains(i)).map(w).sum();
                        here * 2 > total
                    })
                    .count();
                winning * 2 > live_groups.len()
            }
            Quorum::Joint(a, b) => a.contains_quorum(ids) && b.contains_quorum(ids),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[ServerId]) -> BTreeSet<ServerId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn joint_quorums_need_both() {
        let q = Quorum::Joint(
            Box::new(Quorum::majority([1, 2, 3])),
            Box::new(Quorum::majority([3, 4, 5])),
        );
        assert!(!q.contains_quorum(&set(&[1, 2])));
        assert!(!q.contains_quorum(&set(&[4, 5])));
        assert!(q.contains_quorum(&set(&[1, 3, 4])));
        assert!(q.is_voter(5) && q.is_voter(1) && !q.is_voter(6));
        assert_eq!(q.voters().len(), 5);
    }

    #[test]
    fn majorities() {
        let q = Quorum::majority([1, 2, 3]);
        assert!(!q.contains_quorum(&set(&[1])));
        assert!(q.contains_quorum(&set(&[1, 3])));
        assert!(
            !q.contains_quorum(&set(&[3, 4, 5])),
            "non-voters do not count"
        );
        let q = Quorum::majority([1, 2, 3, 4]);
        assert!(!q.contains_quorum(&set(&[1, 2])), "half is not a majority");
        assert!(q.contains_quorum(&set(&[1, 2, 4])));
    }

    #[test]
    fn hierarchical_groups_and_zero_weights() {
        let q = Quorum::Hierarchical {
            groups: vec![set(&[1, 2, 3]), set(&[4, 5, 6]), set(&[7, 8, 9])],
            weights: [(3, 0), (6, 0), (9, 0)].into_iter().collect(),
        };
        assert!(
            q.contains_quorum(&set(&[1, 2, 4, 5])),
            "two of three groups"
        );
        assert!(
            !q.contains_quorum(&set(&[1, 2, 3, 4])),
            "one group and a half"
        );
        assert!(
            !q.contains_quorum(&set(&[1, 4, 7, 3, 6, 9])),
            "weight 0 does not count"
        );
        assert_eq!(q.weight(3), 0);
        assert_eq!(q.weight(1), 1);
        assert_eq!(q.weight(42), 0);
    }
}
