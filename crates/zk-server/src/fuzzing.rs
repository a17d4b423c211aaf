//! The fuzz entry point for everything a client's bytes reach: the frame reader, the
//! handshake, sessions, the request pipeline, the tree and the log writer, exactly as a
//! TCP connection drives them (only the socket and the disk are in memory). Shared by the
//! cargo-fuzz target `session` (`fuzz/`) and by the corpus replay in `cargo test`.
//!
//! [`serve_streams`] must never panic. Besides "no panic", it checks what a client relies
//! on: the server's answer is whole frames, the first a `ConnectResponse`; replies come in
//! the order of the requests they answer, each at most once; and a connection whose bytes
//! form whole frames gets every reply before it is closed (no hang: a request is answered
//! or the connection closed within [`STREAM_TIMEOUT`]).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use zk_proto::jute::{from_bytes, Jute, Reader};
use zk_proto::records::{ReplyHeader, RequestHeader};
use zk_proto::{ConnectResponse, FourLetterWord, FrameDecoder};

use crate::conn::Throttle;
use crate::core::{Core, CoreMsg};
use crate::Config;

/// The frame bound while fuzzing: small, so the fuzzer does not spend its time on size.
pub const FUZZ_FRAME_BYTES_MAX: usize = 64 * 1024;
/// Separates the connections in one fuzz input.
pub const STREAM_SEPARATOR: &[u8] = b"~~~~";
/// At most this many connections per input.
pub const STREAMS_MAX: usize = 4;
/// A connection that neither answers nor closes within this is a hang: a bug.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// The xid of the `exists /` request appended to a connection whose input is whole frames:
/// its reply proves every earlier request was answered.
const SENTINEL_XID: i32 = 0x5a5a_5a5a;

/// Splits a fuzz input into the byte streams of up to [`STREAMS_MAX`] connections.
pub fn split_streams(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() + 1 < STREAMS_MAX {
        match rest
            .windows(STREAM_SEPARATOR.len())
            .position(|w| w == STREAM_SEPARATOR)
        {
            Some(i) => {
                out.push(&rest[..i]);
                rest = &rest[i + STREAM_SEPARATOR.len()..];
            }
            None => break,
        }
    }
    out.push(rest);
    out
}

/// Runs a fresh in-memory server and plays each stream as one client connection, one
/// after the other (sessions outlive their connections, as on a real server). Returns what
/// the server sent on each. Panics when the server breaks a promise listed above.
pub fn serve_streams(data: &[u8]) -> Vec<Vec<u8>> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => panic!("no runtime: {e}"),
    };
    runtime.block_on(async move {
        let config = Config {
            jute_max_buffer: FUZZ_FRAME_BYTES_MAX,
            max_client_cnxns: 0,
            extended_types_enabled: true,
            ..Config::default()
        };
        let storage = Arc::new(zk_log::storage::SimStorage::new());
        let dirs = zk_log::DataDirs::new(std::path::Path::new("/fuzz"), None);
        let recovered = match zk_log::recover(storage.as_ref(), &dirs, crate::tree_config(&config))
        {
            Ok(r) => r,
            Err(e) => panic!("an empty data dir does not recover: {e}"),
        };
        // A small preallocation: the in-memory file would otherwise be 64 MiB of zeros.
        let log_config = zk_log::txnlog::TxnLogConfig {
            prealloc_bytes: 4096,
            ..zk_log::txnlog::TxnLogConfig::new(&dirs.log_dir)
        };
        let log =
            zk_log::txnlog::TxnLog::new(storage, log_config, recovered.tree.last_processed_zxid());
        let writer = match zk_log::group::LogWriter::spawn(log) {
            Ok(w) => w,
            Err(e) => panic!("no log writer: {e}"),
        };
        let (to_core, mut from_conns) = mpsc::unbounded_channel::<CoreMsg>();
        let mut core = Core::new(config, recovered.tree, writer, to_core.clone());
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
        let core_task = tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = from_conns.recv() => match m { Some(m) => m, None => break },
                    _ = &mut stop_rx => break,
                };
                if let Err(e) = core.handle(msg) {
                    panic!("the in-memory log failed: {e}");
                }
            }
        });
        let throttle = Arc::new(Throttle::new(0));
        let mut outputs = Vec::new();
        for (i, stream) in split_streams(data).into_iter().enumerate() {
            let out = tokio::time::timeout(
                STREAM_TIMEOUT,
                play(stream, i as u64 + 1, to_core.clone(), throttle.clone()),
            )
            .await;
            match out {
                Ok(out) => {
                    check_answer(stream, &out);
                    outputs.push(out);
                }
                Err(_) => panic!(
                    "connection {} neither answered nor closed within {STREAM_TIMEOUT:?}",
                    i + 1
                ),
            }
        }
        let _ = stop_tx.send(());
        if let Err(e) = core_task.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        outputs
    })
}

