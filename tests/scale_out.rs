//! Scale-out: two `nbo-stream run` instances in one consumer group over 8 partitions (the mock
//! broker process, real Redis). The second joins while records flow (a rebalance moves partitions away from the first
//! in mid-batch), then the first is killed with `kill -9`; the survivor takes over its partitions
//! and finishes. The result must be a clean run's: every customer's features equal, the same
//! offer, alert and audit ids, duplicates only byte-identical.
//!
//! Why not Tansu: Tansu 0.6's group coordinator notices the killed member's missed heartbeats and
//! starts a rebalance, but the generation it forms still lists that member — the survivor is
//! given its 36 of the 72 input partitions again and the killed member's half is never consumed
//! (seen here: "partitions revoked 36" → "partitions assigned 36", lag stuck). librdkafka's mock
//! cluster drops the member, as Kafka does. `NBOTEST_SCALE_BROKER=tansu` runs it on Tansu anyway.

mod common;

use common::harness::*;
use common::redis_url;
use std::time::{Duration, Instant};

const CUSTOMERS: u32 = 2_000;
const ACTIVITY: usize = 30_000;
const SEED: u64 = 4_242;
const START_MS: i64 = 1_700_000_000_000;
const RATE: u64 = 2_000;

#[test]
fn the_survivor_of_two_instances_finishes_the_work_of_the_one_killed() {
    let started = Instant::now();
    let events = EventSet::generate(CUSTOMERS, ACTIVITY, SEED, START_MS);
    let clean = RunSpec::new(&redis_url());
    let scaled = RunSpec::new(&redis_url());
    let (_broker, brokers) = start_broker(
        std::env::var("NBOTEST_SCALE_BROKER").as_deref() != Ok("tansu"),
        &[&clean, &scaled],
    );
    let expected = clean_run(&brokers, &clean, &events);

    let topics = scaled.settings.topics.clone();
    let group = scaled.settings.kafka.group_id.clone();
    let (mut first, producer) = start_with_profiles(&brokers, &scaled, &events, "first", RATE);
    std::thread::sleep(Duration::from_secs(3));
    let mut second = scaled.spawn(&brokers, "second");
    assert!(
        wait_assigned(&second, Duration::from_secs(60)),
        "the second instance got no partitions; its log ends:\n{}",
        second.process.log_tail(20)
    );
    // Both consume side by side for a while, then the first dies without a goodbye.
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        first.process.running(),
        "the first instance stopped by itself:\n{}",
        first.process.log_tail(30)
    );
    let lag_at_kill = group_lag(&brokers, &group, &topics.inputs());
    first.process.kill9();
    producer.join().expect("producer");
    wait_caught_up(
        &brokers,
        &group,
        &topics.inputs(),
        Duration::from_secs(120),
        "the survivor alone",
        &[&second],
    );
    assert!(
        second.process.running(),
        "the survivor stopped by itself:\n{}",
        second.process.log_tail(30)
    );
    second.process.stop_cleanly(Duration::from_secs(30));
    let got = scaled.outcome(&brokers, &events.customers);
    let c = compare(&got, &expected);
    println!(
        "scale-out: {} events, first instance killed with {lag_at_kill} records uncommitted; \
         {} customers / {} feature values equal; {} offers, {} alerts, {} audits same ids; \
         {} duplicates (all byte-identical); {:.0} s",
        events.activity.len() + events.profiles.len(),
        c.customers,
        c.features,
        c.offers,
        c.alerts,
        c.audits,
        c.duplicates,
        started.elapsed().as_secs_f64()
    );
}
