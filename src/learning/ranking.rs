//! How well an offer's model ranks its customers: the AUC (area under the ROC curve) of the
//! propensity it scored, over the offers it learned from.
//!
//! Within one model (offer and segment) the learned propensity is the configured one times the
//! model's factor, so it ranks customers as the configured logistic model does: the AUC is the
//! configured propensity's, and it says something only where that model scores features (a rule
//! with `propensity.weights`). It is the probability that an accepted offer was scored above a
//! declined or unanswered one (Mann–Whitney's U over the two groups), ties counting one half.
//!
//! Counting every score would take the offers themselves; a [`Ranking`] keeps a histogram
//! instead, [`BINS`] bins of the score's logit (the logistic model's linear score) from
//! [`LOGIT_MIN`] to [`LOGIT_MAX`], a quarter of a logit wide, with trials and positives per bin.
//! Offers in one bin tie, so the AUC is the exact one of scores rounded to their bin: of a
//! model whose scores spread over one bin, 0.5 whatever it ranks.

/// Bins of the histogram.
pub const BINS: usize = 64;
/// The lowest logit binned apart (everything below is in the first bin).
pub const LOGIT_MIN: f64 = -8.0;
/// The highest logit binned apart (everything above is in the last bin).
pub const LOGIT_MAX: f64 = 8.0;

/// The bin of a propensity (0..=1): its logit's, clamped to the histogram.
pub fn bin(propensity: f64) -> u8 {
    let p = propensity.clamp(1e-12, 1.0 - 1e-12);
    let logit = (p / (1.0 - p)).ln();
    let width = (LOGIT_MAX - LOGIT_MIN) / BINS as f64;
    let at = ((logit - LOGIT_MIN) / width).floor();
    at.clamp(0.0, (BINS - 1) as f64) as u8
}

/// The scores of one model's trials and of its positives, by bin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranking {
    /// Offers learned from, by the bin of their score.
    pub trials: [u64; BINS],
    /// Of them, accepted, by bin.
    pub positives: [u64; BINS],
}

impl Default for Ranking {
    fn default() -> Self {
        Self {
            trials: [0; BINS],
            positives: [0; BINS],
        }
    }
}

impl Ranking {
    /// Counts one more trial (an offer's first response) in `bin`.
    pub fn trial(&mut self, bin: u8) {
        self.trials[usize::from(bin).min(BINS - 1)] += 1;
    }

    /// Counts one more positive (an offer's first acceptance) in `bin`.
    pub fn positive(&mut self, bin: u8) {
        self.positives[usize::from(bin).min(BINS - 1)] += 1;
    }

    /// The AUC, or `None` until there is both an accepted offer and one that was not. A
    /// positive counted before its trial (a replay out of order) counts as a trial too.
    pub fn auc(&self) -> Option<f64> {
        // `below`: the negatives in lower bins, which each positive of this bin beats.
        let (mut below, mut wins, mut all_pos) = (0.0, 0.0, 0.0);
        for b in 0..BINS {
            let pos = self.positives[b] as f64;
            let neg = self.trials[b].saturating_sub(self.positives[b]) as f64;
            wins += pos * (below + 0.5 * neg);
            below += neg;
            all_pos += pos;
        }
        let pairs = all_pos * below;
        (pairs > 0.0).then(|| wins / pairs)
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.trials.iter().all(|n| *n == 0) && self.positives.iter().all(|n| *n == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_a_quarter_logit_wide_and_clamped() {
        assert_eq!(bin(0.5), 32);
        // logit(0.2) = −1.386: 6.614 / 0.25 = 26.45.
        assert_eq!(bin(0.2), 26);
        assert_eq!(bin(0.0), 0);
        assert_eq!(bin(1.0), 63);
        assert_eq!(bin(1e-5), 0);
    }

    #[test]
    fn the_auc_of_a_hand_counted_case() {
        // Scores and answers: 0.1 no, 0.1 yes, 0.3 no, 0.3 no, 0.6 yes, 0.9 yes, 0.9 no.
        // Pairs (yes, no): 3 × 4 = 12. The yes at 0.1 beats none and ties one: 0.5.
        // The yes at 0.6 beats three: 3. The yes at 0.9 beats three and ties one: 3.5.
        // AUC = 7 / 12.
        let mut r = Ranking::default();
        for (p, yes) in [
            (0.1, false),
            (0.1, true),
            (0.3, false),
            (0.3, false),
            (0.6, true),
            (0.9, true),
            (0.9, false),
        ] {
            r.trial(bin(p));
            if yes {
                r.positive(bin(p));
            }
        }
        assert!((r.auc().unwrap() - 7.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn no_auc_without_both_answers_and_a_perfect_ranking_is_one() {
        let mut r = Ranking::default();
        assert_eq!(r.auc(), None);
        r.trial(bin(0.1));
        assert_eq!(r.auc(), None);
        r.trial(bin(0.8));
        r.positive(bin(0.8));
        assert_eq!(r.auc(), Some(1.0));
        r.trial(bin(0.05));
        r.positive(bin(0.05));
        assert!((r.auc().unwrap() - 0.5).abs() < 1e-12);
    }
}
