//! Memory per znode: builds 1,000,000 znodes shaped like the `tree` bench
//! (`/bench/pNNNN/<20-byte name>`, 1000 parents x 1000 children, 100-byte data,
//! OPEN_ACL_UNSAFE) through `DataTree::apply` of Create txns, and prints the resident-set
//! growth per znode.
//!
//! Run: `cargo run --release -p zk-tree --example memory [-- PARENTS CHILDREN]`.
//!
//! The workspace forbids `unsafe_code`, so no counting `GlobalAlloc` here: the figure is the
//! growth of `VmRSS` (`/proc/self/status`, Linux only) across the build. It therefore
//! includes the allocator's own overhead and the hash table's spare capacity, which is what
//! a server actually pays; transient txn buffers are freed and reused as the build goes.

use std::time::Instant;

use bytes::Bytes;
use zk_proto::{well_known, CreateTxn, OpCode, TxnBody, TxnHeader};
use zk_tree::{DataTree, TxnResult};

const DATA_LEN: usize = 100;

/// Resident set size in bytes, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc/self/status")
}

fn create(tree: &mut DataTree, zxid: i64, path: String, data: &Bytes) {
    let header = TxnHeader {
        client_id: 0,
        cxid: 1,
        zxid,
        time: 1_700_000_000_000 + zxid,
        r#type: OpCode::Create.code(),
    };
    let body = TxnBody::Create(CreateTxn {
        path,
        data: Some(data.clone()),
        acl: well_known::open_acl_unsafe(),
        ephemeral: false,
        parent_c_version: -1,
    });
    let applied = tree.apply(&header, &body);
    assert!(
        !matches!(applied.result, TxnResult::Error(_)),
        "create failed: {:?}",
        applied.result
    );
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("counts are integers"))
        .unwrap_or(default)
}

fn main() {
    let parents = arg(1, 1000);
    let children = arg(2, 1000);
    let data = Bytes::from(vec![b'd'; DATA_LEN]);
    let empty = Bytes::new();

    let mut tree = DataTree::default();
    let nodes_before = tree.node_count();
    let rss_before = rss_bytes();
    // A tool, not the pure library: wall-clock time is only printed.
    #[allow(clippy::disallowed_methods)]
    let started = Instant::now();

    let mut zxid = 0;
    zxid += 1;
    create(&mut tree, zxid, "/bench".into(), &empty);
    let mut checkpoints = Vec::new();
    for p in 0..parents {
        let parent = format!("/bench/p{p:04}");
        zxid += 1;
        create(&mut tree, zxid, parent.clone(), &empty);
        for c in 0..children {
            zxid += 1;
            // 20-byte names: "child-" and 14 digits.
            create(&mut tree, zxid, format!("{parent}/child-{c:014}"), &data);
        }
        if (p + 1) % (parents / 4).max(1) == 0 {
            checkpoints.push((tree.node_count() - nodes_before, rss_bytes()));
        }
    }
    let elapsed = started.elapsed();
    let rss_after = rss_bytes();
    let added = tree.node_count() - nodes_before;
    let leaves = parents * children;
    let grown = rss_after.saturating_sub(rss_before);

    println!(
        "built {added} znodes ({leaves} leaves with {DATA_LEN}-byte data, 20-byte names) in {elapsed:.1?}"
    );
    println!(
        "VmRSS before {:.1} MiB, after {:.1} MiB, grown {:.1} MiB",
        rss_before as f64 / 1048576.0,
        rss_after as f64 / 1048576.0,
        grown as f64 / 1048576.0
    );
    for (nodes, rss) in &checkpoints {
        println!(
            "  at {nodes:>8} znodes: {:.1} bytes/znode",
            rss.saturating_sub(rss_before) as f64 / *nodes as f64
        );
    }
    println!(
        "approximate_data_size (paths + data): {:.1} bytes/znode",
        tree.approximate_data_size() as f64 / tree.node_count() as f64
    );
    println!("bytes/znode: {:.1}", grown as f64 / added.max(1) as f64);
    // Keep the tree alive until after the last measurement.
    std::hint::black_box(&tree);
}
