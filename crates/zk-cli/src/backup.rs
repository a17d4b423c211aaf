//! `zkcli backup list|verify DIR` and `zkcli restore`: the operator's side of zkd's
//! continuous backup (`backup.dir`, see `zk_log::backup`).
//!
//! ```text
//! zkcli backup list TARGET [--json]
//! zkcli backup verify TARGET [--json]
//! zkcli restore --from DIR (--to-zxid N | --to-time T) --into DATADIR
//! zkcli restore --from DIR (--to-zxid N | --to-time T) --subtree /path -server HOST:PORT [--dry-run]
//! ```
//! A TARGET (or `--from`) is a directory or `s3://bucket/prefix`; S3 settings come from
//! the `AWS_*` environment (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...).
//! `--into` writes `DATADIR/version-2/snapshot.<zxid>`, which zkd and Apache ZooKeeper
//! start from. `--subtree` puts one subtree of a live ensemble back as it was, through
//! ordinary client calls: creates, setData and deletes in `multi` batches guarded by the
//! versions it read (a concurrent change fails the batch rather than being overwritten),
//! then setACL where ACLs differ. Ephemeral nodes are not recreated: their sessions are
//! gone. Nodes whose ACLs deny writes need a user they admit, typically the super user
//! (`--auth digest:super:PASSWORD`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use zk_client::{Client, Data, Op};
use zk_log::backup::{restore_into, restore_tree, verify, BackupStore, Manifest, RestorePoint};
use zk_log::tools::format_time;
use zk_proto::{Acl, CreateMode};
use zk_tree::ephemeral::EphemeralType;
use zk_tree::TreeConfig;

const USAGE: &str = "usage: zkcli backup list|verify TARGET [--json]
       zkcli restore --from DIR (--to-zxid N | --to-time T) --into DATADIR
       zkcli restore --from DIR (--to-zxid N | --to-time T) --subtree /path -server HOST:PORT
                     [--auth SCHEME:CREDENTIALS] [--dry-run]
  --auth: e.g. digest:super:PASSWORD, so ACLs that deny writes do not stop the restore
  TARGET, DIR: a directory or s3://bucket/prefix (S3 settings from AWS_* variables)
  T: 2026-11-23T22:24:41.123Z (UTC) or epoch milliseconds; N: 0x1a2b or decimal";

/// Ops per multi batch, and the bytes of data per batch (well under jute.maxbuffer).
const BATCH_OPS: usize = 500;
const BATCH_BYTES: usize = 512 * 1024;

/// `zkcli backup ...`; returns the exit status.
pub fn backup_main(args: &[String]) -> i32 {
    let json_out = args.iter().any(|a| a == "--json");
    let words: Vec<&String> = args.iter().filter(|a| *a != "--json").collect();
    let (Some(verb), Some(dir)) = (words.first(), words.get(1)) else {
        eprintln!("{USAGE}");
        return 2;
    };
    let store = match zk_backup::open(dir, &zk_backup::S3Options::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zkcli backup: {e}");
            return 1;
        }
    };
    let store = store.as_ref();
    match verb.as_str() {
        "list" => match Manifest::load(store) {
            Ok(m) => {
                if json_out {
                    println!("{}", serde_json::to_string(&m).unwrap_or_default());
                } else {
                    print_list(store, &m);
                }
                0
            }
            Err(e) => {
                eprintln!("zkcli backup list: {e}");
                1
            }
        },
        "verify" => match verify(store) {
            Ok(r) => {
                if json_out {
                    println!("{}", serde_json::to_string(&r).unwrap_or_default());
                } else {
                    for p in &r.problems {
                        println!("DAMAGED {}: {}", p.file, p.reason);
                    }
                    for (a, b) in &r.gaps {
                        println!("gap: no txns between {a:#x} and {b:#x}; restores inside it are refused");
                    }
                    for f in &r.unlisted {
                        println!("unlisted: {f} (a round cut short; ignored)");
                    }
                    println!(
                        "{}: {} files, {} txns checked, {} damaged",
                        store.describe(),
                        r.files,
                        r.txns,
                        r.problems.len()
                    );
                }
                i32::from(!r.problems.is_empty())
            }
            Err(e) => {
                eprintln!("zkcli backup verify: {e}");
                1
            }
        },
        _ => {
            eprintln!("{USAGE}");
            2
        }
    }
}

