//! The DataTree: znodes by path, their Stat rules, ephemeral/container/TTL indexes, quota
//! accounting, the watch registry and the incremental digest.
//!
//! The tree changes only through [`DataTree::apply`] of a logged transaction, which is
//! deterministic: the same txns in the same order give the same tree, digest and events.
//! Reads may register watches but change nothing else.
//!
//! Stored vs. shown `cversion`: ZooKeeper stores in `cversion` the number of child creates
//! (what `CreateTxn.parentCVersion` carries and sequential suffixes use) and shows clients
//! `2 * stored - numChildren`, so that deletes count as changes too (`DataNode.copyStat`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use zk_proto::{
    Acl, CreateContainerTxn, CreateTtlTxn, CreateTxn, CreateTxnV0, ErrorCode, EventType, Id,
    OpCode, Stat, StatPersisted, TxnBody, TxnHeader,
};

use crate::acl::{self, AclCache, AuthConfig, OPEN_ACL_REF};
use crate::ephemeral::{classify, ttl_owner, EphemeralType, CONTAINER_OWNER};
use crate::error::{Result, TreeError};
use crate::path;
use crate::quota::{self, StatsTrack};
use crate::store::{Node, NodeId, Store};
use crate::watch::{Fired, WatchRegistry, WatcherId};

/// Behaviour switches that change how txns are interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeConfig {
    /// `zookeeper.extendedTypesEnabled`: TTL owners are recognised.
    pub extended_types_enabled: bool,
    /// Authentication schemes and `skipACL`, for watch-event filtering and ACL checks.
    pub auth: AuthConfig,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig {
            extended_types_enabled: true,
            auth: AuthConfig::default(),
        }
    }
}

/// A watch event to deliver, with what the server needs to filter it by the watcher's READ
/// permission on the changed node (ZOOKEEPER-4799).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub watcher: WatcherId,
    pub event: EventType,
    pub path: String,
    /// The zxid of the change that fired it (3.9 sends it in the notification header).
    pub zxid: i64,
    /// The changed node's ACL at the time of the change.
    pub acl: Arc<[Acl]>,
}

impl Event {
    /// Whether a watcher holding identities `auth` may see this event (READ on the node).
    pub fn visible_to(&self, config: &AuthConfig, auth: &[Id]) -> bool {
        acl::check_acl(config, &self.acl, zk_proto::perms::READ, auth)
    }
}

/// What applying one txn did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnResult {
    Created {
        path: String,
        stat: Stat,
    },
    Deleted,
    DataSet {
        stat: Stat,
    },
    AclSet {
        stat: Stat,
    },
    Checked,
    SessionCreated,
    SessionClosed,
    /// An error txn, or a txn that could not apply (e.g. replayed over a fuzzy snapshot).
    Error(i32),
    Multi(Vec<TxnResult>),
}

impl TxnResult {
    /// The error code of the result (0 for success; a multi reports its first failure).
    pub fn err(&self) -> i32 {
        match self {
            TxnResult::Error(e) => *e,
            TxnResult::Multi(rs) => rs.iter().map(TxnResult::err).find(|e| *e != 0).unwrap_or(0),
            _ => 0,
        }
    }
}

/// The result of [`DataTree::apply`]: the outcome and the watch events it fired, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub result: TxnResult,
    pub events: Vec<Event>,
}

/// ZooKeeper's in-memory database of znodes, plus the session table snapshots carry.
#[derive(Debug, Clone)]
pub struct DataTree {
    nodes: Store,
    acls: AclCache,
    ephemerals: BTreeMap<i64, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    /// Paths with a quota (`zookeeper_limits` exists for them).
    quota_roots: BTreeSet<String>,
    /// Session id -> negotiated timeout, as snapshots store them.
    sessions: BTreeMap<i64, i32>,
    watches: WatchRegistry,
    /// Recent changes, for exact watch catch-up (off unless enabled).
    journal: crate::journal::ChangeJournal,
    last_processed_zxid: i64,
    digest: u64,
    config: TreeConfig,
}

impl Default for DataTree {
    fn default() -> Self {
        DataTree::new(TreeConfig::default())
    }
}

/// The system nodes every tree starts with.
const ZOOKEEPER: &str = "/zookeeper";
/// The node that holds an ensemble's configuration (`reconfig` writes it).
pub const CONFIG_NODE: &str = "/zookeeper/config";

impl DataTree {
    /// A fresh tree: `/`, `/zookeeper`, `/zookeeper/quota` and `/zookeeper/config` (read-only
    /// to the world, aversion -1), with the stats a fresh ZooKeeper shows.
    pub fn new(config: TreeConfig) -> DataTree {
        let mut t = DataTree::empty(config);
        t.ensure_system_nodes();
        t
    }

    fn empty(config: TreeConfig) -> DataTree {
        DataTree {
            nodes: Store::default(),
            acls: AclCache::default(),
            ephemerals: BTreeMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            quota_roots: BTreeSet::new(),
            sessions: BTreeMap::new(),
            watches: WatchRegistry::default(),
            journal: Default::default(),
            last_processed_zxid: 0,
            digest: 0,
            config,
        }
    }

