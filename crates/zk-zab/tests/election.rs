//! Fast leader election driven through its public interface by a small deterministic
//! network: seeded delays, dropped messages, servers that are down, a late joiner, an
//! observer. Properties: every live server decides on a live leader; on reliable links all
//! agree, exactly one leads and it is the best live candidate; a server joining an
//! established ensemble follows its leader.

#![allow(clippy::unwrap_used)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use proptest::prelude::*;
use zk_zab::election::{Election, Input, Member, Notification, Output, PeerState, Timing};
use zk_zab::quorum::Quorum;
use zk_zab::{Millis, ServerId, Zxid};

struct Net {
    nodes: BTreeMap<ServerId, Election>,
    decided: BTreeMap<ServerId, (ServerId, u64, PeerState)>,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    msgs: BTreeMap<u64, (ServerId, ServerId, Notification)>,
    seq: u64,
    now: Millis,
    rng: u64,
    down: BTreeSet<ServerId>,
    drop_percent: u64,
}

impl Net {
    fn new(seed: u64) -> Net {
        Net {
            nodes: BTreeMap::new(),
            decided: BTreeMap::new(),
            queue: BinaryHeap::new(),
            msgs: BTreeMap::new(),
            seq: 0,
            now: 0,
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            down: BTreeSet::new(),
            drop_percent: 0,
        }
    }

    fn rand(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    fn add(&mut self, id: ServerId, quorum: &Quorum, all: &[ServerId], zxid: Zxid, epoch: u32) {
        // Resends back off to 2 s rather than ZooKeeper's 60 s: with a fifth of the
        // notifications lost, a 60 s back-off leaves a late server only a handful of tries in
        // the two simulated minutes (zkd also repeats votes whenever a link comes up).
        let member = Member {
            me: id,
            quorum: quorum.clone(),
            peers: all.to_vec(),
            timing: Timing {
                resend_max: 2_000,
                ..Timing::default()
            },
        };
        let e = Election::new(&member, zxid, epoch, 0, self.now);
        self.nodes.insert(id, e);
    }

    fn start(&mut self, id: ServerId) {
        let mut out = Vec::new();
        if let Some(e) = self.nodes.get_mut(&id) {
            e.start(&mut out);
        }
        self.handle(id, out);
    }

    fn handle(&mut self, from: ServerId, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send { to, n } => {
                    if self.rand(100) < self.drop_percent {
                        continue;
                    }
                    let at = self.now + 1 + self.rand(50);
                    self.seq += 1;
                    self.msgs.insert(self.seq, (from, to, n));
                    self.queue.push(Reverse((at, self.seq)));
                }
                Output::Decided {
                    leader,
                    election_epoch,
                    state,
                } => {
                    assert!(
                        self.decided
                            .insert(from, (leader, election_epoch, state))
                            .is_none(),
                        "decides once"
                    );
                }
            }
        }
    }

    /// Runs until `until` (simulated ms).
    fn run(&mut self, until: Millis) {
        while self.now < until {
            let next_msg = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_tick = self.now + 10;
            match next_msg {
                Some(t) if t <= next_tick => {
                    let Some(Reverse((t, seq))) = self.queue.pop() else {
                        break;
                    };
                    self.now = t;
                    let Some((from, to, n)) = self.msgs.remove(&seq) else {
                        continue;
                    };
                    if self.down.contains(&to) || self.down.contains(&from) {
                        continue;
                    }
                    let mut out = Vec::new();
                    if let Some(e) = self.nodes.get_mut(&to) {
                        e.step(Input::Msg { from, n }, &mut out);
                    }
                    self.handle(to, out);
                }
                _ => {
                    self.now = next_tick;
                    let ids: Vec<ServerId> = self.nodes.keys().copied().collect();
                    for id in ids {
                        if self.down.contains(&id) {
                            continue;
                        }
                        let mut out = Vec::new();
                        if let Some(e) = self.nodes.get_mut(&id) {
                            e.step(Input::Tick { now: self.now }, &mut out);
                        }
                        self.handle(id, out);
                    }
                }
            }
        }
    }
}

fn vote_key(zxid: Zxid, epoch: u32, id: ServerId) -> (u32, Zxid, ServerId) {
    (epoch, zxid, id)
}

#[test]
fn three_servers_elect_the_most_up_to_date() {
    let all = [1, 2, 3];
    let q = Quorum::majority(all);
    let mut net = Net::new(7);
    // Server 2 has the longest log; 3 has the highest id.
    for (id, zxid) in [(1, 0x1_0000_0005), (2, 0x1_0000_0009), (3, 0x1_0000_0007)] {
        net.add(id, &q, &all, zxid, 1);
    }
    for id in all {
        net.start(id);
    }
    net.run(5_000);
    assert_eq!(net.decided.len(), 3, "{:?}", net.decided);
    for (id, (leader, _, state)) in &net.decided {
        assert_eq!(*leader, 2);
        let expect = if *id == 2 {
            PeerState::Leading
        } else {
            PeerState::Following
        };
        assert_eq!(*state, expect);
    }
}

#[test]
fn a_later_epoch_beats_a_longer_log() {
    let all = [1, 2, 3];
    let q = Quorum::majority(all);
    let mut net = Net::new(3);
    net.add(1, &q, &all, 0x2_0000_0001, 2);
    net.add(2, &q, &all, 0x1_0000_0fff, 1);
    net.add(3, &q, &all, 0x1_0000_0fff, 1);
    for id in all {
        net.start(id);
    }
    net.run(5_000);
    assert!(
        net.decided.values().all(|(l, _, _)| *l == 1),
        "{:?}",
        net.decided
    );
}

