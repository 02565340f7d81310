//! `[topics]`: the input and output topic names.

use crate::event::EventKind;
use serde::Deserialize;

/// Topic names. Inputs must be co-partitioned (same partition count, keyed by customer id).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicSettings {
    /// `TransactionEvent` input.
    pub transactions: String,
    /// `ClickstreamEvent` input.
    pub clickstream: String,
    /// `AppEvent` input.
    pub app: String,
    /// `SocialEvent` input.
    pub social: String,
    /// `FeedbackEvent` input.
    pub feedback: String,
    /// `PartnerEvent` input.
    pub partner: String,
    /// `CustomerProfile` input (compacted).
    pub customer_profile: String,
    /// `OfferResponse` input.
    pub offer_responses: String,
    /// `ErasureRequest` input.
    pub erasure_requests: String,
    /// `ProductOpened` input (the CRM's conversions).
    pub product_openings: String,
    /// `InboundContact` input: the contacts `nbo-stream api` made, taken into the stream's
    /// contact history.
    pub inbound_contacts: String,
    /// `AlertOutcome` input: investigators' closures of alerts' cases.
    pub alert_outcomes: String,
    /// Rule documents (compacted; used by hot reload).
    pub rules: String,
    /// Every published rule change with who, when, why and the text (never compacted): what
    /// `rules history`, `rules diff` and `rules rollback` read.
    pub rules_history: String,
    /// `NextBestOffer` output.
    pub offers: String,
    /// `RiskAlert` output.
    pub alerts: String,
    /// `DecisionAudit` output.
    pub decisions_audit: String,
    /// `DeadLetter` output.
    pub dead_letters: String,
}

impl Default for TopicSettings {
    fn default() -> Self {
        // The inputs' names are the catalog's rows (`catalog/builtin.rs`).
        let input = |kind: EventKind| kind.default_topic().to_string();
        Self {
            transactions: input(EventKind::Transaction),
            clickstream: input(EventKind::Clickstream),
            app: input(EventKind::App),
            social: input(EventKind::Social),
            feedback: input(EventKind::Feedback),
            partner: input(EventKind::Partner),
            customer_profile: input(EventKind::Profile),
            offer_responses: input(EventKind::OfferResponse),
            erasure_requests: input(EventKind::Erasure),
            product_openings: input(EventKind::ProductOpened),
            inbound_contacts: input(EventKind::InboundContact),
            alert_outcomes: input(EventKind::AlertOutcome),
            rules: "bank.rules.v1".into(),
            rules_history: "bank.rules-history.v1".into(),
            offers: "bank.offers.v1".into(),
            alerts: "bank.alerts.v1".into(),
            decisions_audit: "bank.decisions-audit.v1".into(),
            dead_letters: "bank.dead-letters.v1".into(),
        }
    }
}

impl TopicSettings {
    /// Input topic names in [`EventKind::ALL`] order.
    pub fn inputs(&self) -> [&str; crate::event::BUILTIN_KINDS] {
        [
            &self.transactions,
            &self.clickstream,
            &self.app,
            &self.social,
            &self.feedback,
            &self.partner,
            &self.customer_profile,
            &self.offer_responses,
            &self.erasure_requests,
            &self.product_openings,
            &self.inbound_contacts,
            &self.alert_outcomes,
        ]
    }

    /// Every topic this program reads or writes.
    pub fn all(&self) -> Vec<&str> {
        let mut all = self.inputs().to_vec();
        all.extend([
            self.rules.as_str(),
            &self.rules_history,
            &self.offers,
            &self.alerts,
            &self.decisions_audit,
            &self.dead_letters,
        ]);
        all
    }
}
