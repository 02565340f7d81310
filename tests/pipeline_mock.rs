//! The whole pipeline over librdkafka's in-process mock cluster and the in-memory store: generated
//! customers in, offers, alerts, audits and dead letters out.

mod common;

use common::*;
use nbo_stream::config::StateBackend;
use nbo_stream::event::DecisionOutcome;
use nbo_stream::generator;
use nbo_stream::output::{DeadLetter, DecisionAudit, NextBestOffer, RiskAlert};
use nbo_stream::state::memory::MemoryStore;
use nbo_stream::state::StateStore;
use rdkafka::mocking::MockCluster;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const EVENTS: u64 = 12_000;
const CUSTOMERS: u32 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_customers_produce_offers_alerts_audits_and_dead_letters() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let settings = test_settings(&brokers, StateBackend::Memory);
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 4, 1).unwrap();
    }

    let store = Arc::new(MemoryStore::new());
    let running = Running::start(&settings, store.clone());
    // Profiles and activity in one go: the alignment applies each profile first.
    let summary =
        tokio::task::block_in_place(|| generate_with(&settings, CUSTOMERS, EVENTS, 7, 0.01, None));
    assert_eq!(summary.sent, EVENTS);
    assert_eq!(summary.failed, 0);
    assert!(summary.malformed > 50, "{summary}");

    let done = running.processed(EVENTS, Duration::from_secs(120)).await;
    let progress = running.stop().await;
    assert!(
        done,
        "processed {} of {EVENTS}",
        progress.records.load(Ordering::Relaxed)
    );
    assert_eq!(
        progress.records.load(Ordering::Relaxed),
        EVENTS,
        "every record processed exactly once"
    );
    // Every record's processing latency is observed (received → outputs acknowledged).
    let latency = &nbo_stream::telemetry::metrics::metrics().processing_latency;
    assert_eq!(latency.get_sample_count(), EVENTS, "one latency per record");
    assert!(latency.get_sample_sum() > 0.0);

    // Dead letters: one per malformed record, each with its source and reason.
    let dead: Vec<DeadLetter> = outputs(
        &brokers,
        &settings.topics.dead_letters,
        "DeadLetter",
        summary.malformed as usize,
    );
    assert_eq!(dead.len() as u64, summary.malformed);
    for d in &dead {
        assert!(settings.topics.inputs().contains(&d.source_topic.as_str()));
        assert!(!d.error.is_empty() && !d.error_kind.is_empty());
        assert!(d.payload.as_ref().is_some_and(|p| !p.is_empty()));
    }

    // Offers: unique ids, only to consenting customers (every offer has an OFFERED audit).
    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 1);
    let alerts: Vec<RiskAlert> = outputs(&brokers, &settings.topics.alerts, "RiskAlert", 1);
    let audits: Vec<DecisionAudit> = outputs(
        &brokers,
        &settings.topics.decisions_audit,
        "DecisionAudit",
        1,
    );
    assert!(!offers.is_empty(), "no offers");
    assert!(!alerts.is_empty(), "no alerts");
    let offer_ids: HashSet<_> = offers.iter().map(|o| o.offer_id.clone()).collect();
    assert_eq!(offer_ids.len(), offers.len(), "offer ids are unique");
    let offered: HashSet<_> = audits
        .iter()
        .filter(|a| a.outcome == DecisionOutcome::Offered)
        .filter_map(|a| a.decision_id.clone())
        .collect();
    assert_eq!(
        offered, offer_ids,
        "every offer has its audit record and vice versa"
    );
    assert!(
        audits
            .iter()
            .any(|a| a.outcome == DecisionOutcome::SuppressedNoConsent),
        "some customers lack consent"
    );
    let factory = generator::personas::EventFactory::new(CUSTOMERS, 7, 0);
    let no_consent: HashSet<_> = factory
        .customers()
        .iter()
        .filter(|c| !c.consent_marketing)
        .map(|c| c.id.clone())
        .collect();
    assert!(
        offers
            .iter()
            .all(|o| !no_consent.contains(o.customer_id.as_str())),
        "an offer went to a customer without consent"
    );

    // Features are materialised per customer under the hashed key.
    let hasher = hasher(&settings);
    let some_offer = &offers[0];
    let features = store
        .feature_hash(&hasher.key(&some_offer.customer_id))
        .await
        .unwrap();
    let names: Vec<_> = features.iter().map(|(k, _)| k.as_str()).collect();
    for f in [
        "txn_count_24h",
        "spend_24h",
        "card_spend_30d",
        "loan_page_views_7d",
        "complaints_30d",
        "_updated_at",
    ] {
        assert!(names.contains(&f), "missing feature {f}: {names:?}");
    }
}
