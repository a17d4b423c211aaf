//! Jute, ZooKeeper's record serialization: big-endian primitives, length-prefixed buffers,
//! strings and vectors, records as their fields in order with no tags.
//!
//! Decoding is bounded: a length prefix is checked against the configured maximum
//! (`jute.maxbuffer`) and against the bytes actually present before anything is allocated,
//! so a peer can never make us allocate more than it sent.

use bytes::{Buf, BufMut, Bytes};

use crate::error::{DecodeError, Result};

/// ZooKeeper's default `jute.maxbuffer`: the largest buffer, string, vector or frame (1 MiB - 1).
pub const JUTE_MAXBUFFER_DEFAULT: usize = 0xfffff;

/// A cursor over one frame's bytes. Buffers are sliced out of it without copying.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    len_max: usize,
}

impl Reader {
    /// A reader bounded by the default `jute.maxbuffer`.
    pub fn new(buf: Bytes) -> Reader {
        Reader::with_len_max(buf, JUTE_MAXBUFFER_DEFAULT)
    }

    /// A reader whose buffers, strings and vectors may be at most `len_max` long.
    pub fn with_len_max(buf: Bytes, len_max: usize) -> Reader {
        Reader { buf, len_max }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The unread bytes, consuming the reader.
    pub fn into_rest(self) -> Bytes {
        self.buf
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless every byte was read.
    pub fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }

    fn need(&self, n: usize, what: &'static str) -> Result<()> {
        if self.buf.len() < n {
            Err(DecodeError::Truncated {
                what,
                needed: n - self.buf.len(),
            })
        } else {
            Ok(())
        }
    }

    /// One byte.
    pub fn read_u8(&mut self) -> Result<u8> {
        self.need(1, "byte")?;
        Ok(self.buf.get_u8())
    }

    /// A jute `int`.
    pub fn read_i32(&mut self) -> Result<i32> {
        self.need(4, "int")?;
        Ok(self.buf.get_i32())
    }

    /// A jute `long`.
    pub fn read_i64(&mut self) -> Result<i64> {
        self.need(8, "long")?;
        Ok(self.buf.get_i64())
    }

    /// A jute `boolean`: one byte, true when non-zero (probed: ZooKeeper 3.8 sets a watch
    /// for an exists request whose watch byte is 2).
    pub fn read_bool(&mut self) -> Result<bool> {
        Ok(self.read_u8()? != 0)
    }

    /// A length prefix: `None` for -1 (null), an error for other negatives or for more than
    /// `len_max`.
    fn read_len(&mut self, what: &'static str) -> Result<Option<usize>> {
        let len = self.read_i32()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| DecodeError::NegativeLength { what, len })?;
        if len > self.len_max {
            return Err(DecodeError::TooLong {
                what,
                len,
                max: self.len_max,
            });
        }
        Ok(Some(len))
    }

    /// A jute `buffer`; `None` is the null buffer (length -1), distinct from an empty one.
    pub fn read_buffer(&mut self) -> Result<Option<Bytes>> {
        match self.read_len("buffer")? {
            None => Ok(None),
            Some(len) => {
                self.need(len, "buffer")?;
                Ok(Some(self.buf.split_to(len)))
            }
        }
    }

    /// A jute `ustring`. Never fails on bad UTF-8: see [`decode_string`]. A null string (-1)
    /// reads as empty, which every consumer (path validation first of all) treats as Java
    /// treats null.
    pub fn read_string(&mut self) -> Result<String> {
        match self.read_len("string")? {
            None => Ok(String::new()),
            Some(len) => {
                self.need(len, "string")?;
                let raw = self.buf.split_to(len);
                Ok(decode_string(&raw))
            }
        }
    }

    /// A vector count: -1 (null) reads as 0; a count that could not fit in the remaining bytes
    /// (each element needs at least `elem_len_min` bytes) is [`DecodeError::Truncated`], so the
    /// caller may preallocate `count` elements safely.
    pub fn read_vec_len(&mut self, elem_len_min: usize) -> Result<usize> {
        let Some(count) = self.read_len("vector")? else {
            return Ok(0);
        };
        let needed = count.saturating_mul(elem_len_min.max(1));
        self.need(needed, "vector")?;
        Ok(count)
    }
}

/// Decodes a jute string without ever failing. Valid UTF-8 is kept exactly. Java clients
/// send characters outside the BMP as CESU-8 (each UTF-16 surrogate as its own 3-byte
/// sequence); such pairs are joined into the character they mean. Any other invalid
/// sequence becomes U+FFFD, as Java's lenient decoder does; path validation then rejects it.
pub fn decode_string(raw: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(raw) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let (valid, bad) = rest.split_at(e.valid_up_to());
                // `valid` is valid UTF-8 by construction of `valid_up_to`.
                out.push_str(&String::from_utf8_lossy(valid));
                if let Some(c) = cesu8_pair(bad) {
                    out.push(c);
                    rest = &bad[6..];
                } else {
                    out.push(char::REPLACEMENT_CHARACTER);
                    let skip = e.error_len().unwrap_or(bad.len()).max(1);
                    rest = &bad[skip..];
                }
            }
        }
    }
    out
}

