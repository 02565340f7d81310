//! Avro schema resolution: a record written with one schema (the writer's, named by its registry
//! id) read as another (the source's reader schema), by the rules of the Avro specification
//! ("Schema Resolution"): fields matched by name (reader aliases too) in any order, reader fields
//! the writer lacks filled from their defaults, writer fields the reader lacks skipped, enum
//! symbols matched by name (an unknown one takes the reader enum's `default`), the promotions
//! int→long→float→double and string↔bytes, and unions on either side.
//!
//! A [`Resolution`] is compiled once per writer schema (so once per registry id, off the hot path)
//! into a tree of steps that *transcode* the writer's bytes into the bytes the reader schema
//! would have produced. The typed decoder then reads those bytes exactly as it reads a record
//! written with the reader schema, so one well-tested decoder serves every writer, and a writer
//! identical to the reader (same Parsing Canonical Form) skips this module altogether
//! ([`Resolution::Identity`]).
//!
//! Why transcode rather than decode into a generic value (as apache-avro's `from_avro_datum` with
//! a reader schema does): the transcoder allocates nothing per record, copies unchanged runs of
//! bytes whole, and keeps decode at the typed decoder's speed (`cargo bench --bench decode`,
//! group `resolve`).
//!
//! The commonest writer change (fields reordered or added, enum symbols moved, an int where the
//! reader has a long) needs no transcoding at all: serde takes fields and symbols by name
//! ([`by_name`]). Such a writer gets a [`Plan`] instead, compiled once like the transcoder:
//! the writer's layout with every field and symbol already matched to the reader's name, which
//! decodes the writer's bytes straight into the struct. It reads each byte once, where
//! transcoding reads it twice (once to rewrite, once to decode) and writes it once, and skips the
//! writer's extra fields without handing them to serde: on `resolve/writer_v2` it is faster than
//! the generic decoder on the reader's own schema. The transcoder stays the authority: a record
//! the plan fails on (a symbol the reader lacks, malformed bytes) is transcoded, whose result or
//! error stands.

mod compile;
mod direct;
mod exec;
pub mod plan;

use apache_avro::Schema;

pub use direct::by_name;
pub use exec::TranscodeError;
pub use plan::Plan;

/// How records of one writer schema are read as the reader schema.
#[derive(Debug)]
pub enum Resolution {
    /// Writer and reader have the same Parsing Canonical Form: the bytes are read as they are.
    Identity,
    /// The bytes are transcoded first.
    Transcode(Transcoder),
}

/// A compiled writer → reader transcoding (see the module docs).
#[derive(Debug)]
pub struct Transcoder {
    op: compile::Op,
}

/// Why a writer schema cannot be read as the reader schema at all (Avro's resolution fails for
/// every record, such as a reader field without a default that the writer does not have).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Incompatible(pub String);

/// Compiles the resolution of `writer` against `reader`.
pub fn resolve(writer: &Schema, reader: &Schema) -> Result<Resolution, Incompatible> {
    if writer.canonical_form() == reader.canonical_form() {
        return Ok(Resolution::Identity);
    }
    let op = compile::compile(writer, reader).map_err(Incompatible)?;
    Ok(Resolution::Transcode(Transcoder { op }))
}

impl Transcoder {
    /// Transcodes one writer datum (all of `input`) into reader bytes, appended to `out`.
    /// Trailing bytes after the datum are an error, as for a datum read directly.
    pub fn transcode(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        exec::run(&self.op, input, out)
    }
}

/// The named types of a writer and a reader schema, for the resolutions that walk both
/// ([`direct`], [`plan`]).
struct Names<'s, 'a> {
    writer: &'s apache_avro::schema::NamesRef<'a>,
    reader: &'s apache_avro::schema::NamesRef<'a>,
}

/// `s`, or the named type it refers to.
fn deref<'a>(s: &'a Schema, names: &apache_avro::schema::NamesRef<'a>) -> Option<&'a Schema> {
    match s {
        Schema::Ref { name } => names.get(name).copied(),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests;
