//! The starter rules, in plain words beside each. Thresholds are in the features' units (major
//! currency units, counts).

use super::{AlertRule, Cmp, OfferRule, Operand, Resolver, RuleError, RuleHead, RuleSet};
use crate::event::{AlertKind, ContactChannel, EventKind, ProductCategory, Severity};
use crate::features::FeatureSet;

const DAY_MS: i64 = 24 * 3600 * 1000;

fn head(
    id: &str,
    description: &str,
    triggers: &[EventKind],
    checks: Vec<super::Check>,
) -> RuleHead {
    RuleHead {
        id: id.into(),
        version: 1,
        description: description.into(),
        triggers: triggers.to_vec(),
        checks,
    }
}

/// Builds the starter rule set over `features` (feature names resolved to slots here).
pub fn starter(features: &FeatureSet) -> Result<RuleSet, RuleError> {
    let mut offers = Vec::new();
    let mut alerts = Vec::new();

    // A customer who spends a lot by debit card and never uses a credit card is offered a
    // rewards credit card.
    let r = Resolver::new(features, "offer-credit-card-heavy-debit");
    offers.push(OfferRule {
        head: head(
            "offer-credit-card-heavy-debit",
            "Rewards credit card for heavy debit-card spenders with no credit-card use in 30 days",
            &[EventKind::Transaction],
            vec![
                r.feature("debit_card_spend_30d", Cmp::Ge, 1500.0)?,
                r.feature("credit_card_txn_count_30d", Cmp::Eq, 0.0)?,
            ],
        ),
        offer_code: "CC-REWARDS-01".into(),
        product: ProductCategory::CreditCard,
        value: 120.0,
        weight: 1.0,
        intercept: -2.0,
        coefficients: vec![(r.slot("debit_card_spend_30d")?, 0.0008)],
        channels: vec![
            ContactChannel::Push,
            ContactChannel::Email,
            ContactChannel::Sms,
        ],
        cooldown_ms: 30 * DAY_MS,
    });

    // A customer with large deposits or a high balance is offered a wealth-management product.
    let r = Resolver::new(features, "offer-wealth-high-balance");
    offers.push(OfferRule {
        head: head(
            "offer-wealth-high-balance",
            "Wealth-management product for customers whose balance reached 50,000 in 30 days",
            &[EventKind::Transaction],
            vec![r.feature("max_balance_30d", Cmp::Ge, 50_000.0)?],
        ),
        offer_code: "WEALTH-ADVISORY-01".into(),
        product: ProductCategory::Wealth,
        value: 400.0,
        weight: 1.0,
        intercept: -3.0,
        coefficients: vec![
            (r.slot("deposits_30d")?, 0.00005),
            (r.slot("max_balance_30d")?, 0.00002),
        ],
        channels: vec![
            ContactChannel::Call,
            ContactChannel::Email,
            ContactChannel::Branch,
        ],
        cooldown_ms: 60 * DAY_MS,
    });

    // A customer who keeps reading loan pages, with an adequate credit score, is offered a
    // personal loan.
    let r = Resolver::new(features, "offer-personal-loan-researcher");
    offers.push(OfferRule {
        head: head(
            "offer-personal-loan-researcher",
            "Personal loan for customers with 3+ loan page or app views in 7 days and credit score >= 620",
            &[EventKind::Clickstream, EventKind::App],
            vec![
                r.sum("loan_page_views_7d", "loan_app_views_7d", Cmp::Ge, 3.0)?,
                r.other(Operand::CreditScore, "credit_score", Cmp::Ge, 620.0),
            ],
        ),
        offer_code: "LOAN-PERSONAL-01".into(),
        product: ProductCategory::Loan,
        value: 250.0,
        weight: 1.0,
        intercept: -1.5,
        coefficients: vec![(r.slot("loan_page_views_7d")?, 0.3), (r.slot("loan_app_views_7d")?, 0.3)],
        channels: vec![ContactChannel::Push, ContactChannel::Email],
        cooldown_ms: 14 * DAY_MS,
    });

    // Many card payments within an hour: possible card compromise.
    let r = Resolver::new(features, "alert-card-velocity");
    alerts.push(AlertRule {
        head: head(
            "alert-card-velocity",
            "Card velocity: 8 or more card payments within one hour",
            &[EventKind::Transaction],
            vec![r.feature("card_txn_count_1h", Cmp::Ge, 8.0)?],
        ),
        kind: AlertKind::Fraud,
        severity: Severity::High,
        cooldown_ms: DAY_MS / 24,
    });

    // Card used in three or more countries within a day.
    let r = Resolver::new(features, "alert-many-countries");
    alerts.push(AlertRule {
        head: head(
            "alert-many-countries",
            "Card payments in 3 or more countries within 24 hours",
            &[EventKind::Transaction],
            vec![r.feature("countries_24h", Cmp::Ge, 3.0)?],
        ),
        kind: AlertKind::Fraud,
        severity: Severity::Critical,
        cooldown_ms: DAY_MS,
    });

    // Repeated complaints: escalate before the customer leaves.
    let r = Resolver::new(features, "alert-complaint-escalation");
    alerts.push(AlertRule {
        head: head(
            "alert-complaint-escalation",
            "Three or more complaints within 30 days",
            &[EventKind::Feedback],
            vec![r.feature("complaints_30d", Cmp::Ge, 3.0)?],
        ),
        kind: AlertKind::ComplaintEscalation,
        severity: Severity::Medium,
        cooldown_ms: 7 * DAY_MS,
    });

    Ok(RuleSet {
        version: 1,
        offers,
        alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_rules_resolve_against_the_builtin_features() {
        let features = crate::features::spec::load(None).unwrap();
        let set = starter(&features).unwrap();
        assert_eq!(set.counts(), (3, 3));
        let bad = Resolver::new(&features, "x").feature("no_such_feature", Cmp::Ge, 1.0);
        assert!(bad.unwrap_err().to_string().contains("no_such_feature"));
    }
}
