//! Exactly-once delivery: a checkpoint's records and its consumer offsets in one Kafka
//! transaction, with librdkafka's error classes mapped to retry, abort-and-redo or stop.

use super::{WorkerContext, WorkerError};
use crate::output::{DeadLetter, Decision};
use crate::sink::{DeliveryRetry, Published, Recovery, Sink, SinkError};
use crate::telemetry::metrics;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest one transaction call (send offsets, commit, abort) waits for the broker before it
/// returns a timeout, which librdkafka reports retriable (the call is made again and resumes
/// where it was) or, for the offsets, abortable (the transaction is redone). Shorter than
/// `kafka.transaction_timeout` (which still bounds it) so that a broker outage shows within
/// seconds as retries, warnings and a 503 on `/readyz`, not as a silent wait. (librdkafka's
/// header recommends an infinite timeout for these calls; a finite one is supported — a timed-out
/// commit or abort is resumed by calling it again, which `call_retrying` and `abort_retrying`
/// do whatever the assignment does — and is what makes an outage visible.)
const TRANSACTION_CALL_WAIT: Duration = Duration::from_secs(5);

/// Exactly-once delivery of a flushed checkpoint interval: its records and its consumer offsets
/// in one transaction. Failures follow librdkafka's transactional error classes (see `sink`):
///
/// - a retriable transaction call is called again after a backoff ([`call_retrying`]);
/// - a transaction that cannot commit — a call that requires an abort, or a record that failed
///   transiently (the broker unreachable past `message.timeout.ms`) — is aborted (the abort
///   itself retried while retriable) and done again whole after a backoff: begin, produce, send
///   the offsets, commit. Records of an aborted transaction never reach read_committed consumers;
/// - a fatal error (fenced: a newer instance holds the transactional id) is returned at once, and
///   any other failure after an abort: the process exits, and a restart replays the interval
///   from the committed offsets, re-emitting its decisions from the outboxes just flushed.
///
/// Returns `None` when the transaction was aborted and the interval's partitions have moved
/// (their assignment generation ended): their next owner replays it the same way. `group` is the
/// consumer group metadata of the interval's latest batch (`None`: read it now).
pub(super) async fn deliver_in_transaction(
    ctx: &WorkerContext,
    sink: &Sink,
    decisions: &[Decision],
    dead: &[DeadLetter],
    last_offsets: &BTreeMap<(usize, i32), i64>,
    generation: u64,
    group: Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>,
) -> Result<Option<Published>, WorkerError> {
    let mut offsets = rdkafka::TopicPartitionList::new();
    for ((kind, partition), offset) in last_offsets {
        // Committed offsets name the next record to read.
        if let Err(e) = offsets.add_partition_offset(
            &ctx.input_topics[*kind],
            *partition,
            rdkafka::Offset::Offset(offset + 1),
        ) {
            return Err(WorkerError::Sink(crate::sink::SinkError::Transaction {
                step: "send_offsets",
                error: e,
            }));
        }
    }
    // The group member that polled the batches sends their offsets, on every attempt: once the
    // group has a newer generation the broker refuses them (KIP-447), so an interval that
    // outlived its assignment cannot commit over the partitions' new owner.
    let Some(group) = group.or_else(|| ctx.offsets.group_metadata().map(Arc::new)) else {
        return Err(WorkerError::Sink(crate::sink::SinkError::Transaction {
            step: "send_offsets",
            error: rdkafka::error::KafkaError::Canceled,
        }));
    };
    let timeout = ctx.transaction_timeout.min(TRANSACTION_CALL_WAIT);
    let moved = || ctx.assignment.generation() != generation;
    let mut retry = DeliveryRetry::new("exactly_once", &ctx.health);
    loop {
        if moved() {
            // Nothing is open between attempts; the new owner replays the interval and re-emits
            // its decisions from the outboxes already flushed.
            tracing::info!(
                "partitions revoked before the checkpoint's transaction; their next owner replays it"
            );
            return Ok(None);
        }
        let started = Instant::now();
        let attempt = async {
            // begin_transaction is local; a retriable failure opened nothing, so no abort.
            call_retrying(&mut retry, &moved, false, || sink.begin())
                .await
                .map_err(|e| (e, false))?;
            let published = sink.publish(decisions, dead).await.map_err(|e| (e, true))?;
            let produced = started.elapsed();
            call_retrying(&mut retry, &moved, false, || {
                sink.send_offsets(offsets.clone(), group.clone(), timeout)
            })
            .await
            .map_err(|e| (e, true))?;
            // A commit that failed retriably is still in progress in librdkafka: only calling it
            // again resumes it (an abort is refused meanwhile), so it is retried whatever the
            // assignment does; it then commits or fails with an abortable error.
            call_retrying(&mut retry, &moved, true, || sink.commit(timeout))
                .await
                .map_err(|e| (e, true))?;
            Ok::<_, (SinkError, bool)>((published, produced))
        }
        .await;
        let (failed, open) = match attempt {
            Ok((published, produced)) => {
                if ctx.mirror_transaction_offsets {
                    // Sequential per worker, and only this worker commits these partitions, so
                    // the mirrored offsets never go backwards.
                    let committer = ctx.offsets.clone();
                    let mirrored =
                        tokio::task::spawn_blocking(move || committer.commit(&offsets)).await;
                    if let Ok(Err(e)) = mirrored {
                        tracing::warn!(error = %e, "mirrored offset commit failed");
                    }
                }
                tracing::debug!(
                    offsets = ?last_offsets,
                    records = decisions.len() + dead.len(),
                    produce_ms = produced.as_millis() as u64,
                    total_ms = started.elapsed().as_millis() as u64,
                    "transaction committed"
                );
                retry.succeeded();
                return Ok(Some(published));
            }
            Err(failed) => failed,
        };
        if failed.is_fatal() {
            return Err(failed.into());
        }
        let recovery = failed.recovery();
        if recovery != Recovery::Fail {
            // Retry (a record failed transiently) or AbortAndRedo: the whole transaction again,
            // after the backoff. Counted and marked not ready before the abort, which may wait
            // for the broker to come back.
            retry.wait(&failed).await;
        }
        if open {
            abort_retrying(sink, timeout, &mut retry).await?;
        }
        if moved() {
            tracing::info!(error = %failed, "transaction aborted by a rebalance; the partitions' next owner replays the interval");
            metrics().transactions_aborted.inc();
            return Ok(None);
        }
        if recovery == Recovery::Fail {
            return Err(failed.into());
        }
    }
}

