//! Carries [`zk_zab::peer::Msg`] between ensemble members over gRPC (`proto/zk_peer.proto`):
//! one bidirectional stream per pair of servers, which is FIFO both ways, as Zab needs. The
//! server with the higher id dials the lower one and keeps redialling; the first frame each
//! way is a `Hello` naming the server and the ensemble.
//!
//! The host gets [`Event`]s: messages, and `LinkDown` whenever a link breaks (everything in
//! flight on it is lost; Zab resynchronises). Messages sent while there is no link are
//! dropped, which the protocol tolerates (it resends what matters or times out).
//!
//! I/O lives here and only here: zk-zab stays pure.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use zk_zab::broadcast::{self, Proposal};
use zk_zab::discovery;
use zk_zab::election::{Notification, PeerState, Vote};
use zk_zab::peer::{Membership, Msg};
use zk_zab::quorum::Quorum;
use zk_zab::ServerId;

pub mod fuzzing;

/// The generated protobuf types and gRPC service.
#[allow(missing_debug_implementations, clippy::all)]
pub mod pb {
    tonic::include_proto!("zkpeer.v1");
}

use pb::frame::Kind;
use pb::quorum_client::QuorumClient;
use pb::quorum_server::{Quorum as QuorumService, QuorumServer};

/// What the network tells the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Msg {
        from: ServerId,
        msg: Msg,
    },
    /// A link came up: a looking server repeats its vote on it.
    LinkUp {
        peer: ServerId,
    },
    /// A link broke; nothing more arrives from that generation of it.
    LinkDown {
        peer: ServerId,
    },
}

/// Another member and where its quorum port listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: ServerId,
    /// `host:port`, resolved at each dial.
    pub addr: String,
}

/// How this server takes part.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub me: ServerId,
    /// The other members.
    pub members: Vec<Member>,
    /// A digest of the membership: a server of another ensemble is refused.
    pub ensemble: String,
    /// Quorum authentication; `None`: links are not authenticated.
    pub auth: Option<QuorumAuth>,
    /// Accept links from servers outside `members` (a server about to be added by a
    /// reconfiguration connects first, as a learner).
    pub accept_unknown: bool,
    /// TLS on every link, both sides presenting certificates; `None`: plain TCP.
    pub tls: Option<PeerTls>,
}

/// TLS between members: the acceptor requires a client certificate from the trust store;
/// the dialler verifies the acceptor's certificate for the host of its `server.N` line.
#[derive(Clone)]
pub struct PeerTls {
    pub server: Arc<rustls::ServerConfig>,
    pub client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

/// An accepted TLS link, as tonic's server takes its connections.
struct TlsIo(tokio_rustls::server::TlsStream<tokio::net::TcpStream>);

/// The certificate chain a dialling member presented (leaf first), which tonic hands to
/// the service with each request.
#[derive(Debug, Clone, Default)]
struct PeerCertificates(Vec<rustls::pki_types::CertificateDer<'static>>);

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = PeerCertificates;
    fn connect_info(&self) -> Self::ConnectInfo {
        PeerCertificates(
            self.0
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| c.iter().map(|d| d.clone().into_owned()).collect())
                .unwrap_or_default(),
        )
    }
}

/// Whether a certificate is for `host` (a DNS name, with `*.` wildcards of one label, or
/// an IP address), by its subject alternative names, as TLS clients check servers.
fn certificate_names(der: &[u8], host: &str) -> bool {
    use x509_parser::extensions::GeneralName;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let ip: Option<std::net::IpAddr> = host.parse().ok();
    san.value.general_names.iter().any(|name| match (name, ip) {
        (GeneralName::IPAddress(bytes), Some(std::net::IpAddr::V4(a))) => *bytes == a.octets(),
        (GeneralName::IPAddress(bytes), Some(std::net::IpAddr::V6(a))) => *bytes == a.octets(),
        (GeneralName::DNSName(dns), None) => match dns.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(suffix)),
            None => dns.eq_ignore_ascii_case(host),
        },
        _ => false,
    })
}

