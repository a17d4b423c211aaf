//! Every record of ZooKeeper 3.9's jute definitions (`zookeeper.jute`), field for field.
//!
//! Records are wire images: fields keep jute's primitive types (`i32`, `i64`, `bool`,
//! `String`, `Option<Bytes>` for a `buffer`, where `None` is the null buffer that Java
//! clients send for `null` data). Field names are ZooKeeper's, in snake case.
//!
//! `ConnectRequest` and `ConnectResponse` are in [`crate::connect`], because their trailing
//! `readOnly` byte is optional on the wire.

use bytes::Bytes;

use crate::jute::jute_record;

// module org.apache.zookeeper.data
jute_record! {
    /// An identity: `scheme` (world, auth, digest, ip, x509, sasl, ...) and the `id` within it.
    pub struct Id {
        pub scheme: String,
        pub id: String,
    }

    /// One access-control entry: permission bits ([`crate::perms`]) granted to an [`Id`].
    pub struct Acl {
        pub perms: i32,
        pub id: Id,
    }

    /// A znode's metadata as clients see it.
    pub struct Stat {
        pub czxid: i64,
        pub mzxid: i64,
        pub ctime: i64,
        pub mtime: i64,
        pub version: i32,
        pub cversion: i32,
        pub aversion: i32,
        pub ephemeral_owner: i64,
        pub data_length: i32,
        pub num_children: i32,
        pub pzxid: i64,
    }

    /// A znode's metadata as snapshots store it (`dataLength` and `numChildren` are derived).
    pub struct StatPersisted {
        pub czxid: i64,
        pub mzxid: i64,
        pub ctime: i64,
        pub mtime: i64,
        pub version: i32,
        pub cversion: i32,
        pub aversion: i32,
        pub ephemeral_owner: i64,
        pub pzxid: i64,
    }

    /// One authenticated identity of a session, as `whoAmI` reports it.
    pub struct ClientInfo {
        pub auth_scheme: String,
        pub user: String,
    }
}

