//! Model-based property test: random txn sequences applied to the DataTree and to a small,
//! obviously-correct model (a sorted map of path -> node); after every txn the outcome and
//! every node's Stat must agree. Then: replaying the same txns gives the same digest and
//! the same snapshot bytes, and a snapshot reload gives the same digest.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use zk_proto::*;
use zk_tree::snapshot::{read_snapshot, write_snapshot};
use zk_tree::{DataTree, TreeConfig};

#[derive(Debug, Clone, PartialEq)]
struct ModelNode {
    data: Vec<u8>,
    version: i32,
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    creates: i32,
    owner: i64,
}

#[derive(Debug, Default)]
struct Model {
    nodes: BTreeMap<String, ModelNode>,
    /// The root's create counter and pzxid (it is not in `nodes`).
    root_creates: i32,
    root_pzxid: i64,
}

fn parent_of(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &p[..i],
    }
}

impl Model {
    fn children(&self, p: &str) -> usize {
        self.nodes.keys().filter(|k| parent_of(k) == p).count()
    }

    fn parent_mut(&mut self, p: &str) -> Option<(&mut i32, &mut i64)> {
        if p == "/" {
            return Some((&mut self.root_creates, &mut self.root_pzxid));
        }
        self.nodes
            .get_mut(p)
            .map(|n| (&mut n.creates, &mut n.pzxid))
    }

    /// The error code ZooKeeper's DataTree gives, applying the change if it succeeds.
    fn create(&mut self, p: &str, data: &[u8], zxid: i64, owner: i64) -> i32 {
        let parent = parent_of(p).to_owned();
        if parent != "/" && !self.nodes.contains_key(&parent) {
            return ErrorCode::NoNode.code();
        }
        if self.nodes.contains_key(p) {
            return ErrorCode::NodeExists.code();
        }
        if self.nodes.get(&parent).is_some_and(|n| n.owner != 0) {
            return ErrorCode::NoChildrenForEphemerals.code();
        }
        if let Some((creates, pzxid)) = self.parent_mut(&parent) {
            *creates += 1;
            *pzxid = zxid;
        }
        self.nodes.insert(
            p.to_owned(),
            ModelNode {
                data: data.to_vec(),
                version: 0,
                czxid: zxid,
                mzxid: zxid,
                pzxid: zxid,
                creates: 0,
                owner,
            },
        );
        0
    }

    fn delete(&mut self, p: &str, zxid: i64) -> i32 {
        if !self.nodes.contains_key(p) {
            return ErrorCode::NoNode.code();
        }
        if self.children(p) > 0 {
            return ErrorCode::NotEmpty.code();
        }
        self.nodes.remove(p);
        if let Some((_, pzxid)) = self.parent_mut(parent_of(p)) {
            *pzxid = (*pzxid).max(zxid);
        }
        0
    }

    fn set(&mut self, p: &str, data: &[u8], version: i32, zxid: i64) -> i32 {
        match self.nodes.get_mut(p) {
            None => ErrorCode::NoNode.code(),
            Some(n) => {
                n.data = data.to_vec();
                n.version = version;
                n.mzxid = zxid;
                0
            }
        }
    }

    fn close(&mut self, session: i64, zxid: i64) {
        let owned: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.owner == session)
            .map(|(p, _)| p.clone())
            .collect();
        for p in owned {
            self.delete(&p, zxid);
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create(String, Vec<u8>, Option<i64>),
    Delete(String),
    Set(String, Vec<u8>),
    Close(i64),
}

fn path() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop_oneof!["a", "b", "c"], 1..4)
        .prop_map(|v| format!("/{}", v.join("/")))
}

fn op() -> impl Strategy<Value = Op> {
    let data = proptest::collection::vec(any::<u8>(), 0..8);
    prop_oneof![
        4 => (path(), data.clone(), proptest::option::of(prop_oneof![Just(11i64), Just(12i64)]))
            .prop_map(|(p, d, s)| Op::Create(p, d, s)),
        2 => path().prop_map(Op::Delete),
        2 => (path(), data).prop_map(|(p, d)| Op::Set(p, d)),
        1 => prop_oneof![Just(11i64), Just(12i64)].prop_map(Op::Close),
    ]
}

