//! Exactly-once against a broker that isolates transactions, with crashes at every step.
//!
//! No broker on this machine isolates transactions (see tests/crash.rs): librdkafka's mock
//! cluster makes what an aborted transaction wrote visible, and Tansu 0.6 has no EndTxn. So this
//! test gives the real worker (`worker::Worker`: batches, checkpoints, the real operator, outbox and Redis state
//! store) a small model of what Kafka promises, through the sink's [`Transport`] seam:
//!
//! - records sent in a transaction become visible only when it commits, and never if it aborts;
//! - `send_offsets_to_transaction` offsets are committed with the transaction, atomically;
//! - a new incarnation of a transactional id aborts the transaction its predecessor left open;
//! - a consumer resumes from the committed offsets.
//!
//! The driver feeds a fixed event set in batches of random size, takes a checkpoint after one to
//! four of them (as `state.checkpoint_interval` would: mostly written beside the next batches,
//! as the interval's timer takes it, sometimes waited for, as a rebalance asks for one), and
//! crashes the "process" at a random step again and again: between two checkpoints (the applied
//! work only in the cache), or at a step of a checkpoint — the state store write, a record sent,
//! the begin, the offsets, or the commit, which, half the time, takes effect and the process dies
//! before it learns so — also while the next batch runs beside that checkpoint. Besides, in half
//! the incarnations one record's delivery times out (the broker unreachable past
//! `message.timeout.ms`), which dooms its transaction: the worker must abort it and do it again. A
//! crash makes every later call fail; the driver then drops the worker's cache, starts a new
//! incarnation and resumes from the committed offsets. At the end, the committed output must
//! hold every offer, alert and audit id of a clean run **exactly once**, and every customer's
//! features must equal the clean run's.

mod common;

use common::harness::{compare, ids, Outcome, Record};
use common::redis_url;
use nbo_stream::config::{Delivery, Settings, StateBackend};
use nbo_stream::event::EventKind;
use nbo_stream::operator::Operator;
use nbo_stream::output::{DecisionAudit, NextBestOffer, RiskAlert};
use nbo_stream::sink::{Acks, Sink, Transport};
use nbo_stream::source::assignment::Assignment;
use nbo_stream::state::{StateError, StateStore, StateWrite};
use nbo_stream::worker::{self, Batch, OffsetStore, Progress, Shard, WorkerContext};
use rand::{Rng, SeedableRng};
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{OwnedMessage, Timestamp};
use rdkafka::TopicPartitionList;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CUSTOMERS: u32 = 600;
const ACTIVITY: usize = 9_000;
const SEED: u64 = 8_128;
const START_MS: i64 = 1_700_000_000_000;
const PARTITIONS: i32 = 4;
const CRASHES: usize = 60;

/// The broker's state: committed records per topic, the open transaction, committed offsets.
#[derive(Default)]
struct Log {
    committed: BTreeMap<String, Vec<Vec<u8>>>,
    open: Vec<(String, Vec<u8>)>,
    open_offsets: Vec<(String, i32, i64)>,
    in_transaction: bool,
    /// A record of the open transaction failed: it can only abort (as Kafka's does).
    open_doomed: bool,
    offsets: HashMap<(String, i32), i64>,
    /// Where this incarnation dies: at the `skip`-th next step of that kind.
    target: Option<Target>,
    crashed: bool,
    commits: u64,
    aborts: u64,
    /// Where the process died, by step.
    deaths: BTreeMap<&'static str, usize>,
    /// Sends left before one whose delivery times out (the broker unreachable past
    /// `message.timeout.ms`): the record may or may not be in the open transaction, which
    /// cannot commit any more; the worker must abort it and do it again.
    flaky_in: Option<u32>,
    timeouts: u64,
    /// The incarnation running now (see [`Model`]).
    epoch: u64,
    /// Whether the driver is in a batch (`Worker::process`) right now: a checkpoint step taken
    /// meanwhile is one written beside the batches.
    in_batch: bool,
    /// Deaths at a checkpoint's step while the worker was in its next batch.
    deaths_beside_a_batch: usize,
}

