//! ZooKeeper's snapshot files (`FileSnap`): `snapshot.<hex zxid>`, a
//! `FileHeader{"ZKSN", 2, -1}`, the tree body (zk-tree's snapshot layout), a seal
//! (the Adler-32 of everything before it, then the string "/"), then the digest record
//! `{long zxid, int version, long treeDigest}` and a second seal.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_proto::{FileHeader, Jute, Reader};
use zk_tree::snapshot::{read_snapshot, write_snapshot};
use zk_tree::{DataTree, TreeConfig};

use crate::checksum::{adler32, Adler32};
use crate::error::{LogError, Result};
use crate::storage::Storage;

/// `ZKSN`.
pub const SNAP_MAGIC: i32 = 0x5a4b_534e;
/// The only format version.
pub const SNAP_VERSION: i32 = 2;
/// The dbid ZooKeeper writes in snapshots.
pub const SNAP_DBID: i64 = -1;

/// `snapshot.<hex>`.
pub fn snapshot_file_name(zxid: i64) -> String {
    format!("snapshot.{zxid:x}")
}

/// The zxid in a `snapshot.<hex>[.gz|.snappy]` name, if it is an uncompressed snapshot we
/// read (compressed ones are reported so the operator knows).
pub fn snapshot_file_zxid(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("snapshot.")?;
    i64::from_str_radix(hex, 16).ok()
}

/// A writer that checksums everything passing through it.
struct Checked<W> {
    inner: W,
    sum: Adler32,
}

impl<W: Write> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sum.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn seal<W: Write>(out: &mut Checked<W>) -> io::Result<()> {
    let value = i64::from(out.sum.value());
    let mut b = Vec::with_capacity(13);
    value.write(&mut b);
    "/".to_owned().write(&mut b);
    out.write_all(&b)
}

/// Serializes a snapshot of `tree` (taken at its last processed zxid) into bytes.
pub fn encode_snapshot(tree: &DataTree) -> Vec<u8> {
    let mut out = Checked {
        inner: Vec::with_capacity(tree.node_count() * 160 + 64),
        sum: Adler32::default(),
    };
    // Writing into a Vec cannot fail.
    let _ = write_all(tree, &mut out);
    out.inner
}

fn write_all<W: Write>(tree: &DataTree, out: &mut Checked<W>) -> io::Result<()> {
    let mut header = Vec::new();
    FileHeader {
        magic: SNAP_MAGIC,
        version: SNAP_VERSION,
        dbid: SNAP_DBID,
    }
    .write(&mut header);
    out.write_all(&header)?;
    write_snapshot(tree, out)?;
    seal(out)?;
    let mut digest = Vec::with_capacity(20);
    tree.last_processed_zxid().write(&mut digest);
    zk_tree::digest::DIGEST_VERSION.write(&mut digest);
    tree.digest().write(&mut digest);
    out.write_all(&digest)?;
    seal(out)
}

/// Writes `snapshot.<zxid>` into `dir` durably (file fsync, then directory fsync) and
/// returns its path. A crash part-way leaves a file without a final seal, which recovery
/// skips.
pub fn write_snapshot_file(storage: &dyn Storage, dir: &Path, tree: &DataTree) -> Result<PathBuf> {
    storage
        .create_dir_all(dir)
        .map_err(LogError::io(dir.to_path_buf()))?;
    let path = dir.join(snapshot_file_name(tree.last_processed_zxid()));
    let bytes = encode_snapshot(tree);
    let mut file = storage.create(&path).map_err(LogError::io(path.clone()))?;
    file.write_at(0, &bytes)
        .map_err(LogError::io(path.clone()))?;
    file.sync().map_err(LogError::io(path.clone()))?;
    storage
        .sync_dir(dir)
        .map_err(LogError::io(dir.to_path_buf()))?;
    Ok(path)
}

/// A loaded snapshot.
#[derive(Debug)]
pub struct LoadedSnapshot {
    pub tree: DataTree,
    /// The zxid the file name gives.
    pub zxid: i64,
    /// The digest record, when the file has one: (zxid, digest).
    pub digest: Option<(i64, i64)>,
}

/// Loads and verifies a snapshot file's bytes: header, body, seal checksum, and the digest
/// record against the loaded tree.
pub fn decode_snapshot(path: &Path, bytes: Bytes, config: TreeConfig) -> Result<LoadedSnapshot> {
    let bad = |reason: String| LogError::BadSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    let zxid = path
        .file_name()
        .and_then(|n| snapshot_file_zxid(&n.to_string_lossy()))
        .ok_or_else(|| bad("file name is not snapshot.<hex zxid>".into()))?;
    let mut r = Reader::with_len_max(bytes.clone(), usize::MAX);
    let header = FileHeader::read(&mut r).map_err(|e| bad(e.to_string()))?;
    if header.magic != SNAP_MAGIC || header.version != SNAP_VERSION {
        return Err(LogError::BadHeader {
            path: path.to_path_buf(),
            expected: "snapshot",
            magic: header.magic,
            version: header.version,
        });
    }
    let mut tree = read_snapshot(config, &mut r).map_err(|e| bad(e.to_string()))?;
    let check_seal = |r: &mut Reader| -> Result<()> {
        let at = bytes.len() - r.remaining();
        let value = r.read_i64().map_err(|e| bad(format!("seal: {e}")))?;
        let slash = r.read_string().map_err(|e| bad(format!("seal: {e}")))?;
        if slash != "/" {
            return Err(bad(format!("seal at offset {at} is not followed by \"/\"")));
        }
        if value != i64::from(adler32(&bytes[..at])) {
            return Err(bad(format!("checksum mismatch at offset {at}")));
        }
        Ok(())
    };
    check_seal(&mut r)?;
    let digest = if r.is_empty() {
        None
    } else {
        let dz = r.read_i64().map_err(|e| bad(e.to_string()))?;
        let version = r.read_i32().map_err(|e| bad(e.to_string()))?;
        let d = r.read_i64().map_err(|e| bad(e.to_string()))?;
        check_seal(&mut r)?;
        if version == zk_tree::digest::DIGEST_VERSION && dz == zxid && d != tree.digest() {
            return Err(bad(format!(
                "tree digest {:#x} differs from the recorded {d:#x}",
                tree.digest()
            )));
        }
        Some((dz, d))
    };
    tree.set_last_processed_zxid(zxid);
    Ok(LoadedSnapshot { tree, zxid, digest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SimStorage;

    #[test]
    fn round_trip_and_damage_detection() {
        let mut tree = DataTree::default();
        tree.set_last_processed_zxid(0x42);
        let s = SimStorage::new();
        let path = write_snapshot_file(&s, Path::new("/d"), &tree).unwrap();
        assert_eq!(path, Path::new("/d/snapshot.42"));
        let bytes = s.read(&path).unwrap();
        let loaded =
            decode_snapshot(&path, Bytes::from(bytes.clone()), TreeConfig::default()).unwrap();
        assert_eq!(loaded.zxid, 0x42);
        assert_eq!(loaded.digest, Some((0x42, tree.digest())));
        assert_eq!(loaded.tree.node_count(), 4);
        let mut flipped = bytes.clone();
        flipped[40] ^= 1;
        assert!(decode_snapshot(&path, Bytes::from(flipped), TreeConfig::default()).is_err());
        let cut = bytes[..bytes.len() - 3].to_vec();
        assert!(decode_snapshot(&path, Bytes::from(cut), TreeConfig::default()).is_err());
    }
}
