//! Typed configuration: defaults → TOML file → `NBO_*` environment variables.
//!
//! Environment variables use `__` between levels: `NBO_KAFKA__BROKERS=host:9092` sets
//! `kafka.brokers`. Every `NBO_*` variable is read as configuration, so an unknown one fails at start
//! like an unknown file field does. Secrets (`customer_key_secret`, `kafka.sasl_password`,
//! `redis.password`, `schema_registry.password`) belong in the environment, never in a file in the
//! repo; they never reach logs. A file that sets `schema_registry.password` is refused.

pub mod console;

use crate::codec::Framing;
use crate::registry::RegistrySettings;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

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
    /// The web console (`nbo-stream console`); `run` ignores it.
    pub console: console::ConsoleSettings,
}

/// Kafka connection, consumer and producer settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group id; run N copies with the same id to scale out.
    pub group_id: String,
    /// Client id reported to the brokers.
    pub client_id: String,
    /// `security.protocol` (plaintext, ssl, sasl_plaintext, sasl_ssl).
    pub security_protocol: String,
    /// `sasl.mechanism` when SASL is used (e.g. SCRAM-SHA-512).
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password; set through `NBO_KAFKA__SASL_PASSWORD`.
    pub sasl_password: Option<Secret>,
    /// Most records one operator batch takes from one worker queue.
    pub batch_max_events: usize,
    /// Longest a batch waits to fill before it is processed anyway.
    #[serde(with = "humantime_serde")]
    pub batch_linger: Duration,
    /// Operator workers; partition p goes to worker p mod workers (per-partition order).
    pub workers: usize,
    /// Batches that may wait in each worker's queue (backpressure bound).
    pub queue_batches: usize,
    /// How long the poll loop waits for room in a worker's full queue before it pauses that
    /// worker's partitions and goes on polling (see `source::dispatch`). Short stalls (a slow
    /// flush, catching up) only wait; a longer one (Redis or the broker down) pauses, so that the
    /// instance keeps its group membership however long it lasts. Must stay well below
    /// `max.poll.interval.ms` (librdkafka's default 300 s).
    #[serde(with = "humantime_serde")]
    pub pause_after: Duration,
    /// Producer compression codec (none, gzip, snappy, lz4, zstd).
    pub compression: String,
    /// Idempotent producer (`enable.idempotence`); turn off only for brokers without InitProducerId.
    pub idempotence: bool,
    /// Delivery guarantee: `exactly_once` (Kafka transactions and an outbox in the customer
    /// state; needs a broker with transactions) or `at_least_once` (idempotent producer and
    /// deterministic ids: a duplicate after a crash is byte-identical). See `sink`.
    pub delivery: Delivery,
    /// Prefix of the transactional ids (exactly-once): each worker uses `<prefix>-<worker>`. It
    /// must be unique per running instance and stable across its restarts (e.g. the pod name);
    /// default `<group_id>-<client_id>`.
    pub transactional_id: Option<String>,
    /// Exactly-once: also commit each batch's offsets with a plain consumer commit right after its
    /// transaction commits. Only for brokers whose transactional offset commit is a stub, such as
    /// librdkafka's mock cluster (the demo and tests); never needed with Kafka, where the
    /// transaction carries the offsets.
    pub mirror_transaction_offsets: bool,
    /// Longest a transaction may stay open before the broker aborts it (`transaction.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
    /// On a revoke, how long to wait for the batch in progress to finish (flush, produce, commit)
    /// before the partitions are given up.
    #[serde(with = "humantime_serde")]
    pub revoke_timeout: Duration,
    /// On SIGTERM/SIGINT, the bound on draining (flush state, produce, commit) before the process
    /// gives up and exits non-zero; a second signal exits at once.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Raw librdkafka options applied to consumer and producer last (escape hatch for SREs).
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            group_id: "nbo-stream".into(),
            client_id: "nbo-stream".into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            // Large enough to amortise one Redis round trip and one produce flush over many events.
            batch_max_events: 2000,
            batch_linger: Duration::from_millis(20),
            workers: 2,
            queue_batches: 4,
            pause_after: Duration::from_secs(2),
            compression: "lz4".into(),
            idempotence: true,
            // At-least-once works on every Kafka-protocol broker; production.toml turns on
            // exactly-once for brokers with transactions.
            delivery: Delivery::AtLeastOnce,
            transactional_id: None,
            mirror_transaction_offsets: false,
            transaction_timeout: Duration::from_secs(60),
            revoke_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            options: BTreeMap::new(),
        }
    }
}

