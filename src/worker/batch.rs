//! One batch end to end: writer schemas fetched, records decoded (bad ones dead-lettered),
//! missing customers loaded, events applied, then delivery and the state checkpoint in the order
//! the delivery mode needs (see the module docs of `worker`).

use super::cache::{Cache, Cached, Shard};
use super::checkpoint::{flush, with_retry};
use super::delivery::{capped, count_decisions, publish_at_least_once, DEAD_LETTER_MAX_BYTES};
use super::transaction::deliver_in_transaction;
use super::{Batch, WorkerContext, WorkerError};
use crate::clock::now_ms;
use crate::event::{Event, EventKind};
use crate::operator::{BatchStats, Operator, SourcePos};
use crate::output::{DeadLetter, Decision};
use crate::state::{CustomerKey, CustomerState};
use crate::telemetry::metrics;
use rdkafka::message::Message;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

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
    super::cache::each_prefetched(cache, decoded, |cache, d| {
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
    });
}

/// What decoding a batch's records gave.
struct Read {
    /// The events, in arrival order.
    decoded: Vec<Decoded>,
    /// The records that did not decode.
    dead: Vec<DeadLetter>,
    /// Records per input kind (metrics).
    consumed: [u64; EventKind::TABLE_LEN],
    /// First and last offset of each (kind, partition) in the batch.
    first_offsets: BTreeMap<(usize, i32), i64>,
    last_offsets: BTreeMap<(usize, i32), i64>,
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
    if !fetch_writers(ctx, &batch).await {
        // Revoked while it waited: the partitions' next owner replays the batch.
        return Ok(());
    }
    let read = decode(ctx, &batch, now_ms());
    tracing::trace!(first = ?read.first_offsets, last = ?read.last_offsets, dead = read.dead.len(), "batch decoded");
    let Some(loads) = load_missing(ctx, shard, &operator, &read.decoded, batch.generation).await
    else {
        return Ok(());
    };
    let mut round_trips = u64::from(loads);
    if exactly_once {
        prune_outboxes(shard, &read);
    }

    // Apply events in arrival order (per partition, offset order).
    let mut decisions: Vec<Decision> = Vec::new();
    let mut stats = BatchStats::default();
    let mut late = [0u64; EventKind::TABLE_LEN];
    apply_decoded(
        &operator,
        &mut shard.lock(),
        &read.decoded,
        &mut decisions,
        &mut stats,
        &mut late,
    );

    let (decoded, dead) = (&read.decoded, &read.dead);
    let published = if exactly_once {
        // Exactly-once: state (with the outboxes) first, then one transaction for the records
        // and the offsets. See the module docs and `sink`.
        let Some(writes) = flush(ctx, shard, &operator, decoded, batch.generation, batch_no).await
        else {
            return Ok(());
        };
        round_trips += u64::from(writes > 0);
        match deliver_in_transaction(ctx, sink, &decisions, dead, &read.last_offsets, &batch)
            .await?
        {
            Some(published) => published,
            // Aborted by a rebalance: the partitions' next owner replays the batch and re-emits
            // its decisions from the outboxes just flushed.
            None => return Ok(()),
        }
    } else {
        // At-least-once: produce and await acknowledgements before anything is made durable
        // (retried while the broker is unreachable), then flush, then store the offsets.
        let Some(published) =
            publish_at_least_once(ctx, sink, &decisions, dead, batch.generation).await?
        else {
            // Revoked while its delivery was retried: nothing of the batch is flushed or
            // stored; its customers leave the cache with the old assignment, and the
            // partitions' next owner replays it.
            return Ok(());
        };
        let Some(writes) = flush(ctx, shard, &operator, decoded, batch.generation, batch_no).await
        else {
            // Published but given up (see `with_retry`): the next owner replays the batch and
            // produces the same records again (at-least-once allows byte-identical repeats).
            return Ok(());
        };
        round_trips += u64::from(writes > 0);
        for ((kind, partition), offset) in &read.last_offsets {
            ctx.offsets
                .store(&ctx.input_topics[*kind], *partition, *offset);
        }
        published
    };
    count_decisions(&decisions);
    shard.evict(ctx.cache_max);
    let done = Done {
        read: &read,
        stats: &stats,
        late: &late,
        round_trips,
        published: &published,
    };
    done.record(ctx, &batch);
    tracing::trace!(
        records = batch.records.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "batch done"
    );
    Ok(())
}

/// Fetches and resolves the writer schemas of new schema ids before any record is decoded (with
/// a Schema Registry): a registry outage holds the batch, nothing dead-lettered (see
/// `codec::fetch`). `false` when the batch's partitions were revoked while it waited.
async fn fetch_writers(ctx: &WorkerContext, batch: &Batch) -> bool {
    let Some(fetcher) = &ctx.writer_schemas else {
        return true;
    };
    let missing: std::collections::BTreeSet<(EventKind, u32)> = batch
        .records
        .iter()
        .filter_map(|(kind, msg)| Some((*kind, ctx.codec.missing_writer(*kind, msg.payload())?)))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let owned = || ctx.assignment.generation() == batch.generation;
    let topic = |kind: EventKind| ctx.input_topics[kind.index()].clone();
    fetcher
        .prepare(&ctx.codec, &missing, topic, &ctx.health, owned)
        .await
}

