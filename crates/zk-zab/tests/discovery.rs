//! The discovery / sync handshake through its public interface, in a seeded simulation with
//! FIFO links and slow disks. Checked on every output: no message goes out before the epoch
//! it depends on is durable, the new epoch is above every accepted epoch of the quorum, the
//! leader gives up exactly when a follower is ahead of it, and latecomers are synced.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use common::Scheduler;

use proptest::prelude::*;
use zk_zab::discovery::{FollowerHandshake, Input, LeaderHandshake, Msg, Output};
use zk_zab::quorum::Quorum;
use zk_zab::sync::SyncPlan;
use zk_zab::{ServerId, Zxid};

#[derive(Debug, Clone, Copy, Default)]
struct Disk {
    accepted: u32,
    current: u32,
    last_zxid: Zxid,
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        from: ServerId,
        to: ServerId,
        msg: Msg,
    },
    /// The sync data (DIFF/TRUNC/SNAP) arriving ahead of NEWLEADER.
    SyncData {
        to: ServerId,
        leader_last: Zxid,
        plan: SyncPlan,
    },
    Accepted {
        at: ServerId,
        epoch: u32,
    },
    Current {
        at: ServerId,
        epoch: u32,
    },
}

struct Sim {
    leader_id: ServerId,
    leader: LeaderHandshake,
    leader_last: Zxid,
    followers: BTreeMap<ServerId, FollowerHandshake>,
    disks: BTreeMap<ServerId, Disk>,
    sched: Scheduler<Event>,
    established: BTreeMap<ServerId, u32>,
    synced: Vec<ServerId>,
    abandoned: Vec<(ServerId, &'static str)>,
}

const INIT_LIMIT: u64 = 10_000;

impl Sim {
    fn new(seed: u64, disks: &[(ServerId, Disk)]) -> Sim {
        let leader_id = disks[0].0;
        let l = disks[0].1;
        let quorum = Quorum::majority(disks.iter().map(|(id, _)| *id));
        let committed: Vec<Zxid> = (1..=(l.last_zxid & 0xffff_ffff))
            .map(|n| (l.last_zxid & !0xffff_ffff) | n)
            .collect();
        let leader = LeaderHandshake::new(
            leader_id,
            quorum,
            l.accepted,
            l.current,
            l.last_zxid,
            committed,
            0,
            INIT_LIMIT,
        );
        Sim {
            leader_id,
            leader,
            leader_last: l.last_zxid,
            followers: BTreeMap::new(),
            disks: disks.iter().copied().collect(),
            sched: Scheduler::new(seed),
            established: BTreeMap::new(),
            synced: Vec::new(),
            abandoned: Vec::new(),
        }
    }

    fn schedule(&mut self, lane: (ServerId, ServerId), e: Event) {
        self.sched.schedule(lane, 30, e);
    }

    fn start_follower(&mut self, id: ServerId) {
        let d = self.disks[&id];
        let mut out = Vec::new();
        let f = FollowerHandshake::start(
            self.leader_id,
            d.accepted,
            d.current,
            d.last_zxid,
            self.sched.now,
            INIT_LIMIT,
            &mut out,
        );
        self.followers.insert(id, f);
        self.outputs(id, out);
    }

