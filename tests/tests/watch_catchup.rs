//! Exact watch catch-up (issue 13, part 1), through zk-client and through Apache
//! ZooKeeper's own Java client (`tests/java/CatchUpCheck.java`, Debian's jars), on 3-node
//! ensembles:
//! a client holds a persistent recursive watch on `/w` and a one-shot data watch on
//! `/w/one`; its connection is cut (a TCP proxy) while another session makes 1,000 changes
//! under `/w`; it reconnects to another server with its session. On zkd it receives all
//! 1,000 events, in order, exactly once (and the one-shot watch fires once). The same run
//! against Apache ZooKeeper 3.8 shows what ZooKeeper loses: it only re-arms the watch.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use zk_client::{AddWatchMode, Client, CreateMode, EventType, State};
use zk_proto::well_known;
use zk_tests::proxy::Proxy;

const CHANGES: usize = 1000;

/// Creates `/w` and `/w/one` (the watched tree).
async fn watched_tree(writer: &Client) {
    let open = well_known::open_acl_unsafe;
    writer
        .create("/w", Vec::new(), open(), CreateMode::Persistent)
        .await
        .unwrap();
    writer
        .create("/w/one", b"0".to_vec(), open(), CreateMode::Persistent)
        .await
        .unwrap();
}

/// Ten changes the watcher sees live.
async fn live_changes(writer: &Client) {
    for i in 0..10 {
        writer
            .create(
                &format!("/w/live-{i}"),
                Vec::new(),
                well_known::open_acl_unsafe(),
                CreateMode::Persistent,
            )
            .await
            .unwrap();
    }
}

/// The 1,000 changes made while the watcher is away: 500 creates, then 500 data changes,
/// one of them on /w/one.
async fn missed_changes(writer: &Client) {
    for i in 0..CHANGES / 2 {
        writer
            .create(
                &format!("/w/n{i:04}"),
                Vec::new(),
                well_known::open_acl_unsafe(),
                CreateMode::Persistent,
            )
            .await
            .unwrap();
    }
    writer.set_data("/w/one", b"1".to_vec(), -1).await.unwrap();
    for i in 1..CHANGES / 2 {
        writer
            .set_data(&format!("/w/n{i:04}"), b"x".to_vec(), -1)
            .await
            .unwrap();
    }
}

/// What the watching client saw.
#[derive(Debug)]
struct Seen {
    /// Events of the recursive watch after the cut, in order: (type, path).
    after_cut: Vec<(EventType, String)>,
    one_shot_fired: bool,
}

/// Runs the scenario against the members at `servers` (the client goes through proxies
/// to the first two; the writer uses the third).
async fn scenario(servers: &[SocketAddr]) -> Seen {
    let writer = Client::connect(&servers[2].to_string()).await.unwrap();
    watched_tree(&writer).await;
    let (p1, p2) = (Proxy::start(servers[0]), Proxy::start(servers[1]));
    p2.cut();
    let client = Client::builder(&format!("{},{}", p1.addr, p2.addr))
        .session_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();
    let session = client.session_id();
    let mut tree = client
        .add_watch("/w", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    let (_, _, one_shot) = client.get_data_watch("/w/one").await.unwrap();
    // Ten changes seen live first: the client knows them (their zxids) when it comes back.
    live_changes(&writer).await;
    for _ in 0..10 {
        tokio::time::timeout(Duration::from_secs(10), tree.next())
            .await
            .unwrap()
            .unwrap();
    }
    // Cut; 1,000 changes while the client is away (500 creates, then 500 data changes,
    // one of them on /w/one).
    p1.cut();
    let mut states = client.state_changes();
    let deadline = Instant::now() + Duration::from_secs(10);
    while *states.borrow() == State::Connected {
        assert!(
            Instant::now() < deadline,
            "the client never noticed the cut"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), states.changed()).await;
    }
    missed_changes(&writer).await;
    // Back, through the other server.
    p2.heal();
    let deadline = Instant::now() + Duration::from_secs(20);
    while *states.borrow() != State::Connected {
        assert!(Instant::now() < deadline, "the client never reconnected");
        let _ = tokio::time::timeout(Duration::from_millis(200), states.changed()).await;
    }
    assert_eq!(
        client.session_id(),
        session,
        "same session after the reconnect"
    );
    let mut after_cut = Vec::new();
    // Everything that will come comes quickly; then a quiet second proves no duplicates.
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(2), tree.next()).await {
        after_cut.push((e.event_type, e.path.unwrap_or_default()));
    }
    let one_shot_fired = tokio::time::timeout(Duration::from_secs(1), one_shot.changed())
        .await
        .is_ok_and(|e| e.event_type == EventType::NodeDataChanged);
    client.close().await;
    writer.close().await;
    Seen {
        after_cut,
        one_shot_fired,
    }
}

