//! ZooKeeper's replication protocol as pure state machines, so that whole ensembles can run
//! in one thread from one seed (zk-sim) and the same code runs in `zkd` behind gRPC.
//!
//! - [`election`]: fast leader election (FLE, `electionAlg=3`): votes ordered by
//!   (peer epoch, zxid, server id), logical clocks, a quorum of agreeing votes, and joining an
//!   ensemble that already has a leader.
//! - [`quorum`]: who counts: majorities, weighted and hierarchical groups.
//! - [`discovery`]: the epoch handshake and sync between an elected leader and followers,
//!   each epoch durable before anything depends on it.
//! - [`sync`]: how a leader brings a follower level (DIFF, TRUNC, TRUNC+DIFF, SNAP).
//! - [`broadcast`]: proposals, durable acks, quorum commits in zxid order.
//! - [`peer`]: all of the above composed into one ensemble member with roles, failure
//!   detection and recovery from its durable state.
//!
//! Every machine takes inputs (a message from a peer, the time, a peer going up or down) and
//! pushes outputs (messages to send, a decision) into a caller's buffer. Nothing inside reads
//! a clock, a random number generator, a file or a socket.

pub mod broadcast;
pub mod discovery;
pub mod election;
pub mod peer;
pub mod quorum;
pub mod sync;

/// A server's id (`myid`, the `N` of `server.N`).
pub type ServerId = u64;

/// A transaction id: epoch in the high 32 bits, counter in the low 32.
pub type Zxid = i64;

/// The epoch part of a zxid.
pub fn epoch_of(zxid: Zxid) -> u32 {
    (zxid >> 32) as u32
}

/// Milliseconds of the caller's monotonic clock (a simulated one in zk-sim).
pub type Millis = u64;
