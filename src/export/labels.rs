//! What happened after each decision, by its decision id: the customer's responses to an offer,
//! the product openings that name it, and the investigators' closures of an alert.
//!
//! A decision's label is the furthest its outcome went inside the maturity window (the window
//! starts at the decision): for an offer, `CONVERTED` (a product opening naming the offer) over
//! `ACCEPTED` over `DECLINED` over `CLICKED` over `DELIVERED`; for an alert, its first closure
//! as read from the topic (`CONFIRMED_RISK`, `VALUABLE_ALERT`, `FALSE_POSITIVE` or `DUPLICATE`),
//! as the stream takes it: a later relabelling counts for nothing, and a first closure outside
//! the window leaves the alert unlabelled. The label's time is when it was first reached.

use crate::event::{AlertLabel, OfferResponseKind};
use std::collections::HashMap;

/// One thing that happened to a decision, with how far it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A customer's response to an offer.
    Response(OfferResponseKind),
    /// A product opening that names the offer.
    Converted,
    /// An investigator's closure of an alert.
    Closed(AlertLabel),
}

impl Outcome {
    /// The label's text in the training set.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Response(r) => r.as_str(),
            Outcome::Converted => "CONVERTED",
            Outcome::Closed(l) => l.as_str(),
        }
    }

    /// How far an offer's outcome went (a closure's rank is its arrival: the first one stands).
    fn rank(self) -> u8 {
        match self {
            Outcome::Response(OfferResponseKind::Delivered) => 1,
            Outcome::Response(OfferResponseKind::Clicked) => 2,
            Outcome::Response(OfferResponseKind::Declined) => 3,
            Outcome::Response(OfferResponseKind::Accepted) => 4,
            Outcome::Converted => 5,
            Outcome::Closed(_) => 0,
        }
    }
}

/// A decision's label: what it came to, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    /// The outcome.
    pub outcome: Outcome,
    /// When it happened (the outcome record's event time, ms).
    pub at: i64,
}

/// Every outcome read, by decision id (offer id or alert id).
#[derive(Debug, Default)]
pub struct Labels {
    by_decision: HashMap<String, Vec<Label>>,
}

impl Labels {
    /// Notes that `outcome` happened to decision `decision_id` at `at` (ms).
    pub fn add(&mut self, decision_id: &str, outcome: Outcome, at: i64) {
        self.by_decision
            .entry(decision_id.to_string())
            .or_default()
            .push(Label { outcome, at });
    }

    /// How many decisions have an outcome.
    pub fn len(&self) -> usize {
        self.by_decision.len()
    }

    /// No outcome was read.
    pub fn is_empty(&self) -> bool {
        self.by_decision.is_empty()
    }

    /// The label of decision `decision_id`, made at `decided_at`, among the outcomes from
    /// `decided_at` to `decided_at + window_ms` (both included); `None` when nothing happened
    /// inside the window.
    pub fn label(&self, decision_id: &str, decided_at: i64, window_ms: i64) -> Option<Label> {
        let all = self.by_decision.get(decision_id)?;
        let inside = |l: &&Label| l.at >= decided_at && l.at - decided_at <= window_ms;
        // An alert's first closure, as read (the stream keeps the first to arrive too): the label
        // if it came inside the window; a later relabelling never replaces it.
        if let Some(first) = all.iter().find(|l| matches!(l.outcome, Outcome::Closed(_))) {
            return Some(*first).filter(|l| inside(&l));
        }
        // An offer's furthest response inside the window, the first time it was reached.
        let mut best: Option<Label> = None;
        for l in all.iter().filter(inside) {
            let better = best.is_none_or(|b| {
                l.outcome.rank() > b.outcome.rank()
                    || (l.outcome.rank() == b.outcome.rank() && l.at < b.at)
            });
            if better {
                best = Some(*l);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn an_offer_is_labelled_by_the_furthest_it_went_inside_the_window() {
        let mut labels = Labels::default();
        labels.add("o1", Outcome::Response(OfferResponseKind::Delivered), 10);
        labels.add(
            "o1",
            Outcome::Response(OfferResponseKind::Accepted),
            2 * DAY,
        );
        labels.add("o1", Outcome::Response(OfferResponseKind::Clicked), DAY);
        labels.add("o1", Outcome::Converted, 20 * DAY);
        let l = labels.label("o1", 0, 7 * DAY).unwrap();
        assert_eq!((l.outcome.label(), l.at), ("ACCEPTED", 2 * DAY));
        // A longer window takes the conversion in.
        let l = labels.label("o1", 0, 30 * DAY).unwrap();
        assert_eq!((l.outcome.label(), l.at), ("CONVERTED", 20 * DAY));
        // Nothing before the decision counts, nor anything for another decision.
        assert_eq!(labels.label("o1", 25 * DAY, 30 * DAY), None);
        assert_eq!(labels.label("o2", 0, 30 * DAY), None);
    }

    #[test]
    fn an_alert_keeps_its_first_closure_and_a_closure_on_the_window_edge_counts() {
        let mut labels = Labels::default();
        // Closed confirmed on day 3, then relabelled (backdated) to day 2: the first stands.
        labels.add("a1", Outcome::Closed(AlertLabel::ConfirmedRisk), 3 * DAY);
        labels.add("a1", Outcome::Closed(AlertLabel::FalsePositive), 2 * DAY);
        let l = labels.label("a1", 0, 3 * DAY).unwrap();
        assert_eq!((l.outcome.label(), l.at), ("CONFIRMED_RISK", 3 * DAY));
        // Outside the window, the first closure leaves the alert unlabelled.
        assert_eq!(labels.label("a1", 0, 3 * DAY - 1), None);
        assert_eq!(labels.label("a1", 3 * DAY + 1, 30 * DAY), None);
    }
}
