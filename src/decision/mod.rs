//! Decisioning after the rules: arbitration among eligible offers, contact policy, consent and the
//! control group, plus the deterministic ids of decisions. Pure: time comes from the trigger event.

use crate::event::{ContactChannel, DecisionOutcome};
use crate::rules::OfferRule;
use crate::state::CustomerState;

/// Contact-policy settings, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Most offers per customer per `contact_period_ms`.
    pub max_offers_per_period: u32,
    /// The period of that limit.
    pub contact_period_ms: i64,
    /// No marketing offer within this long after a HIGH or CRITICAL alert.
    pub risk_quiet_ms: i64,
    /// Percentage (0..=100) of customers held out per rule as a control group.
    pub control_group_percent: u8,
}

/// A deterministic id: the same rule version and trigger always give the same id, so a replay
/// after a crash produces byte-identical records. 128 bits of XXH3 (a fixed, documented
/// algorithm, so ids stay stable across releases) as 32 hex digits.
pub fn decision_id(
    kind: &str,
    rule_id: &str,
    rule_version: i32,
    customer_id: &str,
    trigger_event_id: &str,
) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for part in [
        kind.as_bytes(),
        rule_id.as_bytes(),
        &rule_version.to_le_bytes(),
        customer_id.as_bytes(),
        trigger_event_id.as_bytes(),
    ] {
        h.update(&(part.len() as u32).to_le_bytes());
        h.update(part);
    }
    format!("{:032x}", h.digest128())
}

/// Picks the best offer: highest score, ties broken by rule id (deterministic).
pub fn arbitrate<'r>(candidates: &mut [(f64, &'r OfferRule)]) -> Option<(f64, &'r OfferRule)> {
    candidates.sort_by(|a, b| {
        b.0.partial_cmp(&a.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.1.head.id.cmp(&b.1.head.id))
    });
    candidates.first().copied()
}

/// The propensity of a logistic model: `1 / (1 + e^-(intercept + Σ w·x))`.
pub fn propensity(
    intercept: f64,
    coefficients: &[(usize, f64)],
    mut feature: impl FnMut(usize) -> f64,
) -> f64 {
    let z = coefficients
        .iter()
        .fold(intercept, |acc, (slot, w)| acc + w * feature(*slot));
    1.0 / (1.0 + (-z).exp())
}

/// Why an offer may not go out, or `Ok(channel)` to send it on. Checks run in the contract's order:
/// contact policy (cooldown, frequency, recent risk) → consent → control group.
pub fn admit(
    rule: &OfferRule,
    state: &CustomerState,
    customer_id: &str,
    at: i64,
    policy: &Policy,
) -> Result<ContactChannel, (DecisionOutcome, String)> {
    if let Some(last) = state
        .contacts
        .iter()
        .filter(|c| c.rule_id == rule.head.id)
        .map(|c| c.at)
        .max()
    {
        if at - last < rule.cooldown_ms {
            return Err((
                DecisionOutcome::SuppressedCooldown,
                format!("same offer made {} h ago", (at - last) / 3_600_000),
            ));
        }
    }
    let recent = state
        .contacts
        .iter()
        .filter(|c| at - c.at < policy.contact_period_ms)
        .count();
    if recent >= policy.max_offers_per_period as usize {
        return Err((
            DecisionOutcome::SuppressedContactPolicy,
            format!("{recent} offers already in the contact period"),
        ));
    }
    if let Some(alert_at) = state.last_high_alert_at {
        if at - alert_at < policy.risk_quiet_ms {
            return Err((
                DecisionOutcome::SuppressedRisk,
                "a HIGH or CRITICAL alert is recent".into(),
            ));
        }
    }
    let profile = match &state.profile {
        Some(p) if p.consent_marketing => p,
        Some(_) => {
            return Err((
                DecisionOutcome::SuppressedNoConsent,
                "no marketing consent".into(),
            ))
        }
        None => {
            return Err((
                DecisionOutcome::SuppressedNoConsent,
                "no profile, so no known consent".into(),
            ))
        }
    };
    let channel = rule
        .channels
        .iter()
        .find(|c| profile.contact_channels.contains(c))
        .copied()
        .ok_or_else(|| {
            (
                DecisionOutcome::SuppressedNoConsent,
                "no permitted channel for this offer".into(),
            )
        })?;
    if in_control_group(customer_id, &rule.head.id, policy.control_group_percent) {
        return Err((
            DecisionOutcome::ControlGroup,
            format!("held out ({}% control group)", policy.control_group_percent),
        ));
    }
    Ok(channel)
}

/// Deterministic control-group membership from a hash of customer and rule.
pub fn in_control_group(customer_id: &str, rule_id: &str, percent: u8) -> bool {
    if percent == 0 {
        return false;
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(customer_id.as_bytes());
    h.update(&[0u8]);
    h.update(rule_id.as_bytes());
    h.digest() % 100 < u64::from(percent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = decision_id("offer", "r1", 1, "C1", "E1");
        assert_eq!(a, decision_id("offer", "r1", 1, "C1", "E1"));
        assert_ne!(a, decision_id("offer", "r1", 2, "C1", "E1"));
        assert_ne!(a, decision_id("alert", "r1", 1, "C1", "E1"));
        assert_eq!(a.len(), 32);
    }

    #[test]
    fn control_group_is_stable_and_near_its_percentage() {
        let held = (0..10_000)
            .filter(|i| in_control_group(&format!("C{i}"), "r", 10))
            .count();
        assert!((800..1200).contains(&held), "{held}");
        assert_eq!(
            in_control_group("C1", "r", 10),
            in_control_group("C1", "r", 10)
        );
        assert!(!in_control_group("C1", "r", 0));
    }

    #[test]
    fn propensity_is_logistic() {
        assert!((propensity(0.0, &[], |_| 0.0) - 0.5).abs() < 1e-12);
        assert!(propensity(2.0, &[(0, 1.0)], |_| 3.0) > 0.99);
    }
}
