//! Whether a writer schema can be decoded straight into the reader's typed struct, skipping the
//! transcoding step.
//!
//! Serde's derived structs and enums take record fields *by name* and enum symbols *by name*.
//! A decoder that reads the writer's bytes and hands serde the names therefore already does much
//! of Avro's resolution: reordered fields land in their places, writer fields the struct lacks
//! are skipped, enum symbols match by name whatever their index, and an int is read as a long
//! ([`super::plan`] is that decoder). What it cannot do is fill a reader field from its default
//! (serde would leave an `Option` at `None` silently, or fail), match by alias, or apply the
//! promotions and union re-mappings whose values serde would see differently. [`by_name`] says
//! yes only when none of those is needed, so the direct decode gives exactly the value the
//! transcoder would.
//!
//! What depends on the data stays with the transcoder: a record the direct decode fails on (an
//! enum symbol the reader lacks, which the reader's enum default may resolve; or malformed bytes)
//! is decoded again through the transcoder, whose result or error is the authoritative one.

use super::{deref, Names};
use apache_avro::schema::ResolvedSchema;
use apache_avro::Schema;

/// Deepest nesting checked; deeper schemas are left to the transcoder.
const MAX_DEPTH: usize = 32;

/// Whether records written with `writer` decode by name into the struct of `reader` with the
/// values Avro's resolution gives (see the module docs). `false` when in doubt.
pub fn by_name(writer: &Schema, reader: &Schema) -> bool {
    let (Ok(w), Ok(r)) = (ResolvedSchema::new(writer), ResolvedSchema::new(reader)) else {
        return false;
    };
    let names = Names {
        writer: w.get_names(),
        reader: r.get_names(),
    };
    names.same_by_name(writer, reader, 0)
}

impl<'a> Names<'_, 'a> {
    fn same_by_name(&self, writer: &'a Schema, reader: &'a Schema, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let (Some(w), Some(r)) = (deref(writer, self.writer), deref(reader, self.reader)) else {
            return false;
        };
        match (w, r) {
            (Schema::Record(wr), Schema::Record(rr)) => rr.fields.iter().all(|rf| {
                // Every reader field by its own name (no default, no alias); writer fields
                // the reader lacks are skipped by the decoder, in any order.
                wr.lookup.get(&rf.name).is_some_and(|&i| {
                    self.same_by_name(&wr.fields[i].schema, &rf.schema, depth + 1)
                })
            }),
            // Symbols are handed over by name; one the struct lacks fails the record, which the
            // transcoder then reads (the reader enum's default) or refuses.
            (Schema::Enum(_), Schema::Enum(_)) => true,
            (Schema::Array(wa), Schema::Array(ra)) => {
                self.same_by_name(&wa.items, &ra.items, depth + 1)
            }
            (Schema::Map(wm), Schema::Map(rm)) => {
                self.same_by_name(&wm.types, &rm.types, depth + 1)
            }
            // The same branches in the same order: the branch index means the same on both sides.
            (Schema::Union(wu), Schema::Union(ru)) => {
                wu.variants().len() == ru.variants().len()
                    && wu
                        .variants()
                        .iter()
                        .zip(ru.variants())
                        .all(|(wb, rb)| self.same_by_name(wb, rb, depth + 1))
            }
            (Schema::Fixed(wf), Schema::Fixed(rf)) => wf.size == rf.size,
            // An int's varint is read as a long alike.
            (Schema::Int, Schema::Long) => true,
            // Everything else (primitives and logical types) only as itself: promotions and
            // string↔bytes are left to the transcoder.
            (Schema::Null, Schema::Null)
            | (Schema::Boolean, Schema::Boolean)
            | (Schema::Int, Schema::Int)
            | (Schema::Long, Schema::Long)
            | (Schema::Float, Schema::Float)
            | (Schema::Double, Schema::Double)
            | (Schema::Bytes, Schema::Bytes)
            | (Schema::String, Schema::String)
            | (Schema::Date, Schema::Date)
            | (Schema::TimeMillis, Schema::TimeMillis)
            | (Schema::TimeMicros, Schema::TimeMicros)
            | (Schema::TimestampMillis, Schema::TimestampMillis)
            | (Schema::TimestampMicros, Schema::TimestampMicros)
            | (Schema::Uuid(_), Schema::Uuid(_)) => w == r,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::by_name;
    use apache_avro::Schema;

    fn schema(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"R","fields":[{fields}]}}"#
        ))
        .expect("schema")
    }

    #[test]
    fn reordered_added_fields_and_moved_symbols_read_by_name() {
        let reader = schema(
            r#"{"name":"a","type":"string"},{"name":"n","type":"long"},
               {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
               {"name":"o","type":["null","string"],"default":null}"#,
        );
        let writer = schema(
            r#"{"name":"extra","type":["null","double"],"default":null},
               {"name":"e","type":{"type":"enum","name":"E","symbols":["Z","Y","X"]}},
               {"name":"o","type":["null","string"]},{"name":"n","type":"int"},
               {"name":"a","type":"string"}"#,
        );
        assert!(by_name(&writer, &reader));
    }

    #[test]
    fn defaults_aliases_promotions_and_remapped_unions_stay_with_the_transcoder() {
        let reader = schema(
            r#"{"name":"a","type":"string"},{"name":"o","type":["null","string"],"default":null}"#,
        );
        // `o` missing: serde would leave it None without reading the default.
        let missing = schema(r#"{"name":"a","type":"string"}"#);
        assert!(!by_name(&missing, &reader));
        // Union branches in another order.
        let swapped =
            schema(r#"{"name":"a","type":"string"},{"name":"o","type":["string","null"]}"#);
        assert!(!by_name(&swapped, &reader));
        // A writer string read as a reader union (the transcoder writes the branch).
        let plain = schema(r#"{"name":"a","type":"string"},{"name":"o","type":"string"}"#);
        assert!(!by_name(&plain, &reader));
        // bytes → string and float → double are promotions.
        let bytes = schema(r#"{"name":"a","type":"bytes"},{"name":"o","type":["null","string"]}"#);
        assert!(!by_name(&bytes, &reader));
        let f = schema(r#"{"name":"x","type":"float"}"#);
        let d = schema(r#"{"name":"x","type":"double"}"#);
        assert!(!by_name(&f, &d));
        // An aliased reader field.
        let aliased = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"b","type":"string","aliases":["a"]}]}"#,
        )
        .expect("schema");
        assert!(!by_name(
            &schema(r#"{"name":"a","type":"string"}"#),
            &aliased
        ));
    }
}
