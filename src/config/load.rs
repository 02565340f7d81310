//! Loading and validating: defaults → TOML file → `NBO_*` variables, then every field checked,
//! each error naming the field and the reason.

use super::*;
use std::path::Path;
use std::time::Duration;

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
        let mut settings = settings;
        // Declared sources first: the features file and rules checked by `validate` name them.
        settings.declare_sources()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Builds [`Settings::catalog`] from [`Settings::sources`], refusing a bad declaration.
    pub fn declare_sources(&mut self) -> Result<(), ConfigError> {
        let catalog = crate::catalog::Catalog::declare(&self.sources)
            .map_err(|e| invalid("source", e.to_string()))?;
        self.catalog = std::sync::Arc::new(catalog);
        Ok(())
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
        if k.max_idle > Duration::from_secs(10) {
            return Err(invalid(
                "kafka.max_idle",
                "must be at most 10s (a longer wait holds every partition group behind one slow partition)",
            ));
        }
        if k.align_max_buffered == 0 || k.align_max_buffered > 10_000_000 {
            return Err(invalid(
                "kafka.align_max_buffered",
                "must be in 1..=10000000 records",
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
        if !crate::state::WRITE_FORMATS.contains(&self.state.write_format) {
            return Err(invalid(
                "state.write_format",
                "must be 7 (what releases from before format 8 read: the first step of an upgrade) or 8",
            ));
        }
        if self.state.checkpoint_max_dirty == 0 {
            return Err(invalid("state.checkpoint_max_dirty", "must be at least 1"));
        }
        if self.state.checkpoint_interval > std::time::Duration::from_secs(300) {
            return Err(invalid(
                "state.checkpoint_interval",
                "must be at most 5m: a crash replays one interval, and exactly-once outputs wait for it",
            ));
        }
        let features = self
            .features
            .load_in(&self.catalog)
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
        if self.operator.uplift.window.is_zero() {
            return Err(invalid(
                "operator.uplift.window",
                "must be greater than 0 (how long after an offer a product opened counts)",
            ));
        }
        if self
            .operator
            .control_group_period
            .is_some_and(|p| p.as_millis() < 1_000)
        {
            return Err(invalid(
                "operator.control_group_period",
                "must be at least 1s, or left out for a membership that never rotates",
            ));
        }
        let learning = &self.operator.learning;
        if !(learning.ramp_start > 0.0 && learning.ramp_start <= 1.0) {
            return Err(invalid(
                "operator.learning.ramp_start",
                "must be a share above 0 and at most 1 (0.02: a new offer starts with 2% of its customers)",
            ));
        }
        if !(learning.prior_evidence.is_finite() && learning.prior_evidence > 0.0) {
            return Err(invalid(
                "operator.learning.prior_evidence",
                "must be a positive number of responses",
            ));
        }
        if !(0.0..=1.0).contains(&learning.exploration) {
            return Err(invalid(
                "operator.learning.exploration",
                "must be a share within 0..=1",
            ));
        }
        if learning.refresh.is_zero() {
            return Err(invalid(
                "operator.learning.refresh",
                "must be longer than 0",
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
    /// [`crate::event::EventKind::ALL`] order, then the declared sources.
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
        let mut input_framing = [self.codec.input_framing; crate::event::BUILTIN_KINDS];
        for (i, topic) in self.topics.inputs().iter().enumerate() {
            if let Some(framing) = self.codec.framing_overrides.get(*topic) {
                input_framing[i] = *framing;
            }
        }
        crate::codec::CodecOptions {
            registry: self.schema_registry.url.is_some(),
            input_framing,
            declared: self
                .catalog
                .declared()
                .iter()
                .map(|d| {
                    let framing = self.codec.framing_overrides.get(d.topic);
                    (
                        d.clone(),
                        framing.copied().unwrap_or(self.codec.input_framing),
                    )
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
