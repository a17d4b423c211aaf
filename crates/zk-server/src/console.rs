//! The web console at `/ui` on the AdminServer: browse the tree lazily, read a znode's
//! data, Stat and ACL, edit, create and delete nodes, watch a subtree live, and see the
//! sessions, the ensemble, the big families and the expiry log. One static page (built
//! into the binary: no Node toolchain, no asset files) over a small JSON API.
//!
//! Every API call runs in the core as a request on a console connection
//! ([`CoreMsg::ConsoleOpen`]) holding only the identities the HTTP request proved: the
//! browser's address (`ip`), and `digest` (plus `super` when it matches `superDigest`) when
//! it sent `Authorization: digest user:password`. ACLs apply exactly as to a client with
//! those identities. Writes need a digest credential: without one the console is read-only.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use zk_proto::response::decode_notification;
use zk_proto::{
    well_known, ErrorCode, Id, Jute, Reader, ReplyHeader, Request, RequestHeader,
    Response as ZkResponse, Stat,
};

use crate::core::{CoreMsg, Out};

/// The page.
const PAGE: &str = include_str!("console.html");
/// Children listed per page of a node's family.
const PAGE_SIZE: usize = 100;
/// How long a console call may wait for the core (a write waits for its fsync).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Console connection ids: far above the client listener's, which count from 1.
static NEXT_CONN: AtomicU64 = AtomicU64::new(1 << 62);
/// Request xids of console calls, unique across them (their writes share session 0).
static NEXT_XID: AtomicI32 = AtomicI32::new(1);

/// What a verified client certificate proved on an HTTPS AdminServer connection
/// (`x509:<DN>`, and `super` for the configured superuser), set per connection.
#[derive(Clone, Debug, Default)]
pub struct TlsIdentities(pub Vec<Id>);

#[derive(Clone)]
pub(crate) struct ConsoleState {
    pub to_core: mpsc::UnboundedSender<CoreMsg>,
    pub super_digest: Option<String>,
}

/// The console's routes, to merge into the AdminServer's router.
pub(crate) fn routes(state: ConsoleState) -> Router {
    Router::new()
        .route("/ui", get(|| async { Html(PAGE) }))
        .route("/ui/", get(|| async { Html(PAGE) }))
        .route("/ui/api/whoami", get(whoami))
        .route("/ui/api/node", get(node))
        .route("/ui/api/children", get(children))
        .route("/ui/api/{op}", post(write))
        .route("/ui/api/watch", get(watch))
        .route("/ui/api/overview", get(overview))
        .with_state(state)
}

/// What the request proved: its address, and the digest credential it sent, if any.
struct Caller {
    addr: IpAddr,
    auth: Vec<Id>,
    user: Option<String>,
}

fn caller(
    state: &ConsoleState,
    peer: SocketAddr,
    headers: &HeaderMap,
    tls: Option<Extension<TlsIdentities>>,
) -> Caller {
    let mut auth = vec![Id {
        scheme: "ip".into(),
        id: peer.ip().to_string(),
    }];
    // A client certificate signs the browser in as its subject.
    let certified = tls.map(|Extension(t)| t.0).unwrap_or_default();
    let mut user = certified
        .iter()
        .find(|i| i.scheme == "x509")
        .map(|i| i.id.clone());
    auth.extend(certified);
    let credential = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("digest "))
        .map(str::trim)
        .filter(|c| c.contains(':'));
    if let Some(c) = credential {
        let id = zk_tree::acl::digest_id(c);
        if state.super_digest.as_deref() == Some(id.as_str()) {
            auth.push(Id {
                scheme: "super".into(),
                id: String::new(),
            });
        }
        user = c.split(':').next().map(str::to_owned);
        auth.push(Id {
            scheme: "digest".into(),
            id,
        });
    }
    Caller {
        addr: peer.ip(),
        auth,
        user,
    }
}

/// A console connection in the core; closed when dropped.
struct ConsoleConn {
    conn: u64,
    to_core: mpsc::UnboundedSender<CoreMsg>,
    rx: mpsc::Receiver<Out>,
}

impl ConsoleConn {
    fn open(state: &ConsoleState, who: &Caller) -> Option<ConsoleConn> {
        let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
        let (out, rx) = mpsc::channel(1024);
        state
            .to_core
            .send(CoreMsg::ConsoleOpen {
                conn,
                addr: who.addr,
                auth: who.auth.clone(),
                out,
            })
            .ok()?;
        Some(ConsoleConn {
            conn,
            to_core: state.to_core.clone(),
            rx,
        })
    }

