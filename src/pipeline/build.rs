//! Building a run: the codec and rules, the consumer with its rebalance hook, the producers (one
//! transactional producer per worker in exactly-once mode), the rules watcher and the workers'
//! shared context. Nothing is consumed here: a failure leaves nothing to undo.

use super::{codec_and_registry, ConsumerOffsets, Dependencies, PipelineError};
use crate::config::{Delivery, Settings};
use crate::event::EventKind;
use crate::rules::book::RuleBook;
use crate::rules_topic::watch::{operator_builder, RuleWatcher};
use crate::sink::Sink;
use crate::source::assignment::Assignment;
use crate::source::{self, Consumer, SourceContext};
use crate::state::KeyHasher;
use crate::worker::{self, WorkerContext};
use arc_swap::ArcSwap;
use rdkafka::consumer::Consumer as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Everything the poll loop and the drain need, built before the first poll.
pub(super) struct Built {
    /// The workers' shared context.
    pub ctx: Arc<WorkerContext>,
    /// The input consumer, subscribed.
    pub consumer: Arc<Consumer>,
    /// The shared (non-transactional) producer, flushed at shutdown.
    pub sink: Arc<Sink>,
    /// Assignment generations (bumped by every rebalance).
    pub assignment: Arc<Assignment>,
    /// Input kind by topic name.
    pub kind_of: rustc_hash::FxHashMap<String, EventKind>,
    /// Input topics subscribed.
    pub topics: usize,
    /// The rules watcher, when `rules.watch_topic`.
    pub rules_task: Option<tokio::task::JoinHandle<()>>,
    /// `kafka.delivery = "exactly_once"`.
    pub exactly_once: bool,
}

/// Builds a run (see the module docs).
pub(super) async fn build(
    settings: &Settings,
    deps: Dependencies,
    shutdown: &watch::Receiver<bool>,
) -> Result<Built, PipelineError> {
    let secret = settings
        .customer_key_secret
        .as_ref()
        .ok_or(PipelineError::NoSecret)?;
    let (codec, writer_schemas) = codec_and_registry(settings, &[]).await?;
    let features = Arc::new(settings.features.load_in(&settings.catalog)?);
    let docs = settings
        .rules
        .sources()
        .map_err(|e| PipelineError::Rules(crate::rules::load::describe(&e)))?;
    let book = RuleBook::from_sources(features.clone(), &docs)
        .map_err(|e| PipelineError::Rules(crate::rules::load::describe(&e)))?;
    // One table of learned propensities for every worker and every rule-set version.
    let models = crate::learning::model::Models::new();
    // Exactly-once keeps each event's decisions in the customer's outbox (see `sink`).
    let outbox = settings.kafka.delivery == Delivery::ExactlyOnce;
    let build = operator_builder(features.clone(), &settings.operator, models, outbox);
    let operator = Arc::new(ArcSwap::from_pointee(build(book.rule_set())));
    // A customer's state lives as long as anything in it is read: the longest feature window,
    // or an alert waiting for its case's outcome.
    let ttl_secs = (Duration::from_millis(features.longest_window_ms() as u64)
        .max(settings.operator.alert_outcome_window)
        + settings.state.ttl_margin)
        .as_secs();

    let shards: Vec<Arc<worker::Shard>> = (0..settings.kafka.workers)
        .map(|_| Arc::default())
        .collect();
    // Every revoke and assign starts a new assignment generation (see SourceContext).
    // A revoke returns only after the batches in progress have finished and every worker has
    // taken its checkpoint (see source::assignment).
    let assignment = Arc::new(Assignment::default());
    let (rebalancing, revoke_timeout) = (assignment.clone(), settings.kafka.revoke_timeout);
    // Built-in inputs, then the sources declared in `[[source]]`.
    let inputs = settings.input_topics();
    let input_names: Vec<&str> = inputs.iter().map(|(t, _)| t.as_str()).collect();
    let context = SourceContext::new(
        Arc::new(move || {
            // The hook runs inside `recv()`, on a runtime thread, and blocks until the workers'
            // batches in progress finish and their checkpoints are taken: on the multi-thread runtime `block_in_place` hands this
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
                "a batch or checkpoint was still in progress at the end of kafka.revoke_timeout; its partitions' next owner replays what it had not made durable"
            );
            }
        }),
        &input_names,
    );
    let consumer: Arc<Consumer> =
        Arc::new(source::consumer_config(&settings.kafka).create_with_context(context)?);
    let exactly_once = settings.kafka.delivery == Delivery::ExactlyOnce;
    consumer.subscribe(&input_names)?;
    let producer =
        crate::sink::transport::create(&crate::sink::config::producer_config(&settings.kafka))?;
    let sink = Arc::new(Sink::new(producer, codec.clone(), &settings.topics));
    // Exactly-once: one transactional producer per worker (a transaction belongs to one
    // producer), each fencing any earlier incarnation of its id. At-least-once: the shared one.
    let mut sinks = Vec::with_capacity(settings.kafka.workers);
    for index in 0..settings.kafka.workers {
        if exactly_once {
            let producer = crate::sink::transport::create(
                &crate::sink::config::transactional_producer_config(&settings.kafka, index),
            )?;
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
    crate::rules_topic::watch::publish_metrics(&operator.load().rules().clone());
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
    // What was learned before this start, before the first decision. The models are the
    // consumer group's: every instance of this application shares them.
    let model_store = deps.store.models(&settings.kafka.group_id);
    if let Some(store) = &model_store {
        worker::load_models(&**store, &operator.load())
            .await
            .map_err(PipelineError::Models)?;
    }

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
        checkpoint_interval: settings.state.checkpoint_interval,
        checkpoint_max_dirty: settings.state.checkpoint_max_dirty,
        hasher: KeyHasher::new(secret.expose().as_bytes()),
        offsets: Arc::new(ConsumerOffsets(consumer.clone())),
        ttl_secs,
        state_format: settings.state.write_format,
        health: deps.health.clone(),
        progress: deps.progress,
        input_topics,
        writer_schemas,
        models: model_store,
    });

    Ok(Built {
        ctx,
        consumer,
        sink,
        assignment,
        kind_of,
        topics: input_names.len(),
        rules_task,
        exactly_once,
    })
}
