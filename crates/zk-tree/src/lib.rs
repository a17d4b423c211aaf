//! ZooKeeper's DataTree, deterministic and free of I/O, reusable on its own.
//!
//! # Layout
//! - [`tree`]: [`DataTree`] — znodes, Stat rules, indexes, quota accounting, digest;
//!   [`DataTree::apply`] of a logged txn is the only way it changes.
//! - [`watch`]: the watch registry (one-shot, persistent, persistent-recursive); it returns
//!   the watchers an event fires and never delivers anything.
//! - [`acl`]: schemes, permission checks, ACL fix-up and the ACL cache.
//! - [`path`]: path validation exactly as ZooKeeper's `PathUtils`.
//! - [`prep`]: a write request to a txn (or error txn), checked against the tree plus the
//!   changes already prepared, in ZooKeeper's order of checks.
//! - [`ephemeral`]: what `ephemeralOwner` encodes (session, container, TTL).
//! - [`quota`], [`digest`], [`snapshot`]: quotas, the tree digest, the snapshot body.
//!
//! # Invariants
//! - No clock, no randomness, no I/O: time arrives in txn headers or as `now_ms` arguments.
//! - Applying the same txns in the same order gives the same tree, digest and events.
//! - Iteration that reaches an output (children, snapshots, events) is in sorted order.
//!
//! Deciding (prep) and applying are separate: prep validates a request and produces a txn;
//! apply re-decides nothing.

pub mod acl;
pub mod digest;
pub mod ephemeral;
pub mod error;
pub mod families;
pub mod java;
pub mod journal;
pub mod memory;
pub mod path;
pub mod prep;
pub mod quota;
pub mod snapshot;
mod store;
#[cfg(test)]
mod testing;
pub mod tree;
pub mod watch;

pub use acl::{AclCache, AuthConfig};
pub use error::TreeError;
pub use tree::{Applied, DataTree, Event, TreeConfig, TxnResult};
pub use watch::{WatchMode, WatchRegistry, WatcherId};
