//! `zkcli compat`: a compatibility oracle. It replays one workload (generated from a seed,
//! or recorded earlier) against two servers, for example Apache ZooKeeper and zkd, and
//! prints every difference in replies, error codes, Stat fields and watch events, so a user
//! can check a migration before making it.
//!
//! ```text
//! zkcli compat --a HOST:PORT --b HOST:PORT [--seed N] [--steps N] [--root PATH]
//!              [--allowlist FILE] [--record FILE] [--replay FILE] [--json]
//! ```
//!
//! Both runs use this client, three sessions each, under `--root` (deleted first). Values
//! that legitimately differ between two servers are normalised before comparing:
//! - zxids (czxid, mzxid, pzxid) become `z1`, `z2`, ... in the order each run first saw them,
//!   so equalities and order are compared, not the servers' counters;
//! - ctime and mtime are dropped (wall clocks);
//! - session ids (ephemeralOwner, getEphemerals' owner) become the session's name (`A1`,
//!   `B1`, `C1`; `A2` after A reconnects);
//! - getChildren and getEphemerals lists are sorted (ZooKeeper answers in hash order).
//!
//! After each step every session makes a round trip, so the watch events a step caused
//! have arrived; they are compared per session, in order. The exit status is 0 when every
//! difference is allowed by the allowlist, 1 when one is not, 2 on a usage or connection
//! error.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use zk_client::{
    perms, well_known, Acl, AddWatchMode, Client, CreateMode, Error, EventType, Id, Op, OpResult,
    Stat, WatchedEvent,
};

/// How many sessions a workload uses (A, B, C).
pub const SESSIONS: usize = 3;

/// The user the workload authenticates as (`addauth digest`).
const USER: &str = "compat:secret";

/// ACLs a step may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AclChoice {
    /// world:anyone, all permissions.
    Open,
    /// world:anyone, read only.
    Read,
    /// auth::, all permissions (INVALIDACL without credentials).
    Creator,
    /// digest of [`USER`], all permissions.
    Digest,
    /// No entries (INVALIDACL).
    Empty,
}

impl AclChoice {
    fn acl(self) -> Vec<Acl> {
        match self {
            AclChoice::Open => well_known::open_acl_unsafe(),
            AclChoice::Read => well_known::read_acl_unsafe(),
            AclChoice::Creator => vec![Acl {
                perms: perms::ALL,
                id: Id {
                    scheme: "auth".into(),
                    id: String::new(),
                },
            }],
            AclChoice::Digest => vec![Acl {
                perms: perms::ALL,
                id: Id {
                    scheme: "digest".into(),
                    id: digest_id(USER),
                },
            }],
            AclChoice::Empty => Vec::new(),
        }
    }
}

