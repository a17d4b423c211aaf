//! Retention (`autopurge.snapRetainCount`): the newest N snapshots (at least 3) and the logs
//! needed to replay from the oldest of them are kept; after a purge, recovery still reaches
//! the same tree.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use zk_log::purge::{purge, purge_keeping};
use zk_log::snapfile::write_snapshot_file;
use zk_log::storage::{SimStorage, Storage};
use zk_log::{recover, DataDirs, SnapshotCompression, TxnLog, TxnLogConfig};
use zk_proto::{well_known, CreateTxn, OpCode, TxnBody, TxnEntry, TxnHeader};
use zk_tree::{DataTree, TreeConfig};

fn create(tree: &mut DataTree, zxid: i64) -> Bytes {
    let entry = TxnEntry {
        header: TxnHeader {
            client_id: 1,
            cxid: 0,
            zxid,
            time: zxid,
            r#type: OpCode::Create.code(),
        },
        body: TxnBody::Create(CreateTxn {
            path: format!("/n{zxid}"),
            data: Some(Bytes::from_static(b"x")),
            acl: well_known::open_acl_unsafe(),
            ephemeral: false,
            parent_c_version: -1,
        }),
        digest: None,
    };
    tree.apply(&entry.header, &entry.body);
    entry.encode()
}

/// A simulated disk with an empty data directory, its log writer and tree.
fn fresh() -> (SimStorage, DataDirs, TxnLog, DataTree) {
    let storage = SimStorage::new();
    let dirs = DataDirs::new(Path::new("/data"), None);
    let config = TxnLogConfig {
        prealloc_bytes: 4096,
        ..TxnLogConfig::new(&dirs.log_dir)
    };
    let log = TxnLog::new(Arc::new(storage.clone()), config, 0);
    (storage, dirs, log, DataTree::default())
}

#[test]
fn purge_keeps_what_recovery_needs() {
    let (storage, dirs, mut log, mut tree) = fresh();
    let mut zxid = 0;
    // Six rounds: 10 txns, then a snapshot and a log roll.
    for _ in 0..6 {
        for _ in 0..10 {
            zxid += 1;
            log.append(zxid, &create(&mut tree, zxid));
        }
        log.commit().unwrap();
        write_snapshot_file(&storage, &dirs.snap_dir, &tree, SnapshotCompression::None).unwrap();
        log.roll().unwrap();
    }
    for _ in 0..5 {
        zxid += 1;
        log.append(zxid, &create(&mut tree, zxid));
    }
    log.commit().unwrap();
    let names = |dir: &Path| storage.list(dir).unwrap();
    assert_eq!(dirs.snap_dir, dirs.log_dir, "one data dir");
    assert_eq!(names(&dirs.snap_dir).len(), 13, "6 snapshots and 7 logs");

    // Asking for 1 keeps 3 (ZooKeeper's minimum).
    let removed = purge(&storage, &dirs, 1).unwrap();
    let snaps: Vec<String> = names(&dirs.snap_dir)
        .into_iter()
        .filter(|n| n.starts_with("snapshot."))
        .collect();
    assert_eq!(snaps, vec!["snapshot.28", "snapshot.32", "snapshot.3c"]);
    let logs: Vec<String> = names(&dirs.log_dir)
        .into_iter()
        .filter(|n| n.starts_with("log."))
        .collect();
    // The oldest kept snapshot is at 0x28 (40); replay needs the log holding 41 onwards.
    assert_eq!(logs, vec!["log.29", "log.33", "log.3d"]);
    assert_eq!(removed.len(), 3 + 4);
    let r = recover(&storage, &dirs, TreeConfig::default()).unwrap();
    assert_eq!(r.tree.last_processed_zxid(), zxid);
    assert_eq!(r.tree.digest(), tree.digest());
    // Nothing more to purge.
    assert!(purge(&storage, &dirs, 3).unwrap().is_empty());
}

#[test]
fn purge_keeps_logs_a_backup_has_not_shipped() {
    let (storage, dirs, mut log, mut tree) = fresh();
    for zxid in 1..=60 {
        log.append(zxid, &create(&mut tree, zxid));
        if zxid % 10 == 0 {
            log.commit().unwrap();
            write_snapshot_file(&storage, &dirs.snap_dir, &tree, SnapshotCompression::None)
                .unwrap();
            log.roll().unwrap();
        }
    }
    // The backup has shipped up to 15: the log holding 16.. (log.b) and later stay.
    purge_keeping(&storage, &dirs, 3, Some(15)).unwrap();
    let logs: Vec<String> = storage
        .list(&dirs.log_dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("log."))
        .collect();
    let mut want = vec!["log.b", "log.15", "log.1f", "log.29", "log.33"];
    want.sort();
    let mut logs = logs;
    logs.sort();
    assert_eq!(logs, want);
    // Once shipped, retention proceeds as usual.
    for zxid in 61..=70 {
        log.append(zxid, &create(&mut tree, zxid));
    }
    log.commit().unwrap();
    write_snapshot_file(&storage, &dirs.snap_dir, &tree, SnapshotCompression::None).unwrap();
    log.roll().unwrap();
    purge_keeping(&storage, &dirs, 3, Some(70)).unwrap();
    let mut logs: Vec<String> = storage
        .list(&dirs.log_dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("log."))
        .collect();
    logs.sort();
    assert_eq!(logs, vec!["log.33", "log.3d"]);
}
