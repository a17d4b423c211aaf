//! DataTree operations on a tree of 1,000,000 znodes: `/bench/pNNNN/<20-byte name>`, 1000
//! parents of 1000 children each, 100 bytes of data per leaf, built through `apply` of
//! Create txns with increasing zxids (as a server replaying its log would).
//!
//! Run: `cargo bench -p zk-tree --bench tree`. The tree is built once (a few seconds);
//! every txn a bench applies has a higher zxid than the last.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use zk_proto::{well_known, CreateTxn, DeleteTxn, OpCode, SetDataTxn, TxnBody, TxnHeader};
use zk_tree::{DataTree, TxnResult};

const PARENTS: usize = 1000;
const CHILDREN: usize = 1000;
const DATA_LEN: usize = 100;
/// Paths the read benches cycle through, spread over the whole tree.
const SAMPLE_PATHS: usize = 4096;

fn parent_path(p: usize) -> String {
    format!("/bench/p{p:04}")
}

/// A 20-byte child name.
fn child_name(c: usize) -> String {
    let name = format!("child-{c:014}");
    debug_assert_eq!(name.len(), 20);
    name
}

fn leaf_path(p: usize, c: usize) -> String {
    format!("{}/{}", parent_path(p), child_name(c))
}

/// Hands out increasing zxids and builds txn headers with them.
struct Zxids(i64);

impl Zxids {
    fn next(&mut self, op: OpCode) -> TxnHeader {
        self.0 += 1;
        TxnHeader {
            client_id: 0,
            cxid: 1,
            zxid: self.0,
            time: 1_700_000_000_000 + self.0,
            r#type: op.code(),
        }
    }
}

fn create_txn(path: String, data: &Bytes) -> TxnBody {
    TxnBody::Create(CreateTxn {
        path,
        data: Some(data.clone()),
        acl: well_known::open_acl_unsafe(),
        ephemeral: false,
        parent_c_version: -1,
    })
}

fn apply_ok(tree: &mut DataTree, header: &TxnHeader, body: &TxnBody) {
    let applied = tree.apply(header, body);
    assert!(
        !matches!(applied.result, TxnResult::Error(_)),
        "txn {body:?} failed: {:?}",
        applied.result
    );
}

fn build_tree(zxids: &mut Zxids) -> DataTree {
    // A tool, not the pure library: wall-clock time is only printed.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();
    let mut tree = DataTree::default();
    let data = Bytes::from(vec![b'd'; DATA_LEN]);
    let empty = Bytes::new();
    apply_ok(
        &mut tree,
        &zxids.next(OpCode::Create),
        &create_txn("/bench".into(), &empty),
    );
    for p in 0..PARENTS {
        apply_ok(
            &mut tree,
            &zxids.next(OpCode::Create),
            &create_txn(parent_path(p), &empty),
        );
        for c in 0..CHILDREN {
            apply_ok(
                &mut tree,
                &zxids.next(OpCode::Create),
                &create_txn(leaf_path(p, c), &data),
            );
        }
    }
    eprintln!(
        "built {} znodes in {:.1?}",
        tree.node_count(),
        started.elapsed()
    );
    tree
}

/// Leaf paths spread pseudo-randomly over the tree (a fixed LCG: runs are comparable).
fn sample_paths() -> Vec<String> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..SAMPLE_PATHS)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let n = (x >> 33) as usize % (PARENTS * CHILDREN);
            leaf_path(n / CHILDREN, n % CHILDREN)
        })
        .collect()
}

fn tree_ops(c: &mut Criterion) {
    let mut zxids = Zxids(0);
    let mut tree = build_tree(&mut zxids);
    assert_eq!(tree.child_count("/bench/p0500"), Some(CHILDREN));
    let paths = sample_paths();
    let parents: Vec<String> = (0..PARENTS).map(parent_path).collect();
    let mut group = c.benchmark_group("tree");

    let mut i = 0;
    group.bench_function("get_data", |b| {
        b.iter(|| {
            i = (i + 1) % paths.len();
            black_box(tree.get_data(black_box(&paths[i]), None)).expect("leaf exists")
        })
    });

    let mut i = 0;
    group.bench_function("exists", |b| {
        b.iter(|| {
            i = (i + 1) % paths.len();
            black_box(tree.exists(black_box(&paths[i])))
        })
    });

    let mut i = 0;
    group.bench_function("exists_stat", |b| {
        b.iter(|| {
            i = (i + 1) % paths.len();
            black_box(tree.exists_watch(black_box(&paths[i]), None)).expect("leaf exists")
        })
    });

    let mut p = 0;
    group.bench_function("get_children_1000", |b| {
        b.iter(|| {
            p = (p + 1) % PARENTS;
            let (names, _stat) = tree
                .get_children(black_box(&parents[p]), None)
                .expect("parent exists");
            black_box(names.len())
        })
    });

    // Bodies are built outside the timed part; applying includes copying the 100 bytes in.
    let new_data = Bytes::from(vec![b's'; DATA_LEN]);
    let mut i = 0;
    let mut version = 0;
    group.bench_function("set_data", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % paths.len();
                version += 1;
                let body = TxnBody::SetData(SetDataTxn {
                    path: paths[i].clone(),
                    data: Some(new_data.clone()),
                    version,
                });
                (zxids.next(OpCode::SetData), body)
            },
            |(header, body)| black_box(tree.apply(&header, &body)),
            criterion::BatchSize::SmallInput,
        )
    });

    let data = Bytes::from(vec![b'd'; DATA_LEN]);
    let mut n: u64 = 0;
    group.bench_function("create_delete", |b| {
        b.iter_batched(
            || {
                n += 1;
                let path = format!("{}/fresh-{n:014}", parents[(n as usize) % PARENTS]);
                let create = (zxids.next(OpCode::Create), create_txn(path.clone(), &data));
                let delete = (
                    zxids.next(OpCode::Delete),
                    TxnBody::Delete(DeleteTxn { path }),
                );
                (create, delete)
            },
            |((ch, cb), (dh, db))| {
                let created = tree.apply(&ch, &cb);
                let deleted = tree.apply(&dh, &db);
                black_box((created, deleted))
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();

    assert_eq!(
        tree.node_count(),
        PARENTS * CHILDREN + PARENTS + 1 + 4,
        "create_delete left the tree as it was"
    );
    assert_eq!(tree.last_processed_zxid(), zxids.0);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = tree_ops
}
criterion_main!(benches);
