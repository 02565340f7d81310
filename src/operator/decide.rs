//! Decisioning for one event: the rules it triggers, evaluated over its customer's features and
//! profile, then arbitration, contact policy, consent and the control group (`decision`), with an
//! audit record of every outcome. Champions (active versions) act here; challengers (shadow
//! versions) are decided beside them in [`super::shadow`], in a world of their own.
//!
//! In order ([`Operator::decide`]): each alert rule that holds is raised or held back by its
//! cooldown (`alert`); the offer rules that hold are scored and screened (`offer_candidates`);
//! the best champion is chosen, then made or held back (`offer`, `make_offer`). What is made is
//! recorded in the customer's contact history ([`crate::customer::ContactHistory`]), which the
//! next decisions read.

use super::Operator;
use crate::customer::{CustomerState, HistoryView, Verdict};
use crate::decision;
use crate::event::{ContactChannel, DecisionOutcome, Event, Severity};
use crate::learning::model::{draw_key, Learned, Used};
use crate::learning::uplift::Tally;
use crate::output::{Decision, DecisionAudit, FeatureValues, NextBestOffer, Reasons, RiskAlert};
use crate::rules::document::RuleState;
use crate::rules::{AlertRule, OfferRule, RuleHead};

/// The event a decision answers.
pub(super) struct Trigger<'a> {
    /// Its customer.
    pub customer_id: &'a str,
    /// Its event id.
    pub event_id: &'a str,
    /// Its event time: when the decision is made, for replays to give the same records.
    pub at: i64,
    /// The channel asking, when the trigger is an inbound request (`operator::inbound`).
    pub inbound: Option<&'a str>,
    /// The newest event time the customer's state had taken in when the features were read
    /// (the audit's `features_as_of`): past `at` when the trigger came late.
    pub features_as_of: i64,
}

/// An offer admitted: its score, the channel it goes out on and the propensity behind it.
struct Made {
    score: f64,
    channel: ContactChannel,
    used: Used,
}

