//! Named crash points, for tests that prove nothing acknowledged is lost whatever instant
//! a process dies at. `ZKD_FAILPOINTS="log.before_fsync=3,epoch.before_rename=1"` makes the
//! process abort (no destructors, no flush: as `kill -9`) the 3rd time it passes
//! `log.before_fsync`, and the 1st time it passes `epoch.before_rename`. Unset, a point
//! costs one load of an empty list.
//!
//! The points: `log.before_write`, `log.before_fsync`, `log.after_fsync` (a txn log
//! commit); `log.mid_truncate` (between the files of a TRUNC); `snapshot.written`,
//! `snapshot.synced` (a snapshot file, before its fsync and before the directory's);
//! `epoch.before_rename`, `epoch.after_rename` (an epoch file); and in zk-server
//! `session.close` (a closeSession applied, not yet answered), `leader.before_commit`,
//! `leader.after_commit` (the leader applying a txn the quorum committed).
//!
//! `name=N:sleep=MS` makes the Nth pass sleep MS milliseconds instead of aborting: a slow
//! disk (`log.before_fsync=5:sleep=3000` is a 3-second fsync) for the stall tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable the points are read from, once.
pub const ENV: &str = "ZKD_FAILPOINTS";

#[derive(Debug)]
struct Point {
    name: String,
    /// Abort on this hit (counting from 1).
    at: u64,
    /// Sleep this long on that hit instead of aborting.
    sleep_ms: Option<u64>,
    hits: AtomicU64,
}

fn points() -> &'static [Point] {
    static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
    POINTS.get_or_init(|| parse(&std::env::var(ENV).unwrap_or_default()))
}

/// `name=N` entries separated by commas (N defaults to 1); malformed entries are ignored.
fn parse(spec: &str) -> Vec<Point> {
    spec.split(',')
        .filter_map(|entry| {
            let entry = entry.trim();
            if entry.is_empty() {
                return None;
            }
            let (entry, action) = match entry.split_once(':') {
                Some((e, a)) => (e.trim(), Some(a.trim())),
                None => (entry, None),
            };
            let sleep_ms = match action {
                None => None,
                Some(a) => Some(a.strip_prefix("sleep=")?.parse::<u64>().ok()?),
            };
            let (name, at) = match entry.split_once('=') {
                Some((n, a)) => (n.trim(), a.trim().parse::<u64>().ok()?),
                None => (entry, 1),
            };
            Some(Point {
                name: name.to_owned(),
                at: at.max(1),
                sleep_ms,
                hits: AtomicU64::new(0),
            })
        })
        .collect()
}

/// Passes the point `name`: aborts the process if this is the hit it was set to fire on.
pub fn hit(name: &str) {
    for p in points() {
        if p.name == name {
            let n = p.hits.fetch_add(1, Ordering::SeqCst) + 1;
            if n == p.at {
                if let Some(ms) = p.sleep_ms {
                    eprintln!("failpoint {name} sleeps {ms} ms (hit {n})");
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    continue;
                }
                eprintln!("failpoint {name} fired (hit {n})");
                std::process::abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let p = parse("log.before_fsync=3, epoch.before_rename ,bad=x,,z=0,s=2:sleep=50,t=1:nap=3");
        assert_eq!(p[3].sleep_ms, Some(50));
        assert_eq!(p[0].sleep_ms, None);
        let got: Vec<(&str, u64)> = p.iter().map(|p| (p.name.as_str(), p.at)).collect();
        assert_eq!(
            got,
            vec![
                ("log.before_fsync", 3),
                ("epoch.before_rename", 1),
                ("z", 1),
                ("s", 2)
            ]
        );
        assert!(parse("").is_empty());
    }
}
