//! The broker goes away mid-run for clearly longer than `message.timeout.ms`, then comes back.
//! The pipeline must ride it out: keep running, report not ready on `/readyz` while its
//! deliveries fail, retry them with backoff (`nbo_delivery_retries_total`), and once the broker is
//! back catch up and finish with every customer's features, and the offer, alert and audit ids,
//! equal to a clean run's; a record produced twice (a retried at-least-once publish) must be
//! byte-identical to its first copy.
//!
//! The broker is the mock broker process (`nbo-mock-broker`), whose `down` / `up` stdin commands
//! close every connection and refuse new ones, then accept them again; its data survives. The
//! outage starts as soon as the pipeline has processed its first activity batch, while the rest
//! of the activity waits in the consumer's fetch queue: the batches processed during the outage
//! are the ones whose deliveries fail. Exactly-once runs on the same broker with
//! `kafka.mirror_transaction_offsets` (the mock stores no offsets sent in a transaction, see
//! `tests/crash.rs`).
//!
//! Duplicates: at-least-once may repeat the records of a retried publish that reached the broker
//! the first time. Exactly-once on this broker repeats more: right after the broker is back, the
//! transactions commit while the consumer has not found its group coordinator again, so their
//! mirrored consumer commits fail, and the rebalance that follows replays those batches, which
//! re-emit their decisions from the outboxes. On Kafka the transaction carries the offsets and
//! nothing repeats. Either way every repeat must be byte-identical.

mod common;

use common::harness::*;
use common::procs::{metric_sum, mock_broker_command};
use common::redis_url;
use std::time::{Duration, Instant};

const CUSTOMERS: u32 = 1_000;
const ACTIVITY: usize = 10_000;
const SEED: u64 = 5_150;
/// 2023-11-14: fixed, so the event set is the same on every run (and in the past).
const START_MS: i64 = 1_700_000_000_000;
/// The producer's `message.timeout.ms` in these runs: a record not acknowledged within it fails.
const MESSAGE_TIMEOUT_MS: u64 = 3_000;
/// How long the broker stays down: over three message timeouts (the first record fails ~3 s into
/// it), and past the consumer's 6 s session timeout (so the group also rebalances when the
/// broker is back).
const OUTAGE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Delivery {
    AtLeastOnce,
    ExactlyOnce,
}

