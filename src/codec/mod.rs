//! Avro encode/decode with Confluent or plain framing.
//!
//! Every schema is parsed once, when a [`Codec`] is built; per record the decoder only checks the
//! 5-byte Confluent header (or none, for plain Avro), deserializes the datum straight into the domain
//! struct with `serde_avro_fast` (chosen by `benches/decode.rs`; see README "Codec"), and validates
//! the fields a bank's other systems could get wrong.

mod error;
pub mod fetch;
pub mod resolve;
mod typed;
mod writers;

/// The contract's schemas live with the catalog of records; the codec reads them there.
pub use crate::catalog::schemas;

pub use error::DecodeError;
pub(crate) use typed::MAX_SEQ_LEN;
use typed::{typed, typed_prefix};
pub use writers::{WriterOutcome, WriterResolution};

use crate::event::{Event, EventKind};
use serde::Serialize;
use serde_avro_fast::Schema;
use std::collections::HashMap;

/// The buffer an encoded record starts with, bytes (the sink's reused buffer starts at it too).
pub(crate) const ENCODE_CAPACITY: usize = 512;

/// How a topic's values are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// Magic byte 0, 4-byte big-endian schema id, Avro datum (Confluent Schema Registry format).
    #[default]
    Confluent,
    /// The bare Avro datum, written with this project's schema.
    Plain,
}

impl Framing {
    /// The Avro datum of a value framed this way: after the 5-byte Confluent header (magic byte
    /// 0 and schema id), or the whole value; `None` when a Confluent header is missing.
    pub fn datum(self, payload: &[u8]) -> Option<&[u8]> {
        match self {
            Framing::Confluent => payload.get(5..).filter(|_| payload.first() == Some(&0)),
            Framing::Plain => Some(payload),
        }
    }
}

/// Limits that decoded events must respect; anything outside is dead-lettered.
#[derive(Debug, Clone, Copy)]
pub struct Validation {
    /// Largest accepted `amount_minor` (in minor units).
    pub max_amount_minor: i64,
    /// How far past the decoder's clock an event time may be, in milliseconds.
    pub max_future_skew_ms: i64,
    /// Longest accepted string field (bytes).
    pub max_string_len: usize,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            // 10 billion in major units: above any retail transaction, below i64 overflow risk.
            max_amount_minor: 1_000_000_000_000,
            max_future_skew_ms: 5 * 60 * 1000,
            max_string_len: 4096,
        }
    }
}

/// Decoder for one input topic: schema parsed and header expectations resolved up front.
struct TopicDecoder {
    kind: EventKind,
    framing: Framing,
    /// The reader schema's static id (no registry): the one id accepted; none for a declared
    /// source without `codec.schema_ids.<record>`.
    schema_id: Option<u32>,
    /// How a body in the reader schema becomes an event.
    body: Body,
    /// The reader schema, for resolving writer schemas against it.
    reader: apache_avro::Schema,
}

/// How a datum in the reader schema becomes an [`Event`].
enum Body {
    /// A built-in record: `serde_avro_fast` straight into its struct.
    Typed(Schema),
    /// A declared source: its compiled field plan ([`crate::catalog::RecordDecoder`]).
    Declared(std::sync::Arc<crate::catalog::Declared>),
}

/// No decoder at this [`EventKind::index`].
const NO_DECODER: u16 = u16::MAX;

/// Decodes input records and encodes output records. Build once, share by reference.
pub struct Codec {
    decoders: Vec<TopicDecoder>,
    /// Position in `decoders` by [`EventKind::index`] ([`NO_DECODER`] for none).
    by_index: Box<[u16; EventKind::TABLE_LEN]>,
    encoders: HashMap<&'static str, (u32, Schema)>,
    output_framing: Framing,
    validation: Validation,
    /// Writer schemas seen, by topic and registry id (registry mode only).
    writers: writers::Writers,
    /// Whether schema ids name writer schemas in a registry (else only the static id is accepted).
    registry: bool,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("inputs", &self.decoders.len())
            .field("output_framing", &self.output_framing)
            .finish()
    }
}

