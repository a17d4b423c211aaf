//! The session task: one per client. It owns the socket, walks the host list, resumes the
//! session (id + password + last zxid seen) after a disconnect, re-arms watches with
//! `setWatches2`, re-sends auth, pings, matches replies to requests in order, and turns
//! notifications into watch events, always before the replies that follow them.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection to a server: plain TCP or TLS.
pub(crate) trait Stream:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Stream for T {}
type BoxStream = Box<dyn Stream>;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use zk_proto::{
    encode_frame, encode_request, xid, AuthPacket, ConnectRequest, ConnectResponse, ErrorCode,
    EventType, FrameDecoder, Jute, KeeperState, OpCode, Reader, ReplyHeader, Request, Response,
    WatcherEvent, WatcherType,
};

use crate::error::{from_wire, Error, Result};
use crate::watch::{Kind, Registry, Sink, WatchedEvent};
use crate::State;

/// Commands already queued that go out with the one being sent, in one write.
const COMMANDS_PER_WRITE: usize = 256;

/// The largest write buffer a session keeps between writes.
const OUT_BUFFER_KEPT: usize = 1 << 20;

/// What a caller asks the session task to do.
pub(crate) enum Command {
    Call {
        request: Request,
        after: After,
        reply: oneshot::Sender<Result<Response>>,
    },
    Auth {
        scheme: String,
        auth: Option<Bytes>,
        reply: oneshot::Sender<Result<()>>,
    },
    RemoveWatches {
        path: String,
        wtype: WatcherType,
        local: bool,
        reply: oneshot::Sender<Result<()>>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

/// What to do once a reply arrives, besides answering the caller.
pub(crate) enum After {
    Nothing,
    /// Register a watch if the reply is OK (for exists: a data watch if the node is there,
    /// an exist watch if it is not).
    Watch {
        kind: Kind,
        path: String,
        sink: Sink,
    },
    /// A server-side removeWatches succeeded: drop the local registrations too.
    RemoveWatches {
        path: String,
        wtype: WatcherType,
    },
}

struct Pending {
    xid: i32,
    op: OpCode,
    /// The request while it waits to be sent; it is encoded straight into the write buffer
    /// and dropped then (an encoded copy per request cost an allocation and a copy).
    request: Option<Request>,
    after: After,
    reply: Option<oneshot::Sender<Result<Response>>>,
}

/// Session facts the handle can read without asking the task.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionInfo {
    pub id: i64,
    pub password: Bytes,
    pub timeout_ms: i32,
    pub server: Option<String>,
}

pub(crate) struct Settings {
    pub hosts: Vec<String>,
    pub chroot: Option<String>,
    pub session_timeout: Duration,
    pub read_only: bool,
    pub max_frame: usize,
    /// TLS to the servers, when configured.
    pub tls: Option<crate::tls::ClientTls>,
    pub default_watcher: Option<mpsc::UnboundedSender<WatchedEvent>>,
}

/// How a connected spell ended.
enum End {
    /// The connection broke or timed out: try the next server.
    Lost,
    /// The session is over (expired, closed, auth failed); the task ends.
    Over(KeeperState),
}

pub(crate) struct Actor {
    s: Settings,
    rx: mpsc::UnboundedReceiver<Command>,
    state: watch::Sender<State>,
    info: watch::Sender<SessionInfo>,
    next_host: usize,
    last_zxid: i64,
    next_xid: i32,
    queued: VecDeque<Pending>,
    sent: VecDeque<Pending>,
    watches: Registry,
    /// Auth packets of this session, re-sent after each reconnect.
    auths: Vec<(String, Option<Bytes>)>,
    /// Callers waiting for the answer to an auth packet, in the order sent (None: a re-send).
    auth_waiters: VecDeque<Option<oneshot::Sender<Result<()>>>>,
    new_auths: Vec<(String, Option<Bytes>, oneshot::Sender<Result<()>>)>,
    closing: Option<oneshot::Sender<()>>,
}

impl Actor {
    pub(crate) fn new(
        s: Settings,
        rx: mpsc::UnboundedReceiver<Command>,
        state: watch::Sender<State>,
        info: watch::Sender<SessionInfo>,
    ) -> Actor {
        let next_host = shuffle_start(s.hosts.len());
        Actor {
            s,
            rx,
            state,
            info,
            next_host,
            last_zxid: 0,
            next_xid: 1,
            queued: VecDeque::new(),
            sent: VecDeque::new(),
            watches: Registry::default(),
            auths: Vec::new(),
            auth_waiters: VecDeque::new(),
            new_auths: Vec::new(),
            closing: None,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut disconnected_at: Option<Instant> = None;
        let mut failed_rounds = 0u32;
        loop {
            if self.closing.is_some() && self.info.borrow().id == 0 {
                return self.finish(KeeperState::Closed);
            }
            // Java 3.9.3 (ZOOKEEPER-4508): with no server reachable for longer than the
            // session could live, the session is declared expired on the client.
            let timeout = Duration::from_millis(self.info.borrow().timeout_ms.max(0) as u64);
            if let Some(t) = disconnected_at {
                if self.info.borrow().id != 0 && t.elapsed() > timeout * 4 / 3 {
                    return self.finish(KeeperState::Expired);
                }
            }
            let host = self.s.hosts[self.next_host % self.s.hosts.len()].clone();
            self.next_host = self.next_host.wrapping_add(1);
            let _ = self.state.send(State::Connecting);
            match self.connect(&host).await {
                Ok(Some((stream, resp))) => {
                    failed_rounds = 0;
                    match self.session(stream, resp, host).await {
                        End::Lost => {
                            disconnected_at = Some(Instant::now());
                            self.lost();
                        }
                        End::Over(state) => return self.finish(state),
                    }
                }
                Ok(None) => return self.finish(KeeperState::Closed),
                Err(End::Over(state)) => return self.finish(state),
                Err(End::Lost) => {
                    if self.closing.is_some() {
                        return self.finish(KeeperState::Closed);
                    }
                    disconnected_at.get_or_insert_with(Instant::now);
                    if self.next_host % self.s.hosts.len() == 0 {
                        failed_rounds += 1;
                        let pause = Duration::from_millis((50 << failed_rounds.min(4)).min(1000));
                        if !self.idle(pause).await {
                            return self.finish(KeeperState::Closed);
                        }
                    }
                }
            }
        }
    }

    /// Waits `pause` while still taking commands; false when the client is closing.
    async fn idle(&mut self, pause: Duration) -> bool {
        let sleep = tokio::time::sleep(pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return self.closing.is_none(),
                cmd = self.rx.recv() => {
                    if !self.take(cmd) {
                        return false;
                    }
                }
            }
        }
    }

