//! Simulated customers who answer the offers they receive: the world that answers, for tests,
//! demos and benchmarks of offers that learn.
//!
//! Each persona has a true propensity per product family: the chance that a customer of that
//! persona accepts an offer of that product. The table below is the default, and a TOML file can
//! replace any cell (`simulate --truth FILE`; see [`Truth::from_toml`]). A customer's answer to one
//! offer is drawn from a generator seeded by the run's seed and the offer's id, so the same offer
//! gets the same answer in every run with that seed, whatever the order offers arrive in:
//! - `u < p`: ACCEPTED;
//! - else, with a quarter of the remaining chance: CLICKED (interested, not taken);
//! - else, with a third of what remains: DECLINED;
//! - else no answer at all (most offers are ignored).
//!
//! The defaults (acceptance per offer), chosen so that each persona's own product is clearly
//! its best and the learned propensities have something to find:
//!
//! | persona            | LOAN | MORTGAGE | CREDIT_CARD | WEALTH | INSURANCE | SAVINGS | OTHER |
//! |--------------------|------|----------|-------------|--------|-----------|---------|-------|
//! | CardHeavySpender   | 0.04 | 0.01     | 0.30        | 0.02   | 0.05      | 0.03    | 0.01  |
//! | HighSaver          | 0.02 | 0.06     | 0.05        | 0.25   | 0.08      | 0.12    | 0.01  |
//! | LoanShopper        | 0.35 | 0.10     | 0.06        | 0.01   | 0.04      | 0.02    | 0.01  |
//! | Unhappy            | 0.01 | 0.01     | 0.02        | 0.01   | 0.02      | 0.03    | 0.01  |
//! | FraudVictim        | 0.01 | 0.01     | 0.01        | 0.01   | 0.03      | 0.01    | 0.01  |
//! | Dormant            | 0.01 | 0.01     | 0.02        | 0.02   | 0.01      | 0.05    | 0.01  |
//! | Ordinary           | 0.05 | 0.03     | 0.08        | 0.04   | 0.06      | 0.06    | 0.02  |

use super::personas::Persona;
use crate::event::{OfferResponseKind, ProductCategory};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// Every persona, in the table's row order.
pub const PERSONAS: [Persona; 7] = Persona::ALL;

/// The default acceptance per persona (rows, [`PERSONAS`] order) and product (columns,
/// [`ProductCategory::ALL`] order).
const DEFAULT: [[f64; 7]; 7] = [
    [0.04, 0.01, 0.30, 0.02, 0.05, 0.03, 0.01],
    [0.02, 0.06, 0.05, 0.25, 0.08, 0.12, 0.01],
    [0.35, 0.10, 0.06, 0.01, 0.04, 0.02, 0.01],
    [0.01, 0.01, 0.02, 0.01, 0.02, 0.03, 0.01],
    [0.01, 0.01, 0.01, 0.01, 0.03, 0.01, 0.01],
    [0.01, 0.01, 0.02, 0.02, 0.01, 0.05, 0.01],
    [0.05, 0.03, 0.08, 0.04, 0.06, 0.06, 0.02],
];

/// The simulator's true acceptance per persona and product.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    table: [[f64; 7]; 7],
}

impl Default for Truth {
    fn default() -> Self {
        Self { table: DEFAULT }
    }
}

impl Truth {
    /// The true propensity of `persona` for `product`.
    pub fn propensity(&self, persona: Persona, product: ProductCategory) -> f64 {
        self.table[persona_row(persona)][product as usize]
    }

    /// The defaults with the cells a TOML text sets replaced: a table per persona, a key per
    /// product symbol, e.g. `[LoanShopper]` / `LOAN = 0.4`. Unknown names and values outside 0..=1
    /// are refused with the cell named.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let cells: BTreeMap<String, BTreeMap<String, f64>> =
            toml::from_str(text).map_err(|e| format!("truth table: {e}"))?;
        let mut truth = Truth::default();
        for (persona, row) in cells {
            let p = PERSONAS
                .iter()
                .find(|p| format!("{p:?}") == persona)
                .ok_or_else(|| {
                    format!("truth table: unknown persona {persona:?} (one of {PERSONAS:?})")
                })?;
            for (product, value) in row {
                let c = ProductCategory::ALL
                    .iter()
                    .find(|c| c.as_str() == product)
                    .ok_or_else(|| {
                        format!(
                            "truth table: [{persona}] {product:?} is not a product (one of {})",
                            ProductCategory::symbols().join(", ")
                        )
                    })?;
                if !(0.0..=1.0).contains(&value) {
                    return Err(format!(
                        "truth table: [{persona}] {product} = {value} is not a propensity in 0..=1"
                    ));
                }
                truth.table[persona_row(*p)][*c as usize] = value;
            }
        }
        Ok(truth)
    }
}

