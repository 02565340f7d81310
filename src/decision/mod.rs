//! Decisioning after the rules: arbitration among eligible offers, contact policy, consent and the
//! control group, plus the deterministic ids of decisions. Pure: time comes from the trigger event.
//!
//! The contact policy reads the customer's contact history through a
//! [`HistoryView`] (the real history, or a challenger's world); the history itself, and every
//! write to it, is [`crate::customer::ContactHistory`]'s.

use crate::customer::{CustomerState, HistoryView, ProfileState};
use crate::event::{ContactChannel, DecisionOutcome};
use crate::rules::OfferRule;

/// Contact-policy settings, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Most offers per customer per `contact_period_ms`.
    pub max_offers_per_period: u32,
    /// The period of that limit.
    pub contact_period_ms: i64,
    /// No marketing offer within this long after a HIGH or CRITICAL alert.
    pub risk_quiet_ms: i64,
    /// No offer of a product family for this long after the customer declined one of it.
    pub decline_suppression_ms: i64,
    /// No marketing offer for this long after a complaint or a negative social post.
    pub complaint_quiet_ms: i64,
    /// Percentage (0..=100) of customers held out per rule as a control group.
    pub control_group_percent: u8,
    /// How long a control-group membership lasts (0: for as long as the rule lives).
    pub control_group_period_ms: i64,
    /// How long after an exposure a product opened is its conversion (uplift).
    pub uplift_window_ms: i64,
}

impl Policy {
    /// The policy the operator settings describe.
    pub fn from_settings(s: &crate::config::OperatorSettings) -> Self {
        Self {
            max_offers_per_period: s.max_offers_per_period,
            contact_period_ms: s.contact_period.as_millis() as i64,
            risk_quiet_ms: s.risk_quiet_period.as_millis() as i64,
            decline_suppression_ms: s.decline_suppression.as_millis() as i64,
            complaint_quiet_ms: s.complaint_quiet_period.as_millis() as i64,
            control_group_percent: s.control_group_percent,
            control_group_period_ms: s.control_group_period.map_or(0, |p| p.as_millis() as i64),
            uplift_window_ms: s.uplift.window.as_millis() as i64,
        }
    }

    /// How long an offer record must be kept for this policy and a rule cooldown (the uplift
    /// window too: an exposure must be held while a conversion can still count).
    pub fn contact_retention_ms(&self, cooldown_ms: i64) -> i64 {
        self.contact_period_ms
            .max(cooldown_ms)
            .max(self.decline_suppression_ms)
            .max(self.uplift_window_ms)
    }

    /// Whether `customer_id` is in rule `rule_id`'s control group at event time `at`.
    pub fn in_control_group(&self, customer_id: &str, rule_id: &str, at: i64) -> bool {
        let period =
            (self.control_group_period_ms > 0).then(|| at.div_euclid(self.control_group_period_ms));
        in_control_group(customer_id, rule_id, self.control_group_percent, period)
    }
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

/// Whether this offer, for this customer, is held back whatever else is eligible: the offer's
/// own cooldown, or a decline of its product family within the suppression period. Checked for
/// each eligible offer *before* arbitration, so an offer in its cooldown does not block the next
/// best one.
pub fn offer_blocked(
    rule: &OfferRule,
    history: HistoryView<'_>,
    at: i64,
    policy: &Policy,
) -> Result<(), (DecisionOutcome, String)> {
    let mut last_same = None::<i64>;
    let mut declined = None::<i64>;
    for c in history.offers() {
        if history.by_rule(c, &rule.head.id) {
            last_same = Some(last_same.map_or(c.at, |l| l.max(c.at)));
        }
        if c.product == rule.product {
            if let Some(d) = c.declined_at() {
                declined = Some(declined.map_or(d, |l| l.max(d)));
            }
        }
    }
    if let Some(last) = last_same {
        if at - last < rule.cooldown_ms {
            return Err((
                DecisionOutcome::SuppressedCooldown,
                format!("same offer made {} ago", days(at - last)),
            ));
        }
    }
    if let Some(d) = declined {
        if at - d < policy.decline_suppression_ms {
            return Err((
                DecisionOutcome::SuppressedContactPolicy,
                format!(
                    "declined an offer of {} {} ago",
                    rule.product.as_str(),
                    days(at - d)
                ),
            ));
        }
    }
    Ok(())
}

/// Why the chosen offer may not go out, or `Ok(channel)` to send it on. Checks run in the
/// contract's order: contact policy ([`offer_blocked`], then the customer's frequency cap, the
/// quiet period after a complaint or negative post, a recent HIGH or CRITICAL alert) → consent
/// and a permitted channel → control group. The first check that fails names the outcome and a
/// reason in plain words.
pub fn admit(
    rule: &OfferRule,
    state: &CustomerState,
    history: HistoryView<'_>,
    customer_id: &str,
    at: i64,
    policy: &Policy,
) -> Result<ContactChannel, (DecisionOutcome, String)> {
    let profile = contactable(rule, state, history, at, policy)?;
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
    not_held_out(rule, customer_id, at, policy)?;
    Ok(channel)
}

/// [`admit`] for an offer answering an inbound request: the customer is in the channel that
/// asks, so no outbound channel needs their permission; the offer's own block, the contact
/// policy, marketing consent and the control group hold as for the stream, in that order.
pub fn admit_inbound(
    rule: &OfferRule,
    state: &CustomerState,
    history: HistoryView<'_>,
    customer_id: &str,
    at: i64,
    policy: &Policy,
) -> Result<(), (DecisionOutcome, String)> {
    contactable(rule, state, history, at, policy)?;
    not_held_out(rule, customer_id, at, policy)
}

/// The checks before the channel, for [`admit`] and [`admit_inbound`]: the offer's own block,
/// the contact policy, marketing consent; the consenting profile.
fn contactable<'s>(
    rule: &OfferRule,
    state: &'s CustomerState,
    history: HistoryView<'_>,
    at: i64,
    policy: &Policy,
) -> Result<&'s ProfileState, (DecisionOutcome, String)> {
    offer_blocked(rule, history, at, policy)?;
    contact_policy(state, history, at, policy)?;
    marketing_consent(state)
}