    /// Takes a command while not connected. False when the client is closing.
    fn take(&mut self, cmd: Option<Command>) -> bool {
        match cmd {
            None => {
                let (tx, _) = oneshot::channel();
                self.closing = Some(tx);
                false
            }
            Some(Command::Close { reply }) => {
                self.closing = Some(reply);
                false
            }
            Some(Command::Call {
                request,
                after,
                reply,
            }) => {
                let p = self.pending(request, after, Some(reply));
                self.queued.push_back(p);
                true
            }
            Some(Command::Auth {
                scheme,
                auth,
                reply,
            }) => {
                self.new_auths.push((scheme, auth, reply));
                true
            }
            Some(Command::RemoveWatches {
                path,
                wtype,
                local,
                reply,
            }) => {
                if let Some(p) = self.remove_watches(path, wtype, local, reply) {
                    self.queued.push_back(p);
                }
                true
            }
        }
    }

    fn pending(
        &mut self,
        request: Request,
        after: After,
        reply: Option<oneshot::Sender<Result<Response>>>,
    ) -> Pending {
        let xid = match request {
            Request::Ping => xid::PING,
            _ => {
                let x = self.next_xid;
                self.next_xid = if x == i32::MAX { 1 } else { x + 1 };
                x
            }
        };
        Pending {
            xid,
            op: request.op_code(),
            request: Some(request),
            after,
            reply,
        }
    }

    /// Encodes a pending request into `out` (the request is dropped) and returns it
    /// ready to wait for its answer.
    fn encode(mut p: Pending, out: &mut BytesMut) -> Pending {
        if let Some(request) = p.request.take() {
            out.reserve(4 + 8 + request.encoded_len());
            encode_frame(out, |b| encode_request(p.xid, &request, b));
        }
        p
    }

