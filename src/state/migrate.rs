//! Reading state written by earlier releases, so an upgrade keeps every customer's state.
//!
//! Format 3 (before challengers) lacks the challengers' contact history at the end of the state
//! and the `shadow_outcome` of outbox audit records; both are empty in what it becomes.
//!
//! Format 4 (before offers that learn) lacks the `propensity` and `explored` of outbox offers
//! (`None` and `false` in what it becomes, as in an Avro offer record written before them) and
//! what the learned models have counted of each offer held and the configured propensity it was
//! made at (nothing, and not known: responses to offers made before the upgrade are not learned
//! from).
//!
//! Format 5 (before alert outcomes) lacks each alert's id, rule version and label: an alert
//! raised before the upgrade keeps its cooldown, and an outcome for it is dead-lettered as
//! unknown (its id was not kept).
//!
//! Format 6 (before audits recorded what their features were as of) lacks the
//! `features_as_of` and `propensity` of outbox audit records (`None` in what it becomes, as in
//! an Avro audit record written before them), and each alert's challengers' verdicts (none: an
//! alert raised before the upgrade is compared with no challenger).

use super::error::StateError;
use crate::customer::{
    AlertRecord, AppliedOffset, ContactHistory, CustomerState, OfferRecord, OutboxEntry,
    ProfileState,
};
use crate::event::{
    AlertLabel, ContactChannel, DecisionOutcome, EpochMillis, OfferResponseKind, ProductCategory,
};
use crate::features::Tiles;
use crate::output::{Decision, DecisionAudit, FeatureValues, NextBestOffer, Reasons, RiskAlert};
use serde::{Deserialize, Serialize};

/// The format byte of state written before challengers.
pub(super) const FORMAT_3: u8 = 3;

/// The format byte of state written before offers recorded their propensity.
pub(super) const FORMAT_4: u8 = 4;

/// The format byte of state written before alerts kept their ids and outcomes.
pub(super) const FORMAT_5: u8 = 5;

/// The format byte of state written before audits recorded their features' as-of time.
pub(super) const FORMAT_6: u8 = 6;

/// An audit record as formats 4 to 6 stored it in the outbox.
#[derive(Serialize, Deserialize)]
struct AuditV6 {
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
}

impl From<AuditV6> for DecisionAudit {
    fn from(a: AuditV6) -> Self {
        DecisionAudit {
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
            features_as_of: None,
            propensity: None,
            rolled_up: None,
        }
    }
}

/// A decision as formats 5 and 6 stored it in the outbox.
#[derive(Serialize, Deserialize)]
enum DecisionV6 {
    Offer(NextBestOffer),
    Alert(RiskAlert),
    Audit(AuditV6),
}

impl From<DecisionV6> for Decision {
    fn from(d: DecisionV6) -> Self {
        match d {
            DecisionV6::Offer(o) => Decision::Offer(o),
            DecisionV6::Alert(a) => Decision::Alert(a),
            DecisionV6::Audit(a) => Decision::Audit(a.into()),
        }
    }
}

/// An outbox entry as formats 5 and 6 stored it.
#[derive(Serialize, Deserialize)]
struct OutboxV6 {
    kind: u8,
    partition: i32,
    offset: i64,
    decisions: Vec<DecisionV6>,
}

fn outbox_v6(v: Vec<OutboxV6>) -> Vec<OutboxEntry> {
    v.into_iter()
        .map(|e| outbox_entry(e.kind, e.partition, e.offset, e.decisions))
        .collect()
}

/// An alert as format 6 stored it.
#[derive(Serialize, Deserialize)]
struct AlertRecordV6 {
    rule_id: String,
    at: i64,
    alert_id: String,
    version: i32,
    label: Option<AlertLabel>,
}

/// A contact history as format 6 stored it.
#[derive(Serialize, Deserialize)]
struct HistoryV6 {
    offers: Vec<OfferRecord>,
    alerts: Vec<AlertRecordV6>,
}

impl From<HistoryV6> for ContactHistory {
    fn from(h: HistoryV6) -> Self {
        let alerts = h
            .alerts
            .into_iter()
            .map(|a| AlertRecord {
                rule_id: a.rule_id,
                at: a.at,
                alert_id: a.alert_id,
                version: a.version,
                label: a.label,
                challengers: Vec::new(),
            })
            .collect();
        ContactHistory::from_records(h.offers, alerts)
    }
}

/// A state as format 6 stored it.
#[derive(Serialize, Deserialize)]
struct StateV6 {
    features: Vec<(u32, Tiles)>,
    profile: Option<ProfileState>,
    history: HistoryV6,
    last_high_alert_at: Option<i64>,
    last_complaint_at: Option<i64>,
    last_negative_social_at: Option<i64>,
    applied: Vec<AppliedOffset>,
    max_event_time: i64,
    erased_before: Option<i64>,
    outbox: Vec<OutboxV6>,
    shadow: HistoryV6,
}

