//! Compact znode storage. A tree of a million znodes is the common large case, so each node
//! costs one heap allocation (its name and data together) plus a fixed-size slot:
//! - nodes live in a chunked slab addressed by a 32-bit [`NodeId`] (no per-node box, no
//!   doubling slack beyond one chunk);
//! - a node stores its name and its parent's id, not its full path: a million children of
//!   `/app/queue` do not each repeat `/app/queue/`, and a 100-byte node's name and data
//!   fit jemalloc's 112-byte class instead of 128;
//! - the path index is a hash table of node ids keyed by the full path's hash; a lookup
//!   confirms a candidate by matching the path's segments against the node's name and its
//!   ancestors' (the parents of a busy part of the tree stay in cache), so no path is
//!   stored at all;
//! - a node's children are a set of ids, absent for leaves;
//! - chunks are shared copy-on-write, so cloning the store (for a snapshot written in the
//!   background) copies only the index and chunk pointers; a chunk is copied when it is
//!   first changed afterwards.
//!
//! `hashbrown::HashTable` is used because the standard library does not expose a hash table
//! of values looked up by a key stored elsewhere.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use zk_proto::StatPersisted;

/// Index of a node in the slab.
pub(crate) type NodeId = u32;

/// The root's parent.
const NO_PARENT: NodeId = NodeId::MAX;

/// Nodes per slab chunk: small, because the first change to a node after a snapshot copies
/// its whole chunk (nodes and their data) while the snapshot is being written.
const CHUNK: usize = 256;

/// foldhash with a fixed seed: deterministic (no ambient randomness in a pure crate) and
/// several times faster than SipHash on paths, which every request and every node of a
/// snapshot load hashes. SipHash with fixed keys resisted no crafted collisions either: its
/// keys would be public.
const PATH_HASH: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x5eed_2181);

pub(crate) fn hash_path(path: &[u8]) -> u64 {
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

/// A node's persisted stat, field for field, with the parent's id in what would be
/// `StatPersisted`'s trailing padding (its 60 bytes round up to 64): so a slot is 96
/// bytes, and a chunk of 256 fills jemalloc's 24 KiB class.
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
    /// The parent's id; [`NO_PARENT`] for the root. Set when the node is linked in.
    parent: NodeId,
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
            parent: NO_PARENT,
        }
    }
}

/// One znode.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// A header, the name's bytes, then the data's bytes. The header is a LEB128 varint of
    /// `name length * 2 + null`, where `null` marks data set as a null buffer (distinct
    /// from empty): one byte for a name shorter than 64 bytes.
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

/// Where the name starts, its length, and whether the data is null.
fn read_header(blob: &[u8]) -> (usize, usize, bool) {
    let mut v: u64 = 0;
    for (i, b) in blob.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            let len = usize::try_from(v >> 1).unwrap_or(usize::MAX);
            return (i + 1, len, v & 1 == 1);
        }
    }
    // Only `Node::set` writes blobs, always with a whole header.
    (blob.len(), 0, true)
}

impl Node {
    /// A node named `name` (the last segment of its path; "" for the root), not yet linked
    /// under a parent.
    pub(crate) fn new(name: &str, data: Option<&[u8]>, acl: i64, stat: StatPersisted) -> Node {
        let mut n = Node {
            blob: Box::default(),
            acl,
            stat: NodeStat::new(&stat),
            kids: None,
        };
        n.set(name.as_bytes(), data);
        n
    }

    fn set(&mut self, name: &[u8], data: Option<&[u8]>) {
        let d = data.unwrap_or_default();
        let mut v = (name.len() as u64) << 1 | u64::from(data.is_none());
        let mut blob = Vec::with_capacity(1 + name.len() + d.len());
        loop {
            let low = (v & 0x7F) as u8;
            v >>= 7;
            if v == 0 {
                blob.push(low);
                break;
            }
            blob.push(low | 0x80);
        }
        blob.extend_from_slice(name);
        blob.extend_from_slice(d);
        self.blob = blob.into_boxed_slice();
    }

    fn name_bytes(&self) -> &[u8] {
        let (at, len, _) = read_header(&self.blob);
        self.blob.get(at..at + len).unwrap_or_default()
    }

    /// The node's last path segment ("" for the root).
    pub(crate) fn name(&self) -> &str {
        // Names are stored from `&str`, so this never fails.
        std::str::from_utf8(self.name_bytes()).unwrap_or_default()
    }

