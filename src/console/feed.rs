//! The console's reading of Kafka: the output topics and the offer responses into the [`Store`],
//! the rules topic into a [`RuleBook`] of its own.
//!
//! The console assigns itself every partition of the offers, alerts, audit, dead-letter and
//! offer-response topics (no group membership: two consoles never split the decisions between
//! them) from the offsets of `console.chart_hours` ago, and every partition of the rules topic
//! from the beginning, as a `run` instance does, so it shows the rules the instances run. Offer
//! responses are read with the pipeline's own codec (with a Schema Registry, a new writer id is
//! fetched once, off the per-record path, as a `run` instance does). It commits nothing: a restarted
//! console reads the same hours back. A record it cannot decode is logged and skipped; it is the
//! pipeline's output, so nothing is lost by not showing it.

use super::store::{Row, Store};
use crate::codec::fetch::Fetcher;
use crate::codec::{schemas, Codec, Framing};
use crate::config::Settings;
use crate::event::{Event, EventKind};
use crate::output::{DeadLetter, DecisionAudit, NextBestOffer, RiskAlert};
use crate::rules::book::RuleBook;
use crate::rules::history::HistoryEntry;
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// The topics the console reads and what each carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    Offers,
    Alerts,
    Audit,
    DeadLetters,
    Responses,
    Rules,
    History,
}

/// Rule history entries the console keeps (the oldest forgotten first): years of changes to a
/// few hundred rules.
pub const KEEP_HISTORY: usize = 50_000;

/// Decoders of the output records, with the contract's schemas.
struct Decoders {
    framing: Framing,
    offer: serde_avro_fast::Schema,
    alert: serde_avro_fast::Schema,
    /// Audits written by earlier releases too (before `features_as_of` and `propensity`).
    audit: crate::export::read::AuditDecoder,
    dead: serde_avro_fast::Schema,
}

impl Decoders {
    fn new(framing: Framing) -> anyhow::Result<Self> {
        let parse = |record: &str| -> anyhow::Result<serde_avro_fast::Schema> {
            let entry = schemas::by_record(record)
                .ok_or_else(|| anyhow::anyhow!("no built-in schema {record}"))?;
            Ok(entry.text.parse()?)
        };
        Ok(Self {
            framing,
            offer: parse("NextBestOffer")?,
            alert: parse("RiskAlert")?,
            audit: crate::export::read::AuditDecoder::new(framing)?,
            dead: parse("DeadLetter")?,
        })
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        schema: &serde_avro_fast::Schema,
        payload: &[u8],
    ) -> Result<T, String> {
        let datum = self
            .framing
            .datum(payload)
            .ok_or("no Confluent header (magic byte 0 and schema id)")?;
        serde_avro_fast::from_datum_slice(datum, schema).map_err(|e| e.to_string())
    }
}

/// What the feed shares with the web handlers.
#[derive(Clone)]
pub struct Shared {
    /// The console's memory.
    pub store: Arc<Mutex<Store>>,
    /// Rules as the instances run them.
    pub rules: Arc<Mutex<RuleBook>>,
    /// Every published rule change (the rules history topic), oldest first, at most
    /// [`KEEP_HISTORY`].
    pub history: Arc<Mutex<std::collections::VecDeque<HistoryEntry>>>,
    /// New offers and alerts, for the live stream. A slow listener misses rows (it is told how
    /// many) rather than holding memory.
    pub live: broadcast::Sender<Row>,
    /// The latest consumer-lag reading of the `run` instances' group.
    pub lag: super::lag::Slot,
    /// The alert rules' quality (alerts and their closures), read by [`super::quality::feed`].
    pub quality: Arc<Mutex<super::quality::AlertQuality>>,
}

