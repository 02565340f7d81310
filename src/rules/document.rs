//! Rule documents: what a rule author writes, as TOML or YAML. The same text is a file under
//! `rules/` and the value of the compacted `bank.rules.v1` topic (key = rule id).
//!
//! ```toml
//! id = "offer-credit-card-heavy-debit"      # stable id: [a-z0-9-], the topic key
//! version = 3                                # a new version replaces the old; it must grow
//! state = "active"                           # active | shadow | paused
//! description = "Rewards credit card for heavy debit-card spenders"
//! triggers = ["TransactionEvent"]            # Avro record names of the events that evaluate it
//! condition = '''
//!   features.debit_card_spend_30d >= 1500.0 && features.credit_card_txn_count_30d == 0.0
//! '''                                        # CEL over `event`, `features`, `profile`
//!
//! [offer]                                    # or [alert]; exactly one of the two
//! offer_code = "CC-REWARDS-01"
//! product = "CREDIT_CARD"
//! value = 120.0                              # value of a conversion (comparable across rules)
//! weight = 1.0                               # business weight (campaign priority)
//! channels = ["PUSH", "EMAIL"]               # in order of preference
//! cooldown = "30d"                           # no second offer of this rule within this
//! validity = "7d"                            # optional; default operator.offer_validity
//! propensity = { intercept = -2.0, weights = { debit_card_spend_30d = 0.0008 } }
//! # optional: evidence = 50 (the prior's weight in responses; default operator.learning's),
//! #           segment = "profile.segment" (one learned model per segment; default one model)
//!
//! # [alert]
//! # kind = "FRAUD"                           # FRAUD CREDIT_RISK COMPLAINT_ESCALATION ATTRITION
//! # severity = "HIGH"                        # LOW MEDIUM HIGH CRITICAL
//! # cooldown = "1h"
//! ```

use crate::event::{AlertKind, ContactChannel, ProductCategory, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Whether a rule runs, and whether what it decides goes out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleState {
    /// Evaluated; decisions go out.
    #[default]
    Active,
    /// Evaluated and audited (outcome SHADOW); nothing goes out and no contact is recorded.
    Shadow,
    /// Not evaluated.
    Paused,
}

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDocument {
    /// Stable id (`[a-z0-9-]`, at most 64 characters); the key on the rules topic.
    pub id: String,
    /// Version: a new version replaces the old one and must be greater.
    pub version: i32,
    /// Active, shadow or paused.
    #[serde(default)]
    pub state: RuleState,
    /// What the rule does, in plain words (shown to compliance).
    pub description: String,
    /// Avro record names of the events that evaluate the rule (e.g. `TransactionEvent`).
    pub triggers: Vec<String>,
    /// CEL condition over `event`, `features` and `profile`.
    pub condition: String,
    /// Offer settings (an offer rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<OfferSpec>,
    /// Alert settings (an alert rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertSpec>,
}

/// The offer part of a rule document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferSpec {
    /// Marketing's offer code.
    pub offer_code: String,
    /// Product family (`CREDIT_CARD`, `LOAN`, ...).
    pub product: ProductCategory,
    /// Value of a conversion to the bank, in units comparable across rules.
    pub value: f64,
    /// Business weight (campaign priority); 1 by default.
    #[serde(default = "one")]
    pub weight: f64,
    /// Channels in order of preference; the first one the customer permits is used.
    pub channels: Vec<ContactChannel>,
    /// No second offer of this rule to a customer within this long.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// How long the offer stays valid; default `operator.offer_validity`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub validity: Option<Duration>,
    /// Logistic propensity model.
    pub propensity: PropensitySpec,
}

fn one() -> f64 {
    1.0
}

/// A logistic model: `1 / (1 + e^-(intercept + Σ weight·feature))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropensitySpec {
    /// Intercept.
    pub intercept: f64,
    /// Weight per feature name.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    /// How many responses the configured propensity is worth as the prior of the learned one;
    /// default `operator.learning.prior_evidence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<f64>,
    /// What the learned propensity is split by, one model per value (`profile.segment`,
    /// `profile.lifecycle_stage`); default one model for the offer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
}

/// The alert part of a rule document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Alert family.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// The same alert is not raised again for a customer within this long.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
}

/// A document that does not parse, with where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DocumentError {
    /// What is wrong, with the line and column where the parser knows them.
    pub message: String,
}

/// Which text format a document is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML.
    Toml,
    /// YAML.
    Yaml,
}

impl Format {
    /// The format of a file, by its extension.
    pub fn of_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }

    /// A best guess for text without a name (a topic value): TOML assigns with `=`, YAML with `:`.
    pub fn guess(text: &str) -> Format {
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#') && l != &"---");
        match first {
            Some(line) if line.starts_with('[') || line.contains('=') && !line.contains(": ") => {
                Format::Toml
            }
            _ => Format::Yaml,
        }
    }
}

impl RuleDocument {
    /// Parses a document in `format`: the first problem of its fields or of their values.
    pub fn parse(text: &str, format: Format) -> Result<RuleDocument, DocumentError> {
        let doc = Self::deserialize(text, format)?;
        match doc.shape_problems().into_iter().next() {
            Some((_, message)) => Err(DocumentError {
                message: format!("rule {}: {message}", doc.id),
            }),
            None => Ok(doc),
        }
    }