/// `user:base64(sha1(user:password))`, ZooKeeper's digest identity.
fn digest_id(user_password: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let user = user_password.split(':').next().unwrap_or_default();
    let hash = sha1::Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// One write inside a multi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MultiStep {
    Create {
        path: String,
        data: String,
        mode: i32,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: String,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// One step of a workload: an operation by session `s` (0, 1, 2 = A, B, C). Paths are
/// relative to the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Step {
    Create {
        s: usize,
        path: String,
        data: String,
        mode: i32,
        acl: AclChoice,
        ttl: Option<i64>,
    },
    Delete {
        s: usize,
        path: String,
        version: i32,
    },
    SetData {
        s: usize,
        path: String,
        data: String,
        version: i32,
    },
    GetData {
        s: usize,
        path: String,
        watch: bool,
    },
    Exists {
        s: usize,
        path: String,
        watch: bool,
    },
    GetChildren {
        s: usize,
        path: String,
        watch: bool,
        stat: bool,
    },
    GetAcl {
        s: usize,
        path: String,
    },
    SetAcl {
        s: usize,
        path: String,
        acl: AclChoice,
        version: i32,
    },
    Multi {
        s: usize,
        ops: Vec<MultiStep>,
    },
    Sync {
        s: usize,
        path: String,
    },
    AllChildren {
        s: usize,
        path: String,
    },
    Ephemerals {
        s: usize,
        path: String,
    },
    AddWatch {
        s: usize,
        path: String,
        recursive: bool,
    },
    AddAuth {
        s: usize,
    },
    WhoAmI {
        s: usize,
    },
    /// Closes the session (its ephemerals go, its watches fire no more) and opens another.
    Reconnect {
        s: usize,
    },
}

impl Step {
    /// The step's operation name, as allowlist entries name it.
    pub fn op(&self) -> &'static str {
        match self {
            Step::Create { .. } => "create",
            Step::Delete { .. } => "delete",
            Step::SetData { .. } => "setData",
            Step::GetData { .. } => "getData",
            Step::Exists { .. } => "exists",
            Step::GetChildren { .. } => "getChildren",
            Step::GetAcl { .. } => "getAcl",
            Step::SetAcl { .. } => "setAcl",
            Step::Multi { .. } => "multi",
            Step::Sync { .. } => "sync",
            Step::AllChildren { .. } => "getAllChildrenNumber",
            Step::Ephemerals { .. } => "getEphemerals",
            Step::AddWatch { .. } => "addWatch",
            Step::AddAuth { .. } => "addauth",
            Step::WhoAmI { .. } => "whoami",
            Step::Reconnect { .. } => "reconnect",
        }
    }

    fn session(&self) -> usize {
        match self {
            Step::Create { s, .. }
            | Step::Delete { s, .. }
            | Step::SetData { s, .. }
            | Step::GetData { s, .. }
            | Step::Exists { s, .. }
            | Step::GetChildren { s, .. }
            | Step::GetAcl { s, .. }
            | Step::SetAcl { s, .. }
            | Step::Multi { s, .. }
            | Step::Sync { s, .. }
            | Step::AllChildren { s, .. }
            | Step::Ephemerals { s, .. }
            | Step::AddWatch { s, .. }
            | Step::AddAuth { s }
            | Step::WhoAmI { s }
            | Step::Reconnect { s } => *s % SESSIONS,
        }
    }

    /// A one-line description: `#12 B setData a/b v=1`.
    pub fn label(&self, i: usize) -> String {
        let who = (b'A' + self.session() as u8) as char;
        let detail = match self {
            Step::Create {
                path, mode, acl, ..
            } => format!("{path} mode={mode} acl={acl:?}"),
            Step::Delete { path, version, .. } => format!("{path} v={version}"),
            Step::SetData { path, version, .. } => format!("{path} v={version}"),
            Step::GetData { path, watch, .. } | Step::Exists { path, watch, .. } => {
                format!("{path}{}", if *watch { " watch" } else { "" })
            }
            Step::GetChildren { path, watch, .. } => {
                format!("{path}{}", if *watch { " watch" } else { "" })
            }
            Step::SetAcl {
                path, acl, version, ..
            } => format!("{path} acl={acl:?} v={version}"),
            Step::Multi { ops, .. } => format!("{} ops", ops.len()),
            Step::AddWatch {
                path, recursive, ..
            } => format!("{path}{}", if *recursive { " recursive" } else { "" }),
            Step::GetAcl { path, .. }
            | Step::Sync { path, .. }
            | Step::AllChildren { path, .. }
            | Step::Ephemerals { path, .. } => path.clone(),
            Step::AddAuth { .. } | Step::WhoAmI { .. } | Step::Reconnect { .. } => String::new(),
        };
        format!("#{i} {who} {} {detail}", self.op())
            .trim_end()
            .to_owned()
    }
}

/// A tiny deterministic PRNG (xorshift64*): the same seed gives the same workload anywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Paths the workload works on. Nodes whose ACL can deny reading live under `locked`
/// only, and no watch is set there: whether `exists` answers an unreadable node changed in
/// ZooKeeper 3.9 (ZOOKEEPER-2590), and a watch set by one server and refused by the other
/// would make every later event differ.
///
/// Persistent watches go on [`PERSISTENT`] paths only, each path with one mode, and
/// one-shot watches never do: in ZooKeeper 3.8 a session's later watch of another mode on
/// the same path replaces the earlier one, in 3.9 (and zkd) both stay (ZOOKEEPER-4466);
/// mixing them would make every later event differ.
const PATHS: &[&str] = &["a", "a/b", "a/c", "a/b/d", "e", "e/f", "s-", "a/s-"];
const LOCKED: &[&str] = &["locked", "locked/x", "locked/y"];
const PERSISTENT: &[&str] = &["", "e", "a/b"];
/// The one mode each [`PERSISTENT`] path is watched with (recursive or not).
const PERSISTENT_RECURSIVE: &[bool] = &[true, false, true];

