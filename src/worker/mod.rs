//! An operator worker: owns the partitions `p` with `p mod workers == index` and processes their
//! batches one after another, so each partition's records are applied in offset order.
//!
//! Per batch (`batch`): decode → load missing customers (one round trip) → apply events to the
//! cache (exactly-once: decisions also kept in each customer's outbox) → at-least-once: produce
//! and await acks. Per checkpoint (`checkpoint`, once per `state.checkpoint_interval`, on a
//! bound, on revoke and at shutdown), in this order (the order is what makes replays safe, see
//! `sink`):
//! - at-least-once: flush dirty customers (round trips of 1,000, each retried until it succeeds)
//!   → store the interval's offsets;
//! - exactly-once: flush (state, applied offsets and outbox in one atomic write per customer) →
//!   one transaction with the interval's records and its consumer offsets → commit.
//!
//! A checkpoint due by time or size is written beside the next batches (the dirty customers
//! encoded first, then written by a task of its own; see `checkpoint`); one a rebalance asks for,
//! and the last at shutdown, are waited for.

mod batch;
mod cache;
mod checkpoint;
mod delivery;
mod lead;
mod learn;
mod snapshot;
mod transaction;

pub use batch::{apply_decoded, Decoded};
pub use cache::{each_prefetched, Cache, Cached, Shard};
pub use delivery::DEAD_LETTER_MAX_BYTES;
pub use learn::load as load_models;
pub use snapshot::{state_write, FULL_REWRITE};

use crate::codec::Codec;
use crate::operator::Operator;
use crate::sink::Sink;
use crate::state::{KeyHasher, StateStore};
use crate::telemetry::http::Health;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use crate::source::batch::Batch;

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
    /// Most cached customers per worker before the least recently used clean ones are evicted.
    pub cache_max: usize,
    /// Longest a checkpoint interval stays open (`state.checkpoint_interval`).
    pub checkpoint_interval: Duration,
    /// Dirty customers (and, exactly-once, pending outputs) that close an interval early
    /// (`state.checkpoint_max_dirty`).
    pub checkpoint_max_dirty: usize,
    /// Customer-key HMAC.
    pub hasher: KeyHasher,
    /// Offset store.
    pub offsets: Arc<dyn OffsetStore>,
    /// Key TTL, seconds.
    pub ttl_secs: u64,
    /// The format customer state is written in (`state.write_format`; it reads every format).
    pub state_format: u8,
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
    /// Where the learned offer models are kept (`None`: learning only in this process's
    /// memory, or off).
    pub models: Option<Arc<dyn crate::state::models::ModelStore>>,
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
    /// A checkpoint's write, or its encoding on the blocking pool, was cancelled before it ended
    /// (the worker's drop, or the runtime shutting down).
    #[error("a checkpoint's write was cancelled before it ended ({0}); the restart replays from the committed offsets")]
    CheckpointCancelled(String),
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

/// One worker: its context, and what it has applied since its last checkpoint.
pub struct Worker {
    ctx: Arc<WorkerContext>,
    index: usize,
    /// The assignment generation of the last batch processed.
    generation: u64,
    /// The open checkpoint interval.
    interval: checkpoint::Interval,
    /// Exactly-once: the committed offset (next to read) of each (input kind, partition) this
    /// worker has read under the current assignment, for pruning outboxes.
    committed: BTreeMap<(usize, i32), i64>,
    /// Checkpoint requests from rebalances.
    requests: tokio::sync::watch::Receiver<u64>,
    /// Checkpoints taken so far (the number of the last one).
    taken: u64,
    /// The checkpoint being written beside the batches, if any: at most one at a time.
    writing: Option<tokio::task::JoinHandle<Result<checkpoint::Written, WorkerError>>>,
    /// Exactly-once: how much earlier than its interval the next checkpoint starts (`None` in
    /// at-least-once mode, where the interval is kept whole).
    lead: Option<lead::Lead>,
}

/// How a checkpoint's writing task ended.
type WriteResult = Result<Result<checkpoint::Written, WorkerError>, tokio::task::JoinError>;

impl Drop for Worker {
    /// A worker dropped with a checkpoint still being written (it failed, or its process is
    /// going down) stops that write where it is, as a crash would: nothing was committed past
    /// it, so the input it held is replayed.
    fn drop(&mut self) {
        if let Some(writing) = self.writing.take() {
            writing.abort();
        }
    }
}

impl Worker {
    /// Worker `index` of `ctx`.
    pub fn new(ctx: Arc<WorkerContext>, index: usize) -> Self {
        let requests = ctx.assignment.requests();
        let lead = (ctx.delivery == crate::config::Delivery::ExactlyOnce).then(lead::Lead::default);
        Self {
            ctx,
            index,
            generation: 0,
            interval: checkpoint::Interval::default(),
            committed: BTreeMap::new(),
            requests,
            taken: 0,
            writing: None,
            lead,
        }
    }

    /// Takes a checkpoint now and waits until it is durable (see `checkpoint`), with the one
    /// still being written before it: on a rebalance's request, at shutdown, and in tests.
    pub async fn checkpoint(&mut self) -> Result<(), WorkerError> {
        self.checkpoint_beside().await?;
        self.settle().await
    }

