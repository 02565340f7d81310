//! A latency histogram between two readings, and its quantiles.
//!
//! An instance's histogram is cumulative since the process started, so a quantile of it soon
//! says nothing about now. The difference of two readings, bucket by bucket, is the histogram
//! of what was observed between them; its quantile is the latency of that window.
//!
//! A quantile is interpolated linearly inside the bucket that holds it, as PromQL's
//! `histogram_quantile` does, so the page agrees with the Grafana dashboard: with bounds from
//! 1 ms in steps of √2, a bucket's upper bound alone could overstate by up to 41%. A quantile in
//! the `+Inf` bucket is only known to lie above the largest bound: [`Estimate::Above`].

use super::parse::Sample;

/// Cumulative counts by upper bound, as a Prometheus histogram exposes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// `(le, observations ≤ le)`, bounds ascending, the last one `+Inf`.
    buckets: Vec<(f64, f64)>,
}

/// A quantile as far as the buckets tell it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimate {
    /// Interpolated inside a bucket, seconds.
    Within(f64),
    /// Above the largest finite bound (seconds): the quantile fell in the `+Inf` bucket.
    Above(f64),
}

impl Histogram {
    /// The histogram `name` (its `<name>_bucket` samples) summed over its series, whatever
    /// labels they carry. `None` when it is missing or has no `+Inf` bucket.
    pub fn from_samples(samples: &[Sample], name: &str) -> Option<Self> {
        let bucket_name = format!("{name}_bucket");
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for s in samples.iter().filter(|s| s.name == bucket_name) {
            let le: f64 = match s.label("le")? {
                "+Inf" => f64::INFINITY,
                le => le.parse().ok()?,
            };
            match buckets.iter_mut().find(|(bound, _)| *bound == le) {
                Some((_, count)) => *count += s.value,
                None => buckets.push((le, s.value)),
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        match buckets.last() {
            Some((le, _)) if le.is_infinite() => Some(Self { buckets }),
            _ => None,
        }
    }

    /// Observations counted.
    pub fn count(&self) -> f64 {
        self.buckets.last().map_or(0.0, |(_, c)| *c)
    }

    /// What was observed between `earlier` and this reading. `None` when the two cannot be
    /// compared: different bounds, or a count that went down (the instance restarted).
    pub fn since(&self, earlier: &Histogram) -> Option<Histogram> {
        if self.buckets.len() != earlier.buckets.len() {
            return None;
        }
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (&(le, now), &(le_before, before)) in self.buckets.iter().zip(&earlier.buckets) {
            if le != le_before || now < before {
                return None;
            }
            buckets.push((le, now - before));
        }
        Some(Histogram { buckets })
    }

    /// This histogram and `other` together (two instances' windows). `None` when their bounds
    /// differ.
    pub fn plus(&self, other: &Histogram) -> Option<Histogram> {
        if self.buckets.len() != other.buckets.len() {
            return None;
        }
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for (&(le, a), &(le_other, b)) in self.buckets.iter().zip(&other.buckets) {
            if le != le_other {
                return None;
            }
            buckets.push((le, a + b));
        }
        Some(Histogram { buckets })
    }

    /// The `q` quantile (0 < q ≤ 1); `None` with no observations.
    pub fn quantile(&self, q: f64) -> Option<Estimate> {
        let total = self.count();
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let at = self.buckets.iter().position(|(_, c)| *c >= rank)?;
        let (upper, count) = self.buckets[at];
        let (lower, below) = match at {
            0 => (0.0, 0.0),
            _ => self.buckets[at - 1],
        };
        if upper.is_infinite() {
            return Some(Estimate::Above(lower));
        }
        let inside = count - below;
        if inside <= 0.0 {
            return Some(Estimate::Within(upper));
        }
        Some(Estimate::Within(
            lower + (upper - lower) * (rank - below) / inside,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(le: &str, value: f64) -> Sample {
        Sample {
            name: "lat_seconds_bucket".into(),
            labels: vec![("le".into(), le.into())],
            value,
        }
    }

    /// Bounds from 1 ms, doubling (any bounds work; `nbo_processing_latency_seconds` steps by √2).
    fn histogram(counts: &[f64]) -> Histogram {
        let mut samples: Vec<Sample> = counts
            .iter()
            .enumerate()
            .map(|(i, c)| bucket(&format!("{}", 0.001 * 2f64.powi(i as i32)), *c))
            .collect();
        samples.push(bucket("+Inf", *counts.last().unwrap()));
        Histogram::from_samples(&samples, "lat_seconds").unwrap()
    }

    /// `estimate` is `Within` `seconds`, but for float rounding.
    fn within(estimate: Option<Estimate>, seconds: f64) {
        match estimate {
            Some(Estimate::Within(s)) if (s - seconds).abs() < 1e-12 => {}
            other => panic!("{other:?}, expected Within({seconds})"),
        }
    }

    #[test]
    fn the_p99_of_a_window_comes_from_the_difference_of_two_readings() {
        // Since start: 10,000 fast observations (≤ 1 ms).
        let before = histogram(&[10_000.0, 10_000.0, 10_000.0, 10_000.0, 10_000.0, 10_000.0]);
        // Then 100 more: 50 in (2, 4] ms, 40 in (4, 8], 8 in (8, 16], 2 in (16, 32].
        let after = histogram(&[10_000.0, 10_000.0, 10_050.0, 10_090.0, 10_098.0, 10_100.0]);
        // Since start, the p99 is under 1 ms: the slow window is invisible in it.
        within(after.quantile(0.99), 0.001 * 9_999.0 / 10_000.0);
        let window = after.since(&before).unwrap();
        assert_eq!(window.count(), 100.0);
        // Rank 99 lies in (16, 32] ms, which holds 2: halfway through it.
        within(window.quantile(0.99), 0.024);
        // Rank 50 is the last observation of (2, 4] ms: its upper bound.
        within(window.quantile(0.5), 0.004);
    }

    #[test]
    fn an_empty_window_a_restart_and_the_inf_bucket() {
        let a = histogram(&[5.0, 5.0]);
        assert_eq!(a.since(&a).unwrap().quantile(0.99), None, "no events");
        let restarted = histogram(&[1.0, 1.0]);
        assert_eq!(restarted.since(&a), None, "counts went down");
        let other_bounds = histogram(&[5.0, 5.0, 5.0]);
        assert_eq!(other_bounds.since(&a), None);
        // Within the first bucket: interpolated from 0.
        within(histogram(&[4.0]).quantile(0.5), 0.0005);
        let slow = Histogram::from_samples(
            &[
                bucket("0.001", 1.0),
                bucket("0.002", 1.0),
                bucket("+Inf", 100.0),
            ],
            "lat_seconds",
        )
        .unwrap();
        assert_eq!(slow.quantile(0.99), Some(Estimate::Above(0.002)));
    }

    #[test]
    fn series_are_summed_and_a_missing_histogram_is_none() {
        let mut samples = vec![bucket("0.001", 1.0), bucket("+Inf", 2.0)];
        samples.push(Sample {
            labels: vec![("topic".into(), "b".into()), ("le".into(), "+Inf".into())],
            ..bucket("", 3.0)
        });
        samples.push(Sample {
            labels: vec![("topic".into(), "b".into()), ("le".into(), "0.001".into())],
            ..bucket("", 3.0)
        });
        let h = Histogram::from_samples(&samples, "lat_seconds").unwrap();
        assert_eq!(h.count(), 5.0);
        within(h.quantile(0.8), 0.001);
        assert_eq!(Histogram::from_samples(&samples, "other_seconds"), None);
        assert_eq!(
            Histogram::from_samples(&[bucket("0.001", 1.0)], "lat_seconds"),
            None,
            "no +Inf bucket"
        );
    }
}
