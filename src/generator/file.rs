//! `nbo-stream generate --out FILE`: the same deterministic stream as the Kafka generator, written
//! to a recorded-events file (see [`crate::recorded`]) instead of topics. No broker, no rate.

use super::personas::EventFactory;
use super::GenerateSummary;
use crate::recorded::{Format, RecordWriter, RecordedError};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to write.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// The file to create (replaced if it exists).
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// Synthetic customers.
    pub customers: u32,
    /// Records to write.
    pub events: u64,
    /// Random seed: the same seed and start give the same records.
    pub seed: u64,
    /// Simulated time of the first event (ms since epoch).
    pub start_ms: i64,
    /// Event times never pass this (the wall clock: the pipeline refuses events from the future).
    pub clock_cap_ms: Option<i64>,
    /// Declared sources whose synthetic records join the stream (JSON lines only: Avro
    /// recorded files hold the built-in records).
    pub declared: Vec<std::sync::Arc<crate::catalog::Declared>>,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Customers also open products on their own at these base rates (`None`: none).
    pub own_conversions: Option<super::responder::Truth>,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct FileSummary {
    /// Records by topic, elapsed time (nothing malformed, nothing failed).
    pub summary: GenerateSummary,
    /// Size of the file written, bytes.
    pub bytes: u64,
}

/// The format a path implies, or a clear error naming the choices.
pub fn format_for(path: &Path, format: Option<Format>) -> Result<Format, String> {
    format.or_else(|| Format::from_extension(path)).ok_or_else(|| {
        format!(
            "cannot tell the format of {} from its extension: name it .avro or .jsonl, or pass --format avro|jsonl",
            path.display()
        )
    })
}

/// Writes the stream to `options.path`.
pub fn generate_to_file(options: &FileOptions) -> Result<FileSummary, RecordedError> {
    let started = Instant::now();
    let mut factory = EventFactory::new(options.customers, options.seed, options.start_ms)
        .with_declared(options.declared.clone());
    if let Some(truth) = &options.own_conversions {
        factory = factory.with_own_conversions(truth, options.seed);
    }
    if let Some(cap) = options.clock_cap_ms {
        factory.cap_clock(cap);
    }
    let mut writer = RecordWriter::create_with(&options.path, options.format, &options.declared)?;
    let bar = progress_bar(options);
    let mut by_kind = crate::event::KindTable::<u64>::default();
    for i in 0..options.events {
        let event = factory.next_event();
        writer.write(&event)?;
        *by_kind.entry(event.kind()) += 1;
        if i % 4096 == 0 {
            bar.set_position(i);
        }
    }
    let bytes = writer.finish()?;
    bar.finish_and_clear();
    let mut summary = GenerateSummary {
        sent: options.events,
        elapsed: started.elapsed(),
        ..GenerateSummary::default()
    };
    for (kind, n) in by_kind.iter().filter(|(_, n)| **n > 0) {
        let name = match options.declared.iter().find(|d| d.kind() == kind) {
            Some(source) => source.record,
            None => kind.record_name(),
        };
        summary.by_topic.insert(name.to_string(), *n);
    }
    Ok(FileSummary { summary, bytes })
}

fn progress_bar(options: &FileOptions) -> ProgressBar {
    if !options.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(options.events);
    if let Ok(style) = ProgressStyle::with_template(
        "generate [{bar:40}] {pos}/{len} records ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
