//! The learned side of an offer's propensity, as decisioning reads it: counts per offer and
//! segment ([`Counts`]), held for every worker in one [`Models`] table, and the propensity a
//! decision uses ([`Learned::propensity`]): the configured propensity recalibrated by the
//! posterior mean of the offer's factor, or (for the bounded share of decisions that explore) by
//! a Thompson draw (see [`super::propensity`]).
//!
//! What counts: an offer is one trial the first time any response to it arrives (DELIVERED,
//! CLICKED, DECLINED or ACCEPTED), adding its configured propensity to the model's expected
//! positives, and one positive the first time it is ACCEPTED. Each offer
//! counts once whatever the number of its responses or their replays: the customer's contact
//! history marks what was counted of each offer it holds (`customer::Counted`), and the store
//! remembers the offers it counted recently, for a replay of responses whose marks were not
//! stored yet ([`crate::state::models`]).

use super::propensity::{Posterior, Prior};
use crate::customer::ProfileState;
use rand::SeedableRng;
use std::sync::Arc;

/// Responses learned from for one offer (and segment).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Offers that received a response.
    pub trials: u64,
    /// Of them, offers accepted.
    pub positives: u64,
    /// The positives the configured model expected of them: the sum of their configured
    /// propensities.
    pub expected: f64,
}

/// What an offer's models are split by: one model per value (`None`: one model for the offer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentBy {
    /// The CRM profile's `segment` (`MASS`, `AFFLUENT`, ...).
    ProfileSegment,
    /// The CRM profile's `lifecycle_stage` (`NEW`, `MATURE`, ...).
    LifecycleStage,
}

impl SegmentBy {
    /// Every name a rule document may give, with what it means.
    pub const NAMES: [(&'static str, SegmentBy); 2] = [
        ("profile.segment", SegmentBy::ProfileSegment),
        ("profile.lifecycle_stage", SegmentBy::LifecycleStage),
    ];

    /// The segment named `name` in a rule document, or an error listing the names there are.
    pub fn parse(name: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| *s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                format!("unknown segment {name:?} (one of {})", names.join(", "))
            })
    }

    /// The customer's segment: the profile's value, or [`UNKNOWN_SEGMENT`] without a profile.
    pub fn of(self, profile: Option<&ProfileState>) -> &str {
        match (self, profile) {
            (_, None) => UNKNOWN_SEGMENT,
            (SegmentBy::ProfileSegment, Some(p)) => &p.segment,
            (SegmentBy::LifecycleStage, Some(p)) => p.lifecycle_stage.as_str(),
        }
    }
}

/// The segment of a customer whose profile is not known yet.
pub const UNKNOWN_SEGMENT: &str = "UNKNOWN";

/// One response to learn from: the offer it answers, its model, and whether it accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The offer rule that made the offer.
    pub rule_id: String,
    /// The customer's segment for that rule's model (empty: the rule has one model).
    pub segment: String,
    /// The offer answered: each offer counts once as a trial and once as a positive.
    pub offer_id: String,
    /// When the offer was made (the store remembers recently counted offers by that day).
    pub offered_at: i64,
    /// The offer's first response: one more trial.
    pub trial: bool,
    /// The offer's configured propensity, added to the model's expected positives with its
    /// trial.
    pub configured: f64,
    /// The offer's first acceptance: one more positive.
    pub positive: bool,
    /// The bin of the configured propensity in the model's ranking (`learning::ranking`),
    /// where the rule's propensity scores features; `None`: the model ranks nobody.
    pub score_bin: Option<u8>,
}

/// The counts of one model after a store update or load.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTotals {
    /// Offer rule.
    pub rule_id: String,
    /// Segment (empty: the rule's only model).
    pub segment: String,
    /// What has been learned.
    pub counts: Counts,
    /// How its scores rank the offers learned from, where the rule scores features and the
    /// store read it (a whole load; `None` in the totals a record answers).
    pub ranking: Option<Box<super::ranking::Ranking>>,
}

/// Looked up on every offer decision: a fast hash (rule ids and segments are not attacker input).
type Table = rustc_hash::FxHashMap<String, rustc_hash::FxHashMap<String, Counts>>;

/// The counts of every model, shared by the workers: read on every offer decision without a
/// lock, replaced whole (copy on write) when the store reports new totals.
#[derive(Debug, Default)]
pub struct Models {
    table: arc_swap::ArcSwap<Table>,
    /// When the table was last reloaded whole, in milliseconds (plus one) since `epoch` (0:
    /// never), so that one worker of many does it per period.
    reloaded: std::sync::atomic::AtomicU64,
    epoch: std::sync::OnceLock<std::time::Instant>,
}