fn print_list(store: &dyn BackupStore, m: &Manifest) {
    println!("backup {}", store.describe());
    match m.shipped_through {
        Some(z) => println!(
            "  through zxid {z:#x}, complete as of {}",
            format_time(m.complete_as_of_ms)
        ),
        None => println!("  empty"),
    }
    for s in m.snapshots() {
        println!(
            "  snapshot {:#x}  {}  {} bytes",
            s.first_zxid, s.file, s.bytes
        );
    }
    let segs: Vec<_> = m.segments().collect();
    if let (Some(first), Some(last)) = (segs.first(), segs.last()) {
        println!(
            "  {} log segments: zxid {:#x} ({}) .. {:#x} ({}), {} bytes",
            segs.len(),
            first.first_zxid,
            format_time(first.first_time_ms),
            last.last_zxid,
            format_time(last.last_time_ms),
            segs.iter().map(|s| s.bytes).sum::<u64>()
        );
    }
    for (a, b) in m.gaps() {
        println!("  gap: no txns between {a:#x} and {b:#x}");
    }
}

struct RestoreArgs {
    from: String,
    to: RestorePoint,
    into: Option<PathBuf>,
    subtree: Option<String>,
    server: Option<String>,
    auth: Option<(String, String)>,
    dry_run: bool,
}

fn parse_zxid(text: &str) -> Result<i64, String> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => t.parse::<i64>(),
    }
    .map_err(|_| format!("{text:?} is not a zxid (0x1a2b or decimal)"))
}

fn parse_restore(args: &[String]) -> Result<RestoreArgs, String> {
    let (mut from, mut to, mut into, mut subtree, mut server) = (None, None, None, None, None);
    let mut auth = None;
    let mut dry_run = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--from" => from = Some(value()?),
            "--to-zxid" => to = Some(RestorePoint::Zxid(parse_zxid(&value()?)?)),
            "--to-time" => to = Some(RestorePoint::Time(zk_proto::time::parse_time(&value()?)?)),
            "--into" => into = Some(PathBuf::from(value()?)),
            "--subtree" => subtree = Some(value()?),
            "-server" | "--server" => server = Some(value()?),
            "--auth" => {
                let v = value()?;
                let (scheme, cred) = v.split_once(':').ok_or_else(|| {
                    format!("--auth SCHEME:CREDENTIALS, e.g. digest:super:pw\n{USAGE}")
                })?;
                auth = Some((scheme.to_owned(), cred.to_owned()));
            }
            "--dry-run" => dry_run = true,
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    let from = from.ok_or_else(|| format!("--from DIR is required\n{USAGE}"))?;
    let to = to.ok_or_else(|| format!("--to-zxid or --to-time is required\n{USAGE}"))?;
    if into.is_some() == subtree.is_some() {
        return Err(format!(
            "give one of --into DATADIR or --subtree /path\n{USAGE}"
        ));
    }
    if subtree.is_some() && server.is_none() {
        return Err(format!("--subtree needs -server HOST:PORT\n{USAGE}"));
    }
    Ok(RestoreArgs {
        from,
        to,
        into,
        subtree,
        server,
        auth,
        dry_run,
    })
}

/// `zkcli restore ...`; returns the exit status. Blocking: run it outside an async
/// runtime (it starts its own for `--subtree`).
pub fn restore_main(args: &[String]) -> i32 {
    let a = match parse_restore(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let store = match zk_backup::open(&a.from, &zk_backup::S3Options::default()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zkcli restore: {e}");
            return 1;
        }
    };
    if let Some(into) = &a.into {
        return match restore_into(store.as_ref(), a.to, into) {
            Ok((r, path)) => {
                println!(
                    "restored zxid {:#x} ({} + {} txns) into {}",
                    r.zxid,
                    r.snapshot,
                    r.replayed,
                    path.display()
                );
                0
            }
            Err(e) => {
                eprintln!("zkcli restore: {e}");
                1
            }
        };
    }
    let (Some(root), Some(server)) = (a.subtree.as_deref(), a.server.as_deref()) else {
        return 2;
    };
    let restored = match restore_tree(store.as_ref(), a.to, TreeConfig::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zkcli restore: {e}");
            return 1;
        }
    };
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(restore_live(&a, restored, root, server)),
        Err(e) => {
            eprintln!("zkcli restore: cannot start: {e}");
            1
        }
    }
}

