//! `reconfig` and `config` through zkcli against a real Apache ZooKeeper 3.8 ensemble with
//! `reconfigEnabled=true`, next to zkCli.sh on the same ensemble: an incremental remove and
//! add, a bulk (`-members`) change and a conditional one with a stale version (`-v`) print
//! the same as zkCli.sh does, and every committed configuration is what `config` then shows;
//! the same commands against a zkd ensemble commit and show its configuration.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use zk_tests::zookeeper;

const ZKCLI_SH: &str = "/usr/share/zookeeper/bin/zkCli.sh";
const ZKCLI: &str = env!("CARGO_BIN_EXE_zkcli");

/// stdout and stderr of `program -server addr` reading `script`, without the JVM's log
/// noise, connection chatter and blank lines.
fn run(program: &str, addr: SocketAddr, script: &str) -> Vec<String> {
    let mut child = Command::new(program)
        .arg("-server")
        .arg(addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("SLF4J")
                && !l.starts_with("log4j")
                && !l.starts_with("Connecting to")
                && !l.starts_with("WATCHER::")
                && !l.starts_with("WatchedEvent")
                && !l.starts_with("Welcome to ZooKeeper")
                && !l.starts_with("JLine support")
        })
        .map(str::to_owned)
        .collect()
}

fn committed(config: &[String]) -> Vec<String> {
    let mut v = vec!["Committed new configuration:".to_owned()];
    v.extend(config.iter().cloned());
    v
}

#[test]
fn reconfig_prints_what_zkcli_sh_prints() {
    if !zookeeper::available() {
        return;
    }
    let servers = zookeeper::start_ensemble_with(
        "zkcli-reconfig",
        3,
        "reconfigEnabled=true",
        "-Dzookeeper.skipACL=yes",
    );
    let ports = zookeeper::ensemble_ports(&servers);
    let line = |i: usize| {
        let (q, e, c) = ports[i];
        format!(
            "server.{}=127.0.0.1:{q}:{e}:participant;127.0.0.1:{c}",
            i + 1
        )
    };
    // Change a follower's membership, through the other follower: removing the leader (or
    // the client's own server) would drop connections, for zkCli.sh as for zkcli.
    let leader = servers
        .iter()
        .position(|s| {
            zookeeper::four_letter(s.addr, "srvr").is_some_and(|t| t.contains("Mode: leader"))
        })
        .unwrap();
    let victim = (leader + 1) % 3;
    let addr = servers[(leader + 2) % 3].addr;
    let id = victim + 1;

    let theirs = run(ZKCLI_SH, addr, "config\n");
    let ours = run(ZKCLI, addr, "config\n");
    assert_eq!(ours, theirs, "config");
    assert!(ours.iter().any(|l| *l == line(victim)), "{ours:?}");

    // Incremental: zkcli removes server 3, zkCli.sh adds it back; each prints the
    // committed configuration that `config` shows afterwards.
    let ours = run(ZKCLI, addr, &format!("reconfig -remove {id}\n"));
    let after = run(ZKCLI_SH, addr, "config\n");
    assert_eq!(ours, committed(&after), "zkcli reconfig -remove");
    let prefix = format!("server.{id}=");
    assert!(!after.iter().any(|l| l.starts_with(&prefix)), "{after:?}");
    let theirs = run(ZKCLI_SH, addr, &format!("reconfig -add {}\n", line(victim)));
    let after = run(ZKCLI, addr, "config\n");
    assert_eq!(theirs, committed(&after), "zkCli.sh reconfig -add");
    assert!(after.iter().any(|l| *l == line(victim)), "{after:?}");

    // Conditional with a stale version: the same refusal from both.
    let stale = format!("reconfig -remove {id} -v 1\n");
    let theirs = run(ZKCLI_SH, addr, &stale);
    let ours = run(ZKCLI, addr, &stale);
    assert_eq!(ours, theirs, "reconfig with a stale -v");

    // Bulk: the whole membership at once, through zkcli.
    let members = format!("{},{},{}", line(0), line(1), line(2));
    let ours = run(ZKCLI, addr, &format!("reconfig -members {members}\n"));
    let after = run(ZKCLI_SH, addr, "config\n");
    assert_eq!(ours, committed(&after), "zkcli reconfig -members");
}

#[test]
fn reconfig_against_a_zkd_ensemble() {
    let servers = zk_tests::zkd::start_ensemble_with("zkcli-reconfig", 3, |c| {
        c.reconfig_enabled = true;
        c.skip_acl = true;
    });
    // Ask the leader (a removal of the leader itself would move leadership mid-command),
    // once both followers are synced with it: a removal needs a quorum of the new
    // configuration connected and up to date, or it is refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let leader = loop {
        let modes: Vec<String> = servers
            .iter()
            .map(|s| zookeeper::four_letter(s.addr, "srvr").unwrap_or_default())
            .collect();
        let followers = modes
            .iter()
            .filter(|t| t.contains("Mode: follower"))
            .count();
        let found = modes.iter().position(|t| t.contains("Mode: leader"));
        if let (Some(l), 2) = (found, followers) {
            break l;
        }
        assert!(std::time::Instant::now() < deadline, "no leader");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let addr = servers[leader].addr;
    let before = run(ZKCLI, addr, "config\n");
    assert_eq!(before.len(), 4, "{before:?}");
    assert_eq!(before[3], "version=0");
    let victim = (leader + 1) % 3 + 1;
    let ours = run(ZKCLI, addr, &format!("reconfig -remove {victim}\n"));
    let after = run(ZKCLI, addr, "config\n");
    assert_eq!(ours, committed(&after));
    assert_eq!(after.len(), 3, "{after:?}");
    let removed = before
        .iter()
        .find(|l| l.starts_with(&format!("server.{victim}=")))
        .unwrap()
        .clone();
    let version = after[2].trim_start_matches("version=").to_owned();
    // Stale and current conditional versions.
    let stale = run(ZKCLI, addr, &format!("reconfig -add {removed} -v 1\n"));
    assert_eq!(stale, vec!["version No is not valid : ".to_owned()]);
    let back = run(
        ZKCLI,
        addr,
        &format!("reconfig -add {removed} -v {version}\n"),
    );
    assert!(back.contains(&removed), "{back:?}");
    assert_eq!(back, committed(&run(ZKCLI, addr, "config\n")));
}
