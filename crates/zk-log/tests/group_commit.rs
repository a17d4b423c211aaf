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

#[test]
fn a_failed_fsync_fails_the_batch_and_everything_after() {
    let storage = SimStorage::new();
    let log = TxnLog::new(Arc::new(storage.clone()), TxnLogConfig::new("/d"), 0);
    let writer = LogWriter::spawn(log).unwrap();
    let (tx, rx) = mpsc::channel();
    let ack = |tx: &mpsc::Sender<(i64, bool)>, z: i64| {
        let tx = tx.clone();
        Box::new(move |r: Result<(), Arc<LogError>>| tx.send((z, r.is_ok())).unwrap())
    };
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
