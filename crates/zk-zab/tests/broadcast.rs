//! The broadcast phase through its public interface, in a seeded simulation: messages and
//! fsyncs complete after random delays, followers may stop for good. Checked after every
//! step: the leader commits in zxid order without gaps, only txns a quorum holds durably
//! (acks never precede durability), and every follower's commits are a prefix of the
//! leader's.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::Scheduler;

use proptest::prelude::*;
use zk_zab::broadcast::{Follower, Leader, Msg, Output};
use zk_zab::quorum::Quorum;
use zk_zab::{ServerId, Zxid};

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        from: ServerId,
        to: ServerId,
        msg: Msg,
    },
    Persisted {
        at: ServerId,
        zxid: Zxid,
    },
}

struct Sim {
    leader_id: ServerId,
    leader: Leader,
    followers: BTreeMap<ServerId, Follower>,
    stopped: BTreeSet<ServerId>,
    quorum: Quorum,
    sched: Scheduler<Event>,
    durable: BTreeMap<Zxid, BTreeSet<ServerId>>,
    commits: BTreeMap<ServerId, Vec<Zxid>>,
}

impl Sim {
    fn new(seed: u64, n: u64) -> Sim {
        let ids: Vec<ServerId> = (1..=n).collect();
        let quorum = Quorum::majority(ids.iter().copied());
        let mut leader = Leader::new(1, quorum.clone(), 1, 0);
        let mut followers = BTreeMap::new();
        for &id in &ids[1..] {
            leader.add_follower(id);
            followers.insert(id, Follower::new(1, 0, 0));
        }
        Sim {
            leader_id: 1,
            leader,
            followers,
            stopped: BTreeSet::new(),
            quorum,
            sched: Scheduler::new(seed),
            durable: BTreeMap::new(),
            commits: BTreeMap::new(),
        }
    }

    fn schedule(&mut self, e: Event) {
        let lane = match &e {
            Event::Deliver { from, to, .. } => (*from, *to),
            Event::Persisted { at, .. } => (*at, *at),
        };
        self.sched.schedule(lane, 20, e);
    }

    fn outputs(&mut self, at: ServerId, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Persist(p) => self.schedule(Event::Persisted { at, zxid: p.zxid }),
                Output::Send { to, msg } => {
                    if let Msg::Ack(z) = msg {
                        assert!(
                            self.durable.get(&z).is_some_and(|d| d.contains(&at)),
                            "{at} acked {z:#x} before it was durable"
                        );
                    }
                    self.schedule(Event::Deliver { from: at, to, msg })
                }
                Output::Commit(z) => {
                    let list = self.commits.entry(at).or_default();
                    if let Some(&prev) = list.last() {
                        assert_eq!(z, prev + 1, "{at} commits in order without gaps");
                    }
                    list.push(z);
                    if at == self.leader_id {
                        let holders = self.durable.get(&z).cloned().unwrap_or_default();
                        assert!(
                            self.quorum.contains_quorum(&holders),
                            "{z:#x} committed while only {holders:?} hold it"
                        );
                    }
                }
                Output::Resync { reason } => panic!("{at} resync: {reason}"),
            }
        }
    }

    fn propose(&mut self, data: u8) {
        let mut out = Vec::new();
        self.leader.propose(vec![data], &mut out).unwrap();
        self.outputs(self.leader_id, out);
    }

    fn step(&mut self) -> bool {
        let Some(e) = self.sched.pop() else {
            return false;
        };
        let mut out = Vec::new();
        let who = match e {
            Event::Deliver { from, to, msg } => {
                if self.stopped.contains(&to) {
                    return true;
                }
                if to == self.leader_id {
                    self.leader.receive(from, msg, &mut out);
                } else if let Some(f) = self.followers.get_mut(&to) {
                    f.receive(from, msg, &mut out);
                }
                to
            }
            Event::Persisted { at, zxid } => {
                if self.stopped.contains(&at) {
                    return true;
                }
                self.durable.entry(zxid).or_default().insert(at);
                if at == self.leader_id {
                    self.leader.persisted(zxid, &mut out);
                } else if let Some(f) = self.followers.get_mut(&at) {
                    f.persisted(zxid, &mut out);
                }
                at
            }
        };
        self.outputs(who, out);
        true
    }
}

#[test]
fn three_servers_commit_everything_in_order() {
    let mut sim = Sim::new(42, 3);
    for i in 0..50 {
        sim.propose(i);
        for _ in 0..3 {
            sim.step();
        }
    }
    while sim.step() {}
    let leader = &sim.commits[&1];
    assert_eq!(leader.len(), 50);
    assert_eq!(sim.commits[&2], *leader);
    assert_eq!(sim.commits[&3], *leader);
    assert_eq!(sim.leader.last_committed(), (1 << 32) | 50);
}

#[test]
fn nothing_commits_without_a_quorum() {
    let mut sim = Sim::new(7, 3);
    sim.stopped.extend([2, 3]);
    for i in 0..5 {
        sim.propose(i);
    }
    while sim.step() {}
    assert!(!sim.commits.contains_key(&1), "one of three cannot commit");
    assert_eq!(sim.leader.outstanding().count(), 5);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn commits_are_ordered_durable_and_agreed(
        seed in any::<u64>(),
        five in any::<bool>(),
        proposals in 1usize..60,
        stop_after in prop::collection::vec(0usize..200, 0..2),
    ) {
        let n = if five { 5 } else { 3 };
        let mut sim = Sim::new(seed, n);
        let mut steps = 0usize;
        let mut left = proposals;
        loop {
            if left > 0 && sim.sched.rand(3) == 0 {
                sim.propose((left % 251) as u8);
                left -= 1;
            }
            // Stop up to a minority of followers at chosen moments.
            for (i, &at) in stop_after.iter().enumerate() {
                let victim = 2 + i as u64;
                if steps == at && (sim.stopped.len() as u64 + 1) * 2 < n {
                    sim.stopped.insert(victim);
                }
            }
            steps += 1;
            if !sim.step() && left == 0 {
                break;
            }
        }
        // A quorum stayed up: everything proposed is committed by the leader.
        prop_assert_eq!(sim.commits.get(&1).map_or(0, Vec::len), proposals);
        let leader = sim.commits[&1].clone();
        for (id, list) in &sim.commits {
            prop_assert!(leader.starts_with(list), "{} is a prefix of the leader", id);
        }
        for id in 2..=n {
            if !sim.stopped.contains(&id) {
                prop_assert_eq!(sim.commits.get(&id), Some(&leader));
            }
        }
    }
}
