//! Zab's discovery and synchronisation handshake between an elected leader and its
//! followers (ZooKeeper's `Leader.lead` / `Learner` / `LearnerHandler`):
//!
//! 1. each follower sends FOLLOWERINFO (its accepted epoch and last zxid);
//! 2. with a quorum of them (itself included) the leader picks the new epoch, one above every
//!    accepted epoch it heard of, persists it as its accepted epoch and only then sends
//!    LEADERINFO;
//! 3. a follower persists the new accepted epoch before answering ACKEPOCH (its current epoch
//!    and last zxid); a follower ahead of the leader is left out (it cannot be synced);
//! 4. with a quorum of ACKEPOCHs the leader syncs each follower (DIFF / TRUNC / SNAP) and
//!    sends NEWLEADER; a follower persists the new current epoch before acknowledging it;
//! 5. with a quorum of NEWLEADER acks the leader persists its current epoch, sends UPTODATE
//!    and starts broadcasting.
//!
//! Every "persist, then act" is an output followed by an input the host sends back once the
//! write is durable, so no message can overtake the write it depends on.

use std::collections::{BTreeMap, BTreeSet};

use crate::quorum::Quorum;
use crate::sync::{plan_sync, SyncPlan};
use crate::{Millis, ServerId, Zxid};

/// Handshake messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Msg {
    FollowerInfo {
        accepted_epoch: u32,
        last_zxid: Zxid,
    },
    LeaderInfo {
        new_epoch: u32,
    },
    AckEpoch {
        current_epoch: u32,
        last_zxid: Zxid,
        /// The LEADERINFO epoch this acknowledges (0: not said, from an older server). Links
        /// outlive handshakes, so a late ACKEPOCH of an earlier handshake must not count for
        /// this one.
        epoch: u32,
    },
    /// Sent after the sync data; its zxid is `new_epoch << 32`.
    NewLeader {
        zxid: Zxid,
    },
    AckNewLeader {
        zxid: Zxid,
    },
    UpToDate,
}

/// Inputs besides messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Msg {
        from: ServerId,
        msg: Msg,
    },
    /// The accepted epoch asked for by [`Output::PersistAcceptedEpoch`] is durable.
    AcceptedEpochPersisted,
    /// The current epoch asked for by [`Output::PersistCurrentEpoch`] is durable (a
    /// follower's synced txns are logged before it).
    CurrentEpochPersisted,
    Tick {
        now: Millis,
    },
}

