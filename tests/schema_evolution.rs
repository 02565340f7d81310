//! Schema evolution, end to end: `nbo-stream run` against a real broker (Tansu), Redis and a
//! Schema Registry, with the inputs framed by the ids the registry gave.
//!
//! - A producer switches TransactionEvent to a v2 mid-stream (fields reordered, a new optional
//!   field, a new enum symbol first so every index moves, an enum default): nothing is
//!   dead-lettered, and features, offers, alerts and audits equal those of the same events sent
//!   at v1; the v2 schema is fetched from the registry once.
//! - The registry is down for 10 s just as the v2 id appears: the batch waits, `/readyz` answers
//!   503, nothing is dead-lettered or lost, and the run ends equal to the clean one.
//! - An id the registry does not know, and a writer that cannot be read as the reader schema (no
//!   `customer_id`), are dead-lettered with their reasons, each writer counted once.
//!
//! No Confluent Schema Registry can be installed on this machine (it is Java, shipped as a Docker
//! image), so the registry is `common::registry::TestRegistry`: an HTTP server in this process
//! implementing the documented REST subset the client uses. docker-compose carries the real one.

mod common;

use common::harness::*;
use common::procs::{http_get, metric_sum};
use common::redis_url;
use common::registry::TestRegistry;
use nbo_stream::codec::schemas;
use nbo_stream::config::TopicSettings;
use nbo_stream::event::EventKind;
use nbo_stream::output::DeadLetter;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CUSTOMERS: u32 = 400;
const ACTIVITY: usize = 8_000;
const SEED: u64 = 20_261_201;
/// 2023-11-14: fixed, so the event set is the same on every run (and in the past).
const START_MS: i64 = 1_700_000_000_000;
const TXN_V1: &str = include_str!("../avro_schemas/transaction_event.avsc");
const TXN_V2: &str = include_str!("fixtures/schemas/transaction_event_v2.avsc");

/// The topic a contract record travels on in `topics`.
fn topic_of<'a>(record: &str, topics: &'a TopicSettings) -> &'a str {
    if let Some(kind) = EventKind::ALL.iter().find(|k| k.record_name() == record) {
        return topics.inputs()[kind.index()];
    }
    match record {
        "NextBestOffer" => &topics.offers,
        "RiskAlert" => &topics.alerts,
        "DecisionAudit" => &topics.decisions_audit,
        "DeadLetter" => &topics.dead_letters,
        other => panic!("no topic for {other}"),
    }
}

/// Registers every contract schema under `<topic>-value` of `spec`'s topics; returns record → id.
/// The registry's ids are its own (an unrelated schema is registered first, so they are not the
/// codec's built-in defaults): the run's outputs must carry them.
fn register_contract(registry: &TestRegistry, spec: &RunSpec) -> HashMap<&'static str, u32> {
    registry.register(
        "unrelated-value",
        r#"{"type":"record","name":"Unrelated","fields":[{"name":"x","type":"long"}]}"#,
    );
    let ids: HashMap<&'static str, u32> = schemas::ALL
        .iter()
        .map(|e| {
            let subject = format!("{}-value", topic_of(e.record, &spec.settings.topics));
            (e.record, registry.register(&subject, e.text))
        })
        .collect();
    for (record, id) in &ids {
        assert_ne!(
            *id,
            schemas::by_record(record).unwrap().default_id,
            "registry ids differ from the built-in ones"
        );
        common::expect_output_id(record, *id);
    }
    ids
}

/// A run of the pipeline that reads its writer schemas from `registry`.
fn spec_with(registry: &TestRegistry) -> RunSpec {
    let mut spec = RunSpec::new(&redis_url());
    spec.extra_toml = format!("[schema_registry]\nurl = \"{}\"\n", registry.url());
    spec
}

/// `records` framed with the registry's id of their record (the event set frames with the
/// built-in ids).
fn framed(records: &[Record], ids: &HashMap<&'static str, u32>) -> Vec<Record> {
    records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            let id = ids[EventKind::ALL[r.kind].record_name()];
            r.payload[1..5].copy_from_slice(&id.to_be_bytes());
            r
        })
        .collect()
}

/// A v1 transaction record as a producer of `writer` (id `id`) writes the same transaction.
#[allow(deprecated)] // apache-avro's one-call datum functions: the reference writer here.
fn rewritten(r: &Record, writer: &apache_avro::Schema, id: u32) -> Record {
    let v1 = apache_avro::Schema::parse_str(TXN_V1).unwrap();
    let value = apache_avro::from_avro_datum(&v1, &mut &r.payload[5..], Some(writer)).unwrap();
    let mut payload = vec![0];
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend(apache_avro::to_avro_datum(writer, value).unwrap());
    Record {
        kind: r.kind,
        key: r.key.clone(),
        payload,
    }
}