fn txn_for(op: &Op, zxid: i64, tree: &DataTree) -> (TxnHeader, TxnBody) {
    let h = |session: i64, t: OpCode| TxnHeader {
        client_id: session,
        cxid: 0,
        zxid,
        time: zxid * 10,
        r#type: t.code(),
    };
    match op {
        Op::Create(p, d, s) => (
            h(s.unwrap_or(0), OpCode::Create),
            TxnBody::Create(CreateTxn {
                path: p.clone(),
                data: Some(Bytes::from(d.clone())),
                acl: well_known::open_acl_unsafe(),
                ephemeral: s.is_some(),
                parent_c_version: -1,
            }),
        ),
        Op::Delete(p) => (
            h(0, OpCode::Delete),
            TxnBody::Delete(DeleteTxn { path: p.clone() }),
        ),
        Op::Set(p, d) => {
            let version = tree.stat(p).map_or(0, |s| s.version + 1);
            (
                h(0, OpCode::SetData),
                TxnBody::SetData(SetDataTxn {
                    path: p.clone(),
                    data: Some(Bytes::from(d.clone())),
                    version,
                }),
            )
        }
        Op::Close(s) => (h(*s, OpCode::CloseSession), TxnBody::CloseSession(None)),
    }
}

fn check_against_model(tree: &DataTree, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(tree.node_count(), model.nodes.len() + 4);
    let root = tree.stat("/").unwrap();
    let root_children = model.children("/") + 1;
    prop_assert_eq!(root.num_children as usize, root_children);
    prop_assert_eq!(root.cversion, model.root_creates * 2 - root_children as i32);
    prop_assert_eq!(root.pzxid, model.root_pzxid);
    for (p, n) in &model.nodes {
        let s = tree
            .stat(p)
            .ok_or_else(|| TestCaseError::fail(format!("{p} missing")))?;
        let kids = model.children(p) as i32;
        let expected = Stat {
            czxid: n.czxid,
            mzxid: n.mzxid,
            ctime: n.czxid * 10,
            mtime: n.mzxid * 10,
            version: n.version,
            cversion: n.creates * 2 - kids,
            aversion: 0,
            ephemeral_owner: n.owner,
            data_length: n.data.len() as i32,
            num_children: kids,
            pzxid: n.pzxid,
        };
        prop_assert_eq!(&s, &expected, "stat of {}", p);
        let data = tree.data(p).unwrap().map(|b| b.to_vec());
        prop_assert_eq!(data, Some(n.data.clone()));
    }
    Ok(())
}

fn snapshot_bytes(tree: &DataTree) -> Vec<u8> {
    let mut out = Vec::new();
    write_snapshot(tree, &mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn tree_agrees_with_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut tree = DataTree::default();
        let mut model = Model::default();
        let mut txns = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let zxid = i as i64 + 1;
            let (h, body) = txn_for(op, zxid, &tree);
            let expected = match op {
                Op::Create(p, d, s) => model.create(p, d, zxid, s.unwrap_or(0)),
                Op::Delete(p) => model.delete(p, zxid),
                Op::Set(p, d) => {
                    let v = tree.stat(p).map_or(0, |s| s.version + 1);
                    model.set(p, d, v, zxid)
                }
                Op::Close(s) => { model.close(*s, zxid); 0 }
            };
            let applied = tree.apply(&h, &body);
            prop_assert_eq!(applied.result.err(), expected, "op {:?}", op);
            prop_assert_eq!(tree.last_processed_zxid(), zxid);
            check_against_model(&tree, &model)?;
            txns.push((h, body));
        }
        // Determinism: replaying the same txns gives the same digest and snapshot bytes.
        let mut replay = DataTree::default();
        for (h, b) in &txns {
            replay.apply(h, b);
        }
        prop_assert_eq!(replay.digest(), tree.digest());
        let bytes = snapshot_bytes(&tree);
        prop_assert_eq!(&snapshot_bytes(&replay), &bytes);
        // A reload recomputes the digest from scratch: it must match the incremental one.
        let loaded = read_snapshot(
            TreeConfig::default(),
            &mut Reader::with_len_max(Bytes::from(bytes), usize::MAX),
        ).unwrap();
        prop_assert_eq!(loaded.digest(), tree.digest());
        check_against_model(&loaded, &model)?;
    }
}
