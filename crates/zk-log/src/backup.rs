//! Continuous backup of a data directory to a target (a [`BackupStore`]: a directory
//! here, an S3-compatible bucket in `zk-backup`), and point-in-time restore from it.
//!
//! The [`Shipper`] copies the server's snapshots and its committed txns to the target as
//! they are written: every round it appends the txns applied since the last round as one
//! new segment, a standalone ZooKeeper txn log (`logs/log.<hex first zxid>`), and copies
//! each new snapshot (`snapshots/snapshot.<hex zxid>`). `manifest.json` lists every file
//! with its zxid range, txn times and SHA-256, and is replaced atomically after the files
//! it names are durable, so a crash mid-round leaves at most an unlisted file.
//!
//! Only applied (hence committed) txns are shipped: a txn a follower logged and later
//! truncated never reaches the backup. Txns are checked to be contiguous (`zxid + 1`, or
//! counter 1 of a later epoch); where the server's own log has a hole (a follower that
//! took the leader's snapshot, logs purged before shipping) the shipper starts again from
//! a newer snapshot, and restores inside the hole are refused.
//!
//! [`restore_tree`] rebuilds the tree as it was at a zxid or a time: the newest backed-up
//! snapshot at or before it, plus the txns after it. [`restore_into`] writes that tree as
//! a `version-2/snapshot.<zxid>` that zkd and Apache ZooKeeper both start from.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zk_proto::TxnEntry;
use zk_tree::{DataTree, TreeConfig};

use crate::checksum::adler32;
use crate::error::LogError;
use crate::recovery::{logs_after, numbered_files, DataDirs};
use crate::snapfile::{decode_snapshot, snapshot_file_name, snapshot_file_zxid};
use crate::storage::FsStorage;
use crate::txnlog::{
    encode_log, log_file_name, log_file_zxid, scan_log, LogEnd, HEADER_LEN, RECORD_END,
};

/// Where backups go: a flat namespace of named files (`manifest.json`, `logs/...`,
/// `snapshots/...`). Blocking calls; each `put` replaces the whole file atomically and
/// durably, so the manifest is written last and never names a missing file.
pub trait BackupStore: std::fmt::Debug + Send {
    /// Fails with [`BackupError::Unavailable`] when the target cannot be reached now.
    fn check(&self) -> Result<(), BackupError>;
    /// Writes `name` (replacing it) atomically and durably.
    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError>;
    /// Reads `name`; `None` when it does not exist.
    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BackupError>;
    /// The names under `prefix` (e.g. `logs/`).
    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError>;
    /// For messages: the directory or URL.
    fn describe(&self) -> String;
}

/// A directory target (a local disk or a mounted volume). A missing directory is
/// unavailable, never created: it may be an unmounted volume.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }
}

