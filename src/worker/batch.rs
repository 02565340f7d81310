//! One batch: writer schemas fetched, records decoded (bad ones dead-lettered), missing
//! customers loaded, events applied to the cache, and (at-least-once) the batch's outputs
//! produced and acknowledged. What it leaves to make durable — dirty customers, offsets and
//! (exactly-once) outputs — joins the worker's open checkpoint interval (see `checkpoint`).

use super::cache::{Cache, Cached, Shard};
use super::checkpoint::{with_retry, Interval};
use super::delivery::{capped, count_decisions, publish_at_least_once, DEAD_LETTER_MAX_BYTES};
use super::{Batch, Worker, WorkerContext, WorkerError};
use crate::clock::now_ms;
use crate::customer::CustomerState;
use crate::event::{Event, EventKind};
use crate::operator::{BatchStats, Operator, SourcePos};
use crate::output::{DeadLetter, Decision};
use crate::state::CustomerKey;
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
/// decisions, marking changed customers dirty and appending each customer that becomes dirty to
/// `dirtied` (once until it is flushed). Pure CPU work, no allocation of its own beyond those
/// vectors: the hot loop of a batch, shared by the worker and `benches/operator.rs`.
pub fn apply_decoded(
    operator: &Operator,
    cache: &mut Cache,
    decoded: &[Decoded],
    decisions: &mut Vec<Decision>,
    stats: &mut BatchStats,
    late: &mut [u64; EventKind::TABLE_LEN],
    dirtied: &mut Vec<compact_str::CompactString>,
) {
    super::cache::each_prefetched(cache, decoded, |cache, d| {
        if let Some(cached) = cache.get_mut(d.event.customer_id()) {
            let before = stats.too_late;
            // Copied first only while a checkpoint still encodes the state's last snapshot.
            let state = std::sync::Arc::make_mut(&mut cached.state);
            operator.apply(state, &d.event, Some(d.pos), decisions, stats);
            if stats.too_late > before {
                late[d.pos.kind as usize] += 1;
            }
            if !cached.dirty {
                cached.dirty = true;
                dirtied.push(d.event.customer_id().into());
            }
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

impl Worker {
    /// Processes one batch (see the module docs), then takes the checkpoint if it is due. A
    /// batch polled under an earlier assignment, or while a rebalance waits, is discarded: its
    /// records are read again from the offsets of the last checkpoint by whoever owns their
    /// partitions.
    pub async fn process(&mut self, batch: Batch) -> Result<(), WorkerError> {
        let assignment = self.ctx.assignment.clone();
        // Registered as in progress under the assignment's lock: a revoke waits for it.
        let Some(in_progress) = assignment.begin(batch.generation) else {
            tracing::debug!(
                records = batch.records.len(),
                "batch of an earlier assignment discarded"
            );
            return Ok(());
        };
        if self.generation != batch.generation {
            // A new assignment: an interval still open under the old one was given up by its
            // rebalance (the cache is emptied below, once the checkpoint being written, if any,
            // has ended: it may hold customers this worker keeps), and commits of the old one
            // say nothing about the new partitions.
            self.settle().await?;
            self.interval = Interval::default();
            self.committed.clear();
            self.generation = batch.generation;
        }
        self.apply_batch(batch).await?;
        drop(in_progress);
        if self.requests.has_changed().unwrap_or(false) {
            // A rebalance waits for this one.
            self.checkpoint().await?;
        } else if self.interval.due(&self.ctx, self.every()) {
            self.checkpoint_beside().await?;
        }
        Ok(())
    }

    /// The batch itself: decode, load, apply, and (at-least-once) deliver.
    async fn apply_batch(&mut self, batch: Batch) -> Result<(), WorkerError> {
        let ctx = self.ctx.clone();
        let (shard, sink) = (&*ctx.shards[self.index], &*ctx.sinks[self.index]);
        let exactly_once = ctx.delivery == crate::config::Delivery::ExactlyOnce;
        shard.enter_generation(batch.generation);
        // One rule-set version decides the whole batch: a hot reload swaps the operator between
        // batches, never inside one.
        let operator = ctx.operator.load_full();
        shard.batches.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        if !fetch_writers(&ctx, &batch).await {
            // Revoked while it waited: the partitions' next owner replays the batch.
            return Ok(());
        }
        let mut read = decode(&ctx, &batch, now_ms());
        tracing::trace!(first = ?read.first_offsets, last = ?read.last_offsets, dead = read.dead.len(), "batch decoded");
        let Some(loads) =
            load_missing(&ctx, shard, &operator, &read.decoded, batch.generation).await
        else {
            return Ok(());
        };
        if !self.interval.open(&ctx, batch.generation, batch.received) {
            return Ok(());
        }
        if exactly_once {
            // Where this worker's partitions resume is committed: the first offset it reads of
            // a partition under an assignment is its committed offset.
            for (key, first) in &read.first_offsets {
                self.committed.entry(*key).or_insert(*first);
            }
            prune_outboxes(shard, &read, &self.committed);
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
            &mut self.interval.dirty,
        );
        // Inputs the operator refused go to the dead letters with the batch's own, delivered
        // as they are (in the checkpoint's transaction with exactly-once).
        dead_letter_rejected(&ctx, &batch, &mut stats, &mut read.dead, now_ms());
        count_closed(&stats.closed);

        let interval = &mut self.interval;
        if exactly_once {
            // Delivered with the interval's checkpoint, in its transaction.
            interval
                .received
                .extend(batch.received.map(|r| (r, batch.records.len())));
            interval.decisions.extend(decisions);
            interval.dead.extend(read.dead.iter().cloned());
            if batch.group.is_some() {
                interval.group = batch.group.clone();
            }
        } else {
            // At-least-once: produce and await acknowledgements before the checkpoint can make
            // anything durable (retried while the broker is unreachable).
            let Some(published) =
                publish_at_least_once(&ctx, sink, &decisions, &read.dead, batch.generation).await?
            else {
                // Revoked while its delivery was retried: the interval is given up with the
                // old assignment, and the partitions' next owner replays it.
                return Ok(());
            };
            count_decisions(&decisions);
            interval.counts.offers += published.offers;
            interval.counts.alerts += published.alerts;
            interval.counts.dead_letters += published.dead_letters;
            if let Some(received) = batch.received {
                let latency = received.elapsed().as_secs_f64();
                let local = metrics().processing_latency.local();
                for _ in 0..batch.records.len() {
                    local.observe(latency);
                }
                local.flush();
            }
        }
        interval.learned.append(&mut stats.learned);
        interval.uplift.append(&mut stats.uplift);
        for (key, offset) in &read.last_offsets {
            interval.offsets.insert(*key, *offset);
        }
        interval.counts.records += batch.records.len() as u64;
        interval.counts.events += read.decoded.len() as u64;
        shard.evict(ctx.cache_max);
        let done = Done {
            read: &read,
            stats: &stats,
            late: &late,
            round_trips: u64::from(loads),
        };
        done.record(&ctx, &batch);
        tracing::trace!(
            records = batch.records.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "batch applied"
        );
        Ok(())
    }
}

/// The dead letters of the records the operator refused after decoding (`stats.rejected`):
/// their bytes from the batch, with the reason. A refusal is deterministic (the same record on
/// the same state), so a replayed batch refuses it again.
fn dead_letter_rejected(
    ctx: &WorkerContext,
    batch: &Batch,
    stats: &mut BatchStats,
    dead: &mut Vec<DeadLetter>,
    now: i64,
) {
    use rdkafka::Message;
    let m = metrics();
    for r in stats.rejected.drain(..) {
        let found = r.pos.and_then(|pos| {
            batch.records.iter().find(|(kind, msg)| {
                kind.index() == usize::from(pos.kind)
                    && msg.partition() == pos.partition
                    && msg.offset() == pos.offset
            })
        });
        let (Some(pos), Some((_, msg))) = (r.pos, found) else {
            // Every event the worker applies has its position in the batch: a defect.
            tracing::error!(reason = %r.reason, "a refused input not found in its batch; not dead-lettered");
            continue;
        };
        let topic = &ctx.input_topics[usize::from(pos.kind)];
        m.dead_letters.with_label_values(&[topic, r.kind]).inc();
        tracing::warn!(topic = %topic, partition = pos.partition, offset = pos.offset, reason = %r.reason, "input refused; dead-lettered");
        let (payload, _) = capped(msg.payload());
        let (key, _) = capped(msg.key());
        dead.push(DeadLetter {
            source_topic: msg.topic().to_string(),
            source_partition: msg.partition(),
            source_offset: msg.offset(),
            key,
            payload,
            error_kind: r.kind.to_string(),
            error: r.reason,
            at: now,
        });
    }
}

/// Alerts' cases closed in the batch, into their rules' metrics.
fn count_closed(closed: &[crate::operator::outcomes::Closed]) {
    let m = metrics();
    for c in closed {
        let version = c.version.to_string();
        m.alert_outcomes
            .with_label_values(&[c.rule_id.as_str(), version.as_str(), c.label.as_str()])
            .inc();
        for (challenger, verdict) in &c.challengers {
            m.challenger_alert_outcomes
                .with_label_values(&[
                    c.rule_id.as_str(),
                    challenger.to_string().as_str(),
                    c.label.as_str(),
                    verdict.as_str(),
                ])
                .inc();
        }
        // A duplicate says nothing of the rule: counted above, and no more.
        if c.label == crate::event::AlertLabel::Duplicate {
            continue;
        }
        if let Some((amount, currency)) = &c.amount {
            m.alert_outcome_amount
                .with_label_values(&[
                    c.rule_id.as_str(),
                    version.as_str(),
                    c.label.as_str(),
                    currency.as_str(),
                ])
                .inc_by(u64::try_from(*amount).unwrap_or(0));
        }
        m.alert_time_to_close
            .with_label_values(&[c.rule_id.as_str(), version.as_str()])
            .observe(c.to_close_ms as f64 / 1000.0);
    }
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
        let stored_len = bytes.as_ref().map_or(0, |b| b.len());
        let absent = bytes.is_none();
        let mut state = match bytes.map(|b| CustomerState::from_bytes(&b)) {
            Some(Ok(state)) => state,
            Some(Err(e)) => {
                // A state that does not parse is replaced, not retried: it cannot get better.
                metrics().state_errors.with_label_values(&["corrupt"]).inc();
                tracing::error!(error = %e, "stored customer state does not parse; starting it afresh");
                // Its hash is not known to hold anything: the first write rewrites it whole.
                CustomerState::default()
            }
            None => CustomerState::default(),
        };
        operator.align(&mut state);
        let mut cached = Cached::loaded(key, state, partition);
        cached.hash_absent = absent;
        // Its next encoding starts from the size it had in the store.
        cached.state_len = stored_len;
        super::snapshot::hash_at_load(operator, &mut cached);
        cache.insert(id, cached);
    }
    Some(true)
}

/// Exactly-once: outbox entries below the committed offset of their partition were committed by
/// an earlier transaction, so no replay can need them. Once per customer the batch touches, for
/// the customer's own partition of every input topic.
fn prune_outboxes(shard: &Shard, read: &Read, committed: &BTreeMap<(usize, i32), i64>) {
    let mut cache = shard.lock();
    let mut pruned = HashSet::new();
    for d in &read.decoded {
        let id = d.event.customer_id();
        if !pruned.insert(id) {
            continue;
        }
        if let Some(c) = cache.get_mut(id) {
            if c.state.outbox.is_empty() {
                continue;
            }
            for (&(kind, partition), &next) in committed {
                if partition == c.partition {
                    std::sync::Arc::make_mut(&mut c.state)
                        .prune_outbox(kind as u8, partition, next);
                }
            }
        }
    }
}

/// An applied batch's figures, for the metrics (the progress counters move at the checkpoint).
struct Done<'a> {
    read: &'a Read,
    stats: &'a BatchStats,
    late: &'a [u64; EventKind::TABLE_LEN],
    round_trips: u64,
}

impl Done<'_> {
    /// Publishes the batch's metrics, counted in locals and published once per batch.
    fn record(&self, ctx: &WorkerContext, batch: &Batch) {
        let m = metrics();
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
    }
}
