//! Sinks: offers, alerts, audit records and dead letters.
//!
//! Delivery is decided here and in `worker` (`kafka.delivery`):
//!
//! - **At-least-once**: an idempotent producer; a batch's records are produced and their
//!   acknowledgements awaited *before* the batch's state is flushed and its offsets stored. A crash
//!   before the flush replays the batch, which recomputes the same decisions with the same
//!   deterministic ids, so a duplicate is byte-identical. A crash after the flush skips the
//!   replayed events (their offsets are in the state), whose records were already acknowledged.
//! - **Exactly-once**: one transactional producer per worker. A batch's state, with its decisions
//!   in the customers' outboxes, is flushed first; then one transaction carries the batch's records
//!   and its consumer offsets (`send_offsets_to_transaction` with the group's metadata, so a
//!   zombie of an earlier generation is fenced). A crash before the commit aborts the transaction;
//!   the replay finds the events applied and re-emits their stored decisions, so read_committed
//!   consumers see each record once.

use crate::codec::Codec;
use crate::config::TopicSettings;
use crate::output::{DeadLetter, Decision};
use crate::telemetry::metrics;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;

/// A produce failure that librdkafka could not recover with its own retries.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// A transaction step failed (exactly-once).
    #[error("transaction {step} failed: {error}")]
    Transaction {
        /// init, begin, send_offsets, commit or abort.
        step: &'static str,
        /// librdkafka's error.
        error: KafkaError,
    },
    /// A record could not be encoded (a defect: outputs are built by this program).
    #[error(transparent)]
    Encode(#[from] crate::codec::EncodeError),
    /// The broker did not acknowledge a record within `message.timeout.ms`, or refused it.
    #[error("produce to {topic} failed: {error}")]
    Produce {
        /// Topic.
        topic: String,
        /// librdkafka's error.
        error: KafkaError,
    },
}

/// What one publish call sent, for the batch's metrics.
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    /// Offers acknowledged.
    pub offers: u64,
    /// Alerts acknowledged.
    pub alerts: u64,
    /// Audit records acknowledged.
    pub audits: u64,
    /// Dead letters acknowledged.
    pub dead_letters: u64,
}

/// Produces decision and dead-letter records.
pub struct Sink {
    producer: FutureProducer,
    codec: Arc<Codec>,
    offers: String,
    alerts: String,
    audit: String,
    dead_letters: String,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("offers", &self.offers)
            .finish()
    }
}

impl SinkError {
    /// Whether the producer is fenced or broken for good (another instance took over its
    /// transactional id, or librdkafka reports a fatal error): the process must exit.
    pub fn is_fatal(&self) -> bool {
        match self {
            SinkError::Transaction {
                error: KafkaError::Transaction(e),
                ..
            } => e.is_fatal(),
            _ => false,
        }
    }
}

