//! The request pipeline as a connection drives it: frames in, the connection task's
//! decoding, the core (session, ACL, tree, and for writes the txn, the group-commit log
//! writer and apply), reply frames out through the connection's writer. One client
//! pipelines 1,000 requests over an in-memory stream; the log is written to a temporary
//! directory without fsync, so what is measured is the server's code, not the network or
//! the disk's flush latency.
//!
//! Run: `cargo bench -p zk-server --bench pipeline`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use zk_proto::jute::Jute;
use zk_proto::{
    encode_frame, encode_request, well_known, ConnectRequest, CreateRequest, GetDataRequest,
    Request, SetDataRequest,
};
use zk_server::conn::Throttle;
use zk_server::core::guardrails::{FrameCounters, FrameLimit};
use zk_server::core::{Core, CoreMsg};
use zk_server::Config;

const PIPELINE: usize = 1000;
const VALUE: usize = 1024;

/// A server on an in-memory disk and one handshaken connection to it.
async fn serve() -> DuplexStream {
    let config = Config::default();
    let storage = Arc::new(zk_log::storage::FsStorage);
    let dir = std::env::temp_dir().join(format!("zk-pipeline-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dirs = zk_log::DataDirs::new(&dir, None);
    let recovered = zk_log::recover(storage.as_ref(), &dirs, zk_server::tree_config(&config))
        .expect("an empty data dir");
    let log_config = zk_log::txnlog::TxnLogConfig {
        force_sync: false,
        ..zk_log::txnlog::TxnLogConfig::new(&dirs.log_dir)
    };
    let log =
        zk_log::txnlog::TxnLog::new(storage, log_config, recovered.tree.last_processed_zxid());
    let writer = zk_log::group::LogWriter::spawn(log).expect("a log writer");
    let (to_core, mut from_conns) = mpsc::unbounded_channel::<CoreMsg>();
    let mut core = Core::new(config, recovered.tree, writer, to_core.clone());
    tokio::spawn(async move {
        while let Some(msg) = from_conns.recv().await {
            core.handle(msg).expect("the in-memory log");
        }
    });
    let (client, server) = tokio::io::duplex(4 << 20);
    let limit = FrameLimit {
        max: 1 << 20,
        counters: Arc::new(FrameCounters::default()),
    };
    tokio::spawn(zk_server::conn::serve(
        server,
        1,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        Vec::new(),
        to_core,
        limit,
        Arc::new(Throttle::new(0)),
    ));
    let mut client = client;
    let mut hello = BytesMut::new();
    encode_frame(&mut hello, |b| {
        ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: 30_000,
            session_id: 0,
            passwd: Some(vec![0u8; 16].into()),
            read_only: Some(false),
        }
        .write(b)
    });
    client.write_all(&hello).await.expect("handshake");
    let mut buf = BytesMut::new();
    read_frames(&mut client, &mut buf, 1).await;
    client
}

/// Reads until `n` whole frames arrived (their bytes are dropped).
async fn read_frames(client: &mut DuplexStream, buf: &mut BytesMut, n: usize) {
    let mut got = 0;
    while got < n {
        while buf.len() >= 4 {
            let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 4 + len {
                break;
            }
            buf.advance(4 + len);
            got += 1;
        }
        if got < n && client.read_buf(buf).await.expect("read") == 0 {
            panic!("the server closed the connection");
        }
    }
}

fn frames(requests: impl Iterator<Item = Request>) -> BytesMut {
    let mut out = BytesMut::new();
    for (i, r) in requests.enumerate() {
        encode_frame(&mut out, |b| encode_request(i as i32 + 10, &r, b));
    }
    out
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut client = rt.block_on(serve());
    let mut buf = BytesMut::new();
    let value = vec![b'v'; VALUE];
    let create = frames((0..100).map(|i| {
        Request::Create(CreateRequest {
            path: format!("/n{i}"),
            data: Some(value.clone().into()),
            acl: well_known::open_acl_unsafe(),
            flags: 0,
        })
    }));
    rt.block_on(async {
        client.write_all(&create).await.expect("write");
        read_frames(&mut client, &mut buf, 100).await;
    });
    let gets = frames((0..PIPELINE).map(|i| {
        Request::GetData(GetDataRequest {
            path: format!("/n{}", i % 100),
            watch: false,
        })
    }));
    let sets = frames((0..PIPELINE).map(|i| {
        Request::SetData(SetDataRequest {
            path: format!("/n{}", i % 100),
            data: Some(value.clone().into()),
            version: -1,
        })
    }));
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(PIPELINE as u64));
    for (name, batch) in [("getData_1KiB_x1000", &gets), ("setData_1KiB_x1000", &sets)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(async {
                    client.write_all(batch).await.expect("write");
                    read_frames(&mut client, &mut buf, PIPELINE).await;
                })
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(
        std::env::temp_dir().join(format!("zk-pipeline-bench-{}", std::process::id())),
    );
}

criterion_group!(pipeline_benches, benches);
criterion_main!(pipeline_benches);
