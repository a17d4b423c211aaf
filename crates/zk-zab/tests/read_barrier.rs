//! Read barriers (linearizable reads) and `sync` on three real `Peer`s over a hand-driven
//! network: a barrier passes once a quorum confirms the leader, at a follower once the
//! leader's commit index is applied; and the stale-leader case: a leader cut off from the
//! others whose clock stalls (so it does not notice) keeps believing it leads while the
//! others elect a new leader and commit writes; its barriers and syncs must not pass, and
//! fail when it steps down.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, VecDeque};

use zk_zab::election::Timing;
use zk_zab::peer::{Config, Durable, Input, Msg, Output, Peer, Role};
use zk_zab::quorum::Quorum;
use zk_zab::ServerId;

struct Cluster {
    peers: Vec<Peer>,
    now: Vec<u64>,
    /// Servers whose clock stands still.
    frozen: BTreeSet<usize>,
    /// Servers cut off from the others (both ways, silently).
    cut: BTreeSet<usize>,
    net: VecDeque<(usize, usize, Msg)>,
    disk_seq: Vec<u64>,
    ready: Vec<(usize, u64)>,
    failed: Vec<(usize, u64)>,
    sync_done: Vec<(usize, Vec<u8>)>,
    committed: Vec<Vec<i64>>,
}

impl Cluster {
    fn new() -> Cluster {
        let ids: Vec<ServerId> = vec![1, 2, 3];
        let mut c = Cluster {
            peers: Vec::new(),
            now: vec![0; 3],
            frozen: BTreeSet::new(),
            cut: BTreeSet::new(),
            net: VecDeque::new(),
            disk_seq: vec![0; 3],
            ready: Vec::new(),
            failed: Vec::new(),
            sync_done: Vec::new(),
            committed: vec![Vec::new(); 3],
        };
        let mut outs = Vec::new();
        for &me in &ids {
            let cfg = Config {
                me,
                quorum: Quorum::majority(ids.iter().copied()),
                members: ids.clone(),
                tick_ms: 100,
                init_limit: 10,
                sync_limit: 5,
                election: Timing {
                    finalize_wait: 200,
                    resend_min: 200,
                    resend_max: 2_000,
                },
                zxid_counter_max: u32::MAX,
                config_version: 0,
            };
            let mut out = Vec::new();
            c.peers
                .push(Peer::new(cfg, Durable::default(), 0, &mut out));
            outs.push(out);
        }
        for (i, out) in outs.into_iter().enumerate() {
            c.outputs(i, out);
        }
        c
    }

    fn outputs(&mut self, i: usize, out: Vec<Output>) {
        let mut disk = 0;
        for o in out {
            match o {
                Output::Send { to, msg } => self.net.push_back((i, to as usize - 1, msg)),
                Output::Write(_) | Output::InstallSnapshot { .. } => disk += 1,
                Output::Commit(p) => self.committed[i].push(p.zxid),
                Output::ReadReady { token } => self.ready.push((i, token)),
                Output::ReadFailed { token } => self.failed.push((i, token)),
                Output::SyncDone { token } => self.sync_done.push((i, token)),
                Output::SendSnapshot { to } => self.net.push_back((
                    i,
                    to as usize - 1,
                    Msg::Snap {
                        zxid: self.peers[i].committed(),
                        state: Vec::new(),
                    },
                )),
                _ => {}
            }
        }
        if disk > 0 {
            // Disks are instant here.
            self.disk_seq[i] += disk;
            let upto = self.disk_seq[i];
            self.step(i, Input::DiskDone { upto });
        }
    }

    fn step(&mut self, i: usize, input: Input) {
        let mut out = Vec::new();
        self.peers[i].step(input, &mut out);
        self.outputs(i, out);
    }

