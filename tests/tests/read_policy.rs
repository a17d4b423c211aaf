//! `readPolicy` on a 3-node zkd ensemble: reads under a `linearizable` prefix go through a
//! read barrier (counted in `mntr`), so a read at a follower right after a write acknowledged
//! by another server always sees it; reads elsewhere stay local; `bounded(ms)` serves
//! locally while the follower is in touch with its leader. The stale-leader case (an old
//! leader cut off from its quorum must not answer) is proved on the real `Peer` in
//! `crates/zk-zab/tests/read_barrier.rs` and across thousands of seeds in zk-sim.

#![allow(clippy::unwrap_used)]

use zk_client::{Client, CreateMode};
use zk_proto::well_known;
use zk_server::config::ReadPolicy;

fn monitor(z: &zk_tests::zkd::Zkd) -> serde_json::Value {
    serde_json::from_str(&z.admin_get("/commands/monitor")).unwrap()
}

async fn create_all(c: &Client, paths: &[&str]) {
    for p in paths {
        c.create(
            p,
            b"0".to_vec(),
            well_known::open_acl_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
    }
}

fn leader_index(servers: &[zk_tests::zkd::Zkd]) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        for (i, s) in servers.iter().enumerate() {
            let srvr = zk_tests::zookeeper::four_letter(s.addr, "srvr").unwrap_or_default();
            if srvr.contains("Mode: leader") {
                return i;
            }
        }
        assert!(std::time::Instant::now() < deadline, "no leader");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn linearizable_prefixes_read_through_a_barrier_and_see_every_acknowledged_write() {
    let servers = zk_tests::zkd::start_ensemble_with("read-policy", 3, |c| {
        c.read_policy_prefixes = vec![("/lin".into(), ReadPolicy::Linearizable)];
    });
    let leader = leader_index(&servers);
    let (a, b) = ((leader + 1) % 3, (leader + 2) % 3);
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let writer = Client::connect(&servers[a].addr.to_string()).await.unwrap();
        let reader = Client::connect(&servers[b].addr.to_string()).await.unwrap();
        create_all(&writer, &["/lin", "/loc"]).await;
        let before = monitor(&servers[b])["read_barrier_reads"].as_u64().unwrap();
        for i in 1..=200u32 {
            let v = i.to_string();
            writer.set_data("/lin", v.clone(), -1).await.unwrap();
            // Another server, right after the acknowledgement: the barrier makes it current.
            let (data, _) = reader.get_data("/lin").await.unwrap();
            assert_eq!(
                data.as_deref(),
                Some(v.as_bytes()),
                "read {i} at a follower"
            );
        }
        let after = monitor(&servers[b])["read_barrier_reads"].as_u64().unwrap();
        assert_eq!(after - before, 200, "one barrier per /lin read");
        for _ in 0..50 {
            reader.get_data("/loc").await.unwrap();
        }
        let local = monitor(&servers[b])["read_barrier_reads"].as_u64().unwrap();
        assert_eq!(local, after, "reads outside /lin stay local");
        // Pipelined reads share confirmation rounds and keep the session's order.
        let mut pending = Vec::new();
        for _ in 0..100 {
            pending.push(reader.get_data("/lin"));
        }
        writer.set_data("/lin", b"last".to_vec(), -1).await.unwrap();
        let (data, _) = reader.get_data("/lin").await.unwrap();
        assert_eq!(data.as_deref(), Some(&b"last"[..]));
        for p in pending {
            p.await.unwrap();
        }
        println!(
            "follower {}: {} reads through a barrier, {} failures",
            b + 1,
            monitor(&servers[b])["read_barrier_reads"],
            monitor(&servers[b])["read_barrier_failures"]
        );
        writer.close().await;
        reader.close().await;
    });
}

#[test]
fn bounded_reads_stay_local_while_in_touch_with_the_leader() {
    let servers = zk_tests::zkd::start_ensemble_with("read-policy-bounded", 3, |c| {
        c.read_policy = ReadPolicy::Bounded(60_000);
    });
    let leader = leader_index(&servers);
    let b = (leader + 1) % 3;
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let c = Client::connect(&servers[b].addr.to_string()).await.unwrap();
        c.create(
            "/b",
            b"x".to_vec(),
            well_known::open_acl_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        for _ in 0..50 {
            c.get_data("/b").await.unwrap();
        }
        assert_eq!(monitor(&servers[b])["read_barrier_reads"], 0);
        c.close().await;
    });
}

#[test]
fn an_observer_serves_linearizable_and_bounded_reads() {
    // Server 3 observes: it follows without voting, and reads there go through the
    // leader's confirmation round (/lin) or stay local while it is in touch (/b).
    let servers = zk_tests::zkd::start_ensemble_with("read-policy-observer", 3, |c| {
        c.servers[2].observer = true;
        c.read_policy = ReadPolicy::Bounded(60_000);
        c.read_policy_prefixes = vec![("/lin".into(), ReadPolicy::Linearizable)];
    });
    let leader = leader_index(&servers);
    assert_ne!(leader, 2, "an observer never leads");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !zk_tests::zookeeper::four_letter(servers[2].addr, "srvr")
        .unwrap_or_default()
        .contains("Mode: observer")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "server 3 never observed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let writer = Client::connect(&servers[leader].addr.to_string())
            .await
            .unwrap();
        let observer = Client::connect(&servers[2].addr.to_string()).await.unwrap();
        create_all(&writer, &["/lin", "/b"]).await;
        for i in 1..=50u32 {
            let v = i.to_string();
            writer.set_data("/lin", v.clone(), -1).await.unwrap();
            let (data, _) = observer.get_data("/lin").await.unwrap();
            assert_eq!(
                data.as_deref(),
                Some(v.as_bytes()),
                "read {i} at the observer"
            );
        }
        for _ in 0..20 {
            observer.get_data("/b").await.unwrap();
        }
        assert_eq!(monitor(&servers[2])["read_barrier_reads"], 50);
        writer.close().await;
        observer.close().await;
    });
}
