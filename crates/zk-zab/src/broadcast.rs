//! The broadcast phase of Zab: the leader numbers each txn (epoch | counter), logs it and
//! sends it to the synced followers; each follower logs it and, only once it is durable,
//! acknowledges; when a quorum (the leader included) holds it durably, the leader commits it,
//! strictly in zxid order, and tells the followers, which commit in the same order.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::quorum::Quorum;
use crate::{ServerId, Zxid};

/// A txn on its way through the ensemble; `data` is opaque here (an encoded txn entry),
/// shared rather than copied by the log, each follower's message and the commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub zxid: Zxid,
    pub data: Bytes,
}

/// Broadcast messages between leader and followers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    Proposal(Proposal),
    Ack(Zxid),
    Commit(Zxid),
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Append to the txn log and report back with `persisted(zxid)` once durable.
    Persist(Proposal),
    Send {
        to: ServerId,
        msg: Msg,
    },
    /// Apply this txn to the tree (and answer its client).
    Commit(Zxid),
    /// This follower's stream is inconsistent with the leader's: resynchronise (back to
    /// election / sync).
    Resync {
        reason: &'static str,
    },
}

/// Why the leader cannot propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProposeError {
    /// The 32-bit counter of this epoch is used up: a new epoch is needed.
    CounterExhausted,
    /// Another reconfiguration is not committed yet.
    ReconfigInProgress,
}

/// The leader's side.
#[derive(Debug, Clone)]
pub struct Leader {
    me: ServerId,
    quorum: Quorum,
    epoch: u32,
    counter: u32,
    /// The highest counter this epoch may use (`u32::MAX`; lower in tests).
    counter_max: u32,
    followers: BTreeSet<ServerId>,
    /// Proposed, not yet committed: who holds each durably.
    outstanding: BTreeMap<Zxid, BTreeSet<ServerId>>,
    last_committed: Zxid,
    /// A reconfiguration in flight: its zxid and the new quorum. It, and every proposal
    /// after it, commits only with a quorum of the old configuration and one of the new.
    joint: Option<(Zxid, Quorum)>,
}

impl Leader {
    /// Proposals outstanding that `follower` has not acknowledged yet: how far behind it
    /// is (0 when caught up).
    pub fn unacked_by(&self, follower: ServerId) -> usize {
        self.outstanding
            .values()
            .filter(|holders| !holders.contains(&follower))
            .count()
    }

    /// A leader of `epoch` whose log is committed up to `last_committed`.
    pub fn new(me: ServerId, quorum: Quorum, epoch: u32, last_committed: Zxid) -> Leader {
        Leader {
            me,
            quorum,
            epoch,
            counter: 0,
            counter_max: u32::MAX,
            followers: BTreeSet::new(),
            outstanding: BTreeMap::new(),
            last_committed,
            joint: None,
        }
    }

    /// The configuration `quorum` (committed at `version`) replaces the current one; a
    /// reconfiguration in flight at or before it is settled.
    pub fn set_quorum(&mut self, quorum: Quorum, version: Zxid) {
        if self.joint.as_ref().is_some_and(|(z, _)| *z <= version) {
            self.joint = None;
        }
        self.quorum = quorum;
    }

    /// Whether a reconfiguration is proposed and not yet committed.
    pub fn reconfig_in_flight(&self) -> bool {
        self.joint.is_some()
    }

    /// Proposes a reconfiguration to `quorum` (ZooKeeper's reconfig txn): from it on, commits
    /// need both quorums; once it commits, only the new one. One at a time.
    pub fn propose_reconfig(
        &mut self,
        data: impl Into<Bytes>,
        quorum: Quorum,
        out: &mut Vec<Output>,
    ) -> Result<Zxid, ProposeError> {
        if self.joint.is_some() {
            return Err(ProposeError::ReconfigInProgress);
        }
        let zxid = self.propose(data, out)?;
        self.joint = Some((zxid, quorum));
        Ok(zxid)
    }

    pub fn last_committed(&self) -> Zxid {
        self.last_committed
    }

