//! Crash safety. A workload of a few hundred txns (group-committed batches, snapshots and
//! log rolls) runs on simulated storage; after every storage operation the test crashes a
//! copy of the storage in many ways (every subset of the unsynced writes lost, the last kept
//! write torn at several points) and recovers it. Every recovery must succeed and yield a
//! prefix of the history (same digest as the reference tree at that zxid) that contains
//! everything acknowledged before the crash.
//!
//! Also: a log cut at every byte recovers to a prefix, and damage before the end is refused.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use zk_log::recovery::recover;
use zk_log::snapfile::{write_snapshot_file, SnapshotCompression};
use zk_log::storage::{PendingOp, SimStorage, Storage};
use zk_log::txnlog::{scan_log, LogEnd};
use zk_log::{DataDirs, LogError, TxnLog, TxnLogConfig};
use zk_proto::{CreateRequest, DeleteRequest, Request, SetDataRequest, TxnDigest, TxnEntry};
use zk_tree::prep::{prep_request, PendingChanges, PrepContext};
use zk_tree::{DataTree, TreeConfig};

/// A tiny deterministic PRNG (xorshift64*), so failures replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn dirs() -> DataDirs {
    DataDirs::new(Path::new("/data"), None)
}

/// The next valid txn for the reference tree, applied to it, with its digest attached.
fn next_txn(tree: &mut DataTree, rng: &mut Rng, zxid: i64) -> Bytes {
    let names = ["/a", "/b", "/c", "/a/x", "/a/y", "/b/z"];
    let path = names[rng.below(names.len() as u64) as usize].to_owned();
    let request = match rng.below(3) {
        0 => Request::Create(CreateRequest {
            path: path.clone(),
            data: Some(Bytes::from(vec![b'v'; rng.below(40) as usize])),
            acl: zk_proto::well_known::open_acl_unsafe(),
            flags: 0,
        }),
        1 => Request::SetData(SetDataRequest {
            path,
            data: Some(Bytes::from(format!("{zxid}"))),
            version: -1,
        }),
        _ => Request::Delete(DeleteRequest { path, version: -1 }),
    };
    let auth = [];
    let ctx = PrepContext {
        session: 1,
        auth: &auth,
        enforce_quota: false,
        local_session: false,
        max_children: 0,
    };
    let mut pending = PendingChanges::default();
    let p = prep_request(tree, &mut pending, &ctx, 1, &request, zxid, zxid * 7);
    tree.apply(&p.header, &p.body);
    TxnEntry {
        header: p.header,
        body: p.body,
        digest: Some(TxnDigest {
            version: zk_tree::digest::DIGEST_VERSION,
            tree_digest: tree.digest(),
        }),
    }
    .encode()
}

#[derive(Default)]
struct Shared {
    acked: i64,
    digests: BTreeMap<i64, i64>,
    crash_states: usize,
}

/// Crash variants of the current storage: subsets of each file's unsynced ops, plus tears.
fn crash_variants(s: &SimStorage) -> Vec<SimStorage> {
    let pending: BTreeMap<PathBuf, Vec<PendingOp>> = s.pending().into_iter().collect();
    let mut out = vec![s.crash(), s.crash_with(|_, _, _| true, |_, _| None)];
    let max_ops = pending.values().map(Vec::len).max().unwrap_or(0);
    if max_ops == 0 {
        return out;
    }
    // Every subset of unsynced ops (by index, applied to every file alike), when few.
    let k = max_ops.min(4);
    for mask in 0u32..(1 << k) {
        out.push(s.crash_with(move |_, i, _| i >= k || mask & (1 << i) != 0, |_, _| None));
        for cut in [1usize, 7, 20] {
            out.push(s.crash_with(
                move |_, i, _| i >= k || mask & (1 << i) != 0,
                move |_, op| match op {
                    PendingOp::Write { data, .. } if data.len() > cut => Some(cut),
                    PendingOp::Write { data, .. } => Some(data.len() / 2),
                    PendingOp::SetLen(_) => None,
                },
            ));
        }
    }
    out
}