impl tokio::io::AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// TLS handshakes on accepted connections; the finished ones go to tonic.
fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsIo, std::io::Error>> {
    let (tx, rx) = mpsc::channel(16);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, peer)) = listener.accept().await else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            if tx.is_closed() {
                return;
            }
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => {
                        let _ = tx.send(Ok(TlsIo(s))).await;
                    }
                    Ok(Err(e)) => tracing::warn!(%peer, error = %e, "quorum TLS handshake failed"),
                    Err(_) => tracing::warn!(%peer, "quorum TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Quorum authentication from ZooKeeper's JAAS sections: this server dials as `user` with
/// `password` (QuorumLearner) and accepts the users of `users` (QuorumServer).
#[derive(Clone, PartialEq, Eq)]
pub struct QuorumAuth {
    pub user: String,
    pub password: String,
    pub users: HashMap<String, String>,
}

impl std::fmt::Debug for QuorumAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumAuth")
            .field("user", &self.user)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn nonce() -> Vec<u8> {
    use ring::rand::SecureRandom;
    let mut n = vec![0u8; 16];
    // The system generator does not fail on Linux; a zero nonce would only weaken replay
    // protection, never let a stranger in without the password.
    let _ = ring::rand::SystemRandom::new().fill(&mut n);
    n
}

fn proof_message(
    role: &str,
    speaker: ServerId,
    listener: ServerId,
    ensemble: &str,
    nonce: &[u8],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(role.as_bytes());
    m.extend_from_slice(&speaker.to_be_bytes());
    m.extend_from_slice(&listener.to_be_bytes());
    m.extend_from_slice(ensemble.as_bytes());
    m.extend_from_slice(nonce);
    m
}

/// HMAC-SHA256(password, role | speaker | listener | ensemble | nonce).
fn proof(
    password: &str,
    role: &str,
    speaker: ServerId,
    listener: ServerId,
    ensemble: &str,
    nonce: &[u8],
) -> Vec<u8> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, password.as_bytes());
    let m = proof_message(role, speaker, listener, ensemble, nonce);
    ring::hmac::sign(&key, &m).as_ref().to_vec()
}

/// Checks a proof in constant time.
fn proof_ok(
    password: &str,
    role: &str,
    speaker: ServerId,
    listener: ServerId,
    ensemble: &str,
    nonce: &[u8],
    got: &[u8],
) -> bool {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, password.as_bytes());
    let m = proof_message(role, speaker, listener, ensemble, nonce);
    ring::hmac::verify(&key, &m, got).is_ok()
}

struct Link {
    generation: u64,
    tx: mpsc::UnboundedSender<pb::Frame>,
}

#[derive(Default)]
struct Links {
    by_peer: HashMap<ServerId, Link>,
    next_generation: u64,
}

/// The running network. Cloning shares it.
#[derive(Clone)]
pub struct Network {
    me: ServerId,
    tls: Option<PeerTls>,
    links: Arc<Mutex<Links>>,
    events: mpsc::UnboundedSender<Event>,
    /// The other members now (a reconfiguration changes them) and those being dialled.
    members: Arc<Mutex<Vec<Member>>>,
    dialing: Arc<Mutex<std::collections::HashSet<ServerId>>>,
    ensemble: String,
    auth: Option<QuorumAuth>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("me", &self.me).finish()
    }
}

