//! Identifier newtypes shared across crates, so a zxid is never confused with a session id.

use std::fmt;

/// A ZooKeeper transaction id: epoch in the high 32 bits, counter in the low 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Zxid(pub i64);

impl Zxid {
    /// Builds a zxid from its epoch and counter.
    pub const fn new(epoch: u32, counter: u32) -> Zxid {
        Zxid((((epoch as u64) << 32) | counter as u64) as i64)
    }

    /// The leader epoch that issued it.
    pub const fn epoch(self) -> u32 {
        ((self.0 as u64) >> 32) as u32
    }

    /// The position within the epoch.
    pub const fn counter(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

/// A client session id: the creating server's id in the top byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SessionId(pub i64);

impl SessionId {
    /// The server id embedded in the top byte.
    pub const fn server_id(self) -> u8 {
        ((self.0 as u64) >> 56) as u8
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_parts() {
        let z = Zxid::new(3, 7);
        assert_eq!((z.epoch(), z.counter()), (3, 7));
        assert_eq!(z.to_string(), "0x300000007");
        assert_eq!(Zxid::new(0xffff_ffff, 1).epoch(), 0xffff_ffff);
    }

    #[test]
    fn session_server_id() {
        assert_eq!(SessionId(0x0100_0000_0000_0001).server_id(), 1);
        assert_eq!(
            SessionId(0x0100_0000_0000_0001).to_string(),
            "0x100000000000001"
        );
    }
}
