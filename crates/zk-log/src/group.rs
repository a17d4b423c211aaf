//! Group commit (`SyncRequestProcessor`): one thread owns the [`TxnLog`]; appends from any
//! number of callers queue up, and each round writes everything queued with one write and
//! one fsync, then reports every txn of the round durable. A failed write or fsync stops
//! the writer for good: after a failed fsync nothing is known about the file, so the
//! server must stop rather than acknowledge anything more.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::error::{LogError, Result};
use crate::txnlog::{SyncStats, TxnLog};

/// Called once a txn is durable (`Ok`) or can never be (`Err`). Runs on the writer thread:
/// keep it short (send on a channel).
pub type Done = Box<dyn FnOnce(std::result::Result<(), Arc<LogError>>) + Send>;

enum Cmd {
    Append {
        zxid: i64,
        txn: Bytes,
        done: Done,
    },
    Roll {
        done: Done,
    },
    /// Everything before it durable, then drop the txns after `zxid`.
    Truncate {
        zxid: i64,
        done: Done,
    },
    /// Everything before it durable, then replace an epoch file.
    Epoch {
        dir: PathBuf,
        name: &'static str,
        value: i64,
        done: Done,
    },
    /// Everything before it durable, then write a snapshot file received whole (Zab's
    /// SNAP) and drop the logged txns after it.
    Snapshot {
        dir: PathBuf,
        zxid: i64,
        bytes: Bytes,
        done: Done,
    },
}

impl Cmd {
    fn done(self) -> Done {
        match self {
            Cmd::Append { done, .. }
            | Cmd::Roll { done }
            | Cmd::Truncate { done, .. }
            | Cmd::Epoch { done, .. }
            | Cmd::Snapshot { done, .. } => done,
        }
    }
}

/// Handle to the writer thread. Dropping it lets the thread finish what is queued and exit.
#[derive(Debug)]
pub struct LogWriter {
    tx: Option<SyncSender<Cmd>>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<Mutex<SyncStats>>,
    /// When the round being written started (`None` while idle), to tell a stalled disk.
    busy_since: Arc<Mutex<Option<std::time::Instant>>>,
}

/// Most txns one round writes.
pub const BATCH_TXNS_MAX: usize = 1000;
/// Most commands waiting for the writer before `append` blocks (backpressure).
pub const QUEUE_DEPTH_MAX: usize = 10_000;

impl LogWriter {
    /// Starts the writer thread.
    pub fn spawn(log: TxnLog) -> std::io::Result<LogWriter> {
        let (tx, rx) = sync_channel(QUEUE_DEPTH_MAX);
        let stats = Arc::new(Mutex::new(log.stats()));
        let thread_stats = stats.clone();
        let busy_since = Arc::new(Mutex::new(None));
        let thread_busy = busy_since.clone();
        let thread = std::thread::Builder::new()
            .name("zk-log-writer".into())
            .spawn(move || run(log, rx, thread_stats, thread_busy))?;
        Ok(LogWriter {
            tx: Some(tx),
            thread: Some(thread),
            stats,
            busy_since,
        })
    }

    /// Queues a txn; `done` runs when it is durable. Blocks while the queue is full.
    pub fn append(&self, zxid: i64, txn: Bytes, done: Done) -> Result<()> {
        self.send(Cmd::Append { zxid, txn, done })
    }

    /// Queues a roll to a new log file after everything queued before it.
    pub fn roll(&self, done: Done) -> Result<()> {
        self.send(Cmd::Roll { done })
    }

    /// Queues a truncation of the log after `zxid`, after everything queued before it.
    pub fn truncate(&self, zxid: i64, done: Done) -> Result<()> {
        self.send(Cmd::Truncate { zxid, done })
    }

    /// Queues an epoch file write (`acceptedEpoch` / `currentEpoch` in `dir`), in order
    /// with the log: Zab needs an epoch durable after the txns logged before it.
    pub fn write_epoch(
        &self,
        dir: PathBuf,
        name: &'static str,
        value: i64,
        done: Done,
    ) -> Result<()> {
        self.send(Cmd::Epoch {
            dir,
            name,
            value,
            done,
        })
    }

