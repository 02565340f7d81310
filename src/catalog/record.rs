//! A record of a declared source, as the operator sees it: the customer, the event id and time,
//! and the reader schema's top-level fields as values in schema order (a feature or rule reads
//! one by its slot, resolved by name when the configuration loads).

use crate::event::{EpochMillis, Text};

/// One value of a declared record's field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A null branch of an optional field.
    Null,
    /// An Avro `boolean`.
    Bool(bool),
    /// An Avro `int` or `long` (timestamps included).
    Int(i64),
    /// An Avro `float` or `double`.
    Double(f64),
    /// An Avro `string`.
    Str(Text),
    /// An Avro enum symbol: an element of the source's symbol table for the field, so filters
    /// compare symbols by address.
    Sym(&'static str),
}

/// A decoded record of a source declared in `[[source]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredEvent {
    /// The source's `id` (see [`crate::catalog::SourceSpec::id`]).
    pub source: u8,
    /// The customer: the record's Kafka key.
    pub customer_id: Text,
    /// The field named by the source's `event_id`.
    pub event_id: Text,
    /// The field named by the source's `event_time`, UTC millis.
    pub event_time: EpochMillis,
    /// Every top-level field of the reader schema, in schema order.
    pub values: Vec<Value>,
}
