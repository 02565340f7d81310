//! Alert rules' quality on the console: per rule version, over the last day, 7 days and 30
//! days, the alerts raised, the cases closed, confirmed and false positives, the precision
//! (confirmed ÷ closed, duplicates left out) with its 95% Wilson interval, the amount prevented
//! and the time to close.
//!
//! [`feed`] reads the alerts topic and the alert-outcomes topic from `console.quality_days` back;
//! [`AlertQuality`] joins each closure with its alert by alert id and counts both per hour. Its
//! bounds: at most `console.keep_alert_ids` alert ids (the oldest forgotten first; a closure of a
//! forgotten alert is counted as unattributed), as many closures waiting for their alert (read
//! before it at start; at least [`MAX_PENDING`]), [`super::store::MAX_RULES`] rule versions, and an hour bucket per
//! version for `console.quality_days` days. A closure of an alert already closed counts nothing,
//! as in the stream (the first closure stands).

pub mod feed;
pub mod page;

use super::store::{MAX_RULES, OTHER_RULES};
use crate::event::AlertLabel;
use crate::learning::precision::Share;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// One hour, ms.
const HOUR_MS: i64 = 3_600_000;
/// Closures kept waiting for their alert, at least (at start the two topics are read side by
/// side, and the closures can run ahead of the alerts): the bound is the larger of this and
/// `console.keep_alert_ids`; past it the oldest is counted as unattributed.
pub const MAX_PENDING: usize = 10_000;
/// The upper bounds of the time-to-close buckets, hours (the last is open).
pub const TO_CLOSE_HOURS: [i64; 8] = [1, 4, 12, 24, 72, 168, 336, 720];

/// What one rule version came to over some hours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Alerts raised.
    pub alerts: u64,
    /// Cases closed, duplicates left out.
    pub closed: u64,
    /// Closed `CONFIRMED_RISK`.
    pub confirmed: u64,
    /// Closed `VALUABLE_ALERT`.
    pub valuable: u64,
    /// Closed `FALSE_POSITIVE`.
    pub false_positives: u64,
    /// Closed `DUPLICATE` (not in `closed`).
    pub duplicates: u64,
    /// Amounts prevented (`CONFIRMED_RISK`), minor units by currency.
    pub prevented: BTreeMap<String, i64>,
    /// Closed cases by time to close, per [`TO_CLOSE_HOURS`] bucket and one past the last.
    pub to_close: [u64; TO_CLOSE_HOURS.len() + 1],
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.alerts += other.alerts;
        self.closed += other.closed;
        self.confirmed += other.confirmed;
        self.valuable += other.valuable;
        self.false_positives += other.false_positives;
        self.duplicates += other.duplicates;
        for (currency, amount) in &other.prevented {
            *self.prevented.entry(currency.clone()).or_default() += amount;
        }
        for (a, b) in self.to_close.iter_mut().zip(&other.to_close) {
            *a += b;
        }
    }

    /// Confirmed ÷ closed with its 95% interval; `None` before a case is closed.
    pub fn precision(&self) -> Option<Share> {
        Share::of(self.confirmed, self.closed)
    }

    /// The bound, in hours, that half of the closed cases closed within (`None`: none closed,
    /// or half took longer than the last bound).
    pub fn median_to_close_hours(&self) -> Option<i64> {
        let total: u64 = self.to_close.iter().sum();
        let mut seen = 0;
        for (i, n) in self.to_close.iter().enumerate() {
            seen += n;
            if total > 0 && seen * 2 >= total {
                return TO_CLOSE_HOURS.get(i).copied();
            }
        }
        None
    }
}

/// An alert remembered for its closure.
#[derive(Debug, Clone, Copy)]
struct Raised {
    version: u32,
    at: i64,
    closed: bool,
}

/// A closure read before its alert.
#[derive(Debug, Clone)]
struct Waiting {
    label: AlertLabel,
    amount: Option<(i64, String)>,
    at: i64,
}

/// Every rule version's counts per hour; see the module documentation for the bounds.
#[derive(Debug)]
pub struct AlertQuality {
    hours: usize,
    keep_alert_ids: usize,
    versions: Vec<(Arc<str>, i32)>,
    version_index: HashMap<(Arc<str>, i32), u32>,
    hourly: Vec<VecDeque<(i64, Counts)>>,
    alerts: HashMap<Arc<str>, Raised>,
    order: VecDeque<Arc<str>>,
    pending: HashMap<Arc<str>, Vec<Waiting>>,
    pending_order: VecDeque<Arc<str>>,
    unattributed: u64,
}