    /// Moves every queued request into `out`, in order, and on to the sent list.
    fn send_queued(&mut self, out: &mut BytesMut) {
        while let Some(p) = self.queued.pop_front() {
            let p = Self::encode(p, out);
            self.sent.push_back(p);
        }
    }

    fn remove_watches(
        &mut self,
        path: String,
        wtype: WatcherType,
        local: bool,
        reply: oneshot::Sender<Result<()>>,
    ) -> Option<Pending> {
        if !self.watches.has(&path, wtype) {
            let _ = reply.send(Err(Error::Code(ErrorCode::NoWatcher)));
            return None;
        }
        if local {
            self.removed(&path, wtype);
            let _ = reply.send(Ok(()));
            return None;
        }
        // Answer the caller through a relay that drops the Response.
        let (tx, rx) = oneshot::channel::<Result<Response>>();
        tokio::spawn(async move {
            let r = rx.await.unwrap_or(Err(Error::Closed));
            let _ = reply.send(r.map(|_| ()));
        });
        let request = Request::RemoveWatches(zk_proto::RemoveWatchesRequest {
            path: path.clone(),
            r#type: wtype.code(),
        });
        Some(self.pending(request, After::RemoveWatches { path, wtype }, Some(tx)))
    }

    fn removed(&mut self, path: &str, wtype: WatcherType) {
        let user_path = self.user_path(path);
        for (sink, event_type) in self.watches.remove(path, wtype) {
            let event = WatchedEvent {
                event_type,
                state: KeeperState::SyncConnected,
                path: Some(user_path.clone()),
            };
            self.deliver(sink, event);
        }
    }

    /// Opens a connection to `host` and does the handshake, taking commands meanwhile.
    /// `Ok(None)`: the client closed while connecting.
    async fn connect(
        &mut self,
        host: &str,
    ) -> std::result::Result<Option<(BoxStream, ConnectResponse)>, End> {
        let info = self.info.borrow().clone();
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: self.last_zxid,
            time_out: i32::try_from(self.s.session_timeout.as_millis()).unwrap_or(i32::MAX),
            session_id: info.id,
            passwd: Some(if info.id == 0 {
                Bytes::from_static(&[0; 16])
            } else {
                info.password.clone()
            }),
            read_only: Some(self.s.read_only),
        };
        let budget = (self.s.session_timeout / self.s.hosts.len().max(1) as u32)
            .max(Duration::from_millis(500));
        let fut = handshake(
            host.to_string(),
            request,
            budget,
            self.s.max_frame,
            self.s.tls.clone(),
        );
        tokio::pin!(fut);
        let result = loop {
            tokio::select! {
                r = &mut fut => break r,
                cmd = self.rx.recv(), if self.closing.is_none() => {
                    if !self.take(cmd) && info.id == 0 {
                        return Ok(None);
                    }
                }
            }
        };
        match result {
            Ok((stream, resp)) => {
                if resp.time_out <= 0 {
                    return Err(End::Over(KeeperState::Expired));
                }
                Ok(Some((stream, resp)))
            }
            Err(e) => {
                tracing::debug!(host, error = %e, "connect failed");
                Err(End::Lost)
            }
        }
    }

    /// Runs one connected spell.
    async fn session(&mut self, mut stream: BoxStream, resp: ConnectResponse, host: String) -> End {
        let read_only = resp.read_only == Some(true);
        let timeout_ms = resp.time_out;
        let _ = self.info.send(SessionInfo {
            id: resp.session_id,
            password: resp.passwd.clone().unwrap_or_default(),
            timeout_ms,
            server: Some(host),
        });
        // Reads happen inside the select below and writes after it, never both at once, so
        // the stream needs no split (whose lock was taken on every poll).
        let state = if read_only {
            KeeperState::ConnectedReadOnly
        } else {
            KeeperState::SyncConnected
        };
        let _ = self.state.send(if read_only {
            State::ConnectedReadOnly
        } else {
            State::Connected
        });
        self.default_event(WatchedEvent::session(state));

        // Re-arm watches, re-send auth, then what was queued while disconnected.
        let mut out = BytesMut::new();
        for sw in self.watches.set_watches(self.last_zxid) {
            encode_frame(&mut out, |b| {
                encode_request(xid::SET_WATCHES, &Request::SetWatches2(sw), b)
            });
        }
        for (scheme, auth) in &self.auths {
            encode_frame(&mut out, |b| auth_frame(scheme, auth, b));
            self.auth_waiters.push_back(None);
        }
        self.send_queued(&mut out);
        self.flush_new_auths(&mut out);
        if self.closing.is_some() {
            self.send_close(&mut out);
        }
        if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
            return End::Lost;
        }
        out.clear();

