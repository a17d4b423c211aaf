//! The handle users hold: cheap to clone, every method one ZooKeeper operation.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use zk_proto::{
    Acl, AddWatchMode, CheckVersionRequest, ClientInfo, CreateMode, CreateRequest,
    CreateTtlRequest, DeleteRequest, ErrorCode, ExistsRequest, GetAclRequest,
    GetAllChildrenNumberRequest, GetChildren2Request, GetChildrenRequest, GetDataRequest,
    GetEphemeralsRequest, MultiOp, MultiResult, ReconfigRequest, Request, Response, SetAclRequest,
    SetDataRequest, Stat, SyncRequest, WatcherType,
};

use crate::actor::{Actor, After, Command, SessionInfo, Settings};
use crate::connect_string::ConnectString;
use crate::error::{Error, Result};
use crate::watch::{Kind, OneshotWatch, PersistentWatch, Sink, WatchedEvent};
use crate::CONFIG_NODE;

/// The Java client's connection states, whose names zkCli shows in its prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Connected,
    ConnectedReadOnly,
    Closed,
    AuthFailed,
}

impl State {
    /// The Java name (`CONNECTED`, `CONNECTING`, `CLOSED`, ...).
    pub fn java_name(self) -> &'static str {
        match self {
            State::Connecting => "CONNECTING",
            State::Connected => "CONNECTED",
            State::ConnectedReadOnly => "CONNECTEDREADONLY",
            State::Closed => "CLOSED",
            State::AuthFailed => "AUTH_FAILED",
        }
    }

    /// Whether the session can still be used (it may be reconnecting).
    pub fn is_alive(self) -> bool {
        !matches!(self, State::Closed | State::AuthFailed)
    }
}

/// Znode data as sent: `None` is Java's `null`, distinct from an empty array.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Data(pub Option<Bytes>);

impl From<&[u8]> for Data {
    fn from(d: &[u8]) -> Self {
        Data(Some(Bytes::copy_from_slice(d)))
    }
}
impl<const N: usize> From<&[u8; N]> for Data {
    fn from(d: &[u8; N]) -> Self {
        Data(Some(Bytes::copy_from_slice(d)))
    }
}
impl From<&str> for Data {
    fn from(d: &str) -> Self {
        Data(Some(Bytes::copy_from_slice(d.as_bytes())))
    }
}
impl From<String> for Data {
    fn from(d: String) -> Self {
        Data(Some(Bytes::from(d.into_bytes())))
    }
}
impl From<Vec<u8>> for Data {
    fn from(d: Vec<u8>) -> Self {
        Data(Some(Bytes::from(d)))
    }
}
impl From<Bytes> for Data {
    fn from(d: Bytes) -> Self {
        Data(Some(d))
    }
}
impl From<Option<Bytes>> for Data {
    fn from(d: Option<Bytes>) -> Self {
        Data(d)
    }
}

/// One write of a [`Client::multi`] transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Create {
        path: String,
        data: Data,
        acl: Vec<Acl>,
        mode: CreateMode,
        /// Milliseconds, for the TTL modes only.
        ttl: Option<i64>,
    },
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Data,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
}

/// The outcome of one [`Op`]. When any op fails, none is applied: the failing one carries
/// its code and the others `RuntimeInconsistency` (or `Ok` for those before it), as in ZooKeeper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// `stat` is present for containers and TTL nodes (ZooKeeper answers those as create2).
    Create {
        path: String,
        stat: Option<Stat>,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    Error(ErrorCode),
}

/// One read of a [`Client::multi_read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetData(String),
    GetChildren(String),
}

/// The outcome of one [`ReadOp`]; reads fail one by one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadResult {
    Data { data: Option<Bytes>, stat: Stat },
    Children(Vec<String>),
    Error(ErrorCode),
}

/// How to connect: hosts, session timeout, read-only, session to resume, default watcher.
#[derive(Debug)]
pub struct ClientBuilder {
    connect_string: String,
    session_timeout: Duration,
    read_only: bool,
    session: Option<(i64, Bytes)>,
    default_watcher: Option<mpsc::UnboundedSender<WatchedEvent>>,
    max_frame: usize,
    tls: Option<crate::TlsOptions>,
}