/// Generates `steps` steps from `seed`.
pub fn generate(seed: u64, steps: usize) -> Vec<Step> {
    let mut r = Rng::new(seed);
    // A container that always keeps a child (a childless one could be reaped at a
    // different moment on each server).
    let mut out = vec![
        Step::Create {
            s: 0,
            path: "cont".into(),
            data: "c".into(),
            mode: CreateMode::Container.code(),
            acl: AclChoice::Open,
            ttl: None,
        },
        Step::Create {
            s: 0,
            path: "cont/kept".into(),
            data: String::new(),
            mode: CreateMode::Persistent.code(),
            acl: AclChoice::Open,
            ttl: None,
        },
    ];
    let data = |r: &mut Rng| -> String {
        match r.below(4) {
            0 => String::new(),
            1 => "x".into(),
            2 => format!("v{}", r.below(1000)),
            _ => "é-data".into(),
        }
    };
    let version = |r: &mut Rng| -> i32 { r.below(4) as i32 - 1 };
    while out.len() < steps {
        let s = r.below(SESSIONS as u64) as usize;
        let locked = r.chance(15);
        let path = if locked {
            r.pick(LOCKED).to_string()
        } else {
            r.pick(PATHS).to_string()
        };
        let watch = !locked && !PERSISTENT.contains(&path.as_str()) && r.chance(50);
        let step = match r.below(100) {
            0..=21 => {
                let mode = *r.pick(&[0, 0, 0, 1, 1, 2, 3, 5]);
                let acl = if locked {
                    *r.pick(&[AclChoice::Open, AclChoice::Digest, AclChoice::Creator])
                } else {
                    *r.pick(&[
                        AclChoice::Open,
                        AclChoice::Open,
                        AclChoice::Read,
                        AclChoice::Empty,
                    ])
                };
                Step::Create {
                    s,
                    path,
                    data: data(&mut r),
                    mode,
                    acl,
                    ttl: (mode == 5).then_some(60_000),
                }
            }
            22..=31 => Step::Delete {
                s,
                path,
                version: version(&mut r),
            },
            32..=43 => Step::SetData {
                s,
                path,
                data: data(&mut r),
                version: version(&mut r),
            },
            44..=53 => Step::GetData { s, path, watch },
            54..=61 => Step::Exists { s, path, watch },
            62..=69 => Step::GetChildren {
                s,
                path,
                watch,
                stat: r.chance(50),
            },
            70..=72 => Step::GetAcl { s, path },
            73..=75 => Step::SetAcl {
                s,
                path: path.clone(),
                // Never read-only on a node that may have children: the workload (and
                // its clean-up) could not delete them any more.
                acl: if locked {
                    *r.pick(&[AclChoice::Open, AclChoice::Digest])
                } else {
                    AclChoice::Open
                },
                version: version(&mut r),
            },
            76..=83 => {
                let n = 1 + r.below(3) as usize;
                let ops = (0..n)
                    .map(|_| {
                        let p = r.pick(PATHS).to_string();
                        match r.below(4) {
                            0 => MultiStep::Create {
                                path: p,
                                data: data(&mut r),
                                mode: *r.pick(&[0, 0, 1, 2]),
                            },
                            1 => MultiStep::Delete {
                                path: p,
                                version: version(&mut r),
                            },
                            2 => MultiStep::SetData {
                                path: p,
                                data: data(&mut r),
                                version: version(&mut r),
                            },
                            _ => MultiStep::Check {
                                path: p,
                                version: version(&mut r),
                            },
                        }
                    })
                    .collect();
                Step::Multi { s, ops }
            }
            84..=85 => Step::Sync { s, path },
            86..=87 => Step::AllChildren { s, path },
            88..=89 => Step::Ephemerals {
                s,
                path: r.pick(&["", "a", "e"]).to_string(),
            },
            90..=93 => {
                let i = r.below(PERSISTENT.len() as u64) as usize;
                Step::AddWatch {
                    s,
                    path: PERSISTENT[i].to_string(),
                    recursive: PERSISTENT_RECURSIVE[i],
                }
            }
            94..=95 => Step::AddAuth { s },
            96 => Step::WhoAmI { s },
            _ => Step::Reconnect { s },
        };
        out.push(step);
    }
    out
}