/// The control group, last of the checks: held out of the rule's offer, or not.
fn not_held_out(
    rule: &OfferRule,
    customer_id: &str,
    at: i64,
    policy: &Policy,
) -> Result<(), (DecisionOutcome, String)> {
    if policy.in_control_group(customer_id, &rule.head.id, at) {
        return Err((
            DecisionOutcome::ControlGroup,
            format!("held out ({}% control group)", policy.control_group_percent),
        ));
    }
    Ok(())
}

/// The customer's profile, when it grants marketing consent.
fn marketing_consent(state: &CustomerState) -> Result<&ProfileState, (DecisionOutcome, String)> {
    match &state.profile {
        Some(p) if p.consent_marketing => Ok(p),
        Some(_) => Err((
            DecisionOutcome::SuppressedNoConsent,
            "no marketing consent".into(),
        )),
        None => Err((
            DecisionOutcome::SuppressedNoConsent,
            "no profile, so no known consent".into(),
        )),
    }
}

fn days(ms: i64) -> String {
    let hours = ms / 3_600_000;
    if hours < 48 {
        format!("{hours} h")
    } else {
        format!("{} d", hours / 24)
    }
}

/// The customer-level contact policy: frequency cap, quiet periods, recent risk.
fn contact_policy(
    state: &CustomerState,
    history: HistoryView<'_>,
    at: i64,
    policy: &Policy,
) -> Result<(), (DecisionOutcome, String)> {
    let recent = history
        .offers()
        .filter(|c| at - c.at < policy.contact_period_ms)
        .count();
    if recent >= policy.max_offers_per_period as usize {
        return Err((
            DecisionOutcome::SuppressedContactPolicy,
            format!("{recent} offers already in the contact period"),
        ));
    }
    for (when, what) in [
        (state.last_complaint_at, "complaint"),
        (state.last_negative_social_at, "negative social post"),
    ] {
        if let Some(t) = when {
            if at >= t && at - t < policy.complaint_quiet_ms {
                return Err((
                    DecisionOutcome::SuppressedContactPolicy,
                    format!("quiet period: {what} {} ago", days(at - t)),
                ));
            }
        }
    }
    if let Some(alert_at) = state.last_high_alert_at {
        if at - alert_at < policy.risk_quiet_ms {
            return Err((
                DecisionOutcome::SuppressedRisk,
                "a HIGH or CRITICAL alert is recent".into(),
            ));
        }
    }
    Ok(())
}

