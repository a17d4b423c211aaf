//! One ensemble member, composed from the pieces: it looks for a leader ([`election`]), runs
//! the epoch handshake and sync as leader or follower ([`discovery`], [`sync`]), then
//! broadcasts ([`broadcast`]), and falls back to looking when the leader or the quorum goes
//! away (a link down, `syncLimit` of silence, `initLimit` without a finished handshake).
//!
//! The peer keeps an in-memory mirror of its txn log (the entries after the last snapshot)
//! and of its epochs; the host owns the real disk and the tree. Every disk write is an
//! [`Output::Write`] (or [`Output::InstallSnapshot`]) the host makes durable in order and
//! reports with [`Input::DiskDone`]; nothing that depends on a write is sent before that.
//!
//! The tree only ever holds committed txns: [`Output::Commit`] is the one way a txn reaches
//! it, so a truncated log tail never has to be taken back out of the tree.
//!
//! [`election`]: crate::election
//! [`discovery`]: crate::discovery
//! [`sync`]: crate::sync
//! [`broadcast`]: crate::broadcast

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::broadcast::{self, Proposal};
use crate::discovery::{self, FollowerHandshake, LeaderHandshake};
use crate::election::{self, Election, Member, Notification, PeerState, Timing};
use crate::quorum::Quorum;
use crate::sync::{plan_sync, SyncPlan};
use crate::{Millis, ServerId, Zxid};
use bytes::Bytes;

/// Who this server is and the ensemble's timing (zoo.cfg's `tickTime`, `initLimit`,
/// `syncLimit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub me: ServerId,
    pub quorum: Quorum,
    /// Every member of the ensemble, this one included.
    pub members: Vec<ServerId>,
    pub tick_ms: Millis,
    pub init_limit: u64,
    pub sync_limit: u64,
    pub election: Timing,
    /// The highest zxid counter of an epoch (`u32::MAX`; tests lower it). When it is used
    /// up the leader hands leadership to itself in a new epoch, without an election.
    pub zxid_counter_max: u32,
    /// The zxid of the reconfiguration that made `quorum` and `members` (0: the static
    /// configuration).
    pub config_version: Zxid,
}

/// One configuration of the ensemble: who votes, who takes part, and the zxid of the
/// reconfiguration txn that made it (its version, as in `/zookeeper/config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub version: Zxid,
    pub quorum: Quorum,
    pub members: Vec<ServerId>,
}

impl Config {
    fn init_limit_ms(&self) -> Millis {
        self.tick_ms * self.init_limit
    }

    fn sync_limit_ms(&self) -> Millis {
        self.tick_ms * self.sync_limit
    }
}

/// What a server found on its disk when it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durable {
    pub accepted_epoch: u32,
    pub current_epoch: u32,
    /// The zxid of the snapshot the log continues (0: the empty tree).
    pub snapshot_zxid: Zxid,
    /// The logged txns after the snapshot, ascending.
    pub log: Vec<Proposal>,
    /// The reconfigurations among those logged txns (the host decodes them).
    pub proposed_configs: Vec<Membership>,
}

/// Everything peers say to each other, on one FIFO link per pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Vote(Notification),
    Handshake(discovery::Msg),
    /// Sync: txns of the leader's history after the follower's last zxid.
    Diff(Vec<Proposal>),
    /// Sync: drop the logged txns after this zxid.
    Trunc(Zxid),
    /// Sync: the leader's committed state at `zxid`, encoded by the host.
    Snap {
        zxid: Zxid,
        state: Vec<u8>,
    },
    Broadcast(broadcast::Msg),
    /// A client's write, forwarded by a follower to its leader.
    Request(Vec<u8>),
    /// Leader to follower: everything proposed before the follower's `sync` (this token)
    /// has been committed, and its commits precede this on the link.
    SyncDone(Vec<u8>),
    /// The sender's configuration, sent ahead of its votes once the ensemble was
    /// reconfigured: a server that missed the reconfiguration adopts it (ZooKeeper carries
    /// it in its notifications).
    Config(Membership),
    /// Leader to followers, after its last commit: follow `to` (with the history up to
    /// `zxid` in `epoch`), without an election.
    Handoff {
        to: ServerId,
        zxid: Zxid,
        epoch: u32,
    },
    /// Liveness, both ways, every tick once established. A follower's may carry the
    /// host's session touches for the leader (opaque here).
    Ping(Vec<u8>),
    /// Follower to leader: read barriers for linearizable reads (a batch id; the follower
    /// keeps one in flight and gathers the reads that come meanwhile into the next).
    ReadIndex(u64),
    /// Leader to follower: a quorum confirmed this leadership after the barrier arrived;
    /// the read may be served once `zxid` (the leader's commit index then) is applied.
    ReadIndexDone {
        id: u64,
        zxid: Zxid,
    },
    /// Leader to followers: are you still following me? (one round serves many reads)
    Confirm(u64),
    /// Follower to its leader: yes, for this round.
    Confirmed(u64),
}

/// What drives a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Msg {
        from: ServerId,
        msg: Msg,
    },
    Tick {
        now: Millis,
    },
    /// Every write this peer asked for, up to the `upto`-th (counting from 1), is durable.
    DiskDone {
        upto: u64,
    },
    /// The link to `peer` broke: whatever was in flight on it is lost.
    LinkDown {
        peer: ServerId,
    },
    /// A link to `peer` opened.
    LinkUp {
        peer: ServerId,
    },
}

/// A disk write, to be made durable after every earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    AcceptedEpoch(u32),
    CurrentEpoch(u32),
    Append(Proposal),
    /// Drop the logged txns after this zxid.
    Truncate(Zxid),
}

/// The sync a leader chose for a follower (for the host's counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SyncKind {
    Diff,
    Trunc,
    TruncThenDiff,
    Snap,
}

/// What this server is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    /// Elected, handshake in progress.
    Joining {
        leader: ServerId,
    },
    Following {
        leader: ServerId,
        epoch: u32,
    },
    Leading {
        epoch: u32,
    },
}

