//! Compressed snapshots (`snapshot.compression.method` = gz / snappy) across
//! implementations:
//! - zk-log recovers the data directories a real ZooKeeper 3.8 wrote with each method
//!   (`tests/data/zookeeper-3.8-gz`, `-snappy`, captured by
//!   `scripts/capture-compressed-snapshots.py` with the workload of the uncompressed
//!   capture): the digest sealed in each snapshot matches the loaded tree, the capture's own
//!   log replays to the same tree, and the tree equals the uncompressed capture's replay in
//!   everything but times and session ids;
//! - ZooKeeper's `SnapshotFormatter` reads the `.gz` and `.snappy` snapshots zk-log writes
//!   (several snappy blocks included) and shows the same znodes as our `dump_snapshot`.
//!
//! The Java tools are needed: CI installs them (`.ci/run`); elsewhere, without them, the
//! Java-driven test says so and returns (under `CI=true` a missing tool is a failure).

#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_log::snapfile::{
    decode_snapshot, parse_snapshot_file_name, write_snapshot_file, SnapshotCompression,
};
use zk_log::tools::dump_snapshot;
use zk_log::{recover, DataDirs, FsStorage};
use zk_proto::{CreateTxn, OpCode, TxnBody, TxnHeader};
use zk_tests::java::{self, formatter_fields};
use zk_tests::{files, read_txn_log};
use zk_tree::{DataTree, TreeConfig};

const FORMATTER: &str = "org.apache.zookeeper.server.SnapshotFormatter";

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

/// Replays every txn log of a `version-2/` directory into a fresh tree.
fn replay(version2: &Path) -> DataTree {
    let mut tree = DataTree::new(TreeConfig::default());
    for log in files(version2, "log.") {
        for t in read_txn_log(&log).unwrap().1 {
            tree.apply(&t.entry.header, &t.entry.body);
        }
    }
    tree
}

/// The snapshots of a directory with their zxid and compression, by zxid.
fn snapshots(version2: &Path) -> Vec<(i64, SnapshotCompression, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(version2)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let (z, c) = parse_snapshot_file_name(&e.file_name().to_string_lossy())?;
            Some((z, c, e.path()))
        })
        .collect();
    out.sort_by_key(|s| s.0);
    out
}

/// Same workload, different run: everything but times and session ids must agree.
fn assert_same_but_times(expected: &DataTree, got: &DataTree, what: &str) {
    assert_eq!(expected.walk(), got.walk(), "{what}: paths");
    for p in expected.walk() {
        let (e, g) = (expected.stat(&p).unwrap(), got.stat(&p).unwrap());
        let key = |s: &zk_proto::Stat| {
            (
                s.czxid,
                s.mzxid,
                s.pzxid,
                s.version,
                s.cversion,
                s.aversion,
                s.data_length,
                s.num_children,
                s.ephemeral_owner != 0,
            )
        };
        assert_eq!(key(&e), key(&g), "{what}: stat of {p}");
        assert_eq!(expected.data(&p), got.data(&p), "{what}: data of {p}");
        assert_eq!(expected.acl(&p), got.acl(&p), "{what}: acl of {p}");
    }
    let timeouts = |t: &DataTree| t.sessions().values().copied().collect::<Vec<_>>();
    assert_eq!(timeouts(expected), timeouts(got), "{what}: sessions");
    assert_eq!(expected.ephemeral_count(), got.ephemeral_count(), "{what}");
}

