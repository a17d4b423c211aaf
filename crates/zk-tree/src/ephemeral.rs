//! What `Stat.ephemeralOwner` encodes (`EphemeralType`): nothing, a session, a container,
//! or a TTL.

/// The owner value of container nodes (`Long.MIN_VALUE`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// High byte set on TTL owners when extended types are enabled.
const EXTENDED_MASK: u64 = 0xff00_0000_0000_0000;
/// The two bytes below the high byte say which extended type; 0 is TTL.
const EXTENDED_TYPE_MASK: u64 = 0x00ff_ff00_0000_0000;
/// The TTL itself, in milliseconds.
const EXTENDED_VALUE_MASK: u64 = 0x0000_00ff_ffff_ffff;
/// The largest TTL ZooKeeper accepts (about 34.8 years).
pub const TTL_MS_MAX: i64 = EXTENDED_VALUE_MASK as i64;

/// The kind of node an owner value denotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EphemeralType {
    /// A plain persistent node (owner 0), or an extended value this version does not know.
    Void,
    /// An ephemeral node of this session.
    Normal(i64),
    /// A container node.
    Container,
    /// A TTL node and its TTL in milliseconds.
    Ttl(i64),
}

/// Decodes an owner value. TTL encodings only count when extended types are enabled;
/// otherwise they read as the session id they look like, as in ZooKeeper.
pub fn classify(owner: i64, extended_types_enabled: bool) -> EphemeralType {
    let bits = owner as u64;
    if owner == 0 {
        EphemeralType::Void
    } else if owner == CONTAINER_OWNER {
        EphemeralType::Container
    } else if extended_types_enabled && bits & EXTENDED_MASK == EXTENDED_MASK {
        if bits & EXTENDED_TYPE_MASK == 0 {
            EphemeralType::Ttl((bits & EXTENDED_VALUE_MASK) as i64)
        } else {
            EphemeralType::Void
        }
    } else {
        EphemeralType::Normal(owner)
    }
}

/// The owner value of a TTL node, if `ttl_ms` is in ZooKeeper's valid range (1..=TTL_MS_MAX).
pub fn ttl_owner(ttl_ms: i64) -> Option<i64> {
    (1..=TTL_MS_MAX)
        .contains(&ttl_ms)
        .then_some((EXTENDED_MASK | ttl_ms as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_decode() {
        assert_eq!(classify(0, true), EphemeralType::Void);
        assert_eq!(classify(0x100, true), EphemeralType::Normal(0x100));
        assert_eq!(classify(CONTAINER_OWNER, false), EphemeralType::Container);
        let ttl = ttl_owner(10_000).unwrap();
        assert_eq!(ttl as u64, 0xff00_0000_0000_2710);
        assert_eq!(classify(ttl, true), EphemeralType::Ttl(10_000));
        assert_eq!(classify(ttl, false), EphemeralType::Normal(ttl));
        assert_eq!(ttl_owner(0), None);
        assert_eq!(ttl_owner(TTL_MS_MAX + 1), None);
        assert!(ttl_owner(TTL_MS_MAX).is_some());
    }
}
