//! The catalog of input records: every record the pipeline reads, by name, kind and topic, with
//! its schema and fields. One [`Catalog`] value is built when the configuration loads and passed
//! in (`Settings::catalog`, then an `Arc` shared by the features, the rules and the codec); there
//! is no process-wide registry, so two configurations load side by side in one process.
//!
//! Its first rows are the twelve built-in records ([`builtin`]): coded in the binary with typed
//! structs and decoders, and fixed meanings (the contact policy reads complaints and negative
//! social posts). The rows that follow are the input channels declared in configuration
//! (`[[source]]`), not in code. A declared source names an Avro record, its topic, its reader
//! schema (`.avsc`) and which of its fields are the event id and the event time; the Kafka key is
//! the customer id. Each declaration is checked when the catalog is built: its reader schema's
//! top-level fields become [`Field`]s that features (`source = "<record>"`) and rules
//! (`triggers`, `event.<field>`) resolve by name, type-checked as for the built-in records.
//! A new channel (IoT devices, card authorisations, call-centre transcripts) is a schema and a
//! block of configuration, no release (`examples/iot/`).
//!
//! The per-customer state tags applied offsets with a source's `id`, so an id must keep its
//! meaning for as long as state written with it lives.
//!
//! One more row is always there, though no topic carries it: `InboundRequest` ([`inbound`]), a
//! channel's request to `nbo-stream api`, which rules name as a trigger to answer inbound
//! requests and whose fields (the channel, the placement) their conditions read.
//!
//! Names a declared source's rows hold (its record name, field names and enum symbols) live for
//! the rest of the process once its catalog is built: enum symbols are compared by address on
//! the hot path, and a process builds its catalog once (tests, a few times).

pub mod builtin;
pub mod decode;
pub mod field;
pub mod inbound;
pub mod json;
pub mod schemas;

use crate::event::EventKind;
use apache_avro::Schema;
pub use field::{Accessor, Field, FieldType};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;

pub use crate::event::{DeclaredEvent, Value};
pub use decode::RecordDecoder;

/// The smallest `id` a declared source may take (below it sit the built-in records' tags).
pub const MIN_ID: u8 = EventKind::MIN_DECLARED;

/// One `[[source]]` block.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// The Avro record's name, as in its schema: what features and rules name as their source.
    pub record: String,
    /// The Kafka topic the records arrive on, keyed by customer id.
    pub topic: String,
    /// The reader schema, a `.avsc` file (relative to the working directory). Writers may use
    /// any schema that resolves to it (see the README's "Schema evolution").
    pub schema: PathBuf,
    /// A number in 16..=255 naming this source in each customer's stored state (the offsets it
    /// has applied). Choose it once and never give it to another source while state lives.
    pub id: u8,
    /// The field holding a stable id of the event (a string); it becomes offers' and alerts'
    /// `trigger_event_id`.
    #[serde(default = "default_event_id")]
    pub event_id: String,
    /// The field holding the event time (a `long`, UTC milliseconds: `timestamp-millis`).
    #[serde(default = "default_event_time")]
    pub event_time: String,
}

/// `event_id`, as in every built-in activity record.
fn default_event_id() -> String {
    "event_id".into()
}

/// `event_time`, as in every built-in activity record.
fn default_event_time() -> String {
    "event_time".into()
}

/// A declared source: its declaration, compiled.
#[derive(Debug)]
pub struct Declared {
    /// The source's id (see [`SourceSpec::id`]).
    pub id: u8,
    /// Record name.
    pub record: &'static str,
    /// The record's full name (with the schema's namespace): its `type` in recorded JSON files.
    pub full_name: &'static str,
    /// Topic named in the declaration.
    pub topic: &'static str,
    /// The reader schema, as read from the file.
    pub schema_text: String,
    /// The reader schema, parsed.
    pub schema: Schema,
    /// Its top-level fields in schema order; a field's accessor reads its slot.
    pub fields: &'static [Field],
    /// Slot of the event-id field.
    pub event_id_slot: usize,
    /// Slot of the event-time field.
    pub event_time_slot: usize,
    /// Decodes a datum written in the reader schema.
    pub decoder: RecordDecoder,
}