/// A crash point: the process dies at the (`skip`+1)-th next step named `what`; a commit it dies
/// at reaches the broker or not (`applies`).
#[derive(Clone, Copy, Debug)]
struct Target {
    what: &'static str,
    skip: u32,
    applies: bool,
}

/// The steps a process can die at: between two checkpoints (work applied in the cache only),
/// then each step of a checkpoint.
const STEPS: [&str; 6] = [
    "between checkpoints",
    "state store write",
    "begin",
    "send",
    "send_offsets",
    "commit",
];

/// Every kind of death the test must see: (its name in `Log::deaths`, the step, whether a commit
/// it dies at takes effect).
const DEATHS: [(&str, &str, bool); 7] = [
    ("between checkpoints", "between checkpoints", false),
    ("state store write", "state store write", false),
    ("begin", "begin", false),
    ("send", "send", false),
    ("send_offsets", "send_offsets", false),
    ("commit (applied, unheard)", "commit", true),
    ("commit (lost)", "commit", false),
];

/// A model of a transactional Kafka broker and of the process's death, as one incarnation of
/// the process sees it (`epoch`). A dead incarnation's calls fail, also after the next one has
/// started: a task of the dead one still running (a checkpoint's write is aborted with its worker,
/// but a call already in progress ends) is a zombie, refused as Kafka fences a producer of an
/// older epoch, and as a dead process writes nothing to Redis.
#[derive(Clone, Default)]
struct Model {
    log: Arc<Mutex<Log>>,
    epoch: u64,
}

fn dead() -> KafkaError {
    KafkaError::MessageProduction(RDKafkaErrorCode::Fatal)
}

