//! Apache Curator (Debian `libcurator-framework-java`, `libcurator-recipes-java`) runs
//! LeaderLatch, InterProcessMutex, CuratorCache (persistent recursive watches) and
//! DistributedQueue against zkd: `tests/curator/CuratorCheck.java`, compiled here.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use zk_tests::zkd::Zkd;

const JARS: &[&str] = zk_tests::java::CURATOR_JARS;

fn classpath(classes: &Path) -> String {
    zk_tests::java::classpath(classes, JARS)
}

#[test]
fn curator_recipes_work_against_zkd() {
    if !zk_tests::java::jdk_with(JARS) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("zkd-curator-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("curator/CuratorCheck.java");
    zk_tests::java::javac(&source, &classes, JARS);
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
