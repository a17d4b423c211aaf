//! Logged transactions: a [`TxnHeader`], a body chosen by the header's type, and since 3.6
//! an optional [`TxnDigest`] (`SerializeUtils.deserializeTxn`).

use bytes::{BufMut, Bytes};

use crate::error::{DecodeError, Result};
use crate::jute::{to_bytes, Jute, Reader};
use crate::opcode::OpCode;
use crate::records::*;

/// A txn body. `Create` also serves create2 (ZooKeeper logs both as `CreateTxn`), and
/// `Delete` serves deleteContainer; the header's type tells them apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnBody {
    Create(CreateTxn),
    /// A create from logs older than `parentCVersion`.
    CreateV0(CreateTxnV0),
    CreateTtl(CreateTtlTxn),
    CreateContainer(CreateContainerTxn),
    Delete(DeleteTxn),
    SetData(SetDataTxn),
    /// reconfig logs the new `/zookeeper/config` as a `SetDataTxn`.
    Reconfig(SetDataTxn),
    Check(CheckVersionTxn),
    SetAcl(SetAclTxn),
    CreateSession(CreateSessionTxn),
    /// `None` when the log predates `CloseSessionTxn` (or it was disabled).
    CloseSession(Option<CloseSessionTxn>),
    Error(ErrorTxn),
    /// Sub-txns with their types, in order.
    Multi(Vec<(i32, TxnBody)>),
}