/// A schema in `avro_schemas/` failed to parse: a build defect, reported at start.
#[derive(Debug, thiserror::Error)]
#[error("schema {record} ({file}) does not parse: {reason}")]
pub struct SchemaError {
    /// Record name.
    pub record: &'static str,
    /// File under avro_schemas/.
    pub file: &'static str,
    /// Parser message.
    pub reason: String,
}

fn parse_schema(entry: &schemas::SchemaEntry) -> Result<Schema, SchemaError> {
    entry.text.parse::<Schema>().map_err(|e| SchemaError {
        record: entry.record,
        file: entry.file,
        reason: e.to_string(),
    })
}

/// How to build a [`Codec`]: framing per input kind, schema ids, validation limits.
#[derive(Debug, Clone)]
pub struct CodecOptions {
    /// Framing of each built-in input kind (index = [`EventKind::index`]).
    pub input_framing: [Framing; crate::event::BUILTIN_KINDS],
    /// Sources declared in configuration, with their topics' framing.
    pub declared: Vec<(std::sync::Arc<crate::catalog::Declared>, Framing)>,
    /// Framing of the outputs this process writes.
    pub output_framing: Framing,
    /// Registry id of each record name; records not listed use their default id.
    pub schema_ids: HashMap<String, u32>,
    /// Field limits.
    pub validation: Validation,
    /// Confluent-framed records name their writer schema by registry id: each new id is
    /// fetched by the caller ([`Codec::missing_writer`], [`Codec::add_writer`]) and resolved to
    /// the reader schema. Off: only the reader schema's static id is accepted.
    pub registry: bool,
}

impl Default for CodecOptions {
    fn default() -> Self {
        Self {
            input_framing: [Framing::Confluent; crate::event::BUILTIN_KINDS],
            declared: Vec::new(),
            output_framing: Framing::Confluent,
            schema_ids: HashMap::new(),
            validation: Validation::default(),
            registry: false,
        }
    }
}

impl Codec {
    /// Parses every schema and prepares the decoders and encoders.
    pub fn new(options: &CodecOptions) -> Result<Self, SchemaError> {
        let id_of = |record: &str, default: u32| -> u32 {
            options.schema_ids.get(record).copied().unwrap_or(default)
        };
        let mut decoders = Vec::with_capacity(EventKind::ALL.len());
        for row in &crate::catalog::builtin::ROWS {
            let (kind, entry) = (row.kind, row.schema);
            let reader = apache_avro::Schema::parse_str(entry.text).map_err(|e| SchemaError {
                record: entry.record,
                file: entry.file,
                reason: e.to_string(),
            })?;
            decoders.push(TopicDecoder {
                kind,
                framing: options.input_framing[kind.index()],
                schema_id: Some(id_of(entry.record, entry.default_id)),
                body: Body::Typed(parse_schema(entry)?),
                reader,
            });
        }
        for (declared, framing) in &options.declared {
            decoders.push(TopicDecoder {
                kind: declared.kind(),
                framing: *framing,
                schema_id: options.schema_ids.get(declared.record).copied(),
                reader: declared.schema.clone(),
                body: Body::Declared(declared.clone()),
            });
        }
        let mut by_index = Box::new([NO_DECODER; EventKind::TABLE_LEN]);
        for (i, d) in decoders.iter().enumerate() {
            by_index[d.kind.index()] = i as u16;
        }
        let mut encoders = HashMap::new();
        for entry in schemas::ALL {
            encoders.insert(
                entry.record,
                (id_of(entry.record, entry.default_id), parse_schema(entry)?),
            );
        }
        Ok(Self {
            decoders,
            by_index,
            encoders,
            output_framing: options.output_framing,
            validation: options.validation,
            writers: writers::Writers::default(),
            registry: options.registry,
        })
    }

    /// A codec with the contract's defaults (Confluent framing, default schema ids).
    pub fn with_defaults() -> Result<Self, SchemaError> {
        Self::new(&CodecOptions::default())
    }

