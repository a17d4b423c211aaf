//! Security regressions through the wire, one test each (the ACL truth table is
//! `acl_truth_table.rs`; frames, connection caps and the 4lw allowlist are in
//! `crates/zk-server/tests/protocol.rs`; a non-reading client is `bins/zkd/tests/flood.rs`).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use zk_proto::*;
use zk_tests::raw::RawClient;
use zk_tests::zkd::Zkd;

fn digest(cred: &str) -> Id {
    Id {
        scheme: "digest".into(),
        id: zk_tree::acl::digest_id(cred),
    }
}

fn call_ok(c: &mut RawClient, r: Request) -> Response {
    let (h, body) = c.call(&r).unwrap();
    assert_eq!(h.err, 0, "{r:?}");
    body
}

/// CVE-2024-23944: a persistent recursive watcher learns nothing about nodes under its
/// watch that it may not READ: no NodeCreated, NodeDataChanged or NodeDeleted for them,
/// while it does get the events of the nodes it may read (so the test is not vacuous).
#[test]
fn persistent_recursive_watches_never_reveal_unreadable_nodes() {
    let dir = std::env::temp_dir().join(format!("zkd-sec-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let zkd = Zkd::start(&dir, |_| {});
    let mut owner = RawClient::connect(zkd.addr, 30_000).unwrap();
    call_ok(
        &mut owner,
        Request::Auth(AuthPacket {
            r#type: 0,
            scheme: "digest".into(),
            auth: Some(Bytes::from_static(b"owner:pw")),
        }),
    );
    let mut watcher = RawClient::connect(zkd.addr, 30_000).unwrap();
    let create = |path: &str, acl: Vec<Acl>| {
        Request::Create(CreateRequest {
            path: path.into(),
            data: Some(Bytes::from_static(b"v")),
            acl,
            flags: 0,
        })
    };
    call_ok(&mut owner, create("/w", well_known::open_acl_unsafe()));
    for mode in [AddWatchMode::PersistentRecursive, AddWatchMode::Persistent] {
        let path = if mode == AddWatchMode::Persistent {
            "/w/secret"
        } else {
            "/w"
        };
        call_ok(
            &mut watcher,
            Request::AddWatch(AddWatchRequest {
                path: path.into(),
                mode: mode as i32,
            }),
        );
    }
    let private = vec![Acl {
        perms: perms::ALL,
        id: digest("owner:pw"),
    }];
    // Unreadable to the watcher: created, changed, a child created, deleted.
    call_ok(&mut owner, create("/w/secret", private.clone()));
    call_ok(&mut owner, create("/w/secret/deeper", private.clone()));
    call_ok(
        &mut owner,
        Request::SetData(SetDataRequest {
            path: "/w/secret".into(),
            data: Some(Bytes::from_static(b"changed")),
            version: -1,
        }),
    );
    for p in ["/w/secret/deeper", "/w/secret"] {
        call_ok(
            &mut owner,
            Request::Delete(DeleteRequest {
                path: p.into(),
                version: -1,
            }),
        );
    }
    // Readable: the same steps.
    call_ok(&mut owner, create("/w/open", well_known::open_acl_unsafe()));
    call_ok(
        &mut owner,
        Request::SetData(SetDataRequest {
            path: "/w/open".into(),
            data: Some(Bytes::from_static(b"changed")),
            version: -1,
        }),
    );
    // A round trip on the watcher's connection: every event before it has arrived.
    call_ok(
        &mut watcher,
        Request::Sync(SyncRequest { path: "/w".into() }),
    );
    std::thread::sleep(Duration::from_millis(100));
    call_ok(
        &mut watcher,
        Request::Sync(SyncRequest { path: "/w".into() }),
    );
    let events: Vec<(String, i32)> = watcher
        .take_events()
        .into_iter()
        .map(|(_, e)| (e.path, e.r#type))
        .collect();
    let leaked: Vec<_> = events
        .iter()
        .filter(|(p, _)| p.starts_with("/w/secret"))
        .collect();
    assert!(
        leaked.is_empty(),
        "events about unreadable nodes: {leaked:?}"
    );
    assert_eq!(
        events,
        vec![
            ("/w/open".to_owned(), EventType::NodeCreated as i32),
            ("/w/open".to_owned(), EventType::NodeDataChanged as i32),
        ],
        "the watcher should see exactly the readable node's events"
    );
    drop(zkd);
    let _ = std::fs::remove_dir_all(&dir);
}
