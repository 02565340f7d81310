//! Tiled sliding windows in event time.
//!
//! A window of length W is kept as tiles of width w (W is a multiple of w). A tile holds the partial
//! aggregate of the events whose event time falls in it, and only what its aggregation needs (a
//! count, a sum, a min, ...), so state stays small. The window "as of" time t covers the W/w tiles
//! ending with the tile that contains t: an event counts in the window at t exactly when
//! `tile(t) - W/w < tile(e) <= tile(t)`. Tiles are commutative partial aggregates, so late and
//! out-of-order events land in their own tile and every window covering it sees them, whatever the
//! arrival order (`last` breaks ties of equal event time by the larger value, for the same reason).

use super::Aggregation;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// Tiles of one feature. The first two live inline, inside the customer's state: most customers
/// have few active tiles per feature, and one contiguous state is far kinder to the CPU cache than
/// one heap block per feature (`cargo bench --bench operator`). Serialized like a `Vec`.
pub type TileVec<T> = SmallVec<[T; 2]>;

/// Picks the tile width for a window: about 1/24 of it, at least one minute, dividing it evenly.
pub fn tile_width(window_ms: i64) -> i64 {
    const MINUTE: i64 = 60_000;
    let target = (window_ms / 24).max(MINUTE);
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

/// The partial aggregates of one feature for one customer, by tile index (ascending).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Tiles {
    /// Count per tile.
    Count(TileVec<(i64, u32)>),
    /// Sum per tile.
    Sum(TileVec<(i64, f64)>),
    /// Sum and count per tile.
    Avg(TileVec<(i64, f64, u32)>),
    /// Minimum per tile.
    Min(TileVec<(i64, f64)>),
    /// Maximum per tile.
    Max(TileVec<(i64, f64)>),
    /// Distinct value hashes per tile (sorted).
    Distinct(TileVec<(i64, Vec<u32>)>),
    /// Latest (event time, value) per tile.
    Last(TileVec<(i64, i64, f64)>),
    /// Per tile, Σ v·2^((tᵢ − tile start)/half-life): decayed to any time by one factor.
    Decayed(TileVec<(i64, f64)>),
    /// Latest (event time, text) per tile: `last` of a string or enum field. (Added after the
    /// others, so states written before it read as they did.)
    LastText(TileVec<(i64, i64, crate::event::Text)>),
}

fn slot<T>(
    v: &mut TileVec<T>,
    index: i64,
    key: impl Fn(&T) -> i64,
    new: impl FnOnce() -> T,
) -> &mut T {
    // Fast path: events mostly arrive in time order, so the tile is the last one or a new last.
    let last = v.last().map(&key);
    let pos = match last {
        Some(k) if k == index => v.len() - 1,
        None => {
            v.push(new());
            0
        }
        Some(k) if k < index => {
            v.push(new());
            v.len() - 1
        }
        Some(_) => match v.binary_search_by_key(&index, &key) {
            Ok(pos) => pos,
            Err(pos) => {
                v.insert(pos, new());
                pos
            }
        },
    };
    &mut v[pos]
}

fn covered<T>(v: &[T], key: impl Fn(&T) -> i64, first: i64, last: i64) -> &[T] {
    let start = v.partition_point(|t| key(t) < first);
    let end = v.partition_point(|t| key(t) <= last);
    &v[start..end.max(start)]
}

fn exp2(x: f64) -> f64 {
    x.exp2()
}

impl Tiles {
    /// Empty tiles for an aggregation.
    pub fn new(aggregation: Aggregation) -> Self {
        match aggregation {
            Aggregation::Count => Tiles::Count(TileVec::new()),
            Aggregation::Sum => Tiles::Sum(TileVec::new()),
            Aggregation::Avg => Tiles::Avg(TileVec::new()),
            Aggregation::Min => Tiles::Min(TileVec::new()),
            Aggregation::Max => Tiles::Max(TileVec::new()),
            Aggregation::DistinctCount => Tiles::Distinct(TileVec::new()),
            Aggregation::Last => Tiles::Last(TileVec::new()),
            Aggregation::DecayedSum { .. } => Tiles::Decayed(TileVec::new()),
            Aggregation::LastText => Tiles::LastText(TileVec::new()),
        }
    }