impl TxnBody {
    /// Reads the body of a txn of type `txn_type`, consuming `r` to its end for the types
    /// whose layout depends on what is left (create vs. create-V0, close-session).
    fn read_inner(txn_type: i32, r: &mut Reader) -> Result<TxnBody> {
        let op = OpCode::from_code(txn_type).ok_or(DecodeError::UnknownOpCode(txn_type))?;
        Ok(match op {
            OpCode::Create | OpCode::Create2 => {
                let saved = r.clone();
                match CreateTxn::read(r) {
                    Ok(t) => TxnBody::Create(t),
                    Err(DecodeError::Truncated { .. }) => {
                        *r = saved;
                        TxnBody::CreateV0(CreateTxnV0::read(r)?)
                    }
                    Err(e) => return Err(e),
                }
            }
            OpCode::CreateTtl => TxnBody::CreateTtl(Jute::read(r)?),
            OpCode::CreateContainer => TxnBody::CreateContainer(Jute::read(r)?),
            OpCode::Delete | OpCode::DeleteContainer => TxnBody::Delete(Jute::read(r)?),
            OpCode::SetData => TxnBody::SetData(Jute::read(r)?),
            OpCode::Reconfig => TxnBody::Reconfig(Jute::read(r)?),
            OpCode::Check => TxnBody::Check(Jute::read(r)?),
            OpCode::SetAcl => TxnBody::SetAcl(Jute::read(r)?),
            OpCode::CreateSession => TxnBody::CreateSession(Jute::read(r)?),
            OpCode::CloseSession => {
                // Without a body, or with only a trailing digest (12 bytes), there is no
                // CloseSessionTxn.
                if r.is_empty() || r.remaining() == TxnDigest::LEN_MIN {
                    TxnBody::CloseSession(None)
                } else {
                    TxnBody::CloseSession(Some(Jute::read(r)?))
                }
            }
            OpCode::Error => TxnBody::Error(Jute::read(r)?),
            OpCode::Multi => {
                let multi = MultiTxn::read(r)?;
                let mut subs = Vec::with_capacity(multi.txns.len());
                for t in multi.txns {
                    let mut sub = Reader::new(t.data.unwrap_or_default());
                    let body = TxnBody::read_inner(t.r#type, &mut sub)?;
                    sub.finish()?;
                    subs.push((t.r#type, body));
                }
                TxnBody::Multi(subs)
            }
            _ => return Err(DecodeError::UnknownOpCode(txn_type)),
        })
    }

    /// Appends the body's encoding.
    pub fn write<B: BufMut>(&self, out: &mut B) {
        match self {
            TxnBody::Create(x) => x.write(out),
            TxnBody::CreateV0(x) => x.write(out),
            TxnBody::CreateTtl(x) => x.write(out),
            TxnBody::CreateContainer(x) => x.write(out),
            TxnBody::Delete(x) => x.write(out),
            TxnBody::SetData(x) | TxnBody::Reconfig(x) => x.write(out),
            TxnBody::Check(x) => x.write(out),
            TxnBody::SetAcl(x) => x.write(out),
            TxnBody::CreateSession(x) => x.write(out),
            TxnBody::CloseSession(x) => {
                if let Some(x) = x {
                    x.write(out);
                }
            }
            TxnBody::Error(x) => x.write(out),
            TxnBody::Multi(subs) => MultiTxn {
                txns: subs
                    .iter()
                    .map(|(t, body)| Txn {
                        r#type: *t,
                        data: Some(body.to_bytes()),
                    })
                    .collect(),
            }
            .write(out),
        }
    }

    /// The exact number of bytes [`TxnBody::write`] appends.
    pub fn encoded_len(&self) -> usize {
        match self {
            TxnBody::Create(x) => x.encoded_len(),
            TxnBody::CreateV0(x) => x.encoded_len(),
            TxnBody::CreateTtl(x) => x.encoded_len(),
            TxnBody::CreateContainer(x) => x.encoded_len(),
            TxnBody::Delete(x) => x.encoded_len(),
            TxnBody::SetData(x) | TxnBody::Reconfig(x) => x.encoded_len(),
            TxnBody::Check(x) => x.encoded_len(),
            TxnBody::SetAcl(x) => x.encoded_len(),
            TxnBody::CreateSession(x) => x.encoded_len(),
            TxnBody::CloseSession(x) => x.as_ref().map_or(0, Jute::encoded_len),
            TxnBody::Error(x) => x.encoded_len(),
            // A MultiTxn: the count, then per sub-txn its type and its buffer.
            TxnBody::Multi(subs) => {
                4 + subs
                    .iter()
                    .map(|(_, body)| 4 + 4 + body.encoded_len())
                    .sum::<usize>()
            }
        }
    }

    /// The body's encoding as bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        Bytes::from(out)
    }
}

/// One logged transaction: what a txn-log record's buffer and a proposal carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnEntry {
    pub header: TxnHeader,
    pub body: TxnBody,
    pub digest: Option<TxnDigest>,
}

impl TxnEntry {
    /// Decodes a whole serialized txn (header, body, optional digest); `bytes` must hold
    /// exactly one.
    pub fn decode(bytes: Bytes) -> Result<TxnEntry> {
        let mut r = Reader::new(bytes);
        let header = TxnHeader::read(&mut r)?;
        let body = TxnBody::read_inner(header.r#type, &mut r)?;
        let digest = if r.is_empty() {
            None
        } else {
            Some(TxnDigest::read(&mut r)?)
        };
        r.finish()?;
        Ok(TxnEntry {
            header,
            body,
            digest,
        })
    }

    /// Appends the serialized txn.
    pub fn write<B: BufMut>(&self, out: &mut B) {
        self.header.write(out);
        self.body.write(out);
        if let Some(d) = &self.digest {
            d.write(out);
        }
    }

    /// The exact number of bytes [`TxnEntry::write`] appends.
    pub fn encoded_len(&self) -> usize {
        self.header.encoded_len()
            + self.body.encoded_len()
            + self.digest.as_ref().map_or(0, Jute::encoded_len)
    }

    /// The serialized txn as bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write(&mut out);
        Bytes::from(out)
    }
}

/// Wraps a sub-txn body for a [`MultiTxn`] the way ZooKeeper does: its encoding as a buffer.
pub fn sub_txn(txn_type: OpCode, body: &impl Jute) -> Txn {
    Txn {
        r#type: txn_type.code(),
        data: Some(to_bytes(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(t: OpCode) -> TxnHeader {
        TxnHeader {
            client_id: 0x100,
            cxid: 3,
            zxid: 0x1_0000_0005,
            time: 1_700_000_000_000,
            r#type: t.code(),
        }
    }

    /// Decodes back to itself, from exactly `encoded_len` bytes.
    fn round_trips(e: TxnEntry) {
        let bytes = e.encode();
        assert_eq!(bytes.len(), e.encoded_len(), "{e:?}");
        assert_eq!(TxnEntry::decode(bytes), Ok(e));
    }

    #[test]
    fn create_txn_with_digest_round_trips() {
        let e = TxnEntry {
            header: header(OpCode::Create),
            body: TxnBody::Create(CreateTxn {
                path: "/a".into(),
                data: Some(Bytes::from_static(b"x")),
                acl: crate::modes::ids::open_acl_unsafe(),
                ephemeral: false,
                parent_c_version: 1,
            }),
            digest: Some(TxnDigest {
                version: 2,
                tree_digest: 12345,
            }),
        };
        round_trips(e);
    }

    #[test]
    fn old_create_txn_falls_back_to_v0() {
        let v0 = CreateTxnV0 {
            path: "/old".into(),
            data: None,
            acl: vec![],
            ephemeral: true,
        };
        let mut out = Vec::new();
        header(OpCode::Create).write(&mut out);
        v0.write(&mut out);
        let e = TxnEntry::decode(Bytes::from(out)).unwrap();
        assert_eq!(e.body, TxnBody::CreateV0(v0));
    }

    #[test]
    fn close_session_with_and_without_body() {
        for body in [
            TxnBody::CloseSession(None),
            TxnBody::CloseSession(Some(CloseSessionTxn {
                paths2_delete: vec!["/e1".into(), "/e2".into()],
            })),
        ] {
            for digest in [
                None,
                Some(TxnDigest {
                    version: 2,
                    tree_digest: -1,
                }),
            ] {
                let e = TxnEntry {
                    header: header(OpCode::CloseSession),
                    body: body.clone(),
                    digest,
                };
                round_trips(e);
            }
        }
    }

    #[test]
    fn multi_txn_round_trips() {
        let e = TxnEntry {
            header: header(OpCode::Multi),
            body: TxnBody::Multi(vec![
                (
                    OpCode::Create.code(),
                    TxnBody::Create(CreateTxn {
                        path: "/m".into(),
                        data: Some(Bytes::new()),
                        acl: vec![],
                        ephemeral: false,
                        parent_c_version: 4,
                    }),
                ),
                (OpCode::Error.code(), TxnBody::Error(ErrorTxn { err: -101 })),
                (
                    OpCode::SetData.code(),
                    TxnBody::SetData(SetDataTxn {
                        path: "/m".into(),
                        data: Some(Bytes::from(vec![7u8; 1000])),
                        version: 3,
                    }),
                ),
            ]),
            digest: None,
        };
        round_trips(e);
    }

    #[test]
    fn unknown_txn_type_is_an_error() {
        let mut out = Vec::new();
        TxnHeader {
            r#type: 77,
            ..header(OpCode::Create)
        }
        .write(&mut out);
        assert_eq!(
            TxnEntry::decode(Bytes::from(out)),
            Err(DecodeError::UnknownOpCode(77))
        );
    }
}
