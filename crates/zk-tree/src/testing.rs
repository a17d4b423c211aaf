//! Helpers for the crate's unit tests.

use zk_proto::{CreateTxn, TxnBody, TxnHeader};

use crate::tree::DataTree;

/// Applies a Create txn of a persistent node with `data` and OPEN_ACL_UNSAFE at `zxid`,
/// and checks that it succeeded.
pub(crate) fn create(t: &mut DataTree, zxid: i64, path: &str, data: &[u8]) {
    let parent = &path[..path.rfind('/').unwrap_or(0).max(1)];
    let cversion = t.stat(parent).map_or(0, |s| s.cversion) + 1;
    let h = TxnHeader {
        client_id: 1,
        cxid: 1,
        zxid,
        time: 1,
        r#type: zk_proto::OpCode::Create.code(),
    };
    let body = TxnBody::Create(CreateTxn {
        path: path.into(),
        data: Some(bytes::Bytes::copy_from_slice(data)),
        acl: zk_proto::well_known::open_acl_unsafe(),
        ephemeral: false,
        parent_c_version: cversion,
    });
    assert_eq!(t.apply(&h, &body).result.err(), 0, "{path}");
}
