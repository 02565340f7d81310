//! Writer schemas fetched before a batch decodes: the one place the decode stage waits on the
//! network, once per new schema id, never per record.
//!
//! Before decoding a batch, the worker collects the schema ids the [`Codec`] has not resolved
//! yet ([`Codec::missing_writer`]) and calls [`Fetcher::prepare`]. Each id is asked of the
//! registry once; its answer is resolved against the topic's reader schema and kept
//! ([`Codec::add_writer`]), so every later record of that writer decodes without a lookup.
//!
//! Faults: an id the registry does not know (asked three times, half a second apart) is
//! dead-lettered as `unknown_schema_id`, and asked again after `UNKNOWN_ID_RETRY` (30 s); an
//! unreachable or failing registry is transient, handled as a Redis outage is: the batch waits and
//! retries with backoff (100 ms doubling to 5 s), `/readyz` answers 503 meanwhile, nothing is
//! decoded, dead-lettered or committed, and the poll loop's backpressure pauses the partitions if
//! it lasts. The wait ends when the batch's partitions are revoked (their next owner replays it);
//! a shutdown during the wait is bounded by `kafka.shutdown_timeout` (exit 1, nothing committed
//! past the batch), as a drain stuck on Redis is.

use super::{Codec, WriterOutcome};
use crate::backoff::Backoff;
use crate::event::EventKind;
use crate::telemetry::{http::Health, metrics};
use futures::StreamExt;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Where writer schemas come from: the Schema Registry in production (see `registry`).
#[async_trait::async_trait]
pub trait WriterSchemas: Send + Sync {
    /// The schema text of `id`: `Ok(None)` when the registry does not know the id (permanent),
    /// `Err` when it cannot answer now (transient, retried), with the reason.
    async fn schema(&self, id: u32) -> Result<Option<String>, String>;
}

/// Fetches writer schemas for the workers (shared by all of them).
pub struct Fetcher {
    source: Arc<dyn WriterSchemas>,
    /// One fetch at a time: two workers meeting the same new id ask the registry once.
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fetcher")
    }
}

impl Fetcher {
    /// A fetcher over `source`.
    pub fn new(source: Arc<dyn WriterSchemas>) -> Self {
        Self {
            source,
            one_at_a_time: tokio::sync::Mutex::new(()),
        }
    }

    /// Resolves every `(kind, id)` of `missing` in `codec`, waiting out registry faults.
    /// `topic` names a kind's topic (for logs and metrics); `owned` says whether the batch's
    /// partitions are still this worker's. Returns `false` when it gave up because they are not.
    pub async fn prepare(
        &self,
        codec: &Codec,
        missing: &BTreeSet<(EventKind, u32)>,
        topic: impl Fn(EventKind) -> String,
        health: &Health,
        owned: impl Fn() -> bool,
    ) -> bool {
        let _one = self.one_at_a_time.lock().await;
        let mut backoff = Backoff::default();
        let mut failing = None;
        // Another worker may have fetched some while this one waited for the lock.
        let mut pending: Vec<(EventKind, u32)> = missing
            .iter()
            .copied()
            .filter(|(kind, id)| !codec.writer_known(*kind, *id))
            .collect();
        while !pending.is_empty() {
            if !owned() {
                tracing::warn!(
                    schema_ids = ?pending,
                    "partitions reassigned while the batch waited for its writer schemas; batch given up"
                );
                return false;
            }
            // A batch's new ids are asked for together (a burst of new ids, such as a producer
            // writing garbage ids, costs one round of requests, not one after another).
            let answers: Vec<(Writer, Answer)> = futures::stream::iter(pending.iter().copied())
                .map(|(kind, id)| async move { ((kind, id), self.fetch(id).await) })
                .buffer_unordered(CONCURRENT_FETCHES)
                .collect()
                .await;
            let (answered, failed): (Vec<_>, Vec<_>) =
                answers.into_iter().partition(|(_, a)| a.is_ok());
            let found: Vec<(EventKind, u32, Option<String>)> = answered
                .into_iter()
                .filter_map(|((kind, id), a)| Some((kind, id, a.ok()?)))
                .collect();
            let items: Vec<(EventKind, u32, Option<&str>)> = found
                .iter()
                .map(|(kind, id, schema)| (*kind, *id, schema.as_deref()))
                .collect();
            for ((kind, id, _), outcome) in items.iter().zip(codec.add_writers(&items)) {
                report(&topic(*kind), *id, &outcome);
            }
            let Some((_, Err(reason))) = failed.first() else {
                break;
            };
            metrics().schema_registry_errors.inc_by(failed.len() as u64);
            failing.get_or_insert_with(|| health.registry_failing());
            let delay = backoff.next_delay();
            tracing::warn!(
                schema_ids = ?failed.iter().map(|(key, _)| key.1).collect::<Vec<_>>(),
                error = %reason,
                retry_in_ms = delay.as_millis() as u64,
                "schema registry failed; the batch waits for its writer schemas"
            );
            tokio::time::sleep(delay).await;
            pending = failed.into_iter().map(|(key, _)| key).collect();
        }
        if failing.is_some() {
            tracing::info!("schema registry answers again");
        }
        true
    }

    /// One id from the source. "Unknown" is asked again twice, half a second apart: a registry
    /// follower can answer 404 for an id registered a moment ago on the leader.
    async fn fetch(&self, id: u32) -> Result<Option<String>, String> {
        for _ in 1..NOT_FOUND_ATTEMPTS {
            match self.source.schema(id).await {
                Ok(None) => tokio::time::sleep(NOT_FOUND_PAUSE).await,
                answer => return answer,
            }
        }
        self.source.schema(id).await
    }
}

/// A writer schema: the topic's kind and the id.
type Writer = (EventKind, u32);
/// What the registry said of an id (see [`WriterSchemas::schema`]).
type Answer = Result<Option<String>, String>;

/// Registry requests in flight at once for one batch.
const CONCURRENT_FETCHES: usize = 8;
/// Times an id is asked for before "unknown" is taken as the answer.
const NOT_FOUND_ATTEMPTS: usize = 3;
/// Pause between those attempts.
const NOT_FOUND_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);

/// Logs and counts what a new writer schema resolved to (once per id).
fn report(topic: &str, id: u32, outcome: &WriterOutcome) {
    metrics()
        .schema_writers
        .with_label_values(&[topic, outcome.label()])
        .inc();
    match outcome {
        WriterOutcome::Identity | WriterOutcome::Resolved => {
            tracing::info!(topic, schema_id = id, resolution = outcome.label(), "new writer schema");
        }
        WriterOutcome::Unknown => tracing::error!(
            topic,
            schema_id = id,
            "the schema registry does not know this writer schema id: its records are dead-lettered (unknown_schema_id)"
        ),
        WriterOutcome::Incompatible(reason) => tracing::error!(
            topic,
            schema_id = id,
            %reason,
            "writer schema cannot be read as the topic's reader schema: its records are dead-lettered (incompatible_schema)"
        ),
    }
}
