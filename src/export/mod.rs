//! `nbo-stream export training`: training rows for the bank's ML team, one per decision, with
//! the features as they stood at the decision and what it came to afterwards.
//!
//! It reads, in this order:
//! 1. the erasure requests, all of them (the topic is compacted and kept forever): an erased
//!    customer's decisions are never written, whenever the erasure came;
//! 2. the outcomes from the start of the range on: offer responses, product openings that name
//!    an offer (conversions) and alert outcomes ([`labels`]);
//! 3. the audit topic from the start of the range on, joining each decision made inside the
//!    range with its label as it is read ([`rows`]), so memory holds the outcomes, not the
//!    decisions.
//!
//! A label counts only inside the maturity window after its decision; a decision whose window
//! has not closed by the time the export runs is left out unless asked for, with
//! `label_final` false. A decision whose features took in an event later than the decision
//! itself is left out: a model must not learn from what was not known when it decided. What
//! was left out, and why, is counted in the [`rows::Tally`] the export ends with.

pub mod labels;
pub mod read;
pub mod rows;
pub mod write;

use crate::config::Settings;
use crate::event::{Event, EventKind};
use crate::state::KeyHasher;
use indicatif::{ProgressBar, ProgressStyle};
use labels::{Labels, Outcome};
use rdkafka::Message;
use rows::{Columns, Join, Tally};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// What to export.
#[derive(Debug, Clone)]
pub struct TrainingOptions {
    /// Decisions made from this time (UTC ms, included)...
    pub from: i64,
    /// ... until this one (UTC ms, excluded).
    pub until: i64,
    /// How long after a decision its label counts.
    pub maturity: Duration,
    /// Where to write (Parquet, or JSON lines for `.jsonl`).
    pub out: PathBuf,
    /// The format; `None`: from the file name.
    pub format: Option<write::Format>,
    /// Keep decisions whose maturity window has not closed.
    pub include_immature: bool,
    /// The time the export runs at (UTC ms): windows ending after it have not closed.
    pub now: i64,
    /// Show progress on stderr.
    pub progress: bool,
}

/// What the export read and wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// Rows written and decisions left out, by reason.
    pub tally: Tally,
    /// Audit records read.
    pub audits_read: u64,
    /// Outcome records read (responses, openings, alert outcomes).
    pub outcomes_read: u64,
    /// Customers with an erasure request.
    pub erased_customers: u64,
    /// Records that could not be decoded, skipped (logged with topic, partition and offset).
    pub undecodable: u64,
}

/// Runs the export with `settings` (Kafka, topics, codec, feature set, customer-key secret).
pub async fn training(settings: &Settings, options: &TrainingOptions) -> anyhow::Result<Summary> {
    if options.until <= options.from {
        anyhow::bail!("the range is empty: --until must be after --from");
    }
    let secret = settings.customer_key_secret.as_ref().ok_or_else(|| {
        anyhow::anyhow!(
            "set NBO_CUSTOMER_KEY_SECRET (the `run` instances' key): rows carry the customer key the state store uses, never the raw id"
        )
    })?;
    let hasher = KeyHasher::new(secret.expose().as_bytes());
    let features = settings.features.load_in(&settings.catalog)?;
    let columns = Columns::new(features.defs().iter().map(|d| d.name.clone()));
    let (codec, fetcher) = crate::pipeline::codec_and_registry(settings, &[]).await?;
    let consumer = read::consumer(settings)?;
    let audits = read::AuditDecoder::new(settings.codec.output_framing)?;
    let progress = Progress::new(options.progress);
    let mut summary = Summary::default();
    let t = &settings.topics;

    let mut erased = HashSet::new();
    progress.stage(&t.erasure_requests);
    read::read_topic(&consumer, &t.erasure_requests, None, async |m| {
        progress.tick();
        match read::decode_input(&codec, fetcher.as_deref(), EventKind::Erasure, m).await {
            Ok(Event::Erasure(r)) => {
                erased.insert(r.customer_id.to_string());
            }
            Ok(_) => {}
            Err(e) => undecodable(&mut summary, m, &e),
        }
    })
    .await?;
    summary.erased_customers = erased.len() as u64;

    let mut labels = Labels::default();
    let sources = [
        (&t.offer_responses, EventKind::OfferResponse),
        (&t.product_openings, EventKind::ProductOpened),
        (&t.alert_outcomes, EventKind::AlertOutcome),
    ];
    for (topic, kind) in sources {
        progress.stage(topic);
        let read = read::read_topic(&consumer, topic, Some(options.from), async |m| {
            progress.tick();
            match read::decode_input(&codec, fetcher.as_deref(), kind, m).await {
                Ok(event) => note_outcome(&mut labels, &event),
                Err(e) => undecodable(&mut summary, m, &e),
            }
        })
        .await?;
        summary.outcomes_read += read;
    }

    let format = options
        .format
        .unwrap_or_else(|| write::Format::for_path(&options.out));
    let mut sink = write::sink(format, &options.out, &columns)?;
    let join = Join {
        labels: &labels,
        erased: &erased,
        hasher: &hasher,
        columns: &columns,
        from: options.from,
        until: options.until,
        window_ms: options.maturity.as_millis() as i64,
        now: options.now,
        include_immature: options.include_immature,
    };
    let mut failed = None;
    progress.stage(&t.decisions_audit);
    summary.audits_read = read::read_topic(
        &consumer,
        &t.decisions_audit,
        Some(options.from),
        async |m| {
            progress.tick();
            if failed.is_some() {
                return;
            }
            match audits.decode(m.payload().unwrap_or_default()) {
                Ok(audit) => {
                    if let Some(row) = join.row(&audit, &mut summary.tally) {
                        if let Err(e) = sink.write(row) {
                            failed = Some(e);
                        }
                    }
                }
                Err(e) => undecodable(&mut summary, m, &e),
            }
        },
    )
    .await?;
    if let Some(e) = failed {
        return Err(e.context(format!("writing {}", options.out.display())));
    }
    sink.finish()?;
    progress.done();
    Ok(summary)
}

/// Takes an outcome record into the labels.
fn note_outcome(labels: &mut Labels, event: &Event) {
    match event {
        Event::OfferResponse(r) => {
            labels.add(&r.offer_id, Outcome::Response(r.response), r.event_time)
        }
        Event::ProductOpened(o) => {
            if let Some(offer) = &o.offer_id {
                labels.add(offer, Outcome::Converted, o.event_time);
            }
        }
        Event::AlertOutcome(o) => labels.add(&o.alert_id, Outcome::Closed(o.label), o.event_time),
        _ => {}
    }
}

fn undecodable(summary: &mut Summary, m: &rdkafka::message::BorrowedMessage<'_>, error: &str) {
    summary.undecodable += 1;
    tracing::warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), %error, "export: record skipped");
}

/// Records read so far, per topic, on stderr.
struct Progress(Option<ProgressBar>);

impl Progress {
    fn new(show: bool) -> Self {
        Self(show.then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}: {pos} records ({per_sec})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        }))
    }

    fn stage(&self, topic: &str) {
        if let Some(bar) = &self.0 {
            bar.set_position(0);
            bar.set_message(format!("reading {topic}"));
        }
    }

    fn tick(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    fn done(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}
