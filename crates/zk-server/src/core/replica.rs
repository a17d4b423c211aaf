//! The core as an ensemble member: a [`Peer`] decides who leads and what is committed; the
//! core prepares writes when it leads, forwards them when it follows, applies what the
//! quorum committed and answers its own clients.
//!
//! - Writes: the leader prepares (zxid from the peer), proposes, and applies on commit; a
//!   follower forwards the request (with its session, cxid and the connection's identities)
//!   and answers when the txn commits here.
//! - Sessions are global: createSession and closeSession are txns; only the leader expires
//!   sessions, from its clients' requests and the touches followers send with their pings.
//! - A server that is not serving (looking, or joining a leader) closes its clients'
//!   connections; they reconnect to another server.
//! - Disk: every write the peer asks for goes through the one log writer thread, in order,
//!   and is reported back as durable in order.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use zk_proto::{ErrorCode, Id, Request, TxnEntry};
use zk_tree::prep::prep_create_session;
use zk_zab::peer::{Input, Msg, Output, Peer, Role, Write};

use super::{error_txn, wall_ms, ConnId, Core, CoreMsg, Out, Purpose};

/// The ensemble side of the core.
pub(crate) struct Replica {
    pub(crate) peer: Peer,
    net: zk_peer::Network,
    /// Where the epoch files and received snapshots go (`dataDir/version-2`).
    snap_dir: PathBuf,
    writes_issued: u64,
    /// Follower: this server's clients' writes sent to the leader, by (session, cxid).
    awaiting: HashMap<(i64, i32), Purpose>,
    /// Follower: sessions its clients used since the last ping to the leader.
    touched: HashSet<i64>,
    /// `sync` requests of this server's clients: (session, xid) -> (connection, path).
    syncs: HashMap<(i64, i32), (ConnId, String, std::time::Instant)>,
    pub(crate) role: Role,
    started: Instant,
    tree_config: zk_tree::TreeConfig,
    /// This server is an observer (`:observer`): it follows and never votes.
    pub(crate) observer: bool,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Replica {
    pub(crate) fn new(
        peer: Peer,
        net: zk_peer::Network,
        snap_dir: PathBuf,
        tree_config: zk_tree::TreeConfig,
    ) -> Replica {
        Replica {
            peer,
            net,
            snap_dir,
            writes_issued: 0,
            awaiting: HashMap::new(),
            touched: HashSet::new(),
            syncs: HashMap::new(),
            role: Role::Looking,
            started: Instant::now(),
            tree_config,
            observer: false,
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(crate) fn leading(&self) -> bool {
        matches!(self.role, Role::Leading { .. })
    }

    pub(crate) fn following(&self) -> bool {
        matches!(self.role, Role::Following { .. })
    }

    /// The server this one follows or is (when leading).
    pub(crate) fn leader_id(&self) -> Option<u64> {
        match self.role {
            Role::Leading { .. } => Some(self.peer.id()),
            Role::Following { leader, .. } => Some(leader),
            _ => None,
        }
    }

    /// ZooKeeper's `ZabState` name.
    pub(crate) fn zab_state(&self) -> &'static str {
        match self.role {
            Role::Looking => "election",
            Role::Joining { .. } => "synchronization",
            Role::Leading { .. } | Role::Following { .. } => "broadcast",
        }
    }

    /// `srvr`'s Mode.
    pub(crate) fn mode(&self) -> &'static str {
        match self.role {
            Role::Leading { .. } => "leader",
            Role::Following { .. } if self.observer => "observer",
            Role::Following { .. } => "follower",
            Role::Looking | Role::Joining { .. } => "looking",
        }
    }
}

/// What a follower forwards to its leader.
pub(crate) enum Forward {
    /// A client's `sync`: the token comes back once the leader committed everything it
    /// proposed before.
    Sync {
        token: Vec<u8>,
    },
    Write {
        auth: Vec<Id>,
        request: Request,
    },
    CreateSession {
        timeout: i32,
    },
}

fn put_str(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn encode_forward(session: i64, cxid: i32, f: &Forward) -> Vec<u8> {
    // A forwarded write carries the request whole: size the buffer for it (a 1 KiB
    // setData grew a 64-byte buffer twice).
    let capacity = match f {
        Forward::Write { auth, request } => {
            64 + request.encoded_len()
                + auth
                    .iter()
                    .map(|id| 8 + id.scheme.len() + id.id.len())
                    .sum::<usize>()
        }
        _ => 64,
    };
    let mut out = Vec::with_capacity(capacity);
    match f {
        Forward::Sync { token } => {
            out.push(2);
            out.extend_from_slice(&session.to_be_bytes());
            out.extend_from_slice(&cxid.to_be_bytes());
            out.extend_from_slice(token);
        }
        Forward::CreateSession { timeout } => {
            out.push(1);
            out.extend_from_slice(&session.to_be_bytes());
            out.extend_from_slice(&cxid.to_be_bytes());
            out.extend_from_slice(&timeout.to_be_bytes());
        }
        Forward::Write { auth, request } => {
            out.push(0);
            out.extend_from_slice(&session.to_be_bytes());
            out.extend_from_slice(&cxid.to_be_bytes());
            out.extend_from_slice(&(auth.len() as u32).to_be_bytes());
            for id in auth {
                put_str(&id.scheme, &mut out);
                put_str(&id.id, &mut out);
            }
            zk_proto::encode_request(cxid, request, &mut out);
        }
    }
    out
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode_forward(data: &[u8]) -> Option<(i64, i32, Forward)> {
    let mut c = Cursor(data);
    let tag = c.take(1)?[0];
    let session = c.i64()?;
    let cxid = c.u32()? as i32;
    match tag {
        2 => Some((
            session,
            cxid,
            Forward::Sync {
                token: c.0.to_vec(),
            },
        )),
        1 => Some((
            session,
            cxid,
            Forward::CreateSession {
                timeout: c.u32()? as i32,
            },
        )),
        0 => {
            let n = c.u32()? as usize;
            let mut auth = Vec::with_capacity(n.min(16));
            for _ in 0..n {
                let scheme = c.string()?;
                let id = c.string()?;
                auth.push(Id { scheme, id });
            }
            let mut r = zk_proto::Reader::new(Bytes::copy_from_slice(c.0));
            let (_, body) = zk_proto::decode_request(&mut r).ok()?;
            Some((
                session,
                cxid,
                Forward::Write {
                    auth,
                    request: body.ok()?,
                },
            ))
        }
        _ => None,
    }
}

fn encode_touches(ids: &HashSet<i64>) -> Vec<u8> {
    let mut v: Vec<i64> = ids.iter().copied().collect();
    v.sort_unstable();
    v.iter().flat_map(|id| id.to_be_bytes()).collect()
}

fn decode_touches(data: &[u8]) -> Vec<i64> {
    data.chunks_exact(8)
        .filter_map(|c| c.try_into().ok().map(i64::from_be_bytes))
        .collect()
}

impl Core {
    /// Whether this server serves clients: standalone, or an established leader/follower.
    pub(crate) fn serving(&self) -> bool {
        self.replica
            .as_ref()
            .is_none_or(|r| r.leading() || r.following())
    }

    /// Read-only mode: an ensemble member without a leader, with `readonlymode.enabled`,
    /// serves reads to clients that accept a read-only server.
    pub fn read_only(&self) -> bool {
        self.config.read_only_enabled && !self.serving()
    }

    /// The zxid of the next txn this server prepares; `None` when it may not prepare
    /// (an ensemble member that does not lead).
    pub(crate) fn next_zxid(&mut self) -> Option<i64> {
        match &self.replica {
            None => {
                self.zxid += 1;
                Some(self.zxid)
            }
            Some(r) if r.leading() => r.peer.next_zxid().ok(),
            Some(_) => None,
        }
    }

    /// Ensemble: numbers and broadcasts a prepared txn (instead of logging it here).
    pub(super) fn propose(
        &mut self,
        zxid: i64,
        session: i64,
        prepared: super::Prepared,
        purpose: Purpose,
    ) {
        // Shared from here on by the log, the proposal to each follower and the commit.
        let txn = prepared.encode();
        let reconfig = self.pending_reconfig.take();
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        let proposed = match reconfig {
            Some(q) => r.peer.propose_reconfig(txn, q, &mut out),
            None => r.peer.propose(txn, &mut out),
        };
        match proposed {
            Ok(z) if z == zxid => {}
            Ok(z) => {
                tracing::error!(
                    prepared = format_args!("{zxid:#x}"),
                    proposed = format_args!("{z:#x}"),
                    "proposal numbered differently from its preparation"
                );
            }
            Err(e) => {
                tracing::warn!(error = ?e, "cannot propose");
                return;
            }
        }
        self.track_inflight(zxid, session, prepared, purpose);
        self.replica_outputs(out);
    }

    /// Follower: sends a client's write or new session to the leader; the answer comes
    /// when it commits here.
    pub(super) fn forward(&mut self, session: i64, cxid: i32, f: Forward, purpose: Purpose) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let data = encode_forward(session, cxid, &f);
        let mut out = Vec::new();
        if r.peer.forward(data, &mut out) {
            r.awaiting.insert((session, cxid), purpose);
        }
        self.replica_outputs(out);
    }

    /// A follower noted a session its client used (reported with the next ping).
    pub(crate) fn touched(&mut self, session: i64) {
        if let Some(r) = self.replica.as_mut() {
            if r.following() {
                r.touched.insert(session);
            }
        }
    }

    pub(crate) fn replica_event(&mut self, event: zk_peer::Event) {
        let input = match event {
            zk_peer::Event::Msg { from, msg } => Input::Msg { from, msg },
            zk_peer::Event::LinkUp { peer } => Input::LinkUp { peer },
            zk_peer::Event::LinkDown { peer } => Input::LinkDown { peer },
        };
        self.replica_step(input);
    }

    pub(crate) fn replica_tick(&mut self) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let now = r.now_ms();
        let mut out = Vec::new();
        r.peer.step(Input::Tick { now }, &mut out);
        if r.following() && !r.touched.is_empty() {
            let payload = encode_touches(&r.touched);
            r.touched.clear();
            r.peer.ping_leader(payload, &mut out);
        }
        self.replica_outputs(out);
    }

    /// A disk write the peer asked for is durable (they complete in order).
    pub(crate) fn replica_durable(&mut self, seq: u64) {
        self.replica_step(Input::DiskDone { upto: seq });
    }

    fn replica_step(&mut self, input: Input) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        r.peer.step(input, &mut out);
        self.replica_outputs(out);
    }

