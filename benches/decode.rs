//! Avro decode throughput on realistic transaction records: which decoder the codec should use.
//!
//! Every variant decodes the same 1,000 `TransactionEvent` records, made by the generator's
//! [`EventFactory`] and encoded once by the project's own [`Codec`]. Before timing, each variant's
//! output is checked against the original events, so all of them do the same work.
//!
//! Group `decode_transaction` (throughput in records/s):
//!
//! - `apache_avro/from_avro_datum+from_value`: `apache_avro::from_avro_datum` into a generic
//!   `Value`, then `apache_avro::from_value` into the struct. The schema is parsed once;
//!   `from_avro_datum` itself resolves the schema's names on every call (deprecated since 0.22).
//! - `apache_avro/reader+from_value`: the same two steps through a `GenericDatumReader` built
//!   once (the replacement apache-avro 0.22 recommends).
//! - `apache_avro/reader.read_deser`: apache-avro 0.22's schema-aware serde path, no `Value`.
//! - `serde_avro_fast/from_datum_slice`: straight from the bytes into the struct.
//! - `codec/decode_confluent`: [`Codec::decode`] on Confluent-framed payloads, which is what the
//!   pipeline runs per record (header check + `serde_avro_fast` + field validation).
//!
//! Group `resolve` (throughput in records/s) decodes the same records through a codec in Schema
//! Registry mode: `writer_eq_reader` (writer id resolved to the reader schema itself: the fast
//! path) and `writer_v2` (written with `tests/fixtures/schemas/transaction_event_v2.avsc`: fields
//! reordered, a new optional field, enum indexes moved; it reads by name, so it is decoded along
//! the plan compiled for its id, straight into the struct, then validated).
//!
//! Group `declared` (records/s) decodes records of a source declared in configuration (the IoT
//! example's `WearableEvent`, made by the generator from its schema) in registry mode:
//! `writer_eq_reader` (the compiled slot plan straight on the bytes) and `writer_v2` (a newer
//! producer schema with fields reordered and one added: transcoded, then decoded).
//!
//! Group `encode` times [`Codec::encode`] of [`NextBestOffer`] records (Confluent framing).
//!
//! Run: `cargo bench --bench decode` (about half a minute: short warm-up and measurement).

use apache_avro::reader::datum::GenericDatumReader;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use nbo_stream::codec::{Codec, Framing};
use nbo_stream::event::{ContactChannel, Event, EventKind, ProductCategory, TransactionEvent};
use nbo_stream::generator::encode_event;
use nbo_stream::generator::personas::EventFactory;
use nbo_stream::output::{FeatureValues, NextBestOffer};
use std::hint::black_box;
use std::time::Duration;

/// Number of transaction records each decode iteration goes through.
const RECORDS: usize = 1_000;
/// Synthetic customers behind those records.
const CUSTOMERS: u32 = 500;
/// Generator seed: the same records on every run.
const SEED: u64 = 42;
/// Simulated time of the first event: 2026-01-01T00:00:00Z.
const START_MS: i64 = 1_767_225_600_000;
/// Schema text of `TransactionEvent`, the same file the codec compiles in.
const TRANSACTION_SCHEMA: &str = include_str!("../avro_schemas/transaction_event.avsc");

/// One transaction as it arrives on the topic, in both framings, plus the event it encodes.
struct Record {
    /// The event the generator made (the expected decode result).
    event: TransactionEvent,
    /// Kafka key: the customer id.
    key: Vec<u8>,
    /// Bare Avro datum (plain framing).
    plain: Vec<u8>,
    /// Magic byte + schema id + Avro datum (Confluent framing).
    framed: Vec<u8>,
}

/// The first [`RECORDS`] transactions of the generator's stream, encoded both ways by `codec`.
fn transaction_records(codec: &Codec) -> Vec<Record> {
    let mut factory = EventFactory::new(CUSTOMERS, SEED, START_MS);
    let mut records = Vec::with_capacity(RECORDS);
    while records.len() < RECORDS {
        let event = factory.next_event();
        let Event::Transaction(txn) = &event else {
            continue;
        };
        let plain = encode_event(codec, &event, Framing::Plain).expect("encode plain");
        let framed = encode_event(codec, &event, Framing::Confluent).expect("encode framed");
        records.push(Record {
            event: txn.clone(),
            key: txn.customer_id.as_bytes().to_vec(),
            plain,
            framed,
        });
    }
    records
}

