//! One test per DataTree rule, with values taken from a real ZooKeeper 3.8 where noted
//! ("probed": raw-socket requests against the Debian package's standalone server).

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use zk_proto::*;
use zk_tree::snapshot::{read_snapshot, write_snapshot};
use zk_tree::{AuthConfig, DataTree, TreeConfig, TxnResult, WatcherId};

// Probed: a fresh server shows `/` with cversion -1 and 1 child, `/zookeeper` with cversion -2
// and 2 children, `/zookeeper/config` with aversion -1 and a world READ ACL, all data empty.
#[test]
fn fresh_tree_matches_a_fresh_zookeeper() {
    let t = DataTree::default();
    let root = t.stat("/").unwrap();
    assert_eq!((root.cversion, root.num_children, root.pzxid), (-1, 1, 0));
    let zk = t.stat("/zookeeper").unwrap();
    assert_eq!((zk.cversion, zk.num_children), (-2, 2));
    let cfg = t.stat("/zookeeper/config").unwrap();
    assert_eq!((cfg.aversion, cfg.cversion, cfg.num_children), (-1, 0, 0));
    assert_eq!(
        &*t.acl("/zookeeper/config").unwrap(),
        &well_known::read_acl_unsafe()[..]
    );
    assert_eq!(&*t.acl("/").unwrap(), &well_known::open_acl_unsafe()[..]);
    assert!(t.stat("/zookeeper/quota").is_some());
    assert_eq!(t.data("/").unwrap(), Some(&b""[..]));
    assert_eq!(t.all_children_number("/"), Ok(3));
    assert_eq!(t.node_count(), 4);
}

// Probed: create /p (zxid 2), /p/c (3), delete /p/c (4), create sequential under /p (5).
#[test]
fn stat_rules_follow_zookeeper() {
    let mut t = DataTree::default();
    create(&mut t, 2, "/p", b"");
    create(&mut t, 3, "/p/c", b"");
    let p = t.stat("/p").unwrap();
    assert_eq!(
        (p.czxid, p.mzxid, p.cversion, p.pzxid, p.num_children),
        (2, 2, 1, 3, 1)
    );
    assert_eq!(t.stat("/").unwrap().pzxid, 2);
    delete(&mut t, 4, "/p/c");
    let p = t.stat("/p").unwrap();
    assert_eq!((p.cversion, p.pzxid, p.num_children), (2, 4, 0));
    // The sequential suffix comes from the stored create counter (1), not the shown cversion.
    let stored = t.stat_persisted("/p").unwrap().cversion;
    assert_eq!(stored, 1);
    let name = format!("/p/s-{}", zk_tree::path::sequence_suffix(stored));
    assert_eq!(name, "/p/s-0000000001");
    create_full(&mut t, 5, 0, &name, Some(b""), false, stored + 1);
    let p = t.stat("/p").unwrap();
    assert_eq!((p.cversion, p.pzxid, p.num_children), (3, 5, 1));
    // setData: version from the txn, mzxid and mtime move, czxid and ctime stay.
    let r = set_data(&mut t, 7, "/p", b"x", 1);
    let TxnResult::DataSet { stat } = r.result else {
        panic!("{r:?}")
    };
    assert_eq!(
        (stat.czxid, stat.mzxid, stat.version, stat.data_length),
        (2, 7, 1, 1)
    );
    assert_eq!((stat.ctime, stat.mtime), (1_002, 1_007));
}

// Probed: data created as null reads back as a null buffer with dataLength 0.
#[test]
fn null_data_is_kept_distinct_from_empty() {
    let mut t = DataTree::default();
    create_full(&mut t, 2, 0, "/n", None, false, -1);
    create(&mut t, 3, "/e", b"");
    let mut t2 = t.clone();
    assert_eq!(t2.get_data("/n", None).unwrap().0, None);
    assert_eq!(t2.get_data("/e", None).unwrap().0, Some(Bytes::new()));
    assert_eq!(t.stat("/n").unwrap().data_length, 0);
}