    /// Decodes one input record of `kind`. `key` is the Kafka key, which must equal the customer id
    /// when present; `now_ms` bounds how far in the future the event time may be.
    pub fn decode(
        &self,
        kind: EventKind,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<Event, DecodeError> {
        let decoder = self.decoder(kind)?;
        let payload = payload
            .filter(|p| !p.is_empty())
            .ok_or(DecodeError::EmptyPayload)?;
        let body = match decoder.framing {
            Framing::Plain => payload,
            Framing::Confluent => {
                let (id, body) = confluent_header(payload)?;
                if self.registry {
                    // The writer's schema decides how the body reads; unchanged writers (the
                    // commonest case) read the body as it is.
                    return self.writers.with(kind, id, |writer| match writer {
                        Some(WriterResolution::Identity) => {
                            self.decode_body(decoder, body, key, now_ms)
                        }
                        Some(WriterResolution::Transcode(t)) => {
                            self.transcode_body(decoder, t, id, body, key, now_ms)
                        }
                        Some(WriterResolution::Direct { plan, fallback }) => {
                            // Only a failed decode goes the long way; a record that decodes but
                            // fails validation has the value the transcoder would give it.
                            match typed(decoder.kind, body, plan) {
                                Ok(event) => self.validate(event, key, now_ms),
                                Err(_) => {
                                    self.transcode_body(decoder, fallback, id, body, key, now_ms)
                                }
                            }
                        }
                        Some(WriterResolution::Refused(e))
                        | Some(WriterResolution::Unknown { error: e, .. }) => Err(e.clone()),
                        None => Err(DecodeError::SchemaNotFetched(id)),
                    });
                } else if Some(id) != decoder.schema_id {
                    return Err(DecodeError::UnknownSchemaId {
                        id,
                        expected: decoder.schema_id.map_or_else(
                            || {
                                "a [schema_registry] or codec.schema_ids entry for this record"
                                    .to_string()
                            },
                            |id| id.to_string(),
                        ),
                    });
                } else {
                    body
                }
            }
        };
        self.decode_body(decoder, body, key, now_ms)
    }

    /// Decodes a body in the reader schema, then validates it.
    fn decode_body(
        &self,
        decoder: &TopicDecoder,
        body: &[u8],
        key: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<Event, DecodeError> {
        let schema = match &decoder.body {
            Body::Typed(schema) => schema,
            Body::Declared(source) => {
                let event = declared(source, body, key)?;
                crate::codec::validate::check(&event, key, now_ms, &self.validation)?;
                return Ok(event);
            }
        };
        let event = typed(decoder.kind, body, schema)?;
        self.validate(event, key, now_ms)
    }

    /// Transcodes a body written with writer `id` into the reader schema, then decodes it.
    fn transcode_body(
        &self,
        decoder: &TopicDecoder,
        transcoder: &resolve::Transcoder,
        id: u32,
        body: &[u8],
        key: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<Event, DecodeError> {
        writers::with_scratch(|scratch| {
            transcoder
                .transcode(body, scratch)
                .map_err(|e| writers::decode_error(e, id))?;
            self.decode_body(decoder, scratch, key, now_ms)
        })
    }

    /// The checks every decoded event passes (key, times, sizes).
    #[inline]
    fn validate(
        &self,
        event: Event,
        key: Option<&[u8]>,
        now_ms: i64,
    ) -> Result<Event, DecodeError> {
        crate::codec::validate::check(&event, key, now_ms, &self.validation)?;
        Ok(event)
    }

    /// Encodes an output or input record by its Avro record name, framed as configured for outputs.
    pub fn encode<T: Serialize>(&self, record: &str, value: &T) -> Result<Vec<u8>, EncodeError> {
        self.encode_framed(record, value, self.output_framing)
    }

    /// Encodes an output record as [`Self::encode`] does, into `buf` (cleared first): a caller
    /// that encodes record after record reuses one buffer.
    pub fn encode_into<T: Serialize>(
        &self,
        record: &str,
        value: &T,
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        buf.clear();
        self.encode_framed_into(record, value, self.output_framing, buf)
    }

    /// Encodes a record with an explicit framing (the generator writes inputs this way).
    pub fn encode_framed<T: Serialize>(
        &self,
        record: &str,
        value: &T,
        framing: Framing,
    ) -> Result<Vec<u8>, EncodeError> {
        // An audit or an offer with its features and reasons takes 200–500 bytes: one buffer
        // that size seldom grows (`benches/allocations.rs`, "outputs").
        let mut buf = Vec::with_capacity(ENCODE_CAPACITY);
        self.encode_framed_into(record, value, framing, &mut buf)?;
        Ok(buf)
    }

    /// Appends the framed record to `buf`.
    fn encode_framed_into<T: Serialize>(
        &self,
        record: &str,
        value: &T,
        framing: Framing,
        buf: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let (id, schema) = self
            .encoders
            .get(record)
            .ok_or_else(|| EncodeError(format!("no schema for record {record}")))?;
        if framing == Framing::Confluent {
            buf.push(0);
            buf.extend_from_slice(&id.to_be_bytes());
        }
        let mut config = serde_avro_fast::ser::SerializerConfig::new(schema);
        serde_avro_fast::to_datum(value, buf, &mut config)
            .map(|_| ())
            .map_err(|e| EncodeError(format!("{record}: {e}")))
    }

    /// Encodes a declared source's record in its reader schema, framed as asked: Confluent
    /// framing carries the source's schema id (`codec.schema_ids`, or the id the registry gave
    /// its reader schema).
    pub fn encode_declared(
        &self,
        event: &crate::event::DeclaredEvent,
        framing: Framing,
    ) -> Result<Vec<u8>, EncodeError> {
        let kind = EventKind::Declared(event.source);
        let decoder = self.decoder(kind).map_err(|e| EncodeError(e.to_string()))?;
        let Body::Declared(source) = &decoder.body else {
            return Err(EncodeError(format!(
                "source id {} is not declared",
                event.source
            )));
        };
        let mut buf = Vec::with_capacity(128);
        if framing == Framing::Confluent {
            let id = decoder.schema_id.ok_or_else(|| {
                EncodeError(format!(
                    "{} has no schema id: register its schema (`schemas register`) and run with \
                     [schema_registry], or set codec.schema_ids.{}",
                    source.record, source.record
                ))
            })?;
            buf.push(0);
            buf.extend_from_slice(&id.to_be_bytes());
        }
        source
            .decoder
            .encode(&event.values, &mut buf)
            .map_err(|e| EncodeError(format!("{}: {e}", source.record)))?;
        Ok(buf)
    }

    /// Decodes one plain Avro datum of `kind` from the front of `bytes` (records in an Avro
    /// container file sit back to back) and returns the event with the number of bytes it took.
    /// Fields are not validated: call [`Codec::check_recorded`] next.
    pub fn decode_datum_prefix(
        &self,
        kind: EventKind,
        bytes: &[u8],
    ) -> Result<(Event, usize), DecodeError> {
        let Body::Typed(schema) = &self.decoder(kind)?.body else {
            return Err(DecodeError::Avro(format!(
                "recorded files hold built-in records only; {} is a declared source",
                self.record_name(kind)
            )));
        };
        let (event, rest) = typed_prefix(kind, bytes, schema)?;
        Ok((event, bytes.len() - rest))
    }

    /// Validates a recorded event (read from a file rather than a topic) as [`Codec::decode`]
    /// validates a consumed one. A recorded event has no Kafka key: its customer id stands for it.
    pub fn check_recorded(&self, event: &Event, now_ms: i64) -> Result<(), DecodeError> {
        let key = event.customer_id().as_bytes();
        crate::codec::validate::check(event, Some(key), now_ms, &self.validation)
    }

    /// In registry mode, the writer schema id of a Confluent-framed `payload` of `kind` that has
    /// not been resolved yet: the caller fetches it ([`Codec::add_writer`]) before decoding, so
    /// the registry is asked once per id and never on the per-record path.
    pub fn missing_writer(&self, kind: EventKind, payload: Option<&[u8]>) -> Option<u32> {
        if !self.registry || self.decoder(kind).ok()?.framing != Framing::Confluent {
            return None;
        }
        let (id, _) = confluent_header(payload.filter(|p| !p.is_empty())?).ok()?;
        (!self.writer_known(kind, id)).then_some(id)
    }

    /// Whether writer schema `id` of `kind`'s topic has been resolved (or refused, or found
    /// unknown within the last `UNKNOWN_ID_RETRY`).
    pub fn writer_known(&self, kind: EventKind, id: u32) -> bool {
        !self.writers.needs_fetch(kind, id)
    }

    /// Resolves writer schema `id` of `kind`'s topic against the reader schema and keeps the
    /// result for every later record: `schema` is the registry's schema text, `None` when the
    /// registry does not know the id (its records are dead-lettered as `unknown_schema_id`).
    /// A writer that cannot be resolved is refused once, here: its records are dead-lettered
    /// with the reason.
    pub fn add_writer(&self, kind: EventKind, id: u32, schema: Option<&str>) -> WriterOutcome {
        self.add_writers(&[(kind, id, schema)]).remove(0)
    }

    /// [`Codec::add_writer`] for several writers at once (one update of the shared map).
    pub fn add_writers(&self, writers: &[(EventKind, u32, Option<&str>)]) -> Vec<WriterOutcome> {
        let mut outcomes = Vec::with_capacity(writers.len());
        let mut resolved = Vec::with_capacity(writers.len());
        for &(kind, id, schema) in writers {
            let Ok(decoder) = self.decoder(kind) else {
                continue;
            };
            let typed = matches!(decoder.body, Body::Typed(_));
            let (resolution, outcome) = writers::resolve_writer(&decoder.reader, typed, id, schema);
            resolved.push((kind, id, resolution));
            outcomes.push(outcome);
        }
        self.writers.insert(resolved);
        outcomes
    }

    /// Whether writer `id` of `kind`'s topic decodes directly by name (test-only introspection).
    #[cfg(test)]
    fn writer_is_direct(&self, kind: EventKind, id: u32) -> bool {
        self.writers.with(kind, id, |w| {
            matches!(w, Some(WriterResolution::Direct { .. }))
        })
    }

    /// The framing the decoder expects for `kind` (Confluent for a kind it does not read).
    pub fn input_framing(&self, kind: EventKind) -> Framing {
        self.decoder(kind).map_or(Framing::Confluent, |d| d.framing)
    }

    /// The decoder of `kind`'s topic.
    fn decoder(&self, kind: EventKind) -> Result<&TopicDecoder, DecodeError> {
        let i = self.by_index[kind.index()];
        self.decoders.get(usize::from(i)).ok_or_else(|| {
            DecodeError::Avro(format!(
                "no decoder for {kind:?}: the source is not declared in this configuration"
            ))
        })
    }

    /// The sources declared in the configuration this codec was built for.
    pub fn declared_sources(
        &self,
    ) -> impl Iterator<Item = &std::sync::Arc<crate::catalog::Declared>> {
        self.decoders.iter().filter_map(|d| match &d.body {
            Body::Declared(source) => Some(source),
            Body::Typed(_) => None,
        })
    }

    /// The record name of `kind`, as this codec reads it.
    pub fn record_name(&self, kind: EventKind) -> &'static str {
        match self.decoder(kind).map(|d| &d.body) {
            Ok(Body::Declared(source)) => source.record,
            _ => kind.record_name(),
        }
    }
}

/// An output record could not be encoded: a defect in this program (outputs are built by it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("encode failed: {0}")]
pub struct EncodeError(pub String);

/// The schema id and the body of a Confluent-framed, non-empty payload.
fn confluent_header(payload: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    if payload[0] != 0 {
        return Err(DecodeError::BadMagicByte(payload[0]));
    }
    if payload.len() < 5 {
        return Err(DecodeError::TruncatedHeader(payload.len()));
    }
    let id = u32::from_be_bytes([payload[1], payload[2], payload[3], payload[4]]);
    Ok((id, &payload[5..]))
}

/// A declared source's record: the customer is the Kafka key, the event id and time come from
/// the fields the declaration names.
fn declared(
    source: &crate::catalog::Declared,
    body: &[u8],
    key: Option<&[u8]>,
) -> Result<Event, DecodeError> {
    let values = source.decoder.decode(body).map_err(DecodeError::Avro)?;
    let key = key.ok_or(DecodeError::MissingKey)?;
    let customer_id = std::str::from_utf8(key).map_err(|_| DecodeError::InvalidField {
        field: "customer_id",
        reason: "the Kafka key is not UTF-8".into(),
    })?;
    let event = source
        .event(customer_id, values)
        .map_err(DecodeError::Avro)?;
    Ok(Event::Declared(Box::new(event)))
}

mod validate;

#[cfg(test)]
mod tests;
