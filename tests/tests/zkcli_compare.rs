//! Apache ZooKeeper's own shell, `zkCli.sh` (Debian package `zookeeper`), runs the same
//! scripted session (tests/zkcli/session.txt: every kind of create, get/set/stat with
//! versions, ls -s/-R, ACLs, deleteall, persistent watches, quotas, addauth, whoami,
//! errors) against a real ZooKeeper and against zkd; the outputs must be the same.
//!
//! Normalised: ctime/mtime lines (clocks), log lines, and the position of watch-event
//! blocks, which the Java client prints from another thread (the events themselves must
//! match, as a multiset).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

use zk_tests::zkd::Zkd;
use zk_tests::zookeeper::{self, ZooKeeper};

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("zkcli/session.txt")
}

fn run_zkcli(addr: std::net::SocketAddr) -> String {
    let out = Command::new(ZKCLI)
        .arg("-server")
        .arg(addr.to_string())
        .stdin(Stdio::from(std::fs::File::open(script()).unwrap()))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// (the output without event blocks, the events sorted).
fn normalise(text: &str) -> (Vec<String>, Vec<String>) {
    let mut lines = Vec::new();
    let mut events = Vec::new();
    for l in text.lines() {
        if l.starts_with("SLF4J")
            || l.starts_with("log4j")
            || l.starts_with("Connecting to")
            || l == "WATCHER::"
            || l.is_empty()
        {
            continue;
        }
        if l.starts_with("WatchedEvent") {
            events.push(l.to_owned());
            continue;
        }
        if l.starts_with("ctime = ") || l.starts_with("mtime = ") {
            lines.push(format!("{} = T", &l[..5]));
            continue;
        }
        lines.push(l.to_owned());
    }
    events.sort();
    (lines, events)
}

#[test]
fn zkcli_sees_no_difference() {
    if !zookeeper::available() {
        return;
    }
    let zk = ZooKeeper::start("zkcli", "", "-Dzookeeper.extendedTypesEnabled=true");
    let theirs = normalise(&run_zkcli(zk.addr));
    drop(zk);
    let dir = std::env::temp_dir().join(format!("zkd-zkcli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |_| {});
    let ours = normalise(&run_zkcli(zkd.addr));
    drop(zkd);
    assert!(
        theirs.0.len() > 80,
        "zkCli produced too little: {:?}",
        theirs.0
    );
    for (i, (a, b)) in theirs.0.iter().zip(&ours.0).enumerate() {
        assert_eq!(
            b, a,
            "line {i} differs (zkd vs ZooKeeper)\nzkd:\n{:#?}",
            ours.0
        );
    }
    assert_eq!(ours.0.len(), theirs.0.len(), "zkd:\n{:#?}", ours.0);
    assert_eq!(ours.1, theirs.1, "watch events");
    println!(
        "{} zkCli output lines and {} events identical",
        ours.0.len(),
        ours.1.len()
    );
}
