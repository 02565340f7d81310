//! Source: the Kafka consumer, its client configuration and rebalance handling.
//!
//! One consumer group over every input topic with the **range** assignor: with co-partitioned
//! topics it gives partition p of every topic to the same instance, so each customer's state has
//! one writer. Offsets are *stored* by the workers only after a batch's outputs are acknowledged
//! and its state flushed (`enable.auto.offset.store=false`); librdkafka's auto-commit then commits
//! stored offsets, and shutdown commits synchronously.

pub mod assignment;
pub mod dispatch;

use crate::config::KafkaSettings;
use crate::telemetry::metrics;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::TopicPartitionList;
use std::sync::Arc;

/// Common client settings (brokers, security, escape-hatch options).
pub fn client_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("client.id", &k.client_id)
        .set("security.protocol", &k.security_protocol);
    if let Some(m) = &k.sasl_mechanism {
        c.set("sasl.mechanism", m);
    }
    if let Some(u) = &k.sasl_username {
        c.set("sasl.username", u);
    }
    if let Some(p) = &k.sasl_password {
        c.set("sasl.password", p.expose());
    }
    c
}

fn apply_options(c: &mut ClientConfig, k: &KafkaSettings) {
    for (key, value) in &k.options {
        c.set(key, value);
    }
}

/// Producer configuration: idempotent (unless turned off for brokers without it), acks=all.
pub fn producer_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = client_config(k);
    c.set(
        "enable.idempotence",
        if k.idempotence { "true" } else { "false" },
    )
    .set("acks", "all")
    .set("compression.type", &k.compression)
    .set("linger.ms", "5")
    .set("message.timeout.ms", "60000");
    apply_options(&mut c, k);
    c
}

/// Producer configuration of worker `index` in exactly-once mode: transactional (which implies
/// idempotence), with its own transactional id.
pub fn transactional_producer_config(k: &KafkaSettings, index: usize) -> ClientConfig {
    let mut c = producer_config(k);
    let txn_ms = k.transaction_timeout.as_millis();
    c.set("transactional.id", k.transactional_id(index))
        .set("transaction.timeout.ms", txn_ms.to_string())
        // librdkafka requires a record's delivery timeout to fit in its transaction's.
        .set("message.timeout.ms", txn_ms.min(60_000).to_string());
    apply_options(&mut c, k);
    c
}

/// Consumer configuration: range assignor, manual offset store; offsets are auto-committed from
/// the store in at-least-once mode and committed inside each batch's transaction in exactly-once
/// mode (auto-commit off).
pub fn consumer_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = client_config(k);
    let auto_commit = k.delivery == crate::config::Delivery::AtLeastOnce;
    c.set("group.id", &k.group_id)
        .set("partition.assignment.strategy", "range")
        .set(
            "enable.auto.commit",
            if auto_commit { "true" } else { "false" },
        )
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "false")
        // Drives nbo_consumer_lag_messages (see SourceContext::stats).
        .set("statistics.interval.ms", "5000");
    apply_options(&mut c, k);
    c
}

/// Configuration of the rules-topic consumer: assigned partitions, no group membership and no
/// commits (each instance reads the compacted topic whole; see `rules::watch`).
pub fn rules_consumer_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = client_config(k);
    c.set("group.id", format!("{}-rules", k.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Rule changes are rare and small: answer a fetch as soon as one arrives.
        .set("fetch.wait.max.ms", "50");
    apply_options(&mut c, k);
    c
}

/// Hook the pipeline gives the consumer, called on every revoke and assign (see `pre_rebalance`).
pub type RebalanceHook = Arc<dyn Fn() + Send + Sync>;

/// Consumer context: commits on revoke, counts rebalances, and tells the pipeline that the
/// assignment changed.
pub struct SourceContext {
    on_rebalance: RebalanceHook,
}

impl SourceContext {
    /// A context calling `on_rebalance` whenever partitions are revoked or assigned.
    pub fn new(on_rebalance: RebalanceHook) -> Self {
        Self { on_rebalance }
    }
}

impl ClientContext for SourceContext {
    /// librdkafka's statistics (every `statistics.interval.ms`): publishes consumer lag per
    /// assigned partition. Partitions without a known lag (-1: not assigned or not yet fetched)
    /// are skipped, so a revoked partition's gauge keeps its last value until reassigned.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let lag = &metrics().consumer_lag;
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lag.with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    /// Rebalance (eager, range assignor: every partition is revoked, then the new set assigned).
    ///
    /// Revoke and assign alike first call the hook, which starts a new assignment generation and
    /// returns only after the batch in progress has finished (bounded by `kafka.revoke_timeout`,
    /// see `assignment`): batches polled before it are discarded unprocessed (their records are
    /// fetched again from the committed offsets, by this instance or the new owner) and every
    /// worker empties its cache before its next batch, so nothing cached under the old
    /// assignment is used. Then, on revoke, the offsets stored so far are committed — they cover
    /// only batches whose outputs are acknowledged and whose state is flushed, the one that was in
    /// progress included — so whoever gets a partition next resumes right after our last batch.
    /// (In exactly-once mode each batch commits its offsets in its own transaction and nothing is
    /// stored, so this commit finds nothing to do.)
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                metrics().rebalances.with_label_values(&["revoke"]).inc();
                tracing::info!(partitions = tpl.count(), "partitions revoked");
                // First let the batch in progress finish and store its offsets, then commit.
                (self.on_rebalance)();
                use rdkafka::consumer::Consumer as _;
                match consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                    Ok(()) => {}
                    Err(rdkafka::error::KafkaError::ConsumerCommit(
                        rdkafka::types::RDKafkaErrorCode::NoOffset,
                    )) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "commit on revoke failed; the next owner replays from the last commit")
                    }
                }
            }
            Rebalance::Assign(tpl) => {
                metrics().rebalances.with_label_values(&["assign"]).inc();
                tracing::info!(partitions = tpl.count(), "partitions assigned");
                (self.on_rebalance)();
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // "No offset stored" is the normal answer when nothing new was processed.
            if !matches!(
                e,
                rdkafka::error::KafkaError::ConsumerCommit(
                    rdkafka::types::RDKafkaErrorCode::NoOffset
                )
            ) {
                tracing::warn!(error = %e, "offset commit failed; it is retried at the next interval");
            }
        }
    }
}

/// The pipeline's consumer.
pub type Consumer = StreamConsumer<SourceContext>;
