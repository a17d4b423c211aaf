//! The jute wire codec of Apache ZooKeeper 3.9, for servers, clients and tools alike.
//!
//! # Layout
//! - [`jute`]: primitives, the bounded [`Reader`], and the [`Jute`] trait every record implements.
//! - [`records`]: every record of `zookeeper.jute` (client, quorum, persistence and txn modules).
//! - [`connect`]: the handshake records, whose trailing `readOnly` byte is optional.
//! - [`request`] / [`response`]: request and reply bodies chosen by opcode, multi and multiRead.
//! - [`txn`]: logged transactions (header, body by type, optional digest).
//! - [`frame`]: the 4-byte length framing and four-letter-word detection.
//! - [`opcode`], [`error_code`], [`modes`], [`ids`]: the protocol's numbers and names.
//!
//! # Invariants
//! - Decoding never panics and never allocates more than the peer actually sent: every
//!   length is checked against the configured maximum (`jute.maxbuffer`) and the bytes present.
//! - Decoding never fails on bad UTF-8 ([`jute::decode_string`]); `buffer`s are kept exact,
//!   including the difference between a null and an empty buffer.
//! - Encoding a decoded value gives back the same bytes (proptest and golden frames captured
//!   from a real ZooKeeper check this).
//!
//! This crate knows nothing of sockets, time or the tree: it is pure.

pub mod connect;
pub mod error;
pub mod error_code;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod ids;
pub mod jute;
pub mod modes;
pub mod opcode;
pub mod path;
pub mod records;
pub mod request;
pub mod response;
pub mod time;
pub mod txn;

#[cfg(test)]
mod arbitrary;
#[cfg(test)]
mod roundtrip_tests;

pub use connect::{ConnectRequest, ConnectResponse};
pub use error::DecodeError;
pub use error_code::ErrorCode;
pub use frame::{encode_frame, FourLetterWord, FrameDecoder};
pub use ids::{SessionId, Zxid};
pub use jute::{from_bytes, to_bytes, Jute, Reader, JUTE_MAXBUFFER_DEFAULT};
pub use modes::{
    ids as well_known, perms, AddWatchMode, CreateMode, EventType, KeeperState, WatcherType,
};
pub use opcode::{xid, OpCode};
pub use records::*;
pub use request::{decode_request, encode_request, MultiOp, Request};
pub use response::{encode_reply, MultiResult, Response};
pub use txn::{TxnBody, TxnEntry};