    /// Sends one request and waits for its reply (notifications before it are skipped).
    async fn call(&mut self, request: Request) -> Result<ZkResponse, ErrorCode> {
        let op = request.op_code();
        let xid = NEXT_XID.fetch_add(1, Ordering::Relaxed) & 0x3fff_ffff;
        let header = RequestHeader {
            xid,
            r#type: op.code(),
        };
        self.to_core
            .send(CoreMsg::ConsoleRequest {
                conn: self.conn,
                header,
                request,
            })
            .map_err(|_| ErrorCode::ConnectionLoss)?;
        let wait = async {
            while let Some(out) = self.rx.recv().await {
                let Out::Frame(frame) = out else {
                    return Err(ErrorCode::ConnectionLoss);
                };
                let Some(body) = frame.get(4..) else {
                    continue;
                };
                let mut r = Reader::new(Bytes::copy_from_slice(body));
                let h = ReplyHeader::read(&mut r).map_err(|_| ErrorCode::MarshallingError)?;
                if h.xid != xid {
                    continue;
                }
                if h.err != 0 {
                    return Err(ErrorCode::from_code(h.err).unwrap_or(ErrorCode::SystemError));
                }
                return ZkResponse::read(op, 0, &mut r).map_err(|_| ErrorCode::MarshallingError);
            }
            Err(ErrorCode::ConnectionLoss)
        };
        tokio::time::timeout(CALL_TIMEOUT, wait)
            .await
            .unwrap_or(Err(ErrorCode::OperationTimeout))
    }
}

impl Drop for ConsoleConn {
    fn drop(&mut self) {
        let _ = self.to_core.send(CoreMsg::Closed { conn: self.conn });
    }
}

/// One request on a fresh console connection.
async fn call(
    state: &ConsoleState,
    who: &Caller,
    request: Request,
) -> Result<ZkResponse, ErrorCode> {
    let mut c = ConsoleConn::open(state, who).ok_or(ErrorCode::ConnectionLoss)?;
    c.call(request).await
}

fn stat_json(s: &Stat) -> Value {
    json!({
        "czxid": format!("0x{:x}", s.czxid), "mzxid": format!("0x{:x}", s.mzxid),
        "pzxid": format!("0x{:x}", s.pzxid), "ctime": s.ctime, "mtime": s.mtime,
        "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
        "ephemeralOwner": format!("0x{:x}", s.ephemeral_owner),
        "dataLength": s.data_length, "numChildren": s.num_children,
    })
}

