//! An operator worker: owns the partitions `p` with `p mod workers == index` and processes their
//! batches one after another, so each partition's records are applied in offset order.
//!
//! Per batch, in this order (the order is what makes replays safe, see `sink`):
//! - at-least-once: decode → load missing customers (one round trip) → apply events → produce and
//!   await acks → flush dirty customers (one round trip, retried until it succeeds) → store offsets;
//! - exactly-once: decode → load → apply (decisions also kept in each customer's outbox) → flush
//!   (state, applied offsets and outbox in one atomic write per customer) → one transaction with
//!   the batch's records and its consumer offsets → commit.

use crate::clock::now_ms;
use crate::codec::Codec;
use crate::event::{Event, EventKind};
use crate::operator::{BatchStats, Operator, SourcePos};
use crate::output::{DeadLetter, Decision};
use crate::sink::{DeliveryRetry, Published, Recovery, Sink, SinkError};
use crate::state::{CustomerKey, CustomerState, KeyHasher, StateError, StateStore, StateWrite};
use crate::telemetry::{http::Health, metrics};
use rdkafka::message::{Message, OwnedMessage};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// A cached customer: its Redis key (the HMAC is computed once, on a miss) and its state.
#[derive(Debug, Clone)]
pub struct Cached {
    /// Keyed hash of the customer id, for the store.
    pub key: CustomerKey,
    /// The operator's state.
    pub state: CustomerState,
    /// Changed since the last flush.
    pub dirty: bool,
    /// The public feature values this process last wrote (None: unknown, rewrite the hash).
    pub published: Option<Vec<Option<crate::features::FeatureValue>>>,
    /// When the hash was last written whole. It is rewritten whole every [`FULL_REWRITE`], so a
    /// hash lost in Redis (a failover, an expiry) while the customer stays cached heals.
    pub full_written: Option<Instant>,
    /// The customer's partition (the same on every co-partitioned input topic).
    pub partition: i32,
    /// Number of the last batch that touched it (for eviction).
    pub last_used: u64,
}

impl Cached {
    /// A customer just loaded (or new) from `partition`.
    pub fn loaded(key: CustomerKey, state: CustomerState, partition: i32) -> Self {
        Self {
            key,
            state,
            dirty: false,
            published: None,
            full_written: None,
            partition,
            last_used: 0,
        }
    }
}

/// One worker's part of the cache: the customers of the partitions it owns. Only its worker
/// touches it during a batch, so revokes and evictions, which that worker applies between batches,
/// never remove a customer a batch is using.
#[derive(Debug, Default)]
pub struct Shard {
    /// The customers. Locked by its worker for each CPU step of a batch (never across an await):
    /// per-event lookups are then plain hash-map lookups.
    cache: std::sync::Mutex<Cache>,
    /// Customers cached (for the metric, readable without the lock).
    len: std::sync::atomic::AtomicUsize,
    /// The assignment generation the cached customers belong to.
    generation: AtomicU64,
    /// Batches processed.
    batches: AtomicU64,
}

impl Shard {
    /// The shard's cache, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Customers cached.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether no customer is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Before a batch of `generation`: a shard filled under an earlier assignment is emptied
    /// (every customer is clean between batches, so nothing is lost; they reload from Redis).
    fn enter_generation(&self, generation: u64) {
        if self.generation.swap(generation, Ordering::Relaxed) != generation {
            let mut cache = self.lock();
            cache.clear();
            self.len.store(0, Ordering::Relaxed);
        }
    }

    /// Evicts the least recently used customers down to 90% of `max` (all are clean here).
    fn evict(&self, max: usize) {
        let mut cache = self.lock();
        if cache.len() > max {
            let mut ages: Vec<u64> = cache.values().map(|c| c.last_used).collect();
            let drop = ages.len() - max * 9 / 10;
            let (_, threshold, _) = ages.select_nth_unstable(drop.saturating_sub(1));
            let threshold = *threshold;
            cache.retain(|_, c| c.last_used > threshold);
        }
        self.len.store(cache.len(), Ordering::Relaxed);
    }
}

