//! The audit outbox: **where an inbound decision's audit is made durable before its answer**,
//! and how it reaches the audit topic behind the answer.
//!
//! An answer waits for its audit records to be in Redis (one XADD each, in one round trip, to
//! the stream `nbo:outbox:{<group_id>}`), not for the broker: a broker taking the stream's
//! load answers a produce in tens of milliseconds at its worst, Redis in a few. No audit, no
//! answer still holds: a request whose records cannot be written gets 503.
//!
//! Behind the answers, a drainer in every API instance reads the outbox as one consumer of the
//! group `api` (XREADGROUP), produces what it read to the audit topic, and once the broker has
//! acknowledged all of it, acknowledges and deletes those entries (XACK, XDEL). Delivery to the
//! topic is at least once: a crash between the broker's acknowledgement and the XACK sends
//! those records again (their `audit_id` names a duplicate). Entries read by an instance that
//! died are claimed by another after [`CLAIM_IDLE_MS`] (XAUTOCLAIM). While the broker is
//! down the outbox grows (`nbo_api_outbox_pending`) and answers go on.

use crate::codec::Codec;
use crate::output::DecisionAudit;
use crate::state::redis::RedisStore;
use crate::state::StateError;
use crate::telemetry::metrics;
use rdkafka::producer::{FutureProducer, FutureRecord};
use redis::Value;
use std::sync::Arc;
use std::time::Duration;

/// The consumer group of every API instance's drainer.
const GROUP: &str = "api";
/// Entries read per round.
const BATCH: usize = 512;
/// An entry read by a drainer and not acknowledged for this long is claimed by another.
pub const CLAIM_IDLE_MS: u64 = 30_000;

/// `nbo:outbox:{<namespace>}`.
pub fn outbox_key(namespace: &str) -> String {
    format!("nbo:outbox:{{{namespace}}}")
}

/// The outbox of one application (its consumer group's namespace).
pub struct Outbox {
    redis: Arc<RedisStore>,
    key: String,
    tag: String,
    codec: Arc<Codec>,
}

/// One entry read back: its id, the record's key (the customer) and its encoded bytes.
struct Entry {
    id: String,
    key: Vec<u8>,
    payload: Vec<u8>,
}

impl Outbox {
    /// The outbox of application `namespace` in `redis`; records encoded by `codec`.
    pub fn new(redis: Arc<RedisStore>, namespace: &str, codec: Arc<Codec>) -> Self {
        Self {
            redis,
            key: outbox_key(namespace),
            tag: namespace.to_string(),
            codec,
        }
    }

