//! Topic specs (`topics/*.toml`) and `nbo-stream topics create`: creates the missing topics through
//! the admin API, leaves existing ones alone, and reports what it did.

use crate::config::TopicSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// One topic's spec.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name (the contract's name; renamed by `[topics]` in the config).
    pub name: String,
    /// input, output or control.
    pub role: String,
    /// Partition count (inputs must all have the same).
    pub partitions: i32,
    /// Replication factor (capped at the broker count when creating).
    pub replication_factor: i32,
    /// `delete` or `compact`.
    pub cleanup_policy: String,
    /// Retention: a duration like `7d`, or `forever`.
    pub retention: String,
    /// What the key holds.
    pub key: String,
    /// Schema of the value.
    pub value_schema: String,
}

/// A spec that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    /// File problems.
    #[error("topic spec {file}: {reason}")]
    Spec {
        /// File.
        file: String,
        /// Why.
        reason: String,
    },
    /// Broker problems.
    #[error("kafka admin: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

macro_rules! embedded {
    ($($file:literal),+ $(,)?) => { &[$(($file, include_str!(concat!("../topics/", $file)))),+] };
}

/// The specs compiled into the binary (the same files as `topics/`).
const EMBEDDED: &[(&str, &str)] = embedded!(
    "transactions.toml",
    "clickstream.toml",
    "app.toml",
    "social.toml",
    "feedback.toml",
    "partner.toml",
    "customer-profile.toml",
    "offer-responses.toml",
    "erasure-requests.toml",
    "product-openings.toml",
    "inbound-contacts.toml",
    "alert-outcomes.toml",
    "rules.toml",
    "rules-history.toml",
    "offers.toml",
    "alerts.toml",
    "decisions-audit.toml",
    "dead-letters.toml",
);

fn parse(file: &str, text: &str) -> Result<TopicSpec, TopicsError> {
    let spec: TopicSpec = toml::from_str(text).map_err(|e| TopicsError::Spec {
        file: file.into(),
        reason: e.to_string(),
    })?;
    spec.retention_ms().map_err(|reason| TopicsError::Spec {
        file: file.into(),
        reason,
    })?;
    if !["delete", "compact"].contains(&spec.cleanup_policy.as_str()) {
        return Err(TopicsError::Spec {
            file: file.into(),
            reason: "cleanup_policy must be delete or compact".into(),
        });
    }
    if spec.partitions < 1 || spec.replication_factor < 1 {
        return Err(TopicsError::Spec {
            file: file.into(),
            reason: "partitions and replication_factor must be at least 1".into(),
        });
    }
    Ok(spec)
}

impl TopicSpec {
    /// `retention.ms` (-1 for forever).
    pub fn retention_ms(&self) -> Result<i64, String> {
        if self.retention == "forever" {
            return Ok(-1);
        }
        humantime::parse_duration(&self.retention)
            .map(|d| d.as_millis() as i64)
            .map_err(|e| format!("retention {:?}: {e}", self.retention))
    }
}

/// The embedded specs.
pub fn embedded() -> Result<Vec<TopicSpec>, TopicsError> {
    EMBEDDED
        .iter()
        .map(|(file, text)| parse(file, text))
        .collect()
}

/// The specs in a folder (`*.toml`), sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<TopicSpec>, TopicsError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| TopicsError::Spec {
            file: dir.display().to_string(),
            reason: e.to_string(),
        })?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| TopicsError::Spec {
                file: p.display().to_string(),
                reason: e.to_string(),
            })?;
            parse(&p.display().to_string(), &text)
        })
        .collect()
}

/// Renames specs whose name is a contract default to the configured name.
pub fn apply_names(specs: &mut [TopicSpec], configured: &TopicSettings) {
    let defaults = TopicSettings::default();
    for spec in specs {
        if let Some(i) = defaults.all().iter().position(|d| *d == spec.name) {
            spec.name = configured.all()[i].to_string();
        }
    }
}

/// Adds a topic for each declared source (`[[source]]`) that the specs do not name: shaped as
/// the transactions topic (input, same partition count: declared sources are joined per customer,
/// so they must be co-partitioned with the built-in inputs), its value the source's schema.
pub fn add_declared(specs: &mut Vec<TopicSpec>, sources: &[crate::catalog::SourceSpec]) {
    let Some(template) = specs.iter().find(|s| s.role == "input").cloned() else {
        return;
    };
    for source in sources {
        if specs.iter().any(|s| s.name == source.topic) {
            continue;
        }
        specs.push(TopicSpec {
            name: source.topic.clone(),
            key: "customer_id (UTF-8)".into(),
            value_schema: source.schema.display().to_string(),
            ..template.clone()
        });
    }
}

