//! `zkd` processes as one ensemble on loopback: start, kill -9, restart, and ask them
//! who leads (`srvr`) and what they hold (AdminServer). Test support: a failure to start
//! or ask a server is the test failing, hence the unwraps.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::free_port;

/// One `zkd` process of an ensemble on loopback, with its own directory and ports.
#[derive(Debug)]
pub struct Server {
    pub id: usize,
    pub dir: PathBuf,
    pub client_port: u16,
    pub admin_port: u16,
    /// The peer (Zab) port.
    pub quorum_port: u16,
    pub child: Option<Child>,
    /// Crash points armed at the next start (`ZKD_FAILPOINTS`).
    pub failpoints: String,
    /// The `zkd` binary (a test's `CARGO_BIN_EXE_zkd`).
    pub binary: PathBuf,
}

impl Server {
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("zkd.log"))
            .unwrap();
        let jaas = self.dir.parent().unwrap().join("jaas.conf");
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(self.dir.join("zoo.cfg"))
            .env(
                "RUST_LOG",
                std::env::var("ZKD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("ZKD_FAILPOINTS", &self.failpoints)
            .env(
                "SERVER_JVMFLAGS",
                format!("-Djava.security.auth.login.config={}", jaas.display()),
            )
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal (`-STOP`, `-CONT`, ...) to the running process.
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(sig)
                .arg(c.id().to_string())
                .status();
        }
    }

    /// The process's resident set in KiB (`VmRSS`), while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// A four-letter word's answer.
    pub fn four(&self, word: &str) -> String {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        s.write_all(word.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    }

    /// An AdminServer command's JSON body.
    pub fn admin(&self, command: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin_port)).unwrap();
        write!(
            s,
            "GET /commands/{command} HTTP/1.0\r\nHost: localhost\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned()
    }

    /// The HTTP status of an AdminServer path.
    pub fn http_status(&self, path: &str) -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", self.admin_port)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// `srvr`'s Mode and Zxid, or `None` when the server does not answer.
    pub fn srvr(&self) -> Option<(String, i64)> {
        srvr_at(&self.addr())
    }
}

/// `srvr`'s Mode and Zxid of the server at `addr` (`host:port`), or `None` when it does
/// not answer within a couple of seconds.
pub fn srvr_at(addr: &str) -> Option<(String, i64)> {
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"srvr").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let mode = text
        .lines()
        .find_map(|l| l.strip_prefix("Mode: "))?
        .to_owned();
    let zxid = text
        .lines()
        .find_map(|l| l.strip_prefix("Zxid: 0x"))
        .and_then(|z| i64::from_str_radix(z.trim(), 16).ok())?;
    Some((mode, zxid))
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts `voters` participants and `observers` observers (the last ids), with `extra`
/// zoo.cfg lines and the crash points `failpoints`; the last `joiners` servers are not in
/// the others' `server.N` lines (their own lists everyone: they join by reconfiguration).
/// Quorum links are authenticated as ZooKeeper users configure it (JAAS, DIGEST).
pub fn start(
    zkd: &Path,
    voters: usize,
    observers: usize,
    extra: &str,
    joiners: usize,
    failpoints: &str,
) -> Vec<Server> {
    let n = voters + observers;
    let tag: String = failpoints
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    // One directory per ensemble, even for tests of one binary running in parallel.
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let serial = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = std::env::temp_dir().join(format!(
        "zkd-ensemble-{}-{serial}-{voters}-{observers}-{joiners}{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&base);
    let ports: Vec<(u16, u16, u16)> = (0..n)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let admin_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
    // Quorum links authenticated as ZooKeeper users configure it (JAAS, DIGEST).
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(
        base.join("jaas.conf"),
        "QuorumServer {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_zkpeer=\"s3cret\";\n};\nQuorumLearner {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  username=\"zkpeer\"\n  password=\"s3cret\";\n};\n",
    )
    .unwrap();
    let line = |i: usize| {
        let (q, e, c) = ports[i];
        let role = if i >= voters { ":observer" } else { "" };
        format!("server.{}=127.0.0.1:{q}:{e}{role};{c}\n", i + 1)
    };
    let all: String = (0..n).map(line).collect();
    let founders: String = (0..n - joiners).map(line).collect();
    let mut servers = Vec::new();
    for (i, (_, _, client)) in ports.iter().enumerate() {
        let lines = if i < n - joiners { &founders } else { &all };
        let dir = base.join(format!("s{}", i + 1));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1)).unwrap();
        std::fs::write(
            dir.join("zoo.cfg"),
            format!(
                "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client}\nclientPortAddress=127.0.0.1\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={}\n4lw.commands.whitelist=*\npreAllocSize=64\nreadonlymode.enabled=true\nquorum.auth.enableSasl=true\nquorum.auth.learnerRequireSasl=true\nquorum.auth.serverRequireSasl=true\n{extra}\n{lines}",
                dir.join("data").display(),
                admin_ports[i]
            ),
        )
        .unwrap();
        let mut s = Server {
            id: i + 1,
            dir,
            client_port: *client,
            admin_port: admin_ports[i],
            quorum_port: ports[i].0,
            child: None,
            failpoints: failpoints.to_owned(),
            binary: zkd.to_path_buf(),
        };
        s.start();
        servers.push(s);
    }
    servers
}

/// One standalone `zkd` (a one-member ensemble is standalone) with `extra` zoo.cfg lines
/// and the crash or delay points `failpoints`, once it answers `srvr`.
pub fn standalone(zkd: &Path, extra: &str, failpoints: &str) -> Vec<Server> {
    let servers = start(zkd, 1, 0, extra, 0, failpoints);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while servers[0].srvr().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never answered srvr"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    servers
}

/// Waits until the running servers have one leader and the rest follow it, all at the same
/// zxid; returns the leader's index.
pub fn settled(servers: &[Server], running: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states: Vec<Option<(String, i64)>> =
            running.iter().map(|&i| servers[i].srvr()).collect();
        let leaders: Vec<usize> = running
            .iter()
            .zip(&states)
            .filter(|(_, s)| s.as_ref().is_some_and(|(m, _)| m == "leader"))
            .map(|(i, _)| *i)
            .collect();
        let followers = states
            .iter()
            .filter(|s| s.as_ref().is_some_and(|(m, _)| m == "follower"))
            .count();
        let zxids: Vec<i64> = states.iter().flatten().map(|(_, z)| *z).collect();
        if leaders.len() == 1
            && followers + 1 == running.len()
            && zxids.windows(2).all(|w| w[0] == w[1])
        {
            return leaders[0];
        }
        assert!(Instant::now() < deadline, "no settled ensemble: {states:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn connect_string(servers: &[Server]) -> String {
    servers
        .iter()
        .map(Server::addr)
        .collect::<Vec<_>>()
        .join(",")
}