impl Model {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap()
    }

    /// Whether this incarnation is dead: it crashed, or a later one runs.
    fn is_dead(&self, log: &Log) -> bool {
        log.crashed || log.epoch != self.epoch
    }

    /// One effectful step: Ok to go on, or Err when the process is dead (it just died, or had).
    fn step(&self, log: &mut Log, what: &'static str) -> Result<(), KafkaError> {
        if self.is_dead(log) {
            return Err(dead());
        }
        if Self::dies_at(log, what) {
            log.crashed = true;
            log.target = None;
            return Err(dead());
        }
        Ok(())
    }

    /// Whether this `what` step is the crash point (counts it down otherwise).
    fn dies_at(log: &mut Log, what: &'static str) -> bool {
        let Some(t) = log.target.as_mut() else {
            return false;
        };
        if t.what != what {
            return false;
        }
        if t.skip > 0 {
            t.skip -= 1;
            return false;
        }
        let name = match (what, t.applies) {
            ("commit", true) => "commit (applied, unheard)",
            ("commit", false) => "commit (lost)",
            _ => what,
        };
        *log.deaths.entry(name).or_default() += 1;
        if log.in_batch && what != "between checkpoints" {
            log.deaths_beside_a_batch += 1;
        }
        true
    }

    /// A new incarnation, returned: the open transaction of the dead one is aborted
    /// (init_transactions), and its calls fail from now on.
    fn restart(&self, next_crash: Option<Target>, flaky_in: Option<u32>) -> Model {
        let mut log = self.lock();
        log.epoch += 1;
        let incarnation = Model {
            log: self.log.clone(),
            epoch: log.epoch,
        };
        log.open_doomed = false;
        log.flaky_in = flaky_in;
        if log.in_transaction {
            log.aborts += 1;
        }
        log.open.clear();
        log.open_offsets.clear();
        log.in_transaction = false;
        log.crashed = false;
        log.target = next_crash;
        incarnation
    }

    fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Where the next incarnation dies: at a kind of death not seen yet, while there is one (a
    /// checkpoint written beside the batches makes the order of steps vary from run to run, so
    /// cycling through the steps alone might miss one), then cycling through the steps.
    fn next_target(&self, left: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Target {
        let seen = self.lock().deaths.clone();
        let (what, applies) = DEATHS
            .iter()
            .find(|d| !seen.contains_key(d.0))
            .map_or((STEPS[left % STEPS.len()], rng.random_bool(0.5)), |d| {
                (d.1, d.2)
            });
        Target {
            what,
            skip: rng.random_range(0..4),
            applies,
        }
    }

    /// Whether this incarnation is dead (see [`Model::is_dead`]).
    fn dead(&self) -> bool {
        let log = self.lock();
        self.is_dead(&log)
    }
}

impl Transport for Model {
    fn send(
        &self,
        topic: &str,
        _key: &[u8],
        payload: &[u8],
        acks: &Arc<Acks>,
    ) -> Result<(), KafkaError> {
        let mut log = self.lock();
        self.step(&mut log, "send")?;
        assert!(log.in_transaction, "a record sent outside a transaction");
        log.open.push((topic.to_string(), payload.to_vec()));
        if log.flaky_in == Some(0) {
            log.flaky_in = None;
            log.timeouts += 1;
            log.open_doomed = true;
            acks.settle(Err((
                topic,
                KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
            )));
            return Ok(());
        }
        if let Some(n) = log.flaky_in.as_mut() {
            *n -= 1;
        }
        acks.settle(Ok(()));
        Ok(())
    }

    fn init_transactions(&self, _timeout: Duration) -> KafkaResult<()> {
        Ok(())
    }

    fn begin_transaction(&self) -> KafkaResult<()> {
        let mut log = self.lock();
        self.step(&mut log, "begin")?;
        assert!(!log.in_transaction, "begin with a transaction open");
        log.in_transaction = true;
        Ok(())
    }

    fn send_offsets_to_transaction(
        &self,
        offsets: &TopicPartitionList,
        _group: &ConsumerGroupMetadata,
        _timeout: Duration,
    ) -> KafkaResult<()> {
        let mut log = self.lock();
        self.step(&mut log, "send_offsets")?;
        for e in offsets.elements() {
            let rdkafka::Offset::Offset(next) = e.offset() else {
                panic!("a logical offset sent to the transaction: {:?}", e.offset());
            };
            log.open_offsets
                .push((e.topic().to_string(), e.partition(), next));
        }
        Ok(())
    }

    fn commit_transaction(&self, _timeout: Duration) -> KafkaResult<()> {
        let mut log = self.lock();
        // When the process dies at a commit, the commit may have reached the broker: then it takes
        // effect, and the process never hears so.
        assert!(
            !log.open_doomed,
            "a transaction with a failed record was committed (it must be aborted)"
        );
        let applies = log.target.is_none_or(|t| t.applies);
        let alive = !self.is_dead(&log);
        let step = self.step(&mut log, "commit");
        if step.is_ok() || (alive && applies) {
            let records = std::mem::take(&mut log.open);
            for (topic, payload) in records {
                log.committed.entry(topic).or_default().push(payload);
            }
            let offsets = std::mem::take(&mut log.open_offsets);
            for (topic, partition, next) in offsets {
                let at = log.offsets.entry((topic, partition)).or_insert(0);
                assert!(next >= *at, "committed offsets went backwards");
                *at = next;
            }
            log.in_transaction = false;
            log.commits += 1;
        }
        step
    }

    fn abort_transaction(&self, _timeout: Duration) -> KafkaResult<()> {
        let mut log = self.lock();
        self.step(&mut log, "abort")?;
        log.open_doomed = false;
        log.open.clear();
        log.open_offsets.clear();
        log.in_transaction = false;
        log.aborts += 1;
        Ok(())
    }

    fn flush(&self, _timeout: Duration) -> KafkaResult<()> {
        Ok(())
    }
}

/// The offsets seen by the worker: only the transaction commits them here. The group metadata
/// comes from a consumer of the group that never connects (the only way to make one).
struct Offsets(rdkafka::consumer::BaseConsumer);

impl OffsetStore for Offsets {
    fn store(&self, _: &str, _: i32, _: i64) {
        panic!("exactly-once stores no offset in the consumer");
    }
    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        rdkafka::consumer::Consumer::group_metadata(&self.0)
    }
    fn commit(&self, _: &TopicPartitionList) -> KafkaResult<()> {
        panic!("exactly-once commits no offset outside the transaction");
    }
}

