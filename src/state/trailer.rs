//! The stored state's **trailer**: what follows the postcard body of formats 7 and 8, which a
//! release from before it reads past (postcard reads the body and stops), so a rollback keeps
//! every customer's state.
//!
//! In order, each only when there is something after it:
//! 1. what the public hash was written with ([`CustomerState::hash`]); a placeholder with
//!    fingerprint 0 (which no feature set has) when that is not known but (2) follows;
//! 2. the open cooldown roll-ups ([`CustomerState::rollups`]) and the `rolled_up` of outbox
//!    audits (by entry and decision index): what `operator.audit_rollup` adds. A release from
//!    before it reads the state without them: the repeats its open windows counted are not
//!    audited, and an outbox roll-up record is re-emitted as a record of one decision.
//!
//! A trailer that does not read is dropped, not the state: the hash is then rewritten whole, and
//! a roll-up part that does not read is dropped with a warning.

use crate::customer::{CustomerState, HashWritten, Rollups};
use crate::output::{Decision, RolledUp};
use serde::{Deserialize, Serialize};

/// Stands for "not known" in (1) when (2) follows.
const UNKNOWN_HASH: HashWritten = HashWritten {
    features: 0,
    whole_at: 0,
};

/// Part (2), written.
#[derive(Serialize)]
struct RollupsOut<'a> {
    rollups: &'a Rollups,
    rolled_up: Vec<(u32, u32, &'a RolledUp)>,
}

/// Part (2), read.
#[derive(Deserialize)]
struct RollupsIn {
    rollups: Rollups,
    rolled_up: Vec<(u32, u32, RolledUp)>,
}

/// Appends `state`'s trailer to `out` (its body).
pub(super) fn write(state: &CustomerState, out: Vec<u8>) -> postcard::Result<Vec<u8>> {
    let mut rolled_up = Vec::new();
    for (i, entry) in state.outbox.iter().enumerate() {
        for (j, d) in entry.decisions.iter().enumerate() {
            if let Decision::Audit(a) = d {
                if let Some(r) = &a.rolled_up {
                    rolled_up.push((i as u32, j as u32, r));
                }
            }
        }
    }
    if state.rollups.is_empty() && rolled_up.is_empty() {
        return match &state.hash {
            Some(hash) => postcard::to_extend(hash, out),
            None => Ok(out),
        };
    }
    let out = postcard::to_extend(state.hash.as_ref().unwrap_or(&UNKNOWN_HASH), out)?;
    let rollups = RollupsOut {
        rollups: &state.rollups,
        rolled_up,
    };
    postcard::to_extend(&rollups, out)
}

/// Reads `trailer` into `state` (read from the body before it).
pub(super) fn read(state: &mut CustomerState, trailer: &[u8]) {
    let Ok((hash, rest)) = postcard::take_from_bytes::<HashWritten>(trailer) else {
        return;
    };
    state.hash = (hash.features != UNKNOWN_HASH.features).then_some(hash);
    if rest.is_empty() {
        return;
    }
    let rollups = match postcard::from_bytes::<RollupsIn>(rest) {
        Ok(rollups) => rollups,
        Err(e) => {
            tracing::warn!(error = %e, "a stored state's roll-ups do not read; dropped");
            return;
        }
    };
    state.rollups = rollups.rollups;
    for (i, j, r) in rollups.rolled_up {
        let decision = state
            .outbox
            .get_mut(i as usize)
            .and_then(|e| e.decisions.get_mut(j as usize));
        if let Some(Decision::Audit(a)) = decision {
            a.rolled_up = Some(r);
        }
    }
}
