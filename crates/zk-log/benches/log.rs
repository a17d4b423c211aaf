//! The txn log's hot path: framing a txn into the log (checksum, length, end marker), a
//! group commit's write, and the group-commit thread's round trip (append from the caller,
//! durable callback back), on a real directory with fsync off so the disk's latency does
//! not drown the code's cost. The fsync row measures this machine's disk.
//!
//! Run: `cargo bench -p zk-log --bench log`.

use std::hint::black_box;
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use zk_log::group::LogWriter;
use zk_log::storage::FsStorage;
use zk_log::txnlog::{encode_record, TxnLog, TxnLogConfig};

/// A setData txn's size with 1 KiB of data (header, path, data, version).
const TXN_BYTES: usize = 1100;
const BATCH: u64 = 100;

fn log_in(dir: &std::path::Path, force_sync: bool) -> TxnLog {
    let config = TxnLogConfig {
        force_sync,
        ..TxnLogConfig::new(dir)
    };
    TxnLog::new(Arc::new(FsStorage), config, 0)
}

fn benches(c: &mut Criterion) {
    let txn = vec![0x5au8; TXN_BYTES];
    let mut g = c.benchmark_group("log");

    g.throughput(Throughput::Bytes(TXN_BYTES as u64));
    let mut out = Vec::with_capacity(TXN_BYTES + 16);
    g.bench_function("encode_record_1100B", |b| {
        b.iter(|| {
            out.clear();
            encode_record(black_box(&txn), &mut out);
            black_box(out.len())
        })
    });

    let dir = std::env::temp_dir().join(format!("zk-log-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");

    g.throughput(Throughput::Elements(BATCH));
    let mut log = log_in(&dir.join("nosync"), false);
    let mut zxid = 0i64;
    g.bench_function("append_commit_100x1100B_no_fsync", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                zxid += 1;
                log.append(zxid, &txn);
            }
            log.commit().expect("commit");
        })
    });

    let writer = LogWriter::spawn(log_in(&dir.join("group"), false)).expect("writer");
    let shared = Bytes::from(txn.clone());
    let mut zxid = 0i64;
    g.bench_function("group_writer_100x1100B_no_fsync", |b| {
        b.iter_batched(
            mpsc::channel::<()>,
            |(tx, rx)| {
                for _ in 0..BATCH {
                    zxid += 1;
                    let tx = tx.clone();
                    writer
                        .append(
                            zxid,
                            shared.clone(),
                            Box::new(move |r| {
                                r.expect("durable");
                                let _ = tx.send(());
                            }),
                        )
                        .expect("append");
                }
                for _ in 0..BATCH {
                    rx.recv().expect("done");
                }
            },
            BatchSize::SmallInput,
        )
    });
    drop(writer);

    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let mut log = log_in(&dir.join("sync"), true);
    let mut zxid = 0i64;
    g.bench_function("append_commit_1x1100B_fsync", |b| {
        b.iter(|| {
            zxid += 1;
            log.append(zxid, &txn);
            log.commit().expect("commit");
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(log_benches, benches);
criterion_main!(log_benches);
