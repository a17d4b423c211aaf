//! What the container image and the Kubernetes manifests rely on, through the `zkd` binary:
//! - `$ZOO_CONF_DIR/zoo.cfg` is the configuration when `--config` is absent (a mounted
//!   `/conf/zoo.cfg` in the image);
//! - `--myid-from-ordinal` takes each member's id from its host name (`zk-1` is server.2),
//!   so three members sharing their server lines and no `myid` file form an ensemble;
//!   a host name that names no server is refused with a clear message;
//! - `zkd probe ready|live` (the image's HEALTHCHECK) exits 0 only when the server is
//!   ready, and fails on a closed port.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};
use zk_tests::free_port;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn probe(kind: &str, admin_port: u16) -> Output {
    Command::new(ZKD)
        .args(["probe", kind, "--admin", &format!("127.0.0.1:{admin_port}")])
        .args(["--timeout-ms", "1000"])
        .output()
        .unwrap()
}

struct Member {
    child: Child,
    admin_port: u16,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A conf dir with a zoo.cfg that has no myid and the shared server lines.
fn conf_dir(base: &Path, name: &str, servers: &str, client: u16, admin: u16) -> PathBuf {
    let conf = base.join(name).join("conf");
    std::fs::create_dir_all(&conf).unwrap();
    std::fs::write(
        conf.join("zoo.cfg"),
        format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\n\
             admin.serverPort={admin}\npreAllocSize=64\n{servers}",
            base.join(name).join("data").display()
        ),
    )
    .unwrap();
    conf
}

fn spawn(conf: &Path, hostname: &str, admin_port: u16) -> Member {
    let log = std::fs::File::create(conf.join("zkd.log")).unwrap();
    let child = Command::new(ZKD)
        .arg("--myid-from-ordinal")
        .env("ZOO_CONF_DIR", conf)
        .env("HOSTNAME", hostname)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    Member { child, admin_port }
}

#[test]
fn members_take_ids_from_ordinals_and_conf_dir_and_report_readiness() {
    let base = std::env::temp_dir().join(format!("zkd-container-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let ports: Vec<(u16, u16, u16)> = (0..3)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, (client, quorum, _))| {
            format!(
                "server.{}=127.0.0.1:{quorum}:{}:participant;{client}\n",
                i + 1,
                free_port()
            )
        })
        .collect();

    // Before anything runs, the probe fails on the closed port.
    let closed = probe("live", ports[0].2);
    assert!(!closed.status.success());
    assert!(
        String::from_utf8_lossy(&closed.stderr).contains("/healthz"),
        "{closed:?}"
    );

    // A host name whose ordinal names no server is refused, with the reason.
    let conf = conf_dir(&base, "stray", &servers, free_port(), free_port());
    let stray = Command::new(ZKD)
        .arg("--myid-from-ordinal")
        .env("ZOO_CONF_DIR", &conf)
        .env("HOSTNAME", "zk-7")
        .output()
        .unwrap();
    assert!(!stray.status.success());
    let msg = String::from_utf8_lossy(&stray.stderr);
    assert!(
        msg.contains("8") && msg.contains("does not name a server.N line"),
        "{msg}"
    );

    let members: Vec<Member> = ports
        .iter()
        .enumerate()
        .map(|(i, (client, _, admin))| {
            let conf = conf_dir(&base, &format!("m{i}"), &servers, *client, *admin);
            spawn(&conf, &format!("zk-{i}"), *admin)
        })
        .collect();

    // Alive at once; ready once the three have elected a leader.
    let deadline = Instant::now() + Duration::from_secs(60);
    for m in &members {
        while !probe("live", m.admin_port).status.success() {
            assert!(Instant::now() < deadline, "zkd never answered /healthz");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for m in &members {
        loop {
            let out = probe("ready", m.admin_port);
            if out.status.success() {
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ready");
                break;
            }
            assert!(Instant::now() < deadline, "the ensemble never became ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // Each took the id of its ordinal, and the three agree on one leader among them.
    let mut leaders = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let conf = http_get(m.admin_port, "/commands/conf").unwrap();
        assert!(
            conf.contains(&format!("\"server_id\":{}", i + 1))
                || conf.contains(&format!("\"server_id\": {}", i + 1)),
            "member zk-{i}: {conf}"
        );
        let leader = http_get(m.admin_port, "/commands/leader").unwrap();
        let id = leader
            .split("\"leader_id\"")
            .nth(1)
            .and_then(|r| {
                r.trim_start_matches([':', ' '])
                    .split([',', '}'])
                    .next()
                    .map(|n| n.trim().to_owned())
            })
            .unwrap();
        leaders.push(id);
    }
    assert!(
        leaders.iter().all(|l| l == &leaders[0]) && ["1", "2", "3"].contains(&&*leaders[0]),
        "{leaders:?}"
    );

    // Two members gone: the last one is alive but not ready (no quorum).
    let mut members = members;
    let last = members.pop().unwrap();
    drop(members);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = probe("ready", last.admin_port);
        if !out.status.success() {
            assert!(String::from_utf8_lossy(&out.stderr).contains("503"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a member without a quorum stayed ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(probe("live", last.admin_port).status.success());
    drop(last);
    let _ = std::fs::remove_dir_all(&base);
}
