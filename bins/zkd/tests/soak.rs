//! Soak: a 3-node `zkd` ensemble holding many sessions, each with nine one-shot data
//! watches and one persistent recursive watch (90% / 10% of the watches), through
//! zk-client, while a writer changes the watched nodes in phases. The leader is killed
//! (`kill -9`) midway and restarted later; every session moves to a survivor and keeps
//! its watches.
//!
//! Each phase changes every data node once and, under every subtree, creates, changes and
//! deletes one child. It then checks that every one-shot watch fired exactly once
//! (`NodeDataChanged` on its node) and every persistent recursive watch delivered exactly
//! the three events of its subtree, in order; then the one-shot watches are re-armed for
//! the next phase. Writes pause around the kill, so no change happens while sessions are
//! disconnected and "exactly once" holds across the failover too. No session may expire:
//! every one keeps its id and ends connected. The servers' resident set sizes and the
//! latency percentiles of re-arms and writes are printed.
//!
//! Time box and size: `ZK_SOAK_SESSIONS` (default 1,000 in CI: 10,000 watches) and
//! `ZK_SOAK_SECONDS` (default 40). Long mode: `ZK_SOAK_SESSIONS=10000 ZK_SOAK_SECONDS=300`
//! (100,000 watches: 90,000 one-shot, 10,000 persistent recursive).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use zk_client::{AddWatchMode, Client, CreateMode, EventType, KeeperState, State};
use zk_proto::well_known;
use zk_tests::processes::{self, connect_string, settled, Server};

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");
const DATA_NODES: usize = 1000;
const SUBTREES: usize = 100;
const ONESHOT_PER_SESSION: usize = 9;
/// Requests in flight at once while arming watches or writing.
const CONCURRENCY: usize = 256;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Lets this process (and the servers it starts) hold one descriptor per session.
fn raise_fd_limit(need: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < need {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(need.max(soft)), hard);
    }
    let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    assert!(
        soft >= need,
        "the soak needs {need} open files; the hard limit is {hard}"
    );
}

/// Every event a watch delivered this phase, by (session, path).
#[derive(Default)]
struct Events {
    oneshot: HashMap<(usize, String), Vec<EventType>>,
    recursive: HashMap<(usize, String), Vec<EventType>>,
    oneshot_count: usize,
    recursive_count: usize,
    /// Session events that mean the session is over (Expired, Closed, AuthFailed).
    ended: Vec<(usize, KeeperState)>,
}

fn data_node(i: usize) -> String {
    format!("/soak/d/{i}")
}

fn subtree(j: usize) -> String {
    format!("/soak/r/{j}")
}