    /// Delivers everything in flight (dropping what crosses a cut), then ticks.
    fn run_ms(&mut self, ms: u64) {
        for _ in 0..ms / 5 {
            while let Some((from, to, msg)) = self.net.pop_front() {
                if self.cut.contains(&from) != self.cut.contains(&to) {
                    continue;
                }
                self.step(
                    to,
                    Input::Msg {
                        from: from as u64 + 1,
                        msg,
                    },
                );
            }
            for i in 0..3 {
                if !self.frozen.contains(&i) {
                    self.now[i] += 5;
                }
                let now = self.now[i];
                self.step(i, Input::Tick { now });
            }
        }
    }

    fn settled(&mut self, among: &[usize]) -> usize {
        for _ in 0..400 {
            self.run_ms(50);
            let leaders: Vec<usize> = among
                .iter()
                .copied()
                .filter(|&i| matches!(self.peers[i].role(), Role::Leading { .. }))
                .collect();
            let following = among
                .iter()
                .filter(|&&i| matches!(self.peers[i].role(), Role::Following { .. }))
                .count();
            if leaders.len() == 1 && following + 1 == among.len() {
                return leaders[0];
            }
        }
        panic!("no settled leader among {among:?}");
    }

    fn write(&mut self, leader: usize) -> i64 {
        let mut out = Vec::new();
        let zxid = self.peers[leader]
            .propose(b"txn".to_vec(), &mut out)
            .unwrap();
        self.outputs(leader, out);
        self.run_ms(50);
        zxid
    }

    fn barrier(&mut self, i: usize, token: u64) -> bool {
        let mut out = Vec::new();
        let asked = self.peers[i].read_barrier(token, &mut out);
        self.outputs(i, out);
        asked
    }
}

#[test]
fn barriers_pass_on_a_quorum_and_wait_for_the_commit_index() {
    let mut c = Cluster::new();
    let leader = c.settled(&[0, 1, 2]);
    let follower = (leader + 1) % 3;
    let z = c.write(leader);
    assert!(c.committed[follower].contains(&z));
    assert!(c.barrier(leader, 1));
    assert!(c.barrier(follower, 2));
    assert!(c.barrier(follower, 3));
    assert!(c.ready.is_empty(), "nothing passes before the round");
    c.run_ms(50);
    let mut ready = c.ready.clone();
    ready.sort();
    let mut want = vec![(leader, 1), (follower, 2), (follower, 3)];
    want.sort();
    assert_eq!(ready, want);
    assert!(c.failed.is_empty());
}

#[test]
fn a_stalled_leader_cut_off_from_its_quorum_cannot_pass_a_barrier_or_a_sync() {
    let mut c = Cluster::new();
    let old = c.settled(&[0, 1, 2]);
    c.write(old);
    // Cut off, and its clock stands still: it goes on believing it leads.
    c.cut.insert(old);
    c.frozen.insert(old);
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = c.settled(&others);
    let acked = c.write(new);
    assert!(c.committed[others[0]].contains(&acked) && c.committed[others[1]].contains(&acked));
    assert!(
        matches!(c.peers[old].role(), Role::Leading { .. }),
        "still believes it leads"
    );
    assert!(!c.committed[old].contains(&acked));
    // Its clients ask it for a linearizable read, and for a sync.
    assert!(c.barrier(old, 77));
    let mut out = Vec::new();
    let me = old as u64 + 1;
    assert!(c.peers[old].sync(me, b"s".to_vec(), &mut out));
    c.outputs(old, out);
    c.run_ms(2_000);
    assert!(
        !c.ready.contains(&(old, 77)),
        "a stale leader passed a read barrier without its quorum"
    );
    assert!(
        !c.sync_done.iter().any(|(i, _)| *i == old),
        "a stale leader answered a sync"
    );
    // Its clock moves again: it notices, steps down, and the read fails.
    c.frozen.remove(&old);
    c.run_ms(1_000);
    assert!(!matches!(c.peers[old].role(), Role::Leading { .. }));
    assert!(c.failed.contains(&(old, 77)), "{:?}", c.failed);
}
