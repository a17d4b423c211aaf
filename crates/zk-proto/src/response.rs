//! Reply bodies, decoded by the opcode of the request they answer, and multi results.

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Result};
use crate::jute::{Jute, Reader};
use crate::opcode::OpCode;
use crate::records::*;
use crate::request::MULTI_DONE;

/// One reply body. An error reply (`ReplyHeader.err != 0`) always has an empty body
/// ([`Response::Empty`]); a failed multi is not an error reply (its header err is 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Header only: errors, delete, ping, check/removeWatches, auth, setWatches, close.
    Empty,
    Create(CreateResponse),
    /// create2, createContainer and createTTL.
    Create2(Create2Response),
    Exists(ExistsResponse),
    GetData(GetDataResponse),
    SetData(SetDataResponse),
    GetAcl(GetAclResponse),
    SetAcl(SetAclResponse),
    GetChildren(GetChildrenResponse),
    GetChildren2(GetChildren2Response),
    Sync(SyncResponse),
    /// multi and multiRead.
    Multi(Vec<MultiResult>),
    /// reconfig answers with `/zookeeper/config`'s data and stat.
    Reconfig(GetDataResponse),
    Sasl(SetSaslResponse),
    GetEphemerals(GetEphemeralsResponse),
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    /// addWatch answers with an `ErrorResponse` (4 zero bytes).
    AddWatch(ErrorResponse),
    WhoAmI(WhoAmIResponse),
}

/// One result inside a multi/multiRead response, with the op type written in its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create(CreateResponse),
    /// Result of create2, createContainer or createTTL; `op` is written in the header.
    Create2 {
        op: OpCode,
        response: Create2Response,
    },
    Delete,
    SetData(SetDataResponse),
    Check,
    GetData(GetDataResponse),
    GetChildren(GetChildrenResponse),
    /// Header type -1, `err` in both the header and the body.
    Error(i32),
}

impl MultiResult {
    fn header(&self) -> MultiHeader {
        let (r#type, err) = match self {
            MultiResult::Create(_) => (OpCode::Create.code(), 0),
            MultiResult::Create2 { op, .. } => (op.code(), 0),
            MultiResult::Delete => (OpCode::Delete.code(), 0),
            MultiResult::SetData(_) => (OpCode::SetData.code(), 0),
            MultiResult::Check => (OpCode::Check.code(), 0),
            MultiResult::GetData(_) => (OpCode::GetData.code(), 0),
            MultiResult::GetChildren(_) => (OpCode::GetChildren.code(), 0),
            MultiResult::Error(err) => (-1, *err),
        };
        MultiHeader {
            r#type,
            done: false,
            err,
        }
    }

    fn write<B: BufMut>(&self, out: &mut B) {
        self.header().write(out);
        match self {
            MultiResult::Create(x) => x.write(out),
            MultiResult::Create2 { response, .. } => response.write(out),
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData(x) => x.write(out),
            MultiResult::GetData(x) => x.write(out),
            MultiResult::GetChildren(x) => x.write(out),
            MultiResult::Error(err) => ErrorResponse { err: *err }.write(out),
        }
    }

    fn encoded_len(&self) -> usize {
        9 + match self {
            MultiResult::Create(x) => x.encoded_len(),
            MultiResult::Create2 { response, .. } => response.encoded_len(),
            MultiResult::Delete | MultiResult::Check => 0,
            MultiResult::SetData(x) => x.encoded_len(),
            MultiResult::GetData(x) => x.encoded_len(),
            MultiResult::GetChildren(x) => x.encoded_len(),
            MultiResult::Error(_) => 4,
        }
    }

    fn read(h: &MultiHeader, r: &mut Reader) -> Result<MultiResult> {
        if h.r#type == -1 {
            return Ok(MultiResult::Error(ErrorResponse::read(r)?.err));
        }
        Ok(match OpCode::from_code(h.r#type) {
            Some(OpCode::Create) => MultiResult::Create(Jute::read(r)?),
            Some(op @ (OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl)) => {
                MultiResult::Create2 {
                    op,
                    response: Jute::read(r)?,
                }
            }
            Some(OpCode::Delete) => MultiResult::Delete,
            Some(OpCode::SetData) => MultiResult::SetData(Jute::read(r)?),
            Some(OpCode::Check) => MultiResult::Check,
            Some(OpCode::GetData) => MultiResult::GetData(Jute::read(r)?),
            Some(OpCode::GetChildren) => MultiResult::GetChildren(Jute::read(r)?),
            _ => return Err(DecodeError::UnknownOpCode(h.r#type)),
        })
    }
}

/// Encodes a `MultiResponse`: each result, then the done marker.
pub fn write_multi_results<B: BufMut>(results: &[MultiResult], out: &mut B) {
    for result in results {
        result.write(out);
    }
    MULTI_DONE.write(out);
}

fn read_multi_results(r: &mut Reader) -> Result<Vec<MultiResult>> {
    let mut results = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(results);
        }
        results.push(MultiResult::read(&h, r)?);
    }
}

