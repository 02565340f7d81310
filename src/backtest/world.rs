//! Offers that learn, tried against a world that answers, in one process: the generator's
//! customers act, the operator decides, the responder answers each offer as its customer's
//! persona would, and the answers come back to the operator in event-time order, which learns
//! from them as the pipeline does (each offer once, the counts taken in after every event). No
//! Kafka, no Redis: fast enough to learn from 50,000 responses in seconds, and deterministic for
//! a seed.
//!
//! What it reports ([`WorldReport`]):
//! - per offer rule and segment, what was learned against the truth: the accepted share of the
//!   offers it learned from, and the mean true propensity of the customers who received them;
//!   and how well the rule's scores ranked them (AUC), where they read features;
//! - with `ab`, an A/B of learned arbitration against the configured propensities: customers are
//!   split in two halves by a hash of their id, each half decided by its own operator over the
//!   same stream, and each half's acceptance (offers accepted per offer made) compared, with the
//!   difference's 95% interval;
//! - per offer rule, its uplift against the control group, with the truth it estimates
//!   ([`super::exposures`]). Customers also open products on their own at the truth's base
//!   rates, and an accepted offer opens its product: both reach the operator as `ProductOpened`
//!   records, as the CRM's would.

use super::exposures::{Exposures, UpliftRow};
use crate::config::Settings;
use crate::customer::CustomerState;
use crate::event::{Event, OfferResponse, OfferResponseKind, ProductCategory, ProductOpened, Text};
use crate::generator::personas::{EventFactory, Persona};
use crate::generator::responder::Responder;
use crate::learning::model::draw_key;
use crate::learning::uplift::{uplift, Arm, Estimate};
use crate::operator::{BatchStats, Operator};
use crate::output::Decision;
use crate::rules::RuleSet;
use crate::state::models::MemoryModels;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The world and how long to run it.
#[derive(Debug, Clone)]
pub struct WorldOptions {
    /// Customers (the generator's).
    pub customers: u32,
    /// Seeds the customers, their activity and their answers.
    pub seed: u64,
    /// Who answers how.
    pub responder: Responder,
    /// Stop once the learning operator has learned from this many offers (trials).
    pub responses: u64,
    /// Stop after this many generated events in any case.
    pub max_events: u64,
    /// How long after an offer its answer comes (event time).
    pub delay_ms: i64,
    /// Split the customers: half decided by learned propensities, half by the configured ones.
    pub ab: bool,
}

/// What one offer rule's model (for one segment) learned, against the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    /// Offer rule.
    pub rule_id: String,
    /// Segment (empty: the rule's one model).
    pub segment: String,
    /// Offers learned from.
    pub trials: u64,
    /// Of them, accepted.
    pub positives: u64,
    /// The positives the configured model expected of them.
    pub expected: f64,
    /// The prior's weight in responses.
    pub evidence: f64,
    /// The mean true propensity of the customers those offers went to (the responder's table).
    pub truth: f64,
    /// How well the rule's scored propensity ranked those offers (AUC, `learning::ranking`),
    /// where it scores features and both answers were seen.
    pub auc: Option<f64>,
}

impl ModelRow {
    /// What was learned: the model's propensity over the offers it learned from, their mean
    /// configured propensity recalibrated, `(k + w·E/n) / (n + w)` (see `learning::propensity`).
    pub fn learned(&self) -> f64 {
        let n = self.trials as f64;
        let mean_configured = self.expected / n.max(1.0);
        (self.positives as f64 + self.evidence * mean_configured) / (n + self.evidence)
    }
}

/// Offers made and accepted by one half of an A/B.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Half {
    /// Offers made.
    pub offers: u64,
    /// Of them, accepted (the responder's answer).
    pub accepted: u64,
}

/// What a run of the world gave.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldReport {
    /// Events generated and decided.
    pub events: u64,
    /// The event time they span, first to last.
    pub span_ms: i64,
    /// Offers learned from (trials) by the learning operator.
    pub responses: u64,
    /// Per model, sorted by rule and segment.
    pub models: Vec<ModelRow>,
    /// Learned arbitration's half, or the whole run without `ab`.
    pub learned: Half,
    /// Configured arbitration's half (`ab` only).
    pub configured: Option<Half>,
    /// Per offer rule, its uplift against the control group and the truth, sorted by rule.
    pub uplift: Vec<UpliftRow>,
    /// The uplift window the run used (the configured one, or the rule set's shortest cooldown
    /// when shorter).
    pub uplift_window_ms: i64,
}

