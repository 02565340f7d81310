//! `backtest --labels FILE`: each alert rule scored against known fraud.
//!
//! The labels file is JSON lines, one confirmed fraud per line, keyed by the event or by the
//! customer and time:
//!
//! ```text
//! {"event_id": "TXN-88121"}
//! {"customer_id": "C-1001", "at": "2026-11-03T14:05:00Z"}
//! {"customer_id": "C-1002", "at": 1793456700000}
//! ```
//!
//! An alert **hits** a label keyed by event when the alert's trigger is that event, and one keyed
//! by customer and time when it is the customer's and raised within `--label-window` of that time
//! (before or after). Per rule version (a challenger's by the alerts it would have raised):
//! - **precision**: alerts that hit a label ÷ alerts raised (an alert no label explains is a false
//!   positive: the file lists every fraud known);
//! - **recall**: labels hit by at least one of the rule's alerts ÷ labels in the file;
//! - **alert rate**: alerts raised per 1,000 events replayed.
//!
//! The features each alert was decided on are the features as of its event, never later: the
//! replay applies each customer's events in file order as the pipeline does, and a decision whose
//! features had taken in a later event (a trigger later in the file than a newer event, within
//! the allowed lateness) is counted apart, in `late_features`.

use crate::event::DecisionOutcome;
use crate::learning::precision::Share;
use crate::output::DecisionAudit;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A labels file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    /// It cannot be read.
    #[error("cannot read the labels file {path}: {source}")]
    Io {
        /// Its path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a label.
    #[error("labels file {path}, line {line}: {reason}")]
    Line {
        /// Its path.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// One line of the labels file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    event_id: Option<String>,
    customer_id: Option<String>,
    at: Option<serde_json::Value>,
}

/// Known fraud: by event id, and by customer with its times.
#[derive(Debug, Default)]
pub struct FraudLabels {
    /// Event id -> label index.
    by_event: HashMap<String, u32>,
    /// Customer id -> (time ms, label index), sorted by time.
    by_customer: HashMap<String, Vec<(i64, u32)>>,
    count: u32,
}

impl FraudLabels {
    /// Reads a labels file (see the module documentation).
    pub fn load(path: &Path) -> Result<Self, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| LabelsError::Line {
            path: path.to_path_buf(),
            line,
            reason,
        })
    }

    /// Parses JSON lines of labels; an error says the line (from 1) and what is wrong.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut labels = Self::default();
        for (i, raw) in text.lines().enumerate() {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(raw).map_err(|e| (i + 1, e.to_string()))?;
            let index = labels.count;
            match (line.event_id, line.customer_id, line.at) {
                (Some(event), None, None) => {
                    if labels.by_event.insert(event.clone(), index).is_some() {
                        return Err((i + 1, format!("event {event} is labelled twice")));
                    }
                }
                (None, Some(customer), Some(at)) => {
                    let at = time(&at).map_err(|e| (i + 1, e))?;
                    labels.by_customer.entry(customer).or_default().push((at, index));
                }
                _ => {
                    return Err((
                        i + 1,
                        "give either \"event_id\", or \"customer_id\" with \"at\" (RFC 3339 or epoch ms)"
                            .into(),
                    ))
                }
            }
            labels.count += 1;
        }
        for times in labels.by_customer.values_mut() {
            times.sort_unstable();
        }
        Ok(labels)
    }

    /// How many frauds are labelled.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// No fraud is labelled.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The labels an alert on `event_id` of `customer_id` at `at` hits, with `window_ms` either
    /// side for labels by customer and time.
    fn hits(&self, event_id: &str, customer_id: &str, at: i64, window_ms: i64, out: &mut Vec<u32>) {
        out.clear();
        if let Some(&i) = self.by_event.get(event_id) {
            out.push(i);
        }
        if let Some(times) = self.by_customer.get(customer_id) {
            let first = times.partition_point(|&(t, _)| t < at.saturating_sub(window_ms));
            out.extend(
                times[first..]
                    .iter()
                    .take_while(|&&(t, _)| t <= at.saturating_add(window_ms))
                    .map(|&(_, i)| i),
            );
        }
    }
}

/// A label's time: RFC 3339 text or epoch milliseconds.
fn time(value: &serde_json::Value) -> Result<i64, String> {
    if let Some(ms) = value.as_i64() {
        return Ok(ms);
    }
    let text = value
        .as_str()
        .ok_or("\"at\" is RFC 3339 text or epoch milliseconds")?;
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| format!("\"at\" {text:?}: {e}"))?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64))
}

/// One rule version's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleScore {
    /// Alerts it raised (a challenger: would have raised).
    pub alerts: u64,
    /// Of those, alerts that hit a label.
    pub hits: u64,
    /// Labels hit by at least one of its alerts.
    pub caught: u64,
    /// Alerts that hit ÷ alerts, with its 95% interval.
    pub precision: Option<Share>,
    /// Labels caught ÷ labels, with its 95% interval.
    pub recall: Option<Share>,
    /// Alerts per 1,000 events replayed.
    pub alerts_per_1000_events: f64,
}

