//! Storage benchmark: the disk's raw fsync rate, group-commit throughput with 1, 8 and 64
//! concurrent writers of 1 KiB txns (each waits for its ack before the next, like a client
//! with one request in flight), and snapshot write/load time for 1,000,000 znodes.
//!
//! Run: `cargo run --release -p zk-log --example log_bench [-- DIR [SECONDS]]`
//! (DIR defaults to `target/log-bench`, on the same disk as the build).

#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zk_log::snapfile::{decode_snapshot, write_snapshot_file, SnapshotCompression};
use zk_log::{FsStorage, LogWriter, TxnLog, TxnLogConfig};
use zk_proto::{well_known, CreateTxn, OpCode, SetDataTxn, TxnBody, TxnEntry, TxnHeader};
use zk_tree::{DataTree, TreeConfig};

fn raw_fsync_rate(dir: &Path, secs: f64) -> f64 {
    let path = dir.join("raw-fsync");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    let block = vec![7u8; 1024];
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        f.write_all_at(&block, n * 1024).unwrap();
        f.sync_data().unwrap();
        n += 1;
    }
    let _ = std::fs::remove_file(&path);
    n as f64 / started.elapsed().as_secs_f64()
}

fn txn(zxid: i64) -> Bytes {
    TxnEntry {
        header: TxnHeader {
            client_id: 1,
            cxid: zxid as i32,
            zxid,
            time: 0,
            r#type: OpCode::SetData.code(),
        },
        body: TxnBody::SetData(SetDataTxn {
            path: "/bench/node".into(),
            data: Some(Bytes::from(vec![b'x'; 1024 - 60])),
            version: zxid as i32,
        }),
        digest: None,
    }
    .encode()
}

struct GroupResult {
    appends_per_s: f64,
    fsyncs_per_s: f64,
}

fn group_commit(dir: &Path, writers: usize, secs: f64) -> GroupResult {
    let log_dir = dir.join(format!("log-{writers}"));
    let _ = std::fs::remove_dir_all(&log_dir);
    let log = TxnLog::new(Arc::new(FsStorage), TxnLogConfig::new(&log_dir), 0);
    let writer = Arc::new(LogWriter::spawn(log).unwrap());
    let next_zxid = Arc::new(Mutex::new(0i64));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|_| {
            let (writer, next_zxid, stop, acked) = (
                writer.clone(),
                next_zxid.clone(),
                stop.clone(),
                acked.clone(),
            );
            std::thread::spawn(move || {
                let (tx, rx) = mpsc::channel();
                while !stop.load(Ordering::Relaxed) {
                    {
                        let mut z = next_zxid.lock().unwrap();
                        *z += 1;
                        let tx = tx.clone();
                        writer
                            .append(*z, txn(*z), Box::new(move |r| tx.send(r.is_ok()).unwrap()))
                            .unwrap();
                    }
                    assert!(rx.recv().unwrap());
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = writer.stats();
    let _ = std::fs::remove_dir_all(&log_dir);
    GroupResult {
        appends_per_s: acked.load(Ordering::Relaxed) as f64 / elapsed,
        fsyncs_per_s: stats.fsyncs as f64 / elapsed,
    }
}

fn big_tree() -> DataTree {
    let mut t = DataTree::default();
    let mut zxid = 0;
    let data = Bytes::from(vec![b'd'; 100]);
    let mut create = |t: &mut DataTree, path: String, data: &Bytes| {
        zxid += 1;
        t.apply(
            &TxnHeader {
                client_id: 0,
                cxid: 0,
                zxid,
                time: 1_700_000_000_000,
                r#type: OpCode::Create.code(),
            },
            &TxnBody::Create(CreateTxn {
                path,
                data: Some(data.clone()),
                acl: well_known::open_acl_unsafe(),
                ephemeral: false,
                parent_c_version: -1,
            }),
        );
    };
    create(&mut t, "/bench".into(), &Bytes::new());
    for p in 0..1000 {
        create(&mut t, format!("/bench/p{p:04}"), &Bytes::new());
        for c in 0..1000 {
            create(&mut t, format!("/bench/p{p:04}/child-{c:014}"), &data);
        }
    }
    t
}

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/log-bench".into()),
    );
    let secs: f64 = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(3.0);
    std::fs::create_dir_all(&dir).unwrap();
    let raw = raw_fsync_rate(&dir, secs);
    println!("raw fsync (1 KiB write + fdatasync): {raw:.0}/s");
    let mut json = format!("{{\"raw_fsyncs_per_s\":{raw:.0}");
    for writers in [1, 8, 64] {
        let r = group_commit(&dir, writers, secs);
        println!(
            "{writers:>3} writers: {:>8.0} appends/s, {:>7.0} fsyncs/s, {:.1} txns/fsync",
            r.appends_per_s,
            r.fsyncs_per_s,
            r.appends_per_s / r.fsyncs_per_s.max(1.0)
        );
        json.push_str(&format!(
            ",\"appends_per_s_{writers}\":{:.0},\"fsyncs_per_s_{writers}\":{:.0}",
            r.appends_per_s, r.fsyncs_per_s
        ));
    }
    let started = Instant::now();
    let tree = big_tree();
    println!(
        "built {} znodes in {:.1?}",
        tree.node_count(),
        started.elapsed()
    );
    let snap_dir = dir.join("snap");
    let _ = std::fs::remove_dir_all(&snap_dir);
    let started = Instant::now();
    let path =
        write_snapshot_file(&FsStorage, &snap_dir, &tree, SnapshotCompression::None).unwrap();
    let write_s = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).unwrap().len();
    let started = Instant::now();
    let bytes = Bytes::from(std::fs::read(&path).unwrap());
    let loaded = decode_snapshot(&path, bytes, TreeConfig::default()).unwrap();
    let load_s = started.elapsed().as_secs_f64();
    assert_eq!(loaded.tree.digest(), tree.digest());
    println!(
        "snapshot of {} znodes ({:.0} MiB): write+fsync {write_s:.2} s, read+load {load_s:.2} s",
        tree.node_count(),
        size as f64 / 1048576.0
    );
    json.push_str(&format!(
        ",\"snapshot_write_s\":{write_s:.2},\"snapshot_load_s\":{load_s:.2}}}"
    ));
    println!("{json}");
    let _ = std::fs::remove_dir_all(&snap_dir);
}