/// Offer rules that hold for one trigger, with their scores.
type Scored<'r> = Vec<(f64, &'r OfferRule)>;

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
        // Sized for every feature the rule names: one allocation, never grown.
        let mut used = FeatureValues(Vec::with_capacity(head.used_slots.len()));
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
            features_as_of: Some(t.features_as_of),
            propensity: None,
            rolled_up: None,
        }
    }

    /// Alert rules, then offer rules, for one trigger event already applied to `state` (within
    /// the lateness bound): what [`Operator::apply`] does after the features. Public for the
    /// decision benchmark.
    ///
    /// Challengers are decided beside their champions, each in its own world
    /// (`operator/shadow.rs`): an offer challenger before the champions' offer is chosen, so both
    /// see the same contacts. They write only SHADOW audits and their own contact history, so
    /// they never change what a champion decides.
    ///
    /// Answers the uplift exposure the offer decision counted, if it counted one: the first
    /// offer of its rule in the uplift window, made or held back by the control group.
    pub fn decide(
        &self,
        state: &mut CustomerState,
        event: &Event,
        out: &mut Vec<Decision>,
    ) -> Option<Tally> {
        let kind = event.kind();
        let alerts = self.alerts_by_kind.get(kind).map_or(&[][..], Vec::as_slice);
        let offers = self.offers_by_kind.get(kind).map_or(&[][..], Vec::as_slice);
        if alerts.is_empty() && offers.is_empty() {
            return None;
        }
        let at = event.event_time();
        let mut values = Lazy::new(self.features.defs().len(), at);
        let event_id = event.event_id();
        let t = Trigger {
            customer_id: event.customer_id(),
            event_id: &event_id,
            at,
            inbound: None,
            features_as_of: state.max_event_time,
        };

        let first = out.len();
        for &i in alerts {
            let rule = &self.rules.alerts[i];
            if !self.holds(&rule.head, &mut values, state, event) {
                continue;
            }
            if rule.head.state == RuleState::Shadow {
                self.challenge_alert(rule, &mut values, state, &t, out);
            } else {
                self.alert(rule, &mut values, state, &t, out);
            }
        }
        self.note_challengers(state, &out[first..]);

        let (mut candidates, challengers) =
            self.offer_candidates(offers, &mut values, state, event, &t, out);
        for &(score, rule) in &challengers {
            self.challenge_offer((score, rule), &candidates, &mut values, state, &t, out);
        }
        self.offer(&mut candidates, &mut values, state, &t, out)
    }

    /// Notes on each alert a champion raised among `decided` (one trigger's alert rules'
    /// decisions) every challenger of its rule, with what it did on the same trigger: would have
    /// raised the alert, was held back by its own cooldown, or stayed silent (its condition did
    /// not hold, or it does not trigger on this event). So the champion and its challengers
    /// compare on the same alerts when the case is closed (`operator::outcomes`).
    fn note_challengers(&self, state: &mut CustomerState, decided: &[Decision]) {
        for d in decided {
            let Decision::Alert(alert) = d else {
                continue;
            };
            let verdicts: Vec<(i32, Verdict)> = self
                .rules
                .alerts
                .iter()
                .filter(|r| r.head.state == RuleState::Shadow && r.head.id == alert.rule_id)
                .map(|r| {
                    let would = decided.iter().find_map(|d| match d {
                        Decision::Audit(a)
                            if a.outcome == DecisionOutcome::Shadow
                                && a.rule_id == r.head.id
                                && a.rule_version == r.head.version =>
                        {
                            a.shadow_outcome
                        }
                        _ => None,
                    });
                    let verdict = match would {
                        Some(DecisionOutcome::Alerted) => Verdict::Alerted,
                        Some(DecisionOutcome::SuppressedCooldown) => Verdict::Cooling,
                        _ => Verdict::Silent,
                    };
                    (r.head.version, verdict)
                })
                .collect();
            if !verdicts.is_empty() {
                state.history.note_challengers(&alert.alert_id, verdicts);
            }
        }
    }

    /// A champion alert rule that holds: raised, or held back by its cooldown.
    fn alert(
        &self,
        rule: &AlertRule,
        values: &mut Lazy,
        state: &mut CustomerState,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) {
        let at = t.at;
        if state
            .history
            .alert_cooling(&rule.head.id, at, rule.cooldown_ms)
        {
            // Counted in its roll-up window: no record of its own, so nothing to read.
            if self.rolled_up(&rule.head, t, state, out) {
                return;
            }
            let features = self.used_features(&rule.head, values, state);
            let mut reasons = reasons_of(&rule.head, 1);
            // Shared: most audits of a busy alert rule are this one.
            static COOLING: std::sync::LazyLock<std::sync::Arc<str>> =
                std::sync::LazyLock::new(|| "same alert raised within its cooldown".into());
            reasons.push(COOLING.clone());
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
        self.acted(&rule.head, t, state, out);
        let features = self.used_features(&rule.head, values, state);
        let reasons = reasons_of(&rule.head, 1);
        let alert_id = decision::decision_id(
            "alert",
            &rule.head.id,
            rule.head.version,
            t.customer_id,
            t.event_id,
        );
        state.history.record_alert(
            rule.head.id.clone(),
            at,
            (alert_id.clone(), rule.head.version),
            &self.retention,
        );
        if rule.severity >= Severity::High {
            state.note_high_alert(at);
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

    /// The offer rules among `offers` that hold, scored, as (champions, challengers). A champion
    /// held back for this customer whatever else is eligible (its own cooldown, a declined
    /// product: [`decision::offer_blocked`]) is audited here and does not enter arbitration.
    pub(super) fn offer_candidates<'r>(
        &'r self,
        offers: &[usize],
        values: &mut Lazy,
        state: &mut CustomerState,
        event: &Event,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) -> (Scored<'r>, Scored<'r>) {
        let mut candidates = Scored::new();
        let mut challengers = Scored::new();
        // Consent per purpose: without profiling consent, no offer is chosen from the
        // customer's features (nor audited with them); contextual offers still are. A customer
        // whose profile is not known yet is left to the marketing-consent check in `admit`.
        let profiling = state.profile.as_ref().is_none_or(|p| p.consent_profiling);
        for &i in offers {
            let rule = &self.rules.offers[i];
            if !profiling && rule.personalised() {
                continue;
            }
            if !self.holds(&rule.head, values, state, event) {
                continue;
            }
            if rule.head.state == RuleState::Shadow {
                challengers.push((self.score(rule, values, state, t), rule));
                continue;
            }
            let history = HistoryView::real(&state.history);
            if let Err((outcome, why)) = decision::offer_blocked(rule, history, t.at, &self.policy)
            {
                if outcome == DecisionOutcome::SuppressedCooldown
                    && self.rolled_up(&rule.head, t, state, out)
                {
                    continue;
                }
                let features = self.used_features(&rule.head, values, state);
                let mut reasons = reasons_of(&rule.head, 1);
                reasons.push(why.into());
                out.push(Decision::Audit(
                    self.audit(&rule.head, t, outcome, None, reasons, features),
                ));
                continue;
            }
            if !self.ramped_in(rule, state, t) {
                continue;
            }
            // Scored only once it may be chosen: a held-back offer needs no propensity.
            candidates.push((self.score(rule, values, state, t), rule));
        }
        (candidates, challengers)
    }

    /// Whether a new offer's ramp (`operator.learning.ramp_positives`) reaches this customer yet:
    /// a share of customers growing with the positives of the offer's model for the customer's
    /// segment. An offer not reached is left out of arbitration, as if its rule did not hold.
    fn ramped_in(&self, rule: &OfferRule, state: &CustomerState, t: &Trigger<'_>) -> bool {
        let Some((l, ramp)) = self.learning.as_ref().and_then(|l| Some((l, l.ramp?))) else {
            return true;
        };
        let segment = rule.segment.map_or("", |s| s.of(state.profile.as_ref()));
        let positives = l.models.counts(&rule.head.id, segment).positives;
        ramp.admits(positives, draw_key(&[t.customer_id, &rule.head.id, "ramp"]))
    }

    /// What making this offer now is expected to be worth: its propensity
    /// ([`Operator::propensity`]) times the offer's value and the rule's weight (the levers).
    fn score(
        &self,
        rule: &OfferRule,
        values: &mut Lazy,
        state: &CustomerState,
        t: &Trigger<'_>,
    ) -> f64 {
        self.propensity(rule, values, state, t).propensity * rule.value * rule.weight
    }

    /// The propensity of this offer for this customer now. The rule's configured model over the
    /// customer's features is the prior; with learning on, what the offer's model (for the
    /// customer's segment) learned from responses moves it, and a bounded share of decisions
    /// draws from the posterior instead of taking its mean (`learning::model::Learned`). The
    /// draw is keyed by customer, event and rule, so the same decision draws the same again.
    /// For a customer who has not consented to profiling, the configured propensity alone.
    fn propensity(
        &self,
        rule: &OfferRule,
        values: &mut Lazy,
        state: &CustomerState,
        t: &Trigger<'_>,
    ) -> Used {
        let configured = decision::propensity(rule.intercept, &rule.coefficients, |slot| {
            values.get(self, state, slot).unwrap_or(0.0)
        });
        let profiling = state.profile.as_ref().is_none_or(|p| p.consent_profiling);
        match &self.learning {
            Some(l) if profiling => {
                let segment = rule.segment.map_or("", |s| s.of(state.profile.as_ref()));
                let counts = l.models.counts(&rule.head.id, segment);
                let learned = Learned {
                    evidence: rule.evidence.unwrap_or(l.prior_evidence),
                    exploration: l.exploration,
                };
                let key = draw_key(&[t.customer_id, t.event_id, &rule.head.id]);
                learned.propensity(configured, counts, key)
            }
            _ => Used::configured(configured),
        }
    }

    /// Arbitration among the champions' candidates, then the contact policy, consent and the
    /// control group for the best one: made (`make_offer`) or audited as held back. Answers
    /// the uplift exposure counted, if any.
    pub(super) fn offer(
        &self,
        candidates: &mut [(f64, &OfferRule)],
        values: &mut Lazy,
        state: &mut CustomerState,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) -> Option<Tally> {
        let eligible = candidates.len();
        let (score, rule) = decision::arbitrate(candidates)?;
        let features = self.used_features(&rule.head, values, state);
        let mut reasons = reasons_of(&rule.head, 3);
        if eligible > 1 {
            reasons.push(format!("best of {eligible} eligible offers (score {score:.3})").into());
        }
        if let Some(channel) = t.inbound {
            reasons.push(format!("inbound request from {channel}").into());
        }
        let history = HistoryView::real(&state.history);
        match self.admit(rule, state, history, t) {
            Ok(channel) => {
                // The same propensity the score was made of: the same key draws the same.
                let used = self.propensity(rule, values, state, t);
                reasons.push(used.reason().into());
                let made = Made {
                    score,
                    channel,
                    used,
                };
                self.make_offer(rule, made, (reasons, features), state, t, out)
            }
            Err((outcome, why)) => {
                reasons.push(why.into());
                out.push(Decision::Audit(
                    self.audit(&rule.head, t, outcome, None, reasons, features),
                ));
                (outcome == DecisionOutcome::ControlGroup)
                    .then(|| self.hold_out(rule, state, t))
                    .flatten()
            }
        }
    }

    /// The contact policy, consent and the control group for an offer chosen in `history`:
    /// `decision::admit` for the stream (the outbound channel it goes out on), and
    /// `decision::admit_inbound` for an inbound request, whose customer is in the channel that
    /// asks (the offer's record keeps its first outbound channel; the answer goes back to the
    /// channel asking).
    pub(super) fn admit(
        &self,
        rule: &OfferRule,
        state: &CustomerState,
        history: HistoryView<'_>,
        t: &Trigger<'_>,
    ) -> Result<ContactChannel, (DecisionOutcome, String)> {
        let (customer, at) = (t.customer_id, t.at);
        match t.inbound {
            None => decision::admit(rule, state, history, customer, at, &self.policy),
            Some(_) => decision::admit_inbound(rule, state, history, customer, at, &self.policy)
                .map(|()| {
                    rule.channels
                        .first()
                        .copied()
                        .unwrap_or(ContactChannel::Push)
                }),
        }
    }

    /// A control-group member held out of `rule`'s offer, recorded (`record_held`) under the
    /// id of the decision held back.
    fn hold_out(
        &self,
        rule: &OfferRule,
        state: &mut CustomerState,
        t: &Trigger<'_>,
    ) -> Option<Tally> {
        let id = decision::decision_id(
            "control",
            &rule.head.id,
            rule.head.version,
            t.customer_id,
            t.event_id,
        );
        self.record_held(state, &rule.head.id, rule.product, &id, t.at)
    }

    /// The chosen offer, admitted on `channel`: recorded in the contact history, audited and sent.
    /// Answers its customer's uplift exposure to the rule when it is one (the first offer of the
    /// rule in the uplift window), which its record then carries.
    fn make_offer(
        &self,
        rule: &OfferRule,
        Made {
            score,
            channel,
            used,
        }: Made,
        (reasons, features): (Reasons, FeatureValues),
        state: &mut CustomerState,
        t: &Trigger<'_>,
        out: &mut Vec<Decision>,
    ) -> Option<Tally> {
        let at = t.at;
        self.acted(&rule.head, t, state, out);
        let offer_id = decision::decision_id(
            "offer",
            &rule.head.id,
            rule.head.version,
            t.customer_id,
            t.event_id,
        );
        let tally = self.record_made(
            state,
            &rule.head.id,
            rule.product,
            &offer_id,
            at,
            used.configured,
        );
        let mut audit = self.audit(
            &rule.head,
            t,
            DecisionOutcome::Offered,
            Some(offer_id.clone()),
            reasons.clone(),
            features.clone(),
        );
        audit.propensity = Some(used.propensity);
        out.push(Decision::Audit(audit));
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
            propensity: Some(used.propensity),
            explored: used.explored,
        }));
        tally
    }
}