        let session_timeout = Duration::from_millis(timeout_ms as u64);
        let read_timeout = session_timeout * 2 / 3;
        let ping_every = (session_timeout / 3).max(Duration::from_millis(10));
        let decoder = FrameDecoder::new(self.s.max_frame);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let mut last_recv = Instant::now();
        let mut last_send = Instant::now();
        // One timer for both the ping and the read timeout. The deadlines only move later,
        // so it fires at the earlier of them as of when it was set and is set again from
        // there (a timer made afresh each turn cost a timer-wheel entry per message).
        let check =
            tokio::time::sleep_until((last_send + ping_every).min(last_recv + read_timeout));
        tokio::pin!(check);
        loop {
            tokio::select! {
                n = stream.read_buf(&mut buf) => {
                    match n {
                        Ok(0) | Err(_) => return End::Lost,
                        Ok(_) => {}
                    }
                    last_recv = Instant::now();
                    loop {
                        match decoder.decode(&mut buf) {
                            Ok(Some(frame)) => {
                                if let Some(end) = self.on_frame(frame) {
                                    return end;
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                tracing::warn!(error = %e, "bad frame from server");
                                return End::Lost;
                            }
                        }
                    }
                    if self.closing.is_some() && self.sent.is_empty() {
                        return End::Over(KeeperState::Closed);
                    }
                }
                cmd = self.rx.recv(), if self.closing.is_none() => {
                    match cmd {
                        None | Some(Command::Close { .. }) => {
                            if let Some(Command::Close { reply }) = cmd {
                                self.closing = Some(reply);
                            } else {
                                let (tx, _) = oneshot::channel();
                                self.closing = Some(tx);
                            }
                            self.send_close(&mut out);
                        }
                        Some(cmd) => {
                            self.take(Some(cmd));
                            // Commands already waiting go out in the same write: a
                            // pipelining caller's burst costs one syscall, not one each.
                            // One turn of the scheduler first lets the callers that the
                            // last answers woke queue their next requests.
                            tokio::task::yield_now().await;
                            for _ in 0..COMMANDS_PER_WRITE {
                                match self.rx.try_recv() {
                                    Ok(Command::Close { reply }) => {
                                        self.closing = Some(reply);
                                        break;
                                    }
                                    Ok(cmd) => {
                                        self.take(Some(cmd));
                                    }
                                    // Disconnected: the next recv sees it and closes.
                                    Err(_) => break,
                                }
                            }
                            self.send_queued(&mut out);
                            self.flush_new_auths(&mut out);
                            if self.closing.is_some() {
                                self.send_close(&mut out);
                            }
                        }
                    }
                }
                _ = &mut check => {
                    let now = Instant::now();
                    if now >= last_recv + read_timeout {
                        tracing::debug!("no answer from the server within the read timeout");
                        return End::Lost;
                    }
                    if now >= last_send + ping_every {
                        let p = self.pending(Request::Ping, After::Nothing, None);
                        Self::encode(p, &mut out);
                        // Counts as a send even before the write below.
                        last_send = now;
                    }
                    check
                        .as_mut()
                        .reset((last_send + ping_every).min(last_recv + read_timeout));
                }
            }
            if !out.is_empty() {
                if stream.write_all(&out).await.is_err() || stream.flush().await.is_err() {
                    return End::Lost;
                }
                last_send = Instant::now();
                // The buffer is kept for the next write unless a large request grew it.
                if out.capacity() > OUT_BUFFER_KEPT {
                    out = BytesMut::new();
                } else {
                    out.clear();
                }
            }
        }
    }

    /// Appends the closeSession request to `out`; its answer ends the session.
    fn send_close(&mut self, out: &mut BytesMut) {
        let p = self.pending(Request::CloseSession, After::Nothing, None);
        let p = Self::encode(p, out);
        self.sent.push_back(p);
    }

