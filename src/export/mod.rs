//! `nbo-stream export training`: training rows for the bank's ML team, one per decision, with
//! the features as they stood at the decision and what it came to afterwards.
//!
//! It reads, in this order:
//! 1. the erasure requests, all of them (the topic is compacted and kept forever): an erased
//!    customer's decisions are never written, whenever the erasure came;
//! 2. the outcomes from the start of the range on: offer responses, product openings that name
//!    an offer (conversions) and alert outcomes ([`labels`]);
//! 3. the audit topic from the start of the range on, joining each decision made inside the
//!    range with its label as it is read ([`rows`]), so memory holds the outcomes (and a 16-byte
//!    hash per decision, to write a decision delivered twice once), not the decisions.
//!
//! An erasure request that cannot be decoded stops the export. The file is written beside its
//! name (`<out>.partial`) and renamed over it once whole, so a failed export leaves the last
//! good file.
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
    let audits = read::AuditDecoder::new(settings.codec.output_framing)?;
    let progress = Progress::new(options.progress);
    let mut summary = Summary::default();
    let t = &settings.topics;

    // An erasure request that cannot be read would let an erased customer through: it stops the
    // export, naming the record.
    let mut erased = HashSet::new();
    let mut unreadable = None;
    progress.stage(&t.erasure_requests);
    read::read_topic(settings, &t.erasure_requests, None, async |m| {
        progress.tick();
        match read::decode_input(&codec, fetcher.as_deref(), EventKind::Erasure, m).await {
            Ok(Event::Erasure(r)) => {
                erased.insert(r.customer_id.to_string());
            }
            Ok(_) => {}
            Err(e) => {
                unreadable.get_or_insert(format!(
                    "{} partition {} offset {}: {e}",
                    m.topic(),
                    m.partition(),
                    m.offset()
                ));
            }
        }
    })
    .await?;
    if let Some(record) = unreadable {
        anyhow::bail!(
            "an erasure request cannot be read ({record}): no export, since its customer could not be left out; dead-letter or repair the record"
        );
    }
    summary.erased_customers = erased.len() as u64;

    let mut labels = Labels::default();
    let sources = [
        (&t.offer_responses, EventKind::OfferResponse),
        (&t.product_openings, EventKind::ProductOpened),
        (&t.alert_outcomes, EventKind::AlertOutcome),
    ];
    for (topic, kind) in sources {
        progress.stage(topic);
        let read = read::read_topic(settings, topic, Some(options.from), async |m| {
            progress.tick();
            match read::decode_input(&codec, fetcher.as_deref(), kind, m).await {
                // Nothing before the range can label a decision in it.
                Ok(event) if event.event_time() >= options.from => {
                    note_outcome(&mut labels, &event)
                }
                Ok(_) => {}
                Err(e) => undecodable(&mut summary, m, &e),
            }
        })
        .await?;
        summary.outcomes_read += read;
    }

    let format = options
        .format
        .unwrap_or_else(|| write::Format::for_path(&options.out));
    // Written beside the file and renamed over it once whole: a failed export leaves the last
    // good file as it was.
    let partial = partial_path(&options.out);
    let mut sink = write::sink(format, &partial, &columns)?;
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
    // Audit ids written: a record delivered twice (at least once, after a crash) is one decision.
    let mut written: HashSet<u128> = HashSet::new();
    progress.stage(&t.decisions_audit);
    let read = read::read_topic(
        settings,
        &t.decisions_audit,
        Some(options.from),
        async |m| {
            progress.tick();
            if failed.is_some() {
                return;
            }
            let audit = match audits.decode(m.payload().unwrap_or_default()) {
                Ok(audit) => audit,
                Err(e) => return undecodable(&mut summary, m, &e),
            };
            if !written.insert(xxhash_rust::xxh3::xxh3_128(audit.audit_id.as_bytes())) {
                summary.tally.repeated += 1;
                return;
            }
            if let Some(row) = join.row(&audit, &mut summary.tally) {
                if let Err(e) = sink.write(row) {
                    failed = Some(e);
                }
            }
        },
    )
    .await;
    let finished = match (read, failed) {
        (Err(e), _) => Err(e),
        (Ok(_), Some(e)) => Err(e.context(format!("writing {}", partial.display()))),
        (Ok(n), None) => {
            summary.audits_read = n;
            sink.finish()
                .and_then(|()| Ok(std::fs::rename(&partial, &options.out)?))
        }
    };
    if let Err(e) = finished {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    progress.done();
    Ok(summary)
}

/// Where the export is written before it is whole: `<out>.partial`.
fn partial_path(out: &std::path::Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    out.with_file_name(name)
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