impl BackupStore for DirStore {
    fn check(&self) -> Result<(), BackupError> {
        if self.root.is_dir() {
            Ok(())
        } else {
            Err(BackupError::Unavailable {
                target: self.describe(),
                reason: "not a directory (unmounted or removed?)".into(),
            })
        }
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
        self.check()?;
        let path = self.root.join(name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        write_durably(&dir, &file_name, bytes)
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>, BackupError> {
        self.check()?;
        let path = self.root.join(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, BackupError> {
        self.check()?;
        let (sub, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let dir = self.root.join(sub);
        let mut out = Vec::new();
        let Ok(entries) = fs::read_dir(&dir) else {
            return Ok(out);
        };
        for f in entries.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let full = if sub.is_empty() {
                name
            } else {
                format!("{sub}/{name}")
            };
            if full.starts_with(prefix) {
                out.push(full);
            }
        }
        out.sort();
        Ok(out)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// The manifest's file name in the target.
pub const MANIFEST_NAME: &str = "manifest.json";
/// The manifest format this code writes and reads.
const FORMAT: u32 = 1;
/// A record longer than this in the live log is taken as the end of what is written.
const MAX_RECORD: usize = 512 * 1024 * 1024;

/// What went wrong backing up or restoring, each case with what an operator needs.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup target {target} is unavailable: {reason}")]
    Unavailable { target: String, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{target}: not a backup manifest: {reason}")]
    BadManifest { target: String, reason: String },
    #[error("{file}: {reason}")]
    Damaged { file: String, reason: String },
    #[error("cannot restore: {0}")]
    NotCovered(String),
    #[error("{0} already holds a data directory; restore writes into an empty one")]
    NotEmpty(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The kind of a backed-up file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Snapshot,
    Log,
}

/// One backed-up file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: EntryKind,
    /// Relative to the target, e.g. `logs/log.100000001`.
    pub file: String,
    /// A snapshot's zxid, or a segment's first txn.
    pub first_zxid: i64,
    /// A snapshot's zxid, or a segment's last txn.
    pub last_zxid: i64,
    /// The txn times of a segment's first and last txn (epoch ms); 0 for snapshots.
    #[serde(default)]
    pub first_time_ms: i64,
    #[serde(default)]
    pub last_time_ms: i64,
    pub bytes: u64,
    pub sha256: String,
    /// When it was shipped (epoch ms).
    pub shipped_ms: i64,
}

/// What the target holds; `manifest.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// In shipping order: zxids only grow.
    pub entries: Vec<Entry>,
    /// The newest txn (or snapshot) shipped; `None` before the first snapshot.
    pub shipped_through: Option<i64>,
    /// The last time (epoch ms) the backup held everything the server had applied.
    #[serde(default)]
    pub complete_as_of_ms: i64,
}

impl Manifest {
    /// Reads the target's `manifest.json`; an empty manifest when it has none yet.
    pub fn load(store: &dyn BackupStore) -> Result<Manifest, BackupError> {
        store.check()?;
        let Some(text) = store.get(MANIFEST_NAME)? else {
            return Ok(Manifest {
                format: FORMAT,
                ..Manifest::default()
            });
        };
        let bad = |reason: String| BackupError::BadManifest {
            target: store.describe(),
            reason,
        };
        let m: Manifest = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if m.format != FORMAT {
            return Err(bad(format!(
                "format {} (this zkd reads {FORMAT})",
                m.format
            )));
        }
        Ok(m)
    }

    /// Replaces the target's `manifest.json`.
    pub fn store(&self, store: &dyn BackupStore) -> Result<(), BackupError> {
        let text = serde_json::to_vec_pretty(self).map_err(|e| BackupError::BadManifest {
            target: store.describe(),
            reason: e.to_string(),
        })?;
        store.put(MANIFEST_NAME, &text)
    }

    /// The snapshots, oldest first.
    pub fn snapshots(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(|e| e.kind == EntryKind::Snapshot)
    }

    /// The log segments, oldest first.
    pub fn segments(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|e| e.kind == EntryKind::Log)
    }

    /// Holes in what can be restored: (last zxid before, first zxid after). A snapshot
    /// after the end of the txns so far starts a new chain.
    pub fn gaps(&self) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        let mut end: Option<i64> = None;
        let mut snaps = self.snapshots().map(|e| e.first_zxid).peekable();
        let rebase = |end: &mut Option<i64>, s: i64, out: &mut Vec<(i64, i64)>| match *end {
            Some(p) if s > p => {
                out.push((p, s));
                *end = Some(s);
            }
            Some(_) => {}
            None => *end = Some(s),
        };
        for seg in self.segments() {
            while let Some(s) = snaps.next_if(|&s| s < seg.first_zxid) {
                rebase(&mut end, s, &mut out);
            }
            if let Some(p) = end {
                if !follows(p, seg.first_zxid) && seg.first_zxid > p {
                    out.push((p, seg.first_zxid));
                }
            }
            end = Some(end.map_or(seg.last_zxid, |p| p.max(seg.last_zxid)));
        }
        for s in snaps {
            rebase(&mut end, s, &mut out);
        }
        out
    }
}

/// Whether `next` is the txn right after `prev`: the next counter of the same epoch, or
/// the first of a later epoch.
pub fn follows(prev: i64, next: i64) -> bool {
    next == prev + 1 || (next >> 32 > prev >> 32 && next & 0xffff_ffff == 1)
}

/// Txns between two zxids (an estimate across epochs: the later epoch's counter).
pub fn zxid_distance(from: i64, to: i64) -> i64 {
    if to <= from {
        0
    } else if to >> 32 == from >> 32 {
        to - from
    } else {
        to & 0xffff_ffff
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `dir/name` via a temporary file, fsyncs it, renames it into place and fsyncs
/// the directory.
fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), BackupError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{}.tmp", name.replace('/', "_")));
    let mut f = fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    let parent = path.parent().unwrap_or(dir);
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err(parent))?;
    Ok(())
}

/// One round's work.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub txns: usize,
    pub snapshots: usize,
    /// Why the shipper could not go further (no snapshot yet, a hole in the local log).
    pub waiting: Option<String>,
}

/// Where the next unshipped record of the local log starts.
#[derive(Debug, Clone)]
struct Cursor {
    file: PathBuf,
    offset: u64,
    /// The zxid of the record before `offset` (the last one shipped).
    after: i64,
}

/// Ships one server's data directory to a target; see the module docs. Blocking I/O: run
/// it on its own thread.
#[derive(Debug)]
pub struct Shipper {
    dirs: DataDirs,
    target: Box<dyn BackupStore>,
    manifest: Option<Manifest>,
    cursor: Option<Cursor>,
}

impl Shipper {
    /// A shipper for the data directory `dirs` into `target`.
    pub fn new(dirs: DataDirs, target: Box<dyn BackupStore>) -> Shipper {
        Shipper {
            dirs,
            target,
            manifest: None,
            cursor: None,
        }
    }

