//! `nbo-stream demo`: the whole system in one process with nothing installed — librdkafka's mock
//! cluster as the broker, the in-memory state store, the built-in generator, and the simulated
//! customers answering the offers they get (`generator::simulate`) — with live progress,
//! `/metrics` served while it runs, and a closing summary.

use crate::clock::now_ms;
use crate::codec::{Codec, Framing};
use crate::config::{Settings, StateBackend};
use crate::generator::responder::{Responder, Truth};
use crate::generator::simulate::{SimulateOptions, SimulateSummary};
use crate::generator::{self, personas::Persona, GeneratorOptions, Limit};
use crate::pipeline::{self, Dependencies};
use crate::state::{memory::MemoryStore, KeyHasher, StateStore};
use crate::telemetry::{http, metrics};
use crate::worker::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::mocking::MockCluster;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most events the demo accepts: the mock cluster stalls for good past ~57,000 records per
/// partition (measured: ~460,000 of 1,000,000 over 8 partitions).
pub const MAX_DEMO_EVENTS: u64 = 400_000;

/// Demo options (from the CLI).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Records to generate.
    pub events: u64,
    /// Synthetic customers.
    pub customers: u32,
    /// Seed.
    pub seed: u64,
    /// Partitions per topic.
    pub partitions: i32,
    /// Address of `/metrics`.
    pub listen: String,
    /// Fraction of malformed records.
    pub malformed_rate: f64,
    /// Show progress bars.
    pub progress: bool,
    /// Serve the console on this address beside the pipeline, and keep serving after the run
    /// until Ctrl-C.
    pub console: Option<String>,
}

/// What the demo saw; printed as the summary and checked by tests.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// Records generated.
    pub generated: u64,
    /// Records the pipeline processed.
    pub processed: u64,
    /// Events per topic.
    pub by_topic: Vec<(String, u64)>,
    /// Offers per rule.
    pub offers_by_rule: Vec<(String, u64)>,
    /// Alerts per rule.
    pub alerts_by_rule: Vec<(String, u64)>,
    /// Decisions per outcome (offered, alerted, and each suppression reason).
    pub decisions_by_outcome: Vec<(String, u64)>,
    /// Total offers.
    pub offers: u64,
    /// Total alerts.
    pub alerts: u64,
    /// Dead letters.
    pub dead_letters: u64,
    /// What the simulated customers answered to the offers they got.
    pub responses: SimulateSummary,
    /// Per alert rule, the cases the stream counted closed (duplicates left out) and of those
    /// confirmed: its measured precision, against the simulator's truth (0.3 for every rule).
    pub precision_by_rule: Vec<(String, u64, u64)>,
    /// Whether `/metrics` answered during the run, and its size.
    pub metrics_bytes: Option<usize>,
    /// An example customer and its feature hash.
    pub example: Option<(String, Vec<(String, String)>)>,
    /// Wall time.
    pub elapsed: Duration,
}

/// Demo failure.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Bad option.
    #[error("{0}")]
    Options(String),
    /// Broker problem.
    #[error("mock cluster: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Pipeline stopped.
    #[error(transparent)]
    Pipeline(#[from] pipeline::PipelineError),
    /// Generator failed.
    #[error(transparent)]
    Generate(#[from] generator::GenerateError),
    /// Metrics endpoint could not bind.
    #[error("metrics endpoint {0}: {1}")]
    Listen(String, std::io::Error),
    /// No progress for too long.
    #[error("the pipeline made no progress for {0:?}: processed {1} of {2} records")]
    Stalled(Duration, u64, u64),
}

fn scrape(addr: std::net::SocketAddr) -> Option<usize> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    let ok = (body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"))
        && body.contains("nbo_events_consumed_total");
    ok.then_some(body.len())
}

fn labelled_counts(name: &str, label: &str) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for family in metrics().registry.gather() {
        if family.name() != name {
            continue;
        }
        for m in family.get_metric() {
            let Some(l) = m.get_label().iter().find(|l| l.name() == label) else {
                continue;
            };
            let v = m.get_counter().value() as u64;
            match out.iter_mut().find(|(k, _)| k == l.value()) {
                Some((_, n)) => *n += v,
                None => out.push((l.value().to_string(), v)),
            }
        }
    }
    out.sort();
    out
}

