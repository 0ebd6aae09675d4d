//! Small statistics over latency samples.

use std::time::Duration;

use serde::Serialize;

/// Median and p90 of a set of durations, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        Some(Summary {
            runs: ms.len(),
            median_ms: percentile(&ms, 50.0),
            p90_ms: percentile(&ms, 90.0),
            min_ms: ms[0],
            max_ms: ms[ms.len() - 1],
        })
    }
}

/// Linear interpolation between closest ranks of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0) * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// `a / b`, or `None` if either is missing or `b` is zero.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_interpolate() {
        let samples: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        let s = Summary::of(&samples).unwrap();
        assert!((s.median_ms - 5.5).abs() < 1e-9);
        assert!((s.p90_ms - 9.1).abs() < 1e-9);
        assert!(Summary::of(&[]).is_none());
    }
}
