//! Backtests from the rule editor: the rules in force with the edited document in place of its
//! id (or added), replayed over a recorded file from `console.recordings` by the same operator
//! `nbo-stream backtest` runs, and the report drawn as tables and a bar chart.
//!
//! Files are chosen by name from the folder's listing, never by a path the browser sends. One
//! backtest runs at a time, on a blocking thread, so the pages stay fast while it runs.

use super::pages::esc;
use crate::backtest::report::BacktestReport;
use crate::backtest::{replay, BacktestOptions};
use crate::codec::Codec;
use crate::config::Settings;
use crate::features::FeatureSet;
use crate::operator::Operator;
use crate::rules::book::RuleBook;
use crate::rules::document::RuleDocument;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Recorded files offered for backtests: the names in `folder` ending in `.avro` or `.jsonl`,
/// sorted.
pub fn recordings(folder: Option<&Path>) -> Vec<String> {
    let Some(folder) = folder else {
        return Vec::new();
    };
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".avro") || n.ends_with(".jsonl"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The path of recording `name`, if the folder lists it.
pub fn recording(folder: Option<&Path>, name: &str) -> Option<PathBuf> {
    let folder = folder?;
    recordings(Some(folder))
        .iter()
        .any(|n| n == name)
        .then(|| folder.join(name))
}

/// A candidate's backtest beside the version in force, on the same recording.
pub struct Comparison {
    /// The version in force of the candidate's rule id and the replay of the rules in force
    /// (none for a new rule).
    pub in_force: Option<(i32, BacktestReport)>,
    /// The candidate's version.
    pub version: i32,
    /// The replay with the candidate in force in its rule id's place.
    pub candidate: BacktestReport,
}

fn replay_rules(
    settings: &Settings,
    features: &Arc<FeatureSet>,
    rules: crate::rules::RuleSet,
    file: &std::path::Path,
) -> Result<BacktestReport, String> {
    let operator = Operator::new(
        features.clone(),
        rules,
        &crate::backtest::without_rollup(&settings.operator),
        settings.operator.control_group_percent,
    );
    let codec = Codec::new(&settings.codec_options()).map_err(|e| e.to_string())?;
    let options = BacktestOptions {
        events: file.to_path_buf(),
        rules: None,
        samples: 10,
        now_ms: super::now_ms(),
        progress: false,
        labels: None,
        label_window: crate::backtest::DEFAULT_LABEL_WINDOW,
    };
    replay(&operator, &codec, &options).map_err(|e| e.to_string())
}

/// Replays `file` twice: with the rules of `book` as they are in force, and with `doc` in force
/// in its rule id's place (active, whatever state it was written in, so it acts as it would
/// once promoted). Blocking: CPU-bound.
pub fn run(
    settings: &Settings,
    features: Arc<FeatureSet>,
    book: &RuleBook,
    doc: &RuleDocument,
    file: PathBuf,
) -> Result<Comparison, String> {
    let champion = book
        .versions(&doc.id)
        .and_then(|v| v.champion.as_ref())
        .map(|e| e.doc.version);
    let in_force = match champion {
        Some(v) => Some((
            v,
            replay_rules(settings, &features, book.rule_set(), &file)?,
        )),
        None => None,
    };
    let mut docs: Vec<RuleDocument> = book
        .documents()
        .filter(|d| d.id != doc.id)
        .cloned()
        .collect();
    let mut candidate = doc.clone();
    candidate.state = crate::rules::document::RuleState::Active;
    docs.push(candidate);
    let rules = RuleBook::new(features.clone(), &docs)
        .map_err(|e| crate::rules::load::describe(&e))?
        .rule_set();
    Ok(Comparison {
        in_force,
        version: doc.version,
        candidate: replay_rules(settings, &features, rules, &file)?,
    })
}

/// The side-by-side table: each outcome of the rule under the version in force and under the
/// candidate, with the difference.
fn side_by_side(c: &Comparison, rule_id: &str) -> String {
    let counts = |r: &BacktestReport| {
        r.results
            .decisions_by_rule
            .get(rule_id)
            .cloned()
            .unwrap_or_default()
    };
    let mine = counts(&c.candidate);
    let theirs = c
        .in_force
        .as_ref()
        .map(|(_, r)| counts(r))
        .unwrap_or_default();
    let mut outcomes: Vec<&String> = mine.keys().chain(theirs.keys()).collect();
    outcomes.sort();
    outcomes.dedup();
    let in_force = c
        .in_force
        .as_ref()
        .map_or("none (a new rule)".to_string(), |(v, _)| {
            format!("v{v} in force")
        });
    let mut out = format!(
        "<h3>In force and candidate, on the same recording</h3><table id=\"backtest-compare\"><thead><tr>\
         <th>Outcome</th><th>{}</th><th>v{} candidate</th><th>Difference</th></tr></thead><tbody>",
        esc(&in_force),
        c.version
    );
    for o in outcomes {
        let (a, b) = (
            theirs.get(o).copied().unwrap_or(0),
            mine.get(o).copied().unwrap_or(0),
        );
        let _ = write!(
            out,
            "<tr data-outcome=\"{o}\"><td>{o}</td><td>{a}</td><td>{b}</td><td>{:+}</td></tr>",
            b as i64 - a as i64,
            o = esc(o)
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Horizontal bars of `counts`, largest first.
fn bars(counts: &[(String, u64)]) -> String {
    const W: f64 = 520.0;
    let peak = counts.iter().map(|c| c.1).max().unwrap_or(1).max(1) as f64;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 760 {}\" role=\"img\" aria-label=\"Decisions by outcome\">",
        counts.len() * 22 + 4
    );
    for (i, (label, n)) in counts.iter().enumerate() {
        let y = i * 22 + 2;
        let w = (*n as f64 / peak * W).max(1.0);
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{}\" class=\"axis\">{}</text><rect x=\"220\" y=\"{y}\" width=\"{w:.1}\" height=\"16\" fill=\"#2b6cb0\"/>\
             <text x=\"{:.1}\" y=\"{}\" class=\"axis\">{n}</text>",
            y + 12,
            esc(label),
            226.0 + w,
            y + 12
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report as HTML: totals, the version in force beside the candidate, the candidate's
/// decisions by outcome (chart), every rule's.
pub fn report_html(comparison: &Comparison, rule_id: &str) -> String {
    let report = &comparison.candidate;
    let r = &report.results;
    let mut out = format!(
        "<section id=\"backtest\"><h2>Backtest of {} over {}</h2>\
         <dl class=\"facts\"><dt>Records</dt><dd>{}</dd><dt>Events</dt><dd>{}</dd>\
         <dt>Customers</dt><dd>{}</dd><dt>Offers</dt><dd>{}</dd><dt>Alerts</dt><dd>{}</dd>\
         <dt>Decisions</dt><dd>{}</dd><dt>Dead records</dt><dd>{}</dd></dl>",
        esc(rule_id),
        esc(report.source.path.rsplit('/').next().unwrap_or_default()),
        r.records_read,
        r.events_decoded,
        r.customers,
        r.offers,
        r.alerts,
        r.decisions,
        r.dead
    );
    out.push_str(&side_by_side(comparison, rule_id));
    let mut mine: Vec<(String, u64)> = r
        .decisions_by_rule
        .get(rule_id)
        .map(|c| c.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default();
    mine.sort_by_key(|c| std::cmp::Reverse(c.1));
    let _ = write!(
        out,
        "<h3>{} by outcome</h3>{}",
        esc(rule_id),
        if mine.is_empty() {
            "<p id=\"backtest-none\">The rule decided nothing over this file.</p>".to_string()
        } else {
            bars(&mine)
        }
    );
    out.push_str(
        "<h3>Every rule</h3><table><thead><tr><th>Rule</th><th>Decisions by outcome</th></tr></thead><tbody>",
    );
    for (rule, counts) in &r.decisions_by_rule {
        let cells: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = write!(
            out,
            "<tr data-rule=\"{rule}\"><td>{rule}</td><td>{}</td></tr>",
            esc(&cells.join(", ")),
            rule = esc(rule)
        );
    }
    out.push_str("</tbody></table></section>");
    out
}