impl Models {
    /// An empty table (every model at its prior).
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// What model (`rule_id`, `segment`) has learned.
    pub fn counts(&self, rule_id: &str, segment: &str) -> Counts {
        self.table
            .load()
            .get(rule_id)
            .and_then(|m| m.get(segment))
            .copied()
            .unwrap_or_default()
    }

    /// Sets the totals the store reported (they are the store's, so counts from other
    /// instances come in too).
    pub fn set(&self, totals: &[ModelTotals]) {
        if totals.is_empty() {
            return;
        }
        self.table.rcu(|old| {
            let mut table = Table::clone(old);
            for t in totals {
                table
                    .entry(t.rule_id.clone())
                    .or_default()
                    .insert(t.segment.clone(), t.counts);
            }
            table
        });
    }

    /// Whether a reload of the whole table is due (`every` since the last one), claiming it
    /// when it is: of several workers asking at once, one is told yes.
    pub fn claim_reload(&self, every: std::time::Duration) -> bool {
        use std::sync::atomic::Ordering;
        let now = self.epoch.get_or_init(std::time::Instant::now).elapsed();
        let now = now.as_millis() as u64 + 1;
        let last = self.reloaded.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < every.as_millis() as u64 {
            return false;
        }
        self.reloaded
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Every model, sorted by rule and segment (for metrics and the console).
    pub fn all(&self) -> Vec<ModelTotals> {
        let table = self.table.load();
        let mut out: Vec<ModelTotals> = table
            .iter()
            .flat_map(|(rule, segments)| {
                segments.iter().map(move |(segment, counts)| ModelTotals {
                    rule_id: rule.clone(),
                    segment: segment.clone(),
                    counts: *counts,
                    ranking: None,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.rule_id, &a.segment).cmp(&(&b.rule_id, &b.segment)));
        out
    }
}

/// How a new offer reaches its customers: at first a small share of those it would be chosen
/// for, growing in step with its accepted offers until, at `positives`, it reaches all of them
/// (Pega's ramp for a new action). Which customers are in is a hash of customer and rule, so a
/// customer let in stays in as the share grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ramp {
    /// Positives (accepted offers) at which the offer reaches every customer.
    pub positives: u64,
    /// The share (0..=1) it starts from, with no positive.
    pub start: f64,
}

impl Ramp {
    /// The share of customers an offer reaches after `positives` accepted offers.
    pub fn share(&self, positives: u64) -> f64 {
        if positives >= self.positives {
            return 1.0;
        }
        let done = positives as f64 / self.positives as f64;
        self.start + (1.0 - self.start) * done
    }

    /// Whether the customer of `key` (a [`draw_key`] of customer and rule) is reached.
    pub fn admits(&self, positives: u64, key: u64) -> bool {
        let u = (key >> 11) as f64 / (1u64 << 53) as f64;
        u < self.share(positives)
    }
}

/// How a decision turns the configured and the learned propensity into the one it uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learned {
    /// How many responses the configured propensity is worth as a prior.
    pub evidence: f64,
    /// Share of decisions (0..=1) that draw from the posterior instead of taking its mean.
    pub exploration: f64,
}

/// The propensity a decision used, and whether it explored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Used {
    /// The propensity.
    pub propensity: f64,
    /// Drawn from the posterior (Thompson sampling) rather than its mean.
    pub explored: bool,
    /// The configured propensity it started from (the prior).
    pub configured: f64,
    /// What its model had learned (`None`: not learned from: learning off, or no profiling
    /// consent).
    pub counts: Option<Counts>,
}

impl Used {
    /// The configured propensity alone.
    pub fn configured(propensity: f64) -> Self {
        Self {
            propensity,
            explored: false,
            configured: propensity,
            counts: None,
        }
    }

    /// The decision record's words for it.
    pub fn reason(&self) -> String {
        let p = self.propensity;
        match self.counts {
            None => format!("propensity {p:.3} (configured)"),
            Some(c) if c.trials == 0 && !self.explored => {
                format!("propensity {p:.3} (configured; no responses learned from yet)")
            }
            Some(c) => format!(
                "propensity {p:.3} ({}{} responses learned from, {} accepted where {:.1} were \
                 expected; configured {:.3})",
                if self.explored {
                    "exploring: drawn from the posterior of "
                } else {
                    ""
                },
                c.trials,
                c.positives,
                c.expected,
                self.configured
            ),
        }
    }
}

