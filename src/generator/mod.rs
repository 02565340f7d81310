//! `nbo-stream generate`: synthetic bank customers producing Avro to every input topic at a steady
//! rate, with a progress bar and a closing summary. Also the load generator for benchmarks: it
//! encodes with the pipeline's own codec and produces with a threaded, batching producer.

pub mod conversions;
mod declared;
pub mod file;
pub mod investigator;
pub mod personas;
pub mod responder;
pub mod simulate;

use crate::codec::{Codec, Framing};
use crate::config::TopicSettings;
use crate::event::{Event, EventKind, KindTable};
use crate::telemetry::metrics;
use indicatif::{ProgressBar, ProgressStyle};
use personas::EventFactory;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When to stop.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// After this many records.
    Events(u64),
    /// After this long.
    Duration(Duration),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorOptions {
    /// Number of customers.
    pub customers: u32,
    /// Records per second; 0 = as fast as the broker takes them.
    pub rate: u64,
    /// When to stop.
    pub limit: Limit,
    /// Random seed: the same seed and start give the same records.
    pub seed: u64,
    /// Simulated time of the first event (ms since epoch).
    pub start_ms: i64,
    /// Fraction of records replaced by malformed bytes (dead-letter exercise).
    pub malformed_rate: f64,
    /// Framing of the records written.
    pub framing: Framing,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Declared sources whose synthetic records join the stream (see
    /// [`personas::EventFactory::with_declared`]); empty for the built-in channels only.
    pub declared: Vec<std::sync::Arc<crate::catalog::Declared>>,
    /// Called (blocking) once every customer's profile is produced and acknowledged, before any
    /// activity: the demo waits there until the pipeline holds every profile, as a bank's CRM
    /// state exists before the activity it governs.
    pub after_profiles: Option<AfterProfiles>,
    /// Customers also open products on their own at these base rates (`None`: no
    /// `ProductOpened` records; see [`personas::EventFactory::with_own_conversions`]).
    pub own_conversions: Option<responder::Truth>,
}

/// A hook run between the profiles and the activity (see [`GeneratorOptions::after_profiles`]).
#[derive(Clone)]
pub struct AfterProfiles(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for AfterProfiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterProfiles")
    }
}

/// What was produced.
#[derive(Debug, Clone, Default)]
pub struct GenerateSummary {
    /// Records acknowledged per topic.
    pub by_topic: BTreeMap<String, u64>,
    /// Records sent (acknowledged or not).
    pub sent: u64,
    /// Malformed records among them.
    pub malformed: u64,
    /// Records the broker did not acknowledge.
    pub failed: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for GenerateSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "generated {} records in {:.1}s ({:.0}/s), {} malformed, {} failed",
            self.sent,
            secs,
            self.sent as f64 / secs,
            self.malformed,
            self.failed
        )?;
        for (topic, n) in &self.by_topic {
            writeln!(f, "  {topic:<28} {n:>10}")?;
        }
        Ok(())
    }
}

