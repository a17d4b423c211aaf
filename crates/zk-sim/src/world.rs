//! The simulated world: servers (peer + tree + disk), links, clients and the fault schedule.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use bytes::Bytes;
use zk_proto::records::CreateSessionTxn;
use zk_proto::records::{CreateRequest, DeleteRequest, SetDataRequest};
use zk_proto::TxnBody;
use zk_proto::{decode_request, encode_request, Reader, Request, TxnEntry};
use zk_session::{SessionConfig, SessionTracker};
use zk_tree::prep::{prep_create_session, prep_request, PendingChanges, PrepContext};
use zk_tree::snapshot::{read_snapshot, write_snapshot};
use zk_tree::{DataTree, TreeConfig, TxnResult};
use zk_zab::broadcast::Proposal;
use zk_zab::election::Timing;
use zk_zab::peer::{Config, Durable, Input, Membership, Msg, Output, Peer, Role, SyncKind, Write};
use zk_zab::quorum::Quorum;
use zk_zab::{Millis, ServerId, Zxid};

use crate::check::{self, AckedWrite, History, LinRead, Read, SyncRecord, WatchRecord};
use crate::Rng;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub nodes: usize,
    pub clients: usize,
    /// Faults are injected from 1 s to this time; then everything heals.
    pub fault_ms: Millis,
    /// How long the run goes on after healing (writes must commit within 30 s of it).
    pub settle_ms: Millis,
    /// Print role changes and faults to stderr (`--trace`).
    pub trace: bool,
}

impl Options {
    pub fn new(seed: u64, nodes: usize) -> Options {
        Options {
            seed,
            nodes,
            clients: 4,
            fault_ms: 20_000,
            settle_ms: 35_000,
            trace: false,
        }
    }
}

/// How often each interesting thing happened: a run that never reaches them proves nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    pub diff_syncs: u64,
    pub trunc_syncs: u64,
    pub trunc_diff_syncs: u64,
    pub snap_syncs: u64,
    pub leader_changes: u64,
    pub crashes: u64,
    pub power_losses: u64,
    pub partitions: u64,
    pub pauses: u64,
    pub acked_writes: u64,
    pub failed_writes: u64,
    pub reads: u64,
    pub snapshots: u64,
    pub sessions_created: u64,
    pub session_expiries: u64,
    pub ephemerals_created: u64,
    pub watches_set: u64,
    pub watches_fired: u64,
    pub handoffs: u64,
    pub epoch_renewals: u64,
    pub syncs: u64,
    pub reconfigs: u64,
    pub leader_isolations: u64,
    /// Linearizable reads served, and failed (their server left its role first).
    pub lin_reads: u64,
    pub lin_reads_failed: u64,
    pub clock_stalls: u64,
}

impl Coverage {
    pub fn add(&mut self, o: &Coverage) {
        self.diff_syncs += o.diff_syncs;
        self.trunc_syncs += o.trunc_syncs;
        self.trunc_diff_syncs += o.trunc_diff_syncs;
        self.snap_syncs += o.snap_syncs;
        self.leader_changes += o.leader_changes;
        self.crashes += o.crashes;
        self.power_losses += o.power_losses;
        self.partitions += o.partitions;
        self.pauses += o.pauses;
        self.acked_writes += o.acked_writes;
        self.failed_writes += o.failed_writes;
        self.reads += o.reads;
        self.snapshots += o.snapshots;
        self.sessions_created += o.sessions_created;
        self.session_expiries += o.session_expiries;
        self.ephemerals_created += o.ephemerals_created;
        self.watches_set += o.watches_set;
        self.watches_fired += o.watches_fired;
        self.handoffs += o.handoffs;
        self.epoch_renewals += o.epoch_renewals;
        self.syncs += o.syncs;
        self.reconfigs += o.reconfigs;
        self.leader_isolations += o.leader_isolations;
        self.lin_reads += o.lin_reads;
        self.lin_reads_failed += o.lin_reads_failed;
        self.clock_stalls += o.clock_stalls;
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "syncs diff={} trunc={} trunc+diff={} snap={}; leader changes={}; crashes={} power losses={} partitions={} pauses={}; writes acked={} failed={}; reads={}; snapshots={}; sessions created={} expired={}; ephemerals={}; watches set={} fired={}; handoffs={} epoch renewals={}; syncs={}; reconfigs={}; leader isolations={}; linearizable reads={} failed={}; clock stalls={}",
            self.diff_syncs,
            self.trunc_syncs,
            self.trunc_diff_syncs,
            self.snap_syncs,
            self.leader_changes,
            self.crashes,
            self.power_losses,
            self.partitions,
            self.pauses,
            self.acked_writes,
            self.failed_writes,
            self.reads,
            self.snapshots,
            self.sessions_created,
            self.session_expiries,
            self.ephemerals_created,
            self.watches_set,
            self.watches_fired,
            self.handoffs,
            self.epoch_renewals,
            self.syncs,
            self.reconfigs,
            self.leader_isolations,
            self.lin_reads,
            self.lin_reads_failed,
            self.clock_stalls
        )
    }
}

/// The outcome of one seed.
#[derive(Debug, Clone)]
pub struct Report {
    pub seed: u64,
    pub violations: Vec<String>,
    pub coverage: Coverage,
    /// From healing to the first write acknowledged after it.
    pub heal_to_write_ms: Option<Millis>,
}

const STEP_MS: Millis = 5;
const KEYS: u64 = 6;
const SESSION_TIMEOUT_MS: i32 = 2_000;

#[derive(Debug)]
enum DiskOp {
    Write(Write),
    Install(Zxid, Vec<u8>),
}

#[derive(Debug, Default)]
struct Disk {
    /// The last configuration this server had in force (written when it changes, as
    /// ZooKeeper writes its dynamic configuration file).
    config: Option<Membership>,
    accepted: u32,
    current: u32,
    snap_zxid: Zxid,
    snap: Vec<u8>,
    log: Vec<Proposal>,
    /// Issued, not yet durable: (done at, sequence number, op).
    queue: VecDeque<(Millis, u64, DiskOp)>,
    last_done_at: Millis,
    /// Until then, fsyncs are slow.
    slow_until: Millis,
    /// Highest sequence number durable / reported to the peer.
    durable_seq: u64,
    reported_seq: u64,
    issued_seq: u64,
}

impl Disk {
    fn apply(&mut self, op: DiskOp) {
        match op {
            DiskOp::Write(Write::AcceptedEpoch(e)) => self.accepted = e,
            DiskOp::Write(Write::CurrentEpoch(e)) => self.current = e,
            DiskOp::Write(Write::Append(p)) => self.log.push(p),
            DiskOp::Write(Write::Truncate(to)) => self.log.retain(|p| p.zxid <= to),
            DiskOp::Install(zxid, state) => {
                self.snap_zxid = zxid;
                self.snap = state;
                self.log.clear();
            }
        }
    }
}

struct Node {
    id: ServerId,
    up: bool,
    paused_until: Millis,
    clock_offset: Millis,
    clock_permille: u64,
    /// The node's clock stands still until this time (its timer thread starved while
    /// it keeps handling messages and requests): (local time it shows, until).
    clock_stall: Option<(Millis, Millis)>,
    peer: Option<Peer>,
    tree: DataTree,
    prep: PendingChanges,
    disk: Disk,
    role: Role,
    snapshot_every: u32,
    commits_since_snapshot: u32,
    /// Writes of clients connected here, waiting for their commit: (session, cxid) -> client.
    waiting: BTreeMap<(i64, i32), usize>,
    /// Leader: the sessions it expires (ZooKeeper's leader-side session tracker).
    tracker: Option<SessionTracker>,
    /// Follower: sessions its clients pinged since its last report to the leader.
    touches: Vec<i64>,
    restart_at: Option<Millis>,
}