/// The 1,000 changes, in the order they were made.
fn expected() -> Vec<(EventType, String)> {
    let mut v: Vec<(EventType, String)> = (0..CHANGES / 2)
        .map(|i| (EventType::NodeCreated, format!("/w/n{i:04}")))
        .collect();
    v.push((EventType::NodeDataChanged, "/w/one".into()));
    v.extend((1..CHANGES / 2).map(|i| (EventType::NodeDataChanged, format!("/w/n{i:04}"))));
    v
}

#[test]
fn a_reconnecting_client_gets_every_missed_event_exactly_once_on_zkd() {
    // tickTime is 200 ms there: allow the 30 s session the client asks for.
    let servers = zk_tests::zkd::start_ensemble_with("catchup", 3, |c| {
        c.max_session_timeout_ms = Some(60_000);
    });
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let seen = zk_tests::runtime().block_on(scenario(&addrs));
    println!(
        "zkd: {} of {CHANGES} missed events delivered after the reconnect; one-shot fired: {}",
        seen.after_cut.len(),
        seen.one_shot_fired
    );
    assert!(
        seen.after_cut == expected(),
        "not every change in order once: {} events, first {:?}",
        seen.after_cut.len(),
        &seen.after_cut[..5.min(seen.after_cut.len())]
    );
    assert!(seen.one_shot_fired);
    let monitor: serde_json::Value =
        serde_json::from_str(&servers[1].admin_get("/commands/monitor")).unwrap();
    assert_eq!(monitor["watch_catchup_events"], CHANGES as u64, "{monitor}");
    assert_eq!(monitor["watch_catchup_fallbacks"], 0);
}

#[test]
fn a_client_older_than_the_journal_falls_back_to_zookeepers_behaviour() {
    // A journal of 100 txns cannot cover 1,000 changes: the watch is only re-armed.
    let servers = zk_tests::zkd::start_ensemble_with("catchup-small", 3, |c| {
        c.watch_catchup_retain_txns = 100;
        c.max_session_timeout_ms = Some(60_000);
    });
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let seen = zk_tests::runtime().block_on(scenario(&addrs));
    // Only the one-shot watch's event (the client hands it to every watch matching
    // /w/one, the recursive one included), as with ZooKeeper.
    assert_eq!(
        seen.after_cut,
        vec![(EventType::NodeDataChanged, "/w/one".to_owned())]
    );
    assert!(
        seen.one_shot_fired,
        "one-shot watches fire as ZooKeeper fires them"
    );
    let monitor: serde_json::Value =
        serde_json::from_str(&servers[1].admin_get("/commands/monitor")).unwrap();
    assert_eq!(monitor["watch_catchup_fallbacks"], 1, "{monitor}");
}

#[test]
fn zookeeper_only_rearms_persistent_watches() {
    if !zk_tests::zookeeper::available() {
        return;
    }
    let zks = zk_tests::zookeeper::start_ensemble("catchup", 3);
    let addrs: Vec<SocketAddr> = zks.iter().map(|z| z.addr).collect();
    let seen = zk_tests::runtime().block_on(scenario(&addrs));
    println!(
        "Apache ZooKeeper 3.8: {} of {CHANGES} missed events delivered after the reconnect; one-shot fired: {}",
        seen.after_cut.len(),
        seen.one_shot_fired
    );
    assert!(
        seen.after_cut.len() < CHANGES,
        "ZooKeeper delivered every missed event?"
    );
    assert!(seen.one_shot_fired);
}

const JAVA_JARS: &[&str] = &[
    "zookeeper",
    "zookeeper-jute",
    "slf4j-api",
    "netty-handler",
    "netty-transport",
    "netty-common",
    "netty-buffer",
];

/// An external watching client (`program`, given the connect string) in the middle of
/// the scenario: connected through two proxies, it saw the live changes, was cut off
/// while the 1,000 changes (and, with `deletes`, 50 deletes) were made, and was told GO
/// once the way to another server was open. What the reading needs goes with it.
struct External {
    rt: tokio::runtime::Runtime,
    writer: Client,
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    proxies: (Proxy, Proxy),
}