/// What one step did on one server, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub reply: String,
    /// The watch events each session received because of the step.
    pub events: Vec<String>,
}

/// One run's normalisation state: zxid and session names.
struct Names {
    zxids: HashMap<i64, usize>,
    sessions: HashMap<i64, String>,
}

impl Names {
    fn zxid(&mut self, z: i64) -> String {
        if z == 0 {
            return "0".into();
        }
        let next = self.zxids.len() + 1;
        format!("z{}", self.zxids.entry(z).or_insert(next))
    }

    fn owner(&self, owner: i64) -> String {
        match owner {
            0 => "-".into(),
            o if o as u64 == 0x8000_0000_0000_0000 => "container".into(),
            o if (o as u64) >> 56 == 0xff => "ttl".into(),
            o => self
                .sessions
                .get(&o)
                .cloned()
                .unwrap_or_else(|| "another session".into()),
        }
    }

    fn stat(&mut self, s: &Stat) -> String {
        format!(
            "{{czxid={} mzxid={} pzxid={} version={} cversion={} aversion={} owner={} dataLength={} numChildren={}}}",
            self.zxid(s.czxid),
            self.zxid(s.mzxid),
            self.zxid(s.pzxid),
            s.version,
            s.cversion,
            s.aversion,
            self.owner(s.ephemeral_owner),
            s.data_length,
            s.num_children
        )
    }
}

fn error_name(e: &Error) -> String {
    match e {
        Error::Code(c) => format!("{c:?}"),
        Error::BadArguments(_) => "BadArguments (refused by the client)".into(),
        Error::Marshalling(m) => format!("Marshalling: {m}"),
        Error::Closed => "Closed".into(),
    }
}

