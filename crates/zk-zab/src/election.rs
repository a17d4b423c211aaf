//! Fast leader election (ZooKeeper's `FastLeaderElection`), as a state machine.
//!
//! Each looking server proposes a vote; a vote beats another by (peer epoch, zxid, server id),
//! and a candidate without voting weight never wins. Rounds are numbered by a logical clock
//! (the election epoch): a notification from a later round resets ours. Once a quorum of the
//! votes received in this round agree with our proposal, we wait `finalize_wait` for a better
//! vote and, if none comes, decide. A server that joins an ensemble which already has a
//! leader decides from the `FOLLOWING`/`LEADING` notifications of a quorum (and the leader's
//! own), without waiting.

use std::collections::BTreeMap;

use crate::quorum::Quorum;
use crate::{Millis, ServerId, Zxid};

/// What a server is doing, as carried in notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    Looking,
    Following,
    Leading,
    Observing,
}

/// A vote for a leader: the candidate's id, last zxid and (current) epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: ServerId,
    pub zxid: Zxid,
    pub peer_epoch: u32,
}

/// The election message (`FastLeaderElection.Notification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notification {
    pub vote: Vote,
    /// The sender's logical clock: which round this vote belongs to.
    pub election_epoch: u64,
    pub state: PeerState,
}

/// What drives the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A notification from a peer.
    Msg { from: ServerId, n: Notification },
    /// The caller's clock moved.
    Tick { now: Millis },
}

/// What the machine asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        to: ServerId,
        n: Notification,
    },
    /// The election is over: lead, follow or observe `leader`.
    Decided {
        leader: ServerId,
        election_epoch: u64,
        state: PeerState,
    },
}

/// Timing knobs (ZooKeeper's defaults: 200 ms finalize wait, resends from 200 ms doubling to
/// 60 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub finalize_wait: Millis,
    pub resend_min: Millis,
    pub resend_max: Millis,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            finalize_wait: 200,
            resend_min: 200,
            resend_max: 60_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Looking,
    /// A quorum agrees with our proposal since this time; waiting for a better vote.
    Finalizing {
        since: Millis,
    },
    Decided {
        leader: ServerId,
        state: PeerState,
    },
}

/// Who a server is and whom it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub me: ServerId,
    pub quorum: Quorum,
    /// Every server of the ensemble (voters and observers); `me` may be among them.
    pub peers: Vec<ServerId>,
    pub timing: Timing,
}

/// One server's election.
#[derive(Debug, Clone)]
pub struct Election {
    me: ServerId,
    quorum: Quorum,
    /// Everyone this server talks to during elections: the voters and, for observers, too.
    peers: Vec<ServerId>,
    /// This server's own candidacy (its last zxid and epoch).
    own: Vote,
    logical_clock: u64,
    proposal: Vote,
    /// Votes of this round (sender -> vote, round, state), our own included.
    received: BTreeMap<ServerId, (Vote, u64, PeerState)>,
    /// Votes of servers that have already decided (any round).
    out_of_election: BTreeMap<ServerId, (Vote, u64, PeerState)>,
    phase: Phase,
    timing: Timing,
    now: Millis,
    resend_every: Millis,
    next_resend: Millis,
}

impl Election {
    /// A new election for `server` whose log ends at `last_zxid` in `current_epoch`;
    /// `logical_clock` is the round of its previous election (0 at first). Call
    /// [`Election::start`] to begin.
    pub fn new(
        server: &Member,
        last_zxid: Zxid,
        current_epoch: u32,
        logical_clock: u64,
        now: Millis,
    ) -> Election {
        let Member {
            me,
            quorum,
            peers,
            timing,
        } = server.clone();
        let own = if quorum.weight(me) > 0 {
            Vote {
                leader: me,
                zxid: last_zxid,
                peer_epoch: current_epoch,
            }
        } else {
            // An observer (or weight-0 member) proposes no one: any voter's vote beats this.
            Vote {
                leader: me,
                zxid: Zxid::MIN,
                peer_epoch: 0,
            }
        };
        let mut peers: Vec<ServerId> = peers.into_iter().filter(|p| *p != me).collect();
        peers.sort_unstable();
        peers.dedup();
        Election {
            me,
            quorum,
            peers,
            own,
            logical_clock,
            proposal: own,
            received: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            phase: Phase::Looking,
            timing,
            now,
            resend_every: timing.resend_min,
            next_resend: now + timing.resend_min,
        }
    }

    /// The round this server is in.
    pub fn logical_clock(&self) -> u64 {
        self.logical_clock
    }