    fn flush_new_auths(&mut self, out: &mut BytesMut) {
        for (scheme, auth, reply) in self.new_auths.drain(..) {
            encode_frame(out, |b| auth_frame(&scheme, &auth, b));
            self.auths.push((scheme, auth));
            self.auth_waiters.push_back(Some(reply));
        }
    }

    /// Handles one frame from the server; `Some` ends the connected spell.
    fn on_frame(&mut self, frame: Bytes) -> Option<End> {
        let mut r = Reader::with_len_max(frame, self.s.max_frame);
        let Ok(header) = ReplyHeader::read(&mut r) else {
            return Some(End::Lost);
        };
        match header.xid {
            xid::NOTIFICATION => {
                let Ok(event) = WatcherEvent::read(&mut r) else {
                    return Some(End::Lost);
                };
                // ZooKeeper 3.9 and zkd put the change's zxid in the header (3.8 sends -1):
                // counting it as seen makes a reconnect's SetWatches ask exactly for the
                // changes after the last one received, which zkd's catch-up then sends.
                if header.zxid > 0 {
                    self.last_zxid = self.last_zxid.max(header.zxid);
                }
                self.on_notification(event);
                None
            }
            xid::PING | xid::SET_WATCHES => None,
            xid::AUTH => {
                let waiter = self.auth_waiters.pop_front().flatten();
                if header.err == ErrorCode::AuthFailed.code() {
                    if let Some(w) = waiter {
                        let _ = w.send(Err(Error::Code(ErrorCode::AuthFailed)));
                    }
                    return Some(End::Over(KeeperState::AuthFailed));
                }
                if let Some(w) = waiter {
                    let _ = w.send(if header.err == 0 {
                        Ok(())
                    } else {
                        Err(from_wire(header.err))
                    });
                }
                None
            }
            x => {
                let Some(p) = self.sent.pop_front() else {
                    tracing::warn!(xid = x, "reply to no request");
                    return Some(End::Lost);
                };
                if p.xid != x {
                    tracing::warn!(expected = p.xid, got = x, "xid out of order");
                    self.sent.push_front(p);
                    return Some(End::Lost);
                }
                if header.zxid > 0 {
                    self.last_zxid = self.last_zxid.max(header.zxid);
                }
                let result = if header.err != 0 {
                    Err(from_wire(header.err))
                } else {
                    Response::read(p.op, 0, &mut r).map_err(|e| Error::Marshalling(e.to_string()))
                };
                self.after(p.after, p.op, &result, header.err);
                if p.op == OpCode::CloseSession {
                    return Some(End::Over(KeeperState::Closed));
                }
                if let Some(reply) = p.reply {
                    let _ = reply.send(result);
                }
                None
            }
        }
    }

    fn after(&mut self, after: After, op: OpCode, result: &Result<Response>, err: i32) {
        match after {
            After::Nothing => {}
            After::Watch { kind, path, sink } => {
                if result.is_ok() {
                    let kind = if op == OpCode::Exists {
                        Kind::Data
                    } else {
                        kind
                    };
                    self.watches.add(kind, path, sink);
                } else if op == OpCode::Exists && err == ErrorCode::NoNode.code() {
                    self.watches.add(Kind::Exist, path, sink);
                }
            }
            After::RemoveWatches { path, wtype } => {
                if result.is_ok() {
                    self.removed(&path, wtype);
                }
            }
        }
    }

    fn on_notification(&mut self, event: WatcherEvent) {
        let Some(event_type) = EventType::from_code(event.r#type) else {
            return;
        };
        let user_path = self.user_path(&event.path);
        let sinks = self.watches.fire(event_type, &event.path);
        let mut default_done = false;
        for sink in sinks {
            if matches!(sink, Sink::Default) {
                if default_done {
                    continue;
                }
                default_done = true;
            }
            let e = WatchedEvent {
                event_type,
                state: KeeperState::from_code(event.state).unwrap_or(KeeperState::SyncConnected),
                path: Some(user_path.clone()),
            };
            self.deliver(sink, e);
        }
    }

