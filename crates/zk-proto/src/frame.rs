//! Length-prefixed framing: every message in both directions is a 4-byte big-endian signed
//! length followed by that many bytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, Result};
use crate::jute::JUTE_MAXBUFFER_DEFAULT;

/// Splits frames off a byte stream, refusing any frame longer than `frame_bytes_max`
/// before buffering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    frame_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder::new(JUTE_MAXBUFFER_DEFAULT)
    }
}

impl FrameDecoder {
    /// A decoder for frames of at most `frame_bytes_max` payload bytes (`jute.maxbuffer`).
    pub const fn new(frame_bytes_max: usize) -> FrameDecoder {
        FrameDecoder { frame_bytes_max }
    }

    /// The configured bound.
    pub const fn frame_bytes_max(&self) -> usize {
        self.frame_bytes_max
    }

    /// Takes one whole frame's payload off the front of `buf`. `Ok(None)` means more bytes
    /// are needed; `buf` is then untouched. A bad length is an error and the stream is
    /// unusable afterwards.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Bytes>> {
        let Some(len) = self.peek_len(buf)? else {
            return Ok(None);
        };
        if buf.len() < 4 + len {
            buf.reserve(4 + len - buf.len());
            return Ok(None);
        }
        buf.advance(4);
        Ok(Some(buf.split_to(len).freeze()))
    }

    /// The validated payload length announced at the front of `buf`, if 4 bytes are there.
    pub fn peek_len(&self, buf: &[u8]) -> Result<Option<usize>> {
        let Some(prefix) = buf.get(..4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let len = usize::try_from(len).map_err(|_| DecodeError::NegativeFrameLength(len))?;
        if len > self.frame_bytes_max {
            return Err(DecodeError::FrameTooLarge {
                len: len as i64,
                max: self.frame_bytes_max,
            });
        }
        Ok(Some(len))
    }
}

/// Builds one frame: reserves the length prefix, lets `body` write the payload, then fills
/// the prefix in.
pub fn encode_frame(out: &mut BytesMut, body: impl FnOnce(&mut BytesMut)) {
    let start = out.len();
    out.put_i32(0);
    body(out);
    let len = out.len() - start - 4;
    let len = i32::try_from(len).unwrap_or(i32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
}

/// A four-letter-word command, recognised when it is the first 4 bytes of a new connection
/// instead of a frame length (`FourLetterCommands`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FourLetterWord {
    Conf,
    Cons,
    Crst,
    Dirs,
    Dump,
    Envi,
    Gtmk,
    Hash,
    Isro,
    Mntr,
    Ruok,
    Srst,
    Srvr,
    Stat,
    Stmk,
    Wchc,
    Wchp,
    Wchs,
}

impl FourLetterWord {
    /// Every command.
    pub const ALL: [FourLetterWord; 18] = [
        FourLetterWord::Conf,
        FourLetterWord::Cons,
        FourLetterWord::Crst,
        FourLetterWord::Dirs,
        FourLetterWord::Dump,
        FourLetterWord::Envi,
        FourLetterWord::Gtmk,
        FourLetterWord::Hash,
        FourLetterWord::Isro,
        FourLetterWord::Mntr,
        FourLetterWord::Ruok,
        FourLetterWord::Srst,
        FourLetterWord::Srvr,
        FourLetterWord::Stat,
        FourLetterWord::Stmk,
        FourLetterWord::Wchc,
        FourLetterWord::Wchp,
        FourLetterWord::Wchs,
    ];

    /// The four ASCII letters.
    pub const fn name(self) -> &'static str {
        match self {
            FourLetterWord::Conf => "conf",
            FourLetterWord::Cons => "cons",
            FourLetterWord::Crst => "crst",
            FourLetterWord::Dirs => "dirs",
            FourLetterWord::Dump => "dump",
            FourLetterWord::Envi => "envi",
            FourLetterWord::Gtmk => "gtmk",
            FourLetterWord::Hash => "hash",
            FourLetterWord::Isro => "isro",
            FourLetterWord::Mntr => "mntr",
            FourLetterWord::Ruok => "ruok",
            FourLetterWord::Srst => "srst",
            FourLetterWord::Srvr => "srvr",
            FourLetterWord::Stat => "stat",
            FourLetterWord::Stmk => "stmk",
            FourLetterWord::Wchc => "wchc",
            FourLetterWord::Wchp => "wchp",
            FourLetterWord::Wchs => "wchs",
        }
    }

    /// The command spelled by the first 4 bytes of a connection, if they spell one.
    /// Anything else is an ordinary length prefix (an unknown word like `xxxx` reads as a
    /// huge length, as in ZooKeeper).
    pub fn detect(first4: &[u8]) -> Option<FourLetterWord> {
        let word = first4.get(..4)?;
        FourLetterWord::ALL
            .into_iter()
            .find(|w| w.name().as_bytes() == word)
    }

    /// `stmk` is followed by an 8-byte trace mask.
    pub const fn extra_bytes(self) -> usize {
        match self {
            FourLetterWord::Stmk => 8,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_input_is_none_and_untouched() {
        let d = FrameDecoder::default();
        let mut buf = BytesMut::from(&[0u8, 0, 0][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 3);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 3, 1, 2][..]);
        assert_eq!(d.decode(&mut buf), Ok(None));
        assert_eq!(buf.len(), 6);
        buf.put_u8(3);
        buf.put_u8(9);
        assert_eq!(d.decode(&mut buf), Ok(Some(Bytes::from_static(&[1, 2, 3]))));
        assert_eq!(&buf[..], &[9]);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let d = FrameDecoder::new(16);
        let mut buf = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(DecodeError::NegativeFrameLength(-1))
        );
        let mut buf = BytesMut::from(&[0u8, 0, 0, 17][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(DecodeError::FrameTooLarge { len: 17, max: 16 })
        );
        // An unknown "4lw" is just a huge length.
        let mut buf = BytesMut::from(&b"xxxx"[..]);
        assert!(matches!(
            FrameDecoder::default().decode(&mut buf),
            Err(DecodeError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn encode_frame_prefixes_the_length() {
        let mut out = BytesMut::new();
        encode_frame(&mut out, |b| b.put_slice(b"abc"));
        assert_eq!(&out[..], &[0, 0, 0, 3, b'a', b'b', b'c']);
    }

    #[test]
    fn four_letter_words() {
        assert_eq!(FourLetterWord::detect(b"ruok"), Some(FourLetterWord::Ruok));
        assert_eq!(FourLetterWord::detect(b"xxxx"), None);
        assert_eq!(FourLetterWord::detect(b"ru"), None);
        assert_eq!(FourLetterWord::Stmk.extra_bytes(), 8);
    }
}
