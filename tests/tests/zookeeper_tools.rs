//! Files written by zk-log, read by Apache ZooKeeper's own tools from the Debian package
//! (`SnapshotFormatter`, `TxnLogToolkit` in /usr/share/java/zookeeper.jar), and ZooKeeper's
//! data dir recovered by zk-log.
//!
//! The txns come from the log a real ZooKeeper 3.8 wrote (tests/data/zookeeper-3.8); zk-log
//! writes them again and must produce ZooKeeper's exact log bytes.
//!
//! The Java tools are needed: CI installs them (`.ci/run`); elsewhere, without them, the
//! Java-driven tests say so and return (under `CI=true` a missing tool is a failure).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zk_log::snapfile::{write_snapshot_file, SnapshotCompression};
use zk_log::tools::{dump_log, dump_snapshot};
use zk_log::{recover, DataDirs, FsStorage, TxnLog, TxnLogConfig};
use zk_tests::java::{self, formatter_fields};
use zk_tests::{files, read_txn_log};
use zk_tree::TreeConfig;

fn zk_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/zookeeper-3.8")
}

fn java_tools_available() -> bool {
    java::tools_available()
}

fn run_java(class: &str, args: &[&Path]) -> String {
    java::run(class, args)
}

/// Rewrites ZooKeeper's captured log with zk-log into `dir`, then snapshots the result.
fn write_with_zk_log(dir: &Path) -> (DataDirs, usize, usize) {
    let dirs = DataDirs::new(dir, None);
    let storage = Arc::new(FsStorage);
    let mut log = TxnLog::new(storage.clone(), TxnLogConfig::new(&dirs.log_dir), 0);
    let mut tree = zk_tree::DataTree::new(TreeConfig::default());
    let mut count = 0;
    for file in files(&zk_data().join("version-2"), "log.") {
        let (_, txns) = read_txn_log(&file).unwrap();
        for t in txns {
            log.append(t.entry.header.zxid, &t.raw);
            tree.apply(&t.entry.header, &t.entry.body);
            count += 1;
        }
    }
    log.commit().unwrap();
    write_snapshot_file(
        storage.as_ref(),
        &dirs.snap_dir,
        &tree,
        SnapshotCompression::None,
    )
    .unwrap();
    (dirs, count, tree.node_count())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zk-tools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn zk_log_writes_zookeepers_exact_log_bytes() {
    let dir = temp_dir("bytes");
    let (dirs, count, _) = write_with_zk_log(&dir);
    let theirs = std::fs::read(zk_data().join("version-2/log.1")).unwrap();
    let ours = std::fs::read(dirs.log_dir.join("log.1")).unwrap();
    let (_, txns) = read_txn_log(&dirs.log_dir.join("log.1")).unwrap();
    assert_eq!(txns.len(), count);
    let last = txns.last().unwrap();
    let used = theirs.len().min(ours.len());
    // Everything up to the zero padding is identical; only the preallocated length differs.
    let end = theirs.iter().rposition(|b| *b != 0).unwrap() + 1;
    assert!(end <= used, "records fit in both files");
    assert_eq!(
        &ours[..end],
        &theirs[..end],
        "log bytes differ (last zxid {:#x})",
        last.entry.header.zxid
    );
    assert!(ours[end..].iter().all(|b| *b == 0));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn zookeeper_tools_read_what_zk_log_wrote() {
    if !java_tools_available() {
        return;
    }
    let dir = temp_dir("java");
    let (dirs, count, nodes) = write_with_zk_log(&dir);
    let log_text = run_java(
        "org.apache.zookeeper.server.persistence.TxnLogToolkit",
        &[&dirs.log_dir.join("log.1")],
    );
    let listed = log_text.lines().filter(|l| l.contains(" zxid 0x")).count();
    assert_eq!(listed, count, "TxnLogToolkit output:\n{log_text}");
    assert!(log_text.contains("createContainer /box"), "{log_text}");
    let snap = files(&dirs.snap_dir, "snapshot.").pop().unwrap();
    let snap_text = run_java("org.apache.zookeeper.server.SnapshotFormatter", &[&snap]);
    // ZooKeeper keeps the root under both "" and "/", so its count is one more than the
    // number of znodes it then lists.
    assert!(
        snap_text.contains(&format!("ZNode Details (count={})", nodes + 1)),
        "SnapshotFormatter output:\n{snap_text}"
    );
    assert_eq!(
        snap_text.lines().filter(|l| l.starts_with('/')).count(),
        nodes
    );
    for path in [
        "/app/more",
        "/app/eph",
        "/secret",
        "/zookeeper/quota/app/zookeeper_stats",
    ] {
        assert!(
            snap_text.lines().any(|l| l == path),
            "{path} missing from:\n{snap_text}"
        );
    }
    println!("TxnLogToolkit listed {listed} txns; SnapshotFormatter listed {nodes} znodes");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn zk_log_recovers_zookeepers_data_dir() {
    let r = recover(
        &FsStorage,
        &DataDirs::new(&zk_data(), None),
        TreeConfig::default(),
    )
    .unwrap();
    assert!(r.snapshot.is_some());
    assert!(r.truncated.is_none());
    assert_eq!(r.digest_mismatches, 0);
    assert_eq!(r.tree.last_processed_zxid(), 0x1c);
    assert!(r.tree.exists("/app/more"));
    assert_eq!(r.tree.ephemeral_count(), 2);
}

/// (session, cxid, zxid, op) of every txn line of `TxnLogToolkit` or `dump_log` output.
fn txn_keys(text: &str) -> Vec<[String; 4]> {
    text.lines()
        .filter(|l| l.contains(" zxid 0x"))
        .map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            let at = words.iter().position(|w| *w == "session").unwrap();
            assert_eq!((words[at + 2], words[at + 4]), ("cxid", "zxid"), "{l}");
            [
                words[at + 1].to_owned(),
                words[at + 3].to_owned(),
                words[at + 5].to_owned(),
                words[at + 6].to_owned(),
            ]
        })
        .collect()
}

/// (path, asize, dsize) of every entry of an ncdu export (`SnapshotFormatter -json`).
fn ncdu_entries(json: &str) -> BTreeSet<(String, u64, u64)> {
    fn walk(v: &serde_json::Value, parent: &str, out: &mut BTreeSet<(String, u64, u64)>) {
        let (entry, kids) = match v.as_array() {
            Some(a) => (&a[0], &a[1..]),
            None => (v, &[][..]),
        };
        let name = entry["name"].as_str().unwrap();
        let path = match parent {
            "" => name.to_owned(),
            "/" => format!("/{name}"),
            p => format!("{p}/{name}"),
        };
        out.insert((
            path.clone(),
            entry["asize"].as_u64().unwrap(),
            entry["dsize"].as_u64().unwrap(),
        ));
        for k in kids {
            walk(k, &path, out);
        }
    }
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let top = v.as_array().unwrap();
    assert_eq!((top[0].as_i64(), top[1].as_i64()), (Some(1), Some(0)));
    assert_eq!(top[2]["progname"], "SnapshotFormatter.java");
    let mut out = BTreeSet::new();
    walk(&top[3], "", &mut out);
    out
}

#[test]
fn our_tools_agree_with_zookeepers_tools() {
    if !java_tools_available() {
        return;
    }
    let log = zk_data().join("version-2/log.1");
    let theirs = run_java(
        "org.apache.zookeeper.server.persistence.TxnLogToolkit",
        &[&log],
    );
    let mut ours = Vec::new();
    let dump = dump_log(&log, &mut ours).unwrap();
    let ours = String::from_utf8(ours).unwrap();
    assert_eq!(
        txn_keys(&ours),
        txn_keys(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
    assert_eq!(txn_keys(&ours).len(), dump.txns);
    let eof = format!("EOF reached after {} txns.", dump.txns);
    assert!(theirs.contains(&eof) && ours.contains(&eof));

    let snap = zk_data().join("version-2/snapshot.1c");
    for flags in [&[][..], &["-d"][..]] {
        let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
        args.push(snap.as_os_str());
        let theirs = java::run("org.apache.zookeeper.server.SnapshotFormatter", &args);
        let mut ours = Vec::new();
        dump_snapshot(&snap, &mut ours, !flags.is_empty(), false).unwrap();
        let ours = String::from_utf8(ours).unwrap();
        let fields = formatter_fields(&theirs);
        assert_eq!(fields.len(), 18);
        assert_eq!(fields, formatter_fields(&ours), "{flags:?}");
        assert_eq!(theirs.lines().last(), ours.lines().last(), "Last zxid line");
        let sessions =
            "Session Details (sid, timeout, ephemeralCount):\n0x10000176cc40000, 30000, 2\n";
        assert!(theirs.contains(sessions) && ours.contains(sessions));
    }
    let theirs = java::run(
        "org.apache.zookeeper.server.SnapshotFormatter",
        &[OsStr::new("-json"), snap.as_os_str()],
    );
    let mut ours = Vec::new();
    dump_snapshot(&snap, &mut ours, false, true).unwrap();
    let ours = String::from_utf8(ours).unwrap();
    let entries = ncdu_entries(&theirs);
    assert_eq!(entries.len(), 18);
    assert_eq!(entries, ncdu_entries(&ours));
}
