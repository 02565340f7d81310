//! [`StateError`]: how a store or a stored value fails, and whether to retry.

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