    /// Takes a checkpoint and lets it be written beside the next batches (the interval's
    /// checkpoint when it is due): the dirty customers are shared now (the snapshot the next
    /// batches no longer touch), and a task of their own encodes and writes them, then commits the offsets,
    /// while the worker goes on. The previous checkpoint is waited for first, so checkpoints
    /// become durable one at a time and in order, and at most one is in flight: a customer's
    /// writes reach Redis in the order they were taken, and offsets are committed only past
    /// state that is durable.
    pub async fn checkpoint_beside(&mut self) -> Result<(), WorkerError> {
        self.requests.borrow_and_update();
        let asked = Instant::now();
        self.settle().await?;
        let seq = self.taken + 1;
        let shard = &*self.ctx.shards[self.index];
        let Some(job) = checkpoint::prepare(&self.ctx, shard, &mut self.interval, seq, asked)
        else {
            return Ok(());
        };
        self.taken = seq;
        self.writing = Some(tokio::spawn(checkpoint::write(
            self.ctx.clone(),
            self.index,
            job,
        )));
        Ok(())
    }

    /// Waits for the checkpoint being written, if any, and takes in what it tells (see
    /// [`Worker::written`]).
    async fn settle(&mut self) -> Result<(), WorkerError> {
        match self.writing.as_mut() {
            Some(writing) => {
                let result = writing.await;
                self.written(result)
            }
            None => Ok(()),
        }
    }

    /// Takes in what the checkpoint being written told when it ended: the customers it wrote
    /// may be evicted now, and (exactly-once) the offsets it committed prune the outboxes. Its
    /// error, if it failed for good, is the worker's.
    fn written(&mut self, result: WriteResult) -> Result<(), WorkerError> {
        self.writing = None;
        let written = match result {
            Ok(written) => written?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only the worker's drop aborts it; were it cancelled otherwise, what it wrote is
            // unknown, so the worker stops (a restart replays from the committed offsets).
            Err(e) => return Err(WorkerError::CheckpointCancelled(e.to_string())),
        };
        // Always the case today (the generation moves only after a settle); kept so that a
        // transaction of an earlier assignment can never prune the outboxes of a later one.
        if written.generation == self.generation {
            self.committed.extend(written.committed);
        }
        // Exactly-once outputs wait for their checkpoint: it starts early by what writing one
        // takes (`lead::Lead`), so they are committed about one interval after the first.
        if let (Some(lead), false) = (&mut self.lead, written.took.is_zero()) {
            lead.observe(written.took);
        }
        let shard = &*self.ctx.shards[self.index];
        shard.durable.store(self.taken, Ordering::Relaxed);
        shard.evict(self.ctx.cache_max);
        Ok(())
    }

    /// When the open interval's checkpoint is due by time (`None`: no interval is open): one
    /// `state.checkpoint_interval` after its first batch, less the lead in exactly-once mode.
    pub fn checkpoint_due_at(&self) -> Option<Instant> {
        self.interval.due_at(self.every())
    }

    /// The open interval's length by time: `state.checkpoint_interval`, shortened by the lead
    /// in exactly-once mode.
    fn every(&self) -> Duration {
        let interval = self.ctx.checkpoint_interval;
        self.lead.map_or(interval, |lead| lead.shorten(interval))
    }
}

/// What wakes an idle worker.
enum Wake {
    Batch(Batch),
    Closed,
    /// The open interval's checkpoint is due by time.
    Due,
    /// A rebalance asks for a checkpoint before it revokes partitions.
    Requested,
    /// The checkpoint being written ended.
    Written(WriteResult),
}

/// Runs worker `index` until its queue closes, then takes a last checkpoint (shutdown). Between
/// batches it also wakes for a due checkpoint (written beside the next batches) and for a
/// rebalance's request for one (waited for: the revoke needs it durable).
pub async fn run(
    ctx: Arc<WorkerContext>,
    index: usize,
    mut queue: tokio::sync::mpsc::Receiver<Batch>,
) -> Result<(), WorkerError> {
    let mut worker = Worker::new(ctx, index);
    let mut requests = worker.requests.clone();
    loop {
        let due = worker.checkpoint_due_at();
        let wake = tokio::select! {
            biased;
            changed = requests.changed() => match changed {
                Ok(()) => Wake::Requested,
                // The assignment outlives the workers; never reached.
                Err(_) => std::future::pending().await,
            },
            _ = sleep_until(due), if due.is_some() => Wake::Due,
            // Taken in as soon as it ends, also by an idle worker: a checkpoint that failed
            // for good stops the worker now, not at its next batch.
            result = async { worker.writing.as_mut().expect("guarded").await },
                if worker.writing.is_some() => Wake::Written(result),
            batch = queue.recv() => batch.map_or(Wake::Closed, Wake::Batch),
        };
        match wake {
            Wake::Batch(batch) => worker.process(batch).await?,
            Wake::Due => worker.checkpoint_beside().await?,
            Wake::Requested => worker.checkpoint().await?,
            Wake::Written(result) => worker.written(result)?,
            Wake::Closed => break,
        }
    }
    // Shutdown: what was applied becomes durable before the drain commits the offsets.
    worker.checkpoint().await
}

/// Sleeps until `at` (forever when `None`; the caller disables the branch then).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
