//! Decisioning for one event: the rules it triggers, evaluated over its customer's features and
//! profile, then arbitration, contact policy, consent and the control group (`decision`), with an
//! audit record of every outcome.

use super::Operator;
use crate::decision;
use crate::event::{DecisionOutcome, Event, Severity};
use crate::output::{Decision, DecisionAudit, FeatureValues, NextBestOffer, Reasons, RiskAlert};
use crate::rules::document::RuleState;
use crate::rules::RuleHead;
use crate::state::{ContactRecord, CustomerState, OfferRecord};

impl Operator {
    fn holds(
        &self,
        head: &RuleHead,
        values: &mut Lazy,
        state: &CustomerState,
        event: &Event,
    ) -> bool {
        let at = values.at;
        head.condition.eval_with_text(
            event,
            state.profile.as_ref(),
            &mut |slot| values.get(self, state, slot),
            &mut |slot| self.text_at(state, slot, at),
        )
    }

    /// The values of the features a rule shows in its decision records.
    fn used_features(
        &self,
        head: &RuleHead,
        values: &mut Lazy,
        state: &CustomerState,
    ) -> FeatureValues {
        let mut used = FeatureValues::default();
        for &slot in &head.used_slots {
            if let Some(v) = values.get(self, state, slot) {
                used.insert(self.features.defs()[slot].name.clone(), v);
            }
        }
        used
    }