#[test]
fn every_crash_point_recovers_a_prefix_with_everything_acknowledged() {
    let storage = SimStorage::new();
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut reference = DataTree::default();
    shared.lock().unwrap().digests.insert(0, reference.digest());
    {
        let shared = shared.clone();
        storage.set_probe(Some(Arc::new(move |s: &SimStorage| {
            let (acked, digests) = {
                let g = shared.lock().unwrap();
                (g.acked, g.digests.clone())
            };
            let variants = crash_variants(s);
            let n = variants.len();
            for crashed in variants {
                let r = recover(&crashed, &dirs(), TreeConfig::default())
                    .unwrap_or_else(|e| panic!("recovery failed after a crash: {e}"));
                let z = r.tree.last_processed_zxid();
                assert!(
                    z >= acked,
                    "lost acknowledged txns: recovered {z}, acked {acked}"
                );
                assert_eq!(
                    Some(&r.tree.digest()),
                    digests.get(&z),
                    "recovered state at zxid {z} is not a prefix of the history"
                );
                assert_eq!(r.digest_mismatches, 0);
            }
            shared.lock().unwrap().crash_states += n;
        })));
    }
    let config = TxnLogConfig {
        prealloc_bytes: 4096,
        ..TxnLogConfig::new(dirs().log_dir)
    };
    let mut log = TxnLog::new(Arc::new(storage.clone()), config, 0);
    let mut rng = Rng(0x5eed);
    let mut zxid = 0i64;
    let total = 300;
    // Snapshots rotate through every compression (no draw from `rng`: same workload).
    let mut snapshots = 0usize;
    while zxid < total {
        let batch = 1 + rng.below(6) as i64;
        for _ in 0..batch {
            zxid += 1;
            let txn = next_txn(&mut reference, &mut rng, zxid);
            shared
                .lock()
                .unwrap()
                .digests
                .insert(zxid, reference.digest());
            log.append(zxid, &txn);
        }
        log.commit().unwrap();
        shared.lock().unwrap().acked = zxid;
        if rng.below(25) == 0 {
            let compression = SnapshotCompression::ALL[snapshots % 3];
            snapshots += 1;
            write_snapshot_file(&storage, &dirs().snap_dir, &reference, compression).unwrap();
            log.roll().unwrap();
        }
    }
    storage.set_probe(None);
    let states = shared.lock().unwrap().crash_states;
    println!("{total} txns, {states} crash states recovered");
    assert!(states >= 1000, "too few crash states explored: {states}");
    let r = recover(&storage, &dirs(), TreeConfig::default()).unwrap();
    assert_eq!(r.tree.last_processed_zxid(), zxid);
    assert_eq!(r.tree.digest(), reference.digest());
}

fn sample_log() -> (Vec<u8>, Vec<usize>) {
    let storage = SimStorage::new();
    let config = TxnLogConfig {
        prealloc_bytes: 4096,
        ..TxnLogConfig::new("/l")
    };
    let mut log = TxnLog::new(Arc::new(storage.clone()), config, 0);
    let mut tree = DataTree::default();
    let mut rng = Rng(7);
    for z in 1..=20 {
        let txn = next_txn(&mut tree, &mut rng, z);
        log.append(z, &txn);
        log.commit().unwrap();
    }
    let bytes = storage.read(Path::new("/l/log.1")).unwrap();
    let scan = scan_log(Path::new("/l/log.1"), Bytes::from(bytes.clone())).unwrap();
    let mut ends: Vec<usize> = scan
        .records
        .iter()
        .map(|r| r.offset as usize + 13 + r.raw.len())
        .collect();
    ends.insert(0, 16);
    (bytes, ends)
}

#[test]
fn a_log_cut_at_every_byte_recovers_a_prefix() {
    let (bytes, ends) = sample_log();
    let last = *ends.last().unwrap();
    let p = Path::new("/x/log.1");
    for cut in 16..=last {
        for zero_fill in [false, true] {
            let mut b = bytes[..cut].to_vec();
            if zero_fill {
                b.resize(bytes.len(), 0); // the preallocated zeros stay
            }
            let scan = scan_log(p, Bytes::from(b)).unwrap();
            let complete = ends.iter().filter(|e| **e <= cut).count() - 1;
            assert_eq!(scan.records.len(), complete, "cut at {cut}");
            // Bytes of a partial record that are all zero look exactly like padding.
            let torn = bytes[ends[complete]..cut].iter().any(|b| *b != 0);
            match scan.end {
                LogEnd::Clean { .. } => {
                    assert!(!torn, "cut at {cut} inside a record read as clean")
                }
                LogEnd::Torn { offset, .. } => {
                    assert!(torn);
                    assert_eq!(offset as usize, ends[complete]);
                }
                LogEnd::Corrupt { .. } => panic!("cut at {cut} read as corruption"),
            }
        }
    }
}

