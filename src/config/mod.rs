//! Typed configuration: defaults → TOML file → `NBO_*` environment variables.
//!
//! Environment variables use `__` between levels: `NBO_KAFKA__BROKERS=host:9092` sets
//! `kafka.brokers`. Every `NBO_*` variable is read as configuration, so an unknown one fails at start
//! like an unknown file field does. Secrets (`customer_key_secret`, `kafka.sasl_password`,
//! `redis.password`, `schema_registry.password`) belong in the environment, never in a file in the
//! repo; they never reach logs. A file that sets `schema_registry.password` is refused.

pub mod api;
mod codec;
pub mod console;
mod kafka;
mod load;
mod operator;
mod registry;
mod rules;
mod secret;
mod state;
mod telemetry;
mod topics;

pub use codec::*;
pub use kafka::*;
pub use load::*;
pub use operator::*;
pub use registry::*;
pub use rules::*;
pub use secret::*;
pub use state::*;
pub use telemetry::*;
pub use topics::*;

use crate::codec::Framing;
use serde::Deserialize;

/// The whole configuration of `nbo-stream run`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Kafka connection, consumer and producer settings.
    pub kafka: KafkaSettings,
    /// Topic names (the defaults are the contract's names).
    pub topics: TopicSettings,
    /// Wire format of input and output records.
    pub codec: CodecSettings,
    /// Feature definitions.
    pub features: FeatureSettings,
    /// Rule documents and hot reload.
    pub rules: RuleSettings,
    /// Where per-customer state lives.
    pub state: StateSettings,
    /// Redis connection (used when `state.backend = "redis"`).
    pub redis: RedisSettings,
    /// Confluent Schema Registry: where a record's schema id finds its writer schema, and where
    /// `schemas register|check` work. No `url`: no registry, static `codec.schema_ids`.
    pub schema_registry: RegistrySettings,
    /// The stateful operator: lateness, skew, decisions.
    pub operator: OperatorSettings,
    /// Metrics/health endpoint and logs.
    pub telemetry: TelemetrySettings,
    /// Key of the HMAC that turns customer ids into Redis keys. Set it only through the
    /// environment variable `NBO_CUSTOMER_KEY_SECRET` (at least 16 bytes); required with Redis.
    pub customer_key_secret: Option<Secret>,
    /// Input channels declared here rather than built in (`[[source]]` blocks, see
    /// [`crate::catalog::SourceSpec`]): a record name, its topic, its reader schema and the
    /// fields that are the event id and time. Features and rules name them like built-ins.
    #[serde(rename = "source")]
    pub sources: Vec<crate::catalog::SourceSpec>,
    /// The input records of this configuration: the built-ins, then `sources` compiled. Not read
    /// from the file: [`Settings::load`] builds it, and [`Settings::declare_sources`] rebuilds it
    /// after `sources` is changed in code. Features, rules and the codec read their records here.
    #[serde(skip)]
    pub catalog: std::sync::Arc<crate::catalog::Catalog>,
    /// The web console (`nbo-stream console`); `run` ignores it.
    pub console: console::ConsoleSettings,
    /// Inbound decisions over HTTP (`nbo-stream api`); `run` ignores it.
    pub api: api::ApiSettings,
}

#[cfg(test)]
mod tests;
