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
//!
//! ## When a delivery step fails
//!
//! librdkafka retries a record on its own until `message.timeout.ms`; what fails past that is
//! reported once every record of the publish has settled (`Sink::publish`), classified here
//! ([`SinkError::recovery`]) and acted on in `worker` (`publish_at_least_once`,
//! `deliver_in_transaction`), with the backoff of [`crate::backoff::Backoff`] (100 ms doubling
//! to 5 s, as the state store's), `/readyz` not ready while it lasts and
//! `nbo_delivery_retries_total{mode,step}` counting each retry:
//!
//! - a transient failure (the broker unreachable or not answering in time — a broker outage —,
//!   librdkafka's queue full, no leader or too few in-sync replicas for a while) is
//!   [`Recovery::Retry`]: at-least-once produces the whole batch again (records acknowledged the
//!   first time repeat, byte-identical; nothing is flushed or stored until every record is
//!   acknowledged); in a transaction, a failed record leaves the transaction abortable, so the
//!   transaction is aborted and done again whole;
//! - a transaction call (`send_offsets_to_transaction`, `commit_transaction`, `abort_transaction`)
//!   that librdkafka reports *retriable* is called again; one that *requires abort* is
//!   [`Recovery::AbortAndRedo`]: abort (itself retried while retriable), then begin, produce, send
//!   the offsets and commit again;
//! - anything else is [`Recovery::Fail`]: a *fatal* producer error (fenced by a newer instance of
//!   its transactional id), a record the broker refuses (too large, not authorized, unknown topic)
//!   or a record that does not encode. The worker stops with the error and the process exits
//!   non-zero; nothing past the failed batch was committed, so a restart replays it.
//!
//! Retries stop when the batch's partitions are revoked (its assignment generation ended): the
//! batch is dropped unflushed (at-least-once) or aborted (exactly-once), and the partitions' next
//! owner replays it from the committed offsets.

pub mod config;
pub mod transport;

pub use transport::{Acks, KafkaProducer, Transport};

use crate::backoff::Backoff;
use crate::codec::Codec;
use crate::config::TopicSettings;
use crate::output::{DeadLetter, Decision};
use crate::telemetry::http::{DependencyFailing, Health};
use crate::telemetry::metrics;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
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
    transport: Arc<dyn Transport>,
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

/// What a failed delivery step allows (see the module docs for who does what with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Transient: the same step again after a backoff (in a transaction, a failed *record* makes
    /// the transaction abortable: the caller aborts and redoes it).
    Retry,
    /// The open transaction cannot commit: abort it, then do the whole transaction again.
    AbortAndRedo,
    /// Permanent or fatal: stop with the error.
    Fail,
}

/// librdkafka delivery errors that a later attempt can overcome: the broker unreachable or slow
/// (an outage, a restart, a leader election), the local queue full. Everything else a record can
/// fail with (too large, not authorized, unknown topic, a fatal idempotence error) is permanent.
fn transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageTimedOut
            | C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::QueueFull
            | C::OperationTimedOut
            | C::TimedOutQueue
            | C::RequestTimedOut
            | C::NetworkException
            | C::BrokerNotAvailable
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::KafkaStorageError
            // The record was purged unsent (an abort or a shutdown): sending it again is right.
            | C::PurgeQueue
            | C::PurgeInflight
            // Transactional producer: a record refused because an earlier record already made
            // the transaction abortable; the abort and redo recover it.
            | C::State
    )
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
            SinkError::Produce {
                error: KafkaError::MessageProduction(RDKafkaErrorCode::Fatal),
                ..
            } => true,
            _ => false,
        }
    }

    /// Whether the producer was fenced: a newer producer registered its transactional id.
    pub fn is_fenced(&self) -> bool {
        use RDKafkaErrorCode as C;
        let code = match self {
            SinkError::Transaction {
                error: KafkaError::Transaction(e),
                ..
            } => e.code(),
            SinkError::Transaction { error, .. } | SinkError::Produce { error, .. } => {
                match error.rdkafka_error_code() {
                    Some(code) => code,
                    None => return false,
                }
            }
            SinkError::Encode(_) => return false,
        };
        matches!(
            code,
            C::Fenced | C::ProducerFenced | C::InvalidProducerEpoch
        )
    }

    /// What the failed step allows, following librdkafka's error classes: a transaction call's
    /// error says itself whether it is fatal, requires an abort or is retriable; a record's
    /// delivery error is transient or permanent by its code ([`transient`]).
    pub fn recovery(&self) -> Recovery {
        match self {
            SinkError::Transaction {
                error: KafkaError::Transaction(e),
                ..
            } => {
                if e.is_fatal() {
                    Recovery::Fail
                } else if e.txn_requires_abort() {
                    Recovery::AbortAndRedo
                } else if e.is_retriable() {
                    Recovery::Retry
                } else {
                    Recovery::Fail
                }
            }
            SinkError::Produce {
                error: KafkaError::MessageProduction(code),
                ..
            } if transient(*code) => Recovery::Retry,
            _ => Recovery::Fail,
        }
    }

    /// The step that failed, for logs and the retry metric's `step` label.
    pub fn step(&self) -> &'static str {
        match self {
            SinkError::Transaction { step, .. } => step,
            SinkError::Encode(_) | SinkError::Produce { .. } => "publish",
        }
    }
}

