//! Introspection: "what is hot, who is busy, and where does the memory go?" Reads, writes
//! and watch notifications are counted per path and per session over a sliding window (six
//! 10-second buckets), so the admin commands answer for the last minute, not since start.
//! Counting costs one hash lookup per request; each bucket tracks at most
//! [`PATHS_PER_BUCKET`] paths and [`SESSIONS_PER_BUCKET`] sessions, so memory stays bounded
//! whatever the workload. A bucket full of paths forgets its least used half (their
//! operations count as untracked), so the hot paths keep their places and a path that
//! turns hot late still gets one.

use std::cmp::Reverse;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use zk_log::histogram::Histogram;
use zk_proto::TxnBody;

/// Width of one bucket.
pub(crate) const BUCKET_MS: u64 = 10_000;
/// Buckets in the window (one minute).
pub(crate) const BUCKETS: u64 = 6;
/// Distinct paths counted per bucket (at most about 1 MB each).
pub(crate) const PATHS_PER_BUCKET: usize = 10_000;
/// Distinct sessions counted per bucket.
pub(crate) const SESSIONS_PER_BUCKET: usize = 50_000;

/// Operations on one path.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathCounts {
    pub reads: u64,
    pub writes: u64,
    /// Watch notifications sent for changes of this path.
    pub watch_events: u64,
}

/// Operations of one session.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SessionCounts {
    pub reads: u64,
    pub writes: u64,
}

#[derive(Debug, Default)]
struct Bucket {
    id: u64,
    paths: super::FastMap<Box<str>, PathCounts>,
    sessions: super::FastMap<i64, SessionCounts>,
    untracked: u64,
}

/// The window and the timing histograms the core keeps.
#[derive(Debug, Default)]
pub(crate) struct Introspection {
    buckets: VecDeque<Bucket>,
    /// Snapshot writes (recorded by the background task that writes them).
    pub snapshot_time: Arc<Mutex<Histogram>>,
    /// Ensemble `sync` requests, from arrival to answer.
    pub sync_time: Histogram,
}

impl Introspection {
    /// The current bucket, after dropping the ones that left the window.
    fn bucket(&mut self, now_ms: u64) -> &mut Bucket {
        let id = now_ms / BUCKET_MS;
        while self.buckets.front().is_some_and(|b| b.id + BUCKETS <= id) {
            self.buckets.pop_front();
        }
        if self.buckets.back().is_none_or(|b| b.id != id) {
            self.buckets.push_back(Bucket {
                id,
                ..Bucket::default()
            });
        }
        // Just ensured.
        let last = self.buckets.len() - 1;
        &mut self.buckets[last]
    }

    fn path(&mut self, path: &str, now_ms: u64, f: impl FnOnce(&mut PathCounts)) {
        let b = self.bucket(now_ms);
        if let Some(c) = b.paths.get_mut(path) {
            f(c);
            return;
        }
        if b.paths.len() >= PATHS_PER_BUCKET {
            // Full: forget the least used half (their operations count as untracked), so
            // a path that turns hot late in the bucket still gets a place. Each pass costs
            // the table's length, and a forgetting frees at least half of it, so over time
            // this is O(1) per operation (times the few passes a skewed table needs).
            let mut limit = 1u64;
            while b.paths.len() > PATHS_PER_BUCKET / 2 {
                let mut forgotten = 0;
                b.paths.retain(|_, c| {
                    let total = c.reads + c.writes + c.watch_events;
                    if total <= limit {
                        forgotten += total;
                    }
                    total > limit
                });
                b.untracked += forgotten;
                limit = limit.saturating_mul(2);
            }
        }
        // At most half full now.
        f(b.paths.entry(path.into()).or_default());
    }

    fn session(&mut self, session: i64, now_ms: u64, f: impl FnOnce(&mut SessionCounts)) {
        let b = self.bucket(now_ms);
        if let Some(c) = b.sessions.get_mut(&session) {
            f(c);
        } else if b.sessions.len() < SESSIONS_PER_BUCKET {
            f(b.sessions.entry(session).or_default());
        }
    }

    /// A read of `path` (if it names one) by `session` (if it has one).
    pub(crate) fn read(&mut self, path: Option<&str>, session: Option<i64>, now_ms: u64) {
        if let Some(p) = path {
            self.path(p, now_ms, |c| c.reads += 1);
        }
        if let Some(s) = session {
            self.session(s, now_ms, |c| c.reads += 1);
        }
    }

    /// A committed write txn of `session`: each path it changed.
    pub(crate) fn write(&mut self, session: i64, body: &TxnBody, now_ms: u64) {
        let counted = self.write_paths(body, now_ms);
        if counted > 0 {
            self.session(session, now_ms, |c| c.writes += 1);
        }
    }

