//! Startup recovery (`FileTxnSnapLog.restore`): load the newest valid snapshot, replay the
//! txn logs after it, repair a torn final record by truncating it, and refuse to start on
//! corruption anywhere else.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_tree::{DataTree, TreeConfig};

use crate::error::{LogError, Result};
use crate::snapfile::{decode_snapshot, snapshot_file_zxid};
use crate::storage::Storage;
use crate::txnlog::{log_file_zxid, scan_log_after, LogEnd};

/// Where snapshots and txn logs live (`dataDir/version-2`, `dataLogDir/version-2`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirs {
    pub snap_dir: PathBuf,
    pub log_dir: PathBuf,
}

impl DataDirs {
    /// `version-2` under `dataDir` and `dataLogDir` (the same directory when no separate
    /// log dir is configured).
    pub fn new(data_dir: &Path, data_log_dir: Option<&Path>) -> DataDirs {
        DataDirs {
            snap_dir: data_dir.join("version-2"),
            log_dir: data_log_dir.unwrap_or(data_dir).join("version-2"),
        }
    }
}

/// What recovery found and did.
#[derive(Debug)]
pub struct Recovered {
    pub tree: DataTree,
    /// The snapshot loaded, if any.
    pub snapshot: Option<PathBuf>,
    /// Snapshots skipped because they were invalid, newest first, with the reason.
    pub skipped_snapshots: Vec<(PathBuf, String)>,
    /// Txns replayed from the logs.
    pub replayed: usize,
    /// A torn final record removed: the file and the offset it was cut at.
    pub truncated: Option<(PathBuf, u64)>,
    /// Replayed txns whose logged digest differed from the tree's.
    pub digest_mismatches: usize,
    /// Time spent reading and loading snapshots, and then reading and replaying the logs:
    /// what a restart waits for (ZooKeeper logs the first as "Snapshot loaded in").
    pub snapshot_time: std::time::Duration,
    pub replay_time: std::time::Duration,
}

/// Files of `dir` named `<prefix>.<hex zxid>`, sorted by zxid.
pub fn numbered_files(
    storage: &dyn Storage,
    dir: &Path,
    parse: fn(&str) -> Option<i64>,
) -> Result<Vec<(i64, PathBuf)>> {
    if !storage.exists(dir) {
        return Ok(Vec::new());
    }
    let mut out: Vec<(i64, PathBuf)> = storage
        .list(dir)
        .map_err(LogError::io(dir.to_path_buf()))?
        .into_iter()
        .filter_map(|name| parse(&name).map(|z| (z, dir.join(name))))
        .collect();
    out.sort();
    Ok(out)
}

/// The log files that can hold txns after `zxid`: the newest one starting at or before
/// `zxid + 1`, and every later one.
pub fn logs_after(logs: &[(i64, PathBuf)], zxid: i64) -> &[(i64, PathBuf)] {
    let start = logs
        .iter()
        .rposition(|(z, _)| *z <= zxid.saturating_add(1))
        .unwrap_or(0);
    &logs[start..]
}

/// Rebuilds the tree from `dirs`. See the module docs for the rules.
pub fn recover(storage: &dyn Storage, dirs: &DataDirs, config: TreeConfig) -> Result<Recovered> {
    recover_inner(storage, dirs, config, None)
}

/// For a quorum member: loads the newest valid snapshot only, and returns the logged txns
/// after it (zxid and encoded txn) without applying them; which of them are committed is the
/// leader's to say. The log is checked (and a torn tail cut) as by [`recover`].
pub fn recover_snapshot_and_log(
    storage: &dyn Storage,
    dirs: &DataDirs,
    config: TreeConfig,
) -> Result<(Recovered, Vec<(i64, Bytes)>)> {
    let mut unapplied = Vec::new();
    let r = recover_inner(storage, dirs, config, Some(&mut unapplied))?;
    Ok((r, unapplied))
}

