//! Starting as an ensemble member (`server.N` lines for more than one server): what the
//! disk holds for Zab, the quorum port, and the peer that joins the core.
//!
//! The tree starts from the newest snapshot only: the txns logged after it are handed to
//! the peer, which commits (and applies) them once a leader confirms them, so a txn the new
//! leader truncates never reaches the tree.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use zk_log::epoch::{read_epoch, ACCEPTED_EPOCH, CURRENT_EPOCH};
use zk_log::{DataDirs, Storage};
use zk_tree::DataTree;
use zk_zab::broadcast::Proposal;
use zk_zab::election::Timing;
use zk_zab::peer::{Config as PeerConfig, Durable, Peer};

use crate::core::{Core, CoreMsg, Replica};
use crate::{tree_config, Config, ServerError};

/// The snapshot's tree and what Zab needs from the disk.
pub(crate) fn recover(
    config: &Config,
    storage: &dyn Storage,
    dirs: &DataDirs,
) -> Result<(DataTree, Durable), ServerError> {
    let (recovered, unapplied) =
        zk_log::recovery::recover_snapshot_and_log(storage, dirs, tree_config(config))?;
    let (snapshot_ms, log_ms) = (
        recovered.snapshot_time.as_millis() as u64,
        recovered.replay_time.as_millis() as u64,
    );
    let tree = recovered.tree;
    let log: Vec<Proposal> = unapplied
        .into_iter()
        .map(|(zxid, data)| Proposal { zxid, data })
        .collect();
    let last = log.last().map_or(tree.last_processed_zxid(), |p| p.zxid);
    let epoch = |name| -> Result<Option<u32>, ServerError> {
        Ok(read_epoch(storage, &dirs.snap_dir, name)?
            .map(|e| e.clamp(0, i64::from(u32::MAX)) as u32))
    };
    // Without the files (a data directory from a standalone server), the epoch is the last
    // txn's, as ZooKeeper assumes.
    let current = epoch(CURRENT_EPOCH)?.unwrap_or(zk_zab::epoch_of(last));
    let accepted = epoch(ACCEPTED_EPOCH)?.unwrap_or(current).max(current);
    tracing::info!(
        snapshot = format_args!("{:#x}", tree.last_processed_zxid()),
        logged = log.len(),
        last_logged = format_args!("{last:#x}"),
        accepted_epoch = accepted,
        current_epoch = current,
        snapshot_ms,
        log_ms,
        "recovered data directory (ensemble member)"
    );
    let snapshot_zxid = tree.last_processed_zxid();
    Ok((
        tree,
        Durable {
            accepted_epoch: accepted,
            current_epoch: current,
            snapshot_zxid,
            log,
            proposed_configs: Vec::new(),
        },
    ))
}

/// Where a member keeps the configuration a reconfiguration put in force (ZooKeeper's
/// dynamic configuration file): `/zookeeper/config` text in the data directory.
pub(crate) fn dynamic_file(config: &Config) -> std::path::PathBuf {
    config.data_dir.join("zkd.dynamic.cfg")
}

/// After a reconfiguration, a restarting member starts from the configuration it last had
/// in force, not from its `server.N` lines; returns its version (0: none saved).
pub(crate) fn load_dynamic(config: &mut Config) -> Result<i64, ServerError> {
    let path = dynamic_file(config);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(0);
    };
    let (servers, version) = crate::config::parse_config_text(&text)
        .map_err(|e| ServerError::Io(std::io::Error::other(format!("{}: {e}", path.display()))))?;
    if !servers.is_empty() {
        tracing::info!(
            file = %path.display(),
            version = format_args!("{version:#x}"),
            "configuration from the last reconfiguration"
        );
        config.servers = servers;
    }
    Ok(version)
}

/// The other members and where their quorum ports listen.
pub(crate) fn peer_members(servers: &[crate::config::ServerSpec], me: u64) -> Vec<zk_peer::Member> {
    servers
        .iter()
        .filter(|s| s.id != me)
        .map(|s| zk_peer::Member {
            id: s.id,
            addr: format!("{}:{}", s.host, s.quorum_port),
        })
        .collect()
}

/// A digest of the membership, so servers of different ensembles refuse each other (not
/// with reconfiguration, where members change: quorum authentication keeps strangers out).
fn ensemble_digest(config: &Config) -> String {
    if config.reconfig_enabled {
        return "reconfigurable".into();
    }
    let mut h = DefaultHasher::new();
    for s in &config.servers {
        (s.id, &s.host, s.quorum_port, s.observer).hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

/// Binds the quorum port, starts the peer network and makes the core a member.
pub(crate) async fn join(
    config: &Config,
    config_version: i64,
    core: &mut Core,
    durable: Durable,
    dirs: &DataDirs,
    to_core: mpsc::UnboundedSender<CoreMsg>,
) -> Result<(), ServerError> {
    let me = u64::from(config.server_id);
    let Some(spec) = config.servers.iter().find(|s| s.id == me) else {
        return Err(ServerError::Io(std::io::Error::other(format!(
            "myid {me} names no server.N line"
        ))));
    };
    let listener = TcpListener::bind(("0.0.0.0", spec.quorum_port)).await?;
    tracing::info!(
        myid = me,
        port = spec.quorum_port,
        "serving the quorum port (Zab and leader election over gRPC)"
    );
    if config.quorum_auth.is_some() {
        tracing::info!("quorum links are authenticated (quorum.auth.enableSasl)");
    }
    let members = peer_members(&config.servers, me);
    let tls = match &config.quorum_tls {
        Some(settings) => {
            let (server, client) = crate::tls::peer_configs(settings)?;
            tracing::info!("quorum links use TLS (sslQuorum)");
            Some(zk_peer::PeerTls { server, client })
        }
        None => None,
    };
    let (events_tx, mut events_rx) = mpsc::unbounded_channel();
    let net = zk_peer::Network::start(
        zk_peer::NetConfig {
            me,
            members,
            ensemble: ensemble_digest(config),
            auth: config.quorum_auth.clone(),
            accept_unknown: config.reconfig_enabled,
            tls,
        },
        listener,
        events_tx,
    );
    tokio::spawn(async move {
        while let Some(e) = events_rx.recv().await {
            if to_core.send(CoreMsg::Peer(e)).is_err() {
                break;
            }
        }
    });
    let peer_config = PeerConfig {
        me,
        quorum: config.quorum(),
        members: config.servers.iter().map(|s| s.id).collect(),
        tick_ms: u64::from(config.tick_time_ms),
        init_limit: config.init_limit,
        sync_limit: config.sync_limit,
        election: Timing::default(),
        zxid_counter_max: u32::MAX,
        config_version,
    };
    // Every member shows the ensemble in /zookeeper/config, as ZooKeeper does.
    // (After a reconfiguration, `config` already holds the saved servers.)
    let text = config.ensemble_config_text(config_version);
    core.tree
        .set_config(text.as_bytes(), crate::core::wall_ms());
    let mut out = Vec::new();
    let peer = Peer::new(peer_config, durable, 0, &mut out);
    let mut replica = Replica::new(peer, net, dirs.snap_dir.clone(), tree_config(config));
    replica.observer = spec.observer;
    core.set_replica(replica, out);
    Ok(())
}