    /// The target.
    pub fn target(&self) -> &dyn BackupStore {
        self.target.as_ref()
    }

    /// The manifest as last read or written.
    pub fn manifest(&self) -> Option<&Manifest> {
        self.manifest.as_ref()
    }

    /// Ships what the server has applied up to `applied`, observed at `now_ms`.
    pub fn round(&mut self, applied: i64, now_ms: i64) -> Result<RoundReport, BackupError> {
        if let Err(e) = self.target.check() {
            // Re-read the manifest when it comes back: it may have been restored elsewhere.
            self.manifest = None;
            return Err(e);
        }
        let mut m = match self.manifest.take() {
            Some(m) => m,
            None => Manifest::load(self.target.as_ref())?,
        };
        let result = self.round_with(&mut m, applied, now_ms);
        self.manifest = Some(m);
        result
    }

    fn round_with(
        &mut self,
        m: &mut Manifest,
        applied: i64,
        now_ms: i64,
    ) -> Result<RoundReport, BackupError> {
        let mut report = RoundReport::default();
        let before = m.clone();
        if m.shipped_through.is_none() {
            match self.newest_snapshot(i64::MIN, applied)? {
                Some((zxid, path)) => {
                    self.ship_snapshot(m, zxid, &path, now_ms)?;
                    report.snapshots += 1;
                }
                // A fresh ensemble member has no snapshot until its first is due, but
                // its log starts at the beginning: the empty tree is the base, as
                // recovery would take it.
                None if self.log_starts_from_empty()? => {
                    let bytes = crate::snapfile::encode_snapshot(&DataTree::default());
                    self.ship_snapshot_bytes(m, 0, &snapshot_file_name(0), &bytes, now_ms)?;
                    report.snapshots += 1;
                }
                None => {
                    report.waiting = Some("no snapshot in the data directory yet".into());
                    return Ok(report);
                }
            }
        }
        let mut from = m.shipped_through.unwrap_or(0);
        let (records, gap) = self.collect(from, applied)?;
        if !records.is_empty() {
            self.ship_segment(m, &records, now_ms)?;
            report.txns += records.len();
            from = m.shipped_through.unwrap_or(from);
        }
        if let Some(next) = gap {
            // The local log jumps from `from` to `next`: start again from a snapshot that
            // covers the hole, when the server has one.
            match self.newest_snapshot(from, applied)? {
                Some((zxid, path)) => {
                    tracing::warn!(
                        after = format_args!("{from:#x}"),
                        next = format_args!("{next:#x}"),
                        snapshot = format_args!("{zxid:#x}"),
                        "backup: the local txn log has a hole; continuing from a snapshot"
                    );
                    self.ship_snapshot(m, zxid, &path, now_ms)?;
                    report.snapshots += 1;
                    self.cursor = None;
                    from = zxid;
                    let (records, gap) = self.collect(from, applied)?;
                    if !records.is_empty() {
                        self.ship_segment(m, &records, now_ms)?;
                        report.txns += records.len();
                    }
                    if let Some(next) = gap {
                        report.waiting = Some(format!(
                            "the local txn log jumps from {:#x} to {next:#x}",
                            m.shipped_through.unwrap_or(from)
                        ));
                    }
                }
                None => {
                    report.waiting = Some(format!(
                        "the local txn log jumps from {from:#x} to {next:#x}; waiting for a snapshot"
                    ));
                }
            }
        }
        // Newer snapshots are faster restore bases.
        let last_snap = m
            .snapshots()
            .map(|e| e.first_zxid)
            .max()
            .unwrap_or(i64::MIN);
        let through = m.shipped_through.unwrap_or(i64::MIN);
        if let Some((zxid, path)) = self.newest_snapshot(last_snap, through)? {
            if zxid > last_snap {
                self.ship_snapshot(m, zxid, &path, now_ms)?;
                report.snapshots += 1;
            }
        }
        if m.shipped_through.is_some_and(|s| s >= applied) {
            m.complete_as_of_ms = now_ms;
        }
        if *m != before {
            m.store(self.target.as_ref())?;
        }
        Ok(report)
    }

