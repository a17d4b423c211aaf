//! The operation codes of ZooKeeper 3.9 (`ZooDefs.OpCode`).

/// Declares a `#[repr(i32)]` enum with a fallible conversion from its wire value.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(i32)]
        pub enum $name { $( $(#[$vmeta])* $variant = $value ),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),* ];

            /// The wire value.
            pub const fn code(self) -> i32 {
                self as i32
            }

            /// The variant for a wire value, if there is one.
            pub const fn from_code(code: i32) -> Option<$name> {
                match code {
                    $( $value => Some($name::$variant), )*
                    _ => None,
                }
            }
        }

        impl TryFrom<i32> for $name {
            type Error = i32;
            fn try_from(code: i32) -> Result<Self, i32> {
                $name::from_code(code).ok_or(code)
            }
        }

        impl From<$name> for i32 {
            fn from(v: $name) -> i32 {
                v as i32
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// What a request (or a logged txn) does.
    pub enum OpCode {
        Notification = 0,
        Create = 1,
        Delete = 2,
        Exists = 3,
        GetData = 4,
        SetData = 5,
        GetAcl = 6,
        SetAcl = 7,
        GetChildren = 8,
        Sync = 9,
        Ping = 11,
        GetChildren2 = 12,
        Check = 13,
        Multi = 14,
        Create2 = 15,
        Reconfig = 16,
        CheckWatches = 17,
        RemoveWatches = 18,
        CreateContainer = 19,
        DeleteContainer = 20,
        CreateTtl = 21,
        MultiRead = 22,
        Auth = 100,
        SetWatches = 101,
        Sasl = 102,
        GetEphemerals = 103,
        GetAllChildrenNumber = 104,
        SetWatches2 = 105,
        AddWatch = 106,
        WhoAmI = 107,
        CreateSession = -10,
        CloseSession = -11,
        Error = -1,
    }
}

impl OpCode {
    /// True for operations that change the tree and so go through the log (`Request.isQuorum`
    /// minus the session ops).
    pub const fn is_write(self) -> bool {
        matches!(
            self,
            OpCode::Create
                | OpCode::Create2
                | OpCode::CreateContainer
                | OpCode::CreateTtl
                | OpCode::Delete
                | OpCode::DeleteContainer
                | OpCode::SetData
                | OpCode::SetAcl
                | OpCode::Check
                | OpCode::Multi
                | OpCode::Reconfig
        )
    }

    /// ZooKeeper's name for the operation, as its logs, `cons` and TxnLogToolkit print it
    /// (`Request.op2String`).
    pub const fn name(self) -> &'static str {
        match self {
            OpCode::Notification => "notification",
            OpCode::Create => "create",
            OpCode::Delete => "delete",
            OpCode::Exists => "exists",
            OpCode::GetData => "getData",
            OpCode::SetData => "setData",
            OpCode::GetAcl => "getACL",
            OpCode::SetAcl => "setACL",
            OpCode::GetChildren => "getChildren",
            OpCode::Sync => "sync",
            OpCode::Ping => "ping",
            OpCode::GetChildren2 => "getChildren2",
            OpCode::Check => "check",
            OpCode::Multi => "multi",
            OpCode::Create2 => "create2",
            OpCode::Reconfig => "reconfig",
            OpCode::CheckWatches => "checkWatches",
            OpCode::RemoveWatches => "removeWatches",
            OpCode::CreateContainer => "createContainer",
            OpCode::DeleteContainer => "deleteContainer",
            OpCode::CreateTtl => "createTtl",
            OpCode::MultiRead => "multiRead",
            OpCode::Auth => "auth",
            OpCode::SetWatches => "setWatches",
            OpCode::Sasl => "sasl",
            OpCode::GetEphemerals => "getEphemerals",
            OpCode::GetAllChildrenNumber => "getAllChildrenNumber",
            OpCode::SetWatches2 => "setWatches2",
            OpCode::AddWatch => "addWatch",
            OpCode::WhoAmI => "whoAmI",
            OpCode::CreateSession => "createSession",
            OpCode::CloseSession => "closeSession",
            OpCode::Error => "error",
        }
    }
}

/// Reserved xids (`ClientCnxn`): values a client never uses for an ordinary request.
pub mod xid {
    /// A watch notification pushed by the server.
    pub const NOTIFICATION: i32 = -1;
    /// A ping.
    pub const PING: i32 = -2;
    /// An auth packet.
    pub const AUTH: i32 = -4;
    /// setWatches / setWatches2.
    pub const SET_WATCHES: i32 = -8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        assert_eq!(OpCode::ALL.len(), 33);
        for op in OpCode::ALL {
            assert_eq!(OpCode::from_code(op.code()), Some(*op));
        }
        assert_eq!(OpCode::try_from(10), Err(10));
        assert_eq!(OpCode::try_from(999), Err(999));
    }
}