fn outage_and_compare(delivery: Delivery) {
    let started = Instant::now();
    let events = EventSet::generate(CUSTOMERS, ACTIVITY, SEED, START_MS);
    let mut clean = RunSpec::new(&redis_url());
    let mut disturbed = RunSpec::new(&redis_url());
    for spec in [&mut clean, &mut disturbed] {
        // librdkafka backs off reconnecting up to 10 s by default, which delays both a record's
        // failure (its timeout is acted on as the connection attempt ends) and the recovery;
        // 1 s keeps the test short. The pipeline's behaviour is the same either way.
        spec.kafka_options = format!(
            "\"message.timeout.ms\" = \"{MESSAGE_TIMEOUT_MS}\"\n\"reconnect.backoff.max.ms\" = \"1000\"\n"
        );
        if delivery == Delivery::ExactlyOnce {
            // The mock broker stores no offsets sent in a transaction: mirror them (see
            // `kafka.mirror_transaction_offsets`).
            spec.kafka_extra =
                "delivery = \"exactly_once\"\nmirror_transaction_offsets = true\n".into();
        }
    }
    let (mut broker, brokers) = start_broker(true, &[&clean, &disturbed]);
    let TestBroker::Mock(mock) = &mut broker else {
        unreachable!("start_broker(true, ..) starts the mock broker")
    };
    let expected = clean_run(&brokers, &clean, &events);
    let clean_secs = started.elapsed().as_secs_f64();

    // The profiles are consumed whole first (see the harness), then the instance stops, the
    // whole activity is produced, and a new instance starts on it: the outage then begins as
    // soon as it has processed its first activity batch, with the rest of the activity fetched
    // and waiting, so the batches processed during the outage are ones whose deliveries fail.
    let topics = disturbed.settings.topics.clone();
    let group = disturbed.settings.kafka.group_id.clone();
    produce(&brokers, &topics, &events.profiles, 0);
    let mut run = disturbed.spawn(&brokers, "profiles");
    wait_caught_up(
        &brokers,
        &group,
        &[&topics.customer_profile],
        Duration::from_secs(60),
        "profiles",
        &[&run],
    );
    run.process.stop_cleanly(Duration::from_secs(30));
    produce(&brokers, &topics, &events.activity, 0);
    let mut run = disturbed.spawn(&brokers, "disturbed");
    let consumed = |run: &Instance| metric_sum(run.port, "nbo_events_consumed_total", "");
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed(&run).unwrap_or(0.0) == 0.0 {
        assert!(
            Instant::now() < deadline && run.process.running(),
            "no activity processed within 60 s; log ends:\n{}",
            run.process.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(run.ready(), Some(true), "ready while the broker answers");

    mock_broker_command(mock, "down");
    let down = Instant::now();
    let consumed_at_down = consumed(&run).unwrap_or(0.0) as u64;
    let (mut not_ready_seen, mut first_not_ready) = (0u32, None);
    while down.elapsed() < OUTAGE {
        assert!(
            run.process.running(),
            "the pipeline exited {:.1} s into the broker outage; its log ends:\n{}",
            down.elapsed().as_secs_f64(),
            run.process.log_tail(30)
        );
        if run.ready() == Some(false) {
            not_ready_seen += 1;
            first_not_ready.get_or_insert(down.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let retries_during = metric_sum(run.port, "nbo_delivery_retries_total", "").unwrap_or(0.0);
    let consumed_during = consumed(&run).unwrap_or(0.0) as u64 - consumed_at_down;
    mock_broker_command(mock, "up");
    let outage = down.elapsed();
    assert!(
        run.process.running(),
        "the pipeline exited during the broker outage; its log ends:\n{}",
        run.process.log_tail(30)
    );
    assert!(
        retries_during > 0.0,
        "no delivery was retried during a {outage:?} outage; log ends:\n{}",
        run.process.log_tail(30)
    );
    assert!(
        not_ready_seen > 0,
        "/readyz never answered 503 during the outage ({retries_during} delivery retries)"
    );

    // Caught up: everything committed, the pipeline still running all along.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            run.process.running(),
            "the pipeline exited after the broker came back; its log ends:\n{}",
            run.process.log_tail(30)
        );
        let lag = group_lag(&brokers, &group, &topics.inputs());
        if lag == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{lag} records still uncommitted 120 s after the broker came back; log ends:\n{}",
            run.process.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let ready_deadline = Instant::now() + Duration::from_secs(30);
    while run.ready() != Some(true) {
        assert!(
            Instant::now() < ready_deadline,
            "/readyz not ready again 30 s after catching up; log ends:\n{}",
            run.process.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let retries = metric_sum(run.port, "nbo_delivery_retries_total", "").unwrap_or(0.0);
    let rebalances = metric_sum(run.port, "nbo_rebalances_total", "").unwrap_or(0.0);
    run.process.stop_cleanly(Duration::from_secs(30));
    let got = disturbed.outcome(&brokers, &events.customers);
    let c = compare(&got, &expected);
    println!(
        "broker outage ({delivery:?}): {} events ({} profiles); broker down {:.1} s \
         (message.timeout.ms {MESSAGE_TIMEOUT_MS}) after {consumed_at_down} of its records, \
         {consumed_during} more processed while down, /readyz 503 from {:.1} s into it; {retries} delivery retries, {rebalances} rebalance callbacks; \
         {} customers / {} feature values equal; {} offers, {} alerts, {} audits same ids; \
         {} duplicates (all byte-identical); clean run {clean_secs:.0} s, total {:.0} s",
        events.activity.len() + events.profiles.len(),
        events.profiles.len(),
        outage.as_secs_f64(),
        first_not_ready.unwrap_or_default().as_secs_f64(),
        c.customers,
        c.features,
        c.offers,
        c.alerts,
        c.audits,
        c.duplicates,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn at_least_once_rides_out_a_broker_outage_and_ends_as_a_clean_run_does() {
    outage_and_compare(Delivery::AtLeastOnce);
}

#[test]
fn exactly_once_rides_out_a_broker_outage_and_ends_as_a_clean_run_does() {
    outage_and_compare(Delivery::ExactlyOnce);
}
