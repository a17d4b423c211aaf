//! What can go wrong with durable storage, each case distinct so the server can tell a
//! recoverable torn tail from corruption that must stop it.

use std::io;
use std::path::PathBuf;

/// Storage errors. A torn final record is repaired by recovery and is not an error;
/// corruption before the end of the log is [`LogError::Corrupt`] and stops startup.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a ZooKeeper {expected} file (magic {magic:#x}{}, version {version})", magic_hint(*.magic))]
    BadHeader {
        path: PathBuf,
        expected: &'static str,
        magic: i32,
        version: i32,
    },
    #[error("{path}: corrupt at offset {offset}: {reason}; refusing to continue (records after it may have been acknowledged)")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    #[error("{path}: invalid snapshot: {reason}")]
    BadSnapshot { path: PathBuf, reason: String },
    #[error("{path}: zxid went backwards at offset {offset}: {zxid:#x} after {previous:#x}")]
    ZxidOrder {
        path: PathBuf,
        offset: u64,
        zxid: i64,
        previous: i64,
    },
    #[error("{path}: bad epoch file contents {contents:?}")]
    BadEpoch { path: PathBuf, contents: String },
    #[error("the log writer has stopped")]
    WriterStopped,
}

/// What a file starting with `magic` looks like, so a wrong-kind error tells the operator
/// what they passed instead.
fn magic_hint(magic: i32) -> &'static str {
    let b = magic.to_be_bytes();
    match &b {
        b"ZKLG" => " = \"ZKLG\", a txn log",
        b"ZKSN" => " = \"ZKSN\", a snapshot",
        [0x1f, 0x8b, ..] => ", gzip data: a .gz snapshot?",
        [0x82, b'S', b'N', b'A'] => ", snappy data: a .snappy snapshot?",
        _ => "",
    }
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> LogError {
        let path = path.into();
        move |source| LogError::Io { path, source }
    }
}

/// Result alias for storage operations.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
