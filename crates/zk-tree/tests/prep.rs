//! Every error code prep and the tree can produce, each through the public API, in
//! ZooKeeper's order of checks (`PrepRequestProcessor`). Probed behaviours say so.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use zk_proto::*;
use zk_tree::prep::{prep_request, required_perm, PendingChanges, PrepContext, Prepared};
use zk_tree::{DataTree, TreeConfig, TreeError, TxnResult};

const SESSION: i64 = 0x100;

struct Fixture {
    tree: DataTree,
    pending: PendingChanges,
    zxid: i64,
    auth: Vec<Id>,
    enforce_quota: bool,
    local_session: bool,
    max_children: usize,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with_config(TreeConfig::default())
    }

    fn with_config(config: TreeConfig) -> Fixture {
        Fixture {
            tree: DataTree::new(config),
            pending: PendingChanges::default(),
            zxid: 1,
            auth: vec![Id {
                scheme: "ip".into(),
                id: "127.0.0.1".into(),
            }],
            enforce_quota: false,
            local_session: false,
            max_children: 0,
        }
    }

    /// Prepares without applying (the txn stays pending).
    fn prep(&mut self, r: Request) -> Prepared {
        self.zxid += 1;
        let ctx = PrepContext {
            session: SESSION,
            auth: &self.auth,
            enforce_quota: self.enforce_quota,
            local_session: self.local_session,
            max_children: self.max_children,
        };
        prep_request(
            &self.tree,
            &mut self.pending,
            &ctx,
            1,
            &r,
            self.zxid,
            5_000 + self.zxid,
        )
    }

    /// Prepares and applies; returns the applied result.
    fn run(&mut self, r: Request) -> TxnResult {
        let p = self.prep(r);
        let applied = self.tree.apply(&p.header, &p.body);
        self.pending.applied(p.header.zxid);
        assert_eq!(
            p.error.as_ref().map(|e| e.code().code()).unwrap_or(0),
            applied.result.err(),
            "prep and apply disagree: {p:?} -> {applied:?}"
        );
        applied.result
    }

    fn err(&mut self, r: Request) -> ErrorCode {
        let p = self.prep(r);
        let code = p
            .error
            .as_ref()
            .map(TreeError::code)
            .unwrap_or(ErrorCode::Ok);
        let applied = self.tree.apply(&p.header, &p.body);
        self.pending.applied(p.header.zxid);
        if !matches!(p.body, TxnBody::Multi(_)) {
            assert_eq!(applied.result.err(), code.code());
        }
        code
    }
}

fn create_req(path: &str, flags: i32) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"d")),
        acl: well_known::open_acl_unsafe(),
        flags,
    }
}

fn create(path: &str) -> Request {
    Request::Create(create_req(path, 0))
}

fn with_acl(path: &str, acl: Vec<Acl>) -> Request {
    Request::Create(CreateRequest {
        acl,
        ..create_req(path, 0)
    })
}

fn digest_acl(perms: i32, user_pw: &str) -> Vec<Acl> {
    vec![Acl {
        perms,
        id: Id {
            scheme: "digest".into(),
            id: zk_tree::acl::digest_id(user_pw),
        },
    }]
}

fn delete(path: &str, version: i32) -> Request {
    Request::Delete(DeleteRequest {
        path: path.into(),
        version,
    })
}

fn set_data(path: &str, version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(Bytes::from_static(b"new")),
        version,
    })
}

