//! The stateful operator: applies one event to one customer's state and decides. Pure and
//! synchronous (no I/O, no clock): the worker loads state, calls [`Operator::apply`] per event in
//! partition order, then flushes state and produces the decisions.
//!
//! Per event: replay check (applied offsets) → privacy gate (erasure) → profile/reference state →
//! features (tiles, event time) → rules (only for events within the lateness bound) → decisioning.

use crate::config::OperatorSettings;
use crate::customer::{CustomerState, OutboxEntry, ProfileState, Retention};
use crate::decision::Policy;
use crate::event::{Event, KindTable};
use crate::features::{FeatureSet, TileIndex, Tiles};
use crate::learning::model::{Models, Observation};
use crate::learning::uplift::{Group, Tally};
use crate::output::Decision;
use crate::rules::document::RuleState;
use crate::rules::{RuleHead, RuleSet};
use std::sync::Arc;

/// Where an event came from, for replay detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePos {
    /// Input kind index.
    pub kind: u8,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// What a batch did, counted in locals and published to metrics once per batch.
#[derive(Debug, Default, Clone)]
pub struct BatchStats {
    /// Events applied.
    pub applied: u64,
    /// Events skipped because their offset was already applied (replay after a crash).
    pub replayed: u64,
    /// Events older than the longest window: dropped and counted.
    pub too_late: u64,
    /// Events that updated features but were too old to trigger rules.
    pub no_trigger: u64,
    /// Feature tile updates.
    pub feature_updates: u64,
    /// Events dropped because the customer was erased after them.
    pub erased: u64,
    /// Responses to learn from, for the model store (`state::models`): the worker records
    /// them at its checkpoint, before it stores the customers' state.
    pub learned: Vec<crate::learning::model::Observation>,
    /// Exposures and conversions of the offer rules' treated and control groups (uplift).
    pub uplift: Vec<crate::learning::uplift::Tally>,
    /// Alerts' cases closed, for their rules' quality (`outcomes`).
    pub closed: Vec<outcomes::Closed>,
    /// Inputs refused after decoding, to dead-letter (`outcomes`).
    pub rejected: Vec<outcomes::Rejected>,
}

/// The operator: features and rules, built once per rule-set version.
pub struct Operator {
    features: Arc<FeatureSet>,
    rules: RuleSet,
    offers_by_kind: KindTable<Vec<usize>>,
    alerts_by_kind: KindTable<Vec<usize>>,
    longest_window_ms: i64,
    lateness_ms: i64,
    validity_ms: i64,
    negative_sentiment: f64,
    policy: Policy,
    retention: Retention,
    /// The challengers' alerts' retention: their cooldowns and windows only (they are never
    /// sent, so no case closes them).
    shadow_retention: Retention,
    /// `operator.alert_outcome_window`, ms.
    alert_outcome_ms: i64,
    /// `operator.audit_rollup`, ms (0: off).
    rollup_ms: i64,
    outbox: bool,
    /// The learned propensities and how decisions use them (`None`: learning is off).
    learning: Option<Learning>,
}

/// What decisioning learns from: the shared model table and the configured way to use it.
#[derive(Debug, Clone)]
struct Learning {
    models: Arc<Models>,
    /// `operator.learning.prior_evidence`, the default of a rule's `propensity.evidence`.
    prior_evidence: f64,
    exploration: f64,
    refresh: std::time::Duration,
    /// A new offer's ramp (`None`: none).
    ramp: Option<crate::learning::model::Ramp>,
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("features", &self.features.defs().len())
            .field("ruleset_version", &self.rules.version)
            .finish()
    }
}

/// Rules by triggering kind, paused rules left out: an event evaluates only the rules it triggers.
fn index_by_kind<T>(items: &[T], head: impl Fn(&T) -> &RuleHead) -> KindTable<Vec<usize>> {
    let mut out = KindTable::<Vec<usize>>::default();
    for (i, item) in items.iter().enumerate() {
        let head = head(item);
        if head.state == RuleState::Paused {
            continue;
        }
        for kind in &head.triggers {
            out.entry(*kind).push(i);
        }
    }
    out
}

