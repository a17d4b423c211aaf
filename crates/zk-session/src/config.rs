//! The settings the session tracker needs, mirroring zoo.cfg's `tickTime`,
//! `minSessionTimeout` and `maxSessionTimeout`.

/// What the tracker needs to know about its server; plain data so the server's `Config`
/// can build it and tests can write it inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// This server's id (`myid`), placed in the top byte of every session id it issues so
    /// ids from different servers never collide. 255 should be refused by the server when
    /// TTL nodes are enabled: its ids would read as TTL ephemeral owners.
    pub server_id: u8,
    /// `tickTime`: the expiry bucket width; deadlines are rounded up to a multiple of it.
    /// Must be positive.
    pub tick_time_ms: u32,
    /// The smallest timeout a client can negotiate (`minSessionTimeout`).
    pub min_session_timeout_ms: u32,
    /// The largest timeout a client can negotiate (`maxSessionTimeout`).
    pub max_session_timeout_ms: u32,
}

impl SessionConfig {
    /// ZooKeeper's defaults: timeouts between 2 and 20 ticks. Set the fields afterwards to
    /// override the bounds, as zoo.cfg does.
    pub fn new(server_id: u8, tick_time_ms: u32) -> Self {
        SessionConfig {
            server_id,
            tick_time_ms,
            min_session_timeout_ms: tick_time_ms.saturating_mul(2),
            max_session_timeout_ms: tick_time_ms.saturating_mul(20),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_two_and_twenty_ticks() {
        let c = SessionConfig::new(3, 2000);
        assert_eq!(c.server_id, 3);
        assert_eq!(c.tick_time_ms, 2000);
        assert_eq!(c.min_session_timeout_ms, 4000);
        assert_eq!(c.max_session_timeout_ms, 40000);
    }

    #[test]
    fn huge_ticks_saturate() {
        let c = SessionConfig::new(1, u32::MAX);
        assert_eq!(c.min_session_timeout_ms, u32::MAX);
        assert_eq!(c.max_session_timeout_ms, u32::MAX);
    }
}
