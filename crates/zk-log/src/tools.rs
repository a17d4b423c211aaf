//! Offline operator tools over ZooKeeper's `version-2/` files, in the spirit of ZooKeeper's
//! own (`TxnLogToolkit`, `SnapshotFormatter`, `zkSnapshotRecursiveSummaryToolkit.sh`,
//! `zkSnapshotComparer.sh`), so an operator can inspect and repair a data directory
//! without Java. `zkd` exposes each as a subcommand.
//!
//! Every tool reads files (snapshots of any compression, told by their first bytes so a
//! renamed file still works), writes human-readable text to a `&mut dyn Write`, and fails
//! with a [`ToolError`] that names the file when it is not the kind expected
//! ([`LogError::BadHeader`]) or is damaged.
//!
//! Snapshots are read as stored ([`SnapshotContents`]), not through the DataTree, so the
//! tools show exactly what the file holds (ACL references, node order, sessions).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use bytes::Bytes;
use serde::Serialize;
use zk_proto::{perms, Acl, ErrorCode, FileHeader, Jute, OpCode, Reader, StatPersisted};
use zk_proto::{TxnBody, TxnEntry};

use crate::checksum::adler32;
use crate::compress::SnapshotCompression;
use crate::error::LogError;
use crate::snapfile::{parse_snapshot_file_name, SNAP_MAGIC, SNAP_VERSION};
use crate::txnlog::{scan_log, LogEnd, HEADER_LEN, RECORD_END, TXNLOG_MAGIC, TXNLOG_VERSION};

/// Why a tool failed: the input (unreadable, wrong kind, damaged) or the output.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// Reading or decoding an input file failed; the error names the file.
    #[error(transparent)]
    Log(#[from] LogError),
    /// Writing to the output stream failed.
    #[error("writing the output: {0}")]
    Output(#[from] io::Error),
    /// The output file given is the input file.
    #[error("{path}: the output file must differ from the input")]
    SameFile { path: PathBuf },
}

/// Result alias of the tools.
pub type ToolResult<T> = std::result::Result<T, ToolError>;

fn read_file(path: &Path) -> Result<Bytes, LogError> {
    std::fs::read(path)
        .map(Bytes::from)
        .map_err(LogError::io(path))
}

fn json_err(e: serde_json::Error) -> ToolError {
    ToolError::Output(io::Error::from(e))
}

// ---------------------------------------------------------------------------------------
// Formatting helpers.

/// Milliseconds since the epoch as ISO-8601 UTC (`2026-11-23T22:24:41.123Z`), the form of
/// every time the tools print (ZooKeeper's tools use the JVM's locale instead).
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let (y, m, d) = zk_proto::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

/// Data shown in a txn line: `null`, a quoted string when it is UTF-8, else `base64:...`;
/// cut after 64 bytes with the full length noted.
fn format_data(data: Option<&[u8]>) -> String {
    const SHOWN: usize = 64;
    let Some(d) = data else {
        return "null".to_owned();
    };
    let mut s = match std::str::from_utf8(d) {
        Ok(text) => {
            let mut end = text.len().min(SHOWN);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            format!("{:?}", &text[..end])
        }
        Err(_) => format!(
            "base64:{}",
            base64::engine::general_purpose::STANDARD.encode(&d[..d.len().min(SHOWN)])
        ),
    };
    if d.len() > SHOWN {
        s.push_str(&format!("...({} bytes)", d.len()));
    }
    s
}

/// An ACL as zkCli shows it: `[world:anyone:cdrwa, ip:127.0.0.1:r]`.
pub fn format_acl(acl: &[Acl]) -> String {
    let parts: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, perms::to_letters(a.perms)))
        .collect();
    format!("[{}]", parts.join(", "))
}

fn op_name(ty: i32) -> String {
    OpCode::from_code(ty).map_or_else(|| format!("op{ty}"), |o| o.name().to_owned())
}

