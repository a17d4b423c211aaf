//! Property: for every record, decode(encode(x)) == x, the encoding has exactly
//! `encoded_len` bytes, and re-encoding the decoded value gives the same bytes.

use bytes::Bytes;
use proptest::prelude::*;

use crate::arbitrary::Arb;
use crate::jute::{from_bytes, to_bytes, Jute};

fn check_round_trip<T: Jute + PartialEq + std::fmt::Debug>(value: &T) -> Result<(), TestCaseError> {
    let bytes = to_bytes(value);
    prop_assert_eq!(bytes.len(), value.encoded_len());
    let back: T = from_bytes(bytes.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, value);
    prop_assert_eq!(to_bytes(&back), bytes);
    Ok(())
}

macro_rules! round_trip_test {
    ($t:ident) => {
        #[allow(non_snake_case)]
        mod $t {
            use super::*;
            proptest! {
                #[test]
                fn round_trip(value in <crate::records::$t as Arb>::arb()) {
                    check_round_trip(&value)?;
                }
            }
        }
    };
}

crate::for_each_record!(round_trip_test);

proptest! {
    /// Arbitrary bytes never panic any decoder and never produce a value whose encoding is
    /// longer than the input.
    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
        let bytes = Bytes::from(raw);
        macro_rules! try_decode {
            ($t:ident) => {
                if let Ok(v) = from_bytes::<crate::records::$t>(bytes.clone()) {
                    prop_assert!(v.encoded_len() <= bytes.len());
                }
            };
        }
        crate::for_each_record!(try_decode);
        for op in -12..110 {
            let mut r = crate::jute::Reader::new(bytes.clone());
            let _ = crate::request::Request::read(op, &mut r);
            if let Some(code) = crate::opcode::OpCode::from_code(op) {
                let mut r = crate::jute::Reader::new(bytes.clone());
                let _ = crate::response::Response::read(code, 0, &mut r);
            }
        }
        let _ = crate::txn::TxnEntry::decode(bytes.clone());
    }
}