impl Learned {
    /// The propensity for one decision: the configured propensity `configured` as the prior,
    /// `counts` as the evidence; the mean, or for the share of decisions that explore (chosen
    /// by `draw_key`, a stable hash of customer, event and rule, so a replay decides the same)
    /// a draw from the posterior seeded by the same key.
    pub fn propensity(&self, configured: f64, counts: Counts, draw_key: u64) -> Used {
        let prior = Prior {
            propensity: configured,
            evidence: self.evidence,
        };
        let posterior = Posterior::with_counts(prior, counts);
        let u = (draw_key >> 11) as f64 / (1u64 << 53) as f64;
        let explored = u < self.exploration;
        let propensity = if explored {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(draw_key);
            posterior.sample(&mut rng)
        } else {
            posterior.mean()
        };
        Used {
            propensity,
            explored,
            configured,
            counts: Some(counts),
        }
    }
}

/// FNV-1a over several strings (each followed by a 0 byte): a stable key for a decision's draw.
pub fn draw_key(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // FNV's low bits mix poorly: a final avalanche (splitmix64's) spreads them.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ramp_grows_with_the_positives_and_keeps_whom_it_let_in() {
        let ramp = Ramp {
            positives: 200,
            start: 0.02,
        };
        assert_eq!(ramp.share(0), 0.02);
        assert!((ramp.share(100) - 0.51).abs() < 1e-12);
        assert_eq!(ramp.share(200), 1.0);
        assert_eq!(ramp.share(5_000), 1.0);
        let keys: Vec<u64> = (0..20_000)
            .map(|i| draw_key(&[&format!("C{i}"), "offer-new", "ramp"]))
            .collect();
        let reached = |p: u64| keys.iter().filter(|k| ramp.admits(p, **k)).count();
        assert!((300..500).contains(&reached(0)), "{}", reached(0));
        assert!((9_800..10_600).contains(&reached(100)), "{}", reached(100));
        assert_eq!(reached(200), 20_000);
        assert!(keys
            .iter()
            .all(|k| !ramp.admits(0, *k) || ramp.admits(50, *k)));
    }

    #[test]
    fn with_no_responses_the_mean_is_the_configured_propensity() {
        let l = Learned {
            evidence: 50.0,
            exploration: 0.0,
        };
        let used = l.propensity(0.2, Counts::default(), draw_key(&["c", "e", "r"]));
        assert!((used.propensity - 0.2).abs() < 1e-12 && !used.explored);
        // 1,000 offers at 0.2, 100 accepted: (10 + 100) / (50 + 1000).
        let used = l.propensity(
            0.2,
            Counts {
                trials: 1_000,
                positives: 100,
                expected: 200.0,
            },
            7,
        );
        assert!((used.propensity - 110.0 / 1050.0).abs() < 1e-12);
    }

    #[test]
    fn the_explored_share_is_bounded_and_the_same_key_draws_the_same() {
        let l = Learned {
            evidence: 50.0,
            exploration: 0.1,
        };
        let n = 20_000;
        let explored = (0..n)
            .filter(|i| {
                let key = draw_key(&["customer", &i.to_string(), "rule"]);
                l.propensity(0.2, Counts::default(), key).explored
            })
            .count();
        let share = explored as f64 / n as f64;
        assert!((share - 0.1).abs() < 0.01, "{share}");
        let key = draw_key(&["C1", "E1", "offer-a"]);
        assert_eq!(
            l.propensity(0.2, Counts::default(), key),
            l.propensity(0.2, Counts::default(), key)
        );
    }

    #[test]
    fn the_table_keeps_the_latest_totals_per_model() {
        let models = Models::new();
        let t = |rule: &str, segment: &str, trials, positives| ModelTotals {
            rule_id: rule.into(),
            segment: segment.into(),
            counts: Counts {
                trials,
                positives,
                expected: 0.0,
            },
            ranking: None,
        };
        models.set(&[t("a", "MASS", 10, 1), t("a", "AFFLUENT", 5, 2)]);
        models.set(&[t("a", "MASS", 12, 1)]);
        assert_eq!(models.counts("a", "MASS").trials, 12);
        assert_eq!(models.counts("a", "AFFLUENT").positives, 2);
        assert_eq!(models.counts("b", ""), Counts::default());
        assert_eq!(models.all().len(), 2);
    }

    #[test]
    fn segments_come_from_the_profile() {
        assert_eq!(
            SegmentBy::parse("profile.lifecycle_stage"),
            Ok(SegmentBy::LifecycleStage)
        );
        assert!(SegmentBy::parse("persona")
            .unwrap_err()
            .contains("profile.segment"));
        assert_eq!(SegmentBy::ProfileSegment.of(None), UNKNOWN_SEGMENT);
    }
}