impl Declared {
    /// The event kind of this source's records.
    pub fn kind(&self) -> EventKind {
        EventKind::Declared(self.id)
    }

    /// Its row in the catalog.
    pub fn row(&self) -> Row {
        Row {
            kind: self.kind(),
            record: self.record,
            topic: self.topic,
            fields: self.fields,
        }
    }
}

/// Why a `[[source]]` block was refused.
#[derive(Debug, thiserror::Error)]
#[error("source {record:?}: {reason}")]
pub struct SourceError {
    /// The declaration's record name.
    pub record: String,
    /// What to change.
    pub reason: String,
}

/// One process's input records: the built-in rows, then the sources its configuration declares.
/// Cheap to clone (the rows are shared).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    declared: Vec<Arc<Declared>>,
}

/// A record's row as features, rules and the codec read it: built in or declared alike.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The record's kind.
    pub kind: EventKind,
    /// The Avro record name.
    pub record: &'static str,
    /// The topic it arrives on: the contract's default for a built-in record (`[topics]` may name
    /// another), the declared topic for a declared source.
    pub topic: &'static str,
    /// Its top-level fields in schema order.
    pub fields: &'static [Field],
}

impl Row {
    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field names, in schema order (for messages that list them).
    pub fn field_names(&self) -> Vec<&'static str> {
        self.fields.iter().map(|f| f.name).collect()
    }
}

impl Catalog {
    /// The built-in records alone (no `[[source]]`).
    pub fn builtin() -> Arc<Catalog> {
        Arc::new(Catalog::default())
    }

    /// Checks every declaration and builds the catalog, refusing the first bad one.
    pub fn declare(specs: &[SourceSpec]) -> Result<Catalog, SourceError> {
        let mut declared: Vec<Arc<Declared>> = Vec::with_capacity(specs.len());
        for spec in specs {
            let fail = |reason: String| SourceError {
                record: spec.record.clone(),
                reason,
            };
            if let Some(known) = declared
                .iter()
                .find(|d| d.id == spec.id || d.record == spec.record)
            {
                return Err(fail(format!(
                    "id {} or record name is already taken by {:?} (id {}); each source needs its own",
                    spec.id, known.record, known.id
                )));
            }
            if let Some(twin) = declared.iter().find(|d| d.topic == spec.topic) {
                return Err(fail(format!(
                    "topic {:?} is declared twice (also by {:?})",
                    spec.topic, twin.record
                )));
            }
            let text = std::fs::read_to_string(&spec.schema).map_err(|e| {
                fail(format!(
                    "schema {}: {e} (paths are relative to the working directory)",
                    spec.schema.display()
                ))
            })?;
            check(spec).map_err(fail)?;
            declared.push(Arc::new(compile(spec, text).map_err(fail)?));
        }
        Ok(Catalog { declared })
    }

    /// The declared sources, in declaration order.
    pub fn declared(&self) -> &[Arc<Declared>] {
        &self.declared
    }

    /// The declared source with `id`.
    pub fn source(&self, id: u8) -> Option<&Arc<Declared>> {
        self.declared.iter().find(|d| d.id == id)
    }