fn data_string(d: &Option<Bytes>) -> String {
    match d {
        None => "null".into(),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

fn acl_string(acl: &[Acl]) -> String {
    let mut v: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
        .collect();
    v.sort();
    format!("[{}]", v.join(", "))
}

/// One server's run: its sessions and their event streams.
struct Run {
    addr: String,
    root: String,
    clients: Vec<Client>,
    events: Vec<mpsc::UnboundedReceiver<WatchedEvent>>,
    generation: Vec<usize>,
    names: Names,
}

impl Run {
    async fn open(addr: &str, root: &str) -> Result<Run, String> {
        let mut run = Run {
            addr: addr.to_owned(),
            root: root.trim_end_matches('/').to_owned(),
            clients: Vec::new(),
            events: Vec::new(),
            generation: vec![0; SESSIONS],
            names: Names {
                zxids: HashMap::new(),
                sessions: HashMap::new(),
            },
        };
        // A fresh root, made by a session of its own. The workload's digest ACLs name its
        // user, so that user can remove whatever an earlier run left.
        run.clean(true).await?;
        for s in 0..SESSIONS {
            let (c, rx) = run.connect(s).await?;
            run.clients.push(c);
            run.events.push(rx);
        }
        Ok(run)
    }

    /// Removes the root and everything under it, as the workload's user; then recreates
    /// it when `recreate`.
    async fn clean(&self, recreate: bool) -> Result<(), String> {
        let addr = &self.addr;
        let c = Client::connect(addr)
            .await
            .map_err(|e| format!("{addr}: cannot connect: {e}"))?;
        let result = async {
            c.add_auth("digest", USER.as_bytes())
                .await
                .map_err(|e| format!("{addr}: addauth: {e}"))?;
            crate::commands::delete_tree(&c, &self.root)
                .await
                .map_err(|e| format!("{addr}: cannot clear {}: {e}", self.root))?;
            if recreate {
                c.create(
                    &self.root,
                    Vec::new(),
                    well_known::open_acl_unsafe(),
                    CreateMode::Persistent,
                )
                .await
                .map_err(|e| format!("{addr}: cannot create {}: {e}", self.root))?;
            }
            Ok(())
        }
        .await;
        c.close().await;
        result
    }

    async fn connect(
        &mut self,
        s: usize,
    ) -> Result<(Client, mpsc::UnboundedReceiver<WatchedEvent>), String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let c = Client::builder(&self.addr)
            .session_timeout(Duration::from_secs(30))
            .default_watcher(tx)
            .connect()
            .await
            .map_err(|e| format!("{}: cannot connect: {e}", self.addr))?;
        self.generation[s] += 1;
        let name = format!("{}{}", (b'A' + s as u8) as char, self.generation[s]);
        self.names.sessions.insert(c.session_id(), name);
        Ok((c, rx))
    }

    fn abs(&self, rel: &str) -> String {
        if rel.is_empty() {
            self.root.clone()
        } else {
            format!("{}/{rel}", self.root)
        }
    }

    fn rel(&self, abs: &str) -> String {
        abs.strip_prefix(&self.root)
            .map(|p| p.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| abs.to_owned())
    }

    /// Runs one step, then waits until every session has seen what it caused.
    async fn step(&mut self, step: &Step) -> Observation {
        let reply = self.reply(step).await;
        let mut events = Vec::with_capacity(SESSIONS);
        for s in 0..SESSIONS {
            // A round trip: events caused before it arrive before its answer.
            let _ = self.clients[s].exists(&self.root).await;
            let mut seen = Vec::new();
            while let Ok(e) = self.events[s].try_recv() {
                if e.event_type == EventType::None {
                    continue;
                }
                let path = e.path.as_deref().map(|p| self.rel(p)).unwrap_or_default();
                seen.push(format!("{:?} {path}", e.event_type));
            }
            events.push(seen.join("; "));
        }
        Observation { reply, events }
    }

    async fn reply(&mut self, step: &Step) -> String {
        let c = self.clients[step.session()].clone();
        let r: Result<String, Error> = match step {
            Step::Create {
                path,
                data,
                mode,
                acl,
                ttl,
                ..
            } => {
                let mode = CreateMode::from_code(*mode).unwrap_or(CreateMode::Persistent);
                let p = self.abs(path);
                let created = match ttl {
                    Some(t) => c.create_ttl(&p, data.as_bytes(), acl.acl(), mode, *t).await,
                    None => c.create2(&p, data.as_bytes(), acl.acl(), mode).await,
                };
                created.map(|(p, stat)| format!("{} {}", self.rel(&p), self.names.stat(&stat)))
            }
            Step::Delete { path, version, .. } => c
                .delete(&self.abs(path), *version)
                .await
                .map(|()| "ok".into()),
            Step::SetData {
                path,
                data,
                version,
                ..
            } => c
                .set_data(&self.abs(path), data.as_bytes(), *version)
                .await
                .map(|s| self.names.stat(&s)),
            Step::GetData { path, watch, .. } => {
                let p = self.abs(path);
                let got = if *watch {
                    c.default_watch().get_data(&p).await
                } else {
                    c.get_data(&p).await
                };
                got.map(|(d, s)| format!("{} {}", data_string(&d), self.names.stat(&s)))
            }
            Step::Exists { path, watch, .. } => {
                let p = self.abs(path);
                let got = if *watch {
                    c.default_watch().exists(&p).await
                } else {
                    c.exists(&p).await
                };
                got.map(|s| match s {
                    Some(s) => self.names.stat(&s),
                    None => "none".into(),
                })
            }
            Step::GetChildren {
                path, watch, stat, ..
            } => {
                let p = self.abs(path);
                let got = match (*watch, *stat) {
                    (true, true) => c
                        .default_watch()
                        .get_children2(&p)
                        .await
                        .map(|(c, s)| (c, Some(s))),
                    (true, false) => c.default_watch().get_children(&p).await.map(|c| (c, None)),
                    (false, true) => c.get_children2(&p).await.map(|(c, s)| (c, Some(s))),
                    (false, false) => c.get_children(&p).await.map(|c| (c, None)),
                };
                got.map(|(mut kids, s)| {
                    kids.sort();
                    let stat = s
                        .map(|s| format!(" {}", self.names.stat(&s)))
                        .unwrap_or_default();
                    format!("[{}]{stat}", kids.join(", "))
                })
            }
            Step::GetAcl { path, .. } => c
                .get_acl(&self.abs(path))
                .await
                .map(|(acl, s)| format!("{} {}", acl_string(&acl), self.names.stat(&s))),
            Step::SetAcl {
                path, acl, version, ..
            } => c
                .set_acl(&self.abs(path), acl.acl(), *version)
                .await
                .map(|s| self.names.stat(&s)),
            Step::Multi { ops, .. } => {
                let ops = ops
                    .iter()
                    .map(|o| match o {
                        MultiStep::Create { path, data, mode } => Op::Create {
                            path: self.abs(path),
                            data: data.as_bytes().into(),
                            acl: well_known::open_acl_unsafe(),
                            mode: CreateMode::from_code(*mode).unwrap_or(CreateMode::Persistent),
                            ttl: None,
                        },
                        MultiStep::Delete { path, version } => Op::Delete {
                            path: self.abs(path),
                            version: *version,
                        },
                        MultiStep::SetData {
                            path,
                            data,
                            version,
                        } => Op::SetData {
                            path: self.abs(path),
                            data: data.as_bytes().into(),
                            version: *version,
                        },
                        MultiStep::Check { path, version } => Op::Check {
                            path: self.abs(path),
                            version: *version,
                        },
                    })
                    .collect();
                c.multi(ops).await.map(|results| {
                    let parts: Vec<String> = results
                        .iter()
                        .map(|r| match r {
                            OpResult::Create { path, stat } => format!(
                                "create {}{}",
                                self.rel(path),
                                stat.as_ref()
                                    .map(|s| format!(" {}", self.names.stat(s)))
                                    .unwrap_or_default()
                            ),
                            OpResult::Delete => "delete".into(),
                            OpResult::SetData { stat } => {
                                format!("setData {}", self.names.stat(stat))
                            }
                            OpResult::Check => "check".into(),
                            OpResult::Error(e) => format!("{e:?}"),
                        })
                        .collect();
                    format!("[{}]", parts.join("; "))
                })
            }
            Step::Sync { path, .. } => c.sync(&self.abs(path)).await.map(|()| "ok".into()),
            Step::AllChildren { path, .. } => c
                .get_all_children_number(&self.abs(path))
                .await
                .map(|n| n.to_string()),
            Step::Ephemerals { path, .. } => {
                c.get_ephemerals(&self.abs(path)).await.map(|mut v| {
                    v.sort();
                    let v: Vec<String> = v.iter().map(|p| self.rel(p)).collect();
                    format!("[{}]", v.join(", "))
                })
            }
            Step::AddWatch {
                path, recursive, ..
            } => {
                let mode = if *recursive {
                    AddWatchMode::PersistentRecursive
                } else {
                    AddWatchMode::Persistent
                };
                c.default_watch()
                    .add_watch(&self.abs(path), mode)
                    .await
                    .map(|()| "ok".into())
            }
            Step::AddAuth { .. } => c
                .add_auth("digest", USER.as_bytes())
                .await
                .map(|()| "ok".into()),
            Step::WhoAmI { .. } => c.who_am_i().await.map(|v| {
                let mut v: Vec<String> = v
                    .iter()
                    .map(|i| format!("{}:{}", i.auth_scheme, i.user))
                    .collect();
                v.sort();
                format!("[{}]", v.join(", "))
            }),
            Step::Reconnect { .. } => {
                let s = step.session();
                c.close().await;
                match self.connect(s).await {
                    Ok((c, rx)) => {
                        self.clients[s] = c;
                        self.events[s] = rx;
                        Ok("ok".into())
                    }
                    Err(e) => Ok(format!("cannot reconnect: {e}")),
                }
            }
        };
        match r {
            Ok(text) => text,
            Err(e) => error_name(&e),
        }
    }

    async fn close(self) {
        for c in &self.clients {
            c.close().await;
        }
        if let Err(e) = self.clean(false).await {
            eprintln!("zkcli compat: {e}");
        }
    }
}

/// One allowlist entry: differences of operation `op` (or `*`) whose text contains `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub op: String,
    pub text: String,
    pub reason: String,
}