impl Node {
    fn serving(&self) -> bool {
        self.up && matches!(self.role, Role::Leading { .. } | Role::Following { .. })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Open,
    /// Messages are dropped and nobody is told until it heals (then the connection resets).
    Silent,
}

struct Link {
    queue: VecDeque<(Millis, Msg)>,
    last_at: Millis,
    cut: Cut,
}

struct Pending {
    create_session: bool,
    sync: bool,
    /// A linearizable read of this key, waiting for its server's read barrier.
    lin_read: Option<String>,
    cxid: i32,
    server: usize,
    invoked: Millis,
    deadline: Millis,
}

struct Client {
    /// 0 until a session is asked for.
    session: i64,
    /// The createSession was acknowledged.
    session_live: bool,
    generation: i64,
    next_ping: Millis,
    /// The index in `history.watches` of this client's watch, while it is set.
    watch: Option<usize>,
    server: Option<usize>,
    next_at: Millis,
    cxid: i32,
    last_zxid: Zxid,
    pending: Option<Pending>,
}

struct World {
    opts: Options,
    rng: Rng,
    now: Millis,
    nodes: Vec<Node>,
    links: Vec<Vec<Link>>,
    clients: Vec<Client>,
    cfg: Config,
    slow_until: Millis,
    heals: Vec<(Millis, Vec<(usize, usize)>)>,
    history: History,
    coverage: Coverage,
    violations: Vec<String>,
}

fn tree_config() -> TreeConfig {
    TreeConfig::default()
}

fn encode_tree(tree: &DataTree) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_snapshot(tree, &mut out);
    out
}

fn decode_tree(zxid: Zxid, state: &[u8]) -> Result<DataTree, String> {
    if state.is_empty() && zxid == 0 {
        return Ok(DataTree::new(tree_config()));
    }
    let mut r = Reader::new(Bytes::copy_from_slice(state));
    let mut tree = read_snapshot(tree_config(), &mut r).map_err(|e| format!("{e:?}"))?;
    tree.set_last_processed_zxid(zxid);
    Ok(tree)
}

/// What a follower forwards: a client's write, or a new session.
enum Forward {
    Write(Request),
    CreateSession,
    /// A client's sync: the token is the client's index.
    Sync,
}

/// A forwarded write: tag (0 write, 1 createSession), session, cxid, then the request frame.
fn encode_forward(session: i64, cxid: i32, request: &Forward) -> Vec<u8> {
    let mut out = Vec::new();
    let request = match request {
        Forward::Sync => {
            out.push(2);
            out.extend_from_slice(&session.to_be_bytes());
            out.extend_from_slice(&cxid.to_be_bytes());
            return out;
        }
        Forward::CreateSession => {
            out.push(1);
            out.extend_from_slice(&session.to_be_bytes());
            out.extend_from_slice(&cxid.to_be_bytes());
            return out;
        }
        Forward::Write(r) => r,
    };
    out.push(0);
    out.extend_from_slice(&session.to_be_bytes());
    out.extend_from_slice(&cxid.to_be_bytes());
    encode_request(cxid, request, &mut out);
    out
}

fn decode_forward(data: &[u8]) -> Option<(i64, i32, Forward)> {
    let tag = *data.first()?;
    let session = i64::from_be_bytes(data.get(1..9)?.try_into().ok()?);
    let cxid = i32::from_be_bytes(data.get(9..13)?.try_into().ok()?);
    if tag == 1 {
        return Some((session, cxid, Forward::CreateSession));
    }
    if tag == 2 {
        return Some((session, cxid, Forward::Sync));
    }
    let mut r = Reader::new(Bytes::copy_from_slice(data.get(13..)?));
    let (_, body) = decode_request(&mut r).ok()?;
    Some((session, cxid, Forward::Write(body.ok()?)))
}

/// The configuration a reconfiguration txn sets (`voters=1,2,3;version=Z`), if it is one.
fn reconfig_of(p: &Proposal, members: usize) -> Option<Membership> {
    let entry = TxnEntry::decode(p.data.clone()).ok()?;
    let TxnBody::Reconfig(t) = &entry.body else {
        return None;
    };
    config_of(t.data.as_deref()?, members as u64)
}

/// Parses the simulator's `/zookeeper/config` text; every server is a member.
fn config_of(text: &[u8], members: u64) -> Option<Membership> {
    let text = String::from_utf8_lossy(text);
    let (voters, version) = text.strip_prefix("voters=")?.split_once(";version=")?;
    let voters: Vec<ServerId> = voters.split(',').filter_map(|v| v.parse().ok()).collect();
    Some(Membership {
        version: version.parse().ok()?,
        quorum: Quorum::majority(voters),
        members: (1..=members).collect(),
    })
}

/// A sync's token: the session and cxid it answers.
fn sync_token(session: i64, cxid: i32) -> Vec<u8> {
    let mut t = session.to_be_bytes().to_vec();
    t.extend_from_slice(&cxid.to_be_bytes());
    t
}

/// Session ids a follower reports with its ping.
fn encode_touches(ids: &[i64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_be_bytes()).collect()
}

fn decode_touches(data: &[u8]) -> Vec<i64> {
    data.chunks_exact(8)
        .filter_map(|c| c.try_into().ok().map(i64::from_be_bytes))
        .collect()
}

/// Plays one seed and checks it.
pub fn run(opts: &Options) -> Report {
    let mut w = World::new(opts.clone());
    w.play();
    w.finish()
}

impl World {
    fn new(opts: Options) -> World {
        let mut rng = Rng::new(opts.seed);
        let ids: Vec<ServerId> = (1..=opts.nodes as u64).collect();
        let cfg = Config {
            me: 0,
            // Some 5-server runs make the last server an observer (it follows, never votes).
            quorum: if opts.nodes == 5 && opts.seed % 4 == 0 {
                Quorum::majority(ids.iter().copied().filter(|id| *id != 5))
            } else {
                Quorum::majority(ids.iter().copied())
            },
            members: ids.clone(),
            tick_ms: 100,
            init_limit: 10,
            sync_limit: 5,
            election: Timing {
                finalize_wait: 200,
                resend_min: 200,
                resend_max: 2_000,
            },
            // A quarter of the runs use up epochs quickly, so leaders renew them.
            config_version: 0,
            zxid_counter_max: if rng.below(4) == 0 {
                rng.between(40, 400) as u32
            } else {
                u32::MAX
            },
        };
        let nodes = ids
            .iter()
            .map(|&id| Node {
                id,
                up: false,
                paused_until: 0,
                clock_offset: rng.below(1_000_000),
                clock_permille: rng.between(950, 1050),
                clock_stall: None,
                peer: None,
                tree: DataTree::new(tree_config()),
                prep: PendingChanges::default(),
                disk: Disk::default(),
                role: Role::Looking,
                snapshot_every: rng.between(15, 60) as u32,
                commits_since_snapshot: 0,
                waiting: BTreeMap::new(),
                tracker: None,
                touches: Vec::new(),
                restart_at: Some(rng.below(300)),
            })
            .collect();
        let links = ids
            .iter()
            .map(|_| {
                ids.iter()
                    .map(|_| Link {
                        queue: VecDeque::new(),
                        last_at: 0,
                        cut: Cut::Open,
                    })
                    .collect()
            })
            .collect();
        let clients = (0..opts.clients)
            .map(|_| Client {
                session: 0,
                session_live: false,
                generation: 0,
                next_ping: 0,
                watch: None,
                server: None,
                next_at: 500,
                cxid: 0,
                last_zxid: 0,
                pending: None,
            })
            .collect();
        World {
            opts,
            rng,
            now: 0,
            nodes,
            links,
            clients,
            cfg,
            slow_until: 0,
            heals: Vec::new(),
            history: History::default(),
            coverage: Coverage::default(),
            violations: Vec::new(),
        }
    }

