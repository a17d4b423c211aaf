//! A client that pipelines a flood of requests and never reads its answers: zkd's memory
//! stays bounded and every other client keeps being served.
//!
//! The flood asks for a 1 MB znode 20,000 times (20 GB of answers) over one connection
//! and never reads. The server's resident set is sampled meanwhile; another client does
//! reads and writes throughout, each within a bound.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use zk_proto::*;
use zk_tests::free_port;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");
/// Answers a non-reading client may cost, at most (the connection's limits are 128
/// unanswered requests and 8 MB unwritten; the rest is slack for the allocator).
const RSS_GROWTH_MAX_MB: u64 = 400;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

fn frame(body: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = Vec::new();
    body(&mut b);
    let mut f = (b.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&b);
    f
}

fn handshake(s: &mut TcpStream) {
    let connect = frame(|b| {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: 30_000,
            session_id: 0,
            passwd: Some(bytes::Bytes::from_static(&[0; 16])),
            read_only: Some(false),
        }
        .write(b)
    });
    s.write_all(&connect).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory_and_nobody_else_service() {
    let dir = std::env::temp_dir().join(format!("zkd-flood-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "dataDir={}\nclientPort={port}\nadmin.enableServer=false\npreAllocSize=64\n",
            dir.display()
        ),
    )
    .unwrap();
    let server = Server(
        Command::new(ZKD)
            .arg("--config")
            .arg(dir.join("zoo.cfg"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = server.0.id();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match zk_tests::raw::RawClient::connect(addr.parse().unwrap(), 30_000) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("zkd did not start: {e}"),
        }
    };
    let mut other = client;
    let (h, _) = other
        .call(&Request::Create(CreateRequest {
            path: "/big".into(),
            data: Some(bytes::Bytes::from(vec![7u8; 1_000_000])),
            acl: well_known::open_acl_unsafe(),
            flags: 0,
        }))
        .unwrap();
    assert_eq!(h.err, 0);
    let baseline = rss_mb(pid);

    // The flood: 20,000 getData /big, written as fast as the server takes them, never read.
    let flood_addr = addr.clone();
    let flooder = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&flood_addr).unwrap();
        handshake(&mut s);
        s.set_write_timeout(Some(Duration::from_secs(8))).unwrap();
        let mut sent = 0;
        for xid in 1..=20_000 {
            let req = frame(|b| {
                RequestHeader {
                    xid,
                    r#type: OpCode::GetData as i32,
                }
                .write(b);
                GetDataRequest {
                    path: "/big".into(),
                    watch: false,
                }
                .write(b);
            });
            if s.write_all(&req).is_err() {
                break; // the server stopped reading: TCP pushes back
            }
            sent += 1;
        }
        // Hold the connection open, unread, while the test samples.
        std::thread::sleep(Duration::from_secs(2));
        sent
    });

    // Meanwhile: another client's reads and writes keep going, and memory is sampled.
    let mut peak = baseline;
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(6) {
        let t = Instant::now();
        let (h, _) = other
            .call(&Request::Create(CreateRequest {
                path: format!("/other-{i}"),
                data: None,
                acl: well_known::open_acl_unsafe(),
                flags: 0,
            }))
            .unwrap();
        assert_eq!(h.err, 0);
        let (h, _) = other
            .call(&Request::Exists(ExistsRequest {
                path: format!("/other-{i}"),
                watch: false,
            }))
            .unwrap();
        assert_eq!(h.err, 0);
        slowest = slowest.max(t.elapsed());
        peak = peak.max(rss_mb(pid));
        i += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = flooder.join().unwrap();
    println!(
        "flood: {sent} requests of 1 MB answers sent unread; zkd RSS {baseline} MB -> peak {peak} MB; \
         the other client did {i} create+exists pairs, slowest {slowest:?}"
    );
    assert!(
        peak <= baseline + RSS_GROWTH_MAX_MB,
        "zkd grew from {baseline} MB to {peak} MB under a non-reading client"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "another client waited {slowest:?}"
    );
    assert!(i > 50, "the other client got only {i} rounds through");
    // The flood did get far enough to matter: more answers than the limits let through.
    assert!(sent > 200, "only {sent} flood requests were sent");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
