//! Offers that learn: what the responses to offers say about their propensity, and what the
//! offers caused against the control group. Pure and synchronous, like the features and the
//! rules: counts in, estimates out, time and randomness passed in. Where the counts are kept is
//! the state stores' ([`crate::state::models`]).
//!
//! - [`propensity`]: a Beta posterior per offer (and segment), with the configured propensity as
//!   its prior, Thompson sampling for exploration, and the ramp of a new offer.
//! - [`model`]: the counts of every model as decisioning reads them, and the propensity one
//!   decision uses (mean, or a Thompson draw for the share of decisions that explore).
//! - [`ranking`]: how well a model ranks its customers, the AUC of the propensity it scored.
//! - [`precision`]: a share with its Wilson 95% interval (alert rules' precision and recall).
//! - [`uplift`]: conversion of the treated against the control group, the lift with its delta-
//!   method interval and whether it is significant.

pub mod model;
pub mod precision;
pub mod propensity;
pub mod ranking;
pub mod uplift;
