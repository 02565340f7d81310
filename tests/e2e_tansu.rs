//! End to end against a real broker process (Tansu, an Apache-Kafka-compatible broker) and a real
//! Redis: `topics create` through the admin API, the generator, the pipeline with the Redis store,
//! then offers and alerts read back from the broker and features read from Redis.
//!
//! Tansu has no transactions (no EndTxn), so this runs the at-least-once mode.

mod common;

use common::*;
use nbo_stream::config::StateBackend;
use nbo_stream::output::{NextBestOffer, RiskAlert};
use nbo_stream::state::redis::RedisStore;
use nbo_stream::state::StateStore;
use nbo_stream::topics;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const EVENTS: u64 = 8_000;
const CUSTOMERS: u32 = 800;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_load_through_a_real_broker_and_redis() {
    let (_broker, brokers) = start_tansu();
    let mut settings = test_settings(&brokers, StateBackend::Redis);
    settings.redis.url = redis_url();

    let mut specs = topics::embedded().unwrap();
    topics::apply_names(&mut specs, &settings.topics);
    let client = nbo_stream::source::client_config(&settings.kafka);
    let report = topics::create(&client, &specs, Some(4)).await.unwrap();
    assert_eq!(report.len(), specs.len());
    assert!(
        report
            .iter()
            .all(|(_, a)| matches!(a, topics::TopicAction::Created(4, 1))),
        "{report:?}"
    );
    let again = topics::create(&client, &specs, Some(4)).await.unwrap();
    assert!(
        again.iter().all(|(_, a)| *a == topics::TopicAction::Exists),
        "existing topics are left alone: {again:?}"
    );

    let store = Arc::new(
        RedisStore::connect(&settings.redis)
            .await
            .expect("Redis (scripts/test.sh starts it)"),
    );
    let running = Running::start(&settings, store.clone());
    // Profiles and activity in one go: the alignment applies each profile first.
    let summary =
        tokio::task::block_in_place(|| generate_with(&settings, CUSTOMERS, EVENTS, 11, 0.0, None));
    assert_eq!((summary.sent, summary.failed), (EVENTS, 0), "{summary}");
    let done = running.processed(EVENTS, Duration::from_secs(180)).await;
    let progress = running.stop().await;
    assert!(
        done,
        "processed {} of {EVENTS}",
        progress.records.load(Ordering::Relaxed)
    );

    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 1);
    let alerts: Vec<RiskAlert> = outputs(&brokers, &settings.topics.alerts, "RiskAlert", 1);
    assert!(
        !offers.is_empty() && !alerts.is_empty(),
        "offers {} alerts {}",
        offers.len(),
        alerts.len()
    );
    assert_eq!(offers.len() as u64, progress.offers.load(Ordering::Relaxed));

    let hasher = hasher(&settings);
    let features = store
        .feature_hash(&hasher.key(&offers[0].customer_id))
        .await
        .unwrap();
    assert!(
        features
            .iter()
            .any(|(k, v)| k == "_updated_at" && v.parse::<i64>().is_ok()),
        "{features:?}"
    );
    let rt = store.round_trips() as f64 / EVENTS as f64;
    assert!(rt < 0.2, "Redis round trips per event {rt:.3}");
}
