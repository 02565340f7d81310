//! How the outbox's decisions are stored in a customer's state: as format 7 stored them, each
//! audit without its `rolled_up`, which the state's trailer carries instead
//! (`state::trailer`). So a state written with roll-ups reads in a release from before them.

use crate::event::{DecisionOutcome, EpochMillis};
use crate::output::{Decision, DecisionAudit, FeatureValues, NextBestOffer, Reasons, RiskAlert};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A decision as stored (the variants in [`Decision`]'s order: postcard stores the index).
#[derive(Serialize)]
enum Stored<'a> {
    Offer(&'a NextBestOffer),
    Alert(&'a RiskAlert),
    Audit(StoredAudit<'a>),
}

/// An audit as stored: every field of [`DecisionAudit`] before `rolled_up`, in order.
#[derive(Serialize)]
struct StoredAudit<'a> {
    audit_id: &'a str,
    customer_id: &'a str,
    trigger_event_id: &'a str,
    rule_id: &'a str,
    rule_version: i32,
    ruleset_version: i64,
    outcome: DecisionOutcome,
    decision_id: &'a Option<String>,
    reasons: &'a Reasons,
    features: &'a FeatureValues,
    decided_at: EpochMillis,
    shadow_outcome: Option<DecisionOutcome>,
    features_as_of: Option<EpochMillis>,
    propensity: Option<f64>,
}

/// [`Stored`], read back.
#[derive(Deserialize)]
enum Read {
    Offer(NextBestOffer),
    Alert(RiskAlert),
    Audit(ReadAudit),
}

/// [`StoredAudit`], read back.
#[derive(Deserialize)]
struct ReadAudit {
    audit_id: String,
    customer_id: String,
    trigger_event_id: String,
    rule_id: String,
    rule_version: i32,
    ruleset_version: i64,
    outcome: DecisionOutcome,
    decision_id: Option<String>,
    reasons: Reasons,
    features: FeatureValues,
    decided_at: EpochMillis,
    shadow_outcome: Option<DecisionOutcome>,
    features_as_of: Option<EpochMillis>,
    propensity: Option<f64>,
}

impl<'a> From<&'a Decision> for Stored<'a> {
    fn from(d: &'a Decision) -> Self {
        match d {
            Decision::Offer(o) => Stored::Offer(o),
            Decision::Alert(a) => Stored::Alert(a),
            Decision::Audit(a) => Stored::Audit(StoredAudit {
                audit_id: &a.audit_id,
                customer_id: &a.customer_id,
                trigger_event_id: &a.trigger_event_id,
                rule_id: &a.rule_id,
                rule_version: a.rule_version,
                ruleset_version: a.ruleset_version,
                outcome: a.outcome,
                decision_id: &a.decision_id,
                reasons: &a.reasons,
                features: &a.features,
                decided_at: a.decided_at,
                shadow_outcome: a.shadow_outcome,
                features_as_of: a.features_as_of,
                propensity: a.propensity,
            }),
        }
    }
}

impl From<Read> for Decision {
    fn from(d: Read) -> Self {
        match d {
            Read::Offer(o) => Decision::Offer(o),
            Read::Alert(a) => Decision::Alert(a),
            Read::Audit(a) => Decision::Audit(DecisionAudit {
                audit_id: a.audit_id,
                customer_id: a.customer_id,
                trigger_event_id: a.trigger_event_id,
                rule_id: a.rule_id,
                rule_version: a.rule_version,
                ruleset_version: a.ruleset_version,
                outcome: a.outcome,
                decision_id: a.decision_id,
                reasons: a.reasons,
                features: a.features,
                decided_at: a.decided_at,
                shadow_outcome: a.shadow_outcome,
                features_as_of: a.features_as_of,
                propensity: a.propensity,
                rolled_up: None,
            }),
        }
    }
}

/// Serializes an outbox entry's decisions as stored.
pub(super) fn serialize<S: Serializer>(decisions: &[Decision], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(decisions.iter().map(Stored::from))
}

/// Reads an outbox entry's decisions as stored (audits' `rolled_up` come from the trailer).
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Decision>, D::Error> {
    Ok(Vec::<Read>::deserialize(d)?
        .into_iter()
        .map(Into::into)
        .collect())
}
