//! The client's error type: ZooKeeper's error codes, plus what only a client can get wrong.

use zk_proto::ErrorCode;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server, or the session's fate, answered with this code: `NoNode`, `BadVersion`,
    /// `ConnectionLoss` (the reply was lost with the connection), `SessionExpired`, ...
    #[error("KeeperErrorCode = {0}")]
    Code(ErrorCode),
    /// The client refused to send the request (a bad path, a bad ACL string, ...), with
    /// ZooKeeper's own reason.
    #[error("{0}")]
    BadArguments(String),
    /// The server sent bytes this client could not decode.
    #[error("bad reply from the server: {0}")]
    Marshalling(String),
    /// The client was closed by its owner.
    #[error("the client is closed")]
    Closed,
}

impl Error {
    /// The ZooKeeper error code a Java client would report for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Code(c) => *c,
            Error::BadArguments(_) => ErrorCode::BadArguments,
            Error::Marshalling(_) => ErrorCode::MarshallingError,
            Error::Closed => ErrorCode::SessionExpired,
        }
    }
}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::Code(code)
    }
}

/// A result of a client operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a reply header's `err` into an error (unknown codes become `SystemError`).
pub(crate) fn from_wire(err: i32) -> Error {
    Error::Code(ErrorCode::from_code(err).unwrap_or(ErrorCode::SystemError))
}
