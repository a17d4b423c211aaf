//! Introspection on real `zkd` processes:
//! - a load with known hot paths (reads, writes, watch fan-out) and one busy session shows
//!   them at the top of `/commands/hot_paths` and `/commands/session_rates`, and in
//!   `/metrics`;
//! - `/commands/memory` estimates grow with the tree and the watch table as the process's
//!   resident set does (within 25%);
//! - fsync, snapshot and `sync` timing histograms fill, as JSON and Prometheus histograms;
//! - `zkd admin transfer-leadership --to N` moves leadership in an ensemble.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use zk_client::{AddWatchMode, Client, CreateMode, Op};
use zk_proto::{well_known, Request, SetWatches2};
use zk_tests::processes::{self, settled, Server};
use zk_tests::raw::RawClient;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");

fn json(server: &Server, command: &str) -> Value {
    serde_json::from_str(&server.admin(command)).unwrap()
}

fn standalone(extra: &str) -> Vec<Server> {
    processes::standalone(Path::new(ZKD), extra, "")
}

fn metrics(server: &Server) -> String {
    use std::io::{Read, Write};
    let mut t = std::net::TcpStream::connect(("127.0.0.1", server.admin_port)).unwrap();
    write!(t, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    t.read_to_string(&mut text).unwrap();
    text
}

fn create_op(path: String, data: Vec<u8>) -> Op {
    Op::Create {
        path,
        data: data.into(),
        acl: well_known::open_acl_unsafe(),
        mode: CreateMode::Persistent,
        ttl: None,
    }
}

#[test]
fn a_known_load_shows_its_hot_paths_and_busy_session() {
    let servers = standalone("snapCount=100\n");
    let s = &servers[0];
    let rt = zk_tests::runtime();
    let busy_id = rt.block_on(async {
        let setup = Client::connect(&s.addr()).await.unwrap();
        for p in ["/hot", "/warm", "/cold", "/w-hot", "/w-cold", "/fan"] {
            setup
                .create(
                    p,
                    b"v".to_vec(),
                    well_known::open_acl_unsafe(),
                    CreateMode::Persistent,
                )
                .await
                .unwrap();
        }
        // 40 sessions watch /fan persistently: each of 5 changes notifies all 40.
        let mut watchers = Vec::new();
        for _ in 0..40 {
            let w = Client::connect(&s.addr()).await.unwrap();
            let events = w.add_watch("/fan", AddWatchMode::Persistent).await.unwrap();
            watchers.push((w, events));
        }
        let busy = Client::connect(&s.addr()).await.unwrap();
        for _ in 0..600 {
            busy.get_data("/hot").await.unwrap();
        }
        for _ in 0..150 {
            busy.get_data("/warm").await.unwrap();
        }
        for _ in 0..10 {
            setup.get_data("/cold").await.unwrap();
        }
        for _ in 0..120 {
            busy.set_data("/w-hot", b"x".to_vec(), -1).await.unwrap();
        }
        for _ in 0..8 {
            setup.set_data("/w-cold", b"x".to_vec(), -1).await.unwrap();
        }
        for _ in 0..5 {
            setup.set_data("/fan", b"x".to_vec(), -1).await.unwrap();
        }
        for (_, events) in &mut watchers {
            for _ in 0..5 {
                tokio::time::timeout(Duration::from_secs(10), events.next())
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
        busy.session_id()
    });

    let hot = json(s, "hot_paths?n=3");
    println!("hot_paths: {hot:#}");
    let paths = |list: &str| -> Vec<String> {
        hot[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["path"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(paths("by_reads")[..2], ["/hot", "/warm"]);
    assert_eq!(hot["by_reads"][0]["reads"], 600);
    assert_eq!(paths("by_writes")[..2], ["/w-hot", "/w-cold"]);
    assert_eq!(
        hot["by_writes"][0]["writes"], 121,
        "its create and 120 sets"
    );
    assert_eq!(paths("by_watch_fanout")[0], "/fan");
    assert_eq!(hot["by_watch_fanout"][0]["watch_events"], 200);
    let rates = json(s, "session_rates?n=2");
    println!("session_rates: {rates:#}");
    assert_eq!(rates["sessions"][0]["session_id"], format!("0x{busy_id:x}"));
    assert_eq!(rates["sessions"][0]["reads"], 750);
    assert_eq!(rates["sessions"][0]["writes"], 120);
    assert!(rates["sessions"][0]["ops_per_second"].as_f64().unwrap() > 0.0);

    // Timings: every write was fsynced; 140 writes past snapCount=100 took a snapshot.
    let deadline = Instant::now() + Duration::from_secs(10);
    let hist = loop {
        let h = json(s, "histograms");
        if h["snapshot"]["count"].as_u64().unwrap() >= 1 || Instant::now() > deadline {
            break h;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "histograms: fsync {} / snapshot {}",
        hist["fsync"], hist["snapshot"]
    );
    assert!(hist["fsync"]["count"].as_u64().unwrap() >= 140, "{hist}");
    assert!(hist["snapshot"]["count"].as_u64().unwrap() >= 1, "{hist}");
    let text = metrics(s);
    for line in [
        "# TYPE zkd_fsync_seconds histogram",
        "zkd_fsync_seconds_bucket{le=\"+Inf\"}",
        "zkd_snapshot_seconds_count",
        "zkd_sync_seconds_count 0",
        "zkd_memory_bytes{subsystem=\"tree\"}",
        "zkd_hot_path_reads{path=\"/hot\"} 600",
        "zkd_hot_path_writes{path=\"/w-hot\"} 121",
        "zkd_hot_path_watch_events{path=\"/fan\"} 200",
    ] {
        assert!(text.contains(line), "{line} missing from /metrics:\n{text}");
    }
}

/// The memory estimate and the resident set, sampled after things settle.
fn memory(s: &Server) -> (u64, u64, Value) {
    std::thread::sleep(Duration::from_millis(300));
    let m = json(s, "memory");
    (
        m["estimated_total_bytes"].as_u64().unwrap(),
        m["rss_bytes"].as_u64().unwrap(),
        m,
    )
}

fn within(label: &str, estimated: u64, measured: u64) {
    let ratio = estimated as f64 / measured as f64;
    println!(
        "{label}: estimated +{:.1} MiB, resident +{:.1} MiB (ratio {ratio:.2})",
        estimated as f64 / 1048576.0,
        measured as f64 / 1048576.0
    );
    assert!(
        (0.75..=1.25).contains(&ratio),
        "{label}: the estimate is off by more than 25%"
    );
}

#[test]
fn memory_estimates_follow_the_resident_set() {
    // No snapshot during the test: its copy-on-write would count as growth.
    let servers = standalone("snapCount=100000000\n");
    let s = &servers[0];
    let rt = zk_tests::runtime();
    const NODES: usize = 150_000;
    let c = rt.block_on(async { Client::connect(&s.addr()).await.unwrap() });
    rt.block_on(async {
        // Warm the pipeline's own buffers first, so they do not count as the tree's growth.
        c.create(
            "/m",
            Vec::new(),
            well_known::open_acl_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        let ops = (0..500)
            .map(|i| create_op(format!("/warm{i}"), vec![0; 100]))
            .collect();
        c.multi(ops).await.unwrap();
    });
    let (est0, rss0, _) = memory(s);
    rt.block_on(async {
        for chunk in (0..NODES).collect::<Vec<_>>().chunks(500) {
            let ops = chunk
                .iter()
                .map(|i| create_op(format!("/m/node-{:07}", i), vec![7; 100]))
                .collect();
            c.multi(ops).await.unwrap();
        }
    });
    let (est1, rss1, m) = memory(s);
    println!("after {NODES} znodes: {m:#}");
    within("150,000 znodes of 100 bytes", est1 - est0, rss1 - rss0);

    // 150,000 data watches, registered the way a reconnecting client does (setWatches2).
    let zxid = s.srvr().unwrap().1;
    let mut raw = RawClient::connect(s.addr().parse().unwrap(), 30_000).unwrap();
    for chunk in (0..NODES).collect::<Vec<_>>().chunks(30_000) {
        let (h, _) = raw
            .call(&Request::SetWatches2(SetWatches2 {
                relative_zxid: zxid,
                data_watches: chunk.iter().map(|i| format!("/m/node-{:07}", i)).collect(),
                exist_watches: Vec::new(),
                child_watches: Vec::new(),
                persistent_watches: Vec::new(),
                persistent_recursive_watches: Vec::new(),
            }))
            .unwrap();
        assert_eq!(h.err, 0);
    }
    let (est2, rss2, m) = memory(s);
    assert_eq!(m["watches"]["count"], NODES, "{m}");
    println!("after {NODES} watches: {m:#}");
    within("150,000 data watches", est2 - est1, rss2 - rss1);
    rt.block_on(c.close());
}

#[test]
fn sync_timings_and_transfer_leadership_in_an_ensemble() {
    let servers = processes::start(Path::new(ZKD), 3, 0, "", 0, "");
    let leader = settled(&servers, &[0, 1, 2]);
    let follower = (leader + 1) % 3;
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let c = Client::connect(&servers[follower].addr()).await.unwrap();
        for _ in 0..20 {
            c.sync("/").await.unwrap();
        }
        c.close().await;
    });
    let h = json(&servers[follower], "histograms");
    println!("sync at a follower: {}", h["sync"]);
    assert_eq!(h["sync"]["count"], 20, "{h}");
    assert!(metrics(&servers[follower]).contains("zkd_sync_seconds_count 20"));

    // The web console on a follower writes through the leader (as the servers' own
    // session 0), signed in with a digest credential.
    let created = {
        use std::io::{Read, Write};
        let mut t =
            std::net::TcpStream::connect(("127.0.0.1", servers[follower].admin_port)).unwrap();
        write!(
            t,
            "POST /ui/api/create?path=/from-console HTTP/1.0\r\nHost: x\r\nAuthorization: digest op:pw\r\nContent-Length: 2\r\n\r\nhi"
        )
        .unwrap();
        let mut text = String::new();
        t.read_to_string(&mut text).unwrap();
        text
    };
    assert!(
        created.starts_with("HTTP/1.0 200") || created.starts_with("HTTP/1.1 200"),
        "{created}"
    );
    rt.block_on(async {
        let c = Client::connect(&servers[leader].addr()).await.unwrap();
        c.sync("/").await.unwrap();
        let (data, _) = c.get_data("/from-console").await.unwrap();
        assert_eq!(data.unwrap(), &b"hi"[..]);
        c.close().await;
    });

    // The leader hands over to the follower through the command-line tool.
    let to = follower + 1;
    let out = Command::new(ZKD)
        .args(["admin", "transfer-leadership", "--to"])
        .arg(to.to_string())
        .arg("--admin")
        .arg(format!("127.0.0.1:{}", servers[leader].admin_port))
        .output()
        .unwrap();
    println!(
        "transfer-leadership: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let l = json(&servers[follower], "leader");
        if l["is_leader"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "{to} never led: {l}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Asking a follower is refused with the reason, and the tool exits non-zero.
    let out = Command::new(ZKD)
        .args(["admin", "transfer-leadership", "--to", "1", "--admin"])
        .arg(format!("127.0.0.1:{}", servers[leader].admin_port))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
    // `zkd admin command` prints any command.
    let out = Command::new(ZKD)
        .args(["admin", "command", "leader", "--admin"])
        .arg(format!("127.0.0.1:{}", servers[follower].admin_port))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["leader_id"], to);
}