impl Operator {
    /// Builds the operator over `features` and `rules`.
    pub fn new(
        features: Arc<FeatureSet>,
        rules: RuleSet,
        settings: &OperatorSettings,
        control_group_percent: u8,
    ) -> Self {
        let offers_by_kind = index_by_kind(&rules.offers, |r| &r.head);
        let alerts_by_kind = index_by_kind(&rules.alerts, |r| &r.head);
        let longest_offer_cooldown_ms = rules
            .offers
            .iter()
            .map(|r| r.cooldown_ms)
            .max()
            .unwrap_or(0);
        let longest_alert_cooldown_ms = rules
            .alerts
            .iter()
            .map(|r| r.cooldown_ms)
            .max()
            .unwrap_or(0);
        let longest_window_ms = features.longest_window_ms();
        let policy = Policy {
            control_group_percent,
            ..Policy::from_settings(settings)
        };
        // Records are kept as long as any rule or policy reads them: an offer for the contact
        // period, its rule's cooldown, a decline's suppression or the uplift window; an alert
        // for the longest alert cooldown (another rule's record must outlive a shorter one),
        // the longest window, or its case's outcome (`operator.alert_outcome_window`).
        let outcome_ms =
            i64::try_from(settings.alert_outcome_window.as_millis()).unwrap_or(i64::MAX);
        let retention = Retention {
            offers_ms: policy.contact_retention_ms(longest_offer_cooldown_ms),
            alerts_ms: longest_alert_cooldown_ms
                .max(longest_window_ms)
                .max(outcome_ms),
        };
        let shadow_retention = Retention {
            alerts_ms: longest_alert_cooldown_ms.max(longest_window_ms),
            ..retention
        };
        Self {
            features,
            rules,
            offers_by_kind,
            alerts_by_kind,
            longest_window_ms,
            lateness_ms: settings.allowed_lateness.as_millis() as i64,
            validity_ms: settings.offer_validity.as_millis() as i64,
            negative_sentiment: settings.negative_sentiment_threshold,
            outbox: false,
            policy,
            retention,
            shadow_retention,
            alert_outcome_ms: outcome_ms,
            rollup_ms: i64::try_from(settings.audit_rollup.as_millis()).unwrap_or(i64::MAX),
            learning: settings.learning.enabled.then(|| Learning {
                models: Models::new(),
                prior_evidence: settings.learning.prior_evidence,
                exploration: settings.learning.exploration,
                refresh: settings.learning.refresh,
                ramp: (settings.learning.ramp_positives > 0).then_some(
                    crate::learning::model::Ramp {
                        positives: settings.learning.ramp_positives,
                        start: settings.learning.ramp_start,
                    },
                ),
            }),
        }
    }

    /// Reads learned propensities from `models`, the table every worker and rule-set version
    /// shares (by default the operator has a table of its own). Nothing when learning is off.
    pub fn with_models(mut self, models: Arc<Models>) -> Self {
        if let Some(l) = &mut self.learning {
            l.models = models;
        }
        self
    }

    /// The table of learned propensities decisions read (`None`: learning is off).
    pub fn models(&self) -> Option<&Arc<Models>> {
        self.learning.as_ref().map(|l| &l.models)
    }

    /// How often the models are reloaded from the store (`operator.learning.refresh`).
    pub fn learning_refresh(&self) -> Option<std::time::Duration> {
        self.learning.as_ref().map(|l| l.refresh)
    }

    /// The prior of offer rule `rule_id`'s models as the metrics show them: its weight, and its
    /// configured propensity for a customer with every feature at zero (its intercept), which
    /// stands for the model until it has learned from an offer.
    pub fn model_prior(&self, rule_id: &str) -> Option<crate::learning::propensity::Prior> {
        let l = self.learning.as_ref()?;
        let rule = self.rules.offers.iter().find(|r| r.head.id == rule_id)?;
        Some(crate::learning::propensity::Prior {
            propensity: crate::decision::propensity(rule.intercept, &[], |_| 0.0),
            evidence: rule.evidence.unwrap_or(l.prior_evidence),
        })
    }