impl Network {
    /// Starts serving on `listener` and dialling every member with a lower id. Events go
    /// to `events`; the tasks stop when its receiver is gone.
    pub fn start(
        config: NetConfig,
        listener: TcpListener,
        events: mpsc::UnboundedSender<Event>,
    ) -> Network {
        let net = Network {
            me: config.me,
            tls: config.tls.clone(),
            links: Arc::default(),
            events,
            members: Arc::new(Mutex::new(config.members.clone())),
            dialing: Arc::default(),
            ensemble: config.ensemble.clone(),
            auth: config.auth.clone(),
        };
        if config.auth.is_none() {
            tracing::warn!("quorum links are not authenticated (quorum.auth.enableSasl=false)");
        }
        let service = Service {
            net: net.clone(),
            ensemble: config.ensemble.clone(),
            accept_unknown: config.accept_unknown,
            auth: config.auth.clone(),
        };
        let tls = config.tls.clone();
        tokio::spawn(async move {
            let server = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(1)))
                .http2_keepalive_timeout(Some(Duration::from_secs(3)))
                // A proposal carries a whole txn, which a raised client-port maxPacket can
                // make bigger than tonic's 4 MiB default: the link must not refuse it.
                .add_service(QuorumServer::new(service).max_decoding_message_size(usize::MAX));
            let result = match tls {
                Some(t) => {
                    server
                        .serve_with_incoming(tls_incoming(listener, t.server))
                        .await
                }
                None => {
                    // Small messages (acks, confirmations) must not wait for Nagle's
                    // algorithm on the accepting side either (tonic's own `tcp_nodelay`
                    // does not reach an incoming stream).
                    let incoming = TcpListenerStream::new(listener).map(|accepted| {
                        accepted.inspect(|tcp| {
                            let _ = tcp.set_nodelay(true);
                        })
                    });
                    server.serve_with_incoming(incoming).await
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "quorum port stopped");
            }
        });
        net.dial_new();
        net
    }

    /// The other members after a reconfiguration: new ones with a lower id are dialled,
    /// removed ones are no longer redialled.
    pub fn set_members(&self, members: Vec<Member>) {
        *self.members.lock().unwrap_or_else(|e| e.into_inner()) = members;
        self.dial_new();
    }

    /// The host of member `id`'s quorum address, if it is a member.
    fn member_host(&self, id: ServerId) -> Option<String> {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|m| m.id == id)
            .map(|m| {
                m.addr
                    .rsplit_once(':')
                    .map_or(m.addr.as_str(), |(h, _)| h)
                    .to_owned()
            })
    }

    fn is_member(&self, id: ServerId) -> bool {
        self.members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|m| m.id == id)
    }

    /// Starts a dialler for each member with a lower id that has none.
    fn dial_new(&self) {
        let members = self
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut dialing = self.dialing.lock().unwrap_or_else(|e| e.into_inner());
        for m in members.into_iter().filter(|m| m.id < self.me) {
            if !dialing.insert(m.id) {
                continue;
            }
            let net = self.clone();
            let ensemble = self.ensemble.clone();
            let auth = self.auth.clone();
            tokio::spawn(async move { net.dial_forever(m, ensemble, auth).await });
        }
    }

    /// Sends `msg` to `to` if a link is up; otherwise it is lost.
    pub fn send(&self, to: ServerId, msg: &Msg) {
        let links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(link) = links.by_peer.get(&to) {
            let _ = link.tx.send(to_frame(msg));
        }
    }

    /// Registers a new link to `peer`, replacing (and reporting down) an older one.
    fn register(&self, peer: ServerId, tx: mpsc::UnboundedSender<pb::Frame>) -> u64 {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.next_generation += 1;
        let generation = links.next_generation;
        if links
            .by_peer
            .insert(peer, Link { generation, tx })
            .is_some()
        {
            let _ = self.events.send(Event::LinkDown { peer });
        }
        let _ = self.events.send(Event::LinkUp { peer });
        generation
    }

    /// The link `generation` to `peer` ended: report it unless a newer one replaced it.
    fn unregister(&self, peer: ServerId, generation: u64) {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        if links
            .by_peer
            .get(&peer)
            .is_some_and(|l| l.generation == generation)
        {
            links.by_peer.remove(&peer);
            let _ = self.events.send(Event::LinkDown { peer });
        }
    }

    /// Delivers a link's inbound frames until it ends.
    async fn pump(&self, peer: ServerId, generation: u64, mut inbound: Streaming<pb::Frame>) {
        loop {
            match inbound.next().await {
                Some(Ok(frame)) => {
                    let frames = match frame.kind {
                        Some(Kind::Batch(b)) => b.frames,
                        _ => vec![frame],
                    };
                    let mut ok = true;
                    for frame in frames {
                        let Some(msg) = from_frame(frame) else {
                            tracing::warn!(peer, "malformed peer frame; dropping the link");
                            ok = false;
                            break;
                        };
                        if self.events.send(Event::Msg { from: peer, msg }).is_err() {
                            ok = false;
                            break;
                        }
                    }
                    if !ok {
                        break;
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(peer, error = %e, "peer link failed");
                    break;
                }
                None => break,
            }
        }
        self.unregister(peer, generation);
    }

    async fn dial_forever(&self, member: Member, ensemble: String, auth: Option<QuorumAuth>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.events.is_closed() || !self.is_member(member.id) {
                self.dialing
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&member.id);
                return;
            }
            match self.dial(&member, &ensemble, auth.as_ref()).await {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::debug!(peer = member.id, error = %e, "cannot reach peer");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
            tokio::time::sleep(backoff).await;
        }
    }

    /// One link to `member`, from dial to end.
    async fn dial(
        &self,
        member: &Member,
        ensemble: &str,
        auth: Option<&QuorumAuth>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{}", member.addr))?
            .connect_timeout(Duration::from_secs(2))
            .http2_keep_alive_interval(Duration::from_secs(1))
            .keep_alive_timeout(Duration::from_secs(3))
            .tcp_nodelay(true);
        let channel = match &self.tls {
            None => endpoint.connect().await?,
            Some(t) => {
                // TCP, then TLS verified for the host of the member's server.N line.
                let connector = tokio_rustls::TlsConnector::from(t.client.clone());
                let addr = member.addr.clone();
                let host = addr
                    .rsplit_once(':')
                    .map_or(addr.as_str(), |(h, _)| h)
                    .trim_matches(|c| c == '[' || c == ']')
                    .to_owned();
                endpoint
                    .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                        let (connector, addr, host) =
                            (connector.clone(), addr.clone(), host.clone());
                        async move {
                            let tcp = tokio::net::TcpStream::connect(&addr).await?;
                            tcp.set_nodelay(true)?;
                            let name = rustls::pki_types::ServerName::try_from(host)
                                .map_err(std::io::Error::other)?;
                            let tls = connector.connect(name, tcp).await?;
                            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
                        }
                    }))
                    .await?
            }
        };
        let mut client = QuorumClient::new(channel).max_decoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::unbounded_channel::<pb::Frame>();
        // Batches only once the peer's hello says it takes them.
        let (outbound, peer_batches) = Outbound::new(rx, false);
        let my_nonce = nonce();
        let mut first = hello(self.me, ensemble);
        if let (Some(a), Some(Kind::Hello(h))) = (auth, first.kind.as_mut()) {
            h.user = a.user.clone();
            h.nonce = my_nonce.clone();
        }
        tx.send(first)?;
        let mut inbound = client.link(outbound).await?.into_inner();
        let answer = match inbound.next().await {
            Some(Ok(pb::Frame {
                kind: Some(Kind::Hello(h)),
            })) if h.server_id == member.id && h.ensemble == ensemble => h,
            other => {
                return Err(
                    format!("peer {} answered {other:?} instead of its hello", member.id).into(),
                );
            }
        };
        peer_batches.store(answer.batches, std::sync::atomic::Ordering::Relaxed);
        if let Some(a) = auth {
            let proved = proof_ok(
                &a.password,
                "acceptor",
                member.id,
                self.me,
                ensemble,
                &my_nonce,
                &answer.proof,
            );
            if !proved {
                return Err(format!(
                    "peer {} did not prove it knows the quorum password",
                    member.id
                )
                .into());
            }
            let mut second = hello(self.me, ensemble);
            if let Some(Kind::Hello(h)) = second.kind.as_mut() {
                h.proof = proof(
                    &a.password,
                    "dialer",
                    self.me,
                    member.id,
                    ensemble,
                    &answer.nonce,
                );
            }
            tx.send(second)?;
        }
        let generation = self.register(member.id, tx);
        self.pump(member.id, generation, inbound).await;
        Ok(())
    }
}

