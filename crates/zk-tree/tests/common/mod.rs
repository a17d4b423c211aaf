//! Txn builders shared by the tree tests.
#![allow(dead_code)]

use bytes::Bytes;
use zk_proto::*;
use zk_tree::{Applied, DataTree};

pub fn hdr(zxid: i64, session: i64, op: OpCode) -> TxnHeader {
    TxnHeader {
        client_id: session,
        cxid: 1,
        zxid,
        time: 1_000 + zxid,
        r#type: op.code(),
    }
}

pub fn open() -> Vec<Acl> {
    well_known::open_acl_unsafe()
}

pub fn create(tree: &mut DataTree, zxid: i64, path: &str, data: &[u8]) -> Applied {
    create_full(tree, zxid, 0, path, Some(data), false, -1)
}

pub fn create_full(
    tree: &mut DataTree,
    zxid: i64,
    session: i64,
    path: &str,
    data: Option<&[u8]>,
    ephemeral: bool,
    parent_c_version: i32,
) -> Applied {
    tree.apply(
        &hdr(zxid, session, OpCode::Create),
        &TxnBody::Create(CreateTxn {
            path: path.into(),
            data: data.map(Bytes::copy_from_slice),
            acl: open(),
            ephemeral,
            parent_c_version,
        }),
    )
}

pub fn delete(tree: &mut DataTree, zxid: i64, path: &str) -> Applied {
    tree.apply(
        &hdr(zxid, 0, OpCode::Delete),
        &TxnBody::Delete(DeleteTxn { path: path.into() }),
    )
}

pub fn set_data(tree: &mut DataTree, zxid: i64, path: &str, data: &[u8], version: i32) -> Applied {
    tree.apply(
        &hdr(zxid, 0, OpCode::SetData),
        &TxnBody::SetData(SetDataTxn {
            path: path.into(),
            data: Some(Bytes::copy_from_slice(data)),
            version,
        }),
    )
}