fn external(mut program: Command, servers: &[SocketAddr], who: &str, deletes: bool) -> External {
    let rt = zk_tests::runtime();
    let writer = rt
        .block_on(Client::connect(&servers[2].to_string()))
        .unwrap();
    rt.block_on(watched_tree(&writer));
    let (p1, p2) = (Proxy::start(servers[0]), Proxy::start(servers[1]));
    p2.cut();
    let mut child = program
        .arg(format!("{},{}", p1.addr, p2.addr))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut expect = |what: &str| {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(line, what, "{who}");
    };
    expect("READY");
    rt.block_on(live_changes(&writer));
    expect("LIVE-OK");
    p1.cut();
    expect("DISCONNECTED");
    rt.block_on(async {
        missed_changes(&writer).await;
        if deletes {
            for i in 100..150 {
                writer.delete(&format!("/w/n{i:04}"), -1).await.unwrap();
            }
        }
    });
    p2.heal();
    writeln!(child.stdin.take().unwrap(), "GO").unwrap();
    External {
        rt,
        writer,
        child,
        lines,
        proxies: (p1, p2),
    }
}

/// The scenario with the Java client watching: (events after the reconnect, one-shot).
fn java_scenario(classes: &Path, servers: &[SocketAddr]) -> (Vec<(String, String)>, String) {
    let mut java = Command::new("java");
    java.arg("-cp")
        .arg(zk_tests::java::classpath(classes, JAVA_JARS))
        .arg("CatchUpCheck");
    let External {
        rt,
        writer,
        mut child,
        mut lines,
        proxies,
    } = external(java, servers, "the Java client", false);
    let mut events = Vec::new();
    let mut one_shot = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("E ") {
            let (t, p) = rest.split_once(' ').unwrap_or((rest, ""));
            events.push((t.to_owned(), p.to_owned()));
        } else if let Some(rest) = line.strip_prefix("ONESHOT ") {
            one_shot = rest.to_owned();
        } else if line == "DONE" {
            break;
        }
    }
    let _ = child.wait();
    rt.block_on(writer.close());
    drop(proxies);
    (events, one_shot)
}

fn expected_java() -> Vec<(String, String)> {
    expected()
        .into_iter()
        .map(|(t, p)| (format!("{t:?}"), p))
        .collect()
}

