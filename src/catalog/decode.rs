//! Decodes a declared source's datum (bytes in its reader schema) into field values, with a
//! plan compiled once from the schema: one step per top-level field, no per-record schema walk.
//! Records written with another schema reach this decoder already transcoded to the reader
//! schema (`codec::resolve`).
//!
//! Top-level fields may be booleans, ints, longs (timestamps included), floats, doubles,
//! strings, enums, or a union of `null` and one of those. Nested records, arrays, maps, bytes
//! and fixed are refused when the source is declared, naming the field.

use super::field::{FieldType, Symbols};
use crate::event::Value;
use apache_avro::Schema;

/// How one value is read.
#[derive(Debug, Clone, Copy)]
enum Read {
    Bool,
    Int,
    Float,
    Double,
    Str,
    Enum(&'static [&'static str]),
}

/// One top-level field of the reader schema.
#[derive(Debug, Clone)]
pub struct FieldPlan {
    /// Field name.
    pub name: String,
    /// Its type, as features and rules check it.
    pub ty: FieldType,
    /// Whether it is a union with `null`.
    pub nullable: bool,
    read: Read,
    /// Branch index of `null` when the field is a union.
    null_branch: Option<u8>,
}

/// A compiled reader for one record schema.
#[derive(Debug, Clone)]
pub struct RecordDecoder {
    fields: Vec<FieldPlan>,
}

/// The longest string a declared record may carry, bytes.
const MAX_STRING: usize = 64 * 1024;

fn plain(schema: &Schema) -> Option<(Read, FieldType)> {
    Some(match schema {
        Schema::Boolean => (Read::Bool, FieldType::Bool),
        Schema::Int | Schema::Long | Schema::Date | Schema::TimeMillis | Schema::TimeMicros => {
            (Read::Int, FieldType::Int)
        }
        Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros => (Read::Int, FieldType::Int),
        Schema::Float => (Read::Float, FieldType::Num),
        Schema::Double => (Read::Double, FieldType::Num),
        Schema::String | Schema::Uuid(_) => (Read::Str, FieldType::Str),
        Schema::Enum(e) => {
            let symbols: Vec<&'static str> = e
                .symbols
                .iter()
                .map(|s| &*Box::leak(s.clone().into_boxed_str()))
                .collect();
            let symbols: &'static [&'static str] = Box::leak(symbols.into_boxed_slice());
            (
                Read::Enum(symbols),
                FieldType::Enum(Symbols::Declared(symbols)),
            )
        }
        _ => return None,
    })
}

impl RecordDecoder {
    /// Compiles the plan of a record schema; refuses field types it cannot read.
    pub fn compile(schema: &Schema) -> Result<Self, String> {
        let Schema::Record(record) = schema else {
            return Err("the schema is not a record".into());
        };
        let mut fields = Vec::with_capacity(record.fields.len());
        for f in &record.fields {
            let refuse = || {
                format!(
                    "field {:?}: only booleans, numbers, strings, enums and their unions with \
                     null can be read at the top level of a declared source",
                    f.name
                )
            };
            let (read, ty, nullable, null_branch) = match &f.schema {
                Schema::Union(u) => {
                    let branches = u.variants();
                    let null_at = branches.iter().position(|b| matches!(b, Schema::Null));
                    match (branches.len(), null_at) {
                        (2, Some(n)) => {
                            let (read, ty) = plain(&branches[1 - n]).ok_or_else(refuse)?;
                            (read, ty, true, Some(n as u8))
                        }
                        _ => return Err(refuse()),
                    }
                }
                other => {
                    let (read, ty) = plain(other).ok_or_else(refuse)?;
                    (read, ty, false, None)
                }
            };
            fields.push(FieldPlan {
                name: f.name.clone(),
                ty,
                nullable,
                read,
                null_branch,
            });
        }
        Ok(Self { fields })
    }

    /// The fields, in schema order.
    pub fn fields(&self) -> &[FieldPlan] {
        &self.fields
    }

    /// Decodes one datum from the front of `bytes`; returns the values and the bytes read.
    pub fn decode_prefix(&self, bytes: &[u8]) -> Result<(Vec<Value>, usize), String> {
        let mut input = Input { bytes, pos: 0 };
        let mut values = Vec::with_capacity(self.fields.len());
        for f in &self.fields {
            if let Some(null_branch) = f.null_branch {
                let branch = input.long()?;
                if branch == i64::from(null_branch) {
                    values.push(Value::Null);
                    continue;
                }
                if branch != i64::from(1 - null_branch) {
                    return Err(format!(
                        "field {}: union branch {branch} out of range",
                        f.name
                    ));
                }
            }
            values.push(
                input
                    .value(f.read)
                    .map_err(|e| format!("field {}: {e}", f.name))?,
            );
        }
        Ok((values, input.pos))
    }

    /// Decodes one whole datum; bytes left over mean the writer's schema differs.
    pub fn decode(&self, bytes: &[u8]) -> Result<Vec<Value>, String> {
        let (values, used) = self.decode_prefix(bytes)?;
        if used != bytes.len() {
            return Err(format!(
                "{} trailing bytes after the Avro datum: writer schema differs",
                bytes.len() - used
            ));
        }
        Ok(values)
    }
}