    /// Keeps each applied event's decisions in the customer's outbox until its transaction
    /// commits, and re-emits them for a replayed event (exactly-once delivery).
    pub fn with_outbox(mut self, on: bool) -> Self {
        self.outbox = on;
        self
    }

    /// The feature set, in slot order.
    pub fn features(&self) -> &FeatureSet {
        &self.features
    }

    /// The rule set in force.
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// Makes `state.features` line up with the feature slots (after a load or a definition change):
    /// tiles of a feature whose definition is unchanged (same [`crate::features::FeatureDef::id`]) are kept; a new
    /// or changed feature starts empty and fills as events arrive.
    pub fn align(&self, state: &mut CustomerState) {
        let defs = self.features.defs();
        let aligned = state.features.len() == defs.len()
            && state
                .features
                .iter()
                .zip(defs)
                .all(|((id, t), f)| *id == f.id && t.fits(f.aggregation));
        if aligned {
            return;
        }
        let mut old = std::mem::take(&mut state.features);
        state.features = defs
            .iter()
            .map(|f| {
                let tiles = old
                    .iter_mut()
                    .find(|(id, t)| *id == f.id && t.fits(f.aggregation))
                    .map(|(_, t)| std::mem::replace(t, Tiles::new(f.aggregation)))
                    .unwrap_or_else(|| Tiles::new(f.aggregation));
                (f.id, tiles)
            })
            .collect();
    }

    /// Applies one event to the customer's state (already aligned) and appends its decisions.
    pub fn apply(
        &self,
        state: &mut CustomerState,
        event: &Event,
        pos: Option<SourcePos>,
        out: &mut Vec<Decision>,
        stats: &mut BatchStats,
    ) {
        if let Some(p) = pos {
            if state.is_applied(p.kind, p.partition, p.offset) {
                stats.replayed += 1;
                if self.outbox {
                    self.reemit(state, event, p, out);
                }
                return;
            }
            // An outcome refused changes nothing and is not marked applied: a replay of its
            // record (after a transaction that did not commit) refuses it again, so its dead
            // letter goes out with the replay.
            if let Event::AlertOutcome(o) = event {
                if let Some(mut refused) = self.refusal(state, o) {
                    refused.pos = pos;
                    stats.rejected.push(refused);
                    stats.applied += 1;
                    return;
                }
            }
            state.mark_applied(p.kind, p.partition, p.offset);
        }
        let first_decision = out.len();
        self.apply_new(state, event, out, stats);
        if let (true, Some(p)) = (self.outbox, pos) {
            if out.len() > first_decision {
                let decisions = out[first_decision..]
                    .iter()
                    .map(|d| {
                        let mut d = d.clone();
                        d.customer_id_mut().clear();
                        d
                    })
                    .collect();
                state.outbox.push(OutboxEntry {
                    kind: p.kind,
                    partition: p.partition,
                    offset: p.offset,
                    decisions,
                });
            }
        }
    }

    /// Exactly-once replay: the decisions stored for an event already applied go out again,
    /// unchanged (same ids, same bytes), with the customer id restored from the event.
    fn reemit(&self, state: &CustomerState, event: &Event, p: SourcePos, out: &mut Vec<Decision>) {
        let stored = state
            .outbox
            .iter()
            .find(|e| e.kind == p.kind && e.partition == p.partition && e.offset == p.offset);
        for d in stored.iter().flat_map(|e| e.decisions.iter()) {
            let mut d = d.clone();
            *d.customer_id_mut() = event.customer_id().to_string();
            out.push(d);
        }
    }

