//! Synthetic records of the sources declared in `[[source]]`, drawn from their reader schemas:
//! the generator knows nothing of a declared channel's meaning, so its values are plausible in
//! type, not in content. They exercise a new channel end to end (decode, features, rules,
//! state, load) before its producers exist.
//!
//! Per field: the event id is unique per customer, the event time is the session's; an enum
//! takes one of its symbols uniformly; a string takes one of three values per customer and
//! field (`<field>-<customer>-<0..3>`), so `distinct_count` and `last` have something to count;
//! an integer is in `0..10_000`, a float or double in `0..1_000`, a boolean is a coin; an optional
//! field is null one time in ten.

use crate::catalog::Declared;
use crate::catalog::FieldType;
use crate::event::Text;
use crate::event::{DeclaredEvent, Value};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// One synthetic record of `source` for `customer` at `time`.
pub(super) fn record(
    rng: &mut ChaCha8Rng,
    source: &Declared,
    customer: &Text,
    event_id: Text,
    time: i64,
) -> DeclaredEvent {
    let values = source
        .fields
        .iter()
        .enumerate()
        .map(|(slot, f)| {
            if slot == source.event_id_slot {
                return Value::Str(event_id.clone());
            }
            if slot == source.event_time_slot {
                return Value::Int(time);
            }
            if f.nullable && rng.random_bool(0.1) {
                return Value::Null;
            }
            match f.ty {
                FieldType::Bool => Value::Bool(rng.random_bool(0.5)),
                FieldType::Int => Value::Int(rng.random_range(0..10_000)),
                FieldType::Num => Value::Double(rng.random_range(0.0..1_000.0)),
                FieldType::Str => Value::Str(compact_str::format_compact!(
                    "{}-{customer}-{}",
                    f.name,
                    rng.random_range(0..3)
                )),
                FieldType::Enum(symbols) => {
                    let symbols = symbols.get();
                    Value::Sym(symbols[rng.random_range(0..symbols.len())])
                }
            }
        })
        .collect();
    DeclaredEvent {
        source: source.id,
        customer_id: customer.clone(),
        event_id,
        event_time: time,
        values,
    }
}
