//! Replays the cargo-fuzz corpus (`fuzz/corpus/decode/`) through the fuzz target's body, so
//! every `cargo test` re-checks what the fuzzer found, without nightly or libFuzzer.

use std::path::Path;

/// The committed corpus is far larger than this; fewer files means it went missing.
const CORPUS_FILES_MIN: usize = 20;

#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode");
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
    let mut bytes = 0;
    for path in &files {
        let data = std::fs::read(path).expect("read corpus file");
        bytes += data.len();
        let result = std::panic::catch_unwind(|| zk_proto::fuzzing::decode_everything(&data));
        assert!(
            result.is_ok(),
            "corpus file {} panicked; input hex: {}",
            path.display(),
            data.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
    }
    println!(
        "replayed {} corpus files ({bytes} bytes) from {}",
        files.len(),
        dir.display()
    );
}
