//! Compiles a writer/reader schema pair into transcoding steps ([`Op`]), following the Avro
//! specification's resolution rules. All checks that depend only on the schemas happen here, once;
//! what depends on the data (an enum symbol the reader lacks, a union branch with no match) is
//! compiled into an error step that fails only the records that take it.

use apache_avro::schema::{
    InnerDecimalSchema, Name, NamesRef, RecordSchema, ResolvedSchema, UuidSchema,
};
use apache_avro::Schema;

/// Deepest nesting of records, arrays, maps and unions compiled; deeper (or recursive) schemas
/// are refused rather than followed for ever.
const MAX_DEPTH: usize = 32;

/// The layout of one writer datum: enough to skip it or copy it unchanged.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Shape {
    /// Nothing on the wire.
    Null,
    /// One byte.
    Bool,
    /// A zig-zag varint (int, long, enum index).
    Varint,
    /// Four bytes.
    Float,
    /// Eight bytes.
    Double,
    /// A length, then that many bytes (bytes, string).
    Bytes,
    /// A fixed number of bytes.
    Fixed(usize),
    /// Blocks of items.
    Array(Box<Shape>),
    /// Blocks of string keys and values.
    Map(Box<Shape>),
    /// A branch index, then that branch.
    Union(Box<[Shape]>),
    /// The fields one after another.
    Record(Box<[Shape]>),
}

/// A number promotion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Promote {
    IntToFloat,
    IntToDouble,
    LongToFloat,
    LongToDouble,
    FloatToDouble,
}

/// One step of a transcoding.
#[derive(Debug)]
pub(super) enum Op {
    /// The datum is encoded the same on both sides (same type, int→long, string↔bytes, or a
    /// structure of such): copy its bytes.
    Copy(Shape),
    /// A number read as a wider type.
    Promote(Promote),
    /// Writer enum index → reader index, or the symbol the reader lacks (and has no default for).
    Enum(Box<[Result<u32, Box<str>>]>),
    /// A record with fields moved, added or removed.
    Record(Box<RecordOp>),
    /// An array whose items change.
    Array(Box<Op>),
    /// A map whose values change.
    Map(Box<Op>),
    /// The writer is a union: per writer branch, the reader branch index to write (when the
    /// reader is a union too) and the step, or why that branch cannot be read.
    FromUnion(Box<[Result<Branch, Box<str>>]>),
    /// The writer is not a union but the reader is: write the reader's branch index, then the step.
    ToUnion(u32, Box<Op>),
}

/// One writer union branch that resolves: the reader's branch index to write (none when the
/// reader is not a union) and the step for the value.
pub(super) type Branch = (Option<u32>, Op);

/// A record's transcoding.
#[derive(Debug)]
pub(super) struct RecordOp {
    /// Per writer field in writer order.
    pub(super) steps: Box<[FieldStep]>,
    /// Reader field count.
    pub(super) slots: usize,
    /// The encoded default of each reader field the writer does not have (index = reader slot).
    pub(super) defaults: Box<[Option<Box<[u8]>>]>,
    /// Whether the writer's fields that the reader has arrive in reader order, so the output can
    /// be written as the input is read, defaults written into the gaps (otherwise fields are
    /// gathered, then written in reader order).
    pub(super) in_order: bool,
}

/// What happens to one writer field.
#[derive(Debug)]
pub(super) enum FieldStep {
    /// Transcoded into the reader field at `slot`.
    Read { slot: usize, op: Op },
    /// Not in the reader: skipped.
    Skip(Shape),
}

/// Most steps one resolution may compile into. Named types are compiled again at every use, so a
/// small schema that reuses its types at every level could otherwise grow exponentially.
const MAX_STEPS: usize = 100_000;

struct Ctx<'a> {
    /// Steps compiled so far (bounded by [`MAX_STEPS`]).
    steps: std::cell::Cell<usize>,
    writer_names: NamesRef<'a>,
    reader_names: NamesRef<'a>,
    reader_root: &'a Schema,
}

