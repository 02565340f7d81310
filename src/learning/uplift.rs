//! What an offer caused: conversion in the treated group against the control group, with the
//! statistics a bank's analysts already use (as Pega's Impact Analyzer reports them).
//!
//! For one offer, `treated` customers were sent it and `control` customers would have been (the
//! control group's CONTROL_GROUP decisions); each side counts the customers who converted within
//! the attribution window. With `p_t` and `p_c` the two conversion rates:
//! - the **lift** is `(p_t − p_c) / p_c`, what the offer added relative to doing nothing;
//! - its standard error is the **delta method**'s: for `g(p_t, p_c) = p_t / p_c − 1`,
//!   `Var(g) ≈ Var(p_t) / p_c² + p_t² · Var(p_c) / p_c⁴`, with `Var(p) = p (1 − p) / n`;
//! - the 95% interval is `lift ± 1.96 · SE`, and the lift is **significant** when the interval
//!   leaves out zero (`|lift| / SE > 1.96`).
//!
//! The absolute uplift `p_t − p_c` (conversions caused per customer treated) is reported beside
//! it, with `SE = √(Var(p_t) + Var(p_c))`: it stays defined when the control group never
//! converted, where the lift does not.

/// Which side of an offer rule's comparison a customer is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// Sent the rule's offer.
    Treated,
    /// Held out by the control group when the rule's offer would have been sent.
    Control,
}

impl Group {
    /// The metrics' label.
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Treated => "treated",
            Group::Control => "control",
        }
    }
}

/// One count of an offer rule's uplift, made as the operator decides: a customer exposed to the
/// rule (the first offer made, or held back, in a window), or such an exposure converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    /// The exposure's id (the offer's, or the held-back decision's): a store counts each
    /// exposure, and each conversion of it, once.
    pub exposure_id: String,
    /// When the exposure was made (event time).
    pub exposed_at: i64,
    /// The offer rule.
    pub rule_id: String,
    /// The customer's side.
    pub group: Group,
    /// `false`: an exposure; `true`: its conversion.
    pub converted: bool,
}

/// An offer rule's two groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Groups {
    /// Customers sent the offer, and their conversions.
    pub treated: Arm,
    /// Customers held out, and their conversions.
    pub control: Arm,
}

impl Groups {
    /// Adds one tally.
    pub fn add(&mut self, t: &Tally) {
        let arm = match t.group {
            Group::Treated => &mut self.treated,
            Group::Control => &mut self.control,
        };
        if t.converted {
            arm.converted += 1;
        } else {
            arm.customers += 1;
        }
    }

    /// The treated against the control (`None` until both have customers).
    pub fn uplift(&self) -> Option<Uplift> {
        uplift(self.treated, self.control)
    }
}

/// The z-value of a two-sided 95% interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// Conversions among customers of one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Arm {
    /// Customers in the group.
    pub customers: u64,
    /// Of them, customers who converted within the window.
    pub converted: u64,
}

impl Arm {
    /// The conversion rate (`None` for an empty group).
    pub fn rate(self) -> Option<f64> {
        (self.customers > 0)
            .then(|| self.converted.min(self.customers) as f64 / self.customers as f64)
    }

    /// The variance of the rate as an estimate, `p (1 − p) / n`.
    fn variance(self) -> Option<f64> {
        let p = self.rate()?;
        Some(p * (1.0 - p) / self.customers as f64)
    }
}

/// An estimate with its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The point estimate.
    pub value: f64,
    /// Its standard error.
    pub std_error: f64,
    /// Lower end of the 95% interval.
    pub low: f64,
    /// Upper end of the 95% interval.
    pub high: f64,
}

impl Estimate {
    fn new(value: f64, std_error: f64) -> Self {
        Self {
            value,
            std_error,
            low: value - Z_95 * std_error,
            high: value + Z_95 * std_error,
        }
    }

