//! One training row per decision: an audit record joined with its label, or the reason it is
//! left out.
//!
//! A decision is left out when its customer was ever erased, when it was made outside the range
//! asked for, when its features took in an event later than the decision (a trigger that came
//! late, after later events: `features_as_of` past `decided_at`) or do not say when they were as
//! of (audits written before they recorded it), and, unless asked otherwise, when its maturity
//! window has not closed yet (a label could still come). Rule changes and console actions in the
//! audit are not decisions.

use super::labels::Labels;
use crate::output::DecisionAudit;
use crate::state::KeyHasher;
use std::collections::HashSet;
use std::sync::Arc;

/// One row of the training set.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingRow {
    /// The audit record's id: one per decision.
    pub audit_id: String,
    /// The offer id or alert id the decision made, if it made one.
    pub decision_id: Option<String>,
    /// The customer, pseudonymised as the state store keys it (HMAC-SHA-256 with the
    /// `run` instances' `NBO_CUSTOMER_KEY_SECRET`).
    pub customer_key: String,
    /// When the decision was made (ms).
    pub decided_at: i64,
    /// The rule that decided.
    pub rule_id: String,
    /// Its version.
    pub rule_version: i32,
    /// What it decided (`OFFERED`, `ALERTED`, `SUPPRESSED_*`, `CONTROL_GROUP`, `SHADOW`).
    pub outcome: &'static str,
    /// The values of [`Columns::features`], in that order; `None` where the decision did not use
    /// the feature.
    pub features: Vec<Option<f64>>,
    /// The newest event time the features had taken in (ms), never past `decided_at`.
    pub features_as_of: i64,
    /// The propensity an offer was ranked by.
    pub propensity: Option<f64>,
    /// What the decision came to inside the maturity window.
    pub label: Option<&'static str>,
    /// When it came to it (ms).
    pub label_at: Option<i64>,
    /// The maturity window has closed: the label (or its absence) is final.
    pub label_final: bool,
}

/// Why decisions were left out, and how many rows were written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    /// Rows written.
    pub rows: u64,
    /// ... of which labelled.
    pub labelled: u64,
    /// Audit records that are not decisions (rule changes, console actions).
    pub not_decisions: u64,
    /// Decisions made outside the range.
    pub outside_range: u64,
    /// Decisions of customers erased since.
    pub erased: u64,
    /// Decisions whose features took in a later event.
    pub late_features: u64,
    /// Decisions from audits that did not record when their features were as of.
    pub as_of_unknown: u64,
    /// Roll-up records of cooldown repeats (`operator.audit_rollup`): no features of their own.
    pub rolled_up: u64,
    /// Decisions whose maturity window has not closed.
    pub immature: u64,
    /// Features in decisions that are not in the feature set (their values are not exported).
    pub unknown_features: u64,
    /// Audit records read again (delivered twice, at least once): written once.
    pub repeated: u64,
}

/// The feature columns: every feature of the feature set, by name.
#[derive(Debug, Clone)]
pub struct Columns {
    /// Feature names, sorted.
    pub features: Vec<Arc<str>>,
}

impl Columns {
    /// Columns for these feature names (sorted, duplicates dropped).
    pub fn new(names: impl IntoIterator<Item = Arc<str>>) -> Self {
        let mut features: Vec<Arc<str>> = names.into_iter().collect();
        features.sort();
        features.dedup();
        Self { features }
    }
}

/// What every decision is joined with and checked against.
pub struct Join<'a> {
    /// Outcomes by decision id.
    pub labels: &'a Labels,
    /// Raw ids of every customer with an erasure request.
    pub erased: &'a HashSet<String>,
    /// The state store's customer-key hasher.
    pub hasher: &'a KeyHasher,
    /// The feature columns.
    pub columns: &'a Columns,
    /// Decisions made from this time (ms, included)...
    pub from: i64,
    /// ... until this one (ms, excluded).
    pub until: i64,
    /// How long after a decision a label counts (ms).
    pub window_ms: i64,
    /// The time outcomes were read up to (ms): windows that end after it are not closed.
    pub now: i64,
    /// Keep decisions whose window has not closed (`label_final` false).
    pub include_immature: bool,
}

