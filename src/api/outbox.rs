//! The outbox: **where an inbound decision's audit and contacts are made durable before its
//! answer**, and how they reach their topics behind the answer: the audit records the audit
//! topic, the contacts (`InboundContact`) `bank.inbound-contacts.v1`, from which the stream
//! records them in the customers' contact histories.
//!
//! An answer waits for its audit records and contacts to be in Redis (one script adds them all,
//! atomically, to the stream `nbo:outbox:{<group_id>}`, each entry with its destination and its
//! decision time, which becomes the record's Kafka timestamp: the stream orders inputs across
//! topics by it, so a contact that waited here still comes before the customer's answer to it),
//! not for the broker: a broker taking the stream's
//! load answers a produce in tens of milliseconds at its worst, Redis in a few. No audit, no
//! answer still holds: a request whose records cannot be written gets 503, and so does one that
//! finds the outbox holding more than `api.outbox_max` records (a broker down for long must not
//! fill the Redis the stream keeps its state in).
//!
//! Redis holds no raw customer id: each entry is sealed ([`Sealer`]: ChaCha20-Poly1305, a fresh
//! nonce per entry, the key derived from `NBO_CUSTOMER_KEY_SECRET`), with the customer id and
//! the encoded record inside.
//!
//! Behind the answers, a drainer in every API instance reads the outbox as one consumer of the
//! group `api` (XREADGROUP, on a Redis connection of its own so that its reads never queue with
//! the answers'), produces what it read to each entry's topic (keyed by customer id), and once
//! the broker has acknowledged all of it, acknowledges and deletes those entries in one script
//! (XACK and XDEL together). Delivery to the topics is at least once: a crash between the
//! broker's acknowledgement and the script sends those records again (an audit record's
//! `audit_id` names a duplicate; the stream takes a contact whose offer it holds already as
//! nothing new). Entries read by an instance that died are claimed by another after
//! [`CLAIM_IDLE_MS`] (XAUTOCLAIM). An entry that cannot be opened (deleted while pending, or
//! sealed with another secret) is logged, counted and deleted. While the broker is down the
//! outbox grows (`nbo_api_outbox_pending`, read every second) and answers go on, up to the bound.
//!
//! Upgrading from a release whose drainer knew only the audit topic: stop its instances before
//! starting new ones (an old drainer would send contacts to the audit topic).

use crate::codec::Codec;
use crate::event::{EventKind, InboundContact};
use crate::output::DecisionAudit;
use crate::state::redis::RedisStore;
use crate::state::StateError;
use crate::telemetry::metrics;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rdkafka::producer::{FutureProducer, FutureRecord};
use redis::Value;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The consumer group of every API instance's drainer.
const GROUP: &str = "api";
/// Entries read per round.
const BATCH: usize = 512;
/// An entry read by a drainer and not acknowledged for this long is claimed by another.
pub const CLAIM_IDLE_MS: u64 = 30_000;

/// Adds every record of one answer at once: KEYS = the outbox; ARGV = destination, decision
/// time, nonce, sealed record, then the same for the next record, ...
const PUT: &str = r"
for i = 1, #ARGV, 4 do
  redis.call('XADD', KEYS[1], '*', 't', ARGV[i], 'ts', ARGV[i + 1], 'n', ARGV[i + 2], 's', ARGV[i + 3])
end
return #ARGV / 4
";

/// Where an outbox entry goes: its field `t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The audit topic (`a`; also an entry without `t`, written before contacts were).
    Audit,
    /// The inbound contacts' topic (`c`), from which the stream records them.
    Contacts,
}

impl Destination {
    fn tag(self) -> &'static str {
        match self {
            Destination::Audit => "a",
            Destination::Contacts => "c",
        }
    }
}

/// Acknowledges and deletes entries at once, so none stays pending once deleted and none is
/// left behind once acknowledged: KEYS = the outbox; ARGV = the group, then the ids.
const DONE: &str = r"
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
";

/// `nbo:outbox:{<namespace>}`.
pub fn outbox_key(namespace: &str) -> String {
    format!("nbo:outbox:{{{namespace}}}")
}

/// Seals an outbox entry (a record's key and bytes) so that Redis holds neither in the clear.
pub struct Sealer(ChaCha20Poly1305);

