//! Group commit (`SyncRequestProcessor`): one thread owns the [`TxnLog`]; appends from any
//! number of callers queue up, and each round writes everything queued with one write and
//! one fsync, then reports every txn of the round durable. A failed write or fsync stops
//! the writer for good: after a failed fsync nothing is known about the file, so the
//! server must stop rather than acknowledge anything more. When nothing is queued, the
//! thread that queues may commit a txn itself ([`LogWriter::commit_now`]).
//!
//! A caller that produces txns in bursts (the server's core, one turn of messages at a
//! time) may hold them back ([`LogWriter::hold`]) and hand the burst over at its end
//! ([`LogWriter::release`]): one message and one wake-up of the writer per burst, and a
//! round that takes the whole burst rather than whatever arrived before the writer woke.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
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

/// What goes to the writer thread: a command, or the appends held back and released
/// together ([`LogWriter::release`]), written as if each had been sent alone.
enum Queued {
    One(Cmd),
    Held(Vec<(i64, Bytes, Done)>),
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

/// The log and whether it has failed, shared by the writer thread and
/// [`LogWriter::commit_now`].
#[derive(Debug)]
struct Shared {
    log: TxnLog,
    /// After a failed write or fsync nothing more may be acknowledged.
    failed: Option<Arc<LogError>>,
}

/// Appends waiting for [`LogWriter::release`] (shown by count).
struct HeldAppends(Vec<(i64, Bytes, Done)>);

impl std::fmt::Debug for HeldAppends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} held appends", self.0.len())
    }
}

