//! One client connection: framing in both directions, the handshake, four-letter words.
//! The connection owns no state of its own: every decoded message goes to the core, and
//! whatever the core answers (replies, notifications, a close) comes back on a bounded
//! queue that a writer task drains in order.
//!
//! Flow control, so a client that stops reading costs bounded memory and nobody else's
//! service: the writer takes the core's answers off the queue at once (they then no longer
//! count against `globalOutstandingLimit`, which is about the core's backlog) into a
//! buffer of unwritten bytes; the reader stops taking requests while this connection has
//! [`CONN_PENDING_MAX`] requests unanswered or [`CONN_UNWRITTEN_BYTES_MAX`] bytes
//! unwritten; and past [`CONN_UNWRITTEN_BYTES_HARD_MAX`] (notifications are not requests,
//! so only this bounds them) the connection is closed.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use zk_proto::{decode_request, from_bytes, ConnectRequest, FourLetterWord, FrameDecoder, Reader};

use crate::core::guardrails::FrameLimit;
use crate::core::{ConnId, CoreMsg, Out};

/// Frames queued for one client before it counts as a slow consumer and is dropped.
pub const OUT_QUEUE_MAX: usize = 8192;
/// Answer frames handed to one vectored write.
const WRITE_BATCH_FRAMES: usize = 64;
/// Room a connection's first read has, and the most a read is given: a read that fills
/// its room doubles the next one's (a pipelining client's burst then arrives in few
/// syscalls), while an idle connection (10,000 watchers) keeps a small buffer.
const READ_ROOM_MIN: usize = 4096;
const READ_ROOM_MAX: usize = 64 << 10;
/// Requests of one connection the core has not answered yet, past which the connection
/// stops reading (TCP pushes back on the client).
pub const CONN_PENDING_MAX: usize = 128;
/// Answer bytes waiting for a slow client, past which its connection stops reading.
pub const CONN_UNWRITTEN_BYTES_MAX: usize = 8 << 20;
/// Answer bytes waiting for a client that does not read at all, past which it is dropped.
pub const CONN_UNWRITTEN_BYTES_HARD_MAX: usize = 64 << 20;

/// Requests in flight across all connections (`globalOutstandingLimit`): past the limit,
/// connections stop reading until replies go out, as ZooKeeper stops selecting for reads.
#[derive(Debug)]
pub struct Throttle {
    outstanding: AtomicUsize,
    limit: usize,
    released: Notify,
}

impl Throttle {
    /// A throttle for `limit` requests in flight (0 = unlimited).
    pub fn new(limit: usize) -> Throttle {
        Throttle {
            outstanding: AtomicUsize::new(0),
            limit,
            released: Notify::new(),
        }
    }

    /// Requests in flight now.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    fn add(&self, n: usize) {
        self.outstanding.fetch_add(n, Ordering::Relaxed);
    }

    fn done(&self, n: usize) {
        if n > 0 {
            self.outstanding.fetch_sub(n, Ordering::Relaxed);
            self.released.notify_waiters();
        }
    }

    async fn wait_below_limit(&self) {
        while self.limit > 0 && self.outstanding() >= self.limit {
            let released = self.released.notified();
            if self.outstanding() < self.limit {
                break;
            }
            released.await;
        }
    }
}

/// The xid of a reply frame (length prefix included), if it is one.
fn frame_xid(frame: &[u8]) -> Option<i32> {
    frame
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes)
}