/// Deterministic control-group membership from a hash of customer and rule, and of the period's
/// index when membership rotates (`period`: event time divided by the period). Without a period
/// the hash is the one every earlier release used, so a customer's membership is unchanged.
pub fn in_control_group(
    customer_id: &str,
    rule_id: &str,
    percent: u8,
    period: Option<i64>,
) -> bool {
    if percent == 0 {
        return false;
    }
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(customer_id.as_bytes());
    h.update(&[0u8]);
    h.update(rule_id.as_bytes());
    if let Some(period) = period {
        h.update(&[0u8]);
        h.update(&period.to_le_bytes());
    }
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
            .filter(|i| in_control_group(&format!("C{i}"), "r", 10, None))
            .count();
        assert!((800..1200).contains(&held), "{held}");
        assert_eq!(
            in_control_group("C1", "r", 10, None),
            in_control_group("C1", "r", 10, None)
        );
        assert!(!in_control_group("C1", "r", 0, None));
    }

    #[test]
    fn a_control_group_period_draws_a_new_group_each_period_and_keeps_it_within_one() {
        let p = Policy {
            control_group_percent: 10,
            control_group_period_ms: 90 * DAY,
            ..policy()
        };
        let held_in = |at: i64| -> Vec<usize> {
            (0..4_000)
                .filter(|i| p.in_control_group(&format!("C{i}"), "r", at))
                .collect()
        };
        let (first, later_same, next) = (held_in(DAY), held_in(89 * DAY), held_in(91 * DAY));
        assert_eq!(first, later_same, "the same period, the same group");
        assert!((300..500).contains(&next.len()), "{}", next.len());
        let kept = next.iter().filter(|i| first.contains(i)).count();
        assert!(
            kept < first.len() / 4,
            "a new draw: {kept} of {} kept",
            first.len()
        );
    }

    use crate::customer::{shadow_key, ContactHistory, OfferRecord, ProfileState, Retention};
    use crate::event::{LifecycleStage, OfferResponseKind, ProductCategory};

    const DAY: i64 = 24 * 3_600_000;

    /// Keeps every record: these tests set the history up by hand.
    const KEEP_ALL: Retention = Retention {
        offers_ms: i64::MAX,
        alerts_ms: i64::MAX,
    };

    fn policy() -> Policy {
        Policy {
            control_group_percent: 0,
            ..Policy::from_settings(&crate::config::OperatorSettings::default())
        }
    }

    fn rule(id: &str, product: ProductCategory) -> OfferRule {
        let mut r = crate::rules::load::rule_set(None, &crate::features::spec::load(None).unwrap())
            .unwrap()
            .offers
            .remove(0);
        r.head.id = id.into();
        r.product = product;
        r.channels = vec![ContactChannel::Email];
        r.cooldown_ms = 30 * DAY;
        r
    }

    fn consenting() -> CustomerState {
        CustomerState {
            profile: Some(ProfileState {
                updated_at: 0,
                lifecycle_stage: LifecycleStage::Mature,
                segment: "MASS".into(),
                credit_score: Some(700),
                consent_marketing: true,
                consent_profiling: true,
                contact_channels: vec![ContactChannel::Email],
            }),
            ..CustomerState::default()
        }
    }

    fn offer(rule_id: &str, product: ProductCategory, at: i64) -> OfferRecord {
        OfferRecord {
            rule_id: rule_id.into(),
            product,
            offer_id: format!("{rule_id}-{at}"),
            at,
            response: None,
            responded_at: None,
            counted: 0,
            configured: 0.0,
        }
    }

    fn outcome(
        r: &OfferRule,
        s: &CustomerState,
        at: i64,
    ) -> Result<ContactChannel, DecisionOutcome> {
        admit(r, s, real(s), "C1", at, &policy()).map_err(|(o, _)| o)
    }

    fn real(s: &CustomerState) -> HistoryView<'_> {
        HistoryView::real(&s.history)
    }

    #[test]
    fn a_decline_suppresses_the_product_family_for_its_period() {
        let card = rule("offer-card", ProductCategory::CreditCard);
        let other_card = rule("offer-other-card", ProductCategory::CreditCard);
        let loan = rule("offer-loan", ProductCategory::Loan);
        let mut s = consenting();
        let declined = offer("offer-card", ProductCategory::CreditCard, 0);
        let declined_id = declined.offer_id.clone();
        s.history.record_offer(declined, &KEEP_ALL);
        s.history
            .apply_response(&declined_id, OfferResponseKind::Declined, DAY);
        let at = 40 * DAY;
        assert_eq!(
            outcome(&other_card, &s, at),
            Err(DecisionOutcome::SuppressedContactPolicy)
        );
        assert_eq!(outcome(&loan, &s, at), Ok(ContactChannel::Email));
        assert_eq!(
            outcome(&card, &s, DAY + 91 * DAY),
            Ok(ContactChannel::Email)
        );
        let why = admit(&other_card, &s, real(&s), "C1", at, &policy())
            .unwrap_err()
            .1;
        assert!(
            why.contains("declined an offer of CREDIT_CARD 39 d ago"),
            "{why}"
        );
    }

    #[test]
    fn complaints_and_negative_posts_open_a_quiet_period() {
        let card = rule("offer-card", ProductCategory::CreditCard);
        let mut s = consenting();
        s.last_complaint_at = Some(10 * DAY);
        assert_eq!(
            outcome(&card, &s, 20 * DAY),
            Err(DecisionOutcome::SuppressedContactPolicy)
        );
        assert_eq!(outcome(&card, &s, 25 * DAY), Ok(ContactChannel::Email));
        s.last_complaint_at = None;
        s.last_negative_social_at = Some(10 * DAY);
        let why = admit(&card, &s, real(&s), "C1", 11 * DAY, &policy())
            .unwrap_err()
            .1;
        assert!(why.contains("negative social post 24 h ago"), "{why}");
    }

    #[test]
    fn policy_checks_run_in_the_contract_order() {
        let card = rule("offer-card", ProductCategory::CreditCard);
        let mut s = consenting();
        s.history.record_offer(
            offer("offer-card", ProductCategory::CreditCard, 0),
            &KEEP_ALL,
        );
        s.last_high_alert_at = Some(DAY);
        if let Some(p) = s.profile.as_mut() {
            p.consent_marketing = false;
        }
        // Cooldown first, then risk, then consent.
        assert_eq!(
            outcome(&card, &s, 2 * DAY),
            Err(DecisionOutcome::SuppressedCooldown)
        );
        assert_eq!(
            outcome(&card, &s, 31 * DAY),
            Err(DecisionOutcome::SuppressedNoConsent)
        );
        s.history = ContactHistory::default();
        assert_eq!(
            outcome(&card, &s, 2 * DAY),
            Err(DecisionOutcome::SuppressedRisk)
        );
        // Frequency cap: three offers of other rules in the period.
        s.last_high_alert_at = None;
        for i in 0..3 {
            s.history.record_offer(
                offer(&format!("r{i}"), ProductCategory::Wealth, DAY),
                &KEEP_ALL,
            );
        }
        assert_eq!(
            outcome(&card, &s, 2 * DAY),
            Err(DecisionOutcome::SuppressedContactPolicy)
        );
    }

    #[test]
    fn a_challenger_sees_its_own_offers_in_place_of_its_champions() {
        let card = rule("offer-card", ProductCategory::CreditCard);
        let mut s = consenting();
        // The champion offered yesterday; the challenger never did.
        s.history.record_offer(
            offer("offer-card", ProductCategory::CreditCard, DAY),
            &KEEP_ALL,
        );
        let at = 2 * DAY;
        assert_eq!(
            outcome(&card, &s, at),
            Err(DecisionOutcome::SuppressedCooldown)
        );
        let key = shadow_key("offer-card", 2);
        let world = HistoryView::challenger(&s.history, &s.shadow, "offer-card", &key);
        assert_eq!(
            admit(&card, &s, world, "C1", at, &policy()).map_err(|(o, _)| o),
            Ok(ContactChannel::Email)
        );
        // Its own would-be offer puts it in its own cooldown; an earlier challenger's does not.
        s.shadow.record_offer(
            offer(
                &shadow_key("offer-card", 1),
                ProductCategory::CreditCard,
                DAY,
            ),
            &KEEP_ALL,
        );
        let world = HistoryView::challenger(&s.history, &s.shadow, "offer-card", &key);
        assert_eq!(
            admit(&card, &s, world, "C1", at, &policy()).map_err(|(o, _)| o),
            Ok(ContactChannel::Email)
        );
        s.shadow
            .record_offer(offer(&key, ProductCategory::CreditCard, DAY), &KEEP_ALL);
        let world = HistoryView::challenger(&s.history, &s.shadow, "offer-card", &key);
        assert_eq!(
            admit(&card, &s, world, "C1", at, &policy()).map_err(|(o, _)| o),
            Err(DecisionOutcome::SuppressedCooldown)
        );
        // Other rules' real offers count towards its frequency cap.
        s.shadow = ContactHistory::default();
        for i in 0..3 {
            s.history.record_offer(
                offer(&format!("r{i}"), ProductCategory::Wealth, DAY),
                &KEEP_ALL,
            );
        }
        let world = HistoryView::challenger(&s.history, &s.shadow, "offer-card", &key);
        assert_eq!(
            admit(&card, &s, world, "C1", at, &policy()).map_err(|(o, _)| o),
            Err(DecisionOutcome::SuppressedContactPolicy)
        );
    }

    #[test]
    fn propensity_is_logistic() {
        assert!((propensity(0.0, &[], |_| 0.0) - 0.5).abs() < 1e-12);
        assert!(propensity(2.0, &[(0, 1.0)], |_| 3.0) > 0.99);
    }
}
