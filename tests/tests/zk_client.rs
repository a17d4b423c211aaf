//! zk-client, our async client library, against zkd and against Apache ZooKeeper 3.8:
//! - every operation, with the transcripts of both servers compared line by line;
//! - a broken connection (a proxy cut between client and server): the client reconnects,
//!   resumes its session and re-arms its watches, which fire for changes made meanwhile;
//! - session expiry while cut off: `Expired`, ephemerals gone, requests fail;
//! - a 3-server ensemble, of ZooKeeper and of zkd: the client's server is stopped, it moves
//!   to another server with the same session, its ephemeral node and its watches;
//! - a read-only client of a zkd server that lost its quorum reads, and its writes get
//!   NOTREADONLY.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use zk_client::{
    well_known, AddWatchMode, Client, CreateMode, ErrorCode, EventType, KeeperState, Op, OpResult,
    ReadOp, ReadResult, State, WatchedEvent, WatcherType,
};
use zk_tests::proxy::Proxy;
use zk_tests::zkd::Zkd;
use zk_tests::zookeeper::{self, ZooKeeper};

fn rt() -> tokio::runtime::Runtime {
    zk_tests::runtime()
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("zkd-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn stat(s: &zk_client::Stat) -> String {
    format!(
        "v={} cv={} av={} eph={} len={} n={}",
        s.version,
        s.cversion,
        s.aversion,
        s.ephemeral_owner != 0,
        s.data_length,
        s.num_children
    )
}

async fn recv(rx: &mut mpsc::UnboundedReceiver<WatchedEvent>) -> String {
    let e = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("an event in time")
        .expect("an event");
    e.to_string()
}

async fn scenario(addr: SocketAddr) -> Vec<String> {
    let mut t = Vec::new();
    let (tx, mut events) = mpsc::unbounded_channel();
    let zk = Client::builder(&addr.to_string())
        .session_timeout(Duration::from_secs(10))
        .default_watcher(tx)
        .connect()
        .await
        .unwrap();
    t.push(recv(&mut events).await);
    let open = well_known::open_acl_unsafe;
    t.push(format!(
        "{:?}",
        zk.create("/zc", "top", open(), CreateMode::Persistent)
            .await
    ));
    t.push(format!(
        "{:?}",
        zk.create("/zc", "top", open(), CreateMode::Persistent)
            .await
            .map_err(|e| e.code())
    ));
    for mode in [
        CreateMode::PersistentSequential,
        CreateMode::Ephemeral,
        CreateMode::EphemeralSequential,
    ] {
        t.push(format!(
            "{mode:?} {:?}",
            zk.create(&format!("/zc/{mode:?}"), None::<bytes::Bytes>, open(), mode)
                .await
        ));
    }
    let (p, s) = zk
        .create2("/zc/container", "c", open(), CreateMode::Container)
        .await
        .unwrap();
    t.push(format!("container {p} {}", stat(&s)));
    let (p, s) = zk
        .create_ttl(
            "/zc/ttl",
            "t",
            open(),
            CreateMode::PersistentWithTtl,
            60_000,
        )
        .await
        .unwrap();
    t.push(format!("ttl {p} {}", stat(&s)));
    t.push(format!(
        "bad path: {}",
        zk.create("zc", "", open(), CreateMode::Persistent)
            .await
            .unwrap_err()
    ));
    let (data, s) = zk.get_data("/zc/Ephemeral").await.unwrap();
    t.push(format!("null data: {data:?} {}", stat(&s)));
    t.push(format!(
        "{:?}",
        zk.get_data("/nope").await.map_err(|e| e.code())
    ));
    t.push(format!("{:?}", zk.exists("/nope").await));
    let s = zk.set_data("/zc", "v1", 0).await.unwrap();
    t.push(format!("set {}", stat(&s)));
    t.push(format!(
        "{:?}",
        zk.set_data("/zc", "v2", 0).await.map_err(|e| e.code())
    ));
    let mut kids = zk.get_children("/zc").await.unwrap();
    kids.sort();
    t.push(format!("children {kids:?}"));
    let (_, s) = zk.get_children2("/zc").await.unwrap();
    t.push(format!("children2 {}", stat(&s)));
    t.push(format!("all {:?}", zk.get_all_children_number("/zc").await));
    let mut eph = zk.get_ephemerals("/zc").await.unwrap();
    eph.sort();
    t.push(format!("ephemerals {eph:?}"));

    // Watches: returned futures, the default watcher, persistent streams.
    let (_, _, w) = zk.get_data_watch("/zc").await.unwrap();
    zk.default_watch().get_children("/zc").await.unwrap();
    zk.default_watch().exists("/zc/new").await.unwrap();
    zk.set_data("/zc", "v3", -1).await.unwrap();
    t.push(format!("oneshot: {}", w.changed().await));
    zk.create("/zc/new", "", open(), CreateMode::Persistent)
        .await
        .unwrap();
    let mut two = vec![recv(&mut events).await, recv(&mut events).await];
    two.sort();
    t.extend(two);
    let mut pw = zk
        .add_watch("/zc", AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    zk.set_data("/zc/new", "x", -1).await.unwrap();
    zk.delete("/zc/new", -1).await.unwrap();
    for _ in 0..2 {
        t.push(format!("recursive: {}", pw.next().await.unwrap()));
    }
    zk.remove_watches("/zc", WatcherType::Any, false)
        .await
        .unwrap();
    t.push(format!(
        "after remove: {:?}",
        pw.next().await.map(|e| e.to_string())
    ));
    t.push(format!(
        "remove again: {:?}",
        zk.remove_watches("/zc", WatcherType::Any, false)
            .await
            .map_err(|e| e.code())
    ));
    zk.default_watch().get_data("/zc").await.unwrap();
    t.push(format!(
        "checkWatches: {:?}",
        zk.check_watches("/zc", WatcherType::Data).await
    ));
    zk.remove_watches("/zc", WatcherType::Data, true)
        .await
        .unwrap();
    t.push(recv(&mut events).await);

    // multi and multiRead.
    let results = zk
        .multi(vec![
            Op::Check {
                path: "/zc".into(),
                version: 2,
            },
            Op::Create {
                path: "/zc/m".into(),
                data: "m".into(),
                acl: open(),
                mode: CreateMode::Persistent,
                ttl: None,
            },
            Op::SetData {
                path: "/zc/m".into(),
                data: "mm".into(),
                version: 0,
            },
            Op::Create {
                path: "/zc/mc".into(),
                data: "".into(),
                acl: open(),
                mode: CreateMode::Container,
                ttl: None,
            },
            Op::Delete {
                path: "/zc/mc".into(),
                version: -1,
            },
        ])
        .await
        .unwrap();
    for r in results {
        t.push(format!(
            "multi {}",
            match r {
                OpResult::Create { path, stat: s } =>
                    format!("create {path} {:?}", s.map(|s| stat(&s))),
                OpResult::SetData { stat: s } => format!("set {}", stat(&s)),
                other => format!("{other:?}"),
            }
        ));
    }
    let results = zk
        .multi(vec![
            Op::Delete {
                path: "/zc/m".into(),
                version: -1,
            },
            Op::Check {
                path: "/zc".into(),
                version: 42,
            },
        ])
        .await
        .unwrap();
    t.push(format!("failed multi {results:?}"));
    for r in zk
        .multi_read(vec![
            ReadOp::GetData("/zc/m".into()),
            ReadOp::GetChildren("/nope".into()),
        ])
        .await
        .unwrap()
    {
        t.push(match r {
            ReadResult::Data { data, stat: s } => format!("read {data:?} {}", stat(&s)),
            other => format!("read {other:?}"),
        });
    }

    // ACLs and auth.
    zk.add_auth("digest", "bob:pw").await.unwrap();
    let mut who: Vec<String> = zk
        .who_am_i()
        .await
        .unwrap()
        .into_iter()
        .map(|c| format!("{}:{}", c.auth_scheme, c.user))
        .collect();
    who.sort();
    t.push(format!("whoami {who:?}"));
    zk.create(
        "/zc/secret",
        "s",
        well_known::creator_all_acl(),
        CreateMode::Persistent,
    )
    .await
    .unwrap();
    let (acl, _) = zk.get_acl("/zc/secret").await.unwrap();
    t.push(format!("acl {acl:?}"));
    let other = Client::connect(&addr.to_string()).await.unwrap();
    t.push(format!(
        "stranger {:?}",
        other.get_data("/zc/secret").await.map_err(|e| e.code())
    ));
    let s = zk
        .set_acl("/zc/secret", well_known::open_acl_unsafe(), 0)
        .await
        .unwrap();
    t.push(format!("setAcl {}", stat(&s)));
    t.push(format!(
        "stranger after {:?}",
        other.get_data("/zc/secret").await.map(|(d, _)| d)
    ));
    t.push(format!("sync {:?}", zk.sync("/zc").await));
    t.push(format!("config {:?}", zk.get_config().await.map(|_| ())));
    t.push(format!(
        "reconfig {:?}",
        zk.reconfig(None, None, Some("server.1=127.0.0.1:2888:3888;2181"), -1)
            .await
            .map_err(|e| e.code())
    ));

    // A chroot, then a refused auth scheme ends the session.
    let rooted = Client::connect(&format!("{addr}/zc")).await.unwrap();
    let p = rooted
        .create("/r-", "", open(), CreateMode::PersistentSequential)
        .await
        .unwrap();
    t.push(format!("chroot create {p}"));
    let (_, _, w) = rooted.get_data_watch("/m").await.unwrap();
    zk.set_data("/zc/m", "new", -1).await.unwrap();
    t.push(format!("chroot watch {}", w.changed().await));
    t.push(format!(
        "bad scheme {:?} then {:?} {:?}",
        other.add_auth("nosuch", "x").await.map_err(|e| e.code()),
        other.get_data("/zc").await.map_err(|e| e.code()),
        other.state()
    ));

    // Closing ends the session: its ephemerals go, the default watcher hears Closed.
    zk.close().await;
    t.push(recv(&mut events).await);
    t.push(format!(
        "after close {:?} {:?}",
        zk.state(),
        zk.exists("/zc").await
    ));
    let mut left = Vec::new();
    for _ in 0..50 {
        left = rooted.get_children("/").await.unwrap();
        left.sort();
        if !left.iter().any(|c| c.starts_with("Ephemeral")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.push(format!("left {left:?}"));
    t
}

#[test]
fn every_operation_behaves_the_same_on_zkd_and_zookeeper() {
    let dir = temp("ops");
    let zkd = Zkd::start(&dir, |_| {});
    let ours = rt().block_on(scenario(zkd.addr));
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
    println!("zkd:\n{}", ours.join("\n"));
    assert!(ours.iter().any(|l| l
        .starts_with("oneshot: WatchedEvent state:SyncConnected type:NodeDataChanged path:/zc")));
    assert!(ours.contains(&"WatchedEvent state:Closed type:None path:null".to_string()));
    if !zookeeper::available() {
        return;
    }
    let real = ZooKeeper::start("zk-client", "", "-Dzookeeper.extendedTypesEnabled=true");
    let theirs = rt().block_on(scenario(real.addr));
    drop(real);
    zk_tests::assert_same_transcript("zk-client", &ours, &theirs);
}

/// Cuts the connection under a client with watches, changes things meanwhile, heals it.
async fn reconnect(server: SocketAddr) {
    let proxy = Proxy::start(server);
    let (tx, mut events) = mpsc::unbounded_channel();
    let zk = Client::builder(&proxy.addr.to_string())
        .session_timeout(Duration::from_secs(20))
        .default_watcher(tx)
        .connect()
        .await
        .unwrap();
    assert_eq!(
        recv(&mut events).await,
        "WatchedEvent state:SyncConnected type:None path:null"
    );
    let open = well_known::open_acl_unsafe;
    zk.create("/rc", "", open(), CreateMode::Persistent)
        .await
        .unwrap();
    zk.create("/rc/eph", "", open(), CreateMode::Ephemeral)
        .await
        .unwrap();
    zk.add_auth("digest", "carol:pw").await.unwrap();
    let (_, _, data_watch) = zk.get_data_watch("/rc").await.unwrap();
    let (_, child_watch) = zk.get_children_watch("/rc").await.unwrap();
    let mut persistent = zk
        .add_watch("/rc/eph", AddWatchMode::Persistent)
        .await
        .unwrap();
    let id = zk.session_id();

    proxy.cut();
    assert_eq!(
        recv(&mut events).await,
        "WatchedEvent state:Disconnected type:None path:null"
    );
    let during = zk.get_data("/rc");
    let other = Client::connect(&server.to_string()).await.unwrap();
    other.set_data("/rc", "changed", -1).await.unwrap();
    other
        .create("/rc/kid", "", open(), CreateMode::Persistent)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.heal();

    // The request made while disconnected is sent after the reconnect.
    let (data, _) = tokio::time::timeout(Duration::from_secs(20), during)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(data.as_deref(), Some(&b"changed"[..]));
    assert_eq!(
        recv(&mut events).await,
        "WatchedEvent state:SyncConnected type:None path:null"
    );
    assert_eq!(zk.session_id(), id, "the session was resumed, not replaced");
    // setWatches2 re-armed the watches, and the server fired those whose node changed.
    assert_eq!(
        data_watch.changed().await.event_type,
        EventType::NodeDataChanged
    );
    assert_eq!(
        child_watch.changed().await.event_type,
        EventType::NodeChildrenChanged
    );
    other.set_data("/rc/eph", "p", -1).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), persistent.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.event_type, EventType::NodeDataChanged);
    // The ephemeral survived, and auth was re-sent.
    assert!(zk.exists("/rc/eph").await.unwrap().is_some());
    let who = zk.who_am_i().await.unwrap();
    assert!(who.iter().any(|c| c.user == "carol"), "{who:?}");
    other.delete("/rc/kid", -1).await.unwrap();
    zk.delete("/rc/eph", -1).await.unwrap();
    zk.delete("/rc", -1).await.unwrap();
    zk.close().await;
}

/// Cuts a client off until its session expires.
async fn expiry(server: SocketAddr) {
    let proxy = Proxy::start(server);
    let (tx, mut events) = mpsc::unbounded_channel();
    let zk = Client::builder(&proxy.addr.to_string())
        .session_timeout(Duration::from_secs(4))
        .default_watcher(tx)
        .connect()
        .await
        .unwrap();
    recv(&mut events).await;
    let open = well_known::open_acl_unsafe;
    zk.create("/ex", "", open(), CreateMode::Ephemeral)
        .await
        .unwrap();
    let (_, _, w) = zk.get_data_watch("/ex").await.unwrap();
    proxy.cut();
    assert_eq!(
        recv(&mut events).await,
        "WatchedEvent state:Disconnected type:None path:null"
    );
    let other = Client::connect(&server.to_string()).await.unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if other.exists("/ex").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        gone,
        "the server expired the session and removed its ephemeral"
    );
    proxy.heal();
    assert_eq!(
        recv(&mut events).await,
        "WatchedEvent state:Expired type:None path:null"
    );
    assert_eq!(w.changed().await.state, KeeperState::Expired);
    assert_eq!(zk.state(), State::Closed);
    assert_eq!(
        zk.get_data("/").await.unwrap_err().code(),
        ErrorCode::SessionExpired
    );
    other.close().await;
}

#[test]
fn reconnect_resumes_the_session_and_rearms_watches() {
    let dir = temp("reconnect");
    let zkd = Zkd::start(&dir, |_| {});
    rt().block_on(reconnect(zkd.addr));
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
    if zookeeper::available() {
        let real = ZooKeeper::start("zk-client-reconnect", "", "");
        rt().block_on(reconnect(real.addr));
    }
}

#[test]
fn a_session_expired_while_cut_off_ends_with_expired() {
    let dir = temp("expiry");
    let zkd = Zkd::start(&dir, |_| {});
    rt().block_on(expiry(zkd.addr));
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
    if zookeeper::available() {
        let real = ZooKeeper::start("zk-client-expiry", "", "");
        rt().block_on(expiry(real.addr));
    }
}

/// The client's server goes away: the client moves to another server of the ensemble with
/// the same session, its ephemeral node and its watch. `stop(i)` stops server `i`.
async fn session_moves(hosts: Vec<String>, stop: impl FnOnce(usize)) {
    let zk = Client::builder(&hosts.join(","))
        .session_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap();
    let open = well_known::open_acl_unsafe;
    zk.create("/ens", "", open(), CreateMode::Persistent)
        .await
        .unwrap();
    zk.create("/ens/eph", "", open(), CreateMode::Ephemeral)
        .await
        .unwrap();
    let (_, _, w) = zk.get_data_watch("/ens").await.unwrap();
    let id = zk.session_id();
    let first = zk.server().unwrap();
    let victim = hosts.iter().position(|h| *h == first).unwrap();
    stop(victim);
    zk.wait_connected(Duration::from_secs(30)).await.unwrap();
    // The first request after the stop may still see ConnectionLoss; retry until served.
    let mut stat = None;
    for _ in 0..50 {
        match zk.exists("/ens/eph").await {
            Ok(s) => {
                stat = s;
                break;
            }
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::ConnectionLoss);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    assert!(stat.is_some(), "the ephemeral survived the move");
    assert_ne!(zk.server().unwrap(), first);
    assert_eq!(zk.session_id(), id);
    let rest: Vec<String> = hosts
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, h)| h.clone())
        .collect();
    let other = Client::connect(&rest.join(",")).await.unwrap();
    other.set_data("/ens", "moved", -1).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), w.changed())
        .await
        .unwrap();
    assert_eq!(e.event_type, EventType::NodeDataChanged);
    zk.close().await;
    other.close().await;
}