/// What the host must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: ServerId,
        msg: Msg,
    },
    PersistAcceptedEpoch(u32),
    PersistCurrentEpoch(u32),
    /// Leader: send `to` its sync data now (before the NEWLEADER that follows in `out`).
    /// `plan` is computed from the history given at construction; a host whose log has
    /// grown since (a latecomer joining an established leader) plans again from `peer_last`.
    Sync {
        to: ServerId,
        peer_last: Zxid,
        plan: SyncPlan,
    },
    /// The handshake is over: start broadcasting in `epoch` (leader) or following.
    Established {
        epoch: u32,
    },
    /// Leader: this follower is synced and has UPTODATE; add it to the broadcast.
    FollowerSynced {
        id: ServerId,
    },
    /// Give up and go back to election.
    Abandon {
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeaderPhase {
    CollectingInfo,
    PersistingEpoch,
    CollectingAcks,
    CollectingNewLeaderAcks,
    PersistingCurrent,
    /// Serving: late followers still get LEADERINFO, sync, NEWLEADER and UPTODATE.
    Established,
    Abandoned,
}

/// The leader's side of the handshake.
#[derive(Debug, Clone)]
pub struct LeaderHandshake {
    me: ServerId,
    quorum: Quorum,
    accepted_epoch: u32,
    current_epoch: u32,
    last_zxid: Zxid,
    /// The zxids of the leader's in-memory committed log, for sync planning.
    committed: Vec<Zxid>,
    infos: BTreeMap<ServerId, (u32, Zxid)>,
    acks: BTreeMap<ServerId, (u32, Zxid)>,
    newleader_acks: BTreeSet<ServerId>,
    new_epoch: u32,
    phase: LeaderPhase,
    deadline: Millis,
}

impl LeaderHandshake {
    /// `init_limit_ms` (initLimit × tickTime) bounds each waiting step from `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: ServerId,
        quorum: Quorum,
        accepted_epoch: u32,
        current_epoch: u32,
        last_zxid: Zxid,
        committed: Vec<Zxid>,
        now: Millis,
        init_limit_ms: Millis,
    ) -> LeaderHandshake {
        let mut infos = BTreeMap::new();
        infos.insert(me, (accepted_epoch, last_zxid));
        LeaderHandshake {
            me,
            quorum,
            accepted_epoch,
            current_epoch,
            last_zxid,
            committed,
            infos,
            acks: BTreeMap::new(),
            newleader_acks: BTreeSet::new(),
            new_epoch: 0,
            phase: LeaderPhase::CollectingInfo,
            deadline: now + init_limit_ms,
        }
    }

    /// The epoch chosen (0 until chosen).
    pub fn new_epoch(&self) -> u32 {
        self.new_epoch
    }

    fn ids<T>(map: &BTreeMap<ServerId, T>) -> BTreeSet<ServerId> {
        map.keys().copied().collect()
    }

    /// The servers among `ids` other than this one.
    fn others<'a>(&self, ids: impl Iterator<Item = &'a ServerId>) -> Vec<ServerId> {
        ids.copied().filter(|id| *id != self.me).collect()
    }

    fn newleader_zxid(&self) -> Zxid {
        i64::from(self.new_epoch) << 32
    }

    /// Sync and NEWLEADER for one follower that acknowledged the epoch.
    fn sync_one(&self, to: ServerId, peer_last: Zxid, out: &mut Vec<Output>) {
        let plan = plan_sync(&self.committed, self.last_zxid, peer_last);
        out.push(Output::Sync {
            to,
            peer_last,
            plan,
        });
        out.push(Output::Send {
            to,
            msg: Msg::NewLeader {
                zxid: self.newleader_zxid(),
            },
        });
    }

    fn abandon(&mut self, reason: &'static str, out: &mut Vec<Output>) {
        self.phase = LeaderPhase::Abandoned;
        out.push(Output::Abandon { reason });
    }

    pub fn step(&mut self, input: Input, out: &mut Vec<Output>) {
        if self.phase == LeaderPhase::Abandoned {
            return;
        }
        match input {
            Input::Tick { now }
                if now > self.deadline
                    && matches!(
                        self.phase,
                        LeaderPhase::CollectingInfo
                            | LeaderPhase::CollectingAcks
                            | LeaderPhase::CollectingNewLeaderAcks
                    ) =>
            {
                self.abandon("no quorum of followers within initLimit", out);
            }
            Input::AcceptedEpochPersisted if self.phase == LeaderPhase::PersistingEpoch => {
                self.accepted_epoch = self.new_epoch;
                self.phase = LeaderPhase::CollectingAcks;
                for to in self.others(self.infos.keys()) {
                    out.push(Output::Send {
                        to,
                        msg: Msg::LeaderInfo {
                            new_epoch: self.new_epoch,
                        },
                    });
                }
                self.acks
                    .insert(self.me, (self.current_epoch, self.last_zxid));
            }
            Input::CurrentEpochPersisted if self.phase == LeaderPhase::PersistingCurrent => {
                self.current_epoch = self.new_epoch;
                self.phase = LeaderPhase::Established;
                out.push(Output::Established {
                    epoch: self.new_epoch,
                });
                for to in self.others(self.newleader_acks.iter()) {
                    admit(to, out);
                }
            }
            Input::Msg { from, msg } => self.message(from, msg, out),
            _ => {}
        }
    }

    fn message(&mut self, from: ServerId, msg: Msg, out: &mut Vec<Output>) {
        match msg {
            Msg::FollowerInfo {
                accepted_epoch,
                last_zxid,
            } => {
                self.infos.insert(from, (accepted_epoch, last_zxid));
                match self.phase {
                    LeaderPhase::CollectingInfo => {
                        if self.quorum.contains_quorum(&Self::ids(&self.infos)) {
                            let max = self.infos.values().map(|(e, _)| *e).max().unwrap_or(0);
                            self.new_epoch = max.max(self.accepted_epoch) + 1;
                            self.phase = LeaderPhase::PersistingEpoch;
                            out.push(Output::PersistAcceptedEpoch(self.new_epoch));
                        }
                    }
                    LeaderPhase::CollectingAcks
                    | LeaderPhase::CollectingNewLeaderAcks
                    | LeaderPhase::PersistingCurrent
                    | LeaderPhase::Established => {
                        // A latecomer: the epoch is already chosen. A voter that accepted a
                        // later epoch (promised to a leader that never got going) would refuse
                        // it forever; ZooKeeper leaves it out until the next election. Step
                        // down instead, so the next epoch is chosen above its promise.
                        if accepted_epoch > self.new_epoch && self.quorum.weight(from) > 0 {
                            self.abandon("a member accepted a later epoch than this leader's", out);
                            return;
                        }
                        out.push(Output::Send {
                            to: from,
                            msg: Msg::LeaderInfo {
                                new_epoch: self.new_epoch,
                            },
                        });
                    }
                    LeaderPhase::PersistingEpoch | LeaderPhase::Abandoned => {}
                }
            }
            Msg::AckEpoch {
                current_epoch,
                last_zxid,
                epoch,
            } => {
                if self.phase == LeaderPhase::CollectingInfo
                    || self.phase == LeaderPhase::PersistingEpoch
                    || (epoch != 0 && epoch != self.new_epoch)
                {
                    return;
                }
                if self.phase != LeaderPhase::Established
                    && (current_epoch, last_zxid) > (self.current_epoch, self.last_zxid)
                    && last_zxid > self.last_zxid
                {
                    // This follower holds txns this leader lacks: it is left out, as
                    // ZooKeeper's leader drops that learner's connection. The epoch is
                    // established without it, or not at all (initLimit), never with it;
                    // giving up at once would let one such member stall every election.
                    // One ahead by its current epoch only promised an epoch that never
                    // established (its voters would have won this election): its log is
                    // no longer than this leader's, and the sync below aligns it.
                    return;
                }
                self.acks.insert(from, (current_epoch, last_zxid));
                match self.phase {
                    LeaderPhase::CollectingAcks
                        if self.quorum.contains_quorum(&Self::ids(&self.acks)) =>
                    {
                        self.phase = LeaderPhase::CollectingNewLeaderAcks;
                        for to in self.others(self.acks.keys()) {
                            let peer_last = self.acks[&to].1;
                            self.sync_one(to, peer_last, out);
                        }
                        self.newleader_acks.insert(self.me);
                    }
                    LeaderPhase::CollectingNewLeaderAcks
                    | LeaderPhase::PersistingCurrent
                    | LeaderPhase::Established => self.sync_one(from, last_zxid, out),
                    _ => {}
                }
            }
            Msg::AckNewLeader { zxid } => {
                if zxid != self.newleader_zxid()
                    || !matches!(
                        self.phase,
                        LeaderPhase::CollectingNewLeaderAcks
                            | LeaderPhase::PersistingCurrent
                            | LeaderPhase::Established
                    )
                {
                    return;
                }
                self.newleader_acks.insert(from);
                if self.phase == LeaderPhase::Established {
                    admit(from, out);
                    return;
                }
                if self.phase == LeaderPhase::CollectingNewLeaderAcks
                    && self.quorum.contains_quorum(&self.newleader_acks)
                {
                    self.phase = LeaderPhase::PersistingCurrent;
                    out.push(Output::PersistCurrentEpoch(self.new_epoch));
                }
            }
            _ => {}
        }
    }
}

