//! Durable storage in Apache ZooKeeper's own `version-2/` formats, so an operator can point
//! `zkd` at a ZooKeeper data directory and back.
//!
//! # Layout
//! - [`storage`]: the seam every file operation goes through; [`storage::SimStorage`]
//!   models lost unsynced writes, torn writes, EIO and ENOSPC for tests.
//! - [`txnlog`]: `log.<zxid>` files: writer (batched, preallocated) and scanner that tells a
//!   torn tail from corruption.
//! - [`group`]: the group-commit writer thread: many appends, one fsync.
//! - [`snapfile`]: `snapshot.<zxid>` files with seals and the digest record.
//! - [`compress`]: `snapshot.<zxid>.gz` / `.snappy`, ZooKeeper's compressed snapshots.
//! - [`recovery`]: newest valid snapshot + log replay; torn tail truncated; corruption refused.
//! - [`epoch`]: `acceptedEpoch` / `currentEpoch`, replaced atomically.
//! - [`purge`]: retention of snapshots and logs.
//! - [`trigger`]: when the next snapshot is due (randomised, as ZooKeeper does).
//! - [`backup`]: continuous backup to a directory, and point-in-time restore from it.
//! - [`tools`]: offline operator tools (dump, summarize, compare, repair), for `zkd`.
//!
//! # Invariants
//! - A txn is reported durable only after the fsync covering it returned.
//! - Recovery never drops a record that may have been acknowledged: damage before the end of
//!   the log stops startup with the file and offset.
//!
//! Blocking std I/O only; no async runtime.

pub mod backup;
pub mod checksum;
pub mod compress;
pub mod epoch;
pub mod error;
pub mod failpoint;
pub mod fuzzing;
pub mod group;
pub mod histogram;
pub mod purge;
pub mod recovery;
pub mod snapfile;
pub mod storage;
pub mod tools;
pub mod trigger;
pub mod txnlog;

pub use compress::SnapshotCompression;
pub use error::LogError;
pub use group::LogWriter;
pub use recovery::{recover, DataDirs, Recovered};
pub use storage::{FsStorage, SimStorage, Storage};
pub use txnlog::{TxnLog, TxnLogConfig};