    fn outputs(&mut self, at: ServerId, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    let disk = self.disks[&at];
                    match msg {
                        Msg::LeaderInfo { new_epoch } => {
                            assert_eq!(
                                disk.accepted, new_epoch,
                                "LEADERINFO before the epoch is durable"
                            )
                        }
                        Msg::AckEpoch { .. } => {
                            assert!(
                                disk.accepted >= self.leader.new_epoch(),
                                "ACKEPOCH before the epoch is durable"
                            )
                        }
                        Msg::AckNewLeader { zxid } => {
                            assert_eq!(
                                i64::from(disk.current) << 32,
                                zxid,
                                "NEWLEADER acked before the current epoch is durable"
                            )
                        }
                        _ => {}
                    }
                    self.schedule((at, to), Event::Deliver { from: at, to, msg });
                }
                Output::PersistAcceptedEpoch(epoch) => {
                    self.schedule((at, at), Event::Accepted { at, epoch })
                }
                Output::PersistCurrentEpoch(epoch) => {
                    self.schedule((at, at), Event::Current { at, epoch })
                }
                Output::Sync { to, plan, .. } => {
                    let leader_last = self.leader_last;
                    self.schedule(
                        (at, to),
                        Event::SyncData {
                            to,
                            leader_last,
                            plan,
                        },
                    )
                }
                Output::Established { epoch } => {
                    assert_eq!(
                        self.disks[&at].current, epoch,
                        "established before the epoch is durable"
                    );
                    assert!(self.established.insert(at, epoch).is_none());
                }
                Output::FollowerSynced { id } => self.synced.push(id),
                Output::Abandon { reason } => self.abandoned.push((at, reason)),
            }
        }
    }

    fn input(&mut self, to: ServerId, input: Input) {
        let mut out = Vec::new();
        if to == self.leader_id {
            self.leader.step(input, &mut out);
        } else if let Some(f) = self.followers.get_mut(&to) {
            f.step(input, &mut out);
        }
        self.outputs(to, out);
    }

    fn run(&mut self) {
        while let Some(e) = self.sched.pop() {
            match e {
                Event::Deliver { from, to, msg } => self.input(to, Input::Msg { from, msg }),
                Event::SyncData {
                    to,
                    leader_last,
                    plan,
                } => {
                    let d = self.disks.get_mut(&to).unwrap();
                    d.last_zxid = match plan {
                        SyncPlan::Trunc { to } => to,
                        _ => leader_last,
                    };
                    let z = d.last_zxid;
                    if let Some(f) = self.followers.get_mut(&to) {
                        f.synced_to(z);
                    }
                }
                Event::Accepted { at, epoch } => {
                    self.disks.get_mut(&at).unwrap().accepted = epoch;
                    self.input(at, Input::AcceptedEpochPersisted);
                }
                Event::Current { at, epoch } => {
                    self.disks.get_mut(&at).unwrap().current = epoch;
                    self.input(at, Input::CurrentEpochPersisted);
                }
            }
        }
    }
}

fn disk(accepted: u32, current: u32, counter: i64) -> Disk {
    Disk {
        accepted,
        current,
        last_zxid: (i64::from(current) << 32) | counter,
    }
}

#[test]
fn three_servers_agree_on_a_new_epoch_above_all_accepted_ones() {
    let mut sim = Sim::new(
        1,
        &[(1, disk(2, 2, 9)), (2, disk(3, 2, 5)), (3, disk(1, 1, 4))],
    );
    sim.start_follower(2);
    sim.start_follower(3);
    sim.run();
    assert!(sim.abandoned.is_empty(), "{:?}", sim.abandoned);
    assert_eq!(sim.established.len(), 3, "{:?}", sim.established);
    // The epoch is one above every accepted epoch of the first quorum (the leader and
    // whichever follower spoke first): 3 or 4, the same everywhere.
    let epoch = sim.established[&1];
    assert!(epoch == 3 || epoch == 4, "{epoch}");
    assert!(sim.established.values().all(|e| *e == epoch));
    for (id, d) in &sim.disks {
        assert_eq!((d.accepted, d.current), (epoch, epoch), "server {id}");
        assert_eq!(
            d.last_zxid,
            (2 << 32) | 9,
            "server {id} is level with the leader"
        );
    }
    assert_eq!(sim.synced.len(), 2);
}

#[test]
fn a_follower_ahead_of_the_leader_is_left_out() {
    // Server 2 holds txns the leader lacks: it is left out, as ZooKeeper's leader drops
    // that learner. Server 3 is behind, so the leader and 3 are a quorum without 2.
    let mut sim = Sim::new(
        2,
        &[(1, disk(2, 2, 3)), (2, disk(2, 2, 8)), (3, disk(2, 2, 1))],
    );
    sim.start_follower(2);
    sim.start_follower(3);
    sim.run();
    assert_eq!(sim.established.get(&1), Some(&3), "{:?}", sim.established);
    assert_eq!(sim.established.get(&3), Some(&3));
    assert!(
        !sim.established.contains_key(&2),
        "never with the one ahead"
    );
    assert_eq!(sim.disks[&2].last_zxid, (2 << 32) | 8, "not truncated");
    assert!(!sim.synced.contains(&2));
}

#[test]
fn a_leader_behind_a_quorum_never_establishes() {
    // Both followers hold txns the leader lacks: no quorum it may sync, so it never
    // establishes and gives up at initLimit.
    let mut sim = Sim::new(
        2,
        &[(1, disk(2, 2, 3)), (2, disk(2, 2, 8)), (3, disk(2, 2, 5))],
    );
    sim.start_follower(2);
    sim.start_follower(3);
    sim.run();
    assert!(sim.established.is_empty(), "{:?}", sim.established);
    assert!(sim.synced.is_empty());
}