/// Reads a format-6 state body.
pub(super) fn from_format_6(body: &[u8]) -> Result<CustomerState, StateError> {
    let v6: StateV6 =
        postcard::from_bytes(body).map_err(|e| StateError::Corrupt(format!("format 6: {e}")))?;
    Ok(CustomerState {
        features: v6.features,
        profile: v6.profile,
        history: v6.history.into(),
        last_high_alert_at: v6.last_high_alert_at,
        last_complaint_at: v6.last_complaint_at,
        last_negative_social_at: v6.last_negative_social_at,
        applied: v6.applied,
        max_event_time: v6.max_event_time,
        next_retire_at: 0,
        hash: None,
        rollups: Default::default(),
        erased_before: v6.erased_before,
        outbox: outbox_v6(v6.outbox),
        shadow: v6.shadow.into(),
    })
}

/// An alert as formats 3 to 5 stored it.
#[derive(Serialize, Deserialize)]
struct AlertRecordV5 {
    rule_id: String,
    at: i64,
}

impl From<AlertRecordV5> for AlertRecord {
    fn from(a: AlertRecordV5) -> Self {
        AlertRecord {
            rule_id: a.rule_id,
            at: a.at,
            alert_id: String::new(),
            version: 0,
            label: None,
            challengers: Vec::new(),
        }
    }
}

fn alerts(v: Vec<AlertRecordV5>) -> Vec<AlertRecord> {
    v.into_iter().map(Into::into).collect()
}

/// A contact history as format 5 stored it.
#[derive(Serialize, Deserialize)]
struct HistoryV5 {
    offers: Vec<OfferRecord>,
    alerts: Vec<AlertRecordV5>,
}

impl From<HistoryV5> for ContactHistory {
    fn from(h: HistoryV5) -> Self {
        ContactHistory::from_records(h.offers, alerts(h.alerts))
    }
}

/// A state as format 5 stored it.
#[derive(Serialize, Deserialize)]
struct StateV5 {
    features: Vec<(u32, Tiles)>,
    profile: Option<ProfileState>,
    history: HistoryV5,
    last_high_alert_at: Option<i64>,
    last_complaint_at: Option<i64>,
    last_negative_social_at: Option<i64>,
    applied: Vec<AppliedOffset>,
    max_event_time: i64,
    erased_before: Option<i64>,
    outbox: Vec<OutboxV6>,
    shadow: HistoryV5,
}

/// Reads a format-5 state body.
pub(super) fn from_format_5(body: &[u8]) -> Result<CustomerState, StateError> {
    let v5: StateV5 =
        postcard::from_bytes(body).map_err(|e| StateError::Corrupt(format!("format 5: {e}")))?;
    Ok(CustomerState {
        features: v5.features,
        profile: v5.profile,
        history: v5.history.into(),
        last_high_alert_at: v5.last_high_alert_at,
        last_complaint_at: v5.last_complaint_at,
        last_negative_social_at: v5.last_negative_social_at,
        applied: v5.applied,
        max_event_time: v5.max_event_time,
        next_retire_at: 0,
        hash: None,
        rollups: Default::default(),
        erased_before: v5.erased_before,
        outbox: outbox_v6(v5.outbox),
        shadow: v5.shadow.into(),
    })
}

/// An offer held in the contact history, as formats 3 and 4 stored it.
#[derive(Serialize, Deserialize)]
struct OfferRecordV4 {
    rule_id: String,
    product: ProductCategory,
    offer_id: String,
    at: i64,
    response: Option<OfferResponseKind>,
    responded_at: Option<i64>,
}

impl From<OfferRecordV4> for OfferRecord {
    fn from(r: OfferRecordV4) -> Self {
        OfferRecord {
            response: r.response,
            responded_at: r.responded_at,
            ..OfferRecord::new(r.rule_id, r.product, r.offer_id, r.at)
        }
    }
}

/// A contact history as format 4 stored it.
#[derive(Serialize, Deserialize)]
struct HistoryV4 {
    offers: Vec<OfferRecordV4>,
    alerts: Vec<AlertRecordV5>,
}

impl From<HistoryV4> for ContactHistory {
    fn from(h: HistoryV4) -> Self {
        ContactHistory::from_records(
            h.offers.into_iter().map(Into::into).collect(),
            alerts(h.alerts),
        )
    }
}

