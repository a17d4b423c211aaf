//! Small enums of the protocol: create modes, watch modes and types, event types, client
//! states, and ACL permission bits.

use crate::opcode::wire_enum;

wire_enum! {
    /// `CreateRequest.flags` (`CreateMode`).
    pub enum CreateMode {
        Persistent = 0,
        Ephemeral = 1,
        PersistentSequential = 2,
        EphemeralSequential = 3,
        Container = 4,
        PersistentWithTtl = 5,
        PersistentSequentialWithTtl = 6,
    }
}

impl CreateMode {
    /// Owned by a session and deleted with it.
    pub const fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Gets a `%010d` suffix from the parent's cversion.
    pub const fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Deleted by the container manager once it had children and has none.
    pub const fn is_container(self) -> bool {
        matches!(self, CreateMode::Container)
    }

    /// Deleted once unmodified for its TTL and childless.
    pub const fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

wire_enum! {
    /// `AddWatchRequest.mode` (`AddWatchMode`).
    pub enum AddWatchMode {
        Persistent = 0,
        PersistentRecursive = 1,
    }
}

wire_enum! {
    /// Which watches checkWatches / removeWatches address (`Watcher.WatcherType`).
    pub enum WatcherType {
        Children = 1,
        Data = 2,
        Any = 3,
        Persistent = 4,
        PersistentRecursive = 5,
    }
}

wire_enum! {
    /// `WatcherEvent.type` (`Watcher.Event.EventType`); 5-7 are only generated client-side.
    pub enum EventType {
        None = -1,
        NodeCreated = 1,
        NodeDeleted = 2,
        NodeDataChanged = 3,
        NodeChildrenChanged = 4,
        DataWatchRemoved = 5,
        ChildWatchRemoved = 6,
        PersistentWatchRemoved = 7,
    }
}

wire_enum! {
    /// `WatcherEvent.state` (`Watcher.Event.KeeperState`).
    pub enum KeeperState {
        Unknown = -1,
        Disconnected = 0,
        NoSyncConnected = 1,
        SyncConnected = 3,
        AuthFailed = 4,
        ConnectedReadOnly = 5,
        SaslAuthenticated = 6,
        Closed = 7,
        Expired = -112,
    }
}

/// ACL permission bits (`ZooDefs.Perms`).
pub mod perms {
    pub const READ: i32 = 1;
    pub const WRITE: i32 = 1 << 1;
    pub const CREATE: i32 = 1 << 2;
    pub const DELETE: i32 = 1 << 3;
    pub const ADMIN: i32 = 1 << 4;
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;

    /// zkCli's letters for a permission set (`crwda` order: create, read, write, delete, admin).
    pub fn to_letters(perms: i32) -> String {
        let mut s = String::with_capacity(5);
        for (bit, c) in [
            (CREATE, 'c'),
            (READ, 'r'),
            (WRITE, 'w'),
            (DELETE, 'd'),
            (ADMIN, 'a'),
        ] {
            if perms & bit != 0 {
                s.push(c);
            }
        }
        s
    }

    /// Parses zkCli's permission letters; `None` on any other character.
    pub fn from_letters(s: &str) -> Option<i32> {
        s.chars().try_fold(0, |acc, c| {
            let bit = match c.to_ascii_lowercase() {
                'r' => READ,
                'w' => WRITE,
                'c' => CREATE,
                'd' => DELETE,
                'a' => ADMIN,
                _ => return None,
            };
            Some(acc | bit)
        })
    }
}

/// Well-known ids and ACL lists (`ZooDefs.Ids`).
pub mod ids {
    use crate::records::{Acl, Id};

    /// `world:anyone`.
    pub fn anyone() -> Id {
        Id {
            scheme: "world".into(),
            id: "anyone".into(),
        }
    }

    /// `auth:` with an empty id: replaced by the caller's identities when set.
    pub fn auth_ids() -> Id {
        Id {
            scheme: "auth".into(),
            id: String::new(),
        }
    }

    /// `OPEN_ACL_UNSAFE`: everyone may do everything.
    pub fn open_acl_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: super::perms::ALL,
            id: anyone(),
        }]
    }

    /// `READ_ACL_UNSAFE`: everyone may read.
    pub fn read_acl_unsafe() -> Vec<Acl> {
        vec![Acl {
            perms: super::perms::READ,
            id: anyone(),
        }]
    }

    /// `CREATOR_ALL_ACL`: all rights to the creator's authenticated ids.
    pub fn creator_all_acl() -> Vec<Acl> {
        vec![Acl {
            perms: super::perms::ALL,
            id: auth_ids(),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_mode_flags() {
        assert!(CreateMode::EphemeralSequential.is_ephemeral());
        assert!(CreateMode::EphemeralSequential.is_sequential());
        assert!(CreateMode::PersistentSequentialWithTtl.is_ttl());
        assert!(!CreateMode::Container.is_sequential());
        assert_eq!(CreateMode::from_code(7), None);
    }

    #[test]
    fn perm_letters_round_trip() {
        assert_eq!(perms::to_letters(perms::ALL), "crwda");
        assert_eq!(perms::from_letters("rw"), Some(perms::READ | perms::WRITE));
        assert_eq!(perms::from_letters("rx"), None);
    }
}