impl ClientBuilder {
    /// A builder for `connect_string` (`host:port,host:port/chroot`), 30 s sessions.
    pub fn new(connect_string: &str) -> ClientBuilder {
        ClientBuilder {
            connect_string: connect_string.to_string(),
            session_timeout: Duration::from_secs(30),
            read_only: false,
            session: None,
            default_watcher: None,
            max_frame: 0xfffff + 1024,
            tls: None,
        }
    }

    /// Connect with TLS (the servers' `secureClientPort`), with this client's trust store
    /// and, for servers that ask for a certificate, key store.
    pub fn tls(mut self, options: crate::TlsOptions) -> Self {
        self.tls = Some(options);
        self
    }

    /// The session timeout to ask for; the server clamps it to its bounds.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// Accept a read-only server (one cut off from its quorum) for reads.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Resume an existing session (another client's id and password).
    pub fn session(mut self, id: i64, password: Bytes) -> Self {
        self.session = Some((id, password));
        self
    }

    /// Where session events and default-watch events go (the Java client's default watcher).
    pub fn default_watcher(mut self, tx: mpsc::UnboundedSender<WatchedEvent>) -> Self {
        self.default_watcher = Some(tx);
        self
    }

    /// The largest reply accepted (`jute.maxbuffer` on the client side).
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Starts the session task and returns at once; the client connects in the background
    /// and requests wait for it. Must be called inside a tokio runtime.
    pub fn start(self) -> Result<Client> {
        let cs = ConnectString::parse(&self.connect_string)?;
        let tls = match &self.tls {
            Some(o) => Some(crate::tls::ClientTls::new(o)?),
            None => None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(State::Connecting);
        let (id, password) = self.session.clone().unwrap_or_default();
        let (info_tx, info_rx) = watch::channel(SessionInfo {
            id,
            password,
            timeout_ms: i32::try_from(self.session_timeout.as_millis()).unwrap_or(i32::MAX),
            server: None,
        });
        let settings = Settings {
            hosts: cs.hosts,
            chroot: cs.chroot.clone(),
            session_timeout: self.session_timeout,
            read_only: self.read_only,
            max_frame: self.max_frame,
            tls,
            default_watcher: self.default_watcher,
        };
        tokio::spawn(Actor::new(settings, rx, state_tx, info_tx).run());
        Ok(Client {
            inner: Arc::new(Handle {
                tx,
                chroot: cs.chroot,
                state: state_rx,
                info: info_rx,
            }),
        })
    }

    /// Starts the client and waits until it is connected (or the session timeout passes:
    /// `ConnectionLoss`; or the session to resume is gone: `SessionExpired`).
    pub async fn connect(self) -> Result<Client> {
        let timeout = self.session_timeout;
        let client = self.start()?;
        let mut state = client.inner.state.clone();
        let wait = async {
            loop {
                match *state.borrow_and_update() {
                    State::Connected | State::ConnectedReadOnly => return Ok(()),
                    State::Closed => return Err(Error::Code(ErrorCode::SessionExpired)),
                    State::AuthFailed => return Err(Error::Code(ErrorCode::AuthFailed)),
                    State::Connecting => {}
                }
                if state.changed().await.is_err() {
                    return Err(Error::Code(ErrorCode::SessionExpired));
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Code(ErrorCode::ConnectionLoss)),
        }
    }
}

#[derive(Debug)]
struct Handle {
    tx: mpsc::UnboundedSender<Command>,
    chroot: Option<String>,
    state: watch::Receiver<State>,
    info: watch::Receiver<SessionInfo>,
}

/// A ZooKeeper session. Clones share it; it is closed by [`Client::close`] or when the last
/// clone is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// # let addr = listener.local_addr()?;
/// # let dir = std::env::temp_dir().join(format!("zk-client-doc2-{}", std::process::id()));
/// # let config = zk_server::Config { data_dir: dir.clone(), client_addr: addr, ..Default::default() };
/// # tokio::spawn(zk_server::run(config, listener, std::future::pending()));
/// use zk_client::{Client, CreateMode, well_known};
/// let zk = Client::connect(&addr.to_string()).await?;
/// zk.create("/demo", "hello", well_known::open_acl_unsafe(), CreateMode::Persistent).await?;
/// let (data, stat) = zk.get_data("/demo").await?;
/// assert_eq!(data.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(stat.version, 0);
/// # let _ = std::fs::remove_dir_all(dir);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Handle>,
}

impl Client {
    /// Connects with the default settings (see [`ClientBuilder`]).
    pub async fn connect(connect_string: &str) -> Result<Client> {
        ClientBuilder::new(connect_string).connect().await
    }

