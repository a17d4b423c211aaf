//! Client requests, decoded by opcode: the body that follows a [`RequestHeader`].

use bytes::BufMut;

use crate::error::{DecodeError, Result};
use crate::jute::{Jute, Reader};
use crate::opcode::OpCode;
use crate::records::*;

/// One client request body. Requests that are a header alone (ping, closeSession, whoAmI)
/// have no payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Delete(DeleteRequest),
    Exists(ExistsRequest),
    GetData(GetDataRequest),
    SetData(SetDataRequest),
    GetAcl(GetAclRequest),
    SetAcl(SetAclRequest),
    GetChildren(GetChildrenRequest),
    Sync(SyncRequest),
    Ping,
    GetChildren2(GetChildren2Request),
    /// Valid only inside a multi; standalone, servers answer UNIMPLEMENTED.
    Check(CheckVersionRequest),
    Multi(Vec<MultiOp>),
    Create2(CreateRequest),
    Reconfig(ReconfigRequest),
    CheckWatches(CheckWatchesRequest),
    RemoveWatches(RemoveWatchesRequest),
    CreateContainer(CreateRequest),
    DeleteContainer(DeleteRequest),
    CreateTtl(CreateTtlRequest),
    MultiRead(Vec<MultiOp>),
    Auth(AuthPacket),
    SetWatches(SetWatches),
    Sasl(GetSaslRequest),
    GetEphemerals(GetEphemeralsRequest),
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CloseSession,
}

/// One operation of a multi (writes) or multiRead (reads) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiOp {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateTtlRequest),
    Delete(DeleteRequest),
    DeleteContainer(DeleteRequest),
    SetData(SetDataRequest),
    Check(CheckVersionRequest),
    GetData(GetDataRequest),
    GetChildren(GetChildrenRequest),
}

impl MultiOp {
    /// The opcode written in this op's `MultiHeader`.
    pub fn op_code(&self) -> OpCode {
        match self {
            MultiOp::Create(_) => OpCode::Create,
            MultiOp::Create2(_) => OpCode::Create2,
            MultiOp::CreateContainer(_) => OpCode::CreateContainer,
            MultiOp::CreateTtl(_) => OpCode::CreateTtl,
            MultiOp::Delete(_) => OpCode::Delete,
            MultiOp::DeleteContainer(_) => OpCode::DeleteContainer,
            MultiOp::SetData(_) => OpCode::SetData,
            MultiOp::Check(_) => OpCode::Check,
            MultiOp::GetData(_) => OpCode::GetData,
            MultiOp::GetChildren(_) => OpCode::GetChildren,
        }
    }

    /// The path the op addresses.
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create(r) | MultiOp::Create2(r) | MultiOp::CreateContainer(r) => &r.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) | MultiOp::DeleteContainer(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
            MultiOp::GetData(r) => &r.path,
            MultiOp::GetChildren(r) => &r.path,
        }
    }

    /// True for getData / getChildren, the only ops allowed in multiRead.
    pub fn is_read(&self) -> bool {
        matches!(self, MultiOp::GetData(_) | MultiOp::GetChildren(_))
    }

    fn read(op: i32, r: &mut Reader) -> Result<MultiOp> {
        Ok(match OpCode::from_code(op) {
            Some(OpCode::Create) => MultiOp::Create(Jute::read(r)?),
            Some(OpCode::Create2) => MultiOp::Create2(Jute::read(r)?),
            Some(OpCode::CreateContainer) => MultiOp::CreateContainer(Jute::read(r)?),
            Some(OpCode::CreateTtl) => MultiOp::CreateTtl(Jute::read(r)?),
            Some(OpCode::Delete) => MultiOp::Delete(Jute::read(r)?),
            Some(OpCode::DeleteContainer) => MultiOp::DeleteContainer(Jute::read(r)?),
            Some(OpCode::SetData) => MultiOp::SetData(Jute::read(r)?),
            Some(OpCode::Check) => MultiOp::Check(Jute::read(r)?),
            Some(OpCode::GetData) => MultiOp::GetData(Jute::read(r)?),
            Some(OpCode::GetChildren) => MultiOp::GetChildren(Jute::read(r)?),
            _ => return Err(DecodeError::UnknownOpCode(op)),
        })
    }

    fn write_body<B: BufMut>(&self, out: &mut B) {
        match self {
            MultiOp::Create(x) | MultiOp::Create2(x) | MultiOp::CreateContainer(x) => x.write(out),
            MultiOp::CreateTtl(x) => x.write(out),
            MultiOp::Delete(x) | MultiOp::DeleteContainer(x) => x.write(out),
            MultiOp::SetData(x) => x.write(out),
            MultiOp::Check(x) => x.write(out),
            MultiOp::GetData(x) => x.write(out),
            MultiOp::GetChildren(x) => x.write(out),
        }
    }

    fn body_len(&self) -> usize {
        match self {
            MultiOp::Create(x) | MultiOp::Create2(x) | MultiOp::CreateContainer(x) => {
                x.encoded_len()
            }
            MultiOp::CreateTtl(x) => x.encoded_len(),
            MultiOp::Delete(x) | MultiOp::DeleteContainer(x) => x.encoded_len(),
            MultiOp::SetData(x) => x.encoded_len(),
            MultiOp::Check(x) => x.encoded_len(),
            MultiOp::GetData(x) => x.encoded_len(),
            MultiOp::GetChildren(x) => x.encoded_len(),
        }
    }
}