/// What the host must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: ServerId,
        msg: Msg,
    },
    Write(Write),
    /// Leader: send `to` a [`Msg::Snap`] of the tree as it stands now (it holds exactly the
    /// txns committed so far), before any later output.
    SendSnapshot {
        to: ServerId,
    },
    /// Follower: replace the tree by this state, and durably replace the snapshot and the
    /// whole log by it (one write, in order with the others).
    InstallSnapshot {
        zxid: Zxid,
        state: Vec<u8>,
    },
    /// Apply this txn to the tree (and answer its client, if it is ours).
    Commit(Proposal),
    /// A `sync` asked with [`Peer::sync`] (here, or at a follower) is done: every txn
    /// proposed before it is committed and applied here.
    SyncDone {
        token: Vec<u8>,
    },
    /// The leader received a follower's ping carrying session touches.
    Pinged {
        from: ServerId,
        payload: Vec<u8>,
    },
    /// A read barrier asked with [`Peer::read_barrier`] passed: serve the read now; it
    /// sees every write committed anywhere before the barrier was asked.
    ReadReady {
        token: u64,
    },
    /// The barrier cannot pass here (this server stopped leading or following): fail the
    /// read rather than answer it from possibly stale state.
    ReadFailed {
        token: u64,
    },
    /// The leader received a forwarded write: prepare it and [`Peer::propose`] it.
    Request {
        from: ServerId,
        data: Vec<u8>,
    },
    Role(Role),
    /// Leader: the sync chosen for a follower.
    Synced {
        to: ServerId,
        kind: SyncKind,
    },
    /// Why this server went back to looking (for the log).
    Abandoned(&'static str),
    /// The configuration changed (a reconfiguration committed, or one learnt from a peer):
    /// persist it (ZooKeeper's dynamic configuration file) and update the links.
    ConfigChanged(Membership),
    /// Something only a broken protocol could produce (e.g. truncating a committed txn).
    Violation(&'static str),
}

/// Why a write cannot be proposed here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// This server is not an established leader (or is handing leadership over).
    NotLeader,
    /// The zxid counter of this epoch is used up (a new epoch is on its way).
    CounterExhausted,
    /// Another reconfiguration is not committed yet.
    ReconfigInProgress,
}

/// Why leadership cannot be handed to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffError {
    /// This server is not an established leader.
    NotLeader,
    /// The target is not a synced voting follower of this leader.
    NotAFollower,
}

/// What a durable write unblocks, in the role generation that asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    AcceptedEpoch(u32),
    CurrentEpoch(u32),
    Append(Zxid),
    Other,
}

#[derive(Debug)]
struct Leading {
    handshake: LeaderHandshake,
    /// Present once established.
    broadcast: Option<broadcast::Leader>,
    epoch: u32,
    /// Followers that were sent their sync: they get every proposal from then on.
    synced: BTreeSet<ServerId>,
    last_heard: BTreeMap<ServerId, Millis>,
    next_ping: Millis,
    /// `sync` requests waiting for the proposals made before them: (asker, token, zxid).
    syncs: Vec<(ServerId, Vec<u8>, Zxid)>,
    /// Leadership is being handed to this server once everything proposed is committed;
    /// no new proposals meanwhile.
    handoff: Option<ServerId>,
    /// Barriers waiting for the next confirmation round: (asker, what).
    reads_next: Vec<(ServerId, Barrier)>,
    /// The confirmation round in flight.
    round: Option<ConfirmRound>,
    /// Rounds started (the next round's id).
    rounds: u64,
}

/// A leadership confirmation round: a quorum answering [`Msg::Confirm`] proves nobody
/// else can have committed anything this leader does not have, so every read barrier
/// that arrived before it began may be served at `zxid`.
#[derive(Debug)]
struct ConfirmRound {
    id: u64,
    /// The commit index when the round began.
    zxid: Zxid,
    acks: BTreeSet<ServerId>,
    reads: Vec<(ServerId, Barrier)>,
}

/// What waits for a confirmation round.
#[derive(Debug)]
enum Barrier {
    /// A linearizable read (the asker's token).
    Read(u64),
    /// A `sync`: answered once its proposals are committed too. Confirming leadership
    /// first means a leader that lost its quorum without noticing yet cannot answer it.
    Sync { token: Vec<u8>, upto: Zxid },
}

#[derive(Debug)]
struct Following {
    leader: ServerId,
    handshake: FollowerHandshake,
    newleader_seen: bool,
    /// The end of the leader's history, as synced before NEWLEADER.
    history_end: Zxid,
    /// Broadcast messages after NEWLEADER, before UPTODATE.
    buffer: Vec<broadcast::Msg>,
    broadcast: Option<broadcast::Follower>,
    epoch: u32,
    last_heard: Millis,
    next_ping: Millis,
    /// The barriers sent to the leader in one `ReadIndex` (its id, their tokens): one
    /// request in flight at a time, so one confirmation serves them all.
    reads_asked: Option<(u64, Vec<u64>)>,
    /// Barriers that came while one was in flight: they go in the next request (a round
    /// must begin after the reads it serves arrived).
    reads_waiting: Vec<u64>,
    /// Requests sent (the next one's id).
    read_batches: u64,
    /// Barriers the leader passed, waiting for their zxid to be applied here.
    reads_applying: Vec<(Zxid, u64)>,
}

#[derive(Debug)]
enum State {
    Looking,
    Leading(Box<Leading>),
    Following(Box<Following>),
}

/// One ensemble member.
#[derive(Debug)]
pub struct Peer {
    cfg: Config,
    now: Millis,
    accepted_epoch: u32,
    current_epoch: u32,
    /// The snapshot the log continues.
    base: Zxid,
    log: Vec<Proposal>,
    committed: Zxid,
    writes_issued: u64,
    pending: VecDeque<(u64, u64, Pending)>,
    /// Bumped at every role change, so a write finishing late cannot unblock a newer role.
    generation: u64,
    election: Election,
    state: State,
    /// Reconfigurations in the log not yet committed here, by zxid.
    proposed: BTreeMap<Zxid, Membership>,
}

impl Peer {
    /// A server starting from what its disk holds; it starts looking at once. The tree the
    /// host loaded holds the snapshot only: the logged txns after it are committed (and
    /// applied) once a leader confirms them.
    pub fn new(cfg: Config, durable: Durable, now: Millis, out: &mut Vec<Output>) -> Peer {
        let member = Member {
            me: cfg.me,
            quorum: cfg.quorum.clone(),
            peers: cfg.members.clone(),
            timing: cfg.election,
        };
        // A snapshot can hold txns whose own log records were never made durable here (they
        // were committed by the quorum before this server's fsync): the log continues the
        // snapshot, so records it already covers are dropped.
        let mut durable = durable;
        durable.log.retain(|p| p.zxid > durable.snapshot_zxid);
        let proposed = std::mem::take(&mut durable.proposed_configs)
            .into_iter()
            .filter(|m| m.version > cfg.config_version)
            .map(|m| (m.version, m))
            .collect();
        let last = durable
            .log
            .last()
            .map(|p| p.zxid)
            .unwrap_or(durable.snapshot_zxid);
        let election = Election::new(&member, last, durable.current_epoch, 0, now);
        let mut peer = Peer {
            cfg,
            now,
            accepted_epoch: durable.accepted_epoch,
            current_epoch: durable.current_epoch,
            base: durable.snapshot_zxid,
            log: durable.log,
            committed: durable.snapshot_zxid,
            writes_issued: 0,
            pending: VecDeque::new(),
            generation: 0,
            election,
            state: State::Looking,
            proposed,
        };
        peer.look("starting", out);
        peer
    }