/// Compiles the resolution of `writer` against `reader`; the error says why the writer can never
/// be read as the reader.
pub(super) fn compile(writer: &Schema, reader: &Schema) -> Result<Op, String> {
    let w = ResolvedSchema::new(writer).map_err(|e| format!("writer schema: {e}"))?;
    let r = ResolvedSchema::new(reader).map_err(|e| format!("reader schema: {e}"))?;
    let ctx = Ctx {
        steps: std::cell::Cell::new(0),
        writer_names: w.get_names().clone(),
        reader_names: r.get_names().clone(),
        reader_root: reader,
    };
    ctx.op(writer, reader, 0, "")
}

fn deref<'a>(s: &'a Schema, names: &NamesRef<'a>) -> Result<&'a Schema, String> {
    match s {
        Schema::Ref { name } => names
            .get(name)
            .copied()
            .ok_or_else(|| format!("unresolved reference to {}", name.fullname(None))),
        other => Ok(other),
    }
}

/// The wire type of a schema, logical types reduced to what carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prim {
    Null,
    Bool,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
}

fn prim(s: &Schema) -> Option<Prim> {
    Some(match s {
        Schema::Null => Prim::Null,
        Schema::Boolean => Prim::Bool,
        Schema::Int | Schema::Date | Schema::TimeMillis => Prim::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Prim::Long,
        Schema::Float => Prim::Float,
        Schema::Double => Prim::Double,
        Schema::Bytes | Schema::BigDecimal | Schema::Uuid(UuidSchema::Bytes) => Prim::Bytes,
        Schema::Decimal(d) if matches!(d.inner, InnerDecimalSchema::Bytes) => Prim::Bytes,
        Schema::String | Schema::Uuid(UuidSchema::String) => Prim::String,
        _ => return None,
    })
}

/// A fixed-size type's name and size (fixed, and the logical types carried by one).
fn fixed(s: &Schema) -> Option<(&Name, usize)> {
    match s {
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            Some((&f.name, f.size))
        }
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Fixed(f) => Some((&f.name, f.size)),
            InnerDecimalSchema::Bytes => None,
        },
        _ => None,
    }
}

fn type_name(s: &Schema) -> String {
    match s {
        Schema::Record(r) => format!("record {}", r.name.name()),
        Schema::Enum(e) => format!("enum {}", e.name.name()),
        Schema::Fixed(f) => format!("fixed {}", f.name.name()),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        other => match prim(other) {
            Some(p) => format!("{p:?}").to_lowercase(),
            None => format!("{other:?}"),
        },
    }
}

/// Unqualified-name match, the reader's aliases included (Avro: named types match by name).
fn names_match(
    writer: &Name,
    reader: &Name,
    aliases: Option<&Vec<apache_avro::schema::Alias>>,
) -> bool {
    writer.name() == reader.name()
        || aliases.is_some_and(|a| a.iter().any(|alias| alias.name() == writer.name()))
}

