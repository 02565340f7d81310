//! [`CustomerState`]: everything the operator keeps about one customer, and the bookkeeping that
//! makes applying an event exactly once possible (applied offsets, the outbox).

use super::history::ContactHistory;
use super::profile::ProfileState;
use super::rollup::Rollups;
use crate::features::Tiles;
use serde::{Deserialize, Serialize};

/// The last source offset applied to this customer's state, per input topic-partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedOffset {
    /// Input kind index ([`crate::event::EventKind::index`]).
    pub kind: u8,
    /// Partition of that kind's topic.
    pub partition: i32,
    /// Highest offset applied.
    pub offset: i64,
}

/// Everything the operator keeps about one customer.
///
/// `state` stores it, postcard-encoded, which records no field names: the order and types of
/// these fields (and of the types they hold) are the stored format. Any change to them bumps
/// `state::STATE_FORMAT`, with a reader in `state::migrate` for what earlier releases wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerState {
    /// Tiles per feature, with the feature's definition id (aligned to the feature set by the
    /// operator; an id, not the name, keeps stored state small). Stored packed
    /// (`features::packed`: tile indexes as steps, short decimals as their digits) and without
    /// the features that hold no tile: most customers have a few active features out of dozens.
    /// `Operator::align` puts them back after a load, as it does for a feature added since the
    /// state was written.
    #[serde(with = "crate::features::packed::serde_bytes")]
    pub features: Vec<(u32, Tiles)>,
    /// Latest profile.
    pub profile: Option<ProfileState>,
    /// Offers made within the contact period, with their responses, and alerts raised within
    /// their rules' cooldown.
    pub history: ContactHistory,
    /// Event time of the last HIGH or CRITICAL alert.
    pub last_high_alert_at: Option<i64>,
    /// Event time of the customer's last complaint (feedback of kind COMPLAINT).
    pub last_complaint_at: Option<i64>,
    /// Event time of the customer's last negative social post about the bank.
    pub last_negative_social_at: Option<i64>,
    /// Source offsets applied (a replayed record at or below these is skipped).
    pub applied: Vec<AppliedOffset>,
    /// Newest event time seen (drives tile retirement and the lateness bound).
    pub max_event_time: i64,
    /// Event time from which the next tile can be retired (recomputed after a load: 0 = now).
    #[serde(skip)]
    pub next_retire_at: i64,
    /// Tombstone of an erasure: events at or before this time are dropped, so late or replayed
    /// events cannot rebuild an erased customer.
    pub erased_before: Option<i64>,
    /// Exactly-once outbox: the decisions of applied events whose Kafka transaction may not have
    /// committed yet, written atomically with the state. A replayed event that is already applied
    /// re-emits these instead of recomputing; entries are pruned once their offsets are
    /// committed. Customer ids are blanked (Redis holds no raw id) and restored from the event.
    pub outbox: Vec<OutboxEntry>,
    /// Challengers' contact history: the offers shadow versions would have made and the alerts
    /// they would have raised, named by [`super::shadow_key`]. Kept apart from `history` so a
    /// challenger never changes what its champion decides, and as long, for the same contact
    /// policy.
    pub shadow: ContactHistory,
    /// Cooldown suppressions counted in roll-up windows, not yet audited
    /// (`operator.audit_rollup`; empty when it is off). Stored in the state's trailer.
    #[serde(skip)]
    pub rollups: Rollups,
    /// How the public hash stood when this state was written with it (None: not known, or
    /// erased). Stored in the state's trailer (`state::STATE_FORMAT`), after the postcard body.
    #[serde(skip)]
    pub hash: Option<HashWritten>,
}

/// What a state records of the public feature hash written with it: enough for a reload to go
/// on writing the hash as deltas, as the process that wrote it would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashWritten {
    /// Fingerprint of the feature set whose values the hash holds
    /// ([`crate::features::FeatureSet::fingerprint`]).
    pub features: u32,
    /// When the hash was last written whole (wall clock, epoch ms): the next whole write is due
    /// `worker::FULL_REWRITE` after it, whichever process holds the customer.
    pub whole_at: i64,
}

/// The decisions one applied event produced, kept until its transaction commits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Input kind index of the event.
    pub kind: u8,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its decisions, customer ids blanked. Stored as format 7 stored them (`customer::stored`):
    /// an audit's `rolled_up` goes in the state's trailer.
    #[serde(with = "super::stored")]
    pub decisions: Vec<crate::output::Decision>,
}

impl CustomerState {
    /// Whether the record at `offset` of (`kind`, `partition`) is already applied.
    pub fn is_applied(&self, kind: u8, partition: i32, offset: i64) -> bool {
        self.applied
            .iter()
            .any(|a| a.kind == kind && a.partition == partition && a.offset >= offset)
    }

    /// Records that the record at `offset` is applied.
    pub fn mark_applied(&mut self, kind: u8, partition: i32, offset: i64) {
        match self
            .applied
            .iter_mut()
            .find(|a| a.kind == kind && a.partition == partition)
        {
            Some(a) => a.offset = a.offset.max(offset),
            None => self.applied.push(AppliedOffset {
                kind,
                partition,
                offset,
            }),
        }
    }

    /// Drops outbox entries of (`kind`, `partition`) below `committed` (the first offset of the
    /// batch being processed: everything before it was committed by an earlier transaction).
    pub fn prune_outbox(&mut self, kind: u8, partition: i32, committed: i64) {
        self.outbox
            .retain(|e| !(e.kind == kind && e.partition == partition && e.offset < committed));
    }

    /// Notes a HIGH or CRITICAL alert raised at `at` (the risk quiet period runs from the latest).
    pub fn note_high_alert(&mut self, at: i64) {
        latest(&mut self.last_high_alert_at, at);
    }

    /// Notes a complaint made at `at` (a quiet period runs from the latest).
    pub fn note_complaint(&mut self, at: i64) {
        latest(&mut self.last_complaint_at, at);
    }

    /// Notes a negative social post about the bank at `at` (a quiet period runs from the latest).
    pub fn note_negative_social(&mut self, at: i64) {
        latest(&mut self.last_negative_social_at, at);
    }
}

/// Keeps the later of `slot` and `at` (events may arrive out of order).
fn latest(slot: &mut Option<i64>, at: i64) {
    *slot = Some(slot.unwrap_or(i64::MIN).max(at));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_period_marks_keep_the_latest_time() {
        let mut s = CustomerState::default();
        s.note_complaint(20);
        s.note_complaint(10);
        assert_eq!(s.last_complaint_at, Some(20));
    }

    /// A feature with no tile costs nothing stored; the rest read back as they were.
    #[test]
    fn features_without_tiles_are_not_stored() {
        use crate::features::Aggregation;
        let held = Tiles::Count(smallvec::smallvec![(5, 3)]);
        let mut s = CustomerState {
            features: vec![
                (1, Tiles::new(Aggregation::Count)),
                (2, held.clone()),
                (3, Tiles::new(Aggregation::Sum)),
            ],
            ..CustomerState::default()
        };
        let stored = s.to_bytes().unwrap();
        let back = CustomerState::from_bytes(&stored).unwrap();
        assert_eq!(back.features, vec![(2, held)]);
        s.features.retain(|(_, t)| !t.is_empty());
        assert_eq!(s.to_bytes().unwrap(), stored);
    }
}
