//! The plan's serde `Deserializer`: reads the writer's bytes as the [`Node`] tree says and hands
//! serde the reader's field and symbol names.
//!
//! Hostile input is bounded as the typed decoder bounds it: lengths are checked against the bytes
//! there are, arrays and maps hold at most [`crate::codec::MAX_SEQ_LEN`] items, and nesting
//! follows the plan, which is at most [`super::MAX_DEPTH`] deep.

use super::{Field, Node};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// Why a record did not decode along the plan (it is then decoded by the transcoder).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(String);

impl de::Error for PlanError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        PlanError(msg.to_string())
    }
}

fn error(what: &str) -> PlanError {
    PlanError(what.to_string())
}

/// Most items of one array or map: the typed decoder's own bound.
const MAX_ITEMS: i64 = crate::codec::MAX_SEQ_LEN as i64;

/// Decodes all of `body` along `root`.
pub(super) fn read<T: de::DeserializeOwned>(root: &Node, body: &[u8]) -> Result<T, PlanError> {
    let mut input = Input { buf: body, pos: 0 };
    let value = T::deserialize(De {
        node: root,
        input: &mut input,
    })?;
    match body.len() - input.pos {
        0 => Ok(value),
        n => Err(PlanError(format!(
            "{n} trailing bytes after the Avro datum"
        ))),
    }
}

struct Input<'de> {
    buf: &'de [u8],
    pos: usize,
}

