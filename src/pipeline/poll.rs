//! The poll loop: starts the workers, then routes each record to the worker owning its partition
//! until shutdown or a worker's failure. A full batch is handed over at once, a partial one at the
//! next linger tick. It waits at most `kafka.pause_after` for a worker: past that, the worker's
//! partitions are paused (see `source::dispatch`), so `recv()` goes on serving rebalances and
//! group membership however long a worker is held up.
//!
//! Between `recv()` and the batches sits the event-time alignment (`source::align`): records
//! reach a worker in record-timestamp order across the input topics of their partition group,
//! not in the order they were fetched.

use super::build::Built;
use super::PipelineError;
use crate::config::Settings;
use crate::event::EventKind;
use crate::source::align::{Aligner, Release};
use crate::source::dispatch::Dispatcher;
use crate::source::ends::Watermarks;
use crate::source::Consumer;
use crate::telemetry::http::Health;
use crate::worker::{self, Batch, WorkerError};
use rdkafka::consumer::Consumer as _;
use rdkafka::message::{Message, OwnedMessage};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the poll loop leaves to the drain.
pub(super) struct Polled {
    /// The dispatcher, holding the queues and any batch a held worker has not taken.
    pub dispatch: Dispatcher,
    /// Each worker's partial batch.
    pub pending: Vec<Batch>,
    /// The running workers.
    pub workers: tokio::task::JoinSet<Result<(), WorkerError>>,
    /// Why the loop stopped, when it was not the shutdown signal.
    pub failure: Option<PipelineError>,
}