/// `MultiHeader` length on the wire.
const MULTI_HEADER_LEN: usize = 4 + 1 + 4;

/// The terminator of a multi request or response.
pub(crate) const MULTI_DONE: MultiHeader = MultiHeader {
    r#type: -1,
    done: true,
    err: -1,
};

/// Reads a `MultiOperationRecord`: ops until a header with `done` set.
fn read_multi_ops(r: &mut Reader) -> Result<Vec<MultiOp>> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        ops.push(MultiOp::read(h.r#type, r)?);
    }
}

fn write_multi_ops<B: BufMut>(ops: &[MultiOp], out: &mut B) {
    for op in ops {
        MultiHeader {
            r#type: op.op_code().code(),
            done: false,
            err: -1,
        }
        .write(out);
        op.write_body(out);
    }
    MULTI_DONE.write(out);
}

impl Request {
    /// Whether the server turns this request into a txn (a write, whatever its outcome),
    /// as opposed to answering it from its state: servers order, log and count these apart.
    pub fn makes_txn(&self) -> bool {
        matches!(
            self,
            Request::Create(_)
                | Request::Create2(_)
                | Request::CreateContainer(_)
                | Request::CreateTtl(_)
                | Request::Delete(_)
                | Request::SetData(_)
                | Request::SetAcl(_)
                | Request::Multi(_)
                | Request::CloseSession
                | Request::Reconfig(_)
                | Request::DeleteContainer(_)
        )
    }

    /// The request's opcode.
    pub fn op_code(&self) -> OpCode {
        match self {
            Request::Create(_) => OpCode::Create,
            Request::Delete(_) => OpCode::Delete,
            Request::Exists(_) => OpCode::Exists,
            Request::GetData(_) => OpCode::GetData,
            Request::SetData(_) => OpCode::SetData,
            Request::GetAcl(_) => OpCode::GetAcl,
            Request::SetAcl(_) => OpCode::SetAcl,
            Request::GetChildren(_) => OpCode::GetChildren,
            Request::Sync(_) => OpCode::Sync,
            Request::Ping => OpCode::Ping,
            Request::GetChildren2(_) => OpCode::GetChildren2,
            Request::Check(_) => OpCode::Check,
            Request::Multi(_) => OpCode::Multi,
            Request::Create2(_) => OpCode::Create2,
            Request::Reconfig(_) => OpCode::Reconfig,
            Request::CheckWatches(_) => OpCode::CheckWatches,
            Request::RemoveWatches(_) => OpCode::RemoveWatches,
            Request::CreateContainer(_) => OpCode::CreateContainer,
            Request::DeleteContainer(_) => OpCode::DeleteContainer,
            Request::CreateTtl(_) => OpCode::CreateTtl,
            Request::MultiRead(_) => OpCode::MultiRead,
            Request::Auth(_) => OpCode::Auth,
            Request::SetWatches(_) => OpCode::SetWatches,
            Request::Sasl(_) => OpCode::Sasl,
            Request::GetEphemerals(_) => OpCode::GetEphemerals,
            Request::GetAllChildrenNumber(_) => OpCode::GetAllChildrenNumber,
            Request::SetWatches2(_) => OpCode::SetWatches2,
            Request::AddWatch(_) => OpCode::AddWatch,
            Request::WhoAmI => OpCode::WhoAmI,
            Request::CloseSession => OpCode::CloseSession,
        }
    }