/// Handle to the writer thread. Dropping it lets the thread finish what is queued and exit.
#[derive(Debug)]
pub struct LogWriter {
    tx: Option<SyncSender<Queued>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Mutex<Shared>>,
    /// Commands sent or held and not yet done (their `done` not yet called).
    queued: Arc<AtomicUsize>,
    /// Appends held back until [`LogWriter::release`] (or the next other command).
    held: Mutex<HeldAppends>,
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
        let busy_since = Arc::new(Mutex::new(None));
        let shared = Arc::new(Mutex::new(Shared { log, failed: None }));
        let queued = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stats, busy_since) = (stats.clone(), busy_since.clone());
            let (shared, queued) = (shared.clone(), queued.clone());
            std::thread::Builder::new()
                .name("zk-log-writer".into())
                .spawn(move || run(&shared, rx, &queued, &stats, &busy_since))?
        };
        Ok(LogWriter {
            tx: Some(tx),
            thread: Some(thread),
            shared,
            queued,
            held: Mutex::new(HeldAppends(Vec::new())),
            stats,
            busy_since,
        })
    }

    /// Appends and commits one txn on the calling thread, when nothing is queued for the
    /// writer thread: `None` when something is (queue it with [`LogWriter::append`]).
    ///
    /// An idle server's lone write then costs one fsync, without waking the writer
    /// thread and then being woken by it: on a virtual machine those two wake-ups of idle
    /// threads took about as long as the fsync itself. Only the thread that queues
    /// commands may call it, so that nothing can be queued meanwhile.
    pub fn commit_now(
        &self,
        zxid: i64,
        txn: &[u8],
    ) -> Option<std::result::Result<(), Arc<LogError>>> {
        if self.queued.load(Ordering::Acquire) != 0 {
            return None;
        }
        let mut shared = lock(&self.shared);
        if let Some(e) = &shared.failed {
            return Some(Err(e.clone()));
        }
        self.set_busy(Some(std::time::Instant::now()));
        shared.log.append(zxid, txn);
        let result = shared.log.commit();
        *lock(&self.stats) = shared.log.stats();
        self.set_busy(None);
        Some(result.map_err(|e| {
            tracing::error!(error = %e, "txn log write failed; no further writes will be acknowledged");
            let e = Arc::new(e);
            shared.failed = Some(e.clone());
            e
        }))
    }

    fn set_busy(&self, since: Option<std::time::Instant>) {
        *lock(&self.busy_since) = since;
    }

    /// Queues a txn; `done` runs when it is durable. Blocks while the queue is full.
    pub fn append(&self, zxid: i64, txn: Bytes, done: Done) -> Result<()> {
        self.send(Cmd::Append { zxid, txn, done })
    }

    /// Like [`LogWriter::append`], but the txn waits, with any others held, for
    /// [`LogWriter::release`] (or the next command of another kind, which goes after it).
    /// It counts as queued meanwhile, so [`LogWriter::commit_now`] cannot run ahead of it.
    /// Returns how many txns are held now.
    pub fn hold(&self, zxid: i64, txn: Bytes, done: Done) -> Result<usize> {
        if self.tx.is_none() {
            return Err(LogError::WriterStopped);
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        let mut held = lock(&self.held);
        held.0.push((zxid, txn, done));
        Ok(held.0.len())
    }

    /// Hands every held txn to the writer thread at once. If the writer has stopped, each
    /// held txn's `done` is called with the error (as well as it being returned).
    pub fn release(&self) -> Result<()> {
        let held = std::mem::take(&mut lock(&self.held).0);
        if held.is_empty() {
            return Ok(());
        }
        let n = held.len();
        let sent = match self.tx.as_ref() {
            Some(tx) => tx.send(Queued::Held(held)).map_err(|e| e.0),
            None => Err(Queued::Held(held)),
        };
        let Err(Queued::Held(held)) = sent else {
            return Ok(());
        };
        self.queued.fetch_sub(n, Ordering::AcqRel);
        let e = Arc::new(LogError::WriterStopped);
        for (_, _, done) in held {
            done(Err(e.clone()));
        }
        Err(LogError::WriterStopped)
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
        // In order: what was held goes first.
        self.release()?;
        let tx = self.tx.as_ref().ok_or(LogError::WriterStopped)?;
        self.queued.fetch_add(1, Ordering::AcqRel);
        tx.send(Queued::One(cmd)).map_err(|_| {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            LogError::WriterStopped
        })
    }

    /// Fsync counters so far.
    pub fn stats(&self) -> SyncStats {
        *lock(&self.stats)
    }

    /// How long the write in progress has been going (`None` when idle): a large value
    /// means the disk is stalled and nothing queued behind it can become durable.
    pub fn busy_for(&self) -> Option<std::time::Duration> {
        lock(&self.busy_since).map(|since| since.elapsed())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        let _ = self.release();
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Takes a lock even if a panic poisoned it: that panic is the failure to report, and the
/// writer carried on this way before the log was shared.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn run(
    shared: &Mutex<Shared>,
    rx: Receiver<Queued>,
    queued: &AtomicUsize,
    stats: &Mutex<SyncStats>,
    busy_since: &Mutex<Option<std::time::Instant>>,
) {
    let set_busy = |v: Option<std::time::Instant>| *lock(busy_since) = v;
    // A held group is never split, so a round can pass BATCH_TXNS_MAX by one group.
    let take = |round: &mut Vec<Cmd>, queued: Queued| match queued {
        Queued::One(cmd) => round.push(cmd),
        Queued::Held(appends) => {
            round.extend(appends.into_iter().map(|(zxid, txn, done)| Cmd::Append {
                zxid,
                txn,
                done,
            }))
        }
    };
    while let Ok(first) = rx.recv() {
        let mut round = Vec::new();
        take(&mut round, first);
        while round.len() < BATCH_TXNS_MAX {
            match rx.try_recv() {
                Ok(cmd) => take(&mut round, cmd),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let taken = round.len();
        let mut guard = lock(shared);
        let state = &mut *guard;
        set_busy(Some(std::time::Instant::now()));
        let (waiting, result) = match &state.failed {
            Some(e) => (round.into_iter().map(Cmd::done).collect(), Err(e.clone())),
            None => {
                let (waiting, result) = write_round(&mut state.log, round);
                *lock(stats) = state.log.stats();
                (
                    waiting,
                    result.map_err(|e| {
                        tracing::error!(error = %e, "txn log write failed; no further writes will be acknowledged");
                        let e = Arc::new(e);
                        state.failed = Some(e.clone());
                        e
                    }),
                )
            }
        };
        set_busy(None);
        drop(guard);
        match result {
            Ok(()) => waiting.into_iter().for_each(|d| d(Ok(()))),
            Err(e) => waiting.into_iter().for_each(|d| d(Err(e.clone()))),
        }
        // Only now: `commit_now` must not run ahead of a txn whose `done` is not called.
        queued.fetch_sub(taken, Ordering::AcqRel);
    }
}

/// Writes one round and commits it; returns the callbacks to call and how it went.
fn write_round(log: &mut TxnLog, round: Vec<Cmd>) -> (Vec<Done>, Result<()>) {
    let mut waiting: Vec<Done> = Vec::with_capacity(round.len());
    let mut result: Result<()> = Ok(());
    let mut round = round.into_iter();
    for cmd in round.by_ref() {
        match cmd {
            Cmd::Append { zxid, txn, done } => {
                log.append(zxid, &txn);
                waiting.push(done);
            }
            Cmd::Roll { done } => {
                // Everything before the roll goes into the old file.
                result = log.roll();
                waiting.push(done);
            }
            Cmd::Truncate { zxid, done } => {
                result = log.commit().and_then(|()| log.truncate_after(zxid));
                waiting.push(done);
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
            }
        }
        if result.is_err() {
            break;
        }
    }
    // Commands after a failure fail with it.
    waiting.extend(round.map(Cmd::done));
    if result.is_ok() {
        result = log.commit();
    }
    (waiting, result)
}
