//! `nbo-consume-floor`: how fast this machine's broker hands the input topics to a plain consumer
//! of the same client library `run` uses — the floor the pipeline's drain rate is compared with
//! (`scripts/bench.sh`).
//!
//! It assigns itself every partition of every input topic of the configuration (the twelve
//! built-in ones and the declared sources) from the beginning, with no consumer group, reads
//! until it has `--records` records (or the topics stay quiet for `--idle`), touches each payload
//! and prints one line: `records=N seconds=S rate=R` (seconds from the first record to the last).
//!
//! ```text
//! nbo-consume-floor --config bench.toml --records 1000000
//! records=1000000 seconds=1.052 rate=950570
//! ```

use anyhow::Context;
use clap::Parser;
use nbo_stream::config::Settings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Reads the input topics as fast as the broker serves them and prints the rate.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration (topics, brokers, Kafka security), as `run` reads it; NBO_* variables
    /// override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Bootstrap servers (overrides the configuration's `kafka.brokers`).
    #[arg(long)]
    brokers: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    records: u64,
    /// Stop when no record arrived for this long (the topics hold fewer than --records).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    idle: Duration,
    /// The consumer's fetch queue (`queued.max.messages.kbytes`), MB: 2 MB starves at about
    /// 80K records/s on a local broker; 16-64 MB keeps up.
    #[arg(long, default_value_t = 64)]
    queue_mb: u32,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut settings = Settings::load(args.config.as_deref())?;
    if let Some(brokers) = args.brokers {
        settings.kafka.brokers = brokers;
    }
    let mut config = nbo_stream::source::client_config(&settings.kafka);
    config
        .set("group.id", "nbo-consume-floor")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set(
            "queued.max.messages.kbytes",
            (args.queue_mb.max(1) * 1024).to_string(),
        );
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    let mut list = TopicPartitionList::new();
    for (topic, _) in settings.input_topics() {
        let metadata = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .with_context(|| format!("metadata of {topic}"))?;
        for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
            for p in t.partitions() {
                list.add_partition_offset(t.name(), p.id(), Offset::Beginning)?;
            }
        }
    }
    anyhow::ensure!(
        list.count() > 0,
        "no input topic exists at {}: create them with `nbo-stream topics create`",
        settings.kafka.brokers
    );
    consumer.assign(&list)?;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    while records < args.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map_or(0, |p| p.len() as u64);
                last = Instant::now();
                first.get_or_insert(last);
            }
            Some(Err(e)) => anyhow::bail!("reading: {e}"),
            None if last.elapsed() > args.idle && first.is_some() => break,
            None if first.is_none() && last.elapsed() > args.idle * 3 => {
                anyhow::bail!("no record arrived within {:?}", args.idle * 3)
            }
            None => {}
        }
    }
    let seconds = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let rate = if seconds > 0.0 {
        records as f64 / seconds
    } else {
        0.0
    };
    println!("records={records} bytes={bytes} seconds={seconds:.3} rate={rate:.0}");
    Ok(())
}