    /// The newest valid local snapshot with `after < zxid <= upto`.
    fn newest_snapshot(
        &self,
        after: i64,
        upto: i64,
    ) -> Result<Option<(i64, PathBuf)>, BackupError> {
        let snaps = numbered_files(&FsStorage, &self.dirs.snap_dir, snapshot_file_zxid)?;
        for (zxid, path) in snaps.into_iter().rev() {
            if zxid > upto {
                continue;
            }
            if zxid <= after {
                break;
            }
            let Ok(bytes) = fs::read(&path) else { continue };
            // Written in place: one still being written has no valid seal yet.
            if decode_snapshot(&path, Bytes::from(bytes), TreeConfig::default()).is_ok() {
                return Ok(Some((zxid, path)));
            }
        }
        Ok(None)
    }

    /// Whether the oldest local log begins with the first txn there is (nothing before it
    /// to miss).
    fn log_starts_from_empty(&self) -> Result<bool, BackupError> {
        let logs = numbered_files(&FsStorage, &self.dirs.log_dir, log_file_zxid)?;
        let Some((_, first)) = logs.first() else {
            return Ok(false);
        };
        let file = fs::File::open(first).map_err(io_err(first))?;
        Ok(read_record(&file, HEADER_LEN).is_some_and(|(r, _)| follows(0, r.zxid)))
    }

    fn ship_snapshot(
        &mut self,
        m: &mut Manifest,
        zxid: i64,
        path: &Path,
        now_ms: i64,
    ) -> Result<(), BackupError> {
        let bytes = fs::read(path).map_err(io_err(path))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| snapshot_file_name(zxid));
        self.ship_snapshot_bytes(m, zxid, &name, &bytes, now_ms)
    }

