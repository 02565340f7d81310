//! Secrets in configuration: read like strings, printed as `***`.

use serde::Deserialize;

/// A secret string: deserializes like a string, prints as `***`.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret value; call only where it is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Wraps a value (for tests and the demo's development key).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