    fn write_paths(&mut self, body: &TxnBody, now_ms: u64) -> usize {
        let path = match body {
            TxnBody::Create(t) => &t.path,
            TxnBody::CreateV0(t) => &t.path,
            TxnBody::CreateTtl(t) => &t.path,
            TxnBody::CreateContainer(t) => &t.path,
            TxnBody::Delete(t) => &t.path,
            TxnBody::SetData(t) | TxnBody::Reconfig(t) => &t.path,
            TxnBody::SetAcl(t) => &t.path,
            TxnBody::Multi(ops) => {
                return ops.iter().map(|(_, op)| self.write_paths(op, now_ms)).sum();
            }
            _ => return 0,
        };
        self.path(path, now_ms, |c| c.writes += 1);
        1
    }

    /// A watch notification about `path` went to one watcher.
    pub(crate) fn watch_event(&mut self, path: &str, now_ms: u64) {
        self.path(path, now_ms, |c| c.watch_events += 1);
    }

    /// Per-path totals over the window.
    fn path_totals(&mut self, now_ms: u64) -> (HashMap<&str, PathCounts>, u64) {
        self.bucket(now_ms);
        let mut totals: HashMap<&str, PathCounts> = HashMap::new();
        let mut untracked = 0;
        for b in &self.buckets {
            untracked += b.untracked;
            for (p, c) in &b.paths {
                let t = totals.entry(p).or_default();
                t.reads += c.reads;
                t.writes += c.writes;
                t.watch_events += c.watch_events;
            }
        }
        (totals, untracked)
    }

    /// How long the window covers now, in seconds (less than a minute after start).
    fn window_seconds(&self, now_ms: u64) -> f64 {
        let start = self.buckets.front().map_or(now_ms, |b| b.id * BUCKET_MS);
        ((now_ms.saturating_sub(start)) as f64 / 1000.0).max(1.0)
    }

    /// The `hot_paths` command: the top `n` paths by reads, by writes and by watch fan-out.
    pub(crate) fn hot_paths(&mut self, n: usize, now_ms: u64) -> Value {
        let window = self.window_seconds(now_ms);
        let (totals, untracked) = self.path_totals(now_ms);
        let top = |key: fn(&PathCounts) -> u64| -> Vec<Value> {
            let mut v: Vec<(&&str, &PathCounts)> =
                totals.iter().filter(|(_, c)| key(c) > 0).collect();
            v.sort_by_key(|(p, c)| (Reverse(key(c)), **p));
            v.into_iter()
                .take(n)
                .map(|(p, c)| {
                    json!({
                        "path": p,
                        "reads": c.reads,
                        "writes": c.writes,
                        "watch_events": c.watch_events,
                        "per_second": (key(c) as f64 / window * 10.0).round() / 10.0,
                    })
                })
                .collect()
        };
        json!({
            "window_seconds": window,
            "by_reads": top(|c| c.reads),
            "by_writes": top(|c| c.writes),
            "by_watch_fanout": top(|c| c.watch_events),
            "untracked_ops": untracked,
        })
    }

    /// The `session_rates` command: the top `n` sessions by operations in the window.
    pub(crate) fn session_rates(&mut self, n: usize, now_ms: u64) -> Value {
        let window = self.window_seconds(now_ms);
        self.bucket(now_ms);
        let mut totals: HashMap<i64, SessionCounts> = HashMap::new();
        for b in &self.buckets {
            for (s, c) in &b.sessions {
                let t = totals.entry(*s).or_default();
                t.reads += c.reads;
                t.writes += c.writes;
            }
        }
        let mut v: Vec<(i64, SessionCounts)> = totals.into_iter().collect();
        v.sort_by_key(|(s, c)| (Reverse(c.reads + c.writes), *s));
        let rate = |x: u64| (x as f64 / window * 10.0).round() / 10.0;
        json!({
            "window_seconds": window,
            "sessions": v.into_iter().take(n).map(|(s, c)| json!({
                "session_id": format!("0x{s:x}"),
                "reads": c.reads,
                "writes": c.writes,
                "reads_per_second": rate(c.reads),
                "writes_per_second": rate(c.writes),
                "ops_per_second": rate(c.reads + c.writes),
            })).collect::<Vec<_>>(),
        })
    }

    /// Heap bytes of the window's maps (see `zk_tree::memory`).
    pub(crate) fn memory_bytes(&self) -> u64 {
        use zk_tree::memory::{hash_map_bytes, heap_bytes};
        self.buckets
            .iter()
            .map(|b| {
                hash_map_bytes(&b.paths)
                    + hash_map_bytes(&b.sessions)
                    + b.paths.keys().map(|p| heap_bytes(p.len())).sum::<u64>()
            })
            .sum()
    }
}

