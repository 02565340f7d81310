//! Readiness and processing latency of each `run` instance, for the health page; and the
//! inbound answers of each `nbo-stream api` instance by channel, for the live view
//! ([`channels`]).
//!
//! Every `console.instances_every` the console reads, from each base URL in
//! `console.instances` (an instance's `telemetry.listen`), `/readyz` (200: ready) and then
//! `/metrics`. The metrics carry no instance label: each instance is known by the URL it was
//! read from. From `/metrics` it takes `nbo_processing_latency_seconds`, a histogram counted
//! once per record whose outputs were delivered, and keeps it until the next reading:
//!
//! - the p99 is that of the difference of the two readings ([`window`]), the latency of the
//!   records delivered between them; a p99 since the process started would hide a slow minute
//!   behind hours of fast ones. None until two readings, or when nothing was delivered between;
//! - events per second are the histogram's count over the same window, divided by the time
//!   between the readings: records delivered per second.
//!
//! Requests run concurrently, each bounded by `ASK_TIMEOUT` (2 s), so one unreachable instance
//! delays no other. A failed `/metrics` read keeps the last good histogram: the next window then
//! spans the gap.

pub mod channels;
pub mod parse;
pub mod window;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use window::{Estimate, Histogram};

/// How long one request to an instance may take: a healthy instance answers in milliseconds,
/// and a reading that takes longer than the interval delays the next one.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Largest `/metrics` body read (an instance's is tens of kilobytes; per-partition gauges grow
/// it with the partitions it owns).
const MAX_BODY: usize = 8 << 20;

/// The histogram read.
const LATENCY: &str = "nbo_processing_latency_seconds";

/// One configured instance and its latest reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// Base URL, as configured.
    pub url: String,
    /// The latest reading; `None` until the first one.
    pub latest: Option<Reading>,
}

/// What one reading of an instance found.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When it was read (ms since epoch).
    pub at: i64,
    /// What `/readyz` answered.
    pub state: State,
    /// p99 of processing latency since the previous reading.
    pub p99: Option<Estimate>,
    /// Records delivered per second since the previous reading.
    pub per_second: Option<f64>,
    /// Why `/metrics` could not be read, when `/readyz` could.
    pub metrics_error: Option<String>,
}

/// What `/readyz` answered.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// 200: consuming, dependencies answering.
    Ready,
    /// Another status (503 while starting, rebalancing or retrying a dependency), as
    /// `503 Service Unavailable`.
    NotReady(String),
    /// No answer: why (connection refused, timeout, ...).
    Unreachable(String),
}

/// Where the reader leaves its readings for the pages: one entry per configured URL, in
/// configuration order.
pub type Slot = Arc<Mutex<Vec<Instance>>>;

/// A slot for `urls`, nothing read yet.
pub fn slot(urls: &[String]) -> Slot {
    Arc::new(Mutex::new(
        urls.iter()
            .map(|url| Instance {
                url: url.clone(),
                latest: None,
            })
            .collect(),
    ))
}

/// The last good histogram of one instance, and when it was read.
type Previous = Option<(Instant, Histogram)>;

/// Reads every instance in `slot` every `every` until the task is dropped. Fails only when the
/// HTTP client cannot be built.
pub async fn run(every: Duration, slot: Slot) -> anyhow::Result<()> {
    let urls: Vec<String> = lock(&slot).iter().map(|i| i.url.clone()).collect();
    if urls.is_empty() {
        return Ok(());
    }
    let client = client()?;
    let mut previous: Vec<Previous> = vec![None; urls.len()];
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let readings = futures::future::join_all(
            urls.iter()
                .zip(previous.iter_mut())
                .map(|(url, previous)| read(&client, url, previous)),
        )
        .await;
        for (instance, reading) in lock(&slot).iter_mut().zip(readings) {
            instance.latest = Some(reading);
        }
    }
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Vec<Instance>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads one instance: `/readyz`, then (if it answered) `/metrics`, against `previous`.
async fn read(client: &reqwest::Client, url: &str, previous: &mut Previous) -> Reading {
    let base = url.trim_end_matches('/');
    let mut reading = Reading {
        at: 0,
        state: State::Ready,
        p99: None,
        per_second: None,
        metrics_error: None,
    };
    reading.state = match client.get(format!("{base}/readyz")).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => State::Ready,
        Ok(r) => State::NotReady(r.status().to_string()),
        Err(e) => State::Unreachable(describe(&e)),
    };
    if !matches!(reading.state, State::Unreachable(_)) {
        match latency(client, base).await {
            Ok(histogram) => {
                let now = Instant::now();
                if let Some((then, before)) = previous.replace((now, histogram.clone())) {
                    let seconds = now.duration_since(then).as_secs_f64();
                    if let Some(window) = histogram.since(&before) {
                        reading.p99 = window.quantile(0.99);
                        reading.per_second = (seconds > 0.0).then(|| window.count() / seconds);
                    }
                }
            }
            Err(e) => reading.metrics_error = Some(e),
        }
    }
    reading.at = crate::clock::now_ms();
    reading
}

/// The client every reading uses: each request bounded by [`ASK_TIMEOUT`], no redirects.
fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(ASK_TIMEOUT)
        // A redirect is an answer of its own (not ready), never followed elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// The latency histogram from `<base>/metrics`, or why not.
async fn latency(client: &reqwest::Client, base: &str) -> Result<Histogram, String> {
    let samples = metrics(client, base).await?;
    Histogram::from_samples(&samples, LATENCY)
        .ok_or_else(|| format!("/metrics has no {LATENCY} histogram"))
}

/// Every sample of `<base>/metrics`, or why not.
async fn metrics(client: &reqwest::Client, base: &str) -> Result<Vec<parse::Sample>, String> {
    let mut response = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .map_err(|e| describe(&e))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("/metrics answered {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("/metrics is larger than {} MiB", MAX_BODY >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(body).map_err(|_| "/metrics is not UTF-8".to_string())?;
    parse::parse(&text).map_err(|e| e.to_string())
}

/// An HTTP error with its causes (reqwest's own message names only the request).
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() {
        format!("no answer within {} s", ASK_TIMEOUT.as_secs())
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
