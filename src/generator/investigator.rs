//! Simulated investigators who close the alerts a running pipeline raised: the other half of
//! the simulated world, so that tests and the demo show each rule's real precision.
//!
//! Each alert rule has a true precision: the chance that one of its alerts, investigated, turns
//! out to be real fraud. The `[alert_precision]` table of the truth file sets it per rule id, with
//! `default` for the rules it does not name (0.3 when the file says nothing). An alert is closed
//! `CONFIRMED_RISK` (third-party fraud, an amount drawn from 50.00 to 899.99 EUR) when a draw
//! seeded by the run's seed and the alert's id falls under its rule's precision, otherwise
//! `FALSE_POSITIVE`: the same alert gets the same closure in every run with that seed, whatever
//! the order alerts arrive in, and the share confirmed converges on the precision as alerts close
//! (its standard error is `√(p (1 − p) / n)`: 0.022 at p = 0.5 after 500 alerts).

use crate::event::AlertLabel;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

/// The table of the truth file this module reads.
pub const TABLE: &str = "alert_precision";

/// The precision of rules the truth file does not name, unless `default` says otherwise.
pub const DEFAULT_PRECISION: f64 = 0.3;

/// How one alert's case was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closure {
    /// The investigator's label.
    pub label: AlertLabel,
    /// The amount the alert saved, minor units of EUR (confirmed cases only).
    pub amount_minor: Option<i64>,
}

/// Closes alerts at each rule's true precision.
#[derive(Debug, Clone, PartialEq)]
pub struct Investigators {
    precision: BTreeMap<String, f64>,
    default: f64,
    seed: u64,
}

impl Investigators {
    /// Every rule at [`DEFAULT_PRECISION`], draws seeded by `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            precision: BTreeMap::new(),
            default: DEFAULT_PRECISION,
            seed,
        }
    }

    /// The `[alert_precision]` table of a truth file (other tables are the responder's): a share
    /// in 0..=1 per rule id, and `default`.
    pub fn from_toml(text: &str, seed: u64) -> Result<Self, String> {
        let mut tables: BTreeMap<String, toml::Value> =
            toml::from_str(text).map_err(|e| format!("truth table: {e}"))?;
        let mut out = Self::new(seed);
        let Some(table) = tables.remove(TABLE) else {
            return Ok(out);
        };
        let table = table
            .as_table()
            .ok_or_else(|| format!("truth table: [{TABLE}] is a table of rule ids"))?;
        for (rule, value) in table {
            let p = value
                .as_float()
                .or_else(|| value.as_integer().map(|i| i as f64))
                .filter(|p| (0.0..=1.0).contains(p))
                .ok_or_else(|| {
                    format!("truth table: [{TABLE}] {rule} = {value} is not a share in 0..=1")
                })?;
            if rule == "default" {
                out.default = p;
            } else {
                out.precision.insert(rule.clone(), p);
            }
        }
        Ok(out)
    }

    /// The true precision of rule `rule_id`.
    pub fn precision(&self, rule_id: &str) -> f64 {
        self.precision.get(rule_id).copied().unwrap_or(self.default)
    }

    /// How the case of alert `alert_id` of rule `rule_id` is closed.
    pub fn close(&self, rule_id: &str, alert_id: &str) -> Closure {
        let seed = self.seed ^ super::responder::fnv64(alert_id) ^ 0x5eed_a1e7;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        if rng.random::<f64>() < self.precision(rule_id) {
            Closure {
                label: AlertLabel::ConfirmedRisk,
                amount_minor: Some(rng.random_range(5_000..90_000)),
            }
        } else {
            Closure {
                label: AlertLabel::FalsePositive,
                amount_minor: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closures_follow_each_rules_precision_and_repeat_for_the_same_alert() {
        let i = Investigators::from_toml(
            "[alert_precision]\ndefault = 0.1\nalert-a = 0.8\n[LoanShopper]\nLOAN = 0.5\n",
            7,
        )
        .unwrap();
        assert_eq!((i.precision("alert-a"), i.precision("other")), (0.8, 0.1));
        let confirmed = |rule: &str| {
            (0..4_000)
                .filter(|n| i.close(rule, &format!("al-{n}")).label == AlertLabel::ConfirmedRisk)
                .count() as f64
                / 4_000.0
        };
        assert!((confirmed("alert-a") - 0.8).abs() < 0.02);
        assert!((confirmed("other") - 0.1).abs() < 0.02);
        assert_eq!(i.close("alert-a", "al-1"), i.close("alert-a", "al-1"));
        let err = Investigators::from_toml("[alert_precision]\nalert-a = 1.5\n", 7).unwrap_err();
        assert!(err.contains("alert-a"), "{err}");
        assert_eq!(
            Investigators::from_toml("", 7).unwrap(),
            Investigators::new(7)
        );
    }
}
