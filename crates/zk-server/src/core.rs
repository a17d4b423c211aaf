//! The server core: one task owns the tree, the sessions, the pending changes and the log
//! writer, and handles every client request in arrival order (ZooKeeper's Prep → Sync →
//! Final processors, minus the threads).
//!
//! Ordering rules kept here:
//! - a write is prepared when it arrives (so zxids follow arrival order), logged with group
//!   commit (or, when nothing else is in flight or waiting, committed on the core's own
//!   thread), applied once durable, and only then answered;
//! - each session's requests are answered strictly in order: a read that arrives behind a
//!   pending write of its own session waits for it (reads of other sessions do not);
//! - watch events a write fires are sent before that write's reply.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use zk_log::LogWriter;
use zk_proto::{
    encode_frame, perms, ConnectRequest, ConnectResponse, DecodeError, ErrorCode, EventType, Id,
    Jute, KeeperState, MultiOp, MultiResult, OpCode, ReplyHeader, Request, RequestHeader, Response,
    WatcherEvent,
};
use zk_session::SessionTracker;
use zk_tree::prep::{prep_create_session, prep_request, PendingChanges, PrepContext, Prepared};
use zk_tree::{acl, DataTree, Event, TxnResult, WatcherId};

use crate::config::Config;
use crate::fourlw;
use guardrails::Guardrails;

mod expiry_log;
pub mod guardrails;
pub(crate) mod introspect;
mod replica;
pub(crate) use replica::{Forward, Replica};

/// Identifies one client connection (and, as a [`WatcherId`], its watches).
pub type ConnId = u64;

/// What a connection task receives to send or do.
#[derive(Debug)]
pub enum Out {
    /// A whole frame, length prefix included.
    Frame(Bytes),
    /// Close the connection after everything before this.
    Close,
}

/// Messages to the core.
#[derive(Debug)]
pub enum CoreMsg {
    /// A new connection's handshake.
    Connect {
        conn: ConnId,
        addr: IpAddr,
        /// Identities the transport proved (a TLS client certificate's `x509` subject).
        identities: Vec<Id>,
        request: ConnectRequest,
        out: mpsc::Sender<Out>,
    },
    /// A request after the handshake; the body failed to decode when `request` is `Err`.
    Request {
        conn: ConnId,
        header: RequestHeader,
        request: Result<Request, DecodeError>,
    },
    /// The connection is gone.
    Closed { conn: ConnId },
    /// A four-letter word; the text answer goes back on `reply`.
    FourLetter {
        word: zk_proto::FourLetterWord,
        reply: oneshot::Sender<String>,
    },
    /// An AdminServer command (primary name); the JSON answer goes back on `reply`.
    Admin {
        command: &'static str,
        /// The query parameters (`?n=20`), for the commands that take any.
        args: Vec<(String, String)>,
        reply: oneshot::Sender<serde_json::Value>,
    },
    /// The log writer made txns up to this zxid durable (or failed).
    Durable {
        zxid: i64,
        result: Result<(), Arc<zk_log::LogError>>,
    },
    /// Time passes: expire sessions.
    Tick,
    /// Ensemble: something from the peer network.
    Peer(zk_peer::Event),
    /// Ensemble: the `seq`-th disk write the peer asked for is durable (or failed).
    ReplicaDurable {
        seq: u64,
        result: Result<(), Arc<zk_log::LogError>>,
    },
    /// Ensemble: the peer's clock (election, pings, limits).
    ReplicaTick,
    /// The web console (`/ui`): a connection with no session, holding exactly the
    /// identities the HTTP request proved (its address, a digest credential if it gave
    /// one), so every ACL applies to it as to a client.
    ConsoleOpen {
        conn: ConnId,
        addr: IpAddr,
        auth: Vec<Id>,
        out: mpsc::Sender<Out>,
    },
    /// A request on a console connection. Writes are logged under session 0, the
    /// server's own (as its container deletions are): the console owns no ephemerals.
    ConsoleRequest {
        conn: ConnId,
        header: RequestHeader,
        request: Request,
    },
    /// Ensemble leader: hand leadership to server `to`; the outcome goes back on `reply`.
    Handoff {
        to: u64,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

struct Conn {
    out: mpsc::Sender<Out>,
    addr: IpAddr,
    session: Option<i64>,
    auth: Vec<Id>,
    /// Mirror the client's readOnly byte in the handshake answer.
    read_only: Option<bool>,
    /// Requests that arrived before the new session was durable (clients such as the Java
    /// Netty one send their first request right behind the ConnectRequest); they run, in
    /// order, once the handshake is answered. `None` once the session is established.
    early: Option<Vec<(RequestHeader, Result<Request, DecodeError>)>>,
    /// A SASL exchange in progress (or done) on this connection.
    sasl: Option<crate::sasl::DigestMd5>,
    /// Requests not yet answered, oldest first: xid, when the core took it (ms since
    /// start), whether it is an update. Replies leave in request order, so an answer's
    /// xid is at or near the front.
    waiting: VecDeque<(i32, u64, bool)>,
}

enum Queued {
    Read {
        conn: ConnId,
        header: RequestHeader,
        request: Request,
    },
    /// A write of this session (its cxid) not yet committed: later reads wait for it.
    Write { cxid: i32 },
    /// A read barrier (`readPolicy`): the read behind it waits until it has passed.
    Barrier { token: u64, passed: bool },
}

/// What a logged txn is for, to act on it once durable.
enum Purpose {
    /// A client's write: reply to `xid` on `conn`.
    Write { conn: ConnId, xid: i32, op: OpCode },
    /// A new session's createSession: answer the handshake.
    Connect { conn: ConnId },
    /// closeSession asked by the client.
    Close { conn: ConnId, xid: i32 },
    /// closeSession of an expired session.
    Expire,
    /// deleteContainer issued by the server's container manager.
    Reap,
    /// Ensemble leader: a txn for another server's client; nothing to answer here.
    Remote,
}

struct Inflight {
    session: i64,
    prepared: Prepared,
    purpose: Purpose,
}

/// Counters for `srvr`, `mntr` and friends.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub packets_received: u64,
    pub packets_sent: u64,
    /// Every answered request, from the core taking it to the core sending its answer.
    pub latency: Latency,
    /// Reads (and pings, syncs): what ZooKeeper counts as `readlatency`.
    pub read_latency: Latency,
    /// Requests that make a txn (whatever their outcome): ZooKeeper's `updatelatency`.
    pub update_latency: Latency,
}

/// Request latencies in whole milliseconds, as ZooKeeper's `srvr` and `mntr` report them
/// (monitoring that alerts on `zk_avg_latency` or `zk_max_latency` reads these).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub count: u64,
    pub total_ms: u64,
    pub min_ms: u64,
    pub max_ms: u64,
    /// `buckets[i]` requests took at most `LATENCY_BOUNDS_MS[i]` (and more than the bound
    /// before); the last counts the rest. Exact below 4 ms, where most requests are.
    pub buckets: [u64; LATENCY_BOUNDS_MS.len() + 1],
}

/// Upper bounds (ms) of the latency buckets behind the `zk_p50_...` quantiles.
pub const LATENCY_BOUNDS_MS: [u64; 20] = [
    0, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1_000, 2_000, 5_000,
];

impl Latency {
    /// Counts one request that took `ms`.
    pub fn record(&mut self, ms: u64) {
        if self.count == 0 || ms < self.min_ms {
            self.min_ms = ms;
        }
        self.max_ms = self.max_ms.max(ms);
        self.count += 1;
        self.total_ms += ms;
        self.buckets[LATENCY_BOUNDS_MS.partition_point(|b| *b < ms)] += 1;
    }

    /// The `q` (0..=1) quantile in ms: the bound of the bucket it falls in, at most the
    /// largest latency seen; 0 before any request.
    pub fn quantile_ms(&self, q: f64) -> u64 {
        zk_log::histogram::bucket_quantile(&LATENCY_BOUNDS_MS, &self.buckets, self.max_ms, q)
    }

    /// The mean, rounded to four decimals as ZooKeeper reports it; 0 before any request.
    pub fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        (self.total_ms as f64 / self.count as f64 * 10_000.0).round() / 10_000.0
    }
}

/// `v` as Java's `Double.toString` prints it (`0.0`, `3.9777`, `1.0E-4`): ZooKeeper's
/// average latency goes out in that form and parsers of `mntr` expect it.
pub fn java_double(v: f64) -> String {
    if v == 0.0 {
        return "0.0".to_owned();
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        return if s.contains('.') { s } else { s + ".0" };
    }
    let s = format!("{v:E}");
    match s.split_once('E') {
        Some((m, e)) if !m.contains('.') => format!("{m}.0E{e}"),
        _ => s,
    }
}