/// Reads an allowlist: one entry per line, `OP TEXT  # reason`; `#` starts a comment.
pub fn parse_allowlist(text: &str) -> Result<Vec<Allowed>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let (entry, reason) = match line.split_once('#') {
            Some((e, r)) => (e.trim(), r.trim()),
            None => (line.trim(), ""),
        };
        if entry.is_empty() {
            continue;
        }
        let Some((op, text)) = entry.split_once(char::is_whitespace) else {
            return Err(format!("allowlist line {}: expected `OP TEXT`", n + 1));
        };
        out.push(Allowed {
            op: op.to_owned(),
            text: text.trim().to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(out)
}

/// A difference between the two runs at one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub step: usize,
    pub label: String,
    pub op: &'static str,
    /// `reply` or `events of B`.
    pub what: String,
    pub a: String,
    pub b: String,
    /// The allowlist entry that accepts it, if any.
    pub allowed_by: Option<String>,
}

impl Difference {
    fn text(&self) -> String {
        format!("{}: {}: a={} b={}", self.label, self.what, self.a, self.b)
    }
}

/// Compares two runs' observations of the same steps.
pub fn compare(
    steps: &[Step],
    a: &[Observation],
    b: &[Observation],
    allow: &[Allowed],
) -> Vec<Difference> {
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let (Some(oa), Some(ob)) = (a.get(i), b.get(i)) else {
            break;
        };
        let mut push = |what: String, x: &str, y: &str| {
            let mut d = Difference {
                step: i,
                label: step.label(i),
                op: step.op(),
                what,
                a: x.to_owned(),
                b: y.to_owned(),
                allowed_by: None,
            };
            let text = d.text();
            d.allowed_by = allow
                .iter()
                .find(|e| (e.op == "*" || e.op == d.op) && text.contains(&e.text))
                .map(|e| format!("{} {} # {}", e.op, e.text, e.reason));
            out.push(d);
        };
        if oa.reply != ob.reply {
            push("reply".into(), &oa.reply, &ob.reply);
        }
        for s in 0..SESSIONS {
            let (ea, eb) = (&oa.events[s], &ob.events[s]);
            if ea != eb {
                push(
                    format!("events of {}", (b'A' + s as u8) as char),
                    &format!("[{ea}]"),
                    &format!("[{eb}]"),
                );
            }
        }
    }
    out
}