impl Join<'_> {
    /// The row of `audit`, or `None` with the reason counted in `tally`.
    pub fn row(&self, audit: &DecisionAudit, tally: &mut Tally) -> Option<TrainingRow> {
        if !audit.outcome.is_decision() {
            tally.not_decisions += 1;
            return None;
        }
        if audit.rolled_up.is_some() {
            tally.rolled_up += 1;
            return None;
        }
        if audit.decided_at < self.from || audit.decided_at >= self.until {
            tally.outside_range += 1;
            return None;
        }
        if self.erased.contains(&audit.customer_id) {
            tally.erased += 1;
            return None;
        }
        let Some(features_as_of) = audit.features_as_of else {
            tally.as_of_unknown += 1;
            return None;
        };
        if features_as_of > audit.decided_at {
            tally.late_features += 1;
            return None;
        }
        let label_final = audit.decided_at.saturating_add(self.window_ms) <= self.now;
        if !label_final && !self.include_immature {
            tally.immature += 1;
            return None;
        }
        let label = audit
            .decision_id
            .as_deref()
            .and_then(|id| self.labels.label(id, audit.decided_at, self.window_ms));
        let mut features = vec![None; self.columns.features.len()];
        for (name, value) in &audit.features.0 {
            match self.columns.features.binary_search(name) {
                Ok(i) => features[i] = Some(*value),
                Err(_) => tally.unknown_features += 1,
            }
        }
        tally.rows += 1;
        tally.labelled += u64::from(label.is_some());
        Some(TrainingRow {
            audit_id: audit.audit_id.clone(),
            decision_id: audit.decision_id.clone(),
            customer_key: self.hasher.key(&audit.customer_id).0,
            decided_at: audit.decided_at,
            rule_id: audit.rule_id.clone(),
            rule_version: audit.rule_version,
            outcome: audit.outcome.as_str(),
            features,
            features_as_of,
            propensity: audit.propensity,
            label: label.map(|l| l.outcome.label()),
            label_at: label.map(|l| l.at),
            label_final,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::labels::Outcome;
    use super::*;
    use crate::event::{AlertLabel, DecisionOutcome};

    const DAY: i64 = 86_400_000;

    fn audit(customer: &str, decided_at: i64, as_of: Option<i64>) -> DecisionAudit {
        DecisionAudit {
            audit_id: format!("audit-{customer}-{decided_at}"),
            customer_id: customer.into(),
            trigger_event_id: "E1".into(),
            rule_id: "alert-velocity".into(),
            rule_version: 2,
            ruleset_version: 9,
            outcome: DecisionOutcome::Alerted,
            decision_id: Some(format!("alert-{customer}")),
            reasons: vec![],
            features: [("txn_count_1h", 12.0), ("retired_feature", 1.0)]
                .into_iter()
                .collect(),
            decided_at,
            shadow_outcome: None,
            features_as_of: as_of,
            propensity: None,
            rolled_up: None,
        }
    }

    #[test]
    fn a_decision_is_joined_with_its_label_or_left_out_with_the_reason() {
        let mut labels = Labels::default();
        labels.add(
            "alert-C1",
            Outcome::Closed(AlertLabel::ConfirmedRisk),
            12 * DAY,
        );
        let erased = HashSet::from(["C9".to_string()]);
        let hasher = KeyHasher::new(b"secret");
        let columns = Columns::new(["txn_count_1h".into(), "amount_max_1d".into()]);
        let join = Join {
            labels: &labels,
            erased: &erased,
            hasher: &hasher,
            columns: &columns,
            from: 10 * DAY,
            until: 20 * DAY,
            window_ms: 7 * DAY,
            now: 25 * DAY,
            include_immature: false,
        };
        let mut tally = Tally::default();
        let row = join
            .row(&audit("C1", 11 * DAY, Some(11 * DAY)), &mut tally)
            .unwrap();
        assert_eq!(row.customer_key, hasher.key("C1").0);
        assert_eq!(row.features, vec![None, Some(12.0)], "sorted by name");
        assert_eq!(
            (row.label, row.label_at),
            (Some("CONFIRMED_RISK"), Some(12 * DAY))
        );
        assert!(row.label_final);
        assert_eq!(tally.unknown_features, 1);

        for a in [
            audit("C9", 11 * DAY, Some(11 * DAY)),
            audit("C2", 11 * DAY, Some(11 * DAY + 1)),
            audit("C2", 11 * DAY, None),
            audit("C2", 19 * DAY, Some(19 * DAY)),
            audit("C2", 9 * DAY, Some(9 * DAY)),
            DecisionAudit {
                rolled_up: Some(crate::output::RolledUp {
                    count: 5,
                    last_trigger_event_id: "E5".into(),
                    last_decided_at: 11 * DAY + 5,
                }),
                ..audit("C2", 11 * DAY, None)
            },
        ] {
            assert_eq!(join.row(&a, &mut tally), None);
        }
        let expected = Tally {
            rows: 1,
            labelled: 1,
            erased: 1,
            late_features: 1,
            as_of_unknown: 1,
            rolled_up: 1,
            immature: 1,
            outside_range: 1,
            unknown_features: 1,
            not_decisions: 0,
            repeated: 0,
        };
        assert_eq!(tally, expected);

        let keep = Join {
            include_immature: true,
            ..join
        };
        let row = keep
            .row(&audit("C2", 19 * DAY, Some(19 * DAY)), &mut tally)
            .unwrap();
        assert!(!row.label_final);
        assert_eq!(row.label, None);
    }
}
