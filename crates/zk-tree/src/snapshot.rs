//! The tree and sessions as ZooKeeper's snapshot body (`SerializeUtils.serializeSnapshot`,
//! `DataTree.serialize`): sessions, the ACL cache, then every node depth-first (the root as
//! path "") terminated by the path "/". zk-log adds the file header, checksum and seals.

use std::collections::BTreeMap;
use std::io::{self, Write};

use bytes::Bytes;
use zk_proto::{Acl, DecodeError, Jute, Reader, StatPersisted};

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

/// Reads a snapshot body written by [`write_snapshot`] or by ZooKeeper. Leaves `r` after the
/// terminating "/" path, where ZooKeeper's seal and optional digest follow.
pub fn read_snapshot(config: TreeConfig, r: &mut Reader) -> Result<DataTree, SnapshotError> {
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
    loop {
        let path = r.read_string()?;
        if path == "/" {
            break;
        }
        let data: Option<Bytes> = r.read_buffer()?;
        let acl_ref = r.read_i64()?;
        let stat = StatPersisted::read(r)?;
        loader
            .add(&path, data.as_deref(), acl_ref, stat)
            .map_err(SnapshotError::InvalidTree)?;
    }
    loader.finish().map_err(SnapshotError::InvalidTree)
}
