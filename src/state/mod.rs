//! Where per-customer state is stored: how it is keyed and encoded, and the [`StateStore`] trait
//! with a Redis implementation ([`redis::RedisStore`]) and an in-memory one
//! ([`memory::MemoryStore`]). What the state holds is the domain's ([`crate::customer`]); this
//! module stores it.
//!
//! Layout (both stores): one hash `nbo:features:{<customer-key>}` with the current feature values
//! and `_updated_at`, for other systems to read; one string `nbo:state:{<customer-key>}` with the
//! operator's tile state, profile, contact history and applied offsets (postcard-encoded). Both keys
//! carry the same hash tag, so they live in one Redis Cluster slot and are written in one MULTI.

pub mod commands;
mod direct;
mod error;
mod format7;
pub mod memory;
mod migrate;
pub mod models;
mod number_text;
pub mod redis;
pub mod resp;
mod trailer;
pub mod uplift;

pub use error::StateError;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The domain type [`crate::customer::CustomerState`], stored here (encoded by
/// [`CustomerState::to_bytes`]); named from `state` too, as the storage tests do.
pub use crate::customer::CustomerState;
/// The domain type [`crate::customer::ProfileState`], stored here inside [`CustomerState`];
/// named from `state` too, as the rule tests do.
pub use crate::customer::ProfileState;

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
    /// `nbo:inbound:{<customer-key>}`: the contacts `nbo-stream api` made that the stream may not
    /// have stored yet (`api::contacts`); deleted with the state at an erasure.
    pub fn pending_contacts_key(&self) -> String {
        format!("nbo:inbound:{{{}}}", self.0)
    }
}

/// Version of the stored state encoding, its first byte. Bump it with any change to
/// [`CustomerState`]'s fields or to the types they hold (`format_tests.rs` pins the bytes).
///
/// Format 8 stores the tiles packed (`features::packed`); otherwise it is format 7, which is
/// still read, and written when `state.write_format = 7` (`format7`: the first step of an upgrade
/// that keeps a rollback to a release from before format 8 possible).
///
/// Formats 7 and 8 may end with a **trailer** after the postcard body (`state::trailer`): values a
/// reader of the format can do without, which one that predates them ignores (postcard reads the
/// body and stops), so a rollback keeps every customer's state. Today the trailer holds what the
/// public hash was written with ([`CustomerState::hash`]) and the open cooldown roll-ups
/// (`operator.audit_rollup`). A trailer that does not read is dropped, not the state.
pub const STATE_FORMAT: u8 = 8;

/// The formats `state.write_format` may name: this release's, and format 7 for the first step
/// of an upgrade from a release that does not read format 8.
pub const WRITE_FORMATS: [u8; 2] = [format7::FORMAT_7, STATE_FORMAT];

impl CustomerState {
    /// Serialized form stored under `nbo:state:{..}`: one format byte ([`STATE_FORMAT`]), then
    /// the postcard encoding (compact, but not self-describing: the format byte is what lets a
    /// later release read or migrate what this one wrote), then the trailer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
        self.to_bytes_as(STATE_FORMAT, 64)
    }

    /// The stored form in `format` (one of [`WRITE_FORMATS`]), into a buffer of `capacity`
    /// bytes to start with: given the size the customer's state had last time, the encoding
    /// seldom grows its buffer.
    pub fn to_bytes_as(&self, format: u8, capacity: usize) -> Result<Vec<u8>, StateError> {
        let mut out = Vec::with_capacity(capacity.max(1));
        out.push(format);
        let corrupt = |e: postcard::Error| StateError::Corrupt(e.to_string());
        let out = match format {
            STATE_FORMAT => postcard::to_extend(self, out),
            format7::FORMAT_7 => format7::write(self, out),
            other => {
                return Err(StateError::Corrupt(format!(
                    "state format {other} is not one this release writes ({WRITE_FORMATS:?})"
                )))
            }
        }
        .map_err(corrupt)?;
        trailer::write(self, out).map_err(corrupt)
    }

    /// Parses the stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let (mut state, trailer) = match bytes.split_first() {
            Some((&STATE_FORMAT, body)) => postcard::take_from_bytes::<CustomerState>(body)
                .map_err(|e| StateError::Corrupt(e.to_string()))?,
            Some((&format7::FORMAT_7, body)) => format7::read(body)?,
            Some((&migrate::FORMAT_6, body)) => return migrate::from_format_6(body),
            Some((&migrate::FORMAT_5, body)) => return migrate::from_format_5(body),
            Some((&migrate::FORMAT_4, body)) => return migrate::from_format_4(body),
            Some((&migrate::FORMAT_3, body)) => return migrate::from_format_3(body),
            Some((other, _)) => {
                return Err(StateError::Corrupt(format!(
                    "state format {other}, this release reads formats 3 to {STATE_FORMAT}"
                )))
            }
            None => return Err(StateError::Corrupt("empty state value".into())),
        };
        trailer::read(&mut state, trailer);
        Ok(state)
    }
}

/// One customer's write: state bytes and the changes to its public feature hash, with the TTL.
///
/// The hash is written as a delta (only values that changed since it was last written), which
/// keeps Redis work proportional to what events changed; `replace` rewrites it whole (when what
/// Redis holds is not known, and every `worker::FULL_REWRITE`).
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
    /// Delete the hash before setting `features` (which then holds every value), and renew its
    /// TTL.
    pub replace: bool,
    /// With `replace`: the hash is known not to exist (the customer had no stored state, and a
    /// hash never outlives its state), so it is set without being deleted first.
    pub absent: bool,
    /// The customer was erased and nothing came since: delete the hash and write nothing to it.
    pub erased: bool,
    /// Event time the values are as of (`_updated_at`).
    pub updated_at: i64,
    /// TTL of both keys, seconds (longest window + margin).
    pub ttl_secs: u64,
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
    /// Where the learned models of the application `namespace` (its consumer group) are kept
    /// beside this state (`None`: in the pipeline's memory only, lost with the process).
    fn models(&self, namespace: &str) -> Option<std::sync::Arc<dyn models::ModelStore>> {
        let _ = namespace;
        None
    }
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

#[cfg(test)]
mod format_tests;
