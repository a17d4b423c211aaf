//! The tree and sessions as ZooKeeper's snapshot body (`SerializeUtils.serializeSnapshot`,
//! `DataTree.serialize`): sessions, the ACL cache, then every node depth-first (the root as
//! path "") terminated by the path "/". zk-log adds the file header, checksum and seals.

use std::collections::BTreeMap;
use std::io::{self, Write};

use bytes::Bytes;
use zk_proto::{Acl, DecodeError, Jute, Reader, StatPersisted};

use crate::store::{hash_path, Node};
use crate::tree::{DataTree, TreeConfig, TreeLoader};

/// Why a snapshot body could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot record: {0}")]
    Decode(#[from] DecodeError),
    #[error("invalid snapshot tree: {0}")]
    InvalidTree(String),
}

fn write_str(s: &str, buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(s.len() as i32).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn write_buffer(data: Option<&[u8]>, buf: &mut Vec<u8>) {
    match data {
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(d) => {
            buf.extend_from_slice(&(d.len() as i32).to_be_bytes());
            buf.extend_from_slice(d);
        }
    }
}

/// Writes sessions, ACL cache and nodes to `out`, in ZooKeeper's layout.
pub fn write_snapshot<W: Write>(tree: &DataTree, out: &mut W) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let sessions = tree.sessions();
    (sessions.len() as i32).write(&mut buf);
    for (id, timeout) in sessions {
        id.write(&mut buf);
        timeout.write(&mut buf);
    }
    let acls = tree.acl_cache();
    (acls.len() as i32).write(&mut buf);
    for (r, list) in acls.entries() {
        r.write(&mut buf);
        (list.len() as i32).write(&mut buf);
        for a in list {
            a.write(&mut buf);
        }
    }
    let mut result = Ok(());
    tree.visit(|p, data, acl_ref, stat| {
        if result.is_err() {
            return;
        }
        let path: &str = if p == "/" { "" } else { p };
        write_str(path, &mut buf);
        write_buffer(data, &mut buf);
        acl_ref.write(&mut buf);
        stat.write(&mut buf);
        if buf.len() >= 60 * 1024 {
            result = out.write_all(&buf);
            buf.clear();
        }
    });
    result?;
    "/".to_owned().write(&mut buf);
    out.write_all(&buf)
}

/// Snapshot bodies at least this big are decoded on a second thread while the tree is
/// built on the calling one.
const PIPELINE_MIN_BYTES: usize = 4 << 20;

/// Nodes handed from the decoding thread to the building one at a time.
const PIPELINE_BATCH: usize = 1024;

/// One decoded node record, ready to link into the tree: the node itself, its path's
/// hash and its digest term. Building these on the decoding thread leaves the building
/// one only the linking (a restart waits for the slower of the two).
struct NodeRecord {
    path: String,
    node: Node,
    hash: u64,
    digest: u64,
}

/// The next node record; `None` at the terminating "/".
fn read_node(r: &mut Reader) -> Result<Option<NodeRecord>, SnapshotError> {
    let path = r.read_string()?;
    if path == "/" {
        return Ok(None);
    }
    let data: Option<Bytes> = r.read_buffer()?;
    let acl_ref = r.read_i64()?;
    let stat = StatPersisted::read(r)?;
    let tree_path = if path.is_empty() { "/" } else { path.as_str() };
    let digest = crate::digest::node_digest(tree_path, data.as_deref(), &stat);
    let node = Node::new(crate::path::name(tree_path), data.as_deref(), acl_ref, stat);
    let hash = hash_path(tree_path.as_bytes());
    Ok(Some(NodeRecord {
        path,
        node,
        hash,
        digest,
    }))
}

/// Decodes node records (and their digest terms) on a second thread while this one
/// builds the tree: a restart with a million znodes waits for the slower of the two
/// instead of their sum. The tree comes out the same: records are added in file order.
fn load_pipelined(r: &mut Reader, loader: &mut TreeLoader) -> Result<(), SnapshotError> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<NodeRecord>>(4);
        let decoder = s.spawn(move || -> Result<(), SnapshotError> {
            loop {
                let mut batch = Vec::with_capacity(PIPELINE_BATCH);
                let mut done = false;
                while batch.len() < PIPELINE_BATCH {
                    match read_node(r) {
                        Ok(Some(n)) => batch.push(n),
                        Ok(None) => {
                            done = true;
                            break;
                        }
                        Err(e) => {
                            // The records before the bad one are built first, as when
                            // loading in one thread.
                            let _ = tx.send(batch);
                            return Err(e);
                        }
                    }
                }
                // A closed channel means the builder refused a node: stop decoding.
                if tx.send(batch).is_err() || done {
                    return Ok(());
                }
            }
        });
        let mut built = Ok(());
        'batches: for batch in rx.iter() {
            for n in batch {
                if let Err(e) = loader.add(&n.path, n.node, n.hash, n.digest) {
                    built = Err(SnapshotError::InvalidTree(e));
                    break 'batches;
                }
            }
        }
        // Dropping the receiver (when the loop broke early) lets the decoder stop.
        drop(rx);
        let decoded = decoder.join().unwrap_or_else(|_| {
            Err(SnapshotError::InvalidTree(
                "snapshot decoder panicked".into(),
            ))
        });
        // The first error in file order, as when loading in one thread: the builder saw
        // every record before the one that failed to decode.
        built.and(decoded)
    })
}

