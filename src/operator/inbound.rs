//! Inbound decisions: a channel asks for the best offers for a customer now (`nbo-stream api`).
//!
//! The request is an `InboundRequest` event (`catalog::inbound`), and the offer rules that name
//! it as a trigger decide on it as the stream decides on its events: each that holds is scored
//! and screened (its own cooldown, a declined product, the ramp), challengers are decided beside
//! their champions, then arbitration ranks them. Up to the number wanted are made, best first,
//! each through the contact policy, consent and the control group (`Operator::admit`, with no
//! outbound channel to permit: the customer is in the channel asking) and each recorded in the
//! customer's contact history before the next is admitted, so the frequency cap counts them
//! as the stream counts its own. The first offer held back ends the answer: a control-group
//! member gets nothing in place of the offer it was held out of, as on the stream. Every outcome
//! is audited with the asking channel in its reasons.

use super::decide::{Lazy, Trigger};
use super::Operator;
use crate::catalog::inbound::Request;
use crate::customer::CustomerState;
use crate::event::{DecisionOutcome, InboundContact, InboundContactKind, Text};
use crate::learning::uplift::{Group, Tally};
use crate::output::Decision;

/// Why an inbound request got no offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suppression {
    /// The customer has not consented to marketing (or no profile is known yet).
    NoConsent,
    /// The contact policy held it back: the frequency cap, a quiet period after a complaint or
    /// a negative post, a recent high alert, or the offers' own cooldowns.
    ContactPolicy,
    /// The customer is in the control group of the best offer.
    ControlGroup,
    /// No offer rule serving inbound requests holds for the customer.
    NoEligibleRule,
}

impl Suppression {
    /// The API's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Suppression::NoConsent => "NO_CONSENT",
            Suppression::ContactPolicy => "CONTACT_POLICY",
            Suppression::ControlGroup => "CONTROL_GROUP",
            Suppression::NoEligibleRule => "NO_ELIGIBLE_RULE",
        }
    }

    /// The suppression an audit outcome stands for (`None`: not a suppression).
    fn of(outcome: DecisionOutcome) -> Option<Self> {
        match outcome {
            DecisionOutcome::SuppressedNoConsent => Some(Suppression::NoConsent),
            DecisionOutcome::SuppressedContactPolicy
            | DecisionOutcome::SuppressedCooldown
            | DecisionOutcome::SuppressedRisk => Some(Suppression::ContactPolicy),
            DecisionOutcome::ControlGroup => Some(Suppression::ControlGroup),
            _ => None,
        }
    }
}

/// What an inbound request decided, beyond the records it appended.
#[derive(Debug, Default)]
pub struct InboundOutcome {
    /// Offers made.
    pub offers: usize,
    /// Why none was made, when none was: what held back the best offer arbitration chose (the
    /// customer's consent, the contact policy, the control group), else what held back the
    /// offers before it (their cooldowns), else no eligible rule.
    pub suppressed: Option<Suppression>,
    /// The suppression's words, from its audit record.
    pub detail: Option<String>,
    /// The uplift exposures the offers (or the control group) counted.
    pub uplift: Vec<Tally>,
    /// The contacts made, to publish (`bank.inbound-contacts.v1`) so that the stream records
    /// them: each offer made, and the control-group exposure of a member held out.
    pub contacts: Vec<InboundContact>,
}

