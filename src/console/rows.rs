//! What the live view shows and filters: one offer or alert as a row, and the filter of the
//! rows (and of the chart).

use crate::output::{NextBestOffer, RiskAlert};
use serde::Serialize;

/// One offer or alert, as the live view shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// Arrival number in this console (increasing): the live stream's cursor.
    pub seq: u64,
    /// `offer` or `alert`.
    pub kind: &'static str,
    /// When it was decided or raised (ms since epoch).
    pub at: i64,
    /// Customer id.
    pub customer_id: String,
    /// Rule that decided it.
    pub rule_id: String,
    /// That rule's version.
    pub rule_version: i32,
    /// Product family (offers).
    pub product: Option<&'static str>,
    /// Contact channel (offers).
    pub channel: Option<&'static str>,
    /// Offer code (offers).
    pub offer_code: Option<String>,
    /// Score (offers).
    pub score: Option<f64>,
    /// The propensity the offer was ranked by (offers that record it).
    pub propensity: Option<f64>,
    /// The offer's decision explored (ranked by a draw from the learned posterior).
    pub explored: bool,
    /// Alert kind (alerts).
    pub alert_kind: Option<&'static str>,
    /// Severity (alerts).
    pub severity: Option<&'static str>,
    /// Why, in the rule's words.
    pub reasons: Vec<String>,
    /// The feature values the decision used.
    pub features: Vec<(String, f64)>,
}

impl Row {
    /// The row of an offer.
    pub fn offer(o: NextBestOffer) -> Self {
        Row {
            seq: 0,
            kind: "offer",
            at: o.decided_at,
            customer_id: o.customer_id,
            rule_id: o.rule_id,
            rule_version: o.rule_version,
            product: Some(o.product_category.as_str()),
            channel: Some(o.channel.as_str()),
            offer_code: Some(o.offer_code),
            score: Some(o.score),
            propensity: o.propensity,
            explored: o.explored,
            alert_kind: None,
            severity: None,
            reasons: o.reasons.iter().map(|r| r.to_string()).collect(),
            features: o
                .features
                .0
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }

    /// The row of an alert.
    pub fn alert(a: RiskAlert) -> Self {
        Row {
            seq: 0,
            kind: "alert",
            at: a.raised_at,
            customer_id: a.customer_id,
            rule_id: a.rule_id,
            rule_version: a.rule_version,
            product: None,
            channel: None,
            offer_code: None,
            score: None,
            propensity: None,
            explored: false,
            alert_kind: Some(a.kind.as_str()),
            severity: Some(a.severity.as_str()),
            reasons: a.reasons.iter().map(|r| r.to_string()).collect(),
            features: a
                .features
                .0
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

/// A filter of the live view; an empty field matches everything.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct Filter {
    /// Rule id.
    pub rule: String,
    /// Alert severity.
    pub severity: String,
    /// Offer product family.
    pub product: String,
    /// Offer channel.
    pub channel: String,
}

impl Filter {
    /// Whether `row` passes.
    pub fn matches(&self, row: &Row) -> bool {
        let is = |want: &str, have: Option<&str>| want.is_empty() || have == Some(want);
        (self.rule.is_empty() || self.rule == row.rule_id)
            && is(&self.severity, row.severity)
            && is(&self.product, row.product)
            && is(&self.channel, row.channel)
    }
}