/// The retries of one batch's delivery: counts each in `nbo_delivery_retries_total{mode,step}`,
/// logs it with the error, keeps `/readyz` at 503 from the first failure until the delivery
/// succeeds or is given up (dropped), and waits the [`Backoff`] between attempts.
#[derive(Debug)]
pub struct DeliveryRetry {
    mode: &'static str,
    health: Health,
    backoff: Backoff,
    failing: Option<DependencyFailing>,
    retries: u64,
}

impl DeliveryRetry {
    /// Before the first attempt of a delivery in `mode` (`at_least_once`, `exactly_once`).
    pub fn new(mode: &'static str, health: &Health) -> Self {
        Self {
            mode,
            health: health.clone(),
            backoff: Backoff::default(),
            failing: None,
            retries: 0,
        }
    }

    /// After a transient failure: counts and logs it, marks the instance not ready, and waits
    /// the next backoff delay before the caller tries again.
    pub async fn wait(&mut self, error: &SinkError) {
        let delay = self.backoff.next_delay();
        self.retries += 1;
        let step = error.step();
        metrics()
            .delivery_retries
            .with_label_values(&[self.mode, step])
            .inc();
        if self.failing.is_none() {
            self.failing = Some(self.health.delivery_failing());
        }
        tracing::warn!(
            mode = self.mode,
            step,
            error = %error,
            retry = self.retries,
            retry_in_ms = delay.as_millis() as u64,
            "delivery failed; retrying"
        );
        tokio::time::sleep(delay).await;
    }

    /// The delivery succeeded: readiness comes back (when no other delivery fails).
    pub fn succeeded(self) {
        if self.retries > 0 {
            tracing::info!(
                mode = self.mode,
                retries = self.retries,
                "delivery succeeded after retries"
            );
        }
    }
}