    /// Whether these tiles are the storage of `aggregation` (false after a definition change).
    pub fn fits(&self, aggregation: Aggregation) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(&Tiles::new(aggregation))
    }

    /// Number of tiles held.
    pub fn len(&self) -> usize {
        match self {
            Tiles::Count(v) => v.len(),
            Tiles::Sum(v) | Tiles::Min(v) | Tiles::Max(v) | Tiles::Decayed(v) => v.len(),
            Tiles::Avg(v) => v.len(),
            Tiles::Distinct(v) => v.len(),
            Tiles::Last(v) => v.len(),
            Tiles::LastText(v) => v.len(),
        }
    }

    /// Whether no tile is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one event: its time, its value, and (for distinct counts) the hash of its value.
    pub fn add(
        &mut self,
        aggregation: Aggregation,
        tile_ms: i64,
        time: i64,
        value: f64,
        hash: u32,
    ) {
        self.add_at(
            aggregation,
            tile_ms,
            time.div_euclid(tile_ms),
            time,
            value,
            hash,
        )
    }

    /// [`Tiles::add`] given the event's tile index (`time.div_euclid(tile_ms)`).
    pub fn add_at(
        &mut self,
        aggregation: Aggregation,
        tile_ms: i64,
        index: i64,
        time: i64,
        value: f64,
        hash: u32,
    ) {
        match self {
            Tiles::Count(v) => slot(v, index, |t| t.0, || (index, 0)).1 += 1,
            Tiles::Sum(v) => slot(v, index, |t| t.0, || (index, 0.0)).1 += value,
            Tiles::Avg(v) => {
                let t = slot(v, index, |t| t.0, || (index, 0.0, 0));
                t.1 += value;
                t.2 += 1;
            }
            Tiles::Min(v) => {
                let t = slot(v, index, |t| t.0, || (index, f64::INFINITY));
                t.1 = t.1.min(value);
            }
            Tiles::Max(v) => {
                let t = slot(v, index, |t| t.0, || (index, f64::NEG_INFINITY));
                t.1 = t.1.max(value);
            }
            Tiles::Distinct(v) => {
                let t = slot(v, index, |t| t.0, || (index, Vec::new()));
                if let Err(at) = t.1.binary_search(&hash) {
                    t.1.insert(at, hash);
                }
            }
            Tiles::Last(v) => {
                let t = slot(v, index, |t| t.0, || (index, i64::MIN, f64::NEG_INFINITY));
                if (time, value) > (t.1, t.2) {
                    t.1 = time;
                    t.2 = value;
                }
            }
            Tiles::Decayed(v) => {
                let Aggregation::DecayedSum { half_life_ms } = aggregation else {
                    return;
                };
                let start = index * tile_ms;
                let weight = exp2((time - start) as f64 / half_life_ms as f64);
                slot(v, index, |t| t.0, || (index, 0.0)).1 += value * weight;
            }
            // Text arrives through `add_text`.
            Tiles::LastText(_) => {}
        }
    }

    /// Adds one event's text to `last` tiles of a string or enum field (ties of equal event
    /// time go to the larger text, so the result does not depend on arrival order).
    pub fn add_text(&mut self, tile_ms: i64, time: i64, text: &str) {
        self.add_text_at(time.div_euclid(tile_ms), time, text)
    }

    /// [`Tiles::add_text`] given the event's tile index.
    pub fn add_text_at(&mut self, index: i64, time: i64, text: &str) {
        let Tiles::LastText(v) = self else {
            return;
        };
        let t = slot(v, index, |t| t.0, || (index, i64::MIN, Default::default()));
        if (time, text) > (t.1, t.2.as_str()) {
            t.1 = time;
            t.2 = text.into();
        }
    }

    /// The text of `last` tiles as of `at` (ms); `None` for an empty window or numeric tiles.
    pub fn text(&self, tile_ms: i64, window_ms: i64, at: i64) -> Option<&str> {
        self.text_in(at.div_euclid(tile_ms), window_ms / tile_ms)
    }

    /// [`Tiles::text`] of the window of `tiles_per_window` tiles ending with tile `last`.
    pub fn text_in(&self, last: i64, tiles_per_window: i64) -> Option<&str> {
        let Tiles::LastText(v) = self else {
            return None;
        };
        let first = last - tiles_per_window + 1;
        covered(v, |t| t.0, first, last)
            .iter()
            .map(|t| (t.1, t.2.as_str()))
            .reduce(|a, b| if b > a { b } else { a })
            .map(|(_, text)| text)
    }

    /// The window's value as of `at` (ms); `None` where the window holds no value to report
    /// (avg, min, max and last of an empty window).
    pub fn value(
        &self,
        aggregation: Aggregation,
        tile_ms: i64,
        window_ms: i64,
        at: i64,
    ) -> Option<f64> {
        let window = (at.div_euclid(tile_ms), window_ms / tile_ms);
        self.value_in(aggregation, tile_ms, window, at)
    }

    /// [`Tiles::value`] given `(last, tiles_per_window)`: the window's last tile (the tile of
    /// `at`) and its length in tiles.
    pub fn value_in(
        &self,
        aggregation: Aggregation,
        tile_ms: i64,
        (last, tiles_per_window): (i64, i64),
        at: i64,
    ) -> Option<f64> {
        let first = last - tiles_per_window + 1;
        match self {
            Tiles::Count(v) => Some(
                covered(v, |t| t.0, first, last)
                    .iter()
                    .fold(0.0, |a, t| a + f64::from(t.1)),
            ),
            Tiles::Sum(v) => Some(
                covered(v, |t| t.0, first, last)
                    .iter()
                    .fold(0.0, |a, t| a + t.1),
            ),
            Tiles::Avg(v) => {
                let (sum, n) = covered(v, |t| t.0, first, last)
                    .iter()
                    .fold((0.0, 0u64), |(s, n), t| (s + t.1, n + u64::from(t.2)));
                (n > 0).then(|| sum / n as f64)
            }
            Tiles::Min(v) => covered(v, |t| t.0, first, last)
                .iter()
                .map(|t| t.1)
                .reduce(f64::min),
            Tiles::Max(v) => covered(v, |t| t.0, first, last)
                .iter()
                .map(|t| t.1)
                .reduce(f64::max),
            Tiles::Distinct(v) => {
                let tiles = covered(v, |t| t.0, first, last);
                if tiles.len() == 1 {
                    return Some(tiles[0].1.len() as f64);
                }
                let mut all: Vec<u32> = tiles.iter().flat_map(|t| t.1.iter().copied()).collect();
                all.sort_unstable();
                all.dedup();
                Some(all.len() as f64)
            }
            Tiles::Last(v) => covered(v, |t| t.0, first, last)
                .iter()
                .map(|t| (t.1, t.2))
                .reduce(|a, b| if b > a { b } else { a })
                .map(|(_, value)| value),
            Tiles::LastText(_) => None,
            Tiles::Decayed(v) => {
                let Aggregation::DecayedSum { half_life_ms } = aggregation else {
                    return None;
                };
                Some(covered(v, |t| t.0, first, last).iter().fold(0.0, |a, t| {
                    a + t.1 * exp2((t.0 * tile_ms - at) as f64 / half_life_ms as f64)
                }))
            }
        }
    }

    /// Index of the oldest tile held.
    pub fn first_index(&self) -> Option<i64> {
        match self {
            Tiles::Count(v) => v.first().map(|t| t.0),
            Tiles::Sum(v) | Tiles::Min(v) | Tiles::Max(v) | Tiles::Decayed(v) => {
                v.first().map(|t| t.0)
            }
            Tiles::Avg(v) => v.first().map(|t| t.0),
            Tiles::Distinct(v) => v.first().map(|t| t.0),
            Tiles::Last(v) => v.first().map(|t| t.0),
            Tiles::LastText(v) => v.first().map(|t| t.0),
        }
    }

    /// Drops tiles older than `first_needed` (a tile index).
    pub fn retire(&mut self, first_needed: i64) {
        fn drain<T>(v: &mut TileVec<T>, key: impl Fn(&T) -> i64, first: i64) {
            let n = v.partition_point(|t| key(t) < first);
            if n > 0 {
                v.drain(..n);
            }
        }
        match self {
            Tiles::Count(v) => drain(v, |t| t.0, first_needed),
            Tiles::Sum(v) | Tiles::Min(v) | Tiles::Max(v) | Tiles::Decayed(v) => {
                drain(v, |t| t.0, first_needed)
            }
            Tiles::Avg(v) => drain(v, |t| t.0, first_needed),
            Tiles::Distinct(v) => drain(v, |t| t.0, first_needed),
            Tiles::Last(v) => drain(v, |t| t.0, first_needed),
            Tiles::LastText(v) => drain(v, |t| t.0, first_needed),
        }
    }
}