/// A txn body in words: the op name and its fields.
pub fn describe_txn(ty: i32, body: &TxnBody) -> String {
    let details = match body {
        TxnBody::Create(c) => format!(
            "{} data={} acl={} ephemeral={} parentCVersion={}",
            c.path,
            format_data(c.data.as_deref()),
            format_acl(&c.acl),
            c.ephemeral,
            c.parent_c_version
        ),
        TxnBody::CreateV0(c) => format!(
            "{} data={} acl={} ephemeral={}",
            c.path,
            format_data(c.data.as_deref()),
            format_acl(&c.acl),
            c.ephemeral
        ),
        TxnBody::CreateTtl(c) => format!(
            "{} data={} acl={} parentCVersion={} ttl={}",
            c.path,
            format_data(c.data.as_deref()),
            format_acl(&c.acl),
            c.parent_c_version,
            c.ttl
        ),
        TxnBody::CreateContainer(c) => format!(
            "{} data={} acl={} parentCVersion={}",
            c.path,
            format_data(c.data.as_deref()),
            format_acl(&c.acl),
            c.parent_c_version
        ),
        TxnBody::Delete(d) => d.path.clone(),
        TxnBody::SetData(s) | TxnBody::Reconfig(s) => format!(
            "{} data={} version={}",
            s.path,
            format_data(s.data.as_deref()),
            s.version
        ),
        TxnBody::Check(c) => format!("{} version={}", c.path, c.version),
        TxnBody::SetAcl(s) => format!(
            "{} acl={} version={}",
            s.path,
            format_acl(&s.acl),
            s.version
        ),
        TxnBody::CreateSession(s) => format!("timeout={}ms", s.time_out),
        TxnBody::CloseSession(None) => String::new(),
        TxnBody::CloseSession(Some(c)) => format!("ephemerals=[{}]", c.paths2_delete.join(", ")),
        TxnBody::Error(e) => match ErrorCode::from_code(e.err) {
            Some(code) => format!("{} ({})", e.err, code.message()),
            None => e.err.to_string(),
        },
        TxnBody::Multi(subs) => {
            let parts: Vec<String> = subs.iter().map(|(t, b)| describe_txn(*t, b)).collect();
            format!("[{}]", parts.join("; "))
        }
    };
    let name = op_name(ty);
    if details.is_empty() {
        name
    } else {
        format!("{name} {details}")
    }
}

/// One line per txn, as [`dump_log`] prints it: time, session, cxid, zxid, op and details
/// (the fields and order of ZooKeeper's `TxnLogToolkit`).
pub fn format_txn(entry: &TxnEntry) -> String {
    let h = &entry.header;
    format!(
        "{} session {:#x} cxid {:#x} zxid {:#x} {}",
        format_time(h.time),
        h.client_id,
        h.cxid,
        h.zxid,
        describe_txn(h.r#type, &entry.body)
    )
}

// ---------------------------------------------------------------------------------------
// Txn logs.

/// What [`dump_log`] found, for an exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDump {
    /// Valid txns listed.
    pub txns: usize,
    /// How the file ends: cleanly, with a torn tail, or with corruption.
    pub end: LogEnd,
}

/// Lists every txn of a `log.<zxid>` file, one line each, then reports a torn tail or
/// corruption with its offset, then `EOF reached after N txns.` (`TxnLogToolkit FILE`).
pub fn dump_log(path: &Path, out: &mut dyn Write) -> ToolResult<LogDump> {
    let scan = scan_log(path, read_file(path)?)?;
    writeln!(
        out,
        "ZooKeeper Transactional Log File with dbid {} txnlog format version {}",
        scan.header.dbid, scan.header.version
    )?;
    for rec in &scan.records {
        writeln!(out, "{}", format_txn(&rec.entry))?;
    }
    match &scan.end {
        LogEnd::Clean { .. } => {}
        LogEnd::Torn { offset, reason } => writeln!(
            out,
            "Torn tail at offset {offset}: {reason} (an interrupted final write, never \
             acknowledged; recovery truncates it)"
        )?,
        LogEnd::Corrupt { offset, reason } => writeln!(
            out,
            "CORRUPT at offset {offset}: {reason}; non-zero bytes follow, so later records may \
             have been acknowledged (recover-log rewrites records whose only fault is the \
             checksum)"
        )?,
    }
    writeln!(out, "EOF reached after {} txns.", scan.records.len())?;
    Ok(LogDump {
        txns: scan.records.len(),
        end: scan.end,
    })
}

/// `<path>.fixed`: where `TxnLogToolkit -r` writes its repaired copy.
pub fn fixed_log_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".fixed");
    PathBuf::from(name)
}

/// What [`recover_log`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRepair {
    /// Records written to the output.
    pub records: usize,
    /// Records whose checksum was recomputed.
    pub fixed: usize,
    /// Where and why copying stopped before the end of the input, if it did.
    pub stopped: Option<(u64, String)>,
}