    fn local_now(&self, i: usize) -> Millis {
        let n = &self.nodes[i];
        match n.clock_stall {
            Some((shown, until)) if self.now < until => shown,
            _ => n.clock_offset + self.now * n.clock_permille / 1000,
        }
    }

    fn heal_at(&self) -> Millis {
        self.opts.fault_ms
    }

    fn play(&mut self) {
        let end = self.heal_at() + self.opts.settle_ms;
        while self.now < end {
            self.now += STEP_MS;
            if self.now < self.heal_at() && self.now > 1_000 {
                self.maybe_fault();
            }
            if self.now >= self.heal_at() && self.now < self.heal_at() + STEP_MS {
                self.heal_everything();
            }
            self.restarts_and_heals();
            self.deliver();
            self.disks();
            self.ticks();
            self.sessions();
            if self.now < end - 10_000 {
                self.clients_act();
            } else {
                self.clients_expire();
            }
        }
    }

    // ---- faults ----

    fn maybe_fault(&mut self) {
        // About one fault every 1.5 simulated seconds.
        if !self.rng.chance(1_000_000 * STEP_MS / 1_500) {
            return;
        }
        let n = self.nodes.len();
        let i = self.rng.below(n as u64) as usize;
        match self.rng.below(100) {
            0..=14 => {
                if self.nodes[i].up {
                    self.coverage.crashes += 1;
                    self.crash(i, false);
                }
            }
            15..=19 => {
                // A rack loses power: a majority at once, each restarting in its own time.
                self.trace(|| "power loss of a majority".to_owned());
                let start = self.rng.below(n as u64) as usize;
                for k in 0..n / 2 + 1 {
                    let j = (start + k) % n;
                    if self.nodes[j].up {
                        self.coverage.power_losses += 1;
                        self.crash(j, true);
                    }
                }
            }
            20..=34 => {
                if self.nodes[i].up {
                    self.coverage.power_losses += 1;
                    self.crash(i, true);
                }
            }
            35..=59 => self.partition(),
            60..=69 => {
                let j = self.rng.below(n as u64) as usize;
                if i != j {
                    self.reset_link(i, j);
                }
            }
            80..=84 => {
                // The leader's clock stalls: it goes on answering as leader well past the
                // moment the others gave up on it and elected another (the stale-leader
                // case linearizable reads must survive).
                let leader = (0..n).find(|&j| matches!(self.nodes[j].role, Role::Leading { .. }));
                let j = leader.unwrap_or(i);
                if self.nodes[j].up {
                    self.coverage.clock_stalls += 1;
                    let d = self.rng.between(1_000, 4_000);
                    let shown = self.local_now(j);
                    self.nodes[j].clock_stall = Some((shown, self.now + d));
                    self.trace(|| format!("server {}: clock stalled {d} ms", j + 1));
                    // Half the time the others lose it too (a silent cut): it believes it
                    // still leads while they elect another; its clients still reach it.
                    if self.rng.below(2) == 0 {
                        let mut cut = Vec::new();
                        for k in (0..n).filter(|&k| k != j) {
                            cut.push((j, k));
                            cut.push((k, j));
                        }
                        for &(a, b) in &cut {
                            self.links[a][b].queue.clear();
                            self.links[a][b].cut = Cut::Silent;
                        }
                        self.trace(|| format!("server {} cut off while stalled", j + 1));
                        self.heals.push((self.now + d, cut));
                    }
                }
            }
            70..=79 => {
                if self.nodes[i].up {
                    self.coverage.pauses += 1;
                    let d = self.rng.between(200, 3_000);
                    self.nodes[i].paused_until = self.now + d;
                    self.trace(|| format!("server {}: paused {d} ms", i + 1));
                }
            }
            85..=89 => {
                self.slow_until = self.now + self.rng.between(500, 4_000);
            }
            93..=95 => self.reconfigure(i),
            90..=92 => {
                // An operator hands leadership to another server before maintenance.
                if !self.responsive(i) {
                    return;
                }
                let target = self.rng.between(1, n as u64);
                let mut out = Vec::new();
                if let Some(p) = self.nodes[i].peer.as_mut() {
                    let _ = p.hand_off(target, &mut out);
                }
                self.outputs(i, out);
            }
            _ => {
                // A disk that stalls: fsyncs take hundreds of milliseconds for a while.
                let d = self.rng.between(500, 5_000);
                self.nodes[i].disk.slow_until = self.now + d;
                self.trace(|| format!("server {}: slow disk for {d} ms", i + 1));
            }
        }
    }

    fn crash(&mut self, i: usize, power_loss: bool) {
        self.trace(|| {
            format!(
                "server {}: {}",
                i + 1,
                if power_loss { "power loss" } else { "crash" }
            )
        });
        let node = &mut self.nodes[i];
        node.up = false;
        node.peer = None;
        node.role = Role::Looking;
        node.waiting.clear();
        node.paused_until = 0;
        // A killed process's writes are in the page cache and survive; a power loss keeps
        // a prefix of them (the torn record after it is dropped by recovery).
        let keep = if power_loss {
            let len = node.disk.queue.len() as u64;
            self.rng.below(len + 1) as usize
        } else {
            node.disk.queue.len()
        };
        let ops: Vec<_> = node.disk.queue.drain(..).collect();
        for (k, (_, _, op)) in ops.into_iter().enumerate() {
            if k < keep {
                node.disk.apply(op);
            }
        }
        node.restart_at = Some(self.now + self.rng.between(300, 6_000));
        for j in 0..self.nodes.len() {
            if j != i {
                self.links[i][j].queue.clear();
                self.links[j][i].queue.clear();
                self.links[i][j].cut = Cut::Open;
                self.links[j][i].cut = Cut::Open;
                self.peer_input(
                    j,
                    Input::LinkDown {
                        peer: (i + 1) as u64,
                    },
                );
            }
        }
        self.disconnect_clients(i);
    }

