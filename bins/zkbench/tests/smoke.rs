//! A short smoke run of zkbench against zkd, so the benchmark keeps working (timings belong
//! to `scripts/bench-vs-zookeeper.sh`, not to tests).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use zk_tests::zkd::Zkd;

#[test]
fn every_workload_runs_and_verifies_its_replies() {
    let dir = std::env::temp_dir().join(format!("zkbench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |c| c.max_client_cnxns = 0);
    for workload in [
        "get",
        "set",
        "create",
        "create-seq",
        "exists",
        "children",
        "mixed",
        "ephemeral",
        "connect",
        "watch",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_zkbench"))
            .args(["--servers", &zkd.addr.to_string(), "--workload", workload])
            .args(["--clients", "3", "--in-flight", "2", "--duration", "0.3"])
            .args(["--znodes", "20", "--value-size", "64", "--label", "zkd"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{workload}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!(json["workload"], workload);
        assert_eq!(json["errors"], 0, "{workload}");
        assert!(json["ops"].as_u64().unwrap() > 0, "{workload}: {json}");
    }
    // A fixed number of creates fills a server.
    let out = Command::new(env!("CARGO_BIN_EXE_zkbench"))
        .args(["--servers", &zkd.addr.to_string(), "--workload", "create"])
        .args([
            "--ops",
            "500",
            "--value-size",
            "100",
            "--clients",
            "2",
            "--in-flight",
            "4",
        ])
        .output()
        .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(json["ops"], 500);
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}
