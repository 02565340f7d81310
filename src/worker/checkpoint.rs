//! Checkpoints: making a worker's work durable once per `state.checkpoint_interval` rather than
//! once per batch. Between checkpoints the worker's customers live in its cache; an [`Interval`]
//! keeps what the checkpoint will need: the customers made dirty, the last offset applied per
//! input partition and, in exactly-once mode, the outputs decided since the last checkpoint.
//!
//! A checkpoint is taken in two parts. [`prepare`], on the worker: each dirty customer's state is
//! shared, copy on write, under the cache's lock (the [`Snapshot`]), and the customer marked clean and pinned in
//! the cache until the write is durable. [`write`], on a task of its own while the worker goes on
//! with the next batches (at most one in flight per worker; the next checkpoint waits for it),
//! encodes the snapshots (state and hash delta), then makes them durable in this order (the
//! order is what makes replays safe, see `sink`):
//! 0. the responses the interval learned from, and its uplift exposures and conversions,
//!    counted in the model store (`learn`);
//! 1. every dirty customer's state, applied offsets and outbox (and the delta of its public
//!    feature hash) written to the state store in chunks of [`WRITE_CHUNK`] customers (one
//!    round trip each), each retried until it succeeds — each customer atomically;
//! 2. at-least-once: the interval's offsets stored with the consumer (its outputs were produced
//!    and acknowledged batch by batch, before); exactly-once: one Kafka transaction with the
//!    interval's outputs and its consumer offsets.
//!
//! A crash between checkpoints loses only the cache: the input since the last durable checkpoint
//! is replayed from the committed offsets against the state of that checkpoint, so features count
//! every event once and (exactly-once) the outputs of a replayed event come from its outbox. With
//! a checkpoint being written while the next interval runs, that is up to two intervals and a
//! write; in memory, up to `checkpoint_max_dirty` dirty customers and as many pinned by the write.
//!
//! A checkpoint is taken when the interval has lasted `state.checkpoint_interval` (a timer
//! takes it for an idle worker), when it holds `state.checkpoint_max_dirty` dirty customers or
//! as many pending outputs (bounded memory), when a rebalance asks for one (before a revoke
//! completes), and when the worker's queue closes (shutdown).

use super::cache::Shard;
use super::snapshot::{encode, snapshot, Snapshot};
use super::{WorkerContext, WorkerError};
use crate::operator::Operator;
use crate::output::{DeadLetter, Decision};
use crate::source::assignment::Hold;
use crate::state::{StateError, StateWrite};
use crate::telemetry::metrics;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
/// Most customers per state store call (one round trip) of a checkpoint; each customer is
/// written atomically whatever the chunking.
pub(super) const WRITE_CHUNK: usize = 1_000;

