//! The harness of the tests that crash the pipeline: a fixed event set, `nbo-stream run`
//! instances as child processes with a config file each, the group's progress read from the
//! broker, and the comparison of a disturbed run with a clean run of the same events.
//!
//! ## Why each customer's activity is on one topic
//!
//! Kafka orders records within a partition only. A customer's records on two topics reach the
//! operator in an order that depends on fetch timing, and decisions depend on that order
//! (the lateness bound, cooldowns and the contact policy look at what came before). Two runs of
//! the same events — crashed or not — may then legitimately decide differently. So the event set
//! keeps, per customer, its profile (consumed whole before any activity is produced: the CRM
//! state exists before the activity it governs) and its activity on one topic: the topic of its
//! first activity record in the generated stream. Each customer's events then have one order,
//! the partition's, in every run; features, offers and alerts must come out identical.

use super::procs::{clean_command, http_get, metric_sum, Guard, NBO_BIN};
use super::{start_tansu, test_settings, unique, Broker};
use nbo_stream::codec::{Codec, Framing};
use nbo_stream::config::{Settings, StateBackend, TopicSettings};
use nbo_stream::event::Event;
use nbo_stream::generator::personas::EventFactory;
use nbo_stream::output::{DecisionAudit, NextBestOffer, RiskAlert};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Partitions of every topic in these tests.
pub const PARTITIONS: i32 = 8;

/// One input record: input kind index, key, Avro payload.
#[derive(Clone)]
pub struct Record {
    /// Index into `TopicSettings::inputs()`.
    pub kind: usize,
    /// Customer id.
    pub key: Vec<u8>,
    /// Confluent-framed Avro.
    pub payload: Vec<u8>,
}

/// A fixed, generated event set (see the module docs for its shape).
pub struct EventSet {
    /// One profile per customer.
    pub profiles: Vec<Record>,
    /// Activity, in generated order (so in event-time order per customer).
    pub activity: Vec<Record>,
    /// Customer ids.
    pub customers: Vec<String>,
}

impl EventSet {
    /// `activity` activity records of `customers` customers, from the generator's stream for
    /// `seed` starting at `start_ms` (fixed: the same set every time).
    pub fn generate(customers: u32, activity: usize, seed: u64, start_ms: i64) -> Self {
        let codec = Codec::with_defaults().unwrap();
        let mut factory = EventFactory::new(customers, seed, start_ms);
        let ids: Vec<String> = factory
            .customers()
            .iter()
            .map(|c| c.id.to_string())
            .collect();
        let encode = |e: &Event| Record {
            kind: e.kind().index(),
            key: e.customer_id().as_bytes().to_vec(),
            payload: nbo_stream::generator::encode_event(&codec, e, Framing::Confluent).unwrap(),
        };
        let profiles: Vec<Record> = (0..customers)
            .map(|_| encode(&factory.next_event()))
            .collect();
        let mut home: HashMap<String, usize> = HashMap::new();
        let mut records = Vec::with_capacity(activity);
        while records.len() < activity {
            let event = factory.next_event();
            let kind = event.kind().index();
            if matches!(event, Event::Profile(_)) {
                continue;
            }
            if *home.entry(event.customer_id().to_string()).or_insert(kind) == kind {
                records.push(encode(&event));
            }
        }
        Self {
            profiles,
            activity: records,
            customers: ids,
        }
    }

    /// Activity records per input topic index.
    pub fn by_kind(&self) -> [usize; nbo_stream::event::BUILTIN_KINDS] {
        let mut n = [0; nbo_stream::event::BUILTIN_KINDS];
        self.activity.iter().for_each(|r| n[r.kind] += 1);
        n
    }
}

