//! Tiled sliding windows in event time.
//!
//! A window of length W is kept as tiles of width w (W is a multiple of w). A tile holds the partial
//! aggregate of the events whose event time falls in it. The window "as of" time t covers the W/w
//! tiles ending with the tile that contains t: tile-aligned, so an event counts in the window at t
//! exactly when `tile(e) > tile(t) - W/w` and `tile(e) <= tile(t)`. Tiles are commutative partial
//! aggregates, so late and out-of-order events land in their own tile and every window that covers
//! it sees them, whatever the arrival order.

use super::Aggregation;
use serde::{Deserialize, Serialize};

/// Picks the tile width for a window: about 1/24 of it, at least one minute, dividing it evenly.
pub fn tile_width(window_ms: i64) -> i64 {
    const MINUTE: i64 = 60_000;
    let target = (window_ms / 24).max(MINUTE);
    // Round down to a whole number of minutes that divides the window.
    let mut minutes = (target / MINUTE).max(1);
    while minutes > 1 && window_ms % (minutes * MINUTE) != 0 {
        minutes -= 1;
    }
    if window_ms % (minutes * MINUTE) == 0 {
        minutes * MINUTE
    } else {
        window_ms.clamp(1, MINUTE)
    }
}

/// Partial aggregate of one tile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tile {
    /// Tile index: event time / tile width.
    pub index: i64,
    /// Events in the tile.
    pub count: u32,
    /// Sum of values.
    pub sum: f64,
    /// Largest value.
    pub max: f64,
    /// Distinct value hashes (only for distinct counts; small by construction).
    pub distinct: Vec<u64>,
}

impl Tile {
    fn new(index: i64) -> Self {
        Self {
            index,
            count: 0,
            sum: 0.0,
            max: f64::NEG_INFINITY,
            distinct: Vec::new(),
        }
    }
}

/// The tiles of one feature for one customer, sorted by index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureTiles {
    /// Tiles in ascending index order.
    pub tiles: Vec<Tile>,
}

impl FeatureTiles {
    /// Adds one event's value at `event_time` (milliseconds).
    pub fn add(&mut self, aggregation: Aggregation, tile_ms: i64, event_time: i64, value: f64) {
        let index = event_time.div_euclid(tile_ms);
        let pos = match self.tiles.binary_search_by_key(&index, |t| t.index) {
            Ok(pos) => pos,
            Err(pos) => {
                self.tiles.insert(pos, Tile::new(index));
                pos
            }
        };
        let tile = &mut self.tiles[pos];
        tile.count += 1;
        tile.sum += value;
        if value > tile.max {
            tile.max = value;
        }
        if aggregation == Aggregation::DistinctCount {
            let hash = value.to_bits();
            if let Err(at) = tile.distinct.binary_search(&hash) {
                tile.distinct.insert(at, hash);
            }
        }
    }

    /// The window's value as of `at` (milliseconds): combines the tiles the window covers.
    pub fn value(&self, aggregation: Aggregation, tile_ms: i64, window_ms: i64, at: i64) -> f64 {
        let last = at.div_euclid(tile_ms);
        let first = last - window_ms / tile_ms + 1;
        let start = self.tiles.partition_point(|t| t.index < first);
        let covered = self.tiles[start..].iter().take_while(|t| t.index <= last);
        match aggregation {
            Aggregation::Count => covered.fold(0.0, |acc, t| acc + f64::from(t.count)),
            Aggregation::Sum => covered.fold(0.0, |acc, t| acc + t.sum),
            Aggregation::Max => {
                let max = covered.map(|t| t.max).fold(f64::NEG_INFINITY, f64::max);
                if max.is_finite() {
                    max
                } else {
                    0.0
                }
            }
            Aggregation::DistinctCount => {
                let mut all: Vec<u64> = covered.flat_map(|t| t.distinct.iter().copied()).collect();
                all.sort_unstable();
                all.dedup();
                all.len() as f64
            }
        }
    }

    /// Drops tiles that no window as of `horizon` or later can cover.
    pub fn retire(&mut self, tile_ms: i64, window_ms: i64, horizon: i64) {
        let first_needed = horizon.div_euclid(tile_ms) - window_ms / tile_ms + 1;
        let keep_from = self.tiles.partition_point(|t| t.index < first_needed);
        if keep_from > 0 {
            self.tiles.drain(..keep_from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn tile_width_divides_the_window() {
        for window in [
            60_000,
            600_000,
            H,
            24 * H,
            7 * 24 * H,
            30 * 24 * H,
            90 * 24 * H,
            365 * 24 * H,
        ] {
            let w = tile_width(window);
            assert!(w >= 60_000 || w == window, "{window}: {w}");
            assert_eq!(window % w, 0, "{window}: {w}");
            assert!(window / w <= 60, "{window}: {} tiles", window / w);
        }
    }

    #[test]
    fn late_events_count_in_every_window_they_fall_in() {
        let tile = tile_width(24 * H);
        let mut in_order = FeatureTiles::default();
        let mut shuffled = FeatureTiles::default();
        let times = [0, 2 * H, 5 * H, 23 * H, 25 * H, 30 * H];
        for t in times {
            in_order.add(Aggregation::Sum, tile, t, 10.0);
        }
        for t in times.iter().rev() {
            shuffled.add(Aggregation::Sum, tile, *t, 10.0);
        }
        for at in [H, 10 * H, 24 * H, 30 * H, 50 * H] {
            assert_eq!(
                in_order.value(Aggregation::Sum, tile, 24 * H, at),
                shuffled.value(Aggregation::Sum, tile, 24 * H, at)
            );
        }
        assert_eq!(in_order.value(Aggregation::Sum, tile, 24 * H, 23 * H), 40.0);
        // At 30h the window covers (6h, 30h]: 23h, 25h and 30h.
        assert_eq!(
            in_order.value(Aggregation::Count, tile, 24 * H, 30 * H),
            3.0
        );
    }

    #[test]
    fn distinct_and_max_and_retire() {
        let tile = tile_width(H);
        let mut t = FeatureTiles::default();
        t.add(Aggregation::DistinctCount, tile, 1_000, 7.0);
        t.add(Aggregation::DistinctCount, tile, 120_000, 7.0);
        t.add(Aggregation::DistinctCount, tile, 240_000, 9.0);
        assert_eq!(t.value(Aggregation::DistinctCount, tile, H, 300_000), 2.0);
        assert_eq!(t.value(Aggregation::Max, tile, H, 300_000), 9.0);
        t.retire(tile, H, 10 * H);
        assert!(t.tiles.is_empty());
        assert_eq!(t.value(Aggregation::Max, tile, H, 10 * H), 0.0);
    }
}
