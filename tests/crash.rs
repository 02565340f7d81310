//! `kill -9` at random moments: the pipeline binary is killed and restarted several times while
//! events flow, then left to finish. Every customer's features must equal those of a clean run
//! of the same events, the offer, alert and audit ids must be the same sets, and any record
//! produced twice (at-least-once allows it) must be byte-identical to its first copy.
//!
//! At-least-once on Tansu (no transactions) with real Redis. The exactly-once variant runs the
//! same harness on the mock broker process with `kafka.delivery = "exactly_once"`. That broker
//! accepts the transactional protocol but gives it no effect: its EndTxn writes no commit or abort
//! marker, its fetch reports the end offset as the last stable offset and no aborted transaction,
//! and its TxnOffsetCommit stores nothing (librdkafka 2.12 `rdkafka_mock_handlers.c`). So a
//! `read_committed` reader there also sees the records of a transaction that a kill left open
//! (aborted at the restart), and the run mirrors each transaction's offsets with a consumer
//! commit right after it (`kafka.mirror_transaction_offsets`). On this broker the test therefore
//! asserts what holds: features and id sets equal the clean run, every repeat is byte-identical
//! (the replay re-emits the stored outbox, it does not recompute), and repeats are bounded by the
//! batches the kills can interrupt. "No duplicate at all in read_committed output" needs a broker
//! with transaction isolation (Kafka), which this machine does not have; tests/exactly_once_model.rs
//! checks it against a model of one. Given a real Kafka in `NBOTEST_KAFKA_BROKERS` (e.g.
//! `docker compose -f deploy/docker-compose.yml up -d kafka`, then `localhost:29092`), the
//! exactly-once variant runs there instead, without the mirror, and asserts zero repeats.

mod common;

use common::harness::*;
use common::redis_url;
use rand::SeedableRng;
use std::time::{Duration, Instant};

const CUSTOMERS: u32 = 2_000;
const ACTIVITY: usize = 40_000;
const SEED: u64 = 20_250_505;
/// 2023-11-14: fixed, so the event set is the same on every run (and in the past).
const START_MS: i64 = 1_700_000_000_000;
const KILLS: usize = 5;
const KILL_SEED: u64 = 9;
/// Activity is produced at this rate during the crash run, so kills land while records flow.
const RATE: u64 = 1_500;

enum Delivery {
    AtLeastOnce,
    ExactlyOnce,
}

fn crash_and_compare(mock_broker: bool, delivery: Delivery, checkpoint_each_batch: bool) {
    // A real Kafka, if one is given, for exactly-once (see the module docs).
    let kafka = matches!(delivery, Delivery::ExactlyOnce) && external_kafka().is_some();
    let mock_broker = mock_broker && !kafka;
    let started = Instant::now();
    let events = EventSet::generate(CUSTOMERS, ACTIVITY, SEED, START_MS);
    let mut clean = RunSpec::new(&redis_url());
    let mut crashed = RunSpec::new(&redis_url());
    if let Delivery::ExactlyOnce = delivery {
        for spec in [&mut clean, &mut crashed] {
            // The mock broker stores no offsets sent in a transaction: mirror them (see
            // `kafka.mirror_transaction_offsets`). Kafka needs no mirror.
            spec.kafka_extra = format!(
                "delivery = \"exactly_once\"\nmirror_transaction_offsets = {}\n",
                !kafka
            );
        }
    }
    // See `killed_and_restarted_at_random_the_pipeline_ends_as_a_clean_run_does`.
    crashed.state_extra = if checkpoint_each_batch {
        "checkpoint_interval = \"0s\"".into()
    } else {
        "checkpoint_interval = \"1s\"".into()
    };
    let (_broker, brokers) = start_broker(mock_broker, &[&clean, &crashed]);
    let expected = clean_run(&brokers, &clean, &events);
    let clean_secs = started.elapsed().as_secs_f64();

    let (mut run, producer) = start_with_profiles(&brokers, &crashed, &events, "crashed-0", RATE);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(KILL_SEED);
    for kill in 1..=KILLS {
        // Count from the moment the instance holds partitions: a restarted instance first waits
        // for the group to drop its killed predecessor (session timeout).
        assert!(
            wait_assigned(&run, Duration::from_secs(60)),
            "instance {kill} got no partitions; its log ends:\n{}",
            run.process.log_tail(20)
        );
        std::thread::sleep(random_between(
            &mut rng,
            Duration::from_millis(500),
            Duration::from_secs(4),
        ));
        assert!(
            run.process.running(),
            "the pipeline stopped by itself; its log ends:\n{}",
            run.process.log_tail(30)
        );
        run.process.kill9();
        run = crashed.spawn(&brokers, &format!("crashed-{kill}"));
    }
    let c = finish_and_compare(
        &brokers,
        &crashed,
        producer,
        &mut run,
        "after the last restart",
        &events,
        &expected,
    );
    println!(
        "crash test: {} events ({} profiles), {KILLS} kills; {} customers / {} feature values equal; \
         {} offers, {} alerts, {} audits same ids; {} duplicates (all byte-identical); \
         clean run {clean_secs:.0} s, total {:.0} s",
        events.activity.len() + events.profiles.len(),
        events.profiles.len(),
        c.customers,
        c.features,
        c.offers,
        c.alerts,
        c.audits,
        c.duplicates,
        started.elapsed().as_secs_f64()
    );
    if kafka {
        assert_eq!(
            c.duplicates, 0,
            "exactly-once on Kafka: records repeated in read_committed output"
        );
    } else if let Delivery::ExactlyOnce = delivery {
        // A kill replays at most one checkpoint interval (1 s) per worker since the last commit;
        // a loose bound: KILLS × 2 workers × one interval of events at up to 20,000 events/s
        // (far above a debug build's rate here), each event making a few records.
        let bound = KILLS * 2 * 20_000 * 4;
        assert!(
            c.duplicates <= bound,
            "exactly-once: {} repeated records, more than {KILLS} kills can replay",
            c.duplicates
        );
    }
}

/// At-least-once on Tansu, checkpointing after every batch. Tansu 0.6 answers a fetch from the
/// middle of a record batch with the next batch, skipping the rest of that one. After a kill the
/// new instance fetches from the committed offset, which is often in the middle of a record
/// batch; with a checkpoint interval longer than a batch, the skipped records were applied by the
/// killed instance but not yet checkpointed, so Tansu loses them (measured here: 2 runs of 4
/// lost a few events of one customer; 0 of 3 with a checkpoint per batch, where the skipped
/// records are always already in Redis). Kafka fetches from any offset, so longer intervals are
/// tested where the broker fetches correctly: the next test.
#[test]
fn killed_and_restarted_at_random_the_pipeline_ends_as_a_clean_run_does() {
    crash_and_compare(false, Delivery::AtLeastOnce, true);
}

/// At-least-once with a 1 s checkpoint interval (a kill loses up to an interval of applied work,
/// which is replayed), on the mock broker process, which fetches from any offset.
#[test]
fn killed_and_restarted_with_checkpoint_intervals_ends_as_a_clean_run_does() {
    crash_and_compare(true, Delivery::AtLeastOnce, false);
}

#[test]
fn exactly_once_killed_and_restarted_ends_as_a_clean_run_does() {
    crash_and_compare(true, Delivery::ExactlyOnce, false);
}
