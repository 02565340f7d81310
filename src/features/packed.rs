//! The packed encoding of a customer's tiles: what stored state format 8 holds for
//! [`crate::customer::CustomerState::features`] (`state::STATE_FORMAT`).
//!
//! Format 7 stored each tile as postcard stores its tuple: the tile index as a varint of 3 to 4
//! bytes and every value as an 8-byte `f64`. The tiles are most of a customer's stored state, and
//! the state is most of what a checkpoint sends to Redis. Here, without losing a bit:
//!
//! - a feature's first tile index is stored whole, each next one as the step from the one before
//!   (tiles are ascending, so a step is one byte);
//! - a number that is exactly `n / 10^s` for an integer `n` and `s` up to 6 (a count, an amount
//!   in cents, a balance) is stored as the varint of `n` and `s`; any other (`NaN`, the
//!   infinities, `-0.0`, the sums whose last bits are rounding) as its 8 bytes behind a one-byte
//!   tag. Decoding computes `n / 10^s` in the same `f64` arithmetic the check used, so every value
//!   reads back bit for bit;
//! - decayed sums, which are never short decimals, stay 8 bytes, with no tag;
//! - a distinct count's sorted hashes are stored as steps too.
//!
//! Layout (every integer a LEB128 varint; "zigzag" is the signed varint of protobuf):
//!
//! ```text
//! features := count, feature*          (only features that hold a tile)
//! feature  := id, kind (0 count, 1 sum, 2 avg, 3 min, 4 max, 5 distinct, 6 last, 7 decayed,
//!             8 last text: `Tiles`' order), tiles, tile*
//! tile     := zigzag(index − previous index, or the index itself for the first), then by kind:
//!             count: n | sum, min, max: number | avg: number, n | distinct: len, zigzag steps |
//!             last: zigzag(time), number | decayed: f64 LE | last text: zigzag(time), len, UTF-8
//! number   := (zigzag(n) << 3 | s) for n / 10^s, s ≤ 6  |  7, f64 LE
//! ```

use super::tiles::{TileVec, Tiles};
use std::cell::RefCell;

/// `10^s` for the scales a number is tried at: exact in `f64`, so the division that decodes a
/// number is the one that checked it.
const SCALES: [f64; 7] = [1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0, 1_000_000.0];

/// The tag of a number stored as its 8 bytes.
const RAW: u64 = 7;

/// Largest `|n|` stored as a decimal: `zigzag(n) << 3` stays within 64 bits, and every such `n`
/// is an exact `f64`.
const MAX_DECIMAL: f64 = (1u64 << 50) as f64;

