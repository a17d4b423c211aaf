//! The server on the wire, driven with raw frames: the handshake rules, bad input, ordering,
//! and durability across a restart. Expected answers are those probed on ZooKeeper 3.8
//! (see crates/zk-proto/tests/golden).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use zk_proto::*;
use zk_server::Config;

struct Server {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), zk_server::ServerError>>,
}

impl Server {
    async fn start(dir: &Path) -> Server {
        Server::start_with(dir, |_| {}).await
    }

    async fn start_with(dir: &Path, configure: impl FnOnce(&mut Config)) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            data_dir: dir.to_path_buf(),
            client_addr: addr,
            four_letter_words: vec!["ruok".into(), "srvr".into()],
            prealloc_kb: 64,
            tick_time_ms: 100,
            container_check_interval_ms: 50,
            extended_types_enabled: true,
            ..Config::default()
        };
        let mut config = config;
        configure(&mut config);
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(zk_server::run(config, listener, async {
            let _ = rx.await;
        }));
        Server {
            addr,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zkd-proto-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Client {
    s: TcpStream,
    buf: BytesMut,
    xid: i32,
}

fn frame(f: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut b = BytesMut::new();
    encode_frame(&mut b, f);
    b.freeze()
}

impl Client {
    async fn raw(addr: std::net::SocketAddr) -> Client {
        Client {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
            xid: 0,
        }
    }

    async fn connect_with(addr: std::net::SocketAddr, req: ConnectRequest) -> (Client, Bytes) {
        let mut c = Client::raw(addr).await;
        c.send(frame(|b| req.write(b))).await;
        let resp = c.recv().await.expect("a handshake answer");
        (c, resp)
    }

    async fn connect(addr: std::net::SocketAddr) -> (Client, ConnectResponse) {
        let (c, resp) = Client::connect_with(addr, connect_req(0, None)).await;
        (c, from_bytes::<ConnectResponse>(resp).unwrap())
    }

    async fn send(&mut self, b: Bytes) {
        self.s.write_all(&b).await.unwrap();
    }

    /// The next frame's payload, or `None` once the server closed the connection.
    async fn recv(&mut self) -> Option<Bytes> {
        let d = FrameDecoder::new(usize::MAX >> 1);
        loop {
            if let Some(p) = d.decode(&mut self.buf).unwrap() {
                return Some(p);
            }
            let n = tokio::time::timeout(Duration::from_secs(10), self.s.read_buf(&mut self.buf))
                .await
                .expect("server answered in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
        }
    }

    async fn request(&mut self, r: Request) -> i32 {
        self.xid += 1;
        let xid = self.xid;
        self.send(frame(|b| encode_request(xid, &r, b))).await;
        xid
    }

    /// Reads until the reply to `xid`, collecting notifications on the way.
    async fn reply(&mut self, xid: i32, op: OpCode) -> (ReplyHeader, Response, Vec<WatcherEvent>) {
        let mut events = Vec::new();
        loop {
            let p = self.recv().await.expect("connection open");
            let mut r = Reader::new(p);
            let h = ReplyHeader::read(&mut r).unwrap();
            if h.xid == -1 {
                events.push(WatcherEvent::read(&mut r).unwrap());
                continue;
            }
            assert_eq!(h.xid, xid, "replies in order");
            let body = Response::read(op, h.err, &mut r).unwrap();
            return (h, body, events);
        }
    }

    async fn call(&mut self, r: Request) -> (ReplyHeader, Response) {
        let op = r.op_code();
        let xid = self.request(r).await;
        let (h, b, _) = self.reply(xid, op).await;
        (h, b)
    }
}

fn connect_req(session_id: i64, passwd: Option<Bytes>) -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        time_out: 30_000,
        session_id,
        passwd: Some(passwd.unwrap_or_else(|| Bytes::from_static(&[0; 16]))),
        read_only: Some(false),
    }
}

fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        acl: well_known::open_acl_unsafe(),
        flags,
    })
}

#[tokio::test]
async fn handshake_mirrors_read_only_and_negotiates_timeout() {
    let dir = temp_dir("hs");
    let server = Server::start(&dir).await;
    let (_, resp) = Client::connect_with(server.addr, connect_req(0, None)).await;
    assert_eq!(resp.len(), 37, "with readOnly");
    let (_, resp) = Client::connect_with(
        server.addr,
        ConnectRequest {
            read_only: None,
            time_out: 1,
            ..connect_req(0, None)
        },
    )
    .await;
    assert_eq!(resp.len(), 36, "without readOnly");
    let r = from_bytes::<ConnectResponse>(resp).unwrap();
    assert_eq!(r.time_out, 200, "clamped to 2 x tickTime");
    assert_ne!(r.session_id, 0);
    server.stop().await;
}

#[tokio::test]
async fn unknown_or_wrong_password_sessions_get_the_expired_answer_and_a_close() {
    let dir = temp_dir("expired");
    let server = Server::start(&dir).await;
    // Unknown session.
    let (mut c, resp) = Client::connect_with(server.addr, connect_req(0x1234, None)).await;
    // (tickTime is 100 ms here: sessions are asked for 30 s and get the 2 s maximum.)
    let r = from_bytes::<ConnectResponse>(resp).unwrap();
    assert_eq!((r.time_out, r.session_id), (0, 0));
    assert_eq!(r.passwd.as_deref(), Some(&[0u8; 16][..]));
    assert!(c.recv().await.is_none(), "closed");
    // A live session, then the right and a wrong password.
    let (_a, live) = Client::connect(server.addr).await;
    let (mut again, resp) = Client::connect_with(
        server.addr,
        connect_req(live.session_id, live.passwd.clone()),
    )
    .await;
    let r = from_bytes::<ConnectResponse>(resp).unwrap();
    assert_eq!(r.session_id, live.session_id, "session resumed");
    assert_eq!(again.call(Request::Ping).await.0.err, 0);
    let (mut bad, resp) = Client::connect_with(
        server.addr,
        connect_req(live.session_id, Some(Bytes::from_static(&[9; 16]))),
    )
    .await;
    assert_eq!(from_bytes::<ConnectResponse>(resp).unwrap().session_id, 0);
    assert!(bad.recv().await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn bad_frames_close_the_connection_and_the_server_keeps_serving() {
    let dir = temp_dir("badframes");
    let server = Server::start(&dir).await;
    for bytes in [
        vec![0xff, 0xff, 0xff, 0xff], // negative length
        vec![0x7f, 0, 0, 0],          // far over jute.maxbuffer
        vec![0, 0, 0, 0],             // empty first packet: not a ConnectRequest
        vec![0, 0, 0, 3, 1, 2, 3],    // a truncated ConnectRequest
        b"xxxx".to_vec(),             // unknown four letters: a huge length
    ] {
        let mut c = Client::raw(server.addr).await;
        c.send(Bytes::from(bytes.clone())).await;
        assert!(
            c.recv().await.is_none(),
            "{bytes:x?} must close the connection"
        );
    }
    // After a session started: a huge vector count, and an unknown opcode.
    let (mut c, _) = Client::connect(server.addr).await;
    c.send(frame(|b| {
        RequestHeader {
            xid: 1,
            r#type: OpCode::Create.code(),
        }
        .write(b);
        "/v".to_owned().write(b);
        Some(Bytes::new()).write(b);
        0x0fff_ffffi32.write(b); // ACL count far beyond the frame
    }))
    .await;
    let p = c.recv().await.expect("an error reply");
    let h = ReplyHeader::read(&mut Reader::new(p)).unwrap();
    assert_eq!(h.err, ErrorCode::MarshallingError.code());
    assert!(c.recv().await.is_none());
    let (mut c, _) = Client::connect(server.addr).await;
    c.send(frame(|b| {
        RequestHeader {
            xid: 7,
            r#type: 999,
        }
        .write(b)
    }))
    .await;
    let p = c.recv().await.unwrap();
    let h = ReplyHeader::read(&mut Reader::new(p)).unwrap();
    assert_eq!(
        (h.xid, h.zxid, h.err),
        (7, -1, ErrorCode::Unimplemented.code())
    );
    assert!(c.recv().await.is_none(), "closed after UNIMPLEMENTED");
    // Others are still served.
    let (mut ok, _) = Client::connect(server.addr).await;
    assert_eq!(ok.call(create("/still", b"", 0)).await.0.err, 0);
    server.stop().await;
}

#[tokio::test]
async fn four_letter_words_and_the_whitelist() {
    let dir = temp_dir("4lw");
    let server = Server::start(&dir).await;
    for (word, expect) in [
        ("ruok", "imok"),
        (
            "mntr",
            "mntr is not executed because it is not in the whitelist.\n",
        ),
    ] {
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(word.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, expect);
    }
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"srvr").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(
        out.contains("Mode: standalone") && out.contains("Node count: 5"),
        "{out}"
    );
    server.stop().await;
}

async fn four_letter(addr: std::net::SocketAddr, word: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(word.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn mntr_value(mntr: &str, key: &str) -> String {
    mntr.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}\t")))
        .unwrap_or_else(|| panic!("no {key} in {mntr}"))
        .to_owned()
}

#[tokio::test]
async fn request_latency_is_counted_for_srvr_and_mntr_and_srst_resets_it() {
    let dir = temp_dir("latency");
    let server = Server::start_with(&dir, |c| c.four_letter_words = vec!["*".into()]).await;
    let fresh = four_letter(server.addr, "srvr").await;
    assert!(fresh.contains("Latency min/avg/max: 0/0.0/0\n"), "{fresh}");
    let (mut c, _) = Client::connect(server.addr).await;
    for i in 0..3 {
        let path = format!("/lat{i}");
        assert_eq!(c.call(create(&path, b"x", 0)).await.0.err, 0);
    }
    for _ in 0..5 {
        let get = Request::GetData(GetDataRequest {
            path: "/lat0".into(),
            watch: false,
        });
        assert_eq!(c.call(get).await.0.err, 0);
    }
    // A failed write is still an update, as ZooKeeper counts it.
    assert_ne!(c.call(create("/lat0", b"x", 0)).await.0.err, 0);
    let mntr = four_letter(server.addr, "mntr").await;
    assert_eq!(mntr_value(&mntr, "zk_cnt_updatelatency"), "4", "{mntr}");
    assert_eq!(mntr_value(&mntr, "zk_cnt_readlatency"), "5", "{mntr}");
    let avg: f64 = mntr_value(&mntr, "zk_avg_latency").parse().unwrap();
    let max: u64 = mntr_value(&mntr, "zk_max_latency").parse().unwrap();
    let min: u64 = mntr_value(&mntr, "zk_min_latency").parse().unwrap();
    assert!(min as f64 <= avg && avg <= max as f64, "{mntr}");
    let sum: u64 = mntr_value(&mntr, "zk_sum_updatelatency").parse().unwrap();
    assert!(sum <= 4 * max, "{mntr}");
    let p50: u64 = mntr_value(&mntr, "zk_p50_readlatency").parse().unwrap();
    let p999: u64 = mntr_value(&mntr, "zk_p999_updatelatency").parse().unwrap();
    assert!(p50 <= max && p999 <= max, "{mntr}");
    assert_eq!(
        four_letter(server.addr, "srst").await,
        "Server stats reset.\n"
    );
    let reset = four_letter(server.addr, "srvr").await;
    assert!(reset.contains("Latency min/avg/max: 0/0.0/0\n"), "{reset}");
    let mntr = four_letter(server.addr, "mntr").await;
    assert_eq!(mntr_value(&mntr, "zk_cnt_readlatency"), "0", "{mntr}");
    server.stop().await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_reads_see_earlier_writes() {
    let dir = temp_dir("order");
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    // Send a create, a getData of it and a setData, without waiting.
    let x1 = c.request(create("/p", b"one", 0)).await;
    let x2 = c
        .request(Request::GetData(GetDataRequest {
            path: "/p".into(),
            watch: false,
        }))
        .await;
    let x3 = c
        .request(Request::SetData(SetDataRequest {
            path: "/p".into(),
            data: Some(Bytes::from_static(b"two")),
            version: 0,
        }))
        .await;
    let (h1, _, _) = c.reply(x1, OpCode::Create).await;
    let (h2, b2, _) = c.reply(x2, OpCode::GetData).await;
    let (h3, _, _) = c.reply(x3, OpCode::SetData).await;
    assert_eq!((h1.err, h2.err, h3.err), (0, 0, 0));
    match b2 {
        Response::GetData(d) => assert_eq!(d.data.as_deref(), Some(&b"one"[..])),
        other => panic!("{other:?}"),
    }
    assert!(h1.zxid < h3.zxid);
    assert_eq!(
        h2.zxid, h1.zxid,
        "a read answers with the last applied zxid"
    );
    server.stop().await;
}

#[tokio::test]
async fn watch_events_arrive_before_the_reply_that_follows_them() {
    let dir = temp_dir("watch");
    let server = Server::start(&dir).await;
    let (mut a, _) = Client::connect(server.addr).await;
    a.call(create("/w", b"", 0)).await;
    a.call(Request::GetData(GetDataRequest {
        path: "/w".into(),
        watch: true,
    }))
    .await;
    // The same session changes the node: the event precedes the setData reply.
    let xid = a
        .request(Request::SetData(SetDataRequest {
            path: "/w".into(),
            data: None,
            version: -1,
        }))
        .await;
    let (h, _, events) = a.reply(xid, OpCode::SetData).await;
    assert_eq!(h.err, 0);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].r#type, EventType::NodeDataChanged.code());
    assert_eq!(events[0].path, "/w");
    server.stop().await;
}

// Probed: a failed multi answers err 0 with results [0, -101, -2] and changes nothing.
#[tokio::test]
async fn failed_multi_answers_like_zookeeper() {
    let dir = temp_dir("multi");
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    let (h, body) = c
        .call(Request::Multi(vec![
            MultiOp::Create(CreateRequest {
                path: "/m".into(),
                data: None,
                acl: well_known::open_acl_unsafe(),
                flags: 0,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/missing".into(),
                version: -1,
            }),
            MultiOp::SetData(SetDataRequest {
                path: "/m".into(),
                data: None,
                version: -1,
            }),
        ]))
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(
        body,
        Response::Multi(vec![
            MultiResult::Error(0),
            MultiResult::Error(-101),
            MultiResult::Error(-2)
        ])
    );
    let (h, _) = c
        .call(Request::Exists(ExistsRequest {
            path: "/m".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::NoNode.code());
    server.stop().await;
}

#[tokio::test]
async fn auth_with_an_unknown_scheme_fails_and_closes() {
    let dir = temp_dir("auth");
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    c.send(frame(|b| {
        encode_request(
            xid::AUTH,
            &Request::Auth(AuthPacket {
                r#type: 0,
                scheme: "nosuch".into(),
                auth: Some(Bytes::from_static(b"x")),
            }),
            b,
        )
    }))
    .await;
    let p = c.recv().await.unwrap();
    let h = ReplyHeader::read(&mut Reader::new(p)).unwrap();
    assert_eq!((h.xid, h.err), (xid::AUTH, ErrorCode::AuthFailed.code()));
    assert!(c.recv().await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn acknowledged_writes_survive_a_restart() {
    let dir = temp_dir("restart");
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    for i in 0..50 {
        let (h, _) = c
            .call(create(&format!("/n{i}"), format!("v{i}").as_bytes(), 0))
            .await;
        assert_eq!(h.err, 0);
    }
    drop(c);
    server.stop().await;
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    for i in 0..50 {
        let (h, body) = c
            .call(Request::GetData(GetDataRequest {
                path: format!("/n{i}"),
                watch: false,
            }))
            .await;
        assert_eq!(h.err, 0, "/n{i} lost");
        match body {
            Response::GetData(d) => assert_eq!(d.data.as_deref(), Some(format!("v{i}").as_bytes())),
            other => panic!("{other:?}"),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn empty_containers_and_expired_ttl_nodes_are_reaped() {
    let dir = temp_dir("reap");
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    let (h, _) = c
        .call(Request::CreateContainer(CreateRequest {
            path: "/box".into(),
            data: None,
            acl: well_known::open_acl_unsafe(),
            flags: CreateMode::Container.code(),
        }))
        .await;
    assert_eq!(h.err, 0);
    let (h, _) = c
        .call(Request::CreateTtl(CreateTtlRequest {
            path: "/ttl".into(),
            data: None,
            acl: well_known::open_acl_unsafe(),
            flags: CreateMode::PersistentWithTtl.code(),
            ttl: 200,
        }))
        .await;
    assert_eq!(h.err, 0);
    c.call(create("/box/item", b"", 0)).await;
    c.call(Request::Delete(DeleteRequest {
        path: "/box/item".into(),
        version: -1,
    }))
    .await;
    let exists = |p: &str| {
        Request::Exists(ExistsRequest {
            path: p.into(),
            watch: false,
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (a, _) = c.call(exists("/box")).await;
        let (b, _) = c.call(exists("/ttl")).await;
        if a.err == ErrorCode::NoNode.code() && b.err == ErrorCode::NoNode.code() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not reaped: {a:?} {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn an_expired_session_loses_its_ephemerals_and_watchers_hear_it() {
    let dir = temp_dir("expiry");
    let server = Server::start(&dir).await;
    let (mut a, ra) = Client::connect(server.addr).await;
    let (h, _) = a
        .call(create("/eph", b"", CreateMode::Ephemeral.code()))
        .await;
    assert_eq!(h.err, 0);
    let (mut b, _) = Client::connect(server.addr).await;
    let (h, _) = b
        .call(Request::Exists(ExistsRequest {
            path: "/eph".into(),
            watch: true,
        }))
        .await;
    assert_eq!(h.err, 0);
    // A goes silent; B keeps pinging until it hears the deletion.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut deleted = false;
    while !deleted {
        assert!(
            std::time::Instant::now() < deadline,
            "session never expired"
        );
        let xid = b.request(Request::Ping).await;
        let (_, _, events) = b.reply(xid, OpCode::Ping).await;
        deleted = events
            .iter()
            .any(|e| e.r#type == EventType::NodeDeleted.code() && e.path == "/eph");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The expired session cannot come back.
    let (mut again, resp) =
        Client::connect_with(server.addr, connect_req(ra.session_id, ra.passwd.clone())).await;
    assert_eq!(from_bytes::<ConnectResponse>(resp).unwrap().session_id, 0);
    assert!(again.recv().await.is_none());
    server.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: zkd\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn admin_server_answers_commands_metrics_and_health() {
    let dir = temp_dir("admin");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    let config = Config {
        data_dir: dir.clone(),
        client_addr: listener.local_addr().unwrap(),
        prealloc_kb: 64,
        ..Config::default()
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(zk_server::run_with_admin(
        config,
        listener,
        Some(admin),
        async {
            let _ = rx.await;
        },
    ));
    let (status, body) = http_get(admin_addr, "/commands/ruok").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""command":"ruok""#) && body.contains(r#""error":null"#),
        "{body}"
    );
    let (status, body) = http_get(admin_addr, "/commands/mntr").await;
    assert_eq!(status, 200);
    assert!(
        body.contains(r#""command":"monitor""#) && body.contains(r#""znode_count":5"#),
        "{body}"
    );
    for alias in [
        "conf", "cons", "srvr", "stat", "wchs", "wchc", "wchp", "dirs", "dump", "envi", "isro",
        "lsnp", "lead", "icfg",
    ] {
        let (status, body) = http_get(admin_addr, &format!("/commands/{alias}")).await;
        assert_eq!(status, 200, "{alias}: {body}");
        assert!(body.contains(r#""error":null"#), "{alias}: {body}");
    }
    let (status, _) = http_get(admin_addr, "/commands/nosuch").await;
    assert_eq!(status, 404);
    let (status, body) = http_get(admin_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("znode_count 5"), "{body}");
    assert_eq!(http_get(admin_addr, "/healthz").await.0, 200);
    assert_eq!(http_get(admin_addr, "/readyz").await.0, 200);
    let (status, body) = http_get(admin_addr, "/commands").await;
    assert_eq!(status, 200);
    assert!(body.contains("watches_by_path"));
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn connections_beyond_max_client_cnxns_are_refused() {
    let dir = temp_dir("maxcnxns");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        data_dir: dir,
        client_addr: addr,
        prealloc_kb: 64,
        max_client_cnxns: 3,
        ..Config::default()
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(zk_server::run(config, listener, async {
        let _ = rx.await;
    }));
    let mut kept = Vec::new();
    for _ in 0..3 {
        kept.push(Client::connect(addr).await.0);
    }
    let mut extra = Client::raw(addr).await;
    extra.send(frame(|b| connect_req(0, None).write(b))).await;
    assert!(
        extra.recv().await.is_none(),
        "the 4th connection from one IP is closed"
    );
    // Once one closes, a new one is accepted.
    drop(kept.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut again, r) = Client::connect(addr).await;
    assert_ne!(r.session_id, 0);
    assert_eq!(again.call(Request::Ping).await.0.err, 0);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_does_not_stop_the_server() {
    let dir = temp_dir("slow");
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    c.call(create("/big", &vec![7u8; 512 * 1024], 0)).await;
    // Flood getData requests for half a MiB each and never read a reply.
    let mut slow = Client::connect(server.addr).await.0;
    for _ in 0..200 {
        slow.request(Request::GetData(GetDataRequest {
            path: "/big".into(),
            watch: false,
        }))
        .await;
    }
    // Others are served meanwhile.
    let (mut other, _) = Client::connect(server.addr).await;
    for i in 0..20 {
        let (h, _) = other.call(create(&format!("/fast{i}"), b"", 0)).await;
        assert_eq!(h.err, 0);
    }
    drop(slow);
    server.stop().await;
}

// Probed on ZooKeeper 3.8: reads do not validate paths (NONODE), exists refuses a NUL
// (BADARGUMENTS), and "" reads the root.
#[tokio::test]
async fn reads_of_odd_paths_answer_like_zookeeper() {
    let dir = temp_dir("oddpaths");
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    for path in ["bad", "/a\0", "/a/", "/zookeeper/"] {
        let (h, _) = c
            .call(Request::GetData(GetDataRequest {
                path: path.into(),
                watch: false,
            }))
            .await;
        assert_eq!(h.err, ErrorCode::NoNode.code(), "getData {path:?}");
        let (h, _) = c
            .call(Request::GetChildren2(GetChildren2Request {
                path: path.into(),
                watch: false,
            }))
            .await;
        assert_eq!(h.err, ErrorCode::NoNode.code(), "getChildren2 {path:?}");
        let expected = if path.contains('\0') {
            ErrorCode::BadArguments
        } else {
            ErrorCode::NoNode
        };
        let (h, _) = c
            .call(Request::Exists(ExistsRequest {
                path: path.into(),
                watch: false,
            }))
            .await;
        assert_eq!(h.err, expected.code(), "exists {path:?}");
    }
    let (h, body) = c
        .call(Request::GetChildren(GetChildrenRequest {
            path: String::new(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, 0);
    assert_eq!(
        body,
        Response::GetChildren(GetChildrenResponse {
            children: vec!["zookeeper".into()]
        })
    );
    // Writes do validate: BADARGUMENTS for a bad path (when its parent exists).
    let (h, _) = c.call(create("/zookeeper/", b"", 0)).await;
    assert_eq!(h.err, ErrorCode::BadArguments.code());
    // Requests after closeSession: the close is answered, then the connection ends.
    let x1 = c.request(Request::CloseSession).await;
    let x2 = c
        .request(Request::GetData(GetDataRequest {
            path: "/".into(),
            watch: false,
        }))
        .await;
    let (h, _, _) = c.reply(x1, OpCode::CloseSession).await;
    assert_eq!(h.err, 0);
    let _ = x2;
    assert!(c.recv().await.is_none(), "closed after closeSession");
    server.stop().await;
}

#[tokio::test]
async fn data_over_the_max_packet_and_bad_multi_ops_are_refused() {
    let dir = temp_dir("maxpacket");
    let server = Server::start(&dir).await;
    let (mut c, _) = Client::connect(server.addr).await;
    // A frame over jute.maxbuffer closes the connection without touching the tree.
    let xid = c.request(create("/huge", &vec![1u8; 0x100000], 0)).await;
    let _ = xid;
    assert!(
        c.recv().await.is_none(),
        "oversized frame closes the connection"
    );
    let (mut c, _) = Client::connect(server.addr).await;
    let (h, _) = c
        .call(Request::Exists(ExistsRequest {
            path: "/huge".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::NoNode.code(), "nothing was created");
    // A multi whose inner op has an unknown type is malformed.
    c.send(frame(|b| {
        RequestHeader {
            xid: 5,
            r#type: OpCode::Multi.code(),
        }
        .write(b);
        MultiHeader {
            r#type: 77,
            done: false,
            err: -1,
        }
        .write(b);
        "/x".to_owned().write(b);
        MultiHeader {
            r#type: -1,
            done: true,
            err: -1,
        }
        .write(b);
    }))
    .await;
    let p = c.recv().await.unwrap();
    let h = ReplyHeader::read(&mut Reader::new(p)).unwrap();
    assert_eq!(h.err, ErrorCode::Unimplemented.code());
    assert!(c.recv().await.is_none());
    // Bad handshakes: negative timeout is clamped; a short password is an unknown session.
    let (_, resp) = Client::connect_with(
        server.addr,
        ConnectRequest {
            time_out: -5,
            ..connect_req(0, None)
        },
    )
    .await;
    assert_eq!(from_bytes::<ConnectResponse>(resp).unwrap().time_out, 200);
    let (mut bad, resp) = Client::connect_with(
        server.addr,
        connect_req(0x0100_0000_0000_0001, Some(Bytes::from_static(&[1, 2, 3]))),
    )
    .await;
    assert_eq!(from_bytes::<ConnectResponse>(resp).unwrap().session_id, 0);
    assert!(bad.recv().await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn global_outstanding_limit_throttles_without_losing_requests() {
    let dir = temp_dir("throttle");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        data_dir: dir,
        client_addr: addr,
        prealloc_kb: 64,
        global_outstanding_limit: 2,
        ..Config::default()
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(zk_server::run(config, listener, async {
        let _ = rx.await;
    }));
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::connect(addr).await.0);
    }
    // Each client pipelines 100 creates; every one is answered, in order.
    let mut xids = Vec::new();
    for (n, c) in clients.iter_mut().enumerate() {
        let mut mine = Vec::new();
        for i in 0..100 {
            mine.push(c.request(create(&format!("/t{n}-{i}"), b"", 0)).await);
        }
        xids.push(mine);
    }
    for (c, mine) in clients.iter_mut().zip(xids) {
        for xid in mine {
            let (h, _, _) = c.reply(xid, OpCode::Create).await;
            assert_eq!(h.err, 0);
        }
    }
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

/// The Java Netty client (and any pipelining client) sends its first requests right behind
/// the ConnectRequest, before the answer; ZooKeeper answers the handshake first, then them.
#[tokio::test]
async fn requests_sent_behind_the_handshake_wait_for_the_session() {
    let dir = temp_dir("pipelined-handshake");
    let server = Server::start(&dir).await;
    let mut c = Client::raw(server.addr).await;
    let mut burst = BytesMut::new();
    encode_frame(&mut burst, |f| connect_req(0, None).write(f));
    let create = create("/early", b"x", 0);
    encode_frame(&mut burst, |f| encode_request(1, &create, f));
    let get = Request::GetData(GetDataRequest {
        path: "/early".into(),
        watch: false,
    });
    encode_frame(&mut burst, |f| encode_request(2, &get, f));
    c.send(burst.freeze()).await;
    let hs = from_bytes::<ConnectResponse>(c.recv().await.unwrap()).unwrap();
    assert_ne!(hs.session_id, 0, "the handshake is answered first");
    let (h, body, _) = c.reply(1, OpCode::Create).await;
    assert_eq!(h.err, 0);
    assert!(matches!(body, Response::Create(r) if r.path == "/early"));
    let (h, body, _) = c.reply(2, OpCode::GetData).await;
    assert_eq!(h.err, 0);
    assert!(matches!(body, Response::GetData(r) if r.data.as_deref() == Some(&b"x"[..])));
    server.stop().await;
}

fn sasl_users() -> zk_server::sasl::SaslUsers {
    zk_server::sasl::SaslUsers::from_jaas(
        "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"pw\"; };",
        "Server",
    )
    .unwrap()
}

fn sasl(token: &[u8]) -> Request {
    Request::Sasl(GetSaslRequest {
        token: Some(Bytes::copy_from_slice(token)),
    })
}

#[tokio::test]
async fn sasl_with_a_malformed_token_fails_and_closes() {
    let dir = temp_dir("sasl-malformed");
    let server = Server::start_with(&dir, |c| c.sasl_users = Some(sasl_users())).await;
    let (mut c, _) = Client::connect(server.addr).await;
    let (h, body) = c.call(sasl(b"")).await;
    assert_eq!(h.err, 0);
    let Response::Sasl(challenge) = body else {
        panic!("a challenge")
    };
    assert!(String::from_utf8_lossy(&challenge.token.unwrap()).contains("nonce="));
    let (h, _) = c.call(sasl(b"\xff\x00 not a digest-response")).await;
    assert_eq!(h.err, ErrorCode::AuthFailed.code());
    assert!(c.recv().await.is_none(), "the connection is closed");
    // Others are still served.
    let (mut other, _) = Client::connect(server.addr).await;
    let (h, _) = other.call(create("/after", b"", 0)).await;
    assert_eq!(h.err, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_sasl_exchange_that_never_finishes_does_not_authenticate() {
    let dir = temp_dir("sasl-unfinished");
    let server = Server::start_with(&dir, |c| {
        c.sasl_users = Some(sasl_users());
        c.enforce_auth = true;
        c.enforce_auth_schemes = vec!["sasl".into()];
    })
    .await;
    let (mut c, _) = Client::connect(server.addr).await;
    let (h, _) = c.call(sasl(b"")).await;
    assert_eq!(h.err, 0, "challenge sent");
    // The client never answers the challenge and asks for data instead.
    let (h, _) = c
        .call(Request::GetData(GetDataRequest {
            path: "/".into(),
            watch: false,
        }))
        .await;
    assert_eq!(h.err, ErrorCode::SessionClosedRequireSaslAuth.code());
    assert!(c.recv().await.is_none(), "the connection is closed");
    server.stop().await;
}
