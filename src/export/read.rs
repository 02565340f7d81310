//! Reading what the export joins: a topic's records from a time on, to the end the topic had
//! when the reading began, and the decoding of audits and outcome records.
//!
//! Each topic is read by a consumer of its own. Each partition is read from the first offset at
//! or after the start time (by Kafka timestamp) up to the end it had when the reading began
//! (its high watermark then): records produced meanwhile are left for the next export, so a busy
//! topic cannot keep the export going. librdkafka's end-of-partition event also ends a
//! partition, since `read_committed` never delivers a transaction's closing marker. Nothing is
//! committed: the export is a reader, not a member of any group's work.

use crate::codec::fetch::Fetcher;
use crate::codec::{schemas, Codec, Framing};
use crate::config::Settings;
use crate::event::{Event, EventKind};
use crate::output::DecisionAudit;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// How long a read waits for the broker to say anything before it gives up.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Fields added to the audit record since its first release, newest last: an audit written
/// before them is read with the schema without them.
const AUDIT_ADDED_FIELDS: [&str; 3] = ["features_as_of", "propensity", "rolled_up"];

/// A consumer for one topic of the export: no group work, nothing committed, committed records
/// only.
pub fn consumer(settings: &Settings) -> anyhow::Result<StreamConsumer> {
    let mut config = crate::source::client_config(&settings.kafka);
    config
        .set("group.id", format!("{}-export", settings.kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    for (key, value) in &settings.kafka.options {
        config.set(key, value);
    }
    Ok(config.create()?)
}

/// Reads every record of `topic` produced at or after `since` (ms, by Kafka timestamp; `None`:
/// from the beginning) up to the end the topic had when the reading began, calling `each` with
/// each. Returns how many records were read.
pub async fn read_topic(
    settings: &Settings,
    topic: &str,
    since: Option<i64>,
    mut each: impl AsyncFnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<u64> {
    let consumer = consumer(settings)?;
    let partitions = crate::console::lag::partitions_of(&consumer, topic, IDLE_TIMEOUT)?;
    if partitions.is_empty() {
        anyhow::bail!("topic {topic} does not exist (create it with `nbo-stream topics create`)");
    }
    let list = start_offsets(&consumer, topic, &partitions, since, Offset::Beginning)?;
    // Where each partition ends now: the reading stops there.
    let mut open: BTreeMap<i32, i64> = BTreeMap::new();
    for e in list.elements() {
        let (_, high) = consumer.fetch_watermarks(topic, e.partition(), IDLE_TIMEOUT)?;
        let first = match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        if high > first {
            open.insert(e.partition(), high);
        }
    }
    if open.is_empty() {
        return Ok(0);
    }
    consumer.assign(&list)?;
    let mut read = 0;
    while !open.is_empty() {
        let message = match tokio::time::timeout(IDLE_TIMEOUT, consumer.recv()).await {
            Err(_) => anyhow::bail!(
                "reading {topic}: Kafka said nothing for {}s (partitions {:?} not read to their end)",
                IDLE_TIMEOUT.as_secs(),
                open.keys().collect::<Vec<_>>()
            ),
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
                continue;
            }
            Ok(Err(e)) => anyhow::bail!("reading {topic}: {e}"),
            Ok(Ok(m)) => m,
        };
        let (p, offset) = (message.partition(), message.offset());
        let Some(&end) = open.get(&p) else {
            continue; // past the end it had: for the next export
        };
        if offset >= end {
            open.remove(&p);
            continue;
        }
        read += 1;
        each(&message).await;
        if offset + 1 >= end {
            open.remove(&p);
        }
    }
    Ok(read)
}

/// Where each partition of `topic` starts to be read: the first offset at or after `since` (ms,
/// by Kafka timestamp), or the beginning for `None`. Where the broker finds no offset for the
/// time, `not_found` (the broker answers so when nothing is that recent, and librdkafka's mock
/// cluster always does); where it cannot look offsets up by time at all, the beginning. Empty
/// partitions are left out.
pub fn start_offsets(
    consumer: &StreamConsumer,
    topic: &str,
    partitions: &[i32],
    since: Option<i64>,
    not_found: Offset,
) -> anyhow::Result<TopicPartitionList> {
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, IDLE_TIMEOUT)?;
        if high <= low {
            continue;
        }
        match since {
            Some(ms) => list.add_partition_offset(topic, p, Offset::Offset(ms))?,
            None => list.add_partition_offset(topic, p, Offset::Beginning)?,
        }
    }
    if since.is_none() {
        return Ok(list);
    }
    let found = match consumer.offsets_for_times(list.clone(), IDLE_TIMEOUT) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(%topic, error = %e, "the broker cannot find offsets by time; reading from the beginning");
            let mut all = TopicPartitionList::new();
            for e in list.elements() {
                all.add_partition_offset(topic, e.partition(), Offset::Beginning)?;
            }
            return Ok(all);
        }
    };
    let mut out = TopicPartitionList::new();
    for e in found.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) if o >= 0 => Offset::Offset(o),
            _ => not_found,
        };
        out.add_partition_offset(topic, e.partition(), offset)?;
    }
    Ok(out)
}

