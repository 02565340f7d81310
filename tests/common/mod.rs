//! Helpers shared by the integration tests: services, unique names, reading topics back.
#![allow(dead_code)]

use nbo_stream::codec::Codec;
use nbo_stream::config::{Settings, StateBackend};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use std::time::{Duration, Instant};

/// A unique suffix so tests can run side by side on one broker.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000_000)
}

/// `kafka.pause_after` for runs on Tansu, whose tests must never pause a partition: librdkafka
/// then fetches again from the middle of a record batch, and Tansu 0.6 answers such a fetch with
/// the *next* batch, skipping records (see `source::dispatch`). Pausing is tested on the mock
/// broker process (tests/redis_restart.rs). In-process test settings use it too: none of them
/// tests pausing.
pub const TANSU_PAUSE_AFTER: Duration = Duration::from_secs(60);

/// Settings for a test against `brokers`, with every topic renamed uniquely.
pub fn test_settings(brokers: &str, backend: StateBackend) -> Settings {
    let mut s = Settings::default();
    let run = unique("t");
    s.kafka.brokers = brokers.to_string();
    s.kafka.group_id = format!("nbo-{run}");
    s.kafka.batch_linger = Duration::from_millis(10);
    s.kafka.pause_after = TANSU_PAUSE_AFTER;
    s.state.backend = backend;
    s.telemetry.listen = "127.0.0.1:0".into();
    // A secret per run: customer keys differ between runs, so state that a previous run left in
    // the shared Redis (same customer ids, same partition offsets on a fresh broker) is never read
    // as this run's — it would make every event look like an applied replay.
    let secret = format!("integration-test-secret-{run}");
    s.customer_key_secret = Some(nbo_stream::config::Secret::new(secret));
    let t = &mut s.topics;
    for name in [
        &mut t.transactions,
        &mut t.clickstream,
        &mut t.app,
        &mut t.social,
        &mut t.feedback,
        &mut t.partner,
        &mut t.customer_profile,
        &mut t.offer_responses,
        &mut t.erasure_requests,
        &mut t.product_openings,
        &mut t.inbound_contacts,
        &mut t.alert_outcomes,
        &mut t.rules,
        &mut t.rules_history,
        &mut t.offers,
        &mut t.alerts,
        &mut t.decisions_audit,
        &mut t.dead_letters,
    ] {
        *name = format!("{name}.{run}");
    }
    s
}

/// Reads every record of `topic` (from the beginning) until `expected` are read or `timeout`.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .expect("reader consumer");
    // Assign every partition from the beginning: no group coordination, so no rebalance wait.
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut assignment = rdkafka::TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            assignment
                .add_partition_offset(topic, p.id(), rdkafka::Offset::Beginning)
                .expect("partition");
        }
    }
    assert!(assignment.count() > 0, "topic {topic} has no partitions");
    consumer.assign(&assignment).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                out.push((
                    m.key().map(<[u8]>::to_vec),
                    m.payload().unwrap_or_default().to_vec(),
                ));
                quiet_since = Instant::now();
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {
                if out.len() >= expected && quiet_since.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
        }
    }
    out
}

fn output_ids() -> &'static std::sync::Mutex<std::collections::HashMap<String, u32>> {
    static IDS: std::sync::OnceLock<std::sync::Mutex<std::collections::HashMap<String, u32>>> =
        std::sync::OnceLock::new();
    IDS.get_or_init(Default::default)
}

/// Makes [`decode_outputs`] expect schema id `id` on records of `record` (a run against a
/// Schema Registry frames its outputs with the ids the registry gave), for this test binary.
#[allow(dead_code)] // Used by the registry tests only.
pub fn expect_output_id(record: &str, id: u32) {
    output_ids().lock().unwrap().insert(record.to_string(), id);
}

/// Decodes records of an output topic with the contract's schema `record`.
pub fn decode_outputs<T: serde::de::DeserializeOwned>(
    records: &[(Option<Vec<u8>>, Vec<u8>)],
    record: &str,
) -> Vec<T> {
    let entry = nbo_stream::codec::schemas::by_record(record).expect("record");
    let schema: serde_avro_fast::Schema = entry.text.parse().expect("schema");
    let _ = Codec::with_defaults().expect("codec");
    let expected_id = output_ids()
        .lock()
        .unwrap()
        .get(record)
        .copied()
        .unwrap_or(entry.default_id);
    records
        .iter()
        .map(|(_, v)| {
            assert_eq!(v[0], 0, "Confluent magic byte");
            assert_eq!(
                u32::from_be_bytes([v[1], v[2], v[3], v[4]]),
                expected_id,
                "schema id"
            );
            serde_avro_fast::from_datum_slice::<T>(&v[5..], &schema).expect("decode output")
        })
        .collect()
}