/// The delivery guarantee of offers, alerts and audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Transactions: outputs and consumer offsets commit together; read_committed consumers see
    /// each record once.
    ExactlyOnce,
    /// Idempotent producer; after a crash a record may repeat, byte-identical.
    AtLeastOnce,
}

impl KafkaSettings {
    /// The transactional id of worker `index` (exactly-once).
    pub fn transactional_id(&self, index: usize) -> String {
        let prefix = self
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.group_id, self.client_id));
        format!("{prefix}-{index}")
    }
}

/// Topic names. Inputs must be co-partitioned (same partition count, keyed by customer id).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicSettings {
    /// `TransactionEvent` input.
    pub transactions: String,
    /// `ClickstreamEvent` input.
    pub clickstream: String,
    /// `AppEvent` input.
    pub app: String,
    /// `SocialEvent` input.
    pub social: String,
    /// `FeedbackEvent` input.
    pub feedback: String,
    /// `PartnerEvent` input.
    pub partner: String,
    /// `CustomerProfile` input (compacted).
    pub customer_profile: String,
    /// `OfferResponse` input.
    pub offer_responses: String,
    /// `ErasureRequest` input.
    pub erasure_requests: String,
    /// Rule documents (compacted; used by hot reload).
    pub rules: String,
    /// `NextBestOffer` output.
    pub offers: String,
    /// `RiskAlert` output.
    pub alerts: String,
    /// `DecisionAudit` output.
    pub decisions_audit: String,
    /// `DeadLetter` output.
    pub dead_letters: String,
}

impl Default for TopicSettings {
    fn default() -> Self {
        Self {
            transactions: "bank.transactions.v1".into(),
            clickstream: "bank.clickstream.v1".into(),
            app: "bank.app.v1".into(),
            social: "bank.social.v1".into(),
            feedback: "bank.feedback.v1".into(),
            partner: "bank.partner.v1".into(),
            customer_profile: "bank.customer-profile.v1".into(),
            offer_responses: "bank.offer-responses.v1".into(),
            erasure_requests: "bank.erasure-requests.v1".into(),
            rules: "bank.rules.v1".into(),
            offers: "bank.offers.v1".into(),
            alerts: "bank.alerts.v1".into(),
            decisions_audit: "bank.decisions-audit.v1".into(),
            dead_letters: "bank.dead-letters.v1".into(),
        }
    }
}

impl TopicSettings {
    /// Input topic names in [`crate::event::EventKind::ALL`] order.
    pub fn inputs(&self) -> [&str; 9] {
        [
            &self.transactions,
            &self.clickstream,
            &self.app,
            &self.social,
            &self.feedback,
            &self.partner,
            &self.customer_profile,
            &self.offer_responses,
            &self.erasure_requests,
        ]
    }

    /// Every topic this program reads or writes.
    pub fn all(&self) -> Vec<&str> {
        let mut all = self.inputs().to_vec();
        all.extend([
            self.rules.as_str(),
            &self.offers,
            &self.alerts,
            &self.decisions_audit,
            &self.dead_letters,
        ]);
        all
    }
}