    /// [`Operator::apply`] for an event not applied before.
    fn apply_new(
        &self,
        state: &mut CustomerState,
        event: &Event,
        out: &mut Vec<Decision>,
        stats: &mut BatchStats,
    ) {
        let time = event.event_time();
        if !state.rollups.is_empty() {
            // The customer's roll-up windows that this event's time has passed close now, and
            // all of them before an erasure clears the state (`customer::Rollups`).
            let now = match event {
                Event::Erasure(_) => i64::MAX,
                _ => state.max_event_time.max(time),
            };
            self.close_rollups(state, event.customer_id(), now, out);
        }
        match event {
            Event::Erasure(e) => {
                // Applied offsets and the outbox survive the erasure: replays must still be
                // recognised, and decisions already made in this uncommitted batch still go out.
                let applied = std::mem::take(&mut state.applied);
                let outbox = std::mem::take(&mut state.outbox);
                *state = CustomerState {
                    applied,
                    outbox,
                    erased_before: Some(e.requested_at.max(state.erased_before.unwrap_or(0))),
                    ..CustomerState::default()
                };
                self.align(state);
                stats.applied += 1;
                return;
            }
            // Before the erasure's own check: an outcome is answered (counted, or dead-lettered
            // with its reason), never dropped silently, whenever the case was closed.
            Event::AlertOutcome(o) => {
                match self.close_alert(state, o) {
                    Ok(closed) => stats.closed.extend(closed),
                    Err(rejected) => stats.rejected.push(rejected),
                }
                stats.applied += 1;
                return;
            }
            _ if state.erased_before.is_some_and(|t| time <= t) => {
                stats.erased += 1;
                return;
            }
            Event::Profile(p) => {
                if state
                    .profile
                    .as_ref()
                    .is_none_or(|old| old.updated_at <= p.updated_at)
                {
                    state.profile = Some(ProfileState::from(p));
                }
                stats.applied += 1;
                return;
            }
            Event::OfferResponse(r) => {
                if let Some(o) = self.observation(state, &r.offer_id, r.response) {
                    stats.learned.push(o);
                }
                state
                    .history
                    .apply_response(&r.offer_id, r.response, r.event_time);
            }
            Event::ProductOpened(p) => self.convert(state, p, stats),
            Event::InboundContact(c) => match self.take_contact(state, c) {
                // A new contact goes on like any event: features may count it, rules may
                // trigger on it. One held already (the outbox's redelivery) is nothing new.
                Some(exposed) => stats.uplift.extend(exposed),
                None => {
                    stats.applied += 1;
                    return;
                }
            },
            Event::Feedback(f) if f.kind == crate::event::FeedbackKind::Complaint => {
                state.note_complaint(time);
            }
            Event::Social(s) if s.mentions_bank && s.sentiment <= self.negative_sentiment => {
                state.note_negative_social(time);
            }
            _ => {}
        }
        // Windows are exact for every evaluation at or after `horizon`; an event older than the
        // longest window before it can never be evaluated again: dropped and counted.
        let horizon = state.max_event_time.max(time) - self.lateness_ms;
        if state.max_event_time > 0 && time < horizon - self.longest_window_ms {
            stats.too_late += 1;
            return;
        }
        stats.applied += 1;
        let defs = self.features.defs();
        let mut memo = FilterMemo::default();
        let (mut time_tile, mut horizon_tile) = (TileIndex::new(time), TileIndex::new(horizon));
        for &slot in self.features.slots_for(event.kind()) {
            let def = &defs[slot];
            let tile = time_tile.of(def.tile_ms);
            if tile < def.first_needed_after(horizon_tile.of(def.tile_ms))
                || !memo.matches(def, event)
            {
                continue;
            }
            // This tile may expire before any tile seen at the last retire.
            let expires = (tile + def.tiles_per_window) * def.tile_ms + self.lateness_ms;
            if def.is_text() {
                if let Some(text) = def.text_contribution(event) {
                    state.features[slot].1.add_text_at(tile, time, text);
                    stats.feature_updates += 1;
                    state.next_retire_at = state.next_retire_at.min(expires);
                }
            } else if let Some((value, hash)) = def.contribution(event) {
                state.features[slot].1.add_at(
                    def.aggregation,
                    def.tile_ms,
                    tile,
                    time,
                    value,
                    hash,
                );
                stats.feature_updates += 1;
                state.next_retire_at = state.next_retire_at.min(expires);
            }
        }
        if time > state.max_event_time {
            state.max_event_time = time;
            if time >= state.next_retire_at {
                self.retire(state);
            }
        }
        if time < state.max_event_time - self.lateness_ms {
            stats.no_trigger += 1;
            return;
        }
        if let Some(exposed) = self.decide(state, event, out) {
            stats.uplift.push(exposed);
        }
    }
}

