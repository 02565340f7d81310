//! Per-customer windowed features: definitions, tiles and window evaluation. Pure and synchronous:
//! time is passed in, never read from a clock.

pub mod catalog;
pub mod tiles;

use crate::event::{Event, EventKind};
pub use tiles::{FeatureTiles, Tile};

/// How a feature combines the values of the events in its window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Number of matching events.
    Count,
    /// Sum of the field.
    Sum,
    /// Largest value of the field.
    Max,
    /// Number of distinct values (the field's value is a hash of the distinct key).
    DistinctCount,
}

/// One feature: which events feed it, what it aggregates, over how long.
///
/// The filter and value are plain functions here; issue 3 makes them expressions read from the
/// features file, behind this same struct.
#[derive(Debug, Clone)]
pub struct FeatureDef {
    /// Name: the field in `nbo:features:{<customer-key>}` and the name rules use.
    pub name: &'static str,
    /// Record types that feed the feature.
    pub sources: &'static [EventKind],
    /// Which events of that type count.
    pub filter: fn(&Event) -> bool,
    /// The value aggregated (1.0 for counts; a hash for distinct counts).
    pub value: fn(&Event) -> f64,
    /// How values combine.
    pub aggregation: Aggregation,
    /// Window length in milliseconds.
    pub window_ms: i64,
}

impl FeatureDef {
    /// Width of one tile: about 1/24 of the window, at least one minute, dividing the window.
    pub fn tile_ms(&self) -> i64 {
        tiles::tile_width(self.window_ms)
    }
}