/// Assigns the topics and reads them until the process ends.
/// `codec` and `fetcher` are the console's (see `console::start_with`): offer responses are
/// decoded with them.
pub async fn run(
    settings: &Settings,
    shared: Shared,
    codec: std::sync::Arc<Codec>,
    fetcher: Option<std::sync::Arc<Fetcher>>,
) -> anyhow::Result<()> {
    let t = &settings.topics;
    let topics = [
        (t.offers.as_str(), Topic::Offers),
        (t.alerts.as_str(), Topic::Alerts),
        (t.decisions_audit.as_str(), Topic::Audit),
        (t.dead_letters.as_str(), Topic::DeadLetters),
        (t.offer_responses.as_str(), Topic::Responses),
        (t.rules.as_str(), Topic::Rules),
        (t.rules_history.as_str(), Topic::History),
    ];
    let mut config = reader_config(settings, "");
    // The live view is read by people: answer a fetch within 100 ms (the options may say less).
    config.set("fetch.wait.max.ms", "100");
    for (key, value) in &settings.kafka.options {
        config.set(key, value);
    }
    let group = config.get("group.id").unwrap_or_default().to_string();
    let consumer: StreamConsumer = config.create()?;
    // The chart's hours, and at least the last day for the rules' counts: a console restarted
    // mid-day counts the whole day, as one that ran all day does.
    let hours = i64::from(settings.console.chart_hours.max(24));
    let since = crate::console::now_ms() - hours * 3_600_000;
    let list = assignment(&consumer, &topics, since).await?;
    consumer.assign(&list)?;
    tracing::info!(partitions = list.count(), %group, "console reading the output and rules topics");
    let decoders = Decoders::new(settings.codec.output_framing)?;
    let mut stream = consumer.stream();
    while let Some(message) = stream.next().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "console: reading Kafka");
                continue;
            }
        };
        let Some(&(_, topic)) = topics.iter().find(|(name, _)| *name == message.topic()) else {
            continue;
        };
        let payload = message.payload();
        let result = match topic {
            Topic::Rules => {
                let key = message
                    .key()
                    .and_then(|k| std::str::from_utf8(k).ok())
                    .unwrap_or_default();
                let mut book = shared.rules.lock().unwrap_or_else(|p| p.into_inner());
                book.apply(key, payload, message.offset())
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Topic::History => {
                match serde_json::from_slice::<HistoryEntry>(payload.unwrap_or_default()) {
                    Ok(mut entry) => {
                        entry.seq = message.offset();
                        let mut history = shared.history.lock().unwrap_or_else(|p| p.into_inner());
                        if history.len() == KEEP_HISTORY {
                            history.pop_front();
                        }
                        history.push_back(entry);
                        Ok(())
                    }
                    Err(e) => Err(format!("not a rule history entry: {e}")),
                }
            }
            Topic::Responses => response(&codec, fetcher.as_deref(), &message, &shared).await,
            _ => {
                // When the record was produced: the decision's processing time.
                let at = message
                    .timestamp()
                    .to_millis()
                    .unwrap_or_else(crate::console::now_ms);
                apply(&decoders, topic, payload.unwrap_or_default(), at, &shared)
            }
        };
        if let Err(error) = result {
            tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "console: record skipped");
        }
    }
    Ok(())
}

