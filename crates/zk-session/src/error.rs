//! Why a session operation was refused, as a typed value the server maps to the wire.

use zk_proto::ErrorCode;

/// Shorthand for results whose error is a [`SessionError`].
pub type Result<T, E = SessionError> = std::result::Result<T, E>;

/// One variant per reason a session cannot be used; each carries the session id so logs
/// and replies can name it (displayed in hex, as ZooKeeper's logs do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The tracker has no such session: never created, already closed and removed, or
    /// created on a server whose table we do not share.
    #[error("unknown session 0x{0:x}")]
    Unknown(i64),
    /// The session's deadline passed. The tracker itself reports expiry through
    /// [`crate::SessionTracker::expire`]; this variant is for callers that refuse a client
    /// because of it (a reconnect to an expired session, for instance).
    #[error("session 0x{0:x} expired")]
    Expired(i64),
    /// The session is being closed (a `closeSession` was prepared or it expired), so it can
    /// no longer be used even though its `closeSession` txn is not applied yet.
    #[error("session 0x{0:x} is closing")]
    Closing(i64),
    /// A reconnect presented a password that is not this session's.
    #[error("bad password for session 0x{0:x}")]
    BadPassword(i64),
}

impl SessionError {
    /// The session this refusal is about.
    pub fn session_id(&self) -> i64 {
        match self {
            SessionError::Unknown(id)
            | SessionError::Expired(id)
            | SessionError::Closing(id)
            | SessionError::BadPassword(id) => *id,
        }
    }

    /// The ZooKeeper error code a client sees for this refusal. Every variant is
    /// `SESSIONEXPIRED`: ZooKeeper's `checkSession` throws `SessionExpiredException` for
    /// unknown and closing sessions alike, and a bad password on reconnect is answered with
    /// a zero-timeout `ConnectResponse`, which clients turn into the Expired state too.
    pub fn code(&self) -> ErrorCode {
        match self {
            SessionError::Unknown(_)
            | SessionError::Expired(_)
            | SessionError::Closing(_)
            | SessionError::BadPassword(_) => ErrorCode::SessionExpired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_session_in_hex() {
        assert_eq!(
            SessionError::Unknown(0x1234).to_string(),
            "unknown session 0x1234"
        );
        assert_eq!(
            SessionError::Closing(-1).to_string(),
            "session 0xffffffffffffffff is closing"
        );
        assert_eq!(
            SessionError::Expired(0x10).to_string(),
            "session 0x10 expired"
        );
        assert_eq!(
            SessionError::BadPassword(0x10).to_string(),
            "bad password for session 0x10"
        );
    }

    #[test]
    fn every_refusal_is_session_expired_on_the_wire() {
        for e in [
            SessionError::Unknown(1),
            SessionError::Expired(2),
            SessionError::Closing(3),
            SessionError::BadPassword(4),
        ] {
            assert_eq!(e.code(), ErrorCode::SessionExpired);
        }
        assert_eq!(SessionError::Closing(7).session_id(), 7);
    }
}
