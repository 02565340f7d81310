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

mod fixture;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixture::{batch, fixture, BATCH};
use nbo_stream::customer::CustomerState;
use nbo_stream::event::{Event, EventKind};
use nbo_stream::operator::{BatchStats, SourcePos};
use std::hint::black_box;
use std::time::Duration;

/// The same allocator as the binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
