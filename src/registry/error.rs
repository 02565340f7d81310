//! What can go wrong talking to the Schema Registry, sorted by what the caller should do.

/// A Schema Registry call that did not give an answer the caller can use.
///
/// Only [`RegistryError::NotFound`] says something about a record (its schema id is unknown:
/// dead-letter it). [`RegistryError::Unavailable`] is transient (pause, back off, retry;
/// nothing is dead-lettered). [`RegistryError::Refused`] and [`RegistryError::Config`] are about
/// this instance's setup: retrying will not help, and neither would dead-lettering.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered 404 with a Confluent error code: the schema id, subject or version
    /// does not exist (or the id names a schema that is not Avro). Permanent.
    #[error("schema registry: no {what}")]
    NotFound {
        /// What was looked up, e.g. `schema id 42` or `subject bank.transactions.v1-value`.
        what: String,
    },
    /// No usable answer: connection refused, timeout, HTTP 408/429/5xx, or a body that is not
    /// the registry's JSON. Transient: retry with backoff.
    #[error("schema registry unavailable: {reason}")]
    Unavailable {
        /// The URL and the cause.
        reason: String,
    },
    /// The registry answered but refused: 401/403 (credentials), 409 (incompatible schema),
    /// 422 (invalid schema), or a 404 that did not come from a Schema Registry. Permanent; the
    /// reason says what to change.
    #[error("schema registry refused the request (HTTP {status}): {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The registry's message and what to do about it.
        reason: String,
    },
    /// The `[schema_registry]` settings cannot be used (no URL, unreadable TLS files).
    #[error("schema registry configuration: {reason}")]
    Config {
        /// Which setting and why.
        reason: String,
    },
}

impl RegistryError {
    /// True when the same call may succeed later (registry down, slow or overloaded): back off
    /// and retry; never dead-letter on it.
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}