/// An offer as formats 3 and 4 stored it in the outbox.
#[derive(Serialize, Deserialize)]
struct OfferV4 {
    offer_id: String,
    customer_id: String,
    offer_code: String,
    product_category: ProductCategory,
    channel: ContactChannel,
    score: f64,
    rule_id: String,
    rule_version: i32,
    reasons: Reasons,
    features: FeatureValues,
    trigger_event_id: String,
    decided_at: EpochMillis,
    expires_at: EpochMillis,
}

impl From<OfferV4> for NextBestOffer {
    fn from(o: OfferV4) -> Self {
        NextBestOffer {
            offer_id: o.offer_id,
            customer_id: o.customer_id,
            offer_code: o.offer_code,
            product_category: o.product_category,
            channel: o.channel,
            score: o.score,
            rule_id: o.rule_id,
            rule_version: o.rule_version,
            reasons: o.reasons,
            features: o.features,
            trigger_event_id: o.trigger_event_id,
            decided_at: o.decided_at,
            expires_at: o.expires_at,
            propensity: None,
            explored: false,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StateV4 {
    features: Vec<(u32, Tiles)>,
    profile: Option<ProfileState>,
    history: HistoryV4,
    last_high_alert_at: Option<i64>,
    last_complaint_at: Option<i64>,
    last_negative_social_at: Option<i64>,
    applied: Vec<AppliedOffset>,
    max_event_time: i64,
    erased_before: Option<i64>,
    outbox: Vec<OutboxV4>,
    shadow: HistoryV4,
}

#[derive(Serialize, Deserialize)]
struct OutboxV4 {
    kind: u8,
    partition: i32,
    offset: i64,
    decisions: Vec<DecisionV4>,
}

#[derive(Serialize, Deserialize)]
enum DecisionV4 {
    Offer(OfferV4),
    Alert(RiskAlert),
    Audit(AuditV6),
}

impl From<DecisionV4> for Decision {
    fn from(d: DecisionV4) -> Self {
        match d {
            DecisionV4::Offer(o) => Decision::Offer(o.into()),
            DecisionV4::Alert(a) => Decision::Alert(a),
            DecisionV4::Audit(a) => Decision::Audit(a.into()),
        }
    }
}

/// An outbox entry of an earlier format, its decisions read as this release's.
fn outbox_entry<D: Into<Decision>>(
    kind: u8,
    partition: i32,
    offset: i64,
    decisions: Vec<D>,
) -> OutboxEntry {
    OutboxEntry {
        kind,
        partition,
        offset,
        decisions: decisions.into_iter().map(Into::into).collect(),
    }
}

/// Reads a format-4 state body.
pub(super) fn from_format_4(body: &[u8]) -> Result<CustomerState, StateError> {
    let v4: StateV4 =
        postcard::from_bytes(body).map_err(|e| StateError::Corrupt(format!("format 4: {e}")))?;
    Ok(CustomerState {
        features: v4.features,
        profile: v4.profile,
        history: v4.history.into(),
        last_high_alert_at: v4.last_high_alert_at,
        last_complaint_at: v4.last_complaint_at,
        last_negative_social_at: v4.last_negative_social_at,
        applied: v4.applied,
        max_event_time: v4.max_event_time,
        next_retire_at: 0,
        hash: None,
        rollups: Default::default(),
        erased_before: v4.erased_before,
        outbox: v4
            .outbox
            .into_iter()
            .map(|e| outbox_entry(e.kind, e.partition, e.offset, e.decisions))
            .collect(),
        shadow: v4.shadow.into(),
    })
}

#[derive(Serialize, Deserialize)]
struct StateV3 {
    features: Vec<(u32, Tiles)>,
    profile: Option<ProfileState>,
    contacts: Vec<OfferRecordV4>,
    alerts: Vec<AlertRecordV5>,
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
    Offer(OfferV4),
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
            DecisionV3::Offer(o) => Decision::Offer(o.into()),
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
                features_as_of: None,
                propensity: None,
                rolled_up: None,
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
        history: ContactHistory::from_records(
            v3.contacts.into_iter().map(Into::into).collect(),
            alerts(v3.alerts),
        ),
        last_high_alert_at: v3.last_high_alert_at,
        last_complaint_at: v3.last_complaint_at,
        last_negative_social_at: v3.last_negative_social_at,
        applied: v3.applied,
        max_event_time: v3.max_event_time,
        next_retire_at: 0,
        hash: None,
        rollups: Default::default(),
        erased_before: v3.erased_before,
        outbox: v3
            .outbox
            .into_iter()
            .map(|e| outbox_entry(e.kind, e.partition, e.offset, e.decisions))
            .collect(),
        shadow: ContactHistory::default(),
    })
}

#[cfg(test)]
#[path = "migrate_tests.rs"]
mod tests;
