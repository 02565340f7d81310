//! The source catalog: input channels declared in configuration (`[[source]]`), not in code.
//!
//! A declared source names an Avro record, its topic, its reader schema (`.avsc`) and which of
//! its fields are the event id and the event time; the Kafka key is the customer id. When the
//! configuration loads, each declaration is checked and registered here: its reader schema's
//! top-level fields become [`Field`]s that features (`source = "<record>"`) and rules
//! (`triggers`, `event.<field>`) resolve by name, type-checked as for the built-in records.
//! A new channel (IoT devices, card authorisations, call-centre transcripts) is a schema and a
//! block of configuration, no release (`examples/iot/`).
//!
//! The catalog is process-wide and only grows: a process serves one configuration, and the
//! per-customer state tags applied offsets with the source's `id`, so an id must keep its
//! meaning for as long as state written with it lives. Registering the same declaration twice is
//! a no-op; a different declaration under a taken id or record name is refused.
//!
//! The built-in records (the six activity channels, `CustomerProfile`, `OfferResponse`,
//! `ErasureRequest`) keep their typed decoders and their fixed meanings (the contact policy reads
//! complaints and negative social posts); they are not in this catalog.

pub mod decode;
pub mod json;
pub mod record;

use crate::event::EventKind;
use crate::features::fields::{Accessor, Field, FieldType};
use apache_avro::Schema;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::RwLock;

pub use decode::RecordDecoder;
pub use record::{DeclaredEvent, Value};

/// The smallest `id` a declared source may take (below it sit the built-in records' tags).
pub const MIN_ID: u8 = 16;

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

/// A registered source: its declaration, compiled.
#[derive(Debug)]
pub struct Declared {
    /// The source's id (see [`SourceSpec::id`]).
    pub id: u8,
    /// Record name.
    pub record: &'static str,
    /// The record's full name (with the schema's namespace): its `type` in recorded JSON files.
    pub full_name: &'static str,
    /// Topic named in the declaration that registered it.
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

static CATALOG: RwLock<Vec<&'static Declared>> = RwLock::new(Vec::new());

/// Every registered source.
pub fn all() -> Vec<&'static Declared> {
    CATALOG.read().map(|c| c.clone()).unwrap_or_default()
}

/// The source registered under `id`.
pub fn get(id: u8) -> Option<&'static Declared> {
    CATALOG.read().ok()?.iter().copied().find(|d| d.id == id)
}

/// The source whose record is named `record`.
pub fn by_record(record: &str) -> Option<&'static Declared> {
    CATALOG
        .read()
        .ok()?
        .iter()
        .copied()
        .find(|d| d.record == record)
}

/// Checks a declaration and registers it (once per process; see the module docs).
pub fn register(spec: &SourceSpec) -> Result<&'static Declared, SourceError> {
    let fail = |reason: String| SourceError {
        record: spec.record.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&spec.schema).map_err(|e| {
        fail(format!(
            "schema {}: {e} (paths are relative to the working directory)",
            spec.schema.display()
        ))
    })?;
    let mut catalog = CATALOG
        .write()
        .map_err(|_| fail("the source catalog is unusable after a panic".into()))?;
    if let Some(known) = catalog
        .iter()
        .find(|d| d.id == spec.id || d.record == spec.record)
    {
        if known.id == spec.id
            && known.record == spec.record
            && known.schema_text == text
            && known.fields[known.event_id_slot].name == spec.event_id
            && known.fields[known.event_time_slot].name == spec.event_time
        {
            return Ok(known);
        }
        return Err(fail(format!(
            "id {} or record name is already taken by {:?} (id {}); each source needs its own",
            spec.id, known.record, known.id
        )));
    }
    let declared = compile(spec, text).map_err(fail)?;
    let declared: &'static Declared = Box::leak(Box::new(declared));
    catalog.push(declared);
    Ok(declared)
}

/// Registers every declaration of a configuration, refusing the first bad one.
pub fn register_all(specs: &[SourceSpec]) -> Result<Vec<&'static Declared>, SourceError> {
    let mut seen_topics = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        if !seen_topics.insert(spec.topic.as_str()) {
            return Err(SourceError {
                record: spec.record.clone(),
                reason: format!("topic {:?} is declared twice", spec.topic),
            });
        }
        out.push(register(spec)?);
    }
    Ok(out)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// Checks the declaration against its schema and builds the field table and the decoder.
fn compile(spec: &SourceSpec, text: String) -> Result<Declared, String> {
    if spec.id < MIN_ID {
        return Err(format!("id {} is reserved; use {MIN_ID}..=255", spec.id));
    }
    if EventKind::ALL
        .iter()
        .any(|k| k.record_name() == spec.record)
    {
        return Err("is a built-in record; declare a new record name".into());
    }
    if spec.topic.trim().is_empty() {
        return Err("topic must not be empty".into());
    }
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

    #[test]
    fn a_declaration_registers_once_and_resolves_by_name_and_id() {
        let dir = tempfile::tempdir().unwrap();
        let s = spec(&dir, "CallTranscript", 200, SCHEMA);
        let d = register(&s).unwrap();
        assert_eq!(d.kind(), EventKind::Declared(200));
        assert_eq!(EventKind::by_record_name("CallTranscript"), Some(d.kind()));
        assert_eq!(EventKind::Declared(200).record_name(), "CallTranscript");
        assert_eq!(EventKind::from_index(200), Some(d.kind()));
        let names: Vec<_> = d.fields.iter().map(|f| f.name).collect();
        assert_eq!(names, ["call_id", "started_at", "topic", "minutes"]);
        assert!(
            std::ptr::eq(register(&s).unwrap(), d),
            "same declaration, same entry"
        );
        let other = spec(
            &dir,
            "Other",
            200,
            &SCHEMA.replace("CallTranscript", "Other"),
        );
        let err = register(&other).unwrap_err().to_string();
        assert!(err.contains("already taken by \"CallTranscript\""), "{err}");
    }

    #[test]
    fn bad_declarations_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let refuse = |s: SourceSpec| register(&s).unwrap_err().to_string();
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
        let twice = register_all(&specs).unwrap_err().to_string();
        assert!(twice.contains("declared twice"), "{twice}");
    }
}