#[test]
fn apply_errors_carry_zookeeper_codes() {
    let mut t = DataTree::default();
    assert_eq!(
        create(&mut t, 2, "/a/b", b"").result.err(),
        ErrorCode::NoNode.code()
    );
    create(&mut t, 3, "/a", b"");
    assert_eq!(
        create(&mut t, 4, "/a", b"").result.err(),
        ErrorCode::NodeExists.code()
    );
    create(&mut t, 5, "/a/b", b"");
    assert_eq!(
        delete(&mut t, 6, "/a").result.err(),
        ErrorCode::NotEmpty.code()
    );
    assert_eq!(
        delete(&mut t, 7, "/zz").result.err(),
        ErrorCode::NoNode.code()
    );
    assert_eq!(
        set_data(&mut t, 8, "/zz", b"", 1).result.err(),
        ErrorCode::NoNode.code()
    );
    let err = t.apply(
        &hdr(9, 0, OpCode::Error),
        &TxnBody::Error(ErrorTxn {
            err: ErrorCode::BadVersion.code(),
        }),
    );
    assert_eq!(err.result, TxnResult::Error(-103));
    assert_eq!(t.last_processed_zxid(), 9);
    let e = t.get_data("/zz", None).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NoNode);
}

#[test]
fn ephemerals_belong_to_their_session_and_die_with_it() {
    let mut t = DataTree::default();
    let s = 0x100_0000_0000_0001;
    t.apply(
        &hdr(1, s, OpCode::CreateSession),
        &TxnBody::CreateSession(CreateSessionTxn { time_out: 30_000 }),
    );
    assert_eq!(t.sessions().get(&s), Some(&30_000));
    create(&mut t, 2, "/app", b"");
    create_full(&mut t, 3, s, "/app/e1", Some(b"1"), true, -1);
    create_full(&mut t, 4, s, "/app/e2", Some(b"2"), true, -1);
    assert_eq!(t.stat("/app/e1").unwrap().ephemeral_owner, s);
    assert_eq!(t.ephemerals_of(s, "/"), vec!["/app/e1", "/app/e2"]);
    assert_eq!(t.ephemerals_of(s, "/app/e2"), vec!["/app/e2"]);
    assert_eq!(t.ephemeral_count(), 2);
    let w = WatcherId(9);
    t.get_data("/app/e1", Some(w)).unwrap();
    t.get_children("/app", Some(w)).unwrap();
    let closed = t.apply(
        &hdr(5, s, OpCode::CloseSession),
        &TxnBody::CloseSession(Some(CloseSessionTxn {
            paths2_delete: vec!["/app/e1".into(), "/app/e2".into()],
        })),
    );
    assert_eq!(closed.result, TxnResult::SessionClosed);
    let kinds: Vec<_> = closed
        .events
        .iter()
        .map(|e| (e.event, e.path.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (EventType::NodeDeleted, "/app/e1"),
            (EventType::NodeChildrenChanged, "/app")
        ]
    );
    assert!(closed.events.iter().all(|e| e.zxid == 5));
    assert!(!t.exists("/app/e1") && !t.exists("/app/e2"));
    assert_eq!(t.ephemeral_count(), 0);
    assert!(t.sessions().is_empty());
    assert_eq!(t.stat("/app").unwrap().pzxid, 5);
}

#[test]
fn containers_and_ttls_are_reaped_by_pure_decisions() {
    let mut t = DataTree::default();
    let acl = open();
    t.apply(
        &hdr(2, 0, OpCode::CreateContainer),
        &TxnBody::CreateContainer(CreateContainerTxn {
            path: "/c".into(),
            data: Some(Bytes::new()),
            acl: acl.clone(),
            parent_c_version: -1,
        }),
    );
    assert_eq!(t.stat_persisted("/c").unwrap().ephemeral_owner, i64::MIN);
    assert_eq!(t.stat("/c").unwrap().ephemeral_owner, 0, "clients see 0");
    t.apply(
        &hdr(3, 0, OpCode::CreateTtl),
        &TxnBody::CreateTtl(CreateTtlTxn {
            path: "/t".into(),
            data: Some(Bytes::new()),
            acl,
            parent_c_version: -1,
            ttl: 500,
        }),
    );
    assert_eq!(
        t.stat_persisted("/t").unwrap().ephemeral_owner as u64,
        0xff00_0000_0000_01f4
    );
    // A never-used container is kept (maxNeverUsedIntervalMs 0); the TTL node expires once
    // unmodified for longer than its TTL (mtime is 1003).
    assert!(t.expired_containers_and_ttls(1_003 + 500, 0).is_empty());
    assert_eq!(t.expired_containers_and_ttls(1_003 + 501, 0), vec!["/t"]);
    assert_eq!(
        t.expired_containers_and_ttls(10_000, 1_000),
        vec!["/c", "/t"]
    );
    create(&mut t, 4, "/c/x", b"");
    assert_eq!(t.expired_containers_and_ttls(10_000, 0), vec!["/t"]);
    delete(&mut t, 5, "/c/x");
    assert_eq!(t.expired_containers_and_ttls(10_000, 0), vec!["/c", "/t"]);
    // A TTL node with children stays.
    create(&mut t, 6, "/t/k", b"");
    assert_eq!(t.expired_containers_and_ttls(10_000, 0), vec!["/c"]);
}

