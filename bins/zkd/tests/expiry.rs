//! Explainable, pause-aware session expiry, on real `zkd` processes:
//! - a standalone server paused (SIGSTOP) for three session timeouts extends its sessions
//!   when it resumes instead of expiring them all, so clients that come back a second
//!   later resume them, and it says so (`/commands/expirations` lists the stall); a client
//!   that really went away is still expired, and its entry names the cause, the ephemerals
//!   removed and the server it was last heard through;
//! - with the detection off (`sessionExpiry.stallThresholdMs=0`) the same pause expires
//!   sessions, as Apache ZooKeeper does;
//! - `sessionExpiry.maxPerTick` spreads a mass expiry over ticks, counted as deferred;
//! - in an ensemble, a paused follower's clients move to other servers and keep their
//!   sessions (as with ZooKeeper), and a paused leader is replaced without expiring them.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zk_client::{Client, CreateMode, State};
use zk_proto::{well_known, CreateRequest, Request};
use zk_tests::processes::{self, connect_string, settled, Server};
use zk_tests::raw::RawClient;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");
const TIMEOUT: Duration = Duration::from_secs(2);
/// zk-client declares a session over when it has heard nothing for its timeout; its
/// reconnect attempts (one may hit the paused server) need some room.
const ENSEMBLE_TIMEOUT: Duration = Duration::from_secs(6);

fn json(server: &Server, command: &str) -> serde_json::Value {
    serde_json::from_str(&server.admin(command)).unwrap()
}

