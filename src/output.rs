//! Output records: what the sinks write to the offers, alerts, audit and dead-letter topics.
//! Field names follow `avro_schemas/{next_best_offer,risk_alert,decision_audit,dead_letter}.avsc`.

use crate::event::{
    AlertKind, ContactChannel, DecisionOutcome, EpochMillis, ProductCategory, Severity,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Feature values a decision used, by feature name, in the order the rule names them. An Avro
/// `map<double>` on the wire; names are shared with the feature set, so building one allocates
/// only the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureValues(pub Vec<(Arc<str>, f64)>);

impl FeatureValues {
    /// The value of a feature, if the decision used it.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, v)| *v)
    }

    /// Adds a value unless the feature is already there.
    pub fn insert(&mut self, name: Arc<str>, value: f64) {
        if self.get(&name).is_none() {
            self.0.push((name, value));
        }
    }
}

impl<K: Into<Arc<str>>> FromIterator<(K, f64)> for FeatureValues {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

impl std::ops::Index<&str> for FeatureValues {
    type Output = f64;
    fn index(&self, name: &str) -> &f64 {
        self.0
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("feature {name} not in the decision"))
    }
}

impl Serialize for FeatureValues {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(&**k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FeatureValues {
    /// Keeps the entries in the order written, so a record rebuilt from stored state (the
    /// exactly-once outbox) encodes to the same bytes.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = FeatureValues;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of feature names to numbers")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<FeatureValues, A::Error> {
                let mut out = FeatureValues::default();
                while let Some((name, value)) = map.next_entry::<String, f64>()? {
                    out.0.push((name.into(), value));
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// Plain-words reasons, shared with the rule that wrote them.
pub type Reasons = Vec<Arc<str>>;

/// A next-best offer for marketing systems (`bank.offers.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NextBestOffer {
    /// Deterministic from rule and trigger event.
    pub offer_id: String,
    /// Customer the offer is for.
    pub customer_id: String,
    /// Marketing's code for the offer.
    pub offer_code: String,
    /// Product family.
    pub product_category: ProductCategory,
    /// Channel to deliver it on (one the customer permits).
    pub channel: ContactChannel,
    /// propensity × value × business weight.
    pub score: f64,
    /// Rule that made it.
    pub rule_id: String,
    /// Version of that rule.
    pub rule_version: i32,
    /// Plain-words reasons.
    pub reasons: Reasons,
    /// Feature values the decision used.
    pub features: FeatureValues,
    /// Event that triggered it.
    pub trigger_event_id: String,
    /// When it was decided (UTC millis; the trigger's event time, so replays give the same record).
    pub decided_at: EpochMillis,
    /// When the offer lapses.
    pub expires_at: EpochMillis,
    /// The propensity the decision ranked it by: learned from responses, with the configured
    /// one as its prior (`None` in offers written before it was recorded).
    #[serde(default)]
    pub propensity: Option<f64>,
    /// The decision explored: it ranked by a draw from the learned posterior, not its mean
    /// (`operator.learning.exploration`).
    #[serde(default)]
    pub explored: bool,
}

/// A risk alert (`bank.alerts.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskAlert {
    /// Deterministic from rule and trigger event.
    pub alert_id: String,
    /// Customer concerned.
    pub customer_id: String,
    /// Alert family.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// Rule that raised it.
    pub rule_id: String,
    /// Version of that rule.
    pub rule_version: i32,
    /// Plain-words reasons.
    pub reasons: Reasons,
    /// Feature values the decision used.
    pub features: FeatureValues,
    /// Event that triggered it.
    pub trigger_event_id: String,
    /// When it was raised (the trigger's event time).
    pub raised_at: EpochMillis,
}

/// One audit record per decision (`bank.decisions-audit.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionAudit {
    /// Deterministic from rule and trigger event.
    pub audit_id: String,
    /// Customer concerned.
    pub customer_id: String,
    /// Event that triggered the decision.
    pub trigger_event_id: String,
    /// Rule evaluated.
    pub rule_id: String,
    /// Version of that rule.
    pub rule_version: i32,
    /// Version of the whole rule set in force.
    pub ruleset_version: i64,
    /// What happened.
    pub outcome: DecisionOutcome,
    /// `offer_id` or `alert_id`, if one was made.
    pub decision_id: Option<String>,
    /// Plain-words reasons, including the policy that suppressed it.
    pub reasons: Reasons,
    /// Feature values used.
    pub features: FeatureValues,
    /// When it was decided.
    pub decided_at: EpochMillis,
    /// For a SHADOW record: what the challenger would have decided (OFFERED, ALERTED or the
    /// suppression) against its own contact history; `None` for every other outcome.
    pub shadow_outcome: Option<DecisionOutcome>,
    /// The latest event time the customer's state had taken in when the features were read:
    /// the features count no event later than this. Above `decided_at` when the trigger arrived
    /// late, after later events (within `operator.allowed_lateness`); `export training` drops
    /// such rows. `None` in records written before it was recorded, and for records that are
    /// not decisions.
    #[serde(default)]
    pub features_as_of: Option<EpochMillis>,
    /// For an OFFERED record, the propensity the decision ranked the offer by (as on the offer).
    #[serde(default)]
    pub propensity: Option<f64>,
    /// For a roll-up record (`operator.audit_rollup`): the SUPPRESSED_COOLDOWN decisions it
    /// stands for. `None` for a record of one decision.
    #[serde(default)]
    pub rolled_up: Option<RolledUp>,
}

impl DecisionAudit {
    /// How many decisions this record stands for: one, or a roll-up's count.
    pub fn decisions(&self) -> u64 {
        self.rolled_up.as_ref().map_or(1, |r| u64::from(r.count))
    }
}

/// What a roll-up record counts (`operator.audit_rollup`): repeats of one SUPPRESSED_COOLDOWN
/// decision (same customer, rule and version) within the window opened by a record of its own.
/// The record's `trigger_event_id` and `decided_at` are the first counted decision's; these
/// fields name the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolledUp {
    /// Decisions counted, at least 1.
    pub count: u32,
    /// The trigger of the last counted decision.
    pub last_trigger_event_id: String,
    /// When the last counted decision was made (its trigger's event time).
    pub last_decided_at: EpochMillis,
}

/// A record that could not be processed (`bank.dead-letters.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Topic it came from.
    pub source_topic: String,
    /// Partition it came from.
    pub source_partition: i32,
    /// Offset it had.
    pub source_offset: i64,
    /// Kafka key bytes.
    #[serde(with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    /// Value bytes as received.
    #[serde(with = "serde_bytes")]
    pub payload: Option<Vec<u8>>,
    /// Stable error code (see `DecodeError::kind`).
    pub error_kind: String,
    /// Human-readable reason.
    pub error: String,
    /// When it was dead-lettered (wall clock, UTC millis).
    pub at: EpochMillis,
}

/// A decision the operator made for one trigger event, ready for the sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    /// An offer to publish.
    Offer(NextBestOffer),
    /// An alert to publish.
    Alert(RiskAlert),
    /// An audit record to publish.
    Audit(DecisionAudit),
}

impl Decision {
    /// The customer the decision is about.
    pub fn customer_id_mut(&mut self) -> &mut String {
        match self {
            Decision::Offer(o) => &mut o.customer_id,
            Decision::Alert(a) => &mut a.customer_id,
            Decision::Audit(a) => &mut a.customer_id,
        }
    }
}
