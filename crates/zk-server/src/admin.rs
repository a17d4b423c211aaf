//! The AdminServer (ZooKeeper's Jetty `/commands`), over axum: every command as JSON under
//! `/commands/<name>` with ZooKeeper's names and aliases, Prometheus text at `/metrics`,
//! `/healthz` (process up) and `/readyz` (serving clients) for orchestrators, and the web
//! console at `/ui` ([`crate::console`]).
//!
//! Handlers ask the core for its state through the same channel clients use, so an answer
//! is a consistent view of one moment.

use std::future::Future;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use crate::core::CoreMsg;

/// Every command (primary name first) and its aliases, as ZooKeeper's `Commands` lists them.
pub const COMMANDS: &[&[&str]] = &[
    &["configuration", "conf", "config"],
    &["connection_stat_reset", "crst"],
    &["connections", "cons"],
    &["dirs"],
    &["dump"],
    &["backup"],
    &["big_families", "bigf"],
    &["environment", "env", "envi"],
    &["expirations"],
    &["get_trace_mask", "gtmk"],
    &["hash"],
    &["histograms", "hist"],
    &["hot_paths", "hotp"],
    &["initial_configuration", "icfg"],
    &["is_read_only", "isro"],
    &["last_snapshot", "lsnp"],
    &["leader", "lead"],
    &["memory", "mem"],
    &["monitor", "mntr"],
    &["observer_connection_stat_reset", "orst"],
    &["observers", "obsr"],
    &["ruok"],
    &["server_stats", "srvr"],
    &["session_rates", "sesr"],
    &["stat_reset", "srst"],
    &["stats", "stat"],
    &["system_properties", "sysp"],
    &["voting_view"],
    &["watch_summary", "wchs"],
    &["watches", "wchc"],
    &["watches_by_path", "wchp"],
    &["zabstate"],
];

/// The primary name of a command or alias.
pub fn primary_name(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|names| names.contains(&name))
        .map(|names| names[0])
}

#[derive(Clone)]
struct AppState {
    to_core: mpsc::UnboundedSender<CoreMsg>,
    /// `superDigest` (`user:base64(sha1(user:password))`), which mutating commands need.
    super_digest: Option<String>,
}

/// Commands that change the server; the others only read.
const MUTATING: &[&str] = &[
    "handoff",
    "stat_reset",
    "connection_stat_reset",
    "observer_connection_stat_reset",
];

/// Whether a mutating command may run: authenticated as the super user
/// (`Authorization: digest super:PASSWORD`, checked against `superDigest`) when one is
/// configured; otherwise only from the server's own host. Only the socket's address
/// counts: `X-Forwarded-For` and the like are never trusted (CVE-2024-51504).
fn may_mutate(
    state: &AppState,
    peer: std::net::SocketAddr,
    headers: &axum::http::HeaderMap,
) -> Result<(), &'static str> {
    match &state.super_digest {
        Some(expected) => {
            let credential = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("digest "))
                .map(str::trim);
            match credential {
                Some(c) if zk_tree::acl::digest_id(c) == *expected => Ok(()),
                _ => Err("needs the super user: Authorization: digest super:PASSWORD"),
            }
        }
        None if peer.ip().is_loopback() => Ok(()),
        None => Err("only from the server's own host (or as the super user, once a superDigest is configured)"),
    }
}

async fn ask(state: &AppState, command: &'static str) -> Option<Value> {
    ask_with(state, command, Vec::new()).await
}

async fn ask_with(
    state: &AppState,
    command: &'static str,
    args: Vec<(String, String)>,
) -> Option<Value> {
    let (tx, rx) = oneshot::channel();
    state
        .to_core
        .send(CoreMsg::Admin {
            command,
            args,
            reply: tx,
        })
        .ok()?;
    rx.await.ok()
}

async fn command(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    Path(name): Path<String>,
    Query(args): Query<Vec<(String, String)>>,
) -> Response {
    let Some(primary) = primary_name(&name) else {
        let body = json!({"command": name, "error": "Unknown command: ".to_owned() + &name});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    };
    if MUTATING.contains(&primary) {
        if let Err(e) = may_mutate(&state, peer, &headers) {
            let body = json!({"command": primary, "error": e});
            return (StatusCode::FORBIDDEN, Json(body)).into_response();
        }
    }
    match ask_with(&state, primary, args).await {
        Some(mut v) => {
            if let Some(o) = v.as_object_mut() {
                o.insert("command".into(), json!(primary));
                o.entry("error").or_insert(Value::Null);
            }
            Json(v).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "server stopping").into_response(),
    }
}

