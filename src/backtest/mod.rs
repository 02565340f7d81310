//! `nbo-stream backtest`: replays recorded events (see [`crate::recorded`]) through the same
//! [`Operator`] as the pipeline — features, rules, decisioning — with in-memory state, and reports
//! what the rule set would have decided.
//!
//! Per customer, events are applied in file order, state starting empty and aligned with the
//! feature set, exactly as the worker applies a partition's events. Records that cannot be decoded
//! or validated are counted with their reason and skipped; they never stop the replay. The
//! offers learn from the recorded responses as the pipeline would, in file order (the counts
//! taken in after each event). [`world`] runs the same operator against simulated customers who
//! answer its offers.

pub mod exposures;
pub mod labelled;
pub mod report;
pub mod world;

use crate::codec::Codec;
use crate::config::Settings;
use crate::customer::CustomerState;
use crate::event::Text;
use crate::features::FeatureSet;
use crate::operator::{BatchStats, Operator};
use crate::output::Decision;
use crate::recorded::{Record, RecordReader, RecordedError};
use crate::rules::RuleSet;
use indicatif::{ProgressBar, ProgressStyle};
use report::{BacktestReport, Source, Tally, Timing};
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// What to replay.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// The recorded-events file (Avro container or JSON lines).
    pub events: PathBuf,
    /// Rule documents to replay instead of the built-in rules (not supported yet).
    pub rules: Option<PathBuf>,
    /// Sample decisions to keep in the report.
    pub samples: usize,
    /// The clock event times are checked against (ms since epoch), as the pipeline's decoder
    /// checks them: events further ahead than `operator.max_future_skew` are dead.
    pub now_ms: i64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Known fraud to score the alert rules against (`--labels`; see [`labelled`]).
    pub labels: Option<PathBuf>,
    /// How near an alert must be to a fraud labelled by customer and time (either side).
    pub label_window: std::time::Duration,
}

/// `--label-window`'s default: an alert within a day of a customer's fraud caught it.
pub const DEFAULT_LABEL_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A backtest that cannot run (bad records never cause one: they are counted).
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The features file does not load.
    #[error("features: {0}")]
    Features(#[from] crate::features::spec::FeatureError),
    /// The rules do not load or build.
    #[error("rules: {0}")]
    Rules(String),
    /// The Avro schemas do not parse (a build defect).
    #[error(transparent)]
    Schema(#[from] crate::codec::SchemaError),
    /// The events file cannot be read.
    #[error(transparent)]
    Recorded(#[from] RecordedError),
    /// The labels file cannot be read or a line of it is not a label.
    #[error(transparent)]
    Labels(#[from] labelled::LabelsError),
}

/// The rule set to replay: the rule documents at `path` (a file or a folder), or the built-in
/// starter rules. Every error is reported, with rule id and position.
pub fn load_rules(path: Option<&Path>, features: &FeatureSet) -> Result<RuleSet, BacktestError> {
    crate::rules::load::rule_set(path, features)
        .map_err(|errors| BacktestError::Rules(crate::rules::load::describe(&errors)))
}

/// `settings` with the audit roll-up off: a backtest reports each decision, and a window still
/// open at the end of the file would leave its repeats uncounted.
pub(crate) fn without_rollup(
    settings: &crate::config::OperatorSettings,
) -> crate::config::OperatorSettings {
    crate::config::OperatorSettings {
        audit_rollup: std::time::Duration::ZERO,
        ..settings.clone()
    }
}

/// Builds the operator from `settings` (features, operator policy, control group) and the rules,
/// then replays the file.
pub fn run(
    settings: &Settings,
    options: &BacktestOptions,
) -> Result<BacktestReport, BacktestError> {
    let features = Arc::new(settings.features.load_in(&settings.catalog)?);
    let rules = load_rules(options.rules.as_deref(), &features)?;
    let operator = Operator::new(
        features,
        rules,
        &without_rollup(&settings.operator),
        settings.operator.control_group_percent,
    );
    let codec = Codec::new(&settings.codec_options())?;
    replay(&operator, &codec, options)
}

/// Replays the file through `operator`, decoding and validating records with `codec`.
pub fn replay(
    operator: &Operator,
    codec: &Codec,
    options: &BacktestOptions,
) -> Result<BacktestReport, BacktestError> {
    let started = Instant::now();
    let path = &options.events;
    let bytes = std::fs::metadata(path)
        .map_err(|e| RecordedError::Io {
            path: path.clone(),
            source: e,
        })?
        .len();
    let mut scoring = match &options.labels {
        Some(file) => Some(labelled::Scoring::new(
            labelled::FraudLabels::load(file)?,
            file,
            options.label_window.as_millis() as i64,
        )),
        None => None,
    };
    let mut reader = RecordReader::open(path, codec, options.now_ms)?;
    let bar = progress_bar(options.progress, bytes);
    let mut states: FxHashMap<Text, CustomerState> = FxHashMap::default();
    let mut tally = Tally::new(operator.rules().version, options.samples);
    let mut stats = BatchStats::default();
    let learned = crate::state::models::MemoryModels::default();
    let mut out = Vec::new();
    let mut n: u64 = 0;
    while let Some(record) = reader.next_record(codec) {
        match record? {
            Record::Event(event) => {
                tally.event(&event);
                let state = states
                    .entry(Text::from(event.customer_id()))
                    .or_insert_with(|| {
                        let mut state = CustomerState::default();
                        operator.align(&mut state);
                        state
                    });
                out.clear();
                operator.apply(state, &event, None, &mut out, &mut stats);
                if !stats.learned.is_empty() {
                    if let Some(models) = operator.models() {
                        models.set(&learned.record_now(&stats.learned));
                    }
                    stats.learned.clear();
                }
                for decision in &out {
                    tally.decision(decision);
                    if let (Some(scoring), Decision::Audit(audit)) = (&mut scoring, decision) {
                        scoring.audit(audit);
                    }
                }
                tally.uplift(&mut stats.uplift);
                // A recording's alert outcomes label nothing here: `--labels` scores the alerts.
                stats.closed.clear();
                stats.rejected.clear();
            }
            Record::Dead(dead) => tally.dead(dead),
        }
        n += 1;
        if n.is_multiple_of(8192) {
            bar.set_position(reader.bytes_read());
        }
    }
    bar.finish_and_clear();
    let mut results = tally.finish(&stats, states.len() as u64, codec);
    results.labelled = scoring.map(|s| s.finish(results.events_decoded));
    let elapsed = started.elapsed().as_secs_f64();
    Ok(BacktestReport {
        source: Source {
            path: path.display().to_string(),
            format: reader.format(),
            bytes,
        },
        timing: Timing {
            elapsed_secs: elapsed,
            records_per_sec: results.records_read as f64 / elapsed.max(1e-9),
        },
        results,
    })
}

fn progress_bar(show: bool, bytes: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(bytes);
    if let Ok(style) = ProgressStyle::with_template(
        "backtest [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