/// A packed encoding that does not read: truncated, an unknown kind or tag, bytes left over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packed tiles: {0}")]
pub struct PackedError(&'static str);

/// Appends the packed encoding of `features` (those that hold a tile) to `out`.
pub fn encode(features: &[(u32, Tiles)], out: &mut Vec<u8>) {
    let held = || features.iter().filter(|(_, t)| !t.is_empty());
    put(out, held().count() as u64);
    for (id, tiles) in held() {
        put(out, u64::from(*id));
        out.push(kind(tiles));
        put(out, tiles.len() as u64);
        let mut steps = Steps::default();
        match tiles {
            Tiles::Count(v) => v.iter().for_each(|t| {
                steps.put(out, t.0);
                put(out, u64::from(t.1));
            }),
            Tiles::Sum(v) | Tiles::Min(v) | Tiles::Max(v) => v.iter().for_each(|t| {
                steps.put(out, t.0);
                number(out, t.1);
            }),
            Tiles::Avg(v) => v.iter().for_each(|t| {
                steps.put(out, t.0);
                number(out, t.1);
                put(out, u64::from(t.2));
            }),
            Tiles::Distinct(v) => v.iter().for_each(|t| {
                steps.put(out, t.0);
                put(out, t.1.len() as u64);
                let mut hashes = Steps::default();
                t.1.iter().for_each(|h| hashes.put(out, i64::from(*h)));
            }),
            Tiles::Last(v) => v.iter().for_each(|t| {
                steps.put(out, t.0);
                put(out, zigzag(t.1));
                number(out, t.2);
            }),
            Tiles::Decayed(v) => v.iter().for_each(|t| {
                steps.put(out, t.0);
                out.extend_from_slice(&t.1.to_le_bytes());
            }),
            Tiles::LastText(v) => v.iter().for_each(|t| {
                steps.put(out, t.0);
                put(out, zigzag(t.1));
                put(out, t.2.len() as u64);
                out.extend_from_slice(t.2.as_bytes());
            }),
        }
    }
}

/// Reads what [`encode`] wrote: all of `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Vec<(u32, Tiles)>, PackedError> {
    let mut r = Reader(bytes);
    // A feature takes at least 3 bytes (id, kind, tile count).
    let count = r.len(3)?;
    let mut features = Vec::with_capacity(count);
    for _ in 0..count {
        let id = u32::try_from(r.varint()?).map_err(|_| PackedError("feature id"))?;
        let kind = r.byte()?;
        // A tile takes at least 2 bytes (its index step and a value).
        let n = r.len(2)?;
        let mut steps = Steps::default();
        let tiles = match kind {
            0 => Tiles::Count(r.tiles(n, |r| Ok((steps.get(r)?, r.u32()?)))?),
            1 => Tiles::Sum(r.tiles(n, |r| Ok((steps.get(r)?, r.number()?)))?),
            2 => Tiles::Avg(r.tiles(n, |r| Ok((steps.get(r)?, r.number()?, r.u32()?)))?),
            3 => Tiles::Min(r.tiles(n, |r| Ok((steps.get(r)?, r.number()?)))?),
            4 => Tiles::Max(r.tiles(n, |r| Ok((steps.get(r)?, r.number()?)))?),
            5 => Tiles::Distinct(r.tiles(n, |r| {
                let index = steps.get(r)?;
                let len = r.len(1)?;
                let mut hashes = Steps::default();
                let mut v = Vec::with_capacity(len);
                for _ in 0..len {
                    let h = hashes.get(r)?;
                    v.push(u32::try_from(h).map_err(|_| PackedError("distinct hash"))?);
                }
                Ok((index, v))
            })?),
            6 => Tiles::Last(r.tiles(n, |r| Ok((steps.get(r)?, r.zigzag()?, r.number()?)))?),
            7 => Tiles::Decayed(r.tiles(n, |r| Ok((steps.get(r)?, r.f64()?)))?),
            8 => Tiles::LastText(r.tiles(n, |r| {
                let index = steps.get(r)?;
                let time = r.zigzag()?;
                let len = r.len(1)?;
                let text = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| PackedError("last text is not UTF-8"))?;
                Ok((index, time, text.into()))
            })?),
            _ => return Err(PackedError("unknown tile kind")),
        };
        features.push((id, tiles));
    }
    if !r.0.is_empty() {
        return Err(PackedError("bytes after the last feature"));
    }
    Ok(features)
}

/// The kind byte of `tiles` (the order of [`Tiles`]' variants).
fn kind(tiles: &Tiles) -> u8 {
    match tiles {
        Tiles::Count(_) => 0,
        Tiles::Sum(_) => 1,
        Tiles::Avg(_) => 2,
        Tiles::Min(_) => 3,
        Tiles::Max(_) => 4,
        Tiles::Distinct(_) => 5,
        Tiles::Last(_) => 6,
        Tiles::Decayed(_) => 7,
        Tiles::LastText(_) => 8,
    }
}