/// FNV-1a, 32 bits: a stable hash for distinct counts (stored state must hash the same forever).
pub fn fnv32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
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
    fn every_aggregation_over_a_small_window() {
        let tile = tile_width(24 * H);
        let aggs = [
            (Aggregation::Count, Some(3.0)),
            (Aggregation::Sum, Some(60.0)),
            (Aggregation::Avg, Some(20.0)),
            (Aggregation::Min, Some(10.0)),
            (Aggregation::Max, Some(30.0)),
            (Aggregation::DistinctCount, Some(2.0)),
            (Aggregation::Last, Some(20.0)),
        ];
        for (agg, expected) in aggs {
            let mut t = Tiles::new(agg);
            // (time, value): the first is outside the window at 30h.
            for (time, value) in [(0, 99.0), (7 * H, 10.0), (25 * H, 30.0), (29 * H, 20.0)] {
                t.add(
                    agg,
                    tile,
                    time,
                    value,
                    fnv32(if value > 15.0 { b"x" } else { b"y" }),
                );
            }
            assert_eq!(t.value(agg, tile, 24 * H, 30 * H), expected, "{agg:?}");
            assert_eq!(
                t.value(agg, tile, 24 * H, 90 * H).unwrap_or(0.0),
                0.0,
                "{agg:?} empty"
            );
        }
    }

    #[test]
    fn decayed_sum_halves_every_half_life() {
        let agg = Aggregation::DecayedSum { half_life_ms: H };
        let tile = tile_width(24 * H);
        let mut t = Tiles::new(agg);
        t.add(agg, tile, 2 * H, 8.0, 0);
        let v = t.value(agg, tile, 24 * H, 5 * H).unwrap();
        assert!((v - 1.0).abs() < 1e-9, "{v}");
    }

    #[test]
    fn retire_drops_old_tiles() {
        let mut t = Tiles::new(Aggregation::Count);
        for i in 0..10 {
            t.add(Aggregation::Count, 60_000, i * 60_000, 1.0, 0);
        }
        t.retire(5);
        assert_eq!(t.len(), 5);
    }
}
