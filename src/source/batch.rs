//! What the source hands a worker: a batch of polled records.

use crate::event::EventKind;
use rdkafka::message::OwnedMessage;
use std::sync::Arc;
use std::time::Instant;

/// Records of one batch, in arrival order, with the input kind of each, and the assignment
/// generation they were polled under (a batch of an older generation is discarded, see
/// `source::SourceContext::pre_rebalance`).
#[derive(Default)]
pub struct Batch {
    /// Assignment generation at poll time.
    pub generation: u64,
    /// The records.
    pub records: Vec<(EventKind, OwnedMessage)>,
    /// The consumer group's metadata (group generation and member id) at poll time, sent with
    /// the batch's offsets in its transaction (exactly-once): if the group has moved on, the
    /// broker refuses them, so a batch that outlived its assignment cannot commit. `None`: read
    /// from `WorkerContext::offsets` when the transaction starts.
    pub group: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
    /// When its first record was received from the consumer (for `nbo_processing_latency`).
    pub received: Option<Instant>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch")
            .field("generation", &self.generation)
            .field("records", &self.records.len())
            .field("group", &self.group.is_some())
            .finish()
    }
}
