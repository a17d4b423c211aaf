//! Replays the committed corpora of the cargo-fuzz targets in `fuzz/` through the same
//! entry points the fuzzer drives, so every `cargo test` re-checks what the fuzzer found
//! (without nightly or libFuzzer):
//! - `session`: client byte streams against a whole in-memory server;
//! - `datadir`: damaged snapshots and txn logs, read and recovered;
//! - `peer`: another member's frames through a zk-zab peer.

use std::path::{Path, PathBuf};

/// Each corpus holds at least this many inputs (the seeds alone are more): fewer means it
/// went missing.
const CORPUS_FILES_MIN: usize = 10;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= CORPUS_FILES_MIN,
        "corpus {} has {} files, expected at least {CORPUS_FILES_MIN}",
        dir.display(),
        files.len()
    );
    files
}

fn replay(target: &str, run: impl Fn(&[u8]) + std::panic::RefUnwindSafe) {
    let files = corpus(target);
    let mut bytes = 0;
    let mut slowest = (std::time::Duration::ZERO, PathBuf::new());
    for path in &files {
        let data = std::fs::read(path).expect("read corpus file");
        bytes += data.len();
        let started = std::time::Instant::now();
        let result = std::panic::catch_unwind(|| run(&data));
        if started.elapsed() > slowest.0 {
            slowest = (started.elapsed(), path.clone());
        }
        assert!(
            result.is_ok(),
            "{target} corpus file {} panicked",
            path.display()
        );
    }
    println!(
        "{target}: replayed {} corpus files ({bytes} bytes); slowest {:?} ({})",
        files.len(),
        slowest.0,
        slowest.1.display()
    );
}

#[test]
fn session_corpus_replays() {
    replay("session", |d| {
        zk_server::fuzzing::serve_streams(d);
    });
}

#[test]
fn datadir_corpus_replays() {
    replay("datadir", zk_log::fuzzing::read_everything);
}

#[test]
fn peer_corpus_replays() {
    replay("peer", zk_peer::fuzzing::drive_peer);
}

/// The session seeds are real: a handshake of the capture gets a session and its requests
/// answers, so the target exercises the pipeline and not only the handshake's refusal.
#[test]
fn session_seeds_reach_the_pipeline() {
    let most = corpus("session")
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .filter_map(|d| zk_server::fuzzing::serve_streams(&d).into_iter().next())
        .map(|out| out.len())
        .max()
        .unwrap_or(0);
    assert!(
        most > 2000,
        "at most {most} bytes came back for any session seed"
    );
}