/// Runs `steps` against the server at `addr`.
pub async fn observe(addr: &str, root: &str, steps: &[Step]) -> Result<Vec<Observation>, String> {
    let mut run = Run::open(addr, root).await?;
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        out.push(run.step(step).await);
    }
    run.close().await;
    Ok(out)
}

struct Args {
    a: String,
    b: String,
    seed: u64,
    steps: usize,
    root: String,
    allowlist: Option<String>,
    record: Option<String>,
    replay: Option<String>,
    json: bool,
    verbose: bool,
}

const USAGE: &str = "usage: zkcli compat --a HOST:PORT --b HOST:PORT [--seed N] [--steps N] [--root PATH] [--allowlist FILE] [--record FILE] [--replay FILE] [--json] [--verbose]";

fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        a: String::new(),
        b: String::new(),
        seed: 1,
        steps: 300,
        root: "/zkcli-compat".into(),
        allowlist: None,
        record: None,
        replay: None,
        json: false,
        verbose: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--a" => a.a = value()?,
            "--b" => a.b = value()?,
            "--seed" => {
                a.seed = value()?
                    .parse()
                    .map_err(|_| format!("--seed: a number\n{USAGE}"))?
            }
            "--steps" => {
                a.steps = value()?
                    .parse()
                    .map_err(|_| format!("--steps: a number\n{USAGE}"))?
            }
            "--root" => a.root = value()?,
            "--allowlist" => a.allowlist = Some(value()?),
            "--record" => a.record = Some(value()?),
            "--replay" => a.replay = Some(value()?),
            "--json" => a.json = true,
            "--verbose" => a.verbose = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n{USAGE}")),
        }
    }
    if a.a.is_empty() || a.b.is_empty() {
        return Err(USAGE.into());
    }
    if !a.root.starts_with('/') || a.root == "/" || a.root.starts_with("/zookeeper") {
        return Err(format!(
            "--root {}: a path of its own, not / or /zookeeper",
            a.root
        ));
    }
    Ok(a)
}

