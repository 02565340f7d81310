//! The drain at shutdown (or after a worker's failure), in this order: not ready → hand the
//! workers what was polled (held batches first, in order; nothing after a failure) → close the
//! queues and wait for the workers (each finishes its batch: produce, flush state, store offsets)
//! → flush the producer → commit the stored offsets synchronously → leave the group → stop the
//! rules watcher.

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
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("offsets committed at shutdown"),
            // Auto-commit already committed every stored offset: nothing new to commit.
            Err(rdkafka::error::KafkaError::ConsumerCommit(
                rdkafka::types::RDKafkaErrorCode::NoOffset,
            )) => {
                tracing::info!("offsets already committed at shutdown")
            }
            Err(e) => {
                tracing::warn!(error = %e, "final offset commit failed; the next run replays from the last commit")
            }
        }
    }
    consumer.unsubscribe();
    if let Some(task) = rules_task {
        // The watcher stops on the shutdown signal; after a worker failure it is stopped here.
        // Awaited, so its consumer is closed before the caller tears the broker down.
        task.abort();
        let _ = task.await;
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
