//! The fuzz entry point, shared by the cargo-fuzz target (`fuzz/fuzz_targets/decode.rs`)
//! and by `tests/fuzz_corpus.rs`, which replays the committed corpus on every `cargo test`.
//!
//! [`decode_everything`] must never panic. Besides "no panic", it checks real properties
//! of the codec: whatever decodes re-encodes to exactly `encoded_len()` bytes, and decoding
//! that encoding gives back the same value (`decode(encode(decode(x))) == decode(x)`).

use bytes::{Bytes, BytesMut};

use crate::connect::{ConnectRequest, ConnectResponse};
use crate::frame::{FourLetterWord, FrameDecoder};
use crate::jute::{from_bytes, to_bytes, Jute, Reader};
use crate::opcode::OpCode;
use crate::records::ReplyHeader;
use crate::request::{decode_request, encode_request};
use crate::response::{encode_reply, Response};
use crate::txn::TxnEntry;

/// The frame bound used while fuzzing: small, so the fuzzer cannot waste time on huge frames.
pub const FUZZ_FRAME_BYTES_MAX: usize = 64 * 1024;

/// Splits `data` into frames and decodes each payload as every message it could be.
/// Panics only when the codec breaks one of its own properties.
pub fn decode_everything(data: &[u8]) {
    let _ = FourLetterWord::detect(data);
    let decoder = FrameDecoder::new(FUZZ_FRAME_BYTES_MAX);
    let mut buf = BytesMut::from(data);
    // Each frame consumes at least its 4-byte prefix, so this ends.
    while let Ok(Some(payload)) = decoder.decode(&mut buf) {
        decode_payload(&payload);
    }
}

fn decode_payload(payload: &Bytes) {
    round_trip_record::<ConnectRequest>(payload);
    round_trip_record::<ConnectResponse>(payload);
    request(payload);
    for op in OpCode::ALL {
        reply(*op, payload);
    }
    txn(payload);
}

/// A record that must fill the payload exactly.
fn round_trip_record<T: Jute + PartialEq + std::fmt::Debug>(payload: &Bytes) {
    let Ok(value) = from_bytes::<T>(payload.clone()) else {
        return;
    };
    let encoded = to_bytes(&value);
    assert_eq!(
        encoded.len(),
        value.encoded_len(),
        "encoded_len disagrees with write for {value:?}"
    );
    let again = from_bytes::<T>(encoded);
    assert_eq!(again.as_ref(), Ok(&value), "record does not round-trip");
}

fn request(payload: &Bytes) {
    let mut r = Reader::new(payload.clone());
    let Ok((header, Ok(request))) = decode_request(&mut r) else {
        return;
    };
    let mut out = Vec::new();
    encode_request(header.xid, &request, &mut out);
    assert_eq!(
        out.len(),
        8 + request.encoded_len(),
        "Request::encoded_len disagrees with write for {request:?}"
    );
    let mut r2 = Reader::new(Bytes::from(out));
    let (header2, body2) = match decode_request(&mut r2) {
        Ok(decoded) => decoded,
        Err(e) => panic!("re-encoded request header fails to decode: {e:?} ({request:?})"),
    };
    assert_eq!(header2, header, "request header does not round-trip");
    assert_eq!(body2, Ok(request), "request body does not round-trip");
    assert!(r2.is_empty(), "re-encoded request left trailing bytes");
}

fn reply(op: OpCode, payload: &Bytes) {
    let mut r = Reader::new(payload.clone());
    let Ok(header) = ReplyHeader::read(&mut r) else {
        return;
    };
    let Ok(body) = Response::read(op, header.err, &mut r) else {
        return;
    };
    let mut out = Vec::new();
    encode_reply(&header, &body, &mut out);
    assert_eq!(
        out.len(),
        16 + body.encoded_len(),
        "Response::encoded_len disagrees with write for {op:?} {body:?}"
    );
    let mut r2 = Reader::new(Bytes::from(out));
    let header2 = match ReplyHeader::read(&mut r2) {
        Ok(h) => h,
        Err(e) => panic!("re-encoded reply header fails to decode: {e:?}"),
    };
    assert_eq!(header2, header, "reply header does not round-trip");
    let body2 = Response::read(op, header2.err, &mut r2);
    assert_eq!(body2, Ok(body), "reply body does not round-trip for {op:?}");
    assert!(r2.is_empty(), "re-encoded reply left trailing bytes");
}

fn txn(payload: &Bytes) {
    let Ok(entry) = TxnEntry::decode(payload.clone()) else {
        return;
    };
    let again = TxnEntry::decode(entry.encode());
    assert_eq!(again.as_ref(), Ok(&entry), "txn does not round-trip");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiny_inputs_do_not_panic() {
        decode_everything(&[]);
        decode_everything(b"ruok");
        decode_everything(&[0, 0, 0, 0]);
        decode_everything(&[0xff; 16]);
    }
}
