//! Compact znode storage. A tree of a million znodes is the common large case, so each node
//! costs one heap allocation (its path and data together) plus a fixed-size slot:
//! - nodes live in a chunked slab addressed by a 32-bit [`NodeId`] (no per-node box, no
//!   doubling slack beyond one chunk);
//! - the path index is a hash table of node ids that hashes and compares the path stored in
//!   the node itself, so no path is stored twice;
//! - a node's children are a set of ids, absent for leaves;
//! - chunks are shared copy-on-write, so cloning the store (for a snapshot written in the
//!   background) copies only the index and chunk pointers; a chunk is copied when it is
//!   first changed afterwards.
//!
//! `hashbrown::HashTable` is used because the standard library does not expose a hash table
//! of values looked up by a key stored elsewhere.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use zk_proto::StatPersisted;

/// Index of a node in the slab.
pub(crate) type NodeId = u32;

/// Nodes per slab chunk: small, because the first change to a node after a snapshot copies
/// its whole chunk (nodes and their data) while the snapshot is being written.
const CHUNK: usize = 256;

/// foldhash with a fixed seed: deterministic (no ambient randomness in a pure crate) and
/// several times faster than SipHash on paths, which every request and every node of a
/// snapshot load hashes. SipHash with fixed keys resisted no crafted collisions either: its
/// keys would be public.
const PATH_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5eed_2181);

fn hash_path(path: &[u8]) -> u64 {
    PATH_HASH.hash_one(path)
}

/// Where a child id goes in its parent's set. Children made one after another get
/// consecutive ids, so the id's low 8 bits stay as they are (xor a per-block constant):
/// each block of 256 lands in one stretch of the table, and a million creates (or a
/// snapshot load) under one parent touch the table in order instead of missing the cache
/// once per child. The rest is mixed, so ids that share low bits (children made round
/// robin under 256 parents) still spread, and hashbrown's control byte (the top 7 bits)
/// tells apart ids of one block.
fn hash_id(id: &NodeId) -> u64 {
    let id = u64::from(*id);
    let block_mix = (id >> 8)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    id ^ block_mix ^ ((id & 0x7F) << 57)
}

const PATH_LEN_MASK: u32 = u32::MAX >> 1;

/// A node's persisted stat, field for field, with the node's path length in what would be
/// `StatPersisted`'s trailing padding (its 60 bytes round up to 64): so a slot is 96
/// bytes, not 104, and a chunk of 256 fills jemalloc's 24 KiB class instead of 28 KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NodeStat {
    pub(crate) czxid: i64,
    pub(crate) mzxid: i64,
    pub(crate) ctime: i64,
    pub(crate) mtime: i64,
    pub(crate) ephemeral_owner: i64,
    pub(crate) pzxid: i64,
    pub(crate) version: i32,
    pub(crate) cversion: i32,
    pub(crate) aversion: i32,
    /// The path's length (low 31 bits) and whether the data was set as a null buffer,
    /// distinct from empty (high bit).
    path_len_null: u32,
}

impl NodeStat {
    /// The stat as snapshots and digests see it.
    pub(crate) fn persisted(&self) -> StatPersisted {
        StatPersisted {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            pzxid: self.pzxid,
        }
    }

    fn new(s: &StatPersisted) -> NodeStat {
        NodeStat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            ephemeral_owner: s.ephemeral_owner,
            pzxid: s.pzxid,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            path_len_null: 0,
        }
    }
}

/// One znode.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The path's bytes followed by the data's bytes.
    blob: Box<[u8]>,
    pub(crate) acl: i64,
    pub(crate) stat: NodeStat,
    kids: Option<Box<Kids>>,
}

/// A parent's children, with the total length of their names: what a getChildren reply of
/// this node costs on the wire, known without walking the children (size guardrails).
#[derive(Debug, Clone, Default)]
struct Kids {
    ids: HashTable<NodeId>,
    name_bytes: u64,
}

impl Node {
    pub(crate) fn new(path: &str, data: Option<&[u8]>, acl: i64, stat: StatPersisted) -> Node {
        let mut n = Node {
            blob: Box::default(),
            acl,
            stat: NodeStat::new(&stat),
            kids: None,
        };
        n.set(path.as_bytes(), data);
        n
    }

