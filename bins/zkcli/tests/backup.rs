//! Continuous backup and point-in-time restore on a 3-node zkd ensemble, driven as an
//! operator would: `backup.dir` on every member, a recorded write load (with the leader
//! stopped half-way and the backup target taken away for a while), then `zkcli restore`
//! to 5 zxids and 2 times, each restored tree compared node by node (data, ACL, every
//! Stat field) with the tree the recorded history says existed then. The restored data
//! directories start zkd and Apache ZooKeeper 3.8. `zkcli backup verify` names a
//! corrupted segment; a restore past the backup is refused; `zkcli restore --subtree`
//! puts a live subtree back through multi.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use zk_client::Client;
use zk_proto::{Acl, CreateMode, Id, Stat};
use zk_tests::zkd::{start_ensemble_with, Zkd};
use zk_tests::zookeeper;

const ZKCLI: &str = env!("CARGO_BIN_EXE_zkcli");

/// A znode as the history records it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    data: Option<Bytes>,
    acl: Vec<Acl>,
    stat: Stat,
}

/// The `/app` subtree after each write: (the write's zxid when its reply tells it, its
/// txn time when the reply tells it, the tree).
type History = Vec<(Option<i64>, Option<i64>, BTreeMap<String, Node>)>;

/// A command's exit status, standard output and standard error.
type Outcome = (i32, String, String);

fn zkcli(args: &[&str]) -> Outcome {
    let out = Command::new(ZKCLI).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mode(z: &Zkd) -> String {
    zookeeper::four_letter(z.addr, "srvr")
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Mode: ").map(str::to_owned))
        })
        .unwrap_or_default()
}

fn backup_status(z: &Zkd) -> serde_json::Value {
    serde_json::from_str(&z.admin_get("/commands/backup")).unwrap()
}

/// Waits for the backup's first snapshot to be shipped. A backup covers history from its
/// first round on (the newest local snapshot then), so a test that restores to early
/// writes must not make them before that round: with a slow target (S3's first request)
/// the server could already have snapshotted past them.
fn wait_backup_started(z: &Zkd) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = backup_status(z);
        if s["shipped_snapshots"].as_u64() >= Some(1) {
            return;
        }
        assert!(Instant::now() < deadline, "the backup never started: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn open() -> Vec<Acl> {
    zk_proto::well_known::open_acl_unsafe()
}