#[test]
fn zk_log_recovers_zookeepers_compressed_snapshots() {
    let plain_dir = data("zookeeper-3.8/version-2");
    let reference = replay(&plain_dir);
    let plain_len = std::fs::metadata(plain_dir.join("snapshot.1c"))
        .unwrap()
        .len() as usize;
    for (name, method) in [
        ("zookeeper-3.8-gz", SnapshotCompression::Gzip),
        ("zookeeper-3.8-snappy", SnapshotCompression::Snappy),
    ] {
        let version2 = data(name).join("version-2");
        let snaps = snapshots(&version2);
        assert_eq!(
            snaps.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(),
            vec![(0, method), (0x1c, method)],
            "{name}: ZooKeeper wrote every snapshot compressed"
        );
        let newest = &snaps[1].2;
        let raw = std::fs::read(newest).unwrap();
        assert_eq!(SnapshotCompression::sniff(&raw), method);
        // The same stream inside: the uncompressed capture's snapshot has the same length
        // (only times and session ids differ, and those have fixed widths).
        assert_eq!(method.decompress(newest, &raw).unwrap().len(), plain_len);

        // Decoding checks both seals and the digest record against the loaded tree.
        let loaded = decode_snapshot(newest, Bytes::from(raw), TreeConfig::default()).unwrap();
        assert_eq!(loaded.compression, method);
        assert_eq!(loaded.zxid, 0x1c);
        assert_eq!(loaded.digest, Some((0x1c, loaded.tree.digest())));

        // Recovery picks it, and there is nothing after it to replay.
        let r = recover(
            &FsStorage,
            &DataDirs::new(&data(name), None),
            TreeConfig::default(),
        )
        .unwrap();
        assert_eq!(r.snapshot.as_ref(), Some(newest));
        assert!(r.skipped_snapshots.is_empty(), "{:?}", r.skipped_snapshots);
        assert_eq!(r.replayed, 0);
        assert!(r.truncated.is_none());
        assert_eq!(r.tree.digest(), loaded.tree.digest());

        // The capture's own log replays to exactly its snapshot (times included).
        let own = replay(&version2);
        assert_eq!(own.digest(), loaded.tree.digest(), "{name}: digest");
        assert_eq!(own.sessions(), loaded.tree.sessions());
        // And the uncompressed capture's replay is the same tree up to times and sessions.
        assert_same_but_times(&reference, &loaded.tree, name);
        assert!(loaded.tree.exists("/app/more"));
        assert_eq!(loaded.tree.ephemeral_count(), 2);

        // The first snapshot (the empty tree at zxid 0) loads too.
        let first = &snaps[0].2;
        let loaded0 = decode_snapshot(
            first,
            Bytes::from(std::fs::read(first).unwrap()),
            TreeConfig::default(),
        )
        .unwrap();
        assert_eq!(loaded0.tree.node_count(), 4);
        println!(
            "{name}: {} compressed to {} bytes, {} znodes, digest {:#x} matches",
            plain_len,
            std::fs::metadata(newest).unwrap().len(),
            loaded.tree.node_count(),
            loaded.tree.digest()
        );
    }
}

/// The number of blocks of a snappy-java stream (after its 16-byte header).
fn snappy_blocks(file: &[u8]) -> usize {
    let mut pos = 16;
    let mut blocks = 0;
    while pos + 4 <= file.len() {
        let len = i32::from_be_bytes(file[pos..pos + 4].try_into().unwrap());
        pos += 4 + usize::try_from(len).unwrap();
        blocks += 1;
    }
    assert_eq!(pos, file.len());
    blocks
}

#[test]
fn zookeeper_reads_our_compressed_snapshots() {
    if !java::tools_available() {
        return;
    }
    // ZooKeeper's workload, plus a node big enough for several 32 KiB snappy blocks.
    let mut tree = replay(&data("zookeeper-3.8/version-2"));
    let zxid = tree.last_processed_zxid() + 1;
    let big: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8 + b'0')
        .collect();
    let header = TxnHeader {
        client_id: 0,
        cxid: 1,
        zxid,
        time: 1_700_000_000_000,
        r#type: OpCode::Create.code(),
    };
    let body = TxnBody::Create(CreateTxn {
        path: "/big".into(),
        data: Some(Bytes::from(big.clone())),
        acl: zk_proto::well_known::open_acl_unsafe(),
        ephemeral: false,
        parent_c_version: tree.stat_persisted("/").unwrap().cversion + 1,
    });
    assert_eq!(tree.apply(&header, &body).result.err(), 0);
    let nodes = tree.node_count();
    let dir = std::env::temp_dir().join(format!("zk-compression-java-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for method in [SnapshotCompression::Gzip, SnapshotCompression::Snappy] {
        let path =
            write_snapshot_file(&FsStorage, &dir.join(method.method()), &tree, method).unwrap();
        assert!(path
            .to_string_lossy()
            .ends_with(&format!("snapshot.{zxid:x}{}", method.suffix())));
        if method == SnapshotCompression::Snappy {
            assert!(snappy_blocks(&std::fs::read(&path).unwrap()) >= 4);
        }
        let theirs = java::run(FORMATTER, &[OsStr::new("-d"), path.as_os_str()]);
        // ZooKeeper keeps the root under both "" and "/": its count is one more.
        assert!(
            theirs.contains(&format!("ZNode Details (count={})", nodes + 1)),
            "{method}: SnapshotFormatter output:\n{theirs}"
        );
        assert!(
            theirs.contains(&format!("Last zxid: {zxid:#x}")),
            "{theirs}"
        );
        // Every block arrived: the big node's data, base64, in full.
        let mut ours = Vec::new();
        dump_snapshot(&path, &mut ours, true, false).unwrap();
        let ours = String::from_utf8(ours).unwrap();
        let their_fields = formatter_fields(&theirs);
        let our_fields = formatter_fields(&ours);
        assert_eq!(their_fields.len(), nodes, "{method}");
        assert_eq!(their_fields, our_fields, "{method}: znode fields differ");
        let big_data = their_fields["/big"]
            .iter()
            .find(|f| f.starts_with("data = "))
            .unwrap()
            .len();
        assert!(big_data > 130_000, "{big_data}");
        println!(
            "{method}: SnapshotFormatter read {} bytes ({} znodes) written by zk-log",
            std::fs::metadata(&path).unwrap().len(),
            nodes
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
