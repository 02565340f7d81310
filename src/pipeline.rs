//! Builds and wires the stages: source → decode → operator → state → sinks. Owns shutdown order.
//!
//! Shutdown (on the `shutdown` signal): stop polling → close the worker queues so the workers drain
//! what they hold (produce, flush state, store offsets) → flush the producer → commit stored offsets
//! synchronously → return. A worker error (a produce that failed for good) stops the pipeline with
//! that error and nothing past its batch is committed.

use crate::codec::Codec;
use crate::config::{Delivery, Settings};
use crate::event::EventKind;
use crate::operator::Operator;
use crate::rules::book::RuleBook;
use crate::rules::watch::{BuildOperator, RuleWatcher};
use crate::sink::Sink;
use crate::source::assignment::Assignment;
use crate::source::dispatch::Dispatcher;
use crate::source::{self, Consumer, SourceContext};
use crate::state::{KeyHasher, StateStore};
use crate::telemetry::http::Health;
use crate::worker::{self, Batch, OffsetStore, Progress, WorkerContext};
use arc_swap::ArcSwap;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

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
    RulesTopic(#[from] crate::rules::watch::WatchError),
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
/// the ids the registry gives their schemas (looked up, or registered, once at start).
pub async fn codec_and_registry(
    settings: &Settings,
) -> Result<(Arc<Codec>, Option<Arc<crate::codec::fetch::Fetcher>>), PipelineError> {
    let mut options = settings.codec_options();
    if settings.schema_registry.url.is_none() {
        return Ok((Arc::new(Codec::new(&options)?), None));
    }
    let registry = crate::registry::Registry::new(&settings.schema_registry)?;
    let outputs: Vec<_> = crate::registry::tooling::local_schemas(&settings.topics)
        .into_iter()
        .filter(|s| {
            crate::event::EventKind::ALL
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

/// Runs the pipeline until `shutdown` turns true, then drains and commits.
pub async fn run(
    settings: &Settings,
    deps: Dependencies,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), PipelineError> {
    let secret = settings
        .customer_key_secret
        .as_ref()
        .ok_or(PipelineError::NoSecret)?;
    let (codec, writer_schemas) = codec_and_registry(settings).await?;
    let features = Arc::new(settings.features.load()?);
    let docs = settings
        .rules
        .documents()
        .map_err(|e| PipelineError::Rules(crate::rules::load::describe(&e)))?;
    let book = RuleBook::new(features.clone(), &docs)
        .map_err(|e| PipelineError::Rules(crate::rules::load::describe(&e)))?;
    let build: BuildOperator = {
        let (features, op_settings) = (features.clone(), settings.operator.clone());
        // Exactly-once keeps each event's decisions in the customer's outbox (see `sink`).
        let outbox = settings.kafka.delivery == Delivery::ExactlyOnce;
        Box::new(move |rules| {
            Operator::new(
                features.clone(),
                rules,
                &op_settings,
                op_settings.control_group_percent,
            )
            .with_outbox(outbox)
        })
    };
    let operator = Arc::new(ArcSwap::from_pointee(build(book.rule_set())));
    let ttl_secs = (Duration::from_millis(features.longest_window_ms() as u64)
        + settings.state.ttl_margin)
        .as_secs();

    let shards: Vec<Arc<worker::Shard>> = (0..settings.kafka.workers)
        .map(|_| Arc::default())
        .collect();
    // Every revoke and assign starts a new assignment generation (see SourceContext).
    // A revoke returns only after the batches in progress have finished (see source::assignment).
    let assignment = Arc::new(Assignment::default());
    let (rebalancing, revoke_timeout) = (assignment.clone(), settings.kafka.revoke_timeout);
    // Built-in inputs, then the sources declared in `[[source]]`.
    let inputs = settings.input_topics();
    let input_names: Vec<&str> = inputs.iter().map(|(t, _)| t.as_str()).collect();
    let context = SourceContext::new(
        Arc::new(move || {
            // The hook runs inside `recv()`, on a runtime thread, and blocks until the workers'
            // batches in progress finish: on the multi-thread runtime `block_in_place` hands this
            // thread's other tasks (the workers) to another thread first, so that they can finish
            // even with a single runtime thread (a pod limited to one CPU). A current-thread runtime
            // (unit tests) cannot, and just waits, bounded by revoke_timeout.
            let wait = || rebalancing.rebalance(revoke_timeout);
            let finished = match tokio::runtime::Handle::try_current() {
                Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                    tokio::task::block_in_place(wait)
                }
                _ => wait(),
            };
            if !finished {
                tracing::warn!(
                ?revoke_timeout,
                "a batch was still in progress at the end of kafka.revoke_timeout; its partitions' next owner may replay it"
            );
            }
        }),
        &input_names,
    );
    let consumer: Arc<Consumer> =
        Arc::new(source::consumer_config(&settings.kafka).create_with_context(context)?);
    let exactly_once = settings.kafka.delivery == Delivery::ExactlyOnce;
    consumer.subscribe(&input_names)?;
    let producer: FutureProducer = source::producer_config(&settings.kafka).create()?;
    let sink = Arc::new(Sink::new(producer, codec.clone(), &settings.topics));
    // Exactly-once: one transactional producer per worker (a transaction belongs to one
    // producer), each fencing any earlier incarnation of its id. At-least-once: the shared one.
    let mut sinks = Vec::with_capacity(settings.kafka.workers);
    for index in 0..settings.kafka.workers {
        if exactly_once {
            let producer: FutureProducer =
                source::transactional_producer_config(&settings.kafka, index).create()?;
            let worker_sink = Arc::new(Sink::new(producer, codec.clone(), &settings.topics));
            worker_sink
                .init_transactions(settings.kafka.transaction_timeout)
                .await
                .map_err(worker::WorkerError::from)?;
            sinks.push(worker_sink);
        } else {
            sinks.push(sink.clone());
        }
    }

    // Rules: read the rules topic to its end before the first event, then follow it.
    crate::rules::watch::publish_metrics(&operator.load().rules().clone());
    let rules_task = if settings.rules.watch_topic {
        let mut watcher = RuleWatcher::new(
            source::rules_consumer_config(&settings.kafka).create()?,
            &settings.topics.rules,
            book,
            build,
            operator.clone(),
            Some(sink.clone()),
        );
        watcher.catch_up(settings.rules.startup_timeout).await?;
        Some(tokio::spawn(watcher.run(shutdown.clone())))
    } else {
        None
    };

    // Looked up per record: a fast non-cryptographic hash (topic names are not attacker input).
    let kind_of: rustc_hash::FxHashMap<String, EventKind> = inputs.iter().cloned().collect();
    let input_topics = settings.input_topic_table();
    let ctx = Arc::new(WorkerContext {
        codec,
        operator,
        store: deps.store,
        sinks,
        delivery: settings.kafka.delivery,
        transaction_timeout: settings.kafka.transaction_timeout,
        mirror_transaction_offsets: settings.kafka.mirror_transaction_offsets,
        shards,
        assignment: assignment.clone(),
        // The configured bound is for the instance; each worker holds its share.
        cache_max: (settings.state.cache_max_customers / settings.kafka.workers).max(1),
        hasher: KeyHasher::new(secret.expose().as_bytes()),
        offsets: Arc::new(ConsumerOffsets(consumer.clone())),
        ttl_secs,
        health: deps.health.clone(),
        progress: deps.progress,
        input_topics,
        writer_schemas,
    });

    let k = &settings.kafka;
    let mut queues = Vec::with_capacity(k.workers);
    let mut workers = tokio::task::JoinSet::new();
    for index in 0..k.workers {
        let (tx, rx) = mpsc::channel::<Batch>(k.queue_batches);
        queues.push(tx);
        workers.spawn(worker::run(ctx.clone(), index, rx));
    }
    deps.health.set_ready(true);
    tracing::info!(
        workers = k.workers,
        topics = input_names.len(),
        "pipeline running"
    );

    let mut pending: Vec<Batch> = (0..k.workers).map(|_| Batch::default()).collect();
    let mut dispatch = Dispatcher::new(queues, k.pause_after);
    let mut polled_under = assignment.generation();
    let mut linger = tokio::time::interval(k.batch_linger);
    linger.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failure: Option<PipelineError> = None;
    let (mut consumer_errors, mut last_error_log) = (0u64, None::<std::time::Instant>);
    // Exactly-once: the group's metadata under the current assignment, given to each batch (see
    // `worker::Batch::group`); refreshed with the generation.
    let group_of = |c: &Consumer| {
        exactly_once
            .then(|| c.group_metadata().map(Arc::new))
            .flatten()
    };
    let mut group_now = group_of(&consumer);
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
                if now != polled_under {
                    if let Err(e) = new_assignment(&consumer, &mut dispatch, &mut pending, now) {
                        failure = Some(e);
                        break 'poll;
                    }
                    polled_under = now;
                    group_now = group_of(&consumer);
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
                    if now != polled_under {
                        if let Err(e) = new_assignment(&consumer, &mut dispatch, &mut pending, now) {
                            failure = Some(e);
                            break 'poll;
                        }
                        polled_under = now;
                        group_now = group_of(&consumer);
                    }
                    let Some(kind) = kind_of.get(m.topic()).copied() else { continue };
                    let w = m.partition().rem_euclid(k.workers as i32) as usize;
                    if pending[w].records.is_empty() {
                        pending[w].generation = now;
                        pending[w].group = group_now.clone();
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

    // Drain: hand over what was polled (held batches first, in order), close the queues, wait
    // for the workers.
    deps.health.set_ready(false);
    let queues = dispatch.into_queues(failure.is_none()).await;
    if failure.is_none() {
        for (i, batch) in pending.into_iter().enumerate() {
            if !batch.records.is_empty() {
                let _ = queues[i].send(batch).await;
            }
        }
    }
    drop(queues);
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(Err(e)) => {
                failure.get_or_insert(e.into());
            }
            Err(join) => {
                failure.get_or_insert(PipelineError::WorkerPanic(join.to_string()));
            }
            Ok(Ok(())) => {}
        }
    }
    sink.flush(Duration::from_secs(10));
    if failure.is_none() {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("offsets committed at shutdown"),
            // Auto-commit already committed every stored offset: nothing new to commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {
                tracing::info!("offsets already committed at shutdown")
            }
            Err(e) => {
                tracing::warn!(error = %e, "final offset commit failed; the next run replays from the last commit")
            }
        }
    }
    consumer.unsubscribe();
    if let Some(task) = rules_task {
        // The watcher stops on the shutdown signal; after a worker failure it is stopped here.
        // Awaited, so its consumer is closed before the caller tears the broker down.
        task.abort();
        let _ = task.await;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
