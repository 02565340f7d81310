//! Decisions per minute broken down the way the live view filters them, so the chart follows
//! the filters.
//!
//! An audit record names its rule but not the product, channel or severity; those come from
//! the rule (an offer rule has one product, an alert rule one severity), looked up in the rule
//! set the console reads when the chart is drawn. A channel belongs to an offer alone (a
//! suppressed decision was never sent anywhere), so with a channel filter the chart counts the
//! offers sent through it, from the offers topic.
//!
//! Bounds: per rule id a ring of `console.chart_hours` × 60 minutes, and per rule id and
//! channel a ring of one counter per minute, for at most [`MAX_RULES`] rule ids (those past it
//! are counted under [`OTHER_RULES`]).

use super::minutes::{Minutes, MAX_RULES, OTHER_RULES, OUTCOMES};
use super::rows::Filter;
use crate::event::DecisionOutcome;
use std::collections::HashMap;
use std::sync::Arc;

/// Decisions per minute: minute index (ms / 60,000) and counts per outcome, oldest first.
pub type Series = Vec<(i64, [u64; OUTCOMES])>;

/// What the chart needs to know of a rule to filter it: its product (offer rules) and severity
/// (alert rules), as their symbols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleFacts {
    /// The offer's product family.
    pub product: Option<&'static str>,
    /// The alert's severity.
    pub severity: Option<&'static str>,
}

/// Per-minute counts by rule, and offers by rule and channel.
#[derive(Debug)]
pub struct Facets {
    minutes: usize,
    by_rule: HashMap<Arc<str>, Minutes>,
    by_channel: HashMap<(Arc<str>, &'static str), Minutes<1>>,
}

impl Facets {
    /// Empty, keeping `minutes` minutes of counts.
    pub fn new(minutes: usize) -> Self {
        Self {
            minutes,
            by_rule: HashMap::new(),
            by_channel: HashMap::new(),
        }
    }

    fn key<V>(map: &HashMap<Arc<str>, V>, rule: &str) -> Arc<str> {
        match map.get_key_value(rule) {
            Some((k, _)) => k.clone(),
            None if map.len() < MAX_RULES => Arc::from(rule),
            None => Arc::from(OTHER_RULES),
        }
    }

    /// Counts a decision of rule `rule` made at `at` (ms).
    pub fn decision(&mut self, rule: &str, outcome: DecisionOutcome, at: i64) {
        self.decisions(rule, outcome, at, 1);
    }

    /// Counts `n` decisions of rule `rule` made at `at` (ms): a roll-up record's.
    pub fn decisions(&mut self, rule: &str, outcome: DecisionOutcome, at: i64, n: u64) {
        let key = Self::key(&self.by_rule, rule);
        let minutes = self.minutes;
        self.by_rule
            .entry(key)
            .or_insert_with(|| Minutes::new(minutes))
            .add_n(at, outcome, n);
    }

    /// Counts an offer of rule `rule` sent through `channel`, produced at `at` (ms).
    pub fn offer(&mut self, rule: &str, channel: &'static str, at: i64) {
        // Rule ids are bounded by the decisions' map: an offer's rule has decisions too.
        let rule = Self::key(&self.by_rule, rule);
        let minutes = self.minutes;
        self.by_channel
            .entry((rule, channel))
            .or_insert_with(|| Minutes::new(minutes))
            .count(at, 0);
    }

    /// The decisions per minute that pass `filter`; `facts` tells each rule's product and
    /// severity (a rule it does not know passes only filters that name neither).
    pub fn select(&self, filter: &Filter, facts: &dyn Fn(&str) -> RuleFacts) -> Series {
        let passes = |rule: &str| {
            if !filter.rule.is_empty() && filter.rule != rule {
                return false;
            }
            let f = facts(rule);
            let is = |want: &str, have: Option<&str>| want.is_empty() || have == Some(want);
            is(&filter.product, f.product) && is(&filter.severity, f.severity)
        };
        let mut sum: std::collections::BTreeMap<i64, [u64; OUTCOMES]> = Default::default();
        if filter.channel.is_empty() {
            for (_, m) in self.by_rule.iter().filter(|(r, _)| passes(r)) {
                for (minute, counts) in m.buckets() {
                    let to = sum.entry(*minute).or_insert([0; OUTCOMES]);
                    for (t, c) in to.iter_mut().zip(counts) {
                        *t += u64::from(*c);
                    }
                }
            }
        } else {
            let offered = DecisionOutcome::Offered as usize;
            let matching = self
                .by_channel
                .iter()
                .filter(|((r, c), _)| *c == filter.channel && passes(r));
            for (_, m) in matching {
                for (minute, [count]) in m.buckets() {
                    sum.entry(*minute).or_insert([0; OUTCOMES])[offered] += u64::from(*count);
                }
            }
        }
        sum.into_iter().collect()
    }
}

/// Every minute of `minutes` as a [`Series`].
pub fn series(minutes: &Minutes) -> Series {
    minutes
        .buckets()
        .map(|(minute, counts)| (*minute, counts.map(u64::from)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use DecisionOutcome as O;

    fn facts(rule: &str) -> RuleFacts {
        match rule {
            "card" => RuleFacts {
                product: Some("CREDIT_CARD"),
                severity: None,
            },
            "velocity" => RuleFacts {
                product: None,
                severity: Some("HIGH"),
            },
            _ => RuleFacts::default(),
        }
    }

    fn total(s: &Series, o: O) -> u64 {
        s.iter().map(|(_, c)| c[o as usize]).sum()
    }

    #[test]
    fn the_chart_counts_what_the_filter_selects() {
        let mut f = Facets::new(60);
        f.decision("card", O::Offered, 60_000);
        f.decision("card", O::SuppressedCooldown, 60_000);
        f.decision("velocity", O::Alerted, 120_000);
        f.offer("card", "EMAIL", 60_000);
        let all = f.select(&Filter::default(), &facts);
        assert_eq!(all.len(), 2, "two minutes");
        assert_eq!(total(&all, O::Offered) + total(&all, O::Alerted), 2);
        let card = Filter {
            product: "CREDIT_CARD".into(),
            ..Filter::default()
        };
        let s = f.select(&card, &facts);
        assert_eq!(
            (total(&s, O::Offered), total(&s, O::SuppressedCooldown)),
            (1, 1)
        );
        assert_eq!(total(&s, O::Alerted), 0);
        let high = Filter {
            severity: "HIGH".into(),
            ..Filter::default()
        };
        assert_eq!(total(&f.select(&high, &facts), O::Alerted), 1);
        let email = Filter {
            channel: "EMAIL".into(),
            ..Filter::default()
        };
        let s = f.select(&email, &facts);
        assert_eq!(total(&s, O::Offered), 1);
        assert_eq!(
            total(&s, O::SuppressedCooldown),
            0,
            "suppressed: no channel"
        );
        let push = Filter {
            channel: "PUSH".into(),
            ..Filter::default()
        };
        assert!(f.select(&push, &facts).is_empty());
        let velocity = Filter {
            rule: "velocity".into(),
            product: "CREDIT_CARD".into(),
            ..Filter::default()
        };
        assert!(f.select(&velocity, &facts).is_empty(), "filters add up");
    }
}
