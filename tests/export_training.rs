//! `export training` over what a pipeline on librdkafka's mock cluster decided, read back with
//! the parquet crate's own record reader (not the Arrow writer's code): the documented columns,
//! no row whose features took in an event after its decision, no label from outside the
//! maturity window, no erased customer, a decision delivered twice written once, and the same
//! rows in JSON lines; an erasure request that cannot be read stops the export and leaves the
//! last file whole.

mod common;

use common::console::{now_ms, produce_input};
use common::*;
use nbo_stream::config::{Settings, StateBackend};
use nbo_stream::event::{
    AlertLabel, AlertOutcome, ErasureRequest, FraudParty, PaymentMethod, TransactionEvent,
    TxnChannel, TxnType,
};
use nbo_stream::export::{rows::Tally, training, TrainingOptions};
use nbo_stream::output::RiskAlert;
use nbo_stream::state::memory::MemoryStore;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use rdkafka::mocking::MockCluster;
use std::collections::BTreeMap;
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

const H: i64 = 3_600_000;
const DAY: i64 = 24 * H;

/// The columns the README documents, in order, before the features.
const COLUMNS: [&str; 12] = [
    "audit_id",
    "decision_id",
    "customer_key",
    "decided_at",
    "rule_id",
    "rule_version",
    "outcome",
    "features_as_of",
    "propensity",
    "label",
    "label_at",
    "label_final",
];

fn payment(customer: &str, n: usize, at: i64) -> TransactionEvent {
    TransactionEvent {
        event_id: format!("E-{customer}-{n}").into(),
        customer_id: customer.into(),
        event_time: at,
        account_id: "A1".into(),
        txn_type: TxnType::CardPayment,
        amount_minor: 600_000,
        currency: "EUR".into(),
        payment_method: PaymentMethod::CreditCard,
        merchant_category: None,
        channel: TxnChannel::Online,
        country: "DE".into(),
        balance_after_minor: None,
    }
}

