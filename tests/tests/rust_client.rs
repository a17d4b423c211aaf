//! The Rust `zookeeper-client` crate (crates.io, written by others) runs every operation it
//! offers against zkd, and the same scenario against Apache ZooKeeper 3.8: the transcripts
//! (results, errors, Stat fields with clocks and zxids normalised, watch events) must be equal.
//!
//! Opcodes driven: connect, create2, create (sequential, ephemeral), createContainer,
//! createTTL, delete, exists, getData, setData, getChildren, getChildren2,
//! getAllChildrenNumber, getEphemerals, getACL, setACL, addWatch (persistent and
//! recursive), removeWatches, sync, auth (digest), whoAmI, check (in multi), multi,
//! multiRead, reconfig, ping and closeSession.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use zk_tests::zkd::Zkd;
use zk_tests::zookeeper::{self, ZooKeeper};
use zookeeper_client as zk;

/// Stat with the fields that differ between two servers run at different times blanked.
fn stat(s: &zk::Stat) -> String {
    format!(
        "version={} cversion={} aversion={} ephemeral={} dataLength={} numChildren={}",
        s.version,
        s.cversion,
        s.aversion,
        s.ephemeral_owner != 0,
        s.data_length,
        s.num_children
    )
}

fn event(e: &zk::WatchedEvent) -> String {
    format!("{:?} {:?} {}", e.event_type, e.session_state, e.path)
}

async fn next_event(w: &mut zk::PersistentWatcher) -> String {
    let e = tokio::time::timeout(Duration::from_secs(10), w.changed())
        .await
        .expect("a persistent watch event");
    event(&e)
}

async fn oneshot(w: zk::OneshotWatcher) -> String {
    let e = tokio::time::timeout(Duration::from_secs(10), w.changed())
        .await
        .expect("a watch event");
    event(&e)
}

