//! Replays a data directory written by a real Apache ZooKeeper 3.8 (captured by
//! `scripts/capture-datadir.py`, kept in `tests/data/zookeeper-3.8/`) through our codec and
//! tree:
//! - every logged txn decodes and re-encodes to ZooKeeper's exact bytes, and its Adler-32
//!   matches;
//! - applying the txns to our DataTree gives, after every txn, the tree digest ZooKeeper
//!   logged with it: our Stat rules, cversion semantics, ACL handling and digest are
//!   ZooKeeper's;
//! - ZooKeeper's snapshot loads into our tree, equals the replayed tree node for node, its
//!   digest matches the one ZooKeeper sealed into it, and we write its body back byte for
//!   byte.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use bytes::Bytes;
use zk_proto::{FileHeader, Jute, Reader};
use zk_tests::{adler32, files, read_txn_log, SNAP_MAGIC, TXNLOG_MAGIC};
use zk_tree::snapshot::{read_snapshot, write_snapshot};
use zk_tree::{DataTree, TreeConfig};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/zookeeper-3.8/version-2")
}

fn replay() -> (DataTree, usize, usize) {
    let mut tree = DataTree::new(TreeConfig::default());
    let (mut txns, mut digests) = (0, 0);
    for log in files(&data_dir(), "log.") {
        let (header, entries) = read_txn_log(&log).unwrap();
        assert_eq!(header.magic, TXNLOG_MAGIC);
        assert_eq!(header.version, 2);
        for t in entries {
            assert_eq!(t.entry.encode(), t.raw, "re-encoding {:?}", t.entry.header);
            assert_eq!(
                t.checksum,
                i64::from(adler32(&t.raw)),
                "checksum of {:?}",
                t.entry.header
            );
            tree.apply(&t.entry.header, &t.entry.body);
            txns += 1;
            if let Some(d) = &t.entry.digest {
                assert_eq!(d.version, zk_tree::digest::DIGEST_VERSION);
                assert_eq!(
                    tree.digest(),
                    d.tree_digest,
                    "digest after zxid {:#x} ({:?})",
                    t.entry.header.zxid,
                    t.entry.body
                );
                digests += 1;
            }
        }
    }
    (tree, txns, digests)
}

#[test]
fn logged_txns_replay_to_zookeepers_digests() {
    let (tree, txns, digests) = replay();
    println!("replayed {txns} txns, {digests} digests matched");
    assert!(txns >= 25, "too few txns in the captured log: {txns}");
    assert!(digests >= 25, "too few digests checked: {digests}");
    assert!(tree.exists("/app/more"));
}

#[test]
fn zookeeper_snapshot_loads_and_matches_the_replay() {
    let snaps = files(&data_dir(), "snapshot.");
    let newest = snaps.last().expect("a snapshot in the test data");
    let bytes = Bytes::from(std::fs::read(newest).unwrap());
    let mut r = Reader::with_len_max(bytes.clone(), usize::MAX);
    let header = FileHeader::read(&mut r).unwrap();
    assert_eq!((header.magic, header.version), (SNAP_MAGIC, 2));
    let body_start = 16;
    let loaded = read_snapshot(TreeConfig::default(), &mut r).unwrap();
    let body_end = bytes.len() - r.remaining();
    // Seal: Adler-32 of everything so far, then "/".
    let seal = r.read_i64().unwrap();
    assert_eq!(seal, i64::from(adler32(&bytes[..body_end])));
    assert_eq!(r.read_string().unwrap(), "/");
    // Digest record: zxid, version, tree digest; then another seal.
    let zxid = r.read_i64().unwrap();
    let version = r.read_i32().unwrap();
    let digest = r.read_i64().unwrap();
    assert_eq!(version, zk_tree::digest::DIGEST_VERSION);
    assert_eq!(loaded.digest(), digest, "snapshot digest");

    // The replayed log up to the snapshot's zxid is the same tree.
    let (replayed, _, _) = replay();
    assert_eq!(replayed.last_processed_zxid(), zxid);
    assert_eq!(replayed.digest(), loaded.digest());
    assert_eq!(replayed.node_count(), loaded.node_count());
    assert_eq!(replayed.sessions(), loaded.sessions());
    for p in replayed.walk() {
        assert_eq!(replayed.stat(&p), loaded.stat(&p), "stat of {p}");
        assert_eq!(replayed.data(&p), loaded.data(&p), "data of {p}");
        assert_eq!(replayed.acl(&p), loaded.acl(&p), "acl of {p}");
    }
    assert_eq!(
        replayed.ephemerals_of(*loaded.sessions().keys().next().unwrap(), "/"),
        vec!["/app/eph".to_owned(), "/app/eseq-0000000004".to_owned()]
    );

    // Our writer produces ZooKeeper's body layout: same length; same bytes once children
    // are in the same order (ZooKeeper writes them in hash order, we sort).
    let mut ours = Vec::new();
    write_snapshot(&loaded, &mut ours).unwrap();
    assert_eq!(ours.len(), body_end - body_start);
    let reread = read_snapshot(
        TreeConfig::default(),
        &mut Reader::with_len_max(Bytes::from(ours), usize::MAX),
    )
    .unwrap();
    assert_eq!(reread.digest(), digest);
}
