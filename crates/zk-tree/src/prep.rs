//! Turning a client's write request into a txn, as ZooKeeper's `PrepRequestProcessor` does:
//! validate, check ACLs, versions and quotas against the tree *as it will be* once the txns
//! already prepared are applied, and produce either the txn or an error txn (which still
//! takes a zxid, as in ZooKeeper).
//!
//! "As it will be" is [`PendingChanges`] (ZooKeeper's `outstandingChanges`): one record per
//! path changed by a prepared but not yet applied txn. [`PendingChanges::applied`] drops
//! them once the tree has caught up.
//!
//! The checks run in ZooKeeper's order, because the order decides which error a client sees
//! (e.g. a create of `/a/` gets NONODE when `/a` is missing, BADARGUMENTS otherwise).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use zk_proto::{
    perms, Acl, CheckVersionRequest, CheckVersionTxn, CloseSessionTxn, CreateContainerTxn,
    CreateMode, CreateSessionTxn, CreateTtlTxn, CreateTxn, DeleteRequest, DeleteTxn, ErrorCode,
    ErrorTxn, Id, Jute, MultiOp, OpCode, Request, SetAclRequest, SetAclTxn, SetDataRequest,
    SetDataTxn, StatPersisted, TxnBody, TxnHeader,
};

use crate::acl;
use crate::ephemeral::{classify, ttl_owner, EphemeralType, CONTAINER_OWNER};
use crate::error::{Result, TreeError};
use crate::path;
use crate::tree::DataTree;

/// What prep needs to know about a node: enough to decide, never the data itself.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub stat: StatPersisted,
    pub child_count: i32,
    pub acl: Arc<[Acl]>,
    pub data_len: usize,
}

/// A path's state after a prepared txn (`None`: deleted by it).
#[derive(Debug, Clone)]
struct ChangeRecord {
    zxid: i64,
    node: Option<NodeView>,
}

/// Changes prepared but not yet applied to the tree (`outstandingChanges`).
#[derive(Debug, Default, Clone)]
pub struct PendingChanges {
    /// Hashed with foldhash rather than SipHash (1% of a setData's CPU): fixed-seeded, as
    /// the tree's own path index is, and it only holds txns in flight.
    by_path: HashMap<String, ChangeRecord, foldhash::fast::FixedState>,
    /// Every record in preparation order, to drop them once applied and to roll back a
    /// failed multi.
    order: VecDeque<(i64, String, Option<NodeView>)>,
}

impl PendingChanges {
    /// The node at `path` as prep sees it: the latest pending record, else the tree.
    pub fn node(&self, tree: &DataTree, path: &str) -> Option<NodeView> {
        if let Some(r) = self.by_path.get(path) {
            return r.node.clone();
        }
        // One path lookup for all four (each lookup hashes the path and walks the node's
        // ancestors to confirm it).
        let n = tree.node_of(path)?;
        Some(NodeView {
            stat: n.stat.persisted(),
            child_count: i32::try_from(n.child_count()).unwrap_or(i32::MAX),
            acl: tree.acl_of(n),
            data_len: n.data().map_or(0, <[u8]>::len),
        })
    }

    fn record(&mut self, zxid: i64, path: &str, node: Option<NodeView>) {
        self.by_path.insert(
            path.to_owned(),
            ChangeRecord {
                zxid,
                node: node.clone(),
            },
        );
        self.order.push_back((zxid, path.to_owned(), node));
    }

    /// Forgets records of txns up to `zxid`, which the tree has now applied.
    pub fn applied(&mut self, zxid: i64) {
        while let Some((z, _, _)) = self.order.front() {
            if *z > zxid {
                break;
            }
            let Some((z, p, _)) = self.order.pop_front() else {
                break;
            };
            if self.by_path.get(&p).is_some_and(|r| r.zxid == z) {
                self.by_path.remove(&p);
            }
        }
    }

    /// Number of pending records.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// True when the tree is up to date with everything prepared.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// Drops records added at `zxid` after position `mark` (a failed multi's partial work),
    /// restoring what earlier txns had recorded for those paths.
    fn rollback(&mut self, mark: usize) {
        let undone: Vec<(i64, String, Option<NodeView>)> = self.order.drain(mark..).collect();
        let affected: BTreeSet<String> = undone.into_iter().map(|(_, p, _)| p).collect();
        for p in &affected {
            self.by_path.remove(p);
        }
        // Re-establish the newest surviving record of each affected path.
        for (z, p, node) in self.order.iter().rev() {
            if affected.contains(p) && !self.by_path.contains_key(p) {
                self.by_path.insert(
                    p.clone(),
                    ChangeRecord {
                        zxid: *z,
                        node: node.clone(),
                    },
                );
            }
        }
    }
}