/// Runs a blocking transaction call off the async threads.
async fn txn<F>(transport: &Arc<dyn Transport>, step: &'static str, f: F) -> Result<(), SinkError>
where
    F: FnOnce(&dyn Transport) -> rdkafka::error::KafkaResult<()> + Send + 'static,
{
    let transport = transport.clone();
    match tokio::task::spawn_blocking(move || f(transport.as_ref())).await {
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
        txn(&self.transport, "init", move |p| {
            p.init_transactions(timeout)
        })
        .await
    }

    /// Opens a transaction.
    pub async fn begin(&self) -> Result<(), SinkError> {
        txn(&self.transport, "begin", |p| p.begin_transaction()).await
    }

    /// Adds the consumer offsets to the open transaction: they commit with its records, or not
    /// at all.
    pub async fn send_offsets(
        &self,
        offsets: rdkafka::TopicPartitionList,
        group: Arc<rdkafka::consumer::ConsumerGroupMetadata>,
        timeout: Duration,
    ) -> Result<(), SinkError> {
        txn(&self.transport, "send_offsets", move |p| {
            p.send_offsets_to_transaction(&offsets, &group, timeout)
        })
        .await
    }

    /// Commits the open transaction: its records and offsets become visible together.
    pub async fn commit(&self, timeout: Duration) -> Result<(), SinkError> {
        txn(&self.transport, "commit", move |p| {
            p.commit_transaction(timeout)
        })
        .await
    }

    /// Aborts the open transaction (its records are never visible to read_committed consumers).
    pub async fn abort(&self, timeout: Duration) -> Result<(), SinkError> {
        txn(&self.transport, "abort", move |p| {
            p.abort_transaction(timeout)
        })
        .await
    }

    /// A sink over `producer` writing to the configured output topics.
    pub fn new(producer: KafkaProducer, codec: Arc<Codec>, topics: &TopicSettings) -> Self {
        Self::with_transport(Arc::new(producer), codec, topics)
    }

    /// A sink over any [`Transport`] (a model of a broker, in tests).
    pub fn with_transport(
        transport: Arc<dyn Transport>,
        codec: Arc<Codec>,
        topics: &TopicSettings,
    ) -> Self {
        Self {
            transport,
            codec,
            offers: topics.offers.clone(),
            alerts: topics.alerts.clone(),
            audit: topics.decisions_audit.clone(),
            dead_letters: topics.dead_letters.clone(),
        }
    }

    /// Produces every record and waits until all are acknowledged. A record that fails for good
    /// in delivery is answered after every record has settled (the first failure reported); a
    /// record that does not encode, or that the producer refuses, is answered at once, the
    /// records sent before it left to settle with nobody waiting.
    ///
    /// The records are encoded one after the other into one buffer (librdkafka copies each into
    /// its queue), and their acknowledgements are counted in one [`Acks`].
    pub async fn publish(
        &self,
        decisions: &[Decision],
        dead: &[DeadLetter],
    ) -> Result<Published, SinkError> {
        let acks = Arc::new(Acks::default());
        let mut published = Published::default();
        let mut buf = Vec::with_capacity(crate::codec::ENCODE_CAPACITY);
        for d in decisions {
            let (topic, key) = match d {
                Decision::Offer(o) => {
                    published.offers += 1;
                    self.codec.encode_into("NextBestOffer", o, &mut buf)?;
                    (&self.offers, o.customer_id.as_bytes())
                }
                Decision::Alert(a) => {
                    published.alerts += 1;
                    self.codec.encode_into("RiskAlert", a, &mut buf)?;
                    (&self.alerts, a.customer_id.as_bytes())
                }
                Decision::Audit(a) => {
                    published.audits += 1;
                    self.codec.encode_into("DecisionAudit", a, &mut buf)?;
                    (&self.audit, a.customer_id.as_bytes())
                }
            };
            self.send(topic, key, &buf, &acks).await?;
        }
        for d in dead {
            published.dead_letters += 1;
            self.codec.encode_into("DeadLetter", d, &mut buf)?;
            let key = d.key.as_deref().unwrap_or_default();
            self.send(&self.dead_letters, key, &buf, &acks).await?;
        }
        if let Err((topic, error)) = acks.all_settled().await {
            metrics().produce_errors.with_label_values(&[&topic]).inc();
            return Err(SinkError::Produce { topic, error });
        }
        Ok(published)
    }

    /// Enqueues one record, waiting while librdkafka's queue is full (backpressure, not failure).
    /// An error returns at once; the records sent before it settle in `acks` with nobody waiting.
    async fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        acks: &Arc<Acks>,
    ) -> Result<(), SinkError> {
        loop {
            acks.sending();
            match self.transport.send(topic, key, payload, acks) {
                Ok(()) => return Ok(()),
                Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                    acks.not_sent();
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(error) => {
                    acks.not_sent();
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
        if let Err(e) = self.transport.flush(timeout) {
            tracing::warn!(error = %e, "producer flush at shutdown did not complete");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(code: RDKafkaErrorCode) -> SinkError {
        SinkError::Produce {
            topic: "t".into(),
            error: KafkaError::MessageProduction(code),
        }
    }

    #[test]
    fn fenced_errors_are_told_apart_and_are_not_retried() {
        for code in [
            RDKafkaErrorCode::ProducerFenced,
            RDKafkaErrorCode::Fenced,
            RDKafkaErrorCode::InvalidProducerEpoch,
        ] {
            assert!(produce(code).is_fenced(), "{code:?}");
            assert_eq!(produce(code).recovery(), Recovery::Fail, "{code:?}");
        }
        assert!(!produce(RDKafkaErrorCode::MessageTimedOut).is_fenced());
        assert_eq!(
            produce(RDKafkaErrorCode::MessageTimedOut).recovery(),
            Recovery::Retry
        );
        let message = crate::worker::WorkerError::from(produce(RDKafkaErrorCode::ProducerFenced));
        assert!(message
            .to_string()
            .contains("transactional_id must be unique"));
    }
}