    /// Adds whichever system nodes are missing, linked without touching parents' cversion
    /// (a fresh ZooKeeper shows `/` with cversion -1 and one child).
    fn ensure_system_nodes(&mut self) {
        for p in ["/", ZOOKEEPER, quota::QUOTA_ROOT, CONFIG_NODE] {
            if self.nodes.exists(p) {
                continue;
            }
            let mut node = Node::new(
                path::name(p),
                Some(b""),
                OPEN_ACL_REF,
                StatPersisted::default(),
            );
            if p == CONFIG_NODE {
                node.acl = self.acls.intern(&zk_proto::well_known::read_acl_unsafe());
                node.stat.aversion = -1;
            }
            // Linking a child changes no field the digest covers.
            let parent = if p == "/" {
                None
            } else {
                self.nodes.find(path::parent(p))
            };
            self.digest = self.digest.wrapping_add(node.digest(p));
            self.nodes.insert(p, node, parent);
        }
    }

    /// Sets `/zookeeper/config` locally, as each ZooKeeper ensemble member does from its
    /// configuration at startup (not a txn: every member computes the same text). Data
    /// version stays -1 like ZooKeeper's; `/zookeeper` is outside the digest.
    pub fn set_config(&mut self, data: &[u8], mtime: i64) {
        if let Some(id) = self.nodes.find(CONFIG_NODE) {
            if let Some(node) = self.nodes.get_mut(id) {
                node.set_data(Some(data));
                node.stat.mtime = mtime;
                node.stat.version = -1;
            }
        }
    }

    /// A frozen copy to write a snapshot from while this tree keeps changing: node storage
    /// is shared copy-on-write (cheap to take), watches are left out (snapshots have none).
    pub fn snapshot_copy(&self) -> DataTree {
        DataTree {
            nodes: self.nodes.frozen_copy(),
            acls: self.acls.clone(),
            ephemerals: self.ephemerals.clone(),
            containers: self.containers.clone(),
            ttls: self.ttls.clone(),
            quota_roots: self.quota_roots.clone(),
            sessions: self.sessions.clone(),
            watches: WatchRegistry::default(),
            journal: Default::default(),
            last_processed_zxid: self.last_processed_zxid,
            digest: self.digest,
            config: self.config.clone(),
        }
    }

    /// Starts remembering the changes of the last `retain_txns` txns (0: off) from now,
    /// for [`DataTree::missed_events`]: exact catch-up of persistent watches.
    pub fn enable_journal(&mut self, retain_txns: usize) {
        self.journal = crate::journal::ChangeJournal::new(retain_txns, self.last_processed_zxid);
    }

    /// The change journal (for its size and metrics).
    pub fn journal(&self) -> &crate::journal::ChangeJournal {
        &self.journal
    }

    /// The events a reconnecting watcher's persistent watches missed after
    /// `relative_zxid`, in zxid order; `None` when the journal does not reach back that far
    /// (then, as ZooKeeper, the watches are only re-armed).
    pub fn missed_events(
        &self,
        relative_zxid: i64,
        persistent: &[String],
        recursive: &[String],
        watcher: WatcherId,
    ) -> Option<Vec<Event>> {
        self.journal
            .missed(relative_zxid, persistent, recursive, watcher)
    }

    /// The configuration the tree was built with.
    pub fn config(&self) -> &TreeConfig {
        &self.config
    }

    /// The highest zxid applied.
    pub fn last_processed_zxid(&self) -> i64 {
        self.last_processed_zxid
    }

    /// Sets the zxid the tree is at, after loading a snapshot (whose file names it).
    pub fn set_last_processed_zxid(&mut self, zxid: i64) {
        self.last_processed_zxid = zxid;
    }

    /// The tree digest, comparable across servers at the same zxid.
    pub fn digest(&self) -> i64 {
        self.digest as i64
    }

    /// Number of znodes, the root and system nodes included. ZooKeeper's `zk_znode_count`
    /// and `SnapshotFormatter` report one more: its map holds the root under "" and "/".
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Sum of path and data lengths (`zk_approximate_data_size`).
    pub fn approximate_data_size(&self) -> u64 {
        // Nodes store names: a path's length is its parent's, a '/' and the name.
        let Some(root) = self.nodes.find("/") else {
            return 0;
        };
        let mut total = 0;
        let mut stack = vec![(root, 1usize)];
        while let Some((id, path_len)) = stack.pop() {
            let Some(n) = self.nodes.get(id) else {
                continue;
            };
            total += (path_len + n.data_len()) as u64;
            let under = if id == root { 0 } else { path_len };
            stack.extend(n.child_ids().filter_map(|c| {
                let name = self.nodes.get(c)?.name().len();
                Some((c, under + 1 + name))
            }));
        }
        total
    }

    /// What the tree holds in memory, by part (an estimate; see [`crate::memory`]). Walks
    /// every node and watch: for an operator's request, not for every write.
    pub fn memory(&self) -> crate::memory::TreeMemory {
        use crate::memory::{btree_map_bytes, btree_set_bytes, string_bytes};
        let (node_bytes, payload_bytes) = self.nodes.memory_bytes();
        let strings = |s: &BTreeSet<String>| {
            btree_set_bytes(s) + s.iter().map(|p| string_bytes(p)).sum::<u64>()
        };
        let mut index_bytes = btree_map_bytes(&self.sessions)
            + btree_map_bytes(&self.ephemerals)
            + strings(&self.containers)
            + strings(&self.ttls)
            + strings(&self.quota_roots)
            + self.acls.memory_bytes();
        for paths in self.ephemerals.values() {
            index_bytes += strings(paths);
        }
        crate::memory::TreeMemory {
            nodes: self.nodes.len(),
            node_bytes,
            payload_bytes,
            watches: self.watches.count(),
            watch_bytes: self.watches.memory_bytes(),
            index_bytes,
        }
    }