#[test]
fn create_errors_in_zookeepers_order() {
    let mut f = Fixture::new();
    assert_eq!(
        f.err(Request::Create(create_req("/a", 7))),
        ErrorCode::BadArguments
    );
    assert_eq!(f.err(create("a")), ErrorCode::BadArguments);
    assert_eq!(f.err(create("/a\0")), ErrorCode::BadArguments);
    // Probed: `/a/` gets NONODE while /a is missing, BADARGUMENTS once it exists.
    assert_eq!(f.err(create("/a/")), ErrorCode::NoNode);
    assert_eq!(f.err(create("/a/b")), ErrorCode::NoNode);
    // Probed: an empty ACL list is INVALIDACL (checked before the parent).
    assert_eq!(f.err(with_acl("/x/y", vec![])), ErrorCode::InvalidAcl);
    assert_eq!(f.run(create("/a")).err(), 0);
    assert_eq!(f.err(create("/a/")), ErrorCode::BadArguments);
    assert_eq!(f.err(create("/a/..")), ErrorCode::BadArguments);
    assert_eq!(f.err(create("/a/\u{1F600}")), ErrorCode::BadArguments);
    assert_eq!(f.err(create("/a")), ErrorCode::NodeExists);
    // Probed: creating under /zookeeper is allowed.
    assert_eq!(f.err(create("/zookeeper/x")), ErrorCode::Ok);
}

#[test]
fn create_checks_parent_create_permission() {
    let mut f = Fixture::new();
    f.run(with_acl("/locked", digest_acl(perms::ALL, "bob:pw")));
    assert_eq!(f.err(create("/locked/x")), ErrorCode::NoAuth);
    f.auth.push(Id {
        scheme: "digest".into(),
        id: zk_tree::acl::digest_id("bob:pw"),
    });
    assert_eq!(f.err(create("/locked/x")), ErrorCode::Ok);
    // `auth` ACLs become the caller's authenticated ids.
    f.run(Request::Create(CreateRequest {
        acl: well_known::creator_all_acl(),
        ..create_req("/mine", 0)
    }));
    assert_eq!(
        &*f.tree.acl("/mine").unwrap(),
        digest_acl(perms::ALL, "bob:pw").as_slice()
    );
}

#[test]
fn auth_acl_without_credentials_is_invalid() {
    let mut f = Fixture::new();
    let r = Request::Create(CreateRequest {
        acl: well_known::creator_all_acl(),
        ..create_req("/mine", 0)
    });
    assert_eq!(f.err(r), ErrorCode::InvalidAcl);
}

#[test]
fn ephemeral_rules() {
    let mut f = Fixture::new();
    f.run(Request::Create(create_req(
        "/e",
        CreateMode::Ephemeral.code(),
    )));
    assert_eq!(f.tree.stat("/e").unwrap().ephemeral_owner, SESSION);
    assert_eq!(
        f.err(create("/e/child")),
        ErrorCode::NoChildrenForEphemerals
    );
    f.local_session = true;
    assert_eq!(
        f.err(Request::Create(create_req(
            "/e2",
            CreateMode::Ephemeral.code()
        ))),
        ErrorCode::EphemeralOnLocalSession
    );
}

