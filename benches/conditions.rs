//! One rule condition evaluated per event, two ways:
//!
//! - `conditions/compiled`: [`Condition::eval`], the typed tree compiled once (the hot path);
//! - `conditions/cel_interpreter`: the `cel` crate's interpreter on the same program, with the
//!   `event`, `features` and `profile` maps already built (so the figure flatters it: a real call
//!   would also build them per event).
//!
//! The condition is the starter debit-card offer's:
//! `features.debit_card_spend_30d >= 1500.0 && features.credit_card_txn_count_30d == 0.0 &&
//! event.payment_method == 'DEBIT_CARD'`.
//!
//! Run: `cargo bench --bench conditions`.

use cel::{Context, Program, Value};
use criterion::{criterion_group, criterion_main, Criterion};
use nbo_stream::event::*;
use nbo_stream::features::spec;
use nbo_stream::rules::condition::Condition;
use std::collections::HashMap;
use std::hint::black_box;

/// The same allocator as the binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SOURCE: &str = "features.debit_card_spend_30d >= 1500.0 && \
                      features.credit_card_txn_count_30d == 0.0 && \
                      event.payment_method == 'DEBIT_CARD'";

fn event() -> Event {
    Event::Transaction(TransactionEvent {
        event_id: "evt-000001".into(),
        customer_id: "cust-000001".into(),
        event_time: 1_790_000_000_000,
        account_id: "acc-000001".into(),
        txn_type: TxnType::CardPayment,
        amount_minor: 12_345,
        currency: "EUR".into(),
        payment_method: PaymentMethod::DebitCard,
        merchant_category: Some("grocery".into()),
        channel: TxnChannel::Pos,
        country: "DE".into(),
        balance_after_minor: Some(250_000),
    })
}

fn bench(c: &mut Criterion) {
    let features = spec::load(None).expect("starter features");
    let condition =
        Condition::compile(SOURCE, &[EventKind::Transaction], &features).expect("compiles");
    let event = event();
    let mut values = vec![0.0; features.defs().len()];
    values[features.slot("debit_card_spend_30d").expect("feature")] = 1_600.0;

    let mut group = c.benchmark_group("conditions");
    group.bench_function("compiled", |b| {
        b.iter(|| {
            let mut feature = |slot: usize| values.get(slot).copied();
            black_box(condition.eval(black_box(&event), None, &mut feature))
        })
    });

    let program = Program::compile(SOURCE).expect("parses");
    let mut ctx = Context::default();
    ctx.add_variable_from_value(
        "event",
        HashMap::from([
            ("payment_method", Value::from("DEBIT_CARD")),
            ("amount_minor", Value::Int(12_345)),
            ("country", Value::from("DE")),
        ]),
    );
    let feature_map: HashMap<String, Value> = features
        .defs()
        .iter()
        .zip(&values)
        .map(|(d, v)| (d.name.to_string(), Value::Float(*v)))
        .collect();
    ctx.add_variable_from_value("features", feature_map);
    ctx.add_variable_from_value("profile", HashMap::<String, Value>::new());
    assert_eq!(program.execute(&ctx), Ok(Value::Bool(true)));
    group.bench_function("cel_interpreter", |b| {
        b.iter(|| black_box(program.execute(black_box(&ctx))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
