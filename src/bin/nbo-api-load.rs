//! `nbo-api-load`: drives `nbo-stream api` at a steady rate and prints the latency percentiles
//! and the API's CPU per 1,000 decisions (`scripts/api-load.sh` runs it beside the stream).
//!
//! Open loop, as a channel's traffic is: request `i` is due at `start + i / rate` whether or not
//! earlier ones were answered, and its latency counts from when it was due, so a stall shows in
//! the percentiles instead of slowing the load (no coordinated omission). Customers are drawn
//! uniformly from the generator's ids (`C0000000` ..), channels in a fixed mix (APP 50%,
//! WEB 30%, CALL_CENTRE 15%, BRANCH 5%). A small client of its own rather than a general load
//! tool: it knows the request body, picks customers the stream has state for, and reads the
//! API process's CPU from `/proc` over exactly the measured window.
//!
//! ```text
//! nbo-api-load --url http://127.0.0.1:8090 --key $KEY --rate 2000 --duration 30s --pid $API_PID
//! decisions=60000 seconds=30.00 rate=2000.0 ok=60000 refused=0 failed=0
//! latency_ms p50=1.10 p99=2.90 p99.9=5.20 max=9.80
//! api_cpu_s=11.20 per_1000=0.187
//! ```

use anyhow::Context;
use clap::Parser;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends inbound decision requests at a steady rate and reports latency and CPU.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The API's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    url: String,
    /// An API key of the API's configuration (or NBO_API_KEY).
    #[arg(long, env = "NBO_API_KEY")]
    key: String,
    /// Requests per second.
    #[arg(long, default_value_t = 2_000)]
    rate: u32,
    /// How long to send.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Customers to draw from (the generator's `--customers`).
    #[arg(long, default_value_t = 100_000)]
    customers: u32,
    /// Offers asked for per request.
    #[arg(long, default_value_t = 1)]
    max_offers: u32,
    /// The API process, whose CPU time over the run is reported (Linux `/proc`).
    #[arg(long)]
    pid: Option<u32>,
    /// Seeds the customers and channels drawn.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Requests in flight at most; a request due beyond it is counted as failed (the client
    /// is saturated, not the API).
    #[arg(long, default_value_t = 2_000)]
    max_in_flight: usize,
}

/// What one request came to.
enum Outcome {
    /// Answered 200, after this long from when it was due.
    Ok(Duration),
    /// 4xx (a bad key, over the rate).
    Refused,
    /// 5xx, no answer, or the client saturated.
    Failed,
}

const CHANNELS: [(&str, u32); 4] = [("APP", 50), ("WEB", 30), ("CALL_CENTRE", 15), ("BRANCH", 5)];

fn channel(rng: &mut impl Rng) -> &'static str {
    let mut roll = rng.random_range(0..100);
    for (name, share) in CHANNELS {
        if roll < share {
            return name;
        }
        roll -= share;
    }
    "APP"
}

/// The process's user and system CPU time, from `/proc/<pid>/stat` (clock ticks of 1/100 s, as
/// Linux reports them to user space).
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (is --pid the API's process?)"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are the 14th and 15th fields of the line: 12th and 13th after ')'.
    Ok((ticks(11) + ticks(12)) / 100.0)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1_000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rate > 0, "--rate must be above 0");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_in_flight)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = Arc::new(format!("{}/v1/decisions", args.url.trim_end_matches('/')));
    let auth = Arc::new(format!("Bearer {}", args.key));
    let total = (args.duration.as_secs_f64() * f64::from(args.rate)) as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(args.max_in_flight));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let cpu_before = args.pid.map(cpu_seconds).transpose()?;
    let own_before = cpu_seconds(std::process::id())?;
    let start = Instant::now();
    eprintln!(
        "sending {total} requests at {}/s for {:?} to {url}",
        args.rate, args.duration
    );
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let body = serde_json::json!({
            "customer_id": format!("C{:07}", rng.random_range(0..args.customers)),
            "channel": channel(&mut rng),
            "context": {"placement": "home"},
            "max_offers": args.max_offers,
        })
        .to_string();
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            let _ = tx.send(Outcome::Failed);
            continue;
        };
        let (client, url, auth, tx) = (client.clone(), url.clone(), auth.clone(), tx.clone());
        tokio::spawn(async move {
            let sent = client
                .post(url.as_str())
                .header("authorization", auth.as_str())
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let outcome = match sent {
                Ok(r) if r.status().is_success() => match r.bytes().await {
                    Ok(_) => Outcome::Ok(due.elapsed()),
                    Err(_) => Outcome::Failed,
                },
                Ok(r) if r.status().is_client_error() => Outcome::Refused,
                _ => Outcome::Failed,
            };
            drop(permit);
            let _ = tx.send(outcome);
        });
        if i > 0 && i % u64::from(args.rate * 5) == 0 {
            eprintln!("  {i} of {total} sent");
        }
    }
    drop(tx);
    let (mut latencies, mut refused, mut failed) = (Vec::with_capacity(total as usize), 0, 0);
    while let Some(outcome) = rx.recv().await {
        match outcome {
            Outcome::Ok(d) => latencies.push(d),
            Outcome::Refused => refused += 1,
            Outcome::Failed => failed += 1,
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = match (args.pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
        _ => None,
    };
    latencies.sort_unstable();
    let ok = latencies.len();
    println!(
        "decisions={total} seconds={seconds:.2} rate={:.1} ok={ok} refused={refused} failed={failed}",
        total as f64 / seconds
    );
    println!(
        "latency_ms p50={:.2} p99={:.2} p99.9={:.2} max={:.2}",
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
        percentile(&latencies, 1.0)
    );
    if let Some(cpu) = cpu {
        println!(
            "api_cpu_s={cpu:.2} per_1000={:.3}",
            cpu / (ok.max(1) as f64) * 1_000.0
        );
    }
    println!(
        "client_cpu_s={:.2}",
        cpu_seconds(std::process::id())? - own_before
    );
    anyhow::ensure!(
        ok > 0,
        "no request was answered: is the API up, and the key right?"
    );
    Ok(())
}