    /// The watch registry (for counts, wchc/wchp and connection cleanup).
    pub fn watches(&self) -> &WatchRegistry {
        &self.watches
    }

    /// The watch registry, mutable (removeWatches, closed connections).
    pub fn watches_mut(&mut self) -> &mut WatchRegistry {
        &mut self.watches
    }

    /// Sessions and their timeouts, as last logged.
    pub fn sessions(&self) -> &BTreeMap<i64, i32> {
        &self.sessions
    }

    /// The ACL cache, for snapshots.
    pub fn acl_cache(&self) -> &AclCache {
        &self.acls
    }

    /// Whether a node exists.
    pub fn exists(&self, path: &str) -> bool {
        self.nodes.exists(path)
    }

    /// A node's client-visible stat.
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.nodes
            .node(path)
            .map(|n| client_stat(n, self.config.extended_types_enabled))
    }

    /// A node's persisted stat (stored cversion, as snapshots and prep see it).
    pub fn stat_persisted(&self, path: &str) -> Option<StatPersisted> {
        self.nodes.node(path).map(|n| n.stat.persisted())
    }

    /// A node's ACL.
    pub fn acl(&self, path: &str) -> Option<Arc<[Acl]>> {
        self.nodes.node(path).map(|n| self.acl_of(n))
    }

    /// A node's data, `None` when it was created or set with null data.
    pub fn data(&self, path: &str) -> Option<Option<&[u8]>> {
        self.nodes.node(path).map(|n| n.data())
    }

    pub(crate) fn node_of(&self, path: &str) -> Option<&Node> {
        self.nodes.node(path)
    }

    /// The ACL of a node already found (no second path lookup).
    pub(crate) fn acl_of(&self, node: &Node) -> Arc<[Acl]> {
        self.acls.get(node.acl)
    }

    pub(crate) fn find_id(&self, path: &str) -> Option<NodeId> {
        self.nodes.find(path)
    }

    pub(crate) fn node_by_id(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id)
    }

    /// Node `id`'s full path, rebuilt from names (nodes do not store it).
    pub(crate) fn path_of(&self, id: NodeId) -> String {
        self.nodes.path(id)
    }

    pub(crate) fn nodes_iter(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes.iter_ids()
    }

    /// Number of children of a node.
    pub fn child_count(&self, path: &str) -> Option<usize> {
        self.nodes.node(path).map(Node::child_count)
    }

    /// What a node's owner encodes.
    pub fn ephemeral_type(&self, path: &str) -> Option<EphemeralType> {
        self.nodes
            .node(path)
            .map(|n| classify(n.stat.ephemeral_owner, self.config.extended_types_enabled))
    }

    /// getData: data and stat; registers a data watch when `watcher` is given and the node
    /// exists.
    pub fn get_data(
        &mut self,
        path: &str,
        watcher: Option<WatcherId>,
    ) -> Result<(Option<Bytes>, Stat)> {
        let node = self
            .nodes
            .node(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))?;
        let out = (
            node.data().map(Bytes::copy_from_slice),
            client_stat(node, self.config.extended_types_enabled),
        );
        if let Some(w) = watcher {
            self.watches.add_data_watch(path, w);
        }
        Ok(out)
    }

    /// exists: the stat; registers a watch even when the node is missing (an exist watch).
    pub fn exists_watch(&mut self, path: &str, watcher: Option<WatcherId>) -> Result<Stat> {
        let stat = self.stat(path);
        if let Some(w) = watcher {
            if stat.is_some() {
                self.watches.add_data_watch(path, w);
            } else {
                self.watches.add_exist_watch(path, w);
            }
        }
        stat.ok_or_else(|| TreeError::NoNode(path.to_owned()))
    }

    /// getChildren / getChildren2: child names in order and the stat; registers a child
    /// watch when `watcher` is given and the node exists.
    pub fn get_children(
        &mut self,
        path: &str,
        watcher: Option<WatcherId>,
    ) -> Result<(Vec<String>, Stat)> {
        let node = self
            .nodes
            .node(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))?;
        let mut borrowed: Vec<&str> = node
            .child_ids()
            .filter_map(|c| self.nodes.get(c))
            .map(Node::name)
            .collect();
        borrowed.sort_unstable();
        let names: Vec<String> = borrowed.into_iter().map(str::to_owned).collect();
        let stat = client_stat(node, self.config.extended_types_enabled);
        if let Some(w) = watcher {
            self.watches.add_child_watch(path, w);
        }
        Ok((names, stat))
    }

    /// getAllChildrenNumber: every descendant, the node itself excluded.
    pub fn all_children_number(&self, path: &str) -> Result<i32> {
        let node = self
            .nodes
            .node(path)
            .ok_or_else(|| TreeError::NoNode(path.to_owned()))?;
        let mut count: i64 = 0;
        let mut stack: Vec<&Node> = vec![node];
        while let Some(n) = stack.pop() {
            for c in n.child_ids() {
                count += 1;
                if let Some(child) = self.nodes.get(c) {
                    stack.push(child);
                }
            }
        }
        Ok(i32::try_from(count).unwrap_or(i32::MAX))
    }

    /// getEphemerals: the session's ephemeral paths that start with `prefix` (a plain string
    /// prefix, as ZooKeeper compares; empty or `/` means all), in order.
    pub fn ephemerals_of(&self, session: i64, prefix: &str) -> Vec<String> {
        let prefix = prefix.trim();
        let all = prefix.is_empty() || prefix == "/";
        self.ephemerals
            .get(&session)
            .map(|paths| {
                paths
                    .iter()
                    .filter(|p| all || p.starts_with(prefix))
                    .map(|p| p.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sessions owning ephemerals, with their paths (`dump`).
    pub fn ephemerals(&self) -> &BTreeMap<i64, BTreeSet<String>> {
        &self.ephemerals
    }

    /// Number of ephemeral nodes (`zk_ephemerals_count`).
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// Container and TTL nodes due for deletion at `now_ms` (`ContainerManager`): empty
    /// containers that once had children (or, when `never_used_ms_max` is non-zero, were
    /// never used for that long), and childless TTL nodes unmodified for their TTL.
    pub fn expired_containers_and_ttls(&self, now_ms: i64, never_used_ms_max: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.containers {
            if let Some(n) = self.nodes.node(p) {
                if n.child_count() == 0
                    && (n.stat.cversion > 0
                        || (never_used_ms_max != 0
                            && now_ms.saturating_sub(n.stat.mtime) > never_used_ms_max))
                {
                    out.push(p.to_string());
                }
            }
        }
        for p in &self.ttls {
            if let Some(n) = self.nodes.node(p) {
                if let EphemeralType::Ttl(ttl) =
                    classify(n.stat.ephemeral_owner, self.config.extended_types_enabled)
                {
                    if n.child_count() == 0 && now_ms.saturating_sub(n.stat.mtime) > ttl {
                        out.push(p.to_string());
                    }
                }
            }
        }
        out
    }

    /// Hard-quota check for a change under `path` adding `count_diff` nodes and
    /// `bytes_diff` bytes (`checkQuota`, when `enforceQuota=true`).
    pub fn check_quota(&self, path: &str, count_diff: i64, bytes_diff: i64) -> Result<()> {
        let Some(root) = self.quota_root_for(path) else {
            return Ok(());
        };
        let qpath = quota::quota_path(root);
        let limits = self.quota_track(&format!("{qpath}/{}", quota::LIMITS_NODE));
        let usage = self.quota_track(&format!("{qpath}/{}", quota::STATS_NODE));
        let (Some(limits), Some(usage)) = (limits, usage) else {
            return Ok(());
        };
        let over_count = limits.count_hard_limit > -1
            && count_diff > 0
            && usage.count + count_diff > limits.count_hard_limit;
        let over_bytes = limits.byte_hard_limit > -1
            && bytes_diff > 0
            && usage.bytes + bytes_diff > limits.byte_hard_limit;
        if over_count || over_bytes {
            Err(TreeError::QuotaExceeded(root.to_owned()))
        } else {
            Ok(())
        }
    }

    fn quota_track(&self, p: &str) -> Option<StatsTrack> {
        let data = self.nodes.node(p)?.data()?;
        Some(StatsTrack::parse(&String::from_utf8_lossy(data)))
    }

    /// The deepest quota root at or above `path`, ignoring the `/zookeeper` subtree.
    fn quota_root_for(&self, p: &str) -> Option<&str> {
        if self.quota_roots.is_empty() || path::is_under(p, ZOOKEEPER) {
            return None;
        }
        self.quota_roots
            .iter()
            .filter(|root| path::is_under(p, root))
            .max_by_key(|root| root.len())
            .map(String::as_str)
    }

    /// Registers watches for a reconnecting client and computes the catch-up events
    /// (`DataTree.setWatches`): data watches on a deleted node fire NodeDeleted, on a node
    /// changed after `relative_zxid` fire NodeDataChanged; exist watches on a node that now
    /// exists fire NodeCreated; child watches fire NodeDeleted or NodeChildrenChanged
    /// likewise. Watches that do not fire are registered; persistent ones are re-added.
    #[allow(clippy::too_many_arguments)]
    pub fn set_watches(
        &mut self,
        relative_zxid: i64,
        data_watches: &[String],
        exist_watches: &[String],
        child_watches: &[String],
        persistent_watches: &[String],
        persistent_recursive_watches: &[String],
        watcher: WatcherId,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        let fire = |tree: &DataTree, p: &str, event: EventType, events: &mut Vec<Event>| {
            let acl = tree
                .acl(p)
                .or_else(|| tree.acl(path::parent(p)))
                .unwrap_or_else(|| Arc::from(Vec::new()));
            events.push(Event {
                watcher,
                event,
                path: p.to_owned(),
                zxid: -1,
                acl,
            });
        };
        for p in data_watches {
            match self.nodes.node(p.as_str()) {
                None => fire(self, p, EventType::NodeDeleted, &mut events),
                Some(n) if n.stat.mzxid > relative_zxid => {
                    fire(self, p, EventType::NodeDataChanged, &mut events)
                }
                Some(_) => self.watches.add_data_watch(p, watcher),
            }
        }
        for p in exist_watches {
            if self.nodes.exists(p.as_str()) {
                fire(self, p, EventType::NodeCreated, &mut events);
            } else {
                self.watches.add_exist_watch(p, watcher);
            }
        }
        for p in child_watches {
            match self.nodes.node(p.as_str()) {
                None => fire(self, p, EventType::NodeDeleted, &mut events),
                Some(n) if n.stat.pzxid > relative_zxid => {
                    fire(self, p, EventType::NodeChildrenChanged, &mut events)
                }
                Some(_) => self.watches.add_child_watch(p, watcher),
            }
        }
        for p in persistent_watches {
            self.watches.add_persistent(p, watcher, false);
        }
        for p in persistent_recursive_watches {
            self.watches.add_persistent(p, watcher, true);
        }
        events
    }

    /// Applies one logged txn. Deterministic; the only way the tree changes.
    pub fn apply(&mut self, header: &TxnHeader, body: &TxnBody) -> Applied {
        let mut events = Vec::new();
        let result = self.apply_inner(header, body, &mut events);
        if header.zxid > self.last_processed_zxid {
            self.last_processed_zxid = header.zxid;
        }
        Applied { result, events }
    }

    fn apply_inner(
        &mut self,
        header: &TxnHeader,
        body: &TxnBody,
        events: &mut Vec<Event>,
    ) -> TxnResult {
        let zxid = header.zxid;
        let time = header.time;
        let outcome = match body {
            TxnBody::Create(CreateTxn {
                path,
                data,
                acl,
                ephemeral,
                parent_c_version,
            }) => {
                let owner = if *ephemeral { header.client_id } else { 0 };
                self.create_node(
                    path,
                    data,
                    acl,
                    owner,
                    *parent_c_version,
                    zxid,
                    time,
                    events,
                )
            }
            TxnBody::CreateV0(CreateTxnV0 {
                path,
                data,
                acl,
                ephemeral,
            }) => {
                let owner = if *ephemeral { header.client_id } else { 0 };
                self.create_node(path, data, acl, owner, -1, zxid, time, events)
            }
            TxnBody::CreateContainer(CreateContainerTxn {
                path,
                data,
                acl,
                parent_c_version,
            }) => self.create_node(
                path,
                data,
                acl,
                CONTAINER_OWNER,
                *parent_c_version,
                zxid,
                time,
                events,
            ),
            TxnBody::CreateTtl(CreateTtlTxn {
                path,
                data,
                acl,
                parent_c_version,
                ttl,
            }) => match ttl_owner(*ttl) {
                Some(owner) => self.create_node(
                    path,
                    data,
                    acl,
                    owner,
                    *parent_c_version,
                    zxid,
                    time,
                    events,
                ),
                None => Err(TreeError::BadArguments {
                    path: path.clone(),
                    reason: "TTL out of range",
                }),
            },
            TxnBody::Delete(t) => self
                .delete_node(&t.path, zxid, events)
                .map(|()| TxnResult::Deleted),
            TxnBody::SetData(t) | TxnBody::Reconfig(t) => self
                .set_data(&t.path, t.data.clone(), t.version, zxid, time, events)
                .map(|stat| TxnResult::DataSet { stat }),
            TxnBody::SetAcl(t) => self
                .set_acl(&t.path, &t.acl, t.version)
                .map(|stat| TxnResult::AclSet { stat }),
            TxnBody::Check(_) => Ok(TxnResult::Checked),
            TxnBody::CreateSession(t) => {
                self.sessions.insert(header.client_id, t.time_out);
                Ok(TxnResult::SessionCreated)
            }
            TxnBody::CloseSession(t) => {
                let listed = t.as_ref().map(|t| t.paths2_delete.clone());
                self.kill_session(header.client_id, listed, zxid, events);
                Ok(TxnResult::SessionClosed)
            }
            TxnBody::Error(e) => Ok(TxnResult::Error(e.err)),
            TxnBody::Multi(subs) => {
                let failed = subs.iter().any(|(t, _)| *t == OpCode::Error.code());
                let mut post_failed = false;
                let mut results = Vec::with_capacity(subs.len());
                for (t, sub) in subs {
                    if *t == OpCode::Error.code() {
                        post_failed = true;
                    }
                    let r = if failed && *t != OpCode::Error.code() {
                        TxnResult::Error(if post_failed {
                            ErrorCode::RuntimeInconsistency.code()
                        } else {
                            0
                        })
                    } else {
                        let sub_header = TxnHeader {
                            r#type: *t,
                            ..header.clone()
                        };
                        self.apply_inner(&sub_header, sub, events)
                    };
                    results.push(r);
                }
                Ok(TxnResult::Multi(results))
            }
        };
        outcome.unwrap_or_else(|e| TxnResult::Error(e.code().code()))
    }

    #[allow(clippy::too_many_arguments)]
    fn create_node(
        &mut self,
        p: &str,
        data: &Option<Bytes>,
        acl: &[Acl],
        owner: i64,
        parent_c_version: i32,
        zxid: i64,
        time: i64,
        events: &mut Vec<Event>,
    ) -> Result<TxnResult> {
        if p == "/" || !p.starts_with('/') {
            return Err(TreeError::NodeExists(p.to_owned()));
        }
        let parent_path = path::parent(p);
        let parent_id = self
            .nodes
            .find(parent_path)
            .ok_or_else(|| TreeError::NoNode(p.to_owned()))?;
        if self.nodes.exists(p) {
            return Err(TreeError::NodeExists(p.to_owned()));
        }
        let parent = self
            .nodes
            .get(parent_id)
            .ok_or_else(|| TreeError::NoNode(p.to_owned()))?;
        // Prep refuses this too; the tree keeps the invariant even for a bad txn, so that a
        // session's ephemerals can always be deleted when it closes.
        if let EphemeralType::Normal(_) = classify(
            parent.stat.ephemeral_owner,
            self.config.extended_types_enabled,
        ) {
            return Err(TreeError::NoChildrenForEphemerals(p.to_owned()));
        }
        let parent_acl = self.acls.get(parent.acl);
        let cversion = if parent_c_version == -1 {
            parent.stat.cversion.wrapping_add(1)
        } else {
            parent_c_version
        };
        self.mutate_id(parent_id, parent_path, |n| {
            if cversion > n.stat.cversion {
                n.stat.cversion = cversion;
                n.stat.pzxid = zxid;
            }
        });
        let acl_ref = self.acls.intern(acl);
        let node = Node::new(
            path::name(p),
            data.as_deref(),
            acl_ref,
            StatPersisted {
                czxid: zxid,
                mzxid: zxid,
                ctime: time,
                mtime: time,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: owner,
                pzxid: zxid,
            },
        );
        let data_len = node.data_len() as i64;
        self.digest = self.digest.wrapping_add(node.digest(p));
        let stat = client_stat(&node, self.config.extended_types_enabled);
        self.index_owner(p, owner);
        self.nodes.insert(p, node, Some(parent_id));
        self.on_quota_node_created(p);
        self.update_quota_usage(p, 1, data_len);
        let acl = self.acls.get(acl_ref);
        self.fire(p, EventType::NodeCreated, zxid, acl, events);
        self.fire(
            parent_path,
            EventType::NodeChildrenChanged,
            zxid,
            parent_acl,
            events,
        );
        Ok(TxnResult::Created {
            path: p.to_owned(),
            stat,
        })
    }

    /// Adds a node to the ephemeral, container or TTL index its owner value calls for.
    fn index_owner(&mut self, p: &str, owner: i64) {
        match classify(owner, self.config.extended_types_enabled) {
            EphemeralType::Container => {
                self.containers.insert(p.to_owned());
            }
            EphemeralType::Ttl(_) => {
                self.ttls.insert(p.to_owned());
            }
            EphemeralType::Normal(session) => {
                self.ephemerals
                    .entry(session)
                    .or_default()
                    .insert(p.to_owned());
            }
            EphemeralType::Void => {}
        }
    }

    fn unindex_owner(&mut self, p: &str, owner: i64) {
        match classify(owner, self.config.extended_types_enabled) {
            EphemeralType::Container => {
                self.containers.remove(p);
            }
            EphemeralType::Ttl(_) => {
                self.ttls.remove(p);
            }
            EphemeralType::Normal(session) => {
                if let Some(set) = self.ephemerals.get_mut(&session) {
                    set.remove(p);
                    if set.is_empty() {
                        self.ephemerals.remove(&session);
                    }
                }
            }
            EphemeralType::Void => {}
        }
    }

    fn delete_node(&mut self, p: &str, zxid: i64, events: &mut Vec<Event>) -> Result<()> {
        let id = self
            .nodes
            .find(p)
            .ok_or_else(|| TreeError::NoNode(p.to_owned()))?;
        if p == "/" {
            return Err(TreeError::BadArguments {
                path: p.to_owned(),
                reason: "cannot delete the root",
            });
        }
        if self.nodes.get(id).map_or(0, Node::child_count) > 0 {
            return Err(TreeError::NotEmpty(p.to_owned()));
        }
        let parent_path = path::parent(p);
        let parent_id = self.nodes.find(parent_path);
        let Some(node) = self.nodes.remove(p, id, parent_id) else {
            return Err(TreeError::NoNode(p.to_owned()));
        };
        self.digest = self.digest.wrapping_sub(node.digest(p));
        if let Some(parent_id) = parent_id {
            self.mutate_id(parent_id, parent_path, |n| {
                if zxid > n.stat.pzxid {
                    n.stat.pzxid = zxid;
                }
            });
        }
        self.unindex_owner(p, node.stat.ephemeral_owner);
        let node_acl = self.acls.get(node.acl);
        self.acls.release(node.acl);
        self.update_quota_usage(p, -1, -(node.data_len() as i64));
        self.on_quota_node_deleted(p);
        let parent_acl = acl_from(self.acl(parent_path));
        self.fire(p, EventType::NodeDeleted, zxid, node_acl, events);
        self.fire(
            parent_path,
            EventType::NodeChildrenChanged,
            zxid,
            parent_acl,
            events,
        );
        Ok(())
    }

    fn set_data(
        &mut self,
        p: &str,
        data: Option<Bytes>,
        version: i32,
        zxid: i64,
        time: i64,
        events: &mut Vec<Event>,
    ) -> Result<Stat> {
        let id = self
            .nodes
            .find(p)
            .ok_or_else(|| TreeError::NoNode(p.to_owned()))?;
        let old_len = self.nodes.get(id).map_or(0, Node::data_len) as i64;
        let new_len = data.as_ref().map_or(0, Bytes::len) as i64;
        let ext = self.config.extended_types_enabled;
        let stat = self
            .mutate_id(id, p, |n| {
                n.set_data(data.as_deref());
                n.stat.mtime = time;
                n.stat.mzxid = zxid;
                n.stat.version = version;
                client_stat(n, ext)
            })
            .ok_or_else(|| TreeError::NoNode(p.to_owned()))?;
        if quota::governed_path(p).is_none() {
            self.update_quota_usage(p, 0, new_len - old_len);
        }
        // By id: the path was looked up once above.
        let acl = acl_from(self.nodes.get(id).map(|n| self.acl_of(n)));
        self.fire(p, EventType::NodeDataChanged, zxid, acl, events);
        Ok(stat)
    }

    fn set_acl(&mut self, p: &str, acl: &[Acl], version: i32) -> Result<Stat> {
        let id = self
            .nodes
            .find(p)
            .ok_or_else(|| TreeError::NoNode(p.to_owned()))?;
        let old = self.nodes.get(id).map_or(OPEN_ACL_REF, |n| n.acl);
        self.acls.release(old);
        let new = self.acls.intern(acl);
        let ext = self.config.extended_types_enabled;
        self.mutate_id(id, p, |n| {
            n.acl = new;
            n.stat.aversion = version;
            client_stat(n, ext)
        })
        .ok_or_else(|| TreeError::NoNode(p.to_owned()))
    }

    fn kill_session(
        &mut self,
        session: i64,
        listed: Option<Vec<String>>,
        zxid: i64,
        events: &mut Vec<Event>,
    ) {
        let paths: Vec<String> = match listed {
            Some(paths) => paths,
            None => self
                .ephemerals
                .get(&session)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
        };
        for p in paths {
            // A path that is already gone is not an error here (ZooKeeper logs and goes on).
            let _ = self.delete_node(&p, zxid, events);
        }
        self.ephemerals.remove(&session);
        self.sessions.remove(&session);
    }

    /// Changes node `id`, which is at `p`, in place, keeping the digest in step. Returns
    /// `None` if it is missing.
    fn mutate_id<R>(&mut self, id: NodeId, p: &str, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        let node = self.nodes.get_mut(id)?;
        let before = node.digest(p);
        let r = f(node);
        let after = node.digest(p);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        Some(r)
    }

    fn mutate<R>(&mut self, p: &str, f: impl FnOnce(&mut Node) -> R) -> Option<R> {
        let id = self.nodes.find(p)?;
        self.mutate_id(id, p, f)
    }

    fn fire(
        &mut self,
        p: &str,
        event: EventType,
        zxid: i64,
        acl: Arc<[Acl]>,
        events: &mut Vec<Event>,
    ) {
        self.journal.record(zxid, event, p, acl.clone());
        for Fired {
            watcher,
            event,
            path,
        } in self.watches.trigger(p, event)
        {
            events.push(Event {
                watcher,
                event,
                path,
                zxid,
                acl: acl.clone(),
            });
        }
    }

    /// Keeps quota roots in step when `zookeeper_limits` / `zookeeper_stats` nodes appear.
    fn on_quota_node_created(&mut self, p: &str) {
        match quota::governed_path(p) {
            Some((root, quota::LIMITS_NODE)) => {
                self.quota_roots.insert(root);
            }
            Some((root, _)) => self.recompute_quota_usage(&root),
            None => {}
        }
    }

    fn on_quota_node_deleted(&mut self, p: &str) {
        if let Some((root, quota::LIMITS_NODE)) = quota::governed_path(p) {
            self.quota_roots.remove(&root);
        }
    }

    /// Writes the subtree's current count and bytes into its stats node
    /// (`updateQuotaForPath`).
    fn recompute_quota_usage(&mut self, root: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        if let Some(node) = self.nodes.node(root) {
            let mut stack = vec![node];
            while let Some(n) = stack.pop() {
                count += 1;
                bytes += n.data_len() as i64;
                stack.extend(n.child_ids().filter_map(|c| self.nodes.get(c)));
            }
        }
        let stats = format!("{}/{}", quota::quota_path(root), quota::STATS_NODE);
        let text = StatsTrack::usage_string(count, bytes);
        self.mutate(&stats, |n| n.set_data(Some(text.as_bytes())));
    }

    /// Adds deltas to the usage of the quota root governing `p` (`updateCountBytes`). The
    /// stats node changes outside txns, as in ZooKeeper; it is excluded from the digest.
    fn update_quota_usage(&mut self, p: &str, count_diff: i64, bytes_diff: i64) {
        if count_diff == 0 && bytes_diff == 0 {
            return;
        }
        let Some(root) = self.quota_root_for(p).map(str::to_owned) else {
            return;
        };
        let stats = format!("{}/{}", quota::quota_path(&root), quota::STATS_NODE);
        let Some(current) = self.quota_track(&stats) else {
            return;
        };
        let (count, bytes) = (current.count + count_diff, current.bytes + bytes_diff);
        let text = StatsTrack::usage_string(count, bytes);
        self.mutate(&stats, |n| n.set_data(Some(text.as_bytes())));
        // Soft limits only warn (hard limits are enforced by prep when asked).
        let limits_path = format!("{}/{}", quota::quota_path(&root), quota::LIMITS_NODE);
        if let Some(limits) = self.quota_track(&limits_path) {
            if (limits.count > -1 && count > limits.count)
                || (limits.bytes > -1 && bytes > limits.bytes)
            {
                tracing::warn!(
                    path = %root,
                    count,
                    bytes,
                    count_limit = limits.count,
                    bytes_limit = limits.bytes,
                    "quota exceeded"
                );
            }
        }
    }

    /// Visits every node depth-first with children in name order (the order snapshots are
    /// written in): path, data, ACL reference, persisted stat.
    pub fn visit(&self, mut f: impl FnMut(&str, Option<&[u8]>, i64, &StatPersisted)) {
        let Some(root) = self.nodes.find("/") else {
            return;
        };
        // Each entry holds the length of its parent's path: everything visited between
        // pushing a node and popping it lies under that parent, so `path` still starts
        // with the parent's path then.
        let mut path = String::new();
        let mut stack = vec![(root, 0)];
        while let Some((id, parent_len)) = stack.pop() {
            let Some(n) = self.nodes.get(id) else {
                continue;
            };
            path.truncate(parent_len);
            if id == root {
                path.push('/');
            } else {
                if parent_len > 1 {
                    path.push('/');
                }
                path.push_str(n.name());
            }
            f(&path, n.data(), n.acl, &n.stat.persisted());
            let mut kids: Vec<(&str, NodeId)> = n
                .child_ids()
                .filter_map(|c| self.nodes.get(c).map(|k| (k.name(), c)))
                .collect();
            kids.sort_unstable_by(|a, b| b.0.cmp(a.0));
            let here = path.len();
            stack.extend(kids.into_iter().map(|(_, c)| (c, here)));
        }
    }

    /// Every path, in [`DataTree::visit`] order.
    pub fn walk(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.nodes.len());
        self.visit(|p, _, _, _| out.push(p.to_owned()));
        out
    }
}

/// Rebuilds a tree from a snapshot as it is read: sessions and ACL cache entries first,
/// then nodes with parents before children, one at a time (no list of a million decoded
/// nodes held beside the tree being built).
pub(crate) struct TreeLoader {
    tree: DataTree,
    /// Siblings come together (parents before children, depth first): the last parent
    /// found is usually the next node's too.
    last_parent: Option<(String, NodeId)>,
}

impl TreeLoader {
    /// A loader expecting about `nodes_hint` nodes (room is made for them up front).
    pub(crate) fn new(
        config: TreeConfig,
        sessions: BTreeMap<i64, i32>,
        acls: Vec<(i64, Vec<Acl>)>,
        nodes_hint: usize,
    ) -> TreeLoader {
        let mut tree = DataTree::empty(config);
        tree.sessions = sessions;
        for (r, list) in acls {
            tree.acls.insert_loaded(r, list);
        }
        tree.nodes.reserve(nodes_hint);
        TreeLoader {
            tree,
            last_parent: None,
        }
    }

    /// Adds the next node, `node` at `p` (named as `p` ends), whose path hashes to `hash`
    /// and whose digest term (`digest::node_digest`) is `digest`. Fails on a node whose
    /// parent is missing, or a repeated path.
    pub(crate) fn add(
        &mut self,
        p: &str,
        node: Node,
        hash: u64,
        digest: u64,
    ) -> std::result::Result<(), String> {
        let p = if p.is_empty() { "/" } else { p };
        if !p.starts_with('/') {
            // Nodes are stored by name under their parent: a path must name its place.
            return Err(format!("node {p:?} is not an absolute path"));
        }
        let t = &mut self.tree;
        let parent = if p == "/" {
            None
        } else {
            let parent = path::parent(p);
            match &self.last_parent {
                Some((path, id)) if path == parent => Some(*id),
                _ => match t.nodes.find(parent) {
                    Some(id) => {
                        self.last_parent = Some((parent.to_owned(), id));
                        Some(id)
                    }
                    None => return Err(format!("node {p} has no parent in the snapshot")),
                },
            }
        };
        let owner = node.stat.ephemeral_owner;
        let acl_ref = node.acl;
        if t.nodes.insert_new_hashed(p, hash, node, parent).is_err() {
            return Err(format!("node {p} appears twice in the snapshot"));
        }
        if acl_ref != OPEN_ACL_REF {
            t.acls.add_use(acl_ref);
        }
        t.index_owner(p, owner);
        if let Some((root, quota::LIMITS_NODE)) = quota::governed_path(p) {
            t.quota_roots.insert(root);
        }
        t.digest = t.digest.wrapping_add(digest);
        Ok(())
    }

    /// The tree, once every node is in.
    pub(crate) fn finish(self) -> std::result::Result<DataTree, String> {
        let mut t = self.tree;
        if !t.nodes.exists("/") {
            return Err("snapshot has no root node".to_owned());
        }
        t.acls.purge_unused();
        t.ensure_system_nodes();
        Ok(t)
    }
}

fn acl_from(acl: Option<Arc<[Acl]>>) -> Arc<[Acl]> {
    acl.unwrap_or_else(|| Arc::from(Vec::new()))
}

/// The client view of a node's stat (`DataNode.copyStat`). Clients see the owner only of
/// session ephemerals: container and TTL nodes show 0 (probed on ZooKeeper 3.8).
fn client_stat(n: &Node, extended_types_enabled: bool) -> Stat {
    let num_children = i32::try_from(n.child_count()).unwrap_or(i32::MAX);
    let mut s = Stat::from(&n.stat.persisted());
    if !matches!(
        classify(n.stat.ephemeral_owner, extended_types_enabled),
        EphemeralType::Normal(_)
    ) {
        s.ephemeral_owner = 0;
    }
    s.cversion = n.stat.cversion.wrapping_mul(2).wrapping_sub(num_children);
    s.num_children = num_children;
    s.data_length = i32::try_from(n.data_len()).unwrap_or(i32::MAX);
    s
}