/// A decoder clock that accepts every record's event time (latest event time plus an hour).
fn decode_clock(records: &[Record]) -> i64 {
    let latest = records.iter().map(|r| r.event.event_time).max();
    latest.unwrap_or(START_MS) + 3_600_000
}

/// Variant 1: `from_avro_datum` (schema parsed once, names resolved per call) + `from_value`.
#[allow(deprecated)] // `from_avro_datum` is deprecated in apache-avro 0.22; it is the API measured.
fn apache_avro_datum_then_value(
    schema: &apache_avro::Schema,
    body: &[u8],
) -> Result<TransactionEvent, apache_avro::Error> {
    let mut reader = body;
    let value = apache_avro::from_avro_datum(schema, &mut reader, None)?;
    apache_avro::from_value::<TransactionEvent>(&value)
}

/// Variant 1b: a `GenericDatumReader` built once, `read_value` into a `Value`, then `from_value`.
fn apache_avro_reader_then_value(
    reader: &GenericDatumReader<'_>,
    body: &[u8],
) -> Result<TransactionEvent, apache_avro::Error> {
    let mut input = body;
    let value = reader.read_value(&mut input)?;
    apache_avro::from_value::<TransactionEvent>(&value)
}

/// Variant 1c: a `GenericDatumReader` built once, schema-aware serde straight into the struct.
fn apache_avro_read_deser(
    reader: &GenericDatumReader<'_>,
    body: &[u8],
) -> Result<TransactionEvent, apache_avro::Error> {
    let mut input = body;
    reader.read_deser::<TransactionEvent>(&mut input)
}

/// Variant 3: the pipeline's decoder, returning the transaction it validated.
fn codec_decode(codec: &Codec, record: &Record, now_ms: i64) -> TransactionEvent {
    match codec.decode(
        EventKind::Transaction,
        Some(&record.key),
        Some(&record.framed),
        now_ms,
    ) {
        Ok(Event::Transaction(txn)) => txn,
        other => panic!("codec decoded a transaction into {other:?}"),
    }
}

/// Applies the group settings shared by every group: short runs, throughput per record.
fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, records: usize) {
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(records as u64));
}

/// Decode group: every variant over the same records, after checking each decodes them exactly.
fn bench_decode(c: &mut Criterion) {
    let codec = Codec::with_defaults().expect("schemas parse");
    let records = transaction_records(&codec);
    let now_ms = decode_clock(&records);
    let avro_schema =
        apache_avro::Schema::parse_str(TRANSACTION_SCHEMA).expect("apache-avro schema");
    let avro_reader = GenericDatumReader::builder(&avro_schema)
        .build()
        .expect("apache-avro reader");
    let fast_schema: serde_avro_fast::Schema =
        TRANSACTION_SCHEMA.parse().expect("serde_avro_fast schema");

    for r in &records {
        let expected = &r.event;
        let from_datum = apache_avro_datum_then_value(&avro_schema, &r.plain).expect("variant 1");
        assert_eq!(&from_datum, expected, "from_avro_datum + from_value");
        let via_reader = apache_avro_reader_then_value(&avro_reader, &r.plain).expect("variant 1b");
        assert_eq!(&via_reader, expected, "reader + from_value");
        let deser = apache_avro_read_deser(&avro_reader, &r.plain).expect("variant 1c");
        assert_eq!(&deser, expected, "read_deser");
        let fast: TransactionEvent =
            serde_avro_fast::from_datum_slice(&r.plain, &fast_schema).expect("variant 2");
        assert_eq!(&fast, expected, "serde_avro_fast");
        assert_eq!(&codec_decode(&codec, r, now_ms), expected, "codec");
    }

    let mut group = c.benchmark_group("decode_transaction");
    configure(&mut group, records.len());
    group.bench_function("apache_avro/from_avro_datum+from_value", |b| {
        b.iter(|| {
            for r in &records {
                black_box(apache_avro_datum_then_value(&avro_schema, black_box(&r.plain)).ok());
            }
        })
    });
    group.bench_function("apache_avro/reader+from_value", |b| {
        b.iter(|| {
            for r in &records {
                black_box(apache_avro_reader_then_value(&avro_reader, black_box(&r.plain)).ok());
            }
        })
    });
    group.bench_function("apache_avro/reader.read_deser", |b| {
        b.iter(|| {
            for r in &records {
                black_box(apache_avro_read_deser(&avro_reader, black_box(&r.plain)).ok());
            }
        })
    });
    group.bench_function("serde_avro_fast/from_datum_slice", |b| {
        b.iter(|| {
            for r in &records {
                let decoded: Result<TransactionEvent, _> =
                    serde_avro_fast::from_datum_slice(black_box(&r.plain), &fast_schema);
                black_box(decoded.ok());
            }
        })
    });
    group.bench_function("codec/decode_confluent", |b| {
        b.iter(|| {
            for r in &records {
                black_box(
                    codec
                        .decode(
                            EventKind::Transaction,
                            Some(&r.key),
                            Some(black_box(&r.framed)),
                            now_ms,
                        )
                        .ok(),
                );
            }
        })
    });
    group.finish();
}