#[test]
fn damage_before_the_end_is_refused_with_file_and_offset() {
    let (bytes, ends) = sample_log();
    let storage = SimStorage::new();
    let d = dirs();
    let path = d.log_dir.join("log.1");
    // Flip one byte inside the 5th record's txn.
    let mut bad = bytes.clone();
    bad[ends[4] + 20] ^= 0x55;
    let mut f = storage.create(&path).unwrap();
    f.write_at(0, &bad).unwrap();
    match recover(&storage, &d, TreeConfig::default()) {
        Err(LogError::Corrupt {
            path: p, offset, ..
        }) => {
            assert_eq!(p, path);
            assert_eq!(offset as usize, ends[4]);
            let msg = LogError::Corrupt {
                path: p,
                offset,
                reason: "checksum mismatch".into(),
            }
            .to_string();
            assert!(
                msg.contains("log.1") && msg.contains(&offset.to_string()),
                "{msg}"
            );
        }
        other => panic!("expected corruption to be refused, got {other:?}"),
    }
}

#[test]
fn torn_tail_is_truncated_and_writing_resumes() {
    let (bytes, ends) = sample_log();
    let storage = SimStorage::new();
    let d = dirs();
    let path = d.log_dir.join("log.1");
    let mut torn = bytes[..ends[10] + 9].to_vec();
    torn.resize(bytes.len(), 0);
    storage.create(&path).unwrap().write_at(0, &torn).unwrap();
    let r = recover(&storage, &d, TreeConfig::default()).unwrap();
    assert_eq!(r.tree.last_processed_zxid(), 10);
    assert_eq!(r.truncated, Some((path.clone(), ends[10] as u64)));
    assert_eq!(storage.read(&path).unwrap().len(), ends[10]);
    // Appending continues in a new file and a second recovery sees all of it.
    let mut tree = r.tree;
    let mut log = TxnLog::new(Arc::new(storage.clone()), TxnLogConfig::new(&d.log_dir), 10);
    let mut rng = Rng(99);
    for z in 11..=12 {
        log.append(z, &next_txn(&mut tree, &mut rng, z));
    }
    log.commit().unwrap();
    let again = recover(&storage, &d, TreeConfig::default()).unwrap();
    assert_eq!(again.tree.last_processed_zxid(), 12);
    assert_eq!(again.tree.digest(), tree.digest());
}

/// A crash between creating the newest log file and writing its header (found by the
/// `snapshot.synced` crash point of a real zkd: the log writer had just rolled) leaves an
/// empty or zero-filled file. It holds nothing, so recovery removes it; the same file
/// anywhere but last is damage and is refused.
#[test]
fn a_newest_log_created_but_never_written_is_removed() {
    let (bytes, _) = sample_log();
    for empty in [vec![], vec![0u8; 7], vec![0u8; 4096]] {
        let storage = SimStorage::new();
        let d = dirs();
        storage
            .create(&d.log_dir.join("log.1"))
            .unwrap()
            .write_at(0, &bytes)
            .unwrap();
        let newest = d.log_dir.join("log.20");
        storage
            .create(&newest)
            .unwrap()
            .write_at(0, &empty)
            .unwrap();
        let r = recover(&storage, &d, TreeConfig::default()).unwrap();
        assert_eq!(r.tree.last_processed_zxid(), 20, "{} bytes", empty.len());
        assert_eq!(r.truncated, Some((newest.clone(), 0)));
        assert!(!storage.exists(&newest), "the empty log stays");
        // Not the newest: a later log exists, so this is damage.
        let storage = SimStorage::new();
        storage
            .create(&d.log_dir.join("log.1"))
            .unwrap()
            .write_at(0, &bytes)
            .unwrap();
        storage
            .create(&d.log_dir.join("log.15"))
            .unwrap()
            .write_at(0, &empty)
            .unwrap();
        storage
            .create(&d.log_dir.join("log.30"))
            .unwrap()
            .write_at(0, &empty)
            .unwrap();
        assert!(recover(&storage, &d, TreeConfig::default()).is_err());
    }
}

