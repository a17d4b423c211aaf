//! Chaos on real processes: three `zkd` processes, each in its own network namespace on a
//! veth link to one bridge, under a load of eight sessions while faults are injected:
//! partitions (one member from the others, the leader from the others, one way only),
//! random packet loss, SIGSTOP/SIGCONT, and `kill -9` then restart. Every operation's
//! invocation, completion and outcome is recorded; at the end the faults are healed and
//! the history (with every txn the servers logged, and their final digests) goes through
//! the simulator's checker (`zk_sim::check`): acknowledged writes are committed with the
//! reply the model gives, in real-time order; reads return the model's value at the zxid
//! the server answered at; logged prefixes agree; every server ends at the model's digest.
//!
//! Needs root for `ip netns` and `iptables` (CI runs as root; elsewhere it says SKIPPED).
//! Time box: `ZK_CHAOS_SECONDS` (CI default 60, at least 15 faults; long mode
//! `ZK_CHAOS_SECONDS=600`, at least 40).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zk_proto::*;
use zk_sim::check::{AckedWrite, History, Read};
use zk_tests::raw::RawClient;
use zk_tree::TxnResult;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");
const CLIENTS: usize = 8;
const KEYS: usize = 4;

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The namespaces, veths and bridge of one run; removed on drop.
struct Net {
    tag: String,
    subnet: u8,
}

impl Net {
    fn ns(&self, i: usize) -> String {
        format!("{}n{}", self.tag, i + 1)
    }
    fn ip(&self, i: usize) -> String {
        format!("10.79.{}.{}", self.subnet, i + 1)
    }
    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    fn setup() -> Option<Net> {
        let pid = std::process::id();
        let net = Net {
            tag: format!("zc{}", pid % 10000),
            subnet: (pid % 200) as u8 + 20,
        };
        let br = net.bridge();
        let ok = sh(&["ip", "link", "add", &br, "type", "bridge"])
            && sh(&["ip", "link", "set", &br, "up"])
            && sh(&[
                "ip",
                "addr",
                "add",
                &format!("10.79.{}.254/24", net.subnet),
                "dev",
                &br,
            ]);
        if !ok {
            return None;
        }
        // Bridged frames may cross the root namespace's FORWARD chain (Docker sets it to
        // DROP): let the members' traffic through.
        sh(&[
            "iptables", "-I", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT",
        ]);
        for i in 0..3 {
            let (ns, host, peer) = (
                net.ns(i),
                format!("{}h{i}", net.tag),
                format!("{}p{i}", net.tag),
            );
            let ok = sh(&["ip", "netns", "add", &ns])
                && sh(&[
                    "ip", "link", "add", &host, "type", "veth", "peer", "name", &peer,
                ])
                && sh(&["ip", "link", "set", &peer, "netns", &ns])
                && sh(&["ip", "link", "set", &host, "master", &br])
                && sh(&["ip", "link", "set", &host, "up"])
                && sh(&[
                    "ip",
                    "netns",
                    "exec",
                    &ns,
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", net.ip(i)),
                    "dev",
                    &peer,
                ])
                && sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", &peer, "up"])
                && sh(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            assert!(ok, "could not build namespace {ns}");
        }
        Some(net)
    }

    fn iptables(&self, i: usize, rule: &[&str]) {
        let ns = self.ns(i);
        let mut args = vec!["ip", "netns", "exec", &ns, "iptables"];
        args.extend_from_slice(rule);
        assert!(sh(&args), "iptables {rule:?} in {ns}");
    }

    /// Drops what member `i` receives from member `j` (one way).
    fn drop_from(&self, i: usize, j: usize) {
        let src = self.ip(j);
        self.iptables(i, &["-A", "INPUT", "-s", &src, "-j", "DROP"]);
    }

    fn lossy(&self, i: usize, percent: u32) {
        let p = format!("0.{percent:02}");
        for j in (0..3).filter(|j| *j != i) {
            let src = self.ip(j);
            self.iptables(
                i,
                &[
                    "-A",
                    "INPUT",
                    "-s",
                    &src,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "DROP",
                ],
            );
        }
    }

    fn heal(&self) {
        for i in 0..3 {
            self.iptables(i, &["-F", "INPUT"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 0..3 {
            sh(&["ip", "netns", "del", &self.ns(i)]);
            sh(&["ip", "link", "del", &format!("{}h{i}", self.tag)]);
        }
        let br = self.bridge();
        sh(&[
            "iptables", "-D", "FORWARD", "-i", &br, "-o", &br, "-j", "ACCEPT",
        ]);
        sh(&["ip", "link", "del", &br]);
    }
}

struct Server {
    ns: String,
    dir: std::path::PathBuf,
    child: Option<Child>,
    stopped: bool,
}

impl Server {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("zkd.log"))
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, ZKD, "--config"])
            .arg(self.dir.join("zoo.cfg"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.stopped = false;
    }
    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            sh(&["kill", sig, &c.id().to_string()]);
        }
    }
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill9();
    }
}

