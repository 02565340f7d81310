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
    /// The writer schema named by the record's id cannot be read as the topic's reader schema
    /// (a reader field without default that the writer lacks, types that do not resolve, a
    /// union branch with no match, or a writer schema that does not parse).
    #[error("writer schema {id} cannot be read as this topic's reader schema: {reason}")]
    IncompatibleSchema {
        /// The writer's schema id.
        id: u32,
        /// Why it does not resolve.
        reason: String,
    },
    /// An enum symbol the reader schema does not have, and its enum has no default.
    #[error("{0}")]
    UnknownEnumSymbol(String),
    /// The record's writer schema was not fetched before decoding: a defect of the caller
    /// (`run` fetches every new id of a batch before decoding it).
    #[error("writer schema {0} was not fetched before decoding")]
    SchemaNotFetched(u32),
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
            DecodeError::IncompatibleSchema { .. } => "incompatible_schema",
            DecodeError::UnknownEnumSymbol(_) => "unknown_enum_symbol",
            DecodeError::SchemaNotFetched(_) => "schema_not_fetched",
            DecodeError::Avro(_) => "avro_decode",
            DecodeError::TrailingBytes(_) => "trailing_bytes",
            DecodeError::InvalidField { .. } => "invalid_field",
            DecodeError::KeyMismatch => "key_mismatch",
            DecodeError::MissingKey => "missing_key",
        }
    }

    /// Every code [`DecodeError::kind`] can return, for pre-registering metric labels.
    pub const KINDS: [&'static str; 12] = [
        "empty_payload",
        "bad_magic_byte",
        "truncated_header",
        "unknown_schema_id",
        "incompatible_schema",
        "unknown_enum_symbol",
        "schema_not_fetched",
        "avro_decode",
        "trailing_bytes",
        "invalid_field",
        "key_mismatch",
        "missing_key",
    ];
}
