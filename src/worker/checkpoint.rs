//! Making a batch's state durable: every dirty customer's state, applied offsets and outbox (and
//! the delta of its public feature hash) written to the state store in one round trip, retried
//! until it succeeds. Today a checkpoint is taken at the end of every batch, before its offsets
//! are stored (at-least-once) or its transaction begins (exactly-once): see the module docs of
//! `worker` for the order and `sink` for why it makes replays safe.

use super::cache::{Cached, Shard};
use super::{Decoded, WorkerContext};
use crate::operator::Operator;
use crate::state::{StateError, StateWrite};
use crate::telemetry::metrics;
use std::time::{Duration, Instant};

/// How often a cached customer's public feature hash is rewritten whole rather than as a delta.
pub const FULL_REWRITE: Duration = Duration::from_secs(600);

/// The write for one dirty customer: its state and the delta of its public feature hash.
pub(super) fn state_write(
    operator: &Operator,
    cached: &mut Cached,
    ttl_secs: u64,
) -> Result<StateWrite, StateError> {
    let bytes = cached.state.to_bytes()?;
    let now = operator.snapshot(&cached.state);
    let names = operator.features().defs();
    let (mut features, mut removed) = (Vec::new(), Vec::new());
    let replace = cached.published.is_none()
        || cached
            .full_written
            .is_none_or(|t| t.elapsed() > FULL_REWRITE);
    if replace {
        cached.full_written = Some(Instant::now());
    }
    for (slot, value) in now.iter().enumerate() {
        let before = cached
            .published
            .as_ref()
            .and_then(|p| p.get(slot).and_then(Option::as_ref));
        match value {
            Some(v) if replace || before != Some(v) => {
                features.push((names[slot].name.clone(), v.clone()))
            }
            None if !replace && before.is_some() => removed.push(names[slot].name.clone()),
            _ => {}
        }
    }
    let erased = cached
        .state
        .erased_before
        .is_some_and(|t| cached.state.max_event_time <= t);
    // After an erasure the hash is gone: the next write must rebuild it whole.
    cached.published = if erased { None } else { Some(now) };
    Ok(StateWrite {
        erased,
        key: cached.key.clone(),
        state: bytes,
        features,
        removed,
        replace,
        updated_at: cached.state.max_event_time,
        ttl_secs,
    })
}

/// Retries a state operation with exponential backoff (`sink::Backoff`: 100 ms → 5 s) until it
/// succeeds. While it fails the instance reports not ready (this worker's hold, see `Health`);
/// nothing is committed past the work not done. Gives up (`None`) when the assignment changed
/// since the batch was polled under `generation`.
pub(super) async fn with_retry<T, F, Fut>(
    ctx: &WorkerContext,
    op: &'static str,
    generation: u64,
    mut f: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StateError>>,
{
    let mut backoff = crate::sink::Backoff::default();
    // This worker's hold on readiness while its state store fails (dropped on success or when
    // the batch is given up), so another worker's success cannot mark the instance ready.
    let mut failing = None;
    loop {
        if ctx.assignment.generation() != generation {
            // A revoke has begun (its generation bump comes first) and, if it stopped waiting
            // for this batch (kafka.revoke_timeout), the partitions may have a new owner: a late
            // write of ours could overwrite theirs. Give the batch up; whoever owns the
            // partitions replays it. Checked before every attempt, so only an attempt already
            // in flight when the revoke gave up can still land.
            tracing::warn!(
                op,
                "partitions reassigned while the batch waited; batch given up"
            );
            return None;
        }
        match f().await {
            Ok(v) => {
                if failing.take().is_some() {
                    tracing::info!(op, "state store answers again");
                }
                return Some(v);
            }
            Err(e) => {
                metrics().state_errors.with_label_values(&[op]).inc();
                failing.get_or_insert_with(|| ctx.health.state_failing());
                let delay = backoff.next_delay();
                tracing::warn!(op, error = %e, retry_in_ms = delay.as_millis() as u64, "state store failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Flushes the batch's dirty customers: one round trip, retried until it succeeds, one write per
/// dirty customer however many of its events the batch held. Returns the number of writes, or
/// `None` when the batch was given up because its partitions were reassigned meanwhile.
pub(super) async fn flush(
    ctx: &WorkerContext,
    shard: &Shard,
    operator: &Operator,
    decoded: &[Decoded],
    generation: u64,
    batch_no: u64,
) -> Option<usize> {
    let m = metrics();
    let mut writes: Vec<StateWrite> = Vec::new();
    {
        let mut cache = shard.lock();
        super::cache::each_prefetched(&mut cache, decoded, |cache, d| {
            let Some(cached) = cache.get_mut(d.event.customer_id()) else {
                return;
            };
            if !cached.dirty {
                return;
            }
            cached.dirty = false;
            cached.last_used = batch_no;
            match state_write(operator, cached, ctx.ttl_secs) {
                Ok(write) => writes.push(write),
                Err(e) => {
                    m.state_errors.with_label_values(&["encode"]).inc();
                    tracing::error!(error = %e, "customer state does not serialize; it stays in the cache only");
                }
            }
        });
    }
    if !writes.is_empty() {
        let flush_started = Instant::now();
        with_retry(ctx, "store", generation, || ctx.store.store(&writes)).await?;
        m.state_flush_duration
            .observe(flush_started.elapsed().as_secs_f64());
    }
    Some(writes.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::BatchStats;
    use crate::state::{CustomerKey, CustomerState};
    use std::sync::Arc;

    #[test]
    fn the_feature_hash_is_written_whole_then_as_deltas_and_deleted_after_an_erasure() {
        use crate::event::{ErasureRequest, Event};
        let features = Arc::new(crate::features::spec::load(None).unwrap());
        let rules = crate::rules::RuleSet {
            version: 0,
            offers: vec![],
            alerts: vec![],
        };
        let op = Operator::new(
            features,
            rules,
            &crate::config::OperatorSettings::default(),
            0,
        );
        let mut state = CustomerState::default();
        op.align(&mut state);
        let mut c = Cached::loaded(CustomerKey("k".into()), state, 0);
        let first = state_write(&op, &mut c, 60).unwrap();
        assert!(first.replace && !first.erased);
        let second = state_write(&op, &mut c, 60).unwrap();
        assert!(
            !second.replace && second.features.is_empty(),
            "nothing changed: empty delta"
        );
        let erase = Event::Erasure(ErasureRequest {
            request_id: "r".into(),
            customer_id: "c".into(),
            requested_at: 5,
        });
        op.apply(
            &mut c.state,
            &erase,
            None,
            &mut Vec::new(),
            &mut BatchStats::default(),
        );
        let third = state_write(&op, &mut c, 60).unwrap();
        assert!(third.erased, "erased: the hash is deleted");
        assert!(c.published.is_none());
        c.state.max_event_time = 10; // activity after the erasure
        let fourth = state_write(&op, &mut c, 60).unwrap();
        assert!(
            fourth.replace && !fourth.erased,
            "rebuilt whole after the erasure"
        );
    }
}