/// Decodes every record of the batch; a record that does not decode becomes a dead letter with
/// its reason (counted by topic and kind).
fn decode(ctx: &WorkerContext, batch: &Batch, now: i64) -> Read {
    let m = metrics();
    let mut read = Read {
        decoded: Vec::with_capacity(batch.records.len()),
        dead: Vec::new(),
        consumed: [0u64; EventKind::TABLE_LEN],
        first_offsets: BTreeMap::new(),
        last_offsets: BTreeMap::new(),
    };
    for (kind, msg) in &batch.records {
        read.consumed[kind.index()] += 1;
        read.last_offsets
            .insert((kind.index(), msg.partition()), msg.offset());
        read.first_offsets
            .entry((kind.index(), msg.partition()))
            .or_insert(msg.offset());
        match ctx.codec.decode(*kind, msg.key(), msg.payload(), now) {
            Ok(event) => {
                let pos = SourcePos {
                    kind: kind.index() as u8,
                    partition: msg.partition(),
                    offset: msg.offset(),
                };
                read.decoded.push(Decoded { event, pos });
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
                read.dead.push(DeadLetter {
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
    read
}

/// Loads the customers the batch touches that the cache does not hold: one round trip, retried
/// until it succeeds. `Some(true)` when a round trip was made; `None` when the batch was given up
/// (its partitions were reassigned while the store failed).
async fn load_missing(
    ctx: &WorkerContext,
    shard: &Shard,
    operator: &Operator,
    decoded: &[Decoded],
    generation: u64,
) -> Option<bool> {
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
    if missing.is_empty() {
        return Some(false);
    }
    let keys: Vec<CustomerKey> = missing.iter().map(|(_, k, _)| k.clone()).collect();
    let loaded = with_retry(ctx, "load", generation, || ctx.store.load(&keys)).await?;
    let mut cache = shard.lock();
    for ((id, key, partition), bytes) in missing.into_iter().zip(loaded) {
        let mut state = match bytes.map(|b| CustomerState::from_bytes(&b)) {
            Some(Ok(state)) => state,
            Some(Err(e)) => {
                // A state that does not parse is replaced, not retried: it cannot get better.
                metrics().state_errors.with_label_values(&["corrupt"]).inc();
                tracing::error!(error = %e, "stored customer state does not parse; starting it afresh");
                CustomerState::default()
            }
            None => CustomerState::default(),
        };
        operator.align(&mut state);
        cache.insert(id, Cached::loaded(key, state, partition));
    }
    Some(true)
}

/// Exactly-once: outbox entries below this batch's first offset of their partition were committed
/// by an earlier transaction, so no replay can need them. Once per customer, every partition of
/// the batch.
fn prune_outboxes(shard: &Shard, read: &Read) {
    let mut cache = shard.lock();
    let mut pruned = HashSet::new();
    for d in &read.decoded {
        let id = d.event.customer_id();
        if !pruned.insert(id) {
            continue;
        }
        if let Some(c) = cache.get_mut(id) {
            for (&(kind, partition), &first) in &read.first_offsets {
                c.state.prune_outbox(kind as u8, partition, first);
            }
        }
    }
}

/// A delivered batch's figures, for the metrics and the progress counters.
struct Done<'a> {
    read: &'a Read,
    stats: &'a BatchStats,
    late: &'a [u64; EventKind::TABLE_LEN],
    round_trips: u64,
    published: &'a crate::sink::Published,
}

impl Done<'_> {
    /// Publishes the batch's metrics once every record is acknowledged (at-least-once) or
    /// committed (exactly-once).
    fn record(&self, ctx: &WorkerContext, batch: &Batch) {
        let m = metrics();
        // One latency value per record, summed locally and published once (no atomic per record).
        if let Some(received) = batch.received {
            let latency = received.elapsed().as_secs_f64();
            let local = m.processing_latency.local();
            for _ in 0..batch.records.len() {
                local.observe(latency);
            }
            local.flush();
        }
        let per_topic = |counter: &prometheus::IntCounterVec, counts: &[u64]| {
            for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                counter
                    .with_label_values(&[&ctx.input_topics[i]])
                    .inc_by(*n);
            }
        };
        per_topic(&m.events_consumed, &self.read.consumed);
        per_topic(&m.late_events, self.late);
        m.replayed_events.inc_by(self.stats.replayed);
        m.feature_updates.inc_by(self.stats.feature_updates);
        m.batch_size.observe(batch.records.len() as f64);
        m.cached_customers
            .set(ctx.shards.iter().map(|s| s.len() as i64).sum());
        m.state_round_trips.inc_by(self.round_trips);
        let p = &ctx.progress;
        p.records
            .fetch_add(batch.records.len() as u64, Ordering::Relaxed);
        p.events
            .fetch_add(self.read.decoded.len() as u64, Ordering::Relaxed);
        p.dead_letters
            .fetch_add(self.published.dead_letters, Ordering::Relaxed);
        p.offers.fetch_add(self.published.offers, Ordering::Relaxed);
        p.alerts.fetch_add(self.published.alerts, Ordering::Relaxed);
    }
}
