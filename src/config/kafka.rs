//! `[kafka]`: brokers, security, the consumer group, batching and the delivery guarantee.

use super::*;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// Kafka connection, consumer and producer settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group id; run N copies with the same id to scale out.
    pub group_id: String,
    /// Client id reported to the brokers.
    pub client_id: String,
    /// `security.protocol` (plaintext, ssl, sasl_plaintext, sasl_ssl).
    pub security_protocol: String,
    /// `sasl.mechanism` when SASL is used (e.g. SCRAM-SHA-512).
    pub sasl_mechanism: Option<String>,
    /// SASL user name.
    pub sasl_username: Option<String>,
    /// SASL password; set through `NBO_KAFKA__SASL_PASSWORD`.
    pub sasl_password: Option<Secret>,
    /// Most records one operator batch takes from one worker queue. A batch's fixed costs (one
    /// Redis round trip for the customers it misses, one produce flush and its
    /// acknowledgements at-least-once) are shared by its events: while records arrive faster
    /// than a worker takes them (a backlog, a burst), larger batches drain faster. In a steady
    /// flow a batch holds what arrived within `batch_linger` and never reaches this bound.
    pub batch_max_events: usize,
    /// Longest a batch waits to fill before it is processed anyway.
    #[serde(with = "humantime_serde")]
    pub batch_linger: Duration,
    /// Operator workers; partition p goes to worker p mod workers (per-partition order).
    pub workers: usize,
    /// Batches that may wait in each worker's queue (backpressure bound).
    pub queue_batches: usize,
    /// How long the poll loop waits for room in a worker's full queue before it pauses that
    /// worker's partitions and goes on polling (see `source::dispatch`). Short stalls (a slow
    /// flush, catching up) only wait; a longer one (Redis or the broker down) pauses, so that the
    /// instance keeps its group membership however long it lasts. Must stay well below
    /// `max.poll.interval.ms` (librdkafka's default 300 s).
    #[serde(with = "humantime_serde")]
    pub pause_after: Duration,
    /// Event-time alignment (see `source::align`): how long a partition group waits for an
    /// input topic's partition that has nothing buffered while it is behind its end (its records
    /// may be older than what the other topics hold). Past it, the group goes on and the records
    /// released meanwhile are counted in `nbo_unaligned_records_total`. `0s` waits for nothing
    /// (records are taken as fetched, topic by topic).
    #[serde(with = "humantime_serde")]
    pub max_idle: Duration,
    /// Event-time alignment: most records held per partition group; a full group releases its
    /// oldest head without waiting (counted in `nbo_unaligned_records_total`), so memory stays
    /// bounded however skewed the topics are.
    pub align_max_buffered: usize,
    /// Producer compression codec (none, gzip, snappy, lz4, zstd).
    pub compression: String,
    /// Idempotent producer (`enable.idempotence`); turn off only for brokers without InitProducerId.
    pub idempotence: bool,
    /// Delivery guarantee: `exactly_once` (Kafka transactions and an outbox in the customer
    /// state; needs a broker with transactions) or `at_least_once` (idempotent producer and
    /// deterministic ids: a duplicate after a crash is byte-identical). See `sink`.
    pub delivery: Delivery,
    /// Prefix of the transactional ids (exactly-once): each worker uses `<prefix>-<worker>`. It
    /// must be unique per running instance and stable across its restarts (e.g. the pod name);
    /// default `<group_id>-<client_id>`.
    pub transactional_id: Option<String>,
    /// Exactly-once: also commit each batch's offsets with a plain consumer commit right after its
    /// transaction commits. Only for brokers whose transactional offset commit is a stub, such as
    /// librdkafka's mock cluster (the demo and tests); never needed with Kafka, where the
    /// transaction carries the offsets.
    pub mirror_transaction_offsets: bool,
    /// Longest a transaction may stay open before the broker aborts it (`transaction.timeout.ms`).
    #[serde(with = "humantime_serde")]
    pub transaction_timeout: Duration,
    /// On a revoke, how long to wait for the batch in progress to finish (flush, produce, commit)
    /// before the partitions are given up.
    #[serde(with = "humantime_serde")]
    pub revoke_timeout: Duration,
    /// On SIGTERM/SIGINT, the bound on draining (flush state, produce, commit) before the process
    /// gives up and exits non-zero; a second signal exits at once.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// Raw librdkafka options applied to consumer and producer last (escape hatch for SREs).
    pub options: BTreeMap<String, String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "localhost:9092".into(),
            group_id: "nbo-stream".into(),
            client_id: "nbo-stream".into(),
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            // Large enough to share one Redis round trip and one produce flush among many events:
            // `scripts/bench.sh`'s drain ran 110-126K events/s with 2,000, 149-171K with 8,000
            // (README, "Batches of up to 8,000 events").
            batch_max_events: 8000,
            batch_linger: Duration::from_millis(20),
            workers: 2,
            queue_batches: 4,
            pause_after: Duration::from_secs(2),
            max_idle: Duration::from_secs(1),
            align_max_buffered: 50_000,
            compression: "lz4".into(),
            idempotence: true,
            // At-least-once works on every Kafka-protocol broker; production.toml turns on
            // exactly-once for brokers with transactions.
            delivery: Delivery::AtLeastOnce,
            transactional_id: None,
            mirror_transaction_offsets: false,
            transaction_timeout: Duration::from_secs(60),
            revoke_timeout: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(30),
            options: BTreeMap::new(),
        }
    }
}

/// The delivery guarantee of offers, alerts and audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Transactions: outputs and consumer offsets commit together; read_committed consumers see
    /// each record once.
    ExactlyOnce,
    /// Idempotent producer; after a crash a record may repeat, byte-identical.
    AtLeastOnce,
}

impl KafkaSettings {
    /// The transactional id of worker `index` (exactly-once).
    pub fn transactional_id(&self, index: usize) -> String {
        let prefix = self
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", self.group_id, self.client_id));
        format!("{prefix}-{index}")
    }
}