/// Generator failure.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// The producer could not be created.
    #[error("kafka producer: {0}")]
    Kafka(#[from] KafkaError),
    /// A record could not be encoded (a defect).
    #[error(transparent)]
    Encode(#[from] crate::codec::EncodeError),
    /// The simulator could not start.
    #[error("simulate: {0}")]
    Simulate(String),
}

struct Counting {
    acked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

macro_rules! encoders {
    ($($variant:ident($ty:ident)),+ $(,)?) => {
        /// Encodes a built-in record in its schema, or a declared source's in its reader schema.
        fn encode(
            codec: &Codec,
            event: &Event,
            framing: Framing,
        ) -> Result<Vec<u8>, crate::codec::EncodeError> {
            let name = event.kind().record_name();
            match event {
                $(Event::$variant(e) => codec.encode_framed(name, e, framing),)+
                Event::Declared(e) => codec.encode_declared(e, framing),
            }
        }
    };
}
crate::event::builtin_records!(encoders);

/// Encodes one event as the generator writes it (also used by tests and benches).
pub fn encode_event(
    codec: &Codec,
    event: &Event,
    framing: Framing,
) -> Result<Vec<u8>, crate::codec::EncodeError> {
    encode(codec, event, framing)
}

/// Produces the configured stream. Blocking: run it on a blocking thread. `stop` ends it early.
pub fn generate(
    client: &ClientConfig,
    topics: &TopicSettings,
    codec: &Codec,
    options: &GeneratorOptions,
    stop: &AtomicBool,
) -> Result<GenerateSummary, GenerateError> {
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut config = client.clone();
    config
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "500000");
    // LZ4 unless the caller chose (`generate --compression`).
    if config.get("compression.type").is_none() {
        config.set("compression.type", "lz4");
    }
    let producer: ThreadedProducer<Counting> = config.create_with_context(Counting {
        acked: acked.clone(),
        failed: failed.clone(),
    })?;
    let inputs = topics.inputs();
    let mut factory = EventFactory::new(options.customers, options.seed, options.start_ms)
        .with_declared(options.declared.clone());
    if let Some(truth) = &options.own_conversions {
        factory = factory.with_own_conversions(truth, options.seed);
    }
    factory.cap_clock(crate::clock::now_ms());
    // Built-in records go to the configured topics, declared ones to their declarations'.
    let topic_of = |kind: EventKind| match kind {
        EventKind::Declared(id) => options
            .declared
            .iter()
            .find(|d| d.id == id)
            .map_or("", |d| d.topic),
        _ => inputs[kind.index()],
    };
    let bar = progress_bar(options);
    let started = Instant::now();
    let mut summary = GenerateSummary::default();
    let mut sent_by_kind = KindTable::<u64>::default();
    let m = metrics();
    loop {
        let done = match options.limit {
            Limit::Events(n) => summary.sent >= n,
            Limit::Duration(d) => started.elapsed() >= d,
        };
        if done || stop.load(Ordering::Relaxed) {
            break;
        }
        if options.rate > 0 {
            // Steady rate: never ahead of `rate` records per elapsed second.
            let due = (started.elapsed().as_secs_f64() * options.rate as f64) as u64;
            if summary.sent >= due {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        }
        let event = factory.next_event();
        let kind = event.kind();
        let mut payload = encode(codec, &event, options.framing)?;
        if factory.chance(options.malformed_rate) {
            payload = factory.malformed(&payload);
            summary.malformed += 1;
        }
        let topic = topic_of(kind);
        let key = event.customer_id().as_bytes().to_vec();
        // The record's timestamp is the event's own time, as a bank's producers should set it:
        // the pipeline takes its inputs in record-timestamp order across topics
        // (`source::align`).
        let timestamp = event.event_time();
        loop {
            let record = BaseRecord::to(topic)
                .key(&key)
                .payload(&payload)
                .timestamp(timestamp);
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        summary.sent += 1;
        *sent_by_kind.entry(kind) += 1;
        if summary.sent == u64::from(options.customers) {
            if let Some(hook) = &options.after_profiles {
                if let Err(e) = producer.flush(Duration::from_secs(60)) {
                    tracing::warn!(error = %e, "profiles not all acknowledged before the activity starts");
                }
                (hook.0)();
            }
        }
        if summary.sent % 1024 == 0 {
            bar.set_position(match options.limit {
                Limit::Events(_) => summary.sent,
                Limit::Duration(_) => started.elapsed().as_secs(),
            });
        }
    }
    if let Err(e) = producer.flush(Duration::from_secs(60)) {
        tracing::warn!(error = %e, "generator flush did not complete");
    }
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    summary.failed = failed.load(Ordering::Relaxed);
    for (kind, n) in sent_by_kind.iter().filter(|(_, n)| **n > 0) {
        summary.by_topic.insert(topic_of(kind).to_string(), *n);
        m.generated_events
            .with_label_values(&[topic_of(kind)])
            .inc_by(*n);
    }
    Ok(summary)
}

fn progress_bar(options: &GeneratorOptions) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let (len, template) = match options.limit {
        Limit::Events(n) => (
            n,
            "generate [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
        ),
        Limit::Duration(d) => (d.as_secs(), "generate [{bar:40}] {pos}/{len} s"),
    };
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