/// Wire format of records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodecSettings {
    /// Framing of input records unless overridden per topic: `confluent` or `plain`.
    pub input_framing: Framing,
    /// Per input topic name, a framing that differs from `input_framing`.
    pub framing_overrides: BTreeMap<String, Framing>,
    /// Framing of the outputs this program writes.
    pub output_framing: Framing,
    /// Schema Registry id of each record name (e.g. `TransactionEvent = 101`); unlisted records
    /// use the ids in `src/codec/schemas.rs`. A record whose id differs is dead-lettered.
    pub schema_ids: BTreeMap<String, u32>,
    /// Largest accepted amount, minor units.
    pub max_amount_minor: i64,
    /// Longest accepted string field, bytes.
    pub max_string_len: usize,
}

impl Default for CodecSettings {
    fn default() -> Self {
        let limits = crate::codec::Validation::default();
        Self {
            input_framing: Framing::Confluent,
            framing_overrides: BTreeMap::new(),
            output_framing: Framing::Confluent,
            schema_ids: BTreeMap::new(),
            max_amount_minor: limits.max_amount_minor,
            max_string_len: limits.max_string_len,
        }
    }
}

/// Feature definitions.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FeatureSettings {
    /// A features file (see `features/bank.toml`); unset = the starter set built into the binary.
    /// Adding or changing a feature is a change to this file and a restart, no release.
    pub file: Option<std::path::PathBuf>,
}

impl FeatureSettings {
    /// Loads and compiles the configured features.
    pub fn load(&self) -> Result<crate::features::FeatureSet, crate::features::spec::FeatureError> {
        crate::features::spec::load(self.file.as_deref())
    }
}

/// Rule documents: where the rules a process starts with come from, and whether it follows the
/// rules topic for changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuleSettings {
    /// A rule document file or folder (see `rules/`); unset = the starter rules built into the
    /// binary. These are the rules before the rules topic is read.
    pub path: Option<std::path::PathBuf>,
    /// Follow `topics.rules` and apply its documents without a restart (hot reload). On start the
    /// topic is read to its end before any event is processed.
    pub watch_topic: bool,
    /// How long start-up waits to read the rules topic to its end before failing.
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
}

impl Default for RuleSettings {
    fn default() -> Self {
        Self {
            path: None,
            watch_topic: true,
            startup_timeout: Duration::from_secs(30),
        }
    }
}

impl RuleSettings {
    /// The documents a process starts with (from `path`, or the starter set).
    pub fn documents(
        &self,
    ) -> Result<Vec<crate::rules::document::RuleDocument>, Vec<crate::rules::RuleError>> {
        crate::rules::load::documents(self.path.as_deref())
    }
}

/// Which state store backs the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// Redis (or Redis Cluster): durable, shared by all instances.
    Redis,
    /// In process (dashmap): for the demo and tests; lost on exit.
    Memory,
}

/// Where per-customer state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateSettings {
    /// `redis` or `memory`.
    pub backend: StateBackend,
    /// Most customers kept in the in-process cache before clean entries are evicted.
    pub cache_max_customers: usize,
    /// Added to the longest feature window to give every Redis key's TTL.
    #[serde(with = "humantime_serde")]
    pub ttl_margin: Duration,
}

impl Default for StateSettings {
    fn default() -> Self {
        Self {
            backend: StateBackend::Redis,
            cache_max_customers: 500_000,
            ttl_margin: Duration::from_secs(24 * 3600),
        }
    }
}

