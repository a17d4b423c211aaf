//! The fuzz entry point for the on-disk readers: txn log scanning, snapshot loading, and
//! whole-directory recovery on damaged files. Shared by the cargo-fuzz target `datadir`
//! (`fuzz/`) and by the corpus replay in `cargo test`.
//!
//! [`read_everything`] must never panic and never trust a length it read. Besides "no
//! panic", it checks: a log scan's records lie inside the file, in order, and each
//! re-encodes to the bytes it was read from; a snapshot that loads re-encodes to a snapshot
//! that loads to the same tree (digest, node count, zxid); recovery either succeeds or
//! returns a named [`LogError`](crate::LogError).

use std::path::Path;

use bytes::Bytes;
use zk_tree::TreeConfig;

use crate::snapfile::{decode_snapshot, encode_snapshot, snapshot_file_name};
use crate::storage::{SimStorage, Storage};
use crate::txnlog::{encode_record, log_file_name, scan_log};
use crate::{recover, DataDirs};

/// Separates the files in one fuzz input.
pub const FILE_SEPARATOR: &[u8] = b"~~~~";

/// Reads `data` as files of a data directory: the first part is a snapshot (compressed as
/// its first byte says: none, gzip or snappy), the others txn logs; then recovers the
/// directory they make.
pub fn read_everything(data: &[u8]) {
    let mut parts = split(data);
    let snapshot = parts.remove(0);
    let (compression, snapshot) = match snapshot.split_first() {
        Some((b, rest)) => (*b % 3, rest),
        None => (0, snapshot),
    };
    let snap_name = match compression {
        1 => format!("{}.gz", snapshot_file_name(0)),
        2 => format!("{}.snappy", snapshot_file_name(0)),
        _ => snapshot_file_name(0),
    };
    snapshot_round_trip(&snap_name, snapshot);
    for (i, log) in parts.iter().enumerate() {
        log_scan(&log_file_name(i as i64 + 1), log);
    }

    // The same files as a data directory, recovered as a restarting server would.
    let storage = SimStorage::new();
    let dirs = DataDirs::new(Path::new("/fuzz"), None);
    let write = |name: &str, bytes: &[u8]| {
        let path = dirs.snap_dir.join(name);
        let _ = storage.create_dir_all(&dirs.snap_dir);
        if let Ok(mut f) = storage.create(&path) {
            let _ = f.write_at(0, bytes);
            let _ = f.sync();
        }
    };
    if !snapshot.is_empty() {
        write(&snap_name, snapshot);
    }
    for (i, log) in parts.iter().enumerate() {
        write(&log_file_name(i as i64 + 1), log);
    }
    let _ = storage.sync_dir(&dirs.snap_dir);
    // Ok, or a named error: both are fine; a panic is not.
    let _ = recover(&storage, &dirs, TreeConfig::default());
}

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < 3 {
        match rest
            .windows(FILE_SEPARATOR.len())
            .position(|w| w == FILE_SEPARATOR)
        {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + FILE_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

fn log_scan(name: &str, bytes: &[u8]) {
    let Ok(scan) = scan_log(Path::new(name), Bytes::copy_from_slice(bytes)) else {
        return;
    };
    let mut last_end = 0u64;
    for record in &scan.records {
        assert!(record.offset >= last_end, "records overlap or go backwards");
        let mut encoded = Vec::new();
        encode_record(&record.raw, &mut encoded);
        let start = usize::try_from(record.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(encoded.len());
        assert!(
            end <= bytes.len(),
            "a record reaches past the end of the file"
        );
        assert_eq!(
            &bytes[start..end],
            &encoded[..],
            "a record does not re-encode to its bytes"
        );
        last_end = end as u64;
    }
}

fn snapshot_round_trip(name: &str, bytes: &[u8]) {
    let path = Path::new(name);
    let Ok(loaded) = decode_snapshot(path, Bytes::copy_from_slice(bytes), TreeConfig::default())
    else {
        return;
    };
    let again = encode_snapshot(&loaded.tree);
    let plain = snapshot_file_name(loaded.zxid);
    let reloaded =
        match decode_snapshot(Path::new(&plain), Bytes::from(again), TreeConfig::default()) {
            Ok(r) => r,
            Err(e) => panic!("a loaded snapshot re-encodes to one that does not load: {e}"),
        };
    assert_eq!(reloaded.tree.node_count(), loaded.tree.node_count());
    assert_eq!(reloaded.tree.digest(), loaded.tree.digest());
    assert_eq!(
        reloaded.tree.last_processed_zxid(),
        loaded.tree.last_processed_zxid()
    );
}