/// The Redis store, whose writes can be where the process dies: a crash there makes the write
/// not happen, and ends the assignment so that the worker gives the batch up.
struct DyingStore {
    inner: Arc<dyn StateStore>,
    model: Model,
    assignment: Arc<Assignment>,
}

#[async_trait::async_trait]
impl StateStore for DyingStore {
    async fn load(
        &self,
        keys: &[nbo_stream::state::CustomerKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StateError> {
        if self.model.dead() {
            // A dead process's batch goes no further (its checkpoint being written beside it
            // died): what it holds is replayed by the next incarnation.
            self.assignment.rebalance(Duration::ZERO);
            return Err(StateError::Unavailable("the process is dead".into()));
        }
        self.inner.load(keys).await
    }
    async fn store(&self, writes: &[StateWrite]) -> Result<(), StateError> {
        let died = {
            let mut log = self.model.lock();
            self.model.step(&mut log, "state store write").is_err()
        };
        if died {
            self.assignment.rebalance(Duration::ZERO);
            return Err(StateError::Unavailable("the process is dead".into()));
        }
        self.inner.store(writes).await
    }
    async fn feature_hash(
        &self,
        key: &nbo_stream::state::CustomerKey,
    ) -> Result<Vec<(String, String)>, StateError> {
        self.inner.feature_hash(key).await
    }
    fn round_trips(&self) -> u64 {
        self.inner.round_trips()
    }
}

/// The input: per (topic, partition), its records in offset order.
struct Input {
    topics: [String; nbo_stream::event::BUILTIN_KINDS],
    logs: BTreeMap<(usize, i32), Vec<Record>>,
}

impl Input {
    fn new(settings: &Settings, records: &[Record]) -> Self {
        let topics = settings.topics.inputs().map(str::to_string);
        let mut logs: BTreeMap<(usize, i32), Vec<Record>> = BTreeMap::new();
        for r in records {
            // Any fixed key → partition map keeps a customer on one partition number.
            let partition =
                (r.key.iter().map(|b| *b as u32).sum::<u32>() % PARTITIONS as u32) as i32;
            logs.entry((r.kind, partition)).or_default().push(r.clone());
        }
        Self { topics, logs }
    }

    fn total(&self) -> usize {
        self.logs.values().map(Vec::len).sum()
    }
}

struct Run {
    settings: Settings,
    store: Arc<dyn StateStore>,
    model: Model,
}

impl Run {
    async fn new() -> Self {
        let mut settings = common::test_settings("unused:9092", StateBackend::Redis);
        settings.redis.url = redis_url();
        settings.kafka.delivery = Delivery::ExactlyOnce;
        let store: Arc<dyn StateStore> = Arc::new(
            nbo_stream::state::redis::RedisStore::connect(&settings.redis)
                .await
                .expect("redis (scripts/test.sh starts it)"),
        );
        Self {
            settings,
            store,
            model: Model::default(),
        }
    }

    /// A worker context for one incarnation of the process: an empty cache, a new generation.
    fn incarnation(&self, model: &Model) -> (Arc<WorkerContext>, Arc<Assignment>) {
        let s = &self.settings;
        let codec = Arc::new(nbo_stream::codec::Codec::new(&s.codec_options()).unwrap());
        let features = Arc::new(s.features.load().unwrap());
        let docs = s.rules.documents().unwrap();
        let rules = nbo_stream::rules::book::RuleBook::new(features.clone(), &docs)
            .unwrap()
            .rule_set();
        let op = &s.operator;
        let operator =
            Operator::new(features.clone(), rules, op, op.control_group_percent).with_outbox(true);
        let assignment = Arc::new(Assignment::default());
        let store: Arc<dyn StateStore> = Arc::new(DyingStore {
            inner: self.store.clone(),
            model: model.clone(),
            assignment: assignment.clone(),
        });
        let sink = Arc::new(Sink::with_transport(
            Arc::new(model.clone()),
            codec.clone(),
            &s.topics,
        ));
        let ttl_secs = (Duration::from_millis(features.longest_window_ms() as u64)
            + s.state.ttl_margin)
            .as_secs();
        let ctx = WorkerContext {
            codec,
            operator: Arc::new(arc_swap::ArcSwap::from_pointee(operator)),
            store,
            sinks: vec![sink],
            delivery: Delivery::ExactlyOnce,
            transaction_timeout: Duration::from_secs(5),
            mirror_transaction_offsets: false,
            shards: vec![Arc::new(Shard::default())],
            cache_max: 100_000,
            // Checkpoints are taken when the driver says (after 1 to 4 batches), never by time.
            checkpoint_interval: Duration::from_secs(3600),
            checkpoint_max_dirty: 100_000,
            hasher: common::hasher(s),
            offsets: Arc::new(Offsets(
                rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", "127.0.0.1:9")
                    .set("group.id", &s.kafka.group_id)
                    .create()
                    .expect("consumer"),
            )),
            ttl_secs,
            state_format: s.state.write_format,
            health: nbo_stream::telemetry::http::Health::default(),
            progress: Arc::new(Progress::default()),
            assignment: assignment.clone(),
            input_topics: s.input_topic_table(),
            writer_schemas: None,
            models: None,
        };
        (Arc::new(ctx), assignment)
    }

    /// Feeds `input` until every record is committed, crashing `crashes` times at random steps.
    async fn feed(&self, input: &Input, crashes: usize, rng: &mut rand_chacha::ChaCha8Rng) {
        let mut left = crashes;
        let mut incarnations = 0;
        'incarnation: loop {
            incarnations += 1;
            assert!(incarnations < crashes + 50, "no progress");
            let crash = (left > 0).then(|| self.model.next_target(left, rng));
            let flaky = (left > 0 && rng.random_bool(0.5)).then(|| rng.random_range(0..60));
            let model = self.model.restart(crash, flaky);
            let (ctx, assignment) = self.incarnation(&model);
            let mut worker = worker::Worker::new(ctx, 0);
            // The consumer resumes from the committed offsets.
            let mut position: BTreeMap<(usize, i32), usize> = input
                .logs
                .keys()
                .map(|k @ (kind, p)| {
                    let at = self
                        .model
                        .lock()
                        .offsets
                        .get(&(input.topics[*kind].clone(), *p))
                        .copied()
                        .unwrap_or(0);
                    (*k, at as usize)
                })
                .collect();
            loop {
                let size = rng.random_range(1..300);
                let mut records = Vec::new();
                'fill: while records.len() < size {
                    let mut took = false;
                    for (key, log) in &input.logs {
                        let at = position.get_mut(key).unwrap();
                        for _ in 0..rng.random_range(1..20) {
                            if *at >= log.len() || records.len() >= size {
                                break;
                            }
                            let r = &log[*at];
                            let msg = OwnedMessage::new(
                                Some(r.payload.clone()),
                                Some(r.key.clone()),
                                input.topics[key.0].clone(),
                                Timestamp::NotAvailable,
                                key.1,
                                *at as i64,
                                None,
                            );
                            records.push((EventKind::ALL[key.0], msg));
                            *at += 1;
                            took = true;
                        }
                    }
                    if !took {
                        break 'fill;
                    }
                }
                if records.is_empty() {
                    // The last checkpoint, as at shutdown.
                    let result = worker.checkpoint().await;
                    if self.model.crashed() {
                        left = left.saturating_sub(1);
                        continue 'incarnation;
                    }
                    result.expect("the last checkpoint failed without a crash");
                    return;
                }
                let batch = Batch {
                    generation: assignment.generation(),
                    records,
                    group: None,
                    received: Some(std::time::Instant::now()),
                };
                self.model.lock().in_batch = true;
                let mut result = worker.process(batch).await;
                self.model.lock().in_batch = false;
                let checkpoint = rng.random_range(0..6);
                if result.is_ok() && checkpoint < 2 {
                    // As the interval's timer takes it: written beside the next batches.
                    result = worker.checkpoint_beside().await;
                } else if result.is_ok() && checkpoint == 2 {
                    // As a rebalance asks for one: waited for.
                    result = worker.checkpoint().await;
                } else if result.is_ok() {
                    // Between checkpoints: dying here loses the cache and nothing else.
                    let _ = model.step(&mut model.lock(), "between checkpoints");
                }
                if self.model.crashed() {
                    left = left.saturating_sub(1);
                    continue 'incarnation;
                }
                result.expect("a batch failed without a crash");
            }
        }
    }

