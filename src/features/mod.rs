//! Per-customer windowed features: definitions read from a features file, compiled once, then
//! applied per event as tiles in event time (see [`tiles`]). Pure and synchronous: time is passed
//! in, never read from a clock.

pub mod expr;
pub mod fields;
pub mod packed;
pub mod spec;
pub mod tiles;

use crate::catalog::field::{Accessor, Val};
use crate::catalog::Catalog;
use crate::event::{Event, EventKind, KindTable};
use std::sync::Arc;
pub use tiles::Tiles;

/// How a feature combines the values of the events in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Number of matching events.
    Count,
    /// Sum of the field.
    Sum,
    /// Mean of the field.
    Avg,
    /// Smallest value of the field.
    Min,
    /// Largest value of the field.
    Max,
    /// Number of distinct values of the field.
    DistinctCount,
    /// Value of the field in the latest event (by event time).
    Last,
    /// Text of a string or enum field in the latest event (by event time): `last` of a
    /// non-numeric field (last country, last device).
    LastText,
    /// Σ value · 2^(−age / half-life): recent events weigh more.
    DecayedSum {
        /// Half-life in milliseconds.
        half_life_ms: i64,
    },
}

/// A feature's current value, as the public hash holds it.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureValue {
    /// Every aggregation but `last` of a text field.
    Num(f64),
    /// `last` of a string or enum field.
    Text(crate::event::Text),
}

impl std::fmt::Display for FeatureValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeatureValue::Num(n) => n.fmt(f),
            FeatureValue::Text(t) => f.write_str(t),
        }
    }
}

/// One compiled feature.
#[derive(Debug, Clone)]
pub struct FeatureDef {
    /// Name: the field in `nbo:features:{<customer-key>}` and the name rules use.
    pub name: Arc<str>,
    /// Hash of the whole definition (name, source, filter, aggregation, field, scale, window):
    /// stored with the tiles, so a changed definition starts from empty tiles, never from tiles
    /// that meant something else.
    pub id: u32,
    /// Record type that feeds it.
    pub source: EventKind,
    /// Which events of that type count.
    pub filter: expr::Expr,
    /// Definitions with the same source and filter text share this id, so an event evaluates
    /// each distinct filter once however many features use it.
    pub filter_id: u16,
    /// How values combine.
    pub aggregation: Aggregation,
    /// The aggregated field (none for counts).
    pub field: Option<Accessor>,
    /// Multiplier applied to the field (e.g. 0.01 turns minor units into major units).
    pub scale: f64,
    /// Window length, ms.
    pub window_ms: i64,
    /// Tile width, ms (divides the window).
    pub tile_ms: i64,
    /// Tiles per window (`window_ms / tile_ms`), computed once: a division per use would be the
    /// costliest instruction of a feature update.
    pub tiles_per_window: i64,
}

impl FeatureDef {
    /// The value and distinct-hash an event contributes, or `None` when its field is absent.
    pub fn contribution(&self, event: &Event) -> Option<(f64, u32)> {
        let Some(get) = self.field else {
            return Some((1.0, 0));
        };
        match get.read(event) {
            Val::Null => None,
            Val::Num(n) => Some((n * self.scale, tiles::fnv32(&n.to_bits().to_le_bytes()))),
            Val::Bool(b) => Some((f64::from(u8::from(b)), u32::from(b))),
            Val::Str(s) | Val::Sym(s) => Some((0.0, tiles::fnv32(s.as_bytes()))),
        }
    }

