//! The Confluent Schema Registry: where a record's schema id leads to its writer schema, and
//! where this program's own schemas are registered and checked before a release.
//!
//! - `client`: [`Registry`], the REST calls (schema by id, register, latest version,
//!   compatibility, subjects), each failure sorted into a [`RegistryError`] that says whether to
//!   retry.
//! - `tooling`: `nbo-stream schemas register|check`, for a bank's release pipeline.
//! - `ids`: the run-time side: writer schemas for the decoder (`codec::fetch`), and the ids this
//!   program's own records are framed with (looked up, or registered, at start).
//!
//! Subjects follow TopicNameStrategy: the value schema of topic `t` is subject `t-value`
//! ([`subject_for_topic`]).

mod client;
mod error;
mod ids;
pub mod tooling;

/// The `[schema_registry]` section (URL, basic auth, TLS, timeout): typed with the rest of the
/// configuration, in `config`; named here too, beside the client it sets up.
pub use crate::config::RegistrySettings;
pub use client::{Compatibility, RegisteredSchema, Registry};
pub use error::RegistryError;
pub use ids::{ids_for, ids_of, Side};

/// The subject of a topic's record values under TopicNameStrategy: `<topic>-value`.
pub fn subject_for_topic(topic: &str) -> String {
    format!("{topic}-value")
}