/// An error as the API answers it: the ZooKeeper code's name and an HTTP status.
fn failure(code: ErrorCode) -> Response {
    let status = match code {
        ErrorCode::NoNode => StatusCode::NOT_FOUND,
        ErrorCode::NoAuth => StatusCode::FORBIDDEN,
        ErrorCode::BadVersion | ErrorCode::NodeExists | ErrorCode::NotEmpty => StatusCode::CONFLICT,
        ErrorCode::ConnectionLoss | ErrorCode::OperationTimeout => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let body =
        json!({"error": format!("{code:?}"), "code": code.code(), "message": code.message()});
    (status, Json(body)).into_response()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The `path` parameter (default `/`), or why it is not a valid path.
fn path_param(q: &[(String, String)]) -> Result<String, String> {
    let p = param(q, "path").unwrap_or("/");
    match zk_proto::path::java_message(p) {
        Some(_) => Err(format!("invalid path {p:?}")),
        None => Ok(p.to_owned()),
    }
}

fn bad_path(message: String) -> Response {
    let body = json!({"error": "BadArguments", "message": message});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn whoami(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    tls: Option<Extension<TlsIdentities>>,
) -> Response {
    let who = caller(&state, peer, &headers, tls);
    Json(json!({
        "user": who.user,
        "read_only": who.user.is_none(),
        "identities": who.auth.iter().map(|i| format!("{}:{}", i.scheme, i.id)).collect::<Vec<_>>(),
    }))
    .into_response()
}

/// `GET /ui/api/node?path=`: data (as text when it is UTF-8, and base64), Stat and ACL.
async fn node(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    tls: Option<Extension<TlsIdentities>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let path = match path_param(&q) {
        Ok(p) => p,
        Err(m) => return bad_path(m),
    };
    let who = caller(&state, peer, &headers, tls);
    let Some(mut c) = ConsoleConn::open(&state, &who) else {
        return failure(ErrorCode::ConnectionLoss);
    };
    let (data, stat) = match c
        .call(Request::GetData(zk_proto::GetDataRequest {
            path: path.clone(),
            watch: false,
        }))
        .await
    {
        Ok(ZkResponse::GetData(r)) => (r.data, r.stat),
        Ok(_) => return failure(ErrorCode::MarshallingError),
        Err(e) => return failure(e),
    };
    let acl = match c
        .call(Request::GetAcl(zk_proto::GetAclRequest {
            path: path.clone(),
        }))
        .await
    {
        Ok(ZkResponse::GetAcl(r)) => json!(r
            .acl
            .iter()
            .map(|a| json!({"scheme": a.id.scheme, "id": a.id.id, "perms": a.perms}))
            .collect::<Vec<_>>()),
        _ => Value::Null,
    };
    use base64::Engine;
    let (text, b64) = match &data {
        None => (Value::Null, Value::Null),
        Some(d) => (
            std::str::from_utf8(d).map_or(Value::Null, |t| json!(t)),
            json!(base64::engine::general_purpose::STANDARD.encode(d)),
        ),
    };
    Json(json!({
        "path": path, "null": data.is_none(), "text": text, "base64": b64,
        "stat": stat_json(&stat), "acl": acl,
    }))
    .into_response()
}

/// `GET /ui/api/children?path=&offset=`: one page of a node's children (sorted), each with
/// its data length and child count, and the total: a 100,000-child node is listed a page
/// at a time.
async fn children(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    tls: Option<Extension<TlsIdentities>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let path = match path_param(&q) {
        Ok(p) => p,
        Err(m) => return bad_path(m),
    };
    let offset: usize = param(&q, "offset")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let who = caller(&state, peer, &headers, tls);
    let Some(mut c) = ConsoleConn::open(&state, &who) else {
        return failure(ErrorCode::ConnectionLoss);
    };
    let mut names = match c
        .call(Request::GetChildren2(zk_proto::GetChildren2Request {
            path: path.clone(),
            watch: false,
        }))
        .await
    {
        Ok(ZkResponse::GetChildren2(r)) => r.children,
        Ok(_) => return failure(ErrorCode::MarshallingError),
        Err(e) => return failure(e),
    };
    names.sort();
    let total = names.len();
    let mut page = Vec::new();
    for name in names.into_iter().skip(offset).take(PAGE_SIZE) {
        let child = if path == "/" {
            format!("/{name}")
        } else {
            format!("{path}/{name}")
        };
        let stat = match c
            .call(Request::Exists(zk_proto::ExistsRequest {
                path: child,
                watch: false,
            }))
            .await
        {
            Ok(ZkResponse::Exists(r)) => Some(r.stat),
            _ => None,
        };
        page.push(json!({
            "name": name,
            "numChildren": stat.as_ref().map(|s| s.num_children),
            "dataLength": stat.as_ref().map(|s| s.data_length),
        }));
    }
    Json(json!({"path": path, "offset": offset, "total": total, "children": page})).into_response()
}

/// Writes need a credential (a digest user, or a client certificate): the console is
/// read-only without one.
fn need_credential(who: &Caller) -> Option<Response> {
    if who.user.is_some() {
        return None;
    }
    let body = json!({
        "error": "ReadOnly",
        "message": "the console is read-only until you sign in (Authorization: digest user:password, or a client certificate over HTTPS)",
    });
    Some((StatusCode::UNAUTHORIZED, Json(body)).into_response())
}

/// `POST /ui/api/{set,create,delete}?path=&version=&sequential=` with the data as the body:
/// setData (with its version check), create (a persistent node, open to everyone: the
/// console owns no session, so no ephemerals; `sequential=true` for a sequential one), or
/// delete (with its version check).
async fn write(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    tls: Option<Extension<TlsIdentities>>,
    axum::extract::Path(op): axum::extract::Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Response {
    let who = caller(&state, peer, &headers, tls);
    if let Some(r) = need_credential(&who) {
        return r;
    }
    let path = match path_param(&q) {
        Ok(p) => p,
        Err(m) => return bad_path(m),
    };
    let version = param(&q, "version")
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1);
    let request = match op.as_str() {
        "set" => Request::SetData(zk_proto::SetDataRequest {
            path,
            data: Some(body),
            version,
        }),
        "create" => Request::Create2(zk_proto::CreateRequest {
            path,
            data: Some(body),
            acl: well_known::open_acl_unsafe(),
            flags: if param(&q, "sequential") == Some("true") {
                2
            } else {
                0
            },
        }),
        "delete" => Request::Delete(zk_proto::DeleteRequest { path, version }),
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such call"})),
            )
                .into_response()
        }
    };
    match call(&state, &who, request).await {
        Ok(ZkResponse::SetData(r)) => Json(json!({"stat": stat_json(&r.stat)})).into_response(),
        Ok(ZkResponse::Create2(r)) => {
            Json(json!({"path": r.path, "stat": stat_json(&r.stat)})).into_response()
        }
        Ok(_) if op == "delete" => Json(json!({"deleted": true})).into_response(),
        Ok(_) => failure(ErrorCode::MarshallingError),
        Err(e) => failure(e),
    }
}

/// `GET /ui/api/watch?path=`: a Server-Sent Events stream of every change under `path`
/// (a persistent recursive watch on a console connection that lives as long as the
/// stream). Each event is `{"type": "NodeDataChanged", "path": "/x"}`.
async fn watch(
    State(state): State<ConsoleState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    tls: Option<Extension<TlsIdentities>>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let path = match path_param(&q) {
        Ok(p) => p,
        Err(m) => return bad_path(m),
    };
    let who = caller(&state, peer, &headers, tls);
    let Some(mut c) = ConsoleConn::open(&state, &who) else {
        return failure(ErrorCode::ConnectionLoss);
    };
    if let Err(e) = c
        .call(Request::AddWatch(zk_proto::AddWatchRequest {
            path: path.clone(),
            mode: 1,
        }))
        .await
    {
        return failure(e);
    }
    let (tx, rx) = mpsc::channel::<Result<SseEvent, std::convert::Infallible>>(256);
    tokio::spawn(async move {
        let _ = tx
            .send(Ok(SseEvent::default()
                .event("ready")
                .data(json!({"path": path}).to_string())))
            .await;
        // Holding `c` keeps the watch; the stream's end (the browser left) drops it.
        while let Some(out) = c.rx.recv().await {
            let Out::Frame(frame) = out else { break };
            let Some(body) = frame.get(4..) else {
                continue;
            };
            let mut r = Reader::new(Bytes::copy_from_slice(body));
            let Ok(h) = ReplyHeader::read(&mut r) else {
                break;
            };
            if h.xid != -1 {
                continue;
            }
            let Ok(e) = decode_notification(&mut r) else {
                break;
            };
            let kind = zk_proto::EventType::from_code(e.r#type)
                .map_or_else(|| e.r#type.to_string(), |t| format!("{t:?}"));
            let event = SseEvent::default().event("change").data(
                json!({"type": kind, "path": e.path, "zxid": format!("0x{:x}", h.zxid)})
                    .to_string(),
            );
            if tx.send(Ok(event)).await.is_err() {
                break;
            }
        }
        drop(c);
    });
    Sse::new(tokio_stream::wrappers::ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /ui/api/overview`: the server, its sessions, the ensemble, the big families and
/// the expiry log, from the admin commands.
async fn overview(State(state): State<ConsoleState>) -> Response {
    let mut out = serde_json::Map::new();
    for (key, command) in [
        ("server", "monitor"),
        ("connections", "connections"),
        ("sessions", "session_rates"),
        ("ensemble", "__ensemble"),
        ("big_families", "big_families"),
        ("expirations", "expirations"),
        ("hot_paths", "hot_paths"),
    ] {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if state
            .to_core
            .send(CoreMsg::Admin {
                command,
                args: Vec::new(),
                reply: tx,
            })
            .is_err()
        {
            return failure(ErrorCode::ConnectionLoss);
        }
        if let Ok(v) = rx.await {
            out.insert(key.into(), v);
        }
    }
    Json(Value::Object(out)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_prove_an_address_and_maybe_a_digest() {
        let state = ConsoleState {
            to_core: mpsc::unbounded_channel().0,
            super_digest: Some(zk_tree::acl::digest_id("super:boss")),
        };
        let peer: SocketAddr = "10.0.0.9:5555".parse().unwrap_or_else(|_| unreachable!());
        let anon = caller(&state, peer, &HeaderMap::new(), None);
        assert_eq!(anon.user, None);
        assert_eq!(anon.auth.len(), 1);
        assert_eq!(anon.auth[0].id, "10.0.0.9");
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "digest alice:pw".parse().unwrap_or_else(|_| unreachable!()),
        );
        let alice = caller(&state, peer, &h, None);
        assert_eq!(alice.user.as_deref(), Some("alice"));
        assert_eq!(alice.auth[1].id, zk_tree::acl::digest_id("alice:pw"));
        assert!(need_credential(&alice).is_none());
        assert!(need_credential(&anon).is_some());
        h.insert(
            header::AUTHORIZATION,
            "digest super:boss"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
        );
        let boss = caller(&state, peer, &h, None);
        assert!(boss.auth.iter().any(|i| i.scheme == "super"));
    }
}
