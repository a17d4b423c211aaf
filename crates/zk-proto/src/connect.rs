//! The handshake records. Their trailing `readOnly` byte is optional: clients before 3.4
//! omit it, and the server mirrors the client (ZOOKEEPER-4814), so it is an `Option`.

use bytes::{BufMut, Bytes};

use crate::error::Result;
use crate::jute::{Jute, Reader};

/// The first frame a client sends (no request header).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Option<Bytes>,
    /// `None` when the client did not send the byte at all.
    pub read_only: Option<bool>,
}

/// The server's answer to [`ConnectRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub time_out: i32,
    pub session_id: i64,
    pub passwd: Option<Bytes>,
    /// Present exactly when the client's request had it.
    pub read_only: Option<bool>,
}

fn write_read_only<B: BufMut>(read_only: Option<bool>, out: &mut B) {
    if let Some(ro) = read_only {
        ro.write(out);
    }
}

fn read_read_only(r: &mut Reader) -> Result<Option<bool>> {
    if r.is_empty() {
        Ok(None)
    } else {
        r.read_bool().map(Some)
    }
}

impl Jute for ConnectRequest {
    const LEN_MIN: usize = 4 + 8 + 4 + 8 + 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        self.protocol_version.write(out);
        self.last_zxid_seen.write(out);
        self.time_out.write(out);
        self.session_id.write(out);
        self.passwd.write(out);
        write_read_only(self.read_only, out);
    }
    /// Reads to the end of the frame: the reader must hold exactly this record.
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32()?,
            last_zxid_seen: r.read_i64()?,
            time_out: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?,
            read_only: read_read_only(r)?,
        })
    }
    fn encoded_len(&self) -> usize {
        Self::LEN_MIN + self.passwd.as_ref().map_or(0, Bytes::len) + self.read_only.map_or(0, |_| 1)
    }
}

impl Jute for ConnectResponse {
    const LEN_MIN: usize = 4 + 4 + 8 + 4;
    fn write<B: BufMut>(&self, out: &mut B) {
        self.protocol_version.write(out);
        self.time_out.write(out);
        self.session_id.write(out);
        self.passwd.write(out);
        write_read_only(self.read_only, out);
    }
    /// Reads to the end of the frame: the reader must hold exactly this record.
    fn read(r: &mut Reader) -> Result<Self> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32()?,
            time_out: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: r.read_buffer()?,
            read_only: read_read_only(r)?,
        })
    }
    fn encoded_len(&self) -> usize {
        Self::LEN_MIN + self.passwd.as_ref().map_or(0, Bytes::len) + self.read_only.map_or(0, |_| 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jute::{from_bytes, to_bytes};

    fn response(read_only: Option<bool>) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            time_out: 30000,
            session_id: 0x1000_0000_0000_0001,
            passwd: Some(Bytes::from_static(&[7; 16])),
            read_only,
        }
    }

    // Reference: probe on ZooKeeper 3.8.0, the response is 37 bytes with readOnly and 36 without
    // (framing length excluded).
    #[test]
    fn response_length_mirrors_read_only_presence() {
        assert_eq!(to_bytes(&response(Some(false))).len(), 37);
        assert_eq!(to_bytes(&response(None)).len(), 36);
    }

    #[test]
    fn request_without_read_only_byte_decodes() {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 5,
            time_out: 4000,
            session_id: 0,
            passwd: Some(Bytes::from_static(&[0; 16])),
            read_only: None,
        };
        let bytes = to_bytes(&req);
        assert_eq!(bytes.len(), 44);
        assert_eq!(from_bytes::<ConnectRequest>(bytes), Ok(req.clone()));
        let with = ConnectRequest {
            read_only: Some(true),
            ..req
        };
        assert_eq!(from_bytes::<ConnectRequest>(to_bytes(&with)), Ok(with));
    }
}
