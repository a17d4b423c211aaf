//! The offline tools (`zk_log::tools`) on files written by zk-log and by a real ZooKeeper
//! 3.8 (`tests/data/zookeeper-3.8*`, captured by `scripts/capture-datadir.py` and
//! `scripts/capture-compressed-snapshots.py`), including files of the wrong kind, a torn
//! tail and a flipped checksum byte.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use zk_log::snapfile::{write_snapshot_file, SnapshotCompression, SNAP_MAGIC};
use zk_log::tools::{
    compare_snapshots, dump_log, dump_snapshot, fixed_log_path, read_snapshot_contents,
    recover_log, summarize_snapshot, ToolError,
};
use zk_log::txnlog::{scan_log, LogEnd, TXNLOG_MAGIC};
use zk_log::{recover, DataDirs, FsStorage, LogError, TxnLog, TxnLogConfig};
use zk_proto::{CreateTxn, DeleteTxn, OpCode, SetAclTxn, SetDataTxn, TxnBody, TxnHeader};
use zk_tree::{DataTree, TreeConfig};

const ZK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/zookeeper-3.8/version-2"
);
const ZK_GZ: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/zookeeper-3.8-gz/version-2"
);
const ZK_SNAPPY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/data/zookeeper-3.8-snappy/version-2"
);