    fn ship_snapshot_bytes(
        &mut self,
        m: &mut Manifest,
        zxid: i64,
        name: &str,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<(), BackupError> {
        self.target.put(&format!("snapshots/{name}"), bytes)?;
        m.entries.push(Entry {
            kind: EntryKind::Snapshot,
            file: format!("snapshots/{name}"),
            first_zxid: zxid,
            last_zxid: zxid,
            first_time_ms: 0,
            last_time_ms: 0,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            shipped_ms: now_ms,
        });
        if m.shipped_through.is_none_or(|s| s < zxid) {
            m.shipped_through = Some(zxid);
        }
        Ok(())
    }

    fn ship_segment(
        &mut self,
        m: &mut Manifest,
        records: &[TxnEntryRaw],
        now_ms: i64,
    ) -> Result<(), BackupError> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        let bytes = encode_log(records.iter().map(|r| &r.raw[..]));
        let name = log_file_name(first.zxid);
        self.target.put(&format!("logs/{name}"), &bytes)?;
        m.entries.push(Entry {
            kind: EntryKind::Log,
            file: format!("logs/{name}"),
            first_zxid: first.zxid,
            last_zxid: last.zxid,
            first_time_ms: first.time,
            last_time_ms: last.time,
            bytes: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            shipped_ms: now_ms,
        });
        m.shipped_through = Some(last.zxid);
        Ok(())
    }

    /// The local txns with `from < zxid <= upto`, contiguous from `from`; and, when the
    /// log jumps instead, the zxid it jumps to.
    fn collect(
        &mut self,
        from: i64,
        upto: i64,
    ) -> Result<(Vec<TxnEntryRaw>, Option<i64>), BackupError> {
        let logs = numbered_files(&FsStorage, &self.dirs.log_dir, log_file_zxid)?;
        let mut files: Vec<PathBuf> = logs_after(&logs, from)
            .iter()
            .map(|(_, p)| p.clone())
            .collect();
        let mut offset = HEADER_LEN;
        if let Some(c) = self.cursor.as_ref().filter(|c| c.after == from) {
            if let Some(i) = files.iter().position(|f| *f == c.file) {
                files.drain(..i);
                offset = c.offset;
            }
        }
        let mut out = Vec::new();
        let mut prev = from;
        for (i, path) in files.iter().enumerate() {
            if i > 0 {
                offset = HEADER_LEN;
            }
            let file = match fs::File::open(path) {
                Ok(f) => f,
                // Purged or rolled away meanwhile: the next round lists again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(io_err(path)(e)),
            };
            while let Some((rec, next)) = read_record(&file, offset) {
                let zxid = rec.zxid;
                if zxid <= prev {
                    offset = next;
                    continue;
                }
                if zxid > upto {
                    self.cursor = Some(Cursor {
                        file: path.clone(),
                        offset,
                        after: prev,
                    });
                    return Ok((out, None));
                }
                if !follows(prev, zxid) {
                    self.cursor = None;
                    return Ok((out, Some(zxid)));
                }
                prev = zxid;
                out.push(rec);
                offset = next;
            }
            self.cursor = Some(Cursor {
                file: path.clone(),
                offset,
                after: prev,
            });
        }
        Ok((out, None))
    }
}

/// A txn as stored: its bytes, zxid and time.
#[derive(Debug, Clone)]
struct TxnEntryRaw {
    raw: Bytes,
    zxid: i64,
    time: i64,
}