/// A follower acknowledged NEWLEADER once the leader serves: UPTODATE, and into the broadcast.
fn admit(to: ServerId, out: &mut Vec<Output>) {
    out.push(Output::Send {
        to,
        msg: Msg::UpToDate,
    });
    out.push(Output::FollowerSynced { id: to });
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FollowerPhase {
    WaitingLeaderInfo,
    PersistingAccepted,
    WaitingNewLeader,
    PersistingCurrent,
    WaitingUpToDate,
    Done,
}

/// A follower's side of the handshake.
#[derive(Debug, Clone)]
pub struct FollowerHandshake {
    leader: ServerId,
    accepted_epoch: u32,
    current_epoch: u32,
    last_zxid: Zxid,
    new_epoch: u32,
    phase: FollowerPhase,
    deadline: Millis,
    /// FOLLOWERINFO is repeated until LEADERINFO comes: the leader may not have been
    /// listening yet when the first one arrived (it decides a little later than us).
    next_resend: Millis,
    resend_every: Millis,
}

impl FollowerHandshake {
    /// Starts the handshake with `leader`: FOLLOWERINFO goes out at once.
    pub fn start(
        leader: ServerId,
        accepted_epoch: u32,
        current_epoch: u32,
        last_zxid: Zxid,
        now: Millis,
        init_limit_ms: Millis,
        out: &mut Vec<Output>,
    ) -> FollowerHandshake {
        out.push(Output::Send {
            to: leader,
            msg: Msg::FollowerInfo {
                accepted_epoch,
                last_zxid,
            },
        });
        FollowerHandshake {
            leader,
            accepted_epoch,
            current_epoch,
            last_zxid,
            new_epoch: 0,
            phase: FollowerPhase::WaitingLeaderInfo,
            deadline: now + init_limit_ms,
            // Often: a leader that decided a moment after us dropped the first one, and
            // every round trip lost here is time without a leader.
            next_resend: now + (init_limit_ms / 10).clamp(1, 100),
            resend_every: (init_limit_ms / 10).clamp(1, 100),
        }
    }

    /// Whether sync data (DIFF, TRUNC, SNAP) and NEWLEADER are due now: only between
    /// ACKEPOCH and NEWLEADER. Anything else is left over from an earlier attempt.
    pub fn awaiting_sync(&self) -> bool {
        self.phase == FollowerPhase::WaitingNewLeader
    }

    /// The sync data was applied to the log: the caller tells the new last zxid before the
    /// NEWLEADER is processed (it arrives on the same FIFO link after the data).
    pub fn synced_to(&mut self, last_zxid: Zxid) {
        self.last_zxid = last_zxid;
    }

    pub fn step(&mut self, input: Input, out: &mut Vec<Output>) {
        if self.phase == FollowerPhase::Done {
            return;
        }
        match input {
            Input::Tick { now }
                if now > self.deadline
                    && !matches!(
                        self.phase,
                        FollowerPhase::PersistingAccepted | FollowerPhase::PersistingCurrent
                    ) =>
            {
                self.phase = FollowerPhase::Done;
                out.push(Output::Abandon {
                    reason: "the leader did not finish the handshake within initLimit",
                });
            }
            Input::Tick { now }
                if self.phase == FollowerPhase::WaitingLeaderInfo && now >= self.next_resend =>
            {
                self.next_resend = now + self.resend_every;
                out.push(Output::Send {
                    to: self.leader,
                    msg: Msg::FollowerInfo {
                        accepted_epoch: self.accepted_epoch,
                        last_zxid: self.last_zxid,
                    },
                });
            }
            Input::AcceptedEpochPersisted if self.phase == FollowerPhase::PersistingAccepted => {
                self.accepted_epoch = self.new_epoch;
                self.ack_epoch(out);
            }
            Input::CurrentEpochPersisted if self.phase == FollowerPhase::PersistingCurrent => {
                self.current_epoch = self.new_epoch;
                self.phase = FollowerPhase::WaitingUpToDate;
                out.push(Output::Send {
                    to: self.leader,
                    msg: Msg::AckNewLeader {
                        zxid: i64::from(self.new_epoch) << 32,
                    },
                });
            }
            Input::Msg { from, msg } if from == self.leader => match (self.phase, msg) {
                (FollowerPhase::WaitingLeaderInfo, Msg::LeaderInfo { new_epoch }) => {
                    self.new_epoch = new_epoch;
                    if new_epoch > self.accepted_epoch {
                        self.phase = FollowerPhase::PersistingAccepted;
                        out.push(Output::PersistAcceptedEpoch(new_epoch));
                    } else if new_epoch == self.accepted_epoch {
                        self.ack_epoch(out);
                    } else {
                        self.phase = FollowerPhase::Done;
                        out.push(Output::Abandon {
                            reason: "the leader's epoch is older than one this server accepted",
                        });
                    }
                }
                (FollowerPhase::WaitingNewLeader, Msg::NewLeader { zxid }) => {
                    if zxid != i64::from(self.new_epoch) << 32 {
                        self.phase = FollowerPhase::Done;
                        out.push(Output::Abandon {
                            reason: "NEWLEADER for another epoch",
                        });
                        return;
                    }
                    self.phase = FollowerPhase::PersistingCurrent;
                    out.push(Output::PersistCurrentEpoch(self.new_epoch));
                }
                (FollowerPhase::WaitingUpToDate, Msg::UpToDate) => {
                    self.phase = FollowerPhase::Done;
                    out.push(Output::Established {
                        epoch: self.new_epoch,
                    });
                }
                _ => {}
            },
            _ => {}
        }
    }

    fn ack_epoch(&mut self, out: &mut Vec<Output>) {
        self.phase = FollowerPhase::WaitingNewLeader;
        out.push(Output::Send {
            to: self.leader,
            msg: Msg::AckEpoch {
                current_epoch: self.current_epoch,
                last_zxid: self.last_zxid,
                epoch: self.new_epoch,
            },
        });
    }
}