struct Acks {
    failed: Arc<AtomicU64>,
}
impl ClientContext for Acks {}
impl ProducerContext for Acks {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Produces `records` to `topics` in order (idempotent producer: per-partition order kept across
/// retries), at most `rate` records/s (0: as fast as the broker takes them); waits for every
/// acknowledgement and asserts none failed.
pub fn produce(brokers: &str, topics: &TopicSettings, records: &[Record], rate: u64) {
    let failed = Arc::new(AtomicU64::new(0));
    let producer: ThreadedProducer<Acks> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
        .create_with_context(Acks {
            failed: failed.clone(),
        })
        .expect("producer");
    let inputs = topics.inputs();
    let started = Instant::now();
    for (i, r) in records.iter().enumerate() {
        if rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let mut record = BaseRecord::to(inputs[r.kind])
            .key(&r.key[..])
            .payload(&r.payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "records not acknowledged"
    );
}

/// Bootstrap addresses of the Tansu brokers this test process started (their runs never pause).
fn tansu_brokers() -> &'static std::sync::Mutex<Vec<String>> {
    static TANSU: std::sync::OnceLock<std::sync::Mutex<Vec<String>>> = std::sync::OnceLock::new();
    TANSU.get_or_init(Default::default)
}

/// Where the brokers of a test come from.
pub enum TestBroker {
    /// Tansu (at-least-once mode: no transactions).
    Tansu(Broker),
    /// `nbo-mock-broker` in its own process (transactions supported).
    Mock(Guard),
    /// A broker this test did not start: `NBOTEST_KAFKA_BROKERS` (see [`external_kafka`]).
    External,
}

/// Bootstrap servers of a real Kafka given in `NBOTEST_KAFKA_BROKERS` (e.g. the one of
/// deploy/docker-compose.yml, `localhost:29092`), for the tests that can run on it: there,
/// exactly-once runs without `mirror_transaction_offsets` and `read_committed` readers see no
/// aborted record. Unset on this project's CI machine, which has no such broker.
pub fn external_kafka() -> Option<String> {
    std::env::var("NBOTEST_KAFKA_BROKERS")
        .ok()
        .filter(|b| !b.is_empty())
}

/// A broker with the topics of every run spec created, declared sources' included
/// ([`PARTITIONS`] each; rules: 1).
pub fn start_broker(mock: bool, specs: &[&RunSpec]) -> (TestBroker, String) {
    let topics: Vec<(String, i32)> = specs
        .iter()
        .flat_map(|s| {
            let t = &s.settings.topics;
            let declared = s
                .settings
                .sources
                .iter()
                .map(|d| (d.topic.clone(), PARTITIONS));
            t.all()
                .into_iter()
                .map(move |name| {
                    let n = if name == t.rules { 1 } else { PARTITIONS };
                    (name.to_string(), n)
                })
                .chain(declared)
        })
        .collect();
    if mock {
        let (guard, brokers) = super::procs::start_mock_broker(1, &topics);
        return (TestBroker::Mock(guard), brokers);
    }
    let (broker, brokers) = match external_kafka() {
        Some(brokers) => (TestBroker::External, brokers),
        None => {
            let (broker, brokers) = start_tansu();
            tansu_brokers().lock().unwrap().push(brokers.clone());
            (TestBroker::Tansu(broker), brokers)
        }
    };
    let admin: rdkafka::admin::AdminClient<_> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("admin");
    let new: Vec<rdkafka::admin::NewTopic<'_>> = topics
        .iter()
        .map(|(name, n)| {
            rdkafka::admin::NewTopic::new(name, *n, rdkafka::admin::TopicReplication::Fixed(1))
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt
        .block_on(admin.create_topics(&new, &rdkafka::admin::AdminOptions::new()))
        .expect("create topics");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    (broker, brokers)
}

/// One run of the pipeline over its own topics, consumer group, customer-key secret (so its
/// Redis keys are its own) and Redis.
pub struct RunSpec {
    /// Brokers, group, topics, secret (from `test_settings`).
    pub settings: Settings,
    /// Redis of this run.
    pub redis_url: String,
    /// Lines added to the `[kafka]` table (e.g. `delivery = "exactly_once"`).
    pub kafka_extra: String,
    /// Lines of a `[state]` table (e.g. `checkpoint_interval = "0s"`), if any.
    pub state_extra: String,
    /// Extra librdkafka options (TOML lines added to `[kafka.options]`).
    pub kafka_options: String,
    /// Further tables appended to the config file (e.g. a `[schema_registry]` table).
    pub extra_toml: String,
    dir: tempfile::TempDir,
}

/// A running `nbo-stream run` child.
pub struct Instance {
    /// The process (killed on drop).
    pub process: Guard,
    /// Its `/metrics`, `/readyz` port.
    pub port: u16,
}

impl Instance {
    /// `/readyz` answer: Some(true) ready (200), Some(false) not ready (503), None no answer.
    pub fn ready(&self) -> Option<bool> {
        http_get(self.port, "/readyz").map(|(code, _)| code == 200)
    }

    /// Whether partitions were assigned to it (at least one assign callback).
    pub fn assigned(&self) -> bool {
        metric_sum(self.port, "nbo_rebalances_total", "kind=\"assign\"").unwrap_or(0.0) > 0.0
    }
}

impl RunSpec {
    /// A run with unique names against Redis at `redis_url`; the brokers are filled in later.
    pub fn new(redis_url: &str) -> Self {
        Self {
            settings: test_settings("unset", StateBackend::Redis),
            redis_url: redis_url.to_string(),
            kafka_extra: String::new(),
            state_extra: String::new(),
            kafka_options: String::new(),
            extra_toml: String::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The customer-key secret of this run.
    pub fn secret(&self) -> String {
        self.settings
            .customer_key_secret
            .as_ref()
            .unwrap()
            .expose()
            .to_string()
    }

    fn config(&self, brokers: &str, port: u16) -> PathBuf {
        let s = &self.settings;
        let t = &s.topics;
        let mut text = format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\nbatch_linger = \"20ms\"\nbatch_max_events = 500\n{extra}\n\
             [kafka.options]\n# A killed member leaves the group after 6 s, not librdkafka's 45 s.\n\
             \"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n{options}\n\
             [state]\n{state}\n\n\
             [redis]\nurl = \"{redis}\"\ntimeout = \"2s\"\n\n\
             [telemetry]\nlisten = \"127.0.0.1:{port}\"\nlog_level = \"info\"\n\n[topics]\n",
            state = self.state_extra,
            group = s.kafka.group_id,
            extra = if tansu_brokers().lock().unwrap().iter().any(|b| b == brokers) {
                // See super::TANSU_PAUSE_AFTER.
                format!(
                    "pause_after = \"{}s\"\n{}",
                    super::TANSU_PAUSE_AFTER.as_secs(),
                    self.kafka_extra
                )
            } else {
                self.kafka_extra.clone()
            },
            options = self.kafka_options,
            redis = self.redis_url,
        );
        for (key, name) in [
            ("transactions", &t.transactions),
            ("clickstream", &t.clickstream),
            ("app", &t.app),
            ("social", &t.social),
            ("feedback", &t.feedback),
            ("partner", &t.partner),
            ("customer_profile", &t.customer_profile),
            ("offer_responses", &t.offer_responses),
            ("erasure_requests", &t.erasure_requests),
            ("product_openings", &t.product_openings),
            ("inbound_contacts", &t.inbound_contacts),
            ("alert_outcomes", &t.alert_outcomes),
            ("rules", &t.rules),
            ("offers", &t.offers),
            ("alerts", &t.alerts),
            ("decisions_audit", &t.decisions_audit),
            ("dead_letters", &t.dead_letters),
        ] {
            text.push_str(&format!("{key} = \"{name}\"\n"));
        }
        text.push('\n');
        text.push_str(&self.extra_toml);
        let path = self.dir.path().join(format!("nbo-{port}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Starts `nbo-stream run --config <file>` (stderr to a log file in the run's folder).
    pub fn spawn(&self, brokers: &str, name: &str) -> Instance {
        let port = super::free_port();
        let config = self.config(brokers, port);
        let log = self.dir.path().join(format!("{name}-{port}.log"));
        let child = clean_command(NBO_BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("NBO_CUSTOMER_KEY_SECRET", self.secret())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start nbo-stream run");
        Instance {
            process: Guard::new(name, child, Some(log)),
            port,
        }
    }

    /// Folder for this run's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Records the group has not committed yet over `topics` (end offsets minus committed offsets).
pub fn group_lag(brokers: &str, group: &str, topics: &[&str]) -> i64 {
    group_progress(brokers, group, topics).1
}

/// (records committed, records not committed yet) of the group over `topics`.
pub fn group_progress(brokers: &str, group: &str, topics: &[&str]) -> (i64, i64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let mut tpl = TopicPartitionList::new();
    for t in topics {
        for p in 0..PARTITIONS {
            tpl.add_partition(t, p);
        }
    }
    let committed = consumer
        .committed_offsets(tpl, timeout)
        .expect("committed offsets");
    let (mut lag, mut total) = (0, 0);
    for e in committed.elements() {
        let (low, high) = consumer
            .fetch_watermarks(e.topic(), e.partition(), timeout)
            .expect("watermarks");
        let done = match e.offset() {
            Offset::Offset(o) => o,
            _ => low,
        };
        lag += (high - done).max(0);
        total += done - low;
    }
    (total, lag)
}

/// Starts a run of `spec` the way every kill test does: its profiles produced and consumed whole,
/// then its activity produced at `rate` records/s on a thread (join it to wait for the end).
pub fn start_with_profiles(
    brokers: &str,
    spec: &RunSpec,
    events: &EventSet,
    name: &str,
    rate: u64,
) -> (Instance, std::thread::JoinHandle<()>) {
    let topics = spec.settings.topics.clone();
    produce(brokers, &topics, &events.profiles, 0);
    let run = spec.spawn(brokers, name);
    wait_caught_up(
        brokers,
        &spec.settings.kafka.group_id,
        &[&topics.customer_profile],
        Duration::from_secs(60),
        "profiles",
        &[&run],
    );
    let (brokers, activity) = (brokers.to_string(), events.activity.clone());
    let producer = std::thread::spawn(move || produce(&brokers, &topics, &activity, rate));
    (run, producer)
}

/// Waits for the activity `producer` to finish, then until `run` has committed every input
/// record of `spec` (120 s at most; `what` names the phase in a failure).
pub fn wait_done(
    brokers: &str,
    spec: &RunSpec,
    producer: std::thread::JoinHandle<()>,
    run: &Instance,
    what: &str,
) {
    producer.join().expect("producer");
    wait_caught_up(
        brokers,
        &spec.settings.kafka.group_id,
        &spec.settings.topics.inputs(),
        Duration::from_secs(120),
        what,
        &[run],
    );
}

/// [`wait_done`], then stops `run` with SIGTERM (it must exit 0) and compares the run's outcome
/// with a clean run's (`expected`).
pub fn finish_and_compare(
    brokers: &str,
    spec: &RunSpec,
    producer: std::thread::JoinHandle<()>,
    run: &mut Instance,
    what: &str,
    events: &EventSet,
    expected: &Outcome,
) -> Comparison {
    wait_done(brokers, spec, producer, run, what);
    run.process.stop_cleanly(Duration::from_secs(30));
    compare(&spec.outcome(brokers, &events.customers), expected)
}

/// Waits until the group has committed everything on `topics`; after `timeout` panics with `what`
/// and the ends of the logs of `running`.
pub fn wait_caught_up(
    brokers: &str,
    group: &str,
    topics: &[&str],
    timeout: Duration,
    what: &str,
    running: &[&Instance],
) {
    let deadline = Instant::now() + timeout;
    loop {
        let lag = group_lag(brokers, group, topics);
        if lag == 0 {
            return;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = running.iter().map(|i| i.process.log_tail(40)).collect();
            panic!(
                "{what}: {lag} records still uncommitted after {timeout:?}; logs end:\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What a run left behind: features per customer, and offers, alerts and audits (id, bytes).
pub struct Outcome {
    /// `HGETALL nbo:features:{key}` per customer id (empty hashes left out).
    pub features: BTreeMap<String, BTreeMap<String, String>>,
    /// Offer records: (offer_id, payload).
    pub offers: Vec<(String, Vec<u8>)>,
    /// Alert records: (alert_id, payload).
    pub alerts: Vec<(String, Vec<u8>)>,
    /// Audit records: (audit_id, payload).
    pub audits: Vec<(String, Vec<u8>)>,
}

/// Every record of `topic` as a `read_committed` consumer sees it, read to the end of every
/// partition.
pub fn read_all(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut at_end = std::collections::HashSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while at_end.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => out.push(m.payload().unwrap_or_default().to_vec()),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out
}

/// Decodes output records (`record` schema) and pairs each with its id and original bytes.
pub fn ids<T: serde::de::DeserializeOwned>(
    payloads: Vec<Vec<u8>>,
    record: &str,
    id: impl Fn(&T) -> String,
) -> Vec<(String, Vec<u8>)> {
    let framed: Vec<(Option<Vec<u8>>, Vec<u8>)> =
        payloads.iter().map(|p| (None, p.clone())).collect();
    let decoded: Vec<T> = super::decode_outputs(&framed, record);
    decoded.iter().map(id).zip(payloads).collect()
}

impl RunSpec {
    /// Reads this run's outputs from the broker and its features from Redis.
    pub fn outcome(&self, brokers: &str, customers: &[String]) -> Outcome {
        let t = &self.settings.topics;
        let offers = ids::<NextBestOffer>(read_all(brokers, &t.offers), "NextBestOffer", |o| {
            o.offer_id.clone()
        });
        let alerts = ids::<RiskAlert>(read_all(brokers, &t.alerts), "RiskAlert", |a| {
            a.alert_id.clone()
        });
        let audits = ids::<DecisionAudit>(
            read_all(brokers, &t.decisions_audit),
            "DecisionAudit",
            |a| a.audit_id.clone(),
        );
        let hasher = super::hasher(&self.settings);
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut conn = client.get_connection().expect("redis");
        let mut pipe = redis::pipe();
        for c in customers {
            pipe.cmd("HGETALL").arg(hasher.key(c).features_key());
        }
        let hashes: Vec<BTreeMap<String, String>> = pipe.query(&mut conn).expect("HGETALL");
        let features = customers
            .iter()
            .cloned()
            .zip(hashes)
            .filter(|(_, h)| !h.is_empty())
            .collect();
        Outcome {
            features,
            offers,
            alerts,
            audits,
        }
    }
}

/// What [`compare`] compared.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Customers whose feature hashes were compared (present in either run).
    pub customers: usize,
    /// Feature values compared.
    pub features: usize,
    /// Distinct offer ids.
    pub offers: usize,
    /// Distinct alert ids.
    pub alerts: usize,
    /// Distinct audit ids.
    pub audits: usize,
    /// Records of the disturbed run whose id appeared before (offers, alerts, audits).
    pub duplicates: usize,
}

/// Ids with their records; asserts that records sharing an id are byte-identical. Returns the
/// id set and the number of duplicate records.
fn distinct(what: &str, records: &[(String, Vec<u8>)]) -> (BTreeMap<String, usize>, usize) {
    let mut seen: BTreeMap<String, (usize, &[u8])> = BTreeMap::new();
    let mut dups = 0;
    for (id, bytes) in records {
        match seen.get_mut(id) {
            Some((n, first)) => {
                assert!(
                    *first == &bytes[..],
                    "{what} {id} was produced twice with different content"
                );
                *n += 1;
                dups += 1;
            }
            None => {
                seen.insert(id.clone(), (1, bytes));
            }
        }
    }
    (seen.into_iter().map(|(k, (n, _))| (k, n)).collect(), dups)
}

fn same_ids(what: &str, disturbed: &BTreeMap<String, usize>, clean: &BTreeMap<String, usize>) {
    let missing: Vec<&String> = clean
        .keys()
        .filter(|k| !disturbed.contains_key(*k))
        .collect();
    let extra: Vec<&String> = disturbed
        .keys()
        .filter(|k| !clean.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} ids differ from the clean run: {} missing (e.g. {:?}), {} extra (e.g. {:?})",
        missing.len(),
        missing.iter().take(3).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(3).collect::<Vec<_>>()
    );
}

/// The fields of two feature hashes that differ: `name: disturbed != clean`.
fn field_diff(
    a: Option<&BTreeMap<String, String>>,
    b: Option<&BTreeMap<String, String>>,
) -> String {
    let (empty_a, empty_b) = (BTreeMap::new(), BTreeMap::new());
    let (a, b) = (a.unwrap_or(&empty_a), b.unwrap_or(&empty_b));
    a.keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k}: {:?} != {:?}", a.get(k), b.get(k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Asserts the disturbed run left what the clean run left: every customer's features equal;
/// the same offer, alert and audit ids; duplicates (same id) only byte-identical ones.
pub fn compare(disturbed: &Outcome, clean: &Outcome) -> Comparison {
    let mut c = Comparison::default();
    let customers: std::collections::BTreeSet<&String> = disturbed
        .features
        .keys()
        .chain(clean.features.keys())
        .collect();
    let mut differing = Vec::new();
    for id in &customers {
        let (a, b) = (disturbed.features.get(*id), clean.features.get(*id));
        if a != b {
            differing.push(format!("{id}: {}", field_diff(a, b)));
        }
        c.features += b.map_or(0, BTreeMap::len);
    }
    assert!(
        differing.is_empty(),
        "{} of {} customers' features differ from the clean run, e.g.\n  {}",
        differing.len(),
        customers.len(),
        differing
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n  ")
    );
    c.customers = customers.len();
    for (what, d, k, n) in [
        ("offer", &disturbed.offers, &clean.offers, &mut c.offers),
        ("alert", &disturbed.alerts, &clean.alerts, &mut c.alerts),
        ("audit", &disturbed.audits, &clean.audits, &mut c.audits),
    ] {
        let (dset, dups) = distinct(what, d);
        let (kset, kdups) = distinct(what, k);
        assert_eq!(kdups, 0, "the clean run produced duplicate {what}s");
        same_ids(what, &dset, &kset);
        *n = kset.len();
        c.duplicates += dups;
    }
    assert!(
        c.customers > 0 && c.offers > 0 && c.alerts > 0,
        "nothing to compare: {c:?}"
    );
    c
}

/// The clean run: profiles, then (once they are committed) all activity at full speed, one
/// instance, SIGTERM when everything is committed. Returns what it left.
pub fn clean_run(brokers: &str, spec: &RunSpec, events: &EventSet) -> Outcome {
    let topics = &spec.settings.topics;
    let group = &spec.settings.kafka.group_id;
    produce(brokers, topics, &events.profiles, 0);
    let mut run = spec.spawn(brokers, "clean");
    wait_caught_up(
        brokers,
        group,
        &[&topics.customer_profile],
        Duration::from_secs(60),
        "clean run: profiles",
        &[&run],
    );
    produce(brokers, topics, &events.activity, 0);
    wait_caught_up(
        brokers,
        group,
        &topics.inputs(),
        Duration::from_secs(120),
        "clean run",
        &[&run],
    );
    run.process.stop_cleanly(Duration::from_secs(30));
    spec.outcome(brokers, &events.customers)
}

/// A seeded random duration in `[lo, hi)`.
pub fn random_between(rng: &mut impl rand::Rng, lo: Duration, hi: Duration) -> Duration {
    Duration::from_secs_f64(rng.random_range(lo.as_secs_f64()..hi.as_secs_f64()))
}

/// Waits until `instance` has partitions assigned (or `timeout`).
pub fn wait_assigned(instance: &Instance, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if instance.assigned() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