/// Redis connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:port/db` or `rediss://` for TLS. For a cluster, any node.
    pub url: String,
    /// Use the Redis Cluster protocol.
    pub cluster: bool,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password; set through `NBO_REDIS__PASSWORD`.
    pub password: Option<Secret>,
    /// Timeout of one Redis round trip before it counts as failed and is retried.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            cluster: false,
            username: None,
            password: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The stateful operator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperatorSettings {
    /// Rules fire only for events at most this much older than the newest event seen for the
    /// customer; older events still update features.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Events further than this past the wall clock are dead-lettered.
    #[serde(with = "humantime_serde")]
    pub max_future_skew: Duration,
    /// How long an offer stays valid (`expires_at - decided_at`).
    #[serde(with = "humantime_serde")]
    pub offer_validity: Duration,
    /// Contact policy: most offers per customer per `contact_period`.
    pub max_offers_per_period: u32,
    /// Contact policy: the period of `max_offers_per_period`.
    #[serde(with = "humantime_serde")]
    pub contact_period: Duration,
    /// No marketing offer within this long after a HIGH or CRITICAL alert.
    #[serde(with = "humantime_serde")]
    pub risk_quiet_period: Duration,
    /// Contact policy: after a customer declines an offer, no offer of the same product family
    /// for this long.
    #[serde(with = "humantime_serde")]
    pub decline_suppression: Duration,
    /// Contact policy: no marketing offer within this long after a complaint or a negative
    /// social post about the bank.
    #[serde(with = "humantime_serde")]
    pub complaint_quiet_period: Duration,
    /// A social post or comment mentioning the bank with sentiment at or below this (-1..1)
    /// counts as negative for `complaint_quiet_period`.
    pub negative_sentiment_threshold: f64,
    /// Percentage (0..=100) of customers held out of each offer rule as a control group.
    pub control_group_percent: u8,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        Self {
            allowed_lateness: Duration::from_secs(3600),
            max_future_skew: Duration::from_secs(300),
            offer_validity: Duration::from_secs(7 * 24 * 3600),
            max_offers_per_period: 3,
            contact_period: Duration::from_secs(30 * 24 * 3600),
            risk_quiet_period: Duration::from_secs(7 * 24 * 3600),
            // A decline is a clear answer: three months before the same product comes back.
            decline_suppression: Duration::from_secs(90 * 24 * 3600),
            // Two weeks: long enough for a complaint to be handled before marketing resumes.
            complaint_quiet_period: Duration::from_secs(14 * 24 * 3600),
            negative_sentiment_threshold: -0.5,
            // 5%: enough to measure uplift at bank scale without losing much revenue.
            control_group_percent: 5,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Metrics/health endpoint and logs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: String,
    /// `human` or `json`.
    pub log_format: LogFormat,
    /// tracing filter, e.g. `info` or `nbo_stream=debug,rdkafka=warn`.
    pub log_level: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            // 9464: the port OpenTelemetry's Prometheus exporter convention uses.
            listen: "0.0.0.0:9464".into(),
            log_format: LogFormat::Human,
            log_level: "info".into(),
        }
    }
}

/// A configuration that cannot be used; says which field and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment could not be read or did not fit the types.
    #[error("configuration {source_name}: {message}")]
    Load {
        /// File path or "environment".
        source_name: String,
        /// What was wrong, naming the field.
        message: String,
    },
    /// A field's value breaks a rule.
    #[error("configuration field `{field}`: {reason}")]
    Invalid {
        /// Dotted field path.
        field: &'static str,
        /// Why it is refused.
        reason: String,
    },
}

