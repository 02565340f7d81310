//! What a backtest reports: records read and dead, what the operator did with the events, and the
//! decisions the rule set made (per rule and outcome, suppressions by reason, samples), counted
//! from the audit records, one per decision. Serializable, so `backtest --json` prints it whole.

use crate::event::{DecisionOutcome, Event, KindTable};
use crate::learning::uplift::Groups;
use crate::operator::BatchStats;
use crate::output::{Decision, DecisionAudit, FeatureValues};
use crate::recorded::{DeadRecord, Format};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestReport {
    /// The file replayed.
    pub source: Source,
    /// What was read and decided: the same for the same events and rules, whatever the format.
    pub results: Results,
    /// How long it took.
    pub timing: Timing,
}

/// The file replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Its path.
    pub path: String,
    /// Its format (detected).
    pub format: Format,
    /// Its size, bytes.
    pub bytes: u64,
}

/// Wall time and throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Seconds from opening the file to the last event applied.
    pub elapsed_secs: f64,
    /// Records read per second.
    pub records_per_sec: f64,
}

/// What the operator did with the events (see [`BatchStats`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OperatorCounts {
    /// Events applied to a customer's state.
    pub applied: u64,
    /// Events older than the longest window: dropped.
    pub too_late: u64,
    /// Events that updated features but were too old to trigger rules.
    pub no_trigger: u64,
    /// Events dropped because the customer was erased after them.
    pub erased: u64,
}

/// Records that could not be used, as examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadSample {
    /// Where in the file.
    pub position: String,
    /// Stable reason code.
    pub reason: String,
    /// What was wrong.
    pub detail: String,
    /// Records it stands for.
    pub count: u64,
}

/// One decision, as an example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleDecision {
    /// Rule evaluated.
    pub rule_id: String,
    /// Customer concerned.
    pub customer_id: String,
    /// What happened.
    pub outcome: DecisionOutcome,
    /// Why, in words (the suppressing policy last).
    pub reasons: Vec<String>,
    /// Feature values the decision used.
    pub features: FeatureValues,
    /// Event that triggered it.
    pub trigger_event_id: String,
    /// Event time of the decision (UTC millis).
    pub decided_at: i64,
}

/// Counts by name.
pub type Counts = BTreeMap<String, u64>;

/// What was read and decided.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Version of the rule set replayed.
    pub ruleset_version: i64,
    /// Records in the file: decoded events plus dead records.
    pub records_read: u64,
    /// Records decoded and valid.
    pub events_decoded: u64,
    /// Decoded events by record type.
    pub events_by_type: Counts,
    /// Records that could not be used.
    pub dead: u64,
    /// Dead records by reason code.
    pub dead_by_reason: Counts,
    /// The first dead records.
    pub dead_samples: Vec<DeadSample>,
    /// What the operator did with the events.
    pub operator: OperatorCounts,
    /// Distinct customers seen.
    pub customers: u64,
    /// Offers made.
    pub offers: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Decisions (audit records), every outcome.
    pub decisions: u64,
    /// Decisions per rule, then per outcome (`OFFERED`, `SUPPRESSED_COOLDOWN`, ...).
    pub decisions_by_rule: BTreeMap<String, Counts>,
    /// Decisions per rule version (`<rule id> v<version>`, with ` (challenger)` for a shadow
    /// version beside the version in force), then per outcome; a challenger's outcomes are what
    /// it would have decided, so a champion and its challenger compare column by column.
    #[serde(default)]
    pub decisions_by_version: BTreeMap<String, Counts>,
    /// Decisions per outcome.
    pub decisions_by_outcome: Counts,
    /// Suppressed decisions per reason: the policy that suppressed them, in words, numbers
    /// replaced by `N` ("same offer made N h ago").
    pub suppressions_by_reason: Counts,
    /// The first decision of each rule and outcome, in file order, up to the sample count.
    pub samples: Vec<SampleDecision>,
    /// Per offer rule, its treated and control customers and their conversions (products of
    /// the offer's family opened within `operator.uplift.window`).
    #[serde(default)]
    pub uplift: BTreeMap<String, Groups>,
    /// With `--labels`, each alert rule version's precision, recall and alert rate against the
    /// known fraud.
    #[serde(default)]
    pub labelled: Option<super::labelled::LabelledScores>,
}

/// Dead records kept as examples.
const DEAD_SAMPLES: usize = 5;

fn bump(counts: &mut Counts, key: &str, by: u64) {
    match counts.get_mut(key) {
        Some(n) => *n += by,
        None => {
            counts.insert(key.to_string(), by);
        }
    }
}

