//! Quotas (`Quotas`, `StatsTrack`): limits live in `/zookeeper/quota/<path>/zookeeper_limits`
//! and usage in `.../zookeeper_stats`, as `key=value` pairs separated by commas.

/// Where quota nodes live.
pub const QUOTA_ROOT: &str = "/zookeeper/quota";
/// The limits node name.
pub const LIMITS_NODE: &str = "zookeeper_limits";
/// The usage node name.
pub const STATS_NODE: &str = "zookeeper_stats";

/// Counts and limits for one quota root. -1 means "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatsTrack {
    pub count: i64,
    pub bytes: i64,
    pub count_hard_limit: i64,
    pub byte_hard_limit: i64,
}

impl Default for StatsTrack {
    fn default() -> Self {
        StatsTrack {
            count: -1,
            bytes: -1,
            count_hard_limit: -1,
            byte_hard_limit: -1,
        }
    }
}

impl StatsTrack {
    /// Parses `count=1,bytes=2[,countHardLimit=3,byteHardLimit=4]`; unknown keys and bad
    /// numbers are ignored, as ZooKeeper does.
    pub fn parse(s: &str) -> StatsTrack {
        let mut t = StatsTrack::default();
        for pair in s.split(',') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            let Ok(v) = v.trim().parse::<i64>() else {
                continue;
            };
            match k.trim() {
                "count" => t.count = v,
                "bytes" => t.bytes = v,
                "countHardLimit" => t.count_hard_limit = v,
                "byteHardLimit" => t.byte_hard_limit = v,
                _ => {}
            }
        }
        t
    }

    /// The usage form written to `zookeeper_stats`: `count=N,bytes=M`.
    pub fn usage_string(count: i64, bytes: i64) -> String {
        format!("count={count},bytes={bytes}")
    }

    /// The limits form written to `zookeeper_limits` (hard limits only when set).
    pub fn limits_string(&self) -> String {
        let mut s = format!("count={},bytes={}", self.count, self.bytes);
        if self.count_hard_limit != -1 || self.byte_hard_limit != -1 {
            s.push_str(&format!(
                ",countHardLimit={},byteHardLimit={}",
                self.count_hard_limit, self.byte_hard_limit
            ));
        }
        s
    }
}

/// The quota node path for a watched path: `/a/b` -> `/zookeeper/quota/a/b`.
pub fn quota_path(path: &str) -> String {
    if path == "/" {
        QUOTA_ROOT.to_owned()
    } else {
        format!("{QUOTA_ROOT}{path}")
    }
}

/// For a node under the quota tree named `zookeeper_limits` or `zookeeper_stats`, the path
/// it governs and which of the two it is.
pub fn governed_path(path: &str) -> Option<(String, &'static str)> {
    let rest = path.strip_prefix(QUOTA_ROOT)?;
    let (dir, name) = rest.rsplit_once('/')?;
    let kind = match name {
        LIMITS_NODE => LIMITS_NODE,
        STATS_NODE => STATS_NODE,
        _ => return None,
    };
    if dir.is_empty() {
        return None;
    }
    Some((dir.to_owned(), kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        let t = StatsTrack::parse("count=10,bytes=-1,countHardLimit=20,byteHardLimit=-1");
        assert_eq!(
            (t.count, t.bytes, t.count_hard_limit, t.byte_hard_limit),
            (10, -1, 20, -1)
        );
        assert_eq!(
            StatsTrack::parse("count=3,bytes=9").limits_string(),
            "count=3,bytes=9"
        );
        assert_eq!(
            t.limits_string(),
            "count=10,bytes=-1,countHardLimit=20,byteHardLimit=-1"
        );
        assert_eq!(StatsTrack::usage_string(2, 5), "count=2,bytes=5");
        assert_eq!(StatsTrack::parse("garbage"), StatsTrack::default());
    }

    #[test]
    fn paths() {
        assert_eq!(quota_path("/a/b"), "/zookeeper/quota/a/b");
        assert_eq!(
            governed_path("/zookeeper/quota/a/b/zookeeper_limits"),
            Some(("/a/b".to_owned(), LIMITS_NODE))
        );
        assert_eq!(governed_path("/zookeeper/quota/a/x"), None);
        assert_eq!(governed_path("/a/zookeeper_limits"), None);
    }
}