/// Copies the txn log at `path` to `out_path` record by record, recomputing the checksum
/// of every record whose checksum is wrong but whose txn still decodes (`TxnLogToolkit
/// -r`), and stops at the first record that cannot be decoded (cut, bad length, missing
/// end marker, undecodable txn). The preallocated zero padding is not copied. Reports each
/// fix and a summary to `out`.
///
/// A recomputed checksum makes the record *readable*, not *right*: if the damage was in
/// the txn itself, the damaged txn is kept. Check the output with [`dump_log`].
pub fn recover_log(path: &Path, out_path: &Path, out: &mut dyn Write) -> ToolResult<LogRepair> {
    let same = out_path == path
        || matches!(
            (path.canonicalize(), out_path.canonicalize()),
            (Ok(a), Ok(b)) if a == b
        );
    if same {
        return Err(ToolError::SameFile {
            path: out_path.to_path_buf(),
        });
    }
    let bytes = read_file(path)?;
    check_log_header(path, &bytes)?;
    let mut fixed_bytes = bytes[..HEADER_LEN as usize].to_vec();
    let mut records = 0;
    let mut fixed = 0;
    let mut pos = HEADER_LEN as usize;
    let stopped = loop {
        let rest = &bytes[pos..];
        if crate::txnlog::all_zero(rest) {
            break None;
        }
        if rest.len() < 12 {
            break Some((pos as u64, "truncated record header".to_owned()));
        }
        let checksum = i64::from_be_bytes(rest[..8].try_into().unwrap_or_default());
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap_or_default());
        let Ok(len) = usize::try_from(len) else {
            break Some((pos as u64, format!("negative record length {len}")));
        };
        if rest.len() < 13 + len {
            break Some((
                pos as u64,
                "record runs past the end of the file".to_owned(),
            ));
        }
        if rest[12 + len] != RECORD_END {
            break Some((pos as u64, "missing end-of-record marker".to_owned()));
        }
        let txn = bytes.slice(pos + 12..pos + 12 + len);
        let entry = match TxnEntry::decode(txn.clone()) {
            Ok(e) => e,
            Err(e) => break Some((pos as u64, format!("undecodable txn: {e}"))),
        };
        let computed = i64::from(adler32(&txn));
        if computed != checksum {
            fixed += 1;
            writeln!(
                out,
                "Fixed the checksum of zxid {:#x} at offset {pos}: {checksum:#x} -> {computed:#x}",
                entry.header.zxid
            )?;
        }
        crate::txnlog::encode_record(&txn, &mut fixed_bytes);
        records += 1;
        pos += 13 + len;
    };
    write_durably(out_path, &fixed_bytes)?;
    writeln!(
        out,
        "Wrote {records} records to {}; fixed {fixed} checksums.",
        out_path.display()
    )?;
    if let Some((offset, reason)) = &stopped {
        writeln!(
            out,
            "Stopped at offset {offset}: {reason}; the {} bytes from there on were not copied.",
            bytes.len() as u64 - offset
        )?;
    }
    Ok(LogRepair {
        records,
        fixed,
        stopped,
    })
}

fn check_log_header(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let header = FileHeader::read(&mut Reader::new(Bytes::copy_from_slice(
        &bytes[..bytes.len().min(HEADER_LEN as usize)],
    )));
    match header {
        Ok(h) if h.magic == TXNLOG_MAGIC && h.version == TXNLOG_VERSION => Ok(()),
        Ok(h) => Err(LogError::BadHeader {
            path: path.to_path_buf(),
            expected: "txn log",
            magic: h.magic,
            version: h.version,
        }),
        Err(_) => Err(LogError::BadHeader {
            path: path.to_path_buf(),
            expected: "txn log",
            magic: first_i32(bytes),
            version: 0,
        }),
    }
}

fn write_durably(path: &Path, data: &[u8]) -> Result<(), LogError> {
    let mut f = std::fs::File::create(path).map_err(LogError::io(path))?;
    f.write_all(data).map_err(LogError::io(path))?;
    f.sync_all().map_err(LogError::io(path))
}

fn first_i32(bytes: &[u8]) -> i32 {
    let mut b = [0u8; 4];
    let n = bytes.len().min(4);
    b[..n].copy_from_slice(&bytes[..n]);
    i32::from_be_bytes(b)
}

// ---------------------------------------------------------------------------------------
// Snapshots as stored.

/// One znode as a snapshot stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    /// The path; the root, stored as "", is "/".
    pub path: String,
    /// `None` for null data.
    pub data: Option<Bytes>,
    /// Reference into [`SnapshotContents::acls`]; -1 is `OPEN_ACL_UNSAFE`.
    pub acl_ref: i64,
    /// The persisted stat (stored cversion).
    pub stat: StatPersisted,
}

/// The digest record ZooKeeper 3.6+ appends after the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotDigest {
    /// The zxid the digest was taken at.
    pub zxid: i64,
    /// The digest algorithm version.
    pub version: i32,
    /// The tree digest.
    pub digest: i64,
}