impl<'a> Ctx<'a> {
    fn op(
        &self,
        writer: &'a Schema,
        reader: &'a Schema,
        depth: usize,
        at: &str,
    ) -> Result<Op, String> {
        self.count_step()?;
        if depth > MAX_DEPTH {
            return Err(format!(
                "{at}: nested deeper than {MAX_DEPTH} levels (a recursive schema?)"
            ));
        }
        let w = deref(writer, &self.writer_names)?;
        let r = deref(reader, &self.reader_names)?;
        if let Schema::Union(wu) = w {
            let branches = wu
                .variants()
                .iter()
                .map(|wb| self.branch(wb, r, depth, at).map_err(Box::from))
                .collect();
            return Ok(Op::FromUnion(branches));
        }
        if let Schema::Union(ru) = r {
            if let Some((i, rb)) = self.pick_branch(w, ru)? {
                return Ok(Op::ToUnion(i, Box::new(self.op(w, rb, depth + 1, at)?)));
            }
            return Err(format!(
                "{at}: the writer's {} matches no branch of the reader's union",
                type_name(w)
            ));
        }
        if let (Some(wp), Some(rp)) = (prim(w), prim(r)) {
            return self.prim_op(wp, rp).ok_or_else(|| {
                format!(
                    "{at}: the writer's {} cannot be read as {}",
                    type_name(w),
                    type_name(r)
                )
            });
        }
        match (w, r) {
            (Schema::Record(wr), Schema::Record(rr))
                if names_match(&wr.name, &rr.name, rr.aliases.as_ref()) =>
            {
                self.record(wr, rr, depth, at)
            }
            (Schema::Enum(we), Schema::Enum(re))
                if names_match(&we.name, &re.name, re.aliases.as_ref()) =>
            {
                let default = re
                    .default
                    .as_ref()
                    .and_then(|d| re.symbols.iter().position(|s| s == d));
                let map = we
                    .symbols
                    .iter()
                    .map(
                        |sym| match re.symbols.iter().position(|s| s == sym).or(default) {
                            Some(i) => Ok(i as u32),
                            None => Err(Box::from(sym.as_str())),
                        },
                    )
                    .collect::<Vec<_>>();
                if map.iter().enumerate().all(|(i, m)| *m == Ok(i as u32)) {
                    Ok(Op::Copy(Shape::Varint))
                } else {
                    Ok(Op::Enum(map.into()))
                }
            }
            (Schema::Array(wa), Schema::Array(ra)) => {
                match self.op(&wa.items, &ra.items, depth + 1, &format!("{at}[]"))? {
                    Op::Copy(shape) => Ok(Op::Copy(Shape::Array(Box::new(shape)))),
                    op => Ok(Op::Array(Box::new(op))),
                }
            }
            (Schema::Map(wm), Schema::Map(rm)) => {
                match self.op(&wm.types, &rm.types, depth + 1, &format!("{at}{{}}"))? {
                    Op::Copy(shape) => Ok(Op::Copy(Shape::Map(Box::new(shape)))),
                    op => Ok(Op::Map(Box::new(op))),
                }
            }
            _ => match (fixed(w), fixed(r)) {
                (Some((wn, ws)), Some((rn, rs))) if wn.name() == rn.name() && ws == rs => {
                    Ok(Op::Copy(Shape::Fixed(ws)))
                }
                _ => Err(format!(
                    "{at}: the writer's {} cannot be read as {}",
                    type_name(w),
                    type_name(r)
                )),
            },
        }
    }

    /// One writer union branch against the reader (a union or not).
    fn branch(
        &self,
        wb: &'a Schema,
        r: &'a Schema,
        depth: usize,
        at: &str,
    ) -> Result<(Option<u32>, Op), String> {
        let wb = deref(wb, &self.writer_names)?;
        if let Schema::Union(ru) = r {
            if let Some((i, rb)) = self.pick_branch(wb, ru)? {
                return Ok((Some(i), self.op(wb, rb, depth + 1, at)?));
            }
            return Err(format!(
                "{at}: the writer's union branch {} matches no branch of the reader's union",
                type_name(wb)
            ));
        }
        Ok((None, self.op(wb, r, depth + 1, at)?))
    }

    /// The reader union branch a writer type resolves to: the first of the same type (or name),
    /// else the first it promotes to (as apache-avro and Java's `bestBranch` choose: `long` into
    /// `["double","long"]` stays a long).
    fn pick_branch(
        &self,
        w: &'a Schema,
        ru: &'a apache_avro::schema::UnionSchema,
    ) -> Result<Option<(u32, &'a Schema)>, String> {
        let branches = ru
            .variants()
            .iter()
            .map(|b| deref(b, &self.reader_names))
            .collect::<Result<Vec<_>, _>>()?;
        let exact = |rb: &Schema| match (prim(w), prim(rb)) {
            (Some(a), Some(b)) => a == b,
            _ => std::mem::discriminant(w) == std::mem::discriminant(rb),
        };
        for (i, rb) in branches.iter().enumerate() {
            if exact(rb) && self.matches(w, rb)? {
                return Ok(Some((i as u32, rb)));
            }
        }
        for (i, rb) in branches.iter().enumerate() {
            if self.matches(w, rb)? {
                return Ok(Some((i as u32, rb)));
            }
        }
        Ok(None)
    }

