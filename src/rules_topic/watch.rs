//! Hot reload: follows the compacted rules topic and swaps a new operator in when a change is
//! valid.
//!
//! The watcher reads every partition of the rules topic from the beginning with its own consumer
//! (assigned, not in a group, never committing: the compacted topic *is* the rule set, so each
//! instance reads it whole). Start-up reads it to the end before any event is processed, so an
//! instance never decides with rules older than the topic. After that each valid change builds a
//! new [`Operator`] and publishes it with one atomic pointer swap; a worker picks the operator up
//! at its next batch, so a batch is decided by one rule-set version from start to end. A rejected
//! document changes nothing: it is logged, counted (`nbo_rule_changes_total{result="rejected"}`)
//! and audited (outcome RULE_REJECTED), and the rules in force keep running.

use crate::event::DecisionOutcome;
use crate::operator::Operator;
use crate::output::{Decision, DecisionAudit, FeatureValues};
use crate::rules::book::{Change, RuleBook};
use crate::rules::RuleSet;
use crate::sink::Sink;
use crate::telemetry::metrics;
use arc_swap::ArcSwap;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Builds an operator for a rule set (same features and settings every time).
pub type BuildOperator = Box<dyn Fn(RuleSet) -> Operator + Send + Sync>;

/// The builder `run` and `api` both follow the rules topic with: operators over `features` and
/// `settings`, sharing one table of learned propensities (`models`), keeping each event's
/// decisions in the customer's outbox when `outbox` (exactly-once).
pub fn operator_builder(
    features: std::sync::Arc<crate::features::FeatureSet>,
    settings: &crate::config::OperatorSettings,
    models: std::sync::Arc<crate::learning::model::Models>,
    outbox: bool,
) -> BuildOperator {
    let settings = settings.clone();
    Box::new(move |rules| {
        Operator::new(
            features.clone(),
            rules,
            &settings,
            settings.control_group_percent,
        )
        .with_outbox(outbox)
        .with_models(models.clone())
    })
}

/// Why the rules topic could not be followed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Kafka refused.
    #[error("rules topic {topic}: {error}")]
    Kafka {
        /// Topic.
        topic: String,
        /// Error.
        error: rdkafka::error::KafkaError,
    },
    /// The topic was not read to its end in time.
    #[error("rules topic {topic}: not read to its end within {timeout:?}; is the broker up?")]
    Timeout {
        /// Topic.
        topic: String,
        /// The configured bound (`rules.startup_timeout`).
        timeout: Duration,
    },
}

/// Sets the rule gauges (`nbo_active_rules`, `nbo_ruleset_version`) for the set in force.
pub fn publish_metrics(rules: &RuleSet) {
    let (offers, alerts) = rules.counts();
    let m = metrics();
    m.active_rules
        .with_label_values(&["offer"])
        .set(offers as i64);
    m.active_rules
        .with_label_values(&["alert"])
        .set(alerts as i64);
    m.ruleset_version.set(rules.version);
}

/// Follows the rules topic; see the module documentation.
pub struct RuleWatcher {
    consumer: StreamConsumer,
    topic: String,
    book: RuleBook,
    build: BuildOperator,
    current: Arc<ArcSwap<Operator>>,
    sink: Option<Arc<Sink>>,
}

impl RuleWatcher {
    /// A watcher of `topic` through `consumer` (not subscribed; the watcher assigns it), applying
    /// changes to `book` and publishing operators built by `build` into `current`. Rule-change
    /// audits go to `sink` when there is one.
    pub fn new(
        consumer: StreamConsumer,
        topic: &str,
        book: RuleBook,
        build: BuildOperator,
        current: Arc<ArcSwap<Operator>>,
        sink: Option<Arc<Sink>>,
    ) -> Self {
        Self {
            consumer,
            topic: topic.to_string(),
            book,
            build,
            current,
            sink,
        }
    }

    /// Assigns every partition from the beginning and reads to the current end, applying each
    /// document, then installs the resulting rule set once. Returns the partitions watched (0 if
    /// the topic does not exist: the rules from files stay in force, with a warning).
    pub async fn catch_up(&mut self, timeout: Duration) -> Result<usize, WatchError> {
        let mut audits = Vec::new();
        let consumer = &self.consumer;
        let topic = self.topic.clone();
        let mut messages = Vec::new();
        let partitions = read_to_end(consumer, &topic, timeout, |m| messages.push(m)).await?;
        for m in &messages {
            audits.extend(self.apply(m));
        }
        if partitions == 0 {
            tracing::warn!(
                topic = %self.topic,
                "rules topic does not exist: running the rules from files only; create it with `nbo-stream topics create`"
            );
            return Ok(0);
        }
        self.install();
        self.publish(&audits).await;
        Ok(partitions)
    }