/// A rule's condition terms, with room for `more` reasons after them: one allocation.
fn reasons_of(head: &RuleHead, more: usize) -> Reasons {
    let terms = head.condition.terms();
    let mut reasons = Vec::with_capacity(terms.len() + more);
    reasons.extend_from_slice(terms);
    reasons
}

/// Feature values computed on demand for one trigger and kept for the rest of its rules: a rule
/// set reads only the features its triggered rules name. On the stack for up to
/// [`LAZY_INLINE`] features: one is made per event that triggers rules, and a heap block each
/// was the pipeline's second most frequent allocation (`cargo bench --bench allocations`).
pub(super) struct Lazy {
    at: i64,
    cache: smallvec::SmallVec<[Option<Option<f64>>; LAZY_INLINE]>,
}

/// Features whose values [`Lazy`] keeps without a heap allocation (1 KiB of stack).
const LAZY_INLINE: usize = 64;

impl Lazy {
    pub(super) fn new(slots: usize, at: i64) -> Self {
        Self {
            at,
            cache: smallvec::smallvec![None; slots],
        }
    }

    pub(super) fn get(&mut self, op: &Operator, state: &CustomerState, slot: usize) -> Option<f64> {
        *self.cache[slot].get_or_insert_with(|| op.value_at(state, slot, self.at))
    }
}