async fn restore_live(
    a: &RestoreArgs,
    restored: zk_log::backup::Restored,
    root: &str,
    server: &str,
) -> i32 {
    let client = match Client::builder(server)
        .session_timeout(Duration::from_secs(30))
        .connect()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zkcli restore: cannot connect to {server}: {e}");
            return 1;
        }
    };
    if let Some((scheme, cred)) = &a.auth {
        if let Err(e) = client.add_auth(scheme, cred.as_str()).await {
            eprintln!("zkcli restore: auth {scheme} refused: {e}");
            client.close().await;
            return 1;
        }
    }
    let result = restore_subtree(&client, &restored.tree, root, a.dry_run).await;
    client.close().await;
    match result {
        Ok(s) => {
            println!(
                "{} {root} to zxid {:#x}: {} created, {} updated, {} deleted, {} ACLs set, {} ephemerals skipped, {} multi batches",
                if a.dry_run { "would restore" } else { "restored" },
                restored.zxid,
                s.created,
                s.updated,
                s.deleted,
                s.acls,
                s.ephemerals_skipped,
                s.batches
            );
            println!(
                "{}",
                json!({"zxid": restored.zxid, "created": s.created, "updated": s.updated,
                "deleted": s.deleted, "acls": s.acls, "ephemerals_skipped": s.ephemerals_skipped,
                "batches": s.batches})
            );
            0
        }
        Err(e) => {
            eprintln!("zkcli restore: {e}");
            1
        }
    }
}

/// What a live subtree restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SubtreeRestore {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub acls: usize,
    pub ephemerals_skipped: usize,
    pub batches: usize,
}

/// A node the restore point had: data, ACL, how to create it (mode, TTL).
type WantedNode = (Option<Bytes>, Vec<Acl>, CreateMode, Option<i64>);

/// A live node as read: data, version, ACL and aversion.
struct LiveNode {
    data: Option<Bytes>,
    version: i32,
    acl: Vec<Acl>,
    aversion: i32,
}

/// Reads the live subtree at `root` (empty when it does not exist).
async fn read_live(client: &Client, root: &str) -> Result<BTreeMap<String, LiveNode>, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_owned()];
    while let Some(path) = todo.pop() {
        let (data, stat) = match client.get_data(&path).await {
            Ok(x) => x,
            Err(e) if e.code() == zk_proto::ErrorCode::NoNode => continue,
            Err(e) => return Err(format!("{path}: {e}")),
        };
        let (acl, astat) = client
            .get_acl(&path)
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let kids = match client.get_children(&path).await {
            Ok(k) => k,
            Err(e) if e.code() == zk_proto::ErrorCode::NoNode => Vec::new(),
            Err(e) => return Err(format!("{path}: {e}")),
        };
        for k in kids {
            todo.push(child_path(&path, &k));
        }
        out.insert(
            path,
            LiveNode {
                data,
                version: stat.version,
                acl,
                aversion: astat.aversion,
            },
        );
    }
    Ok(out)
}

fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