/// The event set with every transaction from the middle of the activity on written as v2.
fn switched_to_v2(events: &EventSet, activity: &[Record], v2_id: u32) -> (Vec<Record>, usize) {
    let v2 = apache_avro::Schema::parse_str(TXN_V2).unwrap();
    let half = events.activity.len() / 2;
    let mut switched = 0;
    let out = activity
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if i >= half && r.kind == EventKind::Transaction.index() {
                switched += 1;
                rewritten(r, &v2, v2_id)
            } else {
                r.clone()
            }
        })
        .collect();
    (out, switched)
}

fn dead_letters(brokers: &str, spec: &RunSpec) -> Vec<DeadLetter> {
    let framed: Vec<(Option<Vec<u8>>, Vec<u8>)> =
        read_all(brokers, &spec.settings.topics.dead_letters)
            .into_iter()
            .map(|p| (None, p))
            .collect();
    common::decode_outputs(&framed, "DeadLetter")
}

/// The same events as `events`, with `activity` in place of its activity.
fn with_activity(events: &EventSet, profiles: Vec<Record>, activity: Vec<Record>) -> EventSet {
    EventSet {
        profiles,
        activity,
        customers: events.customers.clone(),
    }
}

#[test]
fn a_producer_switching_transactions_to_v2_mid_stream_changes_nothing() {
    let registry = futures::executor::block_on(TestRegistry::start());
    let events = EventSet::generate(CUSTOMERS, ACTIVITY, SEED, START_MS);
    let (clean, evolved) = (spec_with(&registry), spec_with(&registry));
    let (_broker, brokers) = start_broker(false, &[&clean, &evolved]);
    let ids = register_contract(&registry, &clean);
    let ids_evolved = register_contract(&registry, &evolved);
    let v2_id = registry.register(
        &format!("{}-value", evolved.settings.topics.transactions),
        TXN_V2,
    );

    let v1_events = with_activity(
        &events,
        framed(&events.profiles, &ids),
        framed(&events.activity, &ids),
    );
    let expected = clean_run(&brokers, &clean, &v1_events);

    let (activity, switched) =
        switched_to_v2(&events, &framed(&events.activity, &ids_evolved), v2_id);
    assert!(switched > 500, "{switched} transactions written as v2");
    let v2_events = with_activity(&events, framed(&events.profiles, &ids_evolved), activity);
    let got = clean_run(&brokers, &evolved, &v2_events);

    let c = compare(&got, &expected);
    assert_eq!(c.duplicates, 0);
    let dead = dead_letters(&brokers, &evolved);
    assert!(
        dead.is_empty(),
        "dead letters: {:?}",
        &dead[..dead.len().min(3)]
    );
    assert!(dead_letters(&brokers, &clean).is_empty());
    assert_eq!(
        registry.requests_for_id(v2_id),
        1,
        "the v2 schema is fetched once, not per record"
    );
    println!(
        "v2 mid-stream: {switched} transactions as v2, 0 dead letters; {} customers / {} feature \
         values, {} offers, {} alerts, {} audits equal to the v1 run",
        c.customers, c.features, c.offers, c.alerts, c.audits
    );
}

