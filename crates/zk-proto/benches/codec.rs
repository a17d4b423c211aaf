//! Encode and decode cost of the most common frames: getData (request and reply), setData,
//! create with OPEN_ACL_UNSAFE, and a multi of 10 creates.
//!
//! Run: `cargo bench -p zk-proto --bench codec`. Names read `codec/<encode|decode>/<frame>`.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zk_proto::{
    decode_request, encode_reply, encode_request, well_known, CreateRequest, GetDataRequest,
    GetDataResponse, Jute, MultiOp, OpCode, Reader, ReplyHeader, Request, Response, SetDataRequest,
    Stat,
};

const XID: i32 = 42;

fn stat() -> Stat {
    Stat {
        czxid: 0x1_0000_0010,
        mzxid: 0x1_0000_0020,
        ctime: 1_700_000_000_000,
        mtime: 1_700_000_001_000,
        version: 3,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 100,
        num_children: 0,
        pzxid: 0x1_0000_0010,
    }
}

fn create(i: usize) -> CreateRequest {
    CreateRequest {
        path: format!("/bench/p0001/child-{i:014}"),
        data: Some(Bytes::from(vec![b'd'; 100])),
        acl: well_known::open_acl_unsafe(),
        flags: 0,
    }
}

/// The requests to bench, by name.
fn requests() -> Vec<(&'static str, Request)> {
    vec![
        (
            "getData_request",
            Request::GetData(GetDataRequest {
                path: "/bench/p0001/child-00000000000001".into(),
                watch: true,
            }),
        ),
        (
            "setData_request",
            Request::SetData(SetDataRequest {
                path: "/bench/p0001/child-00000000000001".into(),
                data: Some(Bytes::from(vec![b's'; 100])),
                version: -1,
            }),
        ),
        ("create_request", Request::Create(create(1))),
        (
            "multi10_request",
            Request::Multi((0..10).map(|i| MultiOp::Create(create(i))).collect()),
        ),
    ]
}

fn get_data_reply() -> (ReplyHeader, Response) {
    (
        ReplyHeader {
            xid: XID,
            zxid: 0x1_0000_0042,
            err: 0,
        },
        Response::GetData(GetDataResponse {
            data: Some(Bytes::from(vec![b'd'; 100])),
            stat: stat(),
        }),
    )
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/encode");
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    for (name, request) in requests() {
        group.throughput(Throughput::Bytes(8 + request.encoded_len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                encode_request(XID, black_box(&request), &mut out);
                black_box(out.len())
            })
        });
    }
    let (header, body) = get_data_reply();
    group.throughput(Throughput::Bytes(16 + body.encoded_len() as u64));
    group.bench_function("getData_reply", |b| {
        b.iter(|| {
            out.clear();
            encode_reply(black_box(&header), black_box(&body), &mut out);
            black_box(out.len())
        })
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec/decode");
    for (name, request) in requests() {
        let mut out = Vec::new();
        encode_request(XID, &request, &mut out);
        let frame = Bytes::from(out);
        // Check once that the bench decodes what it encoded.
        let (_, body) = decode_request(&mut Reader::new(frame.clone())).expect("header decodes");
        assert_eq!(body.as_ref(), Ok(&request), "{name} round-trips");
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut r = Reader::new(black_box(&frame).clone());
                black_box(decode_request(&mut r))
            })
        });
    }
    let (header, body) = get_data_reply();
    let mut out = Vec::new();
    encode_reply(&header, &body, &mut out);
    let frame = Bytes::from(out);
    let read_reply = |frame: &Bytes| {
        let mut r = Reader::new(frame.clone());
        let h = ReplyHeader::read(&mut r)?;
        let body = Response::read(OpCode::GetData, h.err, &mut r)?;
        Ok::<_, zk_proto::DecodeError>((h, body))
    };
    assert_eq!(
        read_reply(&frame).as_ref(),
        Ok(&(header, body)),
        "getData reply round-trips"
    );
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("getData_reply", |b| {
        b.iter(|| black_box(read_reply(black_box(&frame))))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = encode, decode
}
criterion_main!(benches);
