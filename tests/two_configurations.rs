//! Two configurations in one process: each has its own catalog of input records, so the same
//! source id can name another record in each, features and rules resolve names in their own
//! configuration's catalog, and loading one does not change the other.

use nbo_stream::codec::{Codec, Framing};
use nbo_stream::config::Settings;
use nbo_stream::event::{Event, EventKind};
use std::path::Path;

const CALLS_SCHEMA: &str = r#"{"type":"record","name":"CallTranscript","namespace":"bank.calls",
  "fields":[
    {"name":"call_id","type":"string"},
    {"name":"started_at","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"topic","type":{"type":"enum","name":"CallTopic","symbols":["LOAN","CARD","OTHER"]}},
    {"name":"minutes","type":"double"}
]}"#;

const CALLS_FEATURES: &str = r#"
[[feature]]
name = "loan_calls_7d"
source = "CallTranscript"
filter = 'topic == "LOAN"'
aggregation = "count"
window = "7d"

[[feature]]
name = "call_minutes_7d"
source = "CallTranscript"
aggregation = "sum"
field = "minutes"
window = "7d"
"#;

const CALLS_RULE: &str = r#"
id = "alert-loan-call-burst"
version = 1
description = "Three loan calls in a week, one of them long"
triggers = ["CallTranscript"]
condition = "event.topic == 'LOAN' && event.minutes > 10.0 && features.loan_calls_7d >= 3.0"

[alert]
kind = "CREDIT_RISK"
severity = "LOW"
cooldown = "1d"
"#;

/// A configuration declaring `CallTranscript` under id 16: the id the IoT example gives
/// `WearableEvent`.
fn calls_config(dir: &Path) -> std::path::PathBuf {
    std::fs::write(dir.join("calls.avsc"), CALLS_SCHEMA).unwrap();
    std::fs::write(dir.join("features.toml"), CALLS_FEATURES).unwrap();
    std::fs::create_dir_all(dir.join("rules/alerts")).unwrap();
    std::fs::write(dir.join("rules/alerts/loan-calls.toml"), CALLS_RULE).unwrap();
    let config = format!(
        r#"
[[source]]
record = "CallTranscript"
topic = "bank.calls.v1"
schema = "{schema}"
id = 16
event_id = "call_id"
event_time = "started_at"

[features]
file = "{features}"

[rules]
path = "{rules}"
"#,
        schema = dir.join("calls.avsc").display(),
        features = dir.join("features.toml").display(),
        rules = dir.join("rules").display(),
    );
    let path = dir.join("calls.toml");
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn two_configurations_load_side_by_side_each_with_its_own_records() {
    std::env::set_var(
        "NBO_CUSTOMER_KEY_SECRET",
        "two-configurations-test-secret-01",
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let iot = Settings::load(Some(&root.join("examples/iot/nbo.toml"))).expect("the IoT example");
    let calls = Settings::load(Some(&calls_config(dir.path()))).expect("the calls configuration");
    let sixteen = EventKind::Declared(16);

    // The same id names another record in each; built-in records are in both.
    assert_eq!(iot.catalog.record_name(sixteen), "WearableEvent");
    assert_eq!(calls.catalog.record_name(sixteen), "CallTranscript");
    assert_eq!(iot.catalog.topic(sixteen), "bank.iot.v1");
    assert_eq!(calls.catalog.topic(sixteen), "bank.calls.v1");
    assert_eq!(iot.catalog.kind_of("CallTranscript"), None);
    assert_eq!(calls.catalog.kind_of("WearableEvent"), None);
    for catalog in [&iot.catalog, &calls.catalog] {
        assert_eq!(
            catalog.kind_of("TransactionEvent"),
            Some(EventKind::Transaction)
        );
    }

    // Features resolve their sources in their own configuration's catalog.
    let iot_features = iot.features.load_in(&iot.catalog).unwrap();
    let calls_features = calls.features.load_in(&calls.catalog).unwrap();
    assert!(iot_features.slot("wearable_payment_taps_1h").is_some());
    assert_eq!(calls_features.slots_for(sixteen).len(), 2);
    let refused = calls
        .features
        .load_in(&iot.catalog)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("unknown source \"CallTranscript\""),
        "{refused}"
    );

    // A call transcript goes through the calls configuration's codec and features.
    let calls_codec = Codec::new(&calls.codec_options()).unwrap();
    assert_eq!(calls_codec.record_name(sixteen), "CallTranscript");
    let source = calls.catalog.source(16).unwrap();
    let record = serde_json::json!({
        "call_id": "call-1", "started_at": 1_790_000_000_000i64, "topic": "LOAN", "minutes": 12.5
    });
    let event = source
        .from_json("customer-1", record.as_object().unwrap())
        .unwrap();
    let bytes = calls_codec.encode_declared(&event, Framing::Plain).unwrap();
    let plain = nbo_stream::codec::CodecOptions {
        input_framing: [Framing::Plain; nbo_stream::event::BUILTIN_KINDS],
        declared: vec![(source.clone(), Framing::Plain)],
        ..Default::default()
    };
    let decoded = Codec::new(&plain)
        .unwrap()
        .decode(
            sixteen,
            Some(b"customer-1"),
            Some(&bytes),
            1_790_000_000_001,
        )
        .unwrap();
    assert_eq!(decoded, Event::Declared(Box::new(event)));
    let contributions: Vec<_> = calls_features
        .slots_for(sixteen)
        .iter()
        .map(|&slot| calls_features.defs()[slot].contribution(&decoded))
        .collect();
    assert_eq!(
        contributions[0].map(|c| c.0),
        Some(1.0),
        "a loan call counts"
    );
    assert_eq!(
        contributions[1].map(|c| c.0),
        Some(12.5),
        "its minutes add up"
    );

    // Loading the first configuration again finds it as it was.
    let again = Settings::load(Some(&root.join("examples/iot/nbo.toml"))).unwrap();
    assert_eq!(again.catalog.record_name(sixteen), "WearableEvent");
    assert_eq!(iot.catalog.record_name(sixteen), "WearableEvent");
}
