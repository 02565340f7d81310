//! An operator worker: owns the partitions `p` with `p mod workers == index` and processes their
//! batches one after another, so each partition's records are applied in offset order.
//!
//! Per batch, in this order (the order is what makes replays safe, see `sink`):
//! - at-least-once: decode → load missing customers (one round trip) → apply events → produce and
//!   await acks → flush dirty customers (one round trip, retried until it succeeds) → store offsets;
//! - exactly-once: decode → load → apply (decisions also kept in each customer's outbox) → flush
//!   (state, applied offsets and outbox in one atomic write per customer) → one transaction with
//!   the batch's records and its consumer offsets → commit.

mod batch;
mod cache;
mod checkpoint;
mod delivery;
mod transaction;

pub use batch::{apply_decoded, process_batch, Decoded};
pub use cache::{each_prefetched, Cache, Cached, Shard};
pub use checkpoint::FULL_REWRITE;
pub use delivery::DEAD_LETTER_MAX_BYTES;

use crate::codec::Codec;
use crate::event::EventKind;
use crate::operator::Operator;
use crate::sink::Sink;
use crate::state::{KeyHasher, StateStore};
use crate::telemetry::http::Health;
use rdkafka::message::OwnedMessage;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records of one batch, in arrival order, with the input kind of each, and the assignment
/// generation they were polled under (a batch of an older generation is discarded, see
/// `source::SourceContext::pre_rebalance`).
#[derive(Default)]
pub struct Batch {
    /// Assignment generation at poll time.
    pub generation: u64,
    /// The records.
    pub records: Vec<(EventKind, OwnedMessage)>,
    /// The consumer group's metadata (group generation and member id) at poll time, sent with
    /// the batch's offsets in its transaction (exactly-once): if the group has moved on, the
    /// broker refuses them, so a batch that outlived its assignment cannot commit. `None`: read
    /// from `WorkerContext::offsets` when the transaction starts.
    pub group: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
    /// When its first record was received from the consumer (for `nbo_processing_latency`).
    pub received: Option<Instant>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("generation", &self.generation)
            .field("records", &self.records.len())
            .field("group", &self.group.is_some())
            .finish()
    }
}

/// Where workers report stored offsets; the Kafka consumer in production, a recorder in tests.
pub trait OffsetStore: Send + Sync {
    /// Marks `offset` of `topic`/`partition` as processed (the next offset to read is `offset+1`).
    fn store(&self, topic: &str, partition: i32, offset: i64);
    /// The consumer group's metadata, for committing offsets inside a transaction (exactly-once).
    fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata>;
    /// Commits `offsets` now, synchronously (`kafka.mirror_transaction_offsets`).
    fn commit(&self, offsets: &rdkafka::TopicPartitionList) -> rdkafka::error::KafkaResult<()>;
}

/// Running totals a demo or test can watch while the pipeline runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Records taken from Kafka and fully processed (including dead-lettered ones).
    pub records: AtomicU64,
    /// Dead letters produced.
    pub dead_letters: AtomicU64,
    /// Offers produced.
    pub offers: AtomicU64,
    /// Alerts produced.
    pub alerts: AtomicU64,
    /// Events processed by the operator.
    pub events: AtomicU64,
}

/// Everything a worker shares with the others.
pub struct WorkerContext {
    /// Decoder/encoder.
    pub codec: Arc<Codec>,
    /// Features and rules in force, swapped whole by the rules watcher on a hot reload.
    pub operator: Arc<arc_swap::ArcSwap<Operator>>,
    /// State store.
    pub store: Arc<dyn StateStore>,
    /// Output producers, one per worker (transactional in exactly-once mode; the same shared,
    /// idempotent one for every worker in at-least-once mode).
    pub sinks: Vec<Arc<Sink>>,
    /// The delivery guarantee (`kafka.delivery`).
    pub delivery: crate::config::Delivery,
    /// Bound on each transaction call (exactly-once).
    pub transaction_timeout: Duration,
    /// Also commit a transaction's offsets with the consumer (`kafka.mirror_transaction_offsets`).
    pub mirror_transaction_offsets: bool,
    /// The workers' cache shards (index = worker).
    pub shards: Vec<Arc<Shard>>,
    /// Most cached customers per worker before the least recently used are evicted.
    pub cache_max: usize,
    /// Customer-key HMAC.
    pub hasher: KeyHasher,
    /// Offset store.
    pub offsets: Arc<dyn OffsetStore>,
    /// Key TTL, seconds.
    pub ttl_secs: u64,
    /// Readiness: not ready while the state store or a delivery is failing (`/readyz` 503).
    pub health: Health,
    /// Running totals.
    pub progress: Arc<Progress>,
    /// The assignment generation and the batches in progress (a revoke waits for them).
    pub assignment: Arc<crate::source::assignment::Assignment>,
    /// Input topic names by [`EventKind::index`] (for metric labels and dead letters), as
    /// [`crate::config::Settings::input_topic_table`] builds them.
    pub input_topics: Vec<String>,
    /// Fetches the writer schemas of new schema ids before a batch decodes (with a Schema
    /// Registry; `None` without one).
    pub writer_schemas: Option<Arc<crate::codec::fetch::Fetcher>>,
}

/// A failure that stops the pipeline (the supervisor restarts it; restart is safe).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Produce failed for good.
    #[error(transparent)]
    Sink(crate::sink::SinkError),
    /// Another producer registered this instance's transactional id (exactly-once).
    #[error(
        "this instance's producer was fenced, so it stops: either another instance registered \
         the same transactional id (kafka.transactional_id must be unique per running instance, \
         e.g. the pod name; default <group_id>-<client_id>), or a transaction stayed open past \
         kafka.transaction_timeout (a broker outage longer than that) and the broker aborted it. \
         Nothing past the last committed transaction is visible; a restart resumes from there. \
         ({0})"
    )]
    Fenced(crate::sink::SinkError),
}

impl From<crate::sink::SinkError> for WorkerError {
    fn from(e: crate::sink::SinkError) -> Self {
        if e.is_fenced() {
            WorkerError::Fenced(e)
        } else {
            WorkerError::Sink(e)
        }
    }
}

pub async fn run(
    ctx: Arc<WorkerContext>,
    index: usize,
    mut queue: tokio::sync::mpsc::Receiver<Batch>,
) -> Result<(), WorkerError> {
    while let Some(batch) = queue.recv().await {
        // Registered as in progress under the assignment's lock: a revoke waits for it.
        let Some(_in_progress) = ctx.assignment.begin(batch.generation) else {
            // Polled under an earlier assignment: its records are fetched again from the offsets
            // committed at the revoke, by whoever owns their partitions now.
            tracing::debug!(
                records = batch.records.len(),
                "batch of an earlier assignment discarded"
            );
            continue;
        };
        process_batch(&ctx, index, batch).await?;
    }
    Ok(())
}
