//! A fenced producer (exactly-once): the broker answers a transaction's commit with
//! PRODUCER_FENCED, as Kafka does when a newer instance of the same transactional id (a
//! replacement pod while the old one still runs) has registered. librdkafka makes that a fatal
//! error. The instance must exit non-zero with an error that says it was fenced, never writing
//! past that point; a supervisor's restart must then finish the work, with every customer's
//! features and the offer, alert and audit ids equal to a clean run's (repeats byte-identical).
//!
//! The mock broker process does not fence on its own (a second `InitProducerId` for a
//! transactional id gets a new producer id and leaves the first one valid), so the test injects
//! the broker's answer: `fail EndTxn PRODUCER_FENCED` on its stdin. The shared Redis.

mod common;

use common::harness::*;
use common::procs::mock_broker_command;
use common::redis_url;
use std::time::{Duration, Instant};

const CUSTOMERS: u32 = 1_000;
const ACTIVITY: usize = 12_000;
const SEED: u64 = 9_090;
const START_MS: i64 = 1_700_000_000_000;
const RATE: u64 = 2_000;

#[test]
fn a_fenced_instance_exits_1_saying_so_and_its_restart_finishes_the_work() {
    let started = Instant::now();
    let events = EventSet::generate(CUSTOMERS, ACTIVITY, SEED, START_MS);
    let clean = RunSpec::new(&redis_url());
    let mut fenced = RunSpec::new(&redis_url());
    fenced.kafka_extra = "delivery = \"exactly_once\"\nmirror_transaction_offsets = true\n".into();
    let (mut broker, brokers) = start_broker(true, &[&clean, &fenced]);
    let TestBroker::Mock(mock) = &mut broker else {
        unreachable!("start_broker(true, ..) starts the mock broker")
    };
    let expected = clean_run(&brokers, &clean, &events);

    let topics = fenced.settings.topics.clone();
    let group = fenced.settings.kafka.group_id.clone();
    let (mut first, producer) = start_with_profiles(&brokers, &fenced, &events, "fenced", RATE);
    std::thread::sleep(Duration::from_secs(2));
    mock_broker_command(mock, "fail EndTxn PRODUCER_FENCED");
    let injected = Instant::now();
    let status = first.process.wait_timeout(Duration::from_secs(30));
    let took = injected.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "the fenced instance did not exit 1 ({status:?}); its log ends:\n{}",
        first.process.log_tail(20)
    );
    let last_words = first.process.log_tail(2);
    assert!(
        last_words.to_lowercase().contains("fenced"),
        "the exit does not say the producer was fenced:\n{last_words}"
    );
    let (committed_at_exit, waiting) = group_progress(&brokers, &group, &topics.inputs());

    let mut restarted = fenced.spawn(&brokers, "restarted");
    let c = finish_and_compare(
        &brokers,
        &fenced,
        producer,
        &mut restarted,
        "after the restart",
        &events,
        &expected,
    );
    let said = last_words
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    println!(
        "fenced: exit 1 {:.1} s after the broker's PRODUCER_FENCED ({committed_at_exit} records \
         committed, {waiting} waiting), saying: {said}; the restart finished: {} customers / {} \
         feature values equal; {} offers, {} alerts, {} audits same ids; {} repeats \
         (byte-identical); {:.0} s",
        took.as_secs_f64(),
        c.customers,
        c.features,
        c.offers,
        c.alerts,
        c.audits,
        c.duplicates,
        started.elapsed().as_secs_f64()
    );
}