/// Decodes audit records: with this release's schema, or the schemas of earlier releases for
/// records written before a field was added.
pub struct AuditDecoder {
    framing: Framing,
    schemas: Vec<serde_avro_fast::Schema>,
}

impl AuditDecoder {
    /// A decoder for audit records framed as `framing`.
    pub fn new(framing: Framing) -> anyhow::Result<Self> {
        let entry = schemas::by_record("DecisionAudit")
            .ok_or_else(|| anyhow::anyhow!("no built-in DecisionAudit schema"))?;
        let mut json: serde_json::Value = serde_json::from_str(entry.text)?;
        let mut schemas = vec![entry.text.parse()?];
        for name in AUDIT_ADDED_FIELDS.iter().rev() {
            if let Some(fields) = json["fields"].as_array_mut() {
                fields.retain(|f| f["name"] != *name);
            }
            schemas.push(json.to_string().parse()?);
        }
        Ok(Self { framing, schemas })
    }

    /// The audit record in `payload`.
    pub fn decode(&self, payload: &[u8]) -> Result<DecisionAudit, String> {
        let datum = self
            .framing
            .datum(payload)
            .ok_or("no Confluent header (magic byte 0 and schema id)")?;
        let mut first = None;
        for schema in &self.schemas {
            match serde_avro_fast::from_datum_slice::<DecisionAudit>(datum, schema) {
                Ok(a) => return Ok(a),
                Err(e) => {
                    first.get_or_insert(e.to_string());
                }
            }
        }
        Err(first.unwrap_or_default())
    }
}

/// Decodes an input record of `kind` with the pipeline's codec, fetching an unknown writer
/// schema from the registry first.
pub async fn decode_input(
    codec: &Codec,
    fetcher: Option<&Fetcher>,
    kind: EventKind,
    message: &BorrowedMessage<'_>,
) -> Result<Event, String> {
    if let (Some(id), Some(fetcher)) = (codec.missing_writer(kind, message.payload()), fetcher) {
        let topic = message.topic().to_string();
        let missing = BTreeSet::from([(kind, id)]);
        let health = crate::telemetry::http::Health::default();
        fetcher
            .prepare(codec, &missing, |_| topic.clone(), &health, || true)
            .await;
    }
    codec
        .decode(
            kind,
            message.key(),
            message.payload(),
            crate::clock::now_ms(),
        )
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DecisionOutcome;
    use crate::output::{FeatureValues, Reasons};

    /// An audit record as the release before `features_as_of` wrote it.
    #[derive(serde::Serialize)]
    struct AuditBefore {
        audit_id: String,
        customer_id: String,
        trigger_event_id: String,
        rule_id: String,
        rule_version: i32,
        ruleset_version: i64,
        outcome: DecisionOutcome,
        decision_id: Option<String>,
        reasons: Reasons,
        features: FeatureValues,
        decided_at: i64,
        shadow_outcome: Option<DecisionOutcome>,
    }

    #[test]
    fn audits_of_this_release_and_of_the_one_before_decode() {
        let decoder = AuditDecoder::new(Framing::Plain).unwrap();
        let before = AuditBefore {
            audit_id: "a1".into(),
            customer_id: "C1".into(),
            trigger_event_id: "E1".into(),
            rule_id: "alert-x".into(),
            rule_version: 2,
            ruleset_version: 9,
            outcome: DecisionOutcome::Alerted,
            decision_id: Some("al-1".into()),
            reasons: vec!["x".into()],
            features: [("f", 1.5)].into_iter().collect(),
            decided_at: 1_000,
            shadow_outcome: None,
        };
        let old_schema = &decoder.schemas[AUDIT_ADDED_FIELDS.len()];
        let mut config = serde_avro_fast::ser::SerializerConfig::new(old_schema);
        let bytes = serde_avro_fast::to_datum_vec(&before, &mut config).unwrap();
        let read = decoder.decode(&bytes).unwrap();
        assert_eq!((read.audit_id.as_str(), read.decided_at), ("a1", 1_000));
        assert_eq!(read.features.get("f"), Some(1.5));
        assert_eq!((read.features_as_of, read.propensity), (None, None));

        let now = DecisionAudit {
            features_as_of: Some(900),
            propensity: Some(0.25),
            ..read
        };
        let mut config = serde_avro_fast::ser::SerializerConfig::new(&decoder.schemas[0]);
        let bytes = serde_avro_fast::to_datum_vec(&now, &mut config).unwrap();
        assert_eq!(decoder.decode(&bytes).unwrap(), now);
        let rolled = DecisionAudit {
            outcome: DecisionOutcome::SuppressedCooldown,
            rolled_up: Some(crate::output::RolledUp {
                count: 4,
                last_trigger_event_id: "e4".into(),
                last_decided_at: 2_000,
            }),
            ..now
        };
        let bytes = serde_avro_fast::to_datum_vec(&rolled, &mut config).unwrap();
        let read = decoder.decode(&bytes).unwrap();
        assert_eq!((read.decisions(), &read), (4, &rolled));
        assert!(decoder.decode(&[0xff]).is_err());
    }
}
