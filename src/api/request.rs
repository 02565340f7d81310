//! `POST /v1/decisions`: the request as a channel sends it, checked field by field before
//! anything is read or recorded, and the answer (`openapi/decisions-v1.json` is the contract).

use super::error::ApiError;
use crate::catalog::inbound::Request;
use crate::config::api::ApiSettings;
use crate::output::NextBestOffer;
use serde::{Deserialize, Serialize};

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// The bank's customer id.
    pub customer_id: String,
    /// The channel asking: APP, WEB, CALL_CENTRE, BRANCH or one of `api.channels`.
    pub channel: String,
    /// Where and why, as rules read them (`event.placement`, `event.intent`).
    #[serde(default)]
    pub context: Context,
    /// How many offers are wanted, best first (1 by default, at most `api.max_offers`).
    #[serde(default = "one")]
    pub max_offers: usize,
}

fn one() -> usize {
    1
}

/// The request's context attributes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// Where the offer would show.
    pub placement: Option<String>,
    /// Why the customer came.
    pub intent: Option<String>,
}

impl DecisionRequest {
    /// Parses and checks a body: the inbound request it asks for, with `decision_id` and `at`,
    /// and the number of offers wanted; or the 400 that says what is wrong.
    pub fn parse(
        body: &[u8],
        settings: &ApiSettings,
        decision_id: &str,
        at: i64,
    ) -> Result<(Request, usize), ApiError> {
        let r: DecisionRequest =
            serde_json::from_slice(body).map_err(|e| ApiError::bad("bad_json", e.to_string()))?;
        let max = settings.max_id_chars;
        check_text("customer_id", &r.customer_id, max)?;
        if r.customer_id.is_empty() {
            return Err(ApiError::bad("bad_customer_id", "customer_id is empty"));
        }
        if !settings.knows_channel(&r.channel) {
            let mut known: Vec<&str> = crate::config::api::BUILTIN_CHANNELS.to_vec();
            known.extend(settings.channels.iter().map(String::as_str));
            return Err(ApiError::bad(
                "unknown_channel",
                format!("channel {:?} is not one of {}", r.channel, known.join(", ")),
            ));
        }
        for (name, value) in [
            ("context.placement", &r.context.placement),
            ("context.intent", &r.context.intent),
        ] {
            if let Some(v) = value {
                check_text(name, v, max)?;
            }
        }
        if r.max_offers == 0 || r.max_offers > settings.max_offers {
            return Err(ApiError::bad(
                "bad_max_offers",
                format!(
                    "max_offers is {}; ask for 1 to {}",
                    r.max_offers, settings.max_offers
                ),
            ));
        }
        let request = Request {
            decision_id: decision_id.into(),
            customer_id: r.customer_id.into(),
            at,
            channel: r.channel.into(),
            placement: r.context.placement.map(Into::into),
            intent: r.context.intent.map(Into::into),
        };
        Ok((request, r.max_offers))
    }
}

/// A text field within `max` characters and without control characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let code = if field == "customer_id" {
        "bad_customer_id"
    } else {
        "bad_context"
    };
    if value.chars().count() > max {
        return Err(ApiError::bad(
            code,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::bad(
            code,
            format!("{field} holds a control character"),
        ));
    }
    Ok(())
}

/// The answer.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct DecisionAnswer {
    /// The decision's id: the audit records' `trigger_event_id`.
    pub decision_id: String,
    /// The customer.
    pub customer_id: String,
    /// The channel that asked.
    pub channel: String,
    /// When it was decided (UTC millis).
    pub decided_at: i64,
    /// The rule set version that decided.
    pub ruleset_version: i64,
    /// The offers, best first (empty when none).
    pub offers: Vec<OfferAnswer>,
    /// Why there is no offer, when there is none.
    pub suppressed: Option<SuppressedAnswer>,
}