impl AlertQuality {
    /// Counts over `days` days, remembering at most `keep_alert_ids` alert ids.
    pub fn new(days: u32, keep_alert_ids: usize) -> Self {
        Self {
            hours: days as usize * 24 + 1,
            keep_alert_ids: keep_alert_ids.max(1),
            versions: Vec::new(),
            version_index: HashMap::new(),
            hourly: Vec::new(),
            alerts: HashMap::new(),
            order: VecDeque::new(),
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            unattributed: 0,
        }
    }

    /// An alert raised by `rule_id` v`version` at `at` (ms), with its id. A redelivered alert
    /// is counted once.
    pub fn alert(&mut self, alert_id: &str, rule_id: &str, version: i32, at: i64) {
        if self.alerts.contains_key(alert_id) {
            return;
        }
        let v = self.version(rule_id, version);
        self.count(v, at, |c| c.alerts += 1);
        while self.order.len() >= self.keep_alert_ids {
            if let Some(old) = self.order.pop_front() {
                self.alerts.remove(&old);
            }
        }
        let id: Arc<str> = Arc::from(alert_id);
        self.alerts.insert(
            id.clone(),
            Raised {
                version: v,
                at,
                closed: false,
            },
        );
        self.order.push_back(id);
        // Its id stays in `pending_order` until evicted or compacted (see `wait`).
        for w in self.pending.remove(alert_id).unwrap_or_default() {
            self.close(alert_id, w.label, w.amount, w.at);
        }
    }

    /// The closure of alert `alert_id` as `label` at `at` (ms), with the amount at stake.
    pub fn close(
        &mut self,
        alert_id: &str,
        label: AlertLabel,
        amount: Option<(i64, String)>,
        at: i64,
    ) {
        let Some(raised) = self.alerts.get_mut(alert_id) else {
            self.wait(alert_id, Waiting { label, amount, at });
            return;
        };
        if raised.closed {
            return; // the first closure stands, as in the stream
        }
        raised.closed = true;
        let Raised {
            version,
            at: raised_at,
            ..
        } = *raised;
        let hours = (at - raised_at).max(0) / HOUR_MS;
        let bucket = TO_CLOSE_HOURS
            .iter()
            .position(|&b| hours < b)
            .unwrap_or(TO_CLOSE_HOURS.len());
        self.count(version, at, |c| {
            match label {
                AlertLabel::Duplicate => {
                    c.duplicates += 1;
                    return;
                }
                AlertLabel::ConfirmedRisk => c.confirmed += 1,
                AlertLabel::ValuableAlert => c.valuable += 1,
                AlertLabel::FalsePositive => c.false_positives += 1,
            }
            c.closed += 1;
            c.to_close[bucket] += 1;
            if let (AlertLabel::ConfirmedRisk, Some((minor, currency))) = (label, &amount) {
                *c.prevented.entry(currency.clone()).or_default() += minor;
            }
        });
    }

    fn wait(&mut self, alert_id: &str, w: Waiting) {
        if let Some(waiting) = self.pending.get_mut(alert_id) {
            waiting.push(w);
            return;
        }
        let bound = MAX_PENDING.max(self.keep_alert_ids);
        while self.pending.len() >= bound {
            let Some(old) = self.pending_order.pop_front() else {
                break;
            };
            // Ids whose alert came meanwhile are no longer waiting.
            self.unattributed += self.pending.remove(&old).map_or(0, |w| w.len() as u64);
        }
        // Ids of closures that found their alert pile up in the order: dropped now and then, at
        // a cost spread over the waits that piled them up.
        if self.pending_order.len() >= 2 * bound {
            let pending = &self.pending;
            self.pending_order.retain(|id| pending.contains_key(id));
        }
        let id: Arc<str> = Arc::from(alert_id);
        self.pending.insert(id.clone(), vec![w]);
        self.pending_order.push_back(id);
    }

    /// The index of a rule version (those past [`MAX_RULES`] share [`OTHER_RULES`]).
    fn version(&mut self, rule_id: &str, version: i32) -> u32 {
        let key = (Arc::<str>::from(rule_id), version);
        if let Some(&i) = self.version_index.get(&key) {
            return i;
        }
        let key = if self.versions.len() < MAX_RULES {
            key
        } else {
            (Arc::from(OTHER_RULES), 0)
        };
        if let Some(&i) = self.version_index.get(&key) {
            return i;
        }
        let i = self.versions.len() as u32;
        self.versions.push(key.clone());
        self.version_index.insert(key, i);
        self.hourly.push(VecDeque::new());
        i
    }

