//! An offer's propensity learned from responses: the configured model, recalibrated per offer
//! (and segment) by what its offers' customers actually did.
//!
//! The configured propensity `p0(x)` (the rule's logistic model over the customer's features)
//! ranks customers; what it gets wrong most is its level (an intercept typed by hand). So the
//! learned model is a factor `c` on it: `p = min(1, c · p0(x))`. Over the `n` offers learned
//! from, `k` were accepted where the configured model expected `E = Σ p0(x_i)`; positives are
//! counted as a Poisson process with rate `c · p0`, whose conjugate prior is the Gamma
//! distribution. The prior is `Gamma(w·p0, w·p0)` (mean 1: trust the configured level), worth
//! `w` responses at the customer's configured propensity, so the posterior is
//! `Gamma(k + w·p0, E + w·p0)` and its mean `c = (k + w·p0) / (E + w·p0)`.
//!
//! Why this method:
//! - it keeps what the configured model knows about each customer (a heavy saver's wealth offer
//!   stays above an average customer's) while learning the offer's real level, which one
//!   acceptance rate per offer cannot do (it would give every customer the offer's average);
//! - for an offer whose configured propensity is the same for everyone (`E = n·p0`), the
//!   learned propensity is exactly the Beta posterior mean `(p0·w + k) / (w + n)`, Pega's
//!   smoothing `w/(w+n)·p0 + n/(w+n)·k/n`: the prior fades as evidence arrives;
//! - learning is three sums per model (`n`, `k`, `E`): exact, order-free, cheap on the hot path
//!   and added across instances (replays are guarded by the caller);
//! - exploration is Thompson sampling: a draw of `c` from its posterior instead of its mean, so
//!   an offer with little evidence is tried in proportion to the chance that it is the best.

use super::model::Counts;
use rand::Rng;
use rand_distr::{Distribution, Gamma};

/// A model's prior: the configured propensity and how many responses it is worth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    /// The configured propensity, in 0..=1.
    pub propensity: f64,
    /// Its weight in responses (greater than 0).
    pub evidence: f64,
}

/// The posterior of one model's calibration factor for one customer: `Gamma(shape, rate)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    /// The configured propensity it multiplies.
    pub configured: f64,
    /// Prior positives plus positives.
    pub shape: f64,
    /// Prior expected positives plus the configured model's expected positives.
    pub rate: f64,
}

impl Posterior {
    /// The posterior after `counts`, for a customer whose configured propensity is the prior's.
    /// A propensity outside 0..=1 is clamped, and the prior keeps a sliver of weight so the
    /// Gamma stays proper.
    pub fn with_counts(prior: Prior, counts: Counts) -> Self {
        let p = prior.propensity.clamp(1e-6, 1.0);
        let weight = (prior.evidence.max(1e-6) * p).max(1e-9);
        Self {
            configured: p,
            shape: weight + counts.positives as f64,
            rate: weight + counts.expected.max(0.0),
        }
    }

    /// The calibration factor's posterior mean.
    pub fn factor(&self) -> f64 {
        self.shape / self.rate
    }

    /// The propensity: the configured one times the factor's mean (at most 1).
    pub fn mean(&self) -> f64 {
        (self.configured * self.factor()).min(1.0)
    }

    /// The evidence behind it, in responses at the configured propensity.
    pub fn evidence(&self) -> f64 {
        self.rate / self.configured
    }

    /// A propensity drawn from the posterior (Thompson sampling).
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        match Gamma::new(self.shape, 1.0 / self.rate) {
            Ok(gamma) => (self.configured * gamma.sample(rng)).min(1.0),
            Err(_) => self.mean(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn counts(trials: u64, positives: u64, expected: f64) -> Counts {
        Counts {
            trials,
            positives,
            expected,
        }
    }

    #[test]
    fn for_one_configured_propensity_it_is_the_beta_mean_and_the_prior_fades() {
        let prior = Prior {
            propensity: 0.10,
            evidence: 50.0,
        };
        let m = Posterior::with_counts(prior, Counts::default());
        assert!((m.mean() - 0.10).abs() < 1e-12);
        // 100 offers at 0.10 each, 30 accepted: (5 + 30) / (50 + 100).
        let m = Posterior::with_counts(prior, counts(100, 30, 10.0));
        assert!((m.mean() - 35.0 / 150.0).abs() < 1e-12);
        assert!((m.evidence() - 150.0).abs() < 1e-9);
    }

    #[test]
    fn it_keeps_the_configured_ranking_of_customers_and_learns_the_level() {
        // The configured model expected 200 positives of 1,000 offers; 100 were accepted: every
        // customer's propensity is about halved, the ranking between them unchanged.
        let learned = counts(1_000, 100, 200.0);
        let at = |p0: f64| {
            Posterior::with_counts(
                Prior {
                    propensity: p0,
                    evidence: 50.0,
                },
                learned,
            )
            .mean()
        };
        let (high, low) = (at(0.4), at(0.1));
        assert!((high - 0.4 * (100.0 + 20.0) / (200.0 + 20.0)).abs() < 1e-12);
        assert!(high > 2.0 * low && (high - 0.2).abs() < 0.02 && (low - 0.05).abs() < 0.005);
    }

    #[test]
    fn learning_converges_to_the_true_rate_from_a_wrong_configured_level() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut k, n) = (0, 5_000);
        for _ in 0..n {
            k += u64::from(rng.random_bool(0.12));
        }
        let m = Posterior::with_counts(
            Prior {
                propensity: 0.5,
                evidence: 20.0,
            },
            counts(n, k, 0.5 * n as f64),
        );
        assert!((m.mean() - 0.12).abs() < 0.02, "{}", m.mean());
    }

    #[test]
    fn thompson_draws_spread_with_little_evidence_and_narrow_with_much() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let spread = |m: &Posterior, rng: &mut rand_chacha::ChaCha8Rng| {
            let draws: Vec<f64> = (0..2_000).map(|_| m.sample(rng)).collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let sd =
                (draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / draws.len() as f64).sqrt();
            (mean, sd)
        };
        let prior = Prior {
            propensity: 0.2,
            evidence: 10.0,
        };
        let fresh = Posterior::with_counts(prior, Counts::default());
        let seasoned = Posterior::with_counts(prior, counts(10_000, 2_000, 2_000.0));
        let (fresh_mean, fresh_sd) = spread(&fresh, &mut rng);
        let (seasoned_mean, seasoned_sd) = spread(&seasoned, &mut rng);
        assert!((fresh_mean - 0.2).abs() < 0.03 && (seasoned_mean - 0.2).abs() < 0.01);
        assert!(
            fresh_sd > 0.08 && seasoned_sd < 0.01,
            "{fresh_sd} {seasoned_sd}"
        );
    }
}
