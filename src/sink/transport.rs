//! Where a sink's records and transaction calls go: Kafka's producer in production.
//!
//! The trait is the seam between the sink's delivery logic (what is sent, in which transaction,
//! retried how: `sink`, `worker`) and the client that talks to the broker. Besides librdkafka's
//! producer it lets a test put a model of a transactional broker behind the real sink and worker
//! (`tests/exactly_once_model.rs`): no broker on the build machine isolates transactions.
//!
//! **Acknowledgements are counted, not awaited one by one.** A publish hands its records to the
//! producer with one shared [`Acks`]; librdkafka's delivery report for each record settles it
//! there (on the producer's polling thread), and the publish waits once for all of them. A record
//! costs a reference count, not a future, a channel and two boxes.

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::TopicPartitionList;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The acknowledgements of one publish: how many of its records the transport has taken and not
/// yet settled, and the first that failed.
#[derive(Debug, Default)]
pub struct Acks {
    outstanding: AtomicUsize,
    failed: Mutex<Option<(String, KafkaError)>>,
    settled: tokio::sync::Notify,
}

impl Acks {
    /// Counts a record about to be handed to the transport. Called before
    /// [`Transport::send`], so that its settlement can never come first.
    pub fn sending(&self) {
        self.outstanding.fetch_add(1, Ordering::AcqRel);
    }

    /// Uncounts a record the transport refused (`send` returned an error): it will never be
    /// settled.
    pub fn not_sent(&self) {
        self.settle_one();
    }

    /// Settles one record taken by the transport: acknowledged (`Ok`), or failed for good with
    /// the topic it was for. Called exactly once per record taken, while the producer lives (a
    /// producer dropped with records in flight purges them and serves their reports for 500 ms;
    /// a report it never serves leaves its `Acks` unsettled, with nobody waiting on it).
    pub fn settle(&self, result: Result<(), (&str, KafkaError)>) {
        if let Err((topic, error)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            if failed.is_none() {
                *failed = Some((topic.to_string(), error));
            }
        }
        self.settle_one();
    }

    fn settle_one(&self) {
        let before = self.outstanding.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "a record settled that was never counted");
        if before == 1 {
            // One waiter at most (the publish); a permit stored before it waits wakes it at once.
            self.settled.notify_one();
        }
    }

    /// Waits until every record counted is settled; then the first failure reported, if any, as
    /// the topic and the error. One waiter at most (the publish that counted the records); the
    /// failure is taken, so a second call answers `Ok`.
    pub async fn all_settled(&self) -> Result<(), (String, KafkaError)> {
        while self.outstanding.load(Ordering::Acquire) > 0 {
            self.settled.notified().await;
        }
        match self.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// Records counted and not settled yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Acquire)
    }
}

/// A producer of records with Kafka's transaction calls. The transaction calls block: the sink
/// runs them off the async threads.
pub trait Transport: Send + Sync + 'static {
    /// Enqueues one record. `Ok` means the transport took it and will settle it in `acks` exactly
    /// once while it lives (see [`Acks::settle`]); an error means it did not take it and never
    /// will.
    /// `Err(MessageProduction(QueueFull))` is backpressure: the caller waits and sends again.
    fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        acks: &Arc<Acks>,
    ) -> Result<(), KafkaError>;
    /// Registers the transactional id, fencing earlier producers with it and aborting the
    /// transaction they left open.
    fn init_transactions(&self, timeout: Duration) -> KafkaResult<()>;
    /// Opens a transaction.
    fn begin_transaction(&self) -> KafkaResult<()>;
    /// Adds consumer offsets to the open transaction.
    fn send_offsets_to_transaction(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> KafkaResult<()>;
    /// Commits the open transaction: its records and offsets become visible together.
    fn commit_transaction(&self, timeout: Duration) -> KafkaResult<()>;
    /// Aborts the open transaction: read_committed consumers never see its records.
    fn abort_transaction(&self, timeout: Duration) -> KafkaResult<()>;
    /// Waits until every record sent is acknowledged (shutdown).
    fn flush(&self, timeout: Duration) -> KafkaResult<()>;
}

/// The producer's context: settles each record's [`Acks`] from librdkafka's delivery report.
/// Logs, errors and statistics go to rdkafka's default `ClientContext` methods, as they did with
/// `FutureProducer`'s context.
#[derive(Debug, Default, Clone, Copy)]
pub struct Acknowledger;

impl ClientContext for Acknowledger {}

impl ProducerContext for Acknowledger {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        match result {
            Ok(_) => acks.settle(Ok(())),
            Err((error, message)) => acks.settle(Err((message.topic(), error.clone()))),
        }
    }
}

/// Kafka's producer as the sinks use it: a polling thread serves the delivery reports.
pub type KafkaProducer = ThreadedProducer<Acknowledger>;

/// Creates a producer from its client settings (`sink::config`).
pub fn create(config: &ClientConfig) -> KafkaResult<KafkaProducer> {
    config.create_with_context(Acknowledger)
}

impl Transport for KafkaProducer {
    fn send(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        acks: &Arc<Acks>,
    ) -> Result<(), KafkaError> {
        let record = BaseRecord::with_opaque_to(topic, acks.clone())
            .key(key)
            .payload(payload);
        // A refused record comes back with its opaque, which is dropped here unsettled.
        ThreadedProducer::send(self, record).map_err(|(error, _)| error)
    }

    fn init_transactions(&self, timeout: Duration) -> KafkaResult<()> {
        Producer::init_transactions(self, timeout)
    }

    fn begin_transaction(&self) -> KafkaResult<()> {
        Producer::begin_transaction(self)
    }

    fn send_offsets_to_transaction(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
        timeout: Duration,
    ) -> KafkaResult<()> {
        Producer::send_offsets_to_transaction(self, offsets, group, timeout)
    }

    fn commit_transaction(&self, timeout: Duration) -> KafkaResult<()> {
        Producer::commit_transaction(self, timeout)
    }

    fn abort_transaction(&self, timeout: Duration) -> KafkaResult<()> {
        Producer::abort_transaction(self, timeout)
    }

    fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        Producer::flush(self, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode;

    fn timed_out() -> KafkaError {
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
    }

    #[tokio::test]
    async fn a_publish_waits_for_every_record_and_reports_the_first_failure() {
        let acks = Arc::new(Acks::default());
        for _ in 0..3 {
            acks.sending();
        }
        let settler = {
            let acks = acks.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                acks.settle(Ok(()));
                acks.settle(Err(("alerts", timed_out())));
                acks.settle(Err(("audit", timed_out())));
            })
        };
        let (topic, error) = acks.all_settled().await.expect_err("two records failed");
        settler.join().expect("settler");
        assert_eq!(topic, "alerts");
        assert_eq!(error, timed_out());
        assert_eq!(acks.outstanding(), 0);
    }

    #[tokio::test]
    async fn records_settled_before_the_wait_or_never_taken_do_not_hold_it() {
        let acks = Arc::new(Acks::default());
        acks.sending();
        acks.sending();
        acks.settle(Ok(()));
        acks.not_sent();
        tokio::time::timeout(Duration::from_secs(5), acks.all_settled())
            .await
            .expect("nothing outstanding: no wait")
            .expect("no failure");
        // A publish of no records waits for nothing.
        Acks::default().all_settled().await.expect("empty");
    }
}
