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
//! it: it stays defined when the control group never converted, where the lift does not. Its
//! interval is Agresti and Caffo's (1999): the Wald interval of the two rates after adding one
//! conversion and one non-conversion to each group, `p̃ = (k + 1) / (n + 2)`,
//! `p̃_t − p̃_c ± 1.96 · √(p̃_t (1 − p̃_t) / (n_t + 2) + p̃_c (1 − p̃_c) / (n_c + 2))`. At bank
//! volumes it is the plain Wald interval; with few conversions, where the Wald interval of a
//! control group that never converted has no width on its side and calls a handful of
//! conversions significant, it keeps its 95%.
//!
//! The verdict: an offer's effect is **significant** when the uplift's interval leaves out zero,
//! and so does the lift's when there is one.

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
    /// When this tally was counted (event time): the exposure's, or the product's opening for a
    /// conversion. A store remembers what it counted lately by this day.
    pub counted_at: i64,
    /// The offer rule.
    pub rule_id: String,
    /// The customer's side.
    pub group: Group,
    /// `false`: an exposure; `true`: its conversion.
    pub converted: bool,
}

/// An offer rule's two groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
        Self::around(value, value, std_error)
    }

    /// `value`, with an interval centred on `center`.
    fn around(value: f64, center: f64, std_error: f64) -> Self {
        Self {
            value,
            std_error,
            low: center - Z_95 * std_error,
            high: center + Z_95 * std_error,
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

impl Uplift {
    /// The verdict: the uplift's interval leaves out zero, and so does the lift's if there is
    /// one.
    pub fn significant(&self) -> bool {
        self.absolute.significant() && self.lift.as_ref().is_none_or(Estimate::significant)
    }
}

/// Treatment against control (`None` until both groups have customers).
pub fn uplift(treated: Arm, control: Arm) -> Option<Uplift> {
    let (p_t, p_c) = (treated.rate()?, control.rate()?);
    let (var_t, var_c) = (treated.variance()?, control.variance()?);
    // Agresti–Caffo: one conversion and one non-conversion more on each side.
    let adjusted = |a: Arm| {
        let n = a.customers as f64 + 2.0;
        let p = (a.converted.min(a.customers) as f64 + 1.0) / n;
        (p, p * (1.0 - p) / n)
    };
    let ((q_t, v_t), (q_c, v_c)) = (adjusted(treated), adjusted(control));
    let absolute = Estimate::around(p_t - p_c, q_t - q_c, (v_t + v_c).sqrt());
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

impl std::fmt::Display for Uplift {
    /// `+0.0200 (95% +0.0060..+0.0323), lift +50% (+3%..+97%), significant`: the absolute
    /// uplift, then the lift when the control group converted, and the verdict
    /// ([`Uplift::significant`]).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.absolute;
        write!(f, "{:+.4} (95% {:+.4}..{:+.4})", a.value, a.low, a.high)?;
        match &self.lift {
            Some(l) => write!(
                f,
                ", lift {:+.0}% ({:+.0}%..{:+.0}%)",
                l.value * 100.0,
                l.low * 100.0,
                l.high * 100.0
            )?,
            None => f.write_str(", no lift yet (no control conversion)")?,
        }
        f.write_str(if self.significant() {
            ", significant"
        } else {
            ", not significant"
        })
    }
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
    /// absolute = 0.02; Agresti–Caffo: p̃_t = 601/10002 = 0.0600880, p̃_c = 41/1002 = 0.0409182,
    /// Var = 0.0600880·0.9399120/10002 + 0.0409182·0.9590818/1002 = 5.64661e-6 + 3.91655e-5
    ///     = 4.48121e-5, SE = 0.0066942…; interval 0.0191698 ± 0.0131203 = 0.00605 .. 0.03229.
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
        assert!(close(u.absolute.std_error, 4.481_21e-5f64.sqrt(), 1e-8));
        assert!(close(u.absolute.low, 0.006_049_5, 1e-5));
        assert!(close(u.absolute.high, 0.032_290_1, 1e-5));
        assert!(u.significant());
        assert_eq!(
            u.to_string(),
            "+0.0200 (95% +0.0060..+0.0323), lift +50% (+3%..+97%), significant"
        );
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

    /// 4 of 530 treated against 0 of 36 controls: the Wald interval, 0.0075 ± 0.0073, would call
    /// it significant; one conversion and one non-conversion more on each side give
    /// 5/532 − 1/38 = −0.0169 ± 0.0516 (by hand: Var = 1.7500e-5 + 6.7430e-4).
    #[test]
    fn a_control_group_that_never_converted_does_not_make_a_handful_significant() {
        let u = uplift(
            Arm {
                customers: 530,
                converted: 4,
            },
            Arm {
                customers: 36,
                converted: 0,
            },
        )
        .unwrap();
        assert!(close(u.absolute.value, 4.0 / 530.0, 1e-12));
        assert!(close(u.absolute.low, -0.068_469, 1e-5), "{u:?}");
        assert!(close(u.absolute.high, 0.034_635, 1e-5), "{u:?}");
        assert!(!u.significant());
        assert!(u
            .to_string()
            .ends_with("no lift yet (no control conversion), not significant"));
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