/// Retries a state operation with exponential backoff (`backoff::Backoff`: 100 ms → 5 s) until it
/// succeeds. While it fails the instance reports not ready (this worker's hold, see `Health`);
/// nothing is committed past the work not done. Gives up (`None`) when the assignment changed
/// since the work's generation (a rebalance that stopped waiting for it).
pub(super) async fn with_retry<T, F, Fut>(
    ctx: &WorkerContext,
    op: &'static str,
    generation: u64,
    mut f: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StateError>>,
{
    let mut backoff = crate::backoff::Backoff::default();
    // This worker's hold on readiness while its state store fails (dropped on success or when
    // the batch is given up), so another worker's success cannot mark the instance ready.
    let mut failing = None;
    loop {
        if ctx.assignment.generation() != generation {
            // A rebalance stopped waiting for this work (kafka.revoke_timeout; the generation
            // moves when it stops waiting), so the partitions may have a new owner: a late write
            // of ours could overwrite theirs. Give the work up; whoever owns the partitions
            // replays it. Checked before every attempt, so only an attempt already in flight
            // when the revoke gave up can still land.
            tracing::warn!(op, "partitions reassigned while the work waited; given up");
            return None;
        }
        match f().await {
            Ok(v) => {
                if failing.take().is_some() {
                    tracing::info!(op, "state store answers again");
                }
                return Some(v);
            }
            Err(e) => {
                metrics().state_errors.with_label_values(&[op]).inc();
                failing.get_or_insert_with(|| ctx.health.state_failing());
                let delay = backoff.next_delay();
                tracing::warn!(op, error = %e, retry_in_ms = delay.as_millis() as u64, "state store failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Totals of an interval, added to [`super::Progress`] once its checkpoint is durable, so a
/// watcher that sees `records` reach N can read the state of those N records from the store.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Counts {
    pub records: u64,
    pub events: u64,
    pub dead_letters: u64,
    pub offers: u64,
    pub alerts: u64,
}

/// What a worker has applied since its last checkpoint.
#[derive(Default)]
pub(super) struct Interval {
    /// Registration with the assignment while the interval is open: a rebalance waits for it.
    hold: Option<Hold>,
    /// The assignment generation the interval's batches were processed under.
    pub generation: u64,
    /// When its first batch's first record was received (when the batch was applied, if that is
    /// not known): the interval runs from there, so a record waits about one interval for its
    /// checkpoint however long its batch took to reach the worker.
    opened: Option<Instant>,
    /// Customers made dirty (each once), by id.
    pub dirty: Vec<compact_str::CompactString>,
    /// Last offset applied per (input kind, partition).
    pub offsets: BTreeMap<(usize, i32), i64>,
    /// Exactly-once: the interval's decisions and dead letters, for its transaction.
    pub decisions: Vec<Decision>,
    /// Exactly-once: see `decisions`.
    pub dead: Vec<DeadLetter>,
    /// Exactly-once: the group metadata of the latest batch (sent with the offsets).
    pub group: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
    /// Exactly-once: when each batch's first record arrived and its record count, observed in
    /// the processing-latency histogram when the transaction commits.
    pub received: Vec<(Instant, usize)>,
    /// Totals for the progress counters.
    pub counts: Counts,
    /// Responses learned from, counted in the model store before the state is stored.
    pub learned: Vec<crate::learning::model::Observation>,
    /// Uplift exposures and conversions, counted in the model store with `learned`.
    pub uplift: Vec<crate::learning::uplift::Tally>,
}

impl Interval {
    /// Whether nothing was applied since the last checkpoint.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Opens the interval for a batch of `generation` whose first record was received at
    /// `received` (no-op when it is open already). `false` when the generation has moved (the
    /// batch is then given up).
    pub fn open(
        &mut self,
        ctx: &WorkerContext,
        generation: u64,
        received: Option<Instant>,
    ) -> bool {
        if self.hold.is_some() {
            return true;
        }
        let Some(hold) = ctx.assignment.hold(generation) else {
            return false;
        };
        self.hold = Some(hold);
        self.generation = generation;
        let now = Instant::now();
        self.opened = Some(received.map_or(now, |r| r.min(now)));
        true
    }

    /// When the interval's checkpoint is due by time (`None` while it is empty).
    pub fn due_at(&self, every: Duration) -> Option<Instant> {
        self.opened.map(|t| t + every)
    }

    /// Whether the checkpoint is due now, by time (an interval of `every`: see `super::lead`) or by one
    /// of the memory bounds.
    pub fn due(&self, ctx: &WorkerContext, every: Duration) -> bool {
        self.due_at(every).is_some_and(|t| t <= Instant::now())
            || self.dirty.len() >= ctx.checkpoint_max_dirty
            || self.decisions.len() + self.dead.len() >= ctx.checkpoint_max_dirty
    }
}

/// A checkpoint taken from a worker's interval: the dirty customers' snapshots, shared when it
/// was taken (what the worker's next batches no longer touch), and what the interval delivers.
/// [`write`] encodes and makes it durable, on a task of its own, while the worker goes on.
pub(super) struct Job {
    taken: Interval,
    snapshots: Vec<Snapshot>,
    operator: Arc<Operator>,
    started: Instant,
    /// When the worker asked for it (before waiting for the one in flight): the lead counts
    /// from there.
    asked: Instant,
}

/// What a checkpoint written tells its worker.
#[derive(Debug, Default)]
pub(super) struct Written {
    /// The assignment generation of its interval.
    pub generation: u64,
    /// Exactly-once: the offsets (next to read) its transaction committed, for outbox pruning.
    pub committed: Vec<((usize, i32), i64)>,
    /// From the checkpoint asked for to durable (waiting for the one before, its write and
    /// commit); zero when given up.
    pub took: Duration,
}

/// Takes the checkpoint of `interval` (closed afterwards, whatever happens): each dirty
/// customer's [`Snapshot`] is taken now, under the shard's lock, and the customer marked clean and
/// pinned in the cache as written by checkpoint `seq` (not evicted, so never reloaded from Redis,
/// until `seq` is durable: see `Shard::evict`). `None` when no batch was applied since the last
/// checkpoint, or when
/// the interval's partitions were reassigned since its batches (given up: the cache is emptied
/// before the next batch and the next owner replays it). An interval with offsets but no dirty
/// customer still makes a job: its offsets are stored or committed.
pub(super) fn prepare(
    ctx: &WorkerContext,
    shard: &Shard,
    interval: &mut Interval,
    seq: u64,
    asked: Instant,
) -> Option<Job> {
    let taken = std::mem::take(interval);
    if taken.is_empty() {
        return None;
    }
    if ctx.assignment.generation() != taken.generation {
        // The rebalance stopped waiting for us: the partitions may have a new owner.
        tracing::warn!("partitions reassigned before the checkpoint; its interval is given up");
        return None;
    }
    let started = Instant::now();
    let operator = ctx.operator.load_full();
    let batch_no = shard.batches.load(Ordering::Relaxed);
    let mut snapshots: Vec<Snapshot> = Vec::with_capacity(taken.dirty.len());
    {
        let mut cache = shard.lock();
        for id in &taken.dirty {
            let Some(cached) = cache.get_mut(id) else {
                continue;
            };
            if !cached.dirty {
                continue;
            }
            cached.dirty = false;
            cached.last_used = batch_no;
            cached.written_by = seq;
            snapshots.push(snapshot(&operator, cached, id));
        }
    }
    tracing::debug!(
        seq,
        customers = snapshots.len(),
        records = taken.counts.records,
        open_ms = taken.opened.map_or(0, |t| t.elapsed().as_millis() as u64),
        snapshot_us = started.elapsed().as_micros() as u64,
        "checkpoint taken"
    );
    Some(Job {
        taken,
        snapshots,
        operator,
        started,
        asked,
    })
}

/// Makes `job` durable (see the module docs for the order), with worker `index`'s producer.
/// Returns what its worker needs to know; `Ok` with nothing committed when the work was given
/// up because its partitions were reassigned meanwhile (the next owner replays it).
pub(super) async fn write(
    ctx: Arc<WorkerContext>,
    index: usize,
    job: Job,
) -> Result<Written, WorkerError> {
    let Job {
        taken,
        snapshots,
        operator,
        started,
        asked,
    } = job;
    // Encoding is CPU work of tens of milliseconds for a busy interval: on a thread of the
    // blocking pool, so that it holds no thread of the runtime, where the workers, the poll loop
    // and the connections run.
    let writes = {
        let (operator, shard, ttl_secs, format) = (
            operator.clone(),
            ctx.shards[index].clone(),
            ctx.ttl_secs,
            ctx.state_format,
        );
        match tokio::task::spawn_blocking(move || {
            encode(&operator, &shard, snapshots, ttl_secs, format)
        })
        .await
        {
            Ok(writes) => writes,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(WorkerError::CheckpointCancelled(e.to_string())),
        }
    };
    let ctx = &*ctx;
    let sink = &*ctx.sinks[index];
    let m = metrics();
    let mut written = Written {
        generation: taken.generation,
        committed: Vec::new(),
        took: Duration::ZERO,
    };
    // Learned responses and uplift tallies first, then the state that marks them counted (see
    // `state::models`).
    if !super::learn::record(ctx, &operator, &taken.learned, taken.generation).await
        || !super::learn::record_uplift(ctx, &taken.uplift, taken.generation).await
    {
        return Ok(written);
    }
    if !flush(ctx, &writes, taken.generation).await {
        return Ok(written);
    }
    let mut counts = taken.counts;
    if ctx.delivery == crate::config::Delivery::ExactlyOnce {
        let sink_result = super::transaction::deliver_in_transaction(
            ctx,
            sink,
            &taken.decisions,
            &taken.dead,
            &taken.offsets,
            taken.generation,
            taken.group.clone(),
        )
        .await?;
        let Some(published) = sink_result else {
            // Aborted by a rebalance: the next owner replays the interval and re-emits its
            // decisions from the outboxes just flushed.
            return Ok(written);
        };
        written.committed = taken
            .offsets
            .iter()
            .map(|(key, offset)| (*key, offset + 1))
            .collect();
        super::delivery::count_decisions(&taken.decisions);
        counts.offers = published.offers;
        counts.alerts = published.alerts;
        counts.dead_letters = published.dead_letters;
        let local = m.processing_latency.local();
        for (received, records) in &taken.received {
            let latency = received.elapsed().as_secs_f64();
            for _ in 0..*records {
                local.observe(latency);
            }
        }
        local.flush();
    } else {
        for ((kind, partition), offset) in &taken.offsets {
            ctx.offsets
                .store(&ctx.input_topics[*kind], *partition, *offset);
        }
    }
    m.state_round_trips
        .inc_by(writes.len().div_ceil(WRITE_CHUNK) as u64);
    m.checkpoint_duration
        .observe(started.elapsed().as_secs_f64());
    m.checkpoint_customers.observe(writes.len() as f64);
    let p = &ctx.progress;
    p.records.fetch_add(counts.records, Ordering::Relaxed);
    p.events.fetch_add(counts.events, Ordering::Relaxed);
    p.dead_letters
        .fetch_add(counts.dead_letters, Ordering::Relaxed);
    p.offers.fetch_add(counts.offers, Ordering::Relaxed);
    p.alerts.fetch_add(counts.alerts, Ordering::Relaxed);
    tracing::debug!(
        customers = writes.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "checkpoint durable"
    );
    // The interval's hold on the assignment is released here, once its work is durable (or
    // given up): a rebalance that asked for this checkpoint waits for it, not for the reload.
    drop(taken.hold);
    written.took = asked.elapsed();
    super::learn::refresh_if_due(ctx, &operator).await;
    Ok(written)
}

/// Writes the dirty customers, in chunks each retried until it succeeds: one write per dirty
/// customer however many of its events the interval held. `false` when the interval was given
/// up because its partitions were reassigned meanwhile.
async fn flush(ctx: &WorkerContext, writes: &[StateWrite], generation: u64) -> bool {
    if writes.is_empty() {
        return true;
    }
    let flush_started = Instant::now();
    // In chunks, one after another, each retried on its own: a whole interval's customers
    // (tens of thousands under load) in one call outlast `redis.timeout`, so they would fail
    // again at every retry; chunks sent all at once queue behind each other on the
    // connection and time out the same way. Within a chunk the store writes transactions of
    // `state::redis::TRANSACTION_CUSTOMERS`, so Redis serves others between them.
    for chunk in writes.chunks(WRITE_CHUNK) {
        if with_retry(ctx, "store", generation, || ctx.store.store(chunk))
            .await
            .is_none()
        {
            return false;
        }
    }
    metrics()
        .state_flush_duration
        .observe(flush_started.elapsed().as_secs_f64());
    true
}