/// `/commands/handoff?to=N` (zkd's own, GET or POST): the leader hands leadership to
/// server N before maintenance, without an election. It changes the ensemble, so it is a
/// mutating command ([`may_mutate`]).
async fn handoff(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    if let Err(e) = may_mutate(&state, peer, &headers) {
        let body = json!({"command": "handoff", "error": e});
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    let Some(to) = params.get("to").and_then(|v| v.parse::<u64>().ok()) else {
        let body = json!({"command": "handoff", "error": "give the server id: handoff?to=N"});
        return (StatusCode::BAD_REQUEST, Json(body)).into_response();
    };
    let (tx, rx) = oneshot::channel();
    if state
        .to_core
        .send(CoreMsg::Handoff { to, reply: tx })
        .is_err()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "server stopping").into_response();
    }
    match rx.await {
        Ok(Ok(())) => Json(json!({"command": "handoff", "to": to, "error": null})).into_response(),
        Ok(Err(e)) => (
            StatusCode::CONFLICT,
            Json(json!({"command": "handoff", "to": to, "error": e})),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "server stopping").into_response(),
    }
}

async fn index() -> Html<String> {
    let mut s = String::from("<html><body><ul>\n");
    for names in COMMANDS {
        s.push_str(&format!(
            "<li><a href=\"/commands/{0}\">{0}</a></li>\n",
            names[0]
        ));
    }
    s.push_str("</ul></body></html>\n");
    Html(s)
}

async fn metrics(State(state): State<AppState>) -> Response {
    match ask(&state, "monitor").await {
        Some(v) => {
            let mut text = String::new();
            if let Some(o) = v.as_object() {
                for (k, val) in o {
                    if let Some(n) = val.as_f64() {
                        text.push_str(&format!("# TYPE {k} gauge\n{k} {n}\n"));
                    }
                }
            }
            if let Some(extra) = ask(&state, "__prometheus").await {
                text.push_str(extra["text"].as_str().unwrap_or_default());
            }
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "server stopping").into_response(),
    }
}

/// Ready when the server serves clients: standalone, or an ensemble member with a leader.
async fn readyz(State(state): State<AppState>) -> Response {
    match ask(&state, "__ready").await {
        Some(v) if v["ready"] == json!(true) => (StatusCode::OK, "ready\n").into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "not serving\n").into_response(),
    }
}

/// Serves the AdminServer on `listener` until `shutdown` completes. Mutating commands
/// need the super user of `super_digest` when one is given, else the server's own host.
/// With `tls` (`admin.forceHttps`) every connection is HTTPS, and a client certificate's
/// identity reaches the web console ([`crate::console::TlsIdentities`]).
pub async fn serve(
    listener: TcpListener,
    to_core: mpsc::UnboundedSender<CoreMsg>,
    super_digest: Option<String>,
    tls: Option<crate::tls::Acceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/commands", get(index))
        .route("/commands/", get(index))
        .route("/commands/handoff", get(handoff).post(handoff))
        .route("/commands/{name}", get(command))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            to_core: to_core.clone(),
            super_digest: super_digest.clone(),
        })
        .merge(crate::console::routes(crate::console::ConsoleState {
            to_core,
            super_digest,
        }));
    let Some(tls) = tls else {
        return axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
    };
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "AdminServer accept failed");
                    continue;
                }
            },
        };
        let (tls, app) = (tls.clone(), app.clone());
        tokio::spawn(async move {
            let handshake = tls.acceptor().accept(tcp);
            let stream = match tokio::time::timeout(tls.handshake_timeout(), handshake).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(client = %peer, error = %e, "AdminServer TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let ids = crate::console::TlsIdentities(tls.identities(stream.get_ref().1));
            let app = app
                .layer(axum::extract::connect_info::MockConnectInfo(peer))
                .layer(axum::Extension(ids));
            let service = hyper_util::service::TowerToHyperService::new(app);
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(client = %peer, error = %e, "AdminServer connection ended");
            }
        });
    }
}