    /// Alert rules, then offer rules, for one trigger event already applied to `state` (within
    /// the lateness bound): what [`Operator::apply`] does after the features. Public for the
    /// decision benchmark.
    ///
    /// Shadow rules are evaluated and audited (outcome SHADOW) but emit nothing and record no
    /// contact or alert, so they never change what active rules decide.
    pub fn decide(&self, state: &mut CustomerState, event: &Event, out: &mut Vec<Decision>) {
        let kind = event.kind();
        let alerts = self.alerts_by_kind.get(kind).map_or(&[][..], Vec::as_slice);
        let offers = self.offers_by_kind.get(kind).map_or(&[][..], Vec::as_slice);
        if alerts.is_empty() && offers.is_empty() {
            return;
        }
        let at = event.event_time();
        let mut values = Lazy::new(self.features.defs().len(), at);
        let customer_id = event.customer_id();
        let trigger = event.event_id();
        let audit = |head: &RuleHead,
                     outcome: DecisionOutcome,
                     decision_id: Option<String>,
                     reasons: Reasons,
                     features: FeatureValues| {
            Decision::Audit(DecisionAudit {
                audit_id: decision::decision_id(
                    "audit",
                    &head.id,
                    head.version,
                    customer_id,
                    &trigger,
                ),
                customer_id: customer_id.to_string(),
                trigger_event_id: trigger.to_string(),
                rule_id: head.id.clone(),
                rule_version: head.version,
                ruleset_version: self.rules.version,
                outcome,
                decision_id,
                reasons,
                features,
                decided_at: at,
            })
        };

        for &i in alerts {
            let rule = &self.rules.alerts[i];
            if !self.holds(&rule.head, &mut values, state, event) {
                continue;
            }
            let features = self.used_features(&rule.head, &mut values, state);
            let mut reasons: Reasons = rule.head.condition.terms().to_vec();
            if rule.head.state == RuleState::Shadow {
                reasons.push(
                    format!(
                        "shadow rule: would raise a {} {} alert",
                        rule.severity.as_str(),
                        rule.kind.as_str()
                    )
                    .into(),
                );
                out.push(audit(
                    &rule.head,
                    DecisionOutcome::Shadow,
                    None,
                    reasons,
                    features,
                ));
                continue;
            }
            let last = state
                .alerts
                .iter()
                .filter(|a| a.rule_id == rule.head.id)
                .map(|a| a.at)
                .max();
            if last.is_some_and(|last| (at - last).abs() < rule.cooldown_ms) {
                reasons.push("same alert raised within its cooldown".into());
                out.push(audit(
                    &rule.head,
                    DecisionOutcome::SuppressedCooldown,
                    None,
                    reasons,
                    features,
                ));
                continue;
            }
            // Kept for the longest alert cooldown of the rule set, not this rule's: another
            // rule's record must outlive this rule's shorter cooldown.
            state
                .alerts
                .retain(|a| at - a.at < self.longest_alert_cooldown_ms.max(self.longest_window_ms));
            state.alerts.push(ContactRecord {
                rule_id: rule.head.id.clone(),
                at,
            });
            let alert_id = decision::decision_id(
                "alert",
                &rule.head.id,
                rule.head.version,
                customer_id,
                &trigger,
            );
            if rule.severity >= Severity::High {
                state.last_high_alert_at =
                    Some(state.last_high_alert_at.unwrap_or(i64::MIN).max(at));
            }
            out.push(audit(
                &rule.head,
                DecisionOutcome::Alerted,
                Some(alert_id.clone()),
                reasons.clone(),
                features.clone(),
            ));
            out.push(Decision::Alert(RiskAlert {
                alert_id,
                customer_id: customer_id.to_string(),
                kind: rule.kind,
                severity: rule.severity,
                rule_id: rule.head.id.clone(),
                rule_version: rule.head.version,
                reasons,
                features,
                trigger_event_id: trigger.to_string(),
                raised_at: at,
            }));
        }

        let mut candidates: Vec<(f64, &crate::rules::OfferRule)> = Vec::new();
        for &i in offers {
            let rule = &self.rules.offers[i];
            if !self.holds(&rule.head, &mut values, state, event) {
                continue;
            }
            let p = decision::propensity(rule.intercept, &rule.coefficients, |slot| {
                values.get(self, state, slot).unwrap_or(0.0)
            });
            let score = p * rule.value * rule.weight;
            // Shadow rules and offers held back for this customer (own cooldown, declined
            // product) are audited here and do not enter arbitration.
            let held = if rule.head.state == RuleState::Shadow {
                Some((
                    DecisionOutcome::Shadow,
                    format!("shadow rule: eligible with score {score:.3}"),
                ))
            } else {
                decision::offer_blocked(rule, state, at, &self.policy).err()
            };
            if let Some((outcome, why)) = held {
                let features = self.used_features(&rule.head, &mut values, state);
                let mut reasons: Reasons = rule.head.condition.terms().to_vec();
                reasons.push(why.into());
                out.push(audit(&rule.head, outcome, None, reasons, features));
                continue;
            }
            candidates.push((score, rule));
        }
        let eligible = candidates.len();
        let Some((score, rule)) = decision::arbitrate(&mut candidates) else {
            return;
        };
        let features = self.used_features(&rule.head, &mut values, state);
        let mut reasons: Reasons = rule.head.condition.terms().to_vec();
        if eligible > 1 {
            reasons.push(format!("best of {eligible} eligible offers (score {score:.3})").into());
        }
        match decision::admit(rule, state, customer_id, at, &self.policy) {
            Ok(channel) => {
                let offer_id = decision::decision_id(
                    "offer",
                    &rule.head.id,
                    rule.head.version,
                    customer_id,
                    &trigger,
                );
                let keep = self
                    .policy
                    .contact_retention_ms(self.longest_offer_cooldown_ms);
                state
                    .contacts
                    .retain(|c| at - c.declined_at().unwrap_or(c.at) < keep);
                state.contacts.push(OfferRecord {
                    rule_id: rule.head.id.clone(),
                    product: rule.product,
                    offer_id: offer_id.clone(),
                    at,
                    response: None,
                    responded_at: None,
                });
                out.push(audit(
                    &rule.head,
                    DecisionOutcome::Offered,
                    Some(offer_id.clone()),
                    reasons.clone(),
                    features.clone(),
                ));
                out.push(Decision::Offer(NextBestOffer {
                    offer_id,
                    customer_id: customer_id.to_string(),
                    offer_code: rule.offer_code.clone(),
                    product_category: rule.product,
                    channel,
                    score,
                    rule_id: rule.head.id.clone(),
                    rule_version: rule.head.version,
                    reasons,
                    features,
                    trigger_event_id: trigger.to_string(),
                    decided_at: at,
                    expires_at: at + rule.validity_ms.unwrap_or(self.validity_ms),
                }));
            }
            Err((outcome, why)) => {
                reasons.push(why.into());
                out.push(audit(&rule.head, outcome, None, reasons, features));
            }
        }
    }
}

/// Feature values computed on demand for one trigger and kept for the rest of its rules: a rule
/// set reads only the features its triggered rules name.
struct Lazy {
    at: i64,
    cache: Vec<Option<Option<f64>>>,
}

impl Lazy {
    fn new(slots: usize, at: i64) -> Self {
        Self {
            at,
            cache: vec![None; slots],
        }
    }

    fn get(&mut self, op: &Operator, state: &CustomerState, slot: usize) -> Option<f64> {
        *self.cache[slot].get_or_insert_with(|| op.value_at(state, slot, self.at))
    }
}
