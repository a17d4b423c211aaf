//! ZooKeeper's session table, deterministic and free of I/O, so the server, the simulator
//! and tests all drive the same code with the time they choose.
//!
//! # Layout
//! - [`config`]: [`SessionConfig`] — server id, tick time and the timeout bounds
//!   (`minSessionTimeout`/`maxSessionTimeout`, 2 and 20 ticks by default).
//! - [`tracker`]: [`SessionTracker`] — the table of live sessions (ZooKeeper's
//!   `SessionTrackerImpl`): timeout negotiation, id generation, touches, closing, expiry.
//! - `expiry` (private): the tick-bucketed deadline queue (ZooKeeper's `ExpiryQueue`).
//! - [`password`]: session passwords, derived from the id with `java.util.Random` exactly as
//!   ZooKeeper does, so a password issued by any ZooKeeper (or by us) checks everywhere.
//! - [`error`]: [`SessionError`], the refusals a client can be answered with.
//!
//! # Invariants
//! - No clock, no randomness, no I/O, no threads: time arrives as `now_ms` arguments
//!   (the caller's monotonic milliseconds), and this crate's `clippy.toml` forbids the rest.
//! - Deadlines are multiples of `tick_time_ms`: a session touched at `now` expires in the
//!   first tick boundary strictly after `now + timeout`, so expiry work is batched per tick.
//! - A session is in exactly one expiry bucket while it is open and in none once it is
//!   closing, so [`SessionTracker::expire`] reports each session at most once.
//! - Everything that reaches an output (iteration, expiry lists) is in sorted order; the
//!   same inputs give the same outputs.
//!
//! # What it does not know
//! Nothing here logs txns, deletes ephemerals or talks to clients: [`SessionTracker::expire`]
//! only says which sessions to close, and the caller turns each into a `closeSession` txn and
//! calls [`SessionTracker::remove`] once it is applied. Which server owns a connection
//! (`SessionMoved`) and local sessions are the server's business.

pub mod config;
pub mod error;
mod expiry;
pub mod password;
pub mod tracker;

pub use config::SessionConfig;
pub use error::{Result, SessionError};
pub use tracker::{Session, SessionTracker};
