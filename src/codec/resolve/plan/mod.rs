//! A compiled plan that decodes a writer's bytes straight into the reader's typed struct.
//!
//! [`super::by_name`] says when a writer can be read into the reader's struct by field and symbol
//! name. `serde_avro_fast`, given the writer schema, does that, but it walks its schema graph
//! for every value and hands every field to serde, the writer's extra fields included. A [`Plan`]
//! is that walk done once per writer id: a tree of what the writer put on the wire, with each
//! field and symbol already matched to the reader (or marked as one the reader lacks). The plan's
//! serde `Deserializer` then only reads bytes and hands serde the reader's names: a writer field
//! the reader lacks is skipped in place, without a serde round trip.
//!
//! It decodes the same cases as the writer-schema decode, and fails where that would (an enum
//! symbol the reader lacks, malformed bytes), so the transcoder stays the authority for those
//! records. Unions other than `null` with one type, and the rarer logical types, are left to
//! the writer-schema decode ([`compile`] returns `None`).

mod de;

use super::{deref, Names};
use apache_avro::schema::{ResolvedSchema, UuidSchema};
use apache_avro::Schema;

pub use de::PlanError;

/// Deepest nesting compiled; deeper (or recursive) schemas get no plan.
const MAX_DEPTH: usize = 32;

/// A compiled direct decode of one writer schema into the reader's struct (see the module docs).
#[derive(Debug)]
pub struct Plan {
    root: Node,
}

/// What the writer put on the wire for one value, matched to the reader.
#[derive(Debug, PartialEq)]
enum Node {
    /// Nothing.
    Null,
    /// One byte, 0 or 1.
    Bool,
    /// A zig-zag varint: int, long and the logical types they carry (an int read as a long too).
    Varint,
    /// Four bytes.
    Float,
    /// Eight bytes.
    Double,
    /// A length, then UTF-8.
    Str,
    /// A length, then bytes.
    Bytes,
    /// A fixed number of bytes.
    Fixed(usize),
    /// An index into the writer's symbols, each named as the reader names it (`None`: a symbol
    /// the reader lacks, which fails the record so that the transcoder applies the enum default).
    Enum(Box<[Option<Box<str>>]>),
    /// A union of `null` (branch `null`) and one other branch.
    Nullable { null: u8, value: Box<Node> },
    /// The writer's fields in writer order.
    Record(Box<[Field]>),
    /// Blocks of items.
    Array(Box<Node>),
    /// Blocks of string keys and values.
    Map(Box<Node>),
}

/// One writer field: its reader name (`None`: the reader lacks it, skipped) and its layout.
#[derive(Debug, PartialEq)]
struct Field {
    name: Option<Box<str>>,
    node: Node,
}

/// Compiles the direct decode of `writer` into the struct of `reader`; `None` when the pair is
/// not one that reads by name (see [`super::by_name`]) or uses a type the plan does not cover.
pub fn compile(writer: &Schema, reader: &Schema) -> Option<Plan> {
    let (w, r) = (
        ResolvedSchema::new(writer).ok()?,
        ResolvedSchema::new(reader).ok()?,
    );
    let names = Names {
        writer: w.get_names(),
        reader: r.get_names(),
    };
    Some(Plan {
        root: names.node(writer, reader, 0)?,
    })
}

impl Plan {
    /// Decodes all of `body` into a `T`; trailing bytes are an error.
    pub fn read<T: serde::de::DeserializeOwned>(&self, body: &[u8]) -> Result<T, PlanError> {
        de::read(&self.root, body)
    }
}

/// The node of a primitive (or a logical type carried by one) read as itself.
fn primitive(s: &Schema) -> Option<Node> {
    Some(match s {
        Schema::Null => Node::Null,
        Schema::Boolean => Node::Bool,
        Schema::Int
        | Schema::Long
        | Schema::Date
        | Schema::TimeMillis
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros => Node::Varint,
        Schema::Float => Node::Float,
        Schema::Double => Node::Double,
        Schema::Bytes => Node::Bytes,
        Schema::String | Schema::Uuid(UuidSchema::String) => Node::Str,
        _ => return None,
    })
}

