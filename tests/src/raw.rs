//! A blocking raw-frame ZooKeeper client for tests: one request at a time, every
//! notification kept, so two servers can be driven identically and compared.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use zk_proto::{
    encode_frame, encode_request, from_bytes, ConnectRequest, ConnectResponse, FrameDecoder, Jute,
    Reader, ReplyHeader, Request, Response, WatcherEvent,
};

/// One connected session.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    xid: i32,
    /// The handshake answer.
    pub session: ConnectResponse,
    /// Notifications received so far, in order, with their header zxid.
    pub events: Vec<(i64, WatcherEvent)>,
}

impl RawClient {
    /// Connects and opens a new session.
    pub fn connect(addr: SocketAddr, timeout_ms: i32) -> std::io::Result<RawClient> {
        RawClient::resume(
            addr,
            timeout_ms,
            &ConnectResponse::default(),
            0,
            0,
            Duration::from_secs(10),
        )
    }

    /// Connects and resumes `session` (a new one when its id is 0), as a client moving to
    /// another server does: `last_zxid_seen` is the newest zxid it saw, `xid` the last xid
    /// it used, and `io_timeout` bounds every read and write. A session the server no
    /// longer knows comes back with id 0 and timeout 0 (expired).
    pub fn resume(
        addr: SocketAddr,
        timeout_ms: i32,
        session: &ConnectResponse,
        last_zxid_seen: i64,
        xid: i32,
        io_timeout: Duration,
    ) -> std::io::Result<RawClient> {
        let stream = TcpStream::connect_timeout(&addr, io_timeout)?;
        stream.set_read_timeout(Some(io_timeout))?;
        stream.set_write_timeout(Some(io_timeout))?;
        stream.set_nodelay(true)?;
        let mut c = RawClient {
            stream,
            buf: BytesMut::new(),
            xid,
            session: ConnectResponse::default(),
            events: Vec::new(),
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen,
            time_out: timeout_ms,
            session_id: session.session_id,
            passwd: Some(
                session
                    .passwd
                    .clone()
                    .unwrap_or_else(|| Bytes::from_static(&[0; 16])),
            ),
            read_only: Some(false),
        };
        let mut b = BytesMut::new();
        encode_frame(&mut b, |b| req.write(b));
        c.stream.write_all(&b)?;
        let p = c.frame()?;
        c.session = from_bytes(p).map_err(std::io::Error::other)?;
        Ok(c)
    }

    fn frame(&mut self) -> std::io::Result<Bytes> {
        let d = FrameDecoder::default();
        loop {
            if let Some(p) = d.decode(&mut self.buf).map_err(std::io::Error::other)? {
                return Ok(p);
            }
            let mut chunk = [0u8; 65536];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a request and waits for its reply, keeping notifications that come first.
    pub fn call(&mut self, r: &Request) -> std::io::Result<(ReplyHeader, Response)> {
        self.xid += 1;
        let xid = match r {
            Request::Ping => zk_proto::xid::PING,
            Request::Auth(_) => zk_proto::xid::AUTH,
            Request::SetWatches(_) | Request::SetWatches2(_) => zk_proto::xid::SET_WATCHES,
            _ => self.xid,
        };
        let mut b = BytesMut::new();
        encode_frame(&mut b, |b| encode_request(xid, r, b));
        self.stream.write_all(&b)?;
        loop {
            let mut rd = Reader::new(self.frame()?);
            let h = ReplyHeader::read(&mut rd).map_err(std::io::Error::other)?;
            if h.xid == zk_proto::xid::NOTIFICATION {
                let e = WatcherEvent::read(&mut rd).map_err(std::io::Error::other)?;
                self.events.push((h.zxid, e));
                continue;
            }
            let body =
                Response::read(r.op_code(), h.err, &mut rd).map_err(std::io::Error::other)?;
            return Ok((h, body));
        }
    }

    /// The last xid this client used.
    pub fn xid(&self) -> i32 {
        self.xid
    }

    /// Takes the notifications received so far.
    pub fn take_events(&mut self) -> Vec<(i64, WatcherEvent)> {
        std::mem::take(&mut self.events)
    }
}