    /// The text an event contributes to a [`Aggregation::LastText`] feature, if its field has one.
    pub fn text_contribution<'e>(&self, event: &'e Event) -> Option<&'e str> {
        match self.field?.read(event) {
            Val::Str(s) => Some(s),
            Val::Sym(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the feature's value is text ([`Aggregation::LastText`]) rather than a number.
    pub fn is_text(&self) -> bool {
        self.aggregation == Aggregation::LastText
    }

    /// The first tile index any evaluation at or after `horizon` (ms) needs.
    pub fn first_needed_tile(&self, horizon: i64) -> i64 {
        self.first_needed_after(horizon.div_euclid(self.tile_ms))
    }

    /// [`FeatureDef::first_needed_tile`] given the horizon's tile index.
    #[inline]
    pub fn first_needed_after(&self, horizon_tile: i64) -> i64 {
        horizon_tile - self.tiles_per_window + 1
    }
}

/// One time's tile index for each tile width met, computed once per width however many
/// features share it (features have a handful of window lengths between them, and a 64-bit
/// division costs more than the rest of a tile update).
#[derive(Debug, Clone)]
pub struct TileIndex {
    at: i64,
    seen: [(i64, i64); 8],
    len: usize,
}

impl TileIndex {
    /// Tile indexes of time `at` (ms).
    pub fn new(at: i64) -> Self {
        Self {
            at,
            seen: [(0, 0); 8],
            len: 0,
        }
    }

    /// The time (ms).
    #[inline]
    pub fn at(&self) -> i64 {
        self.at
    }

    /// The index of the tile of width `tile_ms` that holds the time.
    #[inline]
    pub fn of(&mut self, tile_ms: i64) -> i64 {
        if let Some(&(_, index)) = self.seen[..self.len].iter().find(|(w, _)| *w == tile_ms) {
            return index;
        }
        let index = self.at.div_euclid(tile_ms);
        if self.len < self.seen.len() {
            self.seen[self.len] = (tile_ms, index);
            self.len += 1;
        }
        index
    }
}

/// The compiled feature set, indexed by source record type.
#[derive(Debug, Clone)]
pub struct FeatureSet {
    defs: Vec<FeatureDef>,
    by_kind: KindTable<Vec<usize>>,
    longest_window_ms: i64,
    catalog: Arc<Catalog>,
    fingerprint: u32,
}

impl FeatureSet {
    /// Indexes compiled definitions over the built-in records.
    pub fn new(defs: Vec<FeatureDef>) -> Self {
        Self::in_catalog(defs, Catalog::builtin())
    }

    /// Indexes compiled definitions over the records of `catalog` (what they were compiled
    /// against; rules compiled with this set resolve their sources and fields in it too).
    pub fn in_catalog(defs: Vec<FeatureDef>, catalog: Arc<Catalog>) -> Self {
        let mut by_kind = KindTable::<Vec<usize>>::default();
        for (i, d) in defs.iter().enumerate() {
            by_kind.entry(d.source).push(i);
        }
        let longest_window_ms = defs.iter().map(|d| d.window_ms).max().unwrap_or(0);
        // The release too: one that computes or writes values differently rewrites hashes whole.
        let mut identity = env!("CARGO_PKG_VERSION").as_bytes().to_vec();
        identity.extend(defs.iter().flat_map(|d| d.id.to_le_bytes()));
        let fingerprint = tiles::fnv32(&identity).max(1);
        Self {
            defs,
            by_kind,
            longest_window_ms,
            catalog,
            fingerprint,
        }
    }

    /// Fingerprint of the whole set: its definitions' ids, in order, and the release (never 0). A
    /// customer's state records the fingerprint of the set its public hash was written with, so
    /// a reload knows whether the hash holds what these definitions compute.
    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    /// The input records these features (and rules compiled with them) read.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Definitions in slot order.
    pub fn defs(&self) -> &[FeatureDef] {
        &self.defs
    }

    /// Slots fed by a record type.
    pub fn slots_for(&self, kind: EventKind) -> &[usize] {
        self.by_kind.get(kind).map_or(&[], Vec::as_slice)
    }

    /// Longest window, ms.
    pub fn longest_window_ms(&self) -> i64 {
        self.longest_window_ms
    }

    /// Slot of a feature by name.
    pub fn slot(&self, name: &str) -> Option<usize> {
        self.defs.iter().position(|d| &*d.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::TileIndex;

    #[test]
    fn a_tile_index_is_the_division_whatever_the_widths_and_their_order() {
        for at in [-86_400_001i64, -1, 0, 1, 59_999, 60_000, 1_790_000_123_456] {
            let mut index = TileIndex::new(at);
            // More widths than it remembers, each asked twice, in two orders.
            let widths: Vec<i64> = (1..=12).map(|m| m * 60_000).collect();
            for &w in widths.iter().chain(widths.iter().rev()) {
                assert_eq!(index.of(w), at.div_euclid(w), "at {at}, width {w}");
            }
            assert_eq!(index.at(), at);
        }
    }
}