fn read_only() -> Vec<Acl> {
    vec![Acl {
        perms: zk_proto::perms::READ,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn child_of(path: &str) -> String {
    match path.rsplit_once('/') {
        Some(("", _)) => "/".into(),
        Some((p, _)) => p.into(),
        None => "/".into(),
    }
}

/// The writer: one sequential session, recording the subtree after each write from the
/// replies (and the parent's Stat read right after, as no one else writes `/app`).
struct Writer {
    client: Client,
    tree: BTreeMap<String, Node>,
    history: History,
}

impl Writer {
    async fn refresh(&mut self, path: &str) {
        if !path.starts_with("/app") {
            return;
        }
        match self.client.get_data(path).await {
            Ok((data, stat)) => {
                let (acl, _) = self.client.get_acl(path).await.unwrap();
                self.tree.insert(path.into(), Node { data, acl, stat });
            }
            Err(_) => {
                self.tree.remove(path);
            }
        }
    }

    async fn create(&mut self, path: &str, data: &str, acl: Vec<Acl>) {
        let (_, stat) = self
            .client
            .create2(path, data, acl, CreateMode::Persistent)
            .await
            .unwrap();
        self.refresh(path).await;
        self.refresh(&child_of(path)).await;
        self.history
            .push((Some(stat.czxid), Some(stat.ctime), self.tree.clone()));
    }

    async fn set(&mut self, path: &str, data: &str) {
        let stat = self.client.set_data(path, data, -1).await.unwrap();
        self.refresh(path).await;
        self.history
            .push((Some(stat.mzxid), Some(stat.mtime), self.tree.clone()));
    }

    async fn delete(&mut self, path: &str) {
        self.client.delete(path, -1).await.unwrap();
        self.tree.remove(path);
        let parent = child_of(path);
        self.refresh(&parent).await;
        // The parent's pzxid is the delete's zxid.
        let zxid = self.tree.get(&parent).map(|n| n.stat.pzxid);
        self.history.push((zxid, None, self.tree.clone()));
    }

    async fn set_acl(&mut self, path: &str, acl: Vec<Acl>) {
        self.client.set_acl(path, acl, -1).await.unwrap();
        self.refresh(path).await;
        self.history.push((None, None, self.tree.clone()));
    }
}

/// One round of the recorded load: creates, sets, children with a restrictive ACL,
/// setACLs and deletes under `/app`, with pauses so txn times separate.
fn phase(rt: &tokio::runtime::Runtime, w: &mut Writer, round: usize) {
    rt.block_on(async {
        if round == 0 {
            w.create("/app", "root", open()).await;
        }
        for i in 0..40 {
            let p = format!("/app/r{round}n{i}");
            w.create(&p, &format!("v0 of {p}"), open()).await;
            if i % 3 == 0 {
                w.set(&p, &format!("v1 of {p}")).await;
            }
            if i % 5 == 1 {
                w.create(&format!("{p}/kid"), "kid", read_only()).await;
            }
            if i % 7 == 2 {
                w.set_acl(&p, read_only()).await;
            }
            if i % 4 == 3 {
                let doomed = format!("/app/r{round}n{}", i - 1);
                let kid = format!("{doomed}/kid");
                if w.tree.contains_key(&kid) {
                    w.delete(&kid).await;
                }
                w.delete(&doomed).await;
            }
            if i % 10 == 9 {
                // Txn times apart, so times can name the states between.
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    })
}

/// The `/app` subtree of a data directory, loaded as zkd loads it.
fn restored_app(dir: &Path) -> BTreeMap<String, Node> {
    let r = zk_log::recover(
        &zk_log::FsStorage,
        &zk_log::DataDirs::new(dir, None),
        zk_tree::TreeConfig::default(),
    )
    .unwrap();
    let mut out = BTreeMap::new();
    for path in r.tree.walk() {
        if path == "/app" || path.starts_with("/app/") {
            out.insert(
                path.clone(),
                Node {
                    data: r.tree.data(&path).unwrap().map(Bytes::copy_from_slice),
                    acl: r.tree.acl(&path).unwrap().to_vec(),
                    stat: r.tree.stat(&path).unwrap(),
                },
            );
        }
    }
    out
}

/// `zkcli restore --from FROM FLAG POINT --into DIR` (through `zkcli`), then the restored
/// `/app` compared node by node with `want`; zkcli's output.
fn restore_and_compare(
    zkcli: &dyn Fn(&[&str]) -> Outcome,
    from: &str,
    flag: &str,
    point: &str,
    dir: &Path,
    want: &BTreeMap<String, Node>,
) -> String {
    let into = dir.to_str().unwrap();
    let (code, out, err) = zkcli(&["restore", "--from", from, flag, point, "--into", into]);
    assert_eq!(code, 0, "{out}{err}");
    let diff = differences(want, &restored_app(dir));
    assert!(
        diff.is_empty(),
        "{flag} {point}: {} differences, first: {:?}",
        diff.len(),
        &diff[..diff.len().min(3)]
    );
    out
}

fn differences(want: &BTreeMap<String, Node>, got: &BTreeMap<String, Node>) -> Vec<String> {
    let mut out = Vec::new();
    for (p, w) in want {
        match got.get(p) {
            None => out.push(format!("{p}: missing")),
            Some(g) if g != w => out.push(format!("{p}: want {w:?}, got {g:?}")),
            _ => {}
        }
    }
    for p in got.keys().filter(|p| !want.contains_key(*p)) {
        out.push(format!("{p}: not in the history"));
    }
    out
}

#[test]
fn restores_recorded_points_of_an_ensemble_under_load() {
    let base = std::env::temp_dir().join(format!("zkcli-backup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let targets: Vec<PathBuf> = (1..=3).map(|i| base.join(format!("backup{i}"))).collect();
    for t in &targets {
        std::fs::create_dir_all(t).unwrap();
    }
    let backup_base = base.clone();
    let mut servers: Vec<Option<Zkd>> = start_ensemble_with("backup", 3, move |c| {
        c.backup_target = Some(
            backup_base
                .join(format!("backup{}", c.server_id))
                .display()
                .to_string(),
        );
        c.backup_interval_ms = 200;
        // The operator restores subtrees whose ACLs deny writes as the super user.
        c.super_digest = Some(zk_tree::acl::digest_id("super:restore-pw"));
        // Snapshots (and rolled logs) during the load.
        c.snap_count = 150;
    })
    .into_iter()
    .map(Some)
    .collect();
    let rt = zk_tests::runtime();
    let connect: String = servers
        .iter()
        .flatten()
        .map(|z| z.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let modes: Vec<String> = servers.iter().flatten().map(mode).collect();
        if let Some(i) = modes.iter().position(|m| m == "leader") {
            if modes.iter().filter(|m| *m == "follower").count() == 2 {
                break i;
            }
        }
        assert!(Instant::now() < deadline, "no leader: {modes:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    // The backup followed through the test: a follower that outlives the leader.
    let ours = (leader + 1) % 3;
    let target = targets[ours].clone();

    let mut w = rt.block_on(async {
        let client = Client::builder(&connect)
            .session_timeout(Duration::from_secs(20))
            .connect()
            .await
            .unwrap();
        Writer {
            client,
            tree: BTreeMap::new(),
            history: Vec::new(),
        }
    });
    wait_backup_started(servers[ours].as_ref().unwrap());
    phase(&rt, &mut w, 0);
    phase(&rt, &mut w, 1);

    // The target goes away (an unmounted volume) while writes go on.
    let away = base.join("backup-away");
    std::fs::rename(&target, &away).unwrap();
    phase(&rt, &mut w, 2);
    std::thread::sleep(Duration::from_millis(600));
    let status = backup_status(servers[ours].as_ref().unwrap());
    assert_eq!(status["available"], false, "{status}");
    std::fs::rename(&away, &target).unwrap();

    // The leader stops; the writer carries on through the others (a new epoch).
    drop(servers[leader].take());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let modes: Vec<String> = servers.iter().flatten().map(mode).collect();
        if modes.iter().any(|m| m == "leader") && modes.iter().any(|m| m == "follower") {
            break;
        }
        assert!(Instant::now() < deadline, "no new leader: {modes:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The writer is served again (its server may have dropped it while electing).
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while w.client.exists("/app").await.is_err() {
            assert!(Instant::now() < deadline, "the writer is not served again");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    phase(&rt, &mut w, 3);
    phase(&rt, &mut w, 4);
    let writes = w.history.len();
    let last_zxid = w.history.iter().filter_map(|h| h.0).max().unwrap();
    assert!(
        last_zxid >> 32 > w.history[0].0.unwrap() >> 32,
        "a new epoch"
    );

    // The backup catches up: nothing applied is left unshipped.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = backup_status(servers[ours].as_ref().unwrap());
        if s["available"] == true && s["shipped_zxid"].as_i64() >= Some(last_zxid) {
            break s;
        }
        assert!(Instant::now() < deadline, "the backup never caught up: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status["failures"].as_u64().unwrap() > 0, "{status}");
    println!("backup status after the load: {status}");
    let target_s = target.to_str().unwrap();
    let (code, out, err) = zkcli(&["backup", "verify", target_s]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("gap:"), "no gaps after the outage: {out}");
    println!("{}", out.trim());
    let (code, list, _) = zkcli(&["backup", "list", target_s]);
    assert_eq!(code, 0);
    println!("{}", list.trim());

    // Five zxids across the run (before, during and after the outage, across the leader
    // change) and two times.
    let known: Vec<usize> = (0..writes).filter(|&i| w.history[i].0.is_some()).collect();
    let points: Vec<usize> = [0.1, 0.35, 0.55, 0.75, 1.0]
        .iter()
        .map(|f| known[((known.len() - 1) as f64 * f) as usize])
        .collect();
    let mut restored_dirs = Vec::new();
    for (n, &i) in points.iter().enumerate() {
        let zxid = w.history[i].0.unwrap();
        let dir = base.join(format!("restored-zxid-{n}"));
        let out = restore_and_compare(
            &zkcli,
            target_s,
            "--to-zxid",
            &format!("{zxid:#x}"),
            &dir,
            &w.history[i].2,
        );
        println!(
            "zxid {zxid:#x} (write {i} of {writes}): {} znodes equal; {}",
            w.history[i].2.len(),
            out.trim()
        );
        restored_dirs.push(dir);
    }
    // Times: a write whose reply gave its txn time, followed directly by another that did,
    // later by at least 2 ms: the state at that time is the first one's.
    let timed: Vec<usize> = (0..writes - 1)
        .filter(
            |&i| matches!((w.history[i].1, w.history[i + 1].1), (Some(a), Some(b)) if b > a + 1),
        )
        .collect();
    assert!(timed.len() >= 2, "the load leaves time gaps");
    for (n, &i) in [timed[timed.len() / 4], timed[timed.len() * 3 / 4]]
        .iter()
        .enumerate()
    {
        let t = w.history[i].1.unwrap() + 1;
        let when = zk_log::tools::format_time(t);
        let dir = base.join(format!("restored-time-{n}"));
        let out = restore_and_compare(&zkcli, target_s, "--to-time", &when, &dir, &w.history[i].2);
        println!(
            "time {when} (write {i} of {writes}): {} znodes equal; {}",
            w.history[i].2.len(),
            out.trim()
        );
    }

    // A restored directory starts zkd, and Apache ZooKeeper, serving the restored tree.
    let probe = points[2];
    let expect = &w.history[probe].2;
    let dir = &restored_dirs[2];
    let check_served = |addr: String, who: &str| {
        rt.block_on(async {
            let c = Client::connect(&addr).await.unwrap();
            for (p, node) in expect {
                let (data, stat) = c.get_data(p).await.unwrap();
                assert_eq!((&data, &stat), (&node.data, &node.stat), "{who} {p}");
            }
            c.close().await;
        });
        println!(
            "{who} started from the restored directory and serves its {} znodes",
            expect.len()
        );
    };
    {
        let copy = base.join("zkd-from-restore");
        std::fs::create_dir_all(copy.join("version-2")).unwrap();
        for f in std::fs::read_dir(dir.join("version-2")).unwrap().flatten() {
            std::fs::copy(f.path(), copy.join("version-2").join(f.file_name())).unwrap();
        }
        let z = Zkd::start(&copy, |_| {});
        check_served(z.addr.to_string(), "zkd");
    }
    if zookeeper::available() {
        let zk = zookeeper::ZooKeeper::start(
            "backup-restore",
            &format!("dataDir={}\n", dir.display()),
            "",
        );
        check_served(zk.addr.to_string(), "Apache ZooKeeper 3.8");
    }

    // Outside the backup: refused with the reason.
    let (code, _, err) = zkcli(&[
        "restore",
        "--from",
        target_s,
        "--to-zxid",
        &format!("{:#x}", last_zxid + 1000),
        "--into",
        base.join("never").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("past the end of the backup"), "{err}");
    let (code, _, err) = zkcli(&[
        "restore",
        "--from",
        target_s,
        "--to-time",
        "2001-01-01T00:00:00Z",
        "--into",
        base.join("never").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("before the first txn"), "{err}");
    assert!(!base.join("never").join("version-2").exists());

    // A corrupted segment is found and named.
    let damaged = base.join("damaged");
    std::fs::create_dir_all(damaged.join("logs")).unwrap();
    std::fs::create_dir_all(damaged.join("snapshots")).unwrap();
    for sub in ["logs", "snapshots"] {
        for f in std::fs::read_dir(target.join(sub)).unwrap().flatten() {
            std::fs::copy(f.path(), damaged.join(sub).join(f.file_name())).unwrap();
        }
    }
    std::fs::copy(target.join("manifest.json"), damaged.join("manifest.json")).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(damaged.join("manifest.json")).unwrap()).unwrap();
    let segments: Vec<&str> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "log")
        .map(|e| e["file"].as_str().unwrap())
        .collect();
    let victim = segments[segments.len() / 2];
    let mut bytes = std::fs::read(damaged.join(victim)).unwrap();
    let at = bytes.len() * 2 / 3;
    bytes[at] ^= 0x01;
    std::fs::write(damaged.join(victim), bytes).unwrap();
    let (code, out, _) = zkcli(&["backup", "verify", damaged.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("DAMAGED {victim}")), "{out}");
    println!(
        "verify on a copy with one flipped bit: {}",
        out.lines().next().unwrap_or("")
    );

    // Per-subtree restore into the live ensemble: /app back to the second point, after
    // some of the nodes it had are changed, deleted or given another ACL.
    let (i, zxid) = (points[1], w.history[points[1]].0.unwrap());
    rt.block_on(async {
        w.client
            .add_auth("digest", "super:restore-pw")
            .await
            .unwrap();
        let then = w.history[i].2.clone();
        let now = w.tree.clone();
        let plain: Vec<&String> = then
            .keys()
            .filter(|p| {
                p.matches('/').count() == 2
                    && now
                        .get(*p)
                        .is_some_and(|n| n.acl == open() && n.stat.num_children == 0)
            })
            .collect();
        assert!(plain.len() >= 5, "{plain:?}");
        for p in &plain[..3] {
            w.set(p, "changed after the restore point").await;
        }
        for p in &plain[3..5] {
            w.delete(p).await;
        }
        let guarded = then
            .keys()
            .find(|p| {
                p.matches('/').count() == 2 && now.get(*p).is_some_and(|n| n.acl == read_only())
            })
            .unwrap();
        w.set_acl(guarded, open()).await;
    });
    let live_server = servers.iter().flatten().next().unwrap().addr.to_string();
    let (code, out, err) = zkcli(&[
        "restore",
        "--from",
        target_s,
        "--to-zxid",
        &format!("{zxid:#x}"),
        "--subtree",
        "/app",
        "-server",
        &live_server,
        "--auth",
        "digest:super:restore-pw",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    println!("{}", out.lines().next().unwrap_or(""));
    let summary: serde_json::Value = serde_json::from_str(out.lines().nth(1).unwrap()).unwrap();
    assert!(summary["created"].as_u64() >= Some(2), "{summary}");
    assert!(summary["updated"].as_u64() >= Some(3), "{summary}");
    assert!(summary["acls"].as_u64() >= Some(1), "{summary}");
    assert!(summary["deleted"].as_u64() >= Some(1), "{summary}");
    rt.block_on(async {
        let want = &w.history[i].2;
        let mut got = BTreeMap::new();
        let mut todo = vec!["/app".to_owned()];
        while let Some(p) = todo.pop() {
            let (data, _) = w.client.get_data(&p).await.unwrap();
            let (acl, _) = w.client.get_acl(&p).await.unwrap();
            for k in w.client.get_children(&p).await.unwrap() {
                todo.push(format!("{p}/{k}"));
            }
            got.insert(p, (data, acl));
        }
        let want: BTreeMap<String, (Option<Bytes>, Vec<Acl>)> = want
            .iter()
            .map(|(p, n)| (p.clone(), (n.data.clone(), n.acl.clone())))
            .collect();
        assert_eq!(got.len(), want.len());
        assert!(
            got == want,
            "the live /app equals the restore point's data and ACLs"
        );
        w.client.close().await;
    });
    drop(servers);
    let _ = std::fs::remove_dir_all(&base);
}

/// moto's S3-compatible server (PyPI `moto[server]`) on a free loopback port, killed on
/// drop.
struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = zk_tests::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    /// Creates a bucket (moto takes unsigned requests for that); the HTTP status.
    fn create_bucket(&self, name: &str) -> u16 {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        reply
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_s3_target_on_a_real_s3_compatible_server() {
    if !zk_tests::python_has("moto.server, flask") {
        return;
    }
    let moto = Moto::start();
    assert_eq!(moto.create_bucket("zkbackup"), 200);
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let base = std::env::temp_dir().join(format!("zkcli-backup-s3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let s3 = zk_backup::S3Options {
        endpoint: Some(endpoint.clone()),
        region: Some("us-east-1".into()),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".into()),
    };
    let s3_opts = s3.clone();
    let server = Zkd::start(&base.join("data"), move |c| {
        c.backup_target = Some("s3://zkbackup/zk1".into());
        c.backup_s3 = s3;
        c.backup_interval_ms = 200;
        c.snap_count = 100;
    });
    let rt = zk_tests::runtime();
    let mut w = rt.block_on(async {
        Writer {
            client: Client::connect(&server.addr.to_string()).await.unwrap(),
            tree: BTreeMap::new(),
            history: Vec::new(),
        }
    });
    wait_backup_started(&server);
    phase(&rt, &mut w, 0);
    phase(&rt, &mut w, 1);
    let last_zxid = w.history.iter().filter_map(|h| h.0).max().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = backup_status(&server);
        if s["shipped_zxid"].as_i64() >= Some(last_zxid) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the S3 backup never caught up: {s}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("S3 backup status: {status}");
    let target = "s3://zkbackup/zk1";
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let zkcli_s3 = |args: &[&str]| {
        let out = Command::new(ZKCLI).args(args).envs(env).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = zkcli_s3(&["backup", "verify", target]);
    assert_eq!(code, 0, "{out}{err}");
    println!("{}", out.trim());
    let known: Vec<usize> = (0..w.history.len())
        .filter(|&i| w.history[i].0.is_some())
        .collect();
    for (n, &i) in [known[known.len() / 3], known[known.len() - 1]]
        .iter()
        .enumerate()
    {
        let zxid = w.history[i].0.unwrap();
        let dir = base.join(format!("restored-{n}"));
        let out = restore_and_compare(
            &zkcli_s3,
            target,
            "--to-zxid",
            &format!("{zxid:#x}"),
            &dir,
            &w.history[i].2,
        );
        println!(
            "from S3, zxid {zxid:#x}: {} znodes equal; {}",
            w.history[i].2.len(),
            out.trim()
        );
    }
    // A segment damaged in the bucket is named by verify.
    let bucket = zk_backup::open(target, &s3_opts).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&bucket.get("manifest.json").unwrap().unwrap()).unwrap();
    let victim = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "log")
        .nth(1)
        .unwrap()["file"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bytes = bucket.get(&victim).unwrap().unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 0x04;
    bucket.put(&victim, &bytes).unwrap();
    let (code, out, _) = zkcli_s3(&["backup", "verify", target]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("DAMAGED {victim}")), "{out}");
    rt.block_on(w.client.close());
    drop(server);
    let _ = std::fs::remove_dir_all(&base);
}
