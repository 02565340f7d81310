//! `[operator]`: contact policy, lateness and the other knobs of decisioning.

use serde::Deserialize;
use std::time::Duration;

/// The stateful operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorSettings {
    /// Rules fire only for events at most this much older than the newest event seen for the
    /// customer; older events still update features.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Events further than this past the wall clock are dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// How long an offer stays valid (`expires_at - decided_at`).
    #[serde(with = "humantime_serde")]
    pub offer_validity: Duration,
    /// Contact policy: most offers per customer per `contact_period`.
    pub max_offers_per_period: u32,
    /// Contact policy: the period of `max_offers_per_period`.
    #[serde(with = "humantime_serde")]
    pub contact_period: Duration,
    /// No marketing offer within this long after a HIGH or CRITICAL alert.
    #[serde(with = "humantime_serde")]
    pub risk_quiet_period: Duration,
    /// Contact policy: after a customer declines an offer, no offer of the same product family
    /// for this long.
    #[serde(with = "humantime_serde")]
    pub decline_suppression: Duration,
    /// Contact policy: no marketing offer within this long after a complaint or a negative
    /// social post about the bank.
    #[serde(with = "humantime_serde")]
    pub complaint_quiet_period: Duration,
    /// A social post or comment mentioning the bank with sentiment at or below this (-1..1)
    /// counts as negative for `complaint_quiet_period`.
    pub negative_sentiment_threshold: f64,
    /// Percentage (0..=100) of customers held out of each offer rule as a control group.
    pub control_group_percent: u8,
    /// How long a customer's control-group membership lasts. Membership is a hash of the
    /// customer, the rule and the period the decision falls in (event time over this), so each
    /// period draws a new control group and no customer is held out for good. Unset: a hash of
    /// customer and rule alone, fixed for as long as the rule lives.
    #[serde(with = "humantime_serde")]
    pub control_group_period: Option<Duration>,
    /// How long an alert is kept for its case's outcome (`bank.alert-outcomes.v1`): an outcome
    /// for an alert raised longer ago than this finds no alert and is dead-lettered. Cases take
    /// weeks to close; 90 days by default.
    #[serde(with = "humantime_serde")]
    pub alert_outcome_window: Duration,
    /// Roll-up of repeated cooldown suppressions in the audit (`0s`, the default: off, one
    /// audit record per decision). With a window `W`, the first SUPPRESSED_COOLDOWN of a
    /// customer's rule version has its record, and its repeats in the next `W` of event time go
    /// out as one record counting them, with the first and last trigger (`rolled_up`), at the
    /// customer's first event past the window (`customer::Rollups`). Stream decisions only:
    /// the decision API and challengers audit each decision.
    #[serde(with = "humantime_serde")]
    pub audit_rollup: Duration,
    /// What the offers caused, against the control group (`[operator.uplift]`).
    pub uplift: UpliftSettings,
    /// Offers that learn from their responses (`[operator.learning]`).
    pub learning: LearningSettings,
}

/// `[operator.uplift]`: conversions of the treated against the control group, per offer rule.
///
/// A customer counts once per window and rule: as treated at the first offer the rule made
/// them, as control at the first offer the control group held back. Either converts when a
/// product of the offer's family is opened (`bank.product-openings.v1`) within the window.
/// See `learning::uplift`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpliftSettings {
    /// How long after an exposure a product opened counts as its conversion. Greater than 0.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for UpliftSettings {
    fn default() -> Self {
        Self {
            // Thirty days: the contact period, so the records it reads are kept anyway.
            window: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// `[operator.learning]`: propensities learned from the responses to offers.
///
/// Each offer rule's configured propensity (its logistic model) is recalibrated by a factor
/// learned from the responses, whose prior is worth `prior_evidence` responses: every offer that
/// gets a response is a trial, and an accepted one a positive. Arbitration ranks by the
/// posterior's mean, except for the `exploration` share of decisions, which draw from it
/// (Thompson sampling) so that an offer with little evidence still gets tried. See
/// `learning::propensity` and `learning::model`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LearningSettings {
    /// Learn from responses and rank by the learned propensity. `false`: the configured
    /// propensity alone, as before, and responses only update the contact history.
    pub enabled: bool,
    /// How many responses a rule's configured propensity is worth (a rule's
    /// `propensity.evidence` overrides it). Greater than 0.
    pub prior_evidence: f64,
    /// Share of decisions (0..=1) that explore: rank by a draw from the posterior instead of
    /// its mean. Each decision records whether it explored.
    pub exploration: f64,
    /// How often each instance reloads every model from the store, to take in what the other
    /// instances learned (its own responses are taken in at every checkpoint).
    #[serde(with = "humantime_serde")]
    pub refresh: Duration,
    /// A new offer's ramp: it reaches `ramp_start` of the customers it would be chosen for, and
    /// all of them once its model (for the customer's segment) has this many accepted offers,
    /// in step between. Any offer short of the count is held back so, also one seldom accepted
    /// or in a small segment. 0: no ramp, every offer reaches every customer from the start.
    pub ramp_positives: u64,
    /// The share (0..=1, above 0) of customers a new offer starts from.
    pub ramp_start: f64,
}

impl Default for LearningSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            // Fifty responses: the configured propensity leads until about fifty offers have
            // been answered, then the evidence does.
            prior_evidence: 50.0,
            // One decision in twenty explores: enough to find a better offer within days at
            // bank volumes, little enough to cost almost nothing.
            exploration: 0.05,
            refresh: Duration::from_secs(10),
            // No ramp unless configured: a first deployment's offers are all new.
            ramp_positives: 0,
            ramp_start: 0.02,
        }
    }
}

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            allowed_lateness: Duration::from_secs(3600),
            max_future_skew: Duration::from_secs(300),
            offer_validity: Duration::from_secs(7 * 24 * 3600),
            max_offers_per_period: 3,
            contact_period: Duration::from_secs(30 * 24 * 3600),
            risk_quiet_period: Duration::from_secs(7 * 24 * 3600),
            // A decline is a clear answer: three months before the same product comes back.
            decline_suppression: Duration::from_secs(90 * 24 * 3600),
            // Two weeks: long enough for a complaint to be handled before marketing resumes.
            complaint_quiet_period: Duration::from_secs(14 * 24 * 3600),
            negative_sentiment_threshold: -0.5,
            // 5%: enough to measure uplift at bank scale without losing much revenue.
            control_group_percent: 5,
            control_group_period: None,
            alert_outcome_window: Duration::from_secs(90 * 24 * 3600),
            // Off: DESIGN's audit is one record per decision (README, "Audit roll-up").
            audit_rollup: Duration::ZERO,
            uplift: UpliftSettings::default(),
            learning: LearningSettings::default(),
        }
    }
}
