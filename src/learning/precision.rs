//! A share with its 95% interval: an alert rule's precision (confirmed ÷ closed), a rule's
//! recall (fraud caught ÷ fraud labelled).
//!
//! The interval is Wilson's score interval (1927): with `p̂ = k / n` and `z = 1.96`,
//! `(p̂ + z²/2n ± z·√(p̂(1 − p̂)/n + z²/4n²)) / (1 + z²/n)`. Unlike the Wald interval
//! `p̂ ± z·√(p̂(1 − p̂)/n)` it stays inside [0, 1] and keeps its width at 0 of 20 or 20 of 20,
//! which is where a new rule's first closed cases sit.

use serde::{Deserialize, Serialize};

/// The normal quantile of a two-sided 95% interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// `hits` out of `trials`, with its 95% Wilson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// The count that succeeded (alerts confirmed, frauds caught).
    pub hits: u64,
    /// The count it is out of (alerts closed, frauds labelled).
    pub trials: u64,
    /// `hits / trials`.
    pub value: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

impl Share {
    /// `hits` of `trials` (`hits` at most `trials`); `None` when there are no trials.
    pub fn of(hits: u64, trials: u64) -> Option<Self> {
        if trials == 0 {
            return None;
        }
        let hits = hits.min(trials);
        let n = trials as f64;
        let p = hits as f64 / n;
        let z2 = Z_95 * Z_95;
        let denominator = 1.0 + z2 / n;
        let center = (p + z2 / (2.0 * n)) / denominator;
        let half = Z_95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
        Some(Self {
            hits,
            trials,
            value: p,
            low: (center - half).max(0.0),
            high: (center + half).min(1.0),
        })
    }
}

impl std::fmt::Display for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} (95% {:.3}..{:.3}, {} of {})",
            self.value, self.low, self.high, self.hits, self.trials
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn wilson_intervals_match_the_published_values() {
        // Newcombe (1998), Table I: 81 of 263, Wilson 0.2553..0.3662.
        let s = Share::of(81, 263).unwrap();
        assert!(close(s.low, 0.2553) && close(s.high, 0.3662), "{s}");
        // 15 of 148: 0.0624..0.1605.
        let s = Share::of(15, 148).unwrap();
        assert!(close(s.low, 0.0624) && close(s.high, 0.1605), "{s}");
        // 0 of 20 keeps a width: 0..0.1611.
        let s = Share::of(0, 20).unwrap();
        assert!(s.low == 0.0 && close(s.high, 0.1611), "{s}");
        assert_eq!(Share::of(3, 0), None);
        // What deploy/prometheus/alert_quality.yml records for 24 of 96 (its promtool test).
        let s = Share::of(24, 96).unwrap();
        assert!(close(s.low, 0.1741) && close(s.high, 0.3451), "{s}");
    }
}