impl RecordDecoder {
    /// Encodes field values (in schema order) as one Avro datum of the schema, appended to
    /// `out`: what a producer of the source writes (the generator's and tests' records).
    pub fn encode(&self, values: &[Value], out: &mut Vec<u8>) -> Result<(), String> {
        if values.len() != self.fields.len() {
            return Err(format!(
                "{} values for a schema of {} fields",
                values.len(),
                self.fields.len()
            ));
        }
        for (f, v) in self.fields.iter().zip(values) {
            if let Some(null_branch) = f.null_branch {
                let branch = if matches!(v, Value::Null) {
                    null_branch
                } else {
                    1 - null_branch
                };
                put_long(out, i64::from(branch));
                if matches!(v, Value::Null) {
                    continue;
                }
            }
            match (f.read, v) {
                (Read::Bool, Value::Bool(b)) => out.push(u8::from(*b)),
                (Read::Int, Value::Int(i)) => put_long(out, *i),
                (Read::Float, Value::Double(d)) => {
                    out.extend_from_slice(&(*d as f32).to_le_bytes())
                }
                (Read::Double, Value::Double(d)) => out.extend_from_slice(&d.to_le_bytes()),
                (Read::Str, Value::Str(s)) => {
                    put_long(out, s.len() as i64);
                    out.extend_from_slice(s.as_bytes());
                }
                (Read::Enum(symbols), Value::Sym(s)) => {
                    let i = symbols
                        .iter()
                        .position(|sym| sym == s)
                        .ok_or_else(|| format!("field {}: {s:?} is not a symbol", f.name))?;
                    put_long(out, i as i64);
                }
                (_, v) => return Err(format!("field {}: {v:?} does not fit its type", f.name)),
            }
        }
        Ok(())
    }
}

/// Appends a zig-zag varint (Avro `int` and `long`).
fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or("truncated datum")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// A zig-zag varint (Avro `int` and `long`).
    fn long(&mut self) -> Result<i64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.bytes.get(self.pos).ok_or("truncated datum")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((v >> 1) as i64 ^ -((v & 1) as i64));
            }
        }
        Err("varint longer than 10 bytes".into())
    }

    fn value(&mut self, read: Read) -> Result<Value, String> {
        Ok(match read {
            Read::Bool => match self.take(1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(format!("boolean byte {b}")),
            },
            Read::Int => Value::Int(self.long()?),
            Read::Float => {
                let b = self.take(4)?;
                Value::Double(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            Read::Double => {
                let mut b = [0u8; 8];
                b.copy_from_slice(self.take(8)?);
                Value::Double(f64::from_le_bytes(b))
            }
            Read::Str => {
                let len = self.long()?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| *l <= MAX_STRING)
                    .ok_or_else(|| format!("string length {len} outside 0..={MAX_STRING}"))?;
                let s = std::str::from_utf8(self.take(len)?).map_err(|e| e.to_string())?;
                Value::Str(s.into())
            }
            Read::Enum(symbols) => {
                let i = self.long()?;
                let s = usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| format!("enum index {i} out of range"))?;
                Value::Sym(s)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value as Avro;

    const SCHEMA: &str = r#"{"type":"record","name":"Reading","fields":[
        {"name":"event_id","type":"string"},
        {"name":"event_time","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"device","type":{"type":"enum","name":"Device","symbols":["WATCH","RING"]}},
        {"name":"heart_rate","type":["null","int"],"default":null},
        {"name":"temp","type":"double"},
        {"name":"worn","type":"boolean"},
        {"name":"note","type":["string","null"]}
    ]}"#;

    #[test]
    #[allow(deprecated)] // apache-avro's one-call datum writer: the reference here.
    fn reads_every_supported_type_as_apache_avro_writes_it() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let d = RecordDecoder::compile(&schema).unwrap();
        let datum = Avro::Record(vec![
            ("event_id".into(), Avro::String("e1".into())),
            (
                "event_time".into(),
                Avro::TimestampMillis(1_700_000_000_000),
            ),
            ("device".into(), Avro::Enum(1, "RING".into())),
            (
                "heart_rate".into(),
                Avro::Union(1, Box::new(Avro::Int(142))),
            ),
            ("temp".into(), Avro::Double(36.6)),
            ("worn".into(), Avro::Boolean(true)),
            ("note".into(), Avro::Union(1, Box::new(Avro::Null))),
        ]);
        let bytes = apache_avro::to_avro_datum(&schema, datum).unwrap();
        let values = d.decode(&bytes).unwrap();
        assert_eq!(values[0], Value::Str("e1".into()));
        assert_eq!(values[1], Value::Int(1_700_000_000_000));
        assert_eq!(values[2], Value::Sym("RING"));
        assert_eq!(values[3], Value::Int(142));
        assert_eq!(values[4], Value::Double(36.6));
        assert_eq!(values[5], Value::Bool(true));
        assert_eq!(values[6], Value::Null);
        assert!(d.decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(d.decode(&longer).unwrap_err().contains("trailing"));
        let mut ours = Vec::new();
        d.encode(&values, &mut ours).unwrap();
        assert_eq!(ours, bytes, "the encoder writes what apache-avro writes");
    }

    #[test]
    fn refuses_nested_types_naming_the_field() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"tags","type":{"type":"array","items":"string"}}]}"#,
        )
        .unwrap();
        let err = RecordDecoder::compile(&schema).unwrap_err();
        assert!(err.contains("\"tags\""), "{err}");
    }
}
