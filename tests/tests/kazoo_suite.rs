//! kazoo (Python, PyPI) runs its recipes and client features against zkd:
//! `tests/kazoo/suite.py` (Lock, Semaphore, Election, Barrier, DoubleBarrier, Queue,
//! LockingQueue, Counter, Party, SetPartitioner, DataWatch, ChildrenWatch, TreeCache,
//! transactions, digest ACLs, session expiry through a second client on the same session,
//! ephemeral cleanup, reconnect, threads). The suite also passes against ZooKeeper 3.8.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use zk_tests::zkd::Zkd;

#[test]
fn kazoo_suite_passes_against_zkd() {
    if !zk_tests::python_has("kazoo") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("zkd-kazoo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |_| {});
    let suite = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kazoo/suite.py");
    let out = Command::new("python3")
        .arg(suite)
        .arg(zkd.addr.to_string())
        .output()
        .unwrap();
    drop(zkd);
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "kazoo suite failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("21 passed, 0 failed"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
