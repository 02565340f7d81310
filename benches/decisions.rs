//! The decision engine on one core: rules + arbitration + contact policy + consent + control group,
//! with every offer, alert and audit record built, for trigger events of customers whose features
//! are already applied (`Operator::decide`, what `apply` does after the features).
//!
//! - `decisions/30_rules`: the 13 starter rules plus 17 variants of them (other ids, thresholds and
//!   values), 30 in all, compiled from rule documents; 20,000 customers warmed with 200,000
//!   generated events; 2,000 trigger events per iteration, drawn from the same stream. One
//!   decision = one trigger event decided (every rule its type triggers evaluated).
//! - `decisions/starter_rules`: the same with the 13 starter rules.
//!
//! Run: `cargo bench --bench decisions`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nbo_stream::config::OperatorSettings;
use nbo_stream::customer::CustomerState;
use nbo_stream::event::Event;
use nbo_stream::features::spec;
use nbo_stream::generator::personas::EventFactory;
use nbo_stream::operator::{BatchStats, Operator};
use nbo_stream::rules::document::RuleDocument;
use nbo_stream::rules::{compile, load, RuleSet};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// The same allocator as the binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CUSTOMERS: u32 = 20_000;
const WARM: usize = 200_000;
const BATCH: usize = 2_000;
const START: i64 = 1_790_000_000_000;

/// The starter documents plus `extra` variants: each a starter rule with a new id, its numeric
/// thresholds scaled, and (for offers) another value, so arbitration has real choices.
fn documents(extra: usize) -> Vec<RuleDocument> {
    let starter = load::documents(None).expect("starter rules");
    let mut docs = starter.clone();
    for i in 0..extra {
        let mut d = starter[i % starter.len()].clone();
        d.id = format!("{}-v{i}", d.id);
        let scale = 0.6 + 0.1 * (i % 7) as f64;
        d.condition = scale_numbers(&d.condition, scale);
        if let Some(o) = d.offer.as_mut() {
            o.value *= 1.0 + 0.05 * i as f64;
            o.offer_code = format!("{}-V{i}", o.offer_code);
        }
        docs.push(d);
    }
    docs
}

/// Scales every decimal literal (`1500.0`) in a condition.
fn scale_numbers(condition: &str, scale: f64) -> String {
    condition
        .split(' ')
        .map(|w| match w.parse::<f64>() {
            Ok(v) if w.contains('.') => format!("{:.1}", v * scale),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

struct Fixture {
    operator: Operator,
    states: HashMap<String, CustomerState>,
    triggers: Vec<Event>,
}

fn fixture(extra_rules: usize) -> Fixture {
    let features = Arc::new(spec::load(None).expect("starter features"));
    let rules = documents(extra_rules)
        .iter()
        .map(|d| compile(d, &features).expect("rule compiles"))
        .collect::<Vec<_>>();
    let rules = RuleSet::new(1, rules);
    assert_eq!(rules.offers.len() + rules.alerts.len(), 13 + extra_rules);
    let operator = Operator::new(features, rules, &OperatorSettings::default(), 5);
    let mut factory = EventFactory::new(CUSTOMERS, 7, START);
    let mut states: HashMap<String, CustomerState> = HashMap::new();
    let (mut out, mut stats) = (Vec::new(), BatchStats::default());
    for _ in 0..(CUSTOMERS as usize + WARM) {
        let e = factory.next_event();
        let state = states
            .entry(e.customer_id().to_string())
            .or_insert_with(|| {
                let mut s = CustomerState::default();
                operator.align(&mut s);
                s
            });
        operator.apply(state, &e, None, &mut out, &mut stats);
        out.clear();
    }
    let triggers = (0..20 * BATCH).map(|_| factory.next_event()).collect();
    Fixture {
        operator,
        states,
        triggers,
    }
}

fn decide_batch(f: &mut Fixture, next: &mut usize) -> usize {
    let mut out = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        let e = &f.triggers[*next];
        *next = (*next + 1) % f.triggers.len();
        if let Some(state) = f.states.get_mut(e.customer_id()) {
            f.operator.decide(state, e, &mut out);
        }
    }
    out.len()
}

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decisions");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(2))
        .sample_size(30);
    for (name, extra) in [("30_rules", 17), ("starter_rules", 0)] {
        let mut f = fixture(extra);
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| black_box(decide_batch(&mut f, &mut next)))
        });
    }
    group.finish();
}

criterion_group!(benches, decisions);
criterion_main!(benches);
