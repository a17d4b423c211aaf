//! `zkcli compat`, the compatibility oracle, against a real Apache ZooKeeper 3.8 and zkd:
//! generated workloads (five seeds of 400 steps) show no difference outside the committed
//! allowlist (`conf/compat-allowlist.txt`); a recorded workload replays to the same
//! result; and a zkd test build made to differ on purpose (getData's aversion one too high)
//! is caught, step and field named.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;
use zk_tests::zkd::Zkd;
use zk_tests::zookeeper::{self, ZooKeeper};

const ZKCLI: &str = env!("CARGO_BIN_EXE_zkcli");

fn allowlist() -> String {
    format!(
        "{}/../../conf/compat-allowlist.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs `zkcli compat` with `args` and `--json`; its exit code and report.
fn compat(args: &[&str]) -> (i32, Value) {
    let out = Command::new(ZKCLI)
        .arg("compat")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "no report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("zkcli-compat-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn zkd_and_zookeeper_differ_only_as_the_allowlist_says() {
    if !zookeeper::available() {
        return;
    }
    // TTL nodes on both (the in-process zkd has them on).
    let zk = ZooKeeper::start("compat", "", "-Dzookeeper.extendedTypesEnabled=true");
    let dir = temp_dir("zk");
    let zkd = Zkd::start(&dir.join("data"), |_| {});
    let (a, b) = (zk.addr.to_string(), zkd.addr.to_string());
    let mut allowed = 0;
    for seed in 1..=5 {
        let seed = seed.to_string();
        let (code, r) = compat(&[
            "--a",
            &a,
            "--b",
            &b,
            "--seed",
            &seed,
            "--steps",
            "400",
            "--allowlist",
            &allowlist(),
        ]);
        println!("seed {seed}: {r}");
        assert_eq!(r["steps"], 400);
        assert_eq!(r["unexpected"], 0, "seed {seed}: {r:#}");
        assert_eq!(code, 0);
        allowed += r["differences"].as_array().unwrap().len();
    }
    println!("ZooKeeper 3.8 vs zkd: 2,000 steps, {allowed} allowed differences, 0 unexpected");

    // Without the allowlist the intended differences are reported, and fail the run.
    let (code, r) = compat(&["--a", &a, "--b", &b, "--seed", "1", "--steps", "400"]);
    let found = r["differences"].as_array().unwrap();
    assert!(
        !found.is_empty(),
        "seed 1 exercises exists on an unreadable node"
    );
    assert!(found.iter().all(|d| d["op"] == "exists"), "{r:#}");
    assert_eq!(code, 1);

    // A recorded workload replays to the same report.
    let recorded = dir.join("workload.jsonl");
    let recorded = recorded.to_str().unwrap();
    let (_, first) = compat(&[
        "--a", &a, "--b", &b, "--seed", "3", "--steps", "200", "--record", recorded,
    ]);
    let lines = std::fs::read_to_string(recorded).unwrap().lines().count();
    assert_eq!(lines, 200);
    let (_, again) = compat(&["--a", &a, "--b", &b, "--replay", recorded]);
    assert_eq!(first["differences"], again["differences"]);
    assert_eq!(again["steps"], 200);
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_difference_injected_into_a_test_build_is_caught() {
    let dir = temp_dir("inject");
    let plain = Zkd::start(&dir.join("plain"), |_| {});
    let injected = Zkd::start(&dir.join("injected"), |c| {
        c.inject_difference = Some("getData.aversion");
    });
    let (plain_addr, injected_addr) = (plain.addr.to_string(), injected.addr.to_string());
    // Two plain servers agree completely.
    let other = Zkd::start(&dir.join("other"), |_| {});
    let (code, r) = compat(&[
        "--a",
        &plain_addr,
        "--b",
        &other.addr.to_string(),
        "--seed",
        "4",
        "--steps",
        "300",
    ]);
    assert_eq!(
        (code, r["differences"].as_array().unwrap().len()),
        (0, 0),
        "{r:#}"
    );

    let (code, r) = compat(&[
        "--a",
        &plain_addr,
        "--b",
        &injected_addr,
        "--seed",
        "4",
        "--steps",
        "300",
        "--allowlist",
        &allowlist(),
    ]);
    assert_eq!(code, 1, "{r:#}");
    let found = r["differences"].as_array().unwrap();
    println!("first difference: {}", found[0]);
    assert!(!found.is_empty());
    assert!(
        found
            .iter()
            .all(|d| d["op"] == "getData" && d["allowed_by"].is_null()),
        "{r:#}"
    );
    let d = &found[0];
    let (x, y) = (d["a"].as_str().unwrap(), d["b"].as_str().unwrap());
    let aversion = |s: &str| {
        s.split("aversion=")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .map(str::to_owned)
    };
    let (xa, ya): (i32, i32) = (
        aversion(x).unwrap().parse().unwrap(),
        aversion(y).unwrap().parse().unwrap(),
    );
    assert_eq!(ya, xa + 1, "{d}");
    drop((plain, injected, other));
    let _ = std::fs::remove_dir_all(&dir);
}