impl Response {
    /// Reads the body of a reply to a request with opcode `op` whose header carried `err`.
    pub fn read(op: OpCode, err: i32, r: &mut Reader) -> Result<Response> {
        if err != 0 {
            return Ok(Response::Empty);
        }
        Ok(match op {
            OpCode::Create => Response::Create(Jute::read(r)?),
            OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
                Response::Create2(Jute::read(r)?)
            }
            OpCode::Exists => Response::Exists(Jute::read(r)?),
            OpCode::GetData => Response::GetData(Jute::read(r)?),
            OpCode::SetData => Response::SetData(Jute::read(r)?),
            OpCode::GetAcl => Response::GetAcl(Jute::read(r)?),
            OpCode::SetAcl => Response::SetAcl(Jute::read(r)?),
            OpCode::GetChildren => Response::GetChildren(Jute::read(r)?),
            OpCode::GetChildren2 => Response::GetChildren2(Jute::read(r)?),
            OpCode::Sync => Response::Sync(Jute::read(r)?),
            OpCode::Multi | OpCode::MultiRead => Response::Multi(read_multi_results(r)?),
            OpCode::Reconfig => Response::Reconfig(Jute::read(r)?),
            OpCode::Sasl => Response::Sasl(Jute::read(r)?),
            OpCode::GetEphemerals => Response::GetEphemerals(Jute::read(r)?),
            OpCode::GetAllChildrenNumber => Response::GetAllChildrenNumber(Jute::read(r)?),
            OpCode::AddWatch => Response::AddWatch(Jute::read(r)?),
            OpCode::WhoAmI => Response::WhoAmI(Jute::read(r)?),
            OpCode::Delete
            | OpCode::DeleteContainer
            | OpCode::Ping
            | OpCode::Check
            | OpCode::CheckWatches
            | OpCode::RemoveWatches
            | OpCode::Auth
            | OpCode::SetWatches
            | OpCode::SetWatches2
            | OpCode::CloseSession => Response::Empty,
            OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
                return Err(DecodeError::UnknownOpCode(op.code()))
            }
        })
    }

    /// Appends the body.
    pub fn write<B: BufMut>(&self, out: &mut B) {
        match self {
            Response::Empty => {}
            Response::Create(x) => x.write(out),
            Response::Create2(x) => x.write(out),
            Response::Exists(x) => x.write(out),
            Response::GetData(x) | Response::Reconfig(x) => x.write(out),
            Response::SetData(x) => x.write(out),
            Response::GetAcl(x) => x.write(out),
            Response::SetAcl(x) => x.write(out),
            Response::GetChildren(x) => x.write(out),
            Response::GetChildren2(x) => x.write(out),
            Response::Sync(x) => x.write(out),
            Response::Multi(results) => write_multi_results(results, out),
            Response::Sasl(x) => x.write(out),
            Response::GetEphemerals(x) => x.write(out),
            Response::GetAllChildrenNumber(x) => x.write(out),
            Response::AddWatch(x) => x.write(out),
            Response::WhoAmI(x) => x.write(out),
        }
    }

    /// The length of the body [`Response::write`] appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            Response::Empty => 0,
            Response::Create(x) => x.encoded_len(),
            Response::Create2(x) => x.encoded_len(),
            Response::Exists(x) => x.encoded_len(),
            Response::GetData(x) | Response::Reconfig(x) => x.encoded_len(),
            Response::SetData(x) => x.encoded_len(),
            Response::GetAcl(x) => x.encoded_len(),
            Response::SetAcl(x) => x.encoded_len(),
            Response::GetChildren(x) => x.encoded_len(),
            Response::GetChildren2(x) => x.encoded_len(),
            Response::Sync(x) => x.encoded_len(),
            Response::Multi(results) => {
                results.iter().map(MultiResult::encoded_len).sum::<usize>() + 9
            }
            Response::Sasl(x) => x.encoded_len(),
            Response::GetEphemerals(x) => x.encoded_len(),
            Response::GetAllChildrenNumber(x) => x.encoded_len(),
            Response::AddWatch(x) => x.encoded_len(),
            Response::WhoAmI(x) => x.encoded_len(),
        }
    }
}

/// Encodes a reply frame payload: header then body.
pub fn encode_reply<B: BufMut>(header: &ReplyHeader, body: &Response, out: &mut B) {
    header.write(out);
    body.write(out);
}

/// Decodes a notification body, for readers that saw xid -1.
pub fn decode_notification(r: &mut Reader) -> Result<WatcherEvent> {
    WatcherEvent::read(r)
}

/// Convenience for tests and tools: the bytes of a reply frame payload.
pub fn reply_bytes(header: &ReplyHeader, body: &Response) -> Bytes {
    let mut out = Vec::with_capacity(16 + body.encoded_len());
    encode_reply(header, body, &mut out);
    Bytes::from(out)
}
