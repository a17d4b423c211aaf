//! The ZooKeeper server, standalone: a client listener on tokio feeding one core task that
//! owns the tree, sessions and log (see [`core`]).
//!
//! # Layout
//! - [`config`]: zoo.cfg keys and defaults.
//! - [`core`]: the request pipeline (prep → group-commit log → apply → reply), sessions,
//!   watches, expiry.
//! - [`conn`]: per-connection framing, handshake, four-letter words.
//! - [`fourlw`]: the four-letter-word answers.
//! - [`admin`]: the AdminServer (HTTP JSON commands, `/metrics`, health endpoints).
//!
//! Libraries take their inputs: [`run`] gets a bound listener and a shutdown future; it
//! never installs signal handlers or reads the environment.

pub mod admin;
pub mod backup;
pub mod config;
pub mod conn;
mod console;
pub mod core;
pub mod fourlw;
pub mod fuzzing;
mod member;
pub mod sasl;
pub mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use zk_log::snapfile::write_snapshot_file;
use zk_log::trigger::SnapTrigger;
use zk_log::{recover, DataDirs, FsStorage, LogWriter, SnapshotCompression, TxnLog, TxnLogConfig};
use zk_tree::{AuthConfig, TreeConfig};

pub use config::{Config, ConfigError};

use crate::core::{Core, CoreMsg};

/// Messages the core takes off its queue in one turn, after the one the select gave it.
const CORE_BATCH_MESSAGES: usize = 256;

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("storage: {0}")]
    Storage(#[from] zk_log::LogError),
    #[error("storage failed while serving: {0}")]
    StorageFailed(Arc<zk_log::LogError>),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS configuration: {0}")]
    Tls(#[from] tls::TlsError),
}

/// Accepts on `listener`, or never when there is none.
async fn accept(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The tree settings the configuration implies.
pub fn tree_config(config: &Config) -> TreeConfig {
    TreeConfig {
        extended_types_enabled: config.extended_types_enabled,
        auth: AuthConfig {
            skip_acl: config.skip_acl,
            ..AuthConfig::default()
        },
    }
}

/// Runs the server on `listener` until `shutdown` completes. Recovers the data directory
/// first; a storage failure while serving stops the server with an error.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    run_with_admin(config, listener, None, shutdown).await
}

/// [`run`], also serving the AdminServer on `admin` when given.
pub async fn run_with_admin(
    config: Config,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let listeners = Listeners {
        client: Some(listener),
        secure: None,
        admin,
    };
    run_with_listeners(config, listeners, shutdown).await
}

/// Like ZooKeeper, a standalone server starts from a fresh snapshot so the old logs can be
/// purged later; it is written in the background from a copy-on-write view, so a large tree
/// does not delay serving (recovery from the old snapshot and the logs stays valid
/// meanwhile). Nothing to write when the newest snapshot already holds everything.
fn startup_snapshot(
    tree: &zk_tree::DataTree,
    replayed: usize,
    had_snapshot: bool,
    dirs: &DataDirs,
) {
    if replayed > 0 || !had_snapshot {
        let frozen = tree.snapshot_copy();
        let snap_dir = dirs.snap_dir.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) =
                write_snapshot_file(&FsStorage, &snap_dir, &frozen, SnapshotCompression::None)
            {
                tracing::error!(error = %e, "startup snapshot failed");
            }
        });
    }
}

/// The sockets a server listens on, bound by the caller (so tests can use free ports).
#[derive(Debug, Default)]
pub struct Listeners {
    /// `clientPort`: plain, or plain and TLS with `client.portUnification`.
    pub client: Option<TcpListener>,
    /// `secureClientPort`: TLS only.
    pub secure: Option<TcpListener>,
    /// The AdminServer.
    pub admin: Option<TcpListener>,
}

