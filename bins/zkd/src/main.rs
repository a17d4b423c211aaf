//! `zkd`: runs a standalone ZooKeeper-compatible server in the foreground.
//!
//! `zkd` alone serves on the embedded defaults (client port 2181, data in `./zkd-data`);
//! `zkd --config zoo.cfg` reads a standard ZooKeeper configuration; `-D` properties in
//! `SERVER_JVMFLAGS` are honoured as `zkServer.sh` users set them. SIGTERM and SIGINT stop
//! it cleanly.

/// jemalloc rather than glibc's malloc: under load the core, the connections and the log
/// writer allocate on one thread and free on another, and glibc's arenas then contend on a
/// lock (perf: about 15% of zkd's CPU under setData in malloc and its lock waits). Its
/// options are compiled in from `.cargo/config.toml` (`JEMALLOC_SYS_WITH_MALLOC_CONF`);
/// `_RJEM_MALLOC_CONF` in the environment overrides them.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use zk_server::config::Config;

#[derive(Debug, Parser)]
#[command(name = "zkd", version, about = "A ZooKeeper-compatible server")]
struct Cli {
    /// A zoo.cfg (Java properties) file, or zkd's TOML (`*.toml`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long)]
    log_json: bool,
    /// Take this member's id from the host name's StatefulSet ordinal plus OFFSET (default
    /// 1: pod `zk-0` is server.1), so one configuration serves every pod.
    #[arg(long, value_name = "OFFSET", num_args = 0..=1, default_missing_value = "1")]
    myid_from_ordinal: Option<u64>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks a configuration file and exits.
    CheckConfig { file: PathBuf },
    /// Lists the txns of a txn log file (like ZooKeeper's TxnLogToolkit).
    DumpLog { file: PathBuf },
    /// Prints a snapshot file (like ZooKeeper's SnapshotFormatter).
    DumpSnapshot {
        file: PathBuf,
        /// Include node data (base64).
        #[arg(short = 'd', long)]
        data: bool,
        /// ncdu-style JSON, as `SnapshotFormatter -json`.
        #[arg(long)]
        json: bool,
    },
    /// Per-subtree znode counts and data bytes of a snapshot, to a depth.
    SummarizeSnapshot {
        file: PathBuf,
        #[arg(long, default_value_t = 2)]
        depth: usize,
    },
    /// Differences between two snapshots; exits 1 when they differ.
    CompareSnapshots { a: PathBuf, b: PathBuf },
    /// Copies a txn log to FILE.fixed, recomputing bad checksums of records that still
    /// decode (like `TxnLogToolkit -r`).
    RecoverLog { file: PathBuf },
    /// Deletes old snapshots and logs of the configured data dir, keeping COUNT snapshots
    /// (at least 3) and the logs needed to replay them.
    Purge {
        #[arg(long, default_value_t = 3)]
        count: usize,
    },
    /// Asks the local AdminServer whether this server is ready (`/readyz`: serving, in a
    /// quorum) or alive (`/healthz`); exits 0 if so. For container health checks, where
    /// there is no curl.
    Probe {
        #[arg(value_enum, default_value_t = ProbeKind::Ready)]
        kind: ProbeKind,
        /// The AdminServer's address; by default the configuration's, on loopback.
        #[arg(long, value_name = "HOST:PORT")]
        admin: Option<String>,
        #[arg(long, default_value_t = 3000)]
        timeout_ms: u64,
    },
    /// Talks to a running server's AdminServer.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

/// How `zkd admin` reaches the AdminServer.
#[derive(Debug, clap::Args)]
struct AdminConn {
    /// The AdminServer's address; by default the configuration's, on loopback.
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<String>,
    /// The super user's password, when the server has a `superDigest` (mutating commands
    /// need it then); sent as `Authorization: digest super:PASSWORD`.
    #[arg(long, value_name = "PASSWORD", env = "ZKD_SUPER_PASSWORD")]
    super_password: Option<String>,
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Debug, Subcommand)]
enum AdminAction {
    /// Hands leadership to server N before maintenance, without an election (ask the
    /// leader; `/commands/leader` names it).
    TransferLeadership {
        #[arg(long, value_name = "N")]
        to: u64,
        #[command(flatten)]
        conn: AdminConn,
    },
    /// Prints any AdminServer command's JSON (`monitor`, `hot_paths?n=5`, `memory`, ...).
    Command {
        name: String,
        #[command(flatten)]
        conn: AdminConn,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProbeKind {
    Ready,
    Live,
}

/// The AdminServer to talk to: `--admin HOST:PORT`, else the configuration's, on loopback
/// when it listens on every address.
fn admin_target(admin: Option<&str>, config: Option<&PathBuf>) -> Result<String, String> {
    match admin {
        Some(a) => Ok(a.to_owned()),
        None => {
            let c = load(config)?;
            let mut addr = c.admin_addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            Ok(addr.to_string())
        }
    }
}

/// One HTTP/1.0 request to the AdminServer (there is no curl in the container image):
/// the status line and the body.
fn admin_http(
    target: &str,
    method: &str,
    path: &str,
    authorization: Option<&str>,
    timeout_ms: u64,
) -> std::io::Result<(String, String)> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_millis(timeout_ms.max(1));
    let addr = target
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {target}\r\nContent-Length: 0\r\n{auth}\r\n"
    )?;
    let mut reply = Vec::new();
    stream.take(16 << 20).read_to_end(&mut reply)?;
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply.lines().next().unwrap_or_default().to_owned();
    let body = reply
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim()
        .to_owned();
    Ok((status, body))
}

