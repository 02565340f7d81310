//! The drain at shutdown (or after a worker's failure), in this order: not ready → hand the
//! workers what was polled (held batches first, in order; nothing after a failure) → close the
//! queues and wait for the workers (each finishes its batch and takes a last checkpoint: state
//! flushed, offsets stored or committed) → flush the producer → commit the stored offsets
//! (bounded, see [`commit_final`]) → leave the group → stop the rules watcher → close the
//! consumer (bounded, see [`close_consumer`]).

use super::build::Built;
use super::poll::Polled;
use super::PipelineError;
use crate::telemetry::http::Health;
use rdkafka::consumer::{CommitMode, Consumer as _};
use std::time::Duration;

/// Drains a run (see the module docs); the first failure, if any, is the run's result.
pub(super) async fn drain(
    built: Built,
    polled: Polled,
    health: &Health,
) -> Result<(), PipelineError> {
    let Built {
        ctx,
        consumer,
        sink,
        rules_task,
        ..
    } = built;
    let Polled {
        dispatch,
        pending,
        mut workers,
        mut failure,
    } = polled;
    // Drain: hand over what was polled (held batches first, in order), close the queues, wait
    // for the workers.
    health.set_ready(false);
    let queues = dispatch.into_queues(failure.is_none()).await;
    if failure.is_none() {
        for (i, batch) in pending.into_iter().enumerate() {
            if !batch.records.is_empty() {
                let _ = queues[i].send(batch).await;
            }
        }
    }
    drop(queues);
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(Err(e)) => {
                failure.get_or_insert(e.into());
            }
            Err(join) => {
                failure.get_or_insert(PipelineError::WorkerPanic(join.to_string()));
            }
            Ok(Ok(())) => {}
        }
    }
    sink.flush(Duration::from_secs(10));
    if failure.is_none() {
        commit_final(&consumer);
    }
    consumer.unsubscribe();
    if let Some(task) = rules_task {
        // The watcher stops on the shutdown signal; after a worker failure it is stopped here.
        // Awaited, so its consumer is closed before the caller tears the broker down.
        task.abort();
        let _ = task.await;
    }
    // The workers' context holds the other handle on the consumer (its offset store).
    drop(ctx);
    close_consumer(consumer);
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Longest the consumer's close may take at the end of the drain.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// Drops the last handle on the consumer, which closes it (librdkafka leaves the group and serves
/// the last rebalance callback), on a thread of its own, waited for at most [`CLOSE_WAIT`]. A
/// consumer stopped while it was still joining its group was once seen to block in that callback
/// (`rd_kafka_assign` of the revoke) for good: on an async thread it would hold the runtime, and
/// the run would never return. Past the bound the thread is left to end on its own; the offsets
/// were committed before ([`commit_final`]), so nothing depends on it.
fn close_consumer(consumer: std::sync::Arc<crate::source::Consumer>) {
    let holders = std::sync::Arc::strong_count(&consumer);
    if holders > 1 {
        tracing::debug!(
            holders,
            "another handle on the consumer remains; it closes where that one is dropped"
        );
    }
    let (done, closed) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("consumer-close".into())
        .spawn(move || {
            drop(consumer);
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "consumer close not started on a thread of its own");
        return;
    }
    if closed.recv_timeout(CLOSE_WAIT).is_err() {
        tracing::warn!(
            wait_s = CLOSE_WAIT.as_secs(),
            "the consumer did not close in time; left to close on its own"
        );
    }
}

/// Longest the final offset commit may wait for the broker.
const FINAL_COMMIT_WAIT: Duration = Duration::from_secs(10);

/// Commits the offsets the workers' last checkpoints stored, synchronously but bounded: librdkafka's
/// synchronous commit waits without limit for the group coordinator, which under load (seen with
/// the mock cluster) can mean forever, and a shutdown must end. So it runs on a thread of its own
/// and is waited for [`FINAL_COMMIT_WAIT`]; past that, closing the consumer commits the stored
/// offsets again (auto-commit), and if that fails too the next run replays from the last commit —
/// at-least-once allows that, and the outputs repeat byte for byte.
fn commit_final(consumer: &std::sync::Arc<crate::source::Consumer>) {
    let committer = consumer.clone();
    let (done, result) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("final-commit".into())
        .spawn(move || {
            let _ = done.send(committer.commit_consumer_state(CommitMode::Sync));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "final offset commit not started; closing the consumer commits the stored offsets");
        return;
    }
    match result.recv_timeout(FINAL_COMMIT_WAIT) {
        Ok(Ok(())) => tracing::info!("offsets committed at shutdown"),
        // Auto-commit already committed every stored offset: nothing new to commit.
        Ok(Err(rdkafka::error::KafkaError::ConsumerCommit(
            rdkafka::types::RDKafkaErrorCode::NoOffset,
        ))) => tracing::info!("offsets already committed at shutdown"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "final offset commit failed; the next run replays from the last commit")
        }
        Err(_) => tracing::warn!(
            wait_s = FINAL_COMMIT_WAIT.as_secs(),
            "final offset commit did not answer; closing the consumer commits the stored offsets, else the next run replays from the last commit"
        ),
    }
}
