//! Chaos on real processes: three `zkd` processes, each in its own network namespace on a
//! veth link to one bridge, under a load of eight sessions while faults are injected:
//! partitions (one member from the others, the leader from the others, one way only),
//! random packet loss, delays on a member's peer links (every member's peer port is
//! reached through a userspace delay proxy on the bridge), SIGSTOP/SIGCONT, and `kill -9`
//! then restart. Every operation's
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
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zk_client::{Client, CreateMode};
use zk_proto::*;
use zk_sim::check::{AckedWrite, History, LinRead, Read, WatchRecord};
use zk_tests::processes::srvr_at as srvr;
use zk_tests::proxy::DelayProxy;
use zk_tests::raw::RawClient;
use zk_tree::TxnResult;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");
/// Raw-protocol sessions (exact xids and reply zxids).
const CLIENTS: usize = 8;
/// Sessions through zk-client, and as many through kazoo.
const LIBRARY_CLIENTS: usize = 2;
const KEYS: usize = 4;
/// Keys whose reads go through a read barrier (`readPolicy./k0=linearizable`, ...).
const LINEARIZABLE_KEYS: [&str; 2] = ["/k0", "/k1"];

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
    /// The address the others reach member `i`'s peer port at: its delay proxy, on the
    /// bridge; the proxy connects on to the member from the sender's proxy address.
    fn proxy_ip(&self, i: usize) -> String {
        format!("10.79.{}.{}", self.subnet, i + 101)
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
        for i in 0..3 {
            let addr = format!("{}/24", net.proxy_ip(i));
            assert!(
                sh(&["ip", "addr", "add", &addr, "dev", &br]),
                "could not add {addr}"
            );
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

    /// Drops what member `i` receives from member `j` (one way), directly or through a
    /// delay proxy.
    fn drop_from(&self, i: usize, j: usize) {
        for src in [self.ip(j), self.proxy_ip(j)] {
            self.iptables(i, &["-A", "INPUT", "-s", &src, "-j", "DROP"]);
        }
    }

    fn lossy(&self, i: usize, percent: u32) {
        let p = format!("0.{percent:02}");
        for j in (0..3).filter(|j| *j != i) {
            for src in [self.ip(j), self.proxy_ip(j)] {
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
    }

    /// A delay proxy in front of each member's peer port; a link's delay is the larger of
    /// its two ends' entries in `delays` (milliseconds).
    fn delay_proxies(&self, delays: &Arc<[AtomicU64; 3]>) -> Vec<DelayProxy> {
        let members: Vec<(IpAddr, IpAddr)> = (0..3)
            .map(|j| {
                (
                    self.ip(j).parse().unwrap(),
                    self.proxy_ip(j).parse().unwrap(),
                )
            })
            .collect();
        (0..3)
            .map(|i| {
                let who = {
                    let members = members.clone();
                    move |peer: IpAddr| members.iter().position(|(ip, _)| *ip == peer)
                };
                let source_for = {
                    let (who, members) = (who.clone(), members.clone());
                    Arc::new(move |peer: IpAddr| who(peer).map(|j| members[j].1))
                };
                let delay_for = {
                    let delays = delays.clone();
                    Arc::new(move |peer: IpAddr| {
                        let mine = delays[i].load(Ordering::Relaxed);
                        let theirs = who(peer).map_or(0, |j| delays[j].load(Ordering::Relaxed));
                        Duration::from_millis(mine.max(theirs))
                    })
                };
                DelayProxy::start(
                    SocketAddr::new(members[i].1, 2888),
                    SocketAddr::new(members[i].0, 2888),
                    source_for,
                    delay_for,
                )
                .unwrap()
            })
            .collect()
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
    /// `start` on CLOCK_MONOTONIC in microseconds (kazoo's clock).
    monotonic_start: u64,
    acked: Mutex<Vec<AckedWrite>>,
    reads: Mutex<Vec<Read>>,
    /// Raw sessions' reads of the keys under `readPolicy=linearizable`.
    lin_reads: Mutex<Vec<LinRead>>,
    watches: Mutex<Vec<WatchRecord>>,
    lost_connections: Mutex<usize>,
    sessions_closed: Mutex<usize>,
    violations: Mutex<Vec<String>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// A raw session's read of `key`, served at `zxid` (the reply's): checked for
    /// linearizability when the key is under `readPolicy=linearizable`.
    fn lin_read(&self, client: usize, key: &str, zxid: i64, invoked: u64, responded: u64) {
        if LINEARIZABLE_KEYS.contains(&key) {
            self.lin_reads.lock().unwrap().push(LinRead {
                client,
                key: key.to_owned(),
                zxid,
                invoked,
                responded,
            });
        }
    }

    /// Notes `zxid` as the newest version of `key` that `who` read or wrote; a violation if
    /// it is older than one it already saw (its reads went back in time).
    fn never_back(&self, newest: &mut BTreeMap<String, i64>, key: &str, zxid: i64, who: &str) {
        let seen = newest.entry(key.to_owned()).or_default();
        if zxid < *seen {
            self.violations.lock().unwrap().push(format!(
                "{who}: {key} at version {zxid:#x} after {seen:#x}: went back"
            ));
        }
        *seen = (*seen).max(zxid);
    }
}

/// One client: its own session, moving between servers when a connection fails. It
/// creates nodes (a quarter of them ephemeral), sets and reads the shared keys, sets a
/// data watch with some reads, and now and then closes its session and opens another.
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
    // Watches set on this connection and not yet fired, by key.
    let mut pending: BTreeMap<String, WatchRecord> = BTreeMap::new();
    let end_watches = |pending: &mut BTreeMap<String, WatchRecord>| {
        let mut w = rec.watches.lock().unwrap();
        for (_, mut record) in std::mem::take(pending) {
            record.cancelled = true;
            w.push(record);
        }
    };
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
        let choice = next() % 20;
        let (request, write_path) = if choice == 0 && next() % 8 == 0 {
            (Request::CloseSession, None)
        } else if choice < 8 {
            let ephemeral = next() % 4 == 0;
            let path = format!("/{}{id}-{n}", if ephemeral { "e" } else { "c" });
            (
                Request::Create2(CreateRequest {
                    path: path.clone(),
                    data: Some(Bytes::from(format!("{id}:{n}"))),
                    acl: well_known::open_acl_unsafe(),
                    flags: i32::from(ephemeral),
                }),
                Some(path),
            )
        } else if choice < 14 {
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
                    watch: !pending.contains_key(&key) && next() % 2 == 0,
                }),
                None,
            )
        };
        let invoked = rec.now();
        let result = c.call(&request);
        // Notifications that came before the reply fire this connection's watches.
        for (zxid, event) in c.take_events() {
            match pending.remove(&event.path) {
                Some(mut record) => {
                    record.fired.push((zxid, event.r#type));
                    rec.watches.lock().unwrap().push(record);
                }
                None => rec.violations.lock().unwrap().push(format!(
                    "client {id}: an event nobody watches: {event:?} at {zxid:#x}"
                )),
            }
        }
        match result {
            Ok((h, _)) if matches!(request, Request::CloseSession) => {
                // The session is over (its ephemerals with it): start another.
                xid = c.xid();
                last_zxid = last_zxid.max(h.zxid);
                end_watches(&mut pending);
                session = ConnectResponse::default();
                conn = None;
                *rec.sessions_closed.lock().unwrap() += 1;
            }
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
                let ack = |result| AckedWrite {
                    client: id,
                    session: session.session_id,
                    cxid: Some(xid),
                    zxid: h.zxid,
                    result,
                    invoked,
                    responded,
                };
                match (write_path, body) {
                    (Some(_), Response::Create2(r)) => {
                        rec.acked.lock().unwrap().push(ack(TxnResult::Created {
                            path: r.path,
                            stat: r.stat,
                        }))
                    }
                    (Some(_), Response::SetData(r)) => rec
                        .acked
                        .lock()
                        .unwrap()
                        .push(ack(TxnResult::DataSet { stat: r.stat })),
                    (Some(_), _) if h.err != 0 => {
                        rec.acked.lock().unwrap().push(ack(TxnResult::Error(h.err)))
                    }
                    (None, Response::GetData(r)) => {
                        if let Request::GetData(GetDataRequest { watch: true, .. }) = request {
                            pending.insert(
                                key.clone(),
                                WatchRecord {
                                    client: id,
                                    key: key.clone(),
                                    set_at: h.zxid,
                                    existed: true,
                                    fired: Vec::new(),
                                    cancelled: false,
                                },
                            );
                        }
                        rec.lin_read(id, &key, h.zxid, invoked, responded);
                        rec.reads.lock().unwrap().push(Read {
                            client: id,
                            key,
                            zxid: h.zxid,
                            value: r.data.map(|d| d.to_vec()),
                        })
                    }
                    (None, _) if h.err == ErrorCode::NoNode.code() => {
                        rec.lin_read(id, &key, h.zxid, invoked, responded);
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
                // Outcome unknown: the write may or may not commit. Move on; this
                // connection's watches are gone with it.
                xid = c.xid();
                *rec.lost_connections.lock().unwrap() += 1;
                end_watches(&mut pending);
                conn = None;
            }
        }
    }
    end_watches(&mut pending);
}

/// A session through zk-client, as an application holds one: the library reconnects and
/// resumes by itself. Its writes are matched to the log by session, zxid (from the Stat)
/// and reply; its reads are checked against the model at the version they return, and
/// per key they never go back.
fn zk_client_load(id: usize, hosts: String, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let rt = zk_tests::runtime();
    rt.block_on(async move {
        let mut newest: BTreeMap<String, i64> = BTreeMap::new();
        let mut client: Option<Client> = None;
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let c = match &client {
                Some(c) if c.state().is_alive() => c,
                _ => {
                    client = Client::builder(&hosts)
                        .session_timeout(Duration::from_secs(10))
                        .connect()
                        .await
                        .ok();
                    if client.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            };
            n += 1;
            let key = format!("/k{}", n % KEYS as u64);
            let session = c.session_id();
            let invoked = rec.now();
            let data = format!("{id}:{n}").into_bytes();
            let op = async {
                match n % 3 {
                    0 => c
                        .create2(
                            &format!("/z{id}-{n}"),
                            data,
                            well_known::open_acl_unsafe(),
                            CreateMode::Persistent,
                        )
                        .await
                        .map(|(path, stat)| (stat.czxid, Ok(TxnResult::Created { path, stat }))),
                    1 => c
                        .set_data(&key, data, -1)
                        .await
                        .map(|stat| (stat.mzxid, Ok(TxnResult::DataSet { stat }))),
                    _ => c
                        .get_data(&key)
                        .await
                        .map(|(value, stat)| (stat.mzxid, Err(value.map(|v| v.to_vec())))),
                }
            };
            let Ok(Ok((zxid, outcome))) = tokio::time::timeout(Duration::from_secs(15), op).await
            else {
                continue; // unknown outcome, or a definite error without a zxid
            };
            let responded = rec.now();
            if c.session_id() != session {
                continue;
            }
            if n % 3 != 0 {
                rec.never_back(&mut newest, &key, zxid, &format!("client {id}"));
            }
            match outcome {
                Ok(result) => rec
                    .acked
                    .lock()
                    .unwrap()
                    .push(library_write(id, session, zxid, result, invoked, responded)),
                Err(value) => rec.reads.lock().unwrap().push(Read {
                    client: id,
                    key,
                    zxid,
                    value,
                }),
            }
        }
        if let Some(c) = client {
            c.close().await;
        }
    });
}

/// A write acknowledged to a library client, which does not expose its xid: matched to
/// the log by session, zxid and reply.
fn library_write(
    client: usize,
    session: i64,
    zxid: i64,
    result: TxnResult,
    invoked: u64,
    responded: u64,
) -> AckedWrite {
    AckedWrite {
        client,
        session,
        cxid: None,
        zxid,
        result,
        invoked,
        responded,
    }
}

/// Sessions through kazoo, in one Python process per session, printing one JSON line per
/// completed operation (monotonic clock, microseconds) until `stop_file` exists.
const KAZOO_LOAD: &str = r#"
import json, os, random, sys, time
from kazoo.client import KazooClient
hosts, cid, stop_file, keys = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
zk = KazooClient(hosts=hosts, timeout=10.0,
                 connection_retry=dict(max_tries=-1, delay=0.05, max_delay=0.5))
zk.start(timeout=60)
now = lambda: time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
st = lambda s: [s.czxid, s.mzxid, s.ctime, s.mtime, s.version, s.cversion, s.aversion,
                s.ephemeralOwner, s.dataLength, s.numChildren, s.pzxid]
n = 0
while not os.path.exists(stop_file):
    n += 1
    key = "/k%d" % random.randrange(keys)
    session = zk.client_id[0] if zk.client_id else 0
    invoked = now()
    try:
        r = random.random()
        if r < 0.35:
            path, s = zk.create("/y%d-%d" % (cid, n), b"%d:%d" % (cid, n), include_data=True)
            rec = {"op": "create", "path": path, "stat": st(s)}
        elif r < 0.7:
            rec = {"op": "set", "path": key, "stat": st(zk.set(key, b"%d:%d" % (cid, n)))}
        else:
            data, s = zk.get(key)
            rec = {"op": "get", "path": key, "data": list(data), "stat": st(s)}
    except Exception:
        time.sleep(0.05)
        continue
    responded = now()
    if session == 0 or (zk.client_id and zk.client_id[0]) != session:
        continue
    rec.update(session=session, invoked=invoked, responded=responded)
    print(json.dumps(rec), flush=True)
zk.stop()
"#;

/// Reads a kazoo session's JSON lines into the recorder, as client `id`.
fn record_kazoo(id: usize, lines: &str, rec: &Recorder) {
    let stat = |v: &serde_json::Value| -> Option<Stat> {
        let a: Vec<i64> = v.as_array()?.iter().filter_map(|x| x.as_i64()).collect();
        (a.len() == 11).then(|| Stat {
            czxid: a[0],
            mzxid: a[1],
            ctime: a[2],
            mtime: a[3],
            version: a[4] as i32,
            cversion: a[5] as i32,
            aversion: a[6] as i32,
            ephemeral_owner: a[7],
            data_length: a[8] as i32,
            num_children: a[9] as i32,
            pzxid: a[10],
        })
    };
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    for line in lines.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(op), Some(path), Some(stat)) =
            (v["op"].as_str(), v["path"].as_str(), stat(&v["stat"]))
        else {
            continue;
        };
        let session = v["session"].as_i64().unwrap_or(0);
        let invoked = (v["invoked"].as_u64().unwrap_or(0)).saturating_sub(rec.monotonic_start);
        let responded = (v["responded"].as_u64().unwrap_or(0)).saturating_sub(rec.monotonic_start);
        if op != "create" {
            rec.never_back(&mut newest, path, stat.mzxid, &format!("kazoo client {id}"));
        }
        let write = |zxid, result| library_write(id, session, zxid, result, invoked, responded);
        match op {
            "create" => rec.acked.lock().unwrap().push(write(
                stat.czxid,
                TxnResult::Created {
                    path: path.to_owned(),
                    stat,
                },
            )),
            "set" => rec
                .acked
                .lock()
                .unwrap()
                .push(write(stat.mzxid, TxnResult::DataSet { stat })),
            _ => rec.reads.lock().unwrap().push(Read {
                client: id,
                key: path.to_owned(),
                zxid: stat.mzxid,
                value: v["data"].as_array().map(|d| {
                    d.iter()
                        .filter_map(|b| b.as_u64())
                        .map(|b| b as u8)
                        .collect()
                }),
            }),
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
    // Peers reach each other through the delay proxies; clients connect directly.
    let delays: Arc<[AtomicU64; 3]> = Arc::default();
    let _proxies = net.delay_proxies(&delays);
    let lines: String = (0..3)
        .map(|i| format!("server.{}={}:2888:3888;2181\n", i + 1, net.proxy_ip(i)))
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
                     4lw.commands.whitelist=*\npreAllocSize=64\nadmin.serverPort=8080\n\
                     readPolicy./k0=linearizable\nreadPolicy./k1=linearizable\n{lines}",
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
    // Before the load: one leader, both others following it (a member still joining
    // closes client connections).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let modes: Vec<String> = client_addrs
            .iter()
            .filter_map(|a| srvr(a).map(|(m, _)| m))
            .collect();
        let leaders = modes.iter().filter(|m| *m == "leader").count();
        let followers = modes.iter().filter(|m| *m == "follower").count();
        if (leaders, followers) == (1, 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no settled ensemble in the namespaces: {modes:?}"
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

    let monotonic = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let rec = Arc::new(Recorder {
        start: Instant::now(),
        monotonic_start: monotonic.tv_sec() as u64 * 1_000_000 + monotonic.tv_nsec() as u64 / 1000,
        acked: Mutex::default(),
        reads: Mutex::default(),
        lin_reads: Mutex::default(),
        watches: Mutex::default(),
        lost_connections: Mutex::new(0),
        sessions_closed: Mutex::new(0),
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
    let connect_string = client_addrs.join(",");
    let library_load: Vec<_> = (CLIENTS..CLIENTS + LIBRARY_CLIENTS)
        .map(|id| {
            let (hosts, rec, stop) = (connect_string.clone(), rec.clone(), stop.clone());
            std::thread::spawn(move || zk_client_load(id, hosts, rec, stop))
        })
        .collect();
    let stop_file = base.join("stop-kazoo");
    let kazoo_load: Vec<(usize, Child)> = if zk_tests::python_has("kazoo") {
        (CLIENTS + LIBRARY_CLIENTS..CLIENTS + 2 * LIBRARY_CLIENTS)
            .map(|id| {
                let out = std::fs::File::create(base.join(format!("kazoo-{id}.jsonl"))).unwrap();
                let child = Command::new("python3")
                    .args(["-c", KAZOO_LOAD, &connect_string, &id.to_string()])
                    .arg(&stop_file)
                    .arg(KEYS.to_string())
                    .stdout(out)
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                (id, child)
            })
            .collect()
    } else {
        Vec::new()
    };

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
        let kind = match roll(7) {
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
                delays[victim].store(200 + roll(1300), Ordering::Relaxed);
                "delayed peer links"
            }
            5 => {
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
        for d in delays.iter() {
            d.store(0, Ordering::Relaxed);
        }
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
    std::fs::write(&stop_file, b"").unwrap();
    for t in load.into_iter().chain(library_load) {
        t.join().unwrap();
    }
    let kazoo_ran = !kazoo_load.is_empty();
    for (id, mut child) in kazoo_load {
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        let lines = std::fs::read_to_string(base.join(format!("kazoo-{id}.jsonl"))).unwrap();
        record_kazoo(id, &lines, &rec);
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
        for (zxid, raw) in zk_tests::logged_txns(&s.dir.join("data/version-2")) {
            if zxid > final_zxid {
                continue; // logged but never committed (truncated later or pending)
            }
            match commits.get(&zxid) {
                Some(other) if *other != raw.to_vec() => {
                    disagreements.push(format!("{}: txn {zxid:#x} differs", s.ns))
                }
                _ => {
                    commits.insert(zxid, raw.to_vec());
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
        watches: rec.watches.lock().unwrap().clone(),
        syncs: Vec::new(),
        lin_reads: rec.lin_reads.lock().unwrap().clone(),
    };
    let mut violations = zk_sim::check::check(&history);
    violations.extend(disagreements);
    violations.extend(rec.violations.lock().unwrap().iter().cloned());
    let total: usize = faults.values().sum();
    let fired = history
        .watches
        .iter()
        .filter(|w| !w.fired.is_empty())
        .count();
    let ephemerals = history
        .acked
        .iter()
        .filter(
            |a| matches!(&a.result, TxnResult::Created { stat, .. } if stat.ephemeral_owner != 0),
        )
        .count();
    let by_library = |range: std::ops::Range<usize>| {
        history
            .acked
            .iter()
            .filter(|a| range.contains(&a.client))
            .count()
    };
    let (zk_client_writes, kazoo_writes) = (
        by_library(CLIENTS..CLIENTS + LIBRARY_CLIENTS),
        by_library(CLIENTS + LIBRARY_CLIENTS..CLIENTS + 2 * LIBRARY_CLIENTS),
    );
    println!(
        "chaos: {seconds} s, {total} faults {faults:?}; {} acknowledged writes ({zk_client_writes} through zk-client, {kazoo_writes} through kazoo, {ephemerals} ephemeral creates), {} reads ({} linearizable), {} watches set ({fired} fired), {} sessions closed, {} connections lost; {} committed txns up to {final_zxid:#x}; {} violations",
        history.acked.len(),
        history.reads.len(),
        history.lin_reads.len(),
        history.watches.len(),
        rec.sessions_closed.lock().unwrap(),
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
    assert!(fired >= 20, "too few watches fired: {fired}");
    assert!(
        history.lin_reads.len() >= 30,
        "too few linearizable reads: {}",
        history.lin_reads.len()
    );
    assert!(ephemerals >= 20, "too few ephemerals: {ephemerals}");
    assert!(
        zk_client_writes >= 20 && (kazoo_writes >= 20 || !kazoo_ran),
        "too few writes through zk-client ({zk_client_writes}) or kazoo ({kazoo_writes})"
    );
    drop(servers);
    drop(net);
    let _ = std::fs::remove_dir_all(&base);
}