fn recover_inner(
    storage: &dyn Storage,
    dirs: &DataDirs,
    config: TreeConfig,
    mut unapplied: Option<&mut Vec<(i64, Bytes)>>,
) -> Result<Recovered> {
    let started = std::time::Instant::now();
    let snaps = numbered_files(storage, &dirs.snap_dir, snapshot_file_zxid)?;
    let mut skipped = Vec::new();
    let mut loaded = None;
    for (_, path) in snaps.iter().rev() {
        let bytes = storage.read(path).map_err(LogError::io(path.clone()))?;
        match decode_snapshot(path, Bytes::from(bytes), config.clone()) {
            Ok(s) => {
                loaded = Some((path.clone(), s.tree));
                break;
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping invalid snapshot");
                skipped.push((path.clone(), e.to_string()));
            }
        }
    }
    let (snapshot, mut tree) = match loaded {
        Some((p, t)) => (Some(p), t),
        None => (None, DataTree::new(config)),
    };
    let snapshot_time = started.elapsed();
    let logs = numbered_files(storage, &dirs.log_dir, log_file_zxid)?;
    let selected = logs_after(&logs, tree.last_processed_zxid());
    let mut replayed = 0;
    let mut digest_mismatches = 0;
    let mut truncated = None;
    let mut previous = i64::MIN;
    for (i, (_, path)) in selected.iter().enumerate() {
        let is_last = i + 1 == selected.len();
        // Without the preallocated tail: holes read as zeros, which is all the scan
        // would have checked there.
        let bytes = storage
            .read_data(path)
            .map_err(LogError::io(path.clone()))?;
        // A crash between creating the newest log and writing its header leaves it empty
        // (or zeros): it holds no txn, so nothing in it was acknowledged. It goes.
        let header_len = crate::txnlog::HEADER_LEN as usize;
        if is_last && (bytes.len() < header_len || crate::txnlog::all_zero(&bytes)) {
            tracing::warn!(
                file = %path.display(),
                bytes = bytes.len(),
                "removing the newest txn log: created but never written (it holds nothing)"
            );
            storage.remove(path).map_err(LogError::io(path.clone()))?;
            storage
                .sync_dir(&dirs.log_dir)
                .map_err(LogError::io(dirs.log_dir.clone()))?;
            truncated = Some((path.clone(), 0));
            continue;
        }
        // The txns the snapshot holds are checked, not decoded.
        let scan = scan_log_after(path, Bytes::from(bytes), tree.last_processed_zxid())?;
        if let Some((first, last)) = scan.skipped_zxids {
            if first <= previous {
                return Err(LogError::ZxidOrder {
                    path: path.clone(),
                    offset: crate::txnlog::HEADER_LEN,
                    zxid: first,
                    previous,
                });
            }
            previous = last;
        }
        for rec in &scan.records {
            let zxid = rec.entry.header.zxid;
            if zxid <= previous {
                return Err(LogError::ZxidOrder {
                    path: path.clone(),
                    offset: rec.offset,
                    zxid,
                    previous,
                });
            }
            previous = zxid;
            if zxid <= tree.last_processed_zxid() {
                continue;
            }
            if let Some(list) = unapplied.as_deref_mut() {
                list.push((zxid, rec.entry.encode()));
                continue;
            }
            tree.apply(&rec.entry.header, &rec.entry.body);
            replayed += 1;
            if let Some(d) = &rec.entry.digest {
                if d.version == zk_tree::digest::DIGEST_VERSION && d.tree_digest != tree.digest() {
                    digest_mismatches += 1;
                    tracing::error!(
                        file = %path.display(),
                        zxid = format_args!("{zxid:#x}"),
                        "tree digest after replay differs from the logged digest"
                    );
                }
            }
        }
        match scan.end {
            LogEnd::Clean { .. } => {}
            LogEnd::Torn { offset, reason } if is_last => {
                tracing::warn!(
                    file = %path.display(),
                    offset,
                    reason = %reason,
                    "truncating a torn final txn record (it was never acknowledged)"
                );
                let mut f = storage
                    .open_write(path)
                    .map_err(LogError::io(path.clone()))?;
                f.set_len(offset).map_err(LogError::io(path.clone()))?;
                f.sync().map_err(LogError::io(path.clone()))?;
                truncated = Some((path.clone(), offset));
            }
            LogEnd::Torn { offset, reason } | LogEnd::Corrupt { offset, reason } => {
                return Err(LogError::Corrupt {
                    path: path.clone(),
                    offset,
                    reason,
                });
            }
        }
    }
    Ok(Recovered {
        tree,
        snapshot,
        skipped_snapshots: skipped,
        replayed,
        truncated,
        digest_mismatches,
        snapshot_time,
        replay_time: started.elapsed().saturating_sub(snapshot_time),
    })
}