/// Runs [`session_moves`] on `servers` (their client addresses from `addr`), stopping one
/// by dropping it.
fn session_moves_on<S>(servers: Vec<S>, addr: impl Fn(&S) -> String) {
    let hosts: Vec<String> = servers.iter().map(addr).collect();
    let servers = std::sync::Mutex::new(servers);
    rt().block_on(session_moves(hosts, |i| {
        drop(servers.lock().unwrap().remove(i));
    }));
}

#[test]
fn the_session_moves_to_another_server_of_a_zookeeper_ensemble() {
    if !zookeeper::available() {
        return;
    }
    let servers = zookeeper::start_ensemble("zk-client-ensemble", 3);
    session_moves_on(servers, |s| s.addr.to_string());
}

#[test]
fn the_session_moves_to_another_server_of_a_zkd_ensemble() {
    let servers = zk_tests::zkd::start_ensemble("zk-client", 3);
    session_moves_on(servers, |s| s.addr.to_string());
}

#[test]
fn a_read_only_client_reads_from_a_server_without_quorum() {
    let mut servers = zk_tests::zkd::start_ensemble_with("zk-client-ro", 3, |c| {
        c.read_only_enabled = true;
    });
    let survivor = servers[0].addr.to_string();
    rt().block_on(async {
        let zk = Client::connect(&survivor).await.unwrap();
        zk.create(
            "/ro",
            "data",
            well_known::open_acl_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        zk.close().await;
    });
    // Two of three servers stop: the survivor has no quorum and goes read-only.
    drop(servers.split_off(1));
    rt().block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let zk = loop {
            let attempt = Client::builder(&survivor)
                .read_only(true)
                .session_timeout(Duration::from_secs(6))
                .connect()
                .await;
            if let Ok(zk) = attempt {
                if zk.wait_connected(Duration::from_secs(5)).await.is_ok()
                    && zk.state() == State::ConnectedReadOnly
                {
                    break zk;
                }
            }
            assert!(std::time::Instant::now() < deadline, "no read-only session");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (data, _) = zk.get_data("/ro").await.unwrap();
        assert_eq!(data.as_deref(), Some(&b"data"[..]));
        let e = zk
            .create(
                "/ro/no",
                "",
                well_known::open_acl_unsafe(),
                CreateMode::Persistent,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotReadOnly);
        zk.close().await;
    });
}

#[test]
fn a_hierarchical_quorum_needs_a_majority_of_groups() {
    // group.1=1:2, group.2=3: servers 1 and 2 are a majority of servers but one group.
    let mut servers = zk_tests::zkd::start_ensemble_with("zk-client-groups", 3, |c| {
        c.groups = vec![vec![1, 2], vec![3]];
    });
    let all: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
    rt().block_on(async {
        let zk = Client::connect(&all.join(",")).await.unwrap();
        zk.create(
            "/g",
            "",
            well_known::open_acl_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        zk.close().await;
    });
    drop(servers.pop());
    let rest = all[..2].join(",");
    rt().block_on(async {
        let attempt = async {
            let zk = Client::builder(&rest)
                .session_timeout(Duration::from_secs(4))
                .connect()
                .await?;
            zk.create(
                "/g/x",
                "",
                well_known::open_acl_unsafe(),
                CreateMode::Persistent,
            )
            .await
        };
        let r = tokio::time::timeout(Duration::from_secs(8), attempt).await;
        assert!(
            !matches!(r, Ok(Ok(_))),
            "one group of two is no quorum: {r:?}"
        );
    });
}