    /// Every kind: the built-ins in [`EventKind::ALL`] order, then the declared sources.
    pub fn kinds(&self) -> impl Iterator<Item = EventKind> + '_ {
        EventKind::ALL
            .into_iter()
            .chain(self.declared.iter().map(|d| d.kind()))
    }

    /// The row of `kind` (none for a source this catalog does not declare).
    pub fn row(&self, kind: EventKind) -> Option<Row> {
        match kind {
            EventKind::Declared(EventKind::INBOUND) => Some(inbound::declared().row()),
            EventKind::Declared(id) => self.source(id).map(|d| d.row()),
            _ => builtin::row_of(kind).map(|b| Row {
                kind,
                record: b.record(),
                topic: b.topic,
                fields: b.fields,
            }),
        }
    }

    /// The kind whose record is named `record`, built in or declared, or the inbound request.
    pub fn kind_of(&self, record: &str) -> Option<EventKind> {
        if record == inbound::RECORD {
            return Some(EventKind::Declared(EventKind::INBOUND));
        }
        self.kinds().find(|k| self.record_name(*k) == record)
    }

    /// The Avro record name of `kind` (`"(undeclared)"` for a source this catalog lacks).
    pub fn record_name(&self, kind: EventKind) -> &'static str {
        self.row(kind).map_or("(undeclared)", |r| r.record)
    }

    /// The topic of `kind` (see [`Row::topic`]).
    pub fn topic(&self, kind: EventKind) -> &'static str {
        self.row(kind).map_or("(undeclared)", |r| r.topic)
    }

    /// The fields of `kind` (none for a source this catalog lacks).
    pub fn fields(&self, kind: EventKind) -> &'static [Field] {
        self.row(kind).map_or(&[], |r| r.fields)
    }

    /// Every record name a feature or rule may name: the built-ins, then declared sources.
    pub fn record_names(&self) -> Vec<&'static str> {
        self.kinds().map(|k| self.record_name(k)).collect()
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// Checks the declaration against its schema and builds the field table and the decoder.
/// What a declaration may not be: an id or record name of the built-in rows, or no topic.
fn check(spec: &SourceSpec) -> Result<(), String> {
    if spec.id < MIN_ID {
        return Err(format!("id {} is reserved; use {MIN_ID}..=255", spec.id));
    }
    if builtin::ROWS.iter().any(|b| b.record() == spec.record) || spec.record == inbound::RECORD {
        return Err("is a built-in record; declare a new record name".into());
    }
    if spec.topic.trim().is_empty() {
        return Err("topic must not be empty".into());
    }
    Ok(())
}

