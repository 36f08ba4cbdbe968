//! A histogram of fixed buckets kept in atomics: observing is two relaxed
//! `fetch_add`s and a binary search, no lock (prometheus-client's own
//! `Histogram` takes a lock per observation, too much for every request).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Request and fsync latencies: 50 µs to 10 s, 1-2.5-5 per decade.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

/// Records made durable by one fsync (group commit).
pub const RECORD_COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 2_000.0, 5_000.0, 10_000.0,
    50_000.0, 100_000.0,
];

pub struct AtomicHistogram {
    /// Upper bounds (inclusive, as Prometheus' `le`), ascending.
    bounds: &'static [f64],
    /// One count per bound, then the +Inf bucket; not cumulative.
    buckets: Box<[AtomicU64]>,
    /// Sum of observations, in units of `scale` (nanoseconds for durations).
    sum: AtomicU64,
    scale: f64,
}

/// A histogram read at scrape time: `buckets` are (upper bound, count in
/// that bucket alone), the last one +Inf; `count` is their sum, so the
/// rendered `+Inf` bucket always equals `_count`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl AtomicHistogram {
    /// `scale` converts an observed integer into the histogram's unit.
    pub fn new(bounds: &'static [f64], scale: f64) -> AtomicHistogram {
        AtomicHistogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            scale,
        }
    }

    /// Durations, observed in nanoseconds and exposed in seconds.
    pub fn seconds() -> AtomicHistogram {
        AtomicHistogram::new(DURATION_BUCKETS_SECONDS, 1e-9)
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observes `units` (of `scale`).
    pub fn observe(&self, units: u64) {
        let value = units as f64 * self.scale;
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(units, Ordering::Relaxed);
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.load(Ordering::Relaxed) == 0)
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut count = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            count += n;
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), n));
        }
        HistogramSnapshot {
            sum: self.sum.load(Ordering::Relaxed) as f64 * self.scale,
            count,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_whose_bound_they_do_not_exceed() {
        let h = AtomicHistogram::new(&[1.0, 10.0], 1.0);
        for v in [0, 1, 2, 10, 11, 1000] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(
            s.buckets,
            vec![(1.0, 2), (10.0, 2), (f64::INFINITY, 2)],
            "le is inclusive"
        );
        assert_eq!(s.count, 6);
        assert_eq!(s.sum, 1024.0);
    }

    #[test]
    fn durations_are_seconds() {
        let h = AtomicHistogram::seconds();
        h.observe_duration(Duration::from_micros(70));
        h.observe_duration(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.buckets[1], (0.0001, 1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((s.sum - 60.00007).abs() < 1e-9);
    }
}
