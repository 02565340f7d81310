//! Consumer lag of the `run` instances, for the health page.
//!
//! Every `console.lag_every` the console asks for the offsets the instances' group
//! (`kafka.group_id`) has committed on every input partition and for each partition's end, and
//! shows the difference per topic. It asks with a client of its own that names the group but
//! never subscribes, so it never joins the group and never causes the instances a rebalance.
//! A partition the group has not committed on yet counts from its first offset (the whole
//! partition is still to read, as `auto.offset.reset = earliest` would read it).

use crate::config::Settings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one question to the brokers may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Lag of one input topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLag {
    /// Topic name.
    pub topic: String,
    /// Its partitions.
    pub partitions: usize,
    /// Partitions on which the group has committed an offset.
    pub committed: usize,
    /// Records between the group's committed offsets and the partitions' ends.
    pub lag: i64,
}

/// The latest reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    /// When it was read (ms since epoch).
    pub at: i64,
    /// The group read.
    pub group: String,
    /// Per input topic, in configuration order (topics that do not exist are left out).
    pub topics: Vec<TopicLag>,
    /// Why the latest attempt failed, if it did (the topics are then the last good reading).
    pub error: Option<String>,
}

impl Lag {
    /// Records still to read over every input topic.
    pub fn total(&self) -> i64 {
        self.topics.iter().map(|t| t.lag).sum()
    }
}

/// Where the reader leaves its reading for the pages.
pub type Slot = Arc<Mutex<Option<Lag>>>;

/// Reads the lag of `group` on `topics` once (blocking, up to a few [`ASK_TIMEOUT`]s).
pub fn read(
    consumer: &BaseConsumer,
    topics: &[String],
) -> Result<Vec<TopicLag>, rdkafka::error::KafkaError> {
    let mut list = TopicPartitionList::new();
    let mut per_topic = Vec::new();
    for topic in topics {
        let partitions = partitions_of(consumer, topic, ASK_TIMEOUT)?;
        for p in &partitions {
            list.add_partition(topic, *p);
        }
        if !partitions.is_empty() {
            per_topic.push((topic.clone(), partitions));
        }
    }
    let committed = consumer.committed_offsets(list, ASK_TIMEOUT)?;
    let mut out = Vec::with_capacity(per_topic.len());
    for (topic, partitions) in per_topic {
        let mut t = TopicLag {
            topic: topic.clone(),
            partitions: partitions.len(),
            committed: 0,
            lag: 0,
        };
        for p in partitions {
            let (low, high) = consumer.fetch_watermarks(&topic, p, ASK_TIMEOUT)?;
            let from = match committed.find_partition(&topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) if o >= 0 => {
                    t.committed += 1;
                    // Records below the low watermark were deleted by retention: not to read.
                    o.max(low)
                }
                _ => low,
            };
            t.lag += (high - from).max(0);
        }
        out.push(t);
    }
    Ok(out)
}

/// Reads the lag every `console.lag_every` into `slot` until the task is dropped. The client is
/// used from the blocking pool (its calls block) and closed when the task ends.
pub async fn run(settings: &Settings, slot: Slot) -> anyhow::Result<()> {
    let group = settings.kafka.group_id.clone();
    let mut config = crate::source::client_config(&settings.kafka);
    config
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (key, value) in &settings.kafka.options {
        config.set(key, value);
    }
    let consumer: Arc<BaseConsumer> = Arc::new(config.create()?);
    let topics: Arc<Vec<String>> = Arc::new(
        settings
            .input_topics()
            .into_iter()
            .map(|(topic, _)| topic)
            .collect(),
    );
    let mut every = tokio::time::interval(settings.console.lag_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let (c, t) = (consumer.clone(), topics.clone());
        let result = tokio::task::spawn_blocking(move || read(&c, &t)).await?;
        let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
        let at = crate::console::now_ms();
        *held = Some(match result {
            Ok(topics) => Lag {
                at,
                group: group.clone(),
                topics,
                error: None,
            },
            Err(e) => {
                tracing::warn!(error = %e, %group, "console: reading the consumer lag");
                Lag {
                    at,
                    group: group.clone(),
                    topics: held.take().map(|l| l.topics).unwrap_or_default(),
                    error: Some(e.to_string()),
                }
            }
        });
    }
}

/// The partition ids of `topic` (none when it does not exist), from the cluster's metadata.
pub fn partitions_of<C: rdkafka::consumer::ConsumerContext>(
    consumer: &impl Consumer<C>,
    topic: &str,
    timeout: Duration,
) -> rdkafka::error::KafkaResult<Vec<i32>> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}
