//! Retention (`PurgeTxnLog`, `autopurge.*`): keep the newest N snapshots (at least 3) and
//! the txn logs needed to replay from the oldest of them; delete the rest.

use std::path::PathBuf;

use crate::error::{LogError, Result};
use crate::recovery::{logs_after, numbered_files, DataDirs};
use crate::snapfile::snapshot_file_zxid;
use crate::storage::Storage;
use crate::txnlog::log_file_zxid;

/// ZooKeeper refuses to keep fewer snapshots than this.
pub const SNAP_RETAIN_COUNT_MIN: usize = 3;

/// Deletes old snapshots and logs, keeping `retain` snapshots (raised to 3). Returns the
/// files removed.
pub fn purge(storage: &dyn Storage, dirs: &DataDirs, retain: usize) -> Result<Vec<PathBuf>> {
    purge_keeping(storage, dirs, retain, None)
}

/// [`purge`], also keeping every log that may hold txns after `unshipped_after` (the last
/// txn a continuous backup has shipped), so a slow or unavailable backup target never
/// loses txns to retention.
pub fn purge_keeping(
    storage: &dyn Storage,
    dirs: &DataDirs,
    retain: usize,
    unshipped_after: Option<i64>,
) -> Result<Vec<PathBuf>> {
    let retain = retain.max(SNAP_RETAIN_COUNT_MIN);
    let snaps = numbered_files(storage, &dirs.snap_dir, snapshot_file_zxid)?;
    if snaps.len() <= retain {
        return Ok(Vec::new());
    }
    let oldest_kept = snaps[snaps.len() - retain].0;
    let logs = numbered_files(storage, &dirs.log_dir, log_file_zxid)?;
    let needed = logs_after(&logs, oldest_kept);
    let mut first_needed = needed.first().map(|(z, _)| *z).unwrap_or(i64::MAX);
    if let Some(shipped) = unshipped_after {
        if let Some((z, _)) = logs_after(&logs, shipped).first() {
            first_needed = first_needed.min(*z);
        }
    }
    let mut removed = Vec::new();
    for (z, path) in &snaps[..snaps.len() - retain] {
        debug_assert!(*z < oldest_kept);
        storage.remove(path).map_err(LogError::io(path.clone()))?;
        removed.push(path.clone());
    }
    for (z, path) in &logs {
        if *z < first_needed {
            storage.remove(path).map_err(LogError::io(path.clone()))?;
            removed.push(path.clone());
        }
    }
    for dir in [&dirs.snap_dir, &dirs.log_dir] {
        storage.sync_dir(dir).map_err(LogError::io(dir.clone()))?;
    }
    Ok(removed)
}