    /// A builder, for timeouts, read-only mode, resuming a session, a default watcher.
    pub fn builder(connect_string: &str) -> ClientBuilder {
        ClientBuilder::new(connect_string)
    }

    /// The current connection state.
    pub fn state(&self) -> State {
        *self.inner.state.borrow()
    }

    /// A receiver that sees every state change.
    pub fn state_changes(&self) -> watch::Receiver<State> {
        self.inner.state.clone()
    }

    /// The session id (0 before the first connection).
    pub fn session_id(&self) -> i64 {
        self.inner.info.borrow().id
    }

    /// The session password, to resume the session from another client.
    pub fn session_password(&self) -> Bytes {
        self.inner.info.borrow().password.clone()
    }

    /// The timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.inner.info.borrow().timeout_ms.max(0) as u64)
    }

    /// The server this client is (or was last) connected to.
    pub fn server(&self) -> Option<String> {
        self.inner.info.borrow().server.clone()
    }

    /// Waits for the session to be connected again, up to `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.inner.state.clone();
        let wait = async {
            loop {
                let s = *state.borrow_and_update();
                match s {
                    State::Connected | State::ConnectedReadOnly => return Ok(()),
                    State::Closed | State::AuthFailed => return Err(Error::Closed),
                    State::Connecting => {}
                }
                if state.changed().await.is_err() {
                    return Err(Error::Closed);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(Error::Code(ErrorCode::ConnectionLoss)))
    }

    fn path(&self, path: &str) -> Result<String> {
        check(path)?;
        Ok(self.server_path(path))
    }

    fn server_path(&self, path: &str) -> String {
        match &self.inner.chroot {
            Some(root) if path == "/" => root.clone(),
            Some(root) => format!("{root}{path}"),
            None => path.to_string(),
        }
    }

    fn user_path(&self, path: String) -> String {
        match &self.inner.chroot {
            Some(root) => match path.strip_prefix(root.as_str()) {
                Some("") => "/".to_string(),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                _ => path,
            },
            None => path,
        }
    }

    async fn call(&self, request: Request, after: After) -> Result<Response> {
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::Call {
                request,
                after,
                reply,
            })
            .map_err(|_| self.dead())?;
        rx.await.map_err(|_| self.dead())?
    }

    fn dead(&self) -> Error {
        match self.state() {
            State::AuthFailed => Error::Code(ErrorCode::AuthFailed),
            _ => Error::Closed,
        }
    }

    /// `create`: makes a znode and returns its actual path (sequential nodes get a suffix).
    /// Containers go out as createContainer; the TTL modes need [`Client::create_ttl`].
    pub async fn create(
        &self,
        path: &str,
        data: impl Into<Data>,
        acl: Vec<Acl>,
        mode: CreateMode,
    ) -> Result<String> {
        if mode.is_ttl() {
            return Err(Error::BadArguments("TTL modes need create_ttl".into()));
        }
        if mode.is_container() {
            return Ok(self.create2(path, data, acl, mode).await?.0);
        }
        let request = Request::Create(self.create_request(path, data, acl, mode)?);
        match self.call(request, After::Nothing).await? {
            Response::Create(r) => Ok(self.user_path(r.path)),
            other => Err(unexpected(other)),
        }
    }

    /// `create2`: like [`Client::create`], also returning the new node's Stat.
    pub async fn create2(
        &self,
        path: &str,
        data: impl Into<Data>,
        acl: Vec<Acl>,
        mode: CreateMode,
    ) -> Result<(String, Stat)> {
        if mode.is_ttl() {
            return Err(Error::BadArguments("TTL modes need create_ttl".into()));
        }
        let r = self.create_request(path, data, acl, mode)?;
        let request = if mode.is_container() {
            Request::CreateContainer(r)
        } else {
            Request::Create2(r)
        };
        self.created(request).await
    }