// module org.apache.zookeeper.proto
jute_record! {
    /// Re-arms watches after a reconnect (opcode 101, xid -8).
    pub struct SetWatches {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
    }

    /// Re-arms watches, persistent ones included, after a reconnect (opcode 105, xid -8).
    pub struct SetWatches2 {
        pub relative_zxid: i64,
        pub data_watches: Vec<String>,
        pub exist_watches: Vec<String>,
        pub child_watches: Vec<String>,
        pub persistent_watches: Vec<String>,
        pub persistent_recursive_watches: Vec<String>,
    }

    /// Precedes every request after the handshake.
    pub struct RequestHeader {
        pub xid: i32,
        pub r#type: i32,
    }

    /// Precedes each op of a multi request or result; `done` marks the end.
    pub struct MultiHeader {
        pub r#type: i32,
        pub done: bool,
        pub err: i32,
    }

    /// Adds credentials to a session (opcode 100, xid -4).
    pub struct AuthPacket {
        pub r#type: i32,
        pub scheme: String,
        pub auth: Option<Bytes>,
    }

    /// Precedes every reply and notification.
    pub struct ReplyHeader {
        pub xid: i32,
        pub zxid: i64,
        pub err: i32,
    }

    pub struct GetDataRequest {
        pub path: String,
        pub watch: bool,
    }

    pub struct SetDataRequest {
        pub path: String,
        pub data: Option<Bytes>,
        pub version: i32,
    }

    pub struct ReconfigRequest {
        pub joining_servers: Option<String>,
        pub leaving_servers: Option<String>,
        pub new_members: Option<String>,
        pub cur_config_id: i64,
    }

    pub struct SetDataResponse {
        pub stat: Stat,
    }

    pub struct GetSaslRequest {
        pub token: Option<Bytes>,
    }

    pub struct SetSaslRequest {
        pub token: Option<Bytes>,
    }

    pub struct SetSaslResponse {
        pub token: Option<Bytes>,
    }

    /// Body of create, create2 and createContainer.
    pub struct CreateRequest {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub flags: i32,
    }

    pub struct CreateTtlRequest {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub flags: i32,
        pub ttl: i64,
    }

    pub struct DeleteRequest {
        pub path: String,
        pub version: i32,
    }

    pub struct GetChildrenRequest {
        pub path: String,
        pub watch: bool,
    }

    pub struct GetAllChildrenNumberRequest {
        pub path: String,
    }

    pub struct GetStatPersistedRequest {
        pub path: String,
    }

    pub struct GetChildren2Request {
        pub path: String,
        pub watch: bool,
    }

    pub struct CheckVersionRequest {
        pub path: String,
        pub version: i32,
    }

    pub struct GetMaxChildrenRequest {
        pub path: String,
    }

    pub struct GetMaxChildrenResponse {
        pub max: i32,
    }

    pub struct SetMaxChildrenRequest {
        pub path: String,
        pub max: i32,
    }

    pub struct SyncRequest {
        pub path: String,
    }

    pub struct SyncResponse {
        pub path: String,
    }

    pub struct GetAclRequest {
        pub path: String,
    }

    pub struct SetAclRequest {
        pub path: String,
        pub acl: Vec<Acl>,
        pub version: i32,
    }

    pub struct SetAclResponse {
        pub stat: Stat,
    }

    pub struct AddWatchRequest {
        pub path: String,
        pub mode: i32,
    }

    /// A watch notification, pushed with xid -1.
    pub struct WatcherEvent {
        pub r#type: i32,
        pub state: i32,
        pub path: String,
    }

    /// An error inside a multi result, and the body of an addWatch reply.
    pub struct ErrorResponse {
        pub err: i32,
    }

    pub struct CreateResponse {
        pub path: String,
    }

    pub struct Create2Response {
        pub path: String,
        pub stat: Stat,
    }

    pub struct ExistsRequest {
        pub path: String,
        pub watch: bool,
    }

    pub struct ExistsResponse {
        pub stat: Stat,
    }

    pub struct GetDataResponse {
        pub data: Option<Bytes>,
        pub stat: Stat,
    }

    pub struct GetChildrenResponse {
        pub children: Vec<String>,
    }

    pub struct GetAllChildrenNumberResponse {
        pub total_number: i32,
    }

    pub struct GetStatPersistedResponse {
        pub stat_persisted: StatPersisted,
    }

    pub struct GetChildren2Response {
        pub children: Vec<String>,
        pub stat: Stat,
    }

    pub struct GetAclResponse {
        pub acl: Vec<Acl>,
        pub stat: Stat,
    }

    pub struct CheckWatchesRequest {
        pub path: String,
        pub r#type: i32,
    }

    pub struct RemoveWatchesRequest {
        pub path: String,
        pub r#type: i32,
    }

    pub struct GetEphemeralsRequest {
        pub prefix_path: String,
    }

    pub struct GetEphemeralsResponse {
        pub ephemerals: Vec<String>,
    }

    pub struct WhoAmIResponse {
        pub client_info: Vec<ClientInfo>,
    }
}

// module org.apache.zookeeper.server.quorum
jute_record! {
    pub struct LearnerInfo {
        pub serverid: i64,
        pub protocol_version: i32,
        pub config_version: i64,
    }

    pub struct QuorumPacket {
        pub r#type: i32,
        pub zxid: i64,
        pub data: Option<Bytes>,
        pub authinfo: Vec<Id>,
    }

    pub struct QuorumAuthPacket {
        pub magic: i64,
        pub status: i32,
        pub token: Option<Bytes>,
    }
}

// module org.apache.zookeeper.server.persistence
jute_record! {
    /// Opens every txn log (`ZKLG`) and snapshot (`ZKSN`) file.
    pub struct FileHeader {
        pub magic: i32,
        pub version: i32,
        pub dbid: i64,
    }
}

// module org.apache.zookeeper.txn
jute_record! {
    /// The tree digest after a txn, appended to it in logs and proposals (3.6+).
    pub struct TxnDigest {
        pub version: i32,
        pub tree_digest: i64,
    }

    /// Precedes every logged txn; `type` is the opcode (or -1 for an error txn).
    pub struct TxnHeader {
        pub client_id: i64,
        pub cxid: i32,
        pub zxid: i64,
        pub time: i64,
        pub r#type: i32,
    }

    /// Create txn of very old logs (before `parentCVersion`).
    pub struct CreateTxnV0 {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub ephemeral: bool,
    }

    pub struct CreateTxn {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub ephemeral: bool,
        pub parent_c_version: i32,
    }

    pub struct CreateTtlTxn {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub parent_c_version: i32,
        pub ttl: i64,
    }

    pub struct CreateContainerTxn {
        pub path: String,
        pub data: Option<Bytes>,
        pub acl: Vec<Acl>,
        pub parent_c_version: i32,
    }

    pub struct DeleteTxn {
        pub path: String,
    }

    pub struct SetDataTxn {
        pub path: String,
        pub data: Option<Bytes>,
        pub version: i32,
    }

    pub struct CheckVersionTxn {
        pub path: String,
        pub version: i32,
    }

    pub struct SetAclTxn {
        pub path: String,
        pub acl: Vec<Acl>,
        pub version: i32,
    }

    pub struct SetMaxChildrenTxn {
        pub path: String,
        pub max: i32,
    }

    pub struct CreateSessionTxn {
        pub time_out: i32,
    }

    pub struct CloseSessionTxn {
        pub paths2_delete: Vec<String>,
    }

    pub struct ErrorTxn {
        pub err: i32,
    }

    /// One sub-txn of a [`MultiTxn`]: its type and its record's encoding.
    pub struct Txn {
        pub r#type: i32,
        pub data: Option<Bytes>,
    }

    pub struct MultiTxn {
        pub txns: Vec<Txn>,
    }
}

