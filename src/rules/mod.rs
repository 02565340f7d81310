//! Rules: offer and alert rules written as documents ([`document`]) with CEL conditions, compiled
//! once per rule version into typed programs ([`condition`]) whose feature names are resolved to
//! slots, so nothing is looked up by name per event. [`load`] reads documents from files and the
//! built-in starter set; [`book`] keeps the rules in force and applies changes from the rules
//! topic (hot reload).

pub mod book;
pub mod condition;
pub mod document;
pub mod edit;
pub mod history;
pub mod load;
pub mod problems;
mod schema;

use crate::event::{AlertKind, ContactChannel, EventKind, ProductCategory, Severity};
use crate::features::FeatureSet;
use condition::{Condition, ConditionError};
use document::{RuleDocument, RuleState};

/// Fields every rule has.
#[derive(Debug, Clone)]
pub struct RuleHead {
    /// Stable rule id.
    pub id: String,
    /// Version; a new version replaces the old.
    pub version: i32,
    /// What the rule does, in plain words.
    pub description: String,
    /// Active, shadow or paused.
    pub state: RuleState,
    /// Event types that trigger it.
    pub triggers: Vec<EventKind>,
    /// The compiled condition.
    pub condition: Condition,
    /// Feature slots the decision record shows: the condition's, then the propensity model's.
    pub used_slots: Vec<usize>,
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
    /// The configured propensity's weight, in responses, as the prior of the learned one
    /// (`None`: `operator.learning.prior_evidence`).
    pub evidence: Option<f64>,
    /// What the learned propensity is split by (`None`: one model for the offer).
    pub segment: Option<crate::learning::model::SegmentBy>,
    /// Channels in order of preference; the first one the customer permits is used.
    pub channels: Vec<ContactChannel>,
    /// No second offer of this rule to a customer within this many milliseconds.
    pub cooldown_ms: i64,
    /// How long the offer stays valid, ms (None: the operator's default).
    pub validity_ms: Option<i64>,
}

impl OfferRule {
    /// Whether the offer is chosen from the customer's profile of behaviour: its condition or
    /// its propensity model reads features. Such a rule is not evaluated for a customer who
    /// has not consented to profiling; a rule that reads only the triggering event and the CRM
    /// profile (contextual marketing) is.
    pub fn personalised(&self) -> bool {
        !self.head.condition.feature_slots().is_empty() || !self.coefficients.is_empty()
    }
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

/// A compiled rule of either kind.
#[derive(Debug, Clone)]
pub enum Rule {
    /// An offer rule.
    Offer(OfferRule),
    /// An alert rule.
    Alert(AlertRule),
}

impl Rule {
    /// The common fields.
    pub fn head(&self) -> &RuleHead {
        match self {
            Rule::Offer(r) => &r.head,
            Rule::Alert(r) => &r.head,
        }
    }
}

/// A rule set in force, with a version that audit records carry.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Version of the whole set: 0 for rules from files only, otherwise one more than the offset
    /// of the last change applied from the rules topic (so every instance agrees on it).
    pub version: i64,
    /// Offer rules, sorted by id.
    pub offers: Vec<OfferRule>,
    /// Alert rules, sorted by id.
    pub alerts: Vec<AlertRule>,
}

impl RuleSet {
    /// A set of `rules` at `version` (rules are ordered by id, so the set is the same whatever
    /// order they came in).
    pub fn new(version: i64, rules: impl IntoIterator<Item = Rule>) -> Self {
        let mut set = RuleSet {
            version,
            ..RuleSet::default()
        };
        for rule in rules {
            match rule {
                Rule::Offer(r) => set.offers.push(r),
                Rule::Alert(r) => set.alerts.push(r),
            }
        }
        set.offers.sort_by(|a, b| a.head.id.cmp(&b.head.id));
        set.alerts.sort_by(|a, b| a.head.id.cmp(&b.head.id));
        set
    }

    /// Counts of (offer, alert) rules.
    pub fn counts(&self) -> (usize, usize) {
        (self.offers.len(), self.alerts.len())
    }

    /// Every rule's head.
    pub fn heads(&self) -> impl Iterator<Item = &RuleHead> {
        self.offers
            .iter()
            .map(|r| &r.head)
            .chain(self.alerts.iter().map(|r| &r.head))
    }
}

/// A rule that cannot be built: which rule and why (with the line and column for conditions).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("rule {rule_id}: {reason}")]
pub struct RuleError {
    /// The rule (or the file, when the document has no readable id).
    pub rule_id: String,
    /// Why.
    pub reason: String,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Why a document does not compile: which part of it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileProblem {
    /// A field's value.
    Field {
        /// The field's path in the document (`triggers`, `offer.propensity.weights.x`); empty
        /// for the document as a whole.
        field: String,
        /// What is wrong (naming the field).
        message: String,
    },
    /// The condition, at a line and column of the condition's own text.
    Condition(ConditionError),
}

impl std::fmt::Display for CompileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompileProblem::Field { message, .. } => f.write_str(message),
            CompileProblem::Condition(e) => write!(f, "condition, {e}"),
        }
    }
}