    /// Proposals in flight (for a follower that finishes syncing now).
    pub fn outstanding(&self) -> impl Iterator<Item = Zxid> + '_ {
        self.outstanding.keys().copied()
    }

    /// Lowers the highest counter of this epoch (so tests reach exhaustion).
    pub fn set_counter_max(&mut self, max: u32) {
        self.counter_max = max;
    }

    /// The zxid the next proposal gets; `None` once this epoch's counter is used up.
    pub fn next_zxid(&self) -> Option<Zxid> {
        if self.counter >= self.counter_max {
            return None;
        }
        let counter = self.counter.checked_add(1)?;
        Some((i64::from(self.epoch) << 32) | i64::from(counter))
    }

    /// A synced follower: it gets every later proposal and commit.
    pub fn add_follower(&mut self, id: ServerId) {
        self.followers.insert(id);
    }

    /// A follower whose connection is gone.
    pub fn remove_follower(&mut self, id: ServerId) {
        self.followers.remove(&id);
    }

    /// Numbers and sends a txn; the caller keeps `data` for the commit.
    pub fn propose(
        &mut self,
        data: impl Into<Bytes>,
        out: &mut Vec<Output>,
    ) -> Result<Zxid, ProposeError> {
        if self.counter >= self.counter_max {
            return Err(ProposeError::CounterExhausted);
        }
        self.counter += 1;
        let zxid = (i64::from(self.epoch) << 32) | i64::from(self.counter);
        let p = Proposal {
            zxid,
            data: data.into(),
        };
        self.outstanding.insert(zxid, BTreeSet::new());
        out.push(Output::Persist(p.clone()));
        for &to in &self.followers {
            out.push(Output::Send {
                to,
                msg: Msg::Proposal(p.clone()),
            });
        }
        Ok(zxid)
    }

    /// The leader's own log has `zxid` durably.
    pub fn persisted(&mut self, zxid: Zxid, out: &mut Vec<Output>) {
        let me = self.me;
        self.ack(me, zxid, out);
    }

    /// A message from a follower.
    pub fn receive(&mut self, from: ServerId, msg: Msg, out: &mut Vec<Output>) {
        if let Msg::Ack(zxid) = msg {
            if from == self.me || self.followers.contains(&from) {
                self.ack(from, zxid, out);
            }
        }
    }

    fn ack(&mut self, from: ServerId, zxid: Zxid, out: &mut Vec<Output>) {
        if let Some(acks) = self.outstanding.get_mut(&zxid) {
            acks.insert(from);
        }
        // Commit in order: only the oldest outstanding proposal can go, then the next.
        while let Some((&zxid, acks)) = self.outstanding.iter().next() {
            let new_quorum_too = match &self.joint {
                Some((from, q)) if zxid >= *from => q.contains_quorum(acks),
                _ => true,
            };
            if !self.quorum.contains_quorum(acks) || !new_quorum_too {
                break;
            }
            self.outstanding.remove(&zxid);
            self.last_committed = zxid;
            if self.joint.as_ref().is_some_and(|(from, _)| *from == zxid) {
                if let Some((_, q)) = self.joint.take() {
                    self.quorum = q;
                }
            }
            out.push(Output::Commit(zxid));
            for &to in &self.followers {
                out.push(Output::Send {
                    to,
                    msg: Msg::Commit(zxid),
                });
            }
        }
    }
}

/// A follower's side, once synced with its leader.
#[derive(Debug, Clone)]
pub struct Follower {
    leader: ServerId,
    last_logged: Zxid,
    last_committed: Zxid,
    /// Logged or being logged, not committed, in order; `true` once durable.
    pending: BTreeMap<Zxid, bool>,
}

impl Follower {
    /// A follower of `leader` whose log ends at `last_logged`, committed to `last_committed`.
    pub fn new(leader: ServerId, last_logged: Zxid, last_committed: Zxid) -> Follower {
        Follower {
            leader,
            last_logged,
            last_committed,
            pending: BTreeMap::new(),
        }
    }

    pub fn last_committed(&self) -> Zxid {
        self.last_committed
    }

    /// A message from the leader.
    pub fn receive(&mut self, from: ServerId, msg: Msg, out: &mut Vec<Output>) {
        if from != self.leader {
            return;
        }
        match msg {
            Msg::Proposal(p) => {
                if p.zxid <= self.last_logged {
                    out.push(Output::Resync {
                        reason: "proposal not after the log's end",
                    });
                    return;
                }
                self.last_logged = p.zxid;
                self.pending.insert(p.zxid, false);
                out.push(Output::Persist(p));
            }
            Msg::Commit(zxid) => match self.pending.iter().next() {
                Some((&first, _)) if first == zxid => {
                    self.pending.remove(&zxid);
                    self.last_committed = zxid;
                    out.push(Output::Commit(zxid));
                }
                _ => out.push(Output::Resync {
                    reason: "commit of a txn that is not the next pending one",
                }),
            },
            Msg::Ack(_) => {}
        }
    }

    /// `zxid` is durable in this follower's log: acknowledge it (never before).
    pub fn persisted(&mut self, zxid: Zxid, out: &mut Vec<Output>) {
        if let Some(durable) = self.pending.get_mut(&zxid) {
            *durable = true;
            out.push(Output::Send {
                to: self.leader,
                msg: Msg::Ack(zxid),
            });
        }
    }
}
