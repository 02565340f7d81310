//! Decisioning for one event: the rules it triggers, evaluated over its customer's features and
//! profile, then arbitration, contact policy, consent and the control group (`decision`), with an
//! audit record of every outcome. Champions (active versions) act here; challengers (shadow
//! versions) are decided beside them in [`super::shadow`], in a world of their own.

use super::Operator;
use crate::customer::{ContactRecord, CustomerState, OfferRecord};
use crate::decision::{self, History};
use crate::event::{DecisionOutcome, Event, Severity};
use crate::output::{Decision, DecisionAudit, FeatureValues, NextBestOffer, Reasons, RiskAlert};
use crate::rules::document::RuleState;
use crate::rules::{OfferRule, RuleHead};

/// The event a decision answers.
pub(super) struct Trigger<'a> {
    /// Its customer.
    pub customer_id: &'a str,
    /// Its event id.
    pub event_id: &'a str,
    /// Its event time: when the decision is made, for replays to give the same records.
    pub at: i64,
}

impl Operator {
    pub(super) fn holds(
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
    pub(super) fn used_features(
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

    /// The audit record of one decision by the version `head`.
    pub(super) fn audit(
        &self,
        head: &RuleHead,
        t: &Trigger<'_>,
        outcome: DecisionOutcome,
        decision_id: Option<String>,
        reasons: Reasons,
        features: FeatureValues,
    ) -> DecisionAudit {
        DecisionAudit {
            audit_id: decision::decision_id(
                "audit",
                &head.id,
                head.version,
                t.customer_id,
                t.event_id,
            ),
            customer_id: t.customer_id.to_string(),
            trigger_event_id: t.event_id.to_string(),
            rule_id: head.id.clone(),
            rule_version: head.version,
            ruleset_version: self.rules.version,
            outcome,
            decision_id,
            reasons,
            features,
            decided_at: t.at,
            shadow_outcome: None,
        }
    }

    /// Alert rules, then offer rules, for one trigger event already applied to `state` (within
    /// the lateness bound): what [`Operator::apply`] does after the features. Public for the
    /// decision benchmark.
    ///
    /// Challengers are decided beside their champions, each in its own world
    /// ([`super::shadow`]): an offer challenger before the champions' offer is chosen, so both see
    /// the same contacts. They write only SHADOW audits and their own contact history, so they
    /// never change what a champion decides.
    pub fn decide(&self, state: &mut CustomerState, event: &Event, out: &mut Vec<Decision>) {
        let kind = event.kind();
        let alerts = self.alerts_by_kind.get(kind).map_or(&[][..], Vec::as_slice);
        let offers = self.offers_by_kind.get(kind).map_or(&[][..], Vec::as_slice);
        if alerts.is_empty() && offers.is_empty() {
            return;
        }
        let at = event.event_time();
        let mut values = Lazy::new(self.features.defs().len(), at);
        let event_id = event.event_id();
        let t = Trigger {
            customer_id: event.customer_id(),
            event_id: &event_id,
            at,
        };

        for &i in alerts {
            let rule = &self.rules.alerts[i];
            if !self.holds(&rule.head, &mut values, state, event) {
                continue;
            }
            if rule.head.state == RuleState::Shadow {
                self.challenge_alert(rule, &mut values, state, &t, out);
                continue;
            }
            self.alert(rule, &mut values, state, &t, out);
        }

        // Offer rules that hold, with their scores: champions not held back for this customer
        // (their own cooldown, a declined product) enter arbitration; held ones are audited.
        let mut candidates: Vec<(f64, &OfferRule)> = Vec::new();
        let mut challengers: Vec<(f64, &OfferRule)> = Vec::new();
        for &i in offers {
            let rule = &self.rules.offers[i];
            if !self.holds(&rule.head, &mut values, state, event) {
                continue;
            }
            let p = decision::propensity(rule.intercept, &rule.coefficients, |slot| {
                values.get(self, state, slot).unwrap_or(0.0)
            });
            let score = p * rule.value * rule.weight;
            if rule.head.state == RuleState::Shadow {
                challengers.push((score, rule));
                continue;
            }
            if let Err((outcome, why)) =
                decision::offer_blocked(rule, History::real(state), at, &self.policy)
            {
                let features = self.used_features(&rule.head, &mut values, state);
                let mut reasons: Reasons = rule.head.condition.terms().to_vec();
                reasons.push(why.into());
                out.push(Decision::Audit(
                    self.audit(&rule.head, &t, outcome, None, reasons, features),
                ));
                continue;
            }
            candidates.push((score, rule));
        }
        for &(score, rule) in &challengers {
            self.challenge_offer((score, rule), &candidates, &mut values, state, &t, out);
        }

        self.offer(&mut candidates, &mut values, state, &t, out);
    }

    /// A champion alert rule that holds: raised, or held back by its cooldown.
    fn alert(
        &self,
        rule: &crate::rules::AlertRule,
        values: &mut Lazy,
        state: &mut CustomerState,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) {
        let at = t.at;
        let features = self.used_features(&rule.head, values, state);
        let mut reasons: Reasons = rule.head.condition.terms().to_vec();
        let last = state
            .alerts
            .iter()
            .filter(|a| a.rule_id == rule.head.id)
            .map(|a| a.at)
            .max();
        if last.is_some_and(|last| (at - last).abs() < rule.cooldown_ms) {
            reasons.push("same alert raised within its cooldown".into());
            out.push(Decision::Audit(self.audit(
                &rule.head,
                t,
                DecisionOutcome::SuppressedCooldown,
                None,
                reasons,
                features,
            )));
            return;
        }
        // Kept for the longest alert cooldown of the rule set, not this rule's: another rule's
        // record must outlive this rule's shorter cooldown.
        let keep = self.longest_alert_cooldown_ms.max(self.longest_window_ms);
        state.alerts.retain(|a| at - a.at < keep);
        state.alerts.push(ContactRecord {
            rule_id: rule.head.id.clone(),
            at,
        });
        let alert_id = decision::decision_id(
            "alert",
            &rule.head.id,
            rule.head.version,
            t.customer_id,
            t.event_id,
        );
        if rule.severity >= Severity::High {
            state.last_high_alert_at = Some(state.last_high_alert_at.unwrap_or(i64::MIN).max(at));
        }
        out.push(Decision::Audit(self.audit(
            &rule.head,
            t,
            DecisionOutcome::Alerted,
            Some(alert_id.clone()),
            reasons.clone(),
            features.clone(),
        )));
        out.push(Decision::Alert(RiskAlert {
            alert_id,
            customer_id: t.customer_id.to_string(),
            kind: rule.kind,
            severity: rule.severity,
            rule_id: rule.head.id.clone(),
            rule_version: rule.head.version,
            reasons,
            features,
            trigger_event_id: t.event_id.to_string(),
            raised_at: at,
        }));
    }

    /// Arbitration among the champions' candidates, then the contact policy, consent and the
    /// control group for the best one.
    fn offer(
        &self,
        candidates: &mut [(f64, &OfferRule)],
        values: &mut Lazy,
        state: &mut CustomerState,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) {
        let at = t.at;
        let eligible = candidates.len();
        let Some((score, rule)) = decision::arbitrate(candidates) else {
            return;
        };
        let features = self.used_features(&rule.head, values, state);
        let mut reasons: Reasons = rule.head.condition.terms().to_vec();
        if eligible > 1 {
            reasons.push(format!("best of {eligible} eligible offers (score {score:.3})").into());
        }
        let admitted = decision::admit(
            rule,
            state,
            History::real(state),
            t.customer_id,
            at,
            &self.policy,
        );
        let channel = match admitted {
            Ok(channel) => channel,
            Err((outcome, why)) => {
                reasons.push(why.into());
                out.push(Decision::Audit(
                    self.audit(&rule.head, t, outcome, None, reasons, features),
                ));
                return;
            }
        };
        let offer_id = decision::decision_id(
            "offer",
            &rule.head.id,
            rule.head.version,
            t.customer_id,
            t.event_id,
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
        out.push(Decision::Audit(self.audit(
            &rule.head,
            t,
            DecisionOutcome::Offered,
            Some(offer_id.clone()),
            reasons.clone(),
            features.clone(),
        )));
        out.push(Decision::Offer(NextBestOffer {
            offer_id,
            customer_id: t.customer_id.to_string(),
            offer_code: rule.offer_code.clone(),
            product_category: rule.product,
            channel,
            score,
            rule_id: rule.head.id.clone(),
            rule_version: rule.head.version,
            reasons,
            features,
            trigger_event_id: t.event_id.to_string(),
            decided_at: at,
            expires_at: at + rule.validity_ms.unwrap_or(self.validity_ms),
        }));
    }
}

/// Feature values computed on demand for one trigger and kept for the rest of its rules: a rule
/// set reads only the features its triggered rules name.
pub(super) struct Lazy {
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

    pub(super) fn get(&mut self, op: &Operator, state: &CustomerState, slot: usize) -> Option<f64> {
        *self.cache[slot].get_or_insert_with(|| op.value_at(state, slot, self.at))
    }
}
