//! Where a sink's records and transaction calls go: Kafka's producer in production.
//!
//! The trait is the seam between the sink's delivery logic (what is sent, in which transaction,
//! retried how: `sink`, `worker`) and the client that talks to the broker. Besides librdkafka's
//! producer it lets a test put a model of a transactional broker behind the real sink and worker
//! (`tests/exactly_once_model.rs`): no broker on the build machine isolates transactions.

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::TopicPartitionList;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The acknowledgement of one record: resolves once the broker has it, or it failed for good.
pub type Delivery = Pin<Box<dyn Future<Output = Result<(), KafkaError>> + Send>>;

/// A producer of records with Kafka's transaction calls. The transaction calls block: the sink
/// runs them off the async threads.
pub trait Transport: Send + Sync + 'static {
    /// Enqueues one record. `Err(MessageProduction(QueueFull))` is backpressure: the caller waits
    /// and sends again.
    fn send(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<Delivery, KafkaError>;
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

impl Transport for FutureProducer {
    fn send(&self, topic: &str, key: &[u8], payload: &[u8]) -> Result<Delivery, KafkaError> {
        let record = FutureRecord::to(topic).key(key).payload(payload);
        match self.send_result(record) {
            Ok(delivery) => Ok(Box::pin(async move {
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((error, _))) => Err(error),
                    // The producer was dropped with the record in flight.
                    Err(_) => Err(KafkaError::Canceled),
                }
            })),
            Err((error, _)) => Err(error),
        }
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
