//! The customer's contact history: the offers made, with what the customer did with them, and
//! the alerts raised.

use crate::event::{OfferResponseKind, ProductCategory};
use serde::{Deserialize, Serialize};

/// An offer or alert made for the customer, for the contact policy and alert cooldowns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRecord {
    /// Rule that made the offer or alert.
    pub rule_id: String,
    /// Its `decided_at`.
    pub at: i64,
}

/// An offer made, with what the customer did with it (from `bank.offer-responses.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferRecord {
    /// Rule that made the offer.
    pub rule_id: String,
    /// Product family offered (a decline suppresses the whole family).
    pub product: ProductCategory,
    /// The offer's id.
    pub offer_id: String,
    /// Its `decided_at`.
    pub at: i64,
    /// The latest response, if any.
    pub response: Option<OfferResponseKind>,
    /// Event time of that response.
    pub responded_at: Option<i64>,
}

impl OfferRecord {
    /// When the customer declined this offer, if they did.
    pub fn declined_at(&self) -> Option<i64> {
        match self.response {
            Some(OfferResponseKind::Declined) => self.responded_at.or(Some(self.at)),
            _ => None,
        }
    }
}