    /// `createTTL`: a persistent node removed once it has had no children for `ttl_ms`
    /// and was not modified (the server must have `extendedTypesEnabled`).
    pub async fn create_ttl(
        &self,
        path: &str,
        data: impl Into<Data>,
        acl: Vec<Acl>,
        mode: CreateMode,
        ttl_ms: i64,
    ) -> Result<(String, Stat)> {
        let r = self.create_request(path, data, acl, mode)?;
        let request = Request::CreateTtl(CreateTtlRequest {
            path: r.path,
            data: r.data,
            acl: r.acl,
            flags: r.flags,
            ttl: ttl_ms,
        });
        self.created(request).await
    }

    async fn created(&self, request: Request) -> Result<(String, Stat)> {
        match self.call(request, After::Nothing).await? {
            Response::Create2(r) => Ok((self.user_path(r.path), r.stat)),
            other => Err(unexpected(other)),
        }
    }

    fn create_request(
        &self,
        path: &str,
        data: impl Into<Data>,
        acl: Vec<Acl>,
        mode: CreateMode,
    ) -> Result<CreateRequest> {
        if mode.is_sequential() {
            check(&format!("{path}1"))?;
        } else {
            check(path)?;
        }
        if acl.is_empty() {
            return Err(Error::Code(ErrorCode::InvalidAcl));
        }
        Ok(CreateRequest {
            path: self.server_path(path),
            data: data.into().0,
            acl,
            flags: mode.code(),
        })
    }

    /// `delete`, if the node's version is `version` (-1: any).
    pub async fn delete(&self, path: &str, version: i32) -> Result<()> {
        let path = self.path(path)?;
        self.call(
            Request::Delete(DeleteRequest { path, version }),
            After::Nothing,
        )
        .await
        .map(|_| ())
    }