/// The Prometheus lines beyond `monitor`'s gauges: the timing histograms, memory by
/// subsystem, and the hottest paths of the last minute.
fn prometheus_extra(core: &mut crate::core::Core) -> String {
    use crate::core::introspect::histogram_prometheus;
    use std::fmt::Write;
    let mut out = String::new();
    histogram_prometheus(
        "zkd_fsync_seconds",
        &core.fsync_stats().fsync_time,
        &mut out,
    );
    let snapshot = *core
        .intro
        .snapshot_time
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    histogram_prometheus("zkd_snapshot_seconds", &snapshot, &mut out);
    histogram_prometheus("zkd_sync_seconds", &core.intro.sync_time, &mut out);
    let mem = core.memory();
    let _ = writeln!(out, "# TYPE zkd_memory_bytes gauge");
    for part in [
        "tree",
        "watches",
        "sessions",
        "connections",
        "caches",
        "in_flight",
    ] {
        let _ = writeln!(
            out,
            "zkd_memory_bytes{{subsystem=\"{part}\"}} {}",
            mem[part]["bytes"].as_u64().unwrap_or(0)
        );
    }
    let now = core.now_ms();
    let hot = core.intro.hot_paths(10, now);
    for (list, metric, field) in [
        ("by_reads", "zkd_hot_path_reads", "reads"),
        ("by_writes", "zkd_hot_path_writes", "writes"),
        (
            "by_watch_fanout",
            "zkd_hot_path_watch_events",
            "watch_events",
        ),
    ] {
        let _ = writeln!(out, "# TYPE {metric} gauge");
        for p in hot[list].as_array().into_iter().flatten() {
            let path = p["path"].as_str().unwrap_or_default();
            let escaped = path.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(out, "{metric}{{path=\"{escaped}\"}} {}", p[field]);
        }
    }
    out
}

/// The first parameter `name` that parses as a number.
fn arg(args: &[(String, String)], name: &str) -> Option<usize> {
    args.iter()
        .filter(|(k, _)| k == name)
        .find_map(|(_, v)| v.parse().ok())
}