/// Compiles a document against the feature set in force: the first problem of [`compile_all`].
pub fn compile(doc: &RuleDocument, features: &FeatureSet) -> Result<Rule, RuleError> {
    compile_all(doc, features).map_err(|problems| RuleError {
        rule_id: doc.id.clone(),
        reason: problems
            .first()
            .map_or_else(|| "does not compile".to_string(), ToString::to_string),
    })
}

/// Compiles a document against the feature set in force, or every problem found in one pass
/// (each trigger, each error of the condition, each propensity weight; never empty).
pub fn compile_all(doc: &RuleDocument, features: &FeatureSet) -> Result<Rule, Vec<CompileProblem>> {
    let mut problems = Vec::new();
    let (triggers, condition) =
        compile_condition(&doc.triggers, &doc.condition, features, &mut problems);
    let mut used_slots = condition
        .as_ref()
        .map(|c| c.feature_slots().to_vec())
        .unwrap_or_default();
    let coefficients = doc
        .offer
        .as_ref()
        .map(|o| propensity(o, features, &mut used_slots, &mut problems));
    let Some(condition) = condition.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    let head = RuleHead {
        id: doc.id.clone(),
        version: doc.version,
        description: doc.description.trim().to_string(),
        state: doc.state,
        triggers,
        condition,
        used_slots,
    };
    match (&doc.offer, &doc.alert, coefficients) {
        (Some(o), None, Some(coefficients)) => Ok(Rule::Offer(OfferRule {
            head,
            offer_code: o.offer_code.clone(),
            product: o.product,
            value: o.value,
            weight: o.weight,
            intercept: o.propensity.intercept,
            coefficients,
            evidence: o.propensity.evidence,
            segment: o
                .propensity
                .segment
                .as_deref()
                .and_then(|s| crate::learning::model::SegmentBy::parse(s).ok()),
            channels: o.channels.clone(),
            cooldown_ms: ms(o.cooldown),
            validity_ms: o.validity.map(ms),
        })),
        (None, Some(_), _)
            if head
                .triggers
                .contains(&EventKind::Declared(EventKind::INBOUND)) =>
        {
            Err(vec![CompileProblem::Field {
                field: "triggers".into(),
                message: "an alert rule cannot trigger on InboundRequest: inbound requests are \
                          answered with offers; raise alerts from the events the stream takes in"
                    .into(),
            }])
        }
        (None, Some(a), _) => Ok(Rule::Alert(AlertRule {
            head,
            kind: a.kind,
            severity: a.severity,
            cooldown_ms: ms(a.cooldown),
        })),
        _ => Err(vec![CompileProblem::Field {
            field: String::new(),
            message: "needs exactly one of [offer] and [alert]".into(),
        }]),
    }
}

/// The trigger kinds named by `names` and the condition compiled for them; every problem of
/// either is added to `problems` (the condition is not compiled when no trigger is valid).
pub(crate) fn compile_condition(
    names: &[String],
    source: &str,
    features: &FeatureSet,
    problems: &mut Vec<CompileProblem>,
) -> (Vec<EventKind>, Option<Condition>) {
    let mut triggers = Vec::new();
    let before = problems.len();
    for name in names {
        let field = |message: String| CompileProblem::Field {
            field: "triggers".into(),
            message,
        };
        match features.catalog().kind_of(name) {
            None => problems.push(field(format!(
                "unknown trigger {name:?} (one of {}, {})",
                features.catalog().record_names().join(", "),
                crate::catalog::inbound::RECORD
            ))),
            Some(EventKind::Erasure) => {
                problems.push(field("erasure requests cannot trigger rules".into()))
            }
            Some(EventKind::AlertOutcome) => problems.push(field(
                "alert outcomes label their alerts; they cannot trigger rules".into(),
            )),
            Some(kind) if !triggers.contains(&kind) => triggers.push(kind),
            Some(_) => {}
        }
    }
    if triggers.is_empty() && problems.len() > before {
        return (triggers, None);
    }
    match Condition::compile_all(source, &triggers, features) {
        Ok(condition) => (triggers, Some(condition)),
        Err(errors) => {
            problems.extend(errors.into_iter().map(CompileProblem::Condition));
            (triggers, None)
        }
    }
}

/// The propensity model's coefficients by feature slot (each slot also added to `used_slots`);
/// every unknown feature is added to `problems`.
fn propensity(
    offer: &document::OfferSpec,
    features: &FeatureSet,
    used_slots: &mut Vec<usize>,
    problems: &mut Vec<CompileProblem>,
) -> Vec<(usize, f64)> {
    let mut coefficients = Vec::new();
    for (name, w) in &offer.propensity.weights {
        let Some(slot) = features.slot(name) else {
            problems.push(CompileProblem::Field {
                field: format!("offer.propensity.weights.{name}"),
                message: format!("offer.propensity.weights: unknown feature `{name}`"),
            });
            continue;
        };
        coefficients.push((slot, *w));
        if !used_slots.contains(&slot) {
            used_slots.push(slot);
        }
    }
    coefficients
}