/// Reads a snapshot body written by [`write_snapshot`] or by ZooKeeper. Leaves `r` after the
/// terminating "/" path, where ZooKeeper's seal and optional digest follow.
pub fn read_snapshot(config: TreeConfig, r: &mut Reader) -> Result<DataTree, SnapshotError> {
    read_snapshot_with(config, r, PIPELINE_MIN_BYTES)
}

/// [`read_snapshot`], decoding on a second thread when at least `pipeline_min_bytes`
/// remain after the ACLs.
fn read_snapshot_with(
    config: TreeConfig,
    r: &mut Reader,
    pipeline_min_bytes: usize,
) -> Result<DataTree, SnapshotError> {
    let count = r.read_vec_len(12)?;
    let mut sessions = BTreeMap::new();
    for _ in 0..count {
        let id = r.read_i64()?;
        let timeout = r.read_i32()?;
        sessions.insert(id, timeout);
    }
    let count = r.read_vec_len(12)?;
    let mut acls = Vec::with_capacity(count);
    for _ in 0..count {
        let id = r.read_i64()?;
        let list = Vec::<Acl>::read(r)?;
        acls.push((id, list));
    }
    // A serialized node takes at least 84 bytes and 200 is typical of small values: room
    // for remaining / 200 nodes spares most index growth without over-reserving much.
    let hint = r.remaining() / 200;
    let mut loader = TreeLoader::new(config, sessions, acls, hint);
    if r.remaining() < pipeline_min_bytes {
        while let Some(n) = read_node(r)? {
            loader
                .add(&n.path, n.node, n.hash, n.digest)
                .map_err(SnapshotError::InvalidTree)?;
        }
    } else {
        load_pipelined(r, &mut loader)?;
    }
    loader.finish().map_err(SnapshotError::InvalidTree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::create;

    fn tree(n: usize) -> DataTree {
        let mut t = DataTree::default();
        let mut zxid = 1;
        for p in 0..10 {
            zxid += 1;
            create(&mut t, zxid, &format!("/p{p}"), b"");
            for c in 0..n / 10 {
                zxid += 1;
                create(&mut t, zxid, &format!("/p{p}/c{c}"), &[c as u8; 100]);
            }
        }
        t
    }

    fn bytes_of(t: &DataTree) -> Vec<u8> {
        let mut out = Vec::new();
        write_snapshot(t, &mut out).unwrap();
        out
    }

    /// Loads `bytes` in one thread and pipelined (in batches, so a few batches go by).
    fn both(bytes: &[u8]) -> [Result<DataTree, SnapshotError>; 2] {
        [usize::MAX, 0].map(|min| {
            let mut r = Reader::with_len_max(Bytes::copy_from_slice(bytes), usize::MAX);
            read_snapshot_with(TreeConfig::default(), &mut r, min)
        })
    }

    #[test]
    fn a_pipelined_load_builds_the_same_tree_and_fails_the_same_way() {
        let t = tree(5 * PIPELINE_BATCH);
        let good = bytes_of(&t);
        let [one, two] = both(&good);
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(one.digest(), t.digest());
        assert_eq!(two.digest(), t.digest());
        assert_eq!(two.walk(), t.walk());
        assert_eq!(bytes_of(&two), good);
        // Cut inside the nodes: the same decode error either way.
        for cut in [good.len() / 3, good.len() * 2 / 3, good.len() - 3] {
            let [one, two] = both(&good[..cut]);
            assert!(one.is_err());
            assert_eq!(one.err(), two.err(), "cut at {cut}");
        }
        // A node whose parent is missing, in the middle, and a cut near the end: the
        // earlier fault wins either way.
        let mut w = Vec::new();
        0i32.write(&mut w);
        0i32.write(&mut w);
        for i in 0..3 * PIPELINE_BATCH {
            let p = match i {
                0 => String::new(),
                1000 => "/missing/x".to_owned(),
                _ => format!("/n{i}"),
            };
            p.write(&mut w);
            Some(Bytes::from_static(b"d")).write(&mut w);
            (-1i64).write(&mut w);
            StatPersisted::default().write(&mut w);
        }
        let cut = w.len() - 10;
        let [one, two] = both(&w[..cut]);
        assert_eq!(one.as_ref().err(), two.as_ref().err());
        assert!(
            matches!(one, Err(SnapshotError::InvalidTree(ref e)) if e.contains("/missing/x")),
            "{:?}",
            one.err()
        );
    }
}