/// Whether the TOML file at `path` holds `schema_registry.password` (a secret that belongs in
/// the environment). A file that does not parse is left to the loader to report.
fn file_sets_registry_password(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| table.get("schema_registry")?.get("password").cloned())
        .is_some()
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl Settings {
    /// Loads defaults, then `path` (TOML) if given, then `NBO_*` variables, and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        let source_name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "environment".into());
        if let Some(path) = path {
            if !path.exists() {
                return Err(ConfigError::Load {
                    source_name,
                    message: "file not found; pass an existing TOML file (see deploy/config/)"
                        .into(),
                });
            }
            if file_sets_registry_password(path) {
                return Err(invalid(
                    "schema_registry.password",
                    format!("{source_name} sets it; remove it from the file and set NBO_SCHEMA_REGISTRY__PASSWORD"),
                ));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        builder = builder.add_source(
            config::Environment::with_prefix("NBO")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true),
        );
        let settings: Settings =
            builder
                .build()
                .and_then(|c| c.try_deserialize())
                .map_err(|e| ConfigError::Load {
                    source_name: source_name.clone(),
                    message: e.to_string(),
                })?;
        // Declared sources first: the features file and rules checked by `validate` name them.
        crate::catalog::register_all(&settings.sources)
            .map_err(|e| invalid("source", e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Cross-field rules. Every refusal names the field and the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let taken = self.topics.all();
        if let Some(s) = self
            .sources
            .iter()
            .find(|s| taken.contains(&s.topic.as_str()))
        {
            return Err(invalid(
                "source.topic",
                format!(
                    "{:?} ({}) is already a built-in input or output topic",
                    s.topic, s.record
                ),
            ));
        }
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must list at least one host:port"));
        }
        if k.group_id.trim().is_empty() {
            return Err(invalid("kafka.group_id", "must not be empty"));
        }
        if k.batch_max_events == 0 || k.batch_max_events > 100_000 {
            return Err(invalid(
                "kafka.batch_max_events",
                "must be within 1..=100000",
            ));
        }
        if k.workers == 0 || k.workers > 256 {
            return Err(invalid("kafka.workers", "must be within 1..=256"));
        }
        if k.delivery == Delivery::ExactlyOnce && !k.idempotence {
            return Err(invalid(
                "kafka.idempotence",
                "exactly_once delivery needs the idempotent producer",
            ));
        }
        if k.revoke_timeout.is_zero() || k.shutdown_timeout.is_zero() {
            return Err(invalid(
                "kafka.revoke_timeout",
                "revoke_timeout and shutdown_timeout must be positive",
            ));
        }
        if k.options.contains_key("partition.assignment.strategy") {
            return Err(invalid(
                "kafka.options",
                "partition.assignment.strategy is fixed to range: it keeps partition p of every co-partitioned input topic on one instance",
            ));
        }
        if k.queue_batches == 0 {
            return Err(invalid("kafka.queue_batches", "must be at least 1"));
        }
        if k.pause_after < Duration::from_millis(10) || k.pause_after > Duration::from_secs(60) {
            return Err(invalid(
                "kafka.pause_after",
                "must be within 10ms..=60s (and well below max.poll.interval.ms)",
            ));
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&k.compression.as_str()) {
            return Err(invalid(
                "kafka.compression",
                "must be one of none, gzip, snappy, lz4, zstd",
            ));
        }
        if k.security_protocol.starts_with("sasl")
            && (k.sasl_mechanism.is_none() || k.sasl_username.is_none())
        {
            return Err(invalid(
                "kafka.sasl_mechanism",
                "SASL needs sasl_mechanism and sasl_username",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for topic in self.topics.all() {
            if topic.trim().is_empty() {
                return Err(invalid("topics", "no topic name may be empty"));
            }
            if !seen.insert(topic) {
                return Err(invalid("topics", format!("topic {topic} is named twice")));
            }
        }
        for name in self.codec.framing_overrides.keys() {
            if !self.topics.inputs().contains(&name.as_str()) {
                return Err(invalid(
                    "codec.framing_overrides",
                    format!("{name} is not an input topic"),
                ));
            }
        }
        for record in self.codec.schema_ids.keys() {
            if crate::codec::schemas::by_record(record).is_none() {
                return Err(invalid(
                    "codec.schema_ids",
                    format!("{record} is not a record of the contract"),
                ));
            }
        }
        if self.codec.max_amount_minor <= 0 {
            return Err(invalid("codec.max_amount_minor", "must be positive"));
        }
        if self.state.backend == StateBackend::Redis {
            if !(self.redis.url.starts_with("redis://") || self.redis.url.starts_with("rediss://"))
            {
                return Err(invalid(
                    "redis.url",
                    "must start with redis:// or rediss://",
                ));
            }
            match &self.customer_key_secret {
                Some(secret) if secret.expose().len() >= 16 => {}
                _ => {
                    return Err(invalid(
                        "customer_key_secret",
                        "set NBO_CUSTOMER_KEY_SECRET (at least 16 bytes) so Redis never holds raw customer ids",
                    ))
                }
            }
        }
        self.schema_registry
            .check()
            .map_err(|(field, reason)| invalid(field, reason))?;
        if self.state.cache_max_customers == 0 {
            return Err(invalid("state.cache_max_customers", "must be at least 1"));
        }
        let features = self
            .features
            .load()
            .map_err(|e| invalid("features.file", e.to_string()))?;
        if let Err(errors) = crate::rules::load::rule_set(self.rules.path.as_deref(), &features) {
            return Err(invalid("rules.path", crate::rules::load::describe(&errors)));
        }
        let longest = Duration::from_millis(features.longest_window_ms() as u64);
        if self.operator.allowed_lateness > longest + self.state.ttl_margin {
            return Err(invalid(
                "operator.allowed_lateness",
                "must not exceed the state TTL (longest window + state.ttl_margin)",
            ));
        }
        if self.operator.max_offers_per_period == 0 {
            return Err(invalid(
                "operator.max_offers_per_period",
                "must be at least 1",
            ));
        }
        if !(-1.0..=1.0).contains(&self.operator.negative_sentiment_threshold) {
            return Err(invalid(
                "operator.negative_sentiment_threshold",
                "must be within -1..=1 (the sentiment scale of bank.social.v1)",
            ));
        }
        if self.operator.control_group_percent > 100 {
            return Err(invalid(
                "operator.control_group_percent",
                "must be within 0..=100",
            ));
        }
        if self
            .telemetry
            .listen
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return Err(invalid(
                "telemetry.listen",
                "must be an address like 0.0.0.0:9464",
            ));
        }
        Ok(())
    }

    /// Every input topic with the kind of record it carries: the built-ins in
    /// [`EventKind::ALL`] order, then the declared sources.
    pub fn input_topics(&self) -> Vec<(String, crate::event::EventKind)> {
        let mut out: Vec<_> = self
            .topics
            .inputs()
            .into_iter()
            .map(str::to_string)
            .zip(crate::event::EventKind::ALL)
            .collect();
        for s in &self.sources {
            out.push((s.topic.clone(), crate::event::EventKind::Declared(s.id)));
        }
        out
    }

    /// Input topic names by [`crate::event::EventKind::index`] (empty where no kind is).
    pub fn input_topic_table(&self) -> Vec<String> {
        let mut table = vec![String::new(); crate::event::EventKind::TABLE_LEN];
        for (topic, kind) in self.input_topics() {
            table[kind.index()] = topic;
        }
        table
    }

    /// The codec options these settings describe.
    pub fn codec_options(&self) -> crate::codec::CodecOptions {
        let mut input_framing = [self.codec.input_framing; 9];
        for (i, topic) in self.topics.inputs().iter().enumerate() {
            if let Some(framing) = self.codec.framing_overrides.get(*topic) {
                input_framing[i] = *framing;
            }
        }
        crate::codec::CodecOptions {
            registry: self.schema_registry.url.is_some(),
            input_framing,
            declared: crate::catalog::all()
                .into_iter()
                .filter(|d| self.sources.iter().any(|s| s.id == d.id))
                .map(|d| {
                    let framing = self.codec.framing_overrides.get(d.topic);
                    (d, framing.copied().unwrap_or(self.codec.input_framing))
                })
                .collect(),
            output_framing: self.codec.output_framing,
            schema_ids: self
                .codec
                .schema_ids
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            validation: crate::codec::Validation {
                max_amount_minor: self.codec.max_amount_minor,
                max_future_skew_ms: self.operator.max_future_skew.as_millis() as i64,
                max_string_len: self.codec.max_string_len,
            },
        }
    }
}

#[cfg(test)]
mod tests;