/// How often a cached customer's public feature hash is rewritten whole rather than as a delta.
pub const FULL_REWRITE: Duration = Duration::from_secs(600);

/// The write for one dirty customer: its state and the delta of its public feature hash.
fn state_write(
    operator: &Operator,
    cached: &mut Cached,
    ttl_secs: u64,
) -> Result<StateWrite, StateError> {
    let bytes = cached.state.to_bytes()?;
    let now = operator.snapshot(&cached.state);
    let names = operator.features().defs();
    let (mut features, mut removed) = (Vec::new(), Vec::new());
    let replace = cached.published.is_none()
        || cached
            .full_written
            .is_none_or(|t| t.elapsed() > FULL_REWRITE);
    if replace {
        cached.full_written = Some(Instant::now());
    }
    for (slot, value) in now.iter().enumerate() {
        let before = cached
            .published
            .as_ref()
            .and_then(|p| p.get(slot).and_then(Option::as_ref));
        match value {
            Some(v) if replace || before != Some(v) => {
                features.push((names[slot].name.clone(), v.clone()))
            }
            None if !replace && before.is_some() => removed.push(names[slot].name.clone()),
            _ => {}
        }
    }
    let erased = cached
        .state
        .erased_before
        .is_some_and(|t| cached.state.max_event_time <= t);
    // After an erasure the hash is gone: the next write must rebuild it whole.
    cached.published = if erased { None } else { Some(now) };
    Ok(StateWrite {
        erased,
        key: cached.key.clone(),
        state: bytes,
        features,
        removed,
        replace,
        updated_at: cached.state.max_event_time,
        ttl_secs,
    })
}

/// The in-process cache of customers owned by this instance's partitions, by customer id (the raw
/// id stays in process memory; only the keyed hash reaches Redis). Keys are inline strings: an id
/// of up to 24 bytes sits in the table slot itself, so a lookup compares it without following a
/// pointer to the heap (a cache miss per event with `String` keys: ~5% of a batch).
pub type Cache =
    std::collections::HashMap<compact_str::CompactString, Cached, rustc_hash::FxBuildHasher>;

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