/// Serves one accepted connection until either side closes it.
///
/// `stream` is a plain TCP stream or a TLS one; `identities` are what the transport proved
/// (the `x509` subject of a verified client certificate), added to the session's auth.
pub async fn serve<S>(
    stream: S,
    conn: ConnId,
    addr: IpAddr,
    identities: Vec<zk_proto::Id>,
    to_core: mpsc::UnboundedSender<CoreMsg>,
    limit: FrameLimit,
    throttle: Arc<Throttle>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(OUT_QUEUE_MAX);
    // Tells the reader to stop once the writer has closed the connection.
    let (closed_tx, mut closed_rx) = watch::channel(false);
    // Requests of this connection the core has not answered yet (to give back to the
    // throttle), and answer bytes not yet written to the client.
    let pending = Arc::new(AtomicUsize::new(0));
    let unwritten = Arc::new(AtomicUsize::new(0));
    // The writer made room: the reader may take requests again.
    let room = Arc::new(Notify::new());
    let (writer_pending, writer_throttle) = (pending.clone(), throttle.clone());
    let (writer_unwritten, writer_room) = (unwritten.clone(), room.clone());
    let writer = tokio::spawn(async move {
        let mut first = true;
        // Answers taken off the channel, not yet being written.
        let mut queue: std::collections::VecDeque<bytes::Bytes> = Default::default();
        // Answers being written by one vectored write (a pipelining client's burst goes
        // out in one syscall and few segments: per-frame writes spent most of the
        // server's CPU in the kernel's TCP send path); `offset` bytes of the first are out.
        let mut batch: std::collections::VecDeque<bytes::Bytes> = Default::default();
        let mut offset = 0;
        let mut closing = false;
        let mut taken = Vec::with_capacity(WRITE_BATCH_FRAMES);
        'writer: loop {
            if batch.is_empty() {
                let n = queue.len().min(WRITE_BATCH_FRAMES);
                batch.extend(queue.drain(..n));
            }
            if closing && batch.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                out = out_rx.recv(), if !closing => {
                    taken.push(out);
                    // Everything else already queued comes along.
                    while taken.len() < OUT_QUEUE_MAX {
                        match out_rx.try_recv() {
                            Ok(o) => taken.push(Some(o)),
                            Err(_) => break,
                        }
                    }
                    for out in taken.drain(..) {
                        // Nothing after a close is written (an error that ends the
                        // connection is its last answer).
                        if closing {
                            continue;
                        }
                        match out {
                            Some(Out::Frame(f)) => {
                                // Every frame after the handshake answer except a
                                // notification answers one request.
                                let is_reply =
                                    !first && frame_xid(&f) != Some(zk_proto::xid::NOTIFICATION);
                                first = false;
                                if is_reply
                                    && writer_pending
                                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                            n.checked_sub(1)
                                        })
                                        .is_ok()
                                {
                                    writer_throttle.done(1);
                                    writer_room.notify_one();
                                }
                                let total =
                                    writer_unwritten.fetch_add(f.len(), Ordering::Relaxed) + f.len();
                                if total > CONN_UNWRITTEN_BYTES_HARD_MAX {
                                    tracing::warn!(
                                        conn,
                                        bytes = total,
                                        "closing connection: the client does not read its answers"
                                    );
                                    break 'writer;
                                }
                                queue.push_back(f);
                            }
                            Some(Out::Close) | None => closing = true,
                        }
                    }
                },
                written = async {
                    if batch.is_empty() {
                        return std::future::pending().await;
                    }
                    let slices: Vec<std::io::IoSlice<'_>> = batch
                        .iter()
                        .enumerate()
                        .map(|(i, f)| std::io::IoSlice::new(if i == 0 { &f[offset..] } else { f }))
                        .collect();
                    wr.write_vectored(&slices).await
                } => match written {
                    Ok(0) | Err(_) => break,
                    Ok(mut n) => {
                        while let Some(f) = batch.front() {
                            let rest = f.len() - offset;
                            if n < rest {
                                offset += n;
                                break;
                            }
                            n -= rest;
                            offset = 0;
                            writer_unwritten.fetch_sub(f.len(), Ordering::Relaxed);
                            batch.pop_front();
                        }
                        writer_room.notify_one();
                        // TLS buffers records until flushed; flush once all is written.
                        if batch.is_empty() && queue.is_empty() && wr.flush().await.is_err() {
                            break;
                        }
                    }
                },
            }
        }
        let _ = wr.shutdown().await;
        let _ = closed_tx.send(true);
    });

    let frame_bytes_max = limit.max;
    let decoder = FrameDecoder::new(frame_bytes_max);
    let mut buf = BytesMut::with_capacity(READ_ROOM_MIN);
    let mut room_wanted = READ_ROOM_MIN;
    let mut handshaken = false;
    let mut first = true;
    'read: loop {
        // Take every whole frame already buffered.
        loop {
            if first && buf.len() >= 4 {
                first = false;
                if let Some(word) = FourLetterWord::detect(&buf[..4]) {
                    while buf.len() < 4 + word.extra_bytes() {
                        if read_more(&mut rd, &mut buf, &mut room_wanted, &mut closed_rx)
                            .await
                            .is_none()
                        {
                            break 'read;
                        }
                    }
                    let (tx, rx) = oneshot::channel();
                    let _ = to_core.send(CoreMsg::FourLetter { word, reply: tx });
                    if let Ok(text) = rx.await {
                        let _ = out_tx.send(Out::Frame(text.into())).await;
                    }
                    let _ = out_tx.send(Out::Close).await;
                    break 'read;
                }
            }
            let payload = match decoder.decode(&mut buf) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(zk_proto::DecodeError::FrameTooLarge { len, max }) => {
                    limit.refused();
                    tracing::warn!(
                        conn,
                        client = %addr,
                        frame_bytes = len,
                        max_packet = max,
                        "closing connection: frame larger than this port's maxPacket \
                         (clientPort.maxPacket / secureClientPort.maxPacket, default jute.maxbuffer)"
                    );
                    let _ = out_tx.send(Out::Close).await;
                    break 'read;
                }
                Err(e) => {
                    tracing::info!(conn, client = %addr, error = %e, "closing connection: bad frame length");
                    let _ = out_tx.send(Out::Close).await;
                    break 'read;
                }
            };
            if !handshaken {
                match from_bytes::<ConnectRequest>(payload) {
                    Ok(request) => {
                        handshaken = true;
                        let _ = to_core.send(CoreMsg::Connect {
                            conn,
                            addr,
                            identities: identities.clone(),
                            request,
                            out: out_tx.clone(),
                        });
                    }
                    Err(e) => {
                        tracing::info!(conn, client = %addr, error = %e, "closing connection: bad handshake");
                        let _ = out_tx.send(Out::Close).await;
                        break 'read;
                    }
                }
                continue;
            }
            // This connection's share: stop taking requests while too many are unanswered
            // or too many answer bytes wait for the client.
            loop {
                let room_made = room.notified();
                if pending.load(Ordering::Relaxed) < CONN_PENDING_MAX
                    && unwritten.load(Ordering::Relaxed) < CONN_UNWRITTEN_BYTES_MAX
                {
                    break;
                }
                tokio::select! {
                    _ = room_made => {}
                    _ = closed_rx.changed() => break 'read,
                }
            }
            let mut r = Reader::with_len_max(payload, frame_bytes_max);
            match decode_request(&mut r) {
                Ok((header, request)) => {
                    pending.fetch_add(1, Ordering::Relaxed);
                    throttle.add(1);
                    let _ = to_core.send(CoreMsg::Request {
                        conn,
                        header,
                        request,
                    });
                }
                Err(e) => {
                    tracing::info!(conn, client = %addr, error = %e, "closing connection: bad request header");
                    let _ = out_tx.send(Out::Close).await;
                    break 'read;
                }
            }
        }
        throttle.wait_below_limit().await;
        if read_more(&mut rd, &mut buf, &mut room_wanted, &mut closed_rx)
            .await
            .is_none()
        {
            break;
        }
    }
    let _ = to_core.send(CoreMsg::Closed { conn });
    drop(out_tx);
    let _ = writer.await;
    // Requests that will never be answered no longer count.
    throttle.done(pending.swap(0, Ordering::Relaxed));
}

