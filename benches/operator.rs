//! The operator's hot path, on one core, without Kafka or Redis:
//!
//! - `operator/features_batch`: a whole operator batch of the feature engine — decode (Confluent
//!   Avro) + feature updates + evaluation of every feature of every changed customer (the values
//!   the flush writes) — over the in-process cache of 100,000 customers, with the 26 starter
//!   features, 2,000 events per batch;
//! - `operator/features_batch_20`: the same with 20 features, the size issue 3's acceptance
//!   names: the first 20 definitions of the starter file. They keep every transaction feature
//!   (transactions are most of the stream), so the 6 left out are the cheap, rarely fed ones;
//! - `operator/decisions_batch`: the same plus the starter rules, arbitration, contact policy and
//!   every decision and audit record built (issue 4's decision engine runs on this path);
//! - `features/update`: one event applied to one customer's features (no rules);
//! - `features/evaluate`: every starter feature's value as of an event time for one customer.
//!
//! Run: `cargo bench --bench operator`. Offsets increase across iterations, so no event is skipped
//! as a replay.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nbo_stream::codec::{Codec, Framing};
use nbo_stream::config::OperatorSettings;
use nbo_stream::customer::CustomerState;
use nbo_stream::event::{Event, EventKind};
use nbo_stream::features::spec;
use nbo_stream::generator::{encode_event, personas::EventFactory};
use nbo_stream::operator::{BatchStats, Operator, SourcePos};
use nbo_stream::rules::{load, RuleSet};
use nbo_stream::state::KeyHasher;
use nbo_stream::worker::{apply_decoded, Cache, Cached, Decoded};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// The same allocator as the binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CUSTOMERS: u32 = 100_000;
const EVENTS: usize = 200_000;
const BATCH: usize = 2_000;
const START: i64 = 1_790_000_000_000;

/// Pre-encoded activity records (after every customer's profile) and a warmed cache.
struct Fixture {
    operator: Operator,
    codec: Codec,
    cache: std::sync::Mutex<Cache>,
    records: Vec<(EventKind, Vec<u8>, Vec<u8>)>,
}

/// The fixture over the first `feature_count` starter features, with or without the starter rules.
fn fixture(with_rules: bool, feature_count: usize) -> Fixture {
    let starter = spec::load(None).expect("starter features");
    let features = Arc::new(nbo_stream::features::FeatureSet::new(
        starter.defs().iter().take(feature_count).cloned().collect(),
    ));
    let rules = if with_rules {
        load::rule_set(None, &features).expect("starter rules")
    } else {
        RuleSet {
            version: 0,
            offers: vec![],
            alerts: vec![],
        }
    };
    let operator = Operator::new(features, rules, &OperatorSettings::default(), 5);
    let codec = Codec::with_defaults().expect("codec");
    let hasher = KeyHasher::new(b"benchmark-secret-0123456789");
    let mut cache = Cache::default();
    let mut factory = EventFactory::new(CUSTOMERS, 7, START);
    let (mut out, mut stats) = (Vec::new(), BatchStats::default());
    for _ in 0..CUSTOMERS {
        let profile = factory.next_event();
        let mut state = CustomerState::default();
        operator.align(&mut state);
        operator.apply(&mut state, &profile, None, &mut out, &mut stats);
        let id = profile.customer_id().to_string();
        let key = hasher.key(&id);
        cache.insert(id.into(), Cached::loaded(key, state, 0));
    }
    let records = (0..EVENTS)
        .map(|_| {
            let e = factory.next_event();
            let payload = encode_event(&codec, &e, Framing::Confluent).expect("encode");
            (e.kind(), e.customer_id().as_bytes().to_vec(), payload)
        })
        .collect();
    Fixture {
        operator,
        codec,
        cache: std::sync::Mutex::new(cache),
        records,
    }
}

/// Runs one batch: decode, apply, then evaluate every feature of each changed customer once.
fn batch(f: &Fixture, next: &mut usize, offset: &mut i64) -> (u64, usize, usize) {
    let now = START + 400 * 24 * 3_600_000;
    let mut decoded = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let (kind, key, payload) = &f.records[*next];
        *next = (*next + 1) % f.records.len();
        *offset += 1;
        if let Ok(event) = f.codec.decode(*kind, Some(key), Some(payload), now) {
            let pos = SourcePos {
                kind: kind.index() as u8,
                partition: 0,
                offset: *offset,
            };
            decoded.push(Decoded { event, pos });
        }
    }
    let (mut decisions, mut stats, mut late) = (
        Vec::new(),
        BatchStats::default(),
        [0u64; EventKind::TABLE_LEN],
    );
    let mut cache = f.cache.lock().expect("cache lock");
    let mut dirtied = Vec::new();
    apply_decoded(
        &f.operator,
        &mut cache,
        &decoded,
        &mut decisions,
        &mut stats,
        &mut late,
        &mut dirtied,
    );
    // As the worker's checkpoint does (`worker::checkpoint`), here after every batch: the most
    // evaluation a checkpoint can cost (a longer interval evaluates a customer once for many
    // batches).
    let mut evaluated = 0;
    for id in &dirtied {
        if let Some(c) = cache.get_mut(id) {
            if c.dirty {
                c.dirty = false;
                evaluated += f.operator.snapshot(&c.state).len();
            }
        }
    }
    (stats.applied, decisions.len(), evaluated)
}

fn operator_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("operator");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2))
        .sample_size(30);
    for (name, with_rules, feature_count) in [
        ("features_batch", false, usize::MAX),
        ("features_batch_20", false, 20),
        ("decisions_batch", true, usize::MAX),
    ] {
        let f = fixture(with_rules, feature_count);
        let (mut next, mut offset) = (0usize, 0i64);
        group.bench_function(name, |b| {
            b.iter(|| black_box(batch(&f, &mut next, &mut offset)))
        });
    }
    group.finish();
}

fn features(c: &mut Criterion) {
    let f = fixture(false, usize::MAX);
    let events: Vec<Event> = f
        .records
        .iter()
        .filter(|r| r.0 == EventKind::Transaction)
        .take(10_000)
        .map(|(k, key, p)| {
            f.codec
                .decode(*k, Some(key), Some(p), i64::MAX / 2)
                .expect("decode")
        })
        .collect();
    let mut state = CustomerState::default();
    f.operator.align(&mut state);
    let (mut out, mut stats) = (Vec::new(), BatchStats::default());
    let mut group = c.benchmark_group("features");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(30);
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    let mut offset = 0i64;
    group.bench_function("update", |b| {
        b.iter(|| {
            let e = &events[i % events.len()];
            i += 1;
            offset += 1;
            f.operator.apply(
                &mut state,
                e,
                Some(SourcePos {
                    kind: 0,
                    partition: 0,
                    offset,
                }),
                &mut out,
                &mut stats,
            );
        })
    });
    let at = state.max_event_time;
    let slots = f.operator.features().defs().len();
    group.throughput(Throughput::Elements(slots as u64));
    group.bench_function("evaluate", |b| {
        b.iter(|| {
            let mut sum = 0.0;
            for slot in 0..slots {
                sum += f
                    .operator
                    .value_at(&state, slot, black_box(at))
                    .unwrap_or(0.0);
            }
            black_box(sum)
        })
    });
    group.finish();
}

criterion_group!(benches, operator_batch, features);
criterion_main!(benches);
