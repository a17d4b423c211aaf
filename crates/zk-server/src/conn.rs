//! One client connection: framing in both directions, the handshake, four-letter words.
//! The connection owns no state of its own: every decoded message goes to the core, and
//! whatever the core answers (replies, notifications, a close) comes back on a bounded
//! queue that a writer task drains in order.

use std::net::IpAddr;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use zk_proto::{decode_request, from_bytes, ConnectRequest, FourLetterWord, FrameDecoder, Reader};

use crate::core::{ConnId, CoreMsg, Out};

/// Frames queued for one client before it counts as a slow consumer and is dropped.
pub const OUT_QUEUE_MAX: usize = 8192;

/// Serves one accepted connection until either side closes it.
pub async fn serve(
    stream: TcpStream,
    conn: ConnId,
    addr: IpAddr,
    to_core: mpsc::UnboundedSender<CoreMsg>,
    frame_bytes_max: usize,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(OUT_QUEUE_MAX);
    // Tells the reader to stop once the writer has closed the connection.
    let (closed_tx, mut closed_rx) = watch::channel(false);
    let writer = tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            match out {
                Out::Frame(f) => {
                    if wr.write_all(&f).await.is_err() {
                        break;
                    }
                }
                Out::Close => break,
            }
        }
        let _ = wr.shutdown().await;
        let _ = closed_tx.send(true);
    });

    let decoder = FrameDecoder::new(frame_bytes_max);
    let mut buf = BytesMut::with_capacity(4096);
    let mut handshaken = false;
    let mut first = true;
    'read: loop {
        // Take every whole frame already buffered.
        loop {
            if first && buf.len() >= 4 {
                first = false;
                if let Some(word) = FourLetterWord::detect(&buf[..4]) {
                    while buf.len() < 4 + word.extra_bytes() {
                        if read_more(&mut rd, &mut buf, &mut closed_rx).await.is_none() {
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
            let mut r = Reader::with_len_max(payload, frame_bytes_max);
            match decode_request(&mut r) {
                Ok((header, request)) => {
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
        if read_more(&mut rd, &mut buf, &mut closed_rx).await.is_none() {
            break;
        }
    }
    let _ = to_core.send(CoreMsg::Closed { conn });
    drop(out_tx);
    let _ = writer.await;
}

/// Reads more bytes; `None` on EOF, error, or once the writer closed the connection.
async fn read_more(
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
    closed: &mut watch::Receiver<bool>,
) -> Option<usize> {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
    if *closed.borrow() {
        return None;
    }
    tokio::select! {
        r = rd.read_buf(buf) => match r {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        _ = closed.changed() => None,
    }
}