#[test]
fn watches_fire_per_zookeeper_rules_with_the_change_zxid() {
    let mut t = DataTree::default();
    let (a, b, c) = (WatcherId(1), WatcherId(2), WatcherId(3));
    t.exists_watch("/x", Some(a)).unwrap_err(); // exist watch on a missing node
    t.get_children("/", Some(b)).unwrap();
    t.watches_mut().add_persistent("/", c, true);
    let ev = create(&mut t, 2, "/x", b"1").events;
    let got: Vec<_> = ev
        .iter()
        .map(|e| (e.watcher, e.event, e.path.as_str(), e.zxid))
        .collect();
    assert_eq!(
        got,
        vec![
            (a, EventType::NodeCreated, "/x", 2),
            (c, EventType::NodeCreated, "/x", 2),
            (b, EventType::NodeChildrenChanged, "/", 2),
        ]
    );
    // One-shot watches are gone; the recursive one stays and sees grandchildren.
    let ev = create(&mut t, 3, "/x/y", b"").events;
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].watcher, ev[0].event), (c, EventType::NodeCreated));
    assert!(set_data(&mut t, 4, "/x", b"2", 1)
        .events
        .iter()
        .all(|e| e.watcher == c));
}

// Reference: ZOOKEEPER-4799 (CVE-2024-23944): events are filtered by READ on the node.
#[test]
fn events_carry_the_acl_for_read_filtering() {
    let mut t = DataTree::default();
    let secret = zk_tree::acl::digest_id("alice:pw");
    let acl = vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "digest".into(),
            id: secret.clone(),
        },
    }];
    t.watches_mut().add_persistent("/", WatcherId(1), true);
    let ev = t.apply(
        &hdr(2, 0, OpCode::Create),
        &TxnBody::Create(CreateTxn {
            path: "/s".into(),
            data: Some(Bytes::new()),
            acl,
            ephemeral: false,
            parent_c_version: -1,
        }),
    );
    let e = &ev.events[0];
    let cfg = AuthConfig::default();
    assert!(!e.visible_to(&cfg, &[]));
    assert!(e.visible_to(
        &cfg,
        &[Id {
            scheme: "digest".into(),
            id: secret
        }]
    ));
}

// Probed: a failed multi comes back as [0, -101, -2]; the tree applies nothing of it.
#[test]
fn failed_multi_applies_nothing_and_reports_per_op() {
    let mut t = DataTree::default();
    let before = t.digest();
    let body = TxnBody::Multi(vec![
        (OpCode::Error.code(), TxnBody::Error(ErrorTxn { err: 0 })),
        (OpCode::Error.code(), TxnBody::Error(ErrorTxn { err: -101 })),
        (OpCode::Error.code(), TxnBody::Error(ErrorTxn { err: -2 })),
    ]);
    let r = t.apply(&hdr(2, 0, OpCode::Multi), &body).result;
    assert_eq!(
        r,
        TxnResult::Multi(vec![
            TxnResult::Error(0),
            TxnResult::Error(-101),
            TxnResult::Error(-2)
        ])
    );
    assert_eq!(t.digest(), before);
    assert_eq!(t.last_processed_zxid(), 2);
}

#[test]
fn successful_multi_applies_all_ops_at_one_zxid() {
    let mut t = DataTree::default();
    let sub = |p: &str| {
        (
            OpCode::Create.code(),
            TxnBody::Create(CreateTxn {
                path: p.into(),
                data: Some(Bytes::new()),
                acl: open(),
                ephemeral: false,
                parent_c_version: -1,
            }),
        )
    };
    let r = t.apply(
        &hdr(2, 0, OpCode::Multi),
        &TxnBody::Multi(vec![
            sub("/m"),
            sub("/m/1"),
            (
                OpCode::SetData.code(),
                TxnBody::SetData(SetDataTxn {
                    path: "/m".into(),
                    data: Some(Bytes::from_static(b"v")),
                    version: 1,
                }),
            ),
        ]),
    );
    assert_eq!(r.result.err(), 0);
    assert_eq!(t.stat("/m/1").unwrap().czxid, 2);
    assert_eq!(t.stat("/m").unwrap().mzxid, 2);
}

