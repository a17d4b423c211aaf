//! Starting a real Apache ZooKeeper 3.8 (Debian package) for differential tests.

use crate::free_port;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ZK_SERVER: &str = "/usr/share/zookeeper/bin/zkServer.sh";

/// Whether the real server is installed; under `CI` its absence is a failure.
pub fn available() -> bool {
    let ok = Path::new(ZK_SERVER).exists();
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install Apache ZooKeeper (apt-get install zookeeper)"
        );
        println!("SKIPPED: {ZK_SERVER} missing (apt-get install zookeeper)");
    }
    ok
}

/// A running ZooKeeper, stopped (killed) on drop.
#[derive(Debug)]
pub struct ZooKeeper {
    child: Child,
    pub addr: SocketAddr,
    dir: PathBuf,
    /// Ensemble members: (quorum, election, client) ports; zeros for a standalone server.
    pub ports: (u16, u16, u16),
}

/// Sends a four-letter word and returns the answer.
pub fn four_letter(addr: SocketAddr, word: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(word.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

impl ZooKeeper {
    /// Starts a standalone server with `extra` zoo.cfg lines and JVM flags.
    pub fn start(name: &str, extra: &str, jvm_flags: &str) -> ZooKeeper {
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!("zk-real-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap_or_default();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=*\npreAllocSize=64\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap_or_default();
        let mut child = Command::new(ZK_SERVER)
            .arg("start-foreground")
            .arg(&cfg)
            .env("ZOO_LOG_DIR", &dir)
            .env("SERVER_JVMFLAGS", jvm_flags)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("zkServer.sh runs");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if four_letter(addr, "srvr").is_some_and(|s| s.contains("Zookeeper version")) {
                return ZooKeeper {
                    child,
                    addr,
                    dir,
                    ports: (0, 0, 0),
                };
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("ZooKeeper did not start on {addr}");
    }
}

/// Starts an `n`-server ensemble on loopback and waits until every server serves clients.
pub fn start_ensemble(name: &str, n: usize) -> Vec<ZooKeeper> {
    start_ensemble_with(name, n, "", "")
}

/// The ports of each server of an ensemble started by [`start_ensemble_with`]:
/// (quorum, election, client).
pub fn ensemble_ports(servers: &[ZooKeeper]) -> Vec<(u16, u16, u16)> {
    servers.iter().map(|s| s.ports).collect()
}

/// [`start_ensemble`] with `extra` zoo.cfg lines and `jvm_flags` (SERVER_JVMFLAGS).
pub fn start_ensemble_with(name: &str, n: usize, extra: &str, jvm_flags: &str) -> Vec<ZooKeeper> {
    let ports: Vec<(u16, u16, u16)> = (0..n)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let servers: String = ports
        .iter()
        .enumerate()
        .map(|(i, (peer, election, client))| {
            format!(
                "server.{}=127.0.0.1:{peer}:{election};127.0.0.1:{client}\n",
                i + 1
            )
        })
        .collect();
    let mut children = Vec::new();
    for (i, (_, _, client)) in ports.iter().enumerate() {
        let dir =
            std::env::temp_dir().join(format!("zk-real-{name}-{}-{}", i + 1, std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap_or_default();
        std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1)).unwrap_or_default();
        let cfg = dir.join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "tickTime=500\ninitLimit=20\nsyncLimit=10\ndataDir={}\nadmin.enableServer=false\n4lw.commands.whitelist=*\npreAllocSize=64\nstandaloneEnabled=false\n{extra}\n{servers}",
                dir.join("data").display()
            ),
        )
        .unwrap_or_default();
        let child = Command::new(ZK_SERVER)
            .arg("start-foreground")
            .arg(&cfg)
            .env("ZOO_LOG_DIR", &dir)
            .env("SERVER_JVMFLAGS", format!("-Xmx256m {jvm_flags}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("zkServer.sh runs");
        children.push(ZooKeeper {
            child,
            addr: ([127, 0, 0, 1], *client).into(),
            dir,
            ports: ports[i],
        });
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    for zk in &children {
        while !four_letter(zk.addr, "srvr").is_some_and(|s| s.contains("Mode: ")) {
            assert!(Instant::now() < deadline, "ensemble did not form");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    children
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        // zkServer.sh execs java in the foreground, so the child is the JVM.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
