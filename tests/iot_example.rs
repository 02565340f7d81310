//! The IoT example (`examples/iot/`), end to end: a channel declared in configuration only, its
//! schema, its `[[source]]` block, two features and one rule, run by `nbo-stream run` against a
//! real broker (Tansu), Redis and a Schema Registry.
//!
//! - Wearable records are framed with the registry's ids; half of them with a newer writer schema
//!   (fields reordered, a field added), resolved to the example's reader schema.
//! - The rule fires once, for the customer with five payment taps in an hour from two devices,
//!   and not for the one with a single device.
//! - `features show` prints the source's features; nothing is dead-lettered.
//!
//! The registry is `common::registry::TestRegistry` (see `tests/schema_evolution.rs` for why).

mod common;

use common::harness::*;
use common::redis_url;
use common::registry::TestRegistry;
use nbo_stream::catalog::SourceSpec;
use nbo_stream::codec::schemas;
use nbo_stream::output::{DeadLetter, RiskAlert};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const READER: &str = include_str!("../examples/iot/wearable_event.avsc");
const EXAMPLE: &str = include_str!("../examples/iot/nbo.toml");
/// A newer producer's schema: fields in another order, and a firmware version the reader ignores.
const WRITER_V2: &str = r#"{"type":"record","name":"WearableEvent","namespace":"bank.nbo.iot","fields":[
  {"name":"device_type","type":{"type":"enum","name":"DeviceType",
    "symbols":["SMART_WATCH","FITNESS_BAND","SMART_RING","SMART_HOME_HUB","OTHER"],"default":"OTHER"}},
  {"name":"action","type":{"type":"enum","name":"DeviceAction",
    "symbols":["PAYMENT_TAP","HEART_RATE","SLEEP","GEOFENCE_EXIT","OTHER"],"default":"OTHER"}},
  {"name":"firmware","type":"string","default":""},
  {"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}},
  {"name":"amount_minor","type":["null","long"],"default":null},
  {"name":"device_id","type":"string"},
  {"name":"heart_rate","type":["null","int"],"default":null},
  {"name":"event_id","type":"string"}
]}"#;

/// The example's `[[source]]`, `[features]` and `[rules]`, with the paths made absolute and the
/// topic made unique to this run.
fn example_for(spec: &mut RunSpec, registry: &TestRegistry) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut example: toml::Table = EXAMPLE.parse().expect("examples/iot/nbo.toml parses");
    let topic = format!("{}-iot", spec.settings.topics.transactions);
    let source = example["source"].as_array_mut().unwrap()[0]
        .as_table_mut()
        .unwrap();
    source.insert("topic".into(), topic.into());
    let schema = root.join(source["schema"].as_str().unwrap());
    source.insert("schema".into(), schema.display().to_string().into());
    let declared: SourceSpec = source.clone().try_into().expect("a [[source]] block");
    spec.settings.sources = vec![declared];
    let mut out = toml::Table::new();
    out.insert("source".into(), example["source"].clone());
    for (table, key) in [("features", "file"), ("rules", "path")] {
        let path = root.join(example[table][key].as_str().unwrap());
        let mut t = toml::Table::new();
        t.insert(key.into(), path.display().to_string().into());
        out.insert(table.into(), t.into());
    }
    let mut reg = toml::Table::new();
    reg.insert("url".into(), registry.url().into());
    out.insert("schema_registry".into(), reg.into());
    toml::to_string(&out).unwrap()
}

/// Registers the four output schemas under this run's subjects; outputs carry their ids.
fn register_outputs(registry: &TestRegistry, spec: &RunSpec) {
    let t = &spec.settings.topics;
    for (topic, record) in [
        (&t.offers, "NextBestOffer"),
        (&t.alerts, "RiskAlert"),
        (&t.decisions_audit, "DecisionAudit"),
        (&t.dead_letters, "DeadLetter"),
    ] {
        let text = schemas::by_record(record).unwrap().text;
        let id = registry.register(&format!("{topic}-value"), text);
        common::expect_output_id(record, id);
    }
}

