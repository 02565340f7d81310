//! Decode errors: what went wrong with one record, with a stable code for metrics and dead letters.

/// Why a record could not be decoded into a valid event. Every variant is permanent: the same bytes
/// will fail the same way, so the record goes to the dead-letter topic and the offset advances.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The record had no value.
    #[error("empty payload")]
    EmptyPayload,
    /// Confluent framing expected magic byte 0.
    #[error("bad magic byte {0:#04x}: expected 0x00 (Confluent wire format)")]
    BadMagicByte(u8),
    /// Shorter than the 5-byte Confluent header.
    #[error("truncated header: {0} bytes, need at least 5 for the Confluent wire format")]
    TruncatedHeader(usize),
    /// The schema id is not registered for this topic's record.
    #[error("schema id {id} is not accepted on this topic (expected {expected})")]
    UnknownSchemaId {
        /// Id found in the record.
        id: u32,
        /// Id(s) this topic accepts.
        expected: String,
    },
    /// The Avro body did not match the schema (truncated, bad enum index, invalid UTF-8, ...).
    #[error("avro decode failed: {0}")]
    Avro(String),
    /// Bytes left after the Avro datum: the writer used another schema.
    #[error("{0} trailing bytes after the Avro datum: writer schema differs")]
    TrailingBytes(usize),
    /// Decoded, but a field's value is not acceptable.
    #[error("invalid field `{field}`: {reason}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The Kafka key does not equal the record's customer id (breaks co-partitioning).
    #[error("kafka key does not match customer_id")]
    KeyMismatch,
    /// The record has no Kafka key: its partition says nothing about its customer.
    #[error("record has no kafka key; producers must key every record by customer_id")]
    MissingKey,
}

impl DecodeError {
    /// A short, stable code: the `error_kind` label and dead-letter field.
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::EmptyPayload => "empty_payload",
            DecodeError::BadMagicByte(_) => "bad_magic_byte",
            DecodeError::TruncatedHeader(_) => "truncated_header",
            DecodeError::UnknownSchemaId { .. } => "unknown_schema_id",
            DecodeError::Avro(_) => "avro_decode",
            DecodeError::TrailingBytes(_) => "trailing_bytes",
            DecodeError::InvalidField { .. } => "invalid_field",
            DecodeError::KeyMismatch => "key_mismatch",
            DecodeError::MissingKey => "missing_key",
        }
    }

    /// Every code [`DecodeError::kind`] can return, for pre-registering metric labels.
    pub const KINDS: [&'static str; 9] = [
        "empty_payload",
        "bad_magic_byte",
        "truncated_header",
        "unknown_schema_id",
        "avro_decode",
        "trailing_bytes",
        "invalid_field",
        "key_mismatch",
        "missing_key",
    ];
}
