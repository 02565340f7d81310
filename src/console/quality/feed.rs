//! The console's reading of the alerts and the investigators' closures for the alert rules'
//! quality: every partition of the alerts topic and of the alert-outcomes topic, from
//! `console.quality_days` ago (by Kafka timestamp) on, into an [`AlertQuality`].
//!
//! It has its own consumer (the other topics are read from `console.chart_hours` ago), assigns
//! itself the partitions (no group membership), reads `read_committed` and commits nothing: a
//! restarted console reads the same days back. Closures are decoded with the pipeline's codec (a
//! new writer id is fetched from the registry once); a record that does not decode is logged and
//! skipped.

use super::AlertQuality;
use crate::codec::fetch::Fetcher;
use crate::codec::{schemas, Codec};
use crate::config::Settings;
use crate::event::{Event, EventKind};
use crate::output::RiskAlert;
use futures::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};

/// Reads alerts and closures into `quality` until the process ends.
pub async fn run(
    settings: &Settings,
    quality: Arc<Mutex<AlertQuality>>,
    codec: Arc<Codec>,
    fetcher: Option<Arc<Fetcher>>,
) -> anyhow::Result<()> {
    let t = &settings.topics;
    let mut config = crate::console::feed::reader_config(settings, "-quality");
    for (key, value) in &settings.kafka.options {
        config.set(key, value);
    }
    // Closures count for figures over days: half a second's wait per fetch is plenty, and keeps
    // this reader light beside the live feed (after the options, which may set it lower for
    // the live view).
    config.set("fetch.wait.max.ms", "500");
    let consumer: StreamConsumer = config.create()?;
    let days = i64::from(settings.console.quality_days);
    let since = crate::console::now_ms() - days * 86_400_000;
    let mut list = TopicPartitionList::new();
    for topic in [&t.alerts, &t.alert_outcomes] {
        let partitions = crate::console::lag::partitions_of(
            &consumer,
            topic,
            crate::export::read::IDLE_TIMEOUT,
        )?;
        if partitions.is_empty() {
            tracing::warn!(%topic, "console: topic does not exist; create it with `nbo-stream topics create`");
            continue;
        }
        let starts =
            // Nothing that recent in a partition: what comes next.
            crate::export::read::start_offsets(&consumer, topic, &partitions, Some(since), Offset::End)?;
        for p in partitions {
            // An empty partition is read from its beginning: what comes next.
            let offset = starts
                .find_partition(topic, p)
                .map_or(Offset::Beginning, |e| e.offset());
            list.add_partition_offset(topic, p, offset)?;
        }
    }
    consumer.assign(&list)?;
    tracing::info!(
        partitions = list.count(),
        days,
        "console reading alerts and their closures"
    );
    let alert_schema: serde_avro_fast::Schema = schemas::by_record("RiskAlert")
        .ok_or_else(|| anyhow::anyhow!("no built-in RiskAlert schema"))?
        .text
        .parse()?;
    let framing = settings.codec.output_framing;
    let mut stream = consumer.stream();
    while let Some(message) = stream.next().await {
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "console: reading alerts and closures");
                continue;
            }
        };
        let result = if message.topic() == t.alerts {
            framing
                .datum(message.payload().unwrap_or_default())
                .ok_or_else(|| "no Confluent header".to_string())
                .and_then(|datum| {
                    serde_avro_fast::from_datum_slice::<RiskAlert>(datum, &alert_schema)
                        .map_err(|e| e.to_string())
                })
                .map(|a| lock(&quality).alert(&a.alert_id, &a.rule_id, a.rule_version, a.raised_at))
        } else {
            let kind = EventKind::AlertOutcome;
            match crate::export::read::decode_input(&codec, fetcher.as_deref(), kind, &message)
                .await
            {
                Ok(Event::AlertOutcome(o)) => {
                    let amount = o
                        .amount_minor
                        .zip(o.currency.as_ref().map(|c| c.to_string()));
                    lock(&quality).close(&o.alert_id, o.label, amount, o.event_time);
                    Ok(())
                }
                Ok(_) => Err("not an AlertOutcome".into()),
                Err(e) => Err(e),
            }
        };
        if let Err(error) = result {
            tracing::warn!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "console: record skipped");
        }
    }
    Ok(())
}

/// Locks the quality counts (see `feed::lock`: a panicked holder left them consistent).
pub fn lock(quality: &Mutex<AlertQuality>) -> std::sync::MutexGuard<'_, AlertQuality> {
    quality.lock().unwrap_or_else(|p| p.into_inner())
}