    /// Writes the audit records, encoded as the audit topic takes them, in one round trip.
    pub async fn put(&self, audits: &[&DecisionAudit]) -> Result<(), StateError> {
        let mut cmds = Vec::with_capacity(audits.len());
        for a in audits {
            let payload = self
                .codec
                .encode("DecisionAudit", a)
                .map_err(|e| StateError::Corrupt(format!("encoding an audit record: {e}")))?;
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&self.key)
                .arg("*")
                .arg("k")
                .arg(a.customer_id.as_bytes())
                .arg("v")
                .arg(payload);
            cmds.push((self.tag.clone(), cmd));
        }
        self.redis.each(&cmds).await.map(|_| ())
    }

    /// Creates the drainers' group if it is not there yet (reading from the outbox's start).
    async fn create_group(&self) -> Result<(), StateError> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.redis.raw::<Value>(&cmd).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves the outbox to `topic` through `producer` for the life of the process, as consumer
    /// `consumer` of the group.
    pub fn spawn_drainer(self: Arc<Self>, producer: FutureProducer, topic: String) {
        let mut id = [0u8; 8];
        rand::Rng::fill(&mut rand::rng(), &mut id);
        let consumer = format!("api-{}", hex::encode(id));
        tokio::spawn(async move { self.drain(&producer, &topic, &consumer).await });
    }

    async fn drain(&self, producer: &FutureProducer, topic: &str, consumer: &str) {
        let mut backoff = crate::backoff::Backoff::default();
        let mut group_ready = false;
        // After a failure, this consumer's own pending entries are read again first.
        let mut retry_own = false;
        let mut rounds: u64 = 0;
        loop {
            rounds += 1;
            let step = async {
                if !group_ready {
                    self.create_group().await.map_err(|e| e.to_string())?;
                    group_ready = true;
                }
                // Now and then, take over what a dead instance read and never acknowledged.
                let entries = if rounds.is_multiple_of(200) {
                    self.claim(consumer).await?
                } else {
                    self.read(consumer, if retry_own { "0" } else { ">" })
                        .await?
                };
                if entries.is_empty() {
                    return Ok::<bool, String>(false);
                }
                self.send(producer, topic, &entries).await?;
                self.done(&entries).await?;
                Ok(true)
            };
            match step.await {
                Ok(moved) => {
                    retry_own = false;
                    backoff = crate::backoff::Backoff::default();
                    if !moved {
                        self.show_pending().await;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err(e) => {
                    retry_own = true;
                    metrics().api_outbox_errors.inc();
                    tracing::warn!(error = %e, "audit outbox: not moved to the audit topic yet; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Up to [`BATCH`] entries: new ones (`>`), or this consumer's pending ones (`0`).
    async fn read(&self, consumer: &str, from: &str) -> Result<Vec<Entry>, String> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(BATCH)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(from);
        let answer: Value = self.redis.raw(&cmd).await.map_err(|e| e.to_string())?;
        // [[key, [[id, [field, value, ...]], ...]]], or nil when nothing is there.
        let Value::Array(streams) = answer else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for stream in streams {
            if let Value::Array(mut parts) = stream {
                if parts.len() == 2 {
                    out.extend(entries(parts.remove(1)));
                }
            }
        }
        Ok(out)
    }

    /// Claims entries other consumers read more than [`CLAIM_IDLE_MS`] ago.
    async fn claim(&self, consumer: &str) -> Result<Vec<Entry>, String> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.key)
            .arg(GROUP)
            .arg(consumer)
            .arg(CLAIM_IDLE_MS)
            .arg("0-0")
            .arg("COUNT")
            .arg(BATCH);
        let answer: Value = self.redis.raw(&cmd).await.map_err(|e| e.to_string())?;
        // [next-id, [[id, [field, value, ...]], ...], [deleted ids]].
        match answer {
            Value::Array(mut parts) if parts.len() >= 2 => Ok(entries(parts.remove(1))),
            _ => Ok(Vec::new()),
        }
    }

    /// Produces `entries` and waits until the broker has acknowledged every one.
    async fn send(
        &self,
        producer: &FutureProducer,
        topic: &str,
        entries: &[Entry],
    ) -> Result<(), String> {
        let mut pending = Vec::with_capacity(entries.len());
        for e in entries {
            let mut record = FutureRecord::to(topic).key(&e.key).payload(&e.payload);
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(format!("producing to {topic}: {e}")),
                }
            }
        }
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(format!("the audit topic {topic} refused: {e}")),
                Err(_) => return Err("the producer was dropped".into()),
            }
        }
        metrics().api_outbox_moved.inc_by(entries.len() as u64);
        Ok(())
    }

    /// Acknowledges and deletes `entries` (they are on the audit topic).
    async fn done(&self, entries: &[Entry]) -> Result<(), String> {
        let mut ack = redis::cmd("XACK");
        ack.arg(&self.key).arg(GROUP);
        let mut del = redis::cmd("XDEL");
        del.arg(&self.key);
        for e in entries {
            ack.arg(&e.id);
            del.arg(&e.id);
        }
        let cmds = [(self.tag.clone(), ack), (self.tag.clone(), del)];
        self.redis
            .each(&cmds)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn show_pending(&self) {
        let mut cmd = redis::cmd("XLEN");
        cmd.arg(&self.key);
        if let Ok(n) = self.redis.raw::<i64>(&cmd).await {
            metrics().api_outbox_pending.set(n);
        }
    }
}

/// The entries of an XREADGROUP or XAUTOCLAIM answer: `[[id, [field, value, ...]], ...]`.
fn entries(list: Value) -> Vec<Entry> {
    let Value::Array(items) = list else {
        return Vec::new();
    };
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    };
    items
        .into_iter()
        .filter_map(|item| {
            let Value::Array(parts) = item else {
                return None;
            };
            let id = String::from_utf8(text(parts.first()?)?).ok()?;
            let Value::Array(fields) = parts.get(1)? else {
                return None;
            };
            let (mut key, mut payload) = (None, None);
            for pair in fields.chunks(2) {
                match (pair.first().and_then(text), pair.get(1).and_then(text)) {
                    (Some(f), Some(v)) if f == b"k" => key = Some(v),
                    (Some(f), Some(v)) if f == b"v" => payload = Some(v),
                    _ => {}
                }
            }
            Some(Entry {
                id,
                key: key.unwrap_or_default(),
                payload: payload?,
            })
        })
        .collect()
}