/// Appends `n` as a LEB128 varint.
fn put(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

/// Appends a number: a short decimal as its digits and scale, anything else as its 8 bytes.
fn number(out: &mut Vec<u8>, v: f64) {
    for (s, scale) in SCALES.iter().enumerate() {
        let n = (v * scale).round();
        // Checked as decoding computes it, from the integer: `-0.0` rounds to an `n` that reads
        // back as `0.0`, so it is stored raw.
        if n.abs() < MAX_DECIMAL && ((n as i64) as f64 / scale).to_bits() == v.to_bits() {
            put(out, zigzag(n as i64) << 3 | s as u64);
            return;
        }
    }
    put(out, RAW);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Integers stored as the step from the one before (the first whole).
#[derive(Default)]
struct Steps(Option<i64>);

impl Steps {
    fn put(&mut self, out: &mut Vec<u8>, n: i64) {
        put(out, zigzag(n.wrapping_sub(self.0.unwrap_or(0))));
        self.0 = Some(n);
    }

    fn get(&mut self, r: &mut Reader<'_>) -> Result<i64, PackedError> {
        let n = self.0.unwrap_or(0).wrapping_add(r.zigzag()?);
        self.0 = Some(n);
        Ok(n)
    }
}

/// What is left to read.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, PackedError> {
        let (&b, rest) = self.0.split_first().ok_or(PackedError("truncated"))?;
        self.0 = rest;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PackedError> {
        if self.0.len() < n {
            return Err(PackedError("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn varint(&mut self) -> Result<u64, PackedError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(n);
            }
        }
        Err(PackedError("varint longer than 64 bits"))
    }

    /// A count of items that follow, each at least `min_size` bytes: no more than the bytes left
    /// allow (what bounds the allocation a corrupt count can ask for).
    fn len(&mut self, min_size: usize) -> Result<usize, PackedError> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.0.len() / min_size)
            .ok_or(PackedError("count beyond the bytes left"))
    }

    fn u32(&mut self) -> Result<u32, PackedError> {
        u32::try_from(self.varint()?).map_err(|_| PackedError("count beyond 32 bits"))
    }

    fn zigzag(&mut self) -> Result<i64, PackedError> {
        self.varint().map(unzigzag)
    }

    fn f64(&mut self) -> Result<f64, PackedError> {
        let bytes = self.take(8)?;
        Ok(f64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn number(&mut self) -> Result<f64, PackedError> {
        let tag = self.varint()?;
        if tag == RAW {
            return self.f64();
        }
        let scale = *SCALES
            .get((tag & 7) as usize)
            .ok_or(PackedError("unknown number tag"))?;
        Ok(unzigzag(tag >> 3) as f64 / scale)
    }

    fn tiles<T>(
        &mut self,
        n: usize,
        mut tile: impl FnMut(&mut Self) -> Result<T, PackedError>,
    ) -> Result<TileVec<T>, PackedError> {
        let mut v = TileVec::with_capacity(n);
        for _ in 0..n {
            v.push(tile(self)?);
        }
        Ok(v)
    }
}

thread_local! {
    /// The buffer a state's tiles are packed into before the state's serializer copies them:
    /// one per thread, so a state write allocates nothing for it.
    static PACKING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `#[serde(with = ...)]` for [`crate::customer::CustomerState::features`]: the packed tiles as
/// one byte string.
pub mod serde_bytes {
    use super::*;

    /// Serializes `features` packed.
    pub fn serialize<S: serde::Serializer>(
        features: &[(u32, Tiles)],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        PACKING.with(|buf| match buf.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                encode(features, &mut buf);
                serializer.serialize_bytes(&buf)
            }
            // Only a serializer that serializes a state inside a state's tiles could get here.
            Err(_) => {
                let mut own = Vec::new();
                encode(features, &mut own);
                serializer.serialize_bytes(&own)
            }
        })
    }

    /// Reads packed features.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<(u32, Tiles)>, D::Error> {
        struct Packed;
        impl<'de> serde::de::Visitor<'de> for Packed {
            type Value = Vec<(u32, Tiles)>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("packed tiles")
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Self::Value, E> {
                decode(bytes).map_err(E::custom)
            }
        }
        deserializer.deserialize_bytes(Packed)
    }
}

#[cfg(test)]
#[path = "packed_tests.rs"]
mod tests;
