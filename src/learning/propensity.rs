//! An offer's propensity learned from responses: a Beta posterior per offer (and segment).
//!
//! Why Beta posteriors: a response is a Bernoulli trial (accepted or not), and the Beta
//! distribution is its conjugate prior, so learning is two counters per model, exact, order-free
//! and cheap enough to update on the hot path; replaying a response twice is guarded by the
//! caller, not by the model. The configured propensity `p0` becomes the prior with an evidence
//! weight `w` (as if `w` responses had been seen at rate `p0`): `α = p0·w`, `β = (1 − p0)·w`.
//! After `n` responses with `k` positive, the mean is `(p0·w + k) / (w + n)`, which is Pega's
//! smoothing `w/(w+n) · p0 + n/(w+n) · k/n`: the prior fades as evidence arrives.
//!
//! Exploration is Thompson sampling: a decision draws a propensity from the posterior rather than
//! taking its mean, so an offer with little evidence is tried in proportion to the chance that it
//! is the best. A new offer ramps up: it is eligible for [`ramp_share`] of customers, from 2% at
//! its first response to all of them at 200 positives (Pega's ramp).

use rand::Rng;
use rand_distr::{Beta, Distribution};

/// A model's prior: the configured propensity and how many responses it is worth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    /// The configured propensity, in 0..=1.
    pub propensity: f64,
    /// Its weight in responses (greater than 0).
    pub evidence: f64,
}

/// The posterior of one model: Beta(α, β).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posterior {
    /// Prior positives plus positive responses.
    pub alpha: f64,
    /// Prior negatives plus negative responses.
    pub beta: f64,
    /// Responses learned from (not counting the prior).
    pub responses: u64,
    /// Of them, positive.
    pub positives: u64,
}

impl Posterior {
    /// The posterior before any response. A propensity outside 0..=1 is clamped, and the prior
    /// keeps a sliver of weight on each side so the Beta stays proper.
    pub fn new(prior: Prior) -> Self {
        let p = prior.propensity.clamp(1e-6, 1.0 - 1e-6);
        let w = prior.evidence.max(1e-6);
        Self {
            alpha: p * w,
            beta: (1.0 - p) * w,
            responses: 0,
            positives: 0,
        }
    }

    /// The posterior after `counts`: the prior with the positives added to α and the other
    /// trials to β.
    pub fn with_counts(prior: Prior, counts: super::model::Counts) -> Self {
        let mut p = Self::new(prior);
        let positives = counts.positives.min(counts.trials);
        p.responses = counts.trials;
        p.positives = positives;
        p.alpha += positives as f64;
        p.beta += (counts.trials - positives) as f64;
        p
    }

    /// Learns from one response.
    pub fn observe(&mut self, positive: bool) {
        self.responses += 1;
        if positive {
            self.positives += 1;
            self.alpha += 1.0;
        } else {
            self.beta += 1.0;
        }
    }

    /// The propensity: the posterior mean.
    pub fn mean(&self) -> f64 {
        self.alpha / (self.alpha + self.beta)
    }

    /// The evidence behind it: prior weight plus responses.
    pub fn evidence(&self) -> f64 {
        self.alpha + self.beta
    }

    /// A propensity drawn from the posterior (Thompson sampling).
    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        match Beta::new(self.alpha, self.beta) {
            Ok(beta) => beta.sample(rng),
            Err(_) => self.mean(),
        }
    }
}

/// The share of eligible customers a new offer may reach: 2% at first, growing linearly to all
/// of them at 200 positive responses.
pub fn ramp_share(positives: u64) -> f64 {
    const START: f64 = 0.02;
    const FULL_AT: f64 = 200.0;
    START + (1.0 - START) * (positives as f64 / FULL_AT).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_prior_fades_as_responses_arrive() {
        let mut m = Posterior::new(Prior {
            propensity: 0.10,
            evidence: 50.0,
        });
        assert!((m.mean() - 0.10).abs() < 1e-12);
        // 100 responses, 30 positive: (5 + 30) / (50 + 100).
        for i in 0..100 {
            m.observe(i % 10 < 3);
        }
        assert!((m.mean() - 35.0 / 150.0).abs() < 1e-12);
        assert_eq!((m.responses, m.positives), (100, 30));
        assert!((m.evidence() - 150.0).abs() < 1e-12);
    }

    #[test]
    fn learning_converges_to_the_true_rate_from_a_wrong_prior() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut m = Posterior::new(Prior {
            propensity: 0.5,
            evidence: 20.0,
        });
        for _ in 0..5_000 {
            m.observe(rng.random_bool(0.12));
        }
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
        let fresh = Posterior::new(Prior {
            propensity: 0.2,
            evidence: 10.0,
        });
        let mut seasoned = fresh;
        for i in 0..10_000 {
            seasoned.observe(i % 5 == 0);
        }
        let (fresh_mean, fresh_sd) = spread(&fresh, &mut rng);
        let (seasoned_mean, seasoned_sd) = spread(&seasoned, &mut rng);
        assert!((fresh_mean - 0.2).abs() < 0.02 && (seasoned_mean - 0.2).abs() < 0.01);
        assert!(
            fresh_sd > 0.1 && seasoned_sd < 0.01,
            "{fresh_sd} {seasoned_sd}"
        );
    }

    #[test]
    fn a_new_offer_ramps_from_two_percent_to_all_at_two_hundred_positives() {
        assert!((ramp_share(0) - 0.02).abs() < 1e-12);
        assert!((ramp_share(100) - 0.51).abs() < 1e-12);
        assert_eq!(ramp_share(200), 1.0);
        assert_eq!(ramp_share(5_000), 1.0);
    }
}
