//! Snapshot compression as ZooKeeper 3.6+ writes it (`SnapStream`,
//! `zookeeper.snapshot.compression.method`): none (`snapshot.<zxid>`), gzip
//! (`snapshot.<zxid>.gz`, `java.util.zip.GZIPOutputStream`) or snappy
//! (`snapshot.<zxid>.snappy`, xerial snappy-java's `SnappyOutputStream`).
//!
//! The Adler-32 seals inside a snapshot cover the *uncompressed* stream, so compression is a
//! plain wrapper around the bytes [`crate::snapfile`] encodes and checks.
//!
//! Crates: `flate2` (with its default pure-Rust miniz_oxide backend) for gzip and `snap` for
//! raw snappy blocks; both are pure Rust (no C toolchain, no `unsafe` in our code), widely
//! used and maintained. snappy-java's stream framing is not the snappy "framing format"
//! that `snap` implements, so the framing is done here:
//!
//! ```text
//! 0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00 | int version (1) | int compatible version (1)
//! then blocks: int compressed length | raw snappy block (at most 32 KiB uncompressed)
//! ```
//!
//! All ints are big-endian. A reader also accepts another header at a block boundary
//! (concatenated streams), as `SnappyInputStream` does.

use std::io::{Read, Write};

use crate::error::{LogError, Result};

/// How a snapshot file is compressed (`snapshot.compression.method`); chosen by the file
/// suffix when reading, so a server can switch methods and still load older snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SnapshotCompression {
    /// `snapshot.<zxid>`: the checked stream as is (the default, method "").
    #[default]
    None,
    /// `snapshot.<zxid>.gz`: one gzip member (method "gz").
    Gzip,
    /// `snapshot.<zxid>.snappy`: snappy-java stream format (method "snappy").
    Snappy,
}

/// The 8 bytes every snappy-java stream starts with.
pub const SNAPPY_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// The stream format version snappy-java writes (and the oldest reader version it needs).
pub const SNAPPY_STREAM_VERSION: i32 = 1;
/// Uncompressed bytes per snappy block: `SnappyOutputStream`'s default block size.
pub const SNAPPY_BLOCK_LEN: usize = 32 * 1024;
/// The first two bytes of every gzip member.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Snappy cannot expand input by more than this factor; a block header claiming more is
/// corrupt (checked before allocating).
const SNAPPY_EXPANSION_MAX: usize = 64;

impl SnapshotCompression {
    /// Every kind, uncompressed first.
    pub const ALL: [SnapshotCompression; 3] = [
        SnapshotCompression::None,
        SnapshotCompression::Gzip,
        SnapshotCompression::Snappy,
    ];

    /// The kind for a `snapshot.compression.method` value ("", "gz" or "snappy"), so config
    /// parsing can reject anything else (ZooKeeper refuses to start on an unknown method).
    pub fn from_method(method: &str) -> Option<SnapshotCompression> {
        match method {
            "" => Some(SnapshotCompression::None),
            "gz" => Some(SnapshotCompression::Gzip),
            "snappy" => Some(SnapshotCompression::Snappy),
            _ => None,
        }
    }

    /// The `snapshot.compression.method` value, for logs and `conf` output.
    pub fn method(self) -> &'static str {
        match self {
            SnapshotCompression::None => "",
            SnapshotCompression::Gzip => "gz",
            SnapshotCompression::Snappy => "snappy",
        }
    }

    /// The file name suffix ZooKeeper uses, dot included ("" when uncompressed).
    pub fn suffix(self) -> &'static str {
        match self {
            SnapshotCompression::None => "",
            SnapshotCompression::Gzip => ".gz",
            SnapshotCompression::Snappy => ".snappy",
        }
    }

    /// Guesses the kind from a file's first bytes, for tools handed renamed files.
    pub fn sniff(bytes: &[u8]) -> SnapshotCompression {
        if bytes.starts_with(&SNAPPY_MAGIC) {
            SnapshotCompression::Snappy
        } else if bytes.starts_with(&GZIP_MAGIC) {
            SnapshotCompression::Gzip
        } else {
            SnapshotCompression::None
        }
    }

    /// Compresses a whole uncompressed snapshot stream.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            SnapshotCompression::None => data.to_vec(),
            SnapshotCompression::Gzip => gzip(data),
            SnapshotCompression::Snappy => snappy_stream(data),
        }
    }

    /// Undoes [`SnapshotCompression::compress`] (or ZooKeeper's). `path` names the file in
    /// errors.
    pub fn decompress(self, path: &std::path::Path, data: &[u8]) -> Result<Vec<u8>> {
        let bad = |reason: String| LogError::BadSnapshot {
            path: path.to_path_buf(),
            reason,
        };
        match self {
            SnapshotCompression::None => Ok(data.to_vec()),
            SnapshotCompression::Gzip => gunzip(data).map_err(|e| bad(format!("gzip: {e}"))),
            SnapshotCompression::Snappy => {
                unsnappy_stream(data).map_err(|e| bad(format!("snappy: {e}")))
            }
        }
    }
}

impl std::fmt::Display for SnapshotCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotCompression::None => "uncompressed",
            SnapshotCompression::Gzip => "gzip",
            SnapshotCompression::Snappy => "snappy",
        })
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // Deflate level 6, as java.util.zip.Deflater's default.
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    if !data.starts_with(&GZIP_MAGIC) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no gzip header (magic 1f 8b)",
        ));
    }
    // GZIPInputStream reads concatenated members too.
    let mut out = Vec::with_capacity(data.len() * 4);
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out)?;
    Ok(out)
}