    /// Follows the topic until `shutdown` turns true. Each valid change is installed at once.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let message = tokio::select! {
                _ = shutdown.changed() => return,
                m = self.consumer.recv() => m.map(|m| m.detach()),
            };
            match message {
                Ok(m) => {
                    let audits: Vec<Decision> = self.apply(&m).into_iter().collect();
                    let changed = audits.iter().any(|d| {
                        matches!(d, Decision::Audit(a) if matches!(
                            a.outcome,
                            DecisionOutcome::RuleInstalled | DecisionOutcome::RuleDeleted
                        ))
                    });
                    if changed || self.changed_since_install() {
                        self.install();
                    }
                    self.publish(&audits).await;
                }
                Err(e) => {
                    tracing::warn!(topic = %self.topic, error = %e, "rules topic read failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn changed_since_install(&self) -> bool {
        self.book.version() != self.current.load().rules().version
    }

    /// Builds and swaps in the operator for the book's rule set.
    fn install(&self) {
        let rules = self.book.rule_set();
        publish_metrics(&rules);
        let (offers, alerts) = rules.counts();
        let version = rules.version;
        self.current.store(Arc::new((self.build)(rules)));
        tracing::info!(version, offers, alerts, "rule set installed");
    }

    /// Applies one record to the book; returns the audit record of the change, if any.
    fn apply(&mut self, m: &OwnedMessage) -> Option<Decision> {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let at = m.timestamp().to_millis().unwrap_or(0);
        let trigger = format!("rules-topic:{}:{}", m.partition(), m.offset());
        let (outcome, version, reasons, label): (_, _, Vec<std::sync::Arc<str>>, _) = match self
            .book
            .apply(&key, m.payload(), m.offset())
        {
            Ok(Change::Installed {
                id,
                version,
                slot,
                retired,
            }) => {
                tracing::info!(rule = %id, version, slot = slot.as_str(), ?retired, "rule installed");
                let mut reasons = vec![format!("installed as the {}", slot.as_str()).into()];
                if let Some(r) = retired {
                    reasons.push(format!("challenger v{r} retired").into());
                }
                (
                    DecisionOutcome::RuleInstalled,
                    version,
                    reasons,
                    "installed",
                )
            }
            Ok(Change::Deleted { id, slot }) => {
                tracing::info!(rule = %id, slot = slot.as_str(), "rule deleted");
                let reasons = vec![format!("{} deleted", slot.as_str()).into()];
                (DecisionOutcome::RuleDeleted, 0, reasons, "deleted")
            }
            Ok(Change::Unchanged) => {
                metrics()
                    .rule_changes
                    .with_label_values(&["unchanged"])
                    .inc();
                return None;
            }
            Err(e) => {
                tracing::warn!(rule = %key, offset = m.offset(), error = %e.reason, "rule document rejected; the rules in force keep running");
                (
                    DecisionOutcome::RuleRejected,
                    0,
                    vec![e.reason.into()],
                    "rejected",
                )
            }
        };
        metrics().rule_changes.with_label_values(&[label]).inc();
        Some(Decision::Audit(DecisionAudit {
            audit_id: crate::decision::decision_id("rule-change", &key, version, "", &trigger),
            customer_id: String::new(),
            trigger_event_id: trigger,
            rule_id: crate::rules::book::parse_key(&key).0.to_string(),
            rule_version: version,
            ruleset_version: self.book.version(),
            outcome,
            decision_id: None,
            reasons,
            features: FeatureValues::default(),
            decided_at: at,
            shadow_outcome: None,
            features_as_of: None,
            propensity: None,
            rolled_up: None,
        }))
    }

    async fn publish(&self, audits: &[Decision]) {
        let Some(sink) = &self.sink else { return };
        if audits.is_empty() {
            return;
        }
        if let Err(e) = sink.publish(audits, &[]).await {
            tracing::warn!(error = %e, "rule-change audit records not produced");
        }
    }
}

/// Assigns every partition of `topic` to `consumer` from the beginning and hands each record to
/// `each` until the end the topic had when reading began; returns the partitions read (0 when
/// the topic does not exist).
pub async fn read_to_end(
    consumer: &StreamConsumer,
    topic: &str,
    timeout: Duration,
    mut each: impl FnMut(OwnedMessage),
) -> Result<usize, WatchError> {
    let kafka = |error| WatchError::Kafka {
        topic: topic.to_string(),
        error,
    };
    let deadline = Instant::now() + timeout;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(kafka)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Ok(0);
    }
    let mut list = TopicPartitionList::new();
    let mut ends = Vec::new();
    for &p in &partitions {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(kafka)?;
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(kafka)?;
        if high > low {
            ends.push((p, high));
        }
    }
    consumer.assign(&list).map_err(kafka)?;
    while !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, consumer.recv()).await {
            Err(_) => {
                return Err(WatchError::Timeout {
                    topic: topic.to_string(),
                    timeout,
                })
            }
            Ok(Err(e)) => return Err(kafka(e)),
            // Owned: rule documents are few and small, and the book outlives the message.
            Ok(Ok(m)) => m.detach(),
        };
        let (partition, offset) = (message.partition(), message.offset());
        each(message);
        ends.retain(|&(p, high)| !(p == partition && offset + 1 >= high));
    }
    Ok(partitions.len())
}

/// The rules in force on `topic`: `book` (the rules from files) with every record of the topic
/// applied, as a running instance holds them. Rejected records are skipped, as an instance
/// skips them.
pub async fn read_book(
    consumer: &StreamConsumer,
    topic: &str,
    mut book: RuleBook,
    timeout: Duration,
) -> Result<RuleBook, WatchError> {
    read_to_end(consumer, topic, timeout, |m| {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        let _ = book.apply(&key, m.payload(), m.offset());
    })
    .await?;
    Ok(book)
}