    /// Reads the fields of a document in `format` (types only: [`RuleDocument::shape_problems`]
    /// checks the values).
    pub(crate) fn deserialize(text: &str, format: Format) -> Result<RuleDocument, DocumentError> {
        match format {
            Format::Toml => toml::from_str(text).map_err(|e| DocumentError {
                message: toml_message(&e, text),
            }),
            Format::Yaml => serde_yaml_ng::from_str(text).map_err(|e| DocumentError {
                message: match e.location() {
                    Some(l) => format!("line {}, column {}: {e}", l.line(), l.column()),
                    None => e.to_string(),
                },
            }),
        }
    }

    /// Parses text whose format is guessed ([`Format::guess`]).
    pub fn parse_guessing(text: &str) -> Result<RuleDocument, DocumentError> {
        Self::parse(text, Format::guess(text))
    }

    /// The document as TOML (what `rules publish` sends when given YAML is the original text;
    /// this is for tools that build documents).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Offer or alert rule.
    pub fn is_offer(&self) -> bool {
        self.offer.is_some()
    }

    /// Every value that reads but is not allowed, each with the path of its field (`id`,
    /// `offer.value`; empty for the document as a whole).
    pub(crate) fn shape_problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        let mut fail = |field: &'static str, message: &str| problems.push((field, message.into()));
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            fail("id", "id must be 1..=64 characters of a-z, 0-9 and -");
        }
        if self.version < 1 {
            fail("version", "version must be at least 1");
        }
        if self.description.trim().is_empty() {
            fail(
                "description",
                "description must say in plain words what the rule does",
            );
        }
        if self.triggers.is_empty() {
            fail("triggers", "triggers must name at least one event type");
        }
        match (&self.offer, &self.alert) {
            (Some(_), Some(_)) => fail(
                "alert",
                "has both [offer] and [alert]; a rule is one or the other",
            ),
            (None, None) => fail("", "needs an [offer] or an [alert] section"),
            (Some(o), None) => {
                if o.channels.is_empty() {
                    fail(
                        "offer.channels",
                        "offer.channels must name at least one channel",
                    );
                }
                if !(o.value.is_finite() && o.value > 0.0) {
                    fail("offer.value", "offer.value must be a positive number");
                }
                if !(o.weight.is_finite() && o.weight > 0.0) {
                    fail("offer.weight", "offer.weight must be a positive number");
                }
                if !o.propensity.intercept.is_finite()
                    || o.propensity.weights.values().any(|w| !w.is_finite())
                {
                    fail(
                        "offer.propensity",
                        "offer.propensity numbers must be finite",
                    );
                }
                if o.propensity
                    .evidence
                    .is_some_and(|e| !(e.is_finite() && e > 0.0))
                {
                    fail(
                        "offer.propensity.evidence",
                        "offer.propensity.evidence must be a positive number of responses",
                    );
                }
                if let Some(Err(why)) = o
                    .propensity
                    .segment
                    .as_deref()
                    .map(crate::learning::model::SegmentBy::parse)
                {
                    fail(
                        "offer.propensity.segment",
                        &format!("offer.propensity.segment: {why}"),
                    );
                }
            }
            (None, Some(_)) => {}
        }
        problems
    }
}

fn toml_message(e: &toml::de::Error, text: &str) -> String {
    let what = e.message();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {what}")
        }
        None => what.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"
id = "offer-x"
version = 2
description = "An offer"
triggers = ["TransactionEvent"]
condition = "features.spend_24h > 10.0"
[offer]
offer_code = "X-1"
product = "CREDIT_CARD"
value = 100.0
channels = ["EMAIL"]
cooldown = "30d"
propensity = { intercept = -1.0, weights = { spend_24h = 0.01 } }
"#;

    #[test]
    fn toml_and_yaml_documents_read_the_same() {
        let a = RuleDocument::parse_guessing(TOML).unwrap();
        let yaml = r#"
id: offer-x
version: 2
description: An offer
triggers: [TransactionEvent]
condition: features.spend_24h > 10.0
offer:
  offer_code: X-1
  product: CREDIT_CARD
  value: 100.0
  channels: [EMAIL]
  cooldown: 30d
  propensity:
    intercept: -1.0
    weights:
      spend_24h: 0.01
"#;
        let b = RuleDocument::parse_guessing(yaml).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.state, RuleState::Active);
        assert_eq!(a.offer.as_ref().unwrap().weight, 1.0);
        assert_eq!(RuleDocument::parse_guessing(&a.to_toml()).unwrap(), a);
    }

    #[test]
    fn bad_documents_say_what_and_where() {
        let cases = [
            (
                TOML.replace("version = 2", "version = 0"),
                "version must be at least 1",
            ),
            (TOML.replace("offer-x", "Offer X"), "id must be"),
            (
                TOML.replace("product = \"CREDIT_CARD\"", "product = \"CAR\""),
                "line 9",
            ),
            (TOML.replace("value = 100.0", "value = -1.0"), "offer.value"),
            (
                TOML.replace("cooldown = \"30d\"", "cooldown = \"soon\""),
                "line 12",
            ),
            (
                TOML.replace(
                    "[offer]",
                    "[alert]\nkind = \"FRAUD\"\nseverity = \"LOW\"\ncooldown = \"1h\"\n[offer]",
                ),
                "both",
            ),
            (
                TOML.replace("description", "colour = 1\ndescription"),
                "unknown field `colour`",
            ),
        ];
        for (text, expected) in cases {
            let err = RuleDocument::parse_guessing(&text).unwrap_err().message;
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
    }
}
