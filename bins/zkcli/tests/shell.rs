//! zkcli against Apache ZooKeeper's own zkCli.sh:
//! - the scripted session `tests/zkcli/shell.txt` (every zkCli command, with its flags,
//!   errors and watches firing) runs through zkCli.sh and through zkcli, each against a
//!   fresh Apache ZooKeeper 3.8 started by the test; stdout and stderr must match after
//!   normalising clocks, the version line and session ids; the same script through zkcli
//!   against zkd must match too;
//! - one-shot mode (`zkcli -server h:p cmd args`) exits as zkCli.sh does;
//! - an interactive session through a pseudo-terminal: prompt, history, tab completion,
//!   close / connect.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use zk_tests::zkd::Zkd;
use zk_tests::zookeeper::{self, ZooKeeper};

const ZKCLI_SH: &str = "/usr/share/zookeeper/bin/zkCli.sh";
const ZKCLI: &str = env!("CARGO_BIN_EXE_zkcli");

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/zkcli/shell.txt")
}

/// (stdout, stderr) of `program -server addr < script`.
fn run(program: &str, addr: SocketAddr) -> (String, String) {
    let out = Command::new(program)
        .arg("-server")
        .arg(addr.to_string())
        .stdin(Stdio::from(std::fs::File::open(script()).unwrap()))
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Watch events, as a sorted list: zkCli.sh prints them from its event thread, so where a
/// block lands between command outputs is a race on its side (zkcli prints them at command
/// boundaries). The events themselves must be the same.
fn events(text: &str) -> Vec<String> {
    let mut e: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("WatchedEvent "))
        .map(str::to_string)
        .collect();
    e.sort();
    e
}

/// Removes zkCli.sh's watch-event blocks ("\nWATCHER::\n" then "\nWatchedEvent ...\n",
/// printed from its event thread) wherever they landed: a block that landed in the middle
/// of a line the main thread was printing in pieces (`ls` prints "[" first) would split it.
fn without_event_blocks(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("\nWATCHER::\n") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "\nWATCHER::\n".len()..];
        rest = match after.strip_prefix("\nWatchedEvent ") {
            Some(event) => event.find('\n').map_or("", |e| &event[e + 1..]),
            None => after,
        };
    }
    out.push_str(rest);
    out
}

/// Clocks, the version line, session ids (ephemeral owners) and the JVM's log noise are
/// what may differ; everything else must be byte for byte the same.
fn normalise(text: &str) -> Vec<String> {
    let text = without_event_blocks(text);
    text.lines()
        .filter(|l| !l.starts_with("SLF4J") && !l.starts_with("log4j"))
        .filter(|l| !l.is_empty() && *l != "WATCHER::" && !l.starts_with("WatchedEvent "))
        .map(|l| {
            if l.starts_with("ctime = ") || l.starts_with("mtime = ") {
                format!("{} = T", &l[..5])
            } else if l.starts_with("Connecting to ") {
                "Connecting to ADDR".into()
            } else if l.starts_with("ZooKeeper CLI version: ") {
                "ZooKeeper CLI version: V".into()
            } else if l.starts_with("ephemeralOwner = 0x") && l != "ephemeralOwner = 0x0" {
                "ephemeralOwner = SESSION".into()
            } else {
                l.to_string()
            }
        })
        .collect()
}

fn assert_same(what: &str, theirs: &[String], ours: &[String]) {
    for (i, (a, b)) in theirs.iter().zip(ours).enumerate() {
        assert_eq!(
            b,
            a,
            "{what}: line {i} differs\nzkcli:\n{}\n\nzkCli.sh:\n{}",
            ours.join("\n"),
            theirs.join("\n")
        );
    }
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{what}: zkcli:\n{}",
        ours.join("\n")
    );
}

#[test]
fn event_blocks_are_removed_even_inside_a_line() {
    let text = "a\n[\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeCreated path:/x\nb, c]\nd\n\nWATCHER::\n\nWatchedEvent state:SyncConnected type:None path:null\ne\n";
    assert_eq!(without_event_blocks(text), "a\n[b, c]\nd\ne\n");
}

