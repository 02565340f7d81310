//! At-least-once delivery of a batch's outputs, and what every delivery mode shares: dead letters
//! cut to a size the broker takes, and the decision metrics counted once a batch is delivered.

use super::{WorkerContext, WorkerError};
use crate::clock::now_ms;
use crate::event::DecisionOutcome;
use crate::output::{DeadLetter, Decision};
use crate::sink::{DeliveryRetry, Published, Recovery, Sink};
use crate::telemetry::metrics;
use std::collections::HashMap;

/// Most bytes of a bad record's payload (and key) copied into its dead letter: a record near the
/// broker's size limit would otherwise make a dead letter the broker refuses, and the pipeline
/// would stop on it at every restart.
pub const DEAD_LETTER_MAX_BYTES: usize = 512 * 1024;

/// The bytes for a dead letter, cut to [`DEAD_LETTER_MAX_BYTES`]; the original length if cut.
pub(super) fn capped(bytes: Option<&[u8]>) -> (Option<Vec<u8>>, Option<usize>) {
    match bytes {
        Some(b) if b.len() > DEAD_LETTER_MAX_BYTES => {
            (Some(b[..DEAD_LETTER_MAX_BYTES].to_vec()), Some(b.len()))
        }
        other => (other.map(<[u8]>::to_vec), None),
    }
}

/// Counts a batch's decisions in the metrics (after they are produced). Per-version counts are
/// summed in a local map first: one label lookup per (rule, version, outcome) of the batch.
pub(super) fn count_decisions(decisions: &[Decision]) {
    let m = metrics();
    let produced_at = now_ms();
    let mut by_version: HashMap<(&str, i32, DecisionOutcome, Option<DecisionOutcome>), u64> =
        HashMap::new();
    for d in decisions {
        if let Decision::Audit(a) = d {
            *by_version
                .entry((&a.rule_id, a.rule_version, a.outcome, a.shadow_outcome))
                .or_default() += a.decisions();
        }
        match d {
            Decision::Offer(o) => {
                m.offers.with_label_values(&[&o.rule_id]).inc();
                if o.explored {
                    m.offers_explored.with_label_values(&[&o.rule_id]).inc();
                }
                m.event_time_lag
                    .observe((produced_at - o.decided_at).max(0) as f64 / 1000.0);
            }
            Decision::Alert(a) => {
                m.alerts
                    .with_label_values(&[
                        &a.rule_id,
                        &a.rule_version.to_string(),
                        a.severity.as_str(),
                    ])
                    .inc();
                m.event_time_lag
                    .observe((produced_at - a.raised_at).max(0) as f64 / 1000.0);
            }
            // A roll-up record counts the decisions it stands for (`operator.audit_rollup`).
            Decision::Audit(a) => {
                m.audit_records.inc();
                m.decisions
                    .with_label_values(&[a.outcome.as_str()])
                    .inc_by(a.decisions())
            }
        }
    }
    for ((rule, version, outcome, would), n) in by_version {
        let (role, outcome) = match (outcome, would) {
            (DecisionOutcome::Shadow, Some(would)) => ("challenger", would),
            (DecisionOutcome::Shadow, None) => ("challenger", DecisionOutcome::Shadow),
            (outcome, _) => ("champion", outcome),
        };
        m.rule_decisions
            .with_label_values(&[rule, &version.to_string(), role, outcome.as_str()])
            .inc_by(n);
    }
}

/// At-least-once delivery of a batch's records: every one produced and acknowledged before the
/// caller flushes the batch's state and stores its offsets. A transient failure (see `sink`: the
/// broker unreachable past `message.timeout.ms`, ...) produces the whole batch again after a
/// backoff, for as long as it takes; records acknowledged by an earlier attempt repeat,
/// byte-identical (ids are deterministic). Returns `None` when the batch's partitions were
/// revoked while it was retried (its next owner replays it), and an error when a record fails for
/// good (the process exits; a restart replays the batch).
pub(super) async fn publish_at_least_once(
    ctx: &WorkerContext,
    sink: &Sink,
    decisions: &[Decision],
    dead: &[DeadLetter],
    generation: u64,
) -> Result<Option<Published>, WorkerError> {
    let mut retry = DeliveryRetry::new("at_least_once", &ctx.health);
    loop {
        if ctx.assignment.generation() != generation {
            tracing::info!(
                "partitions revoked before the batch's delivery; their next owner replays it"
            );
            return Ok(None);
        }
        match sink.publish(decisions, dead).await {
            Ok(published) => {
                retry.succeeded();
                return Ok(Some(published));
            }
            Err(e) if e.recovery() == Recovery::Retry => retry.wait(&e).await,
            Err(e) => return Err(e.into()),
        }
    }
}