/// `srvr` Mode and Zxid of the server at `addr`.
fn srvr(addr: &str) -> Option<(String, i64)> {
    use std::io::{Read as _, Write as _};
    let a: SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
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

/// The AdminServer's `hash`: (zxid, digest) of the server's tree.
fn hash(ip: &str) -> Option<(i64, i64)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect((ip, 8080)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /commands/hash HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    let num = |key: &str| -> Option<i64> {
        let rest = body.split(&format!("\"{key}\":")).nth(1)?;
        rest.trim_start()
            .split([',', '}'])
            .next()?
            .trim()
            .parse()
            .ok()
    };
    Some((num("zxid")?, num("digest")?))
}

struct Recorder {
    start: Instant,
    acked: Mutex<Vec<AckedWrite>>,
    reads: Mutex<Vec<Read>>,
    /// Per client: zxids of replies in order (never going back), and counts of outcomes.
    lost_connections: Mutex<usize>,
    violations: Mutex<Vec<String>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
}

/// One client: its own session, moving between servers when a connection fails.
fn client(id: usize, hosts: Vec<SocketAddr>, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let mut session = ConnectResponse::default();
    let mut last_zxid = 0i64;
    let mut xid = 0i32;
    let mut conn: Option<RawClient> = None;
    let mut n = 0u64;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (id as u64 + 1);
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut server = id % hosts.len();
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            server = (server + 1) % hosts.len();
            match RawClient::resume(
                hosts[server],
                10_000,
                &session,
                last_zxid,
                xid,
                Duration::from_secs(2),
            ) {
                Ok(c) if c.session.time_out > 0 => {
                    if session.session_id != 0 && c.session.session_id != session.session_id {
                        rec.violations
                            .lock()
                            .unwrap()
                            .push(format!("client {id}: session changed on resume"));
                    }
                    session = c.session.clone();
                    conn = Some(c);
                }
                Ok(_) => {
                    // Expired (the server answers timeout 0): start a new session.
                    session = ConnectResponse::default();
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
            continue;
        };
        n += 1;
        let key = format!("/k{}", next() % KEYS as u64);
        let choice = next() % 10;
        let (request, write_path) = if choice < 4 {
            let path = format!("/c{id}-{n}");
            (
                Request::Create2(CreateRequest {
                    path: path.clone(),
                    data: Some(Bytes::from(format!("{id}:{n}"))),
                    acl: well_known::open_acl_unsafe(),
                    flags: 0,
                }),
                Some(path),
            )
        } else if choice < 7 {
            (
                Request::SetData(SetDataRequest {
                    path: key.clone(),
                    data: Some(Bytes::from(format!("{id}:{n}"))),
                    version: -1,
                }),
                Some(key.clone()),
            )
        } else {
            (
                Request::GetData(GetDataRequest {
                    path: key.clone(),
                    watch: false,
                }),
                None,
            )
        };
        let invoked = rec.now();
        match c.call(&request) {
            Ok((h, body)) => {
                let responded = rec.now();
                xid = c.xid();
                if h.zxid < last_zxid {
                    rec.violations.lock().unwrap().push(format!(
                        "client {id}: reply at zxid {:#x} after {:#x}: went back in time",
                        h.zxid, last_zxid
                    ));
                }
                last_zxid = last_zxid.max(h.zxid);
                match (write_path, body) {
                    (Some(_), Response::Create2(r)) => rec.acked.lock().unwrap().push(AckedWrite {
                        client: id,
                        session: session.session_id,
                        cxid: xid,
                        zxid: h.zxid,
                        result: TxnResult::Created {
                            path: r.path,
                            stat: r.stat,
                        },
                        invoked,
                        responded,
                    }),
                    (Some(_), Response::SetData(r)) => rec.acked.lock().unwrap().push(AckedWrite {
                        client: id,
                        session: session.session_id,
                        cxid: xid,
                        zxid: h.zxid,
                        result: TxnResult::DataSet { stat: r.stat },
                        invoked,
                        responded,
                    }),
                    (Some(_), _) if h.err != 0 => rec.acked.lock().unwrap().push(AckedWrite {
                        client: id,
                        session: session.session_id,
                        cxid: xid,
                        zxid: h.zxid,
                        result: TxnResult::Error(h.err),
                        invoked,
                        responded,
                    }),
                    (None, Response::GetData(r)) => rec.reads.lock().unwrap().push(Read {
                        client: id,
                        key,
                        zxid: h.zxid,
                        value: r.data.map(|d| d.to_vec()),
                    }),
                    (None, _) if h.err == ErrorCode::NoNode.code() => {
                        rec.reads.lock().unwrap().push(Read {
                            client: id,
                            key,
                            zxid: h.zxid,
                            value: None,
                        })
                    }
                    (_, other) => rec
                        .violations
                        .lock()
                        .unwrap()
                        .push(format!("client {id}: unexpected answer {:?} {other:?}", h)),
                }
            }
            Err(_) => {
                // Outcome unknown: the write may or may not commit. Move on.
                xid = c.xid();
                *rec.lost_connections.lock().unwrap() += 1;
                conn = None;
            }
        }
    }
}

#[test]
fn chaos_on_real_processes_keeps_every_promise() {
    if !sh(&["ip", "netns", "list"]) || !sh(&["iptables", "-L", "-n"]) {
        assert!(
            std::env::var("CI").is_err(),
            "CI runs as root with ip netns and iptables"
        );
        println!("SKIPPED: needs root, ip netns and iptables");
        return;
    }
    let Some(net) = Net::setup() else {
        assert!(std::env::var("CI").is_err(), "CI could not create a bridge");
        println!("SKIPPED: could not create network namespaces");
        return;
    };
    let seconds: u64 = std::env::var("ZK_CHAOS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let floor = if seconds >= 600 { 40 } else { 15 };
    let base = std::env::temp_dir().join(format!("zkd-chaos-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let lines: String = (0..3)
        .map(|i| format!("server.{}={}:2888:3888;2181\n", i + 1, net.ip(i)))
        .collect();
    let mut servers: Vec<Server> = (0..3)
        .map(|i| {
            let dir = base.join(format!("s{}", i + 1));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1)).unwrap();
            std::fs::write(
                dir.join("zoo.cfg"),
                format!(
                    "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort=2181\n\
                     4lw.commands.whitelist=*\npreAllocSize=64\nadmin.serverPort=8080\n{lines}",
                    dir.join("data").display()
                ),
            )
            .unwrap();
            let mut s = Server {
                ns: net.ns(i),
                dir,
                child: None,
                stopped: false,
            };
            s.start();
            s
        })
        .collect();
    let client_addrs: Vec<String> = (0..3).map(|i| format!("{}:2181", net.ip(i))).collect();
    let leader_of = |addrs: &[String]| -> Option<usize> {
        addrs
            .iter()
            .position(|a| srvr(a).is_some_and(|(m, _)| m == "leader"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while leader_of(&client_addrs).is_none() {
        assert!(
            Instant::now() < deadline,
            "no leader elected in the namespaces"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The shared keys exist before the load.
    {
        let mut c = RawClient::connect(client_addrs[0].parse().unwrap(), 30_000).unwrap();
        for k in 0..KEYS {
            let (h, _) = c
                .call(&Request::Create(CreateRequest {
                    path: format!("/k{k}"),
                    data: Some(Bytes::from_static(b"init")),
                    acl: well_known::open_acl_unsafe(),
                    flags: 0,
                }))
                .unwrap();
            assert_eq!(h.err, 0);
        }
        let _ = c.call(&Request::CloseSession);
    }

    let rec = Arc::new(Recorder {
        start: Instant::now(),
        acked: Mutex::default(),
        reads: Mutex::default(),
        lost_connections: Mutex::new(0),
        violations: Mutex::default(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let hosts: Vec<SocketAddr> = client_addrs.iter().map(|a| a.parse().unwrap()).collect();
    let load: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (hosts, rec, stop) = (hosts.clone(), rec.clone(), stop.clone());
            std::thread::spawn(move || client(id, hosts, rec, stop))
        })
        .collect();

    // Faults until the time box closes.
    let mut rng = u64::from(std::process::id()) | 1;
    let mut roll = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut faults: BTreeMap<&str, usize> = BTreeMap::new();
    let started = Instant::now();
    // The time box, stretched (up to twice) until the floor of faults is reached.
    while started.elapsed() < Duration::from_secs(seconds)
        || (faults.values().sum::<usize>() < floor
            && started.elapsed() < Duration::from_secs(2 * seconds))
    {
        let victim = roll(3) as usize;
        let others: Vec<usize> = (0..3).filter(|j| *j != victim).collect();
        let kind = match roll(6) {
            0 => {
                for &j in &others {
                    net.drop_from(victim, j);
                    net.drop_from(j, victim);
                }
                "partition one from two"
            }
            1 => {
                let leader = leader_of(&client_addrs).unwrap_or(victim);
                for j in (0..3).filter(|j| *j != leader) {
                    net.drop_from(leader, j);
                    net.drop_from(j, leader);
                }
                "isolate the leader"
            }
            2 => {
                net.drop_from(victim, others[0]);
                "one-way loss"
            }
            3 => {
                net.lossy(victim, 30);
                "30% packet loss"
            }
            4 => {
                servers[victim].signal("-STOP");
                servers[victim].stopped = true;
                "SIGSTOP"
            }
            _ => {
                servers[victim].kill9();
                "kill -9"
            }
        };
        *faults.entry(kind).or_default() += 1;
        std::thread::sleep(Duration::from_millis(1200 + roll(2000)));
        // Heal, and give the ensemble a moment between faults.
        net.heal();
        for s in servers.iter_mut() {
            if s.stopped {
                s.signal("-CONT");
                s.stopped = false;
            }
            if s.child.is_none() {
                s.start();
            }
        }
        std::thread::sleep(Duration::from_millis(400 + roll(1000)));
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }

    // Healed: all three serve and reach the same zxid.
    let deadline = Instant::now() + Duration::from_secs(60);
    let final_zxid = loop {
        let states: Vec<Option<(String, i64)>> = client_addrs.iter().map(|a| srvr(a)).collect();
        let zxids: Vec<i64> = states.iter().flatten().map(|(_, z)| *z).collect();
        if zxids.len() == 3
            && zxids.iter().all(|z| *z == zxids[0])
            && states
                .iter()
                .flatten()
                .filter(|(m, _)| m == "leader")
                .count()
                == 1
        {
            break zxids[0];
        }
        assert!(
            Instant::now() < deadline,
            "the ensemble did not converge: {states:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let finals: Vec<(usize, i64, i64, bool)> = (0..3)
        .map(|i| {
            let (zxid, digest) = hash(&net.ip(i)).expect("hash");
            (i + 1, zxid, digest, true)
        })
        .collect();
    for s in servers.iter_mut() {
        s.kill9();
    }

    // Every txn the servers logged; where two logged the same zxid, the same txn.
    let mut commits: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    let mut disagreements = Vec::new();
    for s in &servers {
        let dir = s.dir.join("data/version-2");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if !path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("log.")
            {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let Ok(scan) = zk_log::txnlog::scan_log(&path, Bytes::from(bytes)) else {
                continue;
            };
            for r in scan.records {
                let zxid = r.entry.header.zxid;
                if zxid > final_zxid {
                    continue; // logged but never committed (truncated later or pending)
                }
                match commits.get(&zxid) {
                    Some(other) if *other != r.raw.to_vec() => {
                        disagreements.push(format!("{}: txn {zxid:#x} differs", s.ns))
                    }
                    _ => {
                        commits.insert(zxid, r.raw.to_vec());
                    }
                }
            }
        }
    }
    let history = History {
        commits,
        acked: rec.acked.lock().unwrap().clone(),
        reads: rec.reads.lock().unwrap().clone(),
        leaders: Vec::new(),
        installs: Vec::new(),
        finals,
        watches: Vec::new(),
        syncs: Vec::new(),
    };
    let mut violations = zk_sim::check::check(&history);
    violations.extend(disagreements);
    violations.extend(rec.violations.lock().unwrap().iter().cloned());
    let total: usize = faults.values().sum();
    println!(
        "chaos: {seconds} s, {total} faults {faults:?}; {} acknowledged writes, {} reads, {} connections lost; {} committed txns up to {final_zxid:#x}; {} violations",
        history.acked.len(),
        history.reads.len(),
        rec.lost_connections.lock().unwrap(),
        history.commits.len(),
        violations.len()
    );
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );
    assert!(
        total >= floor,
        "only {total} faults in {seconds} s (floor {floor})"
    );
    assert!(
        history.acked.len() >= 200,
        "too few writes acknowledged: {}",
        history.acked.len()
    );
    assert!(
        history.reads.len() >= 100,
        "too few reads: {}",
        history.reads.len()
    );
    drop(servers);
    drop(net);
    let _ = std::fs::remove_dir_all(&base);
}
