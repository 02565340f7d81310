//! Feature values as of a time: one feature, every feature (the public hash's content), and the
//! retiring of tiles no evaluation can need any more.

use super::Operator;
use crate::customer::CustomerState;
use crate::features::{FeatureValue, TileIndex};
use std::sync::Arc;

impl Operator {
    /// Drops tiles no evaluation can need any more (older than the windows as of the newest event
    /// minus the allowed lateness), and notes when the next tile expires, so that events before
    /// then skip this work. Retiring later than possible changes no value, only when memory is
    /// given back.
    pub fn retire(&self, state: &mut CustomerState) {
        let horizon = state.max_event_time - self.lateness_ms;
        let mut horizon_tile = TileIndex::new(horizon);
        let mut next = i64::MAX;
        for (def, (_, tiles)) in self.features.defs().iter().zip(state.features.iter_mut()) {
            tiles.retire(def.first_needed_after(horizon_tile.of(def.tile_ms)));
            if let Some(first) = tiles.first_index() {
                // The first tile is needed until the horizon passes its window's end.
                let expires = (first + def.tiles_per_window) * def.tile_ms + self.lateness_ms;
                next = next.min(expires);
            }
        }
        state.next_retire_at = next;
    }

    /// One numeric feature's value as of `at` (event time, ms); `None` for an empty
    /// avg/min/max/last, and for a text feature (see [`Operator::text_at`]).
    pub fn value_at(&self, state: &CustomerState, slot: usize, at: i64) -> Option<f64> {
        let def = &self.features.defs()[slot];
        let window = (at.div_euclid(def.tile_ms), def.tiles_per_window);
        state.features[slot]
            .1
            .value_in(def.aggregation, def.tile_ms, window, at)
    }

    /// One text feature's value (`last` of a string or enum field) as of `at`.
    pub fn text_at<'s>(&self, state: &'s CustomerState, slot: usize, at: i64) -> Option<&'s str> {
        let def = &self.features.defs()[slot];
        state.features[slot]
            .1
            .text_in(at.div_euclid(def.tile_ms), def.tiles_per_window)
    }

    /// Any feature's value as of `at`.
    pub fn feature_value(
        &self,
        state: &CustomerState,
        slot: usize,
        at: i64,
    ) -> Option<FeatureValue> {
        self.value_in_tile(state, slot, &mut TileIndex::new(at))
    }

    /// Feature `slot`'s value as of the time of `at` (its tile index per width computed once).
    fn value_in_tile(
        &self,
        state: &CustomerState,
        slot: usize,
        at: &mut TileIndex,
    ) -> Option<FeatureValue> {
        let def = &self.features.defs()[slot];
        let tiles = &state.features[slot].1;
        let last = at.of(def.tile_ms);
        if def.is_text() {
            tiles
                .text_in(last, def.tiles_per_window)
                .map(|t| FeatureValue::Text(t.into()))
        } else {
            let window = (last, def.tiles_per_window);
            tiles
                .value_in(def.aggregation, def.tile_ms, window, at.at())
                .map(FeatureValue::Num)
        }
    }

    /// Every feature's value as of `at`, in slot order.
    pub fn values_at(&self, state: &CustomerState, at: i64) -> Vec<Option<FeatureValue>> {
        let mut tiles = TileIndex::new(at);
        (0..self.features.defs().len())
            .map(|slot| self.value_in_tile(state, slot, &mut tiles))
            .collect()
    }

    /// Every feature's value as of the newest event, in slot order (the public hash's content).
    pub fn snapshot(&self, state: &CustomerState) -> Vec<Option<FeatureValue>> {
        self.values_at(state, state.max_event_time)
    }

    /// Current feature values by name (as of the newest event) for the public hash; features
    /// without a value (an empty avg, min, max or last) are left out.
    pub fn public_values(&self, state: &CustomerState) -> Vec<(Arc<str>, FeatureValue)> {
        self.features
            .defs()
            .iter()
            .enumerate()
            .filter_map(|(slot, def)| {
                Some((
                    def.name.clone(),
                    self.feature_value(state, slot, state.max_event_time)?,
                ))
            })
            .collect()
    }
}