impl Operator {
    /// Decides `request` for the customer whose state is `state` (aligned, as for
    /// [`Operator::apply`]): up to `wanted` offers, best first, appended to `out` as
    /// `Decision::Offer` records with an audit record for each outcome, offered or held back.
    /// The offers made are recorded in `state`'s contact history.
    pub fn decide_inbound(
        &self,
        state: &mut CustomerState,
        request: Request,
        wanted: usize,
        out: &mut Vec<Decision>,
    ) -> InboundOutcome {
        let channel = request.channel.clone();
        let decision_id = request.decision_id.clone();
        let event = request.event();
        let mut outcome = InboundOutcome::default();
        let offers = self
            .offers_by_kind
            .get(event.kind())
            .map_or(&[][..], Vec::as_slice);
        let at = event.event_time();
        let mut values = Lazy::new(self.features.defs().len(), at);
        let event_id = event.event_id();
        let t = Trigger {
            customer_id: event.customer_id(),
            event_id: &event_id,
            at,
            inbound: Some(&channel),
            features_as_of: state.max_event_time,
        };
        let first = out.len();
        let (mut candidates, challengers) =
            self.offer_candidates(offers, &mut values, state, &event, &t, out);
        for &(score, rule) in &challengers {
            self.challenge_offer((score, rule), &candidates, &mut values, state, &t, out);
        }
        let screened = out.len();
        let mut rest = &mut candidates[..];
        while outcome.offers < wanted && !rest.is_empty() {
            let before = out.len();
            outcome
                .uplift
                .extend(self.offer(rest, &mut values, state, &t, out));
            // `offer` ranked `rest` and decided its first: offered, or held back. Held back,
            // nothing more is offered: the customer (consent, the contact policy) would be
            // held back again, and a control-group member gets nothing in place of the offer
            // it was held out of, as on the stream.
            match out[before..].iter().find_map(champion_audit) {
                Some((DecisionOutcome::Offered, _)) => outcome.offers += 1,
                Some(_) => break,
                None => {}
            }
            rest = &mut rest[1..];
        }
        outcome.contacts = self.contacts(state, &out[first..], &outcome.uplift, &t, &decision_id);
        if outcome.offers == 0 {
            // What held back the chosen offer speaks first; then the offers screened out
            // before arbitration (their cooldowns).
            let held = out[screened..]
                .iter()
                .chain(&out[first..screened])
                .filter_map(champion_audit)
                .find_map(|(o, why)| Suppression::of(o).map(|s| (s, why)));
            let (suppressed, detail) = held.unwrap_or((Suppression::NoEligibleRule, None));
            outcome.suppressed = Some(suppressed);
            outcome.detail = detail;
        }
        outcome
    }
}

impl Operator {
    /// The contacts an inbound decision made: its offers (`made`, recorded in `state`'s
    /// history) and its control-group exposures (from `uplift`).
    fn contacts(
        &self,
        state: &CustomerState,
        made: &[Decision],
        uplift: &[Tally],
        t: &Trigger<'_>,
        decision_id: &Text,
    ) -> Vec<InboundContact> {
        let contact =
            |event_id: &str, rule_id: &str, version, product, propensity, outcome| InboundContact {
                event_id: event_id.into(),
                customer_id: t.customer_id.into(),
                event_time: t.at,
                decision_id: decision_id.clone(),
                channel: t.inbound.unwrap_or_default().into(),
                rule_id: rule_id.into(),
                rule_version: version,
                product_category: product,
                propensity,
                outcome,
            };
        let offers = made.iter().filter_map(|d| match d {
            Decision::Offer(o) => {
                let configured = state
                    .history
                    .offers()
                    .iter()
                    .find(|r| r.offer_id == o.offer_id)
                    .map_or(0.0, |r| r.configured);
                Some(contact(
                    &o.offer_id,
                    &o.rule_id,
                    o.rule_version,
                    o.product_category,
                    configured,
                    InboundContactKind::Offered,
                ))
            }
            _ => None,
        });
        let held = uplift
            .iter()
            .filter(|x| x.group == Group::Control)
            .filter_map(|x| {
                let rule = self.rules.offers.iter().find(|r| {
                    r.head.id == x.rule_id
                        && r.head.state == crate::rules::document::RuleState::Active
                })?;
                Some(contact(
                    &x.exposure_id,
                    &x.rule_id,
                    rule.head.version,
                    rule.product,
                    0.0,
                    InboundContactKind::ControlGroup,
                ))
            });
        offers.chain(held).collect()
    }
}

/// The outcome of a champion's audit record and its last reason (challengers' SHADOW records
/// say nothing of what the customer gets).
fn champion_audit(d: &Decision) -> Option<(DecisionOutcome, Option<String>)> {
    match d {
        Decision::Audit(a) if a.outcome != DecisionOutcome::Shadow => {
            Some((a.outcome, a.reasons.last().map(ToString::to_string)))
        }
        _ => None,
    }
}