fn suppressed(outcome: DecisionOutcome) -> bool {
    matches!(
        outcome,
        DecisionOutcome::SuppressedNoConsent
            | DecisionOutcome::SuppressedContactPolicy
            | DecisionOutcome::SuppressedCooldown
            | DecisionOutcome::SuppressedRisk
    )
}

/// A suppression reason with its numbers replaced by `N` ("same offer made N h ago"), so that
/// reasons group by the policy, not by the values of each case.
fn reason_kind(reason: &str) -> String {
    let mut out = String::with_capacity(reason.len());
    let mut in_number = false;
    for c in reason.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            out.push(c);
            in_number = false;
        }
    }
    out
}

/// Builds [`Results`] as records are read and decided.
#[derive(Debug)]
pub struct Tally {
    results: Results,
    by_kind: KindTable<u64>,
    samples: usize,
    sampled: HashSet<(String, DecisionOutcome)>,
}

impl Tally {
    /// An empty tally keeping up to `samples` sample decisions.
    pub fn new(ruleset_version: i64, samples: usize) -> Self {
        Self {
            results: Results {
                ruleset_version,
                ..Results::default()
            },
            by_kind: KindTable::default(),
            samples,
            sampled: HashSet::new(),
        }
    }

    /// A decoded event.
    pub fn event(&mut self, event: &Event) {
        *self.by_kind.entry(event.kind()) += 1;
    }

    /// Dead records.
    pub fn dead(&mut self, dead: DeadRecord) {
        self.results.dead += dead.count;
        bump(&mut self.results.dead_by_reason, dead.reason, dead.count);
        if self.results.dead_samples.len() < DEAD_SAMPLES {
            self.results.dead_samples.push(DeadSample {
                position: dead.position,
                reason: dead.reason.to_string(),
                detail: dead.detail,
                count: dead.count,
            });
        }
    }

    /// Takes the uplift exposures and conversions the operator counted.
    pub fn uplift(&mut self, tallies: &mut Vec<crate::learning::uplift::Tally>) {
        for t in tallies.drain(..) {
            self.results
                .uplift
                .entry(t.rule_id.clone())
                .or_default()
                .add(&t);
        }
    }

    /// One decision of the operator.
    pub fn decision(&mut self, decision: &Decision) {
        match decision {
            Decision::Offer(_) => self.results.offers += 1,
            Decision::Alert(_) => self.results.alerts += 1,
            Decision::Audit(audit) => self.audit(audit),
        }
    }

    fn audit(&mut self, audit: &DecisionAudit) {
        let r = &mut self.results;
        // A roll-up record (`operator.audit_rollup`) counts the decisions it stands for.
        let n = audit.decisions();
        r.decisions += n;
        let outcome = audit.outcome.as_str();
        bump(&mut r.decisions_by_outcome, outcome, n);
        match r.decisions_by_rule.get_mut(&audit.rule_id) {
            Some(counts) => bump(counts, outcome, n),
            None => {
                let counts = Counts::from([(outcome.to_string(), n)]);
                r.decisions_by_rule.insert(audit.rule_id.clone(), counts);
            }
        }
        let (version, counted) = match (audit.outcome, audit.shadow_outcome) {
            (DecisionOutcome::Shadow, Some(would)) => (
                format!("{} v{} (challenger)", audit.rule_id, audit.rule_version),
                would,
            ),
            (outcome, _) => (
                format!("{} v{}", audit.rule_id, audit.rule_version),
                outcome,
            ),
        };
        bump(
            r.decisions_by_version.entry(version).or_default(),
            counted.as_str(),
            n,
        );
        if suppressed(audit.outcome) {
            let why = audit.reasons.last().map_or("(no reason given)", |r| &**r);
            bump(&mut r.suppressions_by_reason, &reason_kind(why), n);
        }
        if r.samples.len() < self.samples
            && self.sampled.insert((audit.rule_id.clone(), audit.outcome))
        {
            r.samples.push(SampleDecision {
                rule_id: audit.rule_id.clone(),
                customer_id: audit.customer_id.clone(),
                outcome: audit.outcome,
                reasons: audit.reasons.iter().map(|r| r.to_string()).collect(),
                features: audit.features.clone(),
                trigger_event_id: audit.trigger_event_id.clone(),
                decided_at: audit.decided_at,
            });
        }
    }

    /// The results, with the operator's counts and the number of customers.
    pub fn finish(
        mut self,
        stats: &BatchStats,
        customers: u64,
        codec: &crate::codec::Codec,
    ) -> Results {
        let r = &mut self.results;
        for (kind, &n) in self.by_kind.iter() {
            if n > 0 {
                r.events_by_type
                    .insert(codec.record_name(kind).to_string(), n);
            }
        }
        r.events_decoded = self.by_kind.iter().map(|(_, n)| n).sum();
        r.records_read = r.events_decoded + r.dead;
        r.customers = customers;
        r.operator = OperatorCounts {
            applied: stats.applied,
            too_late: stats.too_late,
            no_trigger: stats.no_trigger,
            erased: stats.erased,
        };
        self.results
    }
}