/// Runs a blocking transaction call of librdkafka off the async threads.
async fn txn<F>(producer: &FutureProducer, step: &'static str, f: F) -> Result<(), SinkError>
where
    F: FnOnce(&FutureProducer) -> rdkafka::error::KafkaResult<()> + Send + 'static,
{
    let producer = producer.clone();
    match tokio::task::spawn_blocking(move || f(&producer)).await {
        Ok(result) => result.map_err(|error| SinkError::Transaction { step, error }),
        Err(_) => Err(SinkError::Transaction {
            step,
            error: KafkaError::Canceled,
        }),
    }
}

impl Sink {
    /// Registers the transactional id with the broker, fencing any earlier producer with it.
    pub async fn init_transactions(&self, timeout: Duration) -> Result<(), SinkError> {
        use rdkafka::producer::Producer;
        txn(&self.producer, "init", move |p| {
            p.init_transactions(timeout)
        })
        .await
    }

    /// Opens a transaction.
    pub async fn begin(&self) -> Result<(), SinkError> {
        use rdkafka::producer::Producer;
        txn(&self.producer, "begin", |p| p.begin_transaction()).await
    }

    /// Adds the consumer offsets to the transaction and commits it: outputs and progress become
    /// visible together, or not at all.
    pub async fn commit(
        &self,
        offsets: rdkafka::TopicPartitionList,
        group: rdkafka::consumer::ConsumerGroupMetadata,
        timeout: Duration,
    ) -> Result<(), SinkError> {
        use rdkafka::producer::Producer;
        txn(&self.producer, "send_offsets", move |p| {
            p.send_offsets_to_transaction(&offsets, &group, timeout)
        })
        .await?;
        txn(&self.producer, "commit", move |p| {
            p.commit_transaction(timeout)
        })
        .await
    }

    /// Aborts the open transaction (its records are never visible to read_committed consumers).
    pub async fn abort(&self, timeout: Duration) -> Result<(), SinkError> {
        use rdkafka::producer::Producer;
        txn(&self.producer, "abort", move |p| {
            p.abort_transaction(timeout)
        })
        .await
    }

    /// A sink over `producer` writing to the configured output topics.
    pub fn new(producer: FutureProducer, codec: Arc<Codec>, topics: &TopicSettings) -> Self {
        Self {
            producer,
            codec,
            offers: topics.offers.clone(),
            alerts: topics.alerts.clone(),
            audit: topics.decisions_audit.clone(),
            dead_letters: topics.dead_letters.clone(),
        }
    }

    /// Produces every record and waits until all are acknowledged (or one fails for good).
    pub async fn publish(
        &self,
        decisions: &[Decision],
        dead: &[DeadLetter],
    ) -> Result<Published, SinkError> {
        let mut pending = Vec::with_capacity(decisions.len() + dead.len());
        let mut published = Published::default();
        for d in decisions {
            let (topic, key, bytes) = match d {
                Decision::Offer(o) => {
                    published.offers += 1;
                    (
                        &self.offers,
                        o.customer_id.as_bytes(),
                        self.codec.encode("NextBestOffer", o)?,
                    )
                }
                Decision::Alert(a) => {
                    published.alerts += 1;
                    (
                        &self.alerts,
                        a.customer_id.as_bytes(),
                        self.codec.encode("RiskAlert", a)?,
                    )
                }
                Decision::Audit(a) => {
                    published.audits += 1;
                    (
                        &self.audit,
                        a.customer_id.as_bytes(),
                        self.codec.encode("DecisionAudit", a)?,
                    )
                }
            };
            pending.push((topic.as_str(), self.send(topic, key, &bytes).await?));
        }
        for d in dead {
            published.dead_letters += 1;
            let bytes = self.codec.encode("DeadLetter", d)?;
            let key = d.key.as_deref().unwrap_or_default();
            pending.push((
                self.dead_letters.as_str(),
                self.send(&self.dead_letters, key, &bytes).await?,
            ));
        }
        for (topic, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => {
                    metrics().produce_errors.with_label_values(&[topic]).inc();
                    return Err(SinkError::Produce {
                        topic: topic.into(),
                        error,
                    });
                }
                Err(_) => {
                    metrics().produce_errors.with_label_values(&[topic]).inc();
                    return Err(SinkError::Produce {
                        topic: topic.into(),
                        error: KafkaError::Canceled,
                    });
                }
            }
        }
        Ok(published)
    }

    /// Enqueues one record, waiting while librdkafka's queue is full (backpressure, not failure).
    async fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
    ) -> Result<rdkafka::producer::DeliveryFuture, SinkError> {
        loop {
            let record = FutureRecord::to(topic).key(key).payload(payload);
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((error, _)) => {
                    metrics().produce_errors.with_label_values(&[topic]).inc();
                    return Err(SinkError::Produce {
                        topic: topic.into(),
                        error,
                    });
                }
            }
        }
    }

    /// Flushes everything in flight (shutdown).
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "producer flush at shutdown did not complete");
        }
    }
}
