//! Why a frame or record could not be decoded.

/// Every way a peer's bytes can fail to decode. "Not enough bytes yet" is not an error:
/// [`crate::FrameDecoder::decode`] returns `Ok(None)` for that.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame length prefix exceeds the configured maximum (`jute.maxbuffer`).
    #[error("frame length {len} exceeds the maximum {max}")]
    FrameTooLarge { len: i64, max: usize },
    /// A frame length prefix below zero.
    #[error("negative frame length {0}")]
    NegativeFrameLength(i32),
    /// A buffer, string or vector length prefix below -1 (-1 means null).
    #[error("negative length {len} for {what}")]
    NegativeLength { what: &'static str, len: i32 },
    /// A buffer, string or vector longer than the configured maximum (`jute.maxbuffer`).
    #[error("length {len} of {what} exceeds the maximum {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    /// The record needs more bytes than the frame holds.
    #[error("record truncated: needed {needed} more bytes for {what}")]
    Truncated { what: &'static str, needed: usize },
    /// An opcode this codec does not know, or one that is not valid where it appeared.
    #[error("unknown or misplaced opcode {0}")]
    UnknownOpCode(i32),
    /// Bytes left over after a record that must fill its frame exactly.
    #[error("{0} trailing bytes after the record")]
    TrailingBytes(usize),
}

/// Result alias for decoding.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;
