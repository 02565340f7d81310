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
//!
//! Customers also open products on their own, without an offer, at a base rate per product
//! family: the share of customers who open one within 30 days (the `[base_rate]` table of the
//! same TOML file). An accepted offer opens its product too; a customer who would have opened
//! it anyway is counted once, so an offer's true effect on conversion within a window of
//! `W` is `p · (1 − b_W)`, with `b_W` the base rate over `W` ([`Truth::base_within`]).
//!
//! | base rate (30 days) | LOAN | MORTGAGE | CREDIT_CARD | WEALTH | INSURANCE | SAVINGS | OTHER |
//! |---------------------|------|----------|-------------|--------|-----------|---------|-------|
//! | every persona       | 0.02 | 0.005    | 0.03        | 0.01   | 0.02      | 0.04    | 0.01  |

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

/// The default share of customers who open each product family on their own within
/// [`BASE_PERIOD_MS`] ([`ProductCategory::ALL`] order).
const DEFAULT_BASE: [f64; 7] = [0.02, 0.005, 0.03, 0.01, 0.02, 0.04, 0.01];

/// The period of the base rates: 30 days.
pub const BASE_PERIOD_MS: i64 = 30 * 86_400_000;

/// The simulator's true acceptance per persona and product, and its base conversion rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    table: [[f64; 7]; 7],
    base: [f64; 7],
}

impl Default for Truth {
    fn default() -> Self {
        Self {
            table: DEFAULT,
            base: DEFAULT_BASE,
        }
    }
}

impl Truth {
    /// The true propensity of `persona` for `product`.
    pub fn propensity(&self, persona: Persona, product: ProductCategory) -> f64 {
        self.table[persona_row(persona)][product as usize]
    }

    /// The share of customers who open a `product` on their own within 30 days.
    pub fn base_rate(&self, product: ProductCategory) -> f64 {
        self.base[product as usize]
    }

    /// The share who open a `product` on their own within `window_ms` (the same constant rate).
    pub fn base_within(&self, product: ProductCategory, window_ms: i64) -> f64 {
        let b = self.base_rate(product);
        1.0 - (1.0 - b).powf(window_ms as f64 / BASE_PERIOD_MS as f64)
    }

    /// The rate of `product`'s own conversions per customer and millisecond.
    pub fn base_per_ms(&self, product: ProductCategory) -> f64 {
        -(1.0 - self.base_rate(product).min(0.999_999)).ln() / BASE_PERIOD_MS as f64
    }

    /// The defaults with the cells a TOML text sets replaced: a table per persona, a key per
    /// product symbol, e.g. `[LoanShopper]` / `LOAN = 0.4`, and `[base_rate]` for the own
    /// conversions. Unknown names and values outside 0..=1 are refused with the cell named.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let cells: BTreeMap<String, BTreeMap<String, f64>> =
            toml::from_str(text).map_err(|e| format!("truth table: {e}"))?;
        let mut truth = Truth::default();
        for (persona, row) in cells {
            if persona == super::investigator::TABLE {
                continue; // the investigators' (`generator::investigator`)
            }
            if persona == "base_rate" {
                for (product, value) in row {
                    let c = product_of("base_rate", &product)?;
                    check_share("base_rate", &product, value)?;
                    truth.base[c as usize] = value;
                }
                continue;
            }
            let p = PERSONAS
                .iter()
                .find(|p| format!("{p:?}") == persona)
                .ok_or_else(|| {
                    format!(
                        "truth table: unknown persona {persona:?} (one of {PERSONAS:?}, or base_rate)"
                    )
                })?;
            for (product, value) in row {
                let c = product_of(&persona, &product)?;
                check_share(&persona, &product, value)?;
                truth.table[persona_row(*p)][c as usize] = value;
            }
        }
        Ok(truth)
    }
}

/// The product family a truth file's key names.
fn product_of(table: &str, product: &str) -> Result<ProductCategory, String> {
    ProductCategory::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == product)
        .ok_or_else(|| {
            format!(
                "truth table: [{table}] {product:?} is not a product (one of {})",
                ProductCategory::symbols().join(", ")
            )
        })
}

/// A truth file's value, which must be a share in 0..=1.
fn check_share(table: &str, product: &str, value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "truth table: [{table}] {product} = {value} is not a share in 0..=1"
        ))
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
pub(super) fn fnv64(s: &str) -> u64 {
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
        let t = Truth::from_toml("[base_rate]\nSAVINGS = 0.1\n").unwrap();
        assert_eq!(t.base_rate(ProductCategory::Savings), 0.1);
        assert_eq!(t.base_rate(ProductCategory::Loan), 0.02);
        // 10% in 30 days is 1 − 0.9² = 19% in 60 days.
        let sixty = t.base_within(ProductCategory::Savings, 2 * BASE_PERIOD_MS);
        assert!((sixty - 0.19).abs() < 1e-12, "{sixty}");
        let bad = Truth::from_toml("[base_rate]\nLOAN = -0.1\n").unwrap_err();
        assert!(bad.contains("[base_rate] LOAN = -0.1"), "{bad}");
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
