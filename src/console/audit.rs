//! What the console writes to the audit topic: who looked a customer up or published a rule,
//! when, and what. A lookup or a rule change is refused when its audit record cannot be written
//! (no record, no lookup, no change): the record is written and acknowledged first.

use super::auth::User;
use crate::codec::{Codec, Framing};
use crate::event::DecisionOutcome;
use crate::output::{DecisionAudit, FeatureValues};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;

/// Writes console audit records.
pub struct AuditWriter {
    producer: FutureProducer,
    topic: String,
    codec: Arc<Codec>,
    framing: Framing,
}

/// What a console user did.
pub struct Action<'a> {
    /// `CONSOLE_LOOKUP` or `RULE_PUBLISHED`.
    pub outcome: DecisionOutcome,
    /// The customer looked up (empty for a publish).
    pub customer_id: &'a str,
    /// The rule published (empty for a lookup).
    pub rule_id: &'a str,
    /// Its version.
    pub rule_version: i32,
    /// The rule set version the console reads.
    pub ruleset_version: i64,
    /// In plain words.
    pub what: String,
}

impl AuditWriter {
    /// A writer to `topic` (idempotent producer, acks=all) framing records as the pipeline does.
    pub fn new(
        kafka: &crate::config::KafkaSettings,
        topic: &str,
        codec: Arc<Codec>,
        framing: Framing,
    ) -> anyhow::Result<Self> {
        let mut config = crate::source::client_config(kafka);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "10000");
        Ok(Self {
            producer: config.create()?,
            topic: topic.to_string(),
            codec,
            framing,
        })
    }

    /// Writes the record of `action` by `user` and waits for the broker's acknowledgement.
    pub async fn record(&self, user: &User, action: Action<'_>) -> Result<(), String> {
        let now = super::now_ms();
        let mut id = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut id);
        let audit = DecisionAudit {
            audit_id: format!("console-{}", hex::encode(id)),
            customer_id: action.customer_id.to_string(),
            trigger_event_id: format!("console:{}", user.name),
            rule_id: action.rule_id.to_string(),
            rule_version: action.rule_version,
            ruleset_version: action.ruleset_version,
            outcome: action.outcome,
            decision_id: None,
            reasons: vec![
                format!("{} by {} ({})", action.what, user.name, user.role.as_str()).into(),
            ],
            features: FeatureValues::default(),
            decided_at: now,
            shadow_outcome: None,
            features_as_of: None,
            propensity: None,
            rolled_up: None,
        };
        let payload = self
            .codec
            .encode_framed("DecisionAudit", &audit, self.framing)
            .map_err(|e| e.to_string())?;
        // The audit topic is keyed by customer id like the pipeline's records; a publish by rule.
        let key = if action.customer_id.is_empty() {
            action.rule_id
        } else {
            action.customer_id
        };
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(key).payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e.to_string())
    }
}