#[test]
fn a_server_joining_an_established_ensemble_follows_its_leader() {
    let all = [1, 2, 3];
    let q = Quorum::majority(all);
    let mut net = Net::new(11);
    net.add(1, &q, &all, 5, 0);
    net.add(2, &q, &all, 9, 0);
    net.add(3, &q, &all, 0, 0);
    net.down.insert(3);
    net.start(1);
    net.start(2);
    net.run(5_000);
    assert_eq!(net.decided.get(&2).map(|d| d.0), Some(2));
    assert_eq!(net.decided.get(&1).map(|d| d.0), Some(2));
    // Server 3 comes up with an empty log much later and starts its own round.
    net.down.remove(&3);
    net.start(3);
    net.run(10_000);
    assert_eq!(
        net.decided.get(&3),
        Some(&(2, net.decided[&2].1, PeerState::Following)),
        "joins the existing leader"
    );
}

#[test]
fn an_observer_learns_the_leader_without_voting() {
    let voters = [1, 2, 3];
    let all = [1, 2, 3, 4];
    let q = Quorum::majority(voters);
    let mut net = Net::new(5);
    for id in voters {
        net.add(id, &q, &all, 10 + id as Zxid, 0);
    }
    // The observer has the longest log but cannot lead.
    net.add(4, &q, &all, 1_000, 0);
    for id in all {
        net.start(id);
    }
    net.run(10_000);
    assert_eq!(
        net.decided.get(&4).map(|d| (d.0, d.2)),
        Some((3, PeerState::Observing))
    );
    assert!(voters.iter().all(|v| net.decided[v].0 == 3));
}

#[test]
fn no_quorum_no_leader() {
    let all = [1, 2, 3, 4, 5];
    let q = Quorum::majority(all);
    let mut net = Net::new(9);
    for id in all {
        net.add(id, &q, &all, id as Zxid, 0);
    }
    net.down.extend([3, 4, 5]);
    net.start(1);
    net.start(2);
    net.run(20_000);
    assert!(
        net.decided.is_empty(),
        "two of five cannot elect: {:?}",
        net.decided
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any seed, logs, epochs and a minority down: every decision names a live leader. On
    /// reliable links (ZooKeeper's TCP, delays under the finalize wait) the live servers all
    /// decide, agree on one leader, exactly one leads, and it is the best live candidate.
    /// With 20% of notifications lost a server may settle on a stale quorum, as fast leader
    /// election can, and the candidate it chose may then move on to a better vote: those
    /// servers are only released by the Zab handshake (a follower of a non-leader gets no
    /// LEADERINFO and abandons after initLimit, see `discovery`), which this election-only
    /// network does not run. So with loss only the liveness of the leader named is checked
    /// here; the whole ensemble recovering is shown by zk-sim (dropped connections,
    /// partitions) and the chaos suite (30% packet loss on real processes). (Seed
    /// 15206754745507958534 is such a run: servers 1 and 3 follow 5 while 5 and 2 wait for
    /// them.)
    #[test]
    fn live_servers_elect_a_live_leader_and_agree_on_reliable_links(
        seed in any::<u64>(),
        five in any::<bool>(),
        logs in prop::collection::vec((0u32..3, 0i64..20), 5),
        down_mask in 0u8..32,
        lossy in any::<bool>(),
    ) {
        let n: u64 = if five { 5 } else { 3 };
        let all: Vec<ServerId> = (1..=n).collect();
        let q = Quorum::majority(all.iter().copied());
        let mut net = Net::new(seed);
        net.drop_percent = if lossy { 20 } else { 0 };
        let mut keys = BTreeMap::new();
        for &id in &all {
            let (epoch, counter) = logs[(id - 1) as usize];
            let zxid = (i64::from(epoch) << 32) | counter;
            net.add(id, &q, &all, zxid, epoch);
            keys.insert(id, vote_key(zxid, epoch, id));
        }
        // Take down a minority.
        let mut down = BTreeSet::new();
        for &id in &all {
            if down_mask & (1 << (id - 1)) != 0 && (down.len() as u64 + 1) * 2 < n {
                down.insert(id);
            }
        }
        net.down = down.clone();
        for &id in &all {
            if !down.contains(&id) {
                net.start(id);
            }
        }
        net.run(120_000);
        let live: Vec<ServerId> = all.iter().copied().filter(|i| !down.contains(i)).collect();
        let leaders: BTreeSet<ServerId> = net.decided.values().map(|d| d.0).collect();
        prop_assert!(leaders.iter().all(|l| live.contains(l)), "{:?}", net.decided);
        if !lossy {
            prop_assert_eq!(net.decided.len(), live.len(), "all live servers decide: {:?}", net.decided);
            prop_assert_eq!(leaders.len(), 1, "one leader: {:?}", net.decided);
            let leader = *leaders.iter().next().unwrap();
            let leading = net.decided.values().filter(|d| d.2 == PeerState::Leading).count();
            prop_assert_eq!(leading, 1);
            let best = live.iter().max_by_key(|i| keys[i]).copied().unwrap();
            prop_assert_eq!(leader, best);
        }
    }
}
