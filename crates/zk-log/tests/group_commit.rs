//! Group commit: concurrent appenders share fsyncs, a txn is reported durable only after the
//! fsync covering it, and a failed fsync stops the writer for good.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use zk_log::storage::{Fault, SimStorage, Storage};
use zk_log::txnlog::scan_log;
use zk_log::{LogError, LogWriter, TxnLog, TxnLogConfig};
use zk_proto::{OpCode, SetDataTxn, TxnBody, TxnEntry, TxnHeader};

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
            path: "/x".into(),
            data: Some(Bytes::from(vec![0u8; 1024])),
            version: zxid as i32,
        }),
        digest: None,
    }
    .encode()
}

#[test]
fn concurrent_appends_share_fsyncs_and_are_acked_after_them() {
    let storage = SimStorage::new();
    let config = TxnLogConfig {
        prealloc_bytes: 64 * 1024,
        ..TxnLogConfig::new("/d")
    };
    let log = TxnLog::new(Arc::new(storage.clone()), config, 0);
    let writer = Arc::new(LogWriter::spawn(log).unwrap());
    // Zxids are handed out and queued under one lock, as the server's pipeline does.
    let next_zxid = Arc::new(std::sync::Mutex::new(0i64));
    let (threads, per_thread) = (8, 40);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (writer, next_zxid, storage) = (writer.clone(), next_zxid.clone(), storage.clone());
            std::thread::spawn(move || {
                for _ in 0..per_thread {
                    let (tx, rx) = mpsc::channel();
                    let z = {
                        let mut g = next_zxid.lock().unwrap();
                        *g += 1;
                        let probe = storage.clone();
                        let z = *g;
                        writer
                            .append(
                                z,
                                txn(z),
                                Box::new(move |r| {
                                    r.unwrap();
                                    // When acked, the txn survives a crash.
                                    let crashed = probe.crash();
                                    let bytes = crashed.read(Path::new("/d/log.1")).unwrap();
                                    let scan = scan_log(Path::new("/d/log.1"), Bytes::from(bytes))
                                        .unwrap();
                                    let last = scan.records.last().unwrap().entry.header.zxid;
                                    tx.send(last >= z).unwrap();
                                }),
                            )
                            .unwrap();
                        z
                    };
                    assert!(rx.recv().unwrap(), "txn {z} acked before it was durable");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let stats = writer.stats();
    let n = threads * per_thread;
    println!(
        "{n} appends from {threads} threads, {} fsyncs",
        stats.fsyncs
    );
    assert_eq!(stats.records, n as u64);
    assert!(stats.fsyncs < n as u64, "no batching happened");
}

/// A writer on a fresh simulated disk, its log in `/d`.
fn writer_on_sim() -> (SimStorage, LogWriter) {
    let storage = SimStorage::new();
    let log = TxnLog::new(Arc::new(storage.clone()), TxnLogConfig::new("/d"), 0);
    (storage, LogWriter::spawn(log).unwrap())
}

/// A `done` that reports txn `z` and whether it became durable.
fn ack(tx: &mpsc::Sender<(i64, bool)>, z: i64) -> zk_log::group::Done {
    let tx = tx.clone();
    Box::new(move |r: Result<(), Arc<LogError>>| tx.send((z, r.is_ok())).unwrap())
}

#[test]
fn a_failed_fsync_fails_the_batch_and_everything_after() {
    let (storage, writer) = writer_on_sim();
    let (tx, rx) = mpsc::channel();
    writer.append(1, txn(1), ack(&tx, 1)).unwrap();
    assert_eq!(rx.recv().unwrap(), (1, true));
    storage.inject(Fault::SyncEio);
    writer.append(2, txn(2), ack(&tx, 2)).unwrap();
    assert_eq!(rx.recv().unwrap(), (2, false));
    writer.append(3, txn(3), ack(&tx, 3)).unwrap();
    assert_eq!(
        rx.recv().unwrap(),
        (3, false),
        "nothing is acked after a failed fsync"
    );
}

#[test]
fn enospc_on_write_is_reported_not_acked() {
    let storage = SimStorage::new();
    let mut log = TxnLog::new(Arc::new(storage.clone()), TxnLogConfig::new("/d"), 0);
    log.append(1, &txn(1));
    log.commit().unwrap();
    storage.inject(Fault::WriteNoSpace);
    log.append(2, &txn(2));
    let e = log.commit().unwrap_err();
    assert!(e.to_string().contains("ENOSPC"), "{e}");
}

/// The zxids of the log's records after a crash (what survives).
fn durable_zxids(storage: &SimStorage) -> Vec<i64> {
    let bytes = storage.crash().read(Path::new("/d/log.1")).unwrap();
    let scan = scan_log(Path::new("/d/log.1"), Bytes::from(bytes)).unwrap();
    scan.records.iter().map(|r| r.entry.header.zxid).collect()
}

#[test]
fn commit_now_commits_on_the_caller_only_while_nothing_is_queued() {
    let storage = SimStorage::new();
    let log = TxnLog::new(Arc::new(storage.clone()), TxnLogConfig::new("/d"), 0);
    let writer = LogWriter::spawn(log).unwrap();
    assert!(writer.commit_now(1, &txn(1)).unwrap().is_ok());
    assert_eq!(
        durable_zxids(&storage),
        [1],
        "durable when commit_now returns"
    );

    // Hold the writer thread inside txn 2's callback: 2 is still queued meanwhile.
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    writer
        .append(
            2,
            txn(2),
            Box::new(move |r| {
                r.unwrap();
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            }),
        )
        .unwrap();
    entered.recv().unwrap();
    assert!(
        writer.commit_now(3, &txn(3)).is_none(),
        "commit_now ran ahead of a queued txn"
    );
    release.send(()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let done = loop {
        if let Some(r) = writer.commit_now(3, &txn(3)) {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never drained"
        );
        std::thread::yield_now();
    };
    assert!(done.is_ok());
    assert_eq!(durable_zxids(&storage), [1, 2, 3]);
    assert_eq!(writer.stats().records, 3);

    // A failure on either path fails both for good.
    storage.inject(Fault::SyncEio);
    assert!(writer.commit_now(4, &txn(4)).unwrap().is_err());
    let (tx, rx) = mpsc::channel();
    writer
        .append(5, txn(5), Box::new(move |r| tx.send(r.is_ok()).unwrap()))
        .unwrap();
    assert!(!rx.recv().unwrap(), "acked after a failed fsync");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(r) = writer.commit_now(6, &txn(6)) {
            assert!(r.is_err(), "acked after a failed fsync");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never drained"
        );
        std::thread::yield_now();
    }
}

#[test]
fn held_txns_go_to_the_writer_together_and_in_order() {
    let (storage, writer) = writer_on_sim();
    let (tx, rx) = mpsc::channel();
    for z in 1..=5 {
        assert_eq!(
            writer.hold(z, txn(z), ack(&tx, z)).unwrap(),
            z as usize,
            "held now"
        );
    }
    // Held, not written: nothing is acked, and commit_now must not run ahead of them.
    assert!(rx
        .recv_timeout(std::time::Duration::from_millis(100))
        .is_err());
    assert!(writer.commit_now(6, &txn(6)).is_none());
    assert!(
        storage.crash().read(Path::new("/d/log.1")).is_err(),
        "a held txn was written"
    );
    writer.release().unwrap();
    let acked: Vec<_> = (0..5).map(|_| rx.recv().unwrap()).collect();
    assert_eq!(acked, (1..=5).map(|z| (z, true)).collect::<Vec<_>>());
    assert_eq!(durable_zxids(&storage), [1, 2, 3, 4, 5]);
    let stats = writer.stats();
    assert_eq!(
        (stats.records, stats.fsyncs),
        (5, 1),
        "one round for the held five"
    );

    // Another command goes after what is held: held 6 and 7 are written before 8.
    writer.hold(6, txn(6), ack(&tx, 6)).unwrap();
    writer.hold(7, txn(7), ack(&tx, 7)).unwrap();
    writer.append(8, txn(8), ack(&tx, 8)).unwrap();
    let acked: Vec<_> = (0..3).map(|_| rx.recv().unwrap().0).collect();
    assert_eq!(acked, [6, 7, 8]);
    assert_eq!(durable_zxids(&storage), [1, 2, 3, 4, 5, 6, 7, 8]);

    // Dropping the writer hands over what is held first.
    writer.hold(9, txn(9), ack(&tx, 9)).unwrap();
    drop(writer);
    assert_eq!(rx.recv().unwrap(), (9, true));
    assert_eq!(durable_zxids(&storage), (1..=9).collect::<Vec<_>>());
}