    /// The vote currently proposed.
    pub fn proposal(&self) -> Vote {
        self.proposal
    }

    /// The decision, once made.
    pub fn decision(&self) -> Option<(ServerId, PeerState)> {
        match self.phase {
            Phase::Decided { leader, state } => Some((leader, state)),
            _ => None,
        }
    }

    /// Once the handshake established `epoch`, the decided vote carries it (as ZooKeeper's
    /// `updateElectionVote`): servers that decided in different rounds then answer with
    /// the same (leader, epoch), and a joining server can count them as one quorum.
    pub fn established(&mut self, epoch: u32) {
        if let Phase::Decided { .. } = self.phase {
            self.proposal.peer_epoch = epoch;
        }
    }

    /// A newer configuration: who votes and whom to talk to (a decided election keeps its
    /// decision; a running one counts with the new quorum from now on).
    pub fn set_quorum(&mut self, quorum: Quorum, peers: &[ServerId]) {
        self.quorum = quorum;
        // A decided server that gained or lost its vote answers with its new standing
        // (an observer that became a voter now counts as following).
        if let Phase::Decided { leader, state } = self.phase {
            let state = if leader == self.me {
                state
            } else if self.quorum.weight(self.me) > 0 {
                PeerState::Following
            } else {
                PeerState::Observing
            };
            self.phase = Phase::Decided { leader, state };
        }
        let mut peers: Vec<ServerId> = peers.iter().copied().filter(|p| *p != self.me).collect();
        peers.sort_unstable();
        peers.dedup();
        self.peers = peers;
    }

    /// Decides for `leader` without a vote (a handoff: the old leader designated it, with
    /// every proposal committed). A new round, so the decision is answered as current.
    pub fn designate(
        &mut self,
        leader: ServerId,
        zxid: Zxid,
        peer_epoch: u32,
        out: &mut Vec<Output>,
    ) {
        self.logical_clock += 1;
        self.received.clear();
        self.proposal = Vote {
            leader,
            zxid,
            peer_epoch,
        };
        self.decide(leader, out);
    }

    /// A link to `peer` (re)opened: a server still looking tells it its vote at once, as
    /// ZooKeeper does when a connection is established, rather than at the next resend.
    pub fn link_up(&mut self, peer: ServerId, out: &mut Vec<Output>) {
        if !matches!(self.phase, Phase::Decided { .. }) && self.peers.contains(&peer) {
            out.push(Output::Send {
                to: peer,
                n: self.notification(),
            });
        }
    }

    /// Starts a new round: proposes itself and tells everyone.
    pub fn start(&mut self, out: &mut Vec<Output>) {
        self.logical_clock += 1;
        self.proposal = self.own;
        self.received.clear();
        self.record_own();
        self.broadcast(out);
    }

    fn notification(&self) -> Notification {
        let (vote, state) = match self.phase {
            Phase::Decided { state, .. } => (self.proposal, state),
            _ => (self.proposal, PeerState::Looking),
        };
        Notification {
            vote,
            election_epoch: self.logical_clock,
            state,
        }
    }

    fn broadcast(&mut self, out: &mut Vec<Output>) {
        let n = self.notification();
        for &to in &self.peers {
            out.push(Output::Send { to, n });
        }
        self.next_resend = self.now + self.resend_every;
    }

    fn record_own(&mut self) {
        self.received.insert(
            self.me,
            (self.proposal, self.logical_clock, PeerState::Looking),
        );
    }

    /// Whether `new` beats `cur` (`totalOrderPredicate`).
    fn beats(&self, new: &Vote, cur: &Vote) -> bool {
        if self.quorum.weight(new.leader) == 0 {
            return false;
        }
        (new.peer_epoch, new.zxid, new.leader) > (cur.peer_epoch, cur.zxid, cur.leader)
    }

    /// Whether the voters among `votes` that agree with `vote` form a quorum.
    fn agreed(&self, votes: &BTreeMap<ServerId, (Vote, u64, PeerState)>, vote: &Vote) -> bool {
        let ids = votes
            .iter()
            .filter(|(_, (v, _, _))| v.leader == vote.leader && v.peer_epoch == vote.peer_epoch)
            .map(|(id, _)| *id)
            .collect();
        self.quorum.contains_quorum(&ids)
    }