/// Per alert rule, the closed cases the stream counted (`nbo_alert_outcomes_total`, duplicates
/// left out) and of those confirmed.
fn closed_by_rule() -> Vec<(String, u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for family in metrics().registry.gather() {
        if family.name() != "nbo_alert_outcomes_total" {
            continue;
        }
        for m in family.get_metric() {
            let label = |name: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == name)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            let n = m.get_counter().value() as u64;
            let closure = label("label");
            if closure == "DUPLICATE" {
                continue;
            }
            let e = out.entry(label("rule")).or_default();
            e.0 += n;
            if closure == "CONFIRMED_RISK" {
                e.1 += n;
            }
        }
    }
    out.into_iter().map(|(r, (c, k))| (r, c, k)).collect()
}

/// Runs the demo and returns what it saw.
pub async fn run(options: &DemoOptions) -> Result<DemoReport, DemoError> {
    if options.events == 0 || options.events > MAX_DEMO_EVENTS {
        return Err(DemoError::Options(format!(
            "--events must be within 1..={MAX_DEMO_EVENTS} (the embedded mock broker stalls beyond that; use `run` with a real broker)"
        )));
    }
    let started = Instant::now();
    let cluster = MockCluster::new(1)?;
    let mut settings = Settings::default();
    settings.kafka.brokers = cluster.bootstrap_servers();
    settings.kafka.group_id = "nbo-stream-demo".into();
    settings.state.backend = StateBackend::Memory;
    settings.telemetry.listen = options.listen.clone();
    settings.customer_key_secret = Some(crate::config::Secret::new(
        "demo-only-key-not-for-production",
    ));
    for topic in settings.topics.all() {
        cluster.create_topic(topic, options.partitions, 1)?;
    }

    let health = http::Health::default();
    let addr = http::serve(&settings.telemetry.listen, health.clone())
        .await
        .map_err(|e| DemoError::Listen(settings.telemetry.listen.clone(), e))?;
    eprintln!(
        "demo: broker {} (embedded), metrics on http://{addr}/metrics",
        settings.kafka.brokers
    );

    let store = Arc::new(MemoryStore::new());
    let progress = Arc::new(Progress::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let deps = Dependencies {
        store: store.clone(),
        health: health.clone(),
        progress: progress.clone(),
    };
    let pipeline_settings = settings.clone();
    let pipeline =
        tokio::spawn(async move { pipeline::run(&pipeline_settings, deps, stop_rx).await });
    if let Some(listen) = &options.console {
        start_console(&settings, listen, store.clone()).await?;
    }

    let codec = Arc::new(Codec::with_defaults().map_err(pipeline::PipelineError::from)?);
    let gen_options = GeneratorOptions {
        customers: options.customers,
        rate: 0,
        limit: Limit::Events(options.events),
        seed: options.seed,
        // Start far enough back that the simulated stream ends about now.
        start_ms: now_ms()
            - generator::personas::span_ms(options.customers, options.events)
            - 3_600_000,
        malformed_rate: options.malformed_rate,
        framing: Framing::Confluent,
        progress: false,
        declared: Vec::new(),
        // No wait between the profiles and the activity: the pipeline takes its inputs in
        // event-time order across topics (`source::align`), so a customer's profile is applied
        // before the activity it governs however the topics are fetched.
        after_profiles: None,
        // Customers open products on their own too: the control group's conversions.
        own_conversions: Some(Truth::default()),
    };
    let client = crate::source::client_config(&settings.kafka);
    let topics = settings.topics.clone();
    let gen_codec = codec.clone();
    let gen_stop = Arc::new(AtomicBool::new(false));
    let gen_stop2 = gen_stop.clone();
    let gen = tokio::task::spawn_blocking(move || {
        generator::generate(&client, &topics, &gen_codec, &gen_options, &gen_stop2)
    });

    // The customers answer their offers while the demo runs; the pipeline reads the answers.
    let sim_options = SimulateOptions {
        customers: options.customers,
        seed: options.seed,
        responder: Responder::new(Truth::default(), options.seed),
        delay: Duration::from_secs(3_600),
        framing: Framing::Confluent,
        offer_framing: settings.codec.output_framing,
        group_id: format!("{}-simulator", settings.kafka.group_id),
        idle_exit: None,
        delivery_receipts: true,
        // Investigators close the alerts too, so the console and metrics show each rule's
        // precision.
        investigators: Some(crate::generator::investigator::Investigators::new(
            options.seed,
        )),
        close_after: Duration::from_secs(4 * 3_600),
    };
    let sim_client = crate::source::client_config(&settings.kafka);
    let sim_topics = settings.topics.clone();
    let sim_codec = codec.clone();
    let sim_stop = Arc::new(AtomicBool::new(false));
    let sim_stop2 = sim_stop.clone();
    let simulator = tokio::task::spawn_blocking(move || {
        generator::simulate::simulate(
            &sim_client,
            &sim_topics,
            &sim_codec,
            &sim_options,
            &sim_stop2,
        )
    });

    let bar = if options.progress {
        ProgressBar::new(options.events)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template(
        "demo [{bar:40}] {pos}/{len} records processed ({per_sec}) {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut metrics_bytes = None;
    let mut last_progress = (0u64, Instant::now());
    let stall_limit = Duration::from_secs(90);
    let mut gen = Some(gen);
    let mut summary = None;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let processed = progress.records.load(Ordering::Relaxed);
        bar.set_position(processed);
        bar.set_message(format!(
            "offers {} alerts {} dead letters {}",
            progress.offers.load(Ordering::Relaxed),
            progress.alerts.load(Ordering::Relaxed),
            progress.dead_letters.load(Ordering::Relaxed)
        ));
        if metrics_bytes.is_none() && processed > 0 {
            metrics_bytes = tokio::task::spawn_blocking(move || scrape(addr))
                .await
                .ok()
                .flatten();
        }
        if let Some(handle) = gen.as_ref() {
            if handle.is_finished() {
                if let Some(handle) = gen.take() {
                    summary = Some(
                        handle
                            .await
                            .map_err(|e| DemoError::Options(e.to_string()))??,
                    );
                }
            }
        }
        // Done once every generated record is processed and the answers to the offers have
        // settled: the answers are records too, so quiet for a moment means all are in.
        if let Some(s) = &summary {
            if processed >= s.sent && last_progress.1.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        if processed > last_progress.0 {
            last_progress = (processed, Instant::now());
        } else if last_progress.1.elapsed() > stall_limit {
            gen_stop.store(true, Ordering::Relaxed);
            sim_stop.store(true, Ordering::Relaxed);
            let _ = stop_tx.send(true);
            return Err(DemoError::Stalled(stall_limit, processed, options.events));
        }
        if pipeline.is_finished() {
            break;
        }
    }
    bar.finish_and_clear();
    if options.console.is_some() {
        eprintln!(
            "demo: {} records processed, {} offers, {} alerts; the console keeps serving (the pipeline too): Ctrl-C to stop and print the summary",
            progress.records.load(Ordering::Relaxed),
            progress.offers.load(Ordering::Relaxed),
            progress.alerts.load(Ordering::Relaxed)
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    if metrics_bytes.is_none() {
        metrics_bytes = tokio::task::spawn_blocking(move || scrape(addr))
            .await
            .ok()
            .flatten();
    }
    sim_stop.store(true, Ordering::Relaxed);
    let responses = simulator
        .await
        .map_err(|e| DemoError::Options(e.to_string()))??;
    let _ = stop_tx.send(true);
    pipeline
        .await
        .map_err(|e| DemoError::Options(e.to_string()))??;
    let summary = summary.unwrap_or_default();

    let hasher = KeyHasher::new(b"demo-only-key-not-for-production");
    let mut example = None;
    let factory = generator::personas::EventFactory::new(options.customers, options.seed, 0);
    for c in factory
        .customers()
        .iter()
        .filter(|c| c.persona == Persona::CardHeavySpender)
    {
        let features = store
            .feature_hash(&hasher.key(&c.id))
            .await
            .unwrap_or_default();
        if !features.is_empty() {
            example = Some((c.id.to_string(), features));
            break;
        }
    }
    Ok(DemoReport {
        generated: summary.sent,
        processed: progress.records.load(Ordering::Relaxed),
        by_topic: summary.by_topic.into_iter().collect(),
        offers_by_rule: labelled_counts("nbo_offers_total", "rule"),
        alerts_by_rule: labelled_counts("nbo_alerts_total", "rule"),
        decisions_by_outcome: labelled_counts("nbo_decisions_total", "outcome"),
        precision_by_rule: closed_by_rule(),
        offers: progress.offers.load(Ordering::Relaxed),
        alerts: progress.alerts.load(Ordering::Relaxed),
        dead_letters: progress.dead_letters.load(Ordering::Relaxed),
        responses,
        metrics_bytes,
        example,
        elapsed: started.elapsed(),
    })
}

/// Serves the console beside the demo's pipeline, with one publisher `demo` whose password is
/// drawn now and printed with the URL.
async fn start_console(
    settings: &Settings,
    listen: &str,
    store: Arc<MemoryStore>,
) -> Result<(), DemoError> {
    use crate::config::console::{ConsoleUser, Role};
    use rand::Rng;
    let password: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    let hash = crate::console::auth::hash_password(&password).map_err(DemoError::Options)?;
    let mut settings = settings.clone();
    settings.console.listen = listen.to_string();
    // Plain HTTP on the local machine: a Secure cookie would never be sent back.
    settings.console.secure_cookie = false;
    settings.console.users = vec![ConsoleUser {
        name: "demo".into(),
        role: Role::Publisher,
        password_hash: Some(hash),
    }];
    let addr = crate::console::start_with(&settings, Some(store))
        .await
        .map_err(|e| DemoError::Options(format!("console: {e}")))?;
    eprintln!("demo: console on http://{addr}/ (sign in as demo, password {password})");
    Ok(())
}

impl std::fmt::Display for DemoReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "nbo-stream demo: {} records generated, {} processed in {:.1}s ({:.0}/s)",
            self.generated,
            self.processed,
            secs,
            self.processed as f64 / secs
        )?;
        writeln!(f, "\nevents by topic:")?;
        for (t, n) in &self.by_topic {
            writeln!(f, "  {t:<30} {n:>9}")?;
        }
        writeln!(f, "\noffers by rule ({} in all):", self.offers)?;
        for (r, n) in &self.offers_by_rule {
            writeln!(f, "  {r:<34} {n:>7}")?;
        }
        writeln!(f, "\nalerts by rule ({} in all):", self.alerts)?;
        for (r, n) in &self.alerts_by_rule {
            writeln!(f, "  {r:<34} {n:>7}")?;
        }
        writeln!(f, "\ndecisions by outcome (audit records):")?;
        for (o, n) in &self.decisions_by_outcome {
            writeln!(f, "  {o:<34} {n:>7}")?;
        }
        writeln!(
            f,
            "\nthe simulated customers' answers and the investigators' closures:"
        )?;
        write!(f, "{}", self.responses)?;
        if !self.precision_by_rule.is_empty() {
            writeln!(
                f,
                "\nalert rules' precision as the stream counted the closures (truth: {}):",
                crate::generator::investigator::DEFAULT_PRECISION
            )?;
            for (rule, closed, confirmed) in &self.precision_by_rule {
                let p = crate::learning::precision::Share::of(*confirmed, *closed)
                    .map_or_else(|| "-".to_string(), |s| s.to_string());
                writeln!(f, "  {rule:<34} {p}")?;
            }
        }
        writeln!(f, "\ndead letters: {}", self.dead_letters)?;
        match self.metrics_bytes {
            Some(n) => writeln!(f, "/metrics answered during the run ({n} bytes)")?,
            None => writeln!(f, "/metrics did NOT answer during the run")?,
        }
        if let Some((id, features)) = &self.example {
            writeln!(
                f,
                "\nexample customer {id} (HGETALL nbo:features:{{<customer-key>}}):"
            )?;
            for (k, v) in features {
                writeln!(f, "  {k:<28} {v}")?;
            }
        }
        Ok(())
    }
}