/// Retries a state operation with exponential backoff (`sink::Backoff`: 100 ms → 5 s) until it
/// succeeds. While it fails the instance reports not ready (this worker's hold, see `Health`);
/// nothing is committed past the work not done. Gives up (`None`) when the assignment changed
/// since the batch was polled under `generation`.
async fn with_retry<T, F, Fut>(
    ctx: &WorkerContext,
    op: &'static str,
    generation: u64,
    mut f: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StateError>>,
{
    let mut backoff = crate::sink::Backoff::default();
    // This worker's hold on readiness while its state store fails (dropped on success or when
    // the batch is given up), so another worker's success cannot mark the instance ready.
    let mut failing = None;
    loop {
        if ctx.assignment.generation() != generation {
            // A revoke has begun (its generation bump comes first) and, if it stopped waiting
            // for this batch (kafka.revoke_timeout), the partitions may have a new owner: a late
            // write of ours could overwrite theirs. Give the batch up; whoever owns the
            // partitions replays it. Checked before every attempt, so only an attempt already
            // in flight when the revoke gave up can still land.
            tracing::warn!(
                op,
                "partitions reassigned while the batch waited; batch given up"
            );
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

/// A decoded event with where it came from.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The event.
    pub event: Event,
    /// Source position (replay detection).
    pub pos: SourcePos,
}

/// Applies decoded events, in order, to cached customers (all must be cached), appending
/// decisions and marking changed customers dirty. Pure CPU work, no allocation of its own: the hot
/// loop of a batch, shared by the worker and `benches/operator.rs`.
pub fn apply_decoded(
    operator: &Operator,
    cache: &mut Cache,
    decoded: &[Decoded],
    decisions: &mut Vec<Decision>,
    stats: &mut BatchStats,
    late: &mut [u64; EventKind::TABLE_LEN],
) {
    for d in decoded {
        if let Some(cached) = cache.get_mut(d.event.customer_id()) {
            let before = stats.too_late;
            operator.apply(&mut cached.state, &d.event, Some(d.pos), decisions, stats);
            if stats.too_late > before {
                late[d.pos.kind as usize] += 1;
            }
            cached.dirty = true;
        } else {
            // Cannot happen: the batch loaded every customer it touches into its own shard.
            metrics()
                .state_errors
                .with_label_values(&["not_cached"])
                .inc();
            tracing::error!(
                partition = d.pos.partition,
                offset = d.pos.offset,
                "customer missing from the cache; event not applied"
            );
        }
    }
}

/// Most bytes of a bad record's payload (and key) copied into its dead letter: a record near the
/// broker's size limit would otherwise make a dead letter the broker refuses, and the pipeline
/// would stop on it at every restart.
pub const DEAD_LETTER_MAX_BYTES: usize = 512 * 1024;

/// The bytes for a dead letter, cut to [`DEAD_LETTER_MAX_BYTES`]; the original length if cut.
fn capped(bytes: Option<&[u8]>) -> (Option<Vec<u8>>, Option<usize>) {
    match bytes {
        Some(b) if b.len() > DEAD_LETTER_MAX_BYTES => {
            (Some(b[..DEAD_LETTER_MAX_BYTES].to_vec()), Some(b.len()))
        }
        other => (other.map(<[u8]>::to_vec), None),
    }
}

/// Processes one batch end to end (see the module docs for the order).
pub async fn process_batch(
    ctx: &WorkerContext,
    index: usize,
    batch: Batch,
) -> Result<(), WorkerError> {
    let (shard, sink) = (&*ctx.shards[index], &*ctx.sinks[index]);
    let exactly_once = ctx.delivery == crate::config::Delivery::ExactlyOnce;
    shard.enter_generation(batch.generation);
    // One rule-set version decides the whole batch: a hot reload swaps the operator between
    // batches, never inside one.
    let operator = ctx.operator.load_full();
    let batch_no = shard.batches.fetch_add(1, Ordering::Relaxed) + 1;
    let started = Instant::now();
    let now = now_ms();
    let m = metrics();
    if let Some(fetcher) = &ctx.writer_schemas {
        // New writer schema ids are fetched and resolved before any record is decoded: a
        // registry outage holds the batch (nothing dead-lettered), see `codec::fetch`.
        let missing: std::collections::BTreeSet<(EventKind, u32)> = batch
            .records
            .iter()
            .filter_map(|(kind, msg)| {
                Some((*kind, ctx.codec.missing_writer(*kind, msg.payload())?))
            })
            .collect();
        if !missing.is_empty() {
            let owned = || ctx.assignment.generation() == batch.generation;
            let topic = |kind: EventKind| ctx.input_topics[kind.index()].clone();
            if !fetcher
                .prepare(&ctx.codec, &missing, topic, &ctx.health, owned)
                .await
            {
                // Revoked while it waited: the partitions' next owner replays the batch.
                return Ok(());
            }
        }
    }
    let mut decoded = Vec::with_capacity(batch.records.len());
    let mut dead = Vec::new();
    let mut consumed = [0u64; EventKind::TABLE_LEN];
    let mut last_offsets: BTreeMap<(usize, i32), i64> = BTreeMap::new();
    let mut first_offsets: BTreeMap<(usize, i32), i64> = BTreeMap::new();
    for (kind, msg) in &batch.records {
        consumed[kind.index()] += 1;
        last_offsets.insert((kind.index(), msg.partition()), msg.offset());
        first_offsets
            .entry((kind.index(), msg.partition()))
            .or_insert(msg.offset());
        match ctx.codec.decode(*kind, msg.key(), msg.payload(), now) {
            Ok(event) => {
                let pos = SourcePos {
                    kind: kind.index() as u8,
                    partition: msg.partition(),
                    offset: msg.offset(),
                };
                decoded.push(Decoded { event, pos });
            }
            Err(e) => {
                let topic = &ctx.input_topics[kind.index()];
                m.decode_errors.with_label_values(&[topic, e.kind()]).inc();
                m.dead_letters.with_label_values(&[topic, e.kind()]).inc();
                let (payload, cut) = capped(msg.payload());
                let (key, key_cut) = capped(msg.key());
                let mut error = e.to_string();
                if let Some(len) = cut.or(key_cut) {
                    error.push_str(&format!(
                        " (payload or key truncated to {DEAD_LETTER_MAX_BYTES} of {len} bytes)"
                    ));
                }
                dead.push(DeadLetter {
                    source_topic: msg.topic().to_string(),
                    source_partition: msg.partition(),
                    source_offset: msg.offset(),
                    key,
                    payload,
                    error_kind: e.kind().to_string(),
                    error,
                    at: now,
                });
            }
        }
    }

    tracing::trace!(first = ?first_offsets, last = ?last_offsets, dead = dead.len(), "batch decoded");
    // Load the customers this batch touches that the cache does not hold: one round trip.
    let mut seen = HashSet::new();
    let missing: Vec<(compact_str::CompactString, CustomerKey, i32)> = {
        let cache = shard.lock();
        decoded
            .iter()
            .filter(|d| {
                let id = d.event.customer_id();
                !cache.contains_key(id) && seen.insert(id)
            })
            .map(|d| {
                let id = d.event.customer_id();
                (id.into(), ctx.hasher.key(id), d.pos.partition)
            })
            .collect()
    };
    let mut round_trips = u64::from(!missing.is_empty());
    if !missing.is_empty() {
        let keys: Vec<CustomerKey> = missing.iter().map(|(_, k, _)| k.clone()).collect();
        let Some(loaded) =
            with_retry(ctx, "load", batch.generation, || ctx.store.load(&keys)).await
        else {
            return Ok(());
        };
        let mut cache = shard.lock();
        for ((id, key, partition), bytes) in missing.into_iter().zip(loaded) {
            let mut state = match bytes.map(|b| CustomerState::from_bytes(&b)) {
                Some(Ok(state)) => state,
                Some(Err(e)) => {
                    // A state that does not parse is replaced, not retried: it cannot get better.
                    m.state_errors.with_label_values(&["corrupt"]).inc();
                    tracing::error!(error = %e, "stored customer state does not parse; starting it afresh");
                    CustomerState::default()
                }
                None => CustomerState::default(),
            };
            operator.align(&mut state);
            cache.insert(id, Cached::loaded(key, state, partition));
        }
    }

    if exactly_once {
        // Outbox entries below this batch's first offset of their partition were committed by an
        // earlier transaction: no replay can need them. Once per customer, every partition of
        // the batch.
        let mut cache = shard.lock();
        let mut pruned = HashSet::new();
        for d in &decoded {
            let id = d.event.customer_id();
            if !pruned.insert(id) {
                continue;
            }
            if let Some(c) = cache.get_mut(id) {
                for (&(kind, partition), &first) in &first_offsets {
                    c.state.prune_outbox(kind as u8, partition, first);
                }
            }
        }
    }

    // Apply events in arrival order (per partition, offset order).
    let mut decisions: Vec<Decision> = Vec::new();
    let mut stats = BatchStats::default();
    let mut late = [0u64; EventKind::TABLE_LEN];
    apply_decoded(
        &operator,
        &mut shard.lock(),
        &decoded,
        &mut decisions,
        &mut stats,
        &mut late,
    );

    let published = if exactly_once {
        // Exactly-once: state (with the outboxes) first, then one transaction for the records
        // and the offsets. See the module docs and `sink`.
        let Some(writes) = flush(ctx, shard, &operator, &decoded, batch.generation, batch_no).await
        else {
            return Ok(());
        };
        round_trips += u64::from(writes > 0);
        match deliver_in_transaction(ctx, sink, &decisions, &dead, &last_offsets, &batch).await? {
            Some(published) => published,
            // Aborted by a rebalance: the partitions' next owner replays the batch and re-emits
            // its decisions from the outboxes just flushed.
            None => return Ok(()),
        }
    } else {
        // At-least-once: produce and await acknowledgements before anything is made durable
        // (retried while the broker is unreachable), then flush, then store the offsets.
        let Some(published) =
            publish_at_least_once(ctx, sink, &decisions, &dead, batch.generation).await?
        else {
            // Revoked while its delivery was retried: nothing of the batch is flushed or
            // stored; its customers leave the cache with the old assignment, and the
            // partitions' next owner replays it.
            return Ok(());
        };
        let Some(writes) = flush(ctx, shard, &operator, &decoded, batch.generation, batch_no).await
        else {
            // Published but given up (see `with_retry`): the next owner replays the batch and
            // produces the same records again (at-least-once allows byte-identical repeats).
            return Ok(());
        };
        round_trips += u64::from(writes > 0);
        for ((kind, partition), offset) in &last_offsets {
            ctx.offsets
                .store(&ctx.input_topics[*kind], *partition, *offset);
        }
        published
    };
    count_decisions(&decisions);
    // Every record of the batch is now acknowledged (at-least-once) or committed (exactly-once).
    // One value per record, summed locally and published once (no atomic per record).
    if let Some(received) = batch.received {
        let latency = received.elapsed().as_secs_f64();
        let local = m.processing_latency.local();
        for _ in 0..batch.records.len() {
            local.observe(latency);
        }
        local.flush();
    }

    shard.evict(ctx.cache_max);
    for (i, n) in consumed.iter().enumerate().filter(|(_, n)| **n > 0) {
        m.events_consumed
            .with_label_values(&[&ctx.input_topics[i]])
            .inc_by(*n);
    }
    for (i, n) in late.iter().enumerate().filter(|(_, n)| **n > 0) {
        m.late_events
            .with_label_values(&[&ctx.input_topics[i]])
            .inc_by(*n);
    }
    m.replayed_events.inc_by(stats.replayed);
    m.feature_updates.inc_by(stats.feature_updates);
    m.batch_size.observe(batch.records.len() as f64);
    m.cached_customers
        .set(ctx.shards.iter().map(|s| s.len() as i64).sum());
    m.state_round_trips.inc_by(round_trips);
    let p = &ctx.progress;
    p.records
        .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
    p.events.fetch_add(decoded.len() as u64, Ordering::Relaxed);
    p.dead_letters
        .fetch_add(published.dead_letters, Ordering::Relaxed);
    p.offers.fetch_add(published.offers, Ordering::Relaxed);
    p.alerts.fetch_add(published.alerts, Ordering::Relaxed);
    tracing::trace!(
        records = batch.records.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "batch done"
    );
    Ok(())
}

/// Counts a batch's decisions in the metrics (after they are produced).
fn count_decisions(decisions: &[Decision]) {
    let m = metrics();
    let produced_at = now_ms();
    for d in decisions {
        match d {
            Decision::Offer(o) => {
                m.offers.with_label_values(&[&o.rule_id]).inc();
                m.event_time_lag
                    .observe((produced_at - o.decided_at).max(0) as f64 / 1000.0);
            }
            Decision::Alert(a) => {
                m.alerts
                    .with_label_values(&[&a.rule_id, a.severity.as_str()])
                    .inc();
                m.event_time_lag
                    .observe((produced_at - a.raised_at).max(0) as f64 / 1000.0);
            }
            Decision::Audit(a) => m.decisions.with_label_values(&[a.outcome.as_str()]).inc(),
        }
    }
}

/// Flushes the batch's dirty customers: one round trip, retried until it succeeds, one write per
/// dirty customer however many of its events the batch held. Returns the number of writes, or
/// `None` when the batch was given up because its partitions were reassigned meanwhile.
async fn flush(
    ctx: &WorkerContext,
    shard: &Shard,
    operator: &Operator,
    decoded: &[Decoded],
    generation: u64,
    batch_no: u64,
) -> Option<usize> {
    let m = metrics();
    let mut writes: Vec<StateWrite> = Vec::new();
    {
        let mut cache = shard.lock();
        for d in decoded {
            let Some(cached) = cache.get_mut(d.event.customer_id()) else {
                continue;
            };
            if !cached.dirty {
                continue;
            }
            cached.dirty = false;
            cached.last_used = batch_no;
            match state_write(operator, cached, ctx.ttl_secs) {
                Ok(write) => writes.push(write),
                Err(e) => {
                    m.state_errors.with_label_values(&["encode"]).inc();
                    tracing::error!(error = %e, "customer state does not serialize; it stays in the cache only");
                }
            }
        }
    }
    if !writes.is_empty() {
        let flush_started = Instant::now();
        with_retry(ctx, "store", generation, || ctx.store.store(&writes)).await?;
        m.state_flush_duration
            .observe(flush_started.elapsed().as_secs_f64());
    }
    Some(writes.len())
}

/// At-least-once delivery of a batch's records: every one produced and acknowledged before the
/// caller flushes the batch's state and stores its offsets. A transient failure (see `sink`: the
/// broker unreachable past `message.timeout.ms`, ...) produces the whole batch again after a
/// backoff, for as long as it takes; records acknowledged by an earlier attempt repeat,
/// byte-identical (ids are deterministic). Returns `None` when the batch's partitions were
/// revoked while it was retried (its next owner replays it), and an error when a record fails for
/// good (the process exits; a restart replays the batch).
async fn publish_at_least_once(
    ctx: &WorkerContext,
    sink: &Sink,
    decisions: &[Decision],
    dead: &[DeadLetter],
    generation: u64,
) -> Result<Option<Published>, WorkerError> {
    let mut retry = DeliveryRetry::new("at_least_once", &ctx.health);
    loop {
        if ctx.assignment.generation() != generation {
            tracing::info!(
                "partitions revoked before the batch's delivery; their next owner replays it"
            );
            return Ok(None);
        }
        match sink.publish(decisions, dead).await {
            Ok(published) => {
                retry.succeeded();
                return Ok(Some(published));
            }
            Err(e) if e.recovery() == Recovery::Retry => retry.wait(&e).await,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Longest one transaction call (send offsets, commit, abort) waits for the broker before it
/// returns a timeout, which librdkafka reports retriable (the call is made again and resumes
/// where it was) or, for the offsets, abortable (the transaction is redone). Shorter than
/// `kafka.transaction_timeout` (which still bounds it) so that a broker outage shows within
/// seconds as retries, warnings and a 503 on `/readyz`, not as a silent wait. (librdkafka's
/// header recommends an infinite timeout for these calls; a finite one is supported — a timed-out
/// commit or abort is resumed by calling it again, which `call_retrying` and `abort_retrying`
/// do whatever the assignment does — and is what makes an outage visible.)
const TRANSACTION_CALL_WAIT: Duration = Duration::from_secs(5);

/// Exactly-once delivery of a flushed batch: its records and its consumer offsets in one
/// transaction. Failures follow librdkafka's transactional error classes (see `sink`):
///
/// - a retriable transaction call is called again after a backoff ([`call_retrying`]);
/// - a transaction that cannot commit — a call that requires an abort, or a record that failed
///   transiently (the broker unreachable past `message.timeout.ms`) — is aborted (the abort
///   itself retried while retriable) and done again whole after a backoff: begin, produce, send
///   the offsets, commit. Records of an aborted transaction never reach read_committed consumers;
/// - a fatal error (fenced: a newer instance holds the transactional id) is returned at once, and
///   any other failure after an abort: the process exits, and a restart replays the batch from
///   the committed offsets, re-emitting its decisions from the outboxes just flushed.
///
/// Returns `None` when the transaction was aborted and the batch's partitions have moved (their
/// assignment generation ended): their next owner replays the batch the same way.
async fn deliver_in_transaction(
    ctx: &WorkerContext,
    sink: &Sink,
    decisions: &[Decision],
    dead: &[DeadLetter],
    last_offsets: &BTreeMap<(usize, i32), i64>,
    batch: &Batch,
) -> Result<Option<Published>, WorkerError> {
    let generation = batch.generation;
    let mut offsets = rdkafka::TopicPartitionList::new();
    for ((kind, partition), offset) in last_offsets {
        // Committed offsets name the next record to read.
        if let Err(e) = offsets.add_partition_offset(
            &ctx.input_topics[*kind],
            *partition,
            rdkafka::Offset::Offset(offset + 1),
        ) {
            return Err(WorkerError::Sink(crate::sink::SinkError::Transaction {
                step: "send_offsets",
                error: e,
            }));
        }
    }
    // The group member that polled the batch sends its offsets, on every attempt: once the group
    // has a newer generation the broker refuses them (KIP-447), so a batch that outlived its
    // assignment cannot commit over the partitions' new owner.
    let Some(group) = batch
        .group
        .clone()
        .or_else(|| ctx.offsets.group_metadata().map(Arc::new))
    else {
        return Err(WorkerError::Sink(crate::sink::SinkError::Transaction {
            step: "send_offsets",
            error: rdkafka::error::KafkaError::Canceled,
        }));
    };
    let timeout = ctx.transaction_timeout.min(TRANSACTION_CALL_WAIT);
    let moved = || ctx.assignment.generation() != generation;
    let mut retry = DeliveryRetry::new("exactly_once", &ctx.health);
    loop {
        if moved() {
            // Nothing is open between attempts; the new owner replays the batch and re-emits
            // its decisions from the outboxes already flushed.
            tracing::info!(
                "partitions revoked before the batch's transaction; their next owner replays it"
            );
            return Ok(None);
        }
        let started = Instant::now();
        let attempt = async {
            // begin_transaction is local; a retriable failure opened nothing, so no abort.
            call_retrying(&mut retry, &moved, false, || sink.begin())
                .await
                .map_err(|e| (e, false))?;
            let published = sink.publish(decisions, dead).await.map_err(|e| (e, true))?;
            let produced = started.elapsed();
            call_retrying(&mut retry, &moved, false, || {
                sink.send_offsets(offsets.clone(), group.clone(), timeout)
            })
            .await
            .map_err(|e| (e, true))?;
            // A commit that failed retriably is still in progress in librdkafka: only calling it
            // again resumes it (an abort is refused meanwhile), so it is retried whatever the
            // assignment does; it then commits or fails with an abortable error.
            call_retrying(&mut retry, &moved, true, || sink.commit(timeout))
                .await
                .map_err(|e| (e, true))?;
            Ok::<_, (SinkError, bool)>((published, produced))
        }
        .await;
        let (failed, open) = match attempt {
            Ok((published, produced)) => {
                if ctx.mirror_transaction_offsets {
                    // Sequential per worker, and only this worker commits these partitions, so
                    // the mirrored offsets never go backwards.
                    let committer = ctx.offsets.clone();
                    let mirrored =
                        tokio::task::spawn_blocking(move || committer.commit(&offsets)).await;
                    if let Ok(Err(e)) = mirrored {
                        tracing::warn!(error = %e, "mirrored offset commit failed");
                    }
                }
                tracing::debug!(
                    offsets = ?last_offsets,
                    records = decisions.len() + dead.len(),
                    produce_ms = produced.as_millis() as u64,
                    total_ms = started.elapsed().as_millis() as u64,
                    "transaction committed"
                );
                retry.succeeded();
                return Ok(Some(published));
            }
            Err(failed) => failed,
        };
        if failed.is_fatal() {
            return Err(failed.into());
        }
        let recovery = failed.recovery();
        if recovery != Recovery::Fail {
            // Retry (a record failed transiently) or AbortAndRedo: the whole transaction again,
            // after the backoff. Counted and marked not ready before the abort, which may wait
            // for the broker to come back.
            retry.wait(&failed).await;
        }
        if open {
            abort_retrying(sink, timeout, &mut retry).await?;
        }
        if moved() {
            tracing::info!(error = %failed, "transaction aborted by a rebalance; the partitions' next owner replays the batch");
            metrics().transactions_aborted.inc();
            return Ok(None);
        }
        if recovery == Recovery::Fail {
            return Err(failed.into());
        }
    }
}

/// Calls a transaction step until it succeeds or fails other than retriably; a retriable failure
/// is retried after the backoff. A step that is not `resumable` stops retrying when the batch's
/// partitions have moved (`moved`), returning its last error for the caller to abort on.
async fn call_retrying<F, Fut>(
    retry: &mut DeliveryRetry,
    moved: &impl Fn() -> bool,
    resumable: bool,
    mut call: F,
) -> Result<(), SinkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SinkError>>,
{
    loop {
        match call().await {
            Ok(()) => return Ok(()),
            Err(e) if e.recovery() == Recovery::Retry && (resumable || !moved()) => {
                retry.wait(&e).await
            }
            Err(e) => return Err(e),
        }
    }
}

/// Aborts the open transaction, calling the abort again while librdkafka reports it retriable
/// (it timed out with the broker unreachable: the next call resumes it). The producer can begin
/// no other transaction before the abort completes, so it is retried whatever the assignment
/// does. Any other failure ends the worker (the process exits; a restart is safe).
async fn abort_retrying(
    sink: &Sink,
    timeout: Duration,
    retry: &mut DeliveryRetry,
) -> Result<(), WorkerError> {
    loop {
        match sink.abort(timeout).await {
            Ok(()) => return Ok(()),
            Err(e) if e.recovery() == Recovery::Retry => retry.wait(&e).await,
            Err(e) => {
                tracing::error!(error = %e, "transaction abort failed");
                return Err(e.into());
            }
        }
    }
}

/// Runs a worker until its queue closes (shutdown) or a batch fails for good.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shard_with(n: usize) -> Shard {
        let shard = Shard::default();
        for i in 0..n {
            let mut c = Cached::loaded(
                CustomerKey(format!("k{i}")),
                CustomerState::default(),
                (i % 4) as i32,
            );
            c.last_used = i as u64;
            shard.lock().insert(format!("C{i}").into(), c);
        }
        shard
    }

    #[test]
    fn eviction_keeps_the_most_recently_used() {
        let shard = shard_with(100);
        shard.evict(50);
        assert_eq!(shard.lock().len(), 45);
        assert!(shard.lock().contains_key("C99") && !shard.lock().contains_key("C0"));
        shard.evict(50);
        assert_eq!(shard.lock().len(), 45, "under the bound: nothing evicted");
    }

    #[test]
    fn the_feature_hash_is_written_whole_then_as_deltas_and_deleted_after_an_erasure() {
        use crate::event::{ErasureRequest, Event};
        let features = Arc::new(crate::features::spec::load(None).unwrap());
        let rules = crate::rules::RuleSet {
            version: 0,
            offers: vec![],
            alerts: vec![],
        };
        let op = Operator::new(
            features,
            rules,
            &crate::config::OperatorSettings::default(),
            0,
        );
        let mut state = CustomerState::default();
        op.align(&mut state);
        let mut c = Cached::loaded(CustomerKey("k".into()), state, 0);
        let first = state_write(&op, &mut c, 60).unwrap();
        assert!(first.replace && !first.erased);
        let second = state_write(&op, &mut c, 60).unwrap();
        assert!(
            !second.replace && second.features.is_empty(),
            "nothing changed: empty delta"
        );
        let erase = Event::Erasure(ErasureRequest {
            request_id: "r".into(),
            customer_id: "c".into(),
            requested_at: 5,
        });
        op.apply(
            &mut c.state,
            &erase,
            None,
            &mut Vec::new(),
            &mut BatchStats::default(),
        );
        let third = state_write(&op, &mut c, 60).unwrap();
        assert!(third.erased, "erased: the hash is deleted");
        assert!(c.published.is_none());
        c.state.max_event_time = 10; // activity after the erasure
        let fourth = state_write(&op, &mut c, 60).unwrap();
        assert!(
            fourth.replace && !fourth.erased,
            "rebuilt whole after the erasure"
        );
    }

    #[test]
    fn a_new_assignment_empties_the_cache_before_the_next_batch() {
        let shard = shard_with(8);
        shard.enter_generation(0);
        assert_eq!(shard.lock().len(), 8, "same generation: kept");
        shard.enter_generation(1);
        assert!(
            shard.lock().is_empty(),
            "new generation: nothing cached from before is used"
        );
    }
}