/// Runs the whole scenario against `addr` and returns what it saw, one line per step.
async fn scenario(addr: String) -> Vec<String> {
    let mut t = Vec::new();
    let client = zk::Client::connector()
        .session_timeout(Duration::from_secs(10))
        .connect(&addr)
        .await
        .unwrap();
    let all = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());

    // create2 in every mode, including containers and TTL nodes.
    let (s, _) = client.create("/rc", b"root", &all).await.unwrap();
    t.push(format!("create /rc: {}", stat(&s)));
    for (name, mode) in [
        ("seq-", zk::CreateMode::PersistentSequential),
        ("eph", zk::CreateMode::Ephemeral),
        ("eseq-", zk::CreateMode::EphemeralSequential),
        ("container", zk::CreateMode::Container),
    ] {
        let opts = mode.with_acls(zk::Acls::anyone_all());
        let (s, seq) = client
            .create(&format!("/rc/{name}"), b"x", &opts)
            .await
            .unwrap();
        t.push(format!("create {name} {mode:?}: seq={seq} {}", stat(&s)));
    }
    let ttl = zk::CreateMode::Persistent
        .with_acls(zk::Acls::anyone_all())
        .with_ttl(Duration::from_secs(3600));
    let (s, _) = client.create("/rc/ttl", b"t", &ttl).await.unwrap();
    t.push(format!("create ttl: {}", stat(&s)));
    let err = client.create("/rc/ttl", b"t", &all).await.unwrap_err();
    t.push(format!("create again: {err:?}"));
    let err = client.create("/rc/none/x", b"", &all).await.unwrap_err();
    t.push(format!("create orphan: {err:?}"));
    let eph = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let err = client.create("/rc/eph/child", b"", &eph).await.unwrap_err();
    t.push(format!("child of ephemeral: {err:?}"));
    client.mkdir("/rc/a/b/c", &all).await.unwrap();
    t.push("mkdir /rc/a/b/c".into());

    // Reads.
    let (data, s) = client.get_data("/rc").await.unwrap();
    t.push(format!(
        "get /rc: {:?} {}",
        String::from_utf8_lossy(&data),
        stat(&s)
    ));
    let err = client.get_data("/rc/missing").await.unwrap_err();
    t.push(format!("get missing: {err:?}"));
    let exists = client.check_stat("/rc/missing").await.unwrap();
    t.push(format!("exists missing: {exists:?}"));
    let mut children = client.list_children("/rc").await.unwrap();
    children.sort();
    t.push(format!("ls /rc: {children:?}"));
    let (mut children, s) = client.get_children("/rc").await.unwrap();
    children.sort();
    t.push(format!("ls2 /rc: {children:?} {}", stat(&s)));
    let n = client.count_descendants_number("/rc").await.unwrap();
    t.push(format!("getAllChildrenNumber /rc: {n}"));
    let mut ephemerals = client.list_ephemerals("/rc").await.unwrap();
    ephemerals.sort();
    t.push(format!("getEphemerals /rc: {ephemerals:?}"));

    // Writes with versions.
    let s = client.set_data("/rc", b"v1", Some(0)).await.unwrap();
    t.push(format!("set v0: {}", stat(&s)));
    let err = client.set_data("/rc", b"v2", Some(0)).await.unwrap_err();
    t.push(format!("set stale: {err:?}"));
    let s = client.set_data("/rc", b"v2", None).await.unwrap();
    t.push(format!("set any: {}", stat(&s)));
    let err = client.delete("/rc", None).await.unwrap_err();
    t.push(format!("delete non-empty: {err:?}"));
    let err = client.delete("/rc/a/b/c", Some(3)).await.unwrap_err();
    t.push(format!("delete stale: {err:?}"));
    client.delete("/rc/a/b/c", Some(0)).await.unwrap();
    t.push("delete /rc/a/b/c".into());

    // One-shot watches: data, exists, children.
    let (_, _, w) = client.get_and_watch_data("/rc").await.unwrap();
    client.set_data("/rc", b"v3", None).await.unwrap();
    t.push(format!("data watch: {}", oneshot(w).await));
    let (none, w) = client.check_and_watch_stat("/rc/new").await.unwrap();
    t.push(format!("exists-watch: {none:?}"));
    client.create("/rc/new", b"", &all).await.unwrap();
    t.push(format!("exists watch: {}", oneshot(w).await));
    let (_, w) = client.list_and_watch_children("/rc/a").await.unwrap();
    client.create("/rc/a/kid", b"", &all).await.unwrap();
    t.push(format!("child watch: {}", oneshot(w).await));
    let (_, _, w) = client.get_and_watch_children("/rc/a").await.unwrap();
    client.delete("/rc/a/kid", None).await.unwrap();
    t.push(format!("children2 watch: {}", oneshot(w).await));

    // Persistent and recursive watches (addWatch), then removeWatches on drop/remove.
    let mut p = client
        .watch("/rc/new", zk::AddWatchMode::Persistent)
        .await
        .unwrap();
    let mut r = client
        .watch("/rc/a", zk::AddWatchMode::PersistentRecursive)
        .await
        .unwrap();
    client.set_data("/rc/new", b"1", None).await.unwrap();
    client.set_data("/rc/new", b"2", None).await.unwrap();
    t.push(format!("persistent: {}", next_event(&mut p).await));
    t.push(format!("persistent: {}", next_event(&mut p).await));
    client.create("/rc/a/b/deep", b"", &all).await.unwrap();
    client.set_data("/rc/a/b/deep", b"d", None).await.unwrap();
    client.delete("/rc/a/b/deep", None).await.unwrap();
    for _ in 0..3 {
        t.push(format!("recursive: {}", next_event(&mut r).await));
    }
    p.remove().await.unwrap();
    r.remove().await.unwrap();
    t.push("removeWatches".into());

    // ACLs and digest auth; whoAmI.
    let (acl, s) = client.get_acl("/rc").await.unwrap();
    t.push(format!("getAcl: {acl:?} {}", stat(&s)));
    client
        .auth("digest".to_string(), b"alice:secret".to_vec())
        .await
        .unwrap();
    let mut users = client.list_auth_users().await.unwrap();
    users.sort_by(|a, b| (a.scheme(), a.user()).cmp(&(b.scheme(), b.user())));
    t.push(format!("whoAmI: {users:?}"));
    let creator = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
    client.create("/rc/private", b"p", &creator).await.unwrap();
    let (acl, _) = client.get_acl("/rc/private").await.unwrap();
    t.push(format!("creator acl: {acl:?}"));
    let read_only = [zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())];
    let s = client
        .set_acl("/rc/new", &read_only, Some(0))
        .await
        .unwrap();
    t.push(format!("setAcl: {}", stat(&s)));
    let err = client
        .set_acl("/rc/new", &read_only, Some(0))
        .await
        .unwrap_err();
    t.push(format!("setAcl stale: {err:?}"));
    let stranger = zk::Client::connect(&addr).await.unwrap();
    let err = stranger.get_data("/rc/private").await.unwrap_err();
    t.push(format!("stranger get private: {err:?}"));
    let err = stranger.set_data("/rc/new", b"no", None).await.unwrap_err();
    t.push(format!("stranger set read-only: {err:?}"));
    let err = stranger
        .auth("nosuchscheme".to_string(), b"x".to_vec())
        .await
        .unwrap_err();
    t.push(format!("unknown auth scheme: {err:?}"));
    drop(stranger);

    // sync, multi (with check), multiRead, a failing multi.
    client.sync("/rc").await.unwrap();
    t.push("sync".into());
    let mut w = client.new_multi_writer();
    w.add_check_version("/rc", 3).unwrap();
    w.add_create("/rc/m1", b"m", &all).unwrap();
    w.add_set_data("/rc/m1", b"mm", Some(0)).unwrap();
    w.add_delete("/rc/new", None).unwrap();
    let results = w.commit().await.unwrap();
    for r in &results {
        t.push(format!("multi: {}", multi_result(r)));
    }
    // Containers and TTL nodes inside a multi answer with their own op type.
    let mut w = client.new_multi_writer();
    let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
    w.add_create("/rc/mc", b"", &container).unwrap();
    w.add_create("/rc/mt", b"", &ttl).unwrap();
    match w.commit().await {
        Ok(results) => {
            for r in &results {
                t.push(format!("multi extended: {}", multi_result(r)));
            }
        }
        Err(e) => t.push(format!("multi extended: {e:?}")),
    }
    let mut w = client.new_multi_writer();
    w.add_create("/rc/m2", b"", &all).unwrap();
    w.add_check_version("/rc", 99).unwrap();
    let err = w.commit().await.unwrap_err();
    t.push(format!("multi failing: {err:?}"));
    let exists = client.check_stat("/rc/m2").await.unwrap();
    t.push(format!("m2 after failed multi: {exists:?}"));
    let mut cw = client.new_check_writer("/rc", Some(3)).unwrap();
    cw.add_set_data("/rc/m1", b"checked", None).unwrap();
    let results = cw.commit().await.unwrap();
    t.push(format!("check writer: {} results", results.len()));
    let mut rd = client.new_multi_reader();
    rd.add_get_data("/rc/m1").unwrap();
    rd.add_get_children("/rc/a").unwrap();
    rd.add_get_data("/rc/missing").unwrap();
    for r in rd.commit().await.unwrap() {
        t.push(format!(
            "multiRead: {}",
            match r {
                zk::MultiReadResult::Data { data, stat: s } =>
                    format!("data {:?} {}", String::from_utf8_lossy(&data), stat(&s)),
                zk::MultiReadResult::Children { children } => format!("children {children:?}"),
                zk::MultiReadResult::Error { err } => format!("error {err:?}"),
                other => format!("{other:?}"),
            }
        ));
    }

    // Configuration node and reconfig (disabled on a standalone server).
    let config = client.get_config().await.map(|(d, _)| d.len());
    t.push(format!("get_config: {}", config.is_ok()));
    let update = zk::EnsembleUpdate::New {
        ensemble: ["server.1=127.0.0.1:2888:3888;2181"].into_iter(),
    };
    let err = client.update_ensemble(update, None).await.unwrap_err();
    t.push(format!("reconfig: {err:?}"));

    // A chrooted view of the same session.
    let rooted = client.clone().chroot("/rc").unwrap();
    let (data, _) = rooted.get_data("/m1").await.unwrap();
    t.push(format!(
        "chroot get /m1: {:?}",
        String::from_utf8_lossy(&data)
    ));
    let (_, seq) = rooted
        .create(
            "/a/s-",
            b"",
            &zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all()),
        )
        .await
        .unwrap();
    t.push(format!("chroot sequential: {seq}"));

    // A lock recipe, then closeSession removes the ephemerals.
    let prefix = zk::LockPrefix::new_curator("/rc/locks", "lock-").unwrap();
    let options = zk::LockOptions::new(zk::Acls::anyone_all())
        .with_ancestor_options(all.clone())
        .unwrap();
    let lock = client.lock(prefix, b"", options).await.unwrap();
    lock.create("/rc/locked", b"", &all).await.unwrap();
    t.push(format!(
        "lock path under /rc/locks: {}",
        lock.lock_path().starts_with("/rc/locks/")
    ));
    drop(lock);

    // Pings keep a quiet session alive past its timeout.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, s) = client.get_data("/rc/eph").await.unwrap();
    t.push(format!("after idle: {}", stat(&s)));
    drop(rooted);
    drop(client);
    let observer = zk::Client::connect(&addr).await.unwrap();
    let mut left = Vec::new();
    for _ in 0..50 {
        left = observer.list_ephemerals("/rc").await.unwrap();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.push(format!("ephemerals after close: {left:?}"));
    t
}