    pub fn id(&self) -> ServerId {
        self.cfg.me
    }

    pub fn role(&self) -> Role {
        match &self.state {
            State::Looking => Role::Looking,
            State::Leading(l) => match l.broadcast {
                Some(_) => Role::Leading { epoch: l.epoch },
                None => Role::Joining {
                    leader: self.cfg.me,
                },
            },
            State::Following(f) => match f.broadcast {
                Some(_) => Role::Following {
                    leader: f.leader,
                    epoch: f.epoch,
                },
                None => Role::Joining { leader: f.leader },
            },
        }
    }

    /// Leader: the followers that were synced and get proposals (`mntr`'s
    /// `zk_synced_followers`). Empty otherwise.
    pub fn synced_followers(&self) -> Vec<ServerId> {
        match &self.state {
            State::Leading(l) if l.broadcast.is_some() => l.synced.iter().copied().collect(),
            _ => Vec::new(),
        }
    }

    /// Leader: each follower it has heard from, whether it is synced, how many outstanding
    /// proposals it has not acknowledged, and how long ago it was last heard from (ms).
    /// Empty otherwise.
    pub fn follower_progress(&self) -> Vec<(ServerId, bool, usize, u64)> {
        match &self.state {
            State::Leading(l) => l
                .last_heard
                .iter()
                .map(|(id, at)| {
                    let unacked = l.broadcast.as_ref().map_or(0, |b| b.unacked_by(*id));
                    (
                        *id,
                        l.synced.contains(id),
                        unacked,
                        self.now.saturating_sub(*at),
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// How long ago this server last knew it was in touch with an established leader, in
    /// ms: a follower, since it last heard from its leader; a leader, the age within which
    /// a quorum (itself included) was heard from. `None` when it is neither (for
    /// `bounded(ms)` reads: state this recent is served locally).
    pub fn contact_age(&self) -> Option<Millis> {
        match &self.state {
            State::Following(f) if f.broadcast.is_some() => {
                Some(self.now.saturating_sub(f.last_heard))
            }
            State::Leading(l) if l.broadcast.is_some() => {
                let mut ages: Vec<(Millis, ServerId)> = l
                    .synced
                    .iter()
                    .filter_map(|id| {
                        l.last_heard
                            .get(id)
                            .map(|t| (self.now.saturating_sub(*t), *id))
                    })
                    .collect();
                ages.sort();
                let mut heard = BTreeSet::from([self.cfg.me]);
                if self.cfg.quorum.contains_quorum(&heard) {
                    return Some(0);
                }
                for (age, id) in ages {
                    heard.insert(id);
                    if self.cfg.quorum.contains_quorum(&heard) {
                        return Some(age);
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// The last txn committed (and handed to the tree).
    pub fn committed(&self) -> Zxid {
        self.committed
    }

    /// The last txn in the log (durable or on its way).
    pub fn last_logged(&self) -> Zxid {
        self.log.last().map(|p| p.zxid).unwrap_or(self.base)
    }

    pub fn accepted_epoch(&self) -> u32 {
        self.accepted_epoch
    }

    pub fn current_epoch(&self) -> u32 {
        self.current_epoch
    }

    /// The zxid the next [`Peer::propose`] will get, when this server leads.
    pub fn next_zxid(&self) -> Result<Zxid, NotReady> {
        match &self.state {
            State::Leading(l) if l.handoff.is_some() => Err(NotReady::NotLeader),
            State::Leading(l) => match &l.broadcast {
                Some(b) => b.next_zxid().ok_or(NotReady::CounterExhausted),
                None => Err(NotReady::NotLeader),
            },
            _ => Err(NotReady::NotLeader),
        }
    }

    /// Leader: hands leadership to `to` (a synced voting follower) before maintenance:
    /// no new proposals; once everything proposed is committed, every follower is told to
    /// follow `to`, and this server follows it too. No election, no lost write.
    pub fn hand_off(&mut self, to: ServerId, out: &mut Vec<Output>) -> Result<(), HandoffError> {
        let me = self.cfg.me;
        let voter = self.cfg.quorum.weight(to) > 0;
        match &mut self.state {
            State::Leading(l) if l.broadcast.is_some() => {
                if (to != me && !l.synced.contains(&to)) || !voter {
                    return Err(HandoffError::NotAFollower);
                }
                l.handoff = Some(to);
            }
            _ => return Err(HandoffError::NotLeader),
        }
        self.try_hand_off(out);
        Ok(())
    }

    /// Leader with a handoff pending: once nothing is outstanding, tells the followers
    /// (after their last commit on each link) and follows the new leader.
    fn try_hand_off(&mut self, out: &mut Vec<Output>) {
        let committed = self.committed;
        let epoch = self.current_epoch;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        let (Some(to), Some(b)) = (l.handoff, &l.broadcast) else {
            return;
        };
        if b.outstanding().next().is_some() {
            return;
        }
        for &f in &l.synced {
            out.push(Output::Send {
                to: f,
                msg: Msg::Handoff {
                    to,
                    zxid: committed,
                    epoch,
                },
            });
        }
        let me = self.cfg.me;
        let why = if to == me {
            "a new epoch: the zxid counter is used up"
        } else {
            "handing leadership over"
        };
        self.designated(to, committed, epoch, why, out);
    }

    /// Follows (or leads, when it is this server) the designated `leader` without a vote.
    fn designated(
        &mut self,
        leader: ServerId,
        zxid: Zxid,
        epoch: u32,
        why: &'static str,
        out: &mut Vec<Output>,
    ) {
        self.fail_reads(out);
        self.generation += 1;
        out.push(Output::Abandoned(why));
        self.state = State::Looking;
        out.push(Output::Role(Role::Looking));
        let mut e_out = Vec::new();
        self.election.designate(leader, zxid, epoch, &mut e_out);
        self.election_outputs(e_out, out);
    }

    /// Leader: proposes a reconfiguration txn (host-encoded) to `quorum` over `members`.
    /// It commits only with a quorum of both configurations (as does everything proposed
    /// after it until then); each server switches when it commits it ([`Peer::apply_config`]).
    pub fn propose_reconfig(
        &mut self,
        data: impl Into<Bytes>,
        quorum: Quorum,
        out: &mut Vec<Output>,
    ) -> Result<Zxid, NotReady> {
        if self.reconfig_in_flight() {
            return Err(NotReady::ReconfigInProgress);
        }
        let mut b_out = Vec::new();
        let me = self.cfg.me;
        let zxid = match &mut self.state {
            State::Leading(l) if l.handoff.is_some() => return Err(NotReady::NotLeader),
            State::Leading(l) => match &mut l.broadcast {
                Some(b) => {
                    let zxid =
                        b.propose_reconfig(data, quorum, &mut b_out)
                            .map_err(|e| match e {
                                broadcast::ProposeError::ReconfigInProgress => {
                                    NotReady::ReconfigInProgress
                                }
                                broadcast::ProposeError::CounterExhausted => {
                                    NotReady::CounterExhausted
                                }
                            })?;
                    if b.next_zxid().is_none() {
                        // The reconfiguration took the epoch's last zxid: renew the epoch
                        // once it commits, as after any other proposal.
                        l.handoff = Some(me);
                    }
                    zxid
                }
                None => return Err(NotReady::NotLeader),
            },
            _ => return Err(NotReady::NotLeader),
        };
        self.broadcast_outputs(b_out, out);
        self.try_hand_off(out);
        Ok(zxid)
    }

    /// Whether a reconfiguration is proposed and not committed (ZooKeeper answers another
    /// with RECONFIGINPROGRESS).
    pub fn reconfig_in_flight(&self) -> bool {
        match &self.state {
            State::Leading(l) => l.broadcast.as_ref().is_some_and(|b| b.reconfig_in_flight()),
            _ => false,
        }
    }

    /// The configuration in force (the last committed one).
    pub fn membership(&self) -> Membership {
        Membership {
            version: self.cfg.config_version,
            quorum: self.cfg.quorum.clone(),
            members: self.cfg.members.clone(),
        }
    }

    /// A reconfiguration txn was appended to this server's log (the host decodes txns):
    /// until it commits, a leader elected with it in its log needs both quorums.
    pub fn proposed_config(&mut self, m: Membership) {
        if m.version > self.cfg.config_version {
            self.proposed.insert(m.version, m);
        }
    }

    /// A configuration is in force: every server calls this when it applies a committed
    /// reconfiguration txn (the leader included), and a peer's newer configuration is
    /// adopted the same way. Elections, handshakes and liveness checks use it from now on; a
    /// leader that no longer votes hands leadership to a voter of the new configuration.
    pub fn apply_config(&mut self, m: Membership, out: &mut Vec<Output>) {
        if m.version <= self.cfg.config_version {
            return;
        }
        self.cfg.quorum = m.quorum.clone();
        self.cfg.members = m.members.clone();
        self.cfg.config_version = m.version;
        self.proposed.retain(|z, _| *z > m.version);
        self.election.set_quorum(m.quorum.clone(), &m.members);
        if let State::Leading(l) = &mut self.state {
            if let Some(b) = &mut l.broadcast {
                b.set_quorum(m.quorum.clone(), m.version);
            }
        }
        out.push(Output::ConfigChanged(m));
        let me = self.cfg.me;
        if self.cfg.quorum.weight(me) > 0 {
            return;
        }
        let next = match &self.state {
            State::Leading(l) if l.broadcast.is_some() && l.handoff.is_none() => l
                .synced
                .iter()
                .copied()
                .filter(|id| self.cfg.quorum.weight(*id) > 0)
                .max(),
            _ => None,
        };
        if let Some(to) = next {
            let _ = self.hand_off(to, out);
        }
    }

    /// Leader: numbers, logs and broadcasts a prepared txn.
    /// `data` may be a `Vec` or `Bytes`: a caller that already holds the encoding as
    /// `Bytes` hands it over without a copy.
    pub fn propose(
        &mut self,
        data: impl Into<Bytes>,
        out: &mut Vec<Output>,
    ) -> Result<Zxid, NotReady> {
        let me = self.cfg.me;
        let mut b_out = Vec::new();
        let zxid = match &mut self.state {
            State::Leading(l) if l.handoff.is_some() => return Err(NotReady::NotLeader),
            State::Leading(l) => match &mut l.broadcast {
                Some(b) => {
                    let zxid = b
                        .propose(data, &mut b_out)
                        .map_err(|_| NotReady::CounterExhausted)?;
                    if b.next_zxid().is_none() {
                        // The epoch's counter is used up: a new epoch under this same
                        // leader, by handing leadership to itself (ZooKeeper holds an
                        // election instead).
                        l.handoff = Some(me);
                    }
                    zxid
                }
                None => return Err(NotReady::NotLeader),
            },
            _ => return Err(NotReady::NotLeader),
        };
        self.broadcast_outputs(b_out, out);
        self.try_hand_off(out);
        Ok(zxid)
    }

    /// Follower: sends a client's write to the leader. False when there is no established
    /// leader to send it to.
    pub fn forward(&mut self, data: Vec<u8>, out: &mut Vec<Output>) -> bool {
        match &self.state {
            State::Following(f) if f.broadcast.is_some() => {
                out.push(Output::Send {
                    to: f.leader,
                    msg: Msg::Request(data),
                });
                true
            }
            _ => false,
        }
    }

    /// Follower: sends the host's session touches to the leader now (ZooKeeper's followers
    /// report their clients' sessions with each ping). False when not following.
    pub fn ping_leader(&mut self, payload: Vec<u8>, out: &mut Vec<Output>) -> bool {
        match &self.state {
            State::Following(f) if f.broadcast.is_some() => {
                out.push(Output::Send {
                    to: f.leader,
                    msg: Msg::Ping(payload),
                });
                true
            }
            _ => false,
        }
    }

    /// ZooKeeper's `sync`: `token` comes back as [`Output::SyncDone`] once everything the
    /// leader proposed before it is committed here, and a quorum has confirmed the leader
    /// still leads (a round shared with the read barriers: so a leader cut off from its
    /// quorum, not knowing it yet, cannot answer a sync with stale state). On the leader, `from` is this server;
    /// a follower forwards its client's sync (host-encoded) and the leader calls this with
    /// the follower's id. False when this server is not an established leader or follower.
    pub fn sync(&mut self, from: ServerId, token: Vec<u8>, out: &mut Vec<Output>) -> bool {
        match &mut self.state {
            State::Leading(l) => {
                let Some(b) = &l.broadcast else {
                    return false;
                };
                let upto = b.outstanding().last().unwrap_or(self.committed);
                l.reads_next.push((from, Barrier::Sync { token, upto }));
                self.start_round(out);
                true
            }
            _ => false,
        }
    }

    /// A read barrier for a linearizable read: [`Output::ReadReady`] with `token` comes
    /// once a quorum has confirmed this server's leader still leads (a round started after
    /// this call, shared by every barrier waiting for it) and this server has applied the
    /// leader's commit index as of then. No log write. [`Output::ReadFailed`] if this
    /// server stops leading or following first. False when it is not an established
    /// leader or follower (the host fails the read at once).
    pub fn read_barrier(&mut self, token: u64, out: &mut Vec<Output>) -> bool {
        let me = self.cfg.me;
        match &mut self.state {
            State::Leading(l) if l.broadcast.is_some() => {
                l.reads_next.push((me, Barrier::Read(token)));
                self.start_round(out);
                true
            }
            State::Following(f) if f.broadcast.is_some() => {
                f.reads_waiting.push(token);
                Self::ask_read_index(f, out);
                true
            }
            _ => false,
        }
    }

    /// Follower: sends the waiting barriers to the leader as one request, unless one is in
    /// flight.
    fn ask_read_index(f: &mut Following, out: &mut Vec<Output>) {
        if f.reads_asked.is_some() || f.reads_waiting.is_empty() {
            return;
        }
        f.read_batches += 1;
        let id = f.read_batches;
        f.reads_asked = Some((id, std::mem::take(&mut f.reads_waiting)));
        out.push(Output::Send {
            to: f.leader,
            msg: Msg::ReadIndex(id),
        });
    }

    /// Leader: starts a confirmation round for the waiting barriers, unless one is in
    /// flight (they wait for the next: a round must begin after the reads it serves).
    fn start_round(&mut self, out: &mut Vec<Output>) {
        let me = self.cfg.me;
        let committed = self.committed;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        if l.round.is_some() || l.reads_next.is_empty() {
            return;
        }
        l.rounds += 1;
        let id = l.rounds;
        l.round = Some(ConfirmRound {
            id,
            zxid: committed,
            acks: BTreeSet::from([me]),
            reads: std::mem::take(&mut l.reads_next),
        });
        for &to in &l.synced {
            out.push(Output::Send {
                to,
                msg: Msg::Confirm(id),
            });
        }
        self.finish_round(out);
    }

    /// Leader: once a quorum confirmed the round in flight, its barriers pass; the next
    /// round starts for those that came meanwhile.
    fn finish_round(&mut self, out: &mut Vec<Output>) {
        let me = self.cfg.me;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        let confirmed = l
            .round
            .as_ref()
            .is_some_and(|r| self.cfg.quorum.contains_quorum(&r.acks));
        if !confirmed {
            return;
        }
        let Some(round) = l.round.take() else {
            return;
        };
        for (asker, barrier) in round.reads {
            match barrier {
                Barrier::Read(token) if asker == me => out.push(Output::ReadReady { token }),
                Barrier::Read(token) => out.push(Output::Send {
                    to: asker,
                    msg: Msg::ReadIndexDone {
                        id: token,
                        zxid: round.zxid,
                    },
                }),
                Barrier::Sync { token, upto } => l.syncs.push((asker, token, upto)),
            }
        }
        self.release_syncs(out);
        self.start_round(out);
    }

    /// Follower: the passed barriers whose zxid is now applied.
    fn release_reads(&mut self, out: &mut Vec<Output>) {
        let committed = self.committed;
        let State::Following(f) = &mut self.state else {
            return;
        };
        f.reads_applying.retain(|&(zxid, token)| {
            if zxid <= committed {
                out.push(Output::ReadReady { token });
                false
            } else {
                true
            }
        });
    }

    /// Every barrier waiting here fails: this server leaves its role.
    fn fail_reads(&mut self, out: &mut Vec<Output>) {
        let me = self.cfg.me;
        match &mut self.state {
            State::Leading(l) => {
                let waiting = l.round.take().map(|r| r.reads).unwrap_or_default();
                for (asker, barrier) in waiting.into_iter().chain(l.reads_next.drain(..)) {
                    if let (true, Barrier::Read(token)) = (asker == me, barrier) {
                        out.push(Output::ReadFailed { token });
                    }
                }
            }
            State::Following(f) => {
                let asked = f.reads_asked.take().map(|(_, t)| t).unwrap_or_default();
                let waiting = std::mem::take(&mut f.reads_waiting);
                let applying = std::mem::take(&mut f.reads_applying);
                for token in asked
                    .into_iter()
                    .chain(waiting)
                    .chain(applying.into_iter().map(|(_, t)| t))
                {
                    out.push(Output::ReadFailed { token });
                }
            }
            State::Looking => {}
        }
    }

    /// Leader: answers the syncs whose proposals are all committed.
    fn release_syncs(&mut self, out: &mut Vec<Output>) {
        let me = self.cfg.me;
        let committed = self.committed;
        let State::Leading(l) = &mut self.state else {
            return;
        };
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut l.syncs)
            .into_iter()
            .partition(|(_, _, upto)| *upto <= committed);
        l.syncs = waiting;
        for (from, token, _) in done {
            if from == me {
                out.push(Output::SyncDone { token });
            } else {
                out.push(Output::Send {
                    to: from,
                    msg: Msg::SyncDone(token),
                });
            }
        }
    }

    /// The host took a durable snapshot of the tree at `zxid` (committed): the log before it
    /// is no longer needed, and a follower behind it will be sent a snapshot.
    pub fn compact(&mut self, zxid: Zxid) {
        if zxid <= self.base || zxid > self.committed {
            return;
        }
        self.log.retain(|p| p.zxid > zxid);
        self.base = zxid;
    }

    /// Handles one input; what to do goes to `out`, in order.
    pub fn step(&mut self, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Tick { now } => {
                self.now = self.now.max(now);
                self.tick(out);
            }
            Input::DiskDone { upto } => self.disk_done(upto, out),
            Input::LinkDown { peer } => self.link_down(peer, out),
            Input::LinkUp { peer } => {
                let mut e_out = Vec::new();
                self.election.link_up(peer, &mut e_out);
                self.election_outputs(e_out, out);
            }
            Input::Msg { from, msg } => self.message(from, msg, out),
        }
    }

    // ---- roles ----

    fn look(&mut self, why: &'static str, out: &mut Vec<Output>) {
        self.fail_reads(out);
        self.generation += 1;
        out.push(Output::Abandoned(why));
        let member = Member {
            me: self.cfg.me,
            quorum: self.cfg.quorum.clone(),
            peers: self.cfg.members.clone(),
            timing: self.cfg.election,
        };
        let clock = self.election.logical_clock();
        self.election = Election::new(
            &member,
            self.last_logged(),
            self.current_epoch,
            clock,
            self.now,
        );
        self.state = State::Looking;
        out.push(Output::Role(Role::Looking));
        let mut e_out = Vec::new();
        self.election.start(&mut e_out);
        self.election_outputs(e_out, out);
    }

    fn lead(&mut self, out: &mut Vec<Output>) {
        self.fail_reads(out);
        self.generation += 1;
        // A reconfiguration logged but not known committed: establishing this epoch commits
        // it, so a quorum of the new configuration must take part as well as one of the old.
        let quorum = match self.proposed.values().next_back() {
            Some(m) => Quorum::Joint(
                Box::new(self.cfg.quorum.clone()),
                Box::new(m.quorum.clone()),
            ),
            None => self.cfg.quorum.clone(),
        };
        let handshake = LeaderHandshake::new(
            self.cfg.me,
            quorum,
            self.accepted_epoch,
            self.current_epoch,
            self.last_logged(),
            Vec::new(),
            self.now,
            self.cfg.init_limit_ms(),
        );
        self.state = State::Leading(Box::new(Leading {
            handshake,
            broadcast: None,
            epoch: 0,
            synced: BTreeSet::new(),
            last_heard: BTreeMap::new(),
            next_ping: self.now,
            syncs: Vec::new(),
            handoff: None,
            reads_next: Vec::new(),
            round: None,
            rounds: 0,
        }));
        out.push(Output::Role(Role::Joining {
            leader: self.cfg.me,
        }));
    }

    fn follow(&mut self, leader: ServerId, out: &mut Vec<Output>) {
        self.fail_reads(out);
        self.generation += 1;
        let mut d_out = Vec::new();
        let handshake = FollowerHandshake::start(
            leader,
            self.accepted_epoch,
            self.current_epoch,
            self.last_logged(),
            self.now,
            self.cfg.init_limit_ms(),
            &mut d_out,
        );
        self.state = State::Following(Box::new(Following {
            leader,
            handshake,
            newleader_seen: false,
            history_end: 0,
            buffer: Vec::new(),
            broadcast: None,
            epoch: 0,
            last_heard: self.now,
            next_ping: self.now,
            reads_asked: None,
            reads_waiting: Vec::new(),
            read_batches: 0,
            reads_applying: Vec::new(),
        }));
        out.push(Output::Role(Role::Joining { leader }));
        self.handshake_outputs(d_out, out);
    }

    // ---- inputs ----

    fn tick(&mut self, out: &mut Vec<Output>) {
        let now = self.now;
        let sync_limit = self.cfg.sync_limit_ms();
        let tick_ms = self.cfg.tick_ms.max(1);
        match &mut self.state {
            State::Looking => {
                let mut e_out = Vec::new();
                self.election
                    .step(election::Input::Tick { now }, &mut e_out);
                self.election_outputs(e_out, out);
            }
            State::Leading(l) => {
                if l.broadcast.is_none() {
                    self.handshake_input(discovery::Input::Tick { now }, out);
                    return;
                }
                if now >= l.next_ping {
                    l.next_ping = now + tick_ms;
                    for &to in &l.synced {
                        out.push(Output::Send {
                            to,
                            msg: Msg::Ping(Vec::new()),
                        });
                    }
                }
                let mut alive: BTreeSet<ServerId> = l
                    .synced
                    .iter()
                    .copied()
                    .filter(|f| {
                        l.last_heard
                            .get(f)
                            .is_some_and(|t| now.saturating_sub(*t) <= sync_limit)
                    })
                    .collect();
                alive.insert(self.cfg.me);
                if !self.cfg.quorum.contains_quorum(&alive) {
                    self.look("no quorum of followers heard within syncLimit", out);
                }
            }
            State::Following(f) => {
                if f.broadcast.is_none() {
                    self.handshake_input(discovery::Input::Tick { now }, out);
                    return;
                }
                if now.saturating_sub(f.last_heard) > sync_limit {
                    self.look("the leader was silent for syncLimit", out);
                    return;
                }
                if now >= f.next_ping {
                    f.next_ping = now + tick_ms;
                    out.push(Output::Send {
                        to: f.leader,
                        msg: Msg::Ping(Vec::new()),
                    });
                }
            }
        }
    }

    fn link_down(&mut self, peer: ServerId, out: &mut Vec<Output>) {
        match &mut self.state {
            State::Looking => {}
            State::Leading(l) => {
                l.synced.remove(&peer);
                l.last_heard.remove(&peer);
                if let Some(b) = &mut l.broadcast {
                    b.remove_follower(peer);
                }
            }
            State::Following(f) => {
                if f.leader == peer {
                    self.look("the link to the leader broke", out);
                }
            }
        }
    }

    fn disk_done(&mut self, upto: u64, out: &mut Vec<Output>) {
        while let Some(&(seq, generation, what)) = self.pending.front() {
            if seq > upto {
                break;
            }
            self.pending.pop_front();
            match what {
                Pending::AcceptedEpoch(e) => self.accepted_epoch = e,
                Pending::CurrentEpoch(e) => self.current_epoch = e,
                _ => {}
            }
            if generation != self.generation {
                continue;
            }
            match what {
                Pending::AcceptedEpoch(_) => {
                    self.handshake_input(discovery::Input::AcceptedEpochPersisted, out)
                }
                Pending::CurrentEpoch(_) => {
                    self.handshake_input(discovery::Input::CurrentEpochPersisted, out)
                }
                Pending::Append(zxid) => {
                    let mut b_out = Vec::new();
                    match &mut self.state {
                        State::Leading(l) => {
                            if let Some(b) = &mut l.broadcast {
                                b.persisted(zxid, &mut b_out);
                            }
                        }
                        State::Following(f) => {
                            if let Some(b) = &mut f.broadcast {
                                b.persisted(zxid, &mut b_out);
                            }
                        }
                        State::Looking => {}
                    }
                    self.broadcast_outputs(b_out, out);
                }
                Pending::Other => {}
            }
        }
    }

    /// Feeds the handshake of whichever role this server is in.
    fn handshake_input(&mut self, input: discovery::Input, out: &mut Vec<Output>) {
        let mut d_out = Vec::new();
        match &mut self.state {
            State::Leading(l) => l.handshake.step(input, &mut d_out),
            State::Following(f) => f.handshake.step(input, &mut d_out),
            State::Looking => return,
        }
        self.handshake_outputs(d_out, out);
    }

    fn message(&mut self, from: ServerId, msg: Msg, out: &mut Vec<Output>) {
        if let Msg::Config(m) = msg {
            // Only committed configurations are sent: a newer one is adopted.
            self.apply_config(m, out);
            return;
        }
        if let Msg::Vote(n) = msg {
            let mut e_out = Vec::new();
            self.election
                .step(election::Input::Msg { from, n }, &mut e_out);
            self.election_outputs(e_out, out);
            return;
        }
        let now = self.now;
        match &mut self.state {
            State::Looking => {}
            State::Leading(l) => {
                l.last_heard.insert(from, now);
                match msg {
                    Msg::Handshake(m) => {
                        if matches!(m, discovery::Msg::FollowerInfo { .. }) {
                            // It starts over: no broadcasts until it is synced again.
                            l.synced.remove(&from);
                            if let Some(b) = &mut l.broadcast {
                                b.remove_follower(from);
                            }
                        }
                        let mut d_out = Vec::new();
                        l.handshake
                            .step(discovery::Input::Msg { from, msg: m }, &mut d_out);
                        self.handshake_outputs(d_out, out);
                    }
                    Msg::Broadcast(m) => {
                        if let Some(b) = &mut l.broadcast {
                            let mut b_out = Vec::new();
                            b.receive(from, m, &mut b_out);
                            self.broadcast_outputs(b_out, out);
                        }
                    }
                    Msg::Request(data) if l.broadcast.is_some() => {
                        out.push(Output::Request { from, data });
                    }
                    Msg::Ping(payload) if l.broadcast.is_some() && !payload.is_empty() => {
                        out.push(Output::Pinged { from, payload });
                    }
                    Msg::ReadIndex(token) if l.broadcast.is_some() => {
                        l.reads_next.push((from, Barrier::Read(token)));
                        self.start_round(out);
                    }
                    Msg::Confirmed(id) => {
                        if let Some(r) = l.round.as_mut().filter(|r| r.id == id) {
                            r.acks.insert(from);
                        }
                        self.finish_round(out);
                    }
                    _ => {}
                }
            }
            State::Following(f) => {
                if from != f.leader {
                    return;
                }
                f.last_heard = now;
                match msg {
                    Msg::Handshake(m) => {
                        if matches!(m, discovery::Msg::NewLeader { .. })
                            && f.handshake.awaiting_sync()
                        {
                            f.newleader_seen = true;
                            f.history_end = self.log.last().map(|p| p.zxid).unwrap_or(self.base);
                        }
                        let last = self.log.last().map(|p| p.zxid).unwrap_or(self.base);
                        f.handshake.synced_to(last);
                        let mut d_out = Vec::new();
                        f.handshake
                            .step(discovery::Input::Msg { from, msg: m }, &mut d_out);
                        self.handshake_outputs(d_out, out);
                    }
                    Msg::Diff(entries) if f.handshake.awaiting_sync() => {
                        for p in entries {
                            if p.zxid <= self.last_logged() {
                                out.push(Output::Violation("DIFF entry not after the log's end"));
                                continue;
                            }
                            self.append(p, out);
                        }
                    }
                    Msg::Trunc(to) if f.handshake.awaiting_sync() => {
                        if to < self.committed || to < self.base {
                            out.push(Output::Violation("TRUNC below a committed txn"));
                            self.look("TRUNC below a committed txn", out);
                            return;
                        }
                        self.log.retain(|p| p.zxid <= to);
                        self.proposed.retain(|z, _| *z <= to);
                        self.write(Write::Truncate(to), Pending::Other, out);
                    }
                    Msg::Snap { zxid, state } if f.handshake.awaiting_sync() => {
                        if zxid < self.committed {
                            out.push(Output::Violation("SNAP older than a committed txn"));
                        }
                        self.base = zxid;
                        self.log.clear();
                        self.proposed.clear();
                        self.committed = zxid;
                        self.writes_issued += 1;
                        self.pending.push_back((
                            self.writes_issued,
                            self.generation,
                            Pending::Other,
                        ));
                        out.push(Output::InstallSnapshot { zxid, state });
                    }
                    Msg::Broadcast(m) => {
                        if let Some(b) = &mut f.broadcast {
                            let mut b_out = Vec::new();
                            b.receive(from, m, &mut b_out);
                            self.broadcast_outputs(b_out, out);
                        } else if f.newleader_seen {
                            f.buffer.push(m);
                        }
                    }
                    Msg::Ping(_) => {}
                    Msg::Confirm(id) => out.push(Output::Send {
                        to: from,
                        msg: Msg::Confirmed(id),
                    }),
                    Msg::ReadIndexDone { id, zxid }
                        if f.reads_asked.as_ref().is_some_and(|(a, _)| *a == id) =>
                    {
                        if let Some((_, tokens)) = f.reads_asked.take() {
                            f.reads_applying
                                .extend(tokens.into_iter().map(|t| (zxid, t)));
                        }
                        Self::ask_read_index(f, out);
                        self.release_reads(out);
                    }
                    Msg::SyncDone(token) if f.broadcast.is_some() => {
                        out.push(Output::SyncDone { token });
                    }
                    Msg::Handoff { to, zxid, epoch } if f.broadcast.is_some() => {
                        self.designated(to, zxid, epoch, "the leader handed leadership over", out);
                    }
                    _ => {}
                }
            }
        }
    }

    // ---- outputs of the parts ----

    fn write(&mut self, w: Write, what: Pending, out: &mut Vec<Output>) {
        self.writes_issued += 1;
        self.pending
            .push_back((self.writes_issued, self.generation, what));
        out.push(Output::Write(w));
    }

    fn append(&mut self, p: Proposal, out: &mut Vec<Output>) {
        let zxid = p.zxid;
        self.log.push(p.clone());
        self.write(Write::Append(p), Pending::Append(zxid), out);
    }

    /// Hands every logged txn up to `upto` to the tree.
    fn commit_through(&mut self, upto: Zxid, out: &mut Vec<Output>) {
        // The log is in zxid order: find the first uncommitted entry rather than scanning
        // the whole log at every commit.
        let from = self.log.partition_point(|p| p.zxid <= self.committed);
        for p in self.log[from..].iter().take_while(|p| p.zxid <= upto) {
            out.push(Output::Commit(p.clone()));
        }
        self.committed = self.committed.max(upto);
    }

    fn election_outputs(&mut self, e_out: Vec<election::Output>, out: &mut Vec<Output>) {
        for o in e_out {
            match o {
                election::Output::Send { to, n } => {
                    if self.cfg.config_version > 0 {
                        out.push(Output::Send {
                            to,
                            msg: Msg::Config(self.membership()),
                        });
                    }
                    out.push(Output::Send {
                        to,
                        msg: Msg::Vote(n),
                    })
                }
                election::Output::Decided { leader, state, .. } => {
                    if !matches!(self.state, State::Looking) {
                        continue;
                    }
                    match state {
                        PeerState::Leading => self.lead(out),
                        PeerState::Following | PeerState::Observing => self.follow(leader, out),
                        PeerState::Looking => {}
                    }
                }
            }
        }
    }

    fn handshake_outputs(&mut self, d_out: Vec<discovery::Output>, out: &mut Vec<Output>) {
        for o in d_out {
            match o {
                discovery::Output::Send { to, msg } => {
                    let is_newleader = matches!(msg, discovery::Msg::NewLeader { .. });
                    out.push(Output::Send {
                        to,
                        msg: Msg::Handshake(msg),
                    });
                    if is_newleader {
                        self.after_newleader(to, out);
                    }
                }
                discovery::Output::PersistAcceptedEpoch(e) => {
                    self.write(Write::AcceptedEpoch(e), Pending::AcceptedEpoch(e), out)
                }
                discovery::Output::PersistCurrentEpoch(e) => {
                    self.write(Write::CurrentEpoch(e), Pending::CurrentEpoch(e), out)
                }
                discovery::Output::Sync { to, peer_last, .. } => {
                    self.sync_follower(to, peer_last, out)
                }
                discovery::Output::Established { epoch } => self.established(epoch, out),
                discovery::Output::FollowerSynced { id } => {
                    if let State::Leading(l) = &mut self.state {
                        if let Some(b) = &mut l.broadcast {
                            b.add_follower(id);
                        }
                    }
                }
                discovery::Output::Abandon { reason } => {
                    self.look(reason, out);
                    return;
                }
            }
        }
    }

    /// Leader: the sync data for `to`, whose log ends at `peer_last`.
    fn sync_follower(&mut self, to: ServerId, peer_last: Zxid, out: &mut Vec<Output>) {
        let State::Leading(l) = &mut self.state else {
            return;
        };
        // Before establishment the whole log is the new epoch's history; after, only what
        // is committed (proposals in flight follow NEWLEADER).
        let history_end = if l.broadcast.is_some() {
            self.committed
        } else {
            self.log.last().map(|p| p.zxid).unwrap_or(self.base)
        };
        let mut zxids = vec![self.base];
        zxids.extend(
            self.log
                .iter()
                .map(|p| p.zxid)
                .take_while(|z| *z <= history_end),
        );
        let plan = plan_sync(&zxids, history_end, peer_last);
        l.synced.insert(to);
        let diff = |after: Zxid| -> Vec<Proposal> {
            self.log
                .iter()
                .filter(|p| p.zxid > after && p.zxid <= history_end)
                .cloned()
                .collect()
        };
        let kind = match plan {
            SyncPlan::Diff { after } => {
                out.push(Output::Send {
                    to,
                    msg: Msg::Diff(diff(after)),
                });
                SyncKind::Diff
            }
            SyncPlan::Trunc { to: at } => {
                out.push(Output::Send {
                    to,
                    msg: Msg::Trunc(at),
                });
                SyncKind::Trunc
            }
            SyncPlan::TruncThenDiff { to: at } => {
                out.push(Output::Send {
                    to,
                    msg: Msg::Trunc(at),
                });
                out.push(Output::Send {
                    to,
                    msg: Msg::Diff(diff(at)),
                });
                SyncKind::TruncThenDiff
            }
            SyncPlan::Snap => {
                out.push(Output::SendSnapshot { to });
                out.push(Output::Send {
                    to,
                    msg: Msg::Diff(diff(self.committed)),
                });
                SyncKind::Snap
            }
        };
        out.push(Output::Synced { to, kind });
    }

    /// Leader, after NEWLEADER to `to`: once established, the proposals in flight follow,
    /// and `to` gets every later one.
    fn after_newleader(&mut self, to: ServerId, out: &mut Vec<Output>) {
        let State::Leading(l) = &mut self.state else {
            return;
        };
        let Some(b) = &mut l.broadcast else {
            return;
        };
        for p in self.log.iter().filter(|p| p.zxid > self.committed) {
            out.push(Output::Send {
                to,
                msg: Msg::Broadcast(broadcast::Msg::Proposal(p.clone())),
            });
        }
        b.add_follower(to);
    }

    fn established(&mut self, epoch: u32, out: &mut Vec<Output>) {
        let last = self.last_logged();
        self.election.established(epoch);
        match &mut self.state {
            State::Leading(l) => {
                let mut b =
                    broadcast::Leader::new(self.cfg.me, self.cfg.quorum.clone(), epoch, last);
                b.set_counter_max(self.cfg.zxid_counter_max);
                for &f in &l.synced {
                    b.add_follower(f);
                    l.last_heard.insert(f, self.now);
                }
                l.broadcast = Some(b);
                l.epoch = epoch;
                l.next_ping = self.now;
                self.commit_through(last, out);
                out.push(Output::Role(Role::Leading { epoch }));
            }
            State::Following(f) => {
                let history_end = f.history_end;
                let leader = f.leader;
                let mut b = broadcast::Follower::new(leader, last, history_end);
                f.epoch = epoch;
                let buffered = std::mem::take(&mut f.buffer);
                let mut b_out = Vec::new();
                for m in buffered {
                    b.receive(leader, m, &mut b_out);
                }
                f.broadcast = Some(b);
                self.commit_through(history_end, out);
                out.push(Output::Role(Role::Following { leader, epoch }));
                self.broadcast_outputs(b_out, out);
            }
            State::Looking => {}
        }
    }

    fn broadcast_outputs(&mut self, b_out: Vec<broadcast::Output>, out: &mut Vec<Output>) {
        let mut committed = false;
        for o in b_out {
            match o {
                broadcast::Output::Persist(p) => self.append(p, out),
                broadcast::Output::Send { to, msg } => out.push(Output::Send {
                    to,
                    msg: Msg::Broadcast(msg),
                }),
                broadcast::Output::Commit(zxid) => {
                    self.commit_through(zxid, out);
                    committed = true;
                }
                broadcast::Output::Resync { reason } => {
                    self.look(reason, out);
                    return;
                }
            }
        }
        if committed {
            // Only after the COMMITs just queued: a follower must apply them before it
            // answers a sync or follows a new leader.
            self.release_syncs(out);
            self.release_reads(out);
            self.try_hand_off(out);
        }
    }
}