/// The complete, valid record at `offset` of a live log file and the offset after it, or
/// `None` at the end of what is written (zeros, a partial or a bad record).
fn read_record(file: &fs::File, offset: u64) -> Option<(TxnEntryRaw, u64)> {
    let mut head = [0u8; 12];
    file.read_exact_at(&mut head, offset).ok()?;
    let checksum = i64::from_be_bytes(head[..8].try_into().ok()?);
    let len = usize::try_from(i32::from_be_bytes(head[8..12].try_into().ok()?)).ok()?;
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let mut body = vec![0u8; len + 1];
    file.read_exact_at(&mut body, offset + 12).ok()?;
    if body[len] != RECORD_END {
        return None;
    }
    body.truncate(len);
    if checksum != i64::from(adler32(&body)) {
        return None;
    }
    let raw = Bytes::from(body);
    let entry = TxnEntry::decode(raw.clone()).ok()?;
    Some((
        TxnEntryRaw {
            raw,
            zxid: entry.header.zxid,
            time: entry.header.time,
        },
        offset + 12 + len as u64 + 1,
    ))
}

/// A point to restore to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestorePoint {
    /// The state after the last txn at or before this zxid.
    Zxid(i64),
    /// The state after the last txn whose time is at or before this (epoch ms).
    Time(i64),
}

/// A restored tree and where it came from.
#[derive(Debug)]
pub struct Restored {
    pub tree: DataTree,
    /// The last txn applied (the tree's zxid).
    pub zxid: i64,
    /// The snapshot it started from.
    pub snapshot: String,
    /// Txns replayed on top of it.
    pub replayed: usize,
}

/// Reads a backed-up file and checks its size and SHA-256 against the manifest.
fn read_checked(target: &dyn BackupStore, e: &Entry) -> Result<Vec<u8>, BackupError> {
    let bytes = match target.get(&e.file) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(BackupError::Damaged {
                file: e.file.clone(),
                reason: "missing".into(),
            })
        }
        Err(err @ BackupError::Unavailable { .. }) => return Err(err),
        Err(err) => {
            return Err(BackupError::Damaged {
                file: e.file.clone(),
                reason: format!("cannot read: {err}"),
            })
        }
    };
    if bytes.len() as u64 != e.bytes {
        return Err(BackupError::Damaged {
            file: e.file.clone(),
            reason: format!("{} bytes, the manifest says {}", bytes.len(), e.bytes),
        });
    }
    let sum = sha256_hex(&bytes);
    if sum != e.sha256 {
        return Err(BackupError::Damaged {
            file: e.file.clone(),
            reason: format!("SHA-256 {sum} differs from the manifest's {}", e.sha256),
        });
    }
    Ok(bytes)
}

/// Reads a segment's txns, checked.
fn segment_txns(target: &dyn BackupStore, e: &Entry) -> Result<Vec<TxnEntry>, BackupError> {
    let bytes = read_checked(target, e)?;
    let scan = scan_log(Path::new(&e.file), Bytes::from(bytes))?;
    if let LogEnd::Torn { offset, reason } | LogEnd::Corrupt { offset, reason } = scan.end {
        return Err(BackupError::Damaged {
            file: e.file.clone(),
            reason: format!("bad record at offset {offset}: {reason}"),
        });
    }
    Ok(scan.records.into_iter().map(|r| r.entry).collect())
}