/// One offer of an answer.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct OfferAnswer {
    /// The offer's id (its audit record's `decision_id`; responses name it).
    pub offer_id: String,
    /// Marketing's offer code.
    pub offer_code: String,
    /// Product family.
    pub product: String,
    /// The rule that made it, and its version.
    pub rule_id: String,
    /// The rule's version.
    pub rule_version: i32,
    /// The propensity it was ranked by.
    pub propensity: Option<f64>,
    /// Whether that propensity was a draw from the learned posterior (exploration).
    pub explored: bool,
    /// The value of a conversion to the bank (the rule's `value`).
    pub value: f64,
    /// Priority: propensity × value × weight.
    pub priority: f64,
    /// Why: the rule's condition terms, the arbitration, the propensity, the channel.
    pub reasons: Vec<String>,
    /// The feature values the rule read, by name.
    pub features: serde_json::Map<String, serde_json::Value>,
    /// Until when the offer stands (UTC millis).
    pub expires_at: i64,
}

/// Why an answer holds no offer.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct SuppressedAnswer {
    /// NO_CONSENT, CONTACT_POLICY, CONTROL_GROUP or NO_ELIGIBLE_RULE.
    pub reason: String,
    /// In plain words, from the audit record.
    pub detail: String,
}

impl OfferAnswer {
    /// An offer record as the channel sees it; `value` is its rule's.
    pub fn of(o: &NextBestOffer, value: f64) -> Self {
        let features = o
            .features
            .0
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        Self {
            offer_id: o.offer_id.clone(),
            offer_code: o.offer_code.clone(),
            product: o.product_category.as_str().to_string(),
            rule_id: o.rule_id.clone(),
            rule_version: o.rule_version,
            propensity: o.propensity,
            explored: o.explored,
            value,
            priority: o.score,
            reasons: o.reasons.iter().map(ToString::to_string).collect(),
            features,
            expires_at: o.expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<(Request, usize), ApiError> {
        let settings = ApiSettings {
            channels: vec!["ATM".into()],
            max_id_chars: 12,
            ..ApiSettings::default()
        };
        DecisionRequest::parse(body.as_bytes(), &settings, "D1", 7)
    }

    fn code(body: &str) -> &'static str {
        parse(body).unwrap_err().code
    }

    #[test]
    fn a_good_request_becomes_the_inbound_event() {
        let (r, n) = parse(
            r#"{"customer_id":"C1","channel":"ATM","context":{"placement":"home"},"max_offers":2}"#,
        )
        .unwrap();
        assert_eq!(
            (r.customer_id.as_str(), r.channel.as_str(), n),
            ("C1", "ATM", 2)
        );
        assert_eq!(r.placement.as_deref(), Some("home"));
        assert_eq!((r.decision_id.as_str(), r.at), ("D1", 7));
    }

    #[test]
    fn each_bad_field_gets_its_own_error() {
        assert_eq!(code("{"), "bad_json");
        assert_eq!(
            code(r#"{"customer_id":"C1","channel":"APP","x":1}"#),
            "bad_json"
        );
        assert_eq!(
            code(r#"{"customer_id":"C1","channel":"FAX"}"#),
            "unknown_channel"
        );
        assert_eq!(
            code(r#"{"customer_id":"","channel":"APP"}"#),
            "bad_customer_id"
        );
        assert_eq!(
            code(r#"{"customer_id":"C1234567890123","channel":"APP"}"#),
            "bad_customer_id"
        );
        assert_eq!(
            code(r#"{"customer_id":"C1","channel":"APP","context":{"colour":"red"}}"#),
            "bad_json"
        );
        assert_eq!(
            code(r#"{"customer_id":"C1","channel":"APP","context":{"intent":"a\u0000"}}"#),
            "bad_context"
        );
        assert_eq!(
            code(r#"{"customer_id":"C1","channel":"APP","max_offers":6}"#),
            "bad_max_offers"
        );
        let err = parse(r#"{"customer_id":"C1","channel":"FAX"}"#).unwrap_err();
        assert!(
            err.message.contains("APP, WEB, CALL_CENTRE, BRANCH, ATM"),
            "{}",
            err.message
        );
    }
}