/// `zkcli compat ...`: returns the exit status.
pub async fn main(args: &[String]) -> i32 {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    let steps = match &args.replay {
        Some(f) => match std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| {
                t.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| serde_json::from_str::<Step>(l).map_err(|e| e.to_string()))
                    .collect::<Result<Vec<_>, _>>()
            }) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("zkcli compat: cannot replay {f}: {e}");
                return 2;
            }
        },
        None => generate(args.seed, args.steps),
    };
    if let Some(f) = &args.record {
        let text: String = steps
            .iter()
            .filter_map(|s| serde_json::to_string(s).ok())
            .map(|l| l + "\n")
            .collect();
        if let Err(e) = std::fs::write(f, text) {
            eprintln!("zkcli compat: cannot record to {f}: {e}");
            return 2;
        }
    }
    let allow = match &args.allowlist {
        Some(f) => match std::fs::read_to_string(f)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_allowlist(&t))
        {
            Ok(a) => a,
            Err(e) => {
                eprintln!("zkcli compat: allowlist {f}: {e}");
                return 2;
            }
        },
        None => Vec::new(),
    };
    let (oa, ob) = match (
        observe(&args.a, &args.root, &steps).await,
        observe(&args.b, &args.root, &steps).await,
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("zkcli compat: {e}");
            return 2;
        }
    };
    let diffs = compare(&steps, &oa, &ob, &allow);
    let unexpected = diffs.iter().filter(|d| d.allowed_by.is_none()).count();
    if args.json {
        let list: Vec<Value> = diffs
            .iter()
            .map(|d| {
                json!({"step": d.step, "label": d.label, "op": d.op, "what": d.what,
                       "a": d.a, "b": d.b, "allowed_by": d.allowed_by})
            })
            .collect();
        println!(
            "{}",
            json!({"a": args.a, "b": args.b, "steps": steps.len(), "differences": list,
                   "unexpected": unexpected})
        );
    } else {
        if args.verbose {
            for (i, s) in steps.iter().enumerate() {
                println!("{}  => {}", s.label(i), oa[i].reply);
            }
        }
        for d in &diffs {
            match &d.allowed_by {
                None => println!("DIFFERENT {}", d.text()),
                Some(by) => println!("allowed   {}  ({by})", d.text()),
            }
        }
        println!(
            "{} steps against {} (a) and {} (b): {} differences, {} allowed, {} unexpected",
            steps.len(),
            args.a,
            args.b,
            diffs.len(),
            diffs.len() - unexpected,
            unexpected
        );
    }
    i32::from(unexpected > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_deterministic_and_varied() {
        let a = generate(7, 400);
        assert_eq!(a, generate(7, 400));
        assert_ne!(a, generate(8, 400));
        let ops: std::collections::BTreeSet<&str> = a.iter().map(Step::op).collect();
        for op in [
            "create",
            "delete",
            "setData",
            "getData",
            "exists",
            "getChildren",
            "getAcl",
            "setAcl",
            "multi",
            "sync",
            "addWatch",
            "addauth",
            "reconnect",
        ] {
            assert!(ops.contains(op), "{op} never generated");
        }
        // Nothing that could deny a read outside `locked`, and no watch inside it.
        for s in &a {
            match s {
                Step::Create { path, acl, .. } if !path.starts_with("locked") => {
                    assert!(
                        !matches!(acl, AclChoice::Digest | AclChoice::Creator),
                        "{s:?}"
                    );
                }
                Step::GetData {
                    path, watch: true, ..
                }
                | Step::Exists {
                    path, watch: true, ..
                }
                | Step::GetChildren {
                    path, watch: true, ..
                }
                | Step::AddWatch { path, .. } => assert!(!path.starts_with("locked"), "{s:?}"),
                _ => {}
            }
        }
        // A recorded workload reads back the same.
        let line = serde_json::to_string(&a[5]).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Step>(&line).ok(), Some(a[5].clone()));
    }

    #[test]
    fn differences_are_found_and_allowed_by_the_list() {
        let steps = vec![
            Step::Exists {
                s: 1,
                path: "locked/x".into(),
                watch: false,
            },
            Step::GetData {
                s: 0,
                path: "a".into(),
                watch: true,
            },
        ];
        let obs = |r: &str, e: &str| Observation {
            reply: r.into(),
            events: vec![e.into(), String::new(), String::new()],
        };
        let a = vec![obs("{czxid=z1}", ""), obs("\"x\"", "NodeDataChanged a")];
        let b = vec![obs("NoAuth", ""), obs("\"x\"", "")];
        let allow =
            parse_allowlist("# comment\nexists NoAuth  # ZOOKEEPER-2590\n").unwrap_or_default();
        let d = compare(&steps, &a, &b, &allow);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].label, "#0 B exists locked/x");
        assert!(d[0]
            .allowed_by
            .as_deref()
            .unwrap_or_default()
            .contains("ZOOKEEPER-2590"));
        assert_eq!(d[1].what, "events of A");
        assert_eq!(d[1].allowed_by, None);
        assert!(parse_allowlist("justone\n").is_err());
    }
}
