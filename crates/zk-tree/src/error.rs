//! The outcomes of tree operations that are answered on the wire.

use zk_proto::ErrorCode;

/// One variant per ZooKeeper error the tree can produce; [`TreeError::code`] maps each to
/// its wire code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("no node {0}")]
    NoNode(String),
    #[error("node {0} exists")]
    NodeExists(String),
    #[error("node {0} has children")]
    NotEmpty(String),
    #[error("bad version for {path}: expected {expected}, actual {actual}")]
    BadVersion {
        path: String,
        expected: i32,
        actual: i32,
    },
    #[error("ephemeral {0} cannot have children")]
    NoChildrenForEphemerals(String),
    #[error("invalid ACL for {0}")]
    InvalidAcl(String),
    #[error("not authorized for {0}")]
    NoAuth(String),
    #[error("bad arguments for {path:?}: {reason}")]
    BadArguments { path: String, reason: &'static str },
    #[error("quota exceeded at {0}")]
    QuotaExceeded(String),
    #[error("{parent} already has {limit} children, the most guardrails.maxChildren allows")]
    TooManyChildren { parent: String, limit: usize },
    #[error("operation not implemented: {0}")]
    Unimplemented(&'static str),
    #[error("no watcher for {0}")]
    NoWatcher(String),
    #[error("ephemeral node {0} on a local session")]
    EphemeralOnLocalSession(String),
    #[error("inconsistent state: {0}")]
    RuntimeInconsistency(String),
}

impl TreeError {
    /// The ZooKeeper error code sent for this outcome.
    pub fn code(&self) -> ErrorCode {
        match self {
            TreeError::NoNode(_) => ErrorCode::NoNode,
            TreeError::NodeExists(_) => ErrorCode::NodeExists,
            TreeError::NotEmpty(_) => ErrorCode::NotEmpty,
            TreeError::BadVersion { .. } => ErrorCode::BadVersion,
            TreeError::NoChildrenForEphemerals(_) => ErrorCode::NoChildrenForEphemerals,
            TreeError::InvalidAcl(_) => ErrorCode::InvalidAcl,
            TreeError::NoAuth(_) => ErrorCode::NoAuth,
            TreeError::BadArguments { .. } => ErrorCode::BadArguments,
            TreeError::QuotaExceeded(_) | TreeError::TooManyChildren { .. } => {
                ErrorCode::QuotaExceeded
            }
            TreeError::Unimplemented(_) => ErrorCode::Unimplemented,
            TreeError::NoWatcher(_) => ErrorCode::NoWatcher,
            TreeError::EphemeralOnLocalSession(_) => ErrorCode::EphemeralOnLocalSession,
            TreeError::RuntimeInconsistency(_) => ErrorCode::RuntimeInconsistency,
        }
    }
}

/// Result alias for tree operations.
pub type Result<T, E = TreeError> = std::result::Result<T, E>;
