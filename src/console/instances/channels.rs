//! Inbound decisions by channel, for the live view: what the `nbo-stream api` instances answered.
//!
//! Every `console.instances_every` the console reads `/metrics` of each URL in
//! `console.api_instances` (an API instance's `telemetry.listen`) and takes two series there:
//! `nbo_api_decisions_total{channel,outcome}` (answers, by what they were: `OFFERED` or the
//! suppression) and `nbo_api_decision_seconds{channel}` (request to answer). As for the `run`
//! instances ([`super`]), what is shown is the difference of the last two readings: answers per
//! second by channel and outcome, and the p99 of the answers in that window, summed over the
//! instances. The audit topic could not give this: a request no rule held for is not audited.
//! An instance that restarted between two readings (a counter that went down or vanished)
//! counts from its next reading; one that cannot be read is named with why.

use super::parse::Sample;
use super::window::{Estimate, Histogram};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DECISIONS: &str = "nbo_api_decisions_total";
const LATENCY: &str = "nbo_api_decision_seconds";

/// One channel's answers between the last two readings, over every API instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// The channel (`APP`, `WEB`, `CALL_CENTRE`, `BRANCH`, or one of `api.channels`).
    pub name: String,
    /// Answers per second, by outcome (`OFFERED`, `NO_CONSENT`, `CONTACT_POLICY`,
    /// `CONTROL_GROUP`, `NO_ELIGIBLE_RULE`).
    pub per_second: BTreeMap<String, f64>,
    /// The p99 of the answers' latency.
    pub p99: Option<Estimate>,
}

impl Channel {
    /// Answers per second, whatever their outcome.
    pub fn total(&self) -> f64 {
        self.per_second.values().sum()
    }
}

/// The latest view of the API instances.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// When it was read (ms since epoch); 0 before the first reading.
    pub at: i64,
    /// Channels with answers in the window, by name.
    pub channels: Vec<Channel>,
    /// Instances whose reading failed: URL and why.
    pub errors: Vec<(String, String)>,
    /// Instances read.
    pub instances: usize,
}

/// Where the reader leaves its view for the pages.
pub type Slot = Arc<Mutex<View>>;

/// One instance's cumulative series at one reading.
#[derive(Debug, Clone, Default)]
struct Reading {
    decisions: BTreeMap<(String, String), f64>,
    latency: BTreeMap<String, Histogram>,
}

impl Reading {
    fn of(samples: &[Sample]) -> Self {
        let mut decisions = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == DECISIONS) {
            if let (Some(c), Some(o)) = (s.label("channel"), s.label("outcome")) {
                *decisions
                    .entry((c.to_string(), o.to_string()))
                    .or_insert(0.0) += s.value;
            }
        }
        let bucket = format!("{LATENCY}_bucket");
        let mut by_channel: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == bucket) {
            if let Some(c) = s.label("channel") {
                by_channel.entry(c).or_default().push(s.clone());
            }
        }
        let latency = by_channel
            .into_iter()
            .filter_map(|(c, series)| {
                Histogram::from_samples(&series, LATENCY).map(|h| (c.to_string(), h))
            })
            .collect();
        Self { decisions, latency }
    }
}

/// The answers between `before` and `now`, `seconds` apart, added to `into`. An instance that
/// restarted in between (a counter went down) adds nothing: its next window counts.
fn add_window(
    before: &Reading,
    now: &Reading,
    seconds: f64,
    into: &mut BTreeMap<String, (BTreeMap<String, f64>, Option<Histogram>)>,
) {
    let restarted = before
        .decisions
        .iter()
        .any(|(series, &count)| now.decisions.get(series).is_none_or(|&n| n < count));
    if restarted {
        return;
    }
    for ((channel, outcome), &count) in &now.decisions {
        let earlier = before
            .decisions
            .get(&(channel.clone(), outcome.clone()))
            .copied()
            .unwrap_or(0.0);
        if count > earlier {
            let (rates, _) = into.entry(channel.clone()).or_default();
            *rates.entry(outcome.clone()).or_insert(0.0) += (count - earlier) / seconds;
        }
    }
    for (channel, histogram) in &now.latency {
        let window = match before.latency.get(channel) {
            Some(earlier) => histogram.since(earlier),
            None => Some(histogram.clone()),
        };
        if let Some(window) = window.filter(|w| w.count() > 0.0) {
            let (_, sum) = into.entry(channel.clone()).or_default();
            *sum = Some(match sum.take() {
                None => window,
                Some(s) => s.plus(&window).unwrap_or(s),
            });
        }
    }
}

