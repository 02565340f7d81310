//! Builds and wires the stages: source → decode → operator → state → sinks, in three steps:
//! `build` (clients, rules, the workers' context), `poll` (the poll loop) and `drain` (shutdown order).
//!
//! Shutdown (on the `shutdown` signal): stop polling → close the worker queues so the workers drain
//! what they hold (produce, flush state, store offsets) → flush the producer → commit stored offsets
//! synchronously → return. A worker error (a produce that failed for good) stops the pipeline with
//! that error and nothing past its batch is committed.

mod build;
mod drain;
mod poll;

use crate::codec::Codec;
use crate::config::Settings;
use crate::source::Consumer;
use crate::state::StateStore;
use crate::telemetry::http::Health;
use crate::worker::{self, OffsetStore, Progress};
use rdkafka::consumer::{CommitMode, Consumer as _};
use std::sync::Arc;
use tokio::sync::watch;

/// Why the pipeline could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Kafka client could not be created or subscribed.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A schema does not parse.
    #[error(transparent)]
    Schema(#[from] crate::codec::SchemaError),
    /// The features file does not compile.
    #[error(transparent)]
    Features(#[from] crate::features::spec::FeatureError),
    /// The rule documents the process starts with do not build (every error, one per line).
    #[error("rules:\n{0}")]
    Rules(String),
    /// The rules topic could not be read at start.
    #[error(transparent)]
    RulesTopic(#[from] crate::rules_topic::watch::WatchError),
    /// A worker stopped on an unrecoverable error.
    #[error(transparent)]
    Worker(#[from] worker::WorkerError),
    /// A worker panicked (a defect); nothing past its last completed batch was committed.
    #[error("a worker stopped unexpectedly: {0}")]
    WorkerPanic(String),
    /// An assignment gave this instance different partitions of the input topics (their partition
    /// counts differ): processing it could give a customer's state two writers.
    #[error("{0}")]
    NotCoPartitioned(String),
    /// The Schema Registry could not give the ids of this program's output schemas at start.
    #[error("schema registry: the ids of the output schemas could not be obtained: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    /// The learned models could not be read from the state store at start.
    #[error(
        "the learned offer models could not be read at start: {0} (they are kept beside the \
         customers' state: check that the state store answers)"
    )]
    Models(crate::state::StateError),
    /// Missing secret.
    #[error("customer_key_secret is not set: export NBO_CUSTOMER_KEY_SECRET (at least 16 bytes)")]
    NoSecret,
}

struct ConsumerOffsets(Arc<Consumer>);

impl OffsetStore for ConsumerOffsets {
    fn store(&self, topic: &str, partition: i32, offset: i64) {
        // rd_kafka_offset_store stores offset+1, the next record to read. It fails only for a
        // partition this instance no longer owns; its new owner replays from the last commit.
        if let Err(e) = self.0.store_offset(topic, partition, offset) {
            tracing::debug!(topic, partition, error = %e, "offset not stored (partition revoked)");
        }
    }

    fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        self.0.group_metadata()
    }

    fn commit(&self, offsets: &rdkafka::TopicPartitionList) -> rdkafka::error::KafkaResult<()> {
        self.0.commit(offsets, CommitMode::Sync)
    }
}

/// The parts a run needs that differ between `run`, `demo` and tests.
pub struct Dependencies {
    /// State store.
    pub store: Arc<dyn StateStore>,
    /// Readiness flag served on `/readyz`.
    pub health: Health,
    /// Running totals.
    pub progress: Arc<Progress>,
}

/// The codec, and with a Schema Registry the fetcher of writer schemas: outputs are framed with
/// the ids the registry gives their schemas (looked up, or registered, once at start), and so
/// are the input records named in `writes` that this process writes too (the API writes
/// `InboundContact`).
pub async fn codec_and_registry(
    settings: &Settings,
    writes: &[&str],
) -> Result<(Arc<Codec>, Option<Arc<crate::codec::fetch::Fetcher>>), PipelineError> {
    let mut options = settings.codec_options();
    if settings.schema_registry.url.is_none() {
        return Ok((Arc::new(Codec::new(&options)?), None));
    }
    let registry = crate::registry::Registry::new(&settings.schema_registry)?;
    let outputs: Vec<_> = crate::registry::tooling::local_schemas(&settings.topics)
        .into_iter()
        .filter(|s| {
            writes.contains(&s.record.as_str())
                || crate::event::EventKind::ALL
                    .iter()
                    .all(|k| k.record_name() != s.record)
        })
        .collect();
    let ids = crate::registry::ids_of(&registry, &outputs).await?;
    tracing::info!(registry = registry.url(), ids = ?ids, "output schema ids from the schema registry");
    options.schema_ids.extend(ids);
    let fetcher = crate::codec::fetch::Fetcher::new(Arc::new(registry));
    Ok((Arc::new(Codec::new(&options)?), Some(Arc::new(fetcher))))
}

/// Runs the pipeline until `shutdown` turns true, then drains and commits: build → poll loop →
/// drain (see each module).
pub async fn run(
    settings: &Settings,
    deps: Dependencies,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let health = deps.health.clone();
    let built = build::build(settings, deps, &shutdown).await?;
    let polled = poll::poll(settings, &built, &health, &mut shutdown).await;
    drain::drain(built, polled, &health).await
}
