//! Scale-out: two `nbo-stream run` instances in one consumer group over 8 partitions (the mock
//! broker process, real Redis). The second joins while records flow (a rebalance moves partitions away from the first
//! in mid-batch), then the first is killed with `kill -9`; the survivor takes over its partitions
//! and finishes. The result must be a clean run's: every customer's features equal, the same
//! offer, alert and audit ids, duplicates only byte-identical.
//!
//! Throughout, a sampler reads each live instance's assignment (`nbo_assigned_partitions` on
//! `/metrics`, set from librdkafka's assign callbacks) every 50 ms and checks what co-partitioning
//! needs, across every rebalance: an instance holds the same partition numbers of all 9 input
//! topics, and two instances never hold the same partition (checked on samples where neither
//! instance's assignment is changing).
//!
//! Why not Tansu: Tansu 0.6's group coordinator notices the killed member's missed heartbeats and
//! starts a rebalance, but the generation it forms still lists that member — the survivor is
//! given its 36 of the 72 input partitions again and the killed member's half is never consumed
//! (seen here: "partitions revoked 36" → "partitions assigned 36", lag stuck). librdkafka's mock
//! cluster drops the member, as Kafka does. `NBOTEST_SCALE_BROKER=tansu` runs it on Tansu anyway.

mod common;

use common::harness::*;
use common::redis_url;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CUSTOMERS: u32 = 2_000;
const ACTIVITY: usize = 30_000;
const SEED: u64 = 4_242;
const START_MS: i64 = 1_700_000_000_000;
const RATE: u64 = 2_000;

type Partitions = BTreeSet<i32>;

/// An instance's assignment from its `/metrics`: partitions by topic (None if it does not answer).
fn assignment(port: u16) -> Option<BTreeMap<String, Partitions>> {
    let (_, body) = common::procs::http_get(port, "/metrics")?;
    let mut by_topic: BTreeMap<String, Partitions> = BTreeMap::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("nbo_assigned_partitions{") else {
            continue;
        };
        let (labels, value) = rest.split_once("} ")?;
        if value.trim() != "1" {
            continue;
        }
        let label = |name: &str| -> Option<String> {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            Some(labels[start..].split('"').next()?.to_string())
        };
        let partition: i32 = label("partition")?.parse().ok()?;
        by_topic
            .entry(label("topic")?)
            .or_default()
            .insert(partition);
    }
    Some(by_topic)
}

/// What the sampler saw.
#[derive(Default)]
struct Sampled {
    samples: usize,
    /// Distinct stable layouts (each instance's partition numbers).
    layouts: BTreeSet<Vec<Partitions>>,
    violations: Vec<String>,
}

/// Samples the assignments of the instances whose ports are in `ports` until `stop`.
fn sample_assignments(
    ports: Arc<Mutex<Vec<u16>>>,
    inputs: Vec<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Sampled> {
    std::thread::spawn(move || {
        let mut seen = Sampled::default();
        let mut previous: BTreeMap<u16, Partitions> = BTreeMap::new();
        let mut previous_topics: BTreeMap<u16, BTreeMap<String, Partitions>> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            let mut now: BTreeMap<u16, Partitions> = BTreeMap::new();
            for port in ports.lock().unwrap().clone() {
                let Some(by_topic) = assignment(port) else {
                    continue;
                };
                seen.samples += 1;
                let Some(numbers) = by_topic.values().next().cloned() else {
                    now.insert(port, Partitions::new());
                    continue;
                };
                let topics: Vec<&String> = by_topic.keys().collect();
                let all_inputs = inputs.iter().all(|t| by_topic.contains_key(t));
                // The assign callback sets the gauges one partition at a time: a scrape can catch
                // it halfway. Only a layout seen twice in a row counts.
                let settled = previous_topics.get(&port) == Some(&by_topic);
                if settled && (!all_inputs || by_topic.values().any(|p| *p != numbers)) {
                    seen.violations.push(format!(
                        "instance :{port} holds {by_topic:?} (topics {topics:?})"
                    ));
                }
                previous_topics.insert(port, by_topic.clone());
                now.insert(port, numbers);
            }
            let stable = !now.is_empty() && now.iter().all(|(p, a)| previous.get(p) == Some(a));
            if stable {
                let sets: Vec<&Partitions> = now.values().collect();
                for (i, a) in sets.iter().enumerate() {
                    for b in &sets[i + 1..] {
                        if !a.is_disjoint(b) {
                            seen.violations.push(format!(
                                "two instances hold partitions {:?}",
                                a.intersection(b)
                            ));
                        }
                    }
                }
                seen.layouts
                    .insert(now.values().filter(|p| !p.is_empty()).cloned().collect());
            }
            previous = now;
            std::thread::sleep(Duration::from_millis(50));
        }
        seen
    })
}

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
    let ports = Arc::new(Mutex::new(vec![first.port]));
    let stop = Arc::new(AtomicBool::new(false));
    let inputs: Vec<String> = topics.inputs().iter().map(|t| t.to_string()).collect();
    let sampler = sample_assignments(ports.clone(), inputs, stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    let mut second = scaled.spawn(&brokers, "second");
    ports.lock().unwrap().push(second.port);
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
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler.join().expect("sampler");
    assert!(
        sampled.violations.is_empty(),
        "co-partitioning broken:\n{}",
        sampled.violations.join("\n")
    );
    let all: Partitions = (0..PARTITIONS).collect();
    assert!(
        sampled.layouts.contains(&vec![all.clone()]),
        "never saw one instance holding every partition: {:?}",
        sampled.layouts
    );
    assert!(
        sampled.layouts.iter().any(|l| l.len() == 2),
        "never saw the two instances sharing the partitions: {:?}",
        sampled.layouts
    );
    second.process.stop_cleanly(Duration::from_secs(30));
    let got = scaled.outcome(&brokers, &events.customers);
    let c = compare(&got, &expected);
    println!(
        "scale-out: {} assignment samples, layouts {:?}, co-partitioned and disjoint throughout",
        sampled.samples, sampled.layouts
    );
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