/// One connection: the stream's bytes (plus the sentinel when they are whole frames after
/// a handshake), then reads until the server closes or the sentinel's reply arrives.
async fn play(
    stream: &[u8],
    conn: u64,
    to_core: mpsc::UnboundedSender<CoreMsg>,
    throttle: Arc<Throttle>,
) -> Vec<u8> {
    let (mut client, server) = tokio::io::duplex(256 * 1024);
    let served = tokio::spawn(crate::conn::serve(
        server,
        conn,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Vec::new(),
        to_core,
        crate::core::guardrails::FrameLimit {
            max: FUZZ_FRAME_BYTES_MAX,
            counters: Arc::default(),
        },
        throttle,
    ));
    let mut input = stream.to_vec();
    let sentinel = whole_frames(stream).is_some_and(|n| n >= 1);
    if sentinel {
        input.extend_from_slice(&sentinel_frame());
    }
    let (mut rd, mut wr) = tokio::io::split(&mut client);
    let write = async {
        let _ = wr.write_all(&input).await;
        if !sentinel {
            let _ = wr.shutdown().await;
        }
        wr
    };
    let read = async {
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    out.extend_from_slice(&chunk[..n]);
                    if sentinel && has_sentinel_reply(&out) {
                        break;
                    }
                }
            }
        }
        out
    };
    let (mut wr, out) = tokio::join!(write, read);
    let _ = wr.shutdown().await;
    drop(rd);
    drop(wr);
    drop(client);
    if let Err(e) = served.await {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    out
}

/// The number of whole frames in `bytes`, or `None` when bytes are left over or a frame
/// is one the server refuses (it then closes the connection, and there is no sentinel).
fn whole_frames(bytes: &[u8]) -> Option<usize> {
    if bytes.len() >= 4 && FourLetterWord::detect(&bytes[..4]).is_some() {
        return None;
    }
    let decoder = FrameDecoder::new(FUZZ_FRAME_BYTES_MAX);
    let mut buf = BytesMut::from(bytes);
    let mut n = 0;
    while let Ok(Some(_)) = decoder.decode(&mut buf) {
        n += 1;
    }
    buf.is_empty().then_some(n)
}

fn sentinel_frame() -> Vec<u8> {
    let mut body = Vec::new();
    RequestHeader {
        xid: SENTINEL_XID,
        r#type: zk_proto::OpCode::Exists as i32,
    }
    .write(&mut body);
    zk_proto::records::ExistsRequest {
        path: "/".into(),
        watch: false,
    }
    .write(&mut body);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

fn frames(out: &[u8]) -> (Vec<bytes::Bytes>, usize) {
    let mut buf = bytes::Bytes::copy_from_slice(out);
    let mut frames = Vec::new();
    while buf.len() >= 4 {
        let len = (&buf[..4]).get_u32() as usize;
        if buf.len() < 4 + len {
            break;
        }
        buf.advance(4);
        frames.push(buf.split_to(len));
    }
    (frames, buf.len())
}

fn reply_xid(frame: &[u8]) -> Option<i32> {
    frame
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes)
}

fn has_sentinel_reply(out: &[u8]) -> bool {
    let (frames, _) = frames(out);
    frames
        .iter()
        .skip(1)
        .any(|f| reply_xid(f) == Some(SENTINEL_XID))
}

/// The xids of the requests in a stream, in order (after the handshake frame).
fn request_xids(stream: &[u8]) -> Vec<i32> {
    let decoder = FrameDecoder::new(FUZZ_FRAME_BYTES_MAX);
    let mut buf = BytesMut::from(stream);
    let mut xids = Vec::new();
    let mut first = true;
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        if first {
            first = false;
            continue;
        }
        let mut r = Reader::new(frame);
        match RequestHeader::read(&mut r) {
            Ok(h) => xids.push(h.xid),
            Err(_) => break,
        }
    }
    xids
}

/// What the server sent on one connection keeps the promises in the module doc.
fn check_answer(stream: &[u8], out: &[u8]) {
    if stream.len() >= 4 && FourLetterWord::detect(&stream[..4]).is_some() {
        return; // a text answer
    }
    let (frames, left) = frames(out);
    assert_eq!(left, 0, "the server sent a partial frame");
    let Some((first, replies)) = frames.split_first() else {
        return;
    };
    assert!(
        from_bytes::<ConnectResponse>(first.clone()).is_ok()
            || ConnectResponse::read(&mut Reader::new(first.clone())).is_ok(),
        "the first frame is not a ConnectResponse: {first:02x?}"
    );
    let requests = request_xids(stream);
    let sentinel = whole_frames(stream).is_some_and(|n| n >= 1);
    let mut next = 0;
    for (n, reply) in replies.iter().enumerate() {
        let last = n + 1 == replies.len();
        let header = match ReplyHeader::read(&mut Reader::new(reply.clone())) {
            Ok(h) => h,
            Err(e) => panic!("a reply frame without a reply header ({e}): {reply:02x?}"),
        };
        if header.xid == zk_proto::xid::NOTIFICATION {
            // A request may carry xid -1 too: its reply then reads like a notification.
            if requests.get(next) == Some(&zk_proto::xid::NOTIFICATION) {
                next += 1;
            }
            continue;
        }
        if sentinel && header.xid == SENTINEL_XID && next == requests.len() {
            next += 1;
            continue;
        }
        // Replies answer requests in order, each once. Only an error that ends the
        // connection may jump ahead of earlier requests (as ZooKeeper answers an unknown
        // opcode or a failed auth at once, then closes).
        match requests[next.min(requests.len())..]
            .iter()
            .position(|x| *x == header.xid)
        {
            Some(i) => {
                assert!(
                    i == 0 || (last && header.err != 0),
                    "reply xid {} jumps ahead of {i} unanswered requests and the connection goes on",
                    header.xid
                );
                next += i + 1;
            }
            None => panic!(
                "reply xid {} answers no outstanding request (requests {requests:?}, {next} answered)",
                header.xid
            ),
        }
    }
}