impl WorldReport {
    /// The A/B's gain in acceptance (learned − configured), with its 95% interval.
    pub fn gain(&self) -> Option<Estimate> {
        let c = self.configured?;
        let arm = |h: Half| Arm {
            customers: h.offers,
            converted: h.accepted,
        };
        uplift(arm(self.learned), arm(c)).map(|u| u.absolute)
    }
}

/// Event time of the world's first event (2027-01-15).
const START_MS: i64 = 1_800_000_000_000;

/// A pending answer, applied when the stream reaches its time.
type Pending = BTreeMap<(i64, u64), Event>;

/// Runs the world of `options` through the features, rules and operator settings of
/// `settings` with `rules` (see the module docs).
pub fn run(
    settings: &Settings,
    rules: RuleSet,
    options: &WorldOptions,
) -> Result<WorldReport, super::BacktestError> {
    let features = Arc::new(settings.features.load_in(&settings.catalog)?);
    // One offer of a rule per treated customer and window, so the truth is exact (see
    // `exposures`): the window is at most the shortest cooldown.
    let shortest_cooldown = rules
        .offers
        .iter()
        .map(|r| r.cooldown_ms)
        .filter(|c| *c > 0)
        .min();
    let window_ms = (settings.operator.uplift.window.as_millis() as i64)
        .min(shortest_cooldown.unwrap_or(i64::MAX));
    let mut learning_settings = super::without_rollup(&settings.operator);
    learning_settings.learning.enabled = true;
    learning_settings.uplift.window = std::time::Duration::from_millis(window_ms as u64);
    let mut configured_settings = learning_settings.clone();
    configured_settings.learning.enabled = false;
    let exposures = Exposures::new(&rules, window_ms, options.delay_ms.max(1_001));
    let percent = settings.operator.control_group_percent;
    let learner = Operator::new(features.clone(), rules.clone(), &learning_settings, percent);
    let configured = Operator::new(features, rules, &configured_settings, percent);
    let sides = Sides {
        learner: &learner,
        configured: &configured,
        ab: options.ab,
    };
    let store = MemoryModels::default();
    let truth = options.responder.truth();
    let mut factory = EventFactory::new(options.customers, options.seed, START_MS)
        .with_own_conversions(truth, options.seed);
    let mut ledger = Ledger {
        personas: factory.customers().iter().map(|c| c.persona).collect(),
        states: FxHashMap::default(),
        out: Vec::new(),
        stats: BatchStats::default(),
        exposures,
    };
    let mut pending = Pending::new();
    let mut offered: FxHashMap<String, (Persona, ProductCategory)> = FxHashMap::default();
    let mut truth_sums: BTreeMap<(String, String), f64> = BTreeMap::new();
    let (mut learned_half, mut configured_half) = (Half::default(), Half::default());
    let (mut events, mut trials, mut seq, mut end) = (0u64, 0u64, 0u64, START_MS);
    while events < options.max_events && trials < options.responses {
        let event = factory.next_event();
        let at = event.event_time();
        end = end.max(at);
        while let Some(entry) = pending.first_entry() {
            if entry.key().0 > at {
                break;
            }
            let answer = entry.remove();
            ledger.apply(&sides, &answer, truth);
        }
        events += 1;
        let in_b = options.ab && in_configured_half(event.customer_id());
        ledger.apply(&sides, &event, truth);
        for d in std::mem::take(&mut ledger.out) {
            let Decision::Offer(o) = d else { continue };
            let Some(persona) = customer_index(&o.customer_id).and_then(|i| ledger.personas.get(i))
            else {
                continue;
            };
            let half = if in_b {
                &mut configured_half
            } else {
                &mut learned_half
            };
            half.offers += 1;
            let answer = options
                .responder
                .answer(*persona, &o.offer_id, o.product_category);
            if answer == Some(OfferResponseKind::Accepted) {
                half.accepted += 1;
            }
            offered.insert(o.offer_id.clone(), (*persona, o.product_category));
            let mut schedule = |at: i64, event: Event| {
                seq += 1;
                pending.insert((at, seq), event);
            };
            let receipt = o.decided_at + 1_000;
            schedule(receipt, response(&o, OfferResponseKind::Delivered, receipt));
            if let Some(kind) = answer {
                let at = o.decided_at + options.delay_ms.max(1_001);
                schedule(at, response(&o, kind, at));
                if kind == OfferResponseKind::Accepted {
                    schedule(at, opened(&o, at));
                }
            }
        }
        trials += take_learned(
            &learner,
            &store,
            &mut ledger.stats,
            &offered,
            &options.responder,
            &mut truth_sums,
        );
    }
    let rule_ids: Vec<String> = learner
        .rules()
        .offers
        .iter()
        .map(|r| r.head.id.clone())
        .collect();
    let rankings: BTreeMap<(String, String), Option<f64>> = store
        .load_now(&rule_ids)
        .into_iter()
        .map(|t| ((t.rule_id, t.segment), t.ranking.and_then(|r| r.auc())))
        .collect();
    let models = learner
        .models()
        .map(|m| m.all())
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let model = (t.rule_id.clone(), t.segment.clone());
            let auc = rankings.get(&model).copied().flatten();
            let sum = truth_sums
                .get(&(t.rule_id.clone(), t.segment.clone()))
                .copied()
                .unwrap_or(0.0);
            let evidence = learner
                .model_prior(&t.rule_id)
                .map_or(learning_settings.learning.prior_evidence, |p| p.evidence);
            ModelRow {
                truth: sum / t.counts.trials.max(1) as f64,
                rule_id: t.rule_id,
                segment: t.segment,
                trials: t.counts.trials,
                positives: t.counts.positives,
                expected: t.counts.expected,
                evidence,
                auc,
            }
        })
        .collect();
    Ok(WorldReport {
        events,
        span_ms: end - START_MS,
        responses: trials,
        models,
        learned: learned_half,
        configured: options.ab.then_some(configured_half),
        uplift: ledger.exposures.report(end, truth),
        uplift_window_ms: window_ms,
    })
}

