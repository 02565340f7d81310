//! The world's uplift: every exposure the operator counted (a customer first sent an offer rule's
//! offer in a window, or held out of it by the control group), with its conversion and its truth.
//!
//! The truth of an exposure is what the offer adds to its customer's chance of converting in the
//! part of the window the run saw: with `p` the customer's true propensity for the product and
//! `b_w` the base rate over the `w` observed, `p · (1 − b_w)`. A treated customer converts by
//! accepting (`p`) or on their own (`b_w`), a control-group member on their own only; an answer
//! that would come after the run's end counts as none. The control group is a random share of
//! the same customers, so the difference of the two conversion rates estimates the mean of these
//! truths over the rule's exposures, and the relative lift the ratio of that mean to the mean
//! `b_w`. This is exact only while a treated customer gets one offer of the rule's product in its
//! window: the world shortens the window to the rule set's shortest cooldown to keep it so.

use crate::event::ProductCategory;
use crate::generator::personas::Persona;
use crate::generator::responder::Truth;
use crate::learning::uplift::{Group, Groups, Tally, Uplift};
use crate::rules::RuleSet;
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// One rule's treated against control, with the truth.
#[derive(Debug, Clone, PartialEq)]
pub struct UpliftRow {
    /// Offer rule.
    pub rule_id: String,
    /// Its treated and control customers and their conversions.
    pub groups: Groups,
    /// The true effect on the conversion rate (`p_t − p_c` expected).
    pub truth: f64,
    /// The true relative lift (`p_t / p_c − 1` expected); `None` when the base rate is zero.
    pub truth_lift: Option<f64>,
}

impl UpliftRow {
    /// The measured uplift (`None` until both groups have customers).
    pub fn uplift(&self) -> Option<Uplift> {
        self.groups.uplift()
    }

    /// Whether the 95% interval of the measured uplift covers the truth.
    pub fn covers(&self) -> Option<bool> {
        let u = self.uplift()?;
        Some(u.absolute.low <= self.truth && self.truth <= u.absolute.high)
    }

    /// Whether the 95% interval of the measured lift covers the true lift.
    pub fn lift_covers(&self) -> Option<bool> {
        let (lift, truth) = (self.uplift()?.lift?, self.truth_lift?);
        Some(lift.low <= truth && truth <= lift.high)
    }
}

#[derive(Debug, Clone)]
struct Exposure {
    rule_id: String,
    group: Group,
    at: i64,
    product: ProductCategory,
    /// The customer's true propensity for the product.
    propensity: f64,
    converted: bool,
}

/// The exposures of a run, by id.
#[derive(Debug, Clone)]
pub struct Exposures {
    rows: FxHashMap<String, Exposure>,
    products: FxHashMap<String, ProductCategory>,
    window_ms: i64,
    delay_ms: i64,
}

impl Exposures {
    /// For the offer rules of `rules`, an uplift window of `window_ms` and answers `delay_ms`
    /// after their offers.
    pub fn new(rules: &RuleSet, window_ms: i64, delay_ms: i64) -> Self {
        Self {
            rows: FxHashMap::default(),
            products: rules
                .offers
                .iter()
                .map(|r| (r.head.id.clone(), r.product))
                .collect(),
            window_ms,
            delay_ms,
        }
    }

    /// Takes the tallies of one applied event of a `persona` customer.
    pub fn take(&mut self, tallies: &mut Vec<Tally>, persona: Option<Persona>, truth: &Truth) {
        for t in tallies.drain(..) {
            if t.converted {
                if let Some(e) = self.rows.get_mut(&t.exposure_id) {
                    e.converted = true;
                }
                continue;
            }
            let (Some(persona), Some(product)) = (persona, self.products.get(&t.rule_id)) else {
                continue;
            };
            self.rows.insert(
                t.exposure_id,
                Exposure {
                    rule_id: t.rule_id,
                    group: t.group,
                    at: t.exposed_at,
                    product: *product,
                    propensity: truth.propensity(persona, *product),
                    converted: false,
                },
            );
        }
    }

    /// Per rule, sorted by id: the groups at the run's end (event time `end`) and the truth.
    pub fn report(&self, end: i64, truth: &Truth) -> Vec<UpliftRow> {
        #[derive(Default)]
        struct Sums {
            groups: Groups,
            effect: f64,
            base: f64,
            n: f64,
        }
        let mut by_rule: BTreeMap<&str, Sums> = BTreeMap::new();
        for e in self.rows.values() {
            let sums = by_rule.entry(&e.rule_id).or_default();
            let arm = match e.group {
                Group::Treated => &mut sums.groups.treated,
                Group::Control => &mut sums.groups.control,
            };
            arm.customers += 1;
            arm.converted += u64::from(e.converted);
            let seen = (end - e.at).clamp(0, self.window_ms);
            let base = truth.base_within(e.product, seen);
            let answered = e.at + self.delay_ms <= end && self.delay_ms < self.window_ms;
            sums.effect += if answered { e.propensity } else { 0.0 } * (1.0 - base);
            sums.base += base;
            sums.n += 1.0;
        }
        by_rule
            .into_iter()
            .map(|(rule_id, s)| UpliftRow {
                rule_id: rule_id.to_string(),
                groups: s.groups,
                truth: s.effect / s.n,
                truth_lift: (s.base > 0.0).then(|| s.effect / s.base),
            })
            .collect()
    }
}