/// Who is asking, and the switches that change prep's answers.
#[derive(Debug, Clone)]
pub struct PrepContext<'a> {
    /// The session the request came from.
    pub session: i64,
    /// The session's authenticated identities (ip always among them).
    pub auth: &'a [Id],
    /// `enforceQuota=true`: hard quota limits reject writes.
    pub enforce_quota: bool,
    /// The session is local (not known to the quorum): it cannot own ephemerals.
    pub local_session: bool,
    /// `guardrails.maxChildren` (zkd): a create under a parent that already has this many
    /// children is refused with QUOTAEXCEEDED (0 = no cap).
    pub max_children: usize,
}

/// The txn a request became, with the reason when it became an error txn.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub header: TxnHeader,
    pub body: TxnBody,
    pub error: Option<TreeError>,
}

impl Prepared {
    /// The txn as the log and the peers carry it: a `TxnEntry`'s encoding without a
    /// digest, written from the parts in place (no clone of them).
    pub fn encode(&self) -> Bytes {
        let mut txn = Vec::with_capacity(self.header.encoded_len() + self.body.encoded_len());
        self.header.write(&mut txn);
        self.body.write(&mut txn);
        Bytes::from(txn)
    }
}

/// Prepares a write request (create*, delete*, setData, setACL, check, multi) or a session
/// txn (createSession via [`prep_create_session`], closeSession) at `zxid`.
pub fn prep_request(
    tree: &DataTree,
    pending: &mut PendingChanges,
    ctx: &PrepContext<'_>,
    cxid: i32,
    request: &Request,
    zxid: i64,
    time: i64,
) -> Prepared {
    let header = |t: i32| TxnHeader {
        client_id: ctx.session,
        cxid,
        zxid,
        time,
        r#type: t,
    };
    let mut p = Preparer {
        tree,
        pending,
        ctx,
        zxid,
        time,
    };
    let result = match request {
        Request::Multi(ops) => return p.multi(ops, header(OpCode::Multi.code())),
        Request::CloseSession => Ok((OpCode::CloseSession, p.close_session())),
        other => p.single(other),
    };
    match result {
        Ok((op, body)) => Prepared {
            header: header(op.code()),
            body,
            error: None,
        },
        Err(e) => Prepared {
            header: header(OpCode::Error.code()),
            body: TxnBody::Error(ErrorTxn {
                err: e.code().code(),
            }),
            error: Some(e),
        },
    }
}

/// The txn that opens a session with its negotiated timeout.
pub fn prep_create_session(
    session: i64,
    cxid: i32,
    timeout_ms: i32,
    zxid: i64,
    time: i64,
) -> Prepared {
    Prepared {
        header: TxnHeader {
            client_id: session,
            cxid,
            zxid,
            time,
            r#type: OpCode::CreateSession.code(),
        },
        body: TxnBody::CreateSession(CreateSessionTxn {
            time_out: timeout_ms,
        }),
        error: None,
    }
}

/// The permission an operation needs on the node it addresses (or, for create and delete,
/// on the parent): ZooKeeper's per-op table.
pub fn required_perm(op: OpCode) -> Option<i32> {
    Some(match op {
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            perms::CREATE
        }
        OpCode::Delete | OpCode::DeleteContainer => perms::DELETE,
        OpCode::SetData => perms::WRITE,
        OpCode::SetAcl => perms::ADMIN,
        OpCode::GetData
        | OpCode::Exists
        | OpCode::GetChildren
        | OpCode::GetChildren2
        | OpCode::GetAllChildrenNumber
        | OpCode::AddWatch
        | OpCode::Check => perms::READ,
        OpCode::GetAcl => perms::READ | perms::ADMIN,
        _ => return None,
    })
}

struct Preparer<'a, 'b> {
    tree: &'a DataTree,
    pending: &'a mut PendingChanges,
    ctx: &'a PrepContext<'b>,
    zxid: i64,
    time: i64,
}

fn special_path(p: &str) -> bool {
    matches!(
        p,
        "/" | "/zookeeper" | "/zookeeper/quota" | "/zookeeper/config"
    )
}