    /// Whether a writer type may be resolved against a reader union branch.
    fn matches(&self, w: &Schema, r: &Schema) -> Result<bool, String> {
        if let (Some(wp), Some(rp)) = (prim(w), prim(r)) {
            return Ok(self.prim_op(wp, rp).is_some());
        }
        Ok(match (w, r) {
            (Schema::Record(a), Schema::Record(b)) => {
                names_match(&a.name, &b.name, b.aliases.as_ref())
            }
            (Schema::Enum(a), Schema::Enum(b)) => names_match(&a.name, &b.name, b.aliases.as_ref()),
            (Schema::Array(_), Schema::Array(_)) | (Schema::Map(_), Schema::Map(_)) => true,
            _ => {
                matches!((fixed(w), fixed(r)), (Some((a, x)), Some((b, y))) if a.name() == b.name() && x == y)
            }
        })
    }

    fn prim_op(&self, w: Prim, r: Prim) -> Option<Op> {
        use Prim::*;
        Some(match (w, r) {
            (Null, Null) => Op::Copy(Shape::Null),
            (Bool, Bool) => Op::Copy(Shape::Bool),
            // An int's zig-zag varint is the same long.
            (Int, Int) | (Long, Long) | (Int, Long) => Op::Copy(Shape::Varint),
            (Float, Float) => Op::Copy(Shape::Float),
            (Double, Double) => Op::Copy(Shape::Double),
            (Bytes | String, Bytes | String) => Op::Copy(Shape::Bytes),
            (Int, Float) => Op::Promote(Promote::IntToFloat),
            (Int, Double) => Op::Promote(Promote::IntToDouble),
            (Long, Float) => Op::Promote(Promote::LongToFloat),
            (Long, Double) => Op::Promote(Promote::LongToDouble),
            (Float, Double) => Op::Promote(Promote::FloatToDouble),
            _ => return None,
        })
    }

    fn record(
        &self,
        wr: &'a RecordSchema,
        rr: &'a RecordSchema,
        depth: usize,
        at: &str,
    ) -> Result<Op, String> {
        // Reader slot of each writer field: exact names first, then the reader's aliases for
        // the slots still free (an alias never takes a field another writer field names).
        let mut slot_of: Vec<Option<usize>> = wr
            .fields
            .iter()
            .map(|wf| rr.lookup.get(&wf.name).copied())
            .collect();
        let mut filled = vec![false; rr.fields.len()];
        slot_of.iter().flatten().for_each(|s| filled[*s] = true);
        for (wf, slot) in wr.fields.iter().zip(slot_of.iter_mut()) {
            if slot.is_none() {
                *slot = rr
                    .fields
                    .iter()
                    .enumerate()
                    .position(|(i, rf)| !filled[i] && rf.aliases.contains(&wf.name));
                if let Some(s) = *slot {
                    filled[s] = true;
                }
            }
        }
        let mut steps = Vec::with_capacity(wr.fields.len());
        for (wf, slot) in wr.fields.iter().zip(slot_of) {
            let path = if at.is_empty() {
                wf.name.clone()
            } else {
                format!("{at}.{}", wf.name)
            };
            match slot {
                Some(slot) => {
                    let op = self.op(&wf.schema, &rr.fields[slot].schema, depth + 1, &path)?;
                    steps.push(FieldStep::Read { slot, op });
                }
                None => steps.push(FieldStep::Skip(self.shape(&wf.schema, depth + 1)?)),
            }
        }
        let mut defaults = Vec::with_capacity(rr.fields.len());
        for (slot, rf) in rr.fields.iter().enumerate() {
            if filled[slot] {
                defaults.push(None);
                continue;
            }
            let path = if at.is_empty() {
                rf.name.clone()
            } else {
                format!("{at}.{}", rf.name)
            };
            let Some(default) = &rf.default else {
                return Err(format!(
                    "field `{path}` of the reader schema has no default and the writer does not have it"
                ));
            };
            defaults.push(Some(self.encode_default(&rf.schema, default, &path)?));
        }
        let reads: Vec<usize> = steps
            .iter()
            .filter_map(|s| match s {
                FieldStep::Read { slot, .. } => Some(*slot),
                FieldStep::Skip(_) => None,
            })
            .collect();
        // Streamable when the reads go up in reader order (defaults are written into the gaps);
        // a plain copy when, besides, every reader field is read whole in order.
        let in_order = reads.windows(2).all(|w| w[0] < w[1]);
        let whole = reads.len() == rr.fields.len()
            && steps.len() == reads.len()
            && reads.iter().enumerate().all(|(i, s)| *s == i);
        if whole
            && steps.iter().all(|s| {
                matches!(
                    s,
                    FieldStep::Read {
                        op: Op::Copy(_),
                        ..
                    }
                )
            })
        {
            let shapes = steps
                .into_iter()
                .map(|s| match s {
                    FieldStep::Read {
                        op: Op::Copy(shape),
                        ..
                    } => shape,
                    _ => Shape::Null,
                })
                .collect();
            return Ok(Op::Copy(Shape::Record(shapes)));
        }
        Ok(Op::Record(Box::new(RecordOp {
            steps: steps.into(),
            slots: rr.fields.len(),
            defaults: defaults.into(),
            in_order,
        })))
    }