/// The branch index of `null` in a two-branch union with one `null`, and the other branch.
fn nullable(branches: &[Schema]) -> Option<(u8, &Schema)> {
    match branches {
        [Schema::Null, other] if !matches!(other, Schema::Null) => Some((0, other)),
        [other, Schema::Null] if !matches!(other, Schema::Null) => Some((1, other)),
        _ => None,
    }
}

impl<'a> Names<'_, 'a> {
    /// The node of writer `writer` read as reader `reader`, by [`super::by_name`]'s rules.
    fn node(&self, writer: &'a Schema, reader: &'a Schema, depth: usize) -> Option<Node> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (w, r) = (deref(writer, self.writer)?, deref(reader, self.reader)?);
        Some(match (w, r) {
            (Schema::Record(wr), Schema::Record(rr)) => {
                // Every reader field by its own name; writer fields the reader lacks skipped.
                if !rr.fields.iter().all(|rf| wr.lookup.contains_key(&rf.name)) {
                    return None;
                }
                let fields = wr.fields.iter().map(|wf| match rr.lookup.get(&wf.name) {
                    Some(&i) => Some(Field {
                        name: Some(wf.name.as_str().into()),
                        node: self.node(&wf.schema, &rr.fields[i].schema, depth + 1)?,
                    }),
                    None => Some(Field {
                        name: None,
                        node: self.shape(&wf.schema, depth + 1)?,
                    }),
                });
                Node::Record(fields.collect::<Option<Vec<_>>>()?.into())
            }
            (Schema::Enum(we), Schema::Enum(re)) => Node::Enum(
                we.symbols
                    .iter()
                    .map(|s| re.symbols.contains(s).then(|| s.as_str().into()))
                    .collect(),
            ),
            (Schema::Array(wa), Schema::Array(ra)) => {
                Node::Array(Box::new(self.node(&wa.items, &ra.items, depth + 1)?))
            }
            (Schema::Map(wm), Schema::Map(rm)) => {
                Node::Map(Box::new(self.node(&wm.types, &rm.types, depth + 1)?))
            }
            (Schema::Union(wu), Schema::Union(ru)) => {
                // The same branches in the same order: `null` and one other.
                let ((wn, wv), (rn, rv)) = (nullable(wu.variants())?, nullable(ru.variants())?);
                if wn != rn {
                    return None;
                }
                Node::Nullable {
                    null: wn,
                    value: Box::new(self.node(wv, rv, depth + 1)?),
                }
            }
            (Schema::Fixed(wf), Schema::Fixed(rf)) if wf.size == rf.size => Node::Fixed(wf.size),
            (Schema::Int, Schema::Long) => Node::Varint,
            _ if w == r => primitive(w)?,
            _ => return None,
        })
    }

    /// The layout of a writer type the reader lacks, to skip it.
    fn shape(&self, writer: &'a Schema, depth: usize) -> Option<Node> {
        if depth > MAX_DEPTH {
            return None;
        }
        let w = deref(writer, self.writer)?;
        if let Some(node) = primitive(w) {
            return Some(node);
        }
        Some(match w {
            Schema::Record(wr) => Node::Record(
                wr.fields
                    .iter()
                    .map(|f| {
                        Some(Field {
                            name: None,
                            node: self.shape(&f.schema, depth + 1)?,
                        })
                    })
                    .collect::<Option<Vec<_>>>()?
                    .into(),
            ),
            Schema::Enum(e) => Node::Enum(e.symbols.iter().map(|_| None).collect()),
            Schema::Array(a) => Node::Array(Box::new(self.shape(&a.items, depth + 1)?)),
            Schema::Map(m) => Node::Map(Box::new(self.shape(&m.types, depth + 1)?)),
            Schema::Union(u) => {
                let (null, value) = nullable(u.variants())?;
                Node::Nullable {
                    null,
                    value: Box::new(self.shape(value, depth + 1)?),
                }
            }
            Schema::Fixed(f) => Node::Fixed(f.size),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests;