/// `checkAndIncVersion`: -1 matches any version.
fn check_and_inc_version(current: i32, expected: i32, p: &str) -> Result<i32> {
    if expected != -1 && expected != current {
        return Err(TreeError::BadVersion {
            path: p.to_owned(),
            expected,
            actual: current,
        });
    }
    Ok(current.wrapping_add(1))
}

impl Preparer<'_, '_> {
    fn node(&self, p: &str) -> Option<NodeView> {
        self.pending.node(self.tree, p)
    }

    fn require_node(&self, p: &str) -> Result<NodeView> {
        self.node(p).ok_or_else(|| TreeError::NoNode(p.to_owned()))
    }

    fn check_perm(&self, acl: &[Acl], perm: i32, p: &str) -> Result<()> {
        acl::require(&self.tree.config().auth, acl, perm, self.ctx.auth, p)
    }

    fn single(&mut self, request: &Request) -> Result<(OpCode, TxnBody)> {
        let op = request.op_code();
        match request {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => {
                self.create(op, &r.path, &r.data, &r.acl, r.flags, None)
            }
            Request::CreateTtl(r) => {
                self.create(op, &r.path, &r.data, &r.acl, r.flags, Some(r.ttl))
            }
            Request::Delete(r) | Request::DeleteContainer(r) => self.delete(op, r),
            Request::SetData(r) => self.set_data(r),
            Request::SetAcl(r) => self.set_acl(r),
            Request::Check(r) => self.check(r),
            _ => Err(TreeError::Unimplemented(op.name())),
        }
        .map(|body| (op, body))
    }

    fn multi(&mut self, ops: &[MultiOp], header: TxnHeader) -> Prepared {
        let mark = self.pending.order.len();
        let mut subs = Vec::with_capacity(ops.len());
        let mut first_error: Option<TreeError> = None;
        for op in ops {
            if first_error.is_some() {
                subs.push((
                    OpCode::Error.code(),
                    TxnBody::Error(ErrorTxn {
                        err: ErrorCode::RuntimeInconsistency.code(),
                    }),
                ));
                continue;
            }
            let request = match op {
                MultiOp::Create(r) => Request::Create(r.clone()),
                MultiOp::Create2(r) => Request::Create2(r.clone()),
                MultiOp::CreateContainer(r) => Request::CreateContainer(r.clone()),
                MultiOp::CreateTtl(r) => Request::CreateTtl(r.clone()),
                MultiOp::Delete(r) => Request::Delete(r.clone()),
                MultiOp::DeleteContainer(r) => Request::DeleteContainer(r.clone()),
                MultiOp::SetData(r) => Request::SetData(r.clone()),
                MultiOp::Check(r) => Request::Check(r.clone()),
                MultiOp::GetData(_) | MultiOp::GetChildren(_) => {
                    // A read op in a write multi ("mixing different kind of ops").
                    let e = TreeError::BadArguments {
                        path: op.path().to_owned(),
                        reason: "read op in a multi",
                    };
                    subs.push((
                        OpCode::Error.code(),
                        TxnBody::Error(ErrorTxn {
                            err: e.code().code(),
                        }),
                    ));
                    first_error = Some(e);
                    self.pending.rollback(mark);
                    continue;
                }
            };
            match self.single(&request) {
                Ok((op, body)) => subs.push((op.code(), body)),
                Err(e) => {
                    subs.push((
                        OpCode::Error.code(),
                        TxnBody::Error(ErrorTxn {
                            err: e.code().code(),
                        }),
                    ));
                    first_error = Some(e);
                    self.pending.rollback(mark);
                }
            }
        }
        Prepared {
            header,
            body: TxnBody::Multi(subs),
            error: first_error,
        }
    }