/// The two operators, and whether customers are split between them.
struct Sides<'a> {
    learner: &'a Operator,
    configured: &'a Operator,
    ab: bool,
}

/// The customers' state and what their events produced.
struct Ledger {
    personas: Vec<Persona>,
    states: FxHashMap<Text, CustomerState>,
    out: Vec<Decision>,
    stats: BatchStats,
    exposures: Exposures,
}

impl Ledger {
    /// Applies one event to its customer, decided by the operator of the customer's half, and
    /// takes the uplift it counted.
    fn apply(
        &mut self,
        sides: &Sides<'_>,
        event: &Event,
        truth: &crate::generator::responder::Truth,
    ) {
        let operator = if sides.ab && in_configured_half(event.customer_id()) {
            sides.configured
        } else {
            sides.learner
        };
        let state = self
            .states
            .entry(Text::from(event.customer_id()))
            .or_insert_with(|| {
                let mut s = CustomerState::default();
                operator.align(&mut s);
                s
            });
        operator.apply(state, event, None, &mut self.out, &mut self.stats);
        let persona = customer_index(event.customer_id()).and_then(|i| self.personas.get(i));
        self.exposures
            .take(&mut self.stats.uplift, persona.copied(), truth);
        // The simulated world raises no alert outcomes yet (issue 26).
        self.stats.closed.clear();
        self.stats.rejected.clear();
    }
}

/// The response `kind` to offer `o` at `at`.
fn response(o: &crate::output::NextBestOffer, kind: OfferResponseKind, at: i64) -> Event {
    Event::OfferResponse(OfferResponse {
        event_id: format!("{}:{}", kind_name(kind), o.offer_id).into(),
        customer_id: o.customer_id.as_str().into(),
        event_time: at,
        offer_id: o.offer_id.as_str().into(),
        response: kind,
    })
}

/// The product an accepted offer `o` opened, at `at`.
fn opened(o: &crate::output::NextBestOffer, at: i64) -> Event {
    Event::ProductOpened(ProductOpened {
        event_id: format!("opened:{}", o.offer_id).into(),
        customer_id: o.customer_id.as_str().into(),
        event_time: at,
        product_category: o.product_category,
        account_id: format!("A-{}", o.offer_id).into(),
        channel: "OFFER".into(),
        offer_id: Some(o.offer_id.as_str().into()),
    })
}

/// Takes what the learning operator learned into its table, as a checkpoint does, adding each
/// new trial's true propensity to its model's sum; answers the number of new trials.
fn take_learned(
    learner: &Operator,
    store: &MemoryModels,
    stats: &mut BatchStats,
    offered: &FxHashMap<String, (Persona, ProductCategory)>,
    responder: &Responder,
    truth_sums: &mut BTreeMap<(String, String), f64>,
) -> u64 {
    if stats.learned.is_empty() {
        return 0;
    }
    let mut trials = 0;
    for o in stats.learned.iter().filter(|o| o.trial) {
        if let Some((persona, product)) = offered.get(&o.offer_id) {
            *truth_sums
                .entry((o.rule_id.clone(), o.segment.clone()))
                .or_default() += responder.truth().propensity(*persona, *product);
            trials += 1;
        }
    }
    let totals = store.record_now(&stats.learned);
    if let Some(models) = learner.models() {
        models.set(&totals);
    }
    stats.learned.clear();
    trials
}

