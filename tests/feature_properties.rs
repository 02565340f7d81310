//! Property: for random event sequences fed in random order (late and out-of-order events
//! included), every feature value equals a brute-force computation over the raw events, at several
//! evaluation times — for every aggregation.
//!
//! Window semantics (src/features/tiles.rs): the window of length W as of t covers the W/w tiles
//! ending with t's tile. Values are exact for every evaluation at or after the newest event time
//! minus the allowed lateness; that is where rules evaluate, and where this test evaluates.

use nbo_stream::config::OperatorSettings;
use nbo_stream::event::*;
use nbo_stream::features::{spec, Aggregation, FeatureSet};
use nbo_stream::operator::{BatchStats, Operator, SourcePos};
use nbo_stream::rules::RuleSet;
use nbo_stream::state::CustomerState;
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;

const FEATURES: &str = r#"
[[feature]]
name = "count_1h"
source = "TransactionEvent"
aggregation = "count"
window = "1h"

[[feature]]
name = "card_sum_24h"
source = "TransactionEvent"
filter = 'txn_type == "CARD_PAYMENT"'
aggregation = "sum"
field = "amount_minor"
scale = 0.01
window = "24h"

[[feature]]
name = "avg_7d"
source = "TransactionEvent"
aggregation = "avg"
field = "amount_minor"
window = "7d"

[[feature]]
name = "min_24h"
source = "TransactionEvent"
filter = "amount_minor > 100"
aggregation = "min"
field = "amount_minor"
window = "24h"

[[feature]]
name = "max_balance_7d"
source = "TransactionEvent"
filter = "balance_after_minor != null"
aggregation = "max"
field = "balance_after_minor"
window = "7d"

[[feature]]
name = "countries_24h"
source = "TransactionEvent"
aggregation = "distinct_count"
field = "country"
window = "24h"

[[feature]]
name = "last_amount_24h"
source = "TransactionEvent"
aggregation = "last"
field = "amount_minor"
window = "24h"

[[feature]]
name = "last_country_24h"
source = "TransactionEvent"
aggregation = "last"
field = "country"
window = "24h"

[[feature]]
name = "decayed_7d"
source = "TransactionEvent"
aggregation = "decayed_sum"
field = "amount_minor"
window = "7d"
half_life = "12h"

[[feature]]
name = "debit_count_30d"
source = "TransactionEvent"
filter = 'payment_method == "DEBIT_CARD" && country != "FR"'
aggregation = "count"
window = "30d"
"#;

const MIN: i64 = 60_000;
const T0: i64 = 1_790_000_000_000;
const LATENESS: Duration = Duration::from_secs(6 * 3600);
const COUNTRIES: [&str; 4] = ["DE", "FR", "GB", "ES"];

fn event(
    i: usize,
    minutes: i64,
    amount: i64,
    card: bool,
    debit: bool,
    country: usize,
    balance: Option<i64>,
) -> Event {
    Event::Transaction(TransactionEvent {
        event_id: format!("E{i}").into(),
        customer_id: "C1".into(),
        event_time: T0 + minutes * MIN + (i as i64 % 7) * 1000,
        account_id: "A1".into(),
        txn_type: if card {
            TxnType::CardPayment
        } else {
            TxnType::TransferOut
        },
        amount_minor: amount,
        currency: "EUR".into(),
        payment_method: if debit {
            PaymentMethod::DebitCard
        } else {
            PaymentMethod::CreditCard
        },
        merchant_category: None,
        channel: TxnChannel::Pos,
        country: COUNTRIES[country].into(),
        balance_after_minor: balance,
    })
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    // Up to 60 events over ~12 days, in minutes from T0.
    prop::collection::vec(
        (
            0i64..17_280,
            1i64..200_000,
            any::<bool>(),
            any::<bool>(),
            0usize..4,
            prop::option::of(-50_000i64..5_000_000),
        ),
        1..60,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(|(i, (m, a, c, d, k, b))| event(i, m, a, c, d, k, b))
            .collect()
    })
}