/// Offers shaped like the operator's output: one per record, a few reasons and features each.
fn offers(records: &[Record]) -> Vec<NextBestOffer> {
    records
        .iter()
        .map(|r| {
            let txn = &r.event;
            let features: FeatureValues = [
                ("card_spend_30d_minor", txn.amount_minor as f64 * 12.0),
                ("txn_count_7d", 9.0),
                ("loan_page_views_7d", 3.0),
                (
                    "avg_balance_30d_minor",
                    txn.balance_after_minor.unwrap_or(0) as f64,
                ),
            ]
            .into_iter()
            .map(|(name, value)| (name.to_string(), value))
            .collect();
            NextBestOffer {
                offer_id: format!("offer-cc-heavy-spender-{}", txn.event_id),
                customer_id: txn.customer_id.to_string(),
                offer_code: "CC_CASHBACK_2PCT".into(),
                product_category: ProductCategory::CreditCard,
                channel: ContactChannel::Push,
                score: 0.73,
                rule_id: "cc-heavy-spender".into(),
                rule_version: 3,
                reasons: vec![
                    "card spend in the last 30 days above 1,500 EUR".into(),
                    "no credit card held".into(),
                ],
                features,
                trigger_event_id: txn.event_id.to_string(),
                decided_at: txn.event_time,
                expires_at: txn.event_time + 7 * 86_400_000,
                propensity: Some(0.12),
                explored: false,
            }
        })
        .collect()
}

/// Encode group: [`Codec::encode`] of next-best offers, as the offers sink writes them.
fn bench_encode(c: &mut Criterion) {
    let codec = Codec::with_defaults().expect("schemas parse");
    let offers = offers(&transaction_records(&codec));
    for offer in &offers {
        codec.encode("NextBestOffer", offer).expect("offer encodes");
    }
    let mut group = c.benchmark_group("encode");
    configure(&mut group, offers.len());
    group.bench_function("codec/encode_next_best_offer", |b| {
        b.iter(|| {
            for offer in &offers {
                black_box(codec.encode("NextBestOffer", black_box(offer)).ok());
            }
        })
    });
    group.finish();
}

/// TransactionEvent v2, the writer of the `resolve` group.
const TRANSACTION_V2: &str = include_str!("../tests/fixtures/schemas/transaction_event_v2.avsc");
/// Registry id given to the v2 writer.
const V2_ID: u32 = 101;

/// `plain` (a v1 datum) rewritten as the v2 writer would write it, framed with [`V2_ID`].
#[allow(deprecated)] // apache-avro's one-call datum functions: the reference writer here.
fn as_v2(v1: &apache_avro::Schema, v2: &apache_avro::Schema, plain: &[u8]) -> Vec<u8> {
    let value = apache_avro::from_avro_datum(v1, &mut &plain[..], Some(v2)).expect("v1 → v2");
    let mut out = vec![0];
    out.extend_from_slice(&V2_ID.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(v2, value).expect("v2 encodes"));
    out
}