    /// `exists`: the node's Stat, or `None`.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.exists_with(path, None).await
    }

    /// `exists` leaving a watch: fires on creation, change or deletion.
    pub async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch)> {
        let (tx, rx) = oneshot::channel();
        let stat = self.exists_with(path, Some(Sink::Once(tx))).await?;
        Ok((stat, OneshotWatch { rx }))
    }

    async fn exists_with(&self, path: &str, sink: Option<Sink>) -> Result<Option<Stat>> {
        let server_path = self.path(path)?;
        let request = Request::Exists(ExistsRequest {
            path: server_path.clone(),
            watch: sink.is_some(),
        });
        match self
            .call(request, watch_after(Kind::Data, server_path, sink))
            .await
        {
            Ok(Response::Exists(r)) => Ok(Some(r.stat)),
            Ok(other) => Err(unexpected(other)),
            Err(Error::Code(ErrorCode::NoNode)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `getData`: the data (`None` for a null array) and Stat.
    pub async fn get_data(&self, path: &str) -> Result<(Option<Bytes>, Stat)> {
        self.get_data_with(path, None).await
    }

    /// `getData` leaving a watch: fires on change or deletion.
    pub async fn get_data_watch(&self, path: &str) -> Result<(Option<Bytes>, Stat, OneshotWatch)> {
        let (tx, rx) = oneshot::channel();
        let (data, stat) = self.get_data_with(path, Some(Sink::Once(tx))).await?;
        Ok((data, stat, OneshotWatch { rx }))
    }

    async fn get_data_with(&self, path: &str, sink: Option<Sink>) -> Result<(Option<Bytes>, Stat)> {
        let server_path = self.path(path)?;
        self.get_data_raw(server_path, sink).await
    }

    async fn get_data_raw(
        &self,
        server_path: String,
        sink: Option<Sink>,
    ) -> Result<(Option<Bytes>, Stat)> {
        let request = Request::GetData(GetDataRequest {
            path: server_path.clone(),
            watch: sink.is_some(),
        });
        match self
            .call(request, watch_after(Kind::Data, server_path, sink))
            .await?
        {
            Response::GetData(r) => Ok((r.data, r.stat)),
            other => Err(unexpected(other)),
        }
    }

    /// `setData`, if the node's version is `version` (-1: any); returns the new Stat.
    pub async fn set_data(&self, path: &str, data: impl Into<Data>, version: i32) -> Result<Stat> {
        let path = self.path(path)?;
        let request = Request::SetData(SetDataRequest {
            path,
            data: data.into().0,
            version,
        });
        match self.call(request, After::Nothing).await? {
            Response::SetData(r) => Ok(r.stat),
            other => Err(unexpected(other)),
        }
    }

    /// `getACL`.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        let path = self.path(path)?;
        match self
            .call(Request::GetAcl(GetAclRequest { path }), After::Nothing)
            .await?
        {
            Response::GetAcl(r) => Ok((r.acl, r.stat)),
            other => Err(unexpected(other)),
        }
    }

    /// `setACL`, if the node's ACL version is `aversion` (-1: any).
    pub async fn set_acl(&self, path: &str, acl: Vec<Acl>, aversion: i32) -> Result<Stat> {
        let path = self.path(path)?;
        let request = Request::SetAcl(SetAclRequest {
            path,
            acl,
            version: aversion,
        });
        match self.call(request, After::Nothing).await? {
            Response::SetAcl(r) => Ok(r.stat),
            other => Err(unexpected(other)),
        }
    }

    /// `getChildren`: the children's names, unsorted as the server gives them.
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>> {
        Ok(self.children(path, None, false).await?.0)
    }

    /// `getChildren` leaving a watch: fires when a child comes or goes, or on deletion.
    pub async fn get_children_watch(&self, path: &str) -> Result<(Vec<String>, OneshotWatch)> {
        let (tx, rx) = oneshot::channel();
        let (children, _) = self.children(path, Some(Sink::Once(tx)), false).await?;
        Ok((children, OneshotWatch { rx }))
    }

    /// `getChildren2`: the children and the parent's Stat.
    pub async fn get_children2(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        let (c, s) = self.children(path, None, true).await?;
        Ok((c, s.unwrap_or_default()))
    }

    async fn children(
        &self,
        path: &str,
        sink: Option<Sink>,
        with_stat: bool,
    ) -> Result<(Vec<String>, Option<Stat>)> {
        let server_path = self.path(path)?;
        let watch = sink.is_some();
        let request = if with_stat {
            Request::GetChildren2(GetChildren2Request {
                path: server_path.clone(),
                watch,
            })
        } else {
            Request::GetChildren(GetChildrenRequest {
                path: server_path.clone(),
                watch,
            })
        };
        match self
            .call(request, watch_after(Kind::Child, server_path, sink))
            .await?
        {
            Response::GetChildren(r) => Ok((r.children, None)),
            Response::GetChildren2(r) => Ok((r.children, Some(r.stat))),
            other => Err(unexpected(other)),
        }
    }

    /// `getAllChildrenNumber`: how many nodes lie under `path`, at any depth.
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32> {
        let path = self.path(path)?;
        match self
            .call(
                Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path }),
                After::Nothing,
            )
            .await?
        {
            Response::GetAllChildrenNumber(r) => Ok(r.total_number),
            other => Err(unexpected(other)),
        }
    }

    /// `getEphemerals`: this session's ephemeral nodes whose path starts with `prefix`.
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix_path = self.path(prefix)?;
        match self
            .call(
                Request::GetEphemerals(GetEphemeralsRequest { prefix_path }),
                After::Nothing,
            )
            .await?
        {
            Response::GetEphemerals(r) => Ok(r.ephemerals),
            other => Err(unexpected(other)),
        }
    }

    /// `sync`: the server catches up with the leader before answering later reads.
    pub async fn sync(&self, path: &str) -> Result<()> {
        let path = self.path(path)?;
        self.call(Request::Sync(SyncRequest { path }), After::Nothing)
            .await
            .map(|_| ())
    }

    /// `multi`: all the writes or none. The per-op results say which op failed and why.
    pub async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>> {
        let mut wire = Vec::with_capacity(ops.len());
        for op in ops {
            wire.push(match op {
                Op::Create {
                    path,
                    data,
                    acl,
                    mode,
                    ttl,
                } => {
                    let r = self.create_request(&path, data, acl, mode)?;
                    if mode.is_ttl() {
                        MultiOp::CreateTtl(CreateTtlRequest {
                            path: r.path,
                            data: r.data,
                            acl: r.acl,
                            flags: r.flags,
                            ttl: ttl.unwrap_or(0),
                        })
                    } else if mode.is_container() {
                        MultiOp::CreateContainer(r)
                    } else {
                        MultiOp::Create(r)
                    }
                }
                Op::Delete { path, version } => MultiOp::Delete(DeleteRequest {
                    path: self.path(&path)?,
                    version,
                }),
                Op::SetData {
                    path,
                    data,
                    version,
                } => MultiOp::SetData(SetDataRequest {
                    path: self.path(&path)?,
                    data: data.0,
                    version,
                }),
                Op::Check { path, version } => MultiOp::Check(CheckVersionRequest {
                    path: self.path(&path)?,
                    version,
                }),
            });
        }
        match self.call(Request::Multi(wire), After::Nothing).await? {
            Response::Multi(results) => Ok(results
                .into_iter()
                .map(|r| match r {
                    MultiResult::Create(c) => OpResult::Create {
                        path: self.user_path(c.path),
                        stat: None,
                    },
                    MultiResult::Create2 { response, .. } => OpResult::Create {
                        path: self.user_path(response.path),
                        stat: Some(response.stat),
                    },
                    MultiResult::Delete => OpResult::Delete,
                    MultiResult::SetData(s) => OpResult::SetData { stat: s.stat },
                    MultiResult::Check => OpResult::Check,
                    MultiResult::Error(e) => {
                        OpResult::Error(ErrorCode::from_code(e).unwrap_or(ErrorCode::SystemError))
                    }
                    MultiResult::GetData(_) | MultiResult::GetChildren(_) => {
                        OpResult::Error(ErrorCode::MarshallingError)
                    }
                })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// `multiRead`: several reads in one round trip; each succeeds or fails alone.
    pub async fn multi_read(&self, ops: Vec<ReadOp>) -> Result<Vec<ReadResult>> {
        let mut wire = Vec::with_capacity(ops.len());
        for op in ops {
            wire.push(match op {
                ReadOp::GetData(p) => MultiOp::GetData(GetDataRequest {
                    path: self.path(&p)?,
                    watch: false,
                }),
                ReadOp::GetChildren(p) => MultiOp::GetChildren(GetChildrenRequest {
                    path: self.path(&p)?,
                    watch: false,
                }),
            });
        }
        match self.call(Request::MultiRead(wire), After::Nothing).await? {
            Response::Multi(results) => Ok(results
                .into_iter()
                .map(|r| match r {
                    MultiResult::GetData(d) => ReadResult::Data {
                        data: d.data,
                        stat: d.stat,
                    },
                    MultiResult::GetChildren(c) => ReadResult::Children(c.children),
                    MultiResult::Error(e) => {
                        ReadResult::Error(ErrorCode::from_code(e).unwrap_or(ErrorCode::SystemError))
                    }
                    _ => ReadResult::Error(ErrorCode::MarshallingError),
                })
                .collect()),
            other => Err(unexpected(other)),
        }
    }

    /// `addWatch`: a watch that stays after firing; recursive ones cover the whole subtree
    /// (created, deleted and data-changed events, never children-changed).
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<PersistentWatch> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.add_watch_with(path, mode, Sink::Stream(tx)).await?;
        Ok(PersistentWatch { rx })
    }

    async fn add_watch_with(&self, path: &str, mode: AddWatchMode, sink: Sink) -> Result<()> {
        let server_path = self.path(path)?;
        let kind = match mode {
            AddWatchMode::Persistent => Kind::Persistent,
            AddWatchMode::PersistentRecursive => Kind::Recursive,
        };
        let request = Request::AddWatch(zk_proto::AddWatchRequest {
            path: server_path.clone(),
            mode: mode.code(),
        });
        self.call(request, watch_after(kind, server_path, Some(sink)))
            .await
            .map(|_| ())
    }

    /// `removeWatches`: removes this session's watches of `wtype` on `path`; the removed
    /// watchers get a `*WatchRemoved` event. `local`: without asking the server (for use
    /// while disconnected). `NoWatcher` when there is none.
    pub async fn remove_watches(&self, path: &str, wtype: WatcherType, local: bool) -> Result<()> {
        let path = self.path(path)?;
        let (reply, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Command::RemoveWatches {
                path,
                wtype,
                local,
                reply,
            })
            .map_err(|_| self.dead())?;
        rx.await.map_err(|_| self.dead())?
    }

    /// `checkWatches`: asks the server whether this session has watches of `wtype` on `path`.
    pub async fn check_watches(&self, path: &str, wtype: WatcherType) -> Result<()> {
        let path = self.path(path)?;
        let request = Request::CheckWatches(zk_proto::CheckWatchesRequest {
            path,
            r#type: wtype.code(),
        });
        self.call(request, After::Nothing).await.map(|_| ())
    }

    /// `auth`: adds credentials (`digest` with `user:password`, `ip`, ...) to the session;
    /// they are sent again after each reconnect. A scheme the server refuses ends the
    /// session with `AuthFailed`, as in ZooKeeper. The packet is queued when this is
    /// called, so requests made afterwards go out after it even if the future is not
    /// awaited first.
    pub fn add_auth(
        &self,
        scheme: &str,
        auth: impl Into<Data>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .inner
            .tx
            .send(Command::Auth {
                scheme: scheme.to_string(),
                auth: auth.into().0,
                reply,
            })
            .map_err(|_| self.dead());
        let dead = self.dead();
        async move {
            sent?;
            rx.await.map_err(|_| dead)?
        }
    }

    /// `whoAmI`: the identities the server holds for this session.
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>> {
        match self.call(Request::WhoAmI, After::Nothing).await? {
            Response::WhoAmI(r) => Ok(r.client_info),
            other => Err(unexpected(other)),
        }
    }

    /// The ensemble configuration (`/zookeeper/config`, outside any chroot).
    pub async fn get_config(&self) -> Result<(Option<Bytes>, Stat)> {
        self.get_data_raw(CONFIG_NODE.to_string(), None).await
    }

    /// `reconfig`: incremental (`joining` / `leaving`, comma-separated) or a whole new
    /// member list; `from_config` is the config version expected (-1: any).
    pub async fn reconfig(
        &self,
        joining: Option<&str>,
        leaving: Option<&str>,
        new_members: Option<&str>,
        from_config: i64,
    ) -> Result<(Option<Bytes>, Stat)> {
        let request = Request::Reconfig(ReconfigRequest {
            joining_servers: joining.map(str::to_string),
            leaving_servers: leaving.map(str::to_string),
            new_members: new_members.map(str::to_string),
            cur_config_id: from_config,
        });
        match self.call(request, After::Nothing).await? {
            Response::Reconfig(r) => Ok((r.data, r.stat)),
            other => Err(unexpected(other)),
        }
    }

    /// Reads and watches that leave the builder's default watcher instead of returning a
    /// watch (the Java client's `watch = true`); zkCli's `-w` flags use this.
    pub fn default_watch(&self) -> DefaultWatch<'_> {
        DefaultWatch { client: self }
    }

    /// Ends the session: the server deletes its ephemeral nodes at once.
    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.inner.tx.send(Command::Close { reply }).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
    }
}