fn hello(me: ServerId, ensemble: &str) -> pb::Frame {
    pb::Frame {
        kind: Some(Kind::Hello(pb::Hello {
            server_id: me,
            ensemble: ensemble.to_owned(),
            batches: true,
            ..Default::default()
        })),
    }
}

/// Most frames, and most encoded bytes, one [`pb::Batch`] carries.
const BATCH_FRAMES_MAX: usize = 512;
const BATCH_BYTES_MAX: usize = 1 << 20;

/// The frames queued for a peer, as the link's outbound stream: once the peer said it
/// takes batches, everything queued at once goes out as one [`pb::Batch`] (one gRPC
/// message, one write) instead of one message each.
struct Outbound {
    rx: mpsc::UnboundedReceiver<pb::Frame>,
    batches: Arc<std::sync::atomic::AtomicBool>,
    /// A frame taken while batching that must go alone (a Hello) or did not fit.
    held: Option<pb::Frame>,
}

impl Outbound {
    fn new(
        rx: mpsc::UnboundedReceiver<pb::Frame>,
        batches: bool,
    ) -> (Outbound, Arc<std::sync::atomic::AtomicBool>) {
        let flag = Arc::new(std::sync::atomic::AtomicBool::new(batches));
        (
            Outbound {
                rx,
                batches: flag.clone(),
                held: None,
            },
            flag,
        )
    }
}

fn batchable(f: &pb::Frame) -> bool {
    !matches!(f.kind, Some(Kind::Hello(_)) | Some(Kind::Batch(_)))
}