/// Resolve group: registry-mode decode, writer = reader and writer ≠ reader.
fn bench_resolve(c: &mut Criterion) {
    let options = nbo_stream::codec::CodecOptions {
        registry: true,
        ..Default::default()
    };
    let codec = Codec::new(&options).expect("schemas parse");
    let records = transaction_records(&codec);
    let now_ms = decode_clock(&records);
    let v1 = apache_avro::Schema::parse_str(TRANSACTION_SCHEMA).expect("v1");
    let v2 = apache_avro::Schema::parse_str(TRANSACTION_V2).expect("v2");
    codec.add_writer(EventKind::Transaction, 1, Some(TRANSACTION_SCHEMA));
    codec.add_writer(EventKind::Transaction, V2_ID, Some(TRANSACTION_V2));
    let written: Vec<Vec<u8>> = records.iter().map(|r| as_v2(&v1, &v2, &r.plain)).collect();
    for (r, w) in records.iter().zip(&written) {
        let decoded = codec.decode(EventKind::Transaction, Some(&r.key), Some(w), now_ms);
        assert_eq!(
            decoded.ok(),
            Some(Event::Transaction(r.event.clone())),
            "v2 resolves"
        );
        assert_eq!(
            &codec_decode(&codec, r, now_ms),
            &r.event,
            "v1 in registry mode"
        );
    }
    let mut group = c.benchmark_group("resolve");
    configure(&mut group, records.len());
    group.bench_function("writer_eq_reader", |b| {
        b.iter(|| {
            for r in &records {
                black_box(
                    codec
                        .decode(
                            EventKind::Transaction,
                            Some(&r.key),
                            Some(black_box(&r.framed)),
                            now_ms,
                        )
                        .ok(),
                );
            }
        })
    });
    group.bench_function("writer_v2", |b| {
        b.iter(|| {
            for (r, w) in records.iter().zip(&written) {
                black_box(
                    codec
                        .decode(
                            EventKind::Transaction,
                            Some(&r.key),
                            Some(black_box(w)),
                            now_ms,
                        )
                        .ok(),
                );
            }
        })
    });
    group.finish();
}

/// A newer producer of the IoT example: fields reordered, a firmware version the reader ignores.
const WEARABLE_V2: &str = r#"{"type":"record","name":"WearableEvent","namespace":"bank.nbo.iot","fields":[
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

/// Declared group: a source declared in configuration, writer = reader and writer ≠ reader.
fn bench_declared(c: &mut Criterion) {
    let spec = nbo_stream::catalog::SourceSpec {
        record: "WearableEvent".into(),
        topic: "bank.iot.v1".into(),
        schema: concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/iot/wearable_event.avsc"
        )
        .into(),
        id: 16,
        event_id: "event_id".into(),
        event_time: "event_time".into(),
    };
    let catalog = nbo_stream::catalog::Catalog::declare(&[spec]).expect("the IoT example declares");
    let source = catalog.declared()[0].clone();
    let mut options = nbo_stream::codec::CodecOptions {
        registry: true,
        declared: vec![(source.clone(), Framing::Confluent)],
        ..Default::default()
    };
    options.schema_ids.insert("WearableEvent".into(), 1);
    let codec = Codec::new(&options).expect("schemas parse");
    codec.add_writer(source.kind(), 1, Some(&source.schema_text));
    codec.add_writer(source.kind(), V2_ID, Some(WEARABLE_V2));
    let mut factory =
        EventFactory::new(CUSTOMERS, SEED, START_MS).with_declared(vec![source.clone()]);
    let events: Vec<_> = std::iter::from_fn(|| Some(factory.next_event()))
        .filter_map(|e| match e {
            Event::Declared(d) => Some(d),
            _ => None,
        })
        .take(RECORDS)
        .collect();
    let v2 = apache_avro::Schema::parse_str(WEARABLE_V2).expect("v2");
    let now_ms = events.iter().map(|e| e.event_time).max().unwrap_or(0) + 1;
    let framed: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            codec
                .encode_declared(e, Framing::Confluent)
                .expect("encodes")
        })
        .collect();
    let written: Vec<Vec<u8>> = framed
        .iter()
        .map(|f| as_v2(&source.schema, &v2, &f[5..]))
        .collect();
    for ((e, f), w) in events.iter().zip(&framed).zip(&written) {
        let key = Some(e.customer_id.as_bytes());
        let want = Some(Event::Declared(e.clone()));
        assert_eq!(codec.decode(source.kind(), key, Some(f), now_ms).ok(), want);
        assert_eq!(codec.decode(source.kind(), key, Some(w), now_ms).ok(), want);
    }
    let mut group = c.benchmark_group("declared");
    configure(&mut group, events.len());
    for (name, payloads) in [("writer_eq_reader", &framed), ("writer_v2", &written)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for (e, p) in events.iter().zip(payloads) {
                    let key = Some(e.customer_id.as_bytes());
                    black_box(
                        codec
                            .decode(source.kind(), key, Some(black_box(p)), now_ms)
                            .ok(),
                    );
                }
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_resolve,
    bench_declared,
    bench_encode
);
criterion_main!(benches);