impl Sealer {
    /// The sealer of the application whose customer-key secret is `secret`.
    pub fn new(secret: &[u8]) -> Self {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret)
            .expect("HMAC takes a key of any length");
        mac.update(b"nbo-stream audit outbox v1");
        let key = mac.finalize().into_bytes();
        Self(ChaCha20Poly1305::new(Key::from_slice(&key)))
    }

    /// `key` and `record` sealed under a fresh nonce: (nonce, sealed bytes).
    pub fn seal(&self, key: &[u8], record: &[u8]) -> ([u8; 12], Vec<u8>) {
        let mut nonce = [0u8; 12];
        rand::Rng::fill(&mut rand::rng(), &mut nonce);
        let mut plain = Vec::with_capacity(4 + key.len() + record.len());
        plain.extend_from_slice(&(key.len() as u32).to_be_bytes());
        plain.extend_from_slice(key);
        plain.extend_from_slice(record);
        let sealed = self
            .0
            .encrypt(Nonce::from_slice(&nonce), plain.as_slice())
            .expect("ChaCha20-Poly1305 seals any length a record has");
        (nonce, sealed)
    }

    /// The key and record an entry holds, if it opens (same secret, untouched bytes).
    pub fn open(&self, nonce: &[u8], sealed: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
        if nonce.len() != 12 {
            return None;
        }
        let plain = self.0.decrypt(Nonce::from_slice(nonce), sealed).ok()?;
        let len = u32::from_be_bytes(plain.get(..4)?.try_into().ok()?) as usize;
        let key = plain.get(4..4 + len)?.to_vec();
        let record = plain.get(4 + len..)?.to_vec();
        Some((key, record))
    }
}

/// The outbox of one application (its consumer group's namespace).
pub struct Outbox {
    key: String,
    tag: String,
    codec: Arc<Codec>,
    sealer: Sealer,
    /// Records the outbox held at its last reading; above `max`, answers get 503.
    pending: AtomicI64,
    max: i64,
}

/// One entry read back: its id, where it goes, and its record's key and bytes (`None`: it does
/// not open).
struct Entry {
    id: String,
    to: Destination,
    /// The decision time: the record's Kafka timestamp, so that the stream orders a contact
    /// by when it was made however long it waited here (none in an entry written before).
    at: Option<i64>,
    record: Option<(Vec<u8>, Vec<u8>)>,
}

impl Outbox {
    /// The outbox of application `namespace` (written by the answers' scripts, [`Outbox::put`]);
    /// records encoded by `codec` and sealed by `sealer`, at most `max` waiting.
    pub fn new(namespace: &str, codec: Arc<Codec>, sealer: Sealer, max: u64) -> Self {
        Self {
            key: outbox_key(namespace),
            tag: namespace.to_string(),
            codec,
            sealer,
            pending: AtomicI64::new(0),
            max: i64::try_from(max).unwrap_or(i64::MAX),
        }
    }

    /// The script that writes an answer's audit records and contacts, encoded as their topics
    /// take them and sealed, all or none, with the outbox's hash tag (`None`: nothing to write).
    /// Refused while the outbox holds more than its bound.
    pub fn put(
        &self,
        audits: &[&DecisionAudit],
        contacts: &[InboundContact],
    ) -> Result<Option<(String, redis::Cmd)>, StateError> {
        if audits.is_empty() && contacts.is_empty() {
            return Ok(None);
        }
        let pending = self.pending.load(Ordering::Relaxed);
        if pending > self.max {
            return Err(StateError::Unavailable(format!(
                "the outbox holds {pending} records, over api.outbox_max ({}): the audit and contacts topics are not taking them",
                self.max
            )));
        }
        let failed = |e: crate::codec::EncodeError| StateError::Corrupt(format!("encoding: {e}"));
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(PUT).arg(1).arg(&self.key);
        let mut add = |to: Destination, customer: &str, at: i64, encoded: Vec<u8>| {
            let (nonce, sealed) = self.sealer.seal(customer.as_bytes(), &encoded);
            cmd.arg(to.tag()).arg(at).arg(nonce.as_slice()).arg(sealed);
        };
        for a in audits {
            let encoded = self.codec.encode("DecisionAudit", a).map_err(failed)?;
            add(Destination::Audit, &a.customer_id, a.decided_at, encoded);
        }
        let framing = self.codec.input_framing(EventKind::InboundContact);
        for c in contacts {
            let encoded = self
                .codec
                .encode_framed(InboundContact::RECORD, c, framing)
                .map_err(failed)?;
            add(Destination::Contacts, &c.customer_id, c.event_time, encoded);
        }
        Ok(Some((self.tag.clone(), cmd)))
    }