/// The value straight from the definition of the window, over every raw event.
fn brute_force(set: &FeatureSet, slot: usize, events: &[Event], at: i64) -> Option<f64> {
    let def = &set.defs()[slot];
    let last_tile = at.div_euclid(def.tile_ms);
    let first_tile = last_tile - def.window_ms / def.tile_ms + 1;
    let inside: Vec<(i64, f64, u32)> = events
        .iter()
        .filter(|e| {
            let tile = e.event_time().div_euclid(def.tile_ms);
            (first_tile..=last_tile).contains(&tile) && def.filter.matches(e)
        })
        .filter_map(|e| def.contribution(e).map(|(v, h)| (e.event_time(), v, h)))
        .collect();
    let values = inside.iter().map(|x| x.1);
    match def.aggregation {
        Aggregation::Count => Some(inside.len() as f64),
        Aggregation::Sum => Some(values.sum::<f64>() + 0.0),
        Aggregation::Avg => (!inside.is_empty()).then(|| values.sum::<f64>() / inside.len() as f64),
        Aggregation::Min => values.reduce(f64::min),
        Aggregation::Max => values.reduce(f64::max),
        Aggregation::DistinctCount => {
            let mut h: Vec<u32> = inside.iter().map(|x| x.2).collect();
            h.sort_unstable();
            h.dedup();
            Some(h.len() as f64)
        }
        Aggregation::Last => inside
            .iter()
            .map(|x| (x.0, x.1))
            .reduce(|a, b| if b > a { b } else { a })
            .map(|x| x.1),
        // Compared as text by `brute_force_text`.
        Aggregation::LastText => None,
        Aggregation::DecayedSum { half_life_ms } => Some(
            inside
                .iter()
                .map(|x| x.1 * (-((at - x.0) as f64) / half_life_ms as f64).exp2())
                .sum::<f64>(),
        ),
    }
}

/// The text of a `last` feature of a text field, straight from the window's definition.
fn brute_force_text<'e>(
    set: &FeatureSet,
    slot: usize,
    events: &'e [Event],
    at: i64,
) -> Option<&'e str> {
    let def = &set.defs()[slot];
    let last_tile = at.div_euclid(def.tile_ms);
    let first_tile = last_tile - def.window_ms / def.tile_ms + 1;
    events
        .iter()
        .filter(|e| {
            let tile = e.event_time().div_euclid(def.tile_ms);
            (first_tile..=last_tile).contains(&tile) && def.filter.matches(e)
        })
        .filter_map(|e| Some((e.event_time(), def.text_contribution(e)?)))
        .reduce(|a, b| if b > a { b } else { a })
        .map(|x| x.1)
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

fn operator(set: Arc<FeatureSet>) -> Operator {
    let settings = OperatorSettings {
        allowed_lateness: LATENESS,
        ..OperatorSettings::default()
    };
    let rules = RuleSet {
        version: 0,
        offers: vec![],
        alerts: vec![],
    };
    Operator::new(set, rules, &settings, 0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn every_feature_equals_brute_force_whatever_the_arrival_order(
        (events, order) in events().prop_flat_map(|e| {
            let n = e.len();
            (Just(e), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        }),
        offsets in prop::collection::vec(0i64..(6 * 60 + 90), 4),
    ) {
        let set = Arc::new(spec::compile(FEATURES, "property").unwrap());
        let op = operator(set.clone());
        let mut state = CustomerState::default();
        op.align(&mut state);
        let mut out = Vec::new();
        let mut stats = BatchStats::default();
        for (offset, &i) in order.iter().enumerate() {
            let pos = SourcePos { kind: 0, partition: 0, offset: offset as i64 };
            op.apply(&mut state, &events[i], Some(pos), &mut out, &mut stats);
            // The worker retires once per customer per batch: at arbitrary points here.
            if offset % 7 == 3 {
                op.retire(&mut state);
            }
        }
        op.retire(&mut state);
        let newest = events.iter().map(Event::event_time).max().unwrap();
        let lateness = LATENESS.as_millis() as i64;
        // Evaluation times from (newest - lateness) to a little past the newest event.
        for offset in offsets {
            let at = newest - lateness + offset * MIN;
            for slot in 0..set.defs().len() {
                if set.defs()[slot].is_text() {
                    let got = op.text_at(&state, slot, at);
                    let want = brute_force_text(&set, slot, &events, at);
                    prop_assert_eq!(got, want, "{} at {}", set.defs()[slot].name, at);
                    continue;
                }
                let got = op.value_at(&state, slot, at);
                let want = brute_force(&set, slot, &events, at);
                prop_assert!(close(got, want), "{} at {at}: operator {got:?}, brute force {want:?}", set.defs()[slot].name);
            }
        }
    }
}