/// What `create` did for one topic.
#[derive(Debug, Clone, PartialEq)]
pub enum TopicAction {
    /// Created with this many partitions and this replication factor.
    Created(i32, i32),
    /// Already there: left alone.
    Exists,
    /// The broker refused it.
    Failed(String),
}

/// Creates the missing topics; `partitions` overrides every spec's partition count when given.
pub async fn create(
    client: &ClientConfig,
    specs: &[TopicSpec],
    partitions: Option<i32>,
) -> Result<Vec<(String, TopicAction)>, TopicsError> {
    let probe: BaseConsumer = client.create()?;
    let metadata = probe.fetch_metadata(None, Duration::from_secs(10))?;
    let brokers = metadata.brokers().len().max(1) as i32;
    let existing: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_string())
        .collect();
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let mut report = Vec::new();
    let mut new_topics = Vec::new();
    let mut settings: Vec<(String, String)> = Vec::new();
    for spec in specs {
        if existing.contains(&spec.name) {
            report.push((spec.name.clone(), TopicAction::Exists));
            continue;
        }
        let retention = spec.retention_ms().unwrap_or(-1).to_string();
        settings.push((spec.cleanup_policy.clone(), retention));
    }
    let to_create: Vec<&TopicSpec> = specs
        .iter()
        .filter(|s| !existing.contains(&s.name))
        .collect();
    for (spec, (cleanup, retention)) in to_create.iter().zip(&settings) {
        let replication = spec.replication_factor.min(brokers);
        let parts = partitions.unwrap_or(spec.partitions);
        new_topics.push(
            NewTopic::new(&spec.name, parts, TopicReplication::Fixed(replication))
                .set("cleanup.policy", cleanup)
                .set("retention.ms", retention),
        );
    }
    if !new_topics.is_empty() {
        let results = admin
            .create_topics(
                &new_topics,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await?;
        for (result, spec) in results.into_iter().zip(&to_create) {
            let action = match result {
                Ok(_) => TopicAction::Created(
                    partitions.unwrap_or(spec.partitions),
                    spec.replication_factor.min(brokers),
                ),
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {
                    TopicAction::Exists
                }
                Err((_, code)) => TopicAction::Failed(code.to_string()),
            };
            report.push((spec.name.clone(), action));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_specs_cover_every_topic_of_the_contract() {
        let specs = embedded().unwrap();
        let defaults = TopicSettings::default();
        for name in defaults.all() {
            assert!(specs.iter().any(|s| s.name == name), "no spec for {name}");
        }
        let inputs: Vec<_> = specs
            .iter()
            .filter(|s| s.role == "input")
            .map(|s| s.partitions)
            .collect();
        assert!(
            inputs.windows(2).all(|w| w[0] == w[1]),
            "inputs must be co-partitioned"
        );
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topics");
        let mut from_dir = load_dir(&dir).unwrap();
        let mut embedded = specs;
        from_dir.sort_by(|a, b| a.name.cmp(&b.name));
        embedded.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(from_dir, embedded, "topics/ and the embedded specs differ");
    }

    #[test]
    fn declared_sources_get_an_input_topic_co_partitioned_with_the_others() {
        let mut specs = embedded().unwrap();
        let before = specs.len();
        let source = crate::catalog::SourceSpec {
            record: "WearableEvent".into(),
            topic: "bank.iot.v1".into(),
            schema: "examples/iot/wearable_event.avsc".into(),
            id: 16,
            event_id: "event_id".into(),
            event_time: "event_time".into(),
        };
        add_declared(&mut specs, std::slice::from_ref(&source));
        add_declared(&mut specs, std::slice::from_ref(&source));
        assert_eq!(specs.len(), before + 1, "added once");
        let iot = specs.last().unwrap();
        let transactions = specs
            .iter()
            .find(|s| s.name == "bank.transactions.v1")
            .unwrap();
        assert_eq!(iot.name, "bank.iot.v1");
        assert_eq!(iot.role, "input");
        assert_eq!(iot.partitions, transactions.partitions);
        assert_eq!(iot.value_schema, "examples/iot/wearable_event.avsc");
    }
}