#[test]
fn a_registry_outage_while_a_new_id_appears_holds_the_batch_and_loses_nothing() {
    let registry = futures::executor::block_on(TestRegistry::start());
    let events = EventSet::generate(CUSTOMERS, ACTIVITY, SEED + 1, START_MS);
    let (clean, outage) = (spec_with(&registry), spec_with(&registry));
    let (_broker, brokers) = start_broker(false, &[&clean, &outage]);
    let ids = register_contract(&registry, &clean);
    let ids_outage = register_contract(&registry, &outage);
    let v2_id = registry.register(
        &format!("{}-value", outage.settings.topics.transactions),
        TXN_V2,
    );
    let expected = clean_run(
        &brokers,
        &clean,
        &with_activity(
            &events,
            framed(&events.profiles, &ids),
            framed(&events.activity, &ids),
        ),
    );

    // First half at v1 (every v1 id fetched while the registry is up), then the registry goes
    // down and the second half arrives with transactions at v2: a new id nobody can fetch.
    let (activity, _) = switched_to_v2(&events, &framed(&events.activity, &ids_outage), v2_id);
    let half = activity.len() / 2;
    let topics = outage.settings.topics.clone();
    let group = outage.settings.kafka.group_id.clone();
    let first = with_activity(
        &events,
        framed(&events.profiles, &ids_outage),
        activity[..half].to_vec(),
    );
    let (mut run, producer) = start_with_profiles(&brokers, &outage, &first, "outage", 0);
    wait_done(&brokers, &outage, producer, &run, "first half");
    assert_eq!(run.ready(), Some(true));

    futures::executor::block_on(registry.down());
    let down_at = Instant::now();
    produce(&brokers, &topics, &activity[half..], 0);
    let mut not_ready_at = None;
    while down_at.elapsed() < Duration::from_secs(10) {
        if not_ready_at.is_none() && run.ready() == Some(false) {
            not_ready_at = Some(down_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let not_ready_at = not_ready_at.expect("/readyz answered 503 during the registry outage");
    assert_eq!(
        run.ready(),
        Some(false),
        "still not ready at the end of the outage"
    );
    let lag = group_lag(&brokers, &group, &topics.inputs());
    assert!(lag > 0, "records wait uncommitted during the outage");
    let errors = metric_sum(run.port, "nbo_schema_registry_errors_total", "").unwrap_or(0.0);
    assert!(errors > 0.0, "registry errors counted");

    futures::executor::block_on(registry.up());
    wait_caught_up(
        &brokers,
        &group,
        &topics.inputs(),
        Duration::from_secs(60),
        "after the registry came back",
        &[&run],
    );
    assert_eq!(
        http_get(run.port, "/readyz").map(|(code, _)| code),
        Some(200)
    );
    run.process.stop_cleanly(Duration::from_secs(30));
    let c = compare(&outage.outcome(&brokers, &events.customers), &expected);
    let dead = dead_letters(&brokers, &outage);
    assert!(
        dead.is_empty(),
        "dead letters: {:?}",
        &dead[..dead.len().min(3)]
    );
    println!(
        "registry down 10 s: /readyz 503 after {:.1} s, {lag} records held, {errors} registry \
         errors retried; then {} customers / {} feature values and every id equal, 0 dead letters",
        not_ready_at.as_secs_f64(),
        c.customers,
        c.features
    );
}

#[test]
fn unknown_ids_and_incompatible_writers_are_dead_lettered_with_their_reasons() {
    let registry = futures::executor::block_on(TestRegistry::start());
    let events = EventSet::generate(200, 3_000, SEED + 2, START_MS);
    let spec = spec_with(&registry);
    let (_broker, brokers) = start_broker(false, &[&spec]);
    let ids = register_contract(&registry, &spec);
    // A writer without customer_id, registered under another subject (its id is global).
    let mut writer: serde_json::Value = serde_json::from_str(TXN_V1).unwrap();
    writer["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "customer_id");
    let incompatible_id = registry.register("legacy-transactions-value", &writer.to_string());
    let incompatible = apache_avro::Schema::parse_str(&writer.to_string()).unwrap();
    const UNKNOWN_ID: u32 = 999_999;

    let mut activity = framed(&events.activity, &ids);
    let (mut unknown, mut refused) = (0, 0);
    for (i, r) in activity.iter_mut().enumerate() {
        if r.kind != EventKind::Transaction.index() {
            continue;
        }
        match i % 10 {
            3 => {
                r.payload[1..5].copy_from_slice(&UNKNOWN_ID.to_be_bytes());
                unknown += 1;
            }
            7 => {
                *r = rewritten(r, &incompatible, incompatible_id);
                refused += 1;
            }
            _ => {}
        }
    }
    assert!(unknown > 20 && refused > 20);
    let events = with_activity(&events, framed(&events.profiles, &ids), activity);
    let (mut run, producer) = start_with_profiles(&brokers, &spec, &events, "bad-ids", 0);
    wait_done(&brokers, &spec, producer, &run, "bad ids");
    let writers = |resolution: &str| {
        metric_sum(
            run.port,
            "nbo_schema_writers_total",
            &format!("resolution=\"{resolution}\""),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(
        (writers("unknown"), writers("incompatible")),
        (1.0, 1.0),
        "each refused writer is counted once, at first sight"
    );
    run.process.stop_cleanly(Duration::from_secs(30));

    let dead = dead_letters(&brokers, &spec);
    let of = |kind: &str| {
        dead.iter()
            .filter(|d| d.error_kind == kind)
            .collect::<Vec<_>>()
    };
    let (u, i) = (of("unknown_schema_id"), of("incompatible_schema"));
    assert_eq!(
        (u.len(), i.len(), dead.len()),
        (unknown, refused, unknown + refused)
    );
    assert!(
        u.iter().all(|d| d.error.contains(&UNKNOWN_ID.to_string())),
        "{:?}",
        u[0]
    );
    assert!(
        i.iter()
            .all(|d| d.error.contains("customer_id")
                && d.error.contains(&incompatible_id.to_string())),
        "{:?}",
        i[0]
    );
    assert!(dead
        .iter()
        .all(|d| d.source_topic == spec.settings.topics.transactions && d.payload.is_some()));
    println!(
        "{unknown} records of unknown id {UNKNOWN_ID} and {refused} of incompatible writer \
         {incompatible_id} dead-lettered with their reasons, e.g. {:?}",
        i[0].error
    );
}
