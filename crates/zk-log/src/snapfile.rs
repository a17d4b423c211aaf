//! ZooKeeper's snapshot files (`FileSnap`): `snapshot.<hex zxid>[.gz|.snappy]`, a
//! `FileHeader{"ZKSN", 2, -1}`, the tree body (zk-tree's snapshot layout), a seal
//! (the Adler-32 of everything before it, then the string "/"), then the digest record
//! `{long zxid, int version, long treeDigest}` and a second seal. Compressed files wrap that
//! same stream (see [`crate::compress`]); the seals cover the uncompressed bytes.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use zk_proto::{FileHeader, Jute, Reader};
use zk_tree::snapshot::{read_snapshot, write_snapshot};
use zk_tree::{DataTree, TreeConfig};

use crate::checksum::{adler32, Adler32};
pub use crate::compress::SnapshotCompression;
use crate::error::{LogError, Result};
use crate::storage::Storage;

/// `ZKSN`.
pub const SNAP_MAGIC: i32 = 0x5a4b_534e;
/// The only format version.
pub const SNAP_VERSION: i32 = 2;
/// The dbid ZooKeeper writes in snapshots.
pub const SNAP_DBID: i64 = -1;

/// `snapshot.<hex>`: the name of an uncompressed snapshot.
pub fn snapshot_file_name(zxid: i64) -> String {
    format!("snapshot.{zxid:x}")
}

/// `snapshot.<hex>` plus the suffix of `compression`, as ZooKeeper names what it writes.
pub fn snapshot_file_name_with(zxid: i64, compression: SnapshotCompression) -> String {
    format!("snapshot.{zxid:x}{}", compression.suffix())
}

/// The zxid and compression of a `snapshot.<hex>[.gz|.snappy]` name; other names (backups
/// such as `snapshot.1c.bak`, temporary files) are not snapshots.
pub fn parse_snapshot_file_name(name: &str) -> Option<(i64, SnapshotCompression)> {
    let rest = name.strip_prefix("snapshot.")?;
    let (hex, compression) = if let Some(h) = rest.strip_suffix(".gz") {
        (h, SnapshotCompression::Gzip)
    } else if let Some(h) = rest.strip_suffix(".snappy") {
        (h, SnapshotCompression::Snappy)
    } else {
        (rest, SnapshotCompression::None)
    };
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((i64::from_str_radix(hex, 16).ok()?, compression))
}

/// The zxid in a `snapshot.<hex>[.gz|.snappy]` name: recovery and purge consider snapshots
/// of every compression, as ZooKeeper does.
pub fn snapshot_file_zxid(name: &str) -> Option<i64> {
    parse_snapshot_file_name(name).map(|(z, _)| z)
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

/// Appends to a storage file from its start: the tree encoder already hands over chunks of
/// about 60 KB, so no buffering is needed here.
struct FileAppender<'a> {
    file: &'a mut dyn crate::storage::StorageFile,
    pos: u64,
}

impl Write for FileAppender<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write_at(self.pos, buf)?;
        self.pos += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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

/// Writes `snapshot.<zxid>[.gz|.snappy]` (per `compression`, `snapshot.compression.method`)
/// into `dir` durably (file fsync, then directory fsync) and returns its path. A crash
/// part-way leaves a file without a final seal (or a cut compressed stream), which recovery
/// skips.
pub fn write_snapshot_file(
    storage: &dyn Storage,
    dir: &Path,
    tree: &DataTree,
    compression: SnapshotCompression,
) -> Result<PathBuf> {
    storage
        .create_dir_all(dir)
        .map_err(LogError::io(dir.to_path_buf()))?;
    let path = dir.join(snapshot_file_name_with(
        tree.last_processed_zxid(),
        compression,
    ));
    let mut file = storage.create(&path).map_err(LogError::io(path.clone()))?;
    if compression == SnapshotCompression::None {
        // Streamed: a tree of a million znodes encodes to about 200 MB, which the server
        // would otherwise hold twice (encoded, then copied) on top of the tree itself.
        let mut out = Checked {
            inner: FileAppender {
                file: file.as_mut(),
                pos: 0,
            },
            sum: Adler32::default(),
        };
        write_all(tree, &mut out).map_err(LogError::io(path.clone()))?;
    } else {
        let bytes = compression.compress(&encode_snapshot(tree));
        file.write_at(0, &bytes)
            .map_err(LogError::io(path.clone()))?;
    }
    crate::failpoint::hit("snapshot.written");
    file.sync().map_err(LogError::io(path.clone()))?;
    crate::failpoint::hit("snapshot.synced");
    storage
        .sync_dir(dir)
        .map_err(LogError::io(dir.to_path_buf()))?;
    Ok(path)
}