/// `n` sessions through zk-client, each owning one ephemeral `/{tag}-{i}`.
async fn sessions_with_ephemerals(
    hosts: &str,
    tag: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Client> {
    let mut clients = Vec::new();
    for i in 0..n {
        let c = Client::builder(hosts)
            .session_timeout(timeout)
            .connect()
            .await
            .unwrap();
        c.create(
            &format!("/{tag}-{i}"),
            Vec::new(),
            well_known::open_acl_unsafe(),
            CreateMode::Ephemeral,
        )
        .await
        .unwrap();
        clients.push(c);
    }
    clients
}

/// How many of `clients` still hold their original session, connected, after `within`.
async fn surviving(clients: &[Client], ids: &[i64], within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let alive = clients
            .iter()
            .zip(ids)
            .filter(|(c, id)| c.state() == State::Connected && c.session_id() == **id)
            .count();
        if alive == clients.len() || Instant::now() > deadline {
            return alive;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A standalone server with `extra` zoo.cfg lines (a one-member ensemble is standalone).
fn standalone(extra: &str) -> Vec<Server> {
    standalone_with(extra, "")
}

/// [`standalone`] with crash or delay points armed (`ZKD_FAILPOINTS`).
fn standalone_with(extra: &str, failpoints: &str) -> Vec<Server> {
    processes::standalone(
        Path::new(ZKD),
        &format!("maxSessionTimeout=60000\n{extra}"),
        failpoints,
    )
}

/// `n` sessions that go away without closing (their process died), each leaving an
/// ephemeral `/{tag}-{i}`; their ids.
fn gone_sessions(server: &Server, tag: &str, n: usize) -> Vec<i64> {
    raw_sessions(server, tag, n)
        .into_iter()
        .map(|raw| raw.session.session_id)
        .collect()
}

/// Pauses the server for `pause`, then resumes it.
fn pause(server: &Server, pause: Duration) {
    server.signal("-STOP");
    std::thread::sleep(pause);
    server.signal("-CONT");
}

/// Pauses `server` for three session timeouts with `sessions` raw sessions open, then
/// (a second after the resume) has each resume its session as a client that kept trying
/// would; returns how many the server still knew.
fn pause_then_resume(server: &Server, sessions: Vec<RawClient>) -> usize {
    pause(server, 3 * TIMEOUT);
    std::thread::sleep(Duration::from_secs(1));
    let addr = server.addr().parse().unwrap();
    sessions
        .into_iter()
        .filter(|raw| {
            let resumed = RawClient::resume(
                addr,
                TIMEOUT.as_millis() as i32,
                &raw.session,
                0,
                raw.xid(),
                Duration::from_secs(5),
            )
            .unwrap();
            resumed.session.time_out > 0
        })
        .count()
}

/// `n` raw sessions, each owning an ephemeral `/{tag}-{i}`.
fn raw_sessions(server: &Server, tag: &str, n: usize) -> Vec<RawClient> {
    let addr = server.addr().parse().unwrap();
    (0..n)
        .map(|i| {
            let mut raw = RawClient::connect(addr, TIMEOUT.as_millis() as i32).unwrap();
            let (h, _) = raw
                .call(&Request::Create(CreateRequest {
                    path: format!("/{tag}-{i}"),
                    data: Some(Bytes::new()),
                    acl: well_known::open_acl_unsafe(),
                    flags: 1,
                }))
                .unwrap();
            assert_eq!(h.err, 0);
            raw
        })
        .collect()
}

#[test]
fn a_paused_server_extends_sessions_and_explains_real_expiries() {
    let servers = standalone("");
    // A client that really goes away: its process is gone, its session left behind.
    let goner_id = gone_sessions(&servers[0], "gone", 1)[0];
    let kept = raw_sessions(&servers[0], "kept", 20);
    let resumed = pause_then_resume(&servers[0], kept);
    assert_eq!(
        resumed, 20,
        "sessions were expired by the server's own pause"
    );

    // The goner is expired a timeout after the resume, with its cause.
    let deadline = Instant::now() + Duration::from_secs(10);
    let entry = loop {
        let v = json(&servers[0], "expirations");
        let found = v["expirations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["session_id"] == format!("0x{goner_id:x}"))
            .cloned();
        if let Some(e) = found {
            break e;
        }
        assert!(Instant::now() < deadline, "the goner never expired: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("expiry entry: {entry}");
    assert_eq!(entry["ephemerals_removed"], 1);
    assert_eq!(entry["timeout_ms"], 2000);
    assert_eq!(entry["last_server"], 0, "a standalone server's id is 0");
    assert_eq!(entry["connected_here"], false);
    let last_seen = entry["last_seen_ms_ago"].as_u64().unwrap();
    assert!(last_seen >= 3 * 2000, "{entry}");
    assert_eq!(
        entry["cause"],
        format!(
            "no packet from the client for {last_seen} ms (session timeout 2000 ms); last heard through server 0"
        )
    );
    let v = json(&servers[0], "expirations");
    println!("stalls: {}", v["stalls"]);
    assert_eq!(v["stalls_total"], 1, "{v}");
    assert!(v["stalls"][0]["late_ms"].as_u64().unwrap() >= 4000, "{v}");
    assert_eq!(v["stalls"][0]["sessions_extended"], 21, "{v}");
    let mntr = json(&servers[0], "monitor");
    assert_eq!(mntr["server_stalls"], 1);
    assert_eq!(mntr["sessions_extended_after_stall"], 21);

    // Every resumed session still owns its ephemeral; the goner's is gone.
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let c = Client::connect(&servers[0].addr()).await.unwrap();
        for i in 0..20 {
            assert!(c.exists(&format!("/kept-{i}")).await.unwrap().is_some());
        }
        assert!(c.exists("/gone-0").await.unwrap().is_none());
        c.close().await;
    });
    let v = json(&servers[0], "expirations");
    assert_eq!(v["expired_total"], 1, "only the goner expired: {v}");
}

#[test]
fn without_stall_detection_the_same_pause_expires_sessions() {
    let servers = standalone("sessionExpiry.stallThresholdMs=0\n");
    let kept = raw_sessions(&servers[0], "kept", 20);
    let resumed = pause_then_resume(&servers[0], kept);
    let v = json(&servers[0], "expirations");
    println!(
        "without stall detection: {resumed} of 20 sessions survived the pause; {} expired",
        v["expired_total"]
    );
    assert_eq!(resumed, 0, "{v}");
    assert_eq!(v["expired_total"], 20);
    assert_eq!(v["stalls_total"], 0);
}

/// 10 sessions (20 commits, one txn each: the clients wait for every answer), then a
/// writer's session (the 21st) whose create is the 22nd commit: its fsync is held for
/// 3.5 session timeouts. The 10 clients say nothing meanwhile, as clients that gave up on
/// an unresponsive server do, and come back half a second after the write is answered.
/// Returns how many of them the server still knew, and its expiry log.
fn storage_stall_then_resume(extra: &str) -> (usize, serde_json::Value) {
    let servers = standalone_with(extra, "log.before_fsync=22:sleep=7000");
    let kept = raw_sessions(&servers[0], "kept", 10);
    let addr = servers[0].addr().parse().unwrap();
    let mut writer = RawClient::connect(addr, 30_000).unwrap();
    let started = Instant::now();
    let (h, _) = writer
        .call(&Request::Create(CreateRequest {
            path: "/slow".into(),
            data: Some(Bytes::new()),
            acl: well_known::open_acl_unsafe(),
            flags: 0,
        }))
        .unwrap();
    assert_eq!(h.err, 0);
    let took = started.elapsed();
    println!("the stalled write took {took:?}");
    assert!(
        took >= Duration::from_secs(6),
        "the delay point did not fire"
    );
    std::thread::sleep(Duration::from_millis(500));
    let resumed = kept
        .into_iter()
        .filter(|raw| {
            RawClient::resume(
                addr,
                2000,
                &raw.session,
                0,
                raw.xid(),
                Duration::from_secs(5),
            )
            .unwrap()
            .session
            .time_out
                > 0
        })
        .count();
    (resumed, json(&servers[0], "expirations"))
}

#[test]
fn a_storage_stall_suspends_expiry_and_extends_sessions() {
    let (resumed, v) = storage_stall_then_resume("");
    println!("storage stall: {resumed} of 10 sessions resumed; {v}");
    assert_eq!(resumed, 10, "sessions expired during the disk stall: {v}");
    assert_eq!(v["expired_total"], 0, "{v}");
    assert_eq!(v["stalls_total"], 1, "{v}");
    assert_eq!(v["stalls"][0]["kind"], "storage");
    assert!(v["stalls"][0]["late_ms"].as_u64().unwrap() >= 5000, "{v}");
    assert!(
        v["stalls"][0]["sessions_extended"].as_u64().unwrap() >= 11,
        "{v}"
    );
}

#[test]
fn without_stall_detection_a_storage_stall_expires_silent_sessions() {
    let (resumed, v) = storage_stall_then_resume("sessionExpiry.stallThresholdMs=0\n");
    println!("storage stall, detection off: {resumed} of 10 sessions resumed");
    assert_eq!(resumed, 0, "{v}");
    assert_eq!(v["expired_total"], 10, "{v}");
}

#[test]
fn a_cap_on_expirations_per_tick_spreads_a_mass_expiry() {
    let servers = standalone("sessionExpiry.maxPerTick=3\n");
    let rt = zk_tests::runtime();
    rt.block_on(async {
        gone_sessions(&servers[0], "mass", 12);
        // A stall puts every session's deadline in one bucket: they fall due together.
        pause(&servers[0], Duration::from_secs(3));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = json(&servers[0], "expirations");
            if v["expired_total"] == 12 {
                println!("capped mass expiry: {v}");
                assert!(v["deferred_total"].as_u64().unwrap() >= 9, "{v}");
                break;
            }
            assert!(Instant::now() < deadline, "not all expired: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Pauses ensemble member `victim` for longer than the session timeout, then checks that
/// every client still holds its session (the message has each client's state, the
/// servers' expiry logs and the clients' state changes).
async fn pause_and_check(
    servers: &[Server],
    victim: usize,
    clients: &[Client],
    ids: &[i64],
    history: &std::sync::Mutex<Vec<String>>,
) {
    pause(&servers[victim], ENSEMBLE_TIMEOUT + Duration::from_secs(3));
    let alive = surviving(clients, ids, Duration::from_secs(25)).await;
    let states: Vec<String> = clients
        .iter()
        .map(|c| format!("{:?}/{:x}", c.state(), c.session_id()))
        .collect();
    let exp: Vec<String> = servers.iter().map(|s| s.admin("expirations")).collect();
    assert_eq!(
        alive,
        clients.len(),
        "server {} paused: {states:?} {exp:?} {:?}",
        victim + 1,
        history.lock().unwrap()
    );
}

#[test]
fn paused_ensemble_members_do_not_cost_their_clients_their_sessions() {
    let servers = processes::start(Path::new(ZKD), 3, 0, "maxSessionTimeout=60000\n", 0, "");
    let all = [0, 1, 2];
    let leader = settled(&servers, &all);
    let hosts = connect_string(&servers);
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let clients = sessions_with_ephemerals(&hosts, "e", 15, ENSEMBLE_TIMEOUT).await;
        let ids: Vec<i64> = clients.iter().map(Client::session_id).collect();
        // Each client's state changes, for the failure message.
        let started = Instant::now();
        let history: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        for (i, c) in clients.iter().enumerate() {
            let mut changes = c.state_changes();
            let history = history.clone();
            tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    let state = *changes.borrow();
                    history
                        .lock()
                        .unwrap()
                        .push(format!("{:.2?} client {i}: {state:?}", started.elapsed()));
                }
            });
        }
        let follower = (leader + 1) % 3;

        // A follower paused for longer than the timeout: its clients move on and keep
        // their sessions.
        pause_and_check(&servers, follower, &clients, &ids, &history).await;

        // The leader paused: the others elect a new one, which gives every session a full
        // timeout; the old leader resumes as a follower and expires nothing on its own.
        pause_and_check(&servers, leader, &clients, &ids, &history).await;
        let running: Vec<usize> = all.to_vec();
        let new_leader = settled(&servers, &running);
        let expired: i64 = servers
            .iter()
            .map(|s| json(s, "expirations")["expired_total"].as_i64().unwrap())
            .sum();
        println!(
            "ensemble: leader {} paused, new leader {}; {expired} expirations",
            leader + 1,
            new_leader + 1
        );
        assert_eq!(expired, 0);
        for i in 0..15 {
            assert!(clients[0]
                .exists(&format!("/e-{i}"))
                .await
                .unwrap()
                .is_some());
        }
        for c in &clients {
            c.close().await;
        }
    });
}

/// A session that moves from one follower to another says so to the leader at once (as
/// ZooKeeper's revalidation does): the leader must not expire it for having last heard
/// of it through the follower it left. Found by the expiry log ("last heard through
/// server 1" for a client connected elsewhere for seconds).
#[test]
fn a_session_moving_between_followers_is_not_expired_by_the_leader() {
    let servers = processes::start(Path::new(ZKD), 3, 0, "maxSessionTimeout=60000\n", 0, "");
    let all = [0, 1, 2];
    let leader = settled(&servers, &all);
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let timeout = Duration::from_secs(6);
    let mut raw = RawClient::connect(
        servers[a].addr().parse().unwrap(),
        timeout.as_millis() as i32,
    )
    .unwrap();
    let (h, _) = raw
        .call(&Request::Create(CreateRequest {
            path: "/moved".into(),
            data: Some(Bytes::new()),
            acl: well_known::open_acl_unsafe(),
            flags: 1,
        }))
        .unwrap();
    assert_eq!(h.err, 0);
    // Idle on `a` for two thirds of the timeout, then move to `b` (the handshake is the
    // only packet), and stay idle past the deadline the leader had from `a`.
    std::thread::sleep(timeout * 2 / 3);
    let moved = RawClient::resume(
        servers[b].addr().parse().unwrap(),
        timeout.as_millis() as i32,
        &raw.session,
        0,
        raw.xid(),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(moved.session.time_out > 0);
    drop(raw);
    std::thread::sleep(timeout * 2 / 3);
    let v = json(&servers[leader], "expirations");
    assert_eq!(v["expired_total"], 0, "{v}");
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let c = Client::connect(&servers[leader].addr()).await.unwrap();
        assert!(c.exists("/moved").await.unwrap().is_some());
        c.close().await;
    });
    drop(moved);
}