/// The data nodes session `s` watches: nine distinct ones, spread over all of them.
fn watched_by(s: usize) -> impl Iterator<Item = usize> {
    (0..ONESHOT_PER_SESSION).map(move |k| (s * ONESHOT_PER_SESSION + k) % DATA_NODES)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn summary(mut samples: Vec<Duration>) -> String {
    samples.sort();
    format!(
        "n={} p50={:.1?} p99={:.1?} max={:.1?}",
        samples.len(),
        percentile(&samples, 0.50),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or_default()
    )
}

/// Arms one-shot data watches for `pairs` (session, node) with bounded concurrency; each
/// fired event lands in `events`. Returns the latencies of the getData calls.
async fn arm_oneshot(
    clients: &[Arc<Client>],
    pairs: Vec<(usize, usize)>,
    events: &Arc<Mutex<Events>>,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(pairs.len());
    let mut running = JoinSet::new();
    for (s, node) in pairs {
        if running.len() >= CONCURRENCY {
            latencies.push(running.join_next().await.unwrap().unwrap());
        }
        let (client, events) = (clients[s].clone(), events.clone());
        running.spawn(async move {
            let path = data_node(node);
            let started = Instant::now();
            let (_, _, watch) = loop {
                match client.get_data_watch(&path).await {
                    Ok(r) => break r,
                    Err(e) if e.code() == zk_proto::ErrorCode::ConnectionLoss => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(e) => panic!("session {s}: getData {path}: {e}"),
                }
            };
            let took = started.elapsed();
            tokio::spawn(async move {
                let event = watch.changed().await;
                let mut ev = events.lock().unwrap();
                if event.event_type == EventType::None {
                    ev.ended.push((s, event.state));
                } else {
                    ev.oneshot_count += 1;
                    ev.oneshot
                        .entry((s, event.path.unwrap_or_default()))
                        .or_default()
                        .push(event.event_type);
                }
            });
            took
        });
    }
    while let Some(r) = running.join_next().await {
        latencies.push(r.unwrap());
    }
    latencies
}

/// Runs `op` for every item with bounded concurrency, retrying through connection loss.
async fn each_write<F, Fut>(items: Vec<usize>, op: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Duration> + Send + 'static,
{
    let mut latencies = Vec::with_capacity(items.len());
    let mut running = JoinSet::new();
    for i in items {
        if running.len() >= CONCURRENCY {
            latencies.push(running.join_next().await.unwrap().unwrap());
        }
        running.spawn(op(i));
    }
    while let Some(r) = running.join_next().await {
        latencies.push(r.unwrap());
    }
    latencies
}

/// One phase of writes: every data node set once; under every subtree, one child created,
/// set and deleted. Returns the writes' latencies.
async fn write_phase(writer: &Arc<Client>, phase: usize) -> Vec<Duration> {
    let w = writer.clone();
    let mut latencies = each_write((0..DATA_NODES).collect(), move |i| {
        let w = w.clone();
        async move {
            let started = Instant::now();
            w.set_data(&data_node(i), format!("phase {phase}").into_bytes(), -1)
                .await
                .unwrap();
            started.elapsed()
        }
    })
    .await;
    let w = writer.clone();
    latencies.extend(
        each_write((0..SUBTREES).collect(), move |j| {
            let w = w.clone();
            async move {
                let child = format!("{}/p{phase}", subtree(j));
                let started = Instant::now();
                w.create(
                    &child,
                    b"new".to_vec(),
                    well_known::open_acl_unsafe(),
                    CreateMode::Persistent,
                )
                .await
                .unwrap();
                w.set_data(&child, b"changed".to_vec(), -1).await.unwrap();
                w.delete(&child, -1).await.unwrap();
                started.elapsed() / 3
            }
        })
        .await,
    );
    latencies
}

/// Waits until the phase's events are all in (and a moment more, for duplicates), then
/// checks each watch got exactly what it should. Returns the violations.
async fn check_phase(
    events: &Arc<Mutex<Events>>,
    sessions: usize,
    phase: usize,
) -> (Vec<String>, Events) {
    let want_oneshot = sessions * ONESHOT_PER_SESSION;
    let want_recursive = sessions * 3;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (o, r) = {
            let ev = events.lock().unwrap();
            (ev.oneshot_count, ev.recursive_count)
        };
        if (o >= want_oneshot && r >= want_recursive) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = std::mem::take(&mut *events.lock().unwrap());
    let mut v = Vec::new();
    for s in 0..sessions {
        for node in watched_by(s) {
            let key = (s, data_node(node));
            match got.oneshot.get(&key).map(Vec::as_slice) {
                Some([EventType::NodeDataChanged]) => {}
                other => v.push(format!(
                    "phase {phase}: session {s}'s one-shot watch on {}: {other:?}",
                    key.1
                )),
            }
        }
        let child = format!("{}/p{phase}", subtree(s % SUBTREES));
        match got.recursive.get(&(s, child.clone())).map(Vec::as_slice) {
            Some([EventType::NodeCreated, EventType::NodeDataChanged, EventType::NodeDeleted]) => {}
            other => v.push(format!(
                "phase {phase}: session {s}'s recursive watch, {child}: {other:?}"
            )),
        }
    }
    if got.oneshot_count != want_oneshot {
        v.push(format!(
            "phase {phase}: {} one-shot events, expected {want_oneshot}",
            got.oneshot_count
        ));
    }
    if got.recursive_count != want_recursive {
        v.push(format!(
            "phase {phase}: {} recursive events, expected {want_recursive}",
            got.recursive_count
        ));
    }
    for (s, state) in &got.ended {
        v.push(format!("phase {phase}: session {s} ended: {state:?}"));
    }
    v.truncate(20);
    (v, got)
}

/// Waits until every client is connected again (after a failover).
async fn all_connected(clients: &[Arc<Client>], within: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    loop {
        let waiting = clients
            .iter()
            .filter(|c| c.state() != State::Connected)
            .count();
        if waiting == 0 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            return Err(format!("{waiting} sessions not connected after {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rss(servers: &[Server]) -> String {
    servers
        .iter()
        .map(|s| match s.rss_kib() {
            Some(k) => format!("s{}={:.1}MiB", s.id, k as f64 / 1024.0),
            None => format!("s{}=down", s.id),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_soaked_ensemble_keeps_sessions_and_delivers_every_watch_once() {
    let sessions: usize = env_or("ZK_SOAK_SESSIONS", 1000);
    let seconds: u64 = env_or("ZK_SOAK_SECONDS", 40);
    let min_phases = 4;
    raise_fd_limit(sessions as u64 + 1024);
    let mut servers = processes::start(
        Path::new(ZKD),
        3,
        0,
        "maxClientCnxns=0\nmaxSessionTimeout=60000\n",
        0,
        "",
    );
    let mut running = vec![0, 1, 2];
    settled(&servers, &running);
    let hosts = connect_string(&servers);
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let writer = Arc::new(
            Client::builder(&hosts)
                .session_timeout(Duration::from_secs(30))
                .connect()
                .await
                .unwrap(),
        );
        for p in ["/soak", "/soak/d", "/soak/r"] {
            writer
                .create(p, Vec::new(), well_known::open_acl_unsafe(), CreateMode::Persistent)
                .await
                .unwrap();
        }
        let parents: Vec<String> = (0..DATA_NODES)
            .map(data_node)
            .chain((0..SUBTREES).map(subtree))
            .collect();
        let w = writer.clone();
        each_write((0..parents.len()).collect(), move |i| {
            let (w, path) = (w.clone(), parents[i].clone());
            async move {
                let started = Instant::now();
                w.create(&path, b"0".to_vec(), well_known::open_acl_unsafe(), CreateMode::Persistent)
                    .await
                    .unwrap();
                started.elapsed()
            }
        })
        .await;

        // The sessions.
        let started = Instant::now();
        let mut connecting = JoinSet::new();
        let mut clients: Vec<Option<Arc<Client>>> = vec![None; sessions];
        for s in 0..sessions {
            if connecting.len() >= CONCURRENCY {
                let (s, c) = connecting.join_next().await.unwrap().unwrap();
                clients[s] = Some(c);
            }
            let hosts = hosts.clone();
            connecting.spawn(async move {
                let c = Client::builder(&hosts)
                    .session_timeout(Duration::from_secs(30))
                    .connect()
                    .await
                    .unwrap();
                (s, Arc::new(c))
            });
        }
        while let Some(r) = connecting.join_next().await {
            let (s, c) = r.unwrap();
            clients[s] = Some(c);
        }
        let clients: Vec<Arc<Client>> = clients.into_iter().map(Option::unwrap).collect();
        let ids: Vec<i64> = clients.iter().map(|c| c.session_id()).collect();
        println!("soak: {sessions} sessions connected in {:.1?}", started.elapsed());

        // The watches: nine one-shot data watches and one persistent recursive per session.
        let events = Arc::new(Mutex::new(Events::default()));
        let started = Instant::now();
        for (s, client) in clients.iter().enumerate() {
            let mut watch = client
                .add_watch(&subtree(s % SUBTREES), AddWatchMode::PersistentRecursive)
                .await
                .unwrap();
            let events = events.clone();
            tokio::spawn(async move {
                while let Some(event) = watch.next().await {
                    let mut ev = events.lock().unwrap();
                    if event.event_type == EventType::None {
                        if !matches!(
                            event.state,
                            KeeperState::Disconnected | KeeperState::SyncConnected
                        ) {
                            ev.ended.push((s, event.state));
                        }
                    } else {
                        ev.recursive_count += 1;
                        ev.recursive
                            .entry((s, event.path.unwrap_or_default()))
                            .or_default()
                            .push(event.event_type);
                    }
                }
            });
        }
        let all_pairs: Vec<(usize, usize)> = (0..sessions)
            .flat_map(|s| watched_by(s).map(move |n| (s, n)))
            .collect();
        let mut rearm_latency = arm_oneshot(&clients, all_pairs.clone(), &events).await;
        let watches = all_pairs.len() + sessions;
        println!(
            "soak: {watches} watches ({} one-shot, {sessions} persistent recursive) armed in {:.1?}; RSS {}",
            all_pairs.len(),
            started.elapsed(),
            rss(&servers)
        );

        // Phases until the time box closes; the leader is killed at half time and
        // restarted one phase later.
        let mut write_latency = Vec::new();
        let mut violations = Vec::new();
        let mut phase = 0;
        let mut killed: Option<usize> = None;
        let mut phases_after_restart = 0;
        let mut failover = Duration::ZERO;
        let mut peak_rss = String::new();
        let soak_started = Instant::now();
        while soak_started.elapsed() < Duration::from_secs(seconds)
            || phase < min_phases
            || phases_after_restart == 0
        {
            phase += 1;
            write_latency.extend(write_phase(&writer, phase).await);
            let (v, _) = check_phase(&events, sessions, phase).await;
            violations.extend(v);
            if violations.len() >= 20 {
                break;
            }
            if phase == 2 {
                peak_rss = rss(&servers);
            }
            if killed.is_some() && running.len() == 3 {
                phases_after_restart += 1;
            }
            match killed {
                Some(victim) if running.len() == 2 => {
                    servers[victim].start();
                    running = vec![0, 1, 2];
                    settled(&servers, &running);
                    println!("soak: phase {phase}: server {} restarted", victim + 1);
                }
                None if soak_started.elapsed() >= Duration::from_secs(seconds / 2)
                    && phase >= 2 =>
                {
                    let leader = settled(&servers, &running);
                    let cut = Instant::now();
                    servers[leader].kill9();
                    running.retain(|i| *i != leader);
                    killed = Some(leader);
                    settled(&servers, &running);
                    match all_connected(&clients, Duration::from_secs(60)).await {
                        Ok(_) => failover = cut.elapsed(),
                        Err(e) => violations.push(format!("after killing the leader: {e}")),
                    }
                    println!(
                        "soak: phase {phase}: leader (server {}) killed; all sessions connected again {failover:.1?} later",
                        leader + 1
                    );
                }
                _ => {}
            }
            // Re-arm the one-shot watches for the next phase.
            rearm_latency.extend(arm_oneshot(&clients, all_pairs.clone(), &events).await);
        }

        // No session expired: each keeps its id and is connected at the end.
        let final_rss = rss(&servers);
        if let Err(e) = all_connected(&clients, Duration::from_secs(30)).await {
            violations.push(format!("at the end: {e}"));
        }
        let changed = clients
            .iter()
            .zip(&ids)
            .filter(|(c, id)| c.session_id() != **id)
            .count();
        if changed > 0 {
            violations.push(format!("{changed} sessions changed id (expired)"));
        }
        let events_checked = phase * sessions * (ONESHOT_PER_SESSION + 3);
        println!(
            "soak: {seconds} s box, {:.1?} run; {sessions} sessions, {watches} watches, {phase} phases, {events_checked} watch events checked; failover {failover:.1?}",
            soak_started.elapsed()
        );
        println!("soak: RSS after two phases {peak_rss}; at the end {final_rss}");
        println!("soak: re-arm getData latency {}", summary(rearm_latency));
        println!("soak: write latency {}", summary(write_latency));
        println!("soak: {} violations", violations.len());
        assert!(violations.is_empty(), "violations:\n{}", violations.join("\n"));
        assert!(phase >= min_phases, "only {phase} phases (floor {min_phases})");
        assert!(killed.is_some() && phases_after_restart > 0, "the leader was never killed and restarted");
        for c in &clients {
            c.close().await;
        }
        writer.close().await;
    });
}