/// See [`Client::default_watch`].
#[derive(Debug)]
pub struct DefaultWatch<'a> {
    client: &'a Client,
}

impl DefaultWatch<'_> {
    /// `getData` with the default watcher.
    pub async fn get_data(&self, path: &str) -> Result<(Option<Bytes>, Stat)> {
        self.client.get_data_with(path, Some(Sink::Default)).await
    }

    /// `exists` with the default watcher.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.client.exists_with(path, Some(Sink::Default)).await
    }

    /// `getChildren` with the default watcher.
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>> {
        Ok(self
            .client
            .children(path, Some(Sink::Default), false)
            .await?
            .0)
    }

    /// `getChildren2` with the default watcher.
    pub async fn get_children2(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        let (c, s) = self
            .client
            .children(path, Some(Sink::Default), true)
            .await?;
        Ok((c, s.unwrap_or_default()))
    }

    /// The configuration node with the default watcher.
    pub async fn get_config(&self) -> Result<(Option<Bytes>, Stat)> {
        self.client
            .get_data_raw(CONFIG_NODE.to_string(), Some(Sink::Default))
            .await
    }

    /// `addWatch` delivering to the default watcher.
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<()> {
        self.client.add_watch_with(path, mode, Sink::Default).await
    }
}

fn watch_after(kind: Kind, path: String, sink: Option<Sink>) -> After {
    match sink {
        Some(sink) => After::Watch { kind, path, sink },
        None => After::Nothing,
    }
}

/// Refuses a bad path before sending it, with the Java client's message.
fn check(path: &str) -> Result<()> {
    match zk_proto::path::java_message(path) {
        Some(message) => Err(Error::BadArguments(message)),
        None => Ok(()),
    }
}

fn unexpected(r: Response) -> Error {
    Error::Marshalling(format!("unexpected reply {r:?}"))
}