/// A snapshot file decoded as stored, with its seals verified, for the tools.
#[derive(Debug, Clone)]
pub struct SnapshotContents {
    /// The file read.
    pub path: PathBuf,
    /// How it was compressed (told by its first bytes).
    pub compression: SnapshotCompression,
    /// The zxid its name gives, when it is named `snapshot.<hex>[...]`.
    pub name_zxid: Option<i64>,
    /// Sessions and their timeouts, in file order.
    pub sessions: Vec<(i64, i32)>,
    /// The ACL cache: reference to ACL list.
    pub acls: BTreeMap<i64, Vec<Acl>>,
    /// Every node in file order (parents before children).
    pub nodes: Vec<SnapshotNode>,
    /// The digest record, absent in snapshots older than ZooKeeper 3.6.
    pub digest: Option<SnapshotDigest>,
}

impl SnapshotContents {
    /// The zxid the snapshot was taken at: the name's, else the digest record's.
    pub fn last_zxid(&self) -> Option<i64> {
        self.name_zxid.or(self.digest.map(|d| d.zxid))
    }

    /// The ACL a reference stands for; `None` for a reference the cache lacks.
    pub fn resolve_acl(&self, acl_ref: i64) -> Option<Vec<Acl>> {
        if acl_ref == -1 {
            return Some(zk_proto::well_known::open_acl_unsafe());
        }
        self.acls.get(&acl_ref).cloned()
    }

    /// The tree digest of the nodes (what the digest record should hold).
    pub fn computed_digest(&self) -> i64 {
        self.nodes
            .iter()
            .map(|n| zk_tree::digest::node_digest(&n.path, n.data.as_deref(), &n.stat))
            .fold(0u64, u64::wrapping_add) as i64
    }
}

/// Reads and decodes a snapshot file of any compression. Fails, naming the file, when it is
/// not a snapshot ([`LogError::BadHeader`]) or is damaged (bad seal, cut short).
pub fn read_snapshot_contents(path: &Path) -> Result<SnapshotContents, LogError> {
    parse_snapshot_contents(path, &read_file(path)?)
}

/// [`read_snapshot_contents`] of bytes already read; `path` names them in errors.
pub fn parse_snapshot_contents(path: &Path, raw: &[u8]) -> Result<SnapshotContents, LogError> {
    let compression = SnapshotCompression::sniff(raw);
    let bytes = match compression {
        SnapshotCompression::None => Bytes::copy_from_slice(raw),
        c => Bytes::from(c.decompress(path, raw)?),
    };
    let bad = |reason: String| LogError::BadSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    let mut r = Reader::with_len_max(bytes.clone(), usize::MAX);
    let header = FileHeader::read(&mut r).map_err(|_| LogError::BadHeader {
        path: path.to_path_buf(),
        expected: "snapshot",
        magic: first_i32(&bytes),
        version: 0,
    })?;
    if header.magic != SNAP_MAGIC || header.version != SNAP_VERSION {
        return Err(LogError::BadHeader {
            path: path.to_path_buf(),
            expected: "snapshot",
            magic: header.magic,
            version: header.version,
        });
    }
    let at = |r: &Reader| bytes.len() - r.remaining();
    let decode = |r: &Reader, e: zk_proto::DecodeError| bad(format!("at offset {}: {e}", at(r)));
    let count = r.read_vec_len(12).map_err(|e| decode(&r, e))?;
    let mut sessions = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.read_i64().map_err(|e| decode(&r, e))?;
        let timeout = r.read_i32().map_err(|e| decode(&r, e))?;
        sessions.push((id, timeout));
    }
    let count = r.read_vec_len(12).map_err(|e| decode(&r, e))?;
    let mut acls = BTreeMap::new();
    for _ in 0..count {
        let id = r.read_i64().map_err(|e| decode(&r, e))?;
        let list = Vec::<Acl>::read(&mut r).map_err(|e| decode(&r, e))?;
        acls.insert(id, list);
    }
    let mut nodes = Vec::new();
    loop {
        let path = r.read_string().map_err(|e| decode(&r, e))?;
        if path == "/" {
            break;
        }
        let data = r.read_buffer().map_err(|e| decode(&r, e))?;
        let acl_ref = r.read_i64().map_err(|e| decode(&r, e))?;
        let stat = StatPersisted::read(&mut r).map_err(|e| decode(&r, e))?;
        let path = if path.is_empty() {
            "/".to_owned()
        } else {
            path
        };
        nodes.push(SnapshotNode {
            path,
            data,
            acl_ref,
            stat,
        });
    }
    let check_seal = |r: &mut Reader| -> Result<(), LogError> {
        let offset = at(r);
        let value = r
            .read_i64()
            .map_err(|e| bad(format!("seal at offset {offset}: {e}")))?;
        let slash = r
            .read_string()
            .map_err(|e| bad(format!("seal at offset {offset}: {e}")))?;
        if slash != "/" {
            return Err(bad(format!(
                "seal at offset {offset} is not followed by \"/\""
            )));
        }
        let expected = i64::from(adler32(&bytes[..offset]));
        if value != expected {
            return Err(bad(format!(
                "checksum mismatch at offset {offset}: sealed {value:#x}, computed {expected:#x}"
            )));
        }
        Ok(())
    };
    check_seal(&mut r)?;
    let digest = if r.is_empty() {
        None
    } else {
        let zxid = r.read_i64().map_err(|e| decode(&r, e))?;
        let version = r.read_i32().map_err(|e| decode(&r, e))?;
        let digest = r.read_i64().map_err(|e| decode(&r, e))?;
        check_seal(&mut r)?;
        Some(SnapshotDigest {
            zxid,
            version,
            digest,
        })
    };
    if !r.is_empty() {
        return Err(bad(format!(
            "{} unexpected bytes after the last seal",
            r.remaining()
        )));
    }
    let name_zxid = path
        .file_name()
        .and_then(|n| parse_snapshot_file_name(&n.to_string_lossy()))
        .map(|(z, _)| z);
    Ok(SnapshotContents {
        path: path.to_path_buf(),
        compression,
        name_zxid,
        sessions,
        acls,
        nodes,
        digest,
    })
}

