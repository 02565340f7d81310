//! Challengers: a shadow version of a rule id, decided beside the version in force (its
//! champion) on the same events, as if it had acted instead of the champion from the day it was
//! published.
//!
//! A challenger's world differs from the real one in one way: its own would-be offers and alerts
//! (`CustomerState::shadow`, named by rule id and version, so a new challenger starts afresh)
//! stand where its champion's real ones stand ([`HistoryView::challenger`]). Everything else is
//! shared: the customer's consent and permitted channels, the other rules' real offers (the
//! frequency cap), quiet periods, recent HIGH alerts (risk suppression), the control group (the
//! same hash of customer and rule id) and arbitration against the champions' candidates of the
//! same trigger. So its counts compare with its champion's.
//!
//! It sends nothing: each decision is a SHADOW audit record carrying the challenger's version and
//! `shadow_outcome`, what it would have decided (OFFERED, ALERTED or the suppression). A
//! challenger that loses arbitration to another rule is not audited, as a champion that loses is
//! not.

use super::decide::{Lazy, Trigger};
use super::Operator;
use crate::customer::{shadow_key, CustomerState, HistoryView, OfferRecord};
use crate::decision;
use crate::event::DecisionOutcome;
use crate::output::{Decision, Reasons};
use crate::rules::{AlertRule, OfferRule};

impl Operator {
    /// A challenger offer rule that holds, with its `score`, against the champions' `candidates`
    /// of the same trigger.
    pub(super) fn challenge_offer(
        &self,
        (score, rule): (f64, &OfferRule),
        candidates: &[(f64, &OfferRule)],
        values: &mut Lazy,
        state: &mut CustomerState,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) {
        let id = rule.head.id.as_str();
        let key = shadow_key(id, rule.head.version);
        let world = HistoryView::challenger(&state.history, &state.shadow, id, &key);
        let decided = match decision::offer_blocked(rule, world, t.at, &self.policy) {
            Err(held) => Err(held),
            Ok(()) => {
                // Arbitration as if the challenger stood in for its champion.
                let mut rivals: Vec<(f64, &OfferRule)> = candidates
                    .iter()
                    .filter(|(_, r)| r.head.id != id)
                    .copied()
                    .chain([(score, rule)])
                    .collect();
                let eligible = rivals.len();
                let won = decision::arbitrate(&mut rivals)
                    .is_some_and(|(_, best)| std::ptr::eq(best, rule));
                if !won {
                    return; // lost arbitration: not audited, as for a champion
                }
                self.admit(rule, state, world, t)
                    .map(|channel| (channel, eligible))
            }
        };
        let (outcome, why) = match decided {
            Ok((channel, eligible)) => {
                let mut why = format!(
                    "shadow rule: would offer on {} with score {score:.3}",
                    channel.as_str()
                );
                if eligible > 1 {
                    why.push_str(&format!(" (best of {eligible} eligible offers)"));
                }
                (DecisionOutcome::Offered, why)
            }
            Err((outcome, why)) => (outcome, format!("shadow rule: would be held back: {why}")),
        };
        if outcome == DecisionOutcome::Offered {
            let offer_id =
                decision::decision_id("offer", id, rule.head.version, t.customer_id, t.event_id);
            let made = OfferRecord::new(key, rule.product, offer_id, t.at);
            state.shadow.record_offer(made, &self.retention);
        }
        self.shadow_audit(&rule.head, (outcome, why), values, state, t, out);
    }

    /// A challenger alert rule that holds: it would raise the alert, or its own cooldown (its own
    /// would-be alerts) holds it back.
    pub(super) fn challenge_alert(
        &self,
        rule: &AlertRule,
        values: &mut Lazy,
        state: &mut CustomerState,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) {
        let at = t.at;
        let key = shadow_key(&rule.head.id, rule.head.version);
        let (outcome, why) = if state.shadow.alert_cooling(&key, at, rule.cooldown_ms) {
            (
                DecisionOutcome::SuppressedCooldown,
                "shadow rule: would be held back: same alert raised within its cooldown".into(),
            )
        } else {
            state.shadow.record_alert(
                key,
                at,
                (String::new(), rule.head.version),
                &self.shadow_retention,
            );
            (
                DecisionOutcome::Alerted,
                format!(
                    "shadow rule: would raise a {} {} alert",
                    rule.severity.as_str(),
                    rule.kind.as_str()
                ),
            )
        };
        self.shadow_audit(&rule.head, (outcome, why), values, state, t, out);
    }

    /// The SHADOW audit record of a challenger's decision: `would` is what it would have decided.
    fn shadow_audit(
        &self,
        head: &crate::rules::RuleHead,
        (would, why): (DecisionOutcome, String),
        values: &mut Lazy,
        state: &CustomerState,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) {
        let features = self.used_features(head, values, state);
        let mut reasons: Reasons = head.condition.terms().to_vec();
        reasons.push(why.into());
        let mut audit = self.audit(head, t, DecisionOutcome::Shadow, None, reasons, features);
        audit.shadow_outcome = Some(would);
        out.push(Decision::Audit(audit));
    }
}