/// Decodes an offer response and counts it towards the rule that made the offer.
async fn response(
    codec: &Codec,
    fetcher: Option<&Fetcher>,
    message: &rdkafka::message::BorrowedMessage<'_>,
    shared: &Shared,
) -> Result<(), String> {
    let kind = EventKind::OfferResponse;
    if let (Some(id), Some(fetcher)) = (codec.missing_writer(kind, message.payload()), fetcher) {
        // Waits out a registry outage (the console's pages keep serving meanwhile).
        let topic = message.topic().to_string();
        let missing = std::collections::BTreeSet::from([(kind, id)]);
        let health = crate::telemetry::http::Health::default();
        fetcher
            .prepare(codec, &missing, |_| topic.clone(), &health, || true)
            .await;
    }
    let now = crate::console::now_ms();
    match codec.decode(kind, message.key(), message.payload(), now) {
        Ok(Event::OfferResponse(r)) => {
            lock(&shared.store).push_response(&r.offer_id, r.response, r.event_time);
            Ok(())
        }
        Ok(_) => Err("not an OfferResponse".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Decodes one output record into the store (and the live stream).
fn apply(
    d: &Decoders,
    topic: Topic,
    payload: &[u8],
    at: i64,
    shared: &Shared,
) -> Result<(), String> {
    let row = match topic {
        Topic::Offers => {
            let offer: NextBestOffer = d.decode(&d.offer, payload)?;
            lock(&shared.store).note_offer(&offer.offer_id, &offer.rule_id);
            Some(Row::offer(offer))
        }
        Topic::Alerts => Some(Row::alert(d.decode::<RiskAlert>(&d.alert, payload)?)),
        Topic::Audit => {
            let audit: DecisionAudit = d.audit.decode(payload)?;
            lock(&shared.store).push_audit(audit, at);
            None
        }
        Topic::DeadLetters => {
            let dead: DeadLetter = d.decode(&d.dead, payload)?;
            lock(&shared.store).push_dead_letter(dead);
            None
        }
        Topic::Responses | Topic::Rules | Topic::History => None,
    };
    if let Some(row) = row {
        let row = lock(&shared.store).push_row(row, at);
        // No listener is not an error: nobody has the live view open.
        let _ = shared.live.send(row);
    }
    Ok(())
}

/// The client configuration of a console reader, the options not yet applied: the console's
/// group id (`console.group_id`, default `<kafka.group_id>-console`) with `suffix`, no commits,
/// no group work (its readers assign themselves partitions), and what the instances committed
/// only (exactly-once mode), nothing aborted.
pub fn reader_config(settings: &Settings, suffix: &str) -> rdkafka::ClientConfig {
    let group = settings
        .console
        .group_id
        .clone()
        .unwrap_or_else(|| format!("{}-console", settings.kafka.group_id));
    let mut config = crate::source::client_config(&settings.kafka);
    config
        .set("group.id", format!("{group}{suffix}"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("isolation.level", "read_committed");
    config
}

/// Locks the store; a handler that panicked while holding it left consistent data (every update
/// is a few field writes), so the lock is taken back rather than failing every later request.
pub fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every partition of every topic: the rules from the beginning, the outputs from `since` (ms).
/// A topic that does not exist yet is skipped with a warning (`nbo-stream topics create`).
async fn assignment(
    consumer: &StreamConsumer,
    topics: &[(&str, Topic)],
    since: i64,
) -> anyhow::Result<TopicPartitionList> {
    let timeout = Duration::from_secs(10);
    let mut rules = TopicPartitionList::new();
    let mut outputs = TopicPartitionList::new();
    for &(name, topic) in topics {
        let partitions = super::lag::partitions_of(consumer, name, timeout)?;
        if partitions.is_empty() {
            tracing::warn!(
                topic = name,
                "console: topic does not exist; create it with `nbo-stream topics create`"
            );
        }
        for p in partitions {
            if matches!(topic, Topic::Rules | Topic::History) {
                rules.add_partition_offset(name, p, Offset::Beginning)?;
            } else {
                outputs.add_partition_offset(name, p, Offset::Offset(since))?;
            }
        }
    }
    // Offsets of the first record at or after `since`; a broker that cannot answer by time
    // leaves the console reading the whole topic (still bounded by the store).
    let mut list = match consumer.offsets_for_times(outputs.clone(), timeout) {
        Ok(found) => {
            let mut list = TopicPartitionList::new();
            for e in found.elements() {
                let offset = match e.offset() {
                    Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                    _ => Offset::End,
                };
                list.add_partition_offset(e.topic(), e.partition(), offset)?;
            }
            list
        }
        Err(e) => {
            tracing::warn!(error = %e, "console: the broker cannot find offsets by time; reading the output topics from the beginning");
            let mut list = TopicPartitionList::new();
            for e in outputs.elements() {
                list.add_partition_offset(e.topic(), e.partition(), Offset::Beginning)?;
            }
            list
        }
    };
    for e in rules.elements() {
        list.add_partition_offset(e.topic(), e.partition(), Offset::Beginning)?;
    }
    Ok(list)
}
