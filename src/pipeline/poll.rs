//! The poll loop: starts the workers, then routes each record to the worker owning its partition
//! until shutdown or a worker's failure. A full batch is handed over at once, a partial one at the
//! next linger tick. It waits at most `kafka.pause_after` for a worker: past that, the worker's
//! partitions are paused (see `source::dispatch`), so `recv()` goes on serving rebalances and
//! group membership however long a worker is held up.

use super::build::Built;
use super::PipelineError;
use crate::config::Settings;
use crate::source::dispatch::Dispatcher;
use crate::source::Consumer;
use crate::telemetry::http::Health;
use crate::worker::{self, Batch, WorkerError};
use rdkafka::consumer::Consumer as _;
use rdkafka::message::Message;
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
                if let Err(e) = under.follow(now, consumer, &mut dispatch, &mut pending) {
                    failure = Some(e);
                    break 'poll;
                }
                if dispatch.retry(consumer.as_ref()).is_err() {
                    break 'poll;
                }
                for (w, batch) in pending.iter_mut().enumerate() {
                    if !batch.records.is_empty()
                        && !dispatch.is_held(w)
                        && dispatch.send(consumer.as_ref(), w, std::mem::take(batch)).await.is_err()
                    {
                        break 'poll;
                    }
                }
            }
            msg = consumer.recv() => match msg {
                Ok(m) => {
                    let now = assignment.generation();
                    if let Err(e) = under.follow(now, consumer, &mut dispatch, &mut pending) {
                        failure = Some(e);
                        break 'poll;
                    }
                    let Some(kind) = kind_of.get(m.topic()).copied() else { continue };
                    let w = m.partition().rem_euclid(k.workers as i32) as usize;
                    if pending[w].records.is_empty() {
                        pending[w].generation = now;
                        pending[w].group = under.group.clone();
                        pending[w].received = Some(std::time::Instant::now());
                    }
                    pending[w].records.push((kind, m.detach()));
                    // A held worker's records (fetched before its pause took effect) wait in
                    // its partial batch, behind the held one.
                    if pending[w].records.len() >= k.batch_max_events && !dispatch.is_held(w) {
                        let batch = std::mem::take(&mut pending[w]);
                        if dispatch.send(consumer.as_ref(), w, batch).await.is_err() { break 'poll; }
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
    ) -> Result<(), PipelineError> {
        if now != self.generation {
            new_assignment(consumer, dispatch, pending, now)?;
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
