//! The customer's profile as rules read it: a copy of the CRM profile's fields, without the raw
//! customer id (state must not hold one).

use crate::event::{ContactChannel, CustomerProfile, LifecycleStage};
use serde::{Deserialize, Serialize};

/// The profile fields rules read (no raw customer id: state must not hold one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    /// CRM `updated_at` of the profile applied (a profile older than this one is ignored).
    pub updated_at: i64,
    /// Lifecycle stage.
    pub lifecycle_stage: LifecycleStage,
    /// Segment.
    pub segment: String,
    /// Credit score, if known.
    pub credit_score: Option<i32>,
    /// Marketing consent: without it, no offer goes out.
    pub consent_marketing: bool,
    /// Profiling consent.
    pub consent_profiling: bool,
    /// Channels the customer may be contacted on; an offer goes out on the first of its rule's
    /// channels listed here.
    pub contact_channels: Vec<ContactChannel>,
}

impl From<&CustomerProfile> for ProfileState {
    fn from(p: &CustomerProfile) -> Self {
        Self {
            updated_at: p.updated_at,
            lifecycle_stage: p.lifecycle_stage,
            segment: p.segment.to_string(),
            credit_score: p.credit_score,
            consent_marketing: p.consent_marketing,
            consent_profiling: p.consent_profiling,
            contact_channels: p.contact_channels.clone(),
        }
    }
}