/// One wearable record.
struct Reading {
    customer: &'static str,
    event_id: String,
    at: i64,
    device: &'static str,
    device_type: (i32, &'static str),
    tap: bool,
}

#[allow(deprecated)] // apache-avro's one-call datum function: the reference writer here.
fn encode(r: &Reading, schema: &apache_avro::Schema, id: u32) -> Vec<u8> {
    use apache_avro::types::Value as V;
    let (action, amount, heart) = if r.tap {
        (
            V::Enum(0, "PAYMENT_TAP".into()),
            V::Union(1, Box::new(V::Long(2_500))),
            V::Union(0, Box::new(V::Null)),
        )
    } else {
        (
            V::Enum(1, "HEART_RATE".into()),
            V::Union(0, Box::new(V::Null)),
            V::Union(1, Box::new(V::Int(72))),
        )
    };
    let fields = [
        ("event_id".to_string(), V::String(r.event_id.clone())),
        ("event_time".into(), V::TimestampMillis(r.at)),
        ("device_id".into(), V::String(r.device.into())),
        (
            "device_type".into(),
            V::Enum(r.device_type.0 as u32, r.device_type.1.into()),
        ),
        ("action".into(), action),
        ("amount_minor".into(), amount),
        ("heart_rate".into(), heart),
        ("firmware".into(), V::String("4.2.1".into())),
    ];
    let apache_avro::Schema::Record(record) = schema else {
        unreachable!()
    };
    // In the writer's field order, with the fields it has.
    let ordered: Vec<(String, V)> = record
        .fields
        .iter()
        .map(|f| fields.iter().find(|(n, _)| *n == f.name).unwrap().clone())
        .collect();
    let mut payload = vec![0];
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend(apache_avro::to_avro_datum(schema, V::Record(ordered)).unwrap());
    payload
}

fn nbo(args: &[&str], secret: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_nbo-stream"))
        .args(args)
        .env("NBO_CUSTOMER_KEY_SECRET", secret)
        .output()
        .expect("run nbo-stream")
}

#[test]
fn a_channel_declared_in_configuration_feeds_features_and_fires_its_rule() {
    let registry = futures::executor::block_on(TestRegistry::start());
    let mut spec = RunSpec::new(&redis_url());
    spec.extra_toml = example_for(&mut spec, &registry);
    let topic = spec.settings.sources[0].topic.clone();
    let (_broker, brokers) = start_broker(false, &[&spec]);
    register_outputs(&registry, &spec);
    let reader = apache_avro::Schema::parse_str(READER).unwrap();
    let v2 = apache_avro::Schema::parse_str(WRITER_V2).unwrap();
    let reader_id = registry.register(&format!("{topic}-value"), READER);
    let v2_id = registry.register(&format!("{topic}-value"), WRITER_V2);

    // Two customers tap six times within half an hour: one from a watch and a ring, one from a
    // single band; a third only sends heart-rate readings.
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 40 * 60_000;
    let mut readings = Vec::new();
    for i in 0..6 {
        let at = start + i * 5 * 60_000;
        let (device, device_type) = if i % 2 == 0 {
            ("watch-1", (0, "SMART_WATCH"))
        } else {
            ("ring-1", (2, "SMART_RING"))
        };
        readings.push(Reading {
            customer: "c-iot-fraud",
            event_id: format!("wear-fraud-{i}"),
            at,
            device,
            device_type,
            tap: true,
        });
        readings.push(Reading {
            customer: "c-iot-single",
            event_id: format!("wear-single-{i}"),
            at,
            device: "band-9",
            device_type: (1, "FITNESS_BAND"),
            tap: true,
        });
        readings.push(Reading {
            customer: "c-iot-health",
            event_id: format!("wear-health-{i}"),
            at,
            device: if i % 2 == 0 { "band-1" } else { "hub-1" },
            device_type: (1, "FITNESS_BAND"),
            tap: false,
        });
    }

    let run = spec.spawn(&brokers, "iot");
    assert!(
        wait_assigned(&run, Duration::from_secs(60)),
        "partitions assigned"
    );
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for (i, r) in readings.iter().enumerate() {
        let payload = if i % 2 == 0 {
            encode(r, &reader, reader_id)
        } else {
            encode(r, &v2, v2_id)
        };
        producer
            .send(BaseRecord::to(&topic).key(r.customer).payload(&payload))
            .unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let alerts: Vec<RiskAlert> = loop {
        let framed: Vec<_> = read_all(&brokers, &spec.settings.topics.alerts)
            .into_iter()
            .map(|p| (None, p))
            .collect();
        let alerts: Vec<RiskAlert> = common::decode_outputs(&framed, "RiskAlert");
        if !alerts.is_empty() || Instant::now() > deadline {
            break alerts;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert.rule_id, "alert-wearable-tap-burst");
    assert_eq!(alert.customer_id, "c-iot-fraud");
    assert_eq!(
        alert.trigger_event_id, "wear-fraud-4",
        "fires at the fifth tap"
    );
    assert_eq!(alert.features.get("wearable_devices_30d"), Some(2.0));

    // Every record applied before features are read: the group's lag reaches zero.
    let group = spec.settings.kafka.group_id.clone();
    wait_caught_up(
        &brokers,
        &group,
        &[topic.as_str()],
        Duration::from_secs(60),
        "the IoT readings",
        &[&run],
    );
    let dead: Vec<DeadLetter> = common::decode_outputs(
        &read_all(&brokers, &spec.settings.topics.dead_letters)
            .into_iter()
            .map(|p| (None, p))
            .collect::<Vec<_>>(),
        "DeadLetter",
    );
    assert!(dead.is_empty(), "dead letters: {dead:?}");

    let config = std::fs::read_dir(spec.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "toml"))
        .expect("the run's config file");
    let config = config.to_str().unwrap();
    let show = |customer: &str| {
        let out = nbo(
            &["features", "show", customer, "--config", config],
            &spec.secret(),
        );
        assert!(
            out.status.success(),
            "features show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let value = |text: &str, name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let fraud = show("c-iot-fraud");
    assert_eq!(value(&fraud, "wearable_payment_taps_1h"), 6.0, "{fraud}");
    assert_eq!(value(&fraud, "wearable_devices_30d"), 2.0, "{fraud}");
    let single = show("c-iot-single");
    assert_eq!(value(&single, "wearable_devices_30d"), 1.0, "{single}");
    let health = show("c-iot-health");
    assert_eq!(value(&health, "wearable_devices_30d"), 2.0, "{health}");
    println!(
        "IoT example: {} readings (half written with a newer schema), 1 alert for c-iot-fraud at \
         its fifth tap, 0 dead letters\n{fraud}",
        readings.len()
    );
}