impl std::fmt::Display for BacktestReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = &self.results;
        let o = &r.operator;
        writeln!(
            f,
            "backtest of {} ({}, {:.1} MB), rule set version {}",
            self.source.path,
            self.source.format.as_str(),
            self.source.bytes as f64 / 1e6,
            r.ruleset_version
        )?;
        writeln!(
            f,
            "  {} records read in {:.2}s ({:.0} records/s): {} events, {} dead; {} customers",
            r.records_read,
            self.timing.elapsed_secs,
            self.timing.records_per_sec,
            r.events_decoded,
            r.dead,
            r.customers
        )?;
        writeln!(
            f,
            "  operator: {} applied, {} too late (dropped), {} too old to trigger rules, {} erased",
            o.applied, o.too_late, o.no_trigger, o.erased
        )?;
        section(f, "events by type", &r.events_by_type)?;
        if r.dead > 0 {
            section(f, "dead records by reason", &r.dead_by_reason)?;
            for d in &r.dead_samples {
                writeln!(
                    f,
                    "  e.g. {} [{}] x{}: {}",
                    d.position, d.reason, d.count, d.detail
                )?;
            }
        }
        writeln!(
            f,
            "\ndecisions: {} ({} offers, {} alerts)",
            r.decisions, r.offers, r.alerts
        )?;
        for (rule, counts) in &r.decisions_by_version {
            let parts: Vec<String> = counts.iter().map(|(o, n)| format!("{o} {n}")).collect();
            writeln!(f, "  {rule:<48} {}", parts.join(", "))?;
        }
        section(f, "decisions by outcome", &r.decisions_by_outcome)?;
        section(f, "suppressions by reason", &r.suppressions_by_reason)?;
        if !r.uplift.is_empty() {
            writeln!(
                f,
                "\nuplift against the control group (conversions/customers):"
            )?;
            for (rule, g) in &r.uplift {
                let (t, c) = (g.treated, g.control);
                let measured = g.uplift().map_or_else(
                    || "not measured yet (a group is empty)".to_string(),
                    |u| u.to_string(),
                );
                writeln!(
                    f,
                    "  {rule:<40} treated {}/{}, control {}/{}: {measured}",
                    t.converted, t.customers, c.converted, c.customers
                )?;
            }
        }
        if let Some(l) = &r.labelled {
            writeln!(
                f,
                "\nalert rules against {} labelled frauds ({}; within {} of a customer's fraud):",
                l.labels,
                l.labels_file,
                humantime::format_duration(std::time::Duration::from_millis(
                    l.window_ms.max(0) as u64
                ))
            )?;
            let share = |s: &Option<crate::learning::precision::Share>| {
                s.map_or_else(|| "-".to_string(), |s| s.to_string())
            };
            for (rule, s) in &l.rules {
                writeln!(
                    f,
                    "  {rule:<40} {} alerts ({:.2} per 1,000 events)\n    precision {}\n    recall    {}",
                    s.alerts,
                    s.alerts_per_1000_events,
                    share(&s.precision),
                    share(&s.recall)
                )?;
            }
            writeln!(f, "  labelled frauds no rule caught: {}", l.missed)?;
            if l.late_features > 0 {
                writeln!(
                    f,
                    "  {} decisions had features that took in a later event (events out of time order in the file)",
                    l.late_features
                )?;
            }
        }
        if !r.samples.is_empty() {
            writeln!(f, "\nsample decisions:")?;
            for s in &r.samples {
                writeln!(
                    f,
                    "  {} {} {} (trigger {}): {}",
                    s.rule_id,
                    s.customer_id,
                    s.outcome,
                    s.trigger_event_id,
                    s.reasons.join("; ")
                )?;
            }
        }
        Ok(())
    }
}

fn section(f: &mut std::fmt::Formatter<'_>, title: &str, counts: &Counts) -> std::fmt::Result {
    writeln!(f, "\n{title}:")?;
    if counts.is_empty() {
        writeln!(f, "  (none)")?;
    }
    for (k, n) in counts {
        writeln!(f, "  {k:<52} {n:>9}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::reason_kind;

    #[test]
    fn reasons_group_by_policy_not_by_number() {
        assert_eq!(
            reason_kind("same offer made 12 h ago"),
            "same offer made N h ago"
        );
        assert_eq!(
            reason_kind("held out (5% control group)"),
            "held out (N% control group)"
        );
        assert_eq!(reason_kind("no marketing consent"), "no marketing consent");
    }
}