    fn create(
        &mut self,
        op: OpCode,
        p: &str,
        data: &Option<Bytes>,
        requested_acl: &[Acl],
        flags: i32,
        ttl: Option<i64>,
    ) -> Result<TxnBody> {
        let bad = |reason: &'static str| TreeError::BadArguments {
            path: p.to_owned(),
            reason,
        };
        let mode = CreateMode::from_code(flags).ok_or_else(|| bad("unknown create mode"))?;
        // validateCreateRequest
        if mode.is_ttl() && !self.tree.config().extended_types_enabled {
            return Err(TreeError::Unimplemented("createTTL"));
        }
        let owner_ttl = match (op, mode.is_ttl()) {
            (OpCode::CreateTtl, true) => Some(
                ttl.and_then(ttl_owner)
                    .ok_or_else(|| bad("TTL out of range"))?,
            ),
            (OpCode::CreateTtl, false) => return Err(bad("createTTL needs a TTL mode")),
            (_, true) => return Err(bad("TTL mode needs createTTL")),
            _ => None,
        };
        if mode.is_ephemeral() && self.ctx.local_session {
            return Err(TreeError::EphemeralOnLocalSession(p.to_owned()));
        }
        // validatePathForCreate: a slash somewhere, no NUL.
        let last_slash = p.rfind('/').ok_or_else(|| bad("path must contain /"))?;
        if p.contains('\0') {
            return Err(bad("null character not allowed"));
        }
        let parent_path = if last_slash == 0 {
            "/"
        } else {
            &p[..last_slash]
        };
        let acl = acl::fixup_acl(&self.tree.config().auth, p, self.ctx.auth, requested_acl)?;
        let parent = self.require_node(parent_path)?;
        self.check_perm(&parent.acl, perms::CREATE, p)?;
        let created_path = if mode.is_sequential() {
            format!("{p}{}", path::sequence_suffix(parent.stat.cversion))
        } else {
            p.to_owned()
        };
        path::validate_path(&created_path)?;
        if self.node(&created_path).is_some() {
            return Err(TreeError::NodeExists(created_path));
        }
        if let EphemeralType::Normal(_) = classify(
            parent.stat.ephemeral_owner,
            self.tree.config().extended_types_enabled,
        ) {
            return Err(TreeError::NoChildrenForEphemerals(created_path));
        }
        let cap = self.ctx.max_children;
        if cap > 0 && parent.child_count as usize >= cap && !path::is_under(p, "/zookeeper") {
            return Err(TreeError::TooManyChildren {
                parent: parent_path.to_owned(),
                limit: cap,
            });
        }
        let data_len = data.as_ref().map_or(0, Bytes::len);
        if self.ctx.enforce_quota {
            self.tree.check_quota(&created_path, 1, data_len as i64)?;
        }
        let new_cversion = parent.stat.cversion.wrapping_add(1);
        let owner = if op == OpCode::CreateContainer {
            CONTAINER_OWNER
        } else if let Some(o) = owner_ttl {
            o
        } else if mode.is_ephemeral() {
            self.ctx.session
        } else {
            0
        };
        let body = match op {
            OpCode::CreateContainer => TxnBody::CreateContainer(CreateContainerTxn {
                path: created_path.clone(),
                data: data.clone(),
                acl: acl.clone(),
                parent_c_version: new_cversion,
            }),
            OpCode::CreateTtl => TxnBody::CreateTtl(CreateTtlTxn {
                path: created_path.clone(),
                data: data.clone(),
                acl: acl.clone(),
                parent_c_version: new_cversion,
                ttl: ttl.unwrap_or_default(),
            }),
            _ => TxnBody::Create(CreateTxn {
                path: created_path.clone(),
                data: data.clone(),
                acl: acl.clone(),
                ephemeral: mode.is_ephemeral(),
                parent_c_version: new_cversion,
            }),
        };
        let mut parent_after = parent;
        parent_after.child_count += 1;
        parent_after.stat.cversion = new_cversion;
        parent_after.stat.pzxid = self.zxid;
        self.pending
            .record(self.zxid, parent_path, Some(parent_after));
        self.pending.record(
            self.zxid,
            &created_path,
            Some(NodeView {
                stat: StatPersisted {
                    czxid: self.zxid,
                    mzxid: self.zxid,
                    ctime: self.time,
                    mtime: self.time,
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    ephemeral_owner: owner,
                    pzxid: self.zxid,
                },
                child_count: 0,
                acl: Arc::from(acl),
                data_len,
            }),
        );
        Ok(body)
    }

    fn delete(&mut self, op: OpCode, r: &DeleteRequest) -> Result<TxnBody> {
        let p = r.path.as_str();
        let last_slash = p.rfind('/');
        let (Some(last_slash), false, false) = (last_slash, p.contains('\0'), special_path(p))
        else {
            return Err(TreeError::BadArguments {
                path: p.to_owned(),
                reason: "cannot delete this path",
            });
        };
        let parent_path = if last_slash == 0 {
            "/"
        } else {
            &p[..last_slash]
        };
        let parent = self.require_node(parent_path)?;
        self.check_perm(&parent.acl, perms::DELETE, p)?;
        let node = self.require_node(p)?;
        if op == OpCode::DeleteContainer
            && !matches!(
                classify(
                    node.stat.ephemeral_owner,
                    self.tree.config().extended_types_enabled
                ),
                EphemeralType::Container | EphemeralType::Ttl(_)
            )
        {
            return Err(TreeError::BadArguments {
                path: p.to_owned(),
                reason: "not a container or TTL node",
            });
        }
        check_and_inc_version(node.stat.version, r.version, p)?;
        if node.child_count > 0 {
            return Err(TreeError::NotEmpty(p.to_owned()));
        }
        let mut parent_after = parent;
        parent_after.child_count -= 1;
        parent_after.stat.pzxid = self.zxid;
        self.pending
            .record(self.zxid, parent_path, Some(parent_after));
        self.pending.record(self.zxid, p, None);
        Ok(TxnBody::Delete(DeleteTxn { path: p.to_owned() }))
    }

    fn set_data(&mut self, r: &SetDataRequest) -> Result<TxnBody> {
        let p = r.path.as_str();
        path::validate_path(p)?;
        let node = self.require_node(p)?;
        self.check_perm(&node.acl, perms::WRITE, p)?;
        let new_len = r.data.as_ref().map_or(0, Bytes::len);
        if self.ctx.enforce_quota {
            self.tree
                .check_quota(p, 0, new_len as i64 - node.data_len as i64)?;
        }
        let version = check_and_inc_version(node.stat.version, r.version, p)?;
        let mut after = node;
        after.stat.version = version;
        after.stat.mzxid = self.zxid;
        after.stat.mtime = self.time;
        after.data_len = new_len;
        self.pending.record(self.zxid, p, Some(after));
        Ok(TxnBody::SetData(SetDataTxn {
            path: p.to_owned(),
            data: r.data.clone(),
            version,
        }))
    }

    fn set_acl(&mut self, r: &SetAclRequest) -> Result<TxnBody> {
        let p = r.path.as_str();
        path::validate_path(p)?;
        let acl = acl::fixup_acl(&self.tree.config().auth, p, self.ctx.auth, &r.acl)?;
        let node = self.require_node(p)?;
        self.check_perm(&node.acl, perms::ADMIN, p)?;
        let version = check_and_inc_version(node.stat.aversion, r.version, p)?;
        let mut after = node;
        after.stat.aversion = version;
        after.acl = Arc::from(acl.clone());
        self.pending.record(self.zxid, p, Some(after));
        Ok(TxnBody::SetAcl(SetAclTxn {
            path: p.to_owned(),
            acl,
            version,
        }))
    }

    fn check(&mut self, r: &CheckVersionRequest) -> Result<TxnBody> {
        let p = r.path.as_str();
        path::validate_path(p)?;
        let node = self.require_node(p)?;
        self.check_perm(&node.acl, perms::READ, p)?;
        let version = check_and_inc_version(node.stat.version, r.version, p)?;
        Ok(TxnBody::Check(CheckVersionTxn {
            path: p.to_owned(),
            version,
        }))
    }

    /// The session's ephemerals as they will be, all to be deleted.
    fn close_session(&mut self) -> TxnBody {
        // ZooKeeper's order (a Java hash set's; see `crate::java`): the session's
        // ephemerals in creation order, then the pending writes in preparation order.
        let mut created = self.tree.ephemerals_of(self.ctx.session, "/");
        created.sort_by_key(|p| self.tree.stat_persisted(p).map_or(0, |s| s.czxid));
        let session = self.ctx.session;
        let pending = self
            .pending
            .order
            .iter()
            .filter_map(|(_, p, node)| match node {
                None => Some((p.clone(), false)),
                Some(n) if n.stat.ephemeral_owner == session => Some((p.clone(), true)),
                Some(_) => None,
            });
        let paths = crate::java::close_session_order(created, pending);
        for p in &paths {
            let parent_path = path::parent(p);
            if let Some(mut parent) = self.node(parent_path) {
                parent.child_count -= 1;
                parent.stat.pzxid = self.zxid;
                self.pending.record(self.zxid, parent_path, Some(parent));
            }
            self.pending.record(self.zxid, p, None);
        }
        TxnBody::CloseSession(Some(CloseSessionTxn {
            paths2_delete: paths,
        }))
    }
}