    /// Whether the 95% interval leaves out zero.
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// One offer's treatment against its control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uplift {
    /// Conversion rate of the treated group.
    pub treated_rate: f64,
    /// Conversion rate of the control group.
    pub control_rate: f64,
    /// `p_t − p_c`.
    pub absolute: Estimate,
    /// `(p_t − p_c) / p_c`; `None` while the control group has no conversion.
    pub lift: Option<Estimate>,
}

/// Treatment against control (`None` until both groups have customers).
pub fn uplift(treated: Arm, control: Arm) -> Option<Uplift> {
    let (p_t, p_c) = (treated.rate()?, control.rate()?);
    let (var_t, var_c) = (treated.variance()?, control.variance()?);
    let absolute = Estimate::new(p_t - p_c, (var_t + var_c).sqrt());
    let lift = (p_c > 0.0).then(|| {
        let var = var_t / (p_c * p_c) + p_t * p_t * var_c / p_c.powi(4);
        Estimate::new(p_t / p_c - 1.0, var.sqrt())
    });
    Some(Uplift {
        treated_rate: p_t,
        control_rate: p_c,
        absolute,
        lift,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    /// Worked by hand: 10,000 treated with 600 conversions (6%), 1,000 controls with 40 (4%).
    /// Var(p_t) = 0.06·0.94/10000 = 5.64e-6; Var(p_c) = 0.04·0.96/1000 = 3.84e-5.
    /// lift = 0.06/0.04 − 1 = 0.5; Var = 5.64e-6/0.0016 + 0.0036·3.84e-5/2.56e-6
    ///      = 0.003525 + 0.054 = 0.057525; SE = 0.239844…; interval 0.5 ± 0.470086.
    /// absolute = 0.02, SE = √(4.404e-5) = 0.0066362…; interval 0.02 ± 0.013007.
    #[test]
    fn a_hand_computed_case() {
        let u = uplift(
            Arm {
                customers: 10_000,
                converted: 600,
            },
            Arm {
                customers: 1_000,
                converted: 40,
            },
        )
        .unwrap();
        assert!(close(u.treated_rate, 0.06, 1e-12) && close(u.control_rate, 0.04, 1e-12));
        let lift = u.lift.unwrap();
        assert!(close(lift.value, 0.5, 1e-12));
        assert!(close(lift.std_error, 0.057_525f64.sqrt(), 1e-9));
        assert!(close(lift.low, 0.5 - 0.470_086, 1e-5) && close(lift.high, 0.970_086, 1e-5));
        assert!(lift.significant());
        assert!(close(u.absolute.value, 0.02, 1e-12));
        assert!(close(u.absolute.std_error, 4.404e-5f64.sqrt(), 1e-9));
        assert!(close(u.absolute.low, 0.006_993, 1e-5));
        assert!(u.absolute.significant());
    }

    #[test]
    fn a_small_difference_on_few_customers_is_not_significant() {
        let u = uplift(
            Arm {
                customers: 200,
                converted: 12,
            },
            Arm {
                customers: 100,
                converted: 5,
            },
        )
        .unwrap();
        let lift = u.lift.unwrap();
        assert!(close(lift.value, 0.2, 1e-12));
        assert!(lift.low < 0.0 && lift.high > 0.0);
        assert!(!lift.significant() && !u.absolute.significant());
    }

    #[test]
    fn no_lift_while_the_control_group_never_converted_and_none_without_customers() {
        let u = uplift(
            Arm {
                customers: 500,
                converted: 10,
            },
            Arm {
                customers: 50,
                converted: 0,
            },
        )
        .unwrap();
        assert_eq!(u.lift, None);
        assert!(close(u.absolute.value, 0.02, 1e-12));
        assert_eq!(uplift(Arm::default(), Arm::default()), None);
        assert_eq!(
            uplift(
                Arm {
                    customers: 10,
                    converted: 1
                },
                Arm::default()
            ),
            None
        );
    }
}