    fn restart(&mut self, i: usize) {
        self.trace(|| format!("server {}: restart", i + 1));
        let durable = {
            let d = &self.nodes[i].disk;
            Durable {
                accepted_epoch: d.accepted,
                current_epoch: d.current,
                snapshot_zxid: d.snap_zxid,
                log: d.log.clone(),
                proposed_configs: d
                    .log
                    .iter()
                    .filter_map(|p| reconfig_of(p, self.nodes.len()))
                    .collect(),
            }
        };
        let tree = match decode_tree(self.nodes[i].disk.snap_zxid, &self.nodes[i].disk.snap) {
            Ok(t) => t,
            Err(e) => {
                self.violations
                    .push(format!("server {} cannot read its snapshot: {e}", i + 1));
                return;
            }
        };
        let now = self.local_now(i);
        let mut cfg = self.cfg.clone();
        cfg.me = (i + 1) as u64;
        if let Some(m) = &self.nodes[i].disk.config {
            cfg.quorum = m.quorum.clone();
            cfg.members = m.members.clone();
            cfg.config_version = m.version;
        }
        let node = &mut self.nodes[i];
        node.tree = tree;
        node.prep = PendingChanges::default();
        node.disk.queue.clear();
        node.disk.issued_seq = 0;
        node.disk.durable_seq = 0;
        node.disk.reported_seq = 0;
        node.up = true;
        node.restart_at = None;
        node.commits_since_snapshot = 0;
        let mut out = Vec::new();
        node.peer = Some(Peer::new(cfg, durable, now, &mut out));
        self.outputs(i, out);
        for j in 0..self.nodes.len() {
            if j != i && self.nodes[j].up {
                let (pi, pj) = ((i + 1) as u64, (j + 1) as u64);
                self.peer_input(j, Input::LinkUp { peer: pi });
                self.peer_input(i, Input::LinkUp { peer: pj });
            }
        }
    }

    fn partition(&mut self) {
        let n = self.nodes.len();
        let leader = (0..n).find(|&i| matches!(self.nodes[i].role, Role::Leading { .. }));
        let side: Vec<bool> = match leader {
            // A third of the partitions isolate the leader from everyone else.
            Some(l) if self.rng.below(3) == 0 => {
                self.coverage.leader_isolations += 1;
                (0..n).map(|i| i == l).collect()
            }
            _ => (0..n).map(|_| self.rng.below(2) == 0).collect(),
        };
        let one_way = self.rng.below(3) == 0;
        let silent = one_way || self.rng.below(2) == 0;
        let mut cut = Vec::new();
        for i in 0..n {
            for j in 0..n {
                if i != j && side[i] && !side[j] {
                    cut.push((i, j));
                    if !one_way {
                        cut.push((j, i));
                    }
                }
            }
        }
        if cut.is_empty() {
            return;
        }
        self.coverage.partitions += 1;
        self.trace(|| format!("partition {cut:?} (silent {silent})"));
        for &(i, j) in &cut {
            self.links[i][j].queue.clear();
            if silent {
                self.links[i][j].cut = Cut::Silent;
            }
        }
        if !silent {
            // A noisy cut: both ends see the connection break at once, and it stays broken.
            for &(i, j) in &cut {
                self.links[i][j].cut = Cut::Silent;
                self.peer_input(
                    i,
                    Input::LinkDown {
                        peer: (j + 1) as u64,
                    },
                );
                self.peer_input(
                    j,
                    Input::LinkDown {
                        peer: (i + 1) as u64,
                    },
                );
            }
        }
        let heal = self.now + self.rng.between(1_000, 8_000);
        self.heals.push((heal, cut));
    }

    /// The connection between `i` and `j` breaks: both ends are told, in-flight data is lost.
    fn reset_link(&mut self, i: usize, j: usize) {
        self.trace(|| format!("link {}-{} reset", i + 1, j + 1));
        self.links[i][j].queue.clear();
        self.links[j][i].queue.clear();
        self.links[i][j].cut = Cut::Open;
        self.links[j][i].cut = Cut::Open;
        let (pi, pj) = ((i + 1) as u64, (j + 1) as u64);
        self.peer_input(i, Input::LinkDown { peer: pj });
        self.peer_input(j, Input::LinkDown { peer: pi });
        // The dialler reconnects at once.
        self.peer_input(i, Input::LinkUp { peer: pj });
        self.peer_input(j, Input::LinkUp { peer: pi });
    }

    fn heal_everything(&mut self) {
        let heals = std::mem::take(&mut self.heals);
        for (_, cut) in heals {
            for (i, j) in cut {
                self.reset_link(i, j);
            }
        }
        for i in 0..self.nodes.len() {
            self.nodes[i].paused_until = 0;
            self.nodes[i].clock_stall = None;
            if !self.nodes[i].up {
                self.restart(i);
            }
        }
        self.slow_until = 0;
    }