/// Parent/child structure of a snapshot's nodes, with per-subtree totals.
struct TreeIndex {
    /// Children of each node, sorted by name.
    children: Vec<Vec<usize>>,
    root: usize,
    /// Nodes in each subtree, the node itself included.
    subtree_nodes: Vec<u64>,
    /// Data bytes in each subtree, the node's own included.
    subtree_bytes: Vec<u64>,
}

fn parent_path(p: &str) -> Option<&str> {
    match p.rfind('/') {
        _ if p == "/" => None,
        Some(0) => Some("/"),
        Some(i) => Some(&p[..i]),
        None => None,
    }
}

fn index_tree(c: &SnapshotContents) -> Result<TreeIndex, LogError> {
    let bad = |reason: String| LogError::BadSnapshot {
        path: c.path.clone(),
        reason,
    };
    let mut by_path: HashMap<&str, usize> = HashMap::with_capacity(c.nodes.len());
    for (i, n) in c.nodes.iter().enumerate() {
        if by_path.insert(&n.path, i).is_some() {
            return Err(bad(format!("node {} appears twice", n.path)));
        }
    }
    let root = *by_path
        .get("/")
        .ok_or_else(|| bad("no root node".to_owned()))?;
    let mut children = vec![Vec::new(); c.nodes.len()];
    let mut parent = vec![usize::MAX; c.nodes.len()];
    for (i, n) in c.nodes.iter().enumerate() {
        let Some(pp) = parent_path(&n.path) else {
            continue;
        };
        let p = *by_path
            .get(pp)
            .ok_or_else(|| bad(format!("node {} has no parent", n.path)))?;
        children[p].push(i);
        parent[i] = p;
    }
    for kids in &mut children {
        kids.sort_by(|a, b| c.nodes[*a].path.cmp(&c.nodes[*b].path));
    }
    let mut subtree_nodes = vec![1u64; c.nodes.len()];
    let mut subtree_bytes: Vec<u64> = c
        .nodes
        .iter()
        .map(|n| n.data.as_ref().map_or(0, |d| d.len() as u64))
        .collect();
    let mut deepest_first: Vec<usize> = (0..c.nodes.len()).collect();
    deepest_first.sort_by_key(|i| std::cmp::Reverse(c.nodes[*i].path.matches('/').count()));
    for i in deepest_first {
        if i != root {
            let p = parent[i];
            subtree_nodes[p] += subtree_nodes[i];
            subtree_bytes[p] += subtree_bytes[i];
        }
    }
    Ok(TreeIndex {
        children,
        root,
        subtree_nodes,
        subtree_bytes,
    })
}

