//! `zkcli -r` against a zkd server that lost its quorum (`readonlymode.enabled`): it reads,
//! and a write fails with zkCli's "Not a read-only call" message and a failing status.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

const ZKCLI: &str = env!("CARGO_BIN_EXE_zkcli");

fn zkcli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(ZKCLI).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn zkcli_r_reads_from_a_read_only_server() {
    let mut servers = zk_tests::zkd::start_ensemble_with("zkcli-ro", 3, |c| {
        c.read_only_enabled = true;
    });
    let addr = servers[0].addr.to_string();
    let (ok, _, err) = zkcli(&["-server", &addr, "create", "/ro", "kept"]);
    assert!(ok, "{err}");
    drop(servers.split_off(1));
    // Until the survivor notices it lost its quorum, it may still refuse or serve.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, out, err) = zkcli(&["-r", "-server", &addr, "get", "/ro"]);
        if ok && out.lines().any(|l| l == "kept") {
            break;
        }
        assert!(Instant::now() < deadline, "no read-only read: {out}{err}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, out, err) = zkcli(&["-r", "-server", &addr, "create", "/ro/x", "y"]);
    assert!(!ok, "a write on a read-only server fails: {out}");
    assert!(err.contains("Not a read-only call: /ro/x"), "{err}");
    // Without -r, the read-only server does not take the client at all.
    let (ok, _, _) = zkcli(&["-server", &addr, "-timeout", "2000", "get", "/ro"]);
    assert!(!ok);
}
