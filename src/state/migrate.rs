//! Reading state written by earlier releases, so an upgrade keeps every customer's state.
//!
//! Format 3 (before challengers) lacks the challengers' contact history at the end of the state
//! and the `shadow_outcome` of outbox audit records; both are empty in what it becomes.

use super::error::StateError;
use crate::customer::{
    AlertRecord, AppliedOffset, ContactHistory, CustomerState, OfferRecord, OutboxEntry,
    ProfileState,
};
use crate::event::{DecisionOutcome, EpochMillis};
use crate::features::Tiles;
use crate::output::{Decision, DecisionAudit, FeatureValues, NextBestOffer, Reasons, RiskAlert};
use serde::{Deserialize, Serialize};

/// The format byte of state written before challengers.
pub(super) const FORMAT_3: u8 = 3;

#[derive(Serialize, Deserialize)]
struct StateV3 {
    features: Vec<(u32, Tiles)>,
    profile: Option<ProfileState>,
    contacts: Vec<OfferRecord>,
    alerts: Vec<AlertRecord>,
    last_high_alert_at: Option<i64>,
    last_complaint_at: Option<i64>,
    last_negative_social_at: Option<i64>,
    applied: Vec<AppliedOffset>,
    max_event_time: i64,
    erased_before: Option<i64>,
    outbox: Vec<OutboxV3>,
}

#[derive(Serialize, Deserialize)]
struct OutboxV3 {
    kind: u8,
    partition: i32,
    offset: i64,
    decisions: Vec<DecisionV3>,
}

#[derive(Serialize, Deserialize)]
enum DecisionV3 {
    Offer(NextBestOffer),
    Alert(RiskAlert),
    Audit(AuditV3),
}

#[derive(Serialize, Deserialize)]
struct AuditV3 {
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
}

impl From<DecisionV3> for Decision {
    fn from(d: DecisionV3) -> Self {
        match d {
            DecisionV3::Offer(o) => Decision::Offer(o),
            DecisionV3::Alert(a) => Decision::Alert(a),
            DecisionV3::Audit(a) => Decision::Audit(DecisionAudit {
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
                shadow_outcome: None,
            }),
        }
    }
}

/// Reads a format-3 state body.
pub(super) fn from_format_3(body: &[u8]) -> Result<CustomerState, StateError> {
    let v3: StateV3 =
        postcard::from_bytes(body).map_err(|e| StateError::Corrupt(format!("format 3: {e}")))?;
    Ok(CustomerState {
        features: v3.features,
        profile: v3.profile,
        history: ContactHistory::from_records(v3.contacts, v3.alerts),
        last_high_alert_at: v3.last_high_alert_at,
        last_complaint_at: v3.last_complaint_at,
        last_negative_social_at: v3.last_negative_social_at,
        applied: v3.applied,
        max_event_time: v3.max_event_time,
        next_retire_at: 0,
        erased_before: v3.erased_before,
        outbox: v3
            .outbox
            .into_iter()
            .map(|e| OutboxEntry {
                kind: e.kind,
                partition: e.partition,
                offset: e.offset,
                decisions: e.decisions.into_iter().map(Decision::from).collect(),
            })
            .collect(),
        shadow: ContactHistory::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_written_in_format_3_reads_with_its_outbox() {
        let audit = AuditV3 {
            audit_id: "a1".into(),
            customer_id: String::new(),
            trigger_event_id: "E1".into(),
            rule_id: "alert-card-velocity".into(),
            rule_version: 1,
            ruleset_version: 7,
            outcome: DecisionOutcome::Alerted,
            decision_id: Some("x".into()),
            reasons: vec!["card_txn_count_1h >= 8".into()],
            features: [("card_txn_count_1h", 9.0)].into_iter().collect(),
            decided_at: 1_000,
        };
        let v3 = StateV3 {
            features: Vec::new(),
            profile: None,
            contacts: Vec::new(),
            alerts: vec![AlertRecord {
                rule_id: "alert-card-velocity".into(),
                at: 1_000,
            }],
            last_high_alert_at: Some(1_000),
            last_complaint_at: None,
            last_negative_social_at: None,
            applied: vec![AppliedOffset {
                kind: 0,
                partition: 2,
                offset: 41,
            }],
            max_event_time: 1_000,
            erased_before: None,
            outbox: vec![OutboxV3 {
                kind: 0,
                partition: 2,
                offset: 41,
                decisions: vec![DecisionV3::Audit(audit)],
            }],
        };
        let mut bytes = vec![FORMAT_3];
        bytes.extend(postcard::to_allocvec(&v3).unwrap());
        let state = CustomerState::from_bytes(&bytes).unwrap();
        assert!(state.is_applied(0, 2, 41));
        assert_eq!(state.history.alerts().len(), 1);
        assert_eq!(state.last_high_alert_at, Some(1_000));
        let Decision::Audit(a) = &state.outbox[0].decisions[0] else {
            panic!("an audit record")
        };
        assert_eq!((a.rule_version, a.shadow_outcome), (1, None));
        assert_eq!(state.shadow, ContactHistory::default());
        // What it becomes is written in the current format.
        let again = CustomerState::from_bytes(&state.to_bytes().unwrap()).unwrap();
        assert_eq!(again, state);
    }
}
