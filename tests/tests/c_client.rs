//! Apache ZooKeeper's C client (`cli_mt` from Debian `zookeeper-bin`) drives create, get,
//! set, ls and delete against a real ZooKeeper and against zkd; the outputs must match
//! once session ids and timings are normalised.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use zk_tests::zkd::Zkd;
use zk_tests::zookeeper::{self, ZooKeeper};

const CLI_MT: &str = "/usr/lib/zookeeper/bin/cli_mt";

const SESSION: &[&str] = &[
    "create /c_test",
    "get /c_test",
    "set /c_test world",
    "get /c_test",
    "create /c_test/child",
    "ls /c_test",
    "delete /c_test/child",
    "delete /c_test",
    "get /c_test",
    "ls /",
];

fn run_cli_mt(addr: std::net::SocketAddr) -> Vec<String> {
    let mut child = Command::new(CLI_MT)
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // cli_mt connects asynchronously: give it a moment, then pace the commands.
    std::thread::sleep(Duration::from_millis(800));
    for cmd in SESSION {
        writeln!(stdin, "{cmd}").unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    writeln!(stdin, "quit").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .filter(|l| !l.starts_with("time = ") && !l.contains("ZOO_") && !l.trim().is_empty())
        .map(|l| {
            if l.starts_with("Got a new session id") {
                "Got a new session id: X".to_owned()
            } else if let Some(i) = ["ctime = ", "mtime = ", "mtime="]
                .iter()
                .find_map(|k| l.find(k))
            {
                format!("{}time = T", &l[..i + 1])
            } else {
                l.to_owned()
            }
        })
        .collect()
}

#[test]
fn cli_mt_sees_no_difference() {
    if !zookeeper::available() {
        return;
    }
    if !Path::new(CLI_MT).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install zookeeper-bin"
        );
        println!("SKIPPED: {CLI_MT} missing (apt-get install zookeeper-bin)");
        return;
    }
    let zk = ZooKeeper::start("cli_mt", "", "");
    let theirs = run_cli_mt(zk.addr);
    drop(zk);
    let dir = std::env::temp_dir().join(format!("zkd-climt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |_| {});
    let ours = run_cli_mt(zkd.addr);
    drop(zkd);
    assert!(
        theirs.iter().any(|l| l.contains("rc = 0")),
        "cli_mt did not work against ZooKeeper: {theirs:#?}"
    );
    assert_eq!(
        ours, theirs,
        "cli_mt output: zkd (left) vs ZooKeeper (right)"
    );
    println!("{} cli_mt output lines identical", ours.len());
}