/// Pre-order walk from the root with children sorted by name: (node, depth).
fn walk(index: &TreeIndex, depth_max: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut stack = vec![(index.root, 0usize)];
    while let Some((i, depth)) = stack.pop() {
        out.push((i, depth));
        if depth < depth_max {
            stack.extend(index.children[i].iter().rev().map(|c| (*c, depth + 1)));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// dump_snapshot.

/// One entry of the ncdu export (`SnapshotFormatter -json`).
#[derive(Serialize)]
struct NcduEntry<'a> {
    name: &'a str,
    asize: u64,
    dsize: u64,
    dev: u64,
    ino: u64,
}

/// The ncdu export's header object.
#[derive(Serialize)]
struct NcduMeta {
    progname: &'static str,
    progver: &'static str,
    timestamp: u64,
}

/// Prints a snapshot file (any compression).
///
/// Text (`SnapshotFormatter [-d]`): `ZNode Details (count=N):`, then per node its path and
/// `cZxid`, `ctime`, `mZxid`, `mtime`, `pZxid`, `cversion` (as stored), `dataVersion`,
/// `aclVersion`, `ephemeralOwner`, `acl`, `dataLength`, and with `with_data` the data in
/// base64; then `Session Details (sid, timeout, ephemeralCount):`, the digest record and
/// whether the nodes match it, and `Last zxid: 0x..`. Times are ISO-8601 UTC.
///
/// JSON (`SnapshotFormatter -json`): the ncdu export format, one line:
/// `[1,0,{"progname":"SnapshotFormatter.java","progver":"0.01","timestamp":MS},TREE]` where
/// a node with children is `[ENTRY, CHILD...]`, a leaf is `ENTRY`, and an entry is
/// `{"name":last path component ("/" for the root),"asize":data bytes,"dsize":data bytes,
/// "dev":0,"ino":1001 and up in output order}`; children are sorted by name. `with_data` is
/// ignored (the format has no place for data).
///
/// Returns the number of znodes.
pub fn dump_snapshot(
    path: &Path,
    out: &mut dyn Write,
    with_data: bool,
    json: bool,
) -> ToolResult<usize> {
    let c = read_snapshot_contents(path)?;
    let index = index_tree(&c)?;
    if json {
        write_ncdu(&c, &index, out)?;
    } else {
        write_text(&c, &index, out, with_data)?;
    }
    Ok(c.nodes.len())
}

fn write_text(
    c: &SnapshotContents,
    index: &TreeIndex,
    out: &mut dyn Write,
    with_data: bool,
) -> ToolResult<()> {
    writeln!(out, "ZNode Details (count={}):", c.nodes.len())?;
    for (i, _) in walk(index, usize::MAX) {
        let n = &c.nodes[i];
        let s = &n.stat;
        writeln!(out, "----")?;
        writeln!(out, "{}", n.path)?;
        writeln!(out, "  cZxid = {:#016x}", s.czxid)?;
        writeln!(out, "  ctime = {}", format_time(s.ctime))?;
        writeln!(out, "  mZxid = {:#016x}", s.mzxid)?;
        writeln!(out, "  mtime = {}", format_time(s.mtime))?;
        writeln!(out, "  pZxid = {:#016x}", s.pzxid)?;
        writeln!(out, "  cversion = {}", s.cversion)?;
        writeln!(out, "  dataVersion = {}", s.version)?;
        writeln!(out, "  aclVersion = {}", s.aversion)?;
        writeln!(out, "  ephemeralOwner = {:#016x}", s.ephemeral_owner)?;
        match c.resolve_acl(n.acl_ref) {
            Some(acl) => writeln!(out, "  acl = {}", format_acl(&acl))?,
            None => writeln!(out, "  acl = <missing reference {}>", n.acl_ref)?,
        }
        writeln!(
            out,
            "  dataLength = {}",
            n.data.as_ref().map_or(0, |d| d.len())
        )?;
        if with_data {
            match &n.data {
                Some(d) => writeln!(
                    out,
                    "  data = {}",
                    base64::engine::general_purpose::STANDARD.encode(d)
                )?,
                None => writeln!(out, "  data = (null)")?,
            }
        }
    }
    writeln!(out, "Session Details (sid, timeout, ephemeralCount):")?;
    let mut ephemerals: HashMap<i64, usize> = HashMap::new();
    for n in &c.nodes {
        *ephemerals.entry(n.stat.ephemeral_owner).or_default() += 1;
    }
    for (sid, timeout) in &c.sessions {
        writeln!(
            out,
            "{sid:#x}, {timeout}, {}",
            ephemerals.get(sid).copied().unwrap_or(0)
        )?;
    }
    writeln!(out, "----")?;
    match c.digest {
        Some(d) if d.zxid == 0 && d.digest == 0 => writeln!(
            out,
            "Digest: empty record (ZooKeeper had applied no txn since it started)"
        )?,
        Some(d) if d.version == zk_tree::digest::DIGEST_VERSION => {
            let computed = c.computed_digest();
            let verdict = if computed == d.digest {
                "matches the nodes".to_owned()
            } else {
                format!("DIFFERS from the nodes' {computed:#x}")
            };
            writeln!(
                out,
                "Digest: {:#x} (version {}, zxid {:#x}), {verdict}",
                d.digest, d.version, d.zxid
            )?;
        }
        Some(d) => writeln!(
            out,
            "Digest: {:#x} (version {}, zxid {:#x}), not checked (unknown version)",
            d.digest, d.version, d.zxid
        )?,
        None => writeln!(out, "Digest: none (written before ZooKeeper 3.6)")?,
    }
    match c.last_zxid() {
        Some(z) => writeln!(out, "Last zxid: {z:#x}")?,
        None => writeln!(out, "Last zxid: unknown")?,
    }
    Ok(())
}

fn write_ncdu(c: &SnapshotContents, index: &TreeIndex, out: &mut dyn Write) -> ToolResult<()> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    write!(out, "[1,0,")?;
    serde_json::to_writer(
        &mut *out,
        &NcduMeta {
            progname: "SnapshotFormatter.java",
            progver: "0.01",
            timestamp,
        },
    )
    .map_err(json_err)?;
    write!(out, ",")?;
    enum Step {
        Open { node: usize, comma: bool },
        Close,
    }
    let mut stack = vec![Step::Open {
        node: index.root,
        comma: false,
    }];
    let mut ino = 1000u64;
    while let Some(step) = stack.pop() {
        let (i, comma) = match step {
            Step::Close => {
                write!(out, "]")?;
                continue;
            }
            Step::Open { node, comma } => (node, comma),
        };
        if comma {
            write!(out, ",")?;
        }
        ino += 1;
        let n = &c.nodes[i];
        let size = n.data.as_ref().map_or(0, |d| d.len() as u64);
        let name = if n.path == "/" {
            "/"
        } else {
            n.path.rsplit('/').next().unwrap_or("")
        };
        let entry = NcduEntry {
            name,
            asize: size,
            dsize: size,
            dev: 0,
            ino,
        };
        let kids = &index.children[i];
        if !kids.is_empty() {
            write!(out, "[")?;
        }
        serde_json::to_writer(&mut *out, &entry).map_err(json_err)?;
        if !kids.is_empty() {
            stack.push(Step::Close);
            stack.extend(kids.iter().rev().map(|k| Step::Open {
                node: *k,
                comma: true,
            }));
        }
    }
    writeln!(out, "]")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// summarize_snapshot.

/// Prints, for each subtree down to `depth` levels below the root (0: the root only), its
/// path (indented by depth), the number of znodes below it and the data bytes of the whole
/// subtree, the node's own included (`zkSnapshotRecursiveSummaryToolkit.sh`). Children are
/// in name order.
pub fn summarize_snapshot(path: &Path, depth: usize, out: &mut dyn Write) -> ToolResult<()> {
    let c = read_snapshot_contents(path)?;
    let index = index_tree(&c)?;
    writeln!(
        out,
        "Snapshot {} ({}, zxid {}): {} znodes, {} data bytes; subtrees to depth {depth}",
        path.display(),
        c.compression,
        c.last_zxid()
            .map_or_else(|| "unknown".to_owned(), |z| format!("{z:#x}")),
        c.nodes.len(),
        index.subtree_bytes[index.root]
    )?;
    let rows: Vec<(String, u64, u64)> = walk(&index, depth)
        .into_iter()
        .map(|(i, d)| {
            (
                format!("{}{}", "  ".repeat(d), c.nodes[i].path),
                index.subtree_nodes[i] - 1,
                index.subtree_bytes[i],
            )
        })
        .collect();
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(4);
    writeln!(
        out,
        "{:<width$}  {:>11}  {:>10}",
        "path", "descendants", "data_bytes"
    )?;
    for (p, nodes, bytes) in rows {
        writeln!(out, "{p:<width$}  {nodes:>11}  {bytes:>10}")?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// compare_snapshots.

/// Compares two snapshot files node by node and prints `only in A: PATH`, `only in B:
/// PATH` and `differs: PATH: what` (data, each stat field, ACL), in path order, then the
/// total (`zkSnapshotComparer.sh`, simpler). Returns the number of differing paths.
pub fn compare_snapshots(a: &Path, b: &Path, out: &mut dyn Write) -> ToolResult<usize> {
    let ca = read_snapshot_contents(a)?;
    let cb = read_snapshot_contents(b)?;
    for (tag, c) in [("A", &ca), ("B", &cb)] {
        writeln!(
            out,
            "{tag}: {} ({}, zxid {}, {} znodes, {} sessions)",
            c.path.display(),
            c.compression,
            c.last_zxid()
                .map_or_else(|| "unknown".to_owned(), |z| format!("{z:#x}")),
            c.nodes.len(),
            c.sessions.len()
        )?;
    }
    let na: BTreeMap<&str, &SnapshotNode> = ca.nodes.iter().map(|n| (n.path.as_str(), n)).collect();
    let nb: BTreeMap<&str, &SnapshotNode> = cb.nodes.iter().map(|n| (n.path.as_str(), n)).collect();
    let mut paths: Vec<&str> = na.keys().chain(nb.keys()).copied().collect();
    paths.sort_unstable();
    paths.dedup();
    let mut differences = 0;
    for p in paths {
        match (na.get(p), nb.get(p)) {
            (Some(_), None) => {
                differences += 1;
                writeln!(out, "only in A: {p}")?;
            }
            (None, Some(_)) => {
                differences += 1;
                writeln!(out, "only in B: {p}")?;
            }
            (Some(x), Some(y)) => {
                let what = node_differences(&ca, x, &cb, y);
                if !what.is_empty() {
                    differences += 1;
                    writeln!(out, "differs: {p}: {}", what.join("; "))?;
                }
            }
            (None, None) => {}
        }
    }
    if differences == 0 {
        writeln!(out, "The snapshots hold the same znodes.")?;
    } else {
        writeln!(out, "{differences} differences.")?;
    }
    Ok(differences)
}

fn node_differences(
    ca: &SnapshotContents,
    x: &SnapshotNode,
    cb: &SnapshotContents,
    y: &SnapshotNode,
) -> Vec<String> {
    let mut what = Vec::new();
    match (&x.data, &y.data) {
        (a, b) if a == b => {}
        (Some(a), Some(b)) if a.len() == b.len() => {
            what.push(format!("data differs ({} bytes each)", a.len()));
        }
        (a, b) => {
            let describe = |d: &Option<Bytes>| match d {
                None => "null".to_owned(),
                Some(d) => format!("{} bytes", d.len()),
            };
            what.push(format!("data {} vs {}", describe(a), describe(b)));
        }
    }
    let (s, t) = (&x.stat, &y.stat);
    let hex = |name: &str, a: i64, b: i64| (a != b).then(|| format!("{name} {a:#x} vs {b:#x}"));
    let dec = |name: &str, a: i32, b: i32| (a != b).then(|| format!("{name} {a} vs {b}"));
    let time = |name: &str, a: i64, b: i64| {
        (a != b).then(|| format!("{name} {} vs {}", format_time(a), format_time(b)))
    };
    what.extend(
        [
            hex("cZxid", s.czxid, t.czxid),
            time("ctime", s.ctime, t.ctime),
            hex("mZxid", s.mzxid, t.mzxid),
            time("mtime", s.mtime, t.mtime),
            hex("pZxid", s.pzxid, t.pzxid),
            dec("cversion", s.cversion, t.cversion),
            dec("dataVersion", s.version, t.version),
            dec("aclVersion", s.aversion, t.aversion),
            hex("ephemeralOwner", s.ephemeral_owner, t.ephemeral_owner),
        ]
        .into_iter()
        .flatten(),
    );
    let (acl_a, acl_b) = (ca.resolve_acl(x.acl_ref), cb.resolve_acl(y.acl_ref));
    if acl_a != acl_b {
        let show = |a: &Option<Vec<Acl>>, r: i64| match a {
            Some(a) => format_acl(a),
            None => format!("<missing reference {r}>"),
        };
        what.push(format!(
            "acl {} vs {}",
            show(&acl_a, x.acl_ref),
            show(&acl_b, y.acl_ref)
        ));
    }
    what
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_iso_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_795_472_681_123), "2026-11-23T22:24:41.123Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999Z");
        // Extremes do not panic.
        let _ = format_time(i64::MAX);
        let _ = format_time(i64::MIN);
    }

    #[test]
    fn data_and_acl_formatting() {
        assert_eq!(format_data(None), "null");
        assert_eq!(format_data(Some(b"v\"1")), "\"v\\\"1\"");
        assert_eq!(format_data(Some(&[0xff, 0])), "base64:/wA=");
        let long = "x".repeat(100);
        assert_eq!(
            format_data(Some(long.as_bytes())),
            format!("\"{}\"...(100 bytes)", "x".repeat(64))
        );
        assert_eq!(
            format_acl(&zk_proto::well_known::open_acl_unsafe()),
            "[world:anyone:crwda]"
        );
    }

    #[test]
    fn parents() {
        assert_eq!(parent_path("/"), None);
        assert_eq!(parent_path("/a"), Some("/"));
        assert_eq!(parent_path("/a/b"), Some("/a"));
    }
}