/// Every alert rule's score against the labels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelledScores {
    /// The labels file.
    pub labels_file: String,
    /// Frauds labelled.
    pub labels: u64,
    /// How near in time an alert must be to a label by customer and time, ms.
    pub window_ms: i64,
    /// Per rule version (`<rule id> v<version>`, ` (challenger)` for a shadow version).
    pub rules: BTreeMap<String, RuleScore>,
    /// Labels no rule caught.
    pub missed: u64,
    /// Alerts scored whose features had taken in an event later than their own (see the module
    /// documentation); they are scored like the others.
    pub late_features: u64,
}

/// Scores alerts as the replay makes them.
#[derive(Debug)]
pub struct Scoring {
    labels: FraudLabels,
    window_ms: i64,
    path: String,
    rules: BTreeMap<String, (u64, u64, HashSet<u32>)>,
    caught: HashSet<u32>,
    late_features: u64,
    scratch: Vec<u32>,
}

impl Scoring {
    /// Scoring against `labels` (read from `path`), `window_ms` either side of a label's time.
    pub fn new(labels: FraudLabels, path: &Path, window_ms: i64) -> Self {
        Self {
            labels,
            window_ms,
            path: path.display().to_string(),
            rules: BTreeMap::new(),
            caught: HashSet::new(),
            late_features: 0,
            scratch: Vec::new(),
        }
    }

    /// One audit record of the replay.
    pub fn audit(&mut self, audit: &DecisionAudit) {
        let rule = match (audit.outcome, audit.shadow_outcome) {
            (DecisionOutcome::Alerted, _) => format!("{} v{}", audit.rule_id, audit.rule_version),
            (DecisionOutcome::Shadow, Some(DecisionOutcome::Alerted)) => {
                format!("{} v{} (challenger)", audit.rule_id, audit.rule_version)
            }
            _ => return,
        };
        if audit.features_as_of.is_some_and(|t| t > audit.decided_at) {
            self.late_features += 1;
        }
        self.labels.hits(
            &audit.trigger_event_id,
            &audit.customer_id,
            audit.decided_at,
            self.window_ms,
            &mut self.scratch,
        );
        let (alerts, hits, caught) = self.rules.entry(rule).or_default();
        *alerts += 1;
        *hits += u64::from(!self.scratch.is_empty());
        caught.extend(&self.scratch);
        self.caught.extend(&self.scratch);
    }

    /// The scores, with the number of events replayed.
    pub fn finish(self, events: u64) -> LabelledScores {
        let labels = u64::from(self.labels.len());
        let rules = self
            .rules
            .into_iter()
            .map(|(rule, (alerts, hits, caught))| {
                let caught = caught.len() as u64;
                let score = RuleScore {
                    alerts,
                    hits,
                    caught,
                    precision: Share::of(hits, alerts),
                    recall: Share::of(caught, labels),
                    alerts_per_1000_events: if events == 0 {
                        0.0
                    } else {
                        alerts as f64 * 1000.0 / events as f64
                    },
                };
                (rule, score)
            })
            .collect();
        LabelledScores {
            labels_file: self.path,
            labels,
            window_ms: self.window_ms,
            rules,
            missed: labels - self.caught.len() as u64,
            late_features: self.late_features,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_line_is_refused_with_its_number_and_what_to_give() {
        let err =
            FraudLabels::parse("{\"event_id\":\"E1\"}\n{\"customer_id\":\"C1\"}\n").unwrap_err();
        assert_eq!(err.0, 2);
        assert!(err.1.contains("customer_id\" with \"at\""), "{}", err.1);
        let err = FraudLabels::parse("{\"event\":\"E1\"}").unwrap_err();
        assert!(err.1.contains("unknown field"), "{}", err.1);
        let err = FraudLabels::parse("{\"customer_id\":\"C1\",\"at\":\"yesterday\"}").unwrap_err();
        assert!(err.1.contains("\"at\""), "{}", err.1);
        let ok = FraudLabels::parse(
            "{\"customer_id\":\"C1\",\"at\":\"2026-11-03T14:05:00Z\"}\n\n{\"event_id\":\"E1\"}\n",
        )
        .unwrap();
        assert_eq!(ok.len(), 2);
    }

    #[test]
    fn an_alert_hits_its_event_and_the_customers_labels_within_the_window() {
        let labels = FraudLabels::parse(
            "{\"event_id\":\"E1\"}\n{\"customer_id\":\"C1\",\"at\":1000}\n{\"customer_id\":\"C1\",\"at\":5000}\n",
        )
        .unwrap();
        let mut out = Vec::new();
        labels.hits("E1", "C1", 2_000, 1_000, &mut out);
        assert_eq!(out, vec![0, 1]);
        labels.hits("E2", "C1", 4_000, 1_000, &mut out);
        assert_eq!(out, vec![2]);
        labels.hits("E2", "C2", 1_000, 1_000, &mut out);
        assert!(out.is_empty());
    }
}
