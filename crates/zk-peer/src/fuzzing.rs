//! The fuzz entry point for what another ensemble member's bytes reach: the protobuf frame
//! decoder, [`from_frame`], and a zk-zab [`Peer`] stepping on the messages. Shared by the
//! cargo-fuzz target `peer` (`fuzz/`) and by the corpus replay in `cargo test`.
//!
//! A member may be buggy, old or compromised after authentication; [`drive_peer`] must
//! never panic on anything it sends. Besides "no panic", it checks that a decoded message
//! survives [`to_frame`] and back unchanged.
//!
//! Input: a sequence of events `[op][len: u16 BE][len bytes]`. `(op >> 1) % 3` picks the
//! kind and `op & 1` a detail: 0, a protobuf `Frame` from server 2 (or 3); 1, `len` ms
//! passing (or the disk catching up with every write asked for); 2, the link to server 2
//! (or 3) going down (even `len`) or up (odd `len`).

use prost::Message;
use zk_zab::peer::{Config, Durable, Input, Output, Peer};
use zk_zab::quorum::Quorum;

use crate::{from_frame, pb, to_frame};

/// Plays `data` to server 1 of a three-server ensemble that starts looking.
pub fn drive_peer(data: &[u8]) {
    let config = Config {
        me: 1,
        quorum: Quorum::majority([1, 2, 3]),
        members: vec![1, 2, 3],
        tick_ms: 100,
        init_limit: 10,
        sync_limit: 5,
        election: Default::default(),
        zxid_counter_max: u32::MAX,
        config_version: 0,
    };
    let mut out = Vec::new();
    let mut now = 0u64;
    let mut peer = Peer::new(config, Durable::default(), now, &mut out);
    let mut writes = count_writes(&out);
    let mut rest = data;
    while rest.len() >= 3 {
        let op = rest[0];
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        let body = &rest[3..];
        let len = len.min(body.len());
        let (bytes, tail) = body.split_at(len);
        rest = tail;
        out.clear();
        let from = 2 + u64::from(op & 1);
        match (op >> 1) % 3 {
            0 => {
                let Ok(frame) = pb::Frame::decode(bytes) else {
                    continue;
                };
                let Some(msg) = from_frame(frame) else {
                    continue;
                };
                let again = from_frame(to_frame(&msg));
                assert_eq!(again.as_ref(), Some(&msg), "a message does not round-trip");
                peer.step(Input::Msg { from, msg }, &mut out);
            }
            1 => {
                now += len as u64;
                if op & 1 == 1 && writes > 0 {
                    peer.step(Input::DiskDone { upto: writes }, &mut out);
                } else {
                    peer.step(Input::Tick { now }, &mut out);
                }
            }
            _ => {
                let input = if len % 2 == 0 {
                    Input::LinkDown { peer: from }
                } else {
                    Input::LinkUp { peer: from }
                };
                peer.step(input, &mut out);
            }
        }
        writes += count_writes(&out);
    }
}

/// Disk writes a step asked for: each write and each snapshot install.
fn count_writes(out: &[Output]) -> u64 {
    out.iter()
        .filter(|o| matches!(o, Output::Write(_) | Output::InstallSnapshot { .. }))
        .count() as u64
}

/// A fuzz input from events, for seeding the corpus: `(op, body)` pairs as above.
pub fn encode_events(events: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (op, body) in events {
        let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
        out.push(*op);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body[..usize::from(len)]);
    }
    out
}

/// A message as the bytes of its frame, for seeding the corpus.
pub fn frame_bytes(msg: &zk_zab::peer::Msg) -> Vec<u8> {
    to_frame(msg).encode_to_vec()
}