/// Reads every API instance of `urls` every `every` into `slot` until the task is dropped.
/// Fails only when the HTTP client cannot be built.
pub async fn run(every: Duration, urls: Vec<String>, slot: Slot) -> anyhow::Result<()> {
    if urls.is_empty() {
        return Ok(());
    }
    let client = super::client()?;
    let mut previous: Vec<Option<(Instant, Reading)>> = vec![None; urls.len()];
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let read = futures::future::join_all(urls.iter().map(|url| {
            let client = &client;
            async move { super::metrics(client, url.trim_end_matches('/')).await }
        }))
        .await;
        let now = Instant::now();
        let mut sums = BTreeMap::new();
        let mut errors = Vec::new();
        for ((url, result), previous) in urls.iter().zip(read).zip(previous.iter_mut()) {
            match result {
                Ok(samples) => {
                    let reading = Reading::of(&samples);
                    if let Some((then, before)) = previous.replace((now, reading)) {
                        let seconds = now.duration_since(then).as_secs_f64();
                        if seconds > 0.0 {
                            let current = &previous.as_ref().expect("just set").1;
                            add_window(&before, current, seconds, &mut sums);
                        }
                    }
                }
                Err(e) => errors.push((url.clone(), e)),
            }
        }
        let channels = sums
            .into_iter()
            .map(|(name, (per_second, latency))| Channel {
                name,
                per_second,
                p99: latency.and_then(|h| h.quantile(0.99)),
            })
            .collect();
        *slot.lock().unwrap_or_else(|p| p.into_inner()) = View {
            at: crate::clock::now_ms(),
            channels,
            errors,
            instances: urls.len(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = r#"
nbo_api_decisions_total{channel="APP",outcome="OFFERED"} 10
nbo_api_decisions_total{channel="APP",outcome="CONTACT_POLICY"} 5
nbo_api_decision_seconds_bucket{channel="APP",le="0.001"} 10
nbo_api_decision_seconds_bucket{channel="APP",le="0.01"} 15
nbo_api_decision_seconds_bucket{channel="APP",le="+Inf"} 15
"#;

    const AFTER: &str = r#"
nbo_api_decisions_total{channel="APP",outcome="OFFERED"} 30
nbo_api_decisions_total{channel="APP",outcome="CONTACT_POLICY"} 5
nbo_api_decisions_total{channel="BRANCH",outcome="NO_ELIGIBLE_RULE"} 4
nbo_api_decision_seconds_bucket{channel="APP",le="0.001"} 10
nbo_api_decision_seconds_bucket{channel="APP",le="0.01"} 35
nbo_api_decision_seconds_bucket{channel="APP",le="+Inf"} 35
nbo_api_decision_seconds_bucket{channel="BRANCH",le="0.001"} 4
nbo_api_decision_seconds_bucket{channel="BRANCH",le="0.01"} 4
nbo_api_decision_seconds_bucket{channel="BRANCH",le="+Inf"} 4
"#;

    fn reading(text: &str) -> Reading {
        Reading::of(&super::super::parse::parse(text).unwrap())
    }

    #[test]
    fn a_window_gives_each_channels_rates_by_outcome_and_its_latency() {
        let mut sums = BTreeMap::new();
        add_window(&reading(BEFORE), &reading(AFTER), 10.0, &mut sums);
        let (app, app_latency) = &sums["APP"];
        assert_eq!(app.get("OFFERED"), Some(&2.0));
        assert_eq!(app.get("CONTACT_POLICY"), None, "nothing new");
        // Twenty answers between 1 and 10 ms: the p99 interpolated in that bucket.
        match app_latency.as_ref().unwrap().quantile(0.99) {
            Some(Estimate::Within(s)) => assert!((s - 0.00991).abs() < 1e-6, "{s}"),
            other => panic!("{other:?}"),
        }
        let (branch, _) = &sums["BRANCH"];
        assert_eq!(
            branch.get("NO_ELIGIBLE_RULE"),
            Some(&0.4),
            "a new series counts whole"
        );
        // A second instance's window adds to the first's.
        add_window(&reading(BEFORE), &reading(AFTER), 10.0, &mut sums);
        assert_eq!(sums["APP"].0.get("OFFERED"), Some(&4.0));
        assert_eq!(sums["APP"].1.as_ref().unwrap().count(), 40.0);
        // A restart (counters down) adds nothing.
        let mut sums = BTreeMap::new();
        add_window(&reading(AFTER), &reading(BEFORE), 10.0, &mut sums);
        assert!(
            sums.values().all(|(r, l)| r.is_empty() && l.is_none()),
            "{sums:?}"
        );
    }
}
