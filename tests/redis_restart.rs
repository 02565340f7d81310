//! Redis killed mid-run and started again (same port, same data: append-only file, fsync on every
//! write). The pipeline must back off without crashing, report not ready on `/readyz` while Redis
//! is down and ready again after, commit no offset while its state cannot be flushed, and finish
//! with every customer's features, and the offer, alert and audit ids, equal to a clean run's.
//!
//! The outage lasts longer than the disturbed run's `max.poll.interval.ms` (set low here): the
//! pipeline must pause the partitions of its held-up workers and keep polling, so it stays in its
//! consumer group — no revoke happens during the whole run — instead of being dropped from it.
//! The mock broker process (`nbo-mock-broker`) and a dedicated `redis-server` for the disturbed
//! run; the shared Redis for the clean one. Not Tansu: the pause makes librdkafka fetch again from
//! the middle of a record batch, and Tansu 0.6 answers that with the next batch, skipping records.

mod common;

use common::harness::*;
use common::procs::RedisServer;
use common::redis_url;
use std::time::{Duration, Instant};

const CUSTOMERS: u32 = 2_000;
const ACTIVITY: usize = 30_000;
const SEED: u64 = 777;
const START_MS: i64 = 1_700_000_000_000;
const RATE: u64 = 2_000;
/// The disturbed run's `max.poll.interval.ms` (librdkafka's floor is the 6 s session timeout).
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(7);
/// Redis stays down at least this long: well past MAX_POLL_INTERVAL.
const MIN_OUTAGE: Duration = Duration::from_secs(14);

/// Resident memory of a process, MiB (Linux `/proc`).
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Bound on the disturbed instance's resident memory while Redis is down and records keep
/// arriving: the queues and the paused partitions hold it (this run stays far below).
const MAX_RSS_MIB: f64 = 512.0;

fn metric(run: &Instance, name: &str, label: &str) -> f64 {
    common::procs::metric_sum(run.port, name, label).unwrap_or(0.0)
}

fn wait_ready(run: &Instance, ready: bool, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if run.ready() == Some(ready) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn redis_killed_and_restarted_mid_run_the_pipeline_waits_and_ends_as_a_clean_run_does() {
    let started = Instant::now();
    let data = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(data.path(), common::free_port());
    let events = EventSet::generate(CUSTOMERS, ACTIVITY, SEED, START_MS);
    let clean = RunSpec::new(&redis_url());
    let mut disturbed = RunSpec::new(&redis.url());
    disturbed.kafka_options = format!(
        "\"max.poll.interval.ms\" = \"{}\"\n",
        MAX_POLL_INTERVAL.as_millis()
    );
    let (_broker, brokers) = start_broker(true, &[&clean, &disturbed]);
    let expected = clean_run(&brokers, &clean, &events);

    let topics = disturbed.settings.topics.clone();
    let group = disturbed.settings.kafka.group_id.clone();
    let (mut run, producer) = start_with_profiles(&brokers, &disturbed, &events, "disturbed", RATE);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(run.ready(), Some(true), "ready while Redis answers");

    let rss_before = rss_mib(run.process.pid());
    redis.kill();
    let down = Instant::now();
    assert!(
        wait_ready(&run, false, Duration::from_secs(15)),
        "/readyz still ready {:?} after Redis went down",
        down.elapsed()
    );
    // Past the 1 s auto-commit interval: whatever was flushed before the outage is committed by
    // now; from here on nothing may be, as no batch can flush its state.
    std::thread::sleep(Duration::from_millis(2_500));
    let (committed_early, _) = group_progress(&brokers, &group, &topics.inputs());
    std::thread::sleep(Duration::from_secs(3));
    let (committed_late, lag) = group_progress(&brokers, &group, &topics.inputs());
    assert_eq!(
        committed_late, committed_early,
        "offsets committed while Redis was down ({lag} records waiting)"
    );
    assert!(
        run.process.running(),
        "the pipeline stopped while Redis was down:\n{}",
        run.process.log_tail(30)
    );
    assert_eq!(run.ready(), Some(false), "not ready while Redis is down");
    let paused = metric(&run, "nbo_paused_partitions", "");
    assert!(
        paused > 0.0,
        "no partition paused while Redis is down; log ends:\n{}",
        run.process.log_tail(20)
    );
    if let Some(rest) = MIN_OUTAGE.checked_sub(down.elapsed()) {
        std::thread::sleep(rest);
    }
    assert!(
        run.process.running(),
        "the pipeline stopped while Redis was down:\n{}",
        run.process.log_tail(30)
    );
    let outage = down.elapsed();
    let rss_down = rss_mib(run.process.pid());
    assert!(
        rss_down < MAX_RSS_MIB,
        "{rss_down:.0} MiB resident after {:.0} s of outage",
        outage.as_secs_f64()
    );

    redis.restart();
    assert!(
        wait_ready(&run, true, Duration::from_secs(30)),
        "/readyz not ready again within 30 s of Redis coming back; log ends:\n{}",
        run.process.log_tail(30)
    );
    producer.join().expect("producer");
    wait_caught_up(
        &brokers,
        &group,
        &topics.inputs(),
        Duration::from_secs(120),
        "after Redis came back",
        &[&run],
    );
    let revokes = metric(&run, "nbo_rebalances_total", "kind=\"revoke\"");
    assert_eq!(
        revokes,
        0.0,
        "the instance lost its partitions during a {:.0} s outage (max.poll.interval {:?}); log ends:\n{}",
        outage.as_secs_f64(),
        MAX_POLL_INTERVAL,
        run.process.log_tail(30)
    );
    assert_eq!(
        metric(&run, "nbo_paused_partitions", ""),
        0.0,
        "partitions still paused after catching up"
    );
    run.process.stop_cleanly(Duration::from_secs(30));
    let got = disturbed.outcome(&brokers, &events.customers);
    let c = compare(&got, &expected);
    println!(
        "redis restart: {} events, Redis down {:.1} s ({lag} records waiting, {committed_early} committed, none while down; \
         {paused} partitions paused, no revoke, max.poll.interval {MAX_POLL_INTERVAL:?}; \
         resident {rss_before:.0} MiB before, {rss_down:.0} MiB at the end of the outage); \
         {} customers / {} feature values equal; {} offers, {} alerts, {} audits same ids; {} duplicates; {:.0} s",
        events.activity.len() + events.profiles.len(),
        outage.as_secs_f64(),
        c.customers,
        c.features,
        c.offers,
        c.alerts,
        c.audits,
        c.duplicates,
        started.elapsed().as_secs_f64()
    );
}