/// Calls a transaction step until it succeeds or fails other than retriably; a retriable failure
/// is retried after the backoff. A step that is not `resumable` stops retrying when the work's
/// partitions have moved (`moved`), returning its last error for the caller to abort on.
async fn call_retrying<F, Fut>(
    retry: &mut DeliveryRetry,
    moved: &impl Fn() -> bool,
    resumable: bool,
    mut call: F,
) -> Result<(), SinkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), SinkError>>,
{
    loop {
        match call().await {
            Ok(()) => return Ok(()),
            Err(e) if e.recovery() == Recovery::Retry && (resumable || !moved()) => {
                retry.wait(&e).await
            }
            Err(e) => return Err(e),
        }
    }
}

/// Aborts the open transaction, calling the abort again while librdkafka reports it retriable
/// (it timed out with the broker unreachable: the next call resumes it). The producer can begin
/// no other transaction before the abort completes, so it is retried whatever the assignment
/// does. Any other failure ends the worker (the process exits; a restart is safe).
async fn abort_retrying(
    sink: &Sink,
    timeout: Duration,
    retry: &mut DeliveryRetry,
) -> Result<(), WorkerError> {
    loop {
        match sink.abort(timeout).await {
            Ok(()) => return Ok(()),
            Err(e) if e.recovery() == Recovery::Retry => retry.wait(&e).await,
            Err(e) => {
                tracing::error!(error = %e, "transaction abort failed");
                return Err(e.into());
            }
        }
    }
}