#[test]
fn the_java_client_gets_every_missed_event_on_zkd_and_not_on_zookeeper() {
    let dir = std::env::temp_dir().join(format!("zkd-catchup-java-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if !zk_tests::java::jdk_with(JAVA_JARS) {
        return;
    }
    let classes = dir.join("classes");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/CatchUpCheck.java");
    zk_tests::java::javac(&source, &classes, JAVA_JARS);
    let servers = zk_tests::zkd::start_ensemble_with("catchup-java", 3, |c| {
        c.max_session_timeout_ms = Some(60_000);
    });
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
    let (events, one_shot) = java_scenario(&classes, &addrs);
    println!(
        "Java client on zkd: {} of {CHANGES} missed events after the reconnect; one-shot: {one_shot}",
        events.len()
    );
    assert!(
        events == expected_java(),
        "not every change in order once: {} events, first {:?}",
        events.len(),
        &events[..5.min(events.len())]
    );
    assert_eq!(one_shot, "NodeDataChanged");
    drop(servers);
    if zk_tests::zookeeper::available() {
        let zks = zk_tests::zookeeper::start_ensemble("catchup-java", 3);
        let addrs: Vec<SocketAddr> = zks.iter().map(|z| z.addr).collect();
        let (events, one_shot) = java_scenario(&classes, &addrs);
        println!(
            "Java client on Apache ZooKeeper 3.8: {} of {CHANGES} missed events after the reconnect; one-shot: {one_shot}",
            events.len()
        );
        assert!(events.len() < CHANGES);
        assert_eq!(one_shot, "NodeDataChanged");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const CURATOR_JARS: &[&str] = zk_tests::java::CURATOR_JARS;

/// Starts a cache client (without its connect string).
type Launcher<'a> = Box<dyn Fn() -> Command + 'a>;

/// A cached or served node: (path, base64 data, version).
type CachedNode = (String, String, i32);

/// What a cache client ended with after the cut: listener events after the reconnect,
/// its nodes, and the server's.
struct CacheOutcome {
    events: u64,
    cached: Vec<CachedNode>,
    served: Vec<CachedNode>,
}

/// The server's `/w` tree as (path, base64 data, version), sorted.
async fn served_tree(c: &Client) -> Vec<CachedNode> {
    use base64::Engine as _;
    let mut out = Vec::new();
    let mut todo = vec!["/w".to_owned()];
    while let Some(p) = todo.pop() {
        let (data, stat) = c.get_data(&p).await.unwrap();
        let data = base64::engine::general_purpose::STANDARD.encode(data.unwrap_or_default());
        for k in c.get_children(&p).await.unwrap() {
            todo.push(format!("{p}/{k}"));
        }
        out.push((p, data, stat.version));
    }
    out.sort();
    out
}

/// The catch-up scenario with an external cache client (`program` plus the connect
/// string), speaking tests/java/CacheCheck.java's line protocol; deletes 50 nodes too.
fn cache_scenario(program: Command, servers: &[SocketAddr]) -> CacheOutcome {
    let External {
        rt,
        writer,
        mut child,
        mut lines,
        proxies,
    } = external(program, servers, "the cache client", true);
    let mut expect = |what: &str| {
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(line, what, "the cache client");
    };
    expect("RECONNECTED");
    let mut events = 0;
    let mut cached = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("EVENTS ") {
            events = n.parse().unwrap();
        } else if let Some(rest) = line.strip_prefix("N ") {
            let mut f = rest.split(' ');
            let (p, d, v) = (f.next(), f.next(), f.next());
            cached.push((
                p.unwrap_or_default().to_owned(),
                d.unwrap_or_default().to_owned(),
                v.and_then(|v| v.parse().ok()).unwrap_or(-1),
            ));
        } else if line == "DONE" {
            break;
        }
    }
    let _ = child.wait();
    let served = rt.block_on(served_tree(&writer));
    rt.block_on(writer.close());
    drop(proxies);
    cached.sort();
    CacheOutcome {
        events,
        cached,
        served,
    }
}

fn check_cache(who: &str, server: &str, o: &CacheOutcome) {
    let missing = o.served.iter().filter(|n| !o.cached.contains(n)).count();
    let extra = o.cached.iter().filter(|n| !o.served.contains(n)).count();
    println!(
        "{who} on {server}: {} cached nodes, {} served, {missing} missing or stale, {extra} extra; {} cache events after the reconnect",
        o.cached.len(),
        o.served.len(),
        o.events
    );
    assert!(
        o.cached == o.served,
        "{who} on {server}: the cache differs from the server's tree ({missing} missing or stale, {extra} extra)"
    );
}

#[test]
fn curator_cache_and_kazoo_tree_cache_end_equal_to_the_server() {
    let dir = std::env::temp_dir().join(format!("zkd-catchup-caches-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let curator = zk_tests::java::jdk_with(CURATOR_JARS);
    let kazoo = zk_tests::python_has("kazoo");
    let classes = dir.join("classes");
    if curator {
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("java/CacheCheck.java");
        zk_tests::java::javac(&source, &classes, CURATOR_JARS);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kazoo/tree_cache_check.py");
    let java = || {
        let mut c = Command::new("java");
        c.arg("-cp")
            .arg(zk_tests::java::classpath(&classes, CURATOR_JARS))
            .arg("CacheCheck");
        c
    };
    let python = || {
        let mut c = Command::new("python3");
        c.arg(&script);
        c
    };
    let mut runs: Vec<(&str, Launcher)> = Vec::new();
    if curator {
        runs.push(("Curator CuratorCache", Box::new(java)));
    }
    if kazoo {
        runs.push(("kazoo TreeCache", Box::new(python)));
    }
    for (who, program) in &runs {
        let servers = zk_tests::zkd::start_ensemble_with("catchup-cache", 3, |c| {
            c.max_session_timeout_ms = Some(60_000);
        });
        let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
        let outcome = cache_scenario(program(), &addrs);
        check_cache(who, "zkd", &outcome);
        drop(servers);
        if zk_tests::zookeeper::available() {
            let zks = zk_tests::zookeeper::start_ensemble("catchup-cache", 3);
            let addrs: Vec<SocketAddr> = zks.iter().map(|z| z.addr).collect();
            let outcome = cache_scenario(program(), &addrs);
            check_cache(who, "Apache ZooKeeper 3.8", &outcome);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