#[test]
fn a_latecomer_is_synced_after_the_leader_is_established() {
    let mut sim = Sim::new(
        3,
        &[(1, disk(5, 5, 7)), (2, disk(5, 5, 7)), (3, disk(4, 4, 2))],
    );
    sim.start_follower(2);
    sim.run();
    assert_eq!(sim.established.get(&1), Some(&6));
    sim.start_follower(3);
    sim.run();
    assert_eq!(sim.established.get(&3), Some(&6));
    assert_eq!(sim.disks[&3].last_zxid, (5 << 32) | 7);
    assert_eq!(sim.synced, [2, 3]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_handshake_is_safe_for_any_epochs_and_logs(
        seed in any::<u64>(),
        five in any::<bool>(),
        states in prop::collection::vec((0u32..4, 0u32..4, 0i64..6), 5),
    ) {
        let n = if five { 5 } else { 3 };
        let disks: Vec<(ServerId, Disk)> = (0..n)
            .map(|i| {
                let (a, c, z) = states[i];
                let current = a.min(c);
                (i as ServerId + 1, disk(a.max(current), current, z))
            })
            .collect();
        let leader_key = (disks[0].1.current, disks[0].1.last_zxid);
        let ahead = disks[1..].iter().any(|(_, d)| (d.current, d.last_zxid) > leader_key);
        // A latecomer that promised an epoch above the chosen one makes the leader step
        // down (so the next epoch goes above it); the chosen epoch is at least one above the
        // leader's accepted epoch, so only a follower two above can do that.
        let promised = disks[1..].iter().any(|(_, d)| d.accepted > disks[0].1.accepted + 1);
        let mut sim = Sim::new(seed, &disks);
        for (id, _) in &disks[1..] {
            sim.start_follower(*id);
        }
        sim.run();
        let stepped_down = sim
            .abandoned
            .iter()
            .any(|(id, why)| *id == 1 && why.contains("accepted a later epoch"));
        prop_assert!(!stepped_down || promised, "stepped down for no promise: {:?}", sim.abandoned);
        if sim.established.contains_key(&1) && !stepped_down {
            let epoch = sim.established[&1];
            prop_assert!(epoch > disks[0].1.accepted, "above the leader's accepted epoch");
            for (id, e) in &sim.established {
                prop_assert_eq!(*e, epoch, "server {}", id);
                // Nobody goes back to an epoch older than one it accepted.
                let before = disks.iter().find(|(i, _)| i == id).unwrap().1.accepted;
                prop_assert!(epoch >= before, "server {} accepted {} before", id, before);
                prop_assert_eq!(sim.disks[id].last_zxid, disks[0].1.last_zxid);
                prop_assert_eq!(
                    (sim.disks[id].accepted, sim.disks[id].current),
                    (epoch, epoch)
                );
            }
        } else {
            prop_assert!(ahead || stepped_down, "gave up without a reason: {:?}", sim.abandoned);
        }
        if !ahead && !stepped_down {
            // Everyone whose accepted epoch is not above the leader's chosen one joins.
            let epoch = sim.established[&1];
            for (id, d) in &disks {
                if d.accepted <= epoch {
                    prop_assert!(
                        sim.established.contains_key(id),
                        "{} left out: {:?}",
                        id,
                        sim.abandoned
                    );
                }
            }
        }
    }
}

#[test]
fn without_followers_the_leader_gives_up_after_init_limit() {
    let mut sim = Sim::new(
        4,
        &[(1, disk(1, 1, 1)), (2, disk(1, 1, 1)), (3, disk(1, 1, 1))],
    );
    sim.input(
        1,
        Input::Tick {
            now: INIT_LIMIT - 1,
        },
    );
    assert!(sim.abandoned.is_empty());
    sim.input(
        1,
        Input::Tick {
            now: INIT_LIMIT + 1,
        },
    );
    assert_eq!(sim.abandoned.len(), 1);
    assert!(sim.abandoned[0].1.contains("initLimit"));
    // A follower whose leader never answers gives up too.
    sim.start_follower(2);
    sim.sched.clear();
    sim.input(
        2,
        Input::Tick {
            now: 2 * INIT_LIMIT + 10,
        },
    );
    assert!(sim.abandoned.iter().any(|(id, _)| *id == 2));
}