impl Operator {
    /// A product opened: the conversion of every exposure of its family within the uplift
    /// window, treated (the contact history) or control (the control group's records).
    fn convert(
        &self,
        state: &mut CustomerState,
        opened: &crate::event::ProductOpened,
        stats: &mut BatchStats,
    ) {
        let (product, at) = (opened.product_category, opened.event_time);
        let window = self.policy.uplift_window_ms;
        for c in state.history.convert(product, at, window) {
            stats.uplift.push(Tally {
                exposure_id: c.offer_id.clone(),
                exposed_at: c.at,
                counted_at: at,
                rule_id: c.rule_id.clone(),
                group: Group::Treated,
                converted: true,
            });
        }
        for c in state.shadow.convert(product, at, window) {
            if let Some(rule_id) = crate::customer::control_rule(&c.rule_id) {
                stats.uplift.push(Tally {
                    exposure_id: c.offer_id.clone(),
                    exposed_at: c.at,
                    counted_at: at,
                    rule_id: rule_id.to_string(),
                    group: Group::Control,
                    converted: true,
                });
            }
        }
    }

    /// What a response teaches: the offer it answers (in the customer's contact history) and
    /// that offer's rule and segment. Nothing when learning is off, when the customer has not
    /// consented to profiling (their responses are not learned from), or when the offer is no
    /// longer held or its rule is gone from the rule set.
    fn observation(
        &self,
        state: &mut CustomerState,
        offer_id: &str,
        response: crate::event::OfferResponseKind,
    ) -> Option<Observation> {
        self.learning.as_ref()?;
        if !state.profile.as_ref().is_none_or(|p| p.consent_profiling) {
            return None;
        }
        let accepted = response == crate::event::OfferResponseKind::Accepted;
        let rule_id = &state
            .history
            .offers()
            .iter()
            .find(|c| c.offer_id == offer_id)?
            .rule_id;
        let rule = self.rules.offers.iter().find(|r| &r.head.id == rule_id)?;
        let segment = rule
            .segment
            .map_or("", |s| s.of(state.profile.as_ref()))
            .to_string();
        let learnt = state.history.learn(offer_id, accepted)?;
        Some(Observation {
            rule_id: learnt.offer.rule_id.clone(),
            segment,
            offer_id: offer_id.to_string(),
            offered_at: learnt.offer.at,
            trial: learnt.trial,
            configured: learnt.offer.configured,
            positive: learnt.positive,
            score_bin: (!rule.coefficients.is_empty())
                .then(|| crate::learning::ranking::bin(learnt.offer.configured)),
        })
    }
}

/// Filter results for one event: each distinct filter (see `FeatureDef::filter_id`) is evaluated
/// once, however many features share it. On the stack; ids past its size are evaluated directly.
#[derive(Default)]
struct FilterMemo([u8; 32]);

impl FilterMemo {
    fn matches(&mut self, def: &crate::features::FeatureDef, event: &Event) -> bool {
        let Some(cell) = self.0.get_mut(usize::from(def.filter_id)) else {
            return def.filter.matches(event);
        };
        if *cell == 0 {
            *cell = if def.filter.matches(event) { 1 } else { 2 };
        }
        *cell == 1
    }
}

mod contacts;
mod decide;
pub mod inbound;
pub mod outcomes;
mod rollup;
mod shadow;
mod values;

#[cfg(test)]
mod inbound_tests;
#[cfg(test)]
mod learning_tests;
#[cfg(test)]
mod rollup_tests;
#[cfg(test)]
mod shadow_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod uplift_tests;