    fn set(&mut self, path: &[u8], data: Option<&[u8]>) {
        let d = data.unwrap_or_default();
        let mut blob = Vec::with_capacity(path.len() + d.len());
        blob.extend_from_slice(path);
        blob.extend_from_slice(d);
        self.blob = blob.into_boxed_slice();
        // A path comes in a frame shorter than 2^31 bytes.
        let len = u32::try_from(path.len()).unwrap_or(u32::MAX) & PATH_LEN_MASK;
        self.stat.path_len_null = len | if data.is_none() { !PATH_LEN_MASK } else { 0 };
    }

    fn path_len(&self) -> usize {
        (self.stat.path_len_null & PATH_LEN_MASK) as usize
    }

    fn path_bytes(&self) -> &[u8] {
        &self.blob[..self.path_len()]
    }

    /// The node's full path.
    pub(crate) fn path(&self) -> &str {
        // Paths are stored from `&str`, so this never fails.
        std::str::from_utf8(self.path_bytes()).unwrap_or_default()
    }

    /// The node's last path segment.
    pub(crate) fn name(&self) -> &str {
        let p = self.path_bytes();
        let start = p.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
        // Paths are stored from `&str` and split at an ASCII '/', so this never fails.
        std::str::from_utf8(&p[start..]).unwrap_or_default()
    }

    /// The data; `None` for null data.
    pub(crate) fn data(&self) -> Option<&[u8]> {
        if self.stat.path_len_null & !PATH_LEN_MASK != 0 {
            None
        } else {
            Some(&self.blob[self.path_len()..])
        }
    }

    /// The node's term in the tree digest.
    pub(crate) fn digest(&self) -> u64 {
        crate::digest::node_digest(self.path(), self.data(), &self.stat.persisted())
    }

    pub(crate) fn data_len(&self) -> usize {
        self.blob.len() - self.path_len()
    }

    /// Replaces the data, keeping the path.
    pub(crate) fn set_data(&mut self, data: Option<&[u8]>) {
        let path = self.path_bytes().to_vec();
        self.set(&path, data);
    }

    pub(crate) fn child_count(&self) -> usize {
        self.kids.as_ref().map_or(0, |k| k.ids.len())
    }

    /// The summed length of the children's names.
    pub(crate) fn child_name_bytes(&self) -> u64 {
        self.kids.as_ref().map_or(0, |k| k.name_bytes)
    }

    pub(crate) fn child_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.kids.iter().flat_map(|k| k.ids.iter().copied())
    }

    fn add_child(&mut self, id: NodeId, name_len: usize) {
        let kids = self.kids.get_or_insert_with(Default::default);
        if kids.ids.find(hash_id(&id), |x| *x == id).is_none() {
            kids.ids.insert_unique(hash_id(&id), id, hash_id);
            kids.name_bytes += name_len as u64;
        }
    }

    fn remove_child(&mut self, id: NodeId, name_len: usize) {
        if let Some(kids) = self.kids.as_mut() {
            if let Ok(entry) = kids.ids.find_entry(hash_id(&id), |x| *x == id) {
                entry.remove();
                kids.name_bytes = kids.name_bytes.saturating_sub(name_len as u64);
            }
            if kids.ids.is_empty() {
                self.kids = None;
            }
        }
    }
}

/// All znodes, by id and by path.
#[derive(Debug, Clone, Default)]
pub(crate) struct Store {
    chunks: Vec<Arc<Vec<Option<Node>>>>,
    free: Vec<NodeId>,
    index: HashTable<NodeId>,
    len: usize,
}