fn under(path: &str, root: &str) -> bool {
    root == "/" || path == root || path.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

/// Makes the live subtree at `root` what it is in `tree`; see the module docs.
pub async fn restore_subtree(
    client: &Client,
    tree: &zk_tree::DataTree,
    root: &str,
    dry_run: bool,
) -> Result<SubtreeRestore, String> {
    if root == "/" || !root.starts_with('/') || root.ends_with('/') {
        return Err(format!(
            "{root:?}: give a subtree path such as /app (not the root)"
        ));
    }
    let mut stats = SubtreeRestore::default();
    // The nodes the restore point had, minus ephemerals (and their descendants, which
    // cannot exist) and ZooKeeper's own /zookeeper.
    let mut wanted: BTreeMap<String, WantedNode> = BTreeMap::new();
    for path in tree.walk() {
        if !under(&path, root) {
            continue;
        }
        let mode = match tree.ephemeral_type(&path) {
            Some(EphemeralType::Normal(_)) => {
                stats.ephemerals_skipped += 1;
                continue;
            }
            Some(EphemeralType::Container) => (CreateMode::Container, None),
            Some(EphemeralType::Ttl(ms)) => (CreateMode::PersistentWithTtl, Some(ms)),
            _ => (CreateMode::Persistent, None),
        };
        let data = tree.data(&path).and_then(|d| d.map(Bytes::copy_from_slice));
        let acl = tree.acl(&path).map(|a| a.to_vec()).unwrap_or_default();
        wanted.insert(path, (data, acl, mode.0, mode.1));
    }
    let live = read_live(client, root).await?;
    let mut ops: Vec<(Op, usize)> = Vec::new();
    // Deletes, deepest first.
    let mut doomed: Vec<&String> = live.keys().filter(|p| !wanted.contains_key(*p)).collect();
    doomed.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for p in doomed {
        let version = live.get(p).map_or(-1, |n| n.version);
        ops.push((
            Op::Delete {
                path: p.clone(),
                version,
            },
            p.len(),
        ));
        stats.deleted += 1;
    }
    // Creates (parents first: BTreeMap order puts a parent before its children) and sets.
    let mut acl_fixes = Vec::new();
    for (path, (data, acl, mode, ttl)) in &wanted {
        let size = path.len() + data.as_ref().map_or(0, |d| d.len());
        match live.get(path) {
            None => {
                ops.push((
                    Op::Create {
                        path: path.clone(),
                        data: Data(data.clone()),
                        acl: acl.clone(),
                        mode: *mode,
                        ttl: *ttl,
                    },
                    size,
                ));
                stats.created += 1;
            }
            Some(n) => {
                if n.data != *data {
                    ops.push((
                        Op::SetData {
                            path: path.clone(),
                            data: Data(data.clone()),
                            version: n.version,
                        },
                        size,
                    ));
                    stats.updated += 1;
                }
                if n.acl != *acl {
                    acl_fixes.push((path.clone(), acl.clone(), n.aversion));
                }
            }
        }
    }
    // A parent of the subtree that is missing live cannot be made up.
    if let Some(parent) = root
        .rsplit_once('/')
        .map(|(p, _)| if p.is_empty() { "/" } else { p })
    {
        if !wanted.is_empty()
            && !live.contains_key(root)
            && client
                .exists(parent)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
        {
            return Err(format!(
                "{parent} does not exist on the server; create it first"
            ));
        }
    }
    stats.acls = acl_fixes.len();
    if dry_run {
        return Ok(stats);
    }
    let mut batch: Vec<Op> = Vec::new();
    let mut bytes = 0;
    let mut batches: Vec<Vec<Op>> = Vec::new();
    for (op, size) in ops {
        if !batch.is_empty() && (batch.len() >= BATCH_OPS || bytes + size > BATCH_BYTES) {
            batches.push(std::mem::take(&mut batch));
            bytes = 0;
        }
        bytes += size;
        batch.push(op);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    let total = batches.len();
    for (i, b) in batches.into_iter().enumerate() {
        let results = client
            .multi(b)
            .await
            .map_err(|e| format!("batch {} of the restore failed: {e}", i + 1))?;
        if let Some(code) = results.iter().find_map(|r| match r {
            zk_client::OpResult::Error(c)
                if !matches!(
                    c,
                    zk_proto::ErrorCode::Ok | zk_proto::ErrorCode::RuntimeInconsistency
                ) =>
            {
                Some(*c)
            }
            _ => None,
        }) {
            let why = match code {
                zk_proto::ErrorCode::NoAuth => {
                    "the ACLs deny it: run as a user they admit (--auth digest:super:PASSWORD)"
                }
                zk_proto::ErrorCode::BadVersion
                | zk_proto::ErrorCode::NoNode
                | zk_proto::ErrorCode::NodeExists
                | zk_proto::ErrorCode::NotEmpty => {
                    "the subtree changed while restoring; run the restore again"
                }
                _ => "see the error code",
            };
            return Err(format!(
                "batch {} of {} was refused ({code:?}): {why}; earlier batches are applied",
                i + 1,
                total
            ));
        }
        stats.batches += 1;
    }
    for (path, acl, aversion) in acl_fixes {
        client
            .set_acl(&path, acl, aversion)
            .await
            .map_err(|e| format!("setAcl {path}: {e}"))?;
    }
    Ok(stats)
}