/// Prints an AdminServer answer; 0 when it was 200.
fn admin_outcome(target: &str, path: &str, r: std::io::Result<(String, String)>) -> ExitCode {
    match r {
        Ok((status, body)) if status.split_whitespace().nth(1) == Some("200") => {
            println!("{body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("zkd: {target}{path}: {status} {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("zkd: {target}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `zkd probe`: one HTTP GET to the AdminServer; 0 when it answers 200.
fn probe(
    kind: ProbeKind,
    admin: Option<&str>,
    timeout_ms: u64,
    config: Option<&PathBuf>,
) -> ExitCode {
    let target = match admin_target(admin, config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zkd: {e}");
            return ExitCode::from(2);
        }
    };
    let path = match kind {
        ProbeKind::Ready => "/readyz",
        ProbeKind::Live => "/healthz",
    };
    let r = admin_http(&target, "GET", path, None, timeout_ms);
    admin_outcome(&target, path, r)
}

/// Runs `zkd admin ...` against a running server's AdminServer.
fn admin(action: &AdminAction, config: Option<&PathBuf>) -> ExitCode {
    let (admin, password, timeout_ms) = match action {
        AdminAction::TransferLeadership { conn, .. } | AdminAction::Command { conn, .. } => (
            conn.admin.as_deref(),
            conn.super_password.as_deref(),
            conn.timeout_ms,
        ),
    };
    let target = match admin_target(admin, config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("zkd: {e}");
            return ExitCode::from(2);
        }
    };
    let auth = password.map(|p| format!("digest super:{p}"));
    let (method, path) = match action {
        AdminAction::TransferLeadership { to, .. } => {
            ("POST", format!("/commands/handoff?to={to}"))
        }
        AdminAction::Command { name, .. } => ("GET", format!("/commands/{name}")),
    };
    let r = admin_http(&target, method, &path, auth.as_deref(), timeout_ms);
    admin_outcome(&target, &path, r)
}

/// Runs an offline tool; the exit code says whether it found the input sound.
fn tool(command: &Command, config: Option<&PathBuf>) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let result: Result<bool, String> = match command {
        Command::CheckConfig { .. } | Command::Probe { .. } | Command::Admin { .. } => {
            unreachable!("handled before")
        }
        Command::DumpLog { file } => zk_log::tools::dump_log(file, &mut out)
            .map(|d| matches!(d.end, zk_log::txnlog::LogEnd::Clean { .. }))
            .map_err(|e| e.to_string()),
        Command::DumpSnapshot { file, data, json } => {
            zk_log::tools::dump_snapshot(file, &mut out, *data, *json)
                .map(|_| true)
                .map_err(|e| e.to_string())
        }
        Command::SummarizeSnapshot { file, depth } => {
            zk_log::tools::summarize_snapshot(file, *depth, &mut out)
                .map(|_| true)
                .map_err(|e| e.to_string())
        }
        Command::CompareSnapshots { a, b } => zk_log::tools::compare_snapshots(a, b, &mut out)
            .map(|n| n == 0)
            .map_err(|e| e.to_string()),
        Command::RecoverLog { file } => {
            let fixed = zk_log::tools::fixed_log_path(file);
            zk_log::tools::recover_log(file, &fixed, &mut out)
                .map(|r| r.stopped.is_none())
                .map_err(|e| e.to_string())
        }
        Command::Purge { count } => load(config).and_then(|c| {
            let dirs = zk_log::DataDirs::new(&c.data_dir, c.data_log_dir.as_deref());
            let removed = zk_log::purge::purge(&zk_log::FsStorage, &dirs, *count)
                .map_err(|e| e.to_string())?;
            for f in &removed {
                println!("removed {}", f.display());
            }
            println!("{} files removed", removed.len());
            Ok(true)
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("zkd: {e}");
            ExitCode::from(2)
        }
    }
}

/// The configuration: `--config FILE` (zoo.cfg, or TOML by extension), else
/// `$ZOO_CONF_DIR/zoo.cfg` (or `$ZOOCFGDIR/zoo.cfg`) when it exists, as the official
/// Docker image and zkServer.sh find it, else the official image's `ZOO_*` variables when
/// any is set, else the embedded defaults.
fn load(path: Option<&PathBuf>) -> Result<Config, String> {
    // zkServer.sh passes "$SERVER_JVMFLAGS $JVMFLAGS" to the JVM: the later one wins.
    let jvm = format!(
        "{} {}",
        std::env::var("SERVER_JVMFLAGS").unwrap_or_default(),
        std::env::var("JVMFLAGS").unwrap_or_default()
    );
    let system = Config::system_properties(&jvm);
    let conf_dir_file = || {
        ["ZOO_CONF_DIR", "ZOOCFGDIR"]
            .iter()
            .filter_map(std::env::var_os)
            .map(|d| PathBuf::from(d).join("zoo.cfg"))
            .find(|f| f.is_file())
    };
    match path.cloned().or_else(conf_dir_file) {
        Some(p) => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("cannot read config {}: {e}", p.display()))?;
            Config::from_file_text(&p.to_string_lossy(), &text, &system)
                .map_err(|e| format!("{}: {e}", p.display()))
        }
        None => {
            let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
            let props = Config::properties_from_docker_env(&env).unwrap_or_default();
            Config::from_properties(&props, &system).map_err(|e| e.to_string())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if cli.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        // Colours only on a terminal: not in `docker logs`, the journal or a log file.
        tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .init();
    }
    if let Some(Command::CheckConfig { file }) = &cli.command {
        // The TLS stores are read too: a bad store is a configuration error.
        let checked = load(Some(file)).and_then(|c| {
            if c.secure_client_addr.is_some() || c.port_unification {
                zk_server::tls::server_config(&c.tls)
                    .map_err(|e| format!("{}: {e}", file.display()))?;
            }
            Ok(c)
        });
        return match checked {
            Ok(c) => {
                for k in &c.ignored_keys {
                    println!("note: {k} is accepted but not used by zkd");
                }
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Probe {
        kind,
        admin,
        timeout_ms,
    }) = &cli.command
    {
        return probe(*kind, admin.as_deref(), *timeout_ms, cli.config.as_ref());
    }
    if let Some(Command::Admin { action }) = &cli.command {
        return admin(action, cli.config.as_ref());
    }
    if let Some(command) = &cli.command {
        return tool(command, cli.config.as_ref());
    }
    let mut config = match load(cli.config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zkd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(offset) = cli.myid_from_ordinal {
        let hostname = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .unwrap_or_default();
        if let Err(e) = config.set_my_id_from_ordinal(&hostname, offset) {
            eprintln!("zkd: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(e) = config.load_my_id(std::env::var("ZOO_MY_ID").ok().as_deref()) {
        eprintln!("zkd: {e}");
        return ExitCode::FAILURE;
    }
    for k in &config.ignored_keys {
        tracing::warn!(key = %k, "configuration key accepted but not used");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zkd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.client_addr)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.client_addr))?;
        // Like ZooKeeper, a server whose AdminServer cannot start still serves clients.
        let admin = if config.admin_enabled {
            match tokio::net::TcpListener::bind(config.admin_addr).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(addr = %config.admin_addr, error = %e, "cannot start the AdminServer");
                    None
                }
            }
        } else {
            None
        };
        let secure = match config.secure_client_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr} (secureClientPort): {e}"))?,
            ),
            None => None,
        };
        let listeners = zk_server::Listeners {
            client: Some(listener),
            secure,
            admin,
        };
        zk_server::run_with_listeners(config, listeners, shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zkd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