/// A map the core touches on every request: keyed by numbers or by client paths, which
/// foldhash hashes several times faster than the default SipHash (its seeds are random
/// per process, so crafted keys still cannot aim at one bucket).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The core state; see the module docs.
pub struct Core {
    pub(crate) config: Config,
    pub(crate) tree: DataTree,
    pending: PendingChanges,
    pub(crate) sessions: SessionTracker,
    writer: LogWriter,
    zxid: i64,
    conns: FastMap<ConnId, Conn>,
    by_session: FastMap<i64, ConnId>,
    queues: FastMap<i64, VecDeque<Queued>>,
    /// Boxed: removing the oldest shifts the rest of a B-tree node, pointers rather than
    /// whole txns.
    inflight: BTreeMap<i64, Box<Inflight>>,
    /// Txns of `inflight` made durable by [`LogWriter::commit_now`], to apply once the
    /// message being handled is done.
    durable_now: VecDeque<i64>,
    /// Messages waiting for the core behind the one being handled (set by its loop).
    pub backlog: usize,
    /// Ensemble: a log append of the peer's (its write number and txn) held back to be
    /// committed on this thread once the message being handled is done.
    replica_now: Option<(u64, zk_zab::broadcast::Proposal)>,
    to_core: mpsc::UnboundedSender<CoreMsg>,
    started: Instant,
    pub(crate) stats: Stats,
    /// When the container manager last looked (ms since start).
    last_container_check_ms: u64,
    /// Ensemble membership; `None` when standalone.
    pub(crate) replica: Option<Replica>,
    /// Sessions opened while read-only: local to this server, dropped when it rejoins.
    read_only_sessions: std::collections::HashSet<i64>,
    /// The quorum of the reconfiguration just prepared, for the proposal that follows.
    pending_reconfig: Option<zk_zab::quorum::Quorum>,
    /// Why sessions expired, and the stalls this server noticed in itself.
    pub(crate) expiry_log: expiry_log::ExpiryLog,
    /// When the last tick ran (ms since start), to notice a stall.
    last_tick_ms: Option<u64>,
    /// Since when (ms since start) the disk has been stalled, while it is.
    storage_stall_since: Option<u64>,
    /// Size guardrails: near-limit writes, oversized replies and frames, the children cap.
    pub(crate) guardrails: guardrails::Guardrails,
    /// Hot paths, session rates, timing histograms.
    pub(crate) intro: introspect::Introspection,
    /// Watch catch-up counters.
    pub(crate) catch_up: CatchUpStats,
    /// Continuous backup (`backup.dir`), when configured.
    pub(crate) backup: Option<crate::backup::Backup>,
    /// Read barriers in flight (`readPolicy`): token -> (session, connection).
    read_barriers: HashMap<u64, (i64, ConnId)>,
    next_read_token: u64,
    /// Reads served after a barrier, and barriers that failed (their connection closed).
    pub(crate) barrier_reads: u64,
    pub(crate) barrier_failures: u64,
}

/// How reconnecting clients' persistent watches were caught up.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CatchUpStats {
    /// Reconnects whose missed changes were all delivered.
    pub caught_up: u64,
    /// Events delivered by catch-up.
    pub events: u64,
    /// Reconnects older than the journal: re-armed only.
    pub fallbacks: u64,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("zxid", &self.zxid)
            .field("connections", &self.conns.len())
            .finish_non_exhaustive()
    }
}

pub(crate) use zk_tree::tree::CONFIG_NODE;

/// What one client connection costs besides its `Conn` entry: its read buffer (4 KiB to
/// start), the writer's queue and the answer channel's first block, and two tasks.
const CONNECTION_TASK_BYTES: u64 = 12 * 1024;

/// Most txns a turn of the core holds back before handing them to the log writer: a full
/// round of the writer's. (A bound of 64 instead made rounds smaller and was no faster in
/// the set 32x16 rows, standalone or 3-node.)
const LOG_RELEASE_AT: usize = zk_log::group::BATCH_TXNS_MAX;

/// The process's resident set in bytes (Linux `/proc/self/statm`), if known.
pub(crate) fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Wall-clock milliseconds, for txn times and session ids.
pub fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn frame(write: impl FnOnce(&mut BytesMut)) -> Bytes {
    frame_sized(64, write)
}

/// A frame whose length is known in advance, so the buffer never grows (a setData answer
/// is 88 bytes: growing from 64 cost a reallocation per write).
fn frame_sized(capacity: usize, write: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::with_capacity(capacity);
    encode_frame(&mut b, write);
    b.freeze()
}

/// The length prefix and the reply header ahead of a reply's body.
const REPLY_PREFIX_BYTES: usize = 4 + 16;

fn reply_frame(xid: i32, zxid: i64, err: i32, body: &Response) -> Bytes {
    let body_len = if err == 0 { body.encoded_len() } else { 0 };
    frame_sized(REPLY_PREFIX_BYTES + body_len, |b| {
        ReplyHeader { xid, zxid, err }.write(b);
        if err == 0 {
            body.write(b);
        }
    })
}

impl Core {
    /// A core over a recovered tree and a running log writer.
    pub fn new(
        config: Config,
        tree: DataTree,
        writer: LogWriter,
        to_core: mpsc::UnboundedSender<CoreMsg>,
    ) -> Core {
        let (min, max) = config.session_timeout_bounds();
        let mut session_config =
            zk_session::SessionConfig::new(config.server_id, config.tick_time_ms);
        session_config.min_session_timeout_ms = min;
        session_config.max_session_timeout_ms = max;
        let started = Instant::now();
        let mut sessions = SessionTracker::new(session_config, wall_ms() as u64);
        // Sessions recovered from disk get a full timeout to come back.
        for (id, timeout) in tree.sessions() {
            sessions.add(*id, *timeout, 0);
        }
        let zxid = tree.last_processed_zxid();
        let mut tree = tree;
        tree.enable_journal(config.watch_catchup_retain_txns);
        Core {
            tree,
            pending: PendingChanges::default(),
            sessions,
            writer,
            zxid,
            conns: FastMap::default(),
            by_session: FastMap::default(),
            queues: FastMap::default(),
            inflight: BTreeMap::new(),
            durable_now: VecDeque::new(),
            backlog: 0,
            replica_now: None,
            to_core,
            started,
            stats: Stats::default(),
            last_container_check_ms: 0,
            replica: None,
            read_only_sessions: Default::default(),
            pending_reconfig: None,
            expiry_log: Default::default(),
            last_tick_ms: None,
            storage_stall_since: None,
            guardrails: guardrails::Guardrails::new(
                config.jute_max_buffer,
                config.size_warn_percent,
            ),
            intro: Default::default(),
            catch_up: CatchUpStats::default(),
            backup: None,
            read_barriers: HashMap::new(),
            next_read_token: 1,
            barrier_reads: 0,
            barrier_failures: 0,
            config,
        }
    }

    /// Makes this core an ensemble member; its peer's first outputs are carried out.
    pub(crate) fn set_replica(&mut self, replica: Replica, first: Vec<zk_zab::peer::Output>) {
        self.replica = Some(replica);
        self.replica_outputs(first);
        self.commits_now();
        // Not inside a turn of the core's loop: nothing else would hand these over.
        self.release_log();
    }