#[test]
fn set_acl_sets_aversion_and_shares_equal_lists() {
    let mut t = DataTree::default();
    create(&mut t, 2, "/a", b"");
    create(&mut t, 3, "/b", b"");
    let acl = well_known::read_acl_unsafe();
    for (z, p) in [(4, "/a"), (5, "/b")] {
        let r = t.apply(
            &hdr(z, 0, OpCode::SetAcl),
            &TxnBody::SetAcl(SetAclTxn {
                path: p.into(),
                acl: acl.clone(),
                version: 1,
            }),
        );
        let TxnResult::AclSet { stat } = r.result else {
            panic!()
        };
        assert_eq!(stat.aversion, 1);
    }
    // /zookeeper/config already holds READ_ACL_UNSAFE: all three share one cache entry, and
    // the open list /a and /b had is released once unused.
    assert_eq!(t.acl_cache().len(), 1);
    assert_eq!(
        t.stat_persisted("/a").map(|_| t.acl("/a")),
        Some(t.acl("/zookeeper/config"))
    );
}

#[test]
fn quotas_track_usage_and_enforce_hard_limits() {
    let mut t = DataTree::default();
    create(&mut t, 2, "/q", b"abc");
    create(&mut t, 3, "/q/x", b"12");
    create(&mut t, 4, "/zookeeper/quota/q", b"");
    create(
        &mut t,
        5,
        "/zookeeper/quota/q/zookeeper_limits",
        b"count=-1,bytes=-1,countHardLimit=3,byteHardLimit=-1",
    );
    create(&mut t, 6, "/zookeeper/quota/q/zookeeper_stats", b"");
    let stats = |t: &DataTree| {
        String::from_utf8(
            t.data("/zookeeper/quota/q/zookeeper_stats")
                .unwrap()
                .unwrap()
                .to_vec(),
        )
        .unwrap()
    };
    assert_eq!(stats(&t), "count=2,bytes=5");
    create(&mut t, 7, "/q/y", b"4444");
    assert_eq!(stats(&t), "count=3,bytes=9");
    set_data(&mut t, 8, "/q/y", b"1", 1);
    assert_eq!(stats(&t), "count=3,bytes=6");
    assert_eq!(
        t.check_quota("/q/z", 1, 0).unwrap_err().code(),
        ErrorCode::QuotaExceeded
    );
    assert!(t.check_quota("/q/y", 0, 100).is_ok());
    assert!(t.check_quota("/other", 1, 0).is_ok());
    delete(&mut t, 9, "/q/x");
    assert_eq!(stats(&t), "count=2,bytes=4");
    assert!(t.check_quota("/q/z", 1, 0).is_ok());
}

#[test]
fn set_watches_computes_catch_up_events() {
    let mut t = DataTree::default();
    create(&mut t, 2, "/same", b"");
    create(&mut t, 3, "/changed", b"");
    create(&mut t, 4, "/kids", b"");
    create(&mut t, 5, "/born", b"");
    set_data(&mut t, 6, "/changed", b"x", 1);
    create(&mut t, 7, "/kids/k", b"");
    let w = WatcherId(5);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let events = t.set_watches(
        5,
        &s(&["/same", "/changed", "/gone"]),
        &s(&["/born", "/unborn"]),
        &s(&["/kids", "/same"]),
        &s(&["/p"]),
        &s(&["/r"]),
        w,
    );
    let got: Vec<_> = events.iter().map(|e| (e.event, e.path.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (EventType::NodeDataChanged, "/changed"),
            (EventType::NodeDeleted, "/gone"),
            (EventType::NodeCreated, "/born"),
            (EventType::NodeChildrenChanged, "/kids"),
        ]
    );
    use zk_proto::WatcherType as T;
    assert!(t.watches().contains("/same", w, T::Data));
    assert!(t.watches().contains("/unborn", w, T::Data));
    assert!(t.watches().contains("/same", w, T::Children));
    assert!(!t.watches().contains("/kids", w, T::Children));
    assert!(t.watches().contains("/p", w, T::Persistent));
    assert!(t.watches().contains("/r", w, T::PersistentRecursive));
}

