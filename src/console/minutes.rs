//! Counts per minute over a fixed number of minutes: the console's one counting primitive (the
//! chart, the rules' counts, the responses), with the bounds the counting shares.

use crate::event::{DecisionOutcome, OfferResponseKind};
use std::collections::VecDeque;

/// Outcome counters per bucket (one per [`DecisionOutcome`]).
pub const OUTCOMES: usize = DecisionOutcome::ALL.len();
/// Response counters per bucket (one per [`OfferResponseKind`]).
pub const RESPONSES: usize = OfferResponseKind::ALL.len();
/// Most distinct rule ids counted one by one.
pub const MAX_RULES: usize = 1_000;
/// Where decisions of rule ids past [`MAX_RULES`] are counted.
pub const OTHER_RULES: &str = "(other rules)";
/// One minute, ms.
pub const MINUTE_MS: i64 = 60_000;
/// Minutes in a day: the rules' and responses' rings.
pub const DAY_MINUTES: usize = 24 * 60;

/// Counts per minute over a fixed number of minutes, newest last: `N` counters per minute (by
/// default one per decision outcome).
#[derive(Debug, Clone)]
pub struct Minutes<const N: usize = OUTCOMES> {
    len: usize,
    buckets: VecDeque<(i64, [u32; N])>,
}

impl Minutes {
    /// Counts one `outcome` at `at` (ms). Records older than the ring are not counted.
    pub fn add(&mut self, at: i64, outcome: DecisionOutcome) {
        self.count(at, outcome as usize);
    }

    /// Counts `n` decisions of `outcome` at `at` (ms): a roll-up record's
    /// ([`crate::output::DecisionAudit::decisions`]).
    pub fn add_n(&mut self, at: i64, outcome: DecisionOutcome, n: u64) {
        self.count_by(at, outcome as usize, u32::try_from(n).unwrap_or(u32::MAX));
    }
}

impl<const N: usize> Minutes<N> {
    /// A ring of `len` minutes.
    pub fn new(len: usize) -> Self {
        Self {
            len,
            buckets: VecDeque::with_capacity(len.min(DAY_MINUTES)),
        }
    }

    /// Adds one to counter `index` (< `N`) at `at` (ms). Records older than the ring are not
    /// counted.
    pub fn count(&mut self, at: i64, index: usize) {
        self.count_by(at, index, 1);
    }

    /// Adds `amount` to counter `index` (< `N`) at `at` (ms), saturating. Records older than the
    /// ring are not counted.
    pub fn count_by(&mut self, at: i64, index: usize, amount: u32) {
        let minute = at.div_euclid(MINUTE_MS);
        let newest = self.buckets.back().map_or(minute, |b| b.0.max(minute));
        if minute <= newest - self.len as i64 {
            return;
        }
        let i = match self.buckets.binary_search_by_key(&minute, |b| b.0) {
            Ok(i) => i,
            Err(i) => {
                self.buckets.insert(i, (minute, [0; N]));
                i
            }
        };
        let counter = &mut self.buckets[i].1[index];
        *counter = counter.saturating_add(amount);
        while self
            .buckets
            .front()
            .is_some_and(|b| b.0 <= newest - self.len as i64)
        {
            self.buckets.pop_front();
        }
    }

    /// Sums per counter over the minutes from `since` (ms) on.
    pub fn total_since(&self, since: i64) -> [u64; N] {
        let first = since.div_euclid(MINUTE_MS);
        let mut out = [0u64; N];
        for (_, counts) in self.buckets.iter().filter(|b| b.0 >= first) {
            for (o, c) in out.iter_mut().zip(counts) {
                *o += u64::from(*c);
            }
        }
        out
    }

    /// Every bucket: minute index (ms / 60,000) and counts, oldest first.
    pub fn buckets(&self) -> impl Iterator<Item = &(i64, [u32; N])> {
        self.buckets.iter()
    }
}