fn snappy_stream(data: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + snap::raw::max_compress_len(data.len().min(SNAPPY_BLOCK_LEN)));
    out.extend_from_slice(&SNAPPY_MAGIC);
    out.extend_from_slice(&SNAPPY_STREAM_VERSION.to_be_bytes());
    out.extend_from_slice(&SNAPPY_STREAM_VERSION.to_be_bytes());
    let mut enc = snap::raw::Encoder::new();
    let mut block = vec![0u8; snap::raw::max_compress_len(SNAPPY_BLOCK_LEN)];
    for chunk in data.chunks(SNAPPY_BLOCK_LEN) {
        // A chunk of at most SNAPPY_BLOCK_LEN bytes always fits `block`.
        let n = enc.compress(chunk, &mut block).unwrap_or(0);
        out.extend_from_slice(&(n as i32).to_be_bytes());
        out.extend_from_slice(&block[..n]);
    }
    out
}

fn unsnappy_stream(data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(data.len() * 3);
    let mut dec = snap::raw::Decoder::new();
    let mut pos = 0;
    let mut headers = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.starts_with(&SNAPPY_MAGIC) {
            // The stream header, or the header of a concatenated stream.
            if rest.len() < 16 {
                return Err(format!("stream header at offset {pos} is cut short"));
            }
            let version = be_i32(&rest[8..12]);
            let compatible = be_i32(&rest[12..16]);
            if compatible > SNAPPY_STREAM_VERSION || version < 1 {
                return Err(format!(
                    "unsupported stream version {version} (needs reader version {compatible})"
                ));
            }
            headers += 1;
            pos += 16;
            continue;
        }
        if headers == 0 {
            return Err("no snappy-java stream header (0x82 \"SNAPPY\" 0x00)".into());
        }
        if rest.len() < 4 {
            return Err(format!("block length at offset {pos} is cut short"));
        }
        let len = be_i32(&rest[..4]);
        let Ok(len) = usize::try_from(len) else {
            return Err(format!("negative block length {len} at offset {pos}"));
        };
        let Some(block) = rest.get(4..4 + len) else {
            return Err(format!(
                "block at offset {pos} claims {len} bytes but only {} remain",
                rest.len() - 4
            ));
        };
        let n =
            snap::raw::decompress_len(block).map_err(|e| format!("block at offset {pos}: {e}"))?;
        if n > len.saturating_mul(SNAPPY_EXPANSION_MAX) + 64 {
            return Err(format!(
                "block at offset {pos} claims {n} uncompressed bytes from {len}"
            ));
        }
        let start = out.len();
        out.resize(start + n, 0);
        dec.decompress(block, &mut out[start..])
            .map_err(|e| format!("block at offset {pos}: {e}"))?;
        pos += 4 + len;
    }
    if headers == 0 {
        return Err("empty file".into());
    }
    Ok(out)
}

fn be_i32(b: &[u8]) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    i32::from_be_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 7) as u8).collect()
    }

    #[test]
    fn round_trips_of_each_kind() {
        for c in SnapshotCompression::ALL {
            for len in [0, 1, 100, SNAPPY_BLOCK_LEN, SNAPPY_BLOCK_LEN + 1, 100_000] {
                let data = sample(len);
                let packed = c.compress(&data);
                assert_eq!(SnapshotCompression::sniff(&packed), c, "{c} len {len}");
                assert_eq!(c.decompress(Path::new("x"), &packed).unwrap(), data);
            }
        }
    }

    #[test]
    fn snappy_framing_is_snappy_javas() {
        let data = sample(SNAPPY_BLOCK_LEN * 2 + 5);
        let packed = SnapshotCompression::Snappy.compress(&data);
        assert_eq!(&packed[..8], &SNAPPY_MAGIC);
        assert_eq!(&packed[8..16], &[0, 0, 0, 1, 0, 0, 0, 1]);
        // Three blocks: 32 KiB, 32 KiB, 5 bytes.
        let mut pos = 16;
        let mut lens = Vec::new();
        while pos < packed.len() {
            let n = be_i32(&packed[pos..]) as usize;
            lens.push(snap::raw::decompress_len(&packed[pos + 4..pos + 4 + n]).unwrap());
            pos += 4 + n;
        }
        assert_eq!(lens, vec![SNAPPY_BLOCK_LEN, SNAPPY_BLOCK_LEN, 5]);
        // A concatenated stream reads as the concatenation.
        let mut twice = packed.clone();
        twice.extend_from_slice(&packed);
        let mut expected = data.clone();
        expected.extend_from_slice(&data);
        let got = SnapshotCompression::Snappy
            .decompress(Path::new("x"), &twice)
            .unwrap();
        assert_eq!(got, expected);
    }

    #[test]
    fn damage_is_an_error_naming_the_file() {
        let data = sample(5000);
        for c in [SnapshotCompression::Gzip, SnapshotCompression::Snappy] {
            let packed = c.compress(&data);
            let cut = &packed[..packed.len() - 3];
            let e = c.decompress(Path::new("/d/snapshot.5"), cut).unwrap_err();
            assert!(e.to_string().contains("/d/snapshot.5"), "{e}");
            assert!(c.decompress(Path::new("x"), b"plain").is_err());
        }
    }

    #[test]
    fn methods_and_suffixes() {
        for c in SnapshotCompression::ALL {
            assert_eq!(SnapshotCompression::from_method(c.method()), Some(c));
        }
        assert_eq!(SnapshotCompression::from_method("lz4"), None);
        assert_eq!(SnapshotCompression::Snappy.suffix(), ".snappy");
    }
}