#[test]
fn snapshot_round_trips_tree_sessions_acls_and_digest() {
    let mut t = DataTree::default();
    t.apply(
        &hdr(1, 77, OpCode::CreateSession),
        &TxnBody::CreateSession(CreateSessionTxn { time_out: 4_000 }),
    );
    create(&mut t, 2, "/a", b"hello");
    create_full(&mut t, 3, 77, "/a/e", None, true, -1);
    create(&mut t, 4, "/b", b"");
    t.apply(
        &hdr(5, 0, OpCode::SetAcl),
        &TxnBody::SetAcl(SetAclTxn {
            path: "/b".into(),
            acl: well_known::creator_all_acl()
                .into_iter()
                .map(|mut a| {
                    a.id = Id {
                        scheme: "ip".into(),
                        id: "10.0.0.0/8".into(),
                    };
                    a
                })
                .collect(),
            version: 1,
        }),
    );
    let mut out = Vec::new();
    write_snapshot(&t, &mut out).unwrap();
    let mut r = Reader::with_len_max(Bytes::from(out.clone()), usize::MAX);
    let loaded = read_snapshot(TreeConfig::default(), &mut r).unwrap();
    assert!(r.is_empty());
    assert_eq!(loaded.digest(), t.digest());
    assert_eq!(loaded.node_count(), t.node_count());
    assert_eq!(loaded.sessions(), t.sessions());
    assert_eq!(loaded.ephemerals_of(77, "/"), vec!["/a/e"]);
    for p in ["/", "/a", "/a/e", "/b", "/zookeeper/config"] {
        assert_eq!(loaded.stat(p), t.stat(p), "{p}");
        assert_eq!(loaded.acl(p), t.acl(p), "{p}");
        assert_eq!(loaded.data(p), t.data(p), "{p}");
    }
    // Writing the loaded tree gives the same bytes.
    let mut again = Vec::new();
    write_snapshot(&loaded, &mut again).unwrap();
    assert_eq!(again, out);
}

#[test]
fn snapshot_with_an_orphan_node_is_refused() {
    let mut out = Vec::new();
    0i32.write(&mut out); // sessions
    0i32.write(&mut out); // acls
    for p in ["", "/x/y"] {
        p.to_owned().write(&mut out);
        Some(Bytes::new()).write(&mut out);
        (-1i64).write(&mut out);
        StatPersisted::default().write(&mut out);
    }
    "/".to_owned().write(&mut out);
    let mut r = Reader::new(Bytes::from(out));
    let e = read_snapshot(TreeConfig::default(), &mut r).unwrap_err();
    assert!(e.to_string().contains("/x/y"), "{e}");
}

#[test]
fn digest_is_incremental_and_order_independent_of_history() {
    let mut a = DataTree::default();
    create(&mut a, 2, "/x", b"1");
    create(&mut a, 3, "/y", b"2");
    delete(&mut a, 4, "/y");
    // Reloading from a snapshot recomputes the digest from scratch: it must agree.
    let mut out = Vec::new();
    write_snapshot(&a, &mut out).unwrap();
    let b = read_snapshot(TreeConfig::default(), &mut Reader::new(Bytes::from(out))).unwrap();
    assert_eq!(a.digest(), b.digest());
    let fresh = DataTree::default();
    assert_ne!(a.digest(), fresh.digest());
}

#[test]
fn snapshot_copy_is_frozen_while_the_tree_moves_on() {
    let mut t = DataTree::default();
    for i in 0..5000 {
        create(&mut t, 2 + i, &format!("/n{i}"), b"v");
    }
    let frozen = t.snapshot_copy();
    let mut before = Vec::new();
    write_snapshot(&t, &mut before).unwrap();
    let digest = t.digest();
    set_data(&mut t, 6000, "/n7", b"changed", 1);
    delete(&mut t, 6001, "/n8");
    create(&mut t, 6002, "/new", b"");
    let mut after = Vec::new();
    write_snapshot(&frozen, &mut after).unwrap();
    assert_eq!(after, before, "the copy did not move");
    assert_eq!(frozen.digest(), digest);
    assert_ne!(t.digest(), digest);
    assert!(t.exists("/new") && !frozen.exists("/new"));
}