    /// The data; `None` for null data.
    pub(crate) fn data(&self) -> Option<&[u8]> {
        let (at, len, null) = read_header(&self.blob);
        if null {
            None
        } else {
            Some(self.blob.get(at + len..).unwrap_or_default())
        }
    }

    /// The node's term in the tree digest; `path` is where the node is.
    pub(crate) fn digest(&self, path: &str) -> u64 {
        crate::digest::node_digest(path, self.data(), &self.stat.persisted())
    }

    pub(crate) fn data_len(&self) -> usize {
        let (at, len, _) = read_header(&self.blob);
        self.blob.len().saturating_sub(at + len)
    }

    /// Replaces the data, keeping the name.
    pub(crate) fn set_data(&mut self, data: Option<&[u8]>) {
        let name = self.name_bytes().to_vec();
        self.set(&name, data);
    }

    /// The parent's id; `None` for the root.
    pub(crate) fn parent(&self) -> Option<NodeId> {
        (self.stat.parent != NO_PARENT).then_some(self.stat.parent)
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

    /// Adds child `id`, a node just stored: no other parent or earlier life of the id
    /// can have left it in this set (a removed node leaves its parent's set), so there is
    /// nothing to look up first.
    fn add_new_child(&mut self, id: NodeId, name_len: usize) {
        let kids = self.kids.get_or_insert_with(Default::default);
        debug_assert!(kids.ids.find(hash_id(&id), |x| *x == id).is_none());
        kids.ids.insert_unique(hash_id(&id), id, hash_id);
        kids.name_bytes += name_len as u64;
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
    /// The index is left out (see [`Store::frozen_copy`]): paths are found by walking
    /// down from the root, and the index is rebuilt before the first change.
    unindexed: bool,
    root: Option<NodeId>,
    len: usize,
}

/// The node `id` in `chunks`, if present.
fn slot(chunks: &[Arc<Vec<Option<Node>>>], id: NodeId) -> Option<&Node> {
    let i = id as usize;
    chunks.get(i / CHUNK)?.get(i % CHUNK)?.as_ref()
}

/// Whether node `id` is at `path`: its name is the path's last segment, its parent's name
/// the one before, and so on up to the root.
fn is_at(chunks: &[Arc<Vec<Option<Node>>>], id: NodeId, path: &[u8]) -> bool {
    let mut id = id;
    let mut rest = path;
    loop {
        let Some(n) = slot(chunks, id) else {
            return false;
        };
        let Some(parent) = n.parent() else {
            // The root, reached exactly when the whole path is used up.
            return rest == b"/";
        };
        let name = n.name_bytes();
        let Some(cut) = rest.len().checked_sub(name.len() + 1) else {
            return false;
        };
        if rest[cut] != b'/' || &rest[cut + 1..] != name {
            return false;
        }
        rest = if cut == 0 { b"/" } else { &rest[..cut] };
        id = parent;
    }
}

/// Writes node `id`'s full path into `out` (cleared first), walking up to the root.
fn path_into(chunks: &[Arc<Vec<Option<Node>>>], id: NodeId, out: &mut Vec<u8>) {
    out.clear();
    let mut names: Vec<&[u8]> = Vec::new();
    let mut at = slot(chunks, id);
    while let Some(n) = at {
        match n.parent() {
            Some(p) => {
                names.push(n.name_bytes());
                at = slot(chunks, p);
            }
            None => break,
        }
    }
    if names.is_empty() {
        out.push(b'/');
    }
    for name in names.iter().rev() {
        out.push(b'/');
        out.extend_from_slice(name);
    }
}

/// The hash of node `id`'s full path, for growing the index.
fn rehash(chunks: &[Arc<Vec<Option<Node>>>], buf: &RefCell<Vec<u8>>, id: NodeId) -> u64 {
    let mut b = buf.borrow_mut();
    path_into(chunks, id, &mut b);
    hash_path(&b)
}

/// Stores `node` (under `parent`) in a free slot or a new one; its id.
fn place(
    chunks: &mut Vec<Arc<Vec<Option<Node>>>>,
    free: &mut Vec<NodeId>,
    mut node: Node,
    parent: Option<NodeId>,
) -> NodeId {
    node.stat.parent = parent.unwrap_or(NO_PARENT);
    match free.pop() {
        Some(id) => {
            let i = id as usize;
            Arc::make_mut(&mut chunks[i / CHUNK])[i % CHUNK] = Some(node);
            id
        }
        None => {
            if chunks.last().is_none_or(|c| c.len() == CHUNK) {
                chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
            }
            let base = (chunks.len() - 1) * CHUNK;
            let chunk = Arc::make_mut(chunks.last_mut().expect("a chunk was just ensured"));
            chunk.push(Some(node));
            NodeId::try_from(base + chunk.len() - 1)
                .ok()
                .filter(|id| *id != NO_PARENT)
                .expect("fewer than 2^32 - 1 znodes")
        }
    }
}

impl Store {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn get(&self, id: NodeId) -> Option<&Node> {
        slot(&self.chunks, id)
    }

    pub(crate) fn get_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        let i = id as usize;
        Arc::make_mut(self.chunks.get_mut(i / CHUNK)?)
            .get_mut(i % CHUNK)?
            .as_mut()
    }

    /// A copy to write a snapshot from: the chunks are shared copy-on-write, and the path
    /// index (10 MB for a million znodes), which a snapshot writer walking down from the
    /// root does not need, is not copied.
    pub(crate) fn frozen_copy(&self) -> Store {
        Store {
            chunks: self.chunks.clone(),
            free: self.free.clone(),
            index: HashTable::new(),
            unindexed: true,
            root: self.root,
            len: self.len,
        }
    }

    /// Builds the index a [`Store::frozen_copy`] left out, before it is changed.
    fn ensure_index(&mut self) {
        if !self.unindexed {
            return;
        }
        self.unindexed = false;
        let chunks = &self.chunks;
        let mut index = HashTable::with_capacity(self.len);
        let mut buf = Vec::new();
        let spare = RefCell::new(Vec::new());
        for (id, _) in self.iter_ids() {
            path_into(chunks, id, &mut buf);
            index.insert_unique(hash_path(&buf), id, |x| rehash(chunks, &spare, *x));
        }
        self.index = index;
    }

    /// Finds `path` in a store without its index: down from the root, a name at a time.
    fn find_by_walking(&self, path: &[u8]) -> Option<NodeId> {
        let mut at = self.root?;
        if path == b"/" {
            return Some(at);
        }
        for name in path.strip_prefix(b"/")?.split(|b| *b == b'/') {
            let node = self.get(at)?;
            at = node
                .child_ids()
                .find(|c| self.get(*c).is_some_and(|k| k.name_bytes() == name))?;
        }
        Some(at)
    }

    /// The id of the node at `path`. As in ZooKeeper, whose map holds the root under both
    /// names, "" finds the root too (probed: getData("") answers with the root's data).
    pub(crate) fn find(&self, path: &str) -> Option<NodeId> {
        let p = if path.is_empty() {
            b"/"
        } else {
            path.as_bytes()
        };
        if self.unindexed {
            return self.find_by_walking(p);
        }
        let chunks = &self.chunks;
        self.index
            .find(hash_path(p), |id| is_at(chunks, *id, p))
            .copied()
    }

    pub(crate) fn node(&self, path: &str) -> Option<&Node> {
        self.find(path).and_then(|id| self.get(id))
    }

    pub(crate) fn exists(&self, path: &str) -> bool {
        self.find(path).is_some()
    }

    /// Node `id`'s full path, rebuilt from the names up to the root ("" if absent).
    pub(crate) fn path(&self, id: NodeId) -> String {
        if self.get(id).is_none() {
            return String::new();
        }
        let mut out = Vec::new();
        path_into(&self.chunks, id, &mut out);
        // Names are stored from `&str` and joined with an ASCII '/'.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Room for `additional` more nodes in the path index, so a snapshot load does not
    /// rehash every path at each doubling.
    pub(crate) fn reserve(&mut self, additional: usize) {
        self.ensure_index();
        self.make_room(additional);
    }

    /// Grows the path index, when it has no room for `additional` more paths, from every
    /// node's path hash computed first in id order. Growing rehashes every path, and
    /// rebuilding each path inside the table's own rehash visits the nodes in random order
    /// (a cache miss or more per node): a million-znode store took about 0.25 s to grow
    /// that way, in replay after a snapshot load or under a client's create.
    fn make_room(&mut self, additional: usize) {
        if self.index.capacity() - self.index.len() >= additional {
            return;
        }
        let chunks = &self.chunks;
        let mut hashes = vec![0u64; chunks.len() * CHUNK];
        let mut buf = Vec::new();
        for (id, _) in self.iter_ids() {
            path_into(chunks, id, &mut buf);
            hashes[id as usize] = hash_path(&buf);
        }
        self.index.reserve(additional, |x| {
            hashes.get(*x as usize).copied().unwrap_or(0)
        });
    }

    /// Adds a node at `path` unless that path is present (then gives it back), hashing the
    /// path once. `node` is named as `path` ends and `parent` is the node at the rest.
    #[cfg(test)]
    pub(crate) fn insert_new(
        &mut self,
        path: &str,
        node: Node,
        parent: Option<NodeId>,
    ) -> Result<NodeId, Node> {
        self.insert_new_hashed(path, hash_path(path.as_bytes()), node, parent)
    }

    /// [`Store::insert_new`] with the path's hash (`hash_path`) computed by the caller:
    /// a snapshot load hashes on its decoding thread.
    pub(crate) fn insert_new_hashed(
        &mut self,
        path: &str,
        hash: u64,
        node: Node,
        parent: Option<NodeId>,
    ) -> Result<NodeId, Node> {
        self.ensure_index();
        self.make_room(1);
        let p = path.as_bytes();
        // One probe finds the path absent and the slot it goes in (a million-znode
        // snapshot load pays a cache miss per probe).
        let chunks = &self.chunks;
        let buf = RefCell::new(Vec::new());
        let vacant = match self.index.entry(
            hash,
            |id| is_at(chunks, *id, p),
            |x| rehash(chunks, &buf, *x),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => return Err(node),
            hashbrown::hash_table::Entry::Vacant(v) => v,
        };
        let name_len = node.name_bytes().len();
        let id = place(&mut self.chunks, &mut self.free, node, parent);
        vacant.insert(id);
        self.link(id, name_len, parent);
        Ok(id)
    }

    /// Adds a node at `path`, which is not present yet, linking it under `parent` (the
    /// node at the rest of the path; `node` is named as `path` ends).
    pub(crate) fn insert(&mut self, path: &str, node: Node, parent: Option<NodeId>) -> NodeId {
        self.ensure_index();
        self.insert_hashed(hash_path(path.as_bytes()), node, parent)
    }

    fn insert_hashed(&mut self, hash: u64, node: Node, parent: Option<NodeId>) -> NodeId {
        self.make_room(1);
        let name_len = node.name_bytes().len();
        let id = place(&mut self.chunks, &mut self.free, node, parent);
        let chunks = &self.chunks;
        let buf = RefCell::new(Vec::new());
        self.index
            .insert_unique(hash, id, |x| rehash(chunks, &buf, *x));
        self.link(id, name_len, parent);
        id
    }

    /// Links the new node `id` under `parent` (or makes it the root) and counts it.
    fn link(&mut self, id: NodeId, name_len: usize, parent: Option<NodeId>) {
        match parent {
            Some(p) => {
                if let Some(p) = self.get_mut(p) {
                    p.add_new_child(id, name_len);
                }
            }
            None => self.root = Some(id),
        }
        self.len += 1;
    }

    /// Removes node `id`, which is at `path`, unlinking it from `parent`.
    pub(crate) fn remove(
        &mut self,
        path: &str,
        id: NodeId,
        parent: Option<NodeId>,
    ) -> Option<Node> {
        self.ensure_index();
        let i = id as usize;
        let node = Arc::make_mut(self.chunks.get_mut(i / CHUNK)?)
            .get_mut(i % CHUNK)?
            .take()?;
        if let Ok(entry) = self
            .index
            .find_entry(hash_path(path.as_bytes()), |x| *x == id)
        {
            entry.remove();
        }
        if let Some(p) = parent.and_then(|p| self.get_mut(p)) {
            p.remove_child(id, node.name_bytes().len());
        }
        if self.root == Some(id) {
            self.root = None;
        }
        self.free.push(id);
        self.len -= 1;
        Some(node)
    }

    /// Heap bytes of the store (see [`crate::memory`]): chunks, index, free list, and each
    /// node's name, data and children set. Also returns the name and data bytes alone.
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

    /// Every node with its id, in no particular order.
    pub(crate) fn iter_ids(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .enumerate()
            .filter_map(|(i, n)| Some((NodeId::try_from(i).ok()?, n.as_ref()?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_reuse() {
        let mut s = Store::default();
        let root = s.insert(
            "/",
            Node::new("", Some(b""), -1, StatPersisted::default()),
            None,
        );
        let a = s.insert(
            "/a",
            Node::new("a", Some(b"x"), -1, StatPersisted::default()),
            Some(root),
        );
        let b = s.insert(
            "/b",
            Node::new("b", None, -1, StatPersisted::default()),
            Some(root),
        );
        assert_eq!(s.find("/a"), Some(a));
        assert_eq!(s.node("/b").unwrap().data(), None);
        assert_eq!(s.node("/a").unwrap().data(), Some(&b"x"[..]));
        assert_eq!(s.get(root).unwrap().child_count(), 2);
        assert_eq!(s.get(root).unwrap().child_name_bytes(), 2);
        s.remove("/a", a, Some(root));
        assert_eq!(s.get(root).unwrap().child_name_bytes(), 1);
        assert_eq!(s.find("/a"), None);
        assert_eq!(s.get(root).unwrap().child_count(), 1);
        let c = s.insert(
            "/c",
            Node::new("c", Some(b""), -1, StatPersisted::default()),
            Some(root),
        );
        assert_eq!(c, a, "freed slot reused");
        assert_eq!(s.len(), 3);
        s.get_mut(b).unwrap().set_data(Some(b"new"));
        assert_eq!(s.path(b), "/b");
        assert_eq!(s.node("/b").unwrap().data(), Some(&b"new"[..]));
        s.get_mut(b).unwrap().set_data(None);
        assert_eq!(s.node("/b").unwrap().data(), None, "null again");
        assert_eq!(s.path(b), "/b");
        assert_eq!(s.node("/b").unwrap().data_len(), 0);
    }

    /// The index grows (and rehashes in place after removals) from hashes computed in id
    /// order: every path is still found at its node, removed ones are not, and slots freed
    /// along the way are reused.
    #[test]
    fn the_path_index_grows_and_rehashes_with_every_path_found() {
        let mut s = Store::default();
        let root = s.insert("/", Node::new("", None, -1, StatPersisted::default()), None);
        let mut live: Vec<(String, NodeId)> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        for p in 0..4 {
            let pp = format!("/p{p}");
            let parent = s.insert_new(
                &pp,
                Node::new(&pp[1..], None, -1, StatPersisted::default()),
                Some(root),
            );
            let parent = parent.unwrap_or_else(|_| panic!("{pp} was new"));
            live.push((pp.clone(), parent));
            for c in 0..3000 {
                let path = format!("{pp}/c{c}");
                let id = match c % 2 {
                    0 => s.insert(
                        &path,
                        Node::new(&format!("c{c}"), None, -1, StatPersisted::default()),
                        Some(parent),
                    ),
                    _ => s
                        .insert_new(
                            &path,
                            Node::new(&format!("c{c}"), None, -1, StatPersisted::default()),
                            Some(parent),
                        )
                        .unwrap_or_else(|_| panic!("{path} was new")),
                };
                live.push((path, id));
                // Removals leave tombstones, so some growth is a rehash in place.
                if c % 3 == 2 {
                    let (path, id) = live.remove(live.len() - 2);
                    s.remove(&path, id, Some(parent));
                    gone.push(path);
                }
            }
            assert!(
                s.insert_new(
                    &format!("{pp}/c2999"),
                    Node::new("c2999", None, -1, StatPersisted::default()),
                    Some(parent)
                )
                .is_err(),
                "a present path is refused"
            );
        }
        assert_eq!(s.len(), live.len() + 1);
        for (path, id) in &live {
            assert_eq!(s.find(path), Some(*id), "{path}");
            assert_eq!(&s.path(*id), path);
        }
        for path in &gone {
            assert_eq!(s.find(path), None, "{path}");
        }
        let kids: usize = live
            .iter()
            .filter(|(p, _)| p.matches('/').count() == 1)
            .map(|(_, id)| s.get(*id).unwrap().child_count())
            .sum();
        assert_eq!(kids + 4, live.len());
    }

    #[test]
    fn paths_are_names_under_parents() {
        let mut s = Store::default();
        let root = s.insert("/", Node::new("", None, -1, StatPersisted::default()), None);
        let long = "x".repeat(300);
        let mut ids = Vec::new();
        // The same names under different parents, a name longer than one header byte
        // holds, and a chain five deep.
        for parent_path in ["/a", "/b"] {
            let parent = s.insert(
                parent_path,
                Node::new(&parent_path[1..], Some(b"p"), -1, StatPersisted::default()),
                Some(root),
            );
            let mut at = parent;
            let mut path = parent_path.to_owned();
            for name in ["c", long.as_str(), "c", "d"] {
                path = format!("{path}/{name}");
                let data = format!("data of {path}");
                at = s.insert(
                    &path,
                    Node::new(name, Some(data.as_bytes()), -1, StatPersisted::default()),
                    Some(at),
                );
                ids.push((path.clone(), at));
            }
        }
        for (path, id) in &ids {
            assert_eq!(s.find(path), Some(*id), "{path}");
            assert_eq!(&s.path(*id), path);
            let data = format!("data of {path}");
            assert_eq!(s.get(*id).unwrap().data(), Some(data.as_bytes()));
        }
        assert_eq!(s.get(ids[1].1).unwrap().name(), long);
        assert_eq!(s.get(root).unwrap().parent(), None);
        assert_eq!(s.get(ids[0].1).unwrap().parent(), s.find("/a"));
        // Near misses: a prefix, a suffix, a path one segment off, segments swapped.
        for miss in [
            "/c", "/a/c/c", "/a/d", "a/c", "/a/c/", "//c", "/b/a/c", "/ab/c",
        ] {
            assert_eq!(s.find(miss), None, "{miss}");
        }
        assert_eq!(s.path(root), "/");
        assert_eq!(s.find(""), Some(root));
        // Removing a node drops its path from the index and its slot is reused.
        let (deep, deep_id) = ids[3].clone();
        s.remove(&deep, deep_id, Some(ids[2].1));
        assert_eq!(s.find(&deep), None);
        assert_eq!(s.get(ids[2].1).unwrap().child_count(), 0);
        assert_eq!(s.iter_ids().count(), s.len());
    }

    #[test]
    fn a_frozen_copy_finds_paths_without_an_index_and_rebuilds_it_to_change() {
        let mut s = Store::default();
        let root = s.insert("/", Node::new("", None, -1, StatPersisted::default()), None);
        let a = s.insert(
            "/a",
            Node::new("a", Some(b"1"), -1, StatPersisted::default()),
            Some(root),
        );
        for i in 0..300 {
            s.insert(
                &format!("/a/n{i}"),
                Node::new(&format!("n{i}"), Some(b"x"), -1, StatPersisted::default()),
                Some(a),
            );
        }
        let mut frozen = s.frozen_copy();
        assert_eq!(frozen.index.len(), 0, "no index copied");
        for p in ["/", "", "/a", "/a/n0", "/a/n299"] {
            assert_eq!(frozen.find(p), s.find(p), "{p}");
        }
        for miss in ["/b", "/a/n300", "/a/n0/x", "a", "/a/"] {
            assert_eq!(frozen.find(miss), None, "{miss}");
        }
        // Changing the copy rebuilds its index first; the original is untouched.
        let n0 = frozen.find("/a/n0").unwrap();
        frozen.remove("/a/n0", n0, Some(a));
        frozen.insert(
            "/a/new",
            Node::new("new", None, -1, StatPersisted::default()),
            Some(a),
        );
        assert!(!frozen.unindexed);
        assert_eq!(frozen.find("/a/n0"), None);
        assert!(frozen.find("/a/new").is_some() && frozen.find("/a/n299").is_some());
        assert!(s.find("/a/n0").is_some() && s.find("/a/new").is_none());
    }

    #[test]
    fn a_100_byte_node_under_a_short_name_takes_one_112_byte_allocation() {
        // jemalloc's classes step 96, 112, 128: a million such nodes save 16 MB over a
        // stored full path (`/zkbench-12345/c123456` and 100 bytes is 122).
        let n = Node::new("c123456", Some(&[7; 100]), -1, StatPersisted::default());
        assert!(n.blob.len() <= 112, "{}", n.blob.len());
        assert_eq!(n.data_len(), 100);
        assert_eq!(n.name(), "c123456");
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
            "/",
            Node::new("", Some(b""), -1, StatPersisted::default()),
            None,
        );
        let a = s.insert(
            "/a",
            Node::new("a", Some(b"1"), -1, StatPersisted::default()),
            Some(root),
        );
        let frozen = s.clone();
        s.get_mut(a).unwrap().set_data(Some(b"2"));
        s.insert(
            "/b",
            Node::new("b", None, -1, StatPersisted::default()),
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
            "/",
            Node::new("", Some(b""), -1, StatPersisted::default()),
            None,
        );
        for i in 0..10_000 {
            s.insert(
                &format!("/n{i}"),
                Node::new(&format!("n{i}"), Some(b"d"), -1, StatPersisted::default()),
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