    /// Reads the body of a request whose header carried opcode `op`. Opcodes a client may
    /// not send (notification, createSession, error, unknown values) are
    /// [`DecodeError::UnknownOpCode`]; the server answers UNIMPLEMENTED and closes.
    /// Bytes after the body are left in `r` (ZooKeeper ignores them).
    pub fn read(op: i32, r: &mut Reader) -> Result<Request> {
        let Some(code) = OpCode::from_code(op) else {
            return Err(DecodeError::UnknownOpCode(op));
        };
        Ok(match code {
            OpCode::Create => Request::Create(Jute::read(r)?),
            OpCode::Delete => Request::Delete(Jute::read(r)?),
            OpCode::Exists => Request::Exists(Jute::read(r)?),
            OpCode::GetData => Request::GetData(Jute::read(r)?),
            OpCode::SetData => Request::SetData(Jute::read(r)?),
            OpCode::GetAcl => Request::GetAcl(Jute::read(r)?),
            OpCode::SetAcl => Request::SetAcl(Jute::read(r)?),
            OpCode::GetChildren => Request::GetChildren(Jute::read(r)?),
            OpCode::Sync => Request::Sync(Jute::read(r)?),
            OpCode::Ping => Request::Ping,
            OpCode::GetChildren2 => Request::GetChildren2(Jute::read(r)?),
            OpCode::Check => Request::Check(Jute::read(r)?),
            OpCode::Multi => Request::Multi(read_multi_ops(r)?),
            OpCode::Create2 => Request::Create2(Jute::read(r)?),
            OpCode::Reconfig => Request::Reconfig(Jute::read(r)?),
            OpCode::CheckWatches => Request::CheckWatches(Jute::read(r)?),
            OpCode::RemoveWatches => Request::RemoveWatches(Jute::read(r)?),
            OpCode::CreateContainer => Request::CreateContainer(Jute::read(r)?),
            OpCode::DeleteContainer => Request::DeleteContainer(Jute::read(r)?),
            OpCode::CreateTtl => Request::CreateTtl(Jute::read(r)?),
            OpCode::MultiRead => Request::MultiRead(read_multi_ops(r)?),
            OpCode::Auth => Request::Auth(Jute::read(r)?),
            OpCode::SetWatches => Request::SetWatches(Jute::read(r)?),
            OpCode::Sasl => Request::Sasl(Jute::read(r)?),
            OpCode::GetEphemerals => Request::GetEphemerals(Jute::read(r)?),
            OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(Jute::read(r)?),
            OpCode::SetWatches2 => Request::SetWatches2(Jute::read(r)?),
            OpCode::AddWatch => Request::AddWatch(Jute::read(r)?),
            OpCode::WhoAmI => Request::WhoAmI,
            OpCode::CloseSession => Request::CloseSession,
            OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
                return Err(DecodeError::UnknownOpCode(op))
            }
        })
    }

    /// Appends the body (not the header).
    pub fn write<B: BufMut>(&self, out: &mut B) {
        match self {
            Request::Create(x) | Request::Create2(x) | Request::CreateContainer(x) => x.write(out),
            Request::Delete(x) | Request::DeleteContainer(x) => x.write(out),
            Request::Exists(x) => x.write(out),
            Request::GetData(x) => x.write(out),
            Request::SetData(x) => x.write(out),
            Request::GetAcl(x) => x.write(out),
            Request::SetAcl(x) => x.write(out),
            Request::GetChildren(x) => x.write(out),
            Request::Sync(x) => x.write(out),
            Request::GetChildren2(x) => x.write(out),
            Request::Check(x) => x.write(out),
            Request::Multi(ops) | Request::MultiRead(ops) => write_multi_ops(ops, out),
            Request::Reconfig(x) => x.write(out),
            Request::CheckWatches(x) => x.write(out),
            Request::RemoveWatches(x) => x.write(out),
            Request::CreateTtl(x) => x.write(out),
            Request::Auth(x) => x.write(out),
            Request::SetWatches(x) => x.write(out),
            Request::Sasl(x) => x.write(out),
            Request::GetEphemerals(x) => x.write(out),
            Request::GetAllChildrenNumber(x) => x.write(out),
            Request::SetWatches2(x) => x.write(out),
            Request::AddWatch(x) => x.write(out),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        }
    }

    /// The length of the body [`Request::write`] appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Request::Create(x) | Request::Create2(x) | Request::CreateContainer(x) => {
                x.encoded_len()
            }
            Request::Delete(x) | Request::DeleteContainer(x) => x.encoded_len(),
            Request::Exists(x) => x.encoded_len(),
            Request::GetData(x) => x.encoded_len(),
            Request::SetData(x) => x.encoded_len(),
            Request::GetAcl(x) => x.encoded_len(),
            Request::SetAcl(x) => x.encoded_len(),
            Request::GetChildren(x) => x.encoded_len(),
            Request::Sync(x) => x.encoded_len(),
            Request::GetChildren2(x) => x.encoded_len(),
            Request::Check(x) => x.encoded_len(),
            Request::Multi(ops) | Request::MultiRead(ops) => {
                ops.iter()
                    .map(|op| MULTI_HEADER_LEN + op.body_len())
                    .sum::<usize>()
                    + MULTI_HEADER_LEN
            }
            Request::Reconfig(x) => x.encoded_len(),
            Request::CheckWatches(x) => x.encoded_len(),
            Request::RemoveWatches(x) => x.encoded_len(),
            Request::CreateTtl(x) => x.encoded_len(),
            Request::Auth(x) => x.encoded_len(),
            Request::SetWatches(x) => x.encoded_len(),
            Request::Sasl(x) => x.encoded_len(),
            Request::GetEphemerals(x) => x.encoded_len(),
            Request::GetAllChildrenNumber(x) => x.encoded_len(),
            Request::SetWatches2(x) => x.encoded_len(),
            Request::AddWatch(x) => x.encoded_len(),
            Request::Ping | Request::WhoAmI | Request::CloseSession => 0,
        }
    }

    /// The path the request addresses, where it has exactly one.
    pub fn path(&self) -> Option<&str> {
        Some(match self {
            Request::Create(x) | Request::Create2(x) | Request::CreateContainer(x) => &x.path,
            Request::Delete(x) | Request::DeleteContainer(x) => &x.path,
            Request::Exists(x) => &x.path,
            Request::GetData(x) => &x.path,
            Request::SetData(x) => &x.path,
            Request::GetAcl(x) => &x.path,
            Request::SetAcl(x) => &x.path,
            Request::GetChildren(x) => &x.path,
            Request::Sync(x) => &x.path,
            Request::GetChildren2(x) => &x.path,
            Request::Check(x) => &x.path,
            Request::CheckWatches(x) => &x.path,
            Request::RemoveWatches(x) => &x.path,
            Request::CreateTtl(x) => &x.path,
            Request::GetEphemerals(x) => &x.prefix_path,
            Request::GetAllChildrenNumber(x) => &x.path,
            Request::AddWatch(x) => &x.path,
            _ => return None,
        })
    }
}

/// Decodes a whole request frame payload (after the handshake): header, then body.
/// The header is returned even when the body fails, so the server can answer that xid.
pub fn decode_request(r: &mut Reader) -> Result<(RequestHeader, Result<Request>)> {
    let header = RequestHeader::read(r)?;
    let body = Request::read(header.r#type, r);
    Ok((header, body))
}

/// Encodes a request frame payload: header then body.
pub fn encode_request<B: BufMut>(xid: i32, request: &Request, out: &mut B) {
    RequestHeader {
        xid,
        r#type: request.op_code().code(),
    }
    .write(out);
    request.write(out);
}
