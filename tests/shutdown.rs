//! Shutdown by signal, as an operator or Kubernetes does it.
//!
//! - SIGTERM while records flow: the instance stops polling, drains what it holds, flushes,
//!   produces and commits, and exits 0 within `kafka.shutdown_timeout`. A restart then finishes the
//!   work: features and ids equal a clean run's and **no record is produced twice** (the drain
//!   committed everything it processed, so nothing is replayed). The restarted instance is stopped
//!   with SIGINT (Ctrl-C), which must behave the same.
//! - A drain that cannot finish (Redis down): the instance exits 1 once `kafka.shutdown_timeout`
//!   passes, not later; and a second signal during a drain exits at once (130).
//!
//! Tansu and the shared Redis for the first test, the mock broker process and a dedicated
//! `redis-server` (killed) for the second.

mod common;

use common::harness::*;
use common::procs::{Guard, RedisServer};
use common::redis_url;
use std::time::{Duration, Instant};

const CUSTOMERS: u32 = 1_000;
const ACTIVITY: usize = 20_000;
const SEED: u64 = 3_131;
const START_MS: i64 = 1_700_000_000_000;
const RATE: u64 = 2_000;

fn signal(process: &Guard, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &process.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name}");
}

#[test]
fn sigterm_mid_run_drains_and_commits_so_the_restart_repeats_nothing() {
    let started = Instant::now();
    let events = EventSet::generate(CUSTOMERS, ACTIVITY, SEED, START_MS);
    let clean = RunSpec::new(&redis_url());
    let stopped = RunSpec::new(&redis_url());
    let (_broker, brokers) = start_broker(false, &[&clean, &stopped]);
    let expected = clean_run(&brokers, &clean, &events);

    let topics = stopped.settings.topics.clone();
    let group = stopped.settings.kafka.group_id.clone();
    let (mut run, producer) = start_with_profiles(&brokers, &stopped, &events, "stopped", RATE);
    // Signal while activity flows, once the instance has committed some of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let profiles = events.profiles.len() as i64;
    while group_progress(&brokers, &group, &topics.inputs()).0 <= profiles {
        assert!(
            Instant::now() < deadline,
            "no activity committed within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (committed_before, _) = group_progress(&brokers, &group, &topics.inputs());
    let bound = stopped.settings.kafka.shutdown_timeout;
    let signalled = Instant::now();
    signal(&run.process, "TERM");
    let status = run.process.wait_timeout(bound + Duration::from_secs(5));
    let drain = signalled.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM: no exit 0 within {bound:?} ({status:?}); log ends:\n{}",
        run.process.log_tail(30)
    );
    assert!(
        run.process.log_tail(5).contains("stopped cleanly"),
        "{}",
        run.process.log_tail(5)
    );
    let (committed_at_stop, waiting) = group_progress(&brokers, &group, &topics.inputs());
    assert!(
        committed_at_stop >= committed_before,
        "committed offsets went back ({committed_before} before the signal, {committed_at_stop} after)"
    );

    let mut restarted = stopped.spawn(&brokers, "restarted");
    wait_done(
        &brokers,
        &stopped,
        producer,
        &restarted,
        "after the restart",
    );
    let signalled = Instant::now();
    signal(&restarted.process, "INT");
    let status = restarted
        .process
        .wait_timeout(bound + Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGINT: no exit 0 within {bound:?} ({status:?}); log ends:\n{}",
        restarted.process.log_tail(30)
    );
    let int_drain = signalled.elapsed();

    let got = stopped.outcome(&brokers, &events.customers);
    let c = compare(&got, &expected);
    assert_eq!(
        c.duplicates, 0,
        "records produced twice after a clean SIGTERM: the drain did not commit what it produced"
    );
    println!(
        "shutdown: SIGTERM mid-run, exit 0 in {:.2} s ({committed_at_stop} records committed, {waiting} waiting); \
         restart finished; SIGINT exit 0 in {:.2} s; {} customers / {} feature values equal; \
         {} offers, {} alerts, {} audits same ids; 0 duplicates; {:.0} s",
        drain.as_secs_f64(),
        int_drain.as_secs_f64(),
        c.customers,
        c.features,
        c.offers,
        c.alerts,
        c.audits,
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_drain_that_cannot_finish_exits_1_at_the_bound_and_a_second_signal_exits_at_once() {
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(data.path(), common::free_port());
    let events = EventSet::generate(300, 3_000, SEED + 1, START_MS);
    let mut spec = RunSpec::new(&redis.url());
    let bound = Duration::from_secs(3);
    spec.kafka_extra = format!("shutdown_timeout = \"{}s\"\n", bound.as_secs());
    let (_broker, brokers) = start_broker(true, &[&spec]);
    // Activity flows for about 3 s; Redis goes down at once, so the instance holds records it
    // cannot flush.
    let (mut first, producer) = start_with_profiles(&brokers, &spec, &events, "bounded", 1_000);
    redis.kill();
    let wait_not_ready = |run: &Instance| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while run.ready() != Some(false) {
            assert!(Instant::now() < deadline, "still ready with Redis down");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_not_ready(&first);

    let signalled = Instant::now();
    signal(&first.process, "TERM");
    let status = first.process.wait_timeout(bound + Duration::from_secs(10));
    let took = signalled.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(1),
        "a drain stuck on Redis must exit 1 at kafka.shutdown_timeout; log ends:\n{}",
        first.process.log_tail(20)
    );
    assert!(
        took + Duration::from_millis(100) >= bound && took < bound + Duration::from_secs(3),
        "exited after {took:?}, bound {bound:?}"
    );
    assert!(first
        .process
        .log_tail(5)
        .contains("draining took longer than kafka.shutdown_timeout"));

    producer.join().expect("producer");

    // The same stuck drain, cut short by a second signal. The instance starts with Redis up
    // (it connects at start), then Redis goes and more records arrive.
    redis.restart();
    let mut second = spec.spawn(&brokers, "twice");
    assert!(
        wait_assigned(&second, Duration::from_secs(60)),
        "no partitions; log ends:\n{}",
        second.process.log_tail(20)
    );
    redis.kill();
    produce(
        &brokers,
        &spec.settings.topics,
        &events.activity[..500],
        1_000,
    );
    wait_not_ready(&second);
    signal(&second.process, "TERM");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = Instant::now();
    signal(&second.process, "TERM");
    let status = second.process.wait_timeout(Duration::from_secs(5));
    let took = signalled.elapsed();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(130),
        "a second signal must exit at once with 130; log ends:\n{}",
        second.process.log_tail(20)
    );
    assert!(
        took < Duration::from_secs(3),
        "the second signal took {took:?}"
    );
    println!(
        "shutdown bound: stuck drain exited 1 after the {bound:?} bound; a second signal exited 130 in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
}