/// Calls `$m!(Type)` for every record type above: one list for tests and tools.
#[macro_export]
#[doc(hidden)]
macro_rules! for_each_record {
    ($m:ident) => {
        $m!(Id);
        $m!(Acl);
        $m!(Stat);
        $m!(StatPersisted);
        $m!(ClientInfo);
        $m!(SetWatches);
        $m!(SetWatches2);
        $m!(RequestHeader);
        $m!(MultiHeader);
        $m!(AuthPacket);
        $m!(ReplyHeader);
        $m!(GetDataRequest);
        $m!(SetDataRequest);
        $m!(ReconfigRequest);
        $m!(SetDataResponse);
        $m!(GetSaslRequest);
        $m!(SetSaslRequest);
        $m!(SetSaslResponse);
        $m!(CreateRequest);
        $m!(CreateTtlRequest);
        $m!(DeleteRequest);
        $m!(GetChildrenRequest);
        $m!(GetAllChildrenNumberRequest);
        $m!(GetStatPersistedRequest);
        $m!(GetChildren2Request);
        $m!(CheckVersionRequest);
        $m!(GetMaxChildrenRequest);
        $m!(GetMaxChildrenResponse);
        $m!(SetMaxChildrenRequest);
        $m!(SyncRequest);
        $m!(SyncResponse);
        $m!(GetAclRequest);
        $m!(SetAclRequest);
        $m!(SetAclResponse);
        $m!(AddWatchRequest);
        $m!(WatcherEvent);
        $m!(ErrorResponse);
        $m!(CreateResponse);
        $m!(Create2Response);
        $m!(ExistsRequest);
        $m!(ExistsResponse);
        $m!(GetDataResponse);
        $m!(GetChildrenResponse);
        $m!(GetAllChildrenNumberResponse);
        $m!(GetStatPersistedResponse);
        $m!(GetChildren2Response);
        $m!(GetAclResponse);
        $m!(CheckWatchesRequest);
        $m!(RemoveWatchesRequest);
        $m!(GetEphemeralsRequest);
        $m!(GetEphemeralsResponse);
        $m!(WhoAmIResponse);
        $m!(LearnerInfo);
        $m!(QuorumPacket);
        $m!(QuorumAuthPacket);
        $m!(FileHeader);
        $m!(TxnDigest);
        $m!(TxnHeader);
        $m!(CreateTxnV0);
        $m!(CreateTxn);
        $m!(CreateTtlTxn);
        $m!(CreateContainerTxn);
        $m!(DeleteTxn);
        $m!(SetDataTxn);
        $m!(CheckVersionTxn);
        $m!(SetAclTxn);
        $m!(SetMaxChildrenTxn);
        $m!(CreateSessionTxn);
        $m!(CloseSessionTxn);
        $m!(ErrorTxn);
        $m!(Txn);
        $m!(MultiTxn);
    };
}

impl From<&StatPersisted> for Stat {
    /// The client view of a persisted stat; `dataLength` and `numChildren` are left 0 for the
    /// caller, which knows them.
    fn from(s: &StatPersisted) -> Stat {
        Stat {
            czxid: s.czxid,
            mzxid: s.mzxid,
            ctime: s.ctime,
            mtime: s.mtime,
            version: s.version,
            cversion: s.cversion,
            aversion: s.aversion,
            ephemeral_owner: s.ephemeral_owner,
            data_length: 0,
            num_children: 0,
            pzxid: s.pzxid,
        }
    }
}