fn zk(name: &str) -> PathBuf {
    Path::new(ZK).join(name)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("zk-log-tools-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::new();
    f(&mut out);
    String::from_utf8(out).unwrap()
}

fn header(zxid: i64, ty: OpCode) -> TxnHeader {
    TxnHeader {
        client_id: 0x42,
        cxid: zxid as i32,
        zxid,
        time: 1_700_000_000_000 + zxid,
        r#type: ty.code(),
    }
}

fn create(tree: &mut DataTree, zxid: i64, path: &str, data: &[u8]) {
    let parent = path
        .rsplit_once('/')
        .map_or("/", |(p, _)| if p.is_empty() { "/" } else { p });
    let parent_c_version = tree.stat_persisted(parent).unwrap().cversion + 1;
    let body = TxnBody::Create(CreateTxn {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        acl: zk_proto::well_known::open_acl_unsafe(),
        ephemeral: false,
        parent_c_version,
    });
    assert_eq!(
        tree.apply(&header(zxid, OpCode::Create), &body)
            .result
            .err(),
        0
    );
}

// ---------------------------------------------------------------------------------------
// dump_log

#[test]
fn dump_log_lists_zookeepers_txns() {
    let mut out = Vec::new();
    let dump = dump_log(&zk("log.1"), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert_eq!(dump.txns, 28);
    assert!(matches!(dump.end, LogEnd::Clean { .. }));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "ZooKeeper Transactional Log File with dbid 0 txnlog format version 2"
    );
    assert_eq!(*lines.last().unwrap(), "EOF reached after 28 txns.");
    assert_eq!(lines.len(), 30);
    assert!(
        lines[1].ends_with(
            " session 0x10000176cc40000 cxid 0x0 zxid 0x1 createSession timeout=30000ms"
        ),
        "{}",
        lines[1]
    );
    assert!(lines[1].starts_with("2026-11-23T22:24:41."), "{}", lines[1]);
    for expected in [
        "zxid 0x2 create /app data=\"root data\" acl=[world:anyone:crwda] ephemeral=false parentCVersion=1",
        "zxid 0x8 createContainer /box data=\"\" acl=[world:anyone:crwda] parentCVersion=2",
        "zxid 0xa createTtl /ttl data=\"t\" acl=[world:anyone:crwda] parentCVersion=3 ttl=3600000",
        "zxid 0xb create2 /app/c2 data=\"c2\"",
        "zxid 0xc error -110 (NodeExists)",
        "zxid 0xd setData /app data=\"v1\" version=1",
        "zxid 0x10 delete /box/item",
        "zxid 0x11 create /secret data=\"s\" acl=[digest:alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=:crwda]",
        "zxid 0x12 setACL /app/c2 acl=[world:anyone:r, ip:127.0.0.1:crwda] version=1",
        "zxid 0x13 multi [create /m data=\"m\"",
        "; setData /m data=\"m2\" version=1; check /m version=2; delete /m/k]",
        "zxid 0x14 multi [create /f data=\"\" acl=[world:anyone:crwda] ephemeral=false parentCVersion=6; error -101 (NoNode); error -2 (RuntimeInconsistency)]",
        "zxid 0x1b closeSession ephemerals=[/app/b-eph]",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn dump_log_of_a_zk_log_file() {
    let dir = temp_dir("dump-ours");
    let mut log = TxnLog::new(
        Arc::new(FsStorage),
        TxnLogConfig {
            prealloc_bytes: 8192,
            ..TxnLogConfig::new(&dir)
        },
        0,
    );
    for z in 1..=3 {
        let entry = zk_proto::TxnEntry {
            header: header(z, OpCode::SetData),
            body: TxnBody::SetData(SetDataTxn {
                path: "/x".into(),
                data: Some(Bytes::from(vec![0xff, z as u8])),
                version: z as i32,
            }),
            digest: None,
        };
        log.append(z, &entry.encode());
    }
    log.commit().unwrap();
    let text = text(|o| {
        dump_log(&dir.join("log.1"), o).unwrap();
    });
    assert!(
        text.contains(
            "2023-11-14T22:13:20.003Z session 0x42 cxid 0x3 zxid 0x3 setData /x data=base64:/wM= version=3"
        ),
        "{text}"
    );
    assert!(text.ends_with("EOF reached after 3 txns.\n"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dump_log_reports_a_torn_tail_and_corruption_with_offsets() {
    let dir = temp_dir("dump-damage");
    let original = std::fs::read(zk("log.1")).unwrap();
    let scan = scan_log(&zk("log.1"), Bytes::from(original.clone())).unwrap();
    let last = scan.records.last().unwrap().offset as usize;

    // Torn: the last record cut in the middle, zeros after (as preallocation leaves it).
    let mut torn = original.clone();
    for b in &mut torn[last + 20..] {
        *b = 0;
    }
    let path = dir.join("log.1");
    std::fs::write(&path, &torn).unwrap();
    let mut out = Vec::new();
    let dump = dump_log(&path, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(dump.txns, 27);
    assert!(matches!(dump.end, LogEnd::Torn { offset, .. } if offset == last as u64));
    assert!(
        text.contains(&format!("Torn tail at offset {last}: ")),
        "{text}"
    );
    assert!(text.ends_with("EOF reached after 27 txns.\n"), "{text}");

    // Corrupt: one flipped byte in the checksum of record 5, good records after it.
    let fifth = scan.records[5].offset as usize;
    let mut flipped = original.clone();
    flipped[fifth] ^= 0x01;
    std::fs::write(&path, &flipped).unwrap();
    let mut out = Vec::new();
    let dump = dump_log(&path, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(dump.txns, 5);
    assert!(matches!(dump.end, LogEnd::Corrupt { offset, .. } if offset == fifth as u64));
    assert!(
        text.contains(&format!("CORRUPT at offset {fifth}: checksum mismatch")),
        "{text}"
    );
    assert!(text.ends_with("EOF reached after 5 txns.\n"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_kind_of_file_is_a_clear_error_naming_it() {
    let dir = temp_dir("wrong-kind");
    // A snapshot given to dump_log.
    let snap = zk("snapshot.1c");
    let e = dump_log(&snap, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(&e, ToolError::Log(LogError::BadHeader { path, expected: "txn log", magic, .. })
            if *path == snap && *magic == SNAP_MAGIC),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("snapshot.1c") && msg.contains("a snapshot"),
        "{msg}"
    );
    // A txn log given to the snapshot tools.
    let log = zk("log.1");
    let e = dump_snapshot(&log, &mut Vec::new(), false, false).unwrap_err();
    assert!(
        matches!(&e, ToolError::Log(LogError::BadHeader { expected: "snapshot", magic, .. })
            if *magic == TXNLOG_MAGIC),
        "{e:?}"
    );
    assert!(e.to_string().contains("a txn log"), "{e}");
    // A bad header: text, and an empty file.
    let bad = dir.join("snapshot.5");
    std::fs::write(&bad, b"this is not a ZooKeeper file at all").unwrap();
    let empty = dir.join("log.5");
    std::fs::write(&empty, b"").unwrap();
    for e in [
        dump_log(&bad, &mut Vec::new()).unwrap_err(),
        dump_log(&empty, &mut Vec::new()).unwrap_err(),
        dump_snapshot(&bad, &mut Vec::new(), true, false).unwrap_err(),
        dump_snapshot(&empty, &mut Vec::new(), false, true).unwrap_err(),
        summarize_snapshot(&bad, 1, &mut Vec::new()).unwrap_err(),
        compare_snapshots(&snap, &bad, &mut Vec::new()).unwrap_err(),
        recover_log(&bad, &dir.join("out"), &mut Vec::new()).unwrap_err(),
    ] {
        assert!(
            matches!(e, ToolError::Log(LogError::BadHeader { .. })),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(msg.contains(&*dir.to_string_lossy()), "{msg}");
        assert!(msg.contains("is not a ZooKeeper"), "{msg}");
    }
    // A missing file names it too.
    let missing = dir.join("log.404");
    let e = dump_log(&missing, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("log.404"), "{e}");
    // Gzip data that is not a snapshot inside.
    let gz = dir.join("snapshot.6.gz");
    std::fs::write(
        &gz,
        SnapshotCompression::Gzip.compress(b"hello, not a snapshot"),
    )
    .unwrap();
    let e = dump_snapshot(&gz, &mut Vec::new(), false, false).unwrap_err();
    assert!(
        matches!(e, ToolError::Log(LogError::BadHeader { .. })),
        "{e:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// recover_log

#[test]
fn recover_log_fixes_a_flipped_checksum_byte() {
    let dir = temp_dir("recover");
    let original = std::fs::read(zk("log.1")).unwrap();
    let scan = scan_log(&zk("log.1"), Bytes::from(original.clone())).unwrap();
    let end = scan
        .records
        .last()
        .map(|r| r.offset as usize + 13 + r.raw.len())
        .unwrap();
    let mut damaged = original.clone();
    let at = scan.records[7].offset as usize + 6;
    damaged[at] ^= 0x80;
    let path = dir.join("log.1");
    std::fs::write(&path, &damaged).unwrap();
    let out_path = fixed_log_path(&path);
    assert_eq!(out_path, dir.join("log.1.fixed"));
    let mut out = Vec::new();
    let report = recover_log(&path, &out_path, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert_eq!(
        (report.records, report.fixed, report.stopped),
        (28, 1, None)
    );
    assert!(
        text.contains(&format!(
            "Fixed the checksum of zxid 0x8 at offset {}",
            scan.records[7].offset
        )),
        "{text}"
    );
    assert!(text.contains("Wrote 28 records to "), "{text}");
    // The repaired file is ZooKeeper's original without the zero padding, and reads clean.
    let fixed = std::fs::read(&out_path).unwrap();
    assert_eq!(fixed, &original[..end]);
    let dump = dump_log(&out_path, &mut Vec::new()).unwrap();
    assert_eq!(dump.txns, 28);
    assert!(matches!(dump.end, LogEnd::Clean { .. }));
    // An undamaged log copies through with nothing fixed.
    let report = recover_log(&zk("log.1"), &dir.join("clean"), &mut Vec::new()).unwrap();
    assert_eq!((report.records, report.fixed), (28, 0));
    // The output may not be the input.
    let e = recover_log(&path, &path, &mut Vec::new()).unwrap_err();
    assert!(matches!(e, ToolError::SameFile { .. }), "{e:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn recover_log_stops_at_the_first_undecodable_record() {
    let dir = temp_dir("recover-stop");
    let original = std::fs::read(zk("log.1")).unwrap();
    let scan = scan_log(&zk("log.1"), Bytes::from(original.clone())).unwrap();
    let mut damaged = original.clone();
    // Record 3's checksum is wrong (fixable); record 10's txn type is unknown (not).
    damaged[scan.records[3].offset as usize + 7] ^= 0x01;
    let tenth = scan.records[10].offset as usize;
    // Header: checksum(8) len(4), then TxnHeader: clientId(8) cxid(4) zxid(8) time(8) type(4).
    damaged[tenth + 12 + 28..tenth + 12 + 32].copy_from_slice(&77i32.to_be_bytes());
    let path = dir.join("log.1");
    std::fs::write(&path, &damaged).unwrap();
    let mut out = Vec::new();
    let report = recover_log(&path, &dir.join("log.1.fixed"), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert_eq!(report.records, 10);
    assert_eq!(report.fixed, 1);
    let (offset, reason) = report.stopped.unwrap();
    assert_eq!(offset, tenth as u64);
    assert!(reason.contains("undecodable"), "{reason}");
    assert!(
        text.contains(&format!("Stopped at offset {tenth}: undecodable txn")),
        "{text}"
    );
    let dump = dump_log(&dir.join("log.1.fixed"), &mut Vec::new()).unwrap();
    assert_eq!(dump.txns, 10);
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// dump_snapshot

#[test]
fn dump_snapshot_text_of_zookeepers_snapshot() {
    let mut out = Vec::new();
    let nodes = dump_snapshot(&zk("snapshot.1c"), &mut out, false, false).unwrap();
    let text = String::from_utf8(out).unwrap();
    println!("{text}");
    assert_eq!(nodes, 18);
    assert!(text.starts_with("ZNode Details (count=18):\n----\n/\n  cZxid = 0x00000000000000\n  ctime = 1970-01-01T00:00:00.000Z\n"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with('/')).count(), 18);
    let app_more = "/app/more\n  cZxid = 0x00000000000018\n  ctime = 2026-11-23T22:24:41.";
    assert!(text.contains(app_more), "{text}");
    for expected in [
        "  pZxid = 0x0000000000001c\n  cversion = 8\n  dataVersion = 2\n  aclVersion = 0\n  ephemeralOwner = 0x00000000000000\n  acl = [world:anyone:crwda]\n  dataLength = 2\n",
        "/app/eph\n",
        "  ephemeralOwner = 0x10000176cc40000\n",
        "/app/c2\n",
        "  acl = [world:anyone:r, ip:127.0.0.1:crwda]\n",
        "/zookeeper/config\n",
        "Session Details (sid, timeout, ephemeralCount):\n0x10000176cc40000, 30000, 2\n----\n",
        "Digest: 0x5a75df56b (version 2, zxid 0x1c), matches the nodes\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.ends_with("Last zxid: 0x1c\n"), "{text}");
    assert!(!text.contains("  data = "));
    // ZooKeeper's first snapshot carries an empty digest record.
    let first = text_of(&zk("snapshot.0"), false);
    assert!(first.starts_with("ZNode Details (count=4):\n"), "{first}");
    assert!(
        first.contains("Digest: empty record (ZooKeeper had applied no txn since it started)\n"),
        "{first}"
    );
    assert!(first.ends_with("Last zxid: 0x0\n"), "{first}");
    // With data: base64, as SnapshotFormatter -d prints it.
    let with_data = text_of(&zk("snapshot.1c"), true);
    assert!(with_data.contains("/app/more\n"));
    assert!(
        with_data.contains("  dataLength = 5\n  data = MTIzNDU=\n"),
        "{with_data}"
    );
}

fn text_of(path: &Path, with_data: bool) -> String {
    text(|o| {
        dump_snapshot(path, o, with_data, false).unwrap();
    })
}

#[test]
fn dump_snapshot_json_is_the_ncdu_export() {
    let mut out = Vec::new();
    dump_snapshot(&zk("snapshot.1c"), &mut out, false, true).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let top = v.as_array().unwrap();
    assert_eq!(top.len(), 4);
    assert_eq!((top[0].as_i64(), top[1].as_i64()), (Some(1), Some(0)));
    assert_eq!(top[2]["progname"], "SnapshotFormatter.java");
    assert!(top[2]["timestamp"].as_u64().unwrap() > 1_600_000_000_000);
    // Walk the tree: a directory is [entry, children...], a leaf is an entry.
    fn walk(v: &serde_json::Value, prefix: &str, out: &mut Vec<(String, u64, u64)>) {
        let (entry, kids) = match v.as_array() {
            Some(a) => (&a[0], &a[1..]),
            None => (v, &[][..]),
        };
        let name = entry["name"].as_str().unwrap();
        let path = match (prefix, name) {
            (_, "/") => "/".to_owned(),
            ("/", n) => format!("/{n}"),
            (p, n) => format!("{p}/{n}"),
        };
        assert_eq!(entry["asize"], entry["dsize"]);
        assert_eq!(entry["dev"], 0);
        out.push((
            path.clone(),
            entry["asize"].as_u64().unwrap(),
            entry["ino"].as_u64().unwrap(),
        ));
        for k in kids {
            walk(k, &path, out);
        }
    }
    let mut nodes = Vec::new();
    walk(&top[3], "", &mut nodes);
    assert_eq!(nodes.len(), 18);
    let inos: Vec<u64> = nodes.iter().map(|n| n.2).collect();
    assert_eq!(inos, (1001..=1018).collect::<Vec<_>>());
    assert!(nodes.contains(&(
        "/app/more".to_owned(),
        5,
        nodes.iter().find(|n| n.0 == "/app/more").unwrap().2
    )));
    assert!(nodes
        .iter()
        .any(|n| n.0 == "/zookeeper/quota/app/zookeeper_limits" && n.1 == 18));
    // Leaves are objects, directories arrays.
    assert!(top[3].is_array());
    assert!(out.ends_with(b"\n"));
}

#[test]
fn dump_snapshot_reads_every_compression_and_our_files_alike() {
    // ZooKeeper's compressed snapshots.
    for (dir, name) in [(ZK_GZ, "snapshot.1c.gz"), (ZK_SNAPPY, "snapshot.1c.snappy")] {
        let t = text_of(&Path::new(dir).join(name), true);
        assert!(t.starts_with("ZNode Details (count=18):\n"), "{name}:\n{t}");
        assert!(t.contains("matches the nodes"), "{name}:\n{t}");
        assert!(t.ends_with("Last zxid: 0x1c\n"), "{name}:\n{t}");
    }
    // Ours, the same tree in each compression: the same text.
    let dir = temp_dir("dump-compressed");
    let r = recover(
        &FsStorage,
        &DataDirs::new(&Path::new(ZK).join(".."), None),
        TreeConfig::default(),
    )
    .unwrap();
    let mut texts = Vec::new();
    for c in SnapshotCompression::ALL {
        let d = dir.join(c.method());
        let path = write_snapshot_file(&FsStorage, &d, &r.tree, c).unwrap();
        texts.push(text_of(&path, true));
        // A renamed file is still recognised by its content.
        let renamed = d.join("copy");
        std::fs::copy(&path, &renamed).unwrap();
        let t = text_of(&renamed, true);
        assert_eq!(t, texts[0], "{c}");
    }
    assert_eq!(texts[0], texts[1]);
    assert_eq!(texts[0], texts[2]);
    // A damaged body fails its seal.
    let plain = dir.join("").join("snapshot.1c");
    let mut b = std::fs::read(&plain).unwrap();
    b[100] ^= 0x10;
    std::fs::write(&plain, &b).unwrap();
    let e = dump_snapshot(&plain, &mut Vec::new(), false, false).unwrap_err();
    assert!(
        matches!(&e, ToolError::Log(LogError::BadSnapshot { .. })),
        "{e:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------
// summarize_snapshot

#[test]
fn summarize_snapshot_counts_subtrees() {
    let at = |depth| {
        text(|o| {
            summarize_snapshot(&zk("snapshot.1c"), depth, o).unwrap();
        })
    };
    let t0 = at(0);
    println!("{t0}");
    let lines: Vec<&str> = t0.lines().collect();
    assert!(lines[0].contains("18 znodes, 50 data bytes"), "{t0}");
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["/", "17", "50"]
    );
    let t2 = at(2);
    println!("{t2}");
    let rows: Vec<Vec<&str>> = t2
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    let find = |p: &str| rows.iter().find(|r| r[0] == p).cloned();
    assert_eq!(find("/app"), Some(vec!["/app", "6", "12"]));
    assert_eq!(find("/app/more"), Some(vec!["/app/more", "0", "5"]));
    assert_eq!(find("/zookeeper"), Some(vec!["/zookeeper", "5", "34"]));
    assert_eq!(
        find("/zookeeper/quota"),
        Some(vec!["/zookeeper/quota", "3", "34"])
    );
    assert_eq!(find("/zookeeper/quota/app"), None, "below depth 2");
    // Indented by depth, children in name order.
    assert!(t2.contains("\n  /app "), "{t2}");
    assert!(t2.contains("\n    /app/c2 "), "{t2}");
    let order: Vec<&str> = rows
        .iter()
        .filter(|r| r[0].matches('/').count() == 1)
        .map(|r| r[0])
        .collect();
    assert_eq!(
        order,
        ["/", "/app", "/box", "/m", "/secret", "/ttl", "/zookeeper"]
    );
    // Deep enough: every node once.
    assert_eq!(at(100).lines().count(), 2 + 18);
}

// ---------------------------------------------------------------------------------------
// compare_snapshots

#[test]
fn compare_snapshots_finds_what_differs() {
    // ZooKeeper's snapshot against ours of the recovered tree: no difference.
    let dir = temp_dir("compare");
    let r = recover(
        &FsStorage,
        &DataDirs::new(&Path::new(ZK).join(".."), None),
        TreeConfig::default(),
    )
    .unwrap();
    let ours = write_snapshot_file(
        &FsStorage,
        &dir.join("a"),
        &r.tree,
        SnapshotCompression::Gzip,
    )
    .unwrap();
    let mut out = Vec::new();
    assert_eq!(
        compare_snapshots(&zk("snapshot.1c"), &ours, &mut out).unwrap(),
        0
    );
    let t = String::from_utf8(out).unwrap();
    assert!(t.ends_with("The snapshots hold the same znodes.\n"), "{t}");
    assert!(
        t.contains("B: ") && t.contains("(gzip, zxid 0x1c, 18 znodes, 1 sessions)"),
        "{t}"
    );

    // Change one node's data, add one, delete one.
    let mut tree = r.tree.clone();
    let z = tree.last_processed_zxid();
    let set = TxnBody::SetData(SetDataTxn {
        path: "/app/more".into(),
        data: Some(Bytes::from_static(b"123456")),
        version: 1,
    });
    tree.apply(&header(z + 1, OpCode::SetData), &set);
    create(&mut tree, z + 2, "/new", b"n");
    let del = TxnBody::Delete(DeleteTxn {
        path: "/ttl".into(),
    });
    tree.apply(&header(z + 3, OpCode::Delete), &del);
    let changed = write_snapshot_file(
        &FsStorage,
        &dir.join("b"),
        &tree,
        SnapshotCompression::Snappy,
    )
    .unwrap();
    let mut out = Vec::new();
    let n = compare_snapshots(&zk("snapshot.1c"), &changed, &mut out).unwrap();
    let t = String::from_utf8(out).unwrap();
    println!("{t}");
    for expected in [
        "only in A: /ttl\n",
        "only in B: /new\n",
        "differs: /app/more: data 5 bytes vs 6 bytes; mZxid 0x18 vs 0x1d; mtime ",
        "; dataVersion 0 vs 1\n",
        // The root gained and lost a child.
        "differs: /: pZxid 0x13 vs 0x1f; cversion 5 vs 6\n",
        // /app has a quota: its usage node changed with /app/more.
        "differs: /zookeeper/quota/app/zookeeper_stats: data differs (16 bytes each)\n",
    ] {
        assert!(t.contains(expected), "missing {expected:?} in:\n{t}");
    }
    assert_eq!(n, 5);
    assert!(t.ends_with("5 differences.\n"), "{t}");
    // ACL differences are reported with the ACLs.
    let mut tree = r.tree.clone();
    let set_acl = TxnBody::SetAcl(SetAclTxn {
        path: "/app/c2".into(),
        acl: zk_proto::well_known::open_acl_unsafe(),
        version: 2,
    });
    tree.apply(&header(z + 1, OpCode::SetAcl), &set_acl);
    let acl_changed =
        write_snapshot_file(&FsStorage, &dir.join("c"), &tree, SnapshotCompression::None).unwrap();
    let t = text(|o| {
        assert_eq!(
            compare_snapshots(&zk("snapshot.1c"), &acl_changed, o).unwrap(),
            1
        );
    });
    assert!(
        t.contains("differs: /app/c2: aclVersion 1 vs 2; acl [world:anyone:r, ip:127.0.0.1:crwda] vs [world:anyone:crwda]\n"),
        "{t}"
    );
    // The first snapshot of the capture against the last: everything created is only in B.
    let t = text(|o| {
        compare_snapshots(&zk("snapshot.0"), &zk("snapshot.1c"), o).unwrap();
    });
    assert!(t.contains("only in B: /app/more\n"), "{t}");
    assert!(!t.contains("only in A"), "{t}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshot_contents_match_the_loaded_tree() {
    let c = read_snapshot_contents(&zk("snapshot.1c")).unwrap();
    let r = recover(
        &FsStorage,
        &DataDirs::new(&Path::new(ZK).join(".."), None),
        TreeConfig::default(),
    )
    .unwrap();
    assert_eq!(c.nodes.len(), r.tree.node_count());
    assert_eq!(c.computed_digest(), r.tree.digest());
    assert_eq!(
        c.digest.map(|d| (d.zxid, d.digest)),
        Some((0x1c, r.tree.digest()))
    );
    for n in &c.nodes {
        assert_eq!(r.tree.data(&n.path), Some(n.data.as_deref()), "{}", n.path);
        assert_eq!(
            r.tree.stat_persisted(&n.path).as_ref(),
            Some(&n.stat),
            "{}",
            n.path
        );
        assert_eq!(
            r.tree.acl(&n.path).map(|a| a.to_vec()),
            c.resolve_acl(n.acl_ref),
            "{}",
            n.path
        );
    }
}
