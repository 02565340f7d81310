//! Writer schemas fetched before a batch decodes: the one place the decode stage waits on the
//! network, once per new schema id, never per record.
//!
//! Before decoding a batch, the worker collects the schema ids the [`Codec`] has not resolved
//! yet ([`Codec::missing_writer`]) and calls [`Fetcher::prepare`]. Each id is asked of the
//! registry once; its answer is resolved against the topic's reader schema and kept
//! ([`Codec::add_writer`]), so every later record of that writer decodes without a lookup.
//!
//! Faults: an id the registry does not know is permanent (its records are dead-lettered as
//! `unknown_schema_id`); an unreachable or failing registry is transient, handled as a Redis
//! outage is: the batch waits and retries with backoff (100 ms doubling to 5 s), `/readyz`
//! answers 503 meanwhile, nothing is decoded, dead-lettered or committed, and the poll loop's
//! backpressure pauses the partitions if it lasts. The wait ends when the batch's partitions are
//! revoked (their next owner replays it).

use super::{Codec, WriterOutcome};
use crate::event::EventKind;
use crate::sink::Backoff;
use crate::telemetry::{http::Health, metrics};
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
        for &(kind, id) in missing {
            loop {
                if !owned() {
                    tracing::warn!(
                        schema_id = id,
                        "partitions reassigned while the batch waited for its writer schema; batch given up"
                    );
                    return false;
                }
                // Another worker may have fetched it while this one waited for the lock.
                if codec.writer_known(kind, id) {
                    break;
                }
                match self.source.schema(id).await {
                    Ok(schema) => {
                        let outcome = codec.add_writer(kind, id, schema.as_deref());
                        report(&topic(kind), id, &outcome);
                        break;
                    }
                    Err(reason) => {
                        metrics().schema_registry_errors.inc();
                        failing.get_or_insert_with(|| health.registry_failing());
                        let delay = backoff.next_delay();
                        tracing::warn!(
                            schema_id = id,
                            topic = %topic(kind),
                            error = %reason,
                            retry_in_ms = delay.as_millis() as u64,
                            "schema registry failed; the batch waits for the writer schema"
                        );
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        if failing.is_some() {
            tracing::info!("schema registry answers again");
        }
        true
    }
}

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