    /// `srvr`'s Mode: standalone, leader, follower (or looking, when not serving).
    pub fn mode(&self) -> &'static str {
        self.replica.as_ref().map_or("standalone", |r| r.mode())
    }

    /// Milliseconds since the server started (session and introspection clocks).
    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Each connection's client address and session, for `cons` and `stat`.
    pub fn connections(&self) -> Vec<(IpAddr, Option<i64>)> {
        let mut v: Vec<(IpAddr, Option<i64>)> =
            self.conns.values().map(|c| (c.addr, c.session)).collect();
        v.sort();
        v
    }

    /// The log writer's fsync counters (slow fsyncs for `zk_fsync_threshold_exceed_count`).
    pub fn fsync_stats(&self) -> zk_log::txnlog::SyncStats {
        self.writer.stats()
    }

    /// Memory by subsystem, estimated from the structures themselves (`zk_tree::memory`),
    /// with the process's resident set beside it.
    pub(crate) fn memory(&self) -> serde_json::Value {
        use std::mem::size_of;
        use zk_tree::memory::{btree_bytes, hash_map_bytes, heap_bytes};
        let tree = self.tree.memory();
        let n_sessions = self.sessions.len();
        let session_bytes = btree_bytes(n_sessions, 8 + size_of::<zk_session::Session>())
            + btree_bytes(n_sessions, 8)
            + hash_map_bytes(&self.by_session)
            + hash_map_bytes(&self.queues)
            + self
                .queues
                .values()
                .map(|q| heap_bytes(q.capacity() * size_of::<Queued>()))
                .sum::<u64>();
        let conn_bytes = hash_map_bytes(&self.conns)
            + self
                .conns
                .values()
                .map(|c| c.auth.len() as u64 * 64)
                .sum::<u64>()
            + self.conns.len() as u64 * CONNECTION_TASK_BYTES;
        let journal = self.tree.journal().memory_bytes();
        let caches = tree.index_bytes + self.intro.memory_bytes() + journal;
        let pending = self.pending.len() as u64 * 256 + self.inflight.len() as u64 * 512;
        let total =
            tree.node_bytes + tree.watch_bytes + session_bytes + conn_bytes + caches + pending;
        serde_json::json!({
            "tree": {"znodes": tree.nodes, "bytes": tree.node_bytes, "path_and_data_bytes": tree.payload_bytes},
            "watches": {"count": tree.watches, "bytes": tree.watch_bytes},
            "sessions": {"count": n_sessions, "bytes": session_bytes},
            "connections": {"count": self.conns.len(), "bytes": conn_bytes},
            "caches": {"bytes": caches, "tree_indexes_and_acls": tree.index_bytes, "introspection": self.intro.memory_bytes(), "watch_catchup_journal": journal},
            "in_flight": {"txns": self.pending.len() + self.inflight.len(), "bytes": pending},
            "estimated_total_bytes": total,
            "rss_bytes": resident_bytes(),
        })
    }

    /// Number of txns logged but not yet durable.
    pub fn outstanding(&self) -> usize {
        self.inflight.len()
    }

    /// Handles one message, and hands any txn it logged to the log writer. An error is
    /// fatal (storage failed).
    pub fn handle(&mut self, msg: CoreMsg) -> Result<(), Arc<zk_log::LogError>> {
        self.handle_in_turn(msg)?;
        self.release_log();
        Ok(())
    }

    /// Handles one message of a turn: txns it logs are held for [`Core::release_log`] at
    /// the end of the turn, so the writer gets the turn's txns in one round.
    pub(crate) fn handle_in_turn(&mut self, msg: CoreMsg) -> Result<(), Arc<zk_log::LogError>> {
        match msg {
            CoreMsg::Connect {
                conn,
                addr,
                identities,
                request,
                out,
            } => self.connect(conn, addr, identities, request, out),
            CoreMsg::Request {
                conn,
                header,
                request,
            } => self.request(conn, header, request),
            CoreMsg::Closed { conn } => self.closed(conn),
            CoreMsg::FourLetter { word, reply } => {
                let _ = reply.send(fourlw::answer(self, word));
            }
            CoreMsg::Admin {
                command,
                args,
                reply,
            } => {
                let _ = reply.send(crate::admin::answer(self, command, &args));
            }
            CoreMsg::Durable { zxid, result } => {
                result?;
                self.durable(zxid);
            }
            CoreMsg::Tick => self.tick(),
            CoreMsg::Peer(event) => self.replica_event(event),
            CoreMsg::ReplicaDurable { seq, result } => {
                result?;
                self.replica_durable(seq);
            }
            CoreMsg::ReplicaTick => self.replica_tick(),
            CoreMsg::Handoff { to, reply } => {
                let _ = reply.send(self.hand_off(to));
            }
            CoreMsg::ConsoleOpen {
                conn,
                addr,
                auth,
                out,
            } => {
                self.conns.insert(
                    conn,
                    Conn {
                        out,
                        addr,
                        session: None,
                        auth,
                        read_only: None,
                        early: None,
                        sasl: None,
                        waiting: VecDeque::new(),
                    },
                );
            }
            CoreMsg::ConsoleRequest {
                conn,
                header,
                request,
            } => self.console_request(conn, header, request),
        }
        self.commits_now();
        Ok(())
    }

    /// Hands the txns held this turn to the log writer (a failure is reported to each
    /// txn's `Durable` as well).
    pub(crate) fn release_log(&mut self) {
        if let Err(e) = self.writer.release() {
            tracing::error!(error = %e, "cannot hand txns to the log writer");
        }
    }

    /// Holds a txn for the log writer until the turn ends, or until a long turn has held
    /// [`LOG_RELEASE_AT`] of them.
    pub(crate) fn hold_log(
        &mut self,
        zxid: i64,
        txn: Bytes,
        done: zk_log::group::Done,
    ) -> Result<(), zk_log::LogError> {
        if self.writer.hold(zxid, txn, done)? >= LOG_RELEASE_AT {
            self.release_log();
        }
        Ok(())
    }

    /// Txns committed on this thread, as if their `Durable` came next; and a write the
    /// peer asked for, held back until every output of the message was out.
    fn commits_now(&mut self) {
        loop {
            if self.replica_commit_held() {
                continue;
            }
            match self.durable_now.pop_front() {
                Some(zxid) => self.durable(zxid),
                None => break,
            }
        }
    }

    /// A commit on the core's own thread held everything else up while it lasted: one
    /// longer than the stall threshold is a storage stall, as one on the writer thread
    /// is (see [`Core::storage_stalled`]), so every session gets a full timeout from now.
    fn after_commit_now(&mut self, started: Instant) {
        let threshold = self.config.stall_threshold_ms;
        let took_ms = started.elapsed().as_millis() as u64;
        if threshold == 0 || took_ms <= threshold {
            return;
        }
        let now = self.now_ms();
        tracing::warn!(
            took_ms,
            threshold_ms = threshold,
            "a txn log write stalled; every session gets a full timeout from now"
        );
        self.extend_after_stall(expiry_log::StallKind::Storage, took_ms, now);
        // The next tick is late because of this stall, already recorded.
        self.last_tick_ms = Some(now);
    }

    fn send(&mut self, conn: ConnId, out: Out) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if let Out::Frame(f) = &out {
                self.stats.packets_sent += 1;
                // The reply header's xid follows the 4-byte length; a watch notification
                // (xid -1) answers no request.
                let xid = f
                    .get(4..8)
                    .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
                    .filter(|x| *x != -1);
                if let Some(i) = xid.and_then(|x| c.waiting.iter().position(|w| w.0 == x)) {
                    let (_, since, update) = c.waiting[i];
                    // Anything older was dropped unanswered (a closing session's requests).
                    c.waiting.drain(..=i);
                    // The clock is read only for answers (not for each notification).
                    let now = self.started.elapsed().as_millis() as u64;
                    let ms = now.saturating_sub(since);
                    self.stats.latency.record(ms);
                    if update {
                        self.stats.update_latency.record(ms);
                    } else {
                        self.stats.read_latency.record(ms);
                    }
                }
            }
            // A client that stops reading fills its queue: drop it rather than block.
            if c.out.try_send(out).is_err() {
                let _ = c.out.try_send(Out::Close);
            }
        }
    }

    /// Keeps a txn from its preparation until it commits, to apply and answer it then.
    fn track_inflight(&mut self, zxid: i64, session: i64, prepared: Prepared, purpose: Purpose) {
        let txn = Inflight {
            session,
            prepared,
            purpose,
        };
        self.inflight.insert(zxid, Box::new(txn));
    }

    fn log(&mut self, zxid: i64, session: i64, prepared: Prepared, purpose: Purpose) {
        if self.replica.is_some() {
            self.propose(zxid, session, prepared, purpose);
            return;
        }
        let txn = prepared.encode();
        // Nothing else in flight or waiting: commit here rather than wake the writer
        // thread. With requests waiting, the writer's group commit takes them along.
        let alone = self.inflight.is_empty() && self.backlog == 0;
        self.track_inflight(zxid, session, prepared, purpose);
        if alone {
            let started = Instant::now();
            if let Some(result) = self.writer.commit_now(zxid, &txn) {
                self.after_commit_now(started);
                match result {
                    Ok(()) => self.durable_now.push_back(zxid),
                    Err(e) => {
                        let _ = self.to_core.send(CoreMsg::Durable {
                            zxid,
                            result: Err(e),
                        });
                    }
                }
                return;
            }
        }
        let to_core = self.to_core.clone();
        let done: zk_log::group::Done = Box::new(move |result| {
            let _ = to_core.send(CoreMsg::Durable { zxid, result });
        });
        if let Err(e) = self.hold_log(zxid, txn, done) {
            let _ = self.to_core.send(CoreMsg::Durable {
                zxid,
                result: Err(Arc::new(e)),
            });
        }
    }

    fn connect(
        &mut self,
        conn: ConnId,
        addr: IpAddr,
        identities: Vec<Id>,
        req: ConnectRequest,
        out: mpsc::Sender<Out>,
    ) {
        self.stats.packets_received += 1;
        let mut auth = vec![Id {
            scheme: "ip".into(),
            id: addr.to_string(),
        }];
        auth.extend(identities);
        self.conns.insert(
            conn,
            Conn {
                out,
                addr,
                session: None,
                auth,
                read_only: req.read_only,
                early: None,
                sasl: None,
                waiting: VecDeque::new(),
            },
        );
        let read_only_client = self.read_only() && req.read_only == Some(true);
        if !self.serving() && !read_only_client {
            // ZooKeeper: "ZooKeeperServer not running" (or, in read-only mode, "Refusing
            // session request for not-read-only client"); the client tries another server.
            self.send(conn, Out::Close);
            return;
        }
        if req.last_zxid_seen > self.tree.last_processed_zxid() {
            // The client has seen a newer state than ours: refuse, it must try another server.
            tracing::info!(
                client = %addr,
                last_zxid_seen = format_args!("{:#x}", req.last_zxid_seen),
                "refusing a client ahead of this server"
            );
            self.send(conn, Out::Close);
            return;
        }
        if req.session_id == 0 && self.read_only() {
            // A read-only server's sessions are its own (nothing can be logged).
            let timeout = self.sessions.negotiate_timeout(req.time_out);
            let session = self.sessions.next_session_id();
            self.sessions.add(session, timeout, self.now_ms());
            self.read_only_sessions.insert(session);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = Some(session);
            }
            self.by_session.insert(session, conn);
            self.answer_handshake(conn, session, timeout);
            return;
        }
        if req.session_id == 0 {
            let timeout = self.sessions.negotiate_timeout(req.time_out);
            let session = self.sessions.next_session_id();
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = Some(session);
                c.early = Some(Vec::new());
            }
            if self.replica.as_ref().is_some_and(|r| r.following()) {
                self.forward(
                    session,
                    0,
                    Forward::CreateSession { timeout },
                    Purpose::Connect { conn },
                );
                return;
            }
            let Some(zxid) = self.next_zxid() else {
                self.send(conn, Out::Close);
                return;
            };
            let prepared = prep_create_session(session, 0, timeout, zxid, wall_ms());
            self.log(zxid, session, prepared, Purpose::Connect { conn });
            return;
        }
        let id = req.session_id;
        let valid = SessionTracker::check_password(id, req.passwd.as_deref().unwrap_or_default())
            && self.sessions.touch(id, self.now_ms()).is_ok();
        if valid {
            // A follower tells the leader at its next tick (ZooKeeper revalidates the
            // session with the leader): the leader must not expire a session that just
            // moved here because it last heard of it through the server it left.
            self.touched(id);
        }
        if !valid {
            // Probed: a wrong password also drops the session's current connection.
            if let Some(old) = self.by_session.get(&id).copied() {
                if self.sessions.get(id).is_some() {
                    self.send(old, Out::Close);
                }
            }
            let expired = ConnectResponse {
                protocol_version: 0,
                time_out: 0,
                session_id: 0,
                passwd: Some(Bytes::from_static(&[0; 16])),
                read_only: req.read_only,
            };
            self.send(conn, Out::Frame(frame(|b| expired.write(b))));
            self.send(conn, Out::Close);
            return;
        }
        // A session moves to its newest connection; the old one is closed.
        if let Some(old) = self.by_session.insert(id, conn) {
            if old != conn {
                if let Some(c) = self.conns.get_mut(&old) {
                    c.session = None;
                }
                self.tree.watches_mut().remove_watcher(WatcherId(old));
                self.send(old, Out::Close);
            }
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.session = Some(id);
        }
        let timeout = self.sessions.get(id).map_or(req.time_out, |s| s.timeout_ms);
        self.answer_handshake(conn, id, timeout);
    }

    fn answer_handshake(&mut self, conn: ConnId, session: i64, timeout: i32) {
        let read_only = self.conns.get(&conn).and_then(|c| c.read_only);
        let resp = ConnectResponse {
            protocol_version: 0,
            time_out: timeout,
            session_id: session,
            passwd: Some(Bytes::copy_from_slice(&SessionTracker::password(session))),
            read_only: read_only.map(|_| self.read_only()),
        };
        self.send(conn, Out::Frame(frame(|b| resp.write(b))));
    }

    fn request(
        &mut self,
        conn: ConnId,
        header: RequestHeader,
        request: Result<Request, DecodeError>,
    ) {
        self.stats.packets_received += 1;
        if let Some(early) = self.conns.get_mut(&conn).and_then(|c| c.early.as_mut()) {
            early.push((header, request));
            return;
        }
        let now = self.now_ms();
        if let Some(c) = self.conns.get_mut(&conn) {
            let update = request.as_ref().is_ok_and(Request::makes_txn);
            c.waiting.push_back((header.xid, now, update));
        }
        let Some(session) = self.conns.get(&conn).and_then(|c| c.session) else {
            self.send(conn, Out::Close);
            return;
        };
        if !self.serving() && !self.read_only() {
            self.send(conn, Out::Close);
            return;
        }
        self.touched(session);
        let last = self.tree.last_processed_zxid();
        match self.sessions.touch(session, self.now_ms()) {
            Ok(()) => {}
            // As ZooKeeper ("Dropping request"): a request behind the session's closeSession
            // (or its expiry) gets no answer; the close answers and ends the connection
            // after every earlier reply, so replies stay in request order.
            Err(zk_session::SessionError::Closing(_)) => {
                tracing::debug!(
                    conn,
                    xid = header.xid,
                    "dropping a request of a closing session"
                );
                return;
            }
            Err(_) => {
                self.fail_and_close(conn, header.xid, last, ErrorCode::SessionExpired);
                return;
            }
        }
        let request = match request {
            Ok(r) => r,
            // Probed: UNIMPLEMENTED with zxid -1, then the connection is closed.
            Err(DecodeError::UnknownOpCode(_)) => {
                self.fail_and_close(conn, header.xid, -1, ErrorCode::Unimplemented);
                return;
            }
            Err(e) => {
                tracing::info!(conn, error = %e, "malformed request");
                self.fail_and_close(conn, header.xid, last, ErrorCode::MarshallingError);
                return;
            }
        };
        if self.config.enforce_auth
            && !matches!(request, Request::Auth(_) | Request::Sasl(_))
            && !self.conns.get(&conn).is_some_and(|c| {
                c.auth
                    .iter()
                    .any(|id| self.config.enforce_auth_schemes.contains(&id.scheme))
            })
        {
            tracing::warn!(
                conn,
                op = request.op_code().name(),
                "refusing an unauthenticated session (enforce.auth.enabled)"
            );
            self.fail_and_close(conn, header.xid, 0, ErrorCode::SessionClosedRequireSaslAuth);
            return;
        }
        let is_write = request.makes_txn();
        if self.read_only() && (is_write || matches!(request, Request::Sync(_))) {
            // A read-only server answers writes NOTREADONLY and keeps the connection.
            let f = reply_frame(
                header.xid,
                last,
                ErrorCode::NotReadOnly.code(),
                &Response::Empty,
            );
            self.send(conn, Out::Frame(f));
            return;
        }
        if let (Some(_), Request::Sync(r)) = (&self.replica, &request) {
            let path = r.path.clone();
            self.replica_sync(conn, session, header.xid, path);
        } else if is_write {
            self.write(conn, session, header, request);
        } else if self.needs_barrier(&request) {
            self.read_after_barrier(conn, session, header, request);
        } else if self.queues.get(&session).is_some_and(|q| !q.is_empty()) {
            self.queues
                .entry(session)
                .or_default()
                .push_back(Queued::Read {
                    conn,
                    header,
                    request,
                });
        } else {
            self.read(conn, header, request);
        }
    }

    /// Exact catch-up for a reconnecting client's persistent watches: the changes it
    /// missed after its `relativeZxid`, from the journal; when the journal does not reach
    /// back that far, none (ZooKeeper's behaviour), counted as a fallback.
    fn watch_catch_up(&mut self, w: &zk_proto::SetWatches2, watcher: WatcherId) -> Vec<Event> {
        if w.persistent_watches.is_empty() && w.persistent_recursive_watches.is_empty() {
            return Vec::new();
        }
        match self.tree.missed_events(
            w.relative_zxid,
            &w.persistent_watches,
            &w.persistent_recursive_watches,
            watcher,
        ) {
            Some(events) => {
                self.catch_up.caught_up += 1;
                self.catch_up.events += events.len() as u64;
                events
            }
            None => {
                self.catch_up.fallbacks += 1;
                tracing::info!(
                    relative_zxid = format_args!("{:#x}", w.relative_zxid),
                    retained_txns = self.tree.journal().txns(),
                    "a reconnecting client's persistent watches missed changes older than \
                     the journal (watchCatchup.retainTxns): re-armed only, as ZooKeeper does"
                );
                Vec::new()
            }
        }
    }

    /// Serves a web console request: reads as a client's, writes as session 0's.
    fn console_request(&mut self, conn: ConnId, header: RequestHeader, request: Request) {
        let last = self.tree.last_processed_zxid();
        let refuse = |code: ErrorCode| reply_frame(header.xid, last, code.code(), &Response::Empty);
        match request {
            Request::Create(_) | Request::Create2(_) | Request::Delete(_) | Request::SetData(_) => {
                if !self.serving() {
                    let f = refuse(if self.read_only() {
                        ErrorCode::NotReadOnly
                    } else {
                        ErrorCode::ConnectionLoss
                    });
                    self.send(conn, Out::Frame(f));
                } else {
                    self.write(conn, 0, header, request);
                }
            }
            Request::GetData(_)
            | Request::GetChildren(_)
            | Request::GetChildren2(_)
            | Request::GetAcl(_)
            | Request::Exists(_)
            | Request::AddWatch(_) => self.read(conn, header, request),
            _ => {
                let f = refuse(ErrorCode::Unimplemented);
                self.send(conn, Out::Frame(f));
            }
        }
    }

    /// Answers `xid` with an error, then closes the connection.
    fn fail_and_close(&mut self, conn: ConnId, xid: i32, zxid: i64, code: ErrorCode) {
        let f = reply_frame(xid, zxid, code.code(), &Response::Empty);
        self.send(conn, Out::Frame(f));
        self.send(conn, Out::Close);
    }

    fn write(&mut self, conn: ConnId, session: i64, header: RequestHeader, request: Request) {
        let auth = self
            .conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default();
        if self.replica.as_ref().is_some_and(|r| r.following()) {
            let purpose = self.write_purpose(conn, session, header.xid, &request);
            self.forward(
                session,
                header.xid,
                Forward::Write { auth, request },
                purpose,
            );
            return;
        }
        let Some(zxid) = self.next_zxid() else {
            self.send(conn, Out::Close);
            return;
        };
        let prepared = self.prep_write(session, header.xid, &auth, &request, zxid, wall_ms());
        let purpose = self.write_purpose(conn, session, header.xid, &request);
        self.log(zxid, session, prepared, purpose);
    }

    /// Turns a client's write into its txn at `zxid` (standalone, or the leader for any
    /// member's client).
    fn prep_write(
        &mut self,
        session: i64,
        cxid: i32,
        auth: &[Id],
        request: &Request,
        zxid: i64,
        time: i64,
    ) -> Prepared {
        match request {
            Request::Reconfig(r) => self.prep_reconfig(session, cxid, auth, r, zxid, time),
            Request::DeleteContainer(_) => {
                // Only the server's own container manager deletes containers.
                error_txn(session, cxid, zxid, time, ErrorCode::BadArguments)
            }
            _ => {
                let ctx = PrepContext {
                    session,
                    auth,
                    enforce_quota: self.config.enforce_quota,
                    local_session: false,
                    max_children: self.config.max_children,
                };
                let prepared = prep_request(
                    &self.tree,
                    &mut self.pending,
                    &ctx,
                    cxid,
                    request,
                    zxid,
                    time,
                );
                if let Some(zk_tree::TreeError::TooManyChildren { parent, limit }) = &prepared.error
                {
                    let now = self.now_ms();
                    self.guardrails.cap_refused(parent, *limit, now);
                }
                prepared
            }
        }
    }

    /// What to do when a client's write commits, and its place in the session's order (its
    /// later reads wait for it). A closeSession marks the session closing at once.
    fn write_purpose(
        &mut self,
        conn: ConnId,
        session: i64,
        xid: i32,
        request: &Request,
    ) -> Purpose {
        self.queues
            .entry(session)
            .or_default()
            .push_back(Queued::Write { cxid: xid });
        match request {
            Request::CloseSession => {
                self.sessions.set_closing(session);
                Purpose::Close { conn, xid }
            }
            _ => Purpose::Write {
                conn,
                xid,
                op: request.op_code(),
            },
        }
    }

    /// A txn is durable: apply it, fire its watches, answer, then serve what waited for it.
    fn durable(&mut self, zxid: i64) {
        let Some(inflight) = self.inflight.remove(&zxid) else {
            return;
        };
        let Inflight {
            session,
            prepared,
            purpose,
        } = *inflight;
        self.apply_committed(session, &prepared.header, &prepared.body, Some(purpose));
    }

    /// Applies a committed txn (standalone: durable; ensemble: committed by the quorum),
    /// fires its watches and answers the client of this server it came from, if any.
    fn apply_committed(
        &mut self,
        session: i64,
        header: &zk_proto::TxnHeader,
        body: &zk_proto::TxnBody,
        purpose: Option<Purpose>,
    ) {
        let zxid = header.zxid;
        let cxid = header.cxid;
        let applied = self.tree.apply(header, body);
        self.pending.applied(zxid);
        if applied.result.err() == 0 {
            let now = self.now_ms();
            self.guardrails.after_write(&self.tree, body, now);
            self.intro.write(session, body, now);
        }
        self.deliver(applied.events);
        // A txn of another server's client still changes what this server knows of sessions.
        let purpose = match (purpose, body) {
            (Some(p), _) => p,
            (None, zk_proto::TxnBody::CreateSession(t)) => {
                self.sessions.add(session, t.time_out, self.now_ms());
                return;
            }
            (None, zk_proto::TxnBody::CloseSession(_)) => Purpose::Expire,
            (None, _) => return,
        };
        match purpose {
            Purpose::Connect { conn } => {
                if let zk_proto::TxnBody::CreateSession(t) = body {
                    self.sessions.add(session, t.time_out, self.now_ms());
                    if self
                        .conns
                        .get(&conn)
                        .is_some_and(|c| c.session == Some(session))
                    {
                        self.by_session.insert(session, conn);
                        self.answer_handshake(conn, session, t.time_out);
                        let early = self
                            .conns
                            .get_mut(&conn)
                            .and_then(|c| c.early.take())
                            .unwrap_or_default();
                        for (header, request) in early {
                            self.stats.packets_received -= 1;
                            self.request(conn, header, request);
                        }
                    }
                }
            }
            Purpose::Write { conn, xid, op } => {
                let (err, body) = if op == OpCode::Reconfig && applied.result.err() == 0 {
                    // The new configuration and the Stat of /zookeeper/config.
                    let data = self
                        .tree
                        .data(CONFIG_NODE)
                        .flatten()
                        .map(Bytes::copy_from_slice);
                    let stat = self.tree.stat(CONFIG_NODE).unwrap_or_default();
                    (
                        0,
                        Response::Reconfig(zk_proto::GetDataResponse { data, stat }),
                    )
                } else {
                    write_response(op, body, &applied.result)
                };
                let f = reply_frame(xid, zxid, err, &body);
                self.finish_write(session, cxid);
                self.send(conn, Out::Frame(f));
            }
            Purpose::Close { conn, xid } => {
                zk_log::failpoint::hit("session.close");
                self.finish_write(session, cxid);
                let f = reply_frame(xid, zxid, 0, &Response::Empty);
                self.send(conn, Out::Frame(f));
                self.send(conn, Out::Close);
                self.end_session(session);
            }
            Purpose::Reap | Purpose::Remote => {}
            Purpose::Expire => {
                self.finish_write(session, cxid);
                if let Some(conn) = self.by_session.get(&session).copied() {
                    self.send(conn, Out::Close);
                }
                self.end_session(session);
            }
        }
        self.drain(session);
    }

    fn end_session(&mut self, session: i64) {
        self.sessions.remove(session);
        if let Some(conn) = self.by_session.remove(&session) {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.session = None;
            }
        }
        self.queues.remove(&session);
    }

    fn finish_write(&mut self, session: i64, cxid: i32) {
        if let Some(q) = self.queues.get_mut(&session) {
            if matches!(q.front(), Some(Queued::Write { cxid: c }) if *c == cxid) {
                q.pop_front();
            }
        }
    }

    /// Whether `request` is a read this server must not answer from its own state alone:
    /// an ensemble member whose `readPolicy` for the paths read is `linearizable`, or
    /// `bounded(ms)` while out of touch for longer than that.
    fn needs_barrier(&self, request: &Request) -> bool {
        let Some(r) = &self.replica else {
            return false;
        };
        let policy = |path: &str| self.config.read_policy_for(path);
        let policies: Vec<crate::config::ReadPolicy> = match request {
            Request::GetData(g) => vec![policy(&g.path)],
            Request::Exists(e) => vec![policy(&e.path)],
            Request::GetChildren(g) => vec![policy(&g.path)],
            Request::GetChildren2(g) => vec![policy(&g.path)],
            Request::GetAcl(g) => vec![policy(&g.path)],
            Request::GetAllChildrenNumber(g) => vec![policy(&g.path)],
            Request::GetEphemerals(g) => vec![policy(&g.prefix_path)],
            Request::MultiRead(ops) => ops
                .iter()
                .filter_map(|op| match op {
                    MultiOp::GetData(g) => Some(policy(&g.path)),
                    MultiOp::GetChildren(g) => Some(policy(&g.path)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let age = r.peer.contact_age();
        policies.iter().any(|p| match p {
            crate::config::ReadPolicy::Local => false,
            crate::config::ReadPolicy::Linearizable => true,
            crate::config::ReadPolicy::Bounded(ms) => age.is_none_or(|a| a > *ms),
        })
    }

    /// Queues a read behind a read barrier (after the session's earlier requests).
    fn read_after_barrier(
        &mut self,
        conn: ConnId,
        session: i64,
        header: RequestHeader,
        request: Request,
    ) {
        let token = self.next_read_token;
        self.next_read_token += 1;
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        if !r.peer.read_barrier(token, &mut out) {
            // Not leading or following right now: the client reconnects and asks again.
            self.replica_outputs(out);
            self.barrier_failures += 1;
            self.send(conn, Out::Close);
            return;
        }
        self.read_barriers.insert(token, (session, conn));
        let q = self.queues.entry(session).or_default();
        q.push_back(Queued::Barrier {
            token,
            passed: false,
        });
        q.push_back(Queued::Read {
            conn,
            header,
            request,
        });
        self.replica_outputs(out);
    }

    /// A read barrier passed (serve what waits behind it) or failed (this server left its
    /// role: the connection closes, its client asks another server).
    pub(crate) fn barrier_done(&mut self, token: u64, passed: bool) {
        let Some((session, conn)) = self.read_barriers.remove(&token) else {
            return;
        };
        if let Some(q) = self.queues.get_mut(&session) {
            if passed {
                for item in q.iter_mut() {
                    if let Queued::Barrier { token: t, passed } = item {
                        if *t == token {
                            *passed = true;
                        }
                    }
                }
            } else {
                q.retain(|item| match item {
                    Queued::Barrier { token: t, .. } => *t != token,
                    Queued::Read { conn: c, .. } => *c != conn,
                    Queued::Write { .. } => true,
                });
            }
        }
        if passed {
            self.barrier_reads += 1;
        } else {
            self.barrier_failures += 1;
            self.send(conn, Out::Close);
        }
        self.drain(session);
    }

    /// Serves the reads that were waiting behind a session's writes.
    fn drain(&mut self, session: i64) {
        loop {
            let Some(q) = self.queues.get_mut(&session) else {
                return;
            };
            match q.front() {
                Some(Queued::Read { .. }) => {
                    if let Some(Queued::Read {
                        conn,
                        header,
                        request,
                    }) = q.pop_front()
                    {
                        self.read(conn, header, request);
                    }
                }
                Some(Queued::Barrier { passed: true, .. }) => {
                    q.pop_front();
                }
                Some(Queued::Write { .. } | Queued::Barrier { .. }) => return,
                None => {
                    self.queues.remove(&session);
                    return;
                }
            }
        }
    }

    fn deliver(&mut self, events: Vec<Event>) {
        let auth_config = self.tree.config().auth.clone();
        let now = self.now_ms();
        // A change's watchers come together and get the same frame: encode it once and
        // share it (10,000 watchers of one node cost one encoding, not 10,000).
        let mut last: Option<(EventType, i64, Bytes)> = None;
        let mut last_path = String::new();
        for e in events {
            let conn = e.watcher.0;
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            if !e.visible_to(&auth_config, &c.auth) {
                continue;
            }
            self.intro.watch_event(&e.path, now);
            let f = match &last {
                Some((event, zxid, f))
                    if *event == e.event && *zxid == e.zxid && last_path == e.path =>
                {
                    f.clone()
                }
                _ => {
                    let f = notification(&e.path, e.event, e.zxid);
                    last = Some((e.event, e.zxid, f.clone()));
                    last_path = e.path;
                    f
                }
            };
            self.send(conn, Out::Frame(f));
        }
    }

    /// One SASL token; `None` when the server has no SASL users configured.
    fn sasl_step(
        &mut self,
        conn: ConnId,
        token: &[u8],
    ) -> Option<Result<Vec<u8>, crate::sasl::SaslError>> {
        let users = self.config.sasl_users.as_ref()?;
        let c = self.conns.get_mut(&conn)?;
        let exchange = c
            .sasl
            .get_or_insert_with(|| crate::sasl::DigestMd5::new(fresh_nonce()));
        let was_done = exchange.authorized().is_some();
        let result = exchange.step(users, token);
        if let (false, Some(user)) = (was_done, exchange.authorized()) {
            let user = user.to_string();
            tracing::info!(conn, user, "SASL authenticated");
            if self.config.sasl_super_user.as_deref() == Some(user.as_str()) {
                c.auth.push(Id {
                    scheme: "super".into(),
                    id: String::new(),
                });
            }
            c.auth.push(Id {
                scheme: "sasl".into(),
                id: user,
            });
        }
        Some(result)
    }

    fn auth_of(&self, conn: ConnId) -> Vec<Id> {
        self.conns
            .get(&conn)
            .map(|c| c.auth.clone())
            .unwrap_or_default()
    }

    fn can(&self, conn: ConnId, acl: &[zk_proto::Acl], perm: i32) -> bool {
        acl::check_acl(&self.tree.config().auth, acl, perm, &self.auth_of(conn))
    }

    /// Serves a read (or another non-txn request) now.
    fn read(&mut self, conn: ConnId, header: RequestHeader, request: Request) {
        let zxid = self.tree.last_processed_zxid();
        let xid = header.xid;
        let watcher = WatcherId(conn);
        if !matches!(request, Request::Ping) {
            let now = self.now_ms();
            let session = self.conns.get(&conn).and_then(|c| c.session);
            self.intro.read(request.path(), session, now);
        }
        let result: Result<Response, ErrorCode> = match request {
            Request::Ping => Ok(Response::Empty),
            Request::Exists(r) => self.op_exists(conn, &r.path, r.watch.then_some(watcher)),
            Request::GetData(r) => self.op_get_data(conn, &r.path, r.watch.then_some(watcher)),
            Request::GetChildren(r) => self
                .op_children(conn, &r.path, r.watch.then_some(watcher))
                .map(|(children, _)| {
                    Response::GetChildren(zk_proto::GetChildrenResponse { children })
                }),
            Request::GetChildren2(r) => self
                .op_children(conn, &r.path, r.watch.then_some(watcher))
                .map(|(children, stat)| {
                    Response::GetChildren2(zk_proto::GetChildren2Response { children, stat })
                }),
            Request::GetAcl(r) => self.op_get_acl(conn, &r.path),
            Request::Sync(r) => Ok(Response::Sync(zk_proto::SyncResponse { path: r.path })),
            Request::GetAllChildrenNumber(r) => self.op_all_children(conn, &r.path),
            Request::GetEphemerals(r) => {
                let session = self.conns.get(&conn).and_then(|c| c.session).unwrap_or(0);
                Ok(Response::GetEphemerals(zk_proto::GetEphemeralsResponse {
                    ephemerals: self.tree.ephemerals_of(session, &r.prefix_path),
                }))
            }
            Request::AddWatch(r) => self.op_add_watch(conn, &r.path, r.mode),
            Request::CheckWatches(r) => self.op_watches(conn, &r.path, r.r#type, false),
            Request::RemoveWatches(r) => self.op_watches(conn, &r.path, r.r#type, true),
            Request::WhoAmI => Ok(Response::WhoAmI(zk_proto::WhoAmIResponse {
                // Probed: listed in scheme order (digest before ip).
                client_info: java_set_order(self.auth_of(conn))
                    .into_iter()
                    // Probed: digest identities show the user name only (`getUserName`).
                    .map(|id| {
                        let user = match id.scheme.as_str() {
                            "digest" => id.id.split(':').next().unwrap_or_default().to_owned(),
                            _ => id.id,
                        };
                        zk_proto::ClientInfo {
                            auth_scheme: id.scheme,
                            user,
                        }
                    })
                    .collect(),
            })),
            Request::MultiRead(ops) => Ok(self.op_multi_read(conn, ops)),
            Request::SetWatches(w) => {
                let events = self.tree.set_watches(
                    w.relative_zxid,
                    &w.data_watches,
                    &w.exist_watches,
                    &w.child_watches,
                    &[],
                    &[],
                    watcher,
                );
                self.deliver(events);
                Ok(Response::Empty)
            }
            Request::SetWatches2(w) => {
                let one_shot = self.tree.set_watches(
                    w.relative_zxid,
                    &w.data_watches,
                    &w.exist_watches,
                    &w.child_watches,
                    &w.persistent_watches,
                    &w.persistent_recursive_watches,
                    watcher,
                );
                let missed = self.watch_catch_up(&w, watcher);
                // A change the catch-up delivers also ends a one-shot watch on its path
                // (the client fires every watch an event matches): no second copy.
                let one_shot = one_shot
                    .into_iter()
                    .filter(|e| {
                        !missed
                            .iter()
                            .any(|m| m.path == e.path && m.event == e.event)
                    })
                    .collect();
                self.deliver(one_shot);
                self.deliver(missed);
                Ok(Response::Empty)
            }
            Request::Auth(a) => {
                self.op_auth(conn, xid, &a);
                return;
            }
            Request::Sasl(r) => {
                match self.sasl_step(conn, r.token.as_deref().unwrap_or_default()) {
                    // Probed: without SASL configured, err 0 and a null token.
                    None => Ok(Response::Sasl(zk_proto::SetSaslResponse { token: None })),
                    Some(Ok(token)) => Ok(Response::Sasl(zk_proto::SetSaslResponse {
                        token: Some(token.into()),
                    })),
                    Some(Err(e)) => {
                        tracing::warn!(conn, error = %e, "SASL authentication failed");
                        self.fail_and_close(conn, xid, 0, ErrorCode::AuthFailed);
                        return;
                    }
                }
            }
            Request::Check(_) => Err(ErrorCode::Unimplemented),
            other => {
                tracing::warn!(
                    op = other.op_code().name(),
                    "unexpected request in the read path"
                );
                Err(ErrorCode::Unimplemented)
            }
        };
        let f = match result {
            Ok(body) => reply_frame(xid, zxid, 0, &body),
            Err(code) => reply_frame(xid, zxid, code.code(), &Response::Empty),
        };
        self.send(conn, Out::Frame(f));
    }

    /// The checks every read makes, in ZooKeeper's order: an existing node, and one of the
    /// permissions in `perm` on it. Returns the node's ACL.
    fn readable(
        &self,
        conn: ConnId,
        path: &str,
        perm: i32,
    ) -> Result<Arc<[zk_proto::Acl]>, ErrorCode> {
        // Probed: reads do not validate paths; a path that cannot exist is just NONODE.
        let acl = self.tree.acl(path).ok_or(ErrorCode::NoNode)?;
        if self.can(conn, &acl, perm) {
            Ok(acl)
        } else {
            Err(ErrorCode::NoAuth)
        }
    }

    fn op_exists(
        &mut self,
        conn: ConnId,
        path: &str,
        watcher: Option<WatcherId>,
    ) -> Result<Response, ErrorCode> {
        // Probed: exists refuses only a NUL in the path; anything else is looked up.
        if path.contains('\0') {
            return Err(ErrorCode::BadArguments);
        }
        if let Some(acl) = self.tree.acl(path) {
            if !self.can(conn, &acl, perms::READ) {
                return Err(ErrorCode::NoAuth);
            }
        }
        self.tree
            .exists_watch(path, watcher)
            .map(|stat| Response::Exists(zk_proto::ExistsResponse { stat }))
            .map_err(|e| e.code())
    }

    fn op_get_data(
        &mut self,
        conn: ConnId,
        path: &str,
        watcher: Option<WatcherId>,
    ) -> Result<Response, ErrorCode> {
        self.readable(conn, path, perms::READ)?;
        #[cfg_attr(not(feature = "testing"), allow(unused_mut))]
        let (data, mut stat) = self.tree.get_data(path, watcher).map_err(|e| e.code())?;
        #[cfg(feature = "testing")]
        if self.config.inject_difference == Some("getData.aversion") {
            stat.aversion += 1;
        }
        let payload = Guardrails::get_data_payload(data.as_ref().map_or(0, Bytes::len));
        let now = self.now_ms();
        self.guardrails.reply(path, payload, "getData", now);
        Ok(Response::GetData(zk_proto::GetDataResponse { data, stat }))
    }

    fn op_children(
        &mut self,
        conn: ConnId,
        path: &str,
        watcher: Option<WatcherId>,
    ) -> Result<(Vec<String>, zk_proto::Stat), ErrorCode> {
        self.readable(conn, path, perms::READ)?;
        let children = self
            .tree
            .get_children(path, watcher)
            .map_err(|e| e.code())?;
        if let Some(list) = self.tree.children_list_bytes(path) {
            let now = self.now_ms();
            let payload = Guardrails::get_children_payload(list);
            self.guardrails.reply(path, payload, "getChildren", now);
        }
        Ok(children)
    }

    fn op_get_acl(&mut self, conn: ConnId, path: &str) -> Result<Response, ErrorCode> {
        let acl = self.readable(conn, path, perms::READ | perms::ADMIN)?;
        let stat = self.tree.stat(path).ok_or(ErrorCode::NoNode)?;
        let shown = if self.can(conn, &acl, perms::ADMIN) {
            acl.to_vec()
        } else {
            acl::redact_digests(&acl)
        };
        Ok(Response::GetAcl(zk_proto::GetAclResponse {
            acl: shown,
            stat,
        }))
    }

    fn op_all_children(&mut self, conn: ConnId, path: &str) -> Result<Response, ErrorCode> {
        self.readable(conn, path, perms::READ)?;
        self.tree
            .all_children_number(path)
            .map(|total_number| {
                Response::GetAllChildrenNumber(zk_proto::GetAllChildrenNumberResponse {
                    total_number,
                })
            })
            .map_err(|e| e.code())
    }

    fn op_add_watch(&mut self, conn: ConnId, path: &str, mode: i32) -> Result<Response, ErrorCode> {
        zk_tree::path::validate_path(path).map_err(|e| e.code())?;
        let recursive = match zk_proto::AddWatchMode::from_code(mode) {
            Some(zk_proto::AddWatchMode::Persistent) => false,
            Some(zk_proto::AddWatchMode::PersistentRecursive) => true,
            None => return Err(ErrorCode::BadArguments),
        };
        // As every ZooKeeper version: no ACL check here (a watch may wait for a node that
        // does not exist yet). Each event is checked at delivery against the READ
        // permission of the node it is about (`deliver`), so nothing unreadable leaks.
        self.tree
            .watches_mut()
            .add_persistent(path, WatcherId(conn), recursive);
        Ok(Response::AddWatch(zk_proto::ErrorResponse { err: 0 }))
    }

    fn op_watches(
        &mut self,
        conn: ConnId,
        path: &str,
        kind: i32,
        remove: bool,
    ) -> Result<Response, ErrorCode> {
        let kind = zk_proto::WatcherType::from_code(kind).ok_or(ErrorCode::BadArguments)?;
        let w = WatcherId(conn);
        let found = if remove {
            self.tree.watches_mut().remove(path, w, kind)
        } else {
            self.tree.watches().contains(path, w, kind)
        };
        if found {
            Ok(Response::Empty)
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    fn op_multi_read(&mut self, conn: ConnId, ops: Vec<MultiOp>) -> Response {
        let mut results = Vec::with_capacity(ops.len());
        for op in ops {
            let r = match op {
                MultiOp::GetData(r) => match self.op_get_data(conn, &r.path, None) {
                    Ok(Response::GetData(d)) => MultiResult::GetData(d),
                    Ok(_) => MultiResult::Error(ErrorCode::SystemError.code()),
                    Err(e) => MultiResult::Error(e.code()),
                },
                MultiOp::GetChildren(r) => match self.op_children(conn, &r.path, None) {
                    Ok((children, _)) => {
                        MultiResult::GetChildren(zk_proto::GetChildrenResponse { children })
                    }
                    Err(e) => MultiResult::Error(e.code()),
                },
                _ => MultiResult::Error(ErrorCode::BadArguments.code()),
            };
            results.push(r);
        }
        Response::Multi(results)
    }

    fn op_auth(&mut self, conn: ConnId, xid: i32, a: &zk_proto::AuthPacket) {
        let cred = String::from_utf8_lossy(a.auth.as_deref().unwrap_or_default()).into_owned();
        let mut ids = Vec::new();
        let ok = match a.scheme.as_str() {
            "digest" if cred.contains(':') => {
                let id = acl::digest_id(&cred);
                if self.config.super_digest.as_deref() == Some(id.as_str()) {
                    ids.push(Id {
                        scheme: "super".into(),
                        id: String::new(),
                    });
                }
                ids.push(Id {
                    scheme: "digest".into(),
                    id,
                });
                true
            }
            _ => false,
        };
        if ok {
            if let Some(c) = self.conns.get_mut(&conn) {
                for id in ids {
                    if !c.auth.contains(&id) {
                        c.auth.push(id);
                    }
                }
            }
            // Probed: auth replies carry zxid 0.
            let f = reply_frame(xid, 0, 0, &Response::Empty);
            self.send(conn, Out::Frame(f));
        } else {
            // Probed: AUTHFAILED, then the connection is closed.
            let f = reply_frame(xid, 0, ErrorCode::AuthFailed.code(), &Response::Empty);
            self.send(conn, Out::Frame(f));
            self.send(conn, Out::Close);
        }
    }

    fn closed(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(s) = c.session {
                if self.by_session.get(&s) == Some(&conn) {
                    self.by_session.remove(&s);
                }
            }
        }
        self.tree.watches_mut().remove_watcher(WatcherId(conn));
    }

    /// The container manager (`ContainerManager`): deletes empty containers that once had
    /// children and childless TTL nodes past their TTL, as deleteContainer txns.
    fn reap_containers(&mut self) {
        let now = self.now_ms();
        if now.saturating_sub(self.last_container_check_ms)
            < self.config.container_check_interval_ms
        {
            return;
        }
        self.last_container_check_ms = now;
        let never_used = i64::try_from(self.config.container_never_used_ms).unwrap_or(i64::MAX);
        for path in self.tree.expired_containers_and_ttls(wall_ms(), never_used) {
            let Some(zxid) = self.next_zxid() else {
                return;
            };
            let auth = [Id {
                scheme: "super".into(),
                id: String::new(),
            }];
            let ctx = PrepContext {
                session: 0,
                auth: &auth,
                enforce_quota: false,
                local_session: false,
                max_children: 0,
            };
            let request = Request::DeleteContainer(zk_proto::DeleteRequest { path, version: -1 });
            let prepared = prep_request(
                &self.tree,
                &mut self.pending,
                &ctx,
                0,
                &request,
                zxid,
                wall_ms(),
            );
            self.log(zxid, 0, prepared, Purpose::Reap);
        }
    }

    fn tick(&mut self) {
        let now = self.now_ms();
        self.notice_stall(now);
        if self.storage_stalled(now) {
            return;
        }
        // In an ensemble only the leader expires sessions and reaps containers.
        if self.replica.as_ref().is_some_and(|r| !r.leading()) {
            return;
        }
        self.reap_containers();
        let cap = match self.config.max_expirations_per_tick {
            0 => usize::MAX,
            n => n,
        };
        let (due, deferred) = self.sessions.expire_at_most(now, cap);
        if deferred > 0 {
            self.expiry_log.deferred(deferred, cap);
        }
        for session in due {
            let known = self.sessions.get(session).cloned();
            let conn = self.by_session.get(&session).copied();
            let Some(zxid) = self.next_zxid() else {
                return;
            };
            if let Some(known) = known {
                self.expiry_log.expired(expiry_log::Expiration {
                    session,
                    timeout_ms: known.timeout_ms,
                    last_seen_ms_ago: now.saturating_sub(known.last_touch_ms),
                    last_server: known.last_server,
                    connected_here: conn.is_some(),
                    ephemerals: self.tree.ephemerals().get(&session).map_or(0, |e| e.len()),
                    watches: conn.map(|c| self.tree.watches().count_of(WatcherId(c))),
                    zxid,
                    at_ms: wall_ms(),
                });
            }
            let auth = Vec::new();
            let ctx = PrepContext {
                session,
                auth: &auth,
                enforce_quota: false,
                local_session: false,
                max_children: 0,
            };
            let prepared = prep_request(
                &self.tree,
                &mut self.pending,
                &ctx,
                0,
                &Request::CloseSession,
                zxid,
                wall_ms(),
            );
            self.queues
                .entry(session)
                .or_default()
                .push_back(Queued::Write { cxid: 0 });
            self.log(zxid, session, prepared, Purpose::Expire);
        }
    }

    /// A tick far later than due means this server stalled (SIGSTOP, a VM pause, CPU
    /// starvation): its clients may have pinged all along without being heard, so every
    /// session gets a full timeout from now instead of a mass expiry.
    fn notice_stall(&mut self, now: u64) {
        let previous = self.last_tick_ms.replace(now);
        let threshold = self.config.stall_threshold_ms;
        let Some(previous) = previous else {
            return;
        };
        let late = now
            .saturating_sub(previous)
            .saturating_sub(u64::from(self.config.tick_time_ms));
        if threshold > 0 && late > threshold {
            self.extend_after_stall(expiry_log::StallKind::Tick, late, now);
        }
    }

    /// After a stall of this server (`kind`, `late_ms` long): every session gets a full
    /// timeout from `now`, and the stall is listed.
    fn extend_after_stall(&mut self, kind: expiry_log::StallKind, late_ms: u64, now: u64) {
        let extended = self.sessions.extend_all(now);
        self.expiry_log.stalled(expiry_log::Stall {
            kind,
            late_ms,
            sessions_extended: extended,
            at_ms: wall_ms(),
        });
    }

    /// Whether the disk is stalled now: a log write has been in progress for longer than
    /// the stall threshold. Nothing can become durable meanwhile (an expiry's closeSession
    /// neither), and clients whose requests wait behind it may give up on this server. So
    /// no session expires while it lasts, and when it ends every session gets a full
    /// timeout to come back, as after a pause; the stall is logged and listed.
    fn storage_stalled(&mut self, now: u64) -> bool {
        let threshold = self.config.stall_threshold_ms;
        if threshold == 0 {
            return false;
        }
        let busy_ms = self.writer.busy_for().map(|d| d.as_millis() as u64);
        match (busy_ms, self.storage_stall_since) {
            (Some(ms), _) if ms > threshold => {
                if self.storage_stall_since.is_none() {
                    tracing::warn!(
                        busy_ms = ms,
                        threshold_ms = threshold,
                        "a txn log write is stalled: no session expires until it completes"
                    );
                    self.storage_stall_since = Some(now.saturating_sub(ms));
                }
                true
            }
            (_, Some(since)) => {
                self.storage_stall_since = None;
                let late = now.saturating_sub(since);
                self.extend_after_stall(expiry_log::StallKind::Storage, late, now);
                false
            }
            _ => false,
        }
    }
}

/// A fresh DIGEST-MD5 nonce: 16 unpredictable bytes (std's randomly keyed SipHash over a
/// counter and the clock), in hex.
fn fresh_nonce() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = Vec::with_capacity(16);
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        bytes.extend_from_slice(&h.finish().to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The order in which ZooKeeper lists a connection's identities: its auth info is a Java
/// hash set, iterated by bucket (the jute `Id.hashCode`, spread as `HashMap` does), then in
/// insertion order within a bucket. Probed: `digest` before `ip`, `x509` before `ip`.
fn java_set_order(ids: Vec<Id>) -> Vec<Id> {
    fn string_hash(s: &str) -> i32 {
        s.encode_utf16()
            .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
    }
    let mut cap = 16usize;
    while ids.len() * 4 > cap * 3 && cap < 1 << 20 {
        cap *= 2;
    }
    let bucket = |id: &Id| {
        let h = 17i32
            .wrapping_mul(37)
            .wrapping_add(string_hash(&id.scheme))
            .wrapping_mul(37)
            .wrapping_add(string_hash(&id.id)) as u32;
        ((h ^ (h >> 16)) as usize) & (cap - 1)
    };
    // A set: the same identity twice is listed once.
    let mut unique: Vec<Id> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    unique.sort_by_key(|id| bucket(id));
    unique
}

fn error_txn(session: i64, cxid: i32, zxid: i64, time: i64, code: ErrorCode) -> Prepared {
    Prepared {
        header: zk_proto::TxnHeader {
            client_id: session,
            cxid,
            zxid,
            time,
            r#type: OpCode::Error.code(),
        },
        body: zk_proto::TxnBody::Error(zk_proto::ErrorTxn { err: code.code() }),
        error: None,
    }
}

/// The reply of a write: header error and body, as `FinalRequestProcessor` builds them.
fn write_response(op: OpCode, body: &zk_proto::TxnBody, result: &TxnResult) -> (i32, Response) {
    if let TxnResult::Multi(results) = result {
        // A multi answers err 0 with per-op results, failed or not.
        let types: Vec<i32> = match body {
            zk_proto::TxnBody::Multi(subs) => subs.iter().map(|(t, _)| *t).collect(),
            _ => Vec::new(),
        };
        let out = results
            .iter()
            .enumerate()
            .map(|(i, r)| multi_result(types.get(i).copied().unwrap_or(-1), r))
            .collect();
        return (0, Response::Multi(out));
    }
    let err = result.err();
    if err != 0 {
        return (err, Response::Empty);
    }
    let body = match (op, result) {
        (OpCode::Create, TxnResult::Created { path, .. }) => {
            Response::Create(zk_proto::CreateResponse { path: path.clone() })
        }
        (_, TxnResult::Created { path, stat }) => Response::Create2(zk_proto::Create2Response {
            path: path.clone(),
            stat: stat.clone(),
        }),
        (_, TxnResult::DataSet { stat }) => {
            Response::SetData(zk_proto::SetDataResponse { stat: stat.clone() })
        }
        (_, TxnResult::AclSet { stat }) => {
            Response::SetAcl(zk_proto::SetAclResponse { stat: stat.clone() })
        }
        _ => Response::Empty,
    };
    (0, body)
}

/// ZooKeeper answers a create or create2 inside a multi with a plain create result (the
/// path only: create2 becomes a create txn), and createContainer / createTTL with a create2
/// result (path and Stat); zookeeper-client's probe against 3.8 showed both.
fn multi_result(op: i32, r: &TxnResult) -> MultiResult {
    match r {
        TxnResult::Created { path, .. }
            if op == OpCode::Create.code() || op == OpCode::Create2.code() =>
        {
            MultiResult::Create(zk_proto::CreateResponse { path: path.clone() })
        }
        TxnResult::Created { path, stat } => MultiResult::Create2 {
            op: OpCode::Create2,
            response: zk_proto::Create2Response {
                path: path.clone(),
                stat: stat.clone(),
            },
        },
        TxnResult::Deleted => MultiResult::Delete,
        TxnResult::DataSet { stat } => {
            MultiResult::SetData(zk_proto::SetDataResponse { stat: stat.clone() })
        }
        TxnResult::Checked => MultiResult::Check,
        TxnResult::Error(e) => MultiResult::Error(*e),
        _ => MultiResult::Error(ErrorCode::SystemError.code()),
    }
}

/// A watch notification frame (xid -1; 3.9 puts the change's zxid in the header).
pub fn notification(path: &str, event: EventType, zxid: i64) -> Bytes {
    frame(|b| {
        ReplyHeader {
            xid: zk_proto::xid::NOTIFICATION,
            zxid,
            err: 0,
        }
        .write(b);
        WatcherEvent {
            r#type: event.code(),
            state: KeeperState::SyncConnected.code(),
            path: path.to_owned(),
        }
        .write(b);
    })
}

impl Core {
    /// Starts a new txn log file after everything queued so far (a snapshot is being taken).
    pub fn roll_log(&mut self) {
        if let Err(e) = self.writer.roll(Box::new(|r| {
            if let Err(e) = r {
                tracing::error!(error = %e, "log roll failed");
            }
        })) {
            tracing::error!(error = %e, "log roll failed");
        }
    }
}
