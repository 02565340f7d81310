//! `nbo-mock-broker`: librdkafka's mock Kafka cluster in a process of its own.
//!
//! The demo embeds the mock cluster in the pipeline's process; tests that kill the pipeline
//! (`kill -9`) need the broker — and the records, offsets and transactions it holds — to outlive
//! it. This binary holds an [`rdkafka::mocking::MockCluster`] of `--brokers` brokers, creates the
//! topics given with `--topic` (each with `--partitions` partitions, or `NAME:PARTITIONS`), prints
//! the cluster's bootstrap servers as the **first line of stdout**, and then lives until it is
//! killed or its stdin closes (so a test's child dies with the test even when the test panics).
//!
//! While it lives it reads commands from stdin, one per line, and answers each with one line on
//! stdout, `ok` or `error: <why>` (tests use them to stage a broker outage):
//!
//! - `down`: every broker of the cluster closes its connections and refuses new ones
//!   (`MockCluster::broker_down`); clients see a broker outage and the data is kept;
//! - `up`: every broker accepts connections again (`MockCluster::broker_up`);
//! - `down ID` / `up ID`: the same for broker `ID` only (1 ..= `--brokers`);
//! - `fail API ERROR [COUNT]`: the next COUNT (default 1) requests of API are answered with
//!   ERROR (`MockCluster::request_errors`), e.g. `fail EndTxn PRODUCER_FENCED` to fence a
//!   transactional producer (the mock cluster does not fence on its own). APIs: Produce,
//!   InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit. Errors:
//!   PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, NOT_COORDINATOR, CONCURRENT_TRANSACTIONS,
//!   REQUEST_TIMED_OUT.
//!
//! ```text
//! nbo-mock-broker --brokers 1 --partitions 8 --topic bank.transactions.v1 --topic bank.rules.v1:1
//! 127.0.0.1:41233
//! down
//! ok
//! up
//! ok
//! ```
//!
//! Limits (measured with 8 partitions): ~57,000 records/s, and the mock cluster stalls for good
//! past roughly 57,000 records per partition; keep a test's volume well below that. The mock
//! supports consumer groups, idempotent and transactional producers, and no persistence: the data
//! lives only as long as this process.

use clap::Parser;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use std::io::{BufRead, Write};
use std::process::ExitCode;

/// librdkafka's mock Kafka cluster as a process: prints its bootstrap servers as the first line
/// of stdout, then serves until killed or until stdin closes, taking commands on stdin.
#[derive(Parser)]
#[command(
    name = "nbo-mock-broker",
    version,
    after_help = "Commands on stdin, one per line, each answered with one line on stdout (`ok` or \
                  `error: ...`):\n  \
                  down        every broker closes its connections and refuses new ones (an outage)\n  \
                  up          every broker accepts connections again\n  \
                  down ID     only broker ID (1..=--brokers); likewise `up ID`\n  \
                  fail API ERROR [COUNT]\n              answer the next COUNT requests of API with ERROR \
                  (e.g. fail EndTxn PRODUCER_FENCED)\n\
                  The process exits when stdin closes.\n\n\
                  For tests that kill the pipeline: the broker and its data outlive it. The mock \
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
    // Serve, answering commands, until stdin reaches its end (the parent closed it or died) or a
    // signal ends us.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = match command(&cluster, args.brokers, &line) {
            Ok(()) => "ok".to_string(),
            Err(why) => format!("error: {why}"),
        };
        if writeln!(stdout, "{answer}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    drop(cluster);
    ExitCode::SUCCESS
}

/// Injects an error into the next requests: `fail API ERROR [COUNT]` (see the module docs).
fn fail(cluster: &MockCluster<'_, DefaultProducerContext>, words: &[&str]) -> Result<(), String> {
    use rdkafka::types::{RDKafkaApiKey as Api, RDKafkaRespErr as Err};
    let (api, error, count) = match words {
        [api, error] => (*api, *error, "1"),
        [api, error, count] => (*api, *error, *count),
        _ => return Err("usage: fail API ERROR [COUNT]".into()),
    };
    let api = match api {
        "Produce" => Api::Produce,
        "InitProducerId" => Api::InitProducerId,
        "AddPartitionsToTxn" => Api::AddPartitionsToTxn,
        "AddOffsetsToTxn" => Api::AddOffsetsToTxn,
        "EndTxn" => Api::EndTxn,
        "TxnOffsetCommit" => Api::TxnOffsetCommit,
        other => return Err(format!("unknown API `{other}`")),
    };
    let error = match error {
        "PRODUCER_FENCED" => Err::RD_KAFKA_RESP_ERR_PRODUCER_FENCED,
        "INVALID_PRODUCER_EPOCH" => Err::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH,
        "NOT_COORDINATOR" => Err::RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        "CONCURRENT_TRANSACTIONS" => Err::RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
        "REQUEST_TIMED_OUT" => Err::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        other => return Err(format!("unknown error `{other}`")),
    };
    let count: usize = match count.parse() {
        Ok(n) if n > 0 => n,
        _ => return Err(format!("count `{count}`: expected a positive number")),
    };
    cluster.request_errors(api, &vec![error; count]);
    Ok(())
}

/// Runs one stdin command (`down`, `up`, `down ID`, `up ID`, `fail ...`; see the module docs).
fn command(
    cluster: &MockCluster<'_, DefaultProducerContext>,
    brokers: i32,
    line: &str,
) -> Result<(), String> {
    let mut words = line.split_whitespace();
    let verb = words.next().unwrap_or_default();
    if verb == "fail" {
        return fail(cluster, &words.collect::<Vec<_>>());
    }
    let ids: Vec<i32> = match (words.next(), words.next()) {
        (None, _) => (1..=brokers).collect(),
        (Some(id), None) => match id.parse::<i32>() {
            Ok(id) if (1..=brokers).contains(&id) => vec![id],
            _ => return Err(format!("broker id `{id}`: expected 1..={brokers}")),
        },
        (Some(_), Some(_)) => return Err(format!("`{line}`: too many words")),
    };
    for id in ids {
        let result = match verb {
            "down" => cluster.broker_down(id),
            "up" => cluster.broker_up(id),
            other => {
                return Err(format!(
                    "unknown command `{other}` (down, up, down ID, up ID, fail API ERROR [COUNT])"
                ))
            }
        };
        result.map_err(|e| format!("{verb} broker {id}: {e}"))?;
    }
    Ok(())
}
