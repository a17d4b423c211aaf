//! Why sessions ended, for operators: "the ephemerals vanished and nobody knows why" is
//! the incident this answers. Every expiry the server decides is kept (a bounded ring,
//! newest last) with what it knew of the session then, and every stall it detected in
//! itself, when it extended sessions instead of expiring them.

use std::collections::VecDeque;

use serde_json::{json, Value};

/// How many expirations and stalls are kept.
const KEPT: usize = 1000;

/// One session the server expired, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expiration {
    pub session: i64,
    pub timeout_ms: i32,
    /// How long before the expiry the client was last heard from.
    pub last_seen_ms_ago: u64,
    /// The server it was last heard through.
    pub last_server: u64,
    /// Whether its connection was to this server when it expired.
    pub connected_here: bool,
    /// Ephemeral nodes the closeSession removes.
    pub ephemerals: usize,
    /// Watches its connection held here (`None`: connected elsewhere, or not at all).
    pub watches: Option<usize>,
    /// The closeSession txn.
    pub zxid: i64,
    /// Wall-clock time of the expiry (ms since the epoch).
    pub at_ms: i64,
}

impl Expiration {
    /// In words, as the log line and the admin command give it.
    pub(crate) fn cause(&self) -> String {
        format!(
            "no packet from the client for {} ms (session timeout {} ms); last heard through server {}",
            self.last_seen_ms_ago, self.timeout_ms, self.last_server
        )
    }

    fn to_json(&self) -> Value {
        json!({
            "session_id": format!("0x{:x}", self.session),
            "cause": self.cause(),
            "timeout_ms": self.timeout_ms,
            "last_seen_ms_ago": self.last_seen_ms_ago,
            "last_server": self.last_server,
            "connected_here": self.connected_here,
            "ephemerals_removed": self.ephemerals,
            "watches_removed": self.watches,
            "zxid": format!("0x{:x}", self.zxid),
            "at_ms": self.at_ms,
        })
    }
}

/// What stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StallKind {
    /// The server's own tick came late (paused, starved).
    Tick,
    /// A txn log commit (write and fsync) took that long.
    Storage,
}

/// A stall of this server that it noticed (a tick far later than due, or a commit that
/// took far too long).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stall {
    pub kind: StallKind,
    /// How late the tick was, or how long the commit took.
    pub late_ms: u64,
    pub sessions_extended: usize,
    pub at_ms: i64,
}

/// The rings and counters behind `/commands/expirations` and the expiry metrics.
#[derive(Debug, Default)]
pub(crate) struct ExpiryLog {
    expirations: VecDeque<Expiration>,
    stalls: VecDeque<Stall>,
    pub expired_total: u64,
    pub deferred_total: u64,
    pub stalls_total: u64,
    pub extended_total: u64,
}

impl ExpiryLog {
    pub(crate) fn expired(&mut self, e: Expiration) {
        tracing::warn!(
            session = format_args!("{:#x}", e.session),
            timeout_ms = e.timeout_ms,
            last_seen_ms_ago = e.last_seen_ms_ago,
            last_server = e.last_server,
            connected_here = e.connected_here,
            ephemerals = e.ephemerals,
            watches = e.watches,
            zxid = format_args!("{:#x}", e.zxid),
            "session expired: {}",
            e.cause()
        );
        self.expired_total += 1;
        if self.expirations.len() == KEPT {
            self.expirations.pop_front();
        }
        self.expirations.push_back(e);
    }

    pub(crate) fn stalled(&mut self, s: Stall) {
        let what = match s.kind {
            StallKind::Tick => format!("its tick came {} ms late", s.late_ms),
            StallKind::Storage => format!("a txn log commit took {} ms", s.late_ms),
        };
        tracing::warn!(
            late_ms = s.late_ms,
            sessions_extended = s.sessions_extended,
            "this server stalled: {what}; {} sessions extended instead of expired",
            s.sessions_extended
        );
        self.stalls_total += 1;
        self.extended_total += s.sessions_extended as u64;
        if self.stalls.len() == KEPT {
            self.stalls.pop_front();
        }
        self.stalls.push_back(s);
    }

    pub(crate) fn deferred(&mut self, n: usize, cap: usize) {
        tracing::warn!(
            deferred = n,
            cap,
            "more sessions due to expire than sessionExpiry.maxPerTick: the rest wait a tick"
        );
        self.deferred_total += n as u64;
    }

    /// The admin command's answer: newest first.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "expirations": self.expirations.iter().rev().map(Expiration::to_json).collect::<Vec<_>>(),
            "stalls": self.stalls.iter().rev().map(|s| json!({
                "kind": match s.kind { StallKind::Tick => "tick", StallKind::Storage => "storage" },
                "late_ms": s.late_ms,
                "sessions_extended": s.sessions_extended,
                "at_ms": s.at_ms,
            })).collect::<Vec<_>>(),
            "expired_total": self.expired_total,
            "deferred_total": self.deferred_total,
            "stalls_total": self.stalls_total,
            "sessions_extended_total": self.extended_total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiration(session: i64) -> Expiration {
        Expiration {
            session,
            timeout_ms: 4000,
            last_seen_ms_ago: 4100,
            last_server: 2,
            connected_here: false,
            ephemerals: 3,
            watches: None,
            zxid: 0x100000007,
            at_ms: 1,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_and_counts_everything() {
        let mut log = ExpiryLog::default();
        for s in 0..(KEPT as i64 + 5) {
            log.expired(expiration(s));
        }
        let v = log.to_json();
        let list = v["expirations"].as_array().map(Vec::len);
        assert_eq!(list, Some(KEPT));
        assert_eq!(v["expired_total"], json!(KEPT + 5));
        assert_eq!(
            v["expirations"][0]["session_id"],
            json!(format!("0x{:x}", KEPT + 4))
        );
        assert_eq!(
            v["expirations"][0]["cause"],
            json!("no packet from the client for 4100 ms (session timeout 4000 ms); last heard through server 2")
        );
        assert_eq!(v["expirations"][0]["ephemerals_removed"], json!(3));
        assert_eq!(v["expirations"][0]["watches_removed"], Value::Null);
    }

    #[test]
    fn stalls_and_deferrals_are_counted() {
        let mut log = ExpiryLog::default();
        log.stalled(Stall {
            kind: StallKind::Tick,
            late_ms: 9000,
            sessions_extended: 12,
            at_ms: 5,
        });
        log.deferred(7, 100);
        let v = log.to_json();
        assert_eq!(v["stalls_total"], json!(1));
        assert_eq!(v["sessions_extended_total"], json!(12));
        assert_eq!(v["deferred_total"], json!(7));
        assert_eq!(v["stalls"][0]["late_ms"], json!(9000));
    }
}
