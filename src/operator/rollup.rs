//! The audit's roll-up of repeated cooldown suppressions (`operator.audit_rollup`): what
//! [`crate::customer::Rollups`] counts, turned into decisions. Off (window 0), every
//! suppression has its own record.

use super::decide::Trigger;
use super::Operator;
use crate::customer::{CustomerState, OpenRollup, Suppressed};
use crate::decision;
use crate::event::DecisionOutcome;
use crate::output::{Decision, DecisionAudit, FeatureValues, RolledUp};
use crate::rules::RuleHead;

impl Operator {
    /// A cooldown suppression by `head` for trigger `t`: whether it is counted in the rule's open
    /// roll-up window (then it has no record of its own). When it is not, the window it closes
    /// goes out first, and the caller writes its record as usual. Always `false` when roll-ups
    /// are off and for inbound requests (the decision API answers and audits each one).
    pub(super) fn rolled_up(
        &self,
        head: &RuleHead,
        t: &Trigger<'_>,
        state: &mut CustomerState,
        out: &mut Vec<Decision>,
    ) -> bool {
        if self.rollup_ms == 0 || t.inbound.is_some() {
            return false;
        }
        let rule = (head.id.as_str(), head.version, self.rules.version);
        match state
            .rollups
            .suppressed(rule, t.event_id, t.at, self.rollup_ms)
        {
            Suppressed::Counted => true,
            Suppressed::Recorded(closed) => {
                out.extend(closed.map(|r| self.rollup_audit(r, t.customer_id)));
                false
            }
        }
    }

    /// `head` raised its alert or made its offer for trigger `t`: a new cooldown starts, so its
    /// roll-up window (if any) closes, its record going out before the decision's own.
    pub(super) fn acted(
        &self,
        head: &RuleHead,
        t: &Trigger<'_>,
        state: &mut CustomerState,
        out: &mut Vec<Decision>,
    ) {
        if state.rollups.is_empty() || t.inbound.is_some() {
            return;
        }
        if let Some(r) = state.rollups.close_rule(&head.id, head.version) {
            out.push(self.rollup_audit(r, t.customer_id));
        }
    }

    /// Closes `state`'s roll-up windows that end at or before `now` (event time), appending a
    /// record for each that counted repeats.
    pub(super) fn close_rollups(
        &self,
        state: &mut CustomerState,
        customer_id: &str,
        now: i64,
        out: &mut Vec<Decision>,
    ) {
        state
            .rollups
            .close_due(now, |r| out.push(self.rollup_audit(r, customer_id)));
    }

    /// The roll-up record of a closed window: a SUPPRESSED_COOLDOWN audit for its first counted
    /// trigger (and the rule set version it was decided under), with the count and the last
    /// trigger in `rolled_up`, and no features (each repeat read its own). Its id is
    /// deterministic from the rule version, the customer and the first trigger, as any audit's.
    fn rollup_audit(&self, r: OpenRollup, customer_id: &str) -> Decision {
        let Some(c) = r.counted else {
            unreachable!("Rollups hands out only windows that counted a repeat")
        };
        static REASON: std::sync::LazyLock<std::sync::Arc<str>> = std::sync::LazyLock::new(|| {
            "the same decision repeated within its cooldown, rolled up (operator.audit_rollup)"
                .into()
        });
        Decision::Audit(DecisionAudit {
            audit_id: decision::decision_id(
                "audit-rollup",
                &r.rule_id,
                r.rule_version,
                customer_id,
                &c.first_event_id,
            ),
            customer_id: customer_id.to_owned(),
            trigger_event_id: c.first_event_id,
            rule_id: r.rule_id,
            rule_version: r.rule_version,
            ruleset_version: c.ruleset_version,
            outcome: DecisionOutcome::SuppressedCooldown,
            decision_id: None,
            reasons: vec![REASON.clone()],
            features: FeatureValues::default(),
            decided_at: c.first_at,
            shadow_outcome: None,
            features_as_of: None,
            propensity: None,
            rolled_up: Some(RolledUp {
                count: c.count,
                last_trigger_event_id: c.last_event_id,
                last_decided_at: c.last_at,
            }),
        })
    }
}
