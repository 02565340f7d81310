//! Per-customer state: what it holds, how it is keyed, and the [`StateStore`] trait with a Redis
//! implementation ([`redis::RedisStore`]) and an in-memory one ([`memory::MemoryStore`]).
//!
//! Layout (both stores): one hash `nbo:features:{<customer-key>}` with the current feature values
//! and `_updated_at`, for other systems to read; one string `nbo:state:{<customer-key>}` with the
//! operator's tile state, profile, contact history and applied offsets (postcard-encoded). Both keys
//! carry the same hash tag, so they live in one Redis Cluster slot and are written in one MULTI.

pub mod memory;
mod migrate;
pub mod redis;

use crate::event::{
    ContactChannel, CustomerProfile, LifecycleStage, OfferResponseKind, ProductCategory,
};
use crate::features::Tiles;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The keyed hash of a customer id (hex HMAC-SHA256): the only customer identifier Redis sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CustomerKey(pub String);

/// Computes [`CustomerKey`]s with the secret from `NBO_CUSTOMER_KEY_SECRET`.
#[derive(Clone)]
pub struct KeyHasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher(***)")
    }
}

impl KeyHasher {
    /// A hasher keyed with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        Self { mac }
    }

    /// The customer key of `customer_id`.
    pub fn key(&self, customer_id: &str) -> CustomerKey {
        let mut mac = self.mac.clone();
        mac.update(customer_id.as_bytes());
        CustomerKey(hex::encode(mac.finalize().into_bytes()))
    }
}

impl CustomerKey {
    /// `nbo:features:{<customer-key>}`: the public feature hash.
    pub fn features_key(&self) -> String {
        format!("nbo:features:{{{}}}", self.0)
    }
    /// `nbo:state:{<customer-key>}`: the operator's internal state.
    pub fn state_key(&self) -> String {
        format!("nbo:state:{{{}}}", self.0)
    }
}

/// The profile fields rules read (no raw customer id: state must not hold one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileState {
    /// CRM `updated_at` of the profile applied.
    pub updated_at: i64,
    /// Lifecycle stage.
    pub lifecycle_stage: LifecycleStage,
    /// Segment.
    pub segment: String,
    /// Credit score, if known.
    pub credit_score: Option<i32>,
    /// Marketing consent.
    pub consent_marketing: bool,
    /// Profiling consent.
    pub consent_profiling: bool,
    /// Permitted channels.
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

/// The last source offset applied to this customer's state, per input topic-partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedOffset {
    /// Input kind index ([`crate::event::EventKind::index`]).
    pub kind: u8,
    /// Partition.
    pub partition: i32,
    /// Highest offset applied.
    pub offset: i64,
}

/// Version of the stored state encoding, its first byte. Bump it with any change to
/// [`CustomerState`]'s fields.
pub const STATE_FORMAT: u8 = 4;

/// Everything the operator keeps about one customer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    /// Tiles per feature, with the feature's definition id (aligned to the feature set by the
    /// operator; an id, not the name, keeps stored state small).
    pub features: Vec<(u32, Tiles)>,
    /// Latest profile.
    pub profile: Option<ProfileState>,
    /// Offers made within the contact period, with their responses.
    pub contacts: Vec<OfferRecord>,
    /// Alerts raised within their rules' cooldown.
    pub alerts: Vec<ContactRecord>,
    /// Event time of the last HIGH or CRITICAL alert.
    pub last_high_alert_at: Option<i64>,
    /// Event time of the customer's last complaint (feedback of kind COMPLAINT).
    pub last_complaint_at: Option<i64>,
    /// Event time of the customer's last negative social post about the bank.
    pub last_negative_social_at: Option<i64>,
    /// Source offsets applied (a replayed record at or below these is skipped).
    pub applied: Vec<AppliedOffset>,
    /// Newest event time seen (drives tile retirement and the lateness bound).
    pub max_event_time: i64,
    /// Event time from which the next tile can be retired (recomputed after a load: 0 = now).
    #[serde(skip)]
    pub next_retire_at: i64,
    /// Tombstone of an erasure: events at or before this time are dropped, so late or replayed
    /// events cannot rebuild an erased customer.
    pub erased_before: Option<i64>,
    /// Exactly-once outbox: the decisions of applied events whose Kafka transaction may not have
    /// committed yet, written atomically with the state. A replayed event that is already applied
    /// re-emits these instead of recomputing; entries are pruned once their offsets are
    /// committed. Customer ids are blanked (Redis holds no raw id) and restored from the event.
    pub outbox: Vec<OutboxEntry>,
    /// Challengers' contact history: the offers shadow versions would have made, kept apart
    /// from `contacts` so a challenger never changes what its champion decides, and long enough
    /// for the same contact policy.
    pub shadow_contacts: Vec<OfferRecord>,
    /// The alerts shadow versions would have raised, for their own cooldowns.
    pub shadow_alerts: Vec<ContactRecord>,
}

/// The decisions one applied event produced, kept until its transaction commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Input kind index of the event.
    pub kind: u8,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its decisions, customer ids blanked.
    pub decisions: Vec<crate::output::Decision>,
}