#[test]
fn sequential_names_use_pending_state() {
    let mut f = Fixture::new();
    f.run(create("/q"));
    // Two sequential creates prepared before either applies get distinct suffixes.
    let seq = || Request::Create(create_req("/q/n-", CreateMode::PersistentSequential.code()));
    let a = f.prep(seq());
    let b = f.prep(seq());
    let path_of = |p: &Prepared| match &p.body {
        TxnBody::Create(t) => t.path.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(path_of(&a), "/q/n-0000000000");
    assert_eq!(path_of(&b), "/q/n-0000000001");
    for p in [a, b] {
        assert_eq!(f.tree.apply(&p.header, &p.body).result.err(), 0);
        f.pending.applied(p.header.zxid);
    }
    assert!(f.pending.is_empty());
    assert_eq!(f.tree.stat("/q").unwrap().num_children, 2);
    // A sequential create may end with a slash.
    let r = f.run(Request::Create(create_req(
        "/q/",
        CreateMode::PersistentSequential.code(),
    )));
    assert!(
        matches!(r, TxnResult::Created { ref path, .. } if path == "/q/0000000002"),
        "{r:?}"
    );
}

#[test]
fn container_and_ttl_creates() {
    let mut f = Fixture::new();
    // Reference: `create` (op 1) with flags 4 makes a plain persistent node.
    f.run(Request::Create(create_req("/plain", 4)));
    assert_eq!(f.tree.stat("/plain").unwrap().ephemeral_owner, 0);
    f.run(Request::CreateContainer(create_req("/c", 4)));
    assert_eq!(
        f.tree.stat_persisted("/c").unwrap().ephemeral_owner,
        i64::MIN
    );
    // Probed: clients see 0 as the owner of container and TTL nodes.
    assert_eq!(f.tree.stat("/c").unwrap().ephemeral_owner, 0);
    let ttl = |ttl: i64, flags: i32| {
        Request::CreateTtl(CreateTtlRequest {
            path: "/t".into(),
            data: None,
            acl: well_known::open_acl_unsafe(),
            flags,
            ttl,
        })
    };
    assert_eq!(f.err(ttl(0, 5)), ErrorCode::BadArguments);
    assert_eq!(f.err(ttl(1000, 0)), ErrorCode::BadArguments);
    assert_eq!(
        f.err(Request::Create(create_req("/t", 5))),
        ErrorCode::BadArguments
    );
    assert_eq!(f.err(ttl(1000, 5)), ErrorCode::Ok);
    // Probed: without extendedTypesEnabled, createTTL is UNIMPLEMENTED and takes a zxid.
    let mut g = Fixture::with_config(TreeConfig {
        extended_types_enabled: false,
        ..TreeConfig::default()
    });
    assert_eq!(g.err(ttl(1000, 5)), ErrorCode::Unimplemented);
    assert_eq!(g.tree.last_processed_zxid(), g.zxid);
}

#[test]
fn delete_errors() {
    let mut f = Fixture::new();
    // Probed: deleting /zookeeper is BADARGUMENTS.
    for p in [
        "/",
        "/zookeeper",
        "/zookeeper/config",
        "/zookeeper/quota",
        "nope",
    ] {
        assert_eq!(f.err(delete(p, -1)), ErrorCode::BadArguments, "{p}");
    }
    assert_eq!(f.err(delete("/missing/x", -1)), ErrorCode::NoNode);
    assert_eq!(f.err(delete("/missing", -1)), ErrorCode::NoNode);
    f.run(create("/d"));
    f.run(create("/d/k"));
    assert_eq!(f.err(delete("/d", -1)), ErrorCode::NotEmpty);
    assert_eq!(f.err(delete("/d/k", 3)), ErrorCode::BadVersion);
    assert_eq!(f.err(delete("/d/k", 0)), ErrorCode::Ok);
    f.run(with_acl(
        "/nodelete",
        vec![Acl {
            perms: perms::ALL & !perms::DELETE,
            id: well_known::anyone(),
        }],
    ));
    f.run(create("/nodelete/k"));
    assert_eq!(f.err(delete("/nodelete/k", -1)), ErrorCode::NoAuth);
    f.run(create("/plain"));
    assert_eq!(
        f.err(Request::DeleteContainer(DeleteRequest {
            path: "/plain".into(),
            version: -1
        })),
        ErrorCode::BadArguments
    );
}

#[test]
fn set_data_and_acl_errors() {
    let mut f = Fixture::new();
    assert_eq!(f.err(set_data("/nope", -1)), ErrorCode::NoNode);
    assert_eq!(f.err(set_data("/bad/", -1)), ErrorCode::BadArguments);
    f.run(create("/s"));
    assert_eq!(f.err(set_data("/s", 5)), ErrorCode::BadVersion);
    assert!(matches!(f.run(set_data("/s", 0)), TxnResult::DataSet { stat } if stat.version == 1));
    f.run(with_acl("/ro", well_known::read_acl_unsafe()));
    assert_eq!(f.err(set_data("/ro", -1)), ErrorCode::NoAuth);
    let set_acl = |path: &str, acl: Vec<Acl>, version: i32| {
        Request::SetAcl(SetAclRequest {
            path: path.into(),
            acl,
            version,
        })
    };
    assert_eq!(
        f.err(set_acl("/ro", well_known::open_acl_unsafe(), -1)),
        ErrorCode::NoAuth
    );
    assert_eq!(f.err(set_acl("/s", vec![], -1)), ErrorCode::InvalidAcl);
    assert_eq!(
        f.err(set_acl("/s", well_known::read_acl_unsafe(), 4)),
        ErrorCode::BadVersion
    );
    assert!(matches!(
        f.run(set_acl("/s", well_known::read_acl_unsafe(), 0)),
        TxnResult::AclSet { stat } if stat.aversion == 1
    ));
    assert_eq!(
        f.err(set_acl("/nope", well_known::read_acl_unsafe(), -1)),
        ErrorCode::NoNode
    );
}

#[test]
fn standalone_check_is_a_txn_and_checks_version() {
    let mut f = Fixture::new();
    f.run(create("/c"));
    let check = |version| {
        Request::Check(CheckVersionRequest {
            path: "/c".into(),
            version,
        })
    };
    assert_eq!(f.err(check(3)), ErrorCode::BadVersion);
    assert_eq!(f.err(check(0)), ErrorCode::Ok);
}

#[test]
fn quotas_are_enforced_only_when_asked() {
    let mut f = Fixture::new();
    f.run(create("/q"));
    f.run(create("/zookeeper/quota/q"));
    f.run(Request::Create(CreateRequest {
        data: Some(Bytes::from_static(
            b"count=-1,bytes=-1,countHardLimit=2,byteHardLimit=-1",
        )),
        ..create_req("/zookeeper/quota/q/zookeeper_limits", 0)
    }));
    f.run(create("/zookeeper/quota/q/zookeeper_stats"));
    f.run(create("/q/1"));
    assert_eq!(f.err(create("/q/2")), ErrorCode::Ok, "soft by default");
    f.enforce_quota = true;
    assert_eq!(f.err(create("/q/3")), ErrorCode::QuotaExceeded);
}

// Probed: a failed multi answers [0, -101, -2], applies nothing and still takes a zxid.
#[test]
fn failed_multi_keeps_zookeepers_layout() {
    let mut f = Fixture::new();
    let before = f.tree.digest();
    let p = f.prep(Request::Multi(vec![
        MultiOp::Create(create_req("/m", 0)),
        MultiOp::Delete(DeleteRequest {
            path: "/missing".into(),
            version: -1,
        }),
        MultiOp::SetData(SetDataRequest {
            path: "/m".into(),
            data: None,
            version: -1,
        }),
    ]));
    assert_eq!(
        p.error.as_ref().map(TreeError::code),
        Some(ErrorCode::NoNode)
    );
    let TxnBody::Multi(subs) = &p.body else {
        panic!("{p:?}")
    };
    let types: Vec<i32> = subs.iter().map(|(t, _)| *t).collect();
    assert_eq!(types, vec![1, -1, -1]);
    assert!(
        f.pending.is_empty(),
        "the failed multi's records were rolled back"
    );
    let applied = f.tree.apply(&p.header, &p.body);
    assert_eq!(
        applied.result,
        TxnResult::Multi(vec![
            TxnResult::Error(0),
            TxnResult::Error(-101),
            TxnResult::Error(-2)
        ])
    );
    assert_eq!(f.tree.digest(), before);
    assert!(!f.tree.exists("/m"));
}

#[test]
fn multi_sees_its_own_earlier_ops() {
    let mut f = Fixture::new();
    let r = f.run(Request::Multi(vec![
        MultiOp::Create(create_req("/m", 0)),
        MultiOp::Create2(create_req("/m/k", 0)),
        MultiOp::SetData(SetDataRequest {
            path: "/m".into(),
            data: None,
            version: 0,
        }),
        MultiOp::Check(CheckVersionRequest {
            path: "/m".into(),
            version: 1,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/m/k".into(),
            version: 0,
        }),
    ]));
    assert_eq!(r.err(), 0, "{r:?}");
    let s = f.tree.stat("/m").unwrap();
    assert_eq!((s.version, s.num_children, s.cversion), (1, 0, 2));
    // A read op in a write multi is refused.
    let r = f.err(Request::Multi(vec![MultiOp::GetData(GetDataRequest {
        path: "/m".into(),
        watch: false,
    })]));
    assert_eq!(r, ErrorCode::BadArguments);
}

#[test]
fn close_session_lists_pending_ephemerals_too() {
    let mut f = Fixture::new();
    f.run(Request::Create(create_req(
        "/e1",
        CreateMode::Ephemeral.code(),
    )));
    let pending = f.prep(Request::Create(create_req(
        "/e2",
        CreateMode::Ephemeral.code(),
    )));
    let close = f.prep(Request::CloseSession);
    // In ZooKeeper's (Java hash set) order: the copy of {/e1} has 2 buckets, /e2 makes
    // it 4, and "/e2".hashCode() & 3 = 0 comes before "/e1".hashCode() & 3 = 3.
    assert_eq!(
        close.body,
        TxnBody::CloseSession(Some(CloseSessionTxn {
            paths2_delete: vec!["/e2".into(), "/e1".into()]
        }))
    );
    for p in [pending, close] {
        f.tree.apply(&p.header, &p.body);
        f.pending.applied(p.header.zxid);
    }
    assert!(!f.tree.exists("/e1") && !f.tree.exists("/e2"));
    assert!(f.pending.is_empty());
}

#[test]
fn read_ops_are_not_prepared() {
    let mut f = Fixture::new();
    let p = f.prep(Request::GetData(GetDataRequest {
        path: "/".into(),
        watch: false,
    }));
    assert_eq!(p.error.map(|e| e.code()), Some(ErrorCode::Unimplemented));
}

#[test]
fn per_op_permissions() {
    assert_eq!(required_perm(OpCode::Create2), Some(perms::CREATE));
    assert_eq!(required_perm(OpCode::Delete), Some(perms::DELETE));
    assert_eq!(required_perm(OpCode::SetData), Some(perms::WRITE));
    assert_eq!(required_perm(OpCode::SetAcl), Some(perms::ADMIN));
    assert_eq!(required_perm(OpCode::Exists), Some(perms::READ));
    assert_eq!(
        required_perm(OpCode::GetAcl),
        Some(perms::READ | perms::ADMIN)
    );
    assert_eq!(required_perm(OpCode::Ping), None);
}

#[test]
fn the_children_cap_counts_pending_creates_and_frees_on_delete() {
    let mut f = Fixture::new();
    f.run(create("/p"));
    f.max_children = 3;
    // Three creates prepared before any applies: the fourth is refused all the same.
    let prepared: Vec<Prepared> = (0..3)
        .map(|i| f.prep(create(&format!("/p/c{i}"))))
        .collect();
    assert!(prepared.iter().all(|p| p.error.is_none()));
    let fourth = f.prep(create("/p/c3"));
    assert_eq!(
        fourth.error,
        Some(TreeError::TooManyChildren {
            parent: "/p".into(),
            limit: 3
        })
    );
    assert_eq!(
        fourth.error.as_ref().map(TreeError::code),
        Some(ErrorCode::QuotaExceeded)
    );
    for p in prepared.into_iter().chain([fourth]) {
        f.tree.apply(&p.header, &p.body);
        f.pending.applied(p.header.zxid);
    }
    assert_eq!(f.tree.stat("/p").unwrap().num_children, 3);
    // Other parents are not affected; a delete makes room again.
    assert_eq!(f.err(create("/q")), ErrorCode::Ok);
    assert_eq!(f.err(delete("/p/c0", -1)), ErrorCode::Ok);
    assert_eq!(f.err(create("/p/c4")), ErrorCode::Ok);
    assert_eq!(f.err(create("/p/c5")), ErrorCode::QuotaExceeded);
}
