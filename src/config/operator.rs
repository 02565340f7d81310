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
        }
    }
}