impl Stream for Outbound {
    type Item = pb::Frame;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<pb::Frame>> {
        use prost::Message;
        use std::task::Poll;
        let first = match self.held.take() {
            Some(f) => f,
            None => match self.rx.poll_recv(cx) {
                Poll::Ready(Some(f)) => f,
                other => return other,
            },
        };
        if !batchable(&first) || !self.batches.load(std::sync::atomic::Ordering::Relaxed) {
            return Poll::Ready(Some(first));
        }
        let mut bytes = first.encoded_len();
        let mut frames = vec![first];
        while frames.len() < BATCH_FRAMES_MAX && bytes < BATCH_BYTES_MAX {
            let Ok(f) = self.rx.try_recv() else { break };
            if !batchable(&f) {
                self.held = Some(f);
                break;
            }
            bytes += f.encoded_len();
            frames.push(f);
        }
        if frames.len() == 1 {
            return Poll::Ready(frames.pop());
        }
        Poll::Ready(Some(pb::Frame {
            kind: Some(Kind::Batch(pb::Batch { frames })),
        }))
    }
}

struct Service {
    net: Network,
    ensemble: String,
    accept_unknown: bool,
    auth: Option<QuorumAuth>,
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<pb::Frame, Status>> + Send>>;

#[tonic::async_trait]
impl QuorumService for Service {
    type LinkStream = FrameStream;