    async fn outcome(&self, customers: &[String]) -> Outcome {
        let t = &self.settings.topics;
        let committed = self.model.lock().committed.clone();
        let of = |topic: &str| committed.get(topic).cloned().unwrap_or_default();
        let offers = ids::<NextBestOffer>(of(&t.offers), "NextBestOffer", |o| o.offer_id.clone());
        let alerts = ids::<RiskAlert>(of(&t.alerts), "RiskAlert", |a| a.alert_id.clone());
        let audits = ids::<DecisionAudit>(of(&t.decisions_audit), "DecisionAudit", |a| {
            a.audit_id.clone()
        });
        let hasher = common::hasher(&self.settings);
        let mut features = BTreeMap::new();
        for c in customers {
            let hash = self.store.feature_hash(&hasher.key(c)).await.unwrap();
            if !hash.is_empty() {
                features.insert(c.clone(), hash.into_iter().collect());
            }
        }
        Outcome {
            features,
            offers,
            alerts,
            audits,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_at_every_step_leave_each_record_exactly_once_in_committed_output() {
    let events = common::harness::EventSet::generate(CUSTOMERS, ACTIVITY, SEED, START_MS);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);

    // Profiles first, then activity (each customer's on one topic): a customer's events on
    // different topics have no order relative to each other, and offers depend on it.
    let clean = Run::new().await;
    for records in [&events.profiles, &events.activity] {
        clean
            .feed(&Input::new(&clean.settings, records), 0, &mut rng)
            .await;
    }
    let expected = clean.outcome(&events.customers).await;

    let crashed = Run::new().await;
    let mut total = 0;
    for (records, crashes) in [(&events.profiles, CRASHES / 6), (&events.activity, CRASHES)] {
        let input = Input::new(&crashed.settings, records);
        total += input.total();
        crashed.feed(&input, crashes, &mut rng).await;
    }
    let got = crashed.outcome(&events.customers).await;
    let (commits, aborts, deaths, timeouts, beside) = {
        let log = crashed.model.lock();
        (
            log.commits,
            log.aborts,
            log.deaths.clone(),
            log.timeouts,
            log.deaths_beside_a_batch,
        )
    };
    assert!(
        beside > 0,
        "no crash at a checkpoint's step while the next batch ran: checkpoints written beside \
         the batches were not exercised"
    );
    assert!(
        timeouts > 0,
        "no record delivery timed out: the redo path was not exercised"
    );
    for (step, _, _) in DEATHS {
        assert!(
            deaths.contains_key(step),
            "no crash at '{step}': the crash points do not cover it ({deaths:?})"
        );
    }

    let c = compare(&got, &expected);
    assert_eq!(
        c.duplicates, 0,
        "a record is in the committed output more than once"
    );
    println!(
        "exactly-once model: {} records, {} crashes at random steps {deaths:?} ({commits} \
         transactions committed, {aborts} aborted, {timeouts} redone after a record timed out; \
         {beside} of the crashes at a checkpoint's step beside the next batch); {} customers / {} feature values equal; {} offers, {} alerts, \
         {} audits, each exactly once",
        total,
        deaths.values().sum::<usize>(),
        c.customers,
        c.features,
        c.offers,
        c.alerts,
        c.audits
    );
}