#[test]
fn zkcli_prints_what_zkcli_sh_prints() {
    if !zookeeper::available() {
        return;
    }
    let flags = "-Dzookeeper.extendedTypesEnabled=true";
    let zk = ZooKeeper::start("zkcli-sh", "", flags);
    let (out_sh, err_sh) = run(ZKCLI_SH, zk.addr);
    drop(zk);
    let zk = ZooKeeper::start("zkcli-rs", "", flags);
    let (out_rs, err_rs) = run(ZKCLI, zk.addr);
    drop(zk);
    let (theirs, ours) = (normalise(&out_sh), normalise(&out_rs));
    assert!(
        theirs.len() > 150,
        "zkCli.sh printed too little:\n{out_sh}\n{err_sh}"
    );
    assert_same("stdout", &theirs, &ours);
    assert_eq!(events(&out_rs), events(&out_sh), "watch events");
    assert!(events(&out_sh).len() >= 12, "the script fires watches");
    assert_same("stderr", &normalise(&err_sh), &normalise(&err_rs));
    println!(
        "{} stdout lines, {} stderr lines and {} watch events identical",
        ours.len(),
        normalise(&err_rs).len(),
        events(&out_rs).len()
    );

    // The same script through zkcli against zkd.
    let dir = std::env::temp_dir().join(format!("zkcli-zkd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |_| {});
    let (out_zkd, err_zkd) = run(ZKCLI, zkd.addr);
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
    assert_same("stdout (zkd)", &theirs, &normalise(&out_zkd));
    assert_eq!(events(&out_zkd), events(&out_sh), "watch events (zkd)");
    assert_same("stderr (zkd)", &normalise(&err_sh), &normalise(&err_zkd));
}

fn one_shot(addr: SocketAddr, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(ZKCLI)
        .arg("-server")
        .arg(addr.to_string())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_shot_commands_exit_with_zkcli_status() {
    let dir = std::env::temp_dir().join(format!("zkcli-oneshot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |_| {});
    let (code, _, err) = one_shot(zkd.addr, &["create", "/one", "x"]);
    assert_eq!((code, err.as_str()), (0, "Created /one\n"));
    let (code, out, _) = one_shot(zkd.addr, &["get", "/one"]);
    assert_eq!(code, 0);
    assert!(out.ends_with("x\n"), "{out}");
    let (code, _, err) = one_shot(zkd.addr, &["create", "/one", "x"]);
    assert_eq!((code, err.as_str()), (1, "Node already exists: /one\n"));
    let (code, _, err) = one_shot(zkd.addr, &["get", "/nosuch"]);
    assert_eq!((code, err.as_str()), (1, "Node does not exist: /nosuch\n"));
    let (code, _, err) = one_shot(zkd.addr, &["frobnicate"]);
    assert_eq!(code, 127);
    assert!(
        err.ends_with("Command not found: Command not found frobnicate\n"),
        "{err}"
    );
    // --output json: one object per command.
    let out = Command::new(ZKCLI)
        .args([
            "-server",
            &zkd.addr.to_string(),
            "--output",
            "json",
            "ls",
            "/",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("{\"children\":[\"one\",\"zookeeper\"]")),
        "{text}"
    );
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn interactive_session_through_a_pseudo_terminal() {
    let dir = std::env::temp_dir().join(format!("zkcli-pty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |_| {});
    let driver = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pty_session.py");
    let history = dir.join("history");
    zk_tests::output_ok(
        Command::new("python3")
            .arg(driver)
            .arg(ZKCLI)
            .arg(zkd.addr.to_string())
            .env("ZKCLI_HISTORY", &history),
        "pty session",
    );
    drop(zkd);
    // The history file keeps what was typed, for the next session.
    let kept = std::fs::read_to_string(&history).unwrap();
    assert!(kept.contains("create /pty hello"), "{kept}");
    let _ = std::fs::remove_dir_all(&dir);
}
