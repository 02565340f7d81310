//! Runs a compiled transcoding over one datum: reads the writer's bytes, writes the reader's.
//!
//! Hostile input is bounded as the typed decoder bounds it: lengths are checked against the bytes
//! there are, arrays and maps hold at most [`MAX_ITEMS`] items, and the output at most
//! [`MAX_OUTPUT`] bytes (defaults filled into many array items could otherwise inflate a record).

use super::compile::{FieldStep, Op, Promote, RecordOp, Shape};
use std::cell::RefCell;

/// Most items of one array or map: the typed decoder's own bound (`max_seq_size`).
pub const MAX_ITEMS: i64 = crate::codec::MAX_SEQ_LEN as i64;
/// A scratch buffer grown past this by an inflated record is given back, not kept per thread.
const KEEP_SCRATCH: usize = 1024 * 1024;
/// Most bytes one transcoded record may grow to.
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// Why one record could not be transcoded. Every case is permanent: the record is dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    /// The bytes are not a datum of the writer schema.
    #[error("{0}")]
    Malformed(String),
    /// Bytes left after the datum.
    #[error("{0} trailing bytes after the Avro datum")]
    Trailing(usize),
    /// An enum symbol the reader does not have, and the reader's enum has no default.
    #[error("{0}")]
    UnknownEnumSymbol(String),
    /// The record took a writer union branch that matches nothing in the reader schema.
    #[error("{0}")]
    Unreadable(String),
}

fn malformed(what: &str) -> TranscodeError {
    TranscodeError::Malformed(what.to_string())
}

/// Scratch buffers for records whose fields are reordered: one per nesting level in use, kept per
/// thread, so transcoding allocates nothing once warm.
#[derive(Default)]
struct Pools {
    bytes: Vec<Vec<u8>>,
    spans: Vec<Vec<(usize, usize)>>,
}

thread_local! {
    static POOLS: RefCell<Pools> = RefCell::new(Pools::default());
}

struct Input<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    #[inline]
    fn varint(&mut self) -> Result<i64, TranscodeError> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| malformed("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(malformed("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], TranscodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| malformed("truncated: a length runs past the end of the record"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn length(&mut self) -> Result<usize, TranscodeError> {
        let n = self.varint()?;
        usize::try_from(n).map_err(|_| malformed("negative length"))
    }

    /// A block's item count (a negative count is followed by the block's size in bytes).
    fn block(&mut self, total: &mut i64) -> Result<(i64, Option<usize>), TranscodeError> {
        let count = self.varint()?;
        let (count, size) = if count < 0 {
            let count = count
                .checked_neg()
                .ok_or_else(|| malformed("bad block count"))?;
            (count, Some(self.length()?))
        } else {
            (count, None)
        };
        // Compared before adding: a block count near i64::MAX must not wrap the total.
        if count > MAX_ITEMS - *total {
            return Err(malformed(&format!(
                "an array or map holds more than {MAX_ITEMS} items"
            )));
        }
        *total += count;
        Ok((count, size))
    }

    fn skip(&mut self, shape: &Shape) -> Result<(), TranscodeError> {
        match shape {
            Shape::Null => {}
            Shape::Bool => {
                self.take(1)?;
            }
            Shape::Varint => {
                self.varint()?;
            }
            Shape::Float => {
                self.take(4)?;
            }
            Shape::Double => {
                self.take(8)?;
            }
            Shape::Bytes => {
                let n = self.length()?;
                self.take(n)?;
            }
            Shape::Fixed(n) => {
                self.take(*n)?;
            }
            Shape::Array(item) => self.skip_blocks(|input| input.skip(item))?,
            Shape::Map(value) => self.skip_blocks(|input| {
                input.skip(&Shape::Bytes)?;
                input.skip(value)
            })?,
            Shape::Union(branches) => {
                let index = self.varint()?;
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| malformed("union branch index out of range"))?;
                self.skip(branch)?;
            }
            Shape::Record(fields) => {
                for field in fields.iter() {
                    self.skip(field)?;
                }
            }
        }
        Ok(())
    }

    fn skip_blocks(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<(), TranscodeError>,
    ) -> Result<(), TranscodeError> {
        let mut total = 0;
        loop {
            match self.block(&mut total)? {
                (0, _) => return Ok(()),
                (_, Some(size)) => {
                    self.take(size)?;
                }
                (count, None) => {
                    for _ in 0..count {
                        item(self)?;
                    }
                }
            }
        }
    }

    #[inline]
    fn copy(&mut self, shape: &Shape, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        let start = self.pos;
        self.skip(shape)?;
        out.extend_from_slice(&self.buf[start..self.pos]);
        Ok(())
    }
}

