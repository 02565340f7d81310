//! Format 7: the stored state before packed tiles (format 8 differs only in how
//! [`CustomerState::features`] is stored, `features::packed`). Read, so an upgrade keeps every
//! customer's state; and written while `state.write_format = 7`, the first step of an upgrade
//! that keeps a rollback possible: a release from before format 8 cannot read it, so format 8 is
//! written only once every instance reads it and no rollback past them is planned (the README's
//! "State in Redis").
//!
//! Both sides mirror [`CustomerState`]'s stored fields in its order; `format_tests.rs` pins the
//! bytes.

use super::error::StateError;
use crate::customer::{AppliedOffset, ContactHistory, CustomerState, OutboxEntry, ProfileState};
use crate::features::Tiles;
use serde::{Deserialize, Serialize};

/// The format byte.
pub(super) const FORMAT_7: u8 = 7;

/// A state as format 7 writes it, borrowed.
#[derive(Serialize)]
struct Out<'a> {
    #[serde(serialize_with = "held_features")]
    features: &'a [(u32, Tiles)],
    profile: &'a Option<ProfileState>,
    history: &'a ContactHistory,
    last_high_alert_at: Option<i64>,
    last_complaint_at: Option<i64>,
    last_negative_social_at: Option<i64>,
    applied: &'a [AppliedOffset],
    max_event_time: i64,
    erased_before: Option<i64>,
    outbox: &'a [OutboxEntry],
    shadow: &'a ContactHistory,
}

/// A state as format 7 stored it.
#[derive(Deserialize)]
struct In {
    features: Vec<(u32, Tiles)>,
    profile: Option<ProfileState>,
    history: ContactHistory,
    last_high_alert_at: Option<i64>,
    last_complaint_at: Option<i64>,
    last_negative_social_at: Option<i64>,
    applied: Vec<AppliedOffset>,
    max_event_time: i64,
    erased_before: Option<i64>,
    outbox: Vec<OutboxEntry>,
    shadow: ContactHistory,
}

/// Appends `state`'s format-7 body (after the format byte, before the trailer) to `out`.
pub(super) fn write(state: &CustomerState, out: Vec<u8>) -> postcard::Result<Vec<u8>> {
    let body = Out {
        features: &state.features,
        profile: &state.profile,
        history: &state.history,
        last_high_alert_at: state.last_high_alert_at,
        last_complaint_at: state.last_complaint_at,
        last_negative_social_at: state.last_negative_social_at,
        applied: &state.applied,
        max_event_time: state.max_event_time,
        erased_before: state.erased_before,
        outbox: &state.outbox,
        shadow: &state.shadow,
    };
    postcard::to_extend(&body, out)
}

/// Reads a format-7 body; returns the state and the trailer after it.
pub(super) fn read(body: &[u8]) -> Result<(CustomerState, &[u8]), StateError> {
    let (v7, trailer): (In, _) = postcard::take_from_bytes(body)
        .map_err(|e| StateError::Corrupt(format!("format 7: {e}")))?;
    let state = CustomerState {
        features: v7.features,
        profile: v7.profile,
        history: v7.history,
        last_high_alert_at: v7.last_high_alert_at,
        last_complaint_at: v7.last_complaint_at,
        last_negative_social_at: v7.last_negative_social_at,
        applied: v7.applied,
        max_event_time: v7.max_event_time,
        next_retire_at: 0,
        erased_before: v7.erased_before,
        outbox: v7.outbox,
        shadow: v7.shadow,
        rollups: Default::default(),
        hash: None,
    };
    Ok((state, trailer))
}

/// Serializes the features that hold tiles, in order, as a sequence of their own length: the same
/// encoding as the whole vector, so a reader of any release takes it as it is.
fn held_features<S: serde::Serializer>(
    features: &&[(u32, Tiles)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let held = || features.iter().filter(|(_, tiles)| !tiles.is_empty());
    let mut seq = serializer.serialize_seq(Some(held().count()))?;
    for feature in held() {
        seq.serialize_element(feature)?;
    }
    seq.end()
}
