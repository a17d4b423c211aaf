//! Continuous backup and point-in-time restore (`zk_log::backup`) on a real directory:
//! a data directory written by the txn log and snapshot writers, shipped round by round,
//! then restored to zxids and times and compared with the tree the history gives.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use zk_log::backup::{
    restore_into, restore_tree, verify, BackupError, DirStore, Manifest, RestorePoint, Shipper,
};
use zk_log::snapfile::write_snapshot_file;
use zk_log::{recover, DataDirs, FsStorage, SnapshotCompression, TxnLog, TxnLogConfig};
use zk_proto::{well_known, CreateTxn, OpCode, SetDataTxn, TxnBody, TxnEntry, TxnHeader};
use zk_tree::{DataTree, TreeConfig};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("zk-log-backup-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Txn `zxid` of a fixed history: creates of `/n<k>` and sets of earlier nodes; its time is
/// `zxid * 1000`.
fn txn(zxid: i64) -> TxnEntry {
    let header = |ty: OpCode| TxnHeader {
        client_id: 1,
        cxid: zxid as i32,
        zxid,
        time: (zxid & 0xffff_ffff) * 1000 + (zxid >> 32) * 1_000_000,
        r#type: ty.code(),
    };
    let counter = zxid & 0xffff_ffff;
    if counter % 3 == 0 {
        TxnEntry {
            header: header(OpCode::SetData),
            body: TxnBody::SetData(SetDataTxn {
                path: format!("/n{}", (counter / 3) * 2),
                data: Some(Bytes::from(format!("set at {zxid:#x}"))),
                version: -1,
            }),
            digest: None,
        }
    } else {
        TxnEntry {
            header: header(OpCode::Create),
            body: TxnBody::Create(CreateTxn {
                path: format!("/n{zxid:x}"),
                data: Some(Bytes::from(format!("created at {zxid:#x}"))),
                acl: well_known::open_acl_unsafe(),
                ephemeral: false,
                parent_c_version: -1,
            }),
            digest: None,
        }
    }
}

/// A server's data directory being written, and the history so far.
struct Server {
    dirs: DataDirs,
    log: TxnLog,
    tree: DataTree,
    history: Vec<TxnEntry>,
}

impl Server {
    fn new(root: &Path) -> Server {
        let dirs = DataDirs::new(root, None);
        let config = TxnLogConfig {
            prealloc_bytes: 64 * 1024,
            ..TxnLogConfig::new(&dirs.log_dir)
        };
        let log = TxnLog::new(Arc::new(FsStorage), config, 0);
        let tree = DataTree::default();
        write_snapshot_file(&FsStorage, &dirs.snap_dir, &tree, SnapshotCompression::None).unwrap();
        Server {
            dirs,
            log,
            tree,
            history: Vec::new(),
        }
    }

    fn write(&mut self, zxids: impl IntoIterator<Item = i64>) {
        for z in zxids {
            let t = txn(z);
            self.tree.apply(&t.header, &t.body);
            self.log.append(z, &t.encode());
            self.history.push(t);
        }
        self.log.commit().unwrap();
    }

    fn snapshot(&mut self) {
        write_snapshot_file(
            &FsStorage,
            &self.dirs.snap_dir,
            &self.tree,
            SnapshotCompression::None,
        )
        .unwrap();
        self.log.roll().unwrap();
    }

    fn applied(&self) -> i64 {
        self.tree.last_processed_zxid()
    }

    /// The tree after the last txn at or before `zxid`, from the history alone.
    fn tree_at(&self, zxid: i64) -> DataTree {
        let mut t = DataTree::default();
        for e in self.history.iter().filter(|e| e.header.zxid <= zxid) {
            t.apply(&e.header, &e.body);
        }
        t
    }
}

/// A fresh data directory and backup target under a temporary `name` directory, and the
/// shipper between them: (root, target, server, shipper).
fn setup(name: &str) -> (PathBuf, PathBuf, Server, Shipper) {
    let root = temp(name);
    let target = root.join("backup");
    std::fs::create_dir_all(&target).unwrap();
    let server = Server::new(&root.join("data"));
    let shipper = Shipper::new(server.dirs.clone(), Box::new(DirStore::new(&target)));
    (root, target, server, shipper)
}

fn same_tree(a: &DataTree, b: &DataTree) -> bool {
    a.digest() == b.digest() && a.node_count() == b.node_count() && a.walk() == b.walk()
}

#[test]
fn ships_round_by_round_and_restores_any_covered_zxid_or_time() {
    let (root, target, mut server, mut shipper) = setup("rounds");

    server.write(1..=30);
    // Txns applied up to 20 only: 21..=30 are logged but not yet committed.
    let r = shipper.round(20, 20_000).unwrap();
    assert_eq!((r.txns, r.snapshots), (20, 1), "{r:?}");
    let r = shipper.round(30, 30_000).unwrap();
    assert_eq!((r.txns, r.snapshots), (10, 0), "{r:?}");
    server.snapshot();
    server.write(31..=45);
    let r = shipper.round(server.applied(), 45_500).unwrap();
    assert_eq!((r.txns, r.snapshots), (15, 1), "{r:?}");
    // Nothing new: the manifest only moves its completeness time.
    let r = shipper.round(server.applied(), 46_000).unwrap();
    assert_eq!((r.txns, r.snapshots), (0, 0));

    let m = Manifest::load(&DirStore::new(&target)).unwrap();
    assert_eq!(m.shipped_through, Some(45));
    assert_eq!(m.complete_as_of_ms, 46_000);
    assert_eq!(m.segments().count(), 3);
    assert_eq!(
        m.snapshots().map(|e| e.first_zxid).collect::<Vec<_>>(),
        vec![0, 30]
    );
    assert!(m.gaps().is_empty());

    for z in [0, 1, 7, 20, 29, 30, 31, 44, 45] {
        let r = restore_tree(
            &DirStore::new(&target),
            RestorePoint::Zxid(z),
            TreeConfig::default(),
        )
        .unwrap();
        assert_eq!(r.zxid, z);
        assert!(same_tree(&r.tree, &server.tree_at(z)), "zxid {z}");
    }
    // Times: txn z happened at z * 1000 ms.
    for (t, z) in [
        (1_000, 1),
        (20_500, 20),
        (44_999, 44),
        (45_000, 45),
        (45_900, 45),
    ] {
        let r = restore_tree(
            &DirStore::new(&target),
            RestorePoint::Time(t),
            TreeConfig::default(),
        )
        .unwrap();
        assert_eq!(r.zxid, z, "time {t}");
        assert!(same_tree(&r.tree, &server.tree_at(z)), "time {t}");
    }

    // Outside the backup: refused, saying why.
    for (to, says) in [
        (RestorePoint::Zxid(46), "past the end of the backup"),
        (RestorePoint::Time(46_001), "past the end of the backup"),
        (RestorePoint::Time(999), "before the first txn"),
        (RestorePoint::Zxid(-5), "before the oldest restore point"),
    ] {
        match restore_tree(&DirStore::new(&target), to, TreeConfig::default()) {
            Err(e @ BackupError::NotCovered(_)) => {
                assert!(e.to_string().contains(says), "{to:?}: {e}")
            }
            other => panic!("{to:?}: {other:?}"),
        }
    }

    // Restored into a data directory that recovery (zkd's and ZooKeeper's format) loads.
    let into = root.join("restored");
    let (r, path) = restore_into(&DirStore::new(&target), RestorePoint::Zxid(37), &into).unwrap();
    assert_eq!(path.file_name().unwrap().to_string_lossy(), "snapshot.25");
    assert_eq!(r.replayed, 7, "from snapshot.1e");
    let back = recover(
        &FsStorage,
        &DataDirs::new(&into, None),
        TreeConfig::default(),
    )
    .unwrap();
    assert_eq!(back.tree.last_processed_zxid(), 37);
    assert!(same_tree(&back.tree, &server.tree_at(37)));
    assert!(matches!(
        restore_into(&DirStore::new(&target), RestorePoint::Zxid(38), &into),
        Err(BackupError::NotEmpty(_))
    ));

    let report = verify(&DirStore::new(&target)).unwrap();
    assert_eq!((report.files, report.txns), (5, 45));
    assert!(
        report.problems.is_empty() && report.unlisted.is_empty(),
        "{report:?}"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_unavailable_target_catches_up_without_gaps() {
    let (root, target, mut server, mut shipper) = setup("unavailable");
    server.write(1..=10);
    shipper.round(10, 10_000).unwrap();

    // The volume goes away (unmounted): rounds fail and create nothing.
    let away = root.join("backup-away");
    std::fs::rename(&target, &away).unwrap();
    for end in [20, 30] {
        server.write(end - 9..=end);
        let err = shipper.round(end, end * 1000).unwrap_err();
        assert!(matches!(err, BackupError::Unavailable { .. }), "{err}");
        assert!(!target.exists());
    }
    server.snapshot();
    server.write(31..=40);
    std::fs::rename(&away, &target).unwrap();
    let r = shipper.round(40, 40_000).unwrap();
    assert_eq!(r.txns, 30, "{r:?}");
    let m = Manifest::load(&DirStore::new(&target)).unwrap();
    assert_eq!(m.shipped_through, Some(40));
    assert!(m.gaps().is_empty(), "{:?}", m.gaps());
    for z in [15, 25, 40] {
        let r = restore_tree(
            &DirStore::new(&target),
            RestorePoint::Zxid(z),
            TreeConfig::default(),
        )
        .unwrap();
        assert!(same_tree(&r.tree, &server.tree_at(z)), "zxid {z}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn verify_names_a_damaged_segment_and_restore_refuses_it() {
    let (root, target, mut server, mut shipper) = setup("damaged");
    for end in [10, 20, 30] {
        server.write(end - 9..=end);
        shipper.round(end, end * 1000).unwrap();
    }
    let victim = target.join("logs").join("log.b");
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&victim, bytes).unwrap();

    let report = verify(&DirStore::new(&target)).unwrap();
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert_eq!(report.problems[0].file, "logs/log.b");
    assert!(report.problems[0].reason.contains("SHA-256"), "{report:?}");
    // Before the damage restores; through it does not.
    restore_tree(
        &DirStore::new(&target),
        RestorePoint::Zxid(10),
        TreeConfig::default(),
    )
    .unwrap();
    match restore_tree(
        &DirStore::new(&target),
        RestorePoint::Zxid(25),
        TreeConfig::default(),
    ) {
        Err(BackupError::Damaged { file, .. }) => assert_eq!(file, "logs/log.b"),
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_hole_in_the_local_log_is_bridged_by_a_snapshot_and_refused_inside() {
    let (root, target, mut server, mut shipper) = setup("hole");
    server.write(1..=10);
    shipper.round(10, 10_000).unwrap();
    // The server is down while txns 11..=20 happen, then takes the leader's snapshot at
    // 20 (a SNAP sync) and logs on from there in a new epoch.
    server.log.roll().unwrap();
    for z in 11..=20 {
        let t = txn(z);
        server.tree.apply(&t.header, &t.body);
        server.history.push(t);
    }
    write_snapshot_file(
        &FsStorage,
        &server.dirs.snap_dir,
        &server.tree,
        SnapshotCompression::None,
    )
    .unwrap();
    let e1 = 1i64 << 32;
    server.write((1..=5).map(|c| e1 | c));
    let r = shipper.round(e1 | 5, 50_000).unwrap();
    assert_eq!((r.txns, r.snapshots), (5, 1), "{r:?}");
    assert!(r.waiting.is_none(), "{r:?}");
    let m = Manifest::load(&DirStore::new(&target)).unwrap();
    assert_eq!(m.gaps(), vec![(10, 20)]);
    assert_eq!(
        verify(&DirStore::new(&target)).unwrap().gaps,
        vec![(10, 20)]
    );
    for z in [10, 20, e1 | 3] {
        let r = restore_tree(
            &DirStore::new(&target),
            RestorePoint::Zxid(z),
            TreeConfig::default(),
        )
        .unwrap();
        assert!(same_tree(&r.tree, &server.tree_at(z)), "zxid {z:#x}");
    }
    match restore_tree(
        &DirStore::new(&target),
        RestorePoint::Zxid(15),
        TreeConfig::default(),
    ) {
        Err(e @ BackupError::NotCovered(_)) => {
            assert!(
                e.to_string().contains("no txns between 0xa and 0x14"),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    let _ = std::fs::remove_dir_all(&root);
}