    /// Moves the outbox to its topics (`audit`, `contacts`) through `producer` for the life of
    /// the process, reading through `reader` (a connection of the drainer's own) as a consumer
    /// named afresh.
    pub fn spawn_drainer(
        self: Arc<Self>,
        reader: RedisStore,
        producer: FutureProducer,
        audit: String,
        contacts: String,
    ) {
        let mut id = [0u8; 8];
        rand::Rng::fill(&mut rand::rng(), &mut id);
        let consumer = format!("api-{}", hex::encode(id));
        let drainer = Drainer {
            outbox: self,
            redis: reader,
            producer,
            audit,
            contacts,
            consumer,
        };
        tokio::spawn(async move { drainer.run().await });
    }
}

/// One API instance's drainer.
struct Drainer {
    outbox: Arc<Outbox>,
    redis: RedisStore,
    producer: FutureProducer,
    audit: String,
    contacts: String,
    consumer: String,
}

impl Drainer {
    async fn run(&self) {
        let mut backoff = crate::backoff::Backoff::default();
        let mut group_ready = false;
        // After a failure, this consumer's own pending entries are read again first.
        let mut retry_own = false;
        let mut rounds: u64 = 0;
        let mut shown: Option<Instant> = None;
        loop {
            rounds += 1;
            // The backlog is read every second whatever the rounds do: the alert and the bound
            // need it most while the broker is down.
            if shown.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                self.show_pending().await;
                shown = Some(Instant::now());
            }
            let step = async {
                if !group_ready {
                    self.create_group().await?;
                    group_ready = true;
                }
                // Now and then, take over what a dead instance read and never acknowledged.
                let entries = if rounds.is_multiple_of(200) {
                    self.claim().await?
                } else {
                    self.read(if retry_own { "0" } else { ">" }).await?
                };
                if entries.is_empty() {
                    return Ok::<bool, String>(false);
                }
                self.send(&entries).await?;
                self.done(&entries).await?;
                Ok(true)
            };
            match step.await {
                Ok(moved) => {
                    retry_own = false;
                    backoff = crate::backoff::Backoff::default();
                    if !moved {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
                Err(e) => {
                    retry_own = true;
                    metrics().api_outbox_errors.inc();
                    tracing::warn!(error = %e, "outbox: not moved to its topics yet; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
    }

    /// Creates the drainers' group if it is not there yet (reading from the outbox's start).
    async fn create_group(&self) -> Result<(), String> {
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("CREATE")
            .arg(&self.outbox.key)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self.redis.raw::<Value>(&cmd).await {
            Ok(_) => Ok(()),
            Err(e) if e.to_string().contains("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Up to [`BATCH`] entries: new ones (`>`), or this consumer's pending ones (`0`).
    async fn read(&self, from: &str) -> Result<Vec<Entry>, String> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(BATCH)
            .arg("STREAMS")
            .arg(&self.outbox.key)
            .arg(from);
        let answer: Value = self.redis.raw(&cmd).await.map_err(|e| e.to_string())?;
        // [[key, [[id, [field, value, ...]], ...]]], or nil when nothing is there.
        let streams = match answer {
            Value::Nil => return Ok(Vec::new()),
            Value::Array(streams) => streams,
            other => return Err(format!("XREADGROUP answered {other:?}")),
        };
        let mut out = Vec::new();
        for stream in streams {
            match stream {
                Value::Array(mut parts) if parts.len() == 2 => {
                    out.extend(self.entries(parts.remove(1))?);
                }
                other => return Err(format!("XREADGROUP answered a stream as {other:?}")),
            }
        }
        Ok(out)
    }

    /// Claims entries other consumers read more than [`CLAIM_IDLE_MS`] ago.
    async fn claim(&self) -> Result<Vec<Entry>, String> {
        let mut cmd = redis::cmd("XAUTOCLAIM");
        cmd.arg(&self.outbox.key)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(CLAIM_IDLE_MS)
            .arg("0-0")
            .arg("COUNT")
            .arg(BATCH);
        let answer: Value = self.redis.raw(&cmd).await.map_err(|e| e.to_string())?;
        // [next-id, [[id, [field, value, ...]], ...], [deleted ids]].
        match answer {
            Value::Array(mut parts) if parts.len() >= 2 => self.entries(parts.remove(1)),
            other => Err(format!("XAUTOCLAIM answered {other:?}")),
        }
    }

    /// The entries of an XREADGROUP or XAUTOCLAIM answer: `[[id, [field, value, ...]], ...]`;
    /// an entry deleted while pending comes as `[id, nil]` and is kept, unopened, so that
    /// `done` removes it.
    fn entries(&self, list: Value) -> Result<Vec<Entry>, String> {
        let Value::Array(items) = list else {
            return Err(format!("expected a list of entries, got {list:?}"));
        };
        let bytes = |v: &Value| match v {
            Value::BulkString(b) => Some(b.clone()),
            Value::SimpleString(s) => Some(s.clone().into_bytes()),
            _ => None,
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Value::Array(parts) = item else {
                return Err(format!("expected an entry, got {item:?}"));
            };
            let id = parts
                .first()
                .and_then(bytes)
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| format!("an entry without an id: {parts:?}"))?;
            let (mut nonce, mut sealed, mut to) = (None, None, Destination::Audit);
            let mut at: Option<i64> = None;
            if let Some(Value::Array(fields)) = parts.get(1) {
                for pair in fields.chunks(2) {
                    match (pair.first().and_then(bytes), pair.get(1).and_then(bytes)) {
                        (Some(f), Some(v)) if f == b"n" => nonce = Some(v),
                        (Some(f), Some(v)) if f == b"s" => sealed = Some(v),
                        (Some(f), Some(v)) if f == b"t" && v == b"c" => to = Destination::Contacts,
                        (Some(f), Some(v)) if f == b"ts" => {
                            at = std::str::from_utf8(&v).ok().and_then(|t| t.parse().ok());
                        }
                        _ => {}
                    }
                }
            }
            let record = match (nonce, sealed) {
                (Some(n), Some(s)) => self.outbox.sealer.open(&n, &s),
                _ => None,
            };
            out.push(Entry { id, to, at, record });
        }
        Ok(out)
    }

    /// Produces `entries` and waits until the broker has acknowledged every one.
    async fn send(&self, entries: &[Entry]) -> Result<(), String> {
        let mut pending = Vec::with_capacity(entries.len());
        for e in entries {
            let topic = match e.to {
                Destination::Audit => self.audit.as_str(),
                Destination::Contacts => self.contacts.as_str(),
            };
            let Some((key, payload)) = &e.record else {
                metrics().api_outbox_errors.inc();
                tracing::error!(entry = %e.id, "outbox: an entry that does not open (deleted, or sealed with another secret) is dropped");
                continue;
            };
            let mut record = FutureRecord::to(topic).key(key).payload(payload);
            if let Some(at) = e.at {
                record = record.timestamp(at);
            }
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push((topic, delivery));
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
        let sent = pending.len() as u64;
        for (topic, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(format!("the topic {topic} refused: {e}")),
                Err(_) => return Err("the producer was dropped".into()),
            }
        }
        metrics().api_outbox_moved.inc_by(sent);
        Ok(())
    }

    /// Acknowledges and deletes `entries` in one script (they are on their topics).
    async fn done(&self, entries: &[Entry]) -> Result<(), String> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(DONE).arg(1).arg(&self.outbox.key).arg(GROUP);
        for e in entries {
            cmd.arg(&e.id);
        }
        self.redis
            .each(&[(self.outbox.tag.clone(), cmd)])
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Reads the backlog into the gauge and the outbox's bound.
    async fn show_pending(&self) {
        let mut cmd = redis::cmd("XLEN");
        cmd.arg(&self.outbox.key);
        if let Ok(n) = self.redis.raw::<i64>(&cmd).await {
            self.outbox.pending.store(n, Ordering::Relaxed);
            metrics().api_outbox_pending.set(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_opens_with_its_secret_only_and_shows_no_customer_id() {
        let sealer = Sealer::new(b"the customer key secret of this run");
        let (nonce, sealed) = sealer.seal(b"C0000042", b"the encoded audit record");
        assert!(!sealed.windows(8).any(|w| w == b"C0000042"));
        assert_eq!(
            sealer.open(&nonce, &sealed),
            Some((b"C0000042".to_vec(), b"the encoded audit record".to_vec()))
        );
        assert_eq!(Sealer::new(b"another secret").open(&nonce, &sealed), None);
        let mut touched = sealed.clone();
        touched[0] ^= 1;
        assert_eq!(sealer.open(&nonce, &touched), None);
        let (again, _) = sealer.seal(b"C0000042", b"the encoded audit record");
        assert_ne!(again, nonce, "a fresh nonce per entry");
    }
}
