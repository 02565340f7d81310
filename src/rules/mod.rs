//! Rules: offer and alert rules as data, with feature names resolved to slots when a rule set is
//! built (never looked up per event). Issue 4 brings rule documents, CEL conditions and hot reload
//! behind these same types.

pub mod builtin;
pub mod condition;

use crate::event::{AlertKind, ContactChannel, EventKind, ProductCategory, Severity};
use crate::features::FeatureSet;

/// What a condition reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operand {
    /// A feature, by slot in the operator's feature list.
    Feature(usize),
    /// The sum of two features (e.g. web and app views of one product).
    Sum(usize, usize),
    /// The profile's credit score (a missing score or profile fails the check).
    CreditScore,
    /// The triggering transaction's amount in major units (0 for other events).
    EventAmount,
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `>=`
    Ge,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `<`
    Lt,
    /// `==`
    Eq,
}

impl Cmp {
    /// Applies the comparison.
    pub fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Cmp::Ge => left >= right,
            Cmp::Gt => left > right,
            Cmp::Le => left <= right,
            Cmp::Lt => left < right,
            Cmp::Eq => left == right,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cmp::Ge => ">=",
            Cmp::Gt => ">",
            Cmp::Le => "<=",
            Cmp::Lt => "<",
            Cmp::Eq => "==",
        }
    }
}

/// One check of a condition; a rule's condition is all of its checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What is compared.
    pub operand: Operand,
    /// How.
    pub cmp: Cmp,
    /// Against what.
    pub value: f64,
    /// Plain-words text of the check, for reasons (`debit_card_spend_30d >= 1500`).
    pub text: std::sync::Arc<str>,
}

/// Fields every rule has.
#[derive(Debug, Clone)]
pub struct RuleHead {
    /// Stable rule id.
    pub id: String,
    /// Version; a new version replaces the old.
    pub version: i32,
    /// What the rule does, in plain words.
    pub description: String,
    /// Event types that trigger it.
    pub triggers: Vec<EventKind>,
    /// Condition: all checks must hold.
    pub checks: Vec<Check>,
}

/// A rule that proposes an offer.
#[derive(Debug, Clone)]
pub struct OfferRule {
    /// Id, version, triggers, condition.
    pub head: RuleHead,
    /// Marketing's offer code.
    pub offer_code: String,
    /// Product family.
    pub product: ProductCategory,
    /// Value of a conversion to the bank (arbitrary units, comparable across rules).
    pub value: f64,
    /// Business weight (campaign priority).
    pub weight: f64,
    /// Logistic propensity model: intercept.
    pub intercept: f64,
    /// Logistic propensity model: weight per feature slot.
    pub coefficients: Vec<(usize, f64)>,
    /// Channels in order of preference; the first one the customer permits is used.
    pub channels: Vec<ContactChannel>,
    /// No second offer of this rule to a customer within this many milliseconds.
    pub cooldown_ms: i64,
}

/// A rule that raises a risk alert.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// Id, version, triggers, condition.
    pub head: RuleHead,
    /// Alert family.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// The same alert is not raised again for the customer within this many milliseconds.
    pub cooldown_ms: i64,
}

/// A rule set in force, with a version that audit records carry.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// Version of the whole set.
    pub version: i64,
    /// Offer rules.
    pub offers: Vec<OfferRule>,
    /// Alert rules.
    pub alerts: Vec<AlertRule>,
}

/// A rule that cannot be built.
#[derive(Debug, Clone, thiserror::Error)]
#[error("rule {rule_id}: {reason}")]
pub struct RuleError {
    /// The rule.
    pub rule_id: String,
    /// Why.
    pub reason: String,
}

/// Resolves feature names to slots while rules are built.
pub struct Resolver<'a> {
    features: &'a FeatureSet,
    rule_id: String,
}

impl<'a> Resolver<'a> {
    /// A resolver for rule `rule_id` over `features`.
    pub fn new(features: &'a FeatureSet, rule_id: &str) -> Self {
        Self {
            features,
            rule_id: rule_id.to_string(),
        }
    }

    /// The slot of feature `name`.
    pub fn slot(&self, name: &str) -> Result<usize, RuleError> {
        self.features.slot(name).ok_or_else(|| RuleError {
            rule_id: self.rule_id.clone(),
            reason: format!("unknown feature `{name}`"),
        })
    }

    /// A check on feature `name`.
    pub fn feature(&self, name: &str, cmp: Cmp, value: f64) -> Result<Check, RuleError> {
        Ok(Check {
            operand: Operand::Feature(self.slot(name)?),
            cmp,
            value,
            text: format!("{name} {} {value}", cmp.symbol()).into(),
        })
    }

    /// A check on the sum of two features.
    pub fn sum(&self, a: &str, b: &str, cmp: Cmp, value: f64) -> Result<Check, RuleError> {
        Ok(Check {
            operand: Operand::Sum(self.slot(a)?, self.slot(b)?),
            cmp,
            value,
            text: format!("{a} + {b} {} {value}", cmp.symbol()).into(),
        })
    }

    /// A check on something other than a feature.
    pub fn other(&self, operand: Operand, label: &str, cmp: Cmp, value: f64) -> Check {
        Check {
            operand,
            cmp,
            value,
            text: format!("{label} {} {value}", cmp.symbol()).into(),
        }
    }
}

impl RuleSet {
    /// Counts of (offer, alert) rules.
    pub fn counts(&self) -> (usize, usize) {
        (self.offers.len(), self.alerts.len())
    }
}
