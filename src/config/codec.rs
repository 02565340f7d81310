//! `[codec]`: framing, static schema ids and the limits every decoded record is checked against.

use super::*;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Wire format of records.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodecSettings {
    /// Framing of input records unless overridden per topic: `confluent` or `plain`.
    pub input_framing: Framing,
    /// Per input topic name, a framing that differs from `input_framing`.
    pub framing_overrides: BTreeMap<String, Framing>,
    /// Framing of the outputs this program writes.
    pub output_framing: Framing,
    /// Schema Registry id of each record name (e.g. `TransactionEvent = 101`); unlisted records
    /// use the ids in `src/codec/schemas.rs`. A record whose id differs is dead-lettered.
    pub schema_ids: BTreeMap<String, u32>,
    /// Largest accepted amount, minor units.
    pub max_amount_minor: i64,
    /// Longest accepted string field, bytes.
    pub max_string_len: usize,
}

impl Default for CodecSettings {
    fn default() -> Self {
        let limits = crate::codec::Validation::default();
        Self {
            input_framing: Framing::Confluent,
            framing_overrides: BTreeMap::new(),
            output_framing: Framing::Confluent,
            schema_ids: BTreeMap::new(),
            max_amount_minor: limits.max_amount_minor,
            max_string_len: limits.max_string_len,
        }
    }
}