    /// Queues a snapshot file (already encoded, `snapshot.<zxid>` in `dir`) and the
    /// truncation of the log after `zxid`, in order with the log.
    pub fn install_snapshot(
        &self,
        dir: PathBuf,
        zxid: i64,
        bytes: Bytes,
        done: Done,
    ) -> Result<()> {
        self.send(Cmd::Snapshot {
            dir,
            zxid,
            bytes,
            done,
        })
    }

    fn send(&self, cmd: Cmd) -> Result<()> {
        let tx = self.tx.as_ref().ok_or(LogError::WriterStopped)?;
        tx.send(cmd).map_err(|_| LogError::WriterStopped)
    }

    /// Fsync counters so far.
    pub fn stats(&self) -> SyncStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the write in progress has been going (`None` when idle): a large value
    /// means the disk is stalled and nothing queued behind it can become durable.
    pub fn busy_for(&self) -> Option<std::time::Duration> {
        self.busy_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map(|since| since.elapsed())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    mut log: TxnLog,
    rx: Receiver<Cmd>,
    stats: Arc<Mutex<SyncStats>>,
    busy_since: Arc<Mutex<Option<std::time::Instant>>>,
) {
    let mut failed: Option<Arc<LogError>> = None;
    let set_busy = |v: Option<std::time::Instant>| {
        *busy_since.lock().unwrap_or_else(|e| e.into_inner()) = v;
    };
    while let Ok(first) = rx.recv() {
        set_busy(Some(std::time::Instant::now()));
        let mut round = vec![first];
        while round.len() < BATCH_TXNS_MAX {
            match rx.try_recv() {
                Ok(cmd) => round.push(cmd),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if let Some(e) = &failed {
            for cmd in round {
                cmd.done()(Err(e.clone()));
            }
            set_busy(None);
            continue;
        }
        let mut waiting: Vec<Done> = Vec::with_capacity(round.len());
        let mut result: Result<()> = Ok(());
        for cmd in round {
            match cmd {
                Cmd::Append { zxid, txn, done } => {
                    log.append(zxid, &txn);
                    waiting.push(done);
                }
                Cmd::Roll { done } => {
                    // Everything before the roll goes into the old file.
                    result = log.roll();
                    waiting.push(done);
                    if result.is_err() {
                        break;
                    }
                }
                Cmd::Truncate { zxid, done } => {
                    result = log.commit().and_then(|()| log.truncate_after(zxid));
                    waiting.push(done);
                    if result.is_err() {
                        break;
                    }
                }
                Cmd::Epoch {
                    dir,
                    name,
                    value,
                    done,
                } => {
                    result = log
                        .commit()
                        .and_then(|()| crate::epoch::write_epoch(log.storage(), &dir, name, value));
                    waiting.push(done);
                    if result.is_err() {
                        break;
                    }
                }
                Cmd::Snapshot {
                    dir,
                    zxid,
                    bytes,
                    done,
                } => {
                    result = log
                        .commit()
                        .and_then(|()| {
                            crate::snapfile::write_snapshot_bytes(log.storage(), &dir, zxid, &bytes)
                        })
                        .and_then(|_| log.truncate_after(zxid));
                    waiting.push(done);
                    if result.is_err() {
                        break;
                    }
                }
            }
        }
        if result.is_ok() {
            result = log.commit();
        }
        *stats.lock().unwrap_or_else(|e| e.into_inner()) = log.stats();
        set_busy(None);
        match result {
            Ok(()) => waiting.into_iter().for_each(|d| d(Ok(()))),
            Err(e) => {
                tracing::error!(error = %e, "txn log write failed; no further writes will be acknowledged");
                let e = Arc::new(e);
                waiting.into_iter().for_each(|d| d(Err(e.clone())));
                failed = Some(e);
            }
        }
    }
}