/// Writes an already encoded snapshot (see [`encode_snapshot`]) as `snapshot.<zxid>` in
/// `dir`, durably. Used by a follower that received the leader's state whole.
pub fn write_snapshot_bytes(
    storage: &dyn Storage,
    dir: &Path,
    zxid: i64,
    bytes: &[u8],
) -> Result<PathBuf> {
    storage
        .create_dir_all(dir)
        .map_err(LogError::io(dir.to_path_buf()))?;
    let path = dir.join(snapshot_file_name(zxid));
    let mut file = storage.create(&path).map_err(LogError::io(path.clone()))?;
    file.write_at(0, bytes)
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
    /// How the file was compressed (from its name).
    pub compression: SnapshotCompression,
}

/// The most a snapshot's end can hold after its body: the seal (a long and "/"), then the
/// digest record (zxid, version, digest) and its own seal.
const SEALS_MAX: usize = (8 + 5) + (8 + 4 + 8) + (8 + 5);

/// Snapshots at least this big are summed on a second thread.
const SUM_ASIDE_MIN_BYTES: usize = 4 << 20;

/// Loads and verifies a snapshot file's bytes (as stored: compressed per the name's
/// suffix): header, body, seal checksum, and the digest record against the loaded tree.
pub fn decode_snapshot(path: &Path, bytes: Bytes, config: TreeConfig) -> Result<LoadedSnapshot> {
    let bad = |reason: String| LogError::BadSnapshot {
        path: path.to_path_buf(),
        reason,
    };
    let (zxid, compression) = path
        .file_name()
        .and_then(|n| parse_snapshot_file_name(&n.to_string_lossy()))
        .ok_or_else(|| bad("file name is not snapshot.<hex zxid>[.gz|.snappy]".into()))?;
    let bytes = match compression {
        SnapshotCompression::None => bytes,
        c => Bytes::from(c.decompress(path, &bytes)?),
    };
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
    // The seal's checksum covers everything before it: sum all but the longest tail the
    // seals can take up on another thread while the tree loads (a 190 MB snapshot's sum
    // took about 30 ms, otherwise after the load).
    let summed = bytes.len().saturating_sub(SEALS_MAX);
    let (tree, prefix) = if summed < SUM_ASIDE_MIN_BYTES {
        (read_snapshot(config, &mut r), None)
    } else {
        std::thread::scope(|s| {
            let prefix = s.spawn(|| {
                let mut a = Adler32::default();
                a.update(&bytes[..summed]);
                a
            });
            let tree = read_snapshot(config, &mut r);
            // A sum that did not finish is taken again below.
            (tree, prefix.join().ok())
        })
    };
    let mut tree = tree.map_err(|e| bad(e.to_string()))?;
    let check_seal = |r: &mut Reader| -> Result<()> {
        let at = bytes.len() - r.remaining();
        let value = r.read_i64().map_err(|e| bad(format!("seal: {e}")))?;
        let slash = r.read_string().map_err(|e| bad(format!("seal: {e}")))?;
        if slash != "/" {
            return Err(bad(format!("seal at offset {at} is not followed by \"/\"")));
        }
        let sum = match &prefix {
            Some(p) if at >= summed => {
                let mut a = p.clone();
                a.update(&bytes[summed..at]);
                a.value()
            }
            _ => adler32(&bytes[..at]),
        };
        if value != i64::from(sum) {
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
        // ZooKeeper writes an empty record {0, version, 0} when it has applied no txn
        // since it started (its `snapshot.0` has one): nothing to check against.
        let empty = dz == 0 && d == 0;
        if version == zk_tree::digest::DIGEST_VERSION && dz == zxid && !empty && d != tree.digest()
        {
            return Err(bad(format!(
                "tree digest {:#x} differs from the recorded {d:#x}",
                tree.digest()
            )));
        }
        Some((dz, d))
    };
    tree.set_last_processed_zxid(zxid);
    Ok(LoadedSnapshot {
        tree,
        zxid,
        digest,
        compression,
    })
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
        let path =
            write_snapshot_file(&s, Path::new("/d"), &tree, SnapshotCompression::None).unwrap();
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

    /// A snapshot big enough to be summed on a second thread: checked the same, with and
    /// without the digest record, and damage anywhere is found.
    #[test]
    fn a_big_snapshot_summed_aside_is_checked_the_same() {
        let mut tree = DataTree::default();
        for (zxid, len) in [(1i64, 3usize), (2, SUM_ASIDE_MIN_BYTES + 1000), (3, 10)] {
            create(
                &mut tree,
                zxid,
                format!("/n{zxid}"),
                Some(vec![zxid as u8; len]),
            );
        }
        let s = SimStorage::new();
        let path =
            write_snapshot_file(&s, Path::new("/d"), &tree, SnapshotCompression::None).unwrap();
        let bytes = s.read(&path).unwrap();
        let decode =
            |b: &[u8]| decode_snapshot(&path, Bytes::copy_from_slice(b), TreeConfig::default());
        let loaded = decode(&bytes).unwrap();
        assert_eq!(loaded.tree.digest(), tree.digest());
        assert!(loaded.digest.is_some());
        // Without the digest record (as ZooKeeper before 3.6 writes them).
        let plain = &bytes[..bytes.len() - (8 + 4 + 8) - (8 + 5)];
        assert_eq!(decode(plain).unwrap().digest, None);
        // In the big value (summed aside), and in the last node's pzxid, just before the
        // terminating "/" (summed after the load when there is no digest record).
        let pzxid = |b: &[u8], seals: usize| b.len() - seals - 5 - 3;
        for (b, at) in [
            (&bytes[..], bytes.len() / 2),
            (&bytes[..], pzxid(&bytes, SEALS_MAX)),
            (plain, pzxid(plain, 13)),
        ] {
            let mut flipped = b.to_vec();
            flipped[at] ^= 1;
            let err = decode(&flipped).err().map(|e| e.to_string());
            assert!(
                err.as_deref()
                    .is_some_and(|e| e.contains("checksum mismatch")),
                "byte {at} of {}: {err:?}",
                b.len()
            );
        }
        // The seal itself.
        let mut flipped = plain.to_vec();
        let seal = plain.len() - 13;
        flipped[seal + 3] ^= 1;
        assert!(decode(&flipped).is_err());
    }

    /// Applies the create of a persistent, open node at `zxid`.
    fn create(tree: &mut DataTree, zxid: i64, path: String, data: Option<Vec<u8>>) {
        use zk_proto::{CreateTxn, OpCode, TxnBody, TxnHeader};
        let header = TxnHeader {
            client_id: 7,
            cxid: zxid as i32,
            zxid,
            time: 1_700_000_000_000 + zxid,
            r#type: OpCode::Create.code(),
        };
        let body = TxnBody::Create(CreateTxn {
            path,
            data: data.map(Bytes::from),
            acl: zk_proto::well_known::open_acl_unsafe(),
            ephemeral: false,
            parent_c_version: 0,
        });
        assert_eq!(tree.apply(&header, &body).result.err(), 0);
    }

    /// A tree with data of every shape, big enough for several snappy blocks.
    fn sample_tree() -> DataTree {
        let mut tree = DataTree::default();
        let mut zxid = 0;
        let mut create = |tree: &mut DataTree, path: String, data: Option<Vec<u8>>| {
            zxid += 1;
            create(tree, zxid, path, data);
        };
        create(&mut tree, "/a".into(), None);
        create(&mut tree, "/a/empty".into(), Some(Vec::new()));
        for i in 0..40 {
            let data = format!("node {i} ").repeat(i * 50).into_bytes();
            create(&mut tree, format!("/a/n{i:03}"), Some(data));
        }
        create(
            &mut tree,
            "/bin".into(),
            Some((0..=255u8).cycle().take(70_000).collect()),
        );
        tree
    }

    #[test]
    fn round_trips_of_each_compression_with_sim_storage() {
        let tree = sample_tree();
        let zxid = tree.last_processed_zxid();
        let plain = encode_snapshot(&tree);
        assert!(plain.len() > 3 * crate::compress::SNAPPY_BLOCK_LEN);
        for c in SnapshotCompression::ALL {
            let s = SimStorage::new();
            let path = write_snapshot_file(&s, Path::new("/d"), &tree, c).unwrap();
            assert_eq!(
                path,
                Path::new("/d").join(format!("snapshot.{zxid:x}{}", c.suffix()))
            );
            assert_eq!(
                parse_snapshot_file_name(&path.file_name().unwrap().to_string_lossy()),
                Some((zxid, c))
            );
            // Durable: survives a crash.
            let bytes = s.crash().read(&path).unwrap();
            assert_eq!(SnapshotCompression::sniff(&bytes), c);
            if c == SnapshotCompression::None {
                // Streamed to the file, byte for byte what the in-memory encoder makes.
                assert_eq!(bytes, plain);
            } else {
                assert!(bytes.len() < plain.len() / 2, "{c}: {} bytes", bytes.len());
                assert_eq!(c.decompress(&path, &bytes).unwrap(), plain);
            }
            let loaded =
                decode_snapshot(&path, Bytes::from(bytes.clone()), TreeConfig::default()).unwrap();
            assert_eq!(loaded.compression, c);
            assert_eq!(loaded.zxid, zxid);
            assert_eq!(loaded.digest, Some((zxid, tree.digest())));
            assert_eq!(loaded.tree.digest(), tree.digest());
            assert_eq!(loaded.tree.walk(), tree.walk());
            for p in tree.walk() {
                assert_eq!(loaded.tree.data(&p), tree.data(&p), "{c}: data of {p}");
                assert_eq!(loaded.tree.stat(&p), tree.stat(&p), "{c}: stat of {p}");
            }
            // Damage to the compressed stream or a cut file is refused, naming the file.
            let mut flipped = bytes.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x55;
            let e =
                decode_snapshot(&path, Bytes::from(flipped), TreeConfig::default()).unwrap_err();
            assert!(e.to_string().contains(&*path.to_string_lossy()), "{e}");
            let cut = bytes[..bytes.len() - 7].to_vec();
            assert!(decode_snapshot(&path, Bytes::from(cut), TreeConfig::default()).is_err());
        }
    }

    #[test]
    fn zookeepers_empty_digest_record_is_not_checked() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/data/zookeeper-3.8/version-2/snapshot.0"
        ));
        let bytes = std::fs::read(path).unwrap();
        let loaded = decode_snapshot(path, Bytes::from(bytes), TreeConfig::default()).unwrap();
        assert_eq!(loaded.digest, Some((0, 0)));
        assert_eq!(loaded.tree.node_count(), 4);
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(
            parse_snapshot_file_name("snapshot.1c"),
            Some((0x1c, SnapshotCompression::None))
        );
        assert_eq!(
            parse_snapshot_file_name("snapshot.1c.gz"),
            Some((0x1c, SnapshotCompression::Gzip))
        );
        assert_eq!(
            parse_snapshot_file_name("snapshot.100000000.snappy"),
            Some((0x1_0000_0000, SnapshotCompression::Snappy))
        );
        for bad in [
            "snapshot.",
            "snapshot.1c.bak",
            "snapshot.+1",
            "snapshot.gz",
            "log.1",
            "snapshot.1c.gz.tmp",
        ] {
            assert_eq!(parse_snapshot_file_name(bad), None, "{bad}");
        }
        assert_eq!(
            snapshot_file_name_with(0x1c, SnapshotCompression::Gzip),
            "snapshot.1c.gz"
        );
    }
}