    async fn link(
        &self,
        request: Request<Streaming<pb::Frame>>,
    ) -> Result<Response<FrameStream>, Status> {
        let certificates = request.extensions().get::<PeerCertificates>().cloned();
        let mut inbound = request.into_inner();
        let first = match inbound.next().await {
            Some(Ok(pb::Frame {
                kind: Some(Kind::Hello(h)),
            })) => {
                if h.ensemble != self.ensemble {
                    return Err(Status::permission_denied("another ensemble"));
                }
                if !self.accept_unknown && !self.net.is_member(h.server_id) {
                    return Err(Status::permission_denied("not a member of this ensemble"));
                }
                if h.server_id <= self.net.me {
                    return Err(Status::invalid_argument(
                        "the server with the higher id dials",
                    ));
                }
                h
            }
            _ => return Err(Status::invalid_argument("the first frame must be a hello")),
        };
        let peer = first.server_id;
        // Under TLS a trusted certificate is not enough: it must be for the host of the
        // server.N line of the id the peer claims, as the dialler checks the acceptor's.
        // (A server joining by reconfiguration has no line here yet.)
        if self.net.tls.is_some() {
            if let Some(host) = self.net.member_host(peer) {
                let leaf = certificates.as_ref().and_then(|c| c.0.first());
                if !leaf.is_some_and(|der| certificate_names(der, &host)) {
                    tracing::warn!(
                        peer,
                        host = %host,
                        "refusing a quorum link: the certificate is not for the host of the server it claims to be"
                    );
                    return Err(Status::permission_denied(
                        "the certificate is not for this server id's host",
                    ));
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel::<pb::Frame>();
        let mut answer = hello(self.net.me, &self.ensemble);
        let mut expect: Option<(String, Vec<u8>)> = None;
        if let Some(a) = &self.auth {
            let Some(password) = a.users.get(&first.user) else {
                tracing::warn!(peer, user = %first.user, "refusing a quorum link: unknown user");
                return Err(Status::unauthenticated("unknown quorum user"));
            };
            let my_nonce = nonce();
            if let Some(Kind::Hello(h)) = answer.kind.as_mut() {
                h.nonce = my_nonce.clone();
                h.proof = proof(
                    password,
                    "acceptor",
                    self.net.me,
                    peer,
                    &self.ensemble,
                    &first.nonce,
                );
            }
            expect = Some((password.clone(), my_nonce));
        }
        let _ = tx.send(answer);
        let net = self.net.clone();
        let ensemble = self.ensemble.clone();
        tokio::spawn(async move {
            if let Some((password, my_nonce)) = expect {
                // Nothing on the link counts before the dialer's proof.
                let proved = match inbound.next().await {
                    Some(Ok(pb::Frame {
                        kind: Some(Kind::Hello(h)),
                    })) => proof_ok(
                        &password, "dialer", peer, net.me, &ensemble, &my_nonce, &h.proof,
                    ),
                    _ => false,
                };
                if !proved {
                    tracing::warn!(peer, "refusing a quorum link: the proof does not match");
                    return;
                }
            }
            let generation = net.register(peer, tx);
            net.pump(peer, generation, inbound).await;
        });
        let (outbound, _) = Outbound::new(rx, first.batches);
        let out = outbound.map(Ok::<_, Status>);
        Ok(Response::new(Box::pin(out)))
    }
}

fn state_to_pb(s: PeerState) -> i32 {
    match s {
        PeerState::Looking => pb::PeerState::Looking as i32,
        PeerState::Following => pb::PeerState::Following as i32,
        PeerState::Leading => pb::PeerState::Leading as i32,
        PeerState::Observing => pb::PeerState::Observing as i32,
    }
}

fn state_from_pb(s: i32) -> Option<PeerState> {
    Some(match pb::PeerState::try_from(s).ok()? {
        pb::PeerState::Looking => PeerState::Looking,
        pb::PeerState::Following => PeerState::Following,
        pb::PeerState::Leading => PeerState::Leading,
        pb::PeerState::Observing => PeerState::Observing,
    })
}

fn txn(p: &Proposal) -> pb::Txn {
    pb::Txn {
        zxid: p.zxid,
        data: p.data.clone(),
    }
}

fn proposal(t: pb::Txn) -> Proposal {
    Proposal {
        zxid: t.zxid,
        // Copied out of the received frame: the peer's log keeps a txn until the next
        // snapshot, and a slice would keep the whole receive buffer (a snapshot's, even)
        // alive with it.
        data: Bytes::copy_from_slice(&t.data),
    }
}

fn membership_to_pb(m: &Membership) -> pb::Membership {
    let mut out = pb::Membership {
        version: m.version,
        members: m.members.clone(),
        ..Default::default()
    };
    let mut q = &m.quorum;
    // Only settled configurations travel; of a joint one, the new part is the one that rules.
    while let Quorum::Joint(_, new) = q {
        q = new;
    }
    match q {
        Quorum::Majority(v) => out.voters = v.iter().copied().collect(),
        Quorum::Hierarchical { groups, weights } => {
            out.groups = groups
                .iter()
                .map(|g| pb::Group {
                    ids: g.iter().copied().collect(),
                })
                .collect();
            out.weights = weights.iter().map(|(k, v)| (*k, *v)).collect();
        }
        Quorum::Joint(..) => {}
    }
    out
}

fn membership_from_pb(m: pb::Membership) -> Membership {
    let quorum = if m.groups.is_empty() {
        Quorum::majority(m.voters)
    } else {
        Quorum::Hierarchical {
            groups: m
                .groups
                .into_iter()
                .map(|g| g.ids.into_iter().collect())
                .collect(),
            weights: m.weights.into_iter().collect(),
        }
    };
    Membership {
        version: m.version,
        quorum,
        members: m.members,
    }
}

/// A message as a frame.
pub fn to_frame(msg: &Msg) -> pb::Frame {
    let kind = match msg {
        Msg::Vote(n) => Kind::Vote(pb::Vote {
            leader: n.vote.leader,
            zxid: n.vote.zxid,
            peer_epoch: n.vote.peer_epoch,
            election_epoch: n.election_epoch,
            state: state_to_pb(n.state),
        }),
        Msg::Handshake(h) => match *h {
            discovery::Msg::FollowerInfo {
                accepted_epoch,
                last_zxid,
            } => Kind::FollowerInfo(pb::FollowerInfo {
                accepted_epoch,
                last_zxid,
            }),
            discovery::Msg::LeaderInfo { new_epoch } => Kind::LeaderInfo(new_epoch),
            discovery::Msg::AckEpoch {
                current_epoch,
                last_zxid,
                epoch,
            } => Kind::AckEpoch(pb::AckEpoch {
                current_epoch,
                last_zxid,
                epoch,
            }),
            discovery::Msg::NewLeader { zxid } => Kind::NewLeader(zxid),
            discovery::Msg::AckNewLeader { zxid } => Kind::AckNewLeader(zxid),
            discovery::Msg::UpToDate => Kind::UpToDate(true),
        },
        Msg::Diff(list) => Kind::Diff(pb::TxnList {
            txns: list.iter().map(txn).collect(),
        }),
        Msg::Trunc(z) => Kind::Trunc(*z),
        Msg::Snap { zxid, state } => Kind::Snap(pb::Snap {
            zxid: *zxid,
            state: state.clone(),
        }),
        Msg::Broadcast(b) => match b {
            broadcast::Msg::Proposal(p) => Kind::Proposal(txn(p)),
            broadcast::Msg::Ack(z) => Kind::Ack(*z),
            broadcast::Msg::Commit(z) => Kind::Commit(*z),
        },
        Msg::Request(data) => Kind::Request(data.clone()),
        Msg::Ping(data) => Kind::Ping(data.clone()),
        Msg::SyncDone(token) => Kind::SyncDone(token.clone()),
        Msg::Config(m) => Kind::Config(membership_to_pb(m)),
        Msg::Handoff { to, zxid, epoch } => Kind::Handoff(pb::Handoff {
            to: *to,
            zxid: *zxid,
            epoch: *epoch,
        }),
        Msg::ReadIndex(id) => Kind::ReadIndex(*id),
        Msg::ReadIndexDone { id, zxid } => Kind::ReadIndexDone(pb::ReadIndexDone {
            id: *id,
            zxid: *zxid,
        }),
        Msg::Confirm(id) => Kind::Confirm(*id),
        Msg::Confirmed(id) => Kind::Confirmed(*id),
    };
    pb::Frame { kind: Some(kind) }
}

/// A frame as a message; `None` for a hello or an unknown/empty frame.
pub fn from_frame(frame: pb::Frame) -> Option<Msg> {
    Some(match frame.kind? {
        // A batch is unpacked by the link (`pump`); nested, it is malformed.
        Kind::Hello(_) | Kind::Batch(_) => return None,
        Kind::Vote(v) => Msg::Vote(Notification {
            vote: Vote {
                leader: v.leader,
                zxid: v.zxid,
                peer_epoch: v.peer_epoch,
            },
            election_epoch: v.election_epoch,
            state: state_from_pb(v.state)?,
        }),
        Kind::FollowerInfo(f) => Msg::Handshake(discovery::Msg::FollowerInfo {
            accepted_epoch: f.accepted_epoch,
            last_zxid: f.last_zxid,
        }),
        Kind::LeaderInfo(new_epoch) => Msg::Handshake(discovery::Msg::LeaderInfo { new_epoch }),
        Kind::AckEpoch(a) => Msg::Handshake(discovery::Msg::AckEpoch {
            current_epoch: a.current_epoch,
            last_zxid: a.last_zxid,
            epoch: a.epoch,
        }),
        Kind::NewLeader(zxid) => Msg::Handshake(discovery::Msg::NewLeader { zxid }),
        Kind::AckNewLeader(zxid) => Msg::Handshake(discovery::Msg::AckNewLeader { zxid }),
        Kind::UpToDate(_) => Msg::Handshake(discovery::Msg::UpToDate),
        Kind::Diff(list) => Msg::Diff(list.txns.into_iter().map(proposal).collect()),
        Kind::Trunc(z) => Msg::Trunc(z),
        Kind::Snap(s) => Msg::Snap {
            zxid: s.zxid,
            state: s.state,
        },
        Kind::Proposal(t) => Msg::Broadcast(broadcast::Msg::Proposal(proposal(t))),
        Kind::Ack(z) => Msg::Broadcast(broadcast::Msg::Ack(z)),
        Kind::Commit(z) => Msg::Broadcast(broadcast::Msg::Commit(z)),
        Kind::Request(data) => Msg::Request(data),
        Kind::Ping(data) => Msg::Ping(data),
        Kind::SyncDone(token) => Msg::SyncDone(token),
        Kind::Config(m) => Msg::Config(membership_from_pb(m)),
        Kind::Handoff(h) => Msg::Handoff {
            to: h.to,
            zxid: h.zxid,
            epoch: h.epoch,
        },
        Kind::ReadIndex(id) => Msg::ReadIndex(id),
        Kind::ReadIndexDone(r) => Msg::ReadIndexDone {
            id: r.id,
            zxid: r.zxid,
        },
        Kind::Confirm(id) => Msg::Confirm(id),
        Kind::Confirmed(id) => Msg::Confirmed(id),
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn frames_queued_together_go_as_one_batch_but_hellos_alone() {
        use super::*;
        let ack = |z: i64| pb::Frame {
            kind: Some(Kind::Ack(z)),
        };
        let kinds = |f: &pb::Frame| match &f.kind {
            Some(Kind::Batch(b)) => format!("batch{}", b.frames.len()),
            Some(Kind::Hello(_)) => "hello".to_owned(),
            Some(Kind::Ack(z)) => format!("ack{z}"),
            other => format!("{other:?}"),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (mut out, batches) = Outbound::new(rx, false);
        for f in [hello(1, "e"), ack(1), ack(2)] {
            tx.send(f).unwrap();
        }
        // Before the peer said it takes batches: one frame per message.
        assert_eq!(kinds(&out.next().await.unwrap()), "hello");
        assert_eq!(kinds(&out.next().await.unwrap()), "ack1");
        batches.store(true, std::sync::atomic::Ordering::Relaxed);
        for f in [ack(3), ack(4), hello(1, "e"), ack(5)] {
            tx.send(f).unwrap();
        }
        let got: Vec<String> = [
            out.next().await.unwrap(),
            out.next().await.unwrap(),
            out.next().await.unwrap(),
        ]
        .iter()
        .map(kinds)
        .collect();
        assert_eq!(got, ["batch3", "hello", "ack5"]);
        // The receiving side unpacks a batch; a batch inside one is malformed.
        assert_eq!(
            from_frame(pb::Frame {
                kind: Some(Kind::Batch(pb::Batch {
                    frames: vec![ack(1)]
                }))
            }),
            None
        );
    }

    #[test]
    fn certificate_names_match_hosts_as_tls_clients_do() {
        let cert = |names: Vec<rcgen::SanType>| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.subject_alt_names = names;
            p.self_signed(&key).unwrap().der().to_vec()
        };
        let dns = |n: &str| rcgen::SanType::DnsName(n.try_into().unwrap());
        let c = cert(vec![
            dns("zk-0.zk-hs.default.svc"),
            dns("*.zk.example"),
            rcgen::SanType::IpAddress([10, 0, 0, 7].into()),
            rcgen::SanType::IpAddress("fd00::7".parse().unwrap()),
        ]);
        for host in [
            "zk-0.zk-hs.default.svc",
            "ZK-0.zk-hs.default.svc",
            "a.zk.example",
            "10.0.0.7",
            "fd00::7",
            "[fd00::7]",
        ] {
            assert!(super::certificate_names(&c, host), "{host}");
        }
        for host in [
            "zk-1.zk-hs.default.svc",
            "zk.example",
            "a.b.zk.example",
            "10.0.0.8",
            "fd00::8",
            "localhost",
            "",
        ] {
            assert!(!super::certificate_names(&c, host), "{host}");
        }
        // No SAN at all, or not a certificate: no name.
        assert!(!super::certificate_names(&cert(vec![]), "localhost"));
        assert!(!super::certificate_names(b"junk", "localhost"));
    }
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let p = Proposal {
            zxid: 0x1_0000_0002,
            data: vec![1, 2, 3].into(),
        };
        let msgs = vec![
            Msg::Vote(Notification {
                vote: Vote {
                    leader: 3,
                    zxid: 7,
                    peer_epoch: 2,
                },
                election_epoch: 9,
                state: PeerState::Following,
            }),
            Msg::Handshake(discovery::Msg::FollowerInfo {
                accepted_epoch: 1,
                last_zxid: 5,
            }),
            Msg::Handshake(discovery::Msg::LeaderInfo { new_epoch: 4 }),
            Msg::Handshake(discovery::Msg::AckEpoch {
                current_epoch: 3,
                last_zxid: 6,
                epoch: 4,
            }),
            Msg::Handshake(discovery::Msg::NewLeader { zxid: 4 << 32 }),
            Msg::Handshake(discovery::Msg::AckNewLeader { zxid: 4 << 32 }),
            Msg::Handshake(discovery::Msg::UpToDate),
            Msg::Diff(vec![p.clone(), p.clone()]),
            Msg::Trunc(12),
            Msg::Snap {
                zxid: 13,
                state: vec![9; 100],
            },
            Msg::Broadcast(broadcast::Msg::Proposal(p)),
            Msg::Broadcast(broadcast::Msg::Ack(14)),
            Msg::Broadcast(broadcast::Msg::Commit(15)),
            Msg::Request(vec![4, 5]),
            Msg::Ping(Vec::new()),
            Msg::SyncDone(vec![7; 12]),
            Msg::ReadIndex(u64::MAX),
            Msg::ReadIndexDone {
                id: 9,
                zxid: 5 << 32,
            },
            Msg::Confirm(1),
            Msg::Confirmed(2),
            Msg::Handoff {
                to: 2,
                zxid: 3 << 32,
                epoch: 3,
            },
            Msg::Config(Membership {
                version: 5 << 32,
                quorum: Quorum::majority([1, 2, 4]),
                members: vec![1, 2, 3, 4],
            }),
            Msg::Config(Membership {
                version: 6 << 32,
                quorum: Quorum::Hierarchical {
                    groups: vec![[1, 2].into_iter().collect(), [3].into_iter().collect()],
                    weights: [(1, 1), (2, 1), (3, 0)].into_iter().collect(),
                },
                members: vec![1, 2, 3],
            }),
        ];
        for m in msgs {
            assert_eq!(from_frame(to_frame(&m)), Some(m.clone()));
        }
        assert_eq!(from_frame(pb::Frame { kind: None }), None);
    }
}
