//! Size guardrails on a real `zkd` process, through real clients (zk-client, and kazoo
//! when it is installed):
//! - a write that takes a znode's data near `jute.maxbuffer` is logged and counted;
//! - a frame over the port's `maxPacket` closes that connection (as ZooKeeper does), is
//!   counted and logged with the key to raise, and the server goes on serving others;
//! - a children list that grows near the limit is logged and counted while it grows, and
//!   a getChildren reply over it (which default clients cannot read) is counted;
//! - `guardrails.maxChildren` refuses creates with QUOTAEXCEEDED (also inside a multi),
//!   counts them, and frees a slot on delete;
//! - `/commands/big_families` names the biggest families and nodes;
//! - a port whose `clientPort.maxPacket` is raised takes frames over `jute.maxbuffer`.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use zk_client::{Client, CreateMode, Error, Op, OpResult};
use zk_proto::{well_known, ErrorCode};
use zk_tests::processes::{self, Server};

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");
/// ZooKeeper's default `jute.maxbuffer`.
const LIMIT: usize = 0xfffff;
const CAP: usize = 3000;

fn json(server: &Server, command: &str) -> serde_json::Value {
    serde_json::from_str(&server.admin(command)).unwrap()
}

fn standalone(extra: &str) -> Vec<Server> {
    processes::standalone(Path::new(ZKD), extra, "")
}

fn log_of(server: &Server) -> String {
    std::fs::read_to_string(server.dir.join("zkd.log")).unwrap()
}

fn create_op(path: String) -> Op {
    Op::Create {
        path,
        data: Vec::new().into(),
        acl: well_known::open_acl_unsafe(),
        mode: CreateMode::Persistent,
        ttl: None,
    }
}

/// Creates `names` under `parent` in multis of `batch`.
async fn create_children(c: &Client, parent: &str, names: &[String], batch: usize) {
    for chunk in names.chunks(batch) {
        let ops = chunk
            .iter()
            .map(|n| create_op(format!("{parent}/{n}")))
            .collect();
        let results = c.multi(ops).await.unwrap();
        assert!(results.iter().all(|r| matches!(r, OpResult::Create { .. })));
    }
}

fn refused_by_cap(r: Result<Vec<OpResult>, Error>) -> bool {
    match r {
        Err(e) => e.code() == ErrorCode::QuotaExceeded,
        Ok(results) => results.contains(&OpResult::Error(ErrorCode::QuotaExceeded)),
    }
}