/// The zxid a restore point names: the last txn at or before it, checked against what
/// the backup covers.
pub fn resolve(
    target: &dyn BackupStore,
    m: &Manifest,
    to: RestorePoint,
) -> Result<i64, BackupError> {
    let through = m
        .shipped_through
        .ok_or_else(|| BackupError::NotCovered("the backup holds nothing yet".into()))?;
    let oldest = m
        .snapshots()
        .map(|e| e.first_zxid)
        .min()
        .ok_or_else(|| BackupError::NotCovered("the backup holds no snapshot".into()))?;
    match to {
        RestorePoint::Zxid(z) => {
            if z > through {
                return Err(BackupError::NotCovered(format!(
                    "zxid {z:#x} is past the end of the backup ({through:#x}, complete as of {})",
                    crate::tools::format_time(m.complete_as_of_ms)
                )));
            }
            if z < oldest {
                return Err(BackupError::NotCovered(format!(
                    "zxid {z:#x} is before the oldest restore point in the backup ({oldest:#x})"
                )));
            }
            Ok(z)
        }
        RestorePoint::Time(t) => {
            let mut found: Option<i64> = None;
            let mut later_exists = false;
            'segments: for seg in m.segments() {
                if seg.last_time_ms <= t {
                    found = Some(seg.last_zxid);
                    continue;
                }
                for txn in segment_txns(target, seg)? {
                    if txn.header.time > t {
                        later_exists = true;
                        break 'segments;
                    }
                    found = Some(txn.header.zxid);
                }
            }
            if !later_exists && t > m.complete_as_of_ms {
                return Err(BackupError::NotCovered(format!(
                    "{} is past the end of the backup (complete as of {})",
                    crate::tools::format_time(t),
                    crate::tools::format_time(m.complete_as_of_ms)
                )));
            }
            let first_time = m.segments().next().map(|s| s.first_time_ms);
            match found {
                Some(z) if z >= oldest => Ok(z),
                _ => Err(BackupError::NotCovered(format!(
                    "{} is before the first txn the backup can restore to{}",
                    crate::tools::format_time(t),
                    first_time
                        .map(|f| format!(" ({})", crate::tools::format_time(f)))
                        .unwrap_or_default()
                ))),
            }
        }
    }
}

/// Rebuilds the tree at `to` from the backup in `target`. See the module docs.
pub fn restore_tree(
    target: &dyn BackupStore,
    to: RestorePoint,
    config: TreeConfig,
) -> Result<Restored, BackupError> {
    let m = Manifest::load(target)?;
    let zxid = resolve(target, &m, to)?;
    let base = m
        .snapshots()
        .filter(|e| e.first_zxid <= zxid)
        .max_by_key(|e| e.first_zxid)
        .ok_or_else(|| BackupError::NotCovered(format!("no snapshot at or before {zxid:#x}")))?;
    let bytes = read_checked(target, base)?;
    let mut tree = decode_snapshot(Path::new(&base.file), Bytes::from(bytes), config)?.tree;
    let hole = |prev: i64, next: i64| {
        BackupError::NotCovered(format!(
            "the backup has no txns between {prev:#x} and {next:#x} (a hole in the shipping \
             server's log); restore to a point outside it"
        ))
    };
    let mut prev = base.first_zxid;
    let mut replayed = 0;
    // The first txn after the restore point, once seen.
    let mut next_txn: Option<i64> = None;
    'segments: for seg in m.segments() {
        if seg.last_zxid <= prev {
            continue;
        }
        if seg.first_zxid > zxid {
            next_txn = Some(seg.first_zxid);
            break;
        }
        for txn in segment_txns(target, seg)? {
            let z = txn.header.zxid;
            if z <= prev {
                continue;
            }
            if z > zxid {
                next_txn = Some(z);
                break 'segments;
            }
            if !follows(prev, z) {
                return Err(hole(prev, z));
            }
            tree.apply(&txn.header, &txn.body);
            prev = z;
            replayed += 1;
        }
    }
    if prev < zxid {
        // Nothing in (prev, zxid] was shipped: fine only if what comes next in the backup
        // follows prev directly.
        let next_snapshot = m
            .snapshots()
            .map(|e| e.first_zxid)
            .filter(|&s| s > prev)
            .min();
        let hole_to = match next_txn {
            Some(t) if follows(prev, t) && next_snapshot.is_none_or(|s| s >= t) => None,
            Some(t) => Some(next_snapshot.map_or(t, |s| s.min(t))),
            None => next_snapshot,
        };
        if let Some(n) = hole_to {
            return Err(hole(prev, n));
        }
    }
    tree.set_last_processed_zxid(prev);
    Ok(Restored {
        tree,
        zxid: prev,
        snapshot: base.file.clone(),
        replayed,
    })
}