fn multi_result(r: &zk::MultiWriteResult) -> String {
    match r {
        zk::MultiWriteResult::Check => "check".into(),
        zk::MultiWriteResult::Create { path, stat: s } => format!("create {path} {}", stat(s)),
        zk::MultiWriteResult::SetData { stat: s } => format!("setData {}", stat(s)),
        zk::MultiWriteResult::Delete => "delete".into(),
        other => format!("{other:?}"),
    }
}

fn run(addr: String) -> Vec<String> {
    zk_tests::runtime().block_on(scenario(addr))
}

#[test]
fn zookeeper_client_crate_sees_zkd_as_zookeeper() {
    let dir = std::env::temp_dir().join(format!("zkd-rust-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |_| {});
    let ours = run(zkd.addr.to_string());
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
    println!("zkd:\n{}", ours.join("\n"));
    // Spot checks that hold whatever the reference says.
    assert!(ours.contains(&"create again: NodeExists".to_string()));
    assert!(ours.contains(&"set stale: BadVersion".to_string()));
    assert!(ours
        .iter()
        .any(|l| l.starts_with("data watch: NodeDataChanged")));
    assert!(ours.contains(&"ephemerals after close: []".to_string()));

    if !zookeeper::available() {
        return;
    }
    let real = ZooKeeper::start("rust-client", "", "-Dzookeeper.extendedTypesEnabled=true");
    let theirs = run(real.addr.to_string());
    drop(real);
    zk_tests::assert_same_transcript("zookeeper-client", &ours, &theirs);
}
