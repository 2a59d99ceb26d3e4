//! Latency histograms with OpenTelemetry's default explicit bucket boundaries for durations.
//!
//! The boundaries are those the semantic conventions recommend for `http.server.request.
//! duration` and the other `*.duration` metrics (OpenTelemetry semantic conventions, "HTTP
//! metrics", `ExplicitBucketBoundaries`), in seconds. They are kept here in nanoseconds, the
//! unit of `latency_ns`, so bucketing compares integers and a latency exactly on a boundary
//! always lands in that boundary's bucket (Prometheus `le`: less than or equal).

/// Upper bounds of the buckets, ns: 0.005 s ... 10 s. A last, implicit bucket is `+Inf`.
pub const BOUNDS_NS: [u64; 14] = [
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    75_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    750_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    7_500_000_000,
    10_000_000_000,
];

/// The same bounds as Prometheus `le` label values (seconds), then `+Inf`.
pub const LE: [&str; 15] = [
    "0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5",
    "7.5", "10", "+Inf",
];

/// A cumulative histogram of durations: how many fell in each bucket, their count and sum.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); index 14 is `+Inf`.
    buckets: [u64; 15],
    count: u64,
    /// Sum of the observations, ns (u128: no overflow in the life of a process).
    sum_ns: u128,
}

impl Histogram {
    /// Adds one duration.
    pub fn observe(&mut self, ns: u64) {
        self.buckets[bucket_index(ns)] += 1;
        self.count += 1;
        self.sum_ns += u128::from(ns);
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (b, o) in self.buckets.iter_mut().zip(other.buckets) {
            *b += o;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the observations, ns.
    pub fn sum_ns(&self) -> u128 {
        self.sum_ns
    }

    /// Sum of the observations, seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// Observations in each bucket alone (not cumulative), `+Inf` last.
    pub fn buckets(&self) -> &[u64; 15] {
        &self.buckets
    }

    /// Observations less than or equal to each bound, `+Inf` last (Prometheus `_bucket`).
    pub fn cumulative(&self) -> [u64; 15] {
        let mut out = [0; 15];
        let mut acc = 0;
        for (o, b) in out.iter_mut().zip(self.buckets) {
            acc += b;
            *o = acc;
        }
        out
    }
}

/// The bucket a duration falls in: the first whose bound is at least `ns`, else `+Inf` (14).
pub fn bucket_index(ns: u64) -> usize {
    BOUNDS_NS.partition_point(|&b| b < ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_labels_agree() {
        for (b, le) in BOUNDS_NS.iter().zip(LE) {
            let secs: f64 = le.parse().unwrap();
            assert_eq!((secs * 1e9).round() as u64, *b, "{le}");
        }
        assert_eq!(LE[14], "+Inf");
    }

    #[test]
    fn a_bound_belongs_to_its_own_bucket() {
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(5_000_000), 0);
        assert_eq!(bucket_index(5_000_001), 1);
        assert_eq!(bucket_index(10_000_000_000), 13);
        assert_eq!(bucket_index(10_000_000_001), 14);
        assert_eq!(bucket_index(u64::MAX), 14);
    }
}
