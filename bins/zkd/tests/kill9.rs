//! `kill -9` of `zkd` under a write load from several clients, then a restart: every write
//! a client saw acknowledged must be there. Repeated several times on the same data dir.
//! Also: `zkd --help`, `--version` and `check-config` with a bad file.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zk_proto::*;
use zk_tests::free_port;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");

fn start(dir: &Path, port: u16) -> Child {
    start_with(dir, port, "", None)
}

/// zkd on `dir` with crash points armed (`ZKD_FAILPOINTS`), its stderr to `log` if given.
fn start_with(dir: &Path, port: u16, failpoints: &str, log: Option<&Path>) -> Child {
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\npreAllocSize=1024\n4lw.commands.whitelist=ruok\nadmin.enableServer=false\nsnapCount=40\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).unwrap()),
        None => Stdio::null(),
    };
    Command::new(ZKD)
        .arg("--config")
        .arg(&cfg)
        .env("ZKD_FAILPOINTS", failpoints)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

async fn wait_ready(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(addr).await {
            let _ = s.write_all(b"ruok").await;
            let mut out = Vec::new();
            let _ = s.read_to_end(&mut out).await;
            if out == b"imok" {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("zkd did not come up on {addr}");
}

/// A minimal client: handshake, then one request at a time.
struct Client {
    s: TcpStream,
    buf: BytesMut,
    xid: i32,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Option<Client> {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: 30_000,
            session_id: 0,
            passwd: Some(Bytes::from_static(&[0; 16])),
            read_only: Some(false),
        };
        let mut b = BytesMut::new();
        encode_frame(&mut b, |b| req.write(b));
        s.write_all(&b).await.ok()?;
        let mut c = Client {
            s,
            buf: BytesMut::new(),
            xid: 0,
        };
        c.frame().await?;
        Some(c)
    }

    async fn frame(&mut self) -> Option<Bytes> {
        let d = FrameDecoder::default();
        loop {
            if let Some(p) = d.decode(&mut self.buf).ok()? {
                return Some(p);
            }
            if self.s.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// The reply header and body, or `None` when the connection died.
    async fn call(&mut self, r: Request) -> Option<(ReplyHeader, Response)> {
        self.xid += 1;
        let mut b = BytesMut::new();
        encode_frame(&mut b, |b| encode_request(self.xid, &r, b));
        self.s.write_all(&b).await.ok()?;
        loop {
            let mut rd = Reader::new(self.frame().await?);
            let h = ReplyHeader::read(&mut rd).ok()?;
            if h.xid == -1 {
                continue;
            }
            let body = Response::read(r.op_code(), h.err, &mut rd).ok()?;
            return Some((h, body));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9() {
    let dir = std::env::temp_dir().join(format!("zkd-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
    // CI: 5 rounds; long mode, for instance ZK_KILL9_ROUNDS=100 (kill instants are random,
    // from ZK_KILL9_SEED when given).
    let rounds: u64 = std::env::var("ZK_KILL9_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut seed: u64 = std::env::var("ZK_KILL9_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| u64::from(std::process::id()))
        | 1;
    println!("kill -9 rounds: {rounds}, seed {seed}");
    for round in 0..rounds {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut child = start(&dir, port);
        wait_ready(addr).await;
        // Everything acknowledged in earlier rounds is still there.
        check_all(addr, &acked).await;
        let writers = writers(addr, &format!("r{round}"), 6, &acked);
        // A random instant under the load: 150 ms to 1.15 s after the writers start.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(150 + seed % 1000)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for w in writers {
            let _ = w.await;
        }
    }
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut child = start(&dir, port);
    wait_ready(addr).await;
    let n = check_all(addr, &acked).await;
    child.kill().unwrap();
    child.wait().unwrap();
    println!("{rounds} kill -9 rounds, {n} acknowledged writes all present");
    assert!(
        n >= 100,
        "too few writes acknowledged to mean anything: {n}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every crash point of a standalone server, each fired at three different hits under a
/// write load (creates, and sessions that make an ephemeral and close): after each crash
/// the server restarts on the same data dir, every acknowledged write is there, and no
/// ephemeral of an acknowledged closeSession is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_crash_point_loses_nothing_acknowledged() {
    const POINTS: &[&str] = &[
        "log.before_write",
        "log.before_fsync",
        "log.after_fsync",
        "snapshot.written",
        "snapshot.synced",
        "session.close",
    ];
    const HITS: &[u64] = &[3, 17, 60];
    let base = std::env::temp_dir().join(format!("zkd-crashpoints-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let mut fired = 0;
    for point in POINTS {
        let dir = base.join(point);
        std::fs::create_dir_all(&dir).unwrap();
        let acked: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let closed: Arc<Mutex<Vec<String>>> = Arc::default();
        for (trial, hit) in HITS.iter().enumerate() {
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let log = dir.join(format!("zkd-{trial}.log"));
            let mut child = start_with(&dir, port, &format!("{point}={hit}"), Some(&log));
            wait_ready(addr).await;
            let mut load = writers(addr, &format!("t{trial}"), 3, &acked);
            // Sessions that leave an ephemeral and close: closeSession is a txn too.
            let closer = {
                let closed = closed.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let Some(mut c) = Client::connect(addr).await else {
                            return;
                        };
                        let path = format!("/e{trial}-{i}");
                        let r = Request::Create(CreateRequest {
                            path: path.clone(),
                            data: None,
                            acl: well_known::open_acl_unsafe(),
                            flags: 1,
                        });
                        if !matches!(c.call(r).await, Some((h, _)) if h.err == 0) {
                            return;
                        }
                        match c.call(Request::CloseSession).await {
                            Some((h, _)) if h.err == 0 => closed.lock().unwrap().push(path),
                            _ => return,
                        }
                    }
                })
            };
            load.push(closer);
            // The point fires within the load; a server that outlives this is a failure.
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(st) = child.try_wait().unwrap() {
                    break st;
                }
                assert!(Instant::now() < deadline, "{point}={hit} never fired");
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            assert!(!status.success(), "{point}: zkd exited cleanly");
            let text = std::fs::read_to_string(&log).unwrap();
            assert!(
                text.contains(&format!("failpoint {point} fired (hit {hit})")),
                "{point}={hit}: zkd died otherwise: {text}"
            );
            fired += 1;
            for l in load {
                let _ = l.await;
            }
            // Restart without crash points: everything acknowledged is there.
            let port = free_port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let mut child = start(&dir, port);
            wait_ready(addr).await;
            check_all(addr, &acked).await;
            let mut c = Client::connect(addr).await.unwrap();
            let closed_now = closed.lock().unwrap().clone();
            for path in closed_now {
                let (h, _) = c
                    .call(Request::Exists(ExistsRequest {
                        path: path.clone(),
                        watch: false,
                    }))
                    .await
                    .unwrap();
                assert_eq!(
                    h.err,
                    ErrorCode::NoNode.code(),
                    "{point}: {path} outlived its acknowledged closeSession"
                );
            }
            child.kill().unwrap();
            child.wait().unwrap();
        }
        println!(
            "{point}: fired at hits {HITS:?}; {} acknowledged writes and {} closed sessions checked after each restart",
            acked.lock().unwrap().len(),
            closed.lock().unwrap().len()
        );
        assert!(
            acked.lock().unwrap().len() > 10,
            "{point}: too few writes acknowledged"
        );
    }
    assert_eq!(fired, POINTS.len() * HITS.len());
    let _ = std::fs::remove_dir_all(&base);
}

/// `n` clients creating `/{tag}-w{w}-{i}` one after another until their connection dies,
/// each acknowledged create recorded in `acked`.
fn writers(
    addr: SocketAddr,
    tag: &str,
    n: usize,
    acked: &Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|w| {
            let (acked, tag) = (acked.clone(), tag.to_owned());
            tokio::spawn(async move {
                let Some(mut c) = Client::connect(addr).await else {
                    return;
                };
                for i in 0.. {
                    let path = format!("/{tag}-w{w}-{i}");
                    let data = format!("{tag}:{w}:{i}").into_bytes();
                    let r = Request::Create(CreateRequest {
                        path: path.clone(),
                        data: Some(Bytes::from(data.clone())),
                        acl: well_known::open_acl_unsafe(),
                        flags: 0,
                    });
                    match c.call(r).await {
                        Some((h, _)) if h.err == 0 => {
                            acked.lock().unwrap().insert(path, data);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect()
}

async fn check_all(addr: SocketAddr, acked: &Mutex<BTreeMap<String, Vec<u8>>>) -> usize {
    let expected = acked.lock().unwrap().clone();
    let mut c = Client::connect(addr).await.unwrap();
    for (path, data) in &expected {
        let (h, body) = c
            .call(Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: false,
            }))
            .await
            .unwrap();
        assert_eq!(h.err, 0, "acknowledged {path} lost");
        match body {
            Response::GetData(d) => assert_eq!(d.data.as_deref(), Some(&data[..]), "{path}"),
            other => panic!("{other:?}"),
        }
    }
    expected.len()
}

fn dir_with(name: &str, cfg: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zkd-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let f = d.join("zoo.cfg");
    std::fs::write(&f, cfg).unwrap();
    f
}

#[test]
fn command_line_help_version_and_bad_config() {
    let out = Command::new(ZKD).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--config"));
    let out = Command::new(ZKD).arg("--version").output().unwrap();
    assert!(out.status.success());
    let bad = dir_with("bad", "tickTime=soon\n");
    let out = Command::new(ZKD)
        .arg("check-config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tickTime"), "names the key: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    let good = dir_with(
        "good",
        "tickTime=2000\ndataDir=/tmp/x\nclientPort=2181\ninitLimit=5\n",
    );
    let out = Command::new(ZKD)
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [bad, good] {
        if let Some(d) = f.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[test]
fn the_sample_configs_are_valid() {
    for f in ["zoo.cfg", "zkd.toml"] {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../conf")
            .join(f);
        let out = Command::new(ZKD)
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn zk_data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/zookeeper-3.8/version-2")
        .join(file)
}

#[test]
fn offline_tools_run_as_subcommands() {
    let run = |args: &[&std::ffi::OsStr]| Command::new(ZKD).args(args).output().unwrap();
    let log = zk_data("log.1");
    let snap = zk_data("snapshot.1c");
    let out = run(&["dump-log".as_ref(), log.as_os_str()]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("EOF reached after 28 txns."));
    let out = run(&["dump-log".as_ref(), snap.as_os_str()]);
    assert_eq!(out.status.code(), Some(2), "a snapshot is not a log");
    assert!(String::from_utf8_lossy(&out.stderr).contains("snapshot.1c"));
    let out = run(&[
        "dump-snapshot".as_ref(),
        "--json".as_ref(),
        snap.as_os_str(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("[1,0,"));
    let out = run(&["dump-snapshot".as_ref(), "-d".as_ref(), snap.as_os_str()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("/app/more"));
    let out = run(&["summarize-snapshot".as_ref(), snap.as_os_str()]);
    assert!(out.status.success());
    let out = run(&[
        "compare-snapshots".as_ref(),
        snap.as_os_str(),
        snap.as_os_str(),
    ]);
    assert!(out.status.success(), "identical snapshots");
    let older = zk_data("snapshot.0");
    let out = run(&[
        "compare-snapshots".as_ref(),
        older.as_os_str(),
        snap.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "different snapshots");
}

#[test]
fn purge_subcommand_keeps_three_snapshots() {
    let dir = std::env::temp_dir().join(format!("zkd-purge-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let v2 = dir.join("data/version-2");
    std::fs::create_dir_all(&v2).unwrap();
    let snap = std::fs::read(zk_data("snapshot.1c")).unwrap();
    for z in [0x1c, 0x2c, 0x3c, 0x4c, 0x5c] {
        std::fs::write(v2.join(format!("snapshot.{z:x}")), &snap).unwrap();
    }
    let cfg = dir.join("zoo.cfg");
    std::fs::write(&cfg, format!("dataDir={}\n", dir.join("data").display())).unwrap();
    let out = Command::new(ZKD)
        .arg("--config")
        .arg(&cfg)
        .arg("purge")
        .arg("--count")
        .arg("1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut left: Vec<String> = std::fs::read_dir(&v2)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["snapshot.3c", "snapshot.4c", "snapshot.5c"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn check_config_reads_the_tls_stores_and_names_the_key() {
    let dir = std::env::temp_dir().join(format!("zkd-tls-cfg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let jks = dir.join("server.jks");
    std::fs::write(&jks, b"\xfe\xed\xfe\xed").unwrap();
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nsecureClientPort=2281\nssl.keyStore.location={}\nssl.keyStore.password=hunter2\nssl.clientAuth=none\n",
            dir.join("data").display(),
            jks.display()
        ),
    )
    .unwrap();
    let out = Command::new(ZKD)
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("ssl.keyStore.type") && err.contains("keytool"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "no password in messages: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}