/// A histogram as JSON: count, sum, max, a few quantiles and the buckets.
pub(crate) fn histogram_json(h: &Histogram) -> Value {
    json!({
        "count": h.count(),
        "sum_ms": h.sum_us as f64 / 1000.0,
        "max_ms": h.max_us as f64 / 1000.0,
        "p50_ms": h.quantile_us(0.5) as f64 / 1000.0,
        "p99_ms": h.quantile_us(0.99) as f64 / 1000.0,
        "buckets": h.cumulative().into_iter().map(|(le, c)| {
            let le = if le.is_finite() { json!(le) } else { json!("+Inf") };
            json!({"le_seconds": le, "count": c})
        }).collect::<Vec<_>>(),
    })
}

/// A histogram as Prometheus text (`name_bucket{le=..}`, `name_sum`, `name_count`).
pub(crate) fn histogram_prometheus(name: &str, h: &Histogram, out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (le, c) in h.cumulative() {
        let le = if le.is_finite() {
            le.to_string()
        } else {
            "+Inf".to_owned()
        };
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {c}");
    }
    let _ = writeln!(out, "{name}_sum {}", h.sum_us as f64 / 1e6);
    let _ = writeln!(out, "{name}_count {}", h.count());
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_proto::{DeleteTxn, SetDataTxn};

    fn set(path: &str) -> TxnBody {
        TxnBody::SetData(SetDataTxn {
            path: path.into(),
            data: None,
            version: 0,
        })
    }

    #[test]
    fn hot_paths_over_a_sliding_window() {
        let mut i = Introspection::default();
        for _ in 0..5 {
            i.read(Some("/hot"), Some(1), 1_000);
        }
        i.read(Some("/cold"), Some(2), 1_000);
        i.write(2, &set("/w"), 2_000);
        i.write(
            2,
            &TxnBody::Multi(vec![
                (5, set("/w")),
                (2, TxnBody::Delete(DeleteTxn { path: "/d".into() })),
            ]),
            2_000,
        );
        for _ in 0..3 {
            i.watch_event("/w", 2_000);
        }
        let v = i.hot_paths(1, 9_000);
        assert_eq!(v["by_reads"][0]["path"], "/hot");
        assert_eq!(v["by_reads"][0]["reads"], 5);
        assert_eq!(v["by_reads"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["by_writes"][0]["path"], "/w");
        assert_eq!(v["by_writes"][0]["writes"], 2);
        assert_eq!(v["by_watch_fanout"][0]["watch_events"], 3);
        let s = i.session_rates(10, 9_000);
        assert_eq!(s["sessions"][0]["session_id"], "0x1");
        assert_eq!(s["sessions"][0]["reads"], 5);
        assert_eq!(s["sessions"][1]["writes"], 2, "a multi is one write");
        // Sixty seconds later the first bucket has left the window.
        i.read(Some("/late"), None, 61_000);
        let v = i.hot_paths(5, 61_000);
        assert_eq!(v["by_reads"].as_array().map(Vec::len), Some(1), "{v}");
        assert_eq!(v["by_reads"][0]["path"], "/late");
        assert!(i.memory_bytes() > 0);
    }

    #[test]
    fn a_full_bucket_forgets_its_least_used_paths_and_keeps_the_hot_ones() {
        let mut i = Introspection::default();
        for _ in 0..50 {
            i.read(Some("/early-hot"), None, 0);
        }
        // Far more distinct paths than a bucket holds, each read once.
        for n in 0..3 * PATHS_PER_BUCKET {
            i.read(Some(&format!("/p{n}")), None, 0);
        }
        // A path that turns hot only now still gets a place.
        for _ in 0..20 {
            i.read(Some("/late-hot"), None, 0);
        }
        let b = i.buckets.back().map_or(0, |b| b.paths.len());
        assert!(b <= PATHS_PER_BUCKET, "{b} paths held");
        let v = i.hot_paths(2, 0);
        assert_eq!(v["by_reads"][0]["path"], "/early-hot");
        assert_eq!(v["by_reads"][0]["reads"], 50);
        assert_eq!(v["by_reads"][1]["path"], "/late-hot");
        assert_eq!(v["by_reads"][1]["reads"], 20);
        // Every read is counted: per path, or as untracked once its path was forgotten.
        let (totals, untracked) = i.path_totals(0);
        let tracked: u64 = totals.values().map(|c| c.reads).sum();
        assert_eq!(tracked + untracked, 50 + 3 * PATHS_PER_BUCKET as u64 + 20);
        assert!(untracked >= 2 * PATHS_PER_BUCKET as u64, "{untracked}");
    }

    #[test]
    fn histograms_render_for_prometheus() {
        let mut h = Histogram::default();
        h.record(std::time::Duration::from_millis(3));
        let mut text = String::new();
        histogram_prometheus("zkd_fsync_seconds", &h, &mut text);
        assert!(text.contains("# TYPE zkd_fsync_seconds histogram\n"));
        assert!(
            text.contains("zkd_fsync_seconds_bucket{le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("zkd_fsync_seconds_bucket{le=\"0.0025\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("zkd_fsync_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("zkd_fsync_seconds_count 1\n"));
        assert_eq!(histogram_json(&h)["p50_ms"], 3.0);
    }
}