impl<'de> Input<'de> {
    #[inline]
    fn varint(&mut self) -> Result<i64, PlanError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| error("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(error("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(error("varint longer than 10 bytes"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'de [u8], PlanError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| error("truncated: a length runs past the end of the record"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], PlanError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'de [u8], PlanError> {
        let n = self.varint()?;
        let n = usize::try_from(n).map_err(|_| error("negative length"))?;
        self.take(n)
    }

    #[inline]
    fn str(&mut self) -> Result<&'de str, PlanError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| error("a string is not UTF-8"))
    }

    /// The branch index of a `null`-or-value union: whether the value is there.
    #[inline]
    fn present(&mut self, null: u8) -> Result<bool, PlanError> {
        match self.varint()? {
            i if i == i64::from(null) => Ok(false),
            i if i == i64::from(1 - null) => Ok(true),
            _ => Err(error("union branch index out of range")),
        }
    }

    /// The next block's item count (0 at the end); a negative count is followed by a size.
    fn block(&mut self, total: &mut i64) -> Result<i64, PlanError> {
        let count = self.varint()?;
        let count = if count < 0 {
            self.varint()?;
            count
                .checked_neg()
                .ok_or_else(|| error("bad block count"))?
        } else {
            count
        };
        // Compared before adding: a block count near i64::MAX must not wrap the total.
        if count > MAX_ITEMS - *total {
            return Err(error("an array or map holds too many items"));
        }
        *total += count;
        Ok(count)
    }

    fn skip(&mut self, node: &Node) -> Result<(), PlanError> {
        match node {
            Node::Null => {}
            Node::Bool => {
                self.take(1)?;
            }
            Node::Varint | Node::Enum(_) => {
                self.varint()?;
            }
            Node::Float => {
                self.take(4)?;
            }
            Node::Double => {
                self.take(8)?;
            }
            Node::Str | Node::Bytes => {
                self.bytes()?;
            }
            Node::Fixed(n) => {
                self.take(*n)?;
            }
            Node::Nullable { null, value } => {
                if self.present(*null)? {
                    self.skip(value)?;
                }
            }
            Node::Record(fields) => {
                for f in fields.iter() {
                    self.skip(&f.node)?;
                }
            }
            Node::Array(item) => {
                let mut total = 0;
                loop {
                    match self.block(&mut total)? {
                        0 => break,
                        n => (0..n).try_for_each(|_| self.skip(item))?,
                    }
                }
            }
            Node::Map(value) => {
                let mut total = 0;
                loop {
                    match self.block(&mut total)? {
                        0 => break,
                        n => (0..n).try_for_each(|_| {
                            self.bytes()?;
                            self.skip(value)
                        })?,
                    }
                }
            }
        }
        Ok(())
    }
}

/// One value of the plan, read from `input`.
struct De<'p, 'r, 'de> {
    node: &'p Node,
    input: &'r mut Input<'de>,
}

impl<'p, 'r, 'de> De<'p, 'r, 'de> {
    fn symbol(&mut self, symbols: &'p [Option<Box<str>>]) -> Result<&'p str, PlanError> {
        let i = self.input.varint()?;
        match usize::try_from(i).ok().and_then(|i| symbols.get(i)) {
            Some(Some(name)) => Ok(name),
            Some(None) => Err(error("an enum symbol the reader does not have")),
            None => Err(error("enum index out of range")),
        }
    }
}

impl<'de> de::Deserializer<'de> for De<'_, '_, 'de> {
    type Error = PlanError;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, PlanError> {
        match self.node {
            Node::Null => visitor.visit_unit(),
            Node::Bool => match self.input.take(1)?[0] {
                0 => visitor.visit_bool(false),
                1 => visitor.visit_bool(true),
                _ => Err(error("a boolean byte other than 0 or 1")),
            },
            Node::Varint => visitor.visit_i64(self.input.varint()?),
            Node::Float => visitor.visit_f32(f32::from_le_bytes(self.input.array()?)),
            Node::Double => visitor.visit_f64(f64::from_le_bytes(self.input.array()?)),
            Node::Str => visitor.visit_borrowed_str(self.input.str()?),
            Node::Bytes => visitor.visit_borrowed_bytes(self.input.bytes()?),
            Node::Fixed(n) => visitor.visit_borrowed_bytes(self.input.take(*n)?),
            Node::Enum(symbols) => visitor.visit_str(self.symbol(symbols)?),
            Node::Nullable { null, value } => {
                if self.input.present(*null)? {
                    visitor.visit_some(De {
                        node: value,
                        input: self.input,
                    })
                } else {
                    visitor.visit_none()
                }
            }
            Node::Record(fields) => visitor.visit_map(Fields {
                fields: fields.iter(),
                input: self.input,
            }),
            Node::Array(item) => visitor.visit_seq(Blocks {
                node: item,
                input: self.input,
                left: 0,
                total: 0,
            }),
            Node::Map(value) => visitor.visit_map(Blocks {
                node: value,
                input: self.input,
                left: 0,
                total: 0,
            }),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PlanError> {
        match self.node {
            Node::Nullable { .. } | Node::Null => self.deserialize_any(visitor),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, PlanError> {
        match self.node {
            Node::Enum(symbols) => visitor.visit_enum(self.symbol(symbols)?.into_deserializer()),
            Node::Str => visitor.visit_enum(self.input.str()?.into_deserializer()),
            _ => Err(error("an enum read from a value that is not a symbol")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, PlanError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, PlanError> {
        self.input.skip(self.node)?;
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

/// A record's fields, the ones the reader lacks skipped in place.
struct Fields<'p, 'r, 'de> {
    fields: std::slice::Iter<'p, Field>,
    input: &'r mut Input<'de>,
}

impl<'de> de::MapAccess<'de> for Fields<'_, '_, 'de> {
    type Error = PlanError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PlanError> {
        loop {
            let Some(field) = self.fields.as_slice().first() else {
                return Ok(None);
            };
            match &field.name {
                Some(name) => {
                    return seed
                        .deserialize(name.as_ref().into_deserializer())
                        .map(Some)
                }
                None => {
                    self.input.skip(&field.node)?;
                    self.fields.next();
                }
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PlanError> {
        let field = self
            .fields
            .next()
            .ok_or_else(|| error("a value asked for after the last field"))?;
        seed.deserialize(De {
            node: &field.node,
            input: self.input,
        })
    }
}

/// The items of an array, or the entries of a map, block by block.
struct Blocks<'p, 'r, 'de> {
    node: &'p Node,
    input: &'r mut Input<'de>,
    /// Items left in the current block.
    left: i64,
    /// Items so far (bounded).
    total: i64,
}

impl Blocks<'_, '_, '_> {
    /// Whether another item follows (reading the next block's header when one ends).
    fn more(&mut self) -> Result<bool, PlanError> {
        if self.left == 0 {
            self.left = self.input.block(&mut self.total)?;
        }
        Ok(self.left > 0)
    }
}

impl<'de> de::SeqAccess<'de> for Blocks<'_, '_, 'de> {
    type Error = PlanError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, PlanError> {
        if !self.more()? {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(De {
            node: self.node,
            input: self.input,
        })
        .map(Some)
    }
}

impl<'de> de::MapAccess<'de> for Blocks<'_, '_, 'de> {
    type Error = PlanError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, PlanError> {
        if !self.more()? {
            return Ok(None);
        }
        self.left -= 1;
        let key: &'de str = self.input.str()?;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, PlanError> {
        seed.deserialize(De {
            node: self.node,
            input: self.input,
        })
    }
}