fn closure(customer: &str, alert_id: &str, label: AlertLabel, at: i64) -> AlertOutcome {
    AlertOutcome {
        event_id: format!("case-{customer}").into(),
        customer_id: customer.into(),
        event_time: at,
        alert_id: alert_id.into(),
        label,
        fraud_party: Some(FraudParty::ThirdParty),
        amount_minor: Some(600_000),
        currency: Some("EUR".into()),
        closed_by: "investigator-7".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_holds_point_in_time_rows_labelled_inside_the_window_and_no_erased_customer() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut settings = test_settings(&brokers, StateBackend::Memory);
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("alert.toml"), RULE).unwrap();
    settings.rules.path = Some(rules.path().to_path_buf());
    settings
        .kafka
        .options
        .insert("fetch.wait.max.ms".into(), "10".into());
    let running = Running::start(&settings, Arc::new(MemoryStore::new()));

    // Ten days ago, on the minute: four customers each make a large payment, the fourth's an
    // hour later; then a payment of the fourth's from half an hour before it arrives late (within
    // the hour of allowed lateness), and is decided with features that took in the later one.
    let base = (now_ms() - 10 * DAY) / 60_000 * 60_000;
    let t = &settings.topics.transactions;
    for (customer, n, at) in [
        ("C1", 1, base),
        ("C2", 1, base),
        ("C3", 1, base),
        ("C4", 1, base + H),
        ("C4", 2, base + H / 2),
    ] {
        let p = payment(customer, n, at);
        produce_input(&settings, t, "TransactionEvent", customer, &p).await;
    }
    assert!(running.processed(5, Duration::from_secs(30)).await);
    let alerts: Vec<RiskAlert> = outputs(&brokers, &settings.topics.alerts, "RiskAlert", 4);
    let alert_of = |customer: &str| {
        alerts
            .iter()
            .find(|a| a.customer_id == customer)
            .unwrap_or_else(|| panic!("no alert for {customer}: {alerts:?}"))
            .alert_id
            .clone()
    };

    // C1's case is closed two hours after the alert, inside the one-day window; C2's three days
    // after, outside it. C3 asks to be erased.
    let outcomes = &settings.topics.alert_outcomes;
    for (customer, label, at) in [
        ("C1", AlertLabel::ConfirmedRisk, base + 2 * H),
        ("C2", AlertLabel::FalsePositive, base + 3 * DAY),
    ] {
        let c = closure(customer, &alert_of(customer), label, at);
        produce_input(&settings, outcomes, "AlertOutcome", customer, &c).await;
    }
    let erasure = ErasureRequest {
        request_id: "GDPR-1".into(),
        customer_id: "C3".into(),
        requested_at: now_ms(),
    };
    let topic = &settings.topics.erasure_requests;
    produce_input(&settings, topic, "ErasureRequest", "C3", &erasure).await;
    assert!(running.processed(8, Duration::from_secs(30)).await);
    running.stop().await;

    // The audit of C1's alert is delivered a second time, as at least once does after a crash.
    let audit_topic = &settings.topics.decisions_audit;
    let audits = read_topic(&brokers, audit_topic, 5, Duration::from_secs(10));
    let (key, payload) = audits
        .iter()
        .find(|(_, p)| {
            let text = String::from_utf8_lossy(p);
            text.contains("C1") && text.contains(alert_of("C1").as_str())
        })
        .expect("C1's audit");
    produce_raw(&settings, audit_topic, key.as_deref(), payload).await;

    let dir = tempfile::tempdir().unwrap();
    let parquet_file = dir.path().join("training.parquet");
    let summary = export(&settings, &parquet_file, base).await;
    assert_eq!(summary.erased_customers, 1);
    assert_eq!(summary.undecodable, 0);
    let expected = Tally {
        rows: 3,
        labelled: 1,
        erased: 1,
        late_features: 1,
        repeated: 1,
        ..Tally::default()
    };
    assert_eq!(summary.tally, expected, "{summary:?}");

    // Read back with the parquet crate's record reader.
    let reader = SerializedFileReader::new(std::fs::File::open(&parquet_file).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    let names: Vec<String> = schema
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    assert_eq!(names[..COLUMNS.len()], COLUMNS, "the documented columns");
    let features = settings.features.load_in(&settings.catalog).unwrap();
    let mut feature_columns: Vec<String> = features
        .defs()
        .iter()
        .map(|d| format!("feature_{}", d.name))
        .collect();
    feature_columns.sort();
    assert_eq!(names[COLUMNS.len()..], feature_columns[..]);

    let rows: Vec<BTreeMap<String, Field>> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| {
            r.unwrap()
                .get_column_iter()
                .map(|(n, f)| (n.clone(), f.clone()))
                .collect()
        })
        .collect();
    assert_eq!(rows.len(), 3);
    let hasher = hasher(&settings);
    let key = |c: &str| Field::Str(hasher.key(c).0);
    let millis = |f: &Field| match f {
        Field::TimestampMillis(ms) => *ms,
        other => panic!("not a timestamp: {other:?}"),
    };
    for row in &rows {
        assert_ne!(row["customer_key"], key("C3"), "an erased customer");
        assert!(
            !matches!(&row["customer_key"], Field::Str(k) if k.starts_with('C')),
            "raw ids never appear"
        );
        assert!(
            millis(&row["features_as_of"]) <= millis(&row["decided_at"]),
            "features computed after the decision: {row:?}"
        );
        if row["label"] != Field::Null {
            let after = millis(&row["label_at"]) - millis(&row["decided_at"]);
            assert!(
                (0..=DAY).contains(&after),
                "label outside the window: {row:?}"
            );
        }
        assert_eq!(row["label_final"], Field::Bool(true));
        assert_eq!(row["outcome"], Field::Str("ALERTED".into()));
        assert_eq!(row["rule_version"], Field::Int(3));
    }
    let row_of = |c: &str| rows.iter().find(|r| r["customer_key"] == key(c)).unwrap();
    assert_eq!(row_of("C1")["label"], Field::Str("CONFIRMED_RISK".into()));
    assert_eq!(millis(&row_of("C1")["label_at"]), base + 2 * H);
    assert_eq!(row_of("C1")["decision_id"], Field::Str(alert_of("C1")));
    assert_eq!(
        row_of("C2")["label"],
        Field::Null,
        "closed after the window"
    );
    assert_eq!(millis(&row_of("C4")["decided_at"]), base + H);

    // JSON lines: the same rows.
    let jsonl = dir.path().join("training.jsonl");
    export(&settings, &jsonl, base).await;
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let c1 = lines
        .iter()
        .find(|l| l["customer_key"] == hasher.key("C1").0.as_str())
        .unwrap();
    assert_eq!(c1["label"], "CONFIRMED_RISK");
    assert_eq!(c1["decided_at"], base);
    assert!(c1["features"].as_object().is_some());

    // An erasure request that cannot be read stops the export, and the last file stays whole.
    let before = std::fs::read(&parquet_file).unwrap();
    let topic = &settings.topics.erasure_requests;
    produce_raw(&settings, topic, Some(b"C5"), b"not an erasure request").await;
    let options = TrainingOptions {
        from: base - H,
        until: base + DAY,
        maturity: Duration::from_millis(DAY as u64),
        out: parquet_file.clone(),
        format: None,
        include_immature: false,
        now: now_ms(),
        progress: false,
    };
    let err = training(&settings, &options).await.unwrap_err().to_string();
    assert!(err.contains("erasure request cannot be read"), "{err}");
    assert_eq!(std::fs::read(&parquet_file).unwrap(), before);
    assert!(!dir.path().join("training.parquet.partial").exists());
}

/// Produces `payload` as it is to `topic`.
async fn produce_raw(settings: &Settings, topic: &str, key: Option<&[u8]>, payload: &[u8]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = nbo_stream::source::client_config(&settings.kafka)
        .create()
        .unwrap();
    let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    producer
        .send(record, Duration::from_secs(5))
        .await
        .expect("produced");
}

/// Exports decisions from an hour before `base` to a day after it, with a one-day window.
async fn export(
    settings: &Settings,
    out: &std::path::Path,
    base: i64,
) -> nbo_stream::export::Summary {
    let options = TrainingOptions {
        from: base - H,
        until: base + DAY,
        maturity: Duration::from_millis(DAY as u64),
        out: out.to_path_buf(),
        format: None,
        include_immature: false,
        now: now_ms(),
        progress: false,
    };
    training(settings, &options).await.expect("export")
}