/// A CESU-8 surrogate pair at the start of `b`: `ED A0..AF xx ED B0..BF xx`.
fn cesu8_pair(b: &[u8]) -> Option<char> {
    if b.len() < 6 || b[0] != 0xED || b[3] != 0xED {
        return None;
    }
    let cont = |x: u8| x & 0xC0 == 0x80;
    if !(0xA0..=0xAF).contains(&b[1])
        || !cont(b[2])
        || !(0xB0..=0xBF).contains(&b[4])
        || !cont(b[5])
    {
        return None;
    }
    let hi = 0xD000 | (u32::from(b[1] & 0x3F) << 6) | u32::from(b[2] & 0x3F);
    let lo = 0xD000 | (u32::from(b[4] & 0x3F) << 6) | u32::from(b[5] & 0x3F);
    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
}

/// A value with a jute encoding: primitives, buffers, strings, vectors and records.
pub trait Jute: Sized {
    /// The fewest bytes any value of this type encodes to; bounds vector preallocation.
    const LEN_MIN: usize;
    /// Appends the encoding to `out`.
    fn write<B: BufMut>(&self, out: &mut B);
    /// Reads one value.
    fn read(r: &mut Reader) -> Result<Self>;
    /// The exact number of bytes [`Jute::write`] appends.
    fn encoded_len(&self) -> usize;
}

impl Jute for i32 {
    const LEN_MIN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        out.put_i32(*self);
    }
    fn read(r: &mut Reader) -> Result<Self> {
        r.read_i32()
    }
    fn encoded_len(&self) -> usize {
        4
    }
}

impl Jute for i64 {
    const LEN_MIN: usize = 8;
    fn write<B: BufMut>(&self, out: &mut B) {
        out.put_i64(*self);
    }
    fn read(r: &mut Reader) -> Result<Self> {
        r.read_i64()
    }
    fn encoded_len(&self) -> usize {
        8
    }
}

impl Jute for bool {
    const LEN_MIN: usize = 1;
    fn write<B: BufMut>(&self, out: &mut B) {
        out.put_u8(u8::from(*self));
    }
    fn read(r: &mut Reader) -> Result<Self> {
        r.read_bool()
    }
    fn encoded_len(&self) -> usize {
        1
    }
}

impl Jute for String {
    const LEN_MIN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        write_len(out, self.len());
        out.put_slice(self.as_bytes());
    }
    fn read(r: &mut Reader) -> Result<Self> {
        r.read_string()
    }
    fn encoded_len(&self) -> usize {
        4 + self.len()
    }
}

/// A `ustring` that may be null (length -1), where the difference matters on the wire:
/// ReconfigRequest's absent lists are null in ZooKeeper's client, and its server parses an
/// empty string as a (bad) member list.
impl Jute for Option<String> {
    const LEN_MIN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        match self {
            None => out.put_i32(-1),
            Some(s) => s.write(out),
        }
    }
    fn read(r: &mut Reader) -> Result<Self> {
        match r.read_len("string")? {
            None => Ok(None),
            Some(len) => {
                r.need(len, "string")?;
                let raw = r.buf.split_to(len);
                Ok(Some(decode_string(&raw)))
            }
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.as_ref().map_or(0, String::len)
    }
}

impl Jute for Option<Bytes> {
    const LEN_MIN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        match self {
            None => out.put_i32(-1),
            Some(b) => {
                write_len(out, b.len());
                out.put_slice(b);
            }
        }
    }
    fn read(r: &mut Reader) -> Result<Self> {
        r.read_buffer()
    }
    fn encoded_len(&self) -> usize {
        4 + self.as_ref().map_or(0, Bytes::len)
    }
}

impl<T: Jute> Jute for Vec<T> {
    const LEN_MIN: usize = 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        write_len(out, self.len());
        for item in self {
            item.write(out);
        }
    }
    fn read(r: &mut Reader) -> Result<Self> {
        let count = r.read_vec_len(T::LEN_MIN)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(T::read(r)?);
        }
        Ok(items)
    }
    fn encoded_len(&self) -> usize {
        4 + self.iter().map(Jute::encoded_len).sum::<usize>()
    }
}

/// Writes a length prefix. Lengths past `i32::MAX` cannot be framed by jute at all; they are
/// far beyond any `jute.maxbuffer`, so the caller bounds them first and this saturates.
fn write_len<B: BufMut>(out: &mut B, len: usize) {
    out.put_i32(i32::try_from(len).unwrap_or(i32::MAX));
}