#[test]
fn invalid_newest_snapshot_falls_back_to_an_older_one() {
    let storage = SimStorage::new();
    let d = dirs();
    let mut tree = DataTree::default();
    let mut rng = Rng(3);
    let mut log = TxnLog::new(Arc::new(storage.clone()), TxnLogConfig::new(&d.log_dir), 0);
    for z in 1..=5 {
        log.append(z, &next_txn(&mut tree, &mut rng, z));
    }
    log.commit().unwrap();
    write_snapshot_file(&storage, &d.snap_dir, &tree, SnapshotCompression::None).unwrap();
    for z in 6..=9 {
        log.append(z, &next_txn(&mut tree, &mut rng, z));
    }
    log.commit().unwrap();
    let newest =
        write_snapshot_file(&storage, &d.snap_dir, &tree, SnapshotCompression::None).unwrap();
    // Tear the newest snapshot: it loses its final seal.
    let mut b = storage.read(&newest).unwrap();
    b.truncate(b.len() - 5);
    storage.create(&newest).unwrap().write_at(0, &b).unwrap();
    let r = recover(&storage, &d, TreeConfig::default()).unwrap();
    assert_eq!(r.skipped_snapshots.len(), 1);
    assert_eq!(r.snapshot, Some(d.snap_dir.join("snapshot.5")));
    assert_eq!(r.tree.last_processed_zxid(), 9);
    assert_eq!(r.tree.digest(), tree.digest());
}

#[test]
fn compressed_snapshots_recover_newest_first_and_damaged_ones_are_skipped() {
    let storage = SimStorage::new();
    let d = dirs();
    let mut tree = DataTree::default();
    let mut rng = Rng(11);
    let mut log = TxnLog::new(Arc::new(storage.clone()), TxnLogConfig::new(&d.log_dir), 0);
    let mut written = Vec::new();
    let mut zxid = 0;
    for c in SnapshotCompression::ALL {
        for _ in 0..4 {
            zxid += 1;
            log.append(zxid, &next_txn(&mut tree, &mut rng, zxid));
        }
        log.commit().unwrap();
        let path = write_snapshot_file(&storage, &d.snap_dir, &tree, c).unwrap();
        written.push((path, zxid, tree.digest()));
    }
    for _ in 0..3 {
        zxid += 1;
        log.append(zxid, &next_txn(&mut tree, &mut rng, zxid));
    }
    log.commit().unwrap();
    assert_eq!(
        storage.list(&d.snap_dir).unwrap(),
        vec!["log.1", "snapshot.4", "snapshot.8.gz", "snapshot.c.snappy"]
    );
    // The newest (snappy) is loaded; the logs replay the rest.
    let r = recover(&storage, &d, TreeConfig::default()).unwrap();
    assert_eq!(r.snapshot.as_ref(), Some(&written[2].0));
    assert_eq!(r.replayed, 3);
    assert_eq!(r.tree.digest(), tree.digest());
    // Damage the snappy one (a flipped byte in a block), then cut the gz one: recovery
    // falls back to each older snapshot in turn and still reaches the same tree.
    for (i, (path, _, _)) in written.iter().enumerate().skip(1).rev() {
        let mut b = storage.read(path).unwrap();
        if i == 2 {
            let at = b.len() - 10;
            b[at] ^= 0x5a;
        } else {
            b.truncate(b.len() / 2);
        }
        let mut f = storage.create(path).unwrap();
        f.write_at(0, &b).unwrap();
        let r = recover(&storage, &d, TreeConfig::default()).unwrap();
        assert_eq!(r.snapshot.as_ref(), Some(&written[i - 1].0));
        assert_eq!(r.skipped_snapshots.len(), 3 - i);
        assert_eq!(r.tree.last_processed_zxid(), zxid);
        assert_eq!(r.tree.digest(), tree.digest());
    }
}
