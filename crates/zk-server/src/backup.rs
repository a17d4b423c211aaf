//! Continuous backup (`backup.dir`): a thread that runs `zk_log::backup::Shipper` every
//! `backup.intervalMs`, shipping what the core has applied, and the status the
//! AdminServer (`/commands/backup`) and the metrics report.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use zk_log::backup::{zxid_distance, BackupStore, Shipper};
use zk_log::DataDirs;

/// What the backup has done, for operators.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BackupStatus {
    pub target: String,
    /// The target answered the last round.
    pub available: bool,
    /// The newest zxid in the backup (-1 before the first snapshot is shipped).
    pub shipped_zxid: i64,
    /// The newest zxid the server has applied.
    pub applied_zxid: i64,
    /// Txns applied but not yet shipped.
    pub lag_txns: i64,
    /// How old the newest point the backup holds completely is (ms).
    pub lag_ms: i64,
    /// The last time the backup held everything applied (epoch ms; 0 = never).
    pub complete_as_of_ms: i64,
    pub rounds: u64,
    pub failures: u64,
    pub shipped_txns: u64,
    pub shipped_snapshots: u64,
    pub last_error: Option<String>,
    /// Why shipping cannot go further right now (no snapshot yet, a hole in the log).
    pub waiting: Option<String>,
}

/// The running backup: feed it the applied zxid, read its status. Dropping it stops the
/// thread after its current round.
#[derive(Debug)]
pub struct Backup {
    status: Arc<Mutex<BackupStatus>>,
    applied: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
}

impl Backup {
    /// Starts shipping `dirs` to `target` every `interval`.
    pub fn spawn(
        dirs: DataDirs,
        target: Box<dyn BackupStore>,
        interval: Duration,
    ) -> std::io::Result<Backup> {
        let status = Arc::new(Mutex::new(BackupStatus {
            target: target.describe(),
            shipped_zxid: -1,
            ..BackupStatus::default()
        }));
        let applied = Arc::new(AtomicI64::new(-1));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, ap, sp) = (status.clone(), applied.clone(), stop.clone());
        std::thread::Builder::new()
            .name("backup".into())
            .spawn(move || {
                let mut shipper = Shipper::new(dirs, target);
                let mut failing = false;
                while !sp.load(Ordering::Relaxed) {
                    let upto = ap.load(Ordering::Acquire);
                    if upto >= 0 {
                        let now = crate::core::wall_ms();
                        let result = shipper.round(upto, now);
                        let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                        s.rounds += 1;
                        s.applied_zxid = upto;
                        match result {
                            Ok(r) => {
                                if failing {
                                    tracing::info!(target = %s.target, "backup target is back; catching up");
                                }
                                failing = false;
                                s.available = true;
                                s.last_error = None;
                                s.shipped_txns += r.txns as u64;
                                s.shipped_snapshots += r.snapshots as u64;
                                if r.waiting != s.waiting {
                                    if let Some(w) = &r.waiting {
                                        tracing::warn!(reason = %w, "backup is waiting");
                                    }
                                }
                                s.waiting = r.waiting;
                            }
                            Err(e) => {
                                if !failing {
                                    tracing::warn!(error = %e, "backup round failed; retrying every interval");
                                }
                                failing = true;
                                s.available = false;
                                s.failures += 1;
                                s.last_error = Some(e.to_string());
                            }
                        }
                        if let Some(m) = shipper.manifest() {
                            s.shipped_zxid = m.shipped_through.unwrap_or(-1);
                            s.complete_as_of_ms = m.complete_as_of_ms;
                        }
                    }
                    std::thread::sleep(interval);
                }
            })?;
        Ok(Backup {
            status,
            applied,
            stop,
        })
    }

    /// The core has applied up to `zxid`.
    pub fn set_applied(&self, zxid: i64) {
        self.applied.store(zxid, Ordering::Release);
    }

    /// The newest zxid shipped, if any: retention keeps the logs after it.
    pub fn shipped_zxid(&self) -> Option<i64> {
        let z = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shipped_zxid;
        (z >= 0).then_some(z)
    }

    /// The status now, with the lags worked out.
    pub fn status(&self, now_ms: i64) -> BackupStatus {
        let mut s = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let applied = self.applied.load(Ordering::Acquire);
        s.applied_zxid = applied;
        s.lag_txns = zxid_distance(s.shipped_zxid.max(0), applied);
        s.lag_ms = if s.complete_as_of_ms > 0 {
            (now_ms - s.complete_as_of_ms).max(0)
        } else {
            -1
        };
        s
    }
}

impl Drop for Backup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
