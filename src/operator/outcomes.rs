//! Alert outcomes: an investigator's closure of an alert's case (`AlertOutcome`, from
//! `bank.alert-outcomes.v1`) labels the alert in the customer's contact history, once, and
//! counts for the rule and version that raised it ([`Closed`], recorded as metrics by the
//! worker). An outcome that finds no alert to label (never raised for this customer, raised
//! longer ago than `operator.alert_outcome_window`, before alerts kept their ids, or its
//! customer erased since) is [`Rejected`]: the worker dead-letters it with the reason, so no
//! outcome is dropped silently.

use super::Operator;
use crate::customer::{CustomerState, Labelled};
use crate::event::{AlertLabel, AlertOutcome, FraudParty};

/// An alert's case closed, as counted for its rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// The rule that raised the alert.
    pub rule_id: String,
    /// Its version then.
    pub version: i32,
    /// How the case was closed.
    pub label: AlertLabel,
    /// Whose fraud, when confirmed fraud.
    pub fraud_party: Option<FraudParty>,
    /// The amount at stake (minor units) and its currency, when the case system gave one.
    pub amount: Option<(i64, String)>,
    /// From the alert to its closure, in milliseconds (0 for a closure stamped before it).
    pub to_close_ms: i64,
    /// The challengers of its rule when it was raised, each with what it did on the same
    /// trigger (`nbo_challenger_alert_outcomes_total`).
    pub challengers: Vec<(i32, crate::customer::Verdict)>,
}

/// An input the operator refused after it decoded: why, for its dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// Where the record came from (filled by [`Operator::apply`]; `None` outside a pipeline).
    pub pos: Option<super::SourcePos>,
    /// A stable word for the reason (the dead letter's `error_kind`).
    pub kind: &'static str,
    /// What is wrong, for the people who read dead letters.
    pub reason: String,
}

impl Operator {
    /// Why `outcome` finds no alert to label, if it does not: its alert is not held for this
    /// customer, or was raised longer than `operator.alert_outcome_window` before the closure.
    /// Nothing in `state` changes.
    pub(super) fn refusal(
        &self,
        state: &CustomerState,
        outcome: &AlertOutcome,
    ) -> Option<Rejected> {
        let alert = state
            .history
            .alerts()
            .iter()
            .find(|a| !a.alert_id.is_empty() && a.alert_id == outcome.alert_id);
        let id = &outcome.alert_id;
        match alert {
            Some(a) if outcome.event_time - a.at <= self.alert_outcome_ms => None,
            Some(_) => Some(Rejected {
                pos: None,
                kind: "unknown_alert",
                reason: format!(
                    "alert {id:?} was raised more than operator.alert_outcome_window before its case was closed"
                ),
            }),
            None if state.erased_before.is_some() => Some(Rejected {
                pos: None,
                kind: "erased_alert",
                reason: format!(
                    "alert {id:?} is not held: its customer was erased, and outcomes of an erased customer's alerts are not kept"
                ),
            }),
            None => Some(Rejected {
                pos: None,
                kind: "unknown_alert",
                reason: format!(
                    "alert {id:?} is not held for this customer: never raised for them, raised more than operator.alert_outcome_window ago, or before alerts kept their ids"
                ),
            }),
        }
    }

    /// Labels the alert `outcome` closes; answers what it counts (`Ok(None)`: the alert was
    /// labelled before, a replayed or repeated outcome, counted in
    /// `nbo_alert_outcomes_ignored_total`), or why it was refused ([`Operator::refusal`]).
    pub(super) fn close_alert(
        &self,
        state: &mut CustomerState,
        outcome: &AlertOutcome,
    ) -> Result<Option<Closed>, Rejected> {
        if let Some(refused) = self.refusal(state, outcome) {
            return Err(refused);
        }
        match state.history.label_alert(&outcome.alert_id, outcome.label) {
            Labelled::New(alert) => Ok(Some(Closed {
                rule_id: alert.rule_id.clone(),
                version: alert.version,
                label: outcome.label,
                fraud_party: outcome.fraud_party,
                amount: outcome
                    .amount_minor
                    .map(|a| (a, outcome.currency.as_deref().unwrap_or("").to_string())),
                to_close_ms: (outcome.event_time - alert.at).max(0),
                challengers: alert.challengers.clone(),
            })),
            Labelled::Again => {
                crate::telemetry::metrics()
                    .alert_outcomes_ignored
                    .with_label_values(&["already_labelled"])
                    .inc();
                Ok(None)
            }
            Labelled::Unknown => Err(Rejected {
                pos: None,
                kind: "unknown_alert",
                reason: format!("alert {:?} is not held for this customer", outcome.alert_id),
            }),
        }
    }
}