    /// Applies `change` to version `v`'s hour of `at`; hours older than the ring are dropped.
    fn count(&mut self, v: u32, at: i64, change: impl FnOnce(&mut Counts)) {
        let ring = &mut self.hourly[v as usize];
        let hour = at.div_euclid(HOUR_MS);
        let newest = ring.back().map_or(hour, |b| b.0.max(hour));
        if hour <= newest - self.hours as i64 {
            return;
        }
        let i = match ring.binary_search_by_key(&hour, |b| b.0) {
            Ok(i) => i,
            Err(i) => {
                ring.insert(i, (hour, Counts::default()));
                i
            }
        };
        change(&mut ring[i].1);
        while ring
            .front()
            .is_some_and(|b| b.0 <= newest - self.hours as i64)
        {
            ring.pop_front();
        }
    }

    /// Rule `rule_id` v`version`'s counts from `since` (ms) on, to the hour.
    pub fn since(&self, rule_id: &str, version: i32, since: i64) -> Counts {
        let mut out = Counts::default();
        let Some(&v) = self
            .version_index
            .get(&(Arc::<str>::from(rule_id), version))
        else {
            return out;
        };
        let first = since.div_euclid(HOUR_MS);
        for (_, c) in self.hourly[v as usize].iter().filter(|b| b.0 >= first) {
            out.add(c);
        }
        out
    }

    /// Closures of alerts the console does not know (raised before what it read or remembers),
    /// counting those still waiting for their alert.
    pub fn unattributed(&self) -> u64 {
        self.unattributed + self.pending.values().map(|w| w.len() as u64).sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_800_000_000_000;
    const DAY: i64 = 24 * HOUR_MS;

    #[test]
    fn closures_count_for_their_alerts_version_by_the_hour_they_came() {
        let mut q = AlertQuality::new(30, 100);
        // Ten days ago: four alerts of v2; three are closed two days later.
        for n in 0..4 {
            q.alert(&format!("a{n}"), "alert-x", 2, T - 10 * DAY);
        }
        let eur = |m: i64| Some((m, "EUR".to_string()));
        q.close("a0", AlertLabel::ConfirmedRisk, eur(50_000), T - 8 * DAY);
        q.close("a1", AlertLabel::FalsePositive, None, T - 8 * DAY);
        q.close("a2", AlertLabel::Duplicate, None, T - 8 * DAY);
        // Resent, and relabelled: the first closure stands.
        q.close("a0", AlertLabel::FalsePositive, None, T - 7 * DAY);
        // A closure read before its alert (a replay at start) waits for it.
        q.close("b0", AlertLabel::ConfirmedRisk, eur(1_000), T - HOUR_MS);
        q.alert("b0", "alert-x", 2, T - 3 * HOUR_MS);
        // Another version's alert.
        q.alert("c0", "alert-x", 3, T - HOUR_MS);

        let week = q.since("alert-x", 2, T - 7 * DAY);
        assert_eq!((week.alerts, week.closed, week.confirmed), (1, 1, 1));
        let month = q.since("alert-x", 2, T - 30 * DAY);
        assert_eq!(month.alerts, 5);
        assert_eq!(
            (month.closed, month.confirmed, month.false_positives),
            (3, 2, 1)
        );
        assert_eq!(month.duplicates, 1);
        assert_eq!(month.prevented["EUR"], 51_000);
        assert_eq!(month.precision().unwrap().value, 2.0 / 3.0);
        // Two closed after 48 hours (the 72 h bucket), one after two hours (the 4 h bucket).
        assert_eq!(month.median_to_close_hours(), Some(72));
        assert_eq!(q.since("alert-x", 3, T - DAY).alerts, 1);
        assert_eq!(q.since("alert-y", 1, T - DAY), Counts::default());
        assert_eq!(q.unattributed(), 0);
    }

    #[test]
    fn the_bounds_hold_and_what_falls_out_is_counted() {
        let mut q = AlertQuality::new(1, 2);
        for n in 0..3 {
            q.alert(&format!("a{n}"), "alert-x", 1, T + n);
        }
        // a0 was forgotten: its closure waits, and is unattributed.
        q.close("a0", AlertLabel::ConfirmedRisk, None, T + 10);
        assert_eq!(q.unattributed(), 1);
        q.close("a2", AlertLabel::ConfirmedRisk, None, T + 10);
        assert_eq!(q.since("alert-x", 1, T - DAY).confirmed, 1);
        // Hours older than the ring are not counted.
        q.alert("old", "alert-x", 1, T - 3 * DAY);
        assert_eq!(q.since("alert-x", 1, T - 30 * DAY).alerts, 3);
    }
}
