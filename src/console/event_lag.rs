//! Event-time lag of the decisions, per minute of processing time, for the health page: how far
//! the decisions trail their events' own clock, kept apart from the counts (which go by when the
//! decisions were made).

use super::minutes::MINUTE_MS;
use std::collections::VecDeque;

/// Event-time lag of the decisions per minute of processing time (the last hour): how far the
/// decisions trail their events' own clock.
#[derive(Debug, Default)]
pub struct LagMinutes {
    /// (minute, sum of lags in ms, decisions, largest lag in ms), oldest first.
    buckets: VecDeque<(i64, i64, u64, i64)>,
}

impl LagMinutes {
    pub(super) fn add(&mut self, at: i64, lag_ms: i64) {
        let minute = at.div_euclid(MINUTE_MS);
        match self.buckets.iter_mut().rev().find(|b| b.0 == minute) {
            Some(b) => {
                b.1 = b.1.saturating_add(lag_ms);
                b.2 += 1;
                b.3 = b.3.max(lag_ms);
            }
            None => {
                let at = self.buckets.partition_point(|b| b.0 < minute);
                self.buckets.insert(at, (minute, lag_ms, 1, lag_ms));
            }
        }
        let newest = self.buckets.back().map_or(minute, |b| b.0);
        while self.buckets.front().is_some_and(|b| b.0 <= newest - 60) {
            self.buckets.pop_front();
        }
    }

    /// The mean and largest event-time lag (ms) of the decisions made since `since` (ms), if any.
    pub fn since(&self, since: i64) -> Option<(i64, i64)> {
        let first = since.div_euclid(MINUTE_MS);
        let (sum, n, max) = self
            .buckets
            .iter()
            .filter(|b| b.0 >= first)
            .fold((0i64, 0u64, i64::MIN), |(s, n, m), b| {
                (s.saturating_add(b.1), n + b.2, m.max(b.3))
            });
        (n > 0).then(|| (sum / n as i64, max))
    }
}