impl CustomerState {
    /// Whether the record at `offset` of (`kind`, `partition`) is already applied.
    pub fn is_applied(&self, kind: u8, partition: i32, offset: i64) -> bool {
        self.applied
            .iter()
            .any(|a| a.kind == kind && a.partition == partition && a.offset >= offset)
    }

    /// Records that the record at `offset` is applied.
    pub fn mark_applied(&mut self, kind: u8, partition: i32, offset: i64) {
        match self
            .applied
            .iter_mut()
            .find(|a| a.kind == kind && a.partition == partition)
        {
            Some(a) => a.offset = a.offset.max(offset),
            None => self.applied.push(AppliedOffset {
                kind,
                partition,
                offset,
            }),
        }
    }

    /// Drops outbox entries of (`kind`, `partition`) below `committed` (the first offset of the
    /// batch being processed: everything before it was committed by an earlier transaction).
    pub fn prune_outbox(&mut self, kind: u8, partition: i32, committed: i64) {
        self.outbox
            .retain(|e| !(e.kind == kind && e.partition == partition && e.offset < committed));
    }

    /// Serialized form stored under `nbo:state:{..}`: one format byte ([`STATE_FORMAT`]), then
    /// the postcard encoding (compact, but not self-describing: the format byte is what lets a
    /// later release read or migrate what this one wrote).
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        let out = vec![STATE_FORMAT];
        postcard::to_extend(self, out).map_err(|e| StateError::Corrupt(e.to_string()))
    }

    /// Parses the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        match bytes.split_first() {
            Some((&STATE_FORMAT, body)) => {
                postcard::from_bytes(body).map_err(|e| StateError::Corrupt(e.to_string()))
            }
            Some((&migrate::FORMAT_3, body)) => migrate::from_format_3(body),
            Some((other, _)) => Err(StateError::Corrupt(format!(
                "state format {other}, this release reads format {STATE_FORMAT}"
            ))),
            None => Err(StateError::Corrupt("empty state value".into())),
        }
    }
}

/// One customer's write: state bytes and the changes to its public feature hash, with the TTL.
///
/// The hash is written as a delta (only values that changed since this process last wrote them),
/// which keeps Redis work proportional to what events changed; `replace` rewrites it whole (the
/// first write of a customer after a load, when what Redis holds is unknown).
#[derive(Debug, Clone)]
pub struct StateWrite {
    /// Whose state.
    pub key: CustomerKey,
    /// Serialized [`CustomerState`].
    pub state: Vec<u8>,
    /// Feature values to set, by name.
    pub features: Vec<(std::sync::Arc<str>, crate::features::FeatureValue)>,
    /// Features that no longer have a value (removed from the hash).
    pub removed: Vec<std::sync::Arc<str>>,
    /// Delete the hash before setting `features` (which then holds every value).
    pub replace: bool,
    /// The customer was erased and nothing came since: delete the hash and write nothing to it.
    pub erased: bool,
    /// Event time the values are as of (`_updated_at`).
    pub updated_at: i64,
    /// TTL of both keys, seconds (longest window + margin).
    pub ttl_secs: u64,
}

/// State store failure.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store could not be reached or answered an error: retry with backoff.
    #[error("state store unavailable: {0}")]
    Unavailable(String),
    /// Stored bytes do not parse: permanent for that customer.
    #[error("stored state does not parse: {0}")]
    Corrupt(String),
}

impl StateError {
    /// Whether retrying may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, StateError::Unavailable(_))
    }
}

/// Where customer state lives. Every call covers a whole batch: one round trip, never one per event.
#[async_trait::async_trait]
pub trait StateStore: Send + Sync {
    /// Loads the stored state of each key (None where there is none), in order.
    async fn load(&self, keys: &[CustomerKey]) -> Result<Vec<Option<Vec<u8>>>, StateError>;
    /// Writes every customer's state and feature hash, each customer atomically.
    async fn store(&self, writes: &[StateWrite]) -> Result<(), StateError>;
    /// The public feature hash of one customer (`HGETALL nbo:features:{..}`).
    async fn feature_hash(&self, key: &CustomerKey) -> Result<Vec<(String, String)>, StateError>;
    /// Round trips made so far (for the round-trips-per-event metric).
    fn round_trips(&self) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_key_is_keyed_hex_and_hash_tagged() {
        let a = KeyHasher::new(b"0123456789abcdef-test");
        let b = KeyHasher::new(b"another-secret-0123456789");
        let key = a.key("C000123");
        assert_eq!(key.0.len(), 64);
        assert!(!key.0.contains("C000123"));
        assert_ne!(key, b.key("C000123"));
        assert_eq!(key, a.key("C000123"));
        assert_eq!(key.features_key(), format!("nbo:features:{{{}}}", key.0));
    }

    #[test]
    fn applied_offsets_skip_replays() {
        let mut s = CustomerState::default();
        s.mark_applied(0, 3, 10);
        assert!(s.is_applied(0, 3, 10));
        assert!(s.is_applied(0, 3, 9));
        assert!(!s.is_applied(0, 3, 11));
        assert!(!s.is_applied(1, 3, 1));
        let bytes = s.to_bytes().unwrap();
        assert_eq!(CustomerState::from_bytes(&bytes).unwrap(), s);
    }
}