    fn user_path(&self, server_path: &str) -> String {
        match &self.s.chroot {
            Some(root) => match server_path.strip_prefix(root.as_str()) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => server_path.to_string(),
            },
            None => server_path.to_string(),
        }
    }

    fn deliver(&self, sink: Sink, event: WatchedEvent) {
        match sink {
            Sink::Once(tx) => {
                let _ = tx.send(event);
            }
            Sink::Stream(tx) => {
                let _ = tx.send(event);
            }
            Sink::Default => self.default_event(event),
        }
    }

    fn default_event(&self, event: WatchedEvent) {
        if let Some(tx) = &self.s.default_watcher {
            let _ = tx.send(event);
        }
    }

    /// The connection is gone: every request in flight failed with ConnectionLoss.
    fn lost(&mut self) {
        for p in self.sent.drain(..) {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(Error::Code(ErrorCode::ConnectionLoss)));
            }
        }
        for w in self.auth_waiters.drain(..).flatten() {
            let _ = w.send(Err(Error::Code(ErrorCode::ConnectionLoss)));
        }
        let _ = self.state.send(State::Connecting);
        self.default_event(WatchedEvent::session(KeeperState::Disconnected));
    }

    /// The session is over: everyone waiting learns why, and the task ends.
    fn finish(mut self, how: KeeperState) {
        let code = match how {
            KeeperState::AuthFailed => ErrorCode::AuthFailed,
            KeeperState::Closed => ErrorCode::SessionExpired,
            _ => ErrorCode::SessionExpired,
        };
        let err = || {
            if how == KeeperState::Closed {
                Error::Closed
            } else {
                Error::Code(code)
            }
        };
        for p in self.sent.drain(..).chain(self.queued.drain(..)) {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(err()));
            }
        }
        for w in self.auth_waiters.drain(..).flatten() {
            let _ = w.send(Err(err()));
        }
        for (_, _, w) in self.new_auths.drain(..) {
            let _ = w.send(Err(err()));
        }
        let event = WatchedEvent::session(how);
        for sink in self.watches.drain() {
            if !matches!(sink, Sink::Default) {
                self.deliver(sink, event.clone());
            }
        }
        let _ = self.state.send(match how {
            KeeperState::AuthFailed => State::AuthFailed,
            _ => State::Closed,
        });
        self.default_event(event);
        if let Some(c) = self.closing.take() {
            let _ = c.send(());
        }
        // Later commands are answered by the handle, which sees the closed state.
        self.rx.close();
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Command::Call { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
                Command::Auth { reply, .. } | Command::RemoveWatches { reply, .. } => {
                    let _ = reply.send(Err(err()));
                }
                Command::Close { reply } => {
                    let _ = reply.send(());
                }
            }
        }
    }
}

fn auth_frame(scheme: &str, auth: &Option<Bytes>, b: &mut BytesMut) {
    encode_request(
        xid::AUTH,
        &Request::Auth(AuthPacket {
            r#type: 0,
            scheme: scheme.to_string(),
            auth: auth.clone(),
        }),
        b,
    );
}

/// TCP connect (and TLS when configured) plus the ConnectRequest / ConnectResponse
/// exchange, within `budget`.
async fn handshake(
    host: String,
    request: ConnectRequest,
    budget: Duration,
    max_frame: usize,
    tls: Option<crate::tls::ClientTls>,
) -> std::io::Result<(BoxStream, ConnectResponse)> {
    let work = async {
        let tcp = TcpStream::connect(&host).await?;
        tcp.set_nodelay(true)?;
        let mut stream: BoxStream = match tls {
            Some(tls) => Box::new(tls.connect(&host, tcp).await?),
            None => Box::new(tcp),
        };
        let mut out = BytesMut::new();
        encode_frame(&mut out, |b| request.write(b));
        stream.write_all(&out).await?;
        stream.flush().await?;
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await?;
        let len = i32::from_be_bytes(len);
        if len < 0 || len as usize > max_frame {
            return Err(std::io::Error::other(format!("bad handshake length {len}")));
        }
        let mut body = vec![0u8; len as usize];
        stream.read_exact(&mut body).await?;
        let mut r = Reader::new(Bytes::from(body));
        let resp = ConnectResponse::read(&mut r).map_err(std::io::Error::other)?;
        Ok((stream, resp))
    };
    tokio::time::timeout(budget, work)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
}

/// A random first host, so that clients of one ensemble spread over its servers.
fn shuffle_start(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id() as u64);
    (h.finish() as usize) % n.max(1)
}
