//! Source: the Kafka consumer, its client configuration and rebalance handling.
//!
//! One consumer group over every input topic with the **range** assignor: with co-partitioned
//! topics it gives partition p of every topic to the same instance, so each customer's state has
//! one writer. Offsets are *stored* by the workers only after a batch's outputs are acknowledged
//! and its state flushed (`enable.auto.offset.store=false`); librdkafka's auto-commit then commits
//! stored offsets, and shutdown commits synchronously.

pub mod align;
pub mod assignment;
pub mod batch;
pub mod dispatch;
pub mod ends;

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

/// Applies `kafka.options` (raw librdkafka settings, the SREs' escape hatch) last, over every
/// client's own settings.
pub fn apply_options(c: &mut ClientConfig, k: &KafkaSettings) {
    for (key, value) in &k.options {
        c.set(key, value);
    }
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
/// commits (each instance reads the compacted topic whole; see `rules_topic::watch`).
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

/// Consumer context: commits on revoke, counts rebalances, checks that each assignment keeps the
/// input topics co-partitioned, and tells the pipeline that the assignment changed.
pub struct SourceContext {
    on_rebalance: RebalanceHook,
    /// The input topics subscribed to (every one must be in a non-empty assignment).
    inputs: Vec<String>,
    /// Set when an assignment broke co-partitioning (see [`co_partitioned`]); the poll loop stops
    /// the pipeline with it before processing any record of that assignment.
    broken: std::sync::OnceLock<String>,
}

impl SourceContext {
    /// A context calling `on_rebalance` whenever partitions are revoked or assigned, for a
    /// consumer subscribed to `inputs`.
    pub fn new(on_rebalance: RebalanceHook, inputs: &[&str]) -> Self {
        Self {
            on_rebalance,
            inputs: inputs.iter().map(|t| t.to_string()).collect(),
            broken: std::sync::OnceLock::new(),
        }
    }

    /// Why the current assignment is unsafe to process, if it is.
    pub fn broken(&self) -> Option<&str> {
        self.broken.get().map(String::as_str)
    }
}

/// Checks that an assignment gives this instance the same partition numbers of every one of the
/// `inputs` (or nothing at all), and returns them. A customer's events are on partition p of
/// every input topic (same key, same partition count); an instance holding p of one topic but not
/// of another would share that customer's state with another instance. The range assignor
/// guarantees it for topics of equal partition count, so a failure here means the topics'
/// partition counts differ (one was created or grown differently) or one does not exist.
pub fn co_partitioned(
    assignment: &TopicPartitionList,
    inputs: &[String],
) -> Result<Vec<i32>, String> {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for e in assignment.elements() {
        by_topic
            .entry(e.topic().to_string())
            .or_default()
            .push(e.partition());
    }
    for partitions in by_topic.values_mut() {
        partitions.sort_unstable();
    }
    let mut sets = by_topic.values();
    let Some(first) = sets.next() else {
        return Ok(Vec::new());
    };
    let missing: Vec<&str> = inputs
        .iter()
        .filter(|t| !by_topic.contains_key(t.as_str()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() && sets.all(|s| s == first) {
        return Ok(first.clone());
    }
    let detail: Vec<String> = by_topic.iter().map(|(t, p)| format!("{t} {p:?}")).collect();
    Err(format!(
        "the input topics are not co-partitioned: this instance was assigned different partitions \
         of them ({}{}); every input topic must exist with the same partition count (see topics/ \
         and `nbo-stream topics create`)",
        detail.join(", "),
        if missing.is_empty() {
            String::new()
        } else {
            format!(", and none of {}", missing.join(", "))
        }
    ))
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
    /// Revoke and assign alike first call the hook, which closes the assignment generation, asks
    /// every worker for a checkpoint, and returns only after the batches in progress have finished
    /// and the checkpoints are taken (bounded by `kafka.revoke_timeout`, see `assignment`), then
    /// starts a new generation: batches polled before it are discarded unprocessed (their records
    /// are fetched again from the committed offsets, by this instance or the new owner) and every
    /// worker empties its cache before its next batch, so nothing cached under the old
    /// assignment is used. Then, on revoke, the offsets stored so far are committed — they cover
    /// only work whose outputs are acknowledged and whose state is flushed, up to the checkpoint
    /// just taken — so whoever gets a partition next resumes right after our last batch. (In
    /// exactly-once mode each checkpoint commits its offsets in its own transaction and nothing
    /// is stored, so this commit finds nothing to do.)
    fn pre_rebalance(
        &self,
        consumer: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Revoke(tpl) => {
                metrics().rebalances.with_label_values(&["revoke"]).inc();
                metrics().assigned_partitions.reset();
                tracing::info!(partitions = tpl.count(), "partitions revoked");
                // First let the batch in progress finish and the workers checkpoint (storing
                // their offsets), then commit.
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
                let m = metrics();
                m.rebalances.with_label_values(&["assign"]).inc();
                for e in tpl.elements() {
                    m.assigned_partitions
                        .with_label_values(&[e.topic(), &e.partition().to_string()])
                        .set(1);
                }
                match co_partitioned(tpl, &self.inputs) {
                    Ok(numbers) => tracing::info!(
                        partitions = tpl.count(),
                        numbers = ?numbers,
                        "partitions assigned"
                    ),
                    Err(why) => {
                        tracing::error!(partitions = tpl.count(), "{why}");
                        let _ = self.broken.set(why);
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tpl(parts: &[(&str, i32)]) -> TopicPartitionList {
        let mut t = TopicPartitionList::new();
        for (topic, p) in parts {
            t.add_partition(topic, *p);
        }
        t
    }

    fn inputs() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn the_same_partitions_of_every_topic_are_co_partitioned() {
        let t = tpl(&[("a", 2), ("b", 0), ("a", 0), ("b", 2)]);
        assert_eq!(co_partitioned(&t, &inputs()), Ok(vec![0, 2]));
        assert_eq!(co_partitioned(&tpl(&[]), &inputs()), Ok(vec![]));
    }

    #[test]
    fn different_partitions_of_two_topics_are_refused_with_both_named() {
        // What the range assignor gives one of two members when topic b has 4 partitions and
        // topic a has 8.
        let t = tpl(&[("a", 0), ("a", 1), ("a", 2), ("a", 3), ("b", 0), ("b", 1)]);
        let why = co_partitioned(&t, &inputs()).unwrap_err();
        assert!(
            why.contains("a [0, 1, 2, 3]") && why.contains("b [0, 1]"),
            "{why}"
        );
        assert!(why.contains("same partition count"), "{why}");
    }

    #[test]
    fn an_input_topic_left_out_of_a_non_empty_assignment_is_refused() {
        // Topic a has 2 partitions and b 1: the second of two members gets a[1] and no b.
        let why = co_partitioned(&tpl(&[("a", 1)]), &inputs()).unwrap_err();
        assert!(why.contains("none of b"), "{why}");
    }
}