/// The generator's customer index of id `C0000042`.
fn customer_index(id: &str) -> Option<usize> {
    id.strip_prefix('C')?.parse().ok()
}

/// Whether a customer is in the A/B's configured half (a stable hash of the id).
fn in_configured_half(customer_id: &str) -> bool {
    draw_key(&[customer_id, "ab"]) & 1 == 1
}

fn kind_name(kind: OfferResponseKind) -> &'static str {
    match kind {
        OfferResponseKind::Delivered => "delivered",
        _ => "response",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::responder::Truth;

    fn options(ab: bool) -> WorldOptions {
        WorldOptions {
            customers: 400,
            seed: 3,
            responder: Responder::new(Truth::default(), 3),
            responses: 300,
            max_events: 2_000_000,
            delay_ms: 3_600_000,
            ab,
        }
    }

    fn rules(settings: &Settings) -> RuleSet {
        let features = settings.features.load_in(&settings.catalog).unwrap();
        crate::rules::load::rule_set(None, &features).unwrap()
    }

    #[test]
    fn the_world_answers_and_the_offers_learn_the_same_for_a_seed() {
        let settings = Settings::default();
        let report = run(&settings, rules(&settings), &options(false)).unwrap();
        assert!(report.responses >= 300, "{report:?}");
        let trials: u64 = report.models.iter().map(|m| m.trials).sum();
        assert_eq!(trials, report.responses, "every trial is one model's");
        // Each model's truth is a mean of the table's cells, and an offer is learned from once.
        assert!(report
            .models
            .iter()
            .all(|m| m.truth > 0.0 && m.truth < 0.5 && m.positives <= m.trials));
        assert!(report.learned.offers >= report.responses && report.configured.is_none());
        // The built-in offers score features: a model that saw both answers has its AUC.
        let ranked: Vec<f64> = report.models.iter().filter_map(|m| m.auc).collect();
        assert!(!ranked.is_empty(), "{report:?}");
        assert!(ranked.iter().all(|a| (0.0..=1.0).contains(a)), "{ranked:?}");
        assert_eq!(
            run(&settings, rules(&settings), &options(false)).unwrap(),
            report
        );
    }

    #[test]
    fn an_ab_splits_the_customers_and_learns_from_the_learned_half_only() {
        let settings = Settings::default();
        let report = run(&settings, rules(&settings), &options(true)).unwrap();
        let configured = report.configured.unwrap();
        assert!(
            report.learned.offers > 0 && configured.offers > 0,
            "{report:?}"
        );
        let trials: u64 = report.models.iter().map(|m| m.trials).sum();
        assert!(
            trials <= report.learned.offers,
            "the configured half teaches nothing"
        );
        assert!(report.gain().is_some());
    }

    #[test]
    fn each_offers_uplift_is_measured_against_its_control_group_and_its_truth() {
        let settings = Settings::default();
        let options = WorldOptions {
            customers: 5_000,
            responses: u64::MAX,
            max_events: 400_000,
            ..options(false)
        };
        let report = run(&settings, rules(&settings), &options).unwrap();
        assert_eq!(
            report.uplift_window_ms,
            14 * 86_400_000,
            "the shortest cooldown"
        );
        assert!(report.span_ms > 7 * 86_400_000, "{}", report.span_ms);
        assert!(report.uplift.len() >= 3, "{:?}", report.uplift);
        for row in &report.uplift {
            let (t, c) = (row.groups.treated, row.groups.control);
            assert!(t.customers > c.customers, "{row:?}");
            assert!(c.customers > 0 && t.converted > 0, "{row:?}");
            assert!(row.truth > 0.0 && row.truth < 0.5, "{row:?}");
            assert_eq!(row.covers(), Some(true), "{row:?} {:?}", row.uplift());
        }
    }

    #[test]
    fn among_competing_offers_learned_arbitration_gains_acceptance() {
        let settings = Settings::default();
        let features = settings.features.load_in(&settings.catalog).unwrap();
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/learning-ab/offers");
        let rules = crate::rules::load::rule_set(Some(&dir), &features).unwrap();
        let options = WorldOptions {
            customers: 50_000,
            responses: 10_000,
            ..options(true)
        };
        let report = run(&settings, rules, &options).unwrap();
        let gain = report.gain().unwrap();
        assert!(gain.low > 0.0, "{gain:?} {report:?}");
    }
}