/// Redis URL for tests (`NBOTEST_REDIS_URL`, default the local server the test script starts).
pub fn redis_url() -> String {
    std::env::var("NBOTEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Polls `done` every 100 ms until it holds or `timeout` passes.
pub async fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done()
}

/// A Tansu broker process, killed when dropped.
pub struct Broker(std::process::Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Tansu binary: `NBOTEST_TANSU_BIN`, else cargo's bin folder (scripts/test.sh installs it).
pub fn tansu_binary() -> std::path::PathBuf {
    if let Ok(path) = std::env::var("NBOTEST_TANSU_BIN") {
        return path.into();
    }
    let home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin").join("tansu")
}

/// A free local port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a Tansu broker (in-memory storage) on a free port; returns it and its bootstrap address.
pub fn start_tansu() -> (Broker, String) {
    use std::process::{Command, Stdio};
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let bin = tansu_binary();
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {} (scripts/test.sh installs it): {e}", bin.display()));
    let broker = Broker(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (broker, format!("127.0.0.1:{port}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("tansu did not listen on {port} within 10 s");
}

/// Generates `events` records for `customers` synthetic customers into the settings' topics,
/// ending about now, and returns the generator's summary (blocking).
pub fn generate(
    settings: &nbo_stream::config::Settings,
    customers: u32,
    events: u64,
    seed: u64,
    malformed_rate: f64,
) -> nbo_stream::generator::GenerateSummary {
    generate_with(settings, customers, events, seed, malformed_rate, None)
}

/// Where a generated stream starts (ms) so that it ends an hour before now.
fn stream_start(customers: u32, events: u64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    now - nbo_stream::generator::personas::span_ms(customers, events) - 3_600_000
}

/// [`generate`] with an optional hook between the profiles and the activity.
pub fn generate_with(
    settings: &nbo_stream::config::Settings,
    customers: u32,
    events: u64,
    seed: u64,
    malformed_rate: f64,
    after_profiles: Option<nbo_stream::generator::AfterProfiles>,
) -> nbo_stream::generator::GenerateSummary {
    let start_ms = stream_start(customers, events);
    generate_at(
        settings,
        customers,
        events,
        seed,
        malformed_rate,
        after_profiles,
        start_ms,
    )
}

/// [`generate`] of the whole stream in one go, nothing malformed; returns what was sent and the
/// stream's start (ms), so that a test can replay the same events itself.
pub fn generate_from(
    settings: &nbo_stream::config::Settings,
    customers: u32,
    events: u64,
    seed: u64,
) -> (nbo_stream::generator::GenerateSummary, i64) {
    let start_ms = stream_start(customers, events);
    let summary = generate_at(settings, customers, events, seed, 0.0, None, start_ms);
    (summary, start_ms)
}

fn generate_at(
    settings: &nbo_stream::config::Settings,
    customers: u32,
    events: u64,
    seed: u64,
    malformed_rate: f64,
    after_profiles: Option<nbo_stream::generator::AfterProfiles>,
    start_ms: i64,
) -> nbo_stream::generator::GenerateSummary {
    use nbo_stream::generator::{self, GeneratorOptions, Limit};
    let options = GeneratorOptions {
        customers,
        rate: 0,
        limit: Limit::Events(events),
        seed,
        start_ms,
        malformed_rate,
        framing: nbo_stream::codec::Framing::Confluent,
        progress: false,
        declared: Vec::new(),
        after_profiles,
        own_conversions: None,
    };
    let client = nbo_stream::source::client_config(&settings.kafka);
    let codec = Codec::with_defaults().unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    generator::generate(&client, &settings.topics, &codec, &options, &stop).expect("generate")
}

/// A pipeline running in this test process, on its own task.
pub struct Running {
    /// Its running totals.
    pub progress: std::sync::Arc<nbo_stream::worker::Progress>,
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<Result<(), nbo_stream::pipeline::PipelineError>>,
}

impl Running {
    /// Starts the pipeline of `settings` over `store`.
    pub fn start(
        settings: &nbo_stream::config::Settings,
        store: std::sync::Arc<dyn nbo_stream::state::StateStore>,
    ) -> Self {
        let progress = std::sync::Arc::new(nbo_stream::worker::Progress::default());
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let deps = nbo_stream::pipeline::Dependencies {
            store,
            health: Default::default(),
            progress: progress.clone(),
        };
        let run_settings = settings.clone();
        let handle =
            tokio::spawn(
                async move { nbo_stream::pipeline::run(&run_settings, deps, stop_rx).await },
            );
        Self {
            progress,
            stop,
            handle,
        }
    }

    /// Waits until it has processed at least `records` records in all; `false` on `timeout`.
    pub async fn processed(&self, records: u64, timeout: Duration) -> bool {
        use std::sync::atomic::Ordering;
        let p = self.progress.clone();
        wait_for(timeout, || p.records.load(Ordering::Relaxed) >= records).await
    }

    /// Shuts it down cleanly and returns its totals; panics if it stopped with an error.
    pub async fn stop(self) -> std::sync::Arc<nbo_stream::worker::Progress> {
        self.stop.send(true).unwrap();
        self.handle
            .await
            .unwrap()
            .expect("pipeline stopped with an error");
        self.progress
    }
}

/// Runs the pipeline until it has processed `records` records (or `timeout`), then shuts it down
/// cleanly; returns its running totals. Panics if it stops with an error or falls short.
pub async fn run_until(
    settings: &nbo_stream::config::Settings,
    store: std::sync::Arc<dyn nbo_stream::state::StateStore>,
    records: u64,
    timeout: Duration,
) -> std::sync::Arc<nbo_stream::worker::Progress> {
    use std::sync::atomic::Ordering;
    let running = Running::start(settings, store);
    let done = running.processed(records, timeout).await;
    let progress = running.stop().await;
    assert!(
        done,
        "processed {} of {records}",
        progress.records.load(Ordering::Relaxed)
    );
    progress
}

/// Reads and decodes every record of an output topic (at least `expected`).
pub fn outputs<T: serde::de::DeserializeOwned>(
    brokers: &str,
    topic: &str,
    record: &str,
    expected: usize,
) -> Vec<T> {
    decode_outputs(
        &read_topic(brokers, topic, expected, Duration::from_secs(30)),
        record,
    )
}

/// Writes `state` and `features` for every key in one `store` call, reads them back in one
/// `load`, and checks that it took one round trip each way and that every state came back.
pub async fn write_and_read_back(
    store: &dyn nbo_stream::state::StateStore,
    keys: &[nbo_stream::state::CustomerKey],
    state: &nbo_stream::state::CustomerState,
    features: &[(&str, f64)],
    ttl_secs: u64,
) {
    use nbo_stream::state::{CustomerState, StateWrite};
    let writes: Vec<StateWrite> = keys
        .iter()
        .map(|k| StateWrite {
            key: k.clone(),
            state: state.to_bytes().unwrap(),
            features: features
                .iter()
                .map(|(n, v)| ((*n).into(), nbo_stream::features::FeatureValue::Num(*v)))
                .collect(),
            removed: vec![],
            replace: true,
            absent: false,
            erased: false,
            updated_at: state.max_event_time,
            ttl_secs,
        })
        .collect();
    let before = store.round_trips();
    store.store(&writes).await.unwrap();
    let loaded = store.load(keys).await.unwrap();
    assert_eq!(
        store.round_trips() - before,
        2,
        "one round trip to write the batch, one to read it"
    );
    assert!(loaded
        .iter()
        .all(|b| CustomerState::from_bytes(b.as_ref().unwrap()).unwrap() == *state));
}

/// The customer-key hasher of a test's settings (to find a customer's keys in the store).
pub fn hasher(settings: &nbo_stream::config::Settings) -> nbo_stream::state::KeyHasher {
    let secret = settings
        .customer_key_secret
        .as_ref()
        .expect("test settings carry a secret");
    nbo_stream::state::KeyHasher::new(secret.expose().as_bytes())
}

pub mod api;
pub mod console;
pub mod harness;
pub mod procs;
pub mod registry;