    fn restarts_and_heals(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up && self.nodes[i].restart_at.is_some_and(|t| t <= self.now) {
                self.restart(i);
            }
        }
        let now = self.now;
        let due: Vec<_> = {
            let (due, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.heals)
                .into_iter()
                .partition(|(t, _)| *t <= now);
            self.heals = rest;
            due
        };
        for (_, cut) in due {
            for (i, j) in cut {
                if self.links[i][j].cut == Cut::Silent {
                    self.reset_link(i, j);
                }
            }
        }
    }

    // ---- the machinery ----

    fn responsive(&self, i: usize) -> bool {
        self.nodes[i].up && self.nodes[i].paused_until <= self.now
    }

    fn peer_input(&mut self, i: usize, input: Input) {
        if !self.nodes[i].up {
            return;
        }
        let mut out = Vec::new();
        if let Some(p) = self.nodes[i].peer.as_mut() {
            p.step(input, &mut out);
        }
        self.outputs(i, out);
    }

    fn deliver(&mut self) {
        let n = self.nodes.len();
        for from in 0..n {
            for to in 0..n {
                if from == to || !self.responsive(to) {
                    continue;
                }
                while let Some((at, _)) = self.links[from][to].queue.front() {
                    if *at > self.now {
                        break;
                    }
                    let Some((_, msg)) = self.links[from][to].queue.pop_front() else {
                        break;
                    };
                    if self.opts.trace
                        && !matches!(msg, Msg::Ping(_) | Msg::Broadcast(_) | Msg::Request(_))
                    {
                        let what = match &msg {
                            Msg::Snap { zxid, .. } => format!("Snap {zxid:#x}"),
                            Msg::Diff(d) => format!(
                                "Diff of {} from {:#x}",
                                d.len(),
                                d.first().map_or(0, |p| p.zxid)
                            ),
                            other => format!("{other:?}"),
                        };
                        self.trace(|| format!("{} -> {}: {what}", from + 1, to + 1));
                    }
                    self.peer_input(
                        to,
                        Input::Msg {
                            from: (from + 1) as u64,
                            msg,
                        },
                    );
                    if !self.responsive(to) {
                        break;
                    }
                }
            }
        }
    }

    fn disks(&mut self) {
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                continue;
            }
            let now = self.now;
            let disk = &mut self.nodes[i].disk;
            while disk.queue.front().is_some_and(|(at, _, _)| *at <= now) {
                if let Some((_, seq, op)) = disk.queue.pop_front() {
                    disk.apply(op);
                    disk.durable_seq = seq;
                }
            }
            if self.responsive(i) && disk_behind(&self.nodes[i].disk) {
                let upto = self.nodes[i].disk.durable_seq;
                self.nodes[i].disk.reported_seq = upto;
                self.peer_input(i, Input::DiskDone { upto });
            }
        }
    }

    fn ticks(&mut self) {
        for i in 0..self.nodes.len() {
            if self.responsive(i) {
                let now = self.local_now(i);
                self.peer_input(i, Input::Tick { now });
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        if to >= self.nodes.len() || from == to {
            return;
        }
        if !self.nodes[to].up {
            return;
        }
        let link = &self.links[from][to];
        if link.cut == Cut::Silent {
            return;
        }
        let delay = if self.now < self.slow_until {
            self.rng.between(20, 600)
        } else {
            self.rng.between(1, 20)
        };
        let link = &mut self.links[from][to];
        let at = (self.now + delay).max(link.last_at);
        link.last_at = at;
        link.queue.push_back((at, msg));
    }

    fn outputs(&mut self, i: usize, out: Vec<Output>) {
        for o in out {
            if !self.nodes[i].up {
                return;
            }
            match o {
                Output::Send { to, msg } => self.send(i, (to as usize).wrapping_sub(1), msg),
                Output::Write(w) => {
                    if let Write::Append(p) = &w {
                        if let Some(m) = reconfig_of(p, self.nodes.len()) {
                            if let Some(peer) = self.nodes[i].peer.as_mut() {
                                peer.proposed_config(m);
                            }
                        }
                    }
                    self.disk_write(i, DiskOp::Write(w))
                }
                Output::ConfigChanged(m) => {
                    self.trace(|| format!("server {}: config {:#x} in force", i + 1, m.version));
                    self.nodes[i].disk.config = Some(m);
                }
                Output::SendSnapshot { to } => {
                    let tree = &self.nodes[i].tree;
                    let zxid = tree.last_processed_zxid();
                    let state = encode_tree(tree);
                    self.send(i, (to as usize).wrapping_sub(1), Msg::Snap { zxid, state });
                }
                Output::InstallSnapshot { zxid, state } => {
                    match decode_tree(zxid, &state) {
                        Ok(tree) => {
                            self.history.installs.push((i + 1, zxid, tree.digest()));
                            // The leader's state may hold a newer configuration.
                            let config = tree
                                .data("/zookeeper/config")
                                .flatten()
                                .and_then(|d| config_of(d, self.nodes.len() as u64));
                            self.nodes[i].tree = tree;
                            self.nodes[i].prep = PendingChanges::default();
                            if let Some(m) = config {
                                let mut out = Vec::new();
                                if let Some(peer) = self.nodes[i].peer.as_mut() {
                                    peer.apply_config(m, &mut out);
                                }
                                self.outputs(i, out);
                            }
                        }
                        Err(e) => self
                            .violations
                            .push(format!("server {} got an unreadable snapshot: {e}", i + 1)),
                    }
                    self.disk_write(i, DiskOp::Install(zxid, state));
                }
                Output::Commit(p) => self.commit(i, p),
                Output::Request { from, data } => match decode_forward(&data) {
                    Some((session, cxid, Forward::Sync)) => {
                        let token = sync_token(session, cxid);
                        let mut out = Vec::new();
                        if let Some(p) = self.nodes[i].peer.as_mut() {
                            p.sync(from, token, &mut out);
                        }
                        self.outputs(i, out);
                    }
                    Some((session, cxid, request)) => self.propose(i, session, cxid, request),
                    None => {}
                },
                Output::Pinged { payload, .. } => {
                    let now = self.local_now(i);
                    if let Some(t) = self.nodes[i].tracker.as_mut() {
                        for id in decode_touches(&payload) {
                            let _ = t.touch(id, now);
                        }
                    }
                }
                Output::Role(role) => self.role(i, role),
                Output::Synced { kind, to } => match kind {
                    _ if self.opts.trace && {
                        self.trace(|| format!("server {} syncs {to} by {kind:?}", i + 1));
                        false
                    } => {}
                    SyncKind::Diff => self.coverage.diff_syncs += 1,
                    SyncKind::Trunc => self.coverage.trunc_syncs += 1,
                    SyncKind::TruncThenDiff => self.coverage.trunc_diff_syncs += 1,
                    SyncKind::Snap => self.coverage.snap_syncs += 1,
                },
                Output::SyncDone { token } => self.sync_done(i, &token),
                Output::ReadReady { token } => self.lin_read_done(i, token, true),
                Output::ReadFailed { token } => self.lin_read_done(i, token, false),
                Output::Abandoned(why) => {
                    if why.starts_with("handing leadership over") {
                        self.coverage.handoffs += 1;
                    } else if why.starts_with("a new epoch") {
                        self.coverage.epoch_renewals += 1;
                    }
                    self.trace(|| format!("server {}: {why}", i + 1))
                }
                Output::Violation(what) => {
                    self.violations.push(format!("server {}: {what}", i + 1))
                }
            }
        }
    }

    fn disk_write(&mut self, i: usize, op: DiskOp) {
        let fsync = if self.now < self.nodes[i].disk.slow_until {
            self.rng.between(50, 400)
        } else {
            self.rng.between(1, 15)
        };
        let disk = &mut self.nodes[i].disk;
        disk.issued_seq += 1;
        let at = (self.now + fsync).max(disk.last_done_at);
        disk.last_done_at = at;
        let seq = disk.issued_seq;
        disk.queue.push_back((at, seq, op));
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.opts.trace {
            eprintln!("{:>6} ms  {}", self.now, what());
        }
    }

    fn role(&mut self, i: usize, role: Role) {
        self.trace(|| {
            let p = self.nodes[i].peer.as_ref();
            format!(
                "server {}: {role:?} (log ends {:#x}, committed {:#x})",
                i + 1,
                p.map_or(0, |p| p.last_logged()),
                p.map_or(0, |p| p.committed())
            )
        });
        self.nodes[i].role = role;
        match role {
            Role::Leading { epoch } => {
                self.coverage.leader_changes += 1;
                self.history.leaders.push((epoch, i + 1));
                self.nodes[i].prep = PendingChanges::default();
                // A new leader gives every session of its tree a full timeout.
                let now = self.local_now(i);
                let node = &mut self.nodes[i];
                let mut tracker = SessionTracker::new(SessionConfig::new(node.id as u8, 100), now);
                for (&id, &timeout) in node.tree.sessions() {
                    tracker.add(id, timeout, now);
                }
                node.tracker = Some(tracker);
            }
            Role::Following { .. } => {
                self.nodes[i].tracker = None;
            }
            Role::Looking | Role::Joining { .. } => {
                self.nodes[i].prep = PendingChanges::default();
                self.nodes[i].tracker = None;
                self.nodes[i].touches.clear();
                self.disconnect_clients(i);
            }
        }
    }

    fn disconnect_clients(&mut self, i: usize) {
        self.nodes[i].waiting.clear();
        for (k, c) in self.clients.iter_mut().enumerate() {
            if c.server == Some(i) {
                c.server = None;
                // A connection's watches go with it (this client does not re-register).
                self.nodes[i]
                    .tree
                    .watches_mut()
                    .remove_watcher(zk_tree::WatcherId(k as u64));
                if let Some(w) = c.watch.take() {
                    self.history.watches[w].cancelled = true;
                }
                if c.pending.take().is_some() {
                    self.coverage.failed_writes += 1;
                }
            }
        }
    }

    /// Leader: prepare a client's write against the tree and the changes in flight, and
    /// propose it.
    fn propose(&mut self, i: usize, session: i64, cxid: i32, request: Forward) {
        let now = self.now as i64;
        let node = &mut self.nodes[i];
        let Some(peer) = node.peer.as_mut() else {
            return;
        };
        let Ok(zxid) = peer.next_zxid() else {
            return;
        };
        let ctx = PrepContext {
            session,
            auth: &[],
            enforce_quota: false,
            local_session: false,
            max_children: 0,
        };
        let prepared = match &request {
            Forward::Sync => return,
            Forward::CreateSession => {
                prep_create_session(session, cxid, SESSION_TIMEOUT_MS, zxid, now)
            }
            Forward::Write(request) => {
                // As ZooKeeper's PrepRequestProcessor: a session the leader does not know
                // (expired, or closing) gets no txn.
                let live = matches!(request, Request::CloseSession)
                    || node
                        .tracker
                        .as_ref()
                        .is_some_and(|t| t.check(session).is_ok());
                if !live {
                    return;
                }
                prep_request(&node.tree, &mut node.prep, &ctx, cxid, request, zxid, now)
            }
        };
        let entry = TxnEntry {
            header: prepared.header,
            body: prepared.body,
            digest: None,
        };
        let mut out = Vec::new();
        match peer.propose(entry.encode().to_vec(), &mut out) {
            Ok(z) if z == zxid => {}
            Ok(z) => self.violations.push(format!(
                "server {}: proposed at {z:#x}, prepared for {zxid:#x}",
                i + 1
            )),
            Err(_) => return,
        }
        self.outputs(i, out);
    }

    /// An operator changes who votes (ZooKeeper's reconfig): the leader proposes it; every
    /// server switches when it commits.
    fn reconfigure(&mut self, _picked: usize) {
        let Some(i) = (0..self.nodes.len())
            .find(|&i| self.responsive(i) && matches!(self.nodes[i].role, Role::Leading { .. }))
        else {
            return;
        };
        let n = self.nodes.len() as u64;
        let mut voters: Vec<ServerId> = (1..=n).filter(|_| self.rng.below(4) != 0).collect();
        if voters.len() < 2 {
            voters = (1..=n).collect();
        }
        let now = self.now as i64;
        let Some(peer) = self.nodes[i].peer.as_mut() else {
            return;
        };
        let Ok(zxid) = peer.next_zxid() else {
            return;
        };
        let text = format!(
            "voters={};version={zxid}",
            voters
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        );
        let entry = TxnEntry {
            header: zk_proto::TxnHeader {
                client_id: 0,
                cxid: 0,
                zxid,
                time: now,
                r#type: zk_proto::OpCode::Reconfig.code(),
            },
            body: TxnBody::Reconfig(zk_proto::SetDataTxn {
                path: "/zookeeper/config".into(),
                data: Some(Bytes::from(text.clone())),
                version: -1,
            }),
            digest: None,
        };
        let mut out = Vec::new();
        let quorum = Quorum::majority(voters.iter().copied());
        if peer
            .propose_reconfig(entry.encode().to_vec(), quorum, &mut out)
            .is_ok()
        {
            self.trace(|| format!("server {}: proposes {text}", i + 1));
        }
        self.outputs(i, out);
    }

    fn commit(&mut self, i: usize, p: Proposal) {
        let entry = match TxnEntry::decode(p.data.clone()) {
            Ok(e) => e,
            Err(e) => {
                self.violations.push(format!(
                    "server {}: undecodable txn {:#x}: {e:?}",
                    i + 1,
                    p.zxid
                ));
                return;
            }
        };
        let commits_before = self.history.commits.len();
        // Agreement and no gaps: the txn before this one everywhere is the one this tree
        // holds last, and a zxid never carries two different txns.
        let before = self
            .history
            .commits
            .range(..p.zxid)
            .next_back()
            .map(|(z, _)| *z);
        let last = self.nodes[i].tree.last_processed_zxid();
        if before.unwrap_or(0) != last {
            self.violations.push(format!(
                "server {} commits {:#x} after {:#x}, but the txn before it is {:#x}",
                i + 1,
                p.zxid,
                last,
                before.unwrap_or(0)
            ));
        }
        match self.history.commits.get(&p.zxid) {
            Some(d) if *d != p.data => self.violations.push(format!(
                "two different txns committed at {:#x} (server {})",
                p.zxid,
                i + 1
            )),
            Some(_) => {}
            None => {
                let max = self
                    .history
                    .commits
                    .keys()
                    .next_back()
                    .copied()
                    .unwrap_or(0);
                if p.zxid < max {
                    self.violations.push(format!(
                        "server {} commits new txn {:#x} below the committed {:#x}",
                        i + 1,
                        p.zxid,
                        max
                    ));
                }
                self.history.commits.insert(p.zxid, p.data.to_vec());
            }
        }
        if let TxnBody::CloseSession(_) = &entry.body {
            // The server closes the connection of an expired session; its client learns the
            // session is gone and opens a new one.
            for c in 0..self.clients.len() {
                let client = &self.clients[c];
                if client.session == entry.header.client_id && client.server == Some(i) {
                    self.drop_connection(c);
                    let client = &mut self.clients[c];
                    client.session = 0;
                    client.session_live = false;
                    if client.pending.take().is_some() {
                        self.coverage.failed_writes += 1;
                    }
                }
            }
        }
        let mut reconfig_out = Vec::new();
        if let Some(m) = reconfig_of(&p, self.nodes.len()) {
            self.trace(|| format!("server {}: commits config {:#x}", i + 1, m.version));
            if let Some(peer) = self.nodes[i].peer.as_mut() {
                peer.apply_config(m, &mut reconfig_out);
            }
        }
        let new_globally = self.history.commits.len() > commits_before;
        if new_globally {
            if let TxnBody::Reconfig(_) = &entry.body {
                self.coverage.reconfigs += 1;
            }
            match &entry.body {
                TxnBody::CreateSession(_) => self.coverage.sessions_created += 1,
                TxnBody::CloseSession(_) => self.coverage.session_expiries += 1,
                TxnBody::Create(c) if c.ephemeral => self.coverage.ephemerals_created += 1,
                _ => {}
            }
        }
        let now = self.local_now(i);
        let node = &mut self.nodes[i];
        let applied = node.tree.apply(&entry.header, &entry.body);
        node.prep.applied(p.zxid);
        for e in &applied.events {
            let c = e.watcher.0 as usize;
            let Some(client) = self.clients.get_mut(c) else {
                continue;
            };
            match client.watch {
                Some(w) if client.server == Some(i) => {
                    self.history.watches[w].fired.push((e.zxid, e.event as i32));
                    self.coverage.watches_fired += 1;
                    client.watch = None;
                }
                _ => self.violations.push(format!(
                    "server {} fired a watch of client {c}, which holds none there",
                    i + 1
                )),
            }
        }
        let node = &mut self.nodes[i];
        if let Some(t) = node.tracker.as_mut() {
            match &entry.body {
                TxnBody::CreateSession(CreateSessionTxn { time_out }) => {
                    t.add(entry.header.client_id, *time_out, now)
                }
                TxnBody::CloseSession(_) => {
                    t.remove(entry.header.client_id);
                }
                _ => {}
            }
        }
        if let Some(c) = node
            .waiting
            .remove(&(entry.header.client_id, entry.header.cxid))
        {
            self.acked(c, i, entry.header.cxid, p.zxid, applied.result);
        }
        let node = &mut self.nodes[i];
        node.commits_since_snapshot += 1;
        if node.commits_since_snapshot >= node.snapshot_every {
            node.commits_since_snapshot = 0;
            let zxid = node.tree.last_processed_zxid();
            node.disk.snap = encode_tree(&node.tree);
            node.disk.snap_zxid = zxid;
            node.disk.log.retain(|q| q.zxid > zxid);
            if let Some(peer) = node.peer.as_mut() {
                peer.compact(zxid);
            }
            self.coverage.snapshots += 1;
        }
        // The peer's answer to a committed reconfiguration (a leader that no longer votes
        // hands leadership over) comes after the commit itself.
        if !reconfig_out.is_empty() {
            self.outputs(i, reconfig_out);
        }
    }

    fn acked(&mut self, c: usize, server: usize, cxid: i32, zxid: Zxid, result: TxnResult) {
        let client = &mut self.clients[c];
        // Only the request the client still waits for: an older one that timed out may
        // commit later and must not answer the current one.
        if !client
            .pending
            .as_ref()
            .is_some_and(|p| p.cxid == cxid && p.server == server)
        {
            return;
        }
        let Some(p) = client.pending.take() else {
            return;
        };
        if p.create_session {
            client.session_live = true;
        }
        client.last_zxid = client.last_zxid.max(zxid);
        self.coverage.acked_writes += 1;
        self.history.acked.push(AckedWrite {
            client: c,
            session: client.session,
            cxid: Some(p.cxid),
            zxid,
            result,
            invoked: p.invoked,
            responded: self.now,
        });
    }

    /// A sync is done at server `i`: its client has seen everything the server applied.
    fn sync_done(&mut self, i: usize, token: &[u8]) {
        let (Some(session), Some(cxid)) = (
            token
                .get(0..8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes),
            token
                .get(8..12)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_be_bytes),
        ) else {
            return;
        };
        let Some(c) = self.nodes[i].waiting.remove(&(session, cxid)) else {
            return;
        };
        let zxid = self.nodes[i].tree.last_processed_zxid();
        let client = &mut self.clients[c];
        match client.pending.take() {
            Some(p) if p.sync && p.server == i => {
                client.last_zxid = client.last_zxid.max(zxid);
                self.coverage.syncs += 1;
                self.history.syncs.push(SyncRecord {
                    client: c,
                    invoked: p.invoked,
                    zxid,
                });
            }
            other => client.pending = other,
        }
    }

    // ---- sessions ----

    /// Leaders expire silent sessions (a closeSession txn each); followers report the
    /// sessions their clients pinged, with their ping to the leader, every tick.
    fn sessions(&mut self) {
        let report = self.now % 100 == 0;
        for i in 0..self.nodes.len() {
            if !self.responsive(i) {
                continue;
            }
            let now = self.local_now(i);
            let expired = match self.nodes[i].tracker.as_mut() {
                Some(t) => t.expire(now),
                None => Vec::new(),
            };
            for id in expired {
                self.trace(|| format!("server {}: session {id:#x} expires", i + 1));
                self.propose(i, id, 0, Forward::Write(Request::CloseSession));
            }
            if report && !self.nodes[i].touches.is_empty() {
                let ids = std::mem::take(&mut self.nodes[i].touches);
                let mut out = Vec::new();
                if let Some(p) = self.nodes[i].peer.as_mut() {
                    p.ping_leader(encode_touches(&ids), &mut out);
                }
                self.outputs(i, out);
            }
        }
    }

    /// Clients with a session ping their server every 500 ms.
    fn clients_ping(&mut self) {
        for c in 0..self.clients.len() {
            let client = &self.clients[c];
            let (Some(s), true) = (client.server, client.session != 0) else {
                continue;
            };
            if self.now < client.next_ping || !self.responsive(s) {
                continue;
            }
            let session = client.session;
            self.clients[c].next_ping = self.now + 500;
            let now = self.local_now(s);
            let node = &mut self.nodes[s];
            match (node.tracker.as_mut(), node.role) {
                (Some(t), _) => {
                    let _ = t.touch(session, now);
                }
                (None, Role::Following { .. }) => node.touches.push(session),
                _ => {}
            }
        }
    }

    // ---- clients ----

    fn clients_expire(&mut self) {
        for c in 0..self.clients.len() {
            let expired = self.clients[c]
                .pending
                .as_ref()
                .is_some_and(|p| self.now > p.deadline);
            if expired {
                self.clients[c].pending = None;
                self.coverage.failed_writes += 1;
            }
        }
    }

    fn clients_act(&mut self) {
        self.clients_expire();
        self.clients_ping();
        for c in 0..self.clients.len() {
            // A server that stops leading or following closes its clients' connections
            // (as ZooKeeper's does): what they were waiting for is lost with it.
            let stranded = self.clients[c]
                .pending
                .as_ref()
                .is_some_and(|p| self.responsive(p.server) && !self.nodes[p.server].serving());
            if stranded {
                self.drop_connection(c);
                if self.clients[c].pending.take().is_some() {
                    self.coverage.failed_writes += 1;
                }
            }
            if self.now < self.clients[c].next_at || self.clients[c].pending.is_some() {
                continue;
            }
            let Some(s) = self.connected(c) else {
                self.clients[c].next_at = self.now + 50;
                continue;
            };
            if !self.responsive(s) {
                continue;
            }
            self.clients[c].next_at = self.now + self.rng.between(5, 60);
            if self.clients[c].session == 0 {
                self.new_session(c, s);
                continue;
            }
            if !self.clients[c].session_live {
                // Its createSession never came back: start over with a new one.
                self.clients[c].session = 0;
                continue;
            }
            // The fourth client only reads, linearizably (so a stale leader's clients
            // keep asking it while the others write).
            let reader = c == 3;
            match self.rng.below(100) {
                0 => {
                    // The client dies: its session is left to expire, its ephemerals with it.
                    self.trace(|| format!("client {c} abandons its session"));
                    self.drop_connection(c);
                    let client = &mut self.clients[c];
                    client.session = 0;
                    client.session_live = false;
                    client.next_at = self.now + self.rng.between(100, 3_000);
                }
                1..=10 => {
                    let key = format!("/e{c}-{}", self.rng.below(3));
                    if reader {
                        self.lin_read(c, s, format!("/k{}", key.len() % KEYS as usize));
                    } else {
                        self.write(c, s, key, true);
                    }
                }
                11..=14 => self.submit(c, s, Forward::Sync),
                15..=35 => {
                    let key = format!("/k{}", self.rng.below(KEYS));
                    // Odd clients read linearizably (no extra draw: seeds keep their ops).
                    if c % 2 == 1 {
                        self.lin_read(c, s, key);
                    } else {
                        self.read(c, s, key);
                    }
                }
                _ => {
                    let key = format!("/k{}", self.rng.below(KEYS));
                    if reader {
                        self.lin_read(c, s, key);
                    } else {
                        self.write(c, s, key, false);
                    }
                }
            }
        }
    }

    /// Client `c` loses its connection: its watches there go with it (this client does not
    /// re-register them).
    fn drop_connection(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if let Some(s) = client.server.take() {
            self.nodes[s]
                .tree
                .watches_mut()
                .remove_watcher(zk_tree::WatcherId(c as u64));
        }
        if let Some(w) = client.watch.take() {
            self.history.watches[w].cancelled = true;
        }
    }

    /// The server client `c` is connected to, connecting first when needed (only to a
    /// serving server that has seen everything the client has, as ZooKeeper requires). A
    /// session the server no longer has expired: the client will open a new one.
    fn connected(&mut self, c: usize) -> Option<usize> {
        if let Some(s) = self.clients[c].server {
            if self.nodes[s].serving() {
                return Some(s);
            }
            self.drop_connection(c);
        }
        let n = self.nodes.len();
        let start = self.rng.below(n as u64) as usize;
        for k in 0..n {
            let s = (start + k) % n;
            if self.nodes[s].serving()
                && self.nodes[s].tree.last_processed_zxid() >= self.clients[c].last_zxid
            {
                let client = &mut self.clients[c];
                client.server = Some(s);
                if client.session_live
                    && !self.nodes[s].tree.sessions().contains_key(&client.session)
                {
                    client.session = 0;
                    client.session_live = false;
                }
                return Some(s);
            }
        }
        None
    }

    fn read(&mut self, c: usize, s: usize, key: String) {
        if self.clients[c].watch.is_none() && self.rng.below(3) == 0 {
            // exists with a watch: fires on the key's next create, delete or data change.
            let tree = &mut self.nodes[s].tree;
            let zxid = tree.last_processed_zxid();
            let existed = tree
                .exists_watch(&key, Some(zk_tree::WatcherId(c as u64)))
                .is_ok();
            self.history.watches.push(WatchRecord {
                client: c,
                key: key.clone(),
                set_at: zxid,
                existed,
                fired: Vec::new(),
                cancelled: false,
            });
            self.clients[c].watch = Some(self.history.watches.len() - 1);
            self.coverage.watches_set += 1;
        }
        let (zxid, value) = self.serve_read(c, s, &key, "read");
        self.coverage.reads += 1;
        self.history.reads.push(Read {
            client: c,
            key,
            zxid,
            value,
        });
    }

    /// Client `c` reads `key` from server `s`'s tree: the zxid it is served at and the
    /// value; a violation if the client already saw a later zxid.
    fn serve_read(&mut self, c: usize, s: usize, key: &str, what: &str) -> (Zxid, Option<Vec<u8>>) {
        let tree = &self.nodes[s].tree;
        let zxid = tree.last_processed_zxid();
        let value = tree.data(key).map(|d| d.unwrap_or_default().to_vec());
        let client = &mut self.clients[c];
        if zxid < client.last_zxid {
            self.violations.push(format!(
                "client {c} {what} at {zxid:#x} from server {} after seeing {:#x}",
                s + 1,
                client.last_zxid
            ));
        }
        client.last_zxid = client.last_zxid.max(zxid);
        (zxid, value)
    }

    /// A linearizable read: asks server `s` for a read barrier and waits for it.
    fn lin_read(&mut self, c: usize, s: usize, key: String) {
        let client = &mut self.clients[c];
        client.cxid += 1;
        let cxid = client.cxid;
        let token = ((c as u64) << 32) | u64::from(cxid as u32);
        client.pending = Some(Pending {
            create_session: false,
            sync: false,
            lin_read: Some(key),
            cxid,
            server: s,
            invoked: self.now,
            deadline: self.now + 6_000,
        });
        let mut out = Vec::new();
        let asked = self.nodes[s]
            .peer
            .as_mut()
            .is_some_and(|p| p.read_barrier(token, &mut out));
        self.outputs(s, out);
        if !asked {
            // Not leading or following: the server refuses the read at once.
            self.clients[c].pending = None;
            self.coverage.lin_reads_failed += 1;
        }
    }

    /// Server `i`'s read barrier `token` passed (or failed): serve (or fail) the read.
    fn lin_read_done(&mut self, i: usize, token: u64, passed: bool) {
        let c = (token >> 32) as usize;
        let cxid = token as u32 as i32;
        let Some(client) = self.clients.get_mut(c) else {
            return;
        };
        let key = match client.pending.as_ref() {
            Some(p) if p.cxid == cxid && p.server == i => p.lin_read.clone(),
            _ => None,
        };
        let Some(key) = key else {
            return;
        };
        let Some(p) = client.pending.take() else {
            return;
        };
        if !passed {
            self.coverage.lin_reads_failed += 1;
            return;
        }
        let (zxid, value) = self.serve_read(c, i, &key, "read linearizably");
        self.coverage.lin_reads += 1;
        self.trace(|| {
            format!(
                "client {c}: linearizable read of {key} at server {} ({zxid:#x})",
                i + 1
            )
        });
        self.history.reads.push(Read {
            client: c,
            key: key.clone(),
            zxid,
            value: value.clone(),
        });
        self.history.lin_reads.push(LinRead {
            client: c,
            key,
            zxid,
            invoked: p.invoked,
            responded: self.now,
        });
    }

    fn new_session(&mut self, c: usize, s: usize) {
        let client = &mut self.clients[c];
        client.generation += 1;
        client.session = ((c as i64 + 1) << 32) | client.generation;
        client.session_live = false;
        client.next_ping = self.now;
        self.submit(c, s, Forward::CreateSession);
    }

    fn write(&mut self, c: usize, s: usize, key: String, ephemeral: bool) {
        let cxid = self.clients[c].cxid + 1;
        let data = Some(Bytes::from(format!("c{c}-{cxid}")));
        let request = match self.rng.below(3) {
            _ if ephemeral => Request::Create(CreateRequest {
                path: key,
                data,
                acl: zk_proto::modes::ids::open_acl_unsafe(),
                flags: 1,
            }),
            0 => Request::Create(CreateRequest {
                path: key,
                data,
                acl: zk_proto::modes::ids::open_acl_unsafe(),
                flags: 0,
            }),
            1 => Request::SetData(SetDataRequest {
                path: key,
                data,
                version: -1,
            }),
            _ => Request::Delete(DeleteRequest {
                path: key,
                version: -1,
            }),
        };
        self.submit(c, s, Forward::Write(request));
    }

    /// Sends a write (or a new session) to server `s`, which proposes it if it leads and
    /// forwards it otherwise; the client waits for its commit at `s`.
    fn submit(&mut self, c: usize, s: usize, request: Forward) {
        let client = &mut self.clients[c];
        client.cxid += 1;
        let cxid = client.cxid;
        let session = client.session;
        client.pending = Some(Pending {
            create_session: matches!(request, Forward::CreateSession),
            sync: matches!(request, Forward::Sync),
            lin_read: None,
            cxid,
            server: s,
            invoked: self.now,
            deadline: self.now + 6_000,
        });
        self.nodes[s].waiting.insert((session, cxid), c);
        match self.nodes[s].role {
            Role::Leading { .. } if matches!(request, Forward::Sync) => {
                let mut out = Vec::new();
                if let Some(p) = self.nodes[s].peer.as_mut() {
                    let me = p.id();
                    p.sync(me, sync_token(session, cxid), &mut out);
                }
                self.outputs(s, out);
            }
            Role::Leading { .. } => self.propose(s, session, cxid, request),
            Role::Following { .. } => {
                let data = encode_forward(session, cxid, &request);
                let mut out = Vec::new();
                if let Some(p) = self.nodes[s].peer.as_mut() {
                    p.forward(data, &mut out);
                }
                self.outputs(s, out);
            }
            _ => {}
        }
    }

    // ---- the end ----

    fn finish(mut self) -> Report {
        let heal = self.heal_at();
        let first_after_heal = self
            .history
            .acked
            .iter()
            .filter(|a| a.invoked >= heal)
            .map(|a| a.responded)
            .min();
        let heal_to_write_ms = first_after_heal.map(|t| t - heal);
        match heal_to_write_ms {
            Some(ms) if ms <= 30_000 => {}
            Some(ms) => self
                .violations
                .push(format!("the first write after healing took {ms} ms")),
            None => self
                .violations
                .push("no write committed in the 30 s after healing".to_owned()),
        }
        let finals: Vec<(usize, Zxid, i64, bool)> = self
            .nodes
            .iter()
            .map(|n| {
                (
                    n.id as usize,
                    n.tree.last_processed_zxid(),
                    n.tree.digest(),
                    n.serving(),
                )
            })
            .collect();
        self.history.finals = finals;
        let mut violations = self.violations;
        violations.extend(check::check(&self.history));
        Report {
            seed: self.opts.seed,
            violations,
            coverage: self.coverage,
            heal_to_write_ms,
        }
    }
}

fn disk_behind(d: &Disk) -> bool {
    d.durable_seq > d.reported_seq
}