    fn disk_done(&self, seq: u64) -> zk_log::group::Done {
        let to_core = self.to_core.clone();
        Box::new(move |result| {
            let _ = to_core.send(CoreMsg::ReplicaDurable { seq, result });
        })
    }

    fn replica_write(&mut self, w: Write) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        r.writes_issued += 1;
        let seq = r.writes_issued;
        let dir = r.snap_dir.clone();
        let following = r.following();
        // A write held back to be committed on this thread goes first, queued.
        if let Some((seq, p)) = self.replica_now.take() {
            self.queue_replica_append(seq, p);
        }
        let w = match w {
            // A follower's fsync stands between a proposal and its ack: with nothing else
            // waiting, commit it here once every output of this step is out. (A leader's
            // own fsync runs alongside the followers' round trip, which takes longer; its
            // thread has the proposals to send meanwhile.)
            Write::Append(p) if self.backlog == 0 && following => {
                self.replica_now = Some((seq, p));
                return;
            }
            w => w,
        };
        let done = self.disk_done(seq);
        let result = match w {
            Write::AcceptedEpoch(e) => {
                self.writer
                    .write_epoch(dir, zk_log::epoch::ACCEPTED_EPOCH, i64::from(e), done)
            }
            Write::CurrentEpoch(e) => {
                self.writer
                    .write_epoch(dir, zk_log::epoch::CURRENT_EPOCH, i64::from(e), done)
            }
            Write::Append(p) => self.hold_log(p.zxid, p.data, done),
            Write::Truncate(zxid) => self.writer.truncate(zxid, done),
        };
        if let Err(e) = result {
            let _ = self.to_core.send(CoreMsg::ReplicaDurable {
                seq,
                result: Err(Arc::new(e)),
            });
        }
    }

    fn queue_replica_append(&mut self, seq: u64, p: zk_zab::broadcast::Proposal) {
        let done = self.disk_done(seq);
        if let Err(e) = self.hold_log(p.zxid, p.data, done) {
            let _ = self.to_core.send(CoreMsg::ReplicaDurable {
                seq,
                result: Err(Arc::new(e)),
            });
        }
    }

    /// Commits the held-back write on this thread (see [`LogWriter::commit_now`]), or
    /// queues it if the writer thread has work after all. Called once a message's
    /// outputs are all out.
    pub(crate) fn replica_commit_held(&mut self) -> bool {
        let Some((seq, p)) = self.replica_now.take() else {
            return false;
        };
        let started = std::time::Instant::now();
        match self.writer.commit_now(p.zxid, &p.data) {
            None => self.queue_replica_append(seq, p),
            Some(Ok(())) => {
                self.after_commit_now(started);
                // Every write before it is durable too: the writer had none queued.
                self.replica_durable(seq);
            }
            Some(Err(e)) => {
                let _ = self.to_core.send(CoreMsg::ReplicaDurable {
                    seq,
                    result: Err(e),
                });
            }
        }
        true
    }

    pub(crate) fn replica_outputs(&mut self, out: Vec<Output>) {
        for o in out {
            match o {
                Output::Send { to, msg } => {
                    if let Some(r) = &self.replica {
                        r.net.send(to, &msg);
                    }
                }
                Output::Write(w) => self.replica_write(w),
                Output::SendSnapshot { to } => {
                    let state = zk_log::snapfile::encode_snapshot(&self.tree);
                    let zxid = self.tree.last_processed_zxid();
                    if let Some(r) = &self.replica {
                        r.net.send(to, &Msg::Snap { zxid, state });
                    }
                }
                Output::InstallSnapshot { zxid, state } => self.install_snapshot(zxid, state),
                Output::Commit(p) => self.commit(p.zxid, p.data),
                Output::Request { from, data } => self.remote_request(from, &data),
                Output::Pinged { from, payload } => {
                    let now = self.now_ms();
                    for id in decode_touches(&payload) {
                        let _ = self.sessions.touch_from(id, now, from);
                    }
                }
                Output::Role(role) => self.role_changed(role),
                Output::SyncDone { token } => self.sync_done(&token),
                Output::ReadReady { token } => self.barrier_done(token, true),
                Output::ReadFailed { token } => self.barrier_done(token, false),
                Output::Synced { to, kind } => {
                    tracing::info!(follower = to, sync = ?kind, "syncing a follower");
                }
                Output::Abandoned(why) => tracing::info!(reason = why, "looking for a leader"),
                // zkd does not propose reconfigurations yet, so none commits and no peer has
                // a newer configuration to send.
                Output::ConfigChanged(m) => self.config_changed(&m),
                Output::Violation(what) => {
                    tracing::error!(problem = what, "replication protocol violation")
                }
            }
        }
    }

    fn install_snapshot(&mut self, zxid: i64, state: Vec<u8>) {
        // A write held back to be committed on this thread goes first, queued.
        if let Some((seq, p)) = self.replica_now.take() {
            self.queue_replica_append(seq, p);
        }
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        r.writes_issued += 1;
        let seq = r.writes_issued;
        let dir = r.snap_dir.clone();
        let config = r.tree_config.clone();
        let bytes = Bytes::from(state);
        let name = dir.join(zk_log::snapfile::snapshot_file_name(zxid));
        match zk_log::snapfile::decode_snapshot(&name, bytes.clone(), config) {
            Ok(loaded) => {
                let mut tree = loaded.tree;
                tree.set_last_processed_zxid(zxid);
                tracing::info!(
                    zxid = format_args!("{zxid:#x}"),
                    znodes = tree.node_count(),
                    "installing the leader's snapshot"
                );
                self.tree = tree;
                // The journal starts again from the snapshot: a client that missed
                // changes before it falls back to ZooKeeper's behaviour.
                self.tree
                    .enable_journal(self.config.watch_catchup_retain_txns);
                self.pending = Default::default();
                let now = self.now_ms();
                let known: Vec<i64> = self.sessions.iter().map(|s| s.id).collect();
                for id in known {
                    if !self.tree.sessions().contains_key(&id) {
                        self.sessions.remove(id);
                    }
                }
                for (&id, &timeout) in self.tree.sessions() {
                    self.sessions.add(id, timeout, now);
                }
            }
            Err(e) => tracing::error!(error = %e, "the leader's snapshot does not decode"),
        }
        let done = self.disk_done(seq);
        if let Err(e) = self.writer.install_snapshot(dir, zxid, bytes, done) {
            let _ = self.to_core.send(CoreMsg::ReplicaDurable {
                seq,
                result: Err(Arc::new(e)),
            });
        }
    }

    /// Prepares a reconfiguration (ZooKeeper's PrepRequestProcessor rules): enabled,
    /// WRITE on /zookeeper/config (superusers, or skipACL), no other one in flight, the
    /// expected version if one is given, and a quorum of the new voters synced now. The txn
    /// sets /zookeeper/config to the new servers and `version=<its zxid>`.
    pub(super) fn prep_reconfig(
        &mut self,
        session: i64,
        cxid: i32,
        auth: &[Id],
        r: &zk_proto::ReconfigRequest,
        zxid: i64,
        time: i64,
    ) -> super::Prepared {
        let err = |code| error_txn(session, cxid, zxid, time, code);
        if !self.config.reconfig_enabled {
            return err(ErrorCode::ReconfigDisabled);
        }
        let acl = self.tree.acl(super::CONFIG_NODE).unwrap_or_default();
        if !zk_tree::acl::check_acl(&self.tree.config().auth, &acl, zk_proto::perms::WRITE, auth) {
            return err(ErrorCode::NoAuth);
        }
        let Some(rep) = self.replica.as_ref() else {
            return err(ErrorCode::ReconfigDisabled);
        };
        if !self.config.groups.is_empty() {
            // The new configuration would be a plain majority: refuse rather than drop
            // the groups silently.
            tracing::warn!("reconfig of a hierarchical (group.N) ensemble is not supported yet");
            return err(ErrorCode::BadArguments);
        }
        if rep.peer.reconfig_in_flight() {
            return err(ErrorCode::ReconfigInProgress);
        }
        let version = rep.peer.membership().version;
        if r.cur_config_id != -1 && r.cur_config_id != version {
            return err(ErrorCode::BadVersion);
        }
        let specs = |list: &str| -> Option<Vec<crate::config::ServerSpec>> {
            list.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    let (k, v) = s.split_once('=')?;
                    let id = k.trim().strip_prefix("server.")?.parse().ok()?;
                    crate::config::ServerSpec::parse(id, v).ok()
                })
                .collect()
        };
        let mut servers = self.config.servers.clone();
        match r.new_members.as_deref().filter(|m| !m.is_empty()) {
            Some(members) => match specs(members) {
                Some(s) => servers = s,
                None => return err(ErrorCode::BadArguments),
            },
            None => {
                if let Some(leaving) = r.leaving_servers.as_deref() {
                    for id in leaving.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let Ok(id) = id.parse::<u64>() else {
                            return err(ErrorCode::BadArguments);
                        };
                        servers.retain(|s| s.id != id);
                    }
                }
                if let Some(joining) = r.joining_servers.as_deref() {
                    let Some(new) = specs(joining) else {
                        return err(ErrorCode::BadArguments);
                    };
                    for n in new {
                        servers.retain(|s| s.id != n.id);
                        servers.push(n);
                    }
                }
            }
        }
        servers.sort_by_key(|s| s.id);
        let voters: Vec<u64> = servers
            .iter()
            .filter(|s| !s.observer)
            .map(|s| s.id)
            .collect();
        if voters.is_empty() {
            return err(ErrorCode::BadArguments);
        }
        let quorum = zk_zab::quorum::Quorum::majority(voters);
        let mut synced: std::collections::BTreeSet<u64> =
            rep.peer.synced_followers().into_iter().collect();
        synced.insert(rep.peer.id());
        if !quorum.contains_quorum(&synced) {
            return err(ErrorCode::NewConfigNoQuorum);
        }
        let text = crate::config::config_text(&servers, zxid);
        self.pending_reconfig = Some(quorum);
        super::Prepared {
            header: zk_proto::TxnHeader {
                client_id: session,
                cxid,
                zxid,
                time,
                r#type: zk_proto::OpCode::Reconfig.code(),
            },
            body: zk_proto::TxnBody::Reconfig(zk_proto::SetDataTxn {
                path: super::CONFIG_NODE.to_owned(),
                data: Some(Bytes::from(text)),
                version: -1,
            }),
            error: None,
        }
    }

    /// The configuration in /zookeeper/config now: servers and version.
    fn tree_config(&self) -> Option<(Vec<crate::config::ServerSpec>, i64)> {
        let data = self.tree.data(super::CONFIG_NODE).flatten()?;
        crate::config::parse_config_text(&String::from_utf8_lossy(data)).ok()
    }

    /// A reconfiguration was applied to the tree: it is in force here from now on.
    fn reconfigured(&mut self) {
        let Some((servers, version)) = self.tree_config() else {
            tracing::error!("a committed reconfiguration does not parse");
            return;
        };
        let m = zk_zab::peer::Membership {
            version,
            quorum: zk_zab::quorum::Quorum::majority(
                servers.iter().filter(|s| !s.observer).map(|s| s.id),
            ),
            members: servers.iter().map(|s| s.id).collect(),
        };
        let mut out = Vec::new();
        if let Some(r) = self.replica.as_mut() {
            r.peer.apply_config(m, &mut out);
        }
        self.replica_outputs(out);
    }

    /// The configuration in force changed: when /zookeeper/config holds it (with the
    /// servers' addresses), it becomes this server's view, is written to the data
    /// directory for restarts, and the links follow it.
    fn config_changed(&mut self, m: &zk_zab::peer::Membership) {
        match self.tree_config() {
            Some((servers, version)) if version == m.version => {
                tracing::info!(
                    version = format_args!("{version:#x}"),
                    servers = servers.len(),
                    "new ensemble configuration in force"
                );
                let me = u64::from(self.config.server_id);
                let members = crate::member::peer_members(&servers, me);
                if let Some(r) = &self.replica {
                    r.net.set_members(members);
                }
                self.config.servers = servers;
                let path = crate::member::dynamic_file(&self.config);
                let text = self
                    .tree
                    .data(super::CONFIG_NODE)
                    .flatten()
                    .map(|d| d.to_vec())
                    .unwrap_or_default();
                if let Err(e) = std::fs::write(&path, text) {
                    tracing::error!(file = %path.display(), error = %e, "cannot save the configuration");
                }
            }
            _ => tracing::info!(
                version = format_args!("{:#x}", m.version),
                "adopted a newer configuration from a peer"
            ),
        }
    }

    /// A txn the quorum committed: apply it and answer its client if it is ours.
    fn commit(&mut self, zxid: i64, data: Bytes) {
        // The leader prepared its own proposals: no need to decode them again.
        let (header, body, purpose) = match self.inflight.remove(&zxid) {
            Some(i) => (i.prepared.header, i.prepared.body, Some(i.purpose)),
            None => {
                let entry = match TxnEntry::decode(data) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::error!(zxid = format_args!("{zxid:#x}"), error = %e, "committed txn does not decode");
                        return;
                    }
                };
                let key = (entry.header.client_id, entry.header.cxid);
                let purpose = self.replica.as_mut().and_then(|r| r.awaiting.remove(&key));
                (entry.header, entry.body, purpose)
            }
        };
        let purpose = purpose.filter(|p| !matches!(p, Purpose::Remote));
        let leading = self.replica.as_ref().is_some_and(|r| r.leading());
        if leading {
            zk_log::failpoint::hit("leader.before_commit");
        }
        self.apply_committed(header.client_id, &header, &body, purpose);
        if leading {
            zk_log::failpoint::hit("leader.after_commit");
        }
        if let zk_proto::TxnBody::Reconfig(_) = &body {
            self.reconfigured();
        }
    }

    /// Leader: a follower's client's write or new session.
    fn remote_request(&mut self, from: u64, data: &[u8]) {
        let Some((session, cxid, f)) = decode_forward(data) else {
            tracing::warn!(follower = from, "malformed forwarded request");
            return;
        };
        if let Forward::Sync { token } = f {
            let mut out = Vec::new();
            if let Some(r) = self.replica.as_mut() {
                r.peer.sync(from, token, &mut out);
            }
            self.replica_outputs(out);
            return;
        }
        let Some(zxid) = self.next_zxid() else {
            return;
        };
        let time = wall_ms();
        let prepared = match f {
            Forward::Sync { .. } => return,
            Forward::CreateSession { timeout } => {
                prep_create_session(session, cxid, timeout, zxid, time)
            }
            Forward::Write { auth, request } => {
                // Session 0 is the servers' own (a follower's web console writes).
                if !matches!(request, Request::CloseSession)
                    && session != 0
                    && self.sessions.check(session).is_err()
                {
                    error_txn(session, cxid, zxid, time, ErrorCode::SessionExpired)
                } else {
                    if matches!(request, Request::CloseSession) {
                        self.sessions.set_closing(session);
                    }
                    self.prep_write(session, cxid, &auth, &request, zxid, time)
                }
            }
        };
        self.propose(zxid, session, prepared, Purpose::Remote);
    }

    fn role_changed(&mut self, role: Role) {
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        let before = r.role;
        r.role = role;
        tracing::info!(role = ?role, "ensemble role");
        let was_serving = matches!(before, Role::Leading { .. } | Role::Following { .. });
        let serving = matches!(role, Role::Leading { .. } | Role::Following { .. });
        if serving && !was_serving && !self.read_only_sessions.is_empty() {
            // Back with a quorum: the read-only clients reconnect and get read-write
            // sessions; their local sessions end here.
            tracing::info!("leaving read-only mode");
            self.close_all_connections();
            for id in std::mem::take(&mut self.read_only_sessions) {
                self.sessions.remove(id);
                self.by_session.remove(&id);
            }
        }
        match role {
            Role::Leading { .. } => {
                // Every session gets a full timeout under the new leader.
                let now = self.now_ms();
                for (&id, &timeout) in self.tree.sessions() {
                    self.sessions.add(id, timeout, now);
                }
                self.pending = Default::default();
            }
            Role::Following { .. } => {}
            Role::Looking | Role::Joining { .. } => {
                if matches!(before, Role::Leading { .. } | Role::Following { .. }) {
                    self.stop_serving();
                }
            }
        }
    }

    fn close_all_connections(&mut self) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.send(conn, Out::Close);
        }
    }

    /// Not serving any more: every client connection is closed (they reconnect elsewhere)
    /// and what they waited for is forgotten.
    fn stop_serving(&mut self) {
        self.close_all_connections();
        self.inflight.clear();
        self.queues.clear();
        self.pending = Default::default();
        if let Some(r) = self.replica.as_mut() {
            r.awaiting.clear();
            r.touched.clear();
            r.syncs.clear();
        }
    }

    /// A client's `sync`: answered once this server has applied everything the leader had
    /// proposed when the sync reached it. Later requests of the session wait behind it.
    pub(crate) fn replica_sync(&mut self, conn: ConnId, session: i64, xid: i32, path: String) {
        let mut token = Vec::with_capacity(12);
        token.extend_from_slice(&session.to_be_bytes());
        token.extend_from_slice(&xid.to_be_bytes());
        self.queues
            .entry(session)
            .or_default()
            .push_back(super::Queued::Write { cxid: xid });
        let Some(r) = self.replica.as_mut() else {
            return;
        };
        r.syncs
            .insert((session, xid), (conn, path, std::time::Instant::now()));
        let mut out = Vec::new();
        if r.leading() {
            let me = r.peer.id();
            r.peer.sync(me, token, &mut out);
        } else {
            let data = encode_forward(session, xid, &Forward::Sync { token });
            r.peer.forward(data, &mut out);
        }
        self.replica_outputs(out);
    }

    fn sync_done(&mut self, token: &[u8]) {
        let mut c = Cursor(token);
        let (Some(session), Some(xid)) = (c.i64(), c.u32()) else {
            return;
        };
        let xid = xid as i32;
        let Some((conn, path, asked)) = self
            .replica
            .as_mut()
            .and_then(|r| r.syncs.remove(&(session, xid)))
        else {
            return;
        };
        self.intro.sync_time.record(asked.elapsed());
        let body = zk_proto::Response::Sync(zk_proto::SyncResponse { path });
        let f = super::reply_frame(xid, self.tree.last_processed_zxid(), 0, &body);
        self.finish_write(session, xid);
        self.send(conn, Out::Frame(f));
        self.drain(session);
    }

    /// Hands leadership to server `to` (this server must lead and `to` be a synced voter).
    pub(crate) fn hand_off(&mut self, to: u64) -> Result<(), String> {
        let Some(r) = self.replica.as_mut() else {
            return Err("a standalone server has no ensemble".into());
        };
        let mut out = Vec::new();
        let result = r.peer.hand_off(to, &mut out);
        self.replica_outputs(out);
        match result {
            Ok(()) => {
                tracing::info!(to, "handing leadership over");
                Ok(())
            }
            Err(zk_zab::peer::HandoffError::NotLeader) => {
                Err("this server is not the leader".into())
            }
            Err(zk_zab::peer::HandoffError::NotAFollower) => {
                Err(format!("server {to} is not a synced voting follower"))
            }
        }
    }

    /// The snapshot being written holds everything up to `zxid`: the peer's in-memory log
    /// before it is not needed for syncing followers any more.
    pub(crate) fn compact(&mut self, zxid: i64) {
        if let Some(r) = self.replica.as_mut() {
            r.peer.compact(zxid);
        }
    }
}