/// The poll loop, see the module docs.
pub(super) async fn poll(
    settings: &Settings,
    built: &Built,
    health: &Health,
    shutdown: &mut watch::Receiver<bool>,
) -> Polled {
    let Built {
        ctx,
        consumer,
        assignment,
        kind_of,
        topics,
        exactly_once,
        ..
    } = built;
    let k = &settings.kafka;
    let mut queues = Vec::with_capacity(k.workers);
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..k.workers {
        let (tx, rx) = mpsc::channel::<Batch>(k.queue_batches);
        queues.push(tx);
        workers.spawn(worker::run(ctx.clone(), index, rx));
    }
    health.set_ready(true);
    tracing::info!(workers = k.workers, topics = *topics, "pipeline running");

    let mut pending: Vec<Batch> = (0..k.workers).map(|_| Batch::default()).collect();
    let mut dispatch = Dispatcher::new(queues, k.pause_after);
    let mut under = Under {
        generation: assignment.generation(),
        group: group_of(consumer, *exactly_once),
        exactly_once: *exactly_once,
    };
    let (rank_of, ranked) = ranks(kind_of);
    let mut aligner: Aligner<(EventKind, OwnedMessage)> =
        Aligner::new(ranked.len(), k.max_idle, k.align_max_buffered);
    let mut ends = Watermarks::new(&ranked);
    let mut released: Vec<(EventKind, OwnedMessage)> = Vec::new();
    let m = crate::telemetry::metrics::metrics();
    // When the consumer last delivered a record: a group's wait runs out only once it is quiet.
    let mut quiet_since = std::time::Instant::now();
    let mut linger = tokio::time::interval(k.batch_linger);
    linger.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failure: Option<PipelineError> = None;
    let (mut consumer_errors, mut last_error_log) = (0u64, None::<std::time::Instant>);
    // The poll loop: route each record to the worker owning its partition; a full batch is handed
    // over at once, a partial one at the next linger tick. It waits at most `kafka.pause_after`
    // for a worker: past that, the worker's partitions are paused (see `source::dispatch`), so
    // `recv()` goes on serving rebalances and group membership however long a worker is held up.
    'poll: loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break 'poll,
            done = workers.join_next(), if !workers.is_empty() => {
                // A worker only ends early on an error (or a panic): stop with it.
                failure = match done {
                    Some(Ok(Err(e))) => Some(e.into()),
                    Some(Err(join)) => Some(PipelineError::WorkerPanic(join.to_string())),
                    _ => None,
                };
                break 'poll;
            }
            _ = linger.tick() => {
                let now = assignment.generation();
                if let Err(e) = under.follow(now, consumer, &mut dispatch, &mut pending, &mut aligner, &mut ends) {
                    failure = Some(e);
                    break 'poll;
                }
                if dispatch.retry(consumer.as_ref()).is_err() {
                    break 'poll;
                }
                // A wait that has run out releases without a new record arriving.
                aligner.release_all(std::time::Instant::now(), quiet_since, &mut ends.view(consumer), &mut |r, how| {
                    count_unaligned(m, &r.1, how);
                    released.push(r);
                });
                m.aligned_buffered.set(aligner.buffered() as i64);
                for (kind, record) in released.drain(..) {
                    let w = record.partition().rem_euclid(k.workers as i32) as usize;
                    stage(&mut pending[w], now, &under, kind, record);
                    if pending[w].records.len() >= k.batch_max_events && !dispatch.is_held(w) {
                        let batch = std::mem::take(&mut pending[w]);
                        if dispatch.send(consumer.as_ref(), w, batch).await.is_err() {
                            break 'poll;
                        }
                        quiet_since = std::time::Instant::now(); // waiting for a worker is not quiet
                    }
                }
                for (w, batch) in pending.iter_mut().enumerate() {
                    if !batch.records.is_empty() && !dispatch.is_held(w) {
                        if dispatch.send(consumer.as_ref(), w, std::mem::take(batch)).await.is_err() {
                            break 'poll;
                        }
                        quiet_since = std::time::Instant::now();
                    }
                }
            }
            msg = consumer.recv() => match msg {
                Ok(msg) => {
                    let now = assignment.generation();
                    if let Err(e) = under.follow(now, consumer, &mut dispatch, &mut pending, &mut aligner, &mut ends) {
                        failure = Some(e);
                        break 'poll;
                    }
                    let Some(kind) = kind_of.get(msg.topic()).copied() else { continue };
                    let rank = rank_of.get(msg.topic()).copied().unwrap_or(0);
                    let partition = msg.partition();
                    // No timestamp (a very old producer): taken as early as possible.
                    let ts = msg.timestamp().to_millis().unwrap_or(i64::MIN);
                    let opened = aligner.push(rank, partition, msg.offset(), ts, (kind, msg.detach()));
                    let at = std::time::Instant::now();
                    quiet_since = at;
                    // Behind a queue that already held records nothing new can go (the linger
                    // tick finds waits that ran out).
                    if opened {
                        aligner.release(partition, at, quiet_since, &mut ends.view(consumer), &mut |r, how| {
                            count_unaligned(m, &r.1, how);
                            released.push(r);
                        });
                    }
                    let w = partition.rem_euclid(k.workers as i32) as usize;
                    for (kind, record) in released.drain(..) {
                        stage(&mut pending[w], now, &under, kind, record);
                        // A held worker's records (fetched before its pause took effect) wait in
                        // its partial batch, behind the held one.
                        if pending[w].records.len() >= k.batch_max_events && !dispatch.is_held(w) {
                            let batch = std::mem::take(&mut pending[w]);
                            if dispatch.send(consumer.as_ref(), w, batch).await.is_err() { break 'poll; }
                            // Waiting for a worker is not the consumer being quiet.
                            quiet_since = std::time::Instant::now();
                        }
                    }
                }
                Err(e) => {
                    // During a broker outage this repeats about ten times a second: log the
                    // first, then one line with the count every 30 s.
                    consumer_errors += 1;
                    if last_error_log.is_none_or(|at| at.elapsed() >= Duration::from_secs(30)) {
                        tracing::warn!(error = %e, errors = consumer_errors, "consumer error; librdkafka retries");
                        last_error_log = Some(std::time::Instant::now());
                        consumer_errors = 0;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    Polled {
        dispatch,
        pending,
        workers,
        failure,
    }
}

/// The assignment the loop polls under, and (exactly-once) the group's metadata under it, given
/// to each batch (see `worker::Batch::group`).
struct Under {
    generation: u64,
    group: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
    exactly_once: bool,
}

impl Under {
    /// Follows the assignment to generation `now` when a rebalance has run (see
    /// [`new_assignment`]); an error stops the loop.
    fn follow(
        &mut self,
        now: u64,
        consumer: &Consumer,
        dispatch: &mut Dispatcher,
        pending: &mut [Batch],
        aligner: &mut Aligner<(EventKind, OwnedMessage)>,
        ends: &mut Watermarks,
    ) -> Result<(), PipelineError> {
        if now != self.generation {
            new_assignment(consumer, dispatch, pending, now)?;
            // Records held for alignment are fetched again from the committed offsets, as the
            // partial batches are.
            aligner.clear();
            ends.reset(consumer);
            self.generation = now;
            self.group = group_of(consumer, self.exactly_once);
        }
        Ok(())
    }
}

/// The group's metadata now, in exactly-once mode (its offsets go into each transaction).
fn group_of(
    consumer: &Consumer,
    exactly_once: bool,
) -> Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>> {
    exactly_once
        .then(|| consumer.group_metadata().map(Arc::new))
        .flatten()
}

/// The poll loop's step when it sees a new assignment generation (a rebalance ran inside
/// `recv()`): refuses an assignment that is not co-partitioned (before any of its records is
/// processed), drops what was polled or held under the old one (its records are fetched again
/// from the committed offsets) and resumes any partition paused under it.
fn new_assignment(
    consumer: &Consumer,
    dispatch: &mut Dispatcher,
    pending: &mut [Batch],
    generation: u64,
) -> Result<(), PipelineError> {
    if let Some(why) = consumer.context().broken() {
        return Err(PipelineError::NotCoPartitioned(why.to_string()));
    }
    dispatch.reset(consumer);
    for batch in pending.iter_mut() {
        *batch = Batch {
            generation,
            ..Batch::default()
        };
    }
    Ok(())
}

/// Adds a released record to a worker's partial batch; a batch's first record stamps it with the
/// assignment generation, the group's metadata and when it was received.
fn stage(batch: &mut Batch, generation: u64, under: &Under, kind: EventKind, record: OwnedMessage) {
    if batch.records.is_empty() {
        batch.generation = generation;
        batch.group = under.group.clone();
        batch.received = Some(std::time::Instant::now());
    }
    batch.records.push((kind, record));
}

/// The input topics by rank (the alignment's tie-break on equal timestamps): the profile topic
/// first (a customer's profile applies before activity of the same millisecond), erasure
/// requests last (an erasure covers what happened up to its time), the others in the order of
/// the input topics; and each topic's rank by name.
fn ranks(
    kind_of: &rustc_hash::FxHashMap<String, EventKind>,
) -> (rustc_hash::FxHashMap<String, usize>, Vec<String>) {
    let mut topics: Vec<(&String, &EventKind)> = kind_of.iter().collect();
    topics.sort_by_key(|(name, kind)| {
        let tier = match kind {
            EventKind::Profile => 0,
            EventKind::Erasure => 2,
            _ => 1,
        };
        (tier, kind.index(), name.as_str())
    });
    let ranked: Vec<String> = topics.iter().map(|(name, _)| (*name).clone()).collect();
    let rank_of = ranked
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), i))
        .collect();
    (rank_of, ranked)
}

/// Counts a record released out of event-time alignment.
fn count_unaligned(m: &crate::telemetry::metrics::Metrics, record: &OwnedMessage, how: Release) {
    let why = match how {
        Release::Aligned => return,
        Release::Waited => "waited",
        Release::Full => "full",
    };
    m.unaligned_records
        .with_label_values(&[record.topic(), why])
        .inc();
}