fn persona_row(persona: Persona) -> usize {
    PERSONAS.iter().position(|p| *p == persona).unwrap_or(6)
}

/// Answers offers as the simulated customers would.
#[derive(Debug, Clone)]
pub struct Responder {
    truth: Truth,
    seed: u64,
}

impl Responder {
    /// A responder with `truth`, its draws seeded by `seed`.
    pub fn new(truth: Truth, seed: u64) -> Self {
        Self { truth, seed }
    }

    /// The truth it answers by.
    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// The answer of a `persona` customer to offer `offer_id` of `product` (`None`: ignored).
    pub fn answer(
        &self,
        persona: Persona,
        offer_id: &str,
        product: ProductCategory,
    ) -> Option<OfferResponseKind> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.seed ^ fnv64(offer_id));
        let p = self.truth.propensity(persona, product);
        let u: f64 = rng.random();
        if u < p {
            return Some(OfferResponseKind::Accepted);
        }
        let rest = (u - p) / (1.0 - p).max(f64::MIN_POSITIVE);
        if rest < 0.25 {
            Some(OfferResponseKind::Clicked)
        } else if rest < 0.25 + 0.75 / 3.0 {
            Some(OfferResponseKind::Declined)
        } else {
            None
        }
    }
}

/// FNV-1a of a string: a stable hash (std's is not stable across releases).
fn fnv64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_the_truth_and_repeat_for_the_same_offer() {
        let r = Responder::new(Truth::default(), 42);
        let n = 20_000;
        let mut counts = [0u32; 4];
        for i in 0..n {
            let id = format!("offer-{i}");
            let a = r.answer(Persona::LoanShopper, &id, ProductCategory::Loan);
            assert_eq!(
                a,
                r.answer(Persona::LoanShopper, &id, ProductCategory::Loan)
            );
            counts[match a {
                Some(OfferResponseKind::Accepted) => 0,
                Some(OfferResponseKind::Clicked) => 1,
                Some(OfferResponseKind::Declined) => 2,
                _ => 3,
            }] += 1;
        }
        let share = |k: usize| f64::from(counts[k]) / f64::from(n);
        // p = 0.35: accepted 0.35, clicked 0.65/4, declined 0.65/4, no answer 0.65/2.
        assert!((share(0) - 0.35).abs() < 0.015, "{counts:?}");
        assert!((share(1) - 0.1625).abs() < 0.015, "{counts:?}");
        assert!((share(2) - 0.1625).abs() < 0.015, "{counts:?}");
        assert!((share(3) - 0.325).abs() < 0.015, "{counts:?}");
        let other_seed = Responder::new(Truth::default(), 43);
        let differ = (0..200)
            .filter(|i| {
                let id = format!("offer-{i}");
                r.answer(Persona::Ordinary, &id, ProductCategory::Loan)
                    != other_seed.answer(Persona::Ordinary, &id, ProductCategory::Loan)
            })
            .count();
        assert!(differ > 20, "another seed, other answers ({differ})");
    }

    #[test]
    fn a_truth_file_replaces_cells_and_names_what_it_refuses() {
        let t = Truth::from_toml("[LoanShopper]\nLOAN = 0.5\n[HighSaver]\nWEALTH = 0.0\n").unwrap();
        assert_eq!(
            t.propensity(Persona::LoanShopper, ProductCategory::Loan),
            0.5
        );
        assert_eq!(
            t.propensity(Persona::HighSaver, ProductCategory::Wealth),
            0.0
        );
        assert_eq!(
            t.propensity(Persona::CardHeavySpender, ProductCategory::CreditCard),
            0.30
        );
        let bad = Truth::from_toml("[Nobody]\nLOAN = 0.1\n").unwrap_err();
        assert!(bad.contains("unknown persona \"Nobody\""), "{bad}");
        let bad = Truth::from_toml("[LoanShopper]\nBOAT = 0.1\n").unwrap_err();
        assert!(bad.contains("\"BOAT\" is not a product"), "{bad}");
        let bad = Truth::from_toml("[LoanShopper]\nLOAN = 1.5\n").unwrap_err();
        assert!(bad.contains("LOAN = 1.5"), "{bad}");
    }

    #[test]
    fn each_persona_answers_its_own_product_best() {
        let t = Truth::default();
        for (persona, product) in [
            (Persona::CardHeavySpender, ProductCategory::CreditCard),
            (Persona::HighSaver, ProductCategory::Wealth),
            (Persona::LoanShopper, ProductCategory::Loan),
        ] {
            let best = ProductCategory::ALL
                .iter()
                .max_by(|a, b| {
                    t.propensity(persona, **a)
                        .total_cmp(&t.propensity(persona, **b))
                })
                .unwrap();
            assert_eq!(*best, product, "{persona:?}");
        }
    }
}