/// `extra`'s keys added to `base` (both objects).
fn with(extra: Value, mut base: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// The big-families report as JSON; each family's `share_of_limit` is its getChildren
/// reply's share of `jute.maxbuffer` in percent.
pub(crate) fn big_families_json(r: &zk_tree::families::BigFamilies, limit: usize) -> Value {
    let family = |f: &zk_tree::families::Family| {
        json!({
            "path": f.path,
            "children": f.children,
            "children_list_bytes": f.children_list_bytes,
            "children_data_bytes": f.children_data_bytes,
            "share_of_limit": (f.children_list_bytes as f64 * 1000.0 / limit.max(1) as f64).round() / 10.0,
        })
    };
    let subtree = |t: &zk_tree::families::Subtree| json!({"path": t.path, "nodes": t.nodes, "data_bytes": t.data_bytes});
    json!({
        "znodes": r.znodes,
        "data_bytes": r.data_bytes,
        "jute_max_buffer": limit,
        "by_children": r.by_children.iter().map(family).collect::<Vec<_>>(),
        "by_children_data": r.by_children_data.iter().map(family).collect::<Vec<_>>(),
        "subtrees_by_nodes": r.subtrees_by_nodes.iter().map(subtree).collect::<Vec<_>>(),
        "subtrees_by_bytes": r.subtrees_by_bytes.iter().map(subtree).collect::<Vec<_>>(),
        "largest_nodes": r.largest_nodes.iter().map(|b| json!({
            "path": b.path,
            "data_bytes": b.data_bytes,
            "share_of_limit": (b.data_bytes as f64 * 1000.0 / limit.max(1) as f64).round() / 10.0,
        })).collect::<Vec<_>>(),
    })
}

/// The JSON answer to a command, built from the core's state (runs on the core task).
pub(crate) fn answer(
    core: &mut crate::core::Core,
    command: &str,
    args: &[(String, String)],
) -> Value {
    use crate::fourlw::VERSION;
    let c = &core.config;
    let (min, max) = c.session_timeout_bounds();
    match command {
        "ruok" => json!({}),
        "__ready" => json!({"ready": core.serving()}),
        "is_read_only" => json!({"read_only": core.read_only()}),
        "configuration" | "initial_configuration" => json!({
            "client_port": c.client_addr.port(),
            "client_port_address": c.client_addr.ip().to_string(),
            "data_dir": c.data_dir.join("version-2").display().to_string(),
            "data_log_dir": c.data_log_dir.as_ref().unwrap_or(&c.data_dir).join("version-2").display().to_string(),
            "tick_time": c.tick_time_ms,
            "max_client_cnxns": c.max_client_cnxns,
            "min_session_timeout": min,
            "max_session_timeout": max,
            "server_id": c.server_id,
            "secure_client_port": c.secure_client_addr.map(|a| a.port()),
            "secure_client_port_address": c.secure_client_addr.map(|a| a.ip().to_string()),
        }),
        "connections" => json!({
            "connections": core.connections().iter().map(|(addr, session)| json!({
                "remote_socket_address": addr.to_string(),
                "session_id": format!("0x{:x}", session.unwrap_or(0)),
            })).collect::<Vec<_>>(),
            "secure_connections": [],
        }),
        "leader" => match core.replica.as_ref() {
            Some(r) => {
                let leader = r.leader_id();
                let ip = leader
                    .and_then(|id| c.servers.iter().find(|s| s.id == id))
                    .map(|s| s.host.clone())
                    .unwrap_or_default();
                json!({
                    "is_leader": r.leading(),
                    "leader_id": leader.map_or(-1, |l| l as i64),
                    "leader_ip": ip,
                })
            }
            None => json!({"is_leader": false}),
        },
        "monitor" => with(
            core.guardrails.metrics(),
            json!({
                "version": VERSION,
                "server_state": core.mode(),
                "avg_latency": core.stats.latency.avg_ms(),
                "max_latency": core.stats.latency.max_ms,
                "min_latency": core.stats.latency.min_ms,
                "packets_received": core.stats.packets_received,
                "packets_sent": core.stats.packets_sent,
                "num_alive_connections": core.connection_count(),
                "outstanding_requests": core.outstanding(),
                "znode_count": core.tree.node_count() + 1,
                "watch_count": core.tree.watches().count(),
                "ephemerals_count": core.tree.ephemeral_count(),
                "approximate_data_size": core.tree.approximate_data_size(),
                "global_sessions": core.sessions.len(),
                "last_zxid": core.tree.last_processed_zxid(),
                "fsync_threshold_exceed_count": core.fsync_stats().slow_fsyncs,
                "session_expirations": core.expiry_log.expired_total,
                "session_expirations_deferred": core.expiry_log.deferred_total,
                "server_stalls": core.expiry_log.stalls_total,
                "sessions_extended_after_stall": core.expiry_log.extended_total,
                "watch_catchup_reconnects": core.catch_up.caught_up,
                "watch_catchup_events": core.catch_up.events,
                "watch_catchup_fallbacks": core.catch_up.fallbacks,
                "watch_catchup_retained_txns": core.tree.journal().txns(),
                "backup_lag_txns": core.backup.as_ref().map_or(-1, |b| b.status(crate::core::wall_ms()).lag_txns),
                "backup_lag_ms": core.backup.as_ref().map_or(-1, |b| b.status(crate::core::wall_ms()).lag_ms),
                "backup_failures": core.backup.as_ref().map_or(0, |b| b.status(0).failures),
                "read_barrier_reads": core.barrier_reads,
                "read_barrier_failures": core.barrier_failures,
            }),
        ),
        "hot_paths" => {
            let n = arg(args, "n").unwrap_or(10).clamp(1, 1000);
            let now = core.now_ms();
            core.intro.hot_paths(n, now)
        }
        "session_rates" => {
            let n = arg(args, "n").unwrap_or(10).clamp(1, 10_000);
            let now = core.now_ms();
            core.intro.session_rates(n, now)
        }
        "memory" => core.memory(),
        "backup" => {
            let now = crate::core::wall_ms();
            match &core.backup {
                Some(b) => serde_json::to_value(b.status(now)).unwrap_or_default(),
                None => json!({"enabled": false, "hint": "set backup.dir to a directory"}),
            }
        }
        "histograms" => {
            use crate::core::introspect::histogram_json;
            let snapshot = *core
                .intro
                .snapshot_time
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            json!({
                "fsync": histogram_json(&core.fsync_stats().fsync_time),
                "snapshot": histogram_json(&snapshot),
                "sync": histogram_json(&core.intro.sync_time),
            })
        }
        "__prometheus" => json!({"text": prometheus_extra(core)}),
        "__ensemble" => match core.replica.as_ref() {
            Some(r) => json!({
                "mode": r.mode(),
                "myid": c.server_id,
                "leader_id": r.leader_id(),
                "last_zxid": format!("0x{:x}", core.tree.last_processed_zxid()),
                "servers": c.servers.iter().map(|s| json!({
                    "id": s.id, "host": s.host, "observer": s.observer,
                    "client_port": s.client_port,
                })).collect::<Vec<_>>(),
                "followers": r.peer.follower_progress().into_iter().map(|(id, synced, unacked, heard)| json!({
                    "id": id, "synced": synced, "unacked_proposals": unacked, "last_heard_ms_ago": heard,
                })).collect::<Vec<_>>(),
            }),
            None => json!({"mode": "standalone", "myid": c.server_id,
                           "last_zxid": format!("0x{:x}", core.tree.last_processed_zxid())}),
        },
        "big_families" => {
            let n = arg(args, "n").unwrap_or(10).clamp(1, 1000);
            big_families_json(&core.tree.big_families(n), c.jute_max_buffer)
        }
        "server_stats" | "stats" => json!({
            "version": VERSION,
            "server_stats": {
                "packets_sent": core.stats.packets_sent,
                "packets_received": core.stats.packets_received,
                "num_alive_client_connections": core.connection_count(),
                "outstanding_requests": core.outstanding(),
                "server_state": core.mode(),
                "last_processed_zxid": core.tree.last_processed_zxid(),
                "data_dir_size": 0,
                "log_dir_size": 0,
            },
            "node_count": core.tree.node_count() + 1,
            "client_response": {},
        }),
        "watch_summary" => {
            let by_watcher = core.tree.watches().by_watcher();
            json!({
                "num_connections": by_watcher.len(),
                "num_paths": core.tree.watches().by_path().len(),
                "num_total_watches": core.tree.watches().count(),
            })
        }
        "watches" => json!({
            "session_id_to_watched_paths": core.tree.watches().by_watcher().into_iter()
                .map(|(w, paths)| (format!("0x{:x}", w.0), json!(paths)))
                .collect::<serde_json::Map<String, Value>>(),
        }),
        "watches_by_path" => json!({
            "path_to_session_ids": core.tree.watches().by_path().into_iter()
                .map(|(p, ws)| (p, json!(ws.into_iter().map(|w| format!("0x{:x}", w.0)).collect::<Vec<_>>())))
                .collect::<serde_json::Map<String, Value>>(),
        }),
        "dump" => json!({
            "expiry_time_to_session_ids": {},
            "session_id_to_ephemeral_paths": core.tree.ephemerals().iter()
                .map(|(s, paths)| (format!("0x{s:x}"), json!(paths)))
                .collect::<serde_json::Map<String, Value>>(),
        }),
        "environment" | "system_properties" => json!({
            "zookeeper.version": VERSION,
            "os.name": std::env::consts::OS,
            "os.arch": std::env::consts::ARCH,
        }),
        "dirs" => json!({"datadir_size": 0, "logdir_size": 0}),
        "expirations" => core.expiry_log.to_json(),
        "hash" => {
            json!({"digests": [{"zxid": core.tree.last_processed_zxid(), "digest": core.tree.digest()}]})
        }
        "last_snapshot" => json!({"zxid": "0x0", "timestamp": 0}),
        "get_trace_mask" => json!({"tracemask": 306}),
        "stat_reset" => {
            core.stats = Default::default();
            json!({})
        }
        "connection_stat_reset" | "observer_connection_stat_reset" => json!({}),
        "observers" => json!({"synced_observers": 0, "observers": []}),
        "voting_view" => {
            let view: serde_json::Map<String, Value> = c
                .servers
                .iter()
                .filter(|s| !s.observer)
                .map(|s| {
                    let line = s.config_line();
                    let value = line.split_once('=').map_or("", |(_, v)| v).to_owned();
                    (s.id.to_string(), json!(value))
                })
                .collect();
            json!({ "current_config": view })
        }
        "zabstate" => match core.replica.as_ref() {
            Some(r) => {
                let me = c.servers.iter().find(|s| s.id == u64::from(c.server_id));
                let zxid = core.tree.last_processed_zxid();
                json!({
                    "myid": c.server_id,
                    "is_leader": r.leading(),
                    "quorum_address": me.map(|s| format!("{}:{}", s.host, s.quorum_port)),
                    "election_address": me.map(|s| format!("{}:{}", s.host, s.election_port)),
                    "client_address": c.client_addr.to_string(),
                    "voting": me.is_some_and(|s| !s.observer),
                    "last_zxid": format!("0x{zxid:x}"),
                    "zab_epoch": zxid >> 32,
                    "zab_counter": zxid & 0xffff_ffff,
                    "zabstate": r.zab_state(),
                })
            }
            None => json!({"voting": false, "zabstate": ""}),
        },
        other => json!({"error": format!("Unknown command: {other}")}),
    }
}
