//! The arithmetic of the figures: latency percentiles from raw samples,
//! rates, and the `mailboxd / baseline` ratios of the table.

/// Latency percentiles of one run, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
}

/// The nearest-rank percentile `p` (0 < p <= 1) of `sorted`, which must be
/// sorted ascending; `None` when there are no samples.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Sorts round-trip samples (nanoseconds) and takes p50, p99 and p99.9.
pub fn latency(samples: &mut [u32]) -> Option<Latency> {
    samples.sort_unstable();
    let micros = |p| percentile(samples, p).map(|ns| f64::from(ns) / 1000.0);
    Some(Latency {
        p50_us: micros(0.50)?,
        p99_us: micros(0.99)?,
        p999_us: micros(0.999)?,
    })
}

/// `count` per second over `seconds`; 0 when no time passed.
pub fn rate(count: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count / seconds
    } else {
        0.0
    }
}

/// `mailboxd / baseline`, when both exist and the baseline is not zero.
pub fn ratio(mailboxd: Option<f64>, baseline: Option<f64>) -> Option<f64> {
    let (m, b) = (mailboxd?, baseline?);
    (b != 0.0 && m.is_finite() && b.is_finite()).then(|| m / b)
}

/// Largest over smallest of `counts` (1.0 is perfectly fair); `None` when a
/// count is zero or there are none.
pub fn fairness(counts: &[u64]) -> Option<f64> {
    let max = *counts.iter().max()?;
    let min = *counts.iter().min()?;
    (min > 0).then(|| max as f64 / min as f64)
}

/// Smallest, median and largest of repeated measurements of one figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The smallest sample.
    pub min: f64,
    /// The median (the mean of the middle two for an even count).
    pub median: f64,
    /// The largest sample.
    pub max: f64,
    /// How many samples.
    pub count: usize,
}

/// The spread of `values`; `None` when there are none (NaNs are dropped).
pub fn spread(values: &[f64]) -> Option<Spread> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    let count = sorted.len();
    let median = match count {
        0 => return None,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    Some(Spread {
        min: sorted[0],
        median,
        max: sorted[count - 1],
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<u32> = (1..=1000).collect();
        assert_eq!(percentile(&samples, 0.5), Some(500));
        assert_eq!(percentile(&samples, 0.99), Some(990));
        assert_eq!(percentile(&samples, 0.999), Some(999));
        assert_eq!(percentile(&samples, 1.0), Some(1000));
        assert_eq!(percentile(&[7], 0.999), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[1, 2], 0.0), Some(1));
    }

    #[test]
    fn latency_sorts_and_converts_to_microseconds() {
        let mut samples: Vec<u32> = (1..=100).rev().map(|us| us * 1000).collect();
        let latency = latency(&mut samples).unwrap();
        assert_eq!(latency.p50_us, 50.0);
        assert_eq!(latency.p99_us, 99.0);
        assert_eq!(latency.p999_us, 100.0);
        assert!(super::latency(&mut []).is_none());
    }

    #[test]
    fn ratios_and_rates() {
        assert_eq!(ratio(Some(3.0), Some(1.5)), Some(2.0));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
        assert_eq!(rate(1000.0, 0.5), 2000.0);
        assert_eq!(rate(1000.0, 0.0), 0.0);
    }

    #[test]
    fn spreads_take_the_middle() {
        let odd = spread(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (odd.min, odd.median, odd.max, odd.count),
            (1.0, 2.0, 3.0, 3)
        );
        let even = spread(&[4.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((even.min, even.median, even.max), (1.0, 3.0, 10.0));
        assert_eq!(spread(&[5.0]).unwrap().median, 5.0);
        assert!(spread(&[]).is_none());
        assert!(spread(&[f64::NAN]).is_none());
    }

    #[test]
    fn fairness_is_max_over_min() {
        assert_eq!(fairness(&[100, 110, 105, 100]), Some(1.1));
        assert_eq!(fairness(&[5, 0]), None);
        assert_eq!(fairness(&[]), None);
    }
}