/// A source's row from its declaration and its reader schema's text.
fn compile(spec: &SourceSpec, text: String) -> Result<Declared, String> {
    let schema = Schema::parse_str(&text)
        .map_err(|e| format!("schema {} does not parse: {e}", spec.schema.display()))?;
    let Schema::Record(record) = &schema else {
        return Err(format!("schema {} is not a record", spec.schema.display()));
    };
    if record.name.name() != spec.record {
        return Err(format!(
            "schema {} names its record {:?}; the declaration must use the same name",
            spec.schema.display(),
            record.name.name()
        ));
    }
    let decoder = RecordDecoder::compile(&schema)?;
    let fields: Vec<Field> = decoder
        .fields()
        .iter()
        .enumerate()
        .map(|(slot, f)| Field {
            name: leak(&f.name),
            ty: f.ty,
            nullable: f.nullable,
            get: Accessor::Slot(slot as u16),
        })
        .collect();
    let slot_of = |name: &str, role: &str, want: fn(FieldType) -> bool, what: &str| {
        let slot = fields
            .iter()
            .position(|f| f.name == name)
            .ok_or_else(|| format!("{role} field {name:?} is not in the schema"))?;
        let f = &fields[slot];
        if f.nullable || !want(f.ty) {
            return Err(format!("{role} field {name:?} must be a non-null {what}"));
        }
        Ok(slot)
    };
    let event_id_slot = slot_of(
        &spec.event_id,
        "event_id",
        |t| matches!(t, FieldType::Str),
        "string",
    )?;
    let event_time_slot = slot_of(
        &spec.event_time,
        "event_time",
        |t| matches!(t, FieldType::Int),
        "long (timestamp-millis)",
    )?;
    Ok(Declared {
        id: spec.id,
        record: leak(&spec.record),
        full_name: leak(&record.name.fullname(None)),
        topic: leak(&spec.topic),
        schema_text: text,
        schema,
        fields: Box::leak(fields.into_boxed_slice()),
        event_id_slot,
        event_time_slot,
        decoder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"CallTranscript","fields":[
        {"name":"call_id","type":"string"},
        {"name":"started_at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"topic","type":{"type":"enum","name":"CallTopic","symbols":["LOAN","CARD","OTHER"]}},
        {"name":"minutes","type":"double"}
    ]}"#;

    fn spec(dir: &tempfile::TempDir, record: &str, id: u8, text: &str) -> SourceSpec {
        let schema = dir.path().join(format!("{record}-{id}.avsc"));
        std::fs::write(&schema, text).unwrap();
        SourceSpec {
            record: record.into(),
            topic: format!("bank.{record}.{id}"),
            schema,
            id,
            event_id: "call_id".into(),
            event_time: "started_at".into(),
        }
    }

    fn one(s: &SourceSpec) -> Result<Catalog, SourceError> {
        Catalog::declare(std::slice::from_ref(s))
    }

    #[test]
    fn a_declaration_becomes_a_row_found_by_name_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(&dir, "CallTranscript", 200, SCHEMA);
        let catalog = one(&s).unwrap();
        let kind = EventKind::Declared(200);
        assert_eq!(catalog.kind_of("CallTranscript"), Some(kind));
        assert_eq!(
            catalog.kind_of("TransactionEvent"),
            Some(EventKind::Transaction)
        );
        assert_eq!(catalog.record_name(kind), "CallTranscript");
        assert_eq!(catalog.topic(kind), "bank.CallTranscript.200");
        assert_eq!(EventKind::from_index(200), Some(kind));
        let names = catalog.row(kind).unwrap().field_names();
        assert_eq!(names, ["call_id", "started_at", "topic", "minutes"]);
        assert_eq!(catalog.record_names().len(), EventKind::ALL.len() + 1);
        let plain = Catalog::builtin();
        assert_eq!(
            plain.kind_of("CallTranscript"),
            None,
            "no global: another catalog lacks it"
        );
        assert!(plain.fields(kind).is_empty());
        let other = spec(
            &dir,
            "Other",
            200,
            &SCHEMA.replace("CallTranscript", "Other"),
        );
        let err = Catalog::declare(&[s.clone(), other])
            .unwrap_err()
            .to_string();
        assert!(err.contains("already taken by \"CallTranscript\""), "{err}");
        let again = one(&spec(
            &dir,
            "Other",
            200,
            &SCHEMA.replace("CallTranscript", "Other"),
        ));
        assert_eq!(
            again.unwrap().record_name(kind),
            "Other",
            "the same id means another record in another configuration"
        );
    }

    #[test]
    fn bad_declarations_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let refuse = |s: SourceSpec| one(&s).unwrap_err().to_string();
        let text = SCHEMA.replace("CallTranscript", "Refused");
        assert!(refuse(spec(&dir, "Refused", 3, &text)).contains("reserved"));
        let wrong_name = refuse(spec(&dir, "Refusd", 201, &text));
        assert!(
            wrong_name.contains("names its record \"Refused\""),
            "{wrong_name}"
        );
        let mut s = spec(&dir, "Refused", 202, &text);
        s.event_time = "minutes".into();
        assert!(refuse(s).contains("must be a non-null long"));
        let mut s = spec(&dir, "Refused", 203, &text);
        s.event_id = "nope".into();
        assert!(refuse(s).contains("\"nope\" is not in the schema"));
        let builtin = SCHEMA.replace("CallTranscript", "TransactionEvent");
        assert!(refuse(spec(&dir, "TransactionEvent", 204, &builtin)).contains("built-in"));
        let mut s = spec(&dir, "Refused", 205, &text);
        s.schema = dir.path().join("missing.avsc");
        assert!(refuse(s).contains("missing.avsc"));
        let specs = [
            spec(
                &dir,
                "TwinA",
                206,
                &SCHEMA.replace("CallTranscript", "TwinA"),
            ),
            {
                let mut b = spec(
                    &dir,
                    "TwinB",
                    207,
                    &SCHEMA.replace("CallTranscript", "TwinB"),
                );
                b.topic = "bank.TwinA.206".into();
                b
            },
        ];
        let twice = Catalog::declare(&specs).unwrap_err().to_string();
        assert!(twice.contains("declared twice"), "{twice}");
    }
}
