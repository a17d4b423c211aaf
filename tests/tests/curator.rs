//! Apache Curator (Debian `libcurator-framework-java`, `libcurator-recipes-java`) runs
//! LeaderLatch, InterProcessMutex, CuratorCache (persistent recursive watches) and
//! DistributedQueue against zkd: `tests/curator/CuratorCheck.java`, compiled here.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use zk_tests::zkd::Zkd;

const JARS: &[&str] = &[
    "curator-client",
    "curator-framework",
    "curator-recipes",
    "zookeeper",
    "zookeeper-jute",
    "guava",
    "slf4j-api",
    "netty-handler",
    "netty-transport",
    "netty-common",
    "netty-buffer",
];

fn classpath(extra: &Path) -> String {
    let mut cp = vec![extra.display().to_string()];
    cp.extend(JARS.iter().map(|j| format!("/usr/share/java/{j}.jar")));
    cp.join(":")
}

fn available() -> bool {
    let ok = Path::new("/usr/share/java/curator-recipes.jar").exists()
        && Command::new("javac")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install libcurator-recipes-java and a JDK"
        );
        println!("SKIPPED: needs libcurator-*-java and javac");
    }
    ok
}

#[test]
fn curator_recipes_work_against_zkd() {
    if !available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("zkd-curator-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("curator/CuratorCheck.java");
    let out = Command::new("javac")
        .arg("-d")
        .arg(&classes)
        .arg("-cp")
        .arg(classpath(&classes))
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "javac: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zkd = Zkd::start(&dir.join("data"), |_| {});
    let text = zk_tests::output_ok(
        Command::new("java")
            .arg("-cp")
            .arg(classpath(&classes))
            .arg("CuratorCheck")
            .arg(zkd.addr.to_string()),
        "Curator checks",
    );
    drop(zkd);
    assert!(text.contains("5 passed, 0 failed"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}