/// Reads more bytes; `None` on EOF, error, or once the writer closed the connection.
/// A read gets at least half of `room_wanted`, which adapts: doubled when a read filled
/// all the room it had (more was likely waiting), halved when a read used less than a
/// quarter of it.
async fn read_more(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
    room_wanted: &mut usize,
    closed: &mut watch::Receiver<bool>,
) -> Option<usize> {
    if buf.capacity() - buf.len() < *room_wanted / 2 {
        buf.reserve(*room_wanted);
    }
    let room = buf.capacity() - buf.len();
    if *closed.borrow() {
        return None;
    }
    tokio::select! {
        r = rd.read_buf(buf) => match r {
            Ok(0) => None,
            Err(e) => {
                tracing::debug!(error = %e, "connection read failed");
                None
            }
            Ok(n) => {
                if n >= room {
                    *room_wanted = (*room_wanted * 2).min(READ_ROOM_MAX);
                } else if n < *room_wanted / 4 {
                    *room_wanted = (*room_wanted / 2).max(READ_ROOM_MIN);
                }
                Some(n)
            }
        },
        _ = closed.changed() => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A burst is taken in ever fewer reads while reads fill their room, and a connection
    /// that goes back to small requests gives the room back.
    #[tokio::test]
    async fn the_read_room_grows_with_a_burst_and_shrinks_after_it() {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let (_closed_tx, mut closed) = watch::channel(false);
        let mut buf = BytesMut::with_capacity(READ_ROOM_MIN);
        let mut room_wanted = READ_ROOM_MIN;

        client.write_all(&vec![7u8; 512 << 10]).await.unwrap();
        let mut sizes = Vec::new();
        let mut total = 0;
        while total < 512 << 10 {
            let n = read_more(&mut server, &mut buf, &mut room_wanted, &mut closed)
                .await
                .unwrap();
            total += n;
            sizes.push(n);
            buf.clear();
        }
        assert_eq!(room_wanted, READ_ROOM_MAX, "reads: {sizes:?}");
        assert!(
            sizes.len() < (512 << 10) / READ_ROOM_MIN / 2,
            "a 512 KiB burst took {} reads: {sizes:?}",
            sizes.len()
        );
        assert!(
            sizes.iter().any(|n| *n >= READ_ROOM_MAX / 2),
            "reads: {sizes:?}"
        );

        for _ in 0..12 {
            client.write_all(b"small").await.unwrap();
            let n = read_more(&mut server, &mut buf, &mut room_wanted, &mut closed)
                .await
                .unwrap();
            assert_eq!(n, 5);
            buf.clear();
        }
        assert_eq!(room_wanted, READ_ROOM_MIN);

        drop(client);
        assert_eq!(
            read_more(&mut server, &mut buf, &mut room_wanted, &mut closed).await,
            None
        );
    }
}
