//! Four-letter words (`FourLetterCommands`): text answers on the client port, gated by
//! `4lw.commands.whitelist` exactly as ZooKeeper gates them.

use std::fmt::Write;

use zk_proto::FourLetterWord;

use crate::core::{java_double, Core};

/// The version string `srvr`, `stat`, `envi` and `mntr` report.
pub const VERSION: &str = concat!("3.9.0-zkd-", env!("CARGO_PKG_VERSION"), ", built on zkd");

/// ZooKeeper's default trace mask (what `gtmk` shows on a fresh server).
const TRACE_MASK_DEFAULT: i64 = 306;

/// The full text answer to a four-letter word.
pub fn answer(core: &mut Core, word: FourLetterWord) -> String {
    let name = word.name();
    if !core.config.four_letter_word_allowed(name) {
        return format!("{name} is not executed because it is not in the whitelist.\n");
    }
    let mut out = String::new();
    match word {
        FourLetterWord::Ruok => out.push_str("imok"),
        FourLetterWord::Isro => out.push_str(if core.read_only() { "ro" } else { "rw" }),
        FourLetterWord::Srvr => server_stats(core, &mut out, false),
        FourLetterWord::Stat => server_stats(core, &mut out, true),
        FourLetterWord::Mntr => monitor(core, &mut out),
        FourLetterWord::Conf => conf(core, &mut out),
        FourLetterWord::Envi => {
            let _ = writeln!(out, "Environment:");
            let _ = writeln!(out, "zookeeper.version={VERSION}");
            let _ = writeln!(out, "host.name={}", hostname());
            let _ = writeln!(out, "os.name={}", std::env::consts::OS);
            let _ = writeln!(out, "os.arch={}", std::env::consts::ARCH);
            let _ = writeln!(
                out,
                "user.dir={}",
                std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default()
            );
        }
        FourLetterWord::Wchs => {
            let by_watcher = core.tree.watches().by_watcher();
            let paths = core.tree.watches().by_path().len();
            let _ = writeln!(
                out,
                "{} connections watching {} paths",
                by_watcher.len(),
                paths
            );
            let _ = writeln!(out, "Total watches:{}", core.tree.watches().count());
        }
        FourLetterWord::Wchc => {
            for (w, paths) in core.tree.watches().by_watcher() {
                let _ = writeln!(out, "0x{:x}", w.0);
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
        }
        FourLetterWord::Wchp => {
            for (p, watchers) in core.tree.watches().by_path() {
                let _ = writeln!(out, "{p}");
                for w in watchers {
                    let _ = writeln!(out, "\t0x{:x}", w.0);
                }
            }
        }
        FourLetterWord::Dump => {
            let _ = writeln!(out, "SessionTracker dump:");
            let _ = writeln!(out, "Session Sets ({}):", core.sessions.len());
            for s in core.sessions.iter() {
                let _ = writeln!(out, "\t0x{:x}", s.id);
            }
            let _ = writeln!(out, "ephemeral nodes dump:");
            let _ = writeln!(
                out,
                "Sessions with Ephemerals ({}):",
                core.tree.ephemerals().len()
            );
            for (session, paths) in core.tree.ephemerals() {
                let _ = writeln!(out, "0x{session:x}:");
                for p in paths {
                    let _ = writeln!(out, "\t{p}");
                }
            }
        }
        FourLetterWord::Cons => {
            clients(core, &mut out);
            let _ = writeln!(out);
        }
        FourLetterWord::Dirs => {
            let data = dir_size(&core.config.data_dir);
            let log = core.config.data_log_dir.as_deref().map_or(data, dir_size);
            let _ = writeln!(out, "datadir_size: {data}");
            let _ = writeln!(out, "logdir_size: {log}");
        }
        FourLetterWord::Crst => out.push_str("Connection stats reset.\n"),
        FourLetterWord::Srst => {
            core.stats = Default::default();
            out.push_str("Server stats reset.\n");
        }
        FourLetterWord::Gtmk | FourLetterWord::Stmk => {
            let _ = writeln!(out, "{TRACE_MASK_DEFAULT}");
        }
        FourLetterWord::Hash => {
            let _ = writeln!(out, "Digests in history: 1");
            let _ = writeln!(
                out,
                "{:x}: {}",
                core.tree.last_processed_zxid(),
                core.tree.digest()
            );
        }
    }
    out
}

/// One line per connection, as `cons` and `stat` list them.
fn clients(core: &Core, out: &mut String) {
    for (addr, session) in core.connections() {
        let _ = writeln!(
            out,
            " /{addr}[1](queued=0,sid=0x{:x})",
            session.unwrap_or(0)
        );
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("version-2"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn server_stats(core: &Core, out: &mut String, with_clients: bool) {
    let _ = writeln!(out, "Zookeeper version: {VERSION}");
    if with_clients {
        let _ = writeln!(out, "Clients:");
        clients(core, out);
        let _ = writeln!(out);
    }
    let l = &core.stats.latency;
    let _ = writeln!(
        out,
        "Latency min/avg/max: {}/{}/{}",
        l.min_ms,
        java_double(l.avg_ms()),
        l.max_ms
    );
    let _ = writeln!(out, "Received: {}", core.stats.packets_received);
    let _ = writeln!(out, "Sent: {}", core.stats.packets_sent);
    let _ = writeln!(out, "Connections: {}", core.connection_count());
    let _ = writeln!(out, "Outstanding: {}", core.outstanding());
    let _ = writeln!(out, "Zxid: 0x{:x}", core.tree.last_processed_zxid());
    let _ = writeln!(out, "Mode: {}", core.mode());
    // ZooKeeper counts the root twice (under "" and "/").
    let _ = writeln!(out, "Node count: {}", core.tree.node_count() + 1);
}

fn monitor(core: &Core, out: &mut String) {
    let l = &core.stats.latency;
    let mut rows: Vec<(&str, String)> = vec![
        ("zk_version", VERSION.to_owned()),
        ("zk_server_state", core.mode().to_owned()),
        ("zk_avg_latency", java_double(l.avg_ms())),
        ("zk_max_latency", l.max_ms.to_string()),
        ("zk_min_latency", l.min_ms.to_string()),
        (
            "zk_packets_received",
            core.stats.packets_received.to_string(),
        ),
        ("zk_packets_sent", core.stats.packets_sent.to_string()),
        (
            "zk_num_alive_connections",
            core.connection_count().to_string(),
        ),
        ("zk_outstanding_requests", core.outstanding().to_string()),
        ("zk_znode_count", (core.tree.node_count() + 1).to_string()),
        ("zk_watch_count", core.tree.watches().count().to_string()),
        (
            "zk_ephemerals_count",
            core.tree.ephemeral_count().to_string(),
        ),
        (
            "zk_approximate_data_size",
            core.tree.approximate_data_size().to_string(),
        ),
        ("zk_global_sessions", core.sessions.len().to_string()),
        ("zk_last_proposal_size", "-1".to_owned()),
        (
            "zk_fsync_threshold_exceed_count",
            core.fsync_stats().slow_fsyncs.to_string(),
        ),
    ];
    if let Some(r) = core.replica.as_ref().filter(|r| r.leading()) {
        // A leader's extra rows, as ZooKeeper's: its learners and the synced voters.
        let synced = r.peer.synced_followers();
        let voters = synced
            .iter()
            .filter(|id| {
                core.config
                    .servers
                    .iter()
                    .any(|s| s.id == **id && !s.observer)
            })
            .count();
        rows.push(("zk_learners", synced.len().to_string()));
        rows.push(("zk_synced_followers", voters.to_string()));
        rows.push((
            "zk_synced_non_voting_followers",
            (synced.len() - voters).to_string(),
        ));
    }
    for (k, v) in rows {
        let _ = writeln!(out, "{k}\t{v}");
    }
    for (name, l) in [
        ("updatelatency", &core.stats.update_latency),
        ("readlatency", &core.stats.read_latency),
    ] {
        let _ = writeln!(out, "zk_avg_{name}\t{}", java_double(l.avg_ms()));
        let _ = writeln!(out, "zk_min_{name}\t{}", l.min_ms);
        let _ = writeln!(out, "zk_max_{name}\t{}", l.max_ms);
        let _ = writeln!(out, "zk_cnt_{name}\t{}", l.count);
        let _ = writeln!(out, "zk_sum_{name}\t{}", l.total_ms);
        for (q, label) in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (0.999, "p999")] {
            let _ = writeln!(out, "zk_{label}_{name}\t{}", l.quantile_ms(q));
        }
    }
}

fn conf(core: &Core, out: &mut String) {
    let c = &core.config;
    let (min, max) = c.session_timeout_bounds();
    let _ = writeln!(out, "clientPort={}", c.client_addr.port());
    let _ = writeln!(out, "clientPortAddress={}", c.client_addr.ip());
    if let Some(secure) = c.secure_client_addr {
        let _ = writeln!(out, "secureClientPort={}", secure.port());
        let _ = writeln!(out, "secureClientPortAddress={}", secure.ip());
    }
    let _ = writeln!(out, "dataDir={}", c.data_dir.join("version-2").display());
    let _ = writeln!(out, "dataDirSize={}", dir_size(&c.data_dir));
    let log_dir = c.data_log_dir.as_ref().unwrap_or(&c.data_dir);
    let _ = writeln!(out, "dataLogDir={}", log_dir.join("version-2").display());
    let _ = writeln!(out, "dataLogSize={}", dir_size(log_dir));
    let _ = writeln!(out, "tickTime={}", c.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", c.max_client_cnxns);
    let _ = writeln!(out, "minSessionTimeout={min}");
    let _ = writeln!(out, "maxSessionTimeout={max}");
    let _ = writeln!(out, "clientPortListenBacklog=-1");
    let _ = writeln!(out, "serverId={}", c.server_id);
}

#[cfg(test)]
mod tests {
    use crate::core::{java_double, Latency};

    #[test]
    fn averages_print_as_java_doubles() {
        for (v, s) in [
            (0.0, "0.0"),
            (3.9777, "3.9777"),
            (2.0, "2.0"),
            (12.5, "12.5"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (0.00025, "2.5E-4"),
            (12_345_678.0, "1.2345678E7"),
        ] {
            assert_eq!(java_double(v), s, "{v}");
        }
    }

    #[test]
    fn latency_keeps_min_max_and_a_rounded_mean() {
        let mut l = Latency::default();
        assert_eq!((l.min_ms, l.avg_ms(), l.max_ms), (0, 0.0, 0));
        for ms in [3, 1, 2] {
            l.record(ms);
        }
        assert_eq!((l.min_ms, l.max_ms, l.count, l.total_ms), (1, 3, 3, 6));
        l.record(0);
        l.record(0);
        l.record(1);
        assert_eq!(l.avg_ms(), 1.1667);
        assert_eq!(java_double(l.avg_ms()), "1.1667");
        // 0 0 1 1 2 3: exact buckets below 4 ms.
        assert_eq!(l.quantile_ms(0.5), 1);
        assert_eq!(l.quantile_ms(0.99), 3);
        // Above that, a quantile is its bucket's bound, never more than the largest seen.
        for _ in 0..94 {
            l.record(0);
        }
        l.record(12);
        l.record(40);
        assert_eq!(l.quantile_ms(0.5), 0);
        assert_eq!(l.quantile_ms(0.99), 15);
        assert_eq!(l.quantile_ms(0.999), 40);
        l.record(9_000);
        assert_eq!(l.quantile_ms(1.0), 9_000);
    }
}
