//! The web console (`/ui`) in a real browser: headless Chromium (Debian's, with its
//! chromedriver) driven through Selenium (PyPI) by `console/browser.py`, against a `zkd`
//! holding 10,000 children under one node. It expands that family a page at a time, reads
//! a node in text, JSON and hex, is refused an edit until it signs in, is refused a node
//! whose ACL it lacks, edits with a version check, sees a change made by another client
//! (kazoo) within a second, and shows the big families. Screenshots go to
//! `target/tmp/console-screenshots/` (CI keeps them as artifacts).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use zk_client::{Client, CreateMode, Op};
use zk_proto::{perms, well_known, Acl, Id};
use zk_tests::processes;

const ZKD: &str = env!("CARGO_BIN_EXE_zkd");

fn browser_available() -> bool {
    let ok = Path::new("/usr/bin/chromium").exists()
        && Path::new("/usr/bin/chromedriver").exists()
        && zk_tests::python_has("selenium, kazoo");
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install chromium, chromium-driver and selenium"
        );
        println!("SKIPPED: needs chromium, chromium-driver and python3 selenium");
    }
    ok
}

#[test]
fn the_console_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let servers = processes::start(Path::new(ZKD), 1, 0, "", 0, "");
    let s = &servers[0];
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.srvr().is_none() {
        assert!(Instant::now() < deadline, "zkd never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = zk_tests::runtime();
    rt.block_on(async {
        let c = Client::connect(&s.addr()).await.unwrap();
        let open = well_known::open_acl_unsafe;
        c.create("/big", Vec::new(), open(), CreateMode::Persistent)
            .await
            .unwrap();
        for chunk in (0..10_000).collect::<Vec<_>>().chunks(1000) {
            let ops = chunk
                .iter()
                .map(|i| Op::Create {
                    path: format!("/big/n{i:05}"),
                    data: format!("value-{i}").into_bytes().into(),
                    acl: open(),
                    mode: CreateMode::Persistent,
                    ttl: None,
                })
                .collect();
            c.multi(ops).await.unwrap();
        }
        c.create(
            "/json",
            br#"{"a":1,"b":[1,2]}"#.to_vec(),
            open(),
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        let alice_only = vec![Acl {
            perms: perms::ALL,
            id: Id {
                scheme: "digest".into(),
                id: zk_tree::acl::digest_id("alice:pw"),
            },
        }];
        c.create(
            "/secret",
            b"top secret".to_vec(),
            alice_only,
            CreateMode::Persistent,
        )
        .await
        .unwrap();
        c.close().await;
    });
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/browser.py");
    let out = Command::new("python3")
        .arg(&script)
        .env("CONSOLE_URL", format!("http://127.0.0.1:{}", s.admin_port))
        .env("ZK_ADDR", s.addr())
        .env("SCREENSHOTS", &shots)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser session failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(report["rows_loaded_of_10000"], 200);
    assert!(report["watched_change_ms"].as_f64().unwrap() <= 1000.0);
    for name in [
        "1-tree",
        "2-refused-unauthenticated",
        "3-edited",
        "4-live-watch",
        "5-overview",
    ] {
        let f = shots.join(format!("{name}.png"));
        let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
        assert!(len > 1000, "screenshot {} missing", f.display());
    }
    println!("screenshots in {}", shots.display());
}