#[test]
fn size_limits_are_warned_about_counted_and_enforced() {
    let servers = standalone(&format!(
        "guardrails.maxChildren={CAP}\nguardrails.warnPercent=50\n"
    ));
    let s = &servers[0];
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let c = Client::connect(&s.addr()).await.unwrap();
        let bystander = Client::connect(&s.addr()).await.unwrap();
        let acl = well_known::open_acl_unsafe;

        // Data near the limit: written, logged, counted.
        c.create("/big", vec![1u8; 600_000], acl(), CreateMode::Persistent)
            .await
            .unwrap();
        let m = json(s, "monitor");
        assert_eq!(m["guardrail_data_near_limit"], 1, "{m}");
        assert!(log_of(s).contains("znode data near jute.maxbuffer"));

        // A frame over maxPacket: that connection closes, nothing is written, and it is
        // counted; the client reconnects with its session and the bystander never notices.
        let before = c.session_id();
        let r = c.set_data("/big", vec![2u8; LIMIT + 1], -1).await;
        assert_eq!(r.unwrap_err().code(), ErrorCode::ConnectionLoss);
        let m = json(s, "monitor");
        assert_eq!(m["guardrail_oversized_frames"], 1, "{m}");
        let log = log_of(s);
        assert!(
            log.contains("frame larger than this port's maxPacket")
                && log.contains("clientPort.maxPacket"),
            "{log}"
        );
        let (data, _) = c.get_data("/big").await.unwrap();
        assert_eq!(data.unwrap()[0], 1, "the oversized write did not happen");
        assert_eq!(c.session_id(), before, "same session after the reconnect");
        bystander
            .create("/still-serving", Vec::new(), acl(), CreateMode::Persistent)
            .await
            .unwrap();

        // A family growing past half the limit: 2,700 children named with 400 characters
        // make a getChildren reply of about 1.09 MB.
        c.create("/fam", Vec::new(), acl(), CreateMode::Persistent)
            .await
            .unwrap();
        let names: Vec<String> = (0..2700)
            .map(|i| format!("{i:04}{}", "n".repeat(396)))
            .collect();
        create_children(&c, "/fam", &names, 100).await;
        let m = json(s, "monitor");
        let near = m["guardrail_children_near_limit"].as_u64().unwrap();
        // 4 + k * 404 + 84 >= 524,287 from the 1,298th child on; a multi is looked at once
        // applied, so each create of the multi that crossed (children 1,201 to 1,300) counts.
        assert_eq!(near, 2700 - 1200, "{m}");
        assert!(log_of(s).contains("children list near jute.maxbuffer"));
        // A default client cannot read the list; the server knows it sent one too big.
        let r = bystander.get_children("/fam").await;
        assert!(r.is_err(), "a reply over jute.maxbuffer was read: {r:?}");
        let m = json(s, "monitor");
        assert!(
            m["guardrail_oversized_replies"].as_u64().unwrap() >= 1,
            "{m}"
        );
        assert!(log_of(s).contains("reply over jute.maxbuffer"));
        // A client that raised its own limit reads it.
        let wide = Client::builder(&s.addr())
            .max_frame(4 << 20)
            .connect()
            .await
            .unwrap();
        assert_eq!(wide.get_children("/fam").await.unwrap().len(), 2700);

        // The children cap: QUOTAEXCEEDED past it, alone or in a multi; a delete makes room.
        c.create("/capped", Vec::new(), acl(), CreateMode::Persistent)
            .await
            .unwrap();
        let names: Vec<String> = (0..CAP).map(|i| format!("c{i}")).collect();
        create_children(&c, "/capped", &names, 500).await;
        let r = c
            .create(
                "/capped/one-more",
                Vec::new(),
                acl(),
                CreateMode::Persistent,
            )
            .await;
        assert_eq!(r.unwrap_err().code(), ErrorCode::QuotaExceeded);
        let r = c
            .multi(vec![
                create_op("/elsewhere".into()),
                create_op("/capped/in-multi".into()),
            ])
            .await;
        assert!(refused_by_cap(r));
        assert!(
            c.exists("/elsewhere").await.unwrap().is_none(),
            "the multi is atomic"
        );
        let m = json(s, "monitor");
        assert_eq!(m["guardrail_children_cap_refusals"], 2, "{m}");
        assert!(log_of(s).contains("guardrails.maxChildren"));
        c.delete("/capped/c0", -1).await.unwrap();
        c.create(
            "/capped/one-more",
            Vec::new(),
            acl(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        // Other parents are not capped by it (only /capped is full).
        c.create("/fam/x", Vec::new(), acl(), CreateMode::Persistent)
            .await
            .unwrap();

        // The report names the families and the node.
        let r = json(s, "big_families?n=3");
        println!("big_families: {r:#}");
        assert_eq!(r["by_children"][0]["path"], "/capped");
        assert_eq!(r["by_children"][0]["children"], CAP);
        assert_eq!(r["by_children"][1]["path"], "/fam");
        assert_eq!(r["by_children"][1]["children"], 2701);
        assert!(r["by_children"][1]["share_of_limit"].as_f64().unwrap() > 100.0);
        assert_eq!(r["largest_nodes"][0]["path"], "/big");
        assert_eq!(r["largest_nodes"][0]["data_bytes"], 600_000);
        assert_eq!(r["subtrees_by_bytes"][1]["path"], "/big");
        assert_eq!(r["by_children"].as_array().unwrap().len(), 3);
        // Prometheus text carries the counters.
        let metrics = {
            use std::io::{Read, Write};
            let mut t = std::net::TcpStream::connect(("127.0.0.1", s.admin_port)).unwrap();
            write!(t, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut text = String::new();
            t.read_to_string(&mut text).unwrap();
            text
        };
        assert!(
            metrics.contains("guardrail_children_cap_refusals 2"),
            "{metrics}"
        );
        bystander.get_data("/big").await.unwrap();
        c.close().await;
        bystander.close().await;
        wide.close().await;
    });

    // A real client of Apache ZooKeeper sees the documented error.
    if zk_tests::python_has("kazoo") {
        let script = format!(
            "from kazoo.client import KazooClient\n\
             from kazoo.exceptions import QuotaExceededError\n\
             zk = KazooClient(hosts='{}'); zk.start(timeout=10)\n\
             try:\n    zk.create('/capped/kazoo')\n    print('created')\n\
             except QuotaExceededError:\n    print('QuotaExceededError')\n\
             zk.stop()\n",
            s.addr()
        );
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.trim(), "QuotaExceededError", "{out:?}");
    }
}

#[test]
fn a_raised_max_packet_takes_bigger_frames() {
    let servers = standalone("clientPort.maxPacket=4194304\n");
    let s = &servers[0];
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let c = Client::builder(&s.addr())
            .max_frame(4 << 20)
            .connect()
            .await
            .unwrap();
        let two_mib = vec![9u8; 2 << 20];
        c.create(
            "/wide",
            two_mib.clone(),
            well_known::open_acl_unsafe(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        let (data, stat) = c.get_data("/wide").await.unwrap();
        assert_eq!(stat.data_length, 2 << 20);
        assert_eq!(data.unwrap(), two_mib);
        let m = json(s, "monitor");
        assert_eq!(m["guardrail_oversized_frames"], 0, "{m}");
        // Readers with the default limit are the ones at risk: counted.
        assert_eq!(m["guardrail_oversized_replies"], 1, "{m}");
        c.close().await;
    });
}