    /// A reader field's JSON default, encoded once as the Avro bytes it stands for.
    fn encode_default(
        &self,
        schema: &Schema,
        default: &serde_json::Value,
        path: &str,
    ) -> Result<Box<[u8]>, String> {
        let unfit = |e: apache_avro::Error| {
            format!("the default of field `{path}` does not fit its type: {e}")
        };
        if let Schema::Union(u) = schema {
            // Avro: a union's default is a value of its first branch.
            let first = u
                .variants()
                .first()
                .ok_or("an empty union has no default")?;
            let mut out = vec![0u8]; // branch index 0
            out.extend_from_slice(&self.encode_default(first, default, path)?);
            return Ok(out.into_boxed_slice());
        }
        let value = apache_avro::types::Value::try_from(default.clone())
            .and_then(|v| v.resolve_schemata(schema, vec![self.reader_root]))
            .map_err(unfit)?;
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .schemata(vec![self.reader_root])
            .and_then(|b| b.build())
            .and_then(|w| w.write_value_to_vec(value))
            .map(Vec::into_boxed_slice)
            .map_err(unfit)
    }

    fn count_step(&self) -> Result<(), String> {
        self.steps.set(self.steps.get() + 1);
        if self.steps.get() > MAX_STEPS {
            return Err(format!(
                "the schema is too large to resolve (more than {MAX_STEPS} steps; named types \
                 are expanded at every use, and recursive types are not supported)"
            ));
        }
        Ok(())
    }

    /// The layout of a writer type, to skip it.
    fn shape(&self, s: &'a Schema, depth: usize) -> Result<Shape, String> {
        self.count_step()?;
        if depth > MAX_DEPTH {
            return Err(format!(
                "nested deeper than {MAX_DEPTH} levels (a recursive schema?)"
            ));
        }
        let s = deref(s, &self.writer_names)?;
        if let Some(p) = prim(s) {
            return Ok(match p {
                Prim::Null => Shape::Null,
                Prim::Bool => Shape::Bool,
                Prim::Int | Prim::Long => Shape::Varint,
                Prim::Float => Shape::Float,
                Prim::Double => Shape::Double,
                Prim::Bytes | Prim::String => Shape::Bytes,
            });
        }
        if let Some((_, size)) = fixed(s) {
            return Ok(Shape::Fixed(size));
        }
        Ok(match s {
            Schema::Enum(_) => Shape::Varint,
            Schema::Array(a) => Shape::Array(Box::new(self.shape(&a.items, depth + 1)?)),
            Schema::Map(m) => Shape::Map(Box::new(self.shape(&m.types, depth + 1)?)),
            Schema::Union(u) => Shape::Union(
                u.variants()
                    .iter()
                    .map(|b| self.shape(b, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?
                    .into(),
            ),
            Schema::Record(r) => Shape::Record(
                r.fields
                    .iter()
                    .map(|f| self.shape(&f.schema, depth + 1))
                    .collect::<Result<Vec<_>, _>>()?
                    .into(),
            ),
            other => return Err(format!("unsupported writer type {other:?}")),
        })
    }
}
