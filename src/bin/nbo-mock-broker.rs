//! `nbo-mock-broker`: librdkafka's mock Kafka cluster in a process of its own.
//!
//! The demo embeds the mock cluster in the pipeline's process; tests that kill the pipeline
//! (`kill -9`) need the broker — and the records, offsets and transactions it holds — to outlive
//! it. This binary holds an [`rdkafka::mocking::MockCluster`] of `--brokers` brokers, creates the
//! topics given with `--topic` (each with `--partitions` partitions, or `NAME:PARTITIONS`), prints
//! the cluster's bootstrap servers as the **first line of stdout**, and then lives until it is
//! killed or its stdin closes (so a test's child dies with the test even when the test panics).
//!
//! ```text
//! nbo-mock-broker --brokers 1 --partitions 8 --topic bank.transactions.v1 --topic bank.rules.v1:1
//! 127.0.0.1:41233
//! ```
//!
//! Limits (measured with 8 partitions): ~57,000 records/s, and the mock cluster stalls for good
//! past roughly 57,000 records per partition; keep a test's volume well below that. The mock
//! supports consumer groups, idempotent and transactional producers, and no persistence: the data
//! lives only as long as this process.

use clap::Parser;
use rdkafka::mocking::MockCluster;
use std::io::{Read, Write};
use std::process::ExitCode;

/// librdkafka's mock Kafka cluster as a process: prints its bootstrap servers as the first line
/// of stdout, then serves until killed or until stdin closes.
#[derive(Parser)]
#[command(
    name = "nbo-mock-broker",
    version,
    after_help = "For tests that kill the pipeline: the broker and its data outlive it. The mock \
                  cluster stalls for good past ~57,000 records per partition; keep volumes well below."
)]
struct Args {
    /// Brokers in the mock cluster.
    #[arg(long, default_value_t = 1)]
    brokers: i32,
    /// Partitions of each `--topic` that does not give its own count.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Replication factor of the topics created (at most --brokers).
    #[arg(long, default_value_t = 1)]
    replication: i32,
    /// A topic to create: `NAME` (with --partitions) or `NAME:PARTITIONS`. Repeatable.
    #[arg(long = "topic", value_name = "NAME[:PARTITIONS]")]
    topics: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cluster = match MockCluster::new(args.brokers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: mock cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    let replication = args.replication.clamp(1, args.brokers.max(1));
    for spec in &args.topics {
        let (name, partitions) = match spec.rsplit_once(':') {
            Some((name, n)) => match n.parse::<i32>() {
                Ok(n) if n > 0 => (name, n),
                _ => {
                    eprintln!(
                        "error: --topic {spec}: the partition count must be a positive number"
                    );
                    return ExitCode::FAILURE;
                }
            },
            None => (spec.as_str(), args.partitions),
        };
        if let Err(e) = cluster.create_topic(name, partitions, replication) {
            eprintln!("error: creating topic {name}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", cluster.bootstrap_servers())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    // Serve until stdin reaches its end (the parent closed it or died) or a signal ends us.
    let mut sink = [0u8; 256];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    drop(cluster);
    ExitCode::SUCCESS
}