impl Store {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, id: NodeId) -> Option<&Node> {
        let i = id as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        let i = id as usize;
        Arc::make_mut(self.chunks.get_mut(i / CHUNK)?)
            .get_mut(i % CHUNK)?
            .as_mut()
    }

    /// The id of the node at `path`. As in ZooKeeper, whose map holds the root under both
    /// names, "" finds the root too (probed: getData("") answers with the root's data).
    pub(crate) fn find(&self, path: &str) -> Option<NodeId> {
        let p = if path.is_empty() {
            b"/"
        } else {
            path.as_bytes()
        };
        let chunks = &self.chunks;
        self.index
            .find(hash_path(p), |id| {
                let i = *id as usize;
                chunks[i / CHUNK][i % CHUNK]
                    .as_ref()
                    .is_some_and(|n| n.path_bytes() == p)
            })
            .copied()
    }

    pub(crate) fn node(&self, path: &str) -> Option<&Node> {
        self.find(path).and_then(|id| self.get(id))
    }

    pub(crate) fn exists(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    /// Room for `additional` more nodes in the path index, so a snapshot load does not
    /// rehash every path at each doubling.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let chunks = &self.chunks;
        self.index.reserve(additional, |x| {
            let i = *x as usize;
            chunks[i / CHUNK][i % CHUNK]
                .as_ref()
                .map_or(0, |n| hash_path(n.path_bytes()))
        });
    }

    /// Adds a node unless its path is present (then gives it back), hashing the path once.
    pub(crate) fn insert_new(
        &mut self,
        node: Node,
        parent: Option<NodeId>,
    ) -> Result<NodeId, Node> {
        let hash = hash_path(node.path_bytes());
        let chunks = &self.chunks;
        let taken = self
            .index
            .find(hash, |id| {
                let i = *id as usize;
                chunks[i / CHUNK][i % CHUNK]
                    .as_ref()
                    .is_some_and(|n| n.path_bytes() == node.path_bytes())
            })
            .is_some();
        if taken {
            return Err(node);
        }
        Ok(self.insert_hashed(hash, node, parent))
    }

    /// Adds a node whose path is not present yet, linking it under `parent`.
    pub(crate) fn insert(&mut self, node: Node, parent: Option<NodeId>) -> NodeId {
        let hash = hash_path(node.path_bytes());
        self.insert_hashed(hash, node, parent)
    }

    fn insert_hashed(&mut self, hash: u64, node: Node, parent: Option<NodeId>) -> NodeId {
        let name_len = node.name().len();
        let id = match self.free.pop() {
            Some(id) => {
                let i = id as usize;
                Arc::make_mut(&mut self.chunks[i / CHUNK])[i % CHUNK] = Some(node);
                id
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
                }
                let base = (self.chunks.len() - 1) * CHUNK;
                let chunk =
                    Arc::make_mut(self.chunks.last_mut().expect("a chunk was just ensured"));
                chunk.push(Some(node));
                NodeId::try_from(base + chunk.len() - 1).expect("fewer than 2^32 znodes")
            }
        };
        let chunks = &self.chunks;
        self.index.insert_unique(hash, id, |x| {
            let i = *x as usize;
            chunks[i / CHUNK][i % CHUNK]
                .as_ref()
                .map_or(0, |n| hash_path(n.path_bytes()))
        });
        if let Some(p) = parent.and_then(|p| self.get_mut(p)) {
            p.add_child(id, name_len);
        }
        self.len += 1;
        id
    }

    /// Removes a node, unlinking it from `parent`.
    pub(crate) fn remove(&mut self, id: NodeId, parent: Option<NodeId>) -> Option<Node> {
        let i = id as usize;
        let node = Arc::make_mut(self.chunks.get_mut(i / CHUNK)?)
            .get_mut(i % CHUNK)?
            .take()?;
        if let Ok(entry) = self
            .index
            .find_entry(hash_path(node.path_bytes()), |x| *x == id)
        {
            entry.remove();
        }
        if let Some(p) = parent.and_then(|p| self.get_mut(p)) {
            p.remove_child(id, node.name().len());
        }
        self.free.push(id);
        self.len -= 1;
        Some(node)
    }

    /// Heap bytes of the store (see [`crate::memory`]): chunks, index, free list, and each
    /// node's path, data and children set. Also returns the path and data bytes alone.
    pub(crate) fn memory_bytes(&self) -> (u64, u64) {
        use crate::memory::heap_bytes;
        use std::mem::size_of;
        let mut total = heap_bytes(self.chunks.capacity() * size_of::<usize>());
        for c in &self.chunks {
            // The Arc's counts and the Vec header, then the slots.
            total += heap_bytes(16 + size_of::<Vec<Option<Node>>>());
            total += heap_bytes(c.capacity() * size_of::<Option<Node>>());
        }
        total += heap_bytes(self.index.allocation_size());
        total += heap_bytes(self.free.capacity() * size_of::<NodeId>());
        let mut payload = 0;
        for n in self.iter() {
            payload += n.blob.len() as u64;
            total += heap_bytes(n.blob.len());
            if let Some(k) = &n.kids {
                total += heap_bytes(size_of::<Kids>()) + heap_bytes(k.ids.allocation_size());
            }
        }
        (total, payload)
    }

    /// Every node, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Node> {
        self.chunks.iter().flat_map(|c| c.iter()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_reuse() {
        let mut s = Store::default();
        let root = s.insert(
            Node::new("/", Some(b""), -1, StatPersisted::default()),
            None,
        );
        let a = s.insert(
            Node::new("/a", Some(b"x"), -1, StatPersisted::default()),
            Some(root),
        );
        let b = s.insert(
            Node::new("/b", None, -1, StatPersisted::default()),
            Some(root),
        );
        assert_eq!(s.find("/a"), Some(a));
        assert_eq!(s.node("/b").unwrap().data(), None);
        assert_eq!(s.node("/a").unwrap().data(), Some(&b"x"[..]));
        assert_eq!(s.get(root).unwrap().child_count(), 2);
        assert_eq!(s.get(root).unwrap().child_name_bytes(), 2);
        s.remove(a, Some(root));
        assert_eq!(s.get(root).unwrap().child_name_bytes(), 1);
        assert_eq!(s.find("/a"), None);
        assert_eq!(s.get(root).unwrap().child_count(), 1);
        let c = s.insert(
            Node::new("/c", Some(b""), -1, StatPersisted::default()),
            Some(root),
        );
        assert_eq!(c, a, "freed slot reused");
        assert_eq!(s.len(), 3);
        s.get_mut(b).unwrap().set_data(Some(b"new"));
        assert_eq!(s.node("/b").unwrap().path(), "/b");
        assert_eq!(s.node("/b").unwrap().data(), Some(&b"new"[..]));
        s.get_mut(b).unwrap().set_data(None);
        assert_eq!(s.node("/b").unwrap().data(), None, "null again");
        assert_eq!(s.node("/b").unwrap().path(), "/b");
        assert_eq!(s.node("/b").unwrap().data_len(), 0);
    }

    #[test]
    fn a_slot_is_96_bytes() {
        // A million-znode tree pays this per node (see `NodeStat`).
        assert_eq!(std::mem::size_of::<Option<Node>>(), 96);
    }

    #[test]
    fn clones_share_chunks_until_written() {
        let mut s = Store::default();
        let root = s.insert(
            Node::new("/", Some(b""), -1, StatPersisted::default()),
            None,
        );
        let a = s.insert(
            Node::new("/a", Some(b"1"), -1, StatPersisted::default()),
            Some(root),
        );
        let frozen = s.clone();
        s.get_mut(a).unwrap().set_data(Some(b"2"));
        s.insert(
            Node::new("/b", None, -1, StatPersisted::default()),
            Some(root),
        );
        assert_eq!(frozen.node("/a").unwrap().data(), Some(&b"1"[..]));
        assert!(frozen.node("/b").is_none());
        assert_eq!(s.node("/a").unwrap().data(), Some(&b"2"[..]));
        assert_eq!((frozen.len(), s.len()), (2, 3));
    }

    #[test]
    fn many_nodes_across_chunks() {
        let mut s = Store::default();
        let root = s.insert(
            Node::new("/", Some(b""), -1, StatPersisted::default()),
            None,
        );
        for i in 0..10_000 {
            s.insert(
                Node::new(&format!("/n{i}"), Some(b"d"), -1, StatPersisted::default()),
                Some(root),
            );
        }
        for i in (0..10_000).step_by(997) {
            let id = s.find(&format!("/n{i}")).unwrap();
            assert_eq!(s.get(id).unwrap().name(), format!("n{i}"));
        }
        assert_eq!(s.get(root).unwrap().child_count(), 10_000);
        assert_eq!(s.iter().count(), 10_001);
    }
    #[test]
    fn child_ids_keep_their_order_in_blocks_and_spread_across_strides() {
        // A block of 256 consecutive ids lands in one aligned stretch of 256 buckets.
        for block in [0u32, 1, 77, 4000] {
            let stretches: std::collections::HashSet<u64> = (block * 256..block * 256 + 256)
                .map(|id| (hash_id(&id) & 0xFFFF) >> 8)
                .collect();
            assert_eq!(stretches.len(), 1, "block {block}");
        }
        // Ids 256 apart (children made round robin under 256 parents) still spread: a
        // table of 4096 buckets sees about as many distinct buckets as random keys give.
        let buckets: std::collections::HashSet<u64> = (0..4096u32)
            .map(|i| hash_id(&(i * 256 + 3)) & 0xFFF)
            .collect();
        assert!(buckets.len() > 2400, "{} distinct buckets", buckets.len());
        // And the control byte (top 7 bits) differs within a block.
        let tags: std::collections::HashSet<u64> =
            (0..256u32).map(|id| hash_id(&id) >> 57).collect();
        assert_eq!(tags.len(), 128);
    }
}
