//! One customer as the operator knows them: the domain types the operator changes event by
//! event, the rules and decisioning read, and `state` stores.
//!
//! - `state`: [`CustomerState`], everything kept about one customer, with the source offsets
//!   already applied (replays are skipped) and the exactly-once outbox.
//! - `profile`: [`ProfileState`], the CRM profile fields rules read.
//! - `history`: [`ContactHistory`], the offers made and alerts raised, the one place they are
//!   recorded, pruned and read; [`HistoryView`], that history as one decision (a champion's or a
//!   challenger's) checks it.
//! - `rollup`: [`Rollups`], the repeats of cooldown suppressions counted instead of audited one
//!   by one (`operator.audit_rollup`).
//!
//! Pure data and the operations on it: no I/O, no clock (times come from events). How a
//! [`CustomerState`] is encoded and keyed in Redis belongs to `state`, which stores it.

mod history;
mod profile;
mod rollup;
mod state;
mod stored;

pub use history::{
    control_key, control_rule, shadow_key, AlertRecord, ContactHistory, Counted, HistoryView,
    Labelled, Learnt, OfferRecord, Retention, Verdict,
};
pub use profile::ProfileState;
pub use rollup::{Counted as RollupCounted, OpenRollup, Rollups, Suppressed};
pub use state::{AppliedOffset, CustomerState, HashWritten, OutboxEntry};