/// Restores the tree at `to` into `into/version-2/snapshot.<zxid>`, a data directory zkd
/// and Apache ZooKeeper start from. `into` must not hold snapshots or logs already.
pub fn restore_into(
    target: &dyn BackupStore,
    to: RestorePoint,
    into: &Path,
) -> Result<(Restored, PathBuf), BackupError> {
    let dirs = DataDirs::new(into, None);
    let existing = numbered_files(&FsStorage, &dirs.snap_dir, snapshot_file_zxid)?.len()
        + numbered_files(&FsStorage, &dirs.log_dir, log_file_zxid)?.len();
    if existing > 0 {
        return Err(BackupError::NotEmpty(into.to_path_buf()));
    }
    let restored = restore_tree(target, to, TreeConfig::default())?;
    let path = crate::snapfile::write_snapshot_file(
        &FsStorage,
        &dirs.snap_dir,
        &restored.tree,
        crate::SnapshotCompression::None,
    )?;
    Ok((restored, path))
}

/// A problem `verify` found, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub file: String,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub files: usize,
    pub txns: usize,
    pub problems: Vec<Problem>,
    /// Holes between segments, (last zxid before, first zxid after): not damage, but
    /// points inside them cannot be restored.
    pub gaps: Vec<(i64, i64)>,
    /// Files in the target the manifest does not list (a round cut short).
    pub unlisted: Vec<String>,
}

/// Checks every file the manifest lists: present, size and SHA-256 as recorded, logs
/// readable to a clean end with the recorded zxid range and contiguous txns, snapshots
/// with valid seals and digests.
pub fn verify(target: &dyn BackupStore) -> Result<VerifyReport, BackupError> {
    let m = Manifest::load(target)?;
    let mut report = VerifyReport {
        gaps: m.gaps(),
        ..VerifyReport::default()
    };
    for e in &m.entries {
        report.files += 1;
        let problem = match e.kind {
            EntryKind::Log => match segment_txns(target, e) {
                Ok(txns) => {
                    report.txns += txns.len();
                    let zxids: Vec<i64> = txns.iter().map(|t| t.header.zxid).collect();
                    if zxids.first() != Some(&e.first_zxid) || zxids.last() != Some(&e.last_zxid) {
                        Some(format!(
                            "holds zxids {:?}..{:?}, the manifest says {:#x}..{:#x}",
                            zxids.first(),
                            zxids.last(),
                            e.first_zxid,
                            e.last_zxid
                        ))
                    } else {
                        zxids
                            .windows(2)
                            .find(|w| !follows(w[0], w[1]))
                            .map(|w| format!("txns jump from {:#x} to {:#x}", w[0], w[1]))
                    }
                }
                Err(err) => Some(damage_reason(err)),
            },
            EntryKind::Snapshot => match read_checked(target, e).and_then(|b| {
                decode_snapshot(Path::new(&e.file), Bytes::from(b), TreeConfig::default())
                    .map_err(BackupError::from)
            }) {
                Ok(s) if s.zxid == e.first_zxid => None,
                Ok(s) => Some(format!(
                    "snapshot of {:#x}, the manifest says {:#x}",
                    s.zxid, e.first_zxid
                )),
                Err(err) => Some(damage_reason(err)),
            },
        };
        if let Some(reason) = problem {
            report.problems.push(Problem {
                file: e.file.clone(),
                reason,
            });
        }
    }
    let listed: std::collections::HashSet<&str> =
        m.entries.iter().map(|e| e.file.as_str()).collect();
    for sub in ["logs/", "snapshots/"] {
        for name in target.list(sub)? {
            if !listed.contains(name.as_str()) {
                report.unlisted.push(name);
            }
        }
    }
    report.unlisted.sort();
    Ok(report)
}

fn damage_reason(err: BackupError) -> String {
    match err {
        BackupError::Damaged { reason, .. } => reason,
        other => other.to_string(),
    }
}
