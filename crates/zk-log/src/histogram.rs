//! Latency histograms with fixed buckets, for fsync and snapshot timings (and any other
//! duration an operator wants as a distribution rather than a last value). Fixed buckets
//! keep recording allocation-free and make two servers' histograms comparable; they are
//! exported as Prometheus histograms.

use std::time::Duration;

/// Bucket upper bounds in microseconds (the last bucket is unbounded: `+Inf`).
pub const BOUNDS_US: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Counts of durations per bucket, their sum and the largest.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Histogram {
    /// `counts[i]` durations fell at or below `BOUNDS_US[i]` (and above the one before);
    /// the last entry counts those above every bound.
    pub counts: [u64; BOUNDS_US.len() + 1],
    pub sum_us: u64,
    pub max_us: u64,
}

impl Histogram {
    /// Adds one duration.
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|b| *b < us);
        self.counts[i] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
        self.max_us = self.max_us.max(us);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Cumulative counts at each bound in seconds, then `+Inf` (`f64::INFINITY`), as
    /// Prometheus histograms list them.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        let mut out = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            total += c;
            let le = BOUNDS_US.get(i).map_or(f64::INFINITY, |b| *b as f64 / 1e6);
            out.push((le, total));
        }
        out
    }

    /// The smallest bucket bound (µs) at or below which at least `q` (0..=1) of the
    /// durations fall; `max_us` when that is the unbounded bucket; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> u64 {
        bucket_quantile(&BOUNDS_US, &self.counts, self.max_us, q)
    }
}

/// The `q` (0..=1) quantile of values counted in fixed buckets: `counts[i]` values at or
/// below `bounds[i]` (and above the bound before), the last count above every bound. Gives
/// the bound of the bucket the quantile falls in, at most `max` (the largest value seen),
/// `max` for the unbounded bucket, and 0 when nothing was counted.
pub fn bucket_quantile(bounds: &[u64], counts: &[u64], max: u64, q: f64) -> u64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0;
    }
    let want = ((n as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= want {
            return bounds.get(i).map_or(max, |b| (*b).min(max));
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_sum_and_quantiles() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_us(0.5), 0);
        for us in [50, 100, 101, 2_000, 7_000_000, 20_000_000] {
            h.record(Duration::from_micros(us));
        }
        assert_eq!(h.count(), 6);
        assert_eq!(h.counts[0], 2, "50 and 100 are at or below 100");
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[4], 1, "2 ms is in the 2.5 ms bucket");
        assert_eq!(h.counts[15], 1, "7 s is in the 10 s bucket");
        assert_eq!(h.counts[16], 1, "20 s is above every bound");
        assert_eq!(h.sum_us, 50 + 100 + 101 + 2_000 + 7_000_000 + 20_000_000);
        assert_eq!(h.max_us, 20_000_000);
        let c = h.cumulative();
        assert_eq!(c[0], (0.0001, 2));
        assert_eq!(c.last().copied(), Some((f64::INFINITY, 6)));
        assert_eq!(h.quantile_us(0.5), 250);
        assert_eq!(h.quantile_us(1.0), 20_000_000);
    }
}
