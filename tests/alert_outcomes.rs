//! Alert outcomes through the pipeline on librdkafka's mock cluster, at least once and exactly
//! once: an investigator's closure of an alert the stream raised counts for its rule (once,
//! however often it is sent), and a closure of an alert the stream never raised reaches the
//! dead-letter topic, once, with its reason.

mod common;

use common::console::produce_input;
use common::*;
use nbo_stream::config::{Delivery, StateBackend};
use nbo_stream::event::{AlertLabel, AlertOutcome, FraudParty};
use nbo_stream::output::{DeadLetter, RiskAlert};
use nbo_stream::state::memory::MemoryStore;
use rdkafka::mocking::MockCluster;
use std::sync::Arc;
use std::time::Duration;

const RULE: &str = r#"id = "alert-big-payment"
version = 3
description = "a payment of 5,000.00 or more"
triggers = ["TransactionEvent"]
condition = "event.amount_minor >= 500000"
[alert]
kind = "FRAUD"
severity = "HIGH"
cooldown = "1h"
"#;

fn closure(n: usize, alert_id: &str, label: AlertLabel) -> AlertOutcome {
    AlertOutcome {
        event_id: format!("case-{n}").into(),
        customer_id: "C1".into(),
        event_time: nbo_stream::clock::now_ms(),
        alert_id: alert_id.into(),
        label,
        fraud_party: Some(FraudParty::ThirdParty),
        amount_minor: Some(600_000),
        currency: Some("EUR".into()),
        closed_by: "investigator-7".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_alert_counts_for_its_rule_once_and_an_unknown_one_is_dead_lettered() {
    closed_and_refused(Delivery::AtLeastOnce, "alert-big-payment").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_exactly_once_the_refused_outcome_is_dead_lettered_once_in_the_transaction() {
    closed_and_refused(Delivery::ExactlyOnce, "alert-big-payment-eos").await;
}

/// The scenario with `delivery`, the alert rule named `rule` (each test its own metric series).
async fn closed_and_refused(delivery: Delivery, rule: &str) {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut settings = test_settings(&brokers, StateBackend::Memory);
    settings.kafka.delivery = delivery;
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(
        rules.path().join("alert.toml"),
        RULE.replace("alert-big-payment", rule),
    )
    .unwrap();
    settings.rules.path = Some(rules.path().to_path_buf());
    settings
        .kafka
        .options
        .insert("fetch.wait.max.ms".into(), "10".into());
    let running = Running::start(&settings, Arc::new(MemoryStore::new()));

    common::console::produce_payment(&settings, "C1", 600_000).await;
    let alerts: Vec<RiskAlert> = outputs(&brokers, &settings.topics.alerts, "RiskAlert", 1);
    let alert_id = alerts[0].alert_id.clone();

    let topic = settings.topics.alert_outcomes.clone();
    let confirmed = closure(1, &alert_id, AlertLabel::ConfirmedRisk);
    for value in [
        &confirmed,
        // The case system sends the same closure again.
        &confirmed,
        &closure(2, "alert-nobody-raised", AlertLabel::FalsePositive),
    ] {
        produce_input(&settings, &topic, "AlertOutcome", "C1", value).await;
    }
    assert!(running.processed(4, Duration::from_secs(30)).await);

    let dead: Vec<DeadLetter> = outputs(&brokers, &settings.topics.dead_letters, "DeadLetter", 1);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].source_topic, topic);
    assert_eq!(dead[0].error_kind, "unknown_alert");
    assert!(
        dead[0].error.contains("alert-nobody-raised"),
        "{}",
        dead[0].error
    );
    assert!(dead[0].payload.as_ref().is_some_and(|p| !p.is_empty()));

    let m = nbo_stream::telemetry::metrics();
    let counted = |label: &str| {
        m.alert_outcomes
            .with_label_values(&[rule, "3", label])
            .get()
    };
    assert_eq!(counted("CONFIRMED_RISK"), 1, "counted once");
    assert_eq!(counted("FALSE_POSITIVE"), 0);
    assert_eq!(
        m.alert_outcome_amount
            .with_label_values(&[rule, "3", "CONFIRMED_RISK", "EUR"])
            .get(),
        600_000
    );
    running.stop().await;
}