/// Runs the server on the given listeners until `shutdown` completes.
pub async fn run_with_listeners(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let Listeners {
        client: listener,
        secure,
        admin,
    } = listeners;
    if let Some(users) = &config.sasl_users {
        tracing::info!(users = ?users.names().collect::<Vec<_>>(), "SASL DIGEST-MD5 enabled");
    }
    // TLS material is checked before anything else starts.
    let tls = if secure.is_some() || config.port_unification {
        let acceptor = tls::Acceptor::new(config.tls.clone())?;
        acceptor.spawn_reloader(Duration::from_secs(2));
        Some(acceptor)
    } else {
        None
    };
    // admin.forceHttps: the AdminServer with the same stores, the client certificate
    // asked for (admin.needClientAuth: required).
    let admin_tls = if config.admin_https && admin.is_some() {
        let mut settings = config.tls.clone();
        settings.client_auth = if config.admin_need_client_auth {
            tls::ClientAuth::Need
        } else {
            tls::ClientAuth::Want
        };
        let acceptor = tls::Acceptor::new(settings)?;
        acceptor.spawn_reloader(Duration::from_secs(2));
        Some(acceptor)
    } else {
        None
    };
    let dirs = DataDirs::new(&config.data_dir, config.data_log_dir.as_deref());
    let storage = Arc::new(FsStorage);
    let replicated = config.is_ensemble();
    let mut config = config;
    let config_version = if replicated {
        member::load_dynamic(&mut config)?
    } else {
        0
    };
    let (tree, log_last, member) = if replicated {
        let (tree, member) = member::recover(&config, storage.as_ref(), &dirs)?;
        let last = member
            .log
            .last()
            .map_or(tree.last_processed_zxid(), |p| p.zxid);
        (tree, last, Some(member))
    } else {
        let recovered = recover(storage.as_ref(), &dirs, tree_config(&config))?;
        tracing::info!(
            zxid = format_args!("{:#x}", recovered.tree.last_processed_zxid()),
            znodes = recovered.tree.node_count(),
            replayed = recovered.replayed,
            snapshot = ?recovered.snapshot,
            snapshot_ms = recovered.snapshot_time.as_millis() as u64,
            replay_ms = recovered.replay_time.as_millis() as u64,
            "recovered data directory"
        );
        let tree = recovered.tree;
        startup_snapshot(
            &tree,
            recovered.replayed,
            recovered.snapshot.is_some(),
            &dirs,
        );
        let last = tree.last_processed_zxid();
        (tree, last, None)
    };
    let log_config = TxnLogConfig {
        prealloc_bytes: config.prealloc_kb * 1024,
        force_sync: config.force_sync,
        fsync_warn_ms: config.fsync_warn_ms,
        ..TxnLogConfig::new(&dirs.log_dir)
    };
    let log = TxnLog::new(storage.clone(), log_config, log_last);
    let writer = LogWriter::spawn(log)?;

    let (to_core, mut from_conns) = mpsc::unbounded_channel::<CoreMsg>();
    let mut core = Core::new(config.clone(), tree, writer, to_core.clone());
    let core_limits = (
        core.guardrails.frame_limit(config.max_packet_for(false)),
        core.guardrails.frame_limit(config.max_packet_for(true)),
    );
    if let Some(durable) = member {
        member::join(
            &config,
            config_version,
            &mut core,
            durable,
            &dirs,
            to_core.clone(),
        )
        .await?;
    }
    if let Some(spec) = &config.backup_target {
        let target = zk_backup::open(spec, &config.backup_s3)
            .map_err(|e| ServerError::Io(std::io::Error::other(format!("backup.target: {e}"))))?;
        let backup = backup::Backup::spawn(
            dirs.clone(),
            target,
            Duration::from_millis(config.backup_interval_ms.max(10)),
        )?;
        backup.set_applied(core.tree.last_processed_zxid());
        tracing::info!(target = %spec, interval_ms = config.backup_interval_ms, "continuous backup on");
        core.backup = Some(backup);
    }
    let tick = Duration::from_millis(u64::from(config.tick_time_ms.max(2) / 2));
    let snap_dir = dirs.snap_dir.clone();
    let snapshot_time = core.intro.snapshot_time.clone();
    let purge_dirs = dirs.clone();
    let core_task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(tick);
        // autopurge.purgeInterval (hours; 0 = off) keeping autopurge.snapRetainCount.
        let purge_every = Duration::from_secs(config.purge_interval_hours.max(1) * 3600);
        let mut purge_timer =
            tokio::time::interval_at(tokio::time::Instant::now() + purge_every, purge_every);
        let purge_on = config.purge_interval_hours > 0;
        let retain = config.snap_retain_count;
        let mut trigger = SnapTrigger::new(config.snap_count, 0, core::wall_ms() as u64);
        let mut applied_before = core.tree.last_processed_zxid();
        // The peer's clock: fine enough for the election's 200 ms finalize wait.
        let mut peer_ticker = tokio::time::interval(Duration::from_millis(50));
        loop {
            let msg = tokio::select! {
                m = from_conns.recv() => match m { Some(m) => m, None => break },
                _ = ticker.tick() => CoreMsg::Tick,
                _ = peer_ticker.tick(), if replicated => CoreMsg::ReplicaTick,
                _ = purge_timer.tick(), if purge_on => {
                    let dirs = purge_dirs.clone();
                    // With a backup, logs it has not shipped yet stay.
                    let shipped = core.backup.as_ref().map(|b| b.shipped_zxid().unwrap_or(-1));
                    tokio::task::spawn_blocking(move || {
                        match zk_log::purge::purge_keeping(&FsStorage, &dirs, retain, shipped) {
                            Ok(removed) => tracing::info!(files = removed.len(), "autopurge"),
                            Err(e) => tracing::warn!(error = %e, "autopurge failed"),
                        }
                    });
                    continue;
                }
            };
            core.backlog = from_conns.len();
            core.handle_in_turn(msg)
                .map_err(ServerError::StorageFailed)?;
            // What else is already queued is handled without going back through the
            // select (whose timers were polled again for every message); the timers wait
            // at most one batch.
            for _ in 0..CORE_BATCH_MESSAGES {
                let Ok(msg) = from_conns.try_recv() else {
                    break;
                };
                core.backlog = from_conns.len();
                core.handle_in_turn(msg)
                    .map_err(ServerError::StorageFailed)?;
            }
            // The turn's txns go to the log writer together: one round for all of them.
            core.release_log();
            // Snapshot in the background once enough txns were applied.
            let now = core.tree.last_processed_zxid();
            if let Some(b) = &core.backup {
                b.set_applied(now);
            }
            let mut due = false;
            if now < applied_before {
                // An ensemble member installed an older snapshot of the leader's.
                applied_before = now;
            }
            // Txns applied since the last look; zxids jump at a new epoch (high 32 bits).
            let fresh = if now >> 32 == applied_before >> 32 {
                now - applied_before
            } else {
                now & 0xffff_ffff
            };
            for _ in 0..fresh {
                due |= trigger.record(0);
            }
            applied_before = now;
            if due {
                trigger.reset(core::wall_ms() as u64);
                let frozen = core.tree.snapshot_copy();
                let dir = snap_dir.clone();
                core.roll_log();
                core.compact(now);
                let timings = snapshot_time.clone();
                tokio::task::spawn_blocking(move || {
                    let started = std::time::Instant::now();
                    match write_snapshot_file(&FsStorage, &dir, &frozen, SnapshotCompression::None)
                    {
                        Ok(_) => timings
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .record(started.elapsed()),
                        Err(e) => tracing::error!(error = %e, "snapshot failed"),
                    }
                });
            }
        }
        Ok::<(), ServerError>(())
    });

    // The AdminServer stops when this sender is dropped (when `run` returns).
    let (admin_stop, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(admin) = admin {
        tracing::info!(addr = %admin.local_addr()?, "serving the AdminServer");
        let to_core = to_core.clone();
        let super_digest = config.super_digest.clone();
        tokio::spawn(async move {
            let stop = async move {
                let _ = admin_stopped.await;
            };
            if let Err(e) = admin::serve(admin, to_core, super_digest, admin_tls, stop).await {
                tracing::error!(error = %e, "AdminServer failed");
            }
        });
    }
    let _admin_stop = admin_stop;
    let per_ip: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let max_per_ip = config.max_client_cnxns;
    let plain_limit = core_limits.0;
    let secure_limit = core_limits.1;
    let throttle = Arc::new(conn::Throttle::new(config.global_outstanding_limit));
    let mut next_conn: u64 = 1;
    if let Some(l) = &listener {
        tracing::info!(addr = %l.local_addr()?, unified = config.port_unification, "serving clients");
    }
    if let Some(l) = &secure {
        tracing::info!(addr = %l.local_addr()?, "serving clients over TLS");
    }
    let unify = config.port_unification;
    tokio::pin!(shutdown);
    tokio::pin!(core_task);
    loop {
        let (stream, peer, secure_port) = tokio::select! {
            _ = &mut shutdown => break,
            result = &mut core_task => {
                return match result {
                    Ok(r) => r,
                    Err(e) => Err(ServerError::Io(std::io::Error::other(e))),
                };
            }
            accepted = accept(listener.as_ref()) => match accepted {
                Ok((s, p)) => (s, p, false),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            accepted = accept(secure.as_ref()) => match accepted {
                Ok((s, p)) => (s, p, true),
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let ip = peer.ip();
        {
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(ip).or_insert(0);
            if max_per_ip > 0 && *n >= max_per_ip {
                tracing::warn!(client = %ip, limit = max_per_ip, "too many connections from this address");
                continue;
            }
            *n += 1;
        }
        let conn = next_conn;
        next_conn += 1;
        let to_core = to_core.clone();
        let per_ip = per_ip.clone();
        let throttle = throttle.clone();
        let tls = tls.clone();
        let limit = if secure_port {
            secure_limit.clone()
        } else {
            plain_limit.clone()
        };
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let use_tls = match (&tls, secure_port) {
                (Some(_), true) => true,
                // Port unification: a TLS client starts with a handshake record (0x16).
                (Some(_), false) if unify => {
                    let mut first = [0u8; 1];
                    matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16)
                }
                _ => false,
            };
            match tls {
                Some(tls) if use_tls => {
                    let handshake = tls.acceptor().accept(stream);
                    match tokio::time::timeout(tls.handshake_timeout(), handshake).await {
                        Ok(Ok(tls_stream)) => {
                            let ids = tls.identities(tls_stream.get_ref().1);
                            conn::serve(tls_stream, conn, ip, ids, to_core, limit, throttle).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(client = %ip, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::info!(client = %ip, "TLS handshake timed out");
                        }
                    }
                }
                _ => conn::serve(stream, conn, ip, Vec::new(), to_core, limit, throttle).await,
            }
            let mut counts = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = counts.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&ip);
                }
            }
        });
    }
    tracing::info!("shutting down");
    Ok(())
}
