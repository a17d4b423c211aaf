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

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use zk_log::snapfile::write_snapshot_file;
use zk_log::{recover, DataDirs, FsStorage, TxnLog, TxnLogConfig};
use zk_tests::{files, read_txn_log};
use zk_tree::TreeConfig;

const ZK_JAR: &str = "/usr/share/java/zookeeper.jar";

fn zk_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/zookeeper-3.8")
}

fn java_tools_available() -> bool {
    let ok = Path::new(ZK_JAR).exists()
        && Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install Apache ZooKeeper (Debian package zookeeper) and Java"
        );
        println!("SKIPPED: {ZK_JAR} or java missing (apt-get install zookeeper)");
    }
    ok
}

fn run_java(class: &str, args: &[&Path]) -> String {
    let out = Command::new("java")
        .arg("-cp")
        .arg(ZK_JAR)
        .arg(class)
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{class} failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
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
    write_snapshot_file(storage.as_ref(), &dirs.snap_dir, &tree).unwrap();
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