    /// ZooKeeper's `checkLeader`: another server can only be followed if it says it leads;
    /// ourselves only in the round we are in.
    fn leader_confirmed(
        &self,
        votes: &BTreeMap<ServerId, (Vote, u64, PeerState)>,
        leader: ServerId,
        election_epoch: u64,
    ) -> bool {
        if leader != self.me {
            matches!(votes.get(&leader), Some((_, _, PeerState::Leading)))
        } else {
            self.logical_clock == election_epoch
        }
    }

    fn decide(&mut self, leader: ServerId, out: &mut Vec<Output>) {
        let state = if leader == self.me {
            PeerState::Leading
        } else if self.quorum.weight(self.me) > 0 {
            PeerState::Following
        } else {
            PeerState::Observing
        };
        self.phase = Phase::Decided { leader, state };
        out.push(Output::Decided {
            leader,
            election_epoch: self.logical_clock,
            state,
        });
    }

    /// Handles one input; messages to send and a decision go to `out`.
    pub fn step(&mut self, input: Input, out: &mut Vec<Output>) {
        match input {
            Input::Tick { now } => self.tick(now, out),
            Input::Msg { from, n } => self.message(from, n, out),
        }
    }

    fn tick(&mut self, now: Millis, out: &mut Vec<Output>) {
        self.now = self.now.max(now);
        match self.phase {
            Phase::Finalizing { since } if self.now >= since + self.timing.finalize_wait => {
                let leader = self.proposal.leader;
                self.decide(leader, out);
            }
            Phase::Looking | Phase::Finalizing { .. } if self.now >= self.next_resend => {
                // Nothing decided yet: say it again, less and less often.
                self.resend_every = (self.resend_every * 2).min(self.timing.resend_max);
                self.broadcast(out);
            }
            _ => {}
        }
    }

    fn message(&mut self, from: ServerId, n: Notification, out: &mut Vec<Output>) {
        if let Phase::Decided { .. } = self.phase {
            // Decided servers answer anyone still looking with where they stand.
            if n.state == PeerState::Looking {
                out.push(Output::Send {
                    to: from,
                    n: self.notification(),
                });
            }
            return;
        }
        let sender_votes = self.quorum.weight(from) > 0;
        if !sender_votes && n.state == PeerState::Looking {
            // An observer looking for the leader: answer at once, do not count it.
            out.push(Output::Send {
                to: from,
                n: self.notification(),
            });
            return;
        }
        match n.state {
            PeerState::Looking => {
                if n.election_epoch > self.logical_clock {
                    // A later round: join it, starting again from our own candidacy.
                    self.logical_clock = n.election_epoch;
                    self.received.clear();
                    self.proposal = if self.beats(&n.vote, &self.own) {
                        n.vote
                    } else {
                        self.own
                    };
                    self.record_own();
                    self.phase = Phase::Looking;
                    self.broadcast(out);
                } else if n.election_epoch < self.logical_clock {
                    // An earlier round: help the sender catch up.
                    out.push(Output::Send {
                        to: from,
                        n: self.notification(),
                    });
                    return;
                } else if self.beats(&n.vote, &self.proposal) {
                    self.proposal = n.vote;
                    self.record_own();
                    self.phase = Phase::Looking;
                    self.broadcast(out);
                }
                self.received
                    .insert(from, (n.vote, n.election_epoch, n.state));
                if self.agreed(&self.received, &self.proposal) {
                    if let Phase::Looking = self.phase {
                        self.phase = Phase::Finalizing { since: self.now };
                    }
                    if self.timing.finalize_wait == 0 {
                        let leader = self.proposal.leader;
                        self.decide(leader, out);
                    }
                } else if let Phase::Finalizing { .. } = self.phase {
                    self.phase = Phase::Looking;
                }
            }
            PeerState::Following | PeerState::Leading => {
                // Someone already decided: the ensemble may have a leader.
                if n.election_epoch == self.logical_clock {
                    self.received
                        .insert(from, (n.vote, n.election_epoch, n.state));
                    if self.agreed(&self.received, &n.vote)
                        && self.leader_confirmed(&self.received, n.vote.leader, n.election_epoch)
                    {
                        self.proposal = n.vote;
                        self.decide(n.vote.leader, out);
                        return;
                    }
                }
                self.out_of_election
                    .insert(from, (n.vote, n.election_epoch, n.state));
                if self.agreed(&self.out_of_election, &n.vote)
                    && self.leader_confirmed(&self.out_of_election, n.vote.leader, n.election_epoch)
                {
                    self.logical_clock = n.election_epoch;
                    self.proposal = n.vote;
                    self.decide(n.vote.leader, out);
                }
            }
            PeerState::Observing => {}
        }
    }
}