#[inline]
fn write_varint(out: &mut Vec<u8>, v: i64) {
    let mut n = ((v << 1) ^ (v >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Transcodes all of `input` with `op`, appending to `out`.
pub(super) fn run(op: &Op, input: &[u8], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
    let mut input = Input { buf: input, pos: 0 };
    POOLS.with(|pools| {
        let mut pools = pools.borrow_mut();
        step(op, &mut input, out, &mut pools)
    })?;
    match input.buf.len() - input.pos {
        0 => Ok(()),
        n => Err(TranscodeError::Trailing(n)),
    }
}

fn step(
    op: &Op,
    input: &mut Input<'_>,
    out: &mut Vec<u8>,
    pools: &mut Pools,
) -> Result<(), TranscodeError> {
    match op {
        Op::Copy(shape) => input.copy(shape, out)?,
        Op::Promote(p) => promote(*p, input, out)?,
        Op::Enum(map) => {
            let index = input.varint()?;
            let mapped = usize::try_from(index)
                .ok()
                .and_then(|i| map.get(i))
                .ok_or_else(|| malformed("enum index out of range"))?;
            match mapped {
                Ok(i) => write_varint(out, i64::from(*i)),
                Err(symbol) => {
                    return Err(TranscodeError::UnknownEnumSymbol(format!(
                    "enum symbol {symbol} is not in the reader schema, whose enum has no default"
                )))
                }
            }
        }
        Op::Record(record) => self::record(record, input, out, pools)?,
        Op::Array(item) => {
            blocks(input, out, |input, out| step(item, input, out, pools))?;
        }
        Op::Map(value) => {
            blocks(input, out, |input, out| {
                input.copy(&Shape::Bytes, out)?;
                step(value, input, out, pools)
            })?;
        }
        Op::FromUnion(branches) => {
            let index = input.varint()?;
            let branch = usize::try_from(index)
                .ok()
                .and_then(|i| branches.get(i))
                .ok_or_else(|| malformed("union branch index out of range"))?;
            match branch {
                Ok((reader_index, op)) => {
                    if let Some(i) = reader_index {
                        write_varint(out, i64::from(*i));
                    }
                    step(op, input, out, pools)?;
                }
                Err(why) => return Err(TranscodeError::Unreadable(why.to_string())),
            }
        }
        Op::ToUnion(index, op) => {
            write_varint(out, i64::from(*index));
            step(op, input, out, pools)?;
        }
    }
    Ok(())
}

fn promote(p: Promote, input: &mut Input<'_>, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
    let int = |input: &mut Input<'_>| -> Result<i32, TranscodeError> {
        i32::try_from(input.varint()?).map_err(|_| malformed("int out of range"))
    };
    match p {
        Promote::IntToFloat => out.extend_from_slice(&(int(input)? as f32).to_le_bytes()),
        Promote::IntToDouble => out.extend_from_slice(&f64::from(int(input)?).to_le_bytes()),
        Promote::LongToFloat => out.extend_from_slice(&(input.varint()? as f32).to_le_bytes()),
        Promote::LongToDouble => out.extend_from_slice(&(input.varint()? as f64).to_le_bytes()),
        Promote::FloatToDouble => {
            let b = input.take(4)?;
            let f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            out.extend_from_slice(&f64::from(f).to_le_bytes());
        }
    }
    Ok(())
}

/// An array or map whose items change size: written back as plain blocks (count, items).
fn blocks(
    input: &mut Input<'_>,
    out: &mut Vec<u8>,
    mut item: impl FnMut(&mut Input<'_>, &mut Vec<u8>) -> Result<(), TranscodeError>,
) -> Result<(), TranscodeError> {
    let mut total = 0;
    loop {
        let (count, _size) = input.block(&mut total)?;
        write_varint(out, count);
        if count == 0 {
            return Ok(());
        }
        for _ in 0..count {
            item(input, out)?;
            if out.len() > MAX_OUTPUT {
                return Err(malformed(&format!(
                    "the record grows past {MAX_OUTPUT} bytes when read with the reader schema"
                )));
            }
        }
    }
}

fn record(
    record: &RecordOp,
    input: &mut Input<'_>,
    out: &mut Vec<u8>,
    pools: &mut Pools,
) -> Result<(), TranscodeError> {
    if record.in_order {
        // Writer fields arrive in reader order: stream, with the defaults of the reader fields
        // the writer lacks written where they belong (commonly at the end: a newer reader).
        let mut next = 0;
        for s in record.steps.iter() {
            match s {
                FieldStep::Read { slot, op } => {
                    defaults(record, next..*slot, out);
                    step(op, input, out, pools)?;
                    next = slot + 1;
                }
                FieldStep::Skip(shape) => input.skip(shape)?,
            }
        }
        defaults(record, next..record.slots, out);
        return Ok(());
    }
    // Fields move or defaults come between them: gather each field's bytes, then write them in
    // the reader's order.
    let mut scratch = pools.bytes.pop().unwrap_or_default();
    let mut spans = pools.spans.pop().unwrap_or_default();
    spans.clear();
    spans.resize(record.slots, (0, 0));
    scratch.clear();
    let result = (|| {
        for s in record.steps.iter() {
            match s {
                FieldStep::Read { slot, op } => {
                    let start = scratch.len();
                    step(op, input, &mut scratch, pools)?;
                    spans[*slot] = (start, scratch.len());
                }
                FieldStep::Skip(shape) => input.skip(shape)?,
            }
        }
        for (slot, (start, end)) in spans.iter().enumerate() {
            match &record.defaults[slot] {
                Some(default) => out.extend_from_slice(default),
                None => out.extend_from_slice(&scratch[*start..*end]),
            }
        }
        if out.len() > MAX_OUTPUT {
            return Err(malformed(
                "the record grows too large when read with the reader schema",
            ));
        }
        Ok(())
    })();
    if scratch.capacity() <= KEEP_SCRATCH {
        pools.bytes.push(scratch);
    }
    pools.spans.push(spans);
    result
}

/// Writes the encoded defaults of reader slots `slots` (all filled by defaults: the compiler
/// checked that every slot no writer field reads has one).
fn defaults(record: &RecordOp, slots: std::ops::Range<usize>, out: &mut Vec<u8>) {
    for default in record.defaults[slots].iter().flatten() {
        out.extend_from_slice(default);
    }
}