/// Encodes a value into a fresh buffer.
pub fn to_bytes<T: Jute>(value: &T) -> Bytes {
    let mut out = Vec::with_capacity(value.encoded_len());
    value.write(&mut out);
    Bytes::from(out)
}

/// Decodes a value that must fill `bytes` exactly.
pub fn from_bytes<T: Jute>(bytes: Bytes) -> Result<T> {
    let mut r = Reader::new(bytes);
    let value = T::read(&mut r)?;
    r.finish()?;
    Ok(value)
}

/// Declares jute records: a plain struct with public fields, plus its [`Jute`] impl.
/// Field order is wire order.
macro_rules! jute_record {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl $crate::jute::Jute for $name {
            const LEN_MIN: usize = 0 $( + <$ty as $crate::jute::Jute>::LEN_MIN )*;
            #[allow(unused_variables)]
            fn write<B: ::bytes::BufMut>(&self, out: &mut B) {
                $( $crate::jute::Jute::write(&self.$field, out); )*
            }
            #[allow(unused_variables)]
            fn read(r: &mut $crate::jute::Reader) -> $crate::error::Result<Self> {
                Ok($name { $( $field: <$ty as $crate::jute::Jute>::read(r)?, )* })
            }
            fn encoded_len(&self) -> usize {
                0 $( + $crate::jute::Jute::encoded_len(&self.$field) )*
            }
        }

        #[cfg(test)]
        impl $crate::arbitrary::Arb for $name {
            fn arb() -> ::proptest::strategy::BoxedStrategy<Self> {
                use ::proptest::strategy::Strategy;
                #[allow(unused_parens)]
                let fields = ( $( <$ty as $crate::arbitrary::Arb>::arb() ),* );
                #[allow(unused_parens, non_snake_case, clippy::unused_unit)]
                fields.prop_map(|( $( $field ),* )| $name { $( $field ),* }).boxed()
            }
        }
    )*};
}
pub(crate) use jute_record;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_buffer_is_distinct_from_empty() {
        assert_eq!(to_bytes(&None::<Bytes>).as_ref(), &[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(to_bytes(&Some(Bytes::new())).as_ref(), &[0, 0, 0, 0]);
        assert_eq!(
            from_bytes::<Option<Bytes>>(Bytes::from_static(&[0xff; 4])),
            Ok(None)
        );
    }

    #[test]
    fn negative_lengths_other_than_null_are_errors() {
        let r = from_bytes::<String>(Bytes::from_static(&[0xff, 0xff, 0xff, 0xfe]));
        assert_eq!(
            r,
            Err(DecodeError::NegativeLength {
                what: "string",
                len: -2
            })
        );
    }

    #[test]
    fn huge_vector_count_is_rejected_before_allocating() {
        let r = from_bytes::<Vec<String>>(Bytes::from_static(&[0x00, 0x0f, 0xff, 0xff]));
        assert!(matches!(r, Err(DecodeError::Truncated { .. })), "{r:?}");
        let r = from_bytes::<Vec<String>>(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]));
        assert!(matches!(r, Err(DecodeError::TooLong { .. })), "{r:?}");
    }

    #[test]
    fn length_above_maxbuffer_is_rejected() {
        let mut r = Reader::with_len_max(Bytes::from_static(&[0, 0, 0, 9, 1, 2, 3]), 8);
        assert_eq!(
            r.read_buffer(),
            Err(DecodeError::TooLong {
                what: "buffer",
                len: 9,
                max: 8
            })
        );
    }

    #[test]
    fn any_non_zero_boolean_byte_is_true() {
        for (b, v) in [(0u8, false), (1, true), (2, true), (0xff, true)] {
            assert_eq!(from_bytes::<bool>(Bytes::copy_from_slice(&[b])), Ok(v));
        }
    }

    #[test]
    fn cesu8_surrogate_pair_decodes_to_the_character() {
        // U+1F600 as CESU-8: D83D DE00 -> ED A0 BD ED B8 80.
        let cesu = [b'/', 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80];
        assert_eq!(decode_string(&cesu), "/\u{1F600}");
    }

    #[test]
    fn invalid_utf8_never_fails() {
        assert_eq!(decode_string(&[b'a', 0xff, b'b']), "a\u{FFFD}b");
        assert_eq!(
            decode_string(&[0xED, 0xA0, 0xBD]),
            "\u{FFFD}\u{FFFD}\u{FFFD}"
        );
        assert_eq!(decode_string(&[0xE2, 0x82]), "\u{FFFD}");
    }

    #[test]
    fn valid_utf8_is_kept_exactly() {
        let s = "/dir/\u{1F600}/é";
        assert_eq!(decode_string(s.as_bytes()), s);
    }
}
