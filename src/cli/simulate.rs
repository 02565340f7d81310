//! `simulate`: the customers of `generate` answering the offers a running pipeline sends.

use super::admin::load_lenient;
use super::args::SimulateArgs;
use super::serve::shutdown_signal;
use anyhow::{Context, Result};
use nbo_stream::backtest::world::{self, Half, WorldOptions, WorldReport};
use nbo_stream::config::Settings;
use nbo_stream::generator::investigator::Investigators;
use nbo_stream::generator::responder::{Responder, Truth};
use nbo_stream::generator::simulate::SimulateOptions;
use nbo_stream::{codec, generator, source, telemetry};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Answers offers until Ctrl-C (or `--idle-exit`), then prints what it answered.
pub(crate) async fn simulate(args: SimulateArgs) -> Result<()> {
    let mut settings = match &args.config {
        Some(path) => load_lenient(Some(path))?,
        None => Settings::default(),
    };
    telemetry::init_logs(&settings.telemetry);
    if let Some(brokers) = args.brokers.clone() {
        settings.kafka.brokers = brokers;
    }
    let (truth, investigators) = match &args.truth {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the truth table {}", path.display()))?;
            (
                Truth::from_toml(&text).map_err(anyhow::Error::msg)?,
                Investigators::from_toml(&text, args.seed).map_err(anyhow::Error::msg)?,
            )
        }
        None => (Truth::default(), Investigators::new(args.seed)),
    };
    if args.offline {
        return offline(&settings, &args, truth);
    }
    let options = SimulateOptions {
        customers: args.customers,
        seed: args.seed,
        responder: Responder::new(truth, args.seed),
        delay: args.delay,
        framing: settings.codec.input_framing,
        offer_framing: settings.codec.output_framing,
        group_id: format!("{}-simulator", settings.kafka.group_id),
        idle_exit: args.idle_exit,
        delivery_receipts: !args.no_receipts,
        investigators: (!args.no_closures).then_some(investigators),
        close_after: args.close_after,
    };
    let codec = codec::Codec::new(&settings.codec_options())?;
    let client = source::client_config(&settings.kafka);
    let stop = Arc::new(AtomicBool::new(false));
    let signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        signal.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "answering offers on {} and closing alerts on {} for {} customers (seed {}); Ctrl-C stops",
        settings.topics.offers, settings.topics.alerts, options.customers, options.seed
    );
    let summary = tokio::task::block_in_place(|| {
        generator::simulate::simulate(&client, &settings.topics, &codec, &options, &stop)
    })?;
    print!("{summary}");
    Ok(())
}

/// `simulate --offline`: the world in this process (`backtest::world`), reported as a table.
fn offline(settings: &Settings, args: &SimulateArgs, truth: Truth) -> Result<()> {
    let features = settings.features.load_in(&settings.catalog)?;
    let rules = match &args.rules {
        Some(dir) => nbo_stream::backtest::load_rules(Some(dir), &features)?,
        None => {
            let docs = settings
                .rules
                .sources()
                .map_err(|e| anyhow::anyhow!(nbo_stream::rules::load::describe(&e)))?;
            nbo_stream::rules::book::RuleBook::from_sources(std::sync::Arc::new(features), &docs)
                .map_err(|e| anyhow::anyhow!(nbo_stream::rules::load::describe(&e)))?
                .rule_set()
        }
    };
    let mut coverage = Coverage::default();
    for seed in args.seed..args.seed.saturating_add(args.seeds) {
        let options = WorldOptions {
            customers: args.customers,
            seed,
            responder: Responder::new(truth.clone(), seed),
            responses: args.responses,
            max_events: args.max_events,
            delay_ms: args.delay.as_millis() as i64,
            ab: args.ab,
        };
        eprintln!(
            "simulating {} customers (seed {seed}) until {} offers are learned from{}",
            options.customers,
            options.responses,
            if options.ab {
                ", half ranked by learned propensities"
            } else {
                ""
            }
        );
        let started = std::time::Instant::now();
        let report = world::run(settings, rules.clone(), &options)?;
        print!("{}", render(&report));
        coverage.add(&report);
        eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
    }
    if args.seeds > 1 {
        print!("{coverage}");
    }
    Ok(())
}

/// Per offer rule over several seeds: in how many the uplift's and the lift's intervals
/// covered the truth.
#[derive(Default)]
struct Coverage {
    /// rule → (seeds measured, uplift covered, lifts measured, lift covered).
    rules: std::collections::BTreeMap<String, [u32; 4]>,
}

impl Coverage {
    fn add(&mut self, report: &WorldReport) {
        for row in &report.uplift {
            let Some(covers) = row.covers() else { continue };
            let c = self.rules.entry(row.rule_id.clone()).or_default();
            c[0] += 1;
            c[1] += u32::from(covers);
            if let Some(lift) = row.lift_covers() {
                c[2] += 1;
                c[3] += u32::from(lift);
            }
        }
    }
}

impl std::fmt::Display for Coverage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "uplift coverage of the truth by the 95% intervals:")?;
        writeln!(f, "{:<36} {:>14} {:>14}", "offer rule", "uplift", "lift")?;
        for (rule, [n, covered, lifts, lift_covered]) in &self.rules {
            writeln!(
                f,
                "{rule:<36} {:>14} {:>14}",
                format!("{covered} of {n}"),
                format!("{lift_covered} of {lifts}")
            )?;
        }
        Ok(())
    }
}

/// The report as a table, then the A/B.
fn render(report: &WorldReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} events over {:.1} days, {} offers learned from",
        report.events,
        report.span_ms as f64 / 86_400_000.0,
        report.responses
    );
    let _ = writeln!(
        out,
        "{:<36} {:<10} {:>9} {:>9} {:>8} {:>8} {:>7} {:>6}",
        "offer rule", "segment", "responses", "accepted", "learned", "truth", "error", "auc"
    );
    let mut worst: Option<f64> = None;
    for m in &report.models {
        let error = m.learned() - m.truth;
        if m.trials >= 1_000 {
            worst = Some(worst.unwrap_or(0.0).max(error.abs()));
        }
        let segment = if m.segment.is_empty() {
            "(all)"
        } else {
            &m.segment
        };
        let auc = m.auc.map_or_else(|| "-".to_string(), |a| format!("{a:.3}"));
        let _ = writeln!(
            out,
            "{:<36} {:<10} {:>9} {:>9} {:>8.4} {:>8.4} {:>+7.4} {:>6}",
            m.rule_id,
            segment,
            m.trials,
            m.positives,
            m.learned(),
            m.truth,
            error,
            auc
        );
    }
    if let Some(w) = worst {
        let _ = writeln!(
            out,
            "largest |learned - truth| with >= 1000 responses: {w:.4}"
        );
    }
    let rate = |h: Half| h.accepted as f64 / h.offers.max(1) as f64;
    let _ = writeln!(
        out,
        "learned arbitration: {} offers, {} accepted ({:.4})",
        report.learned.offers,
        report.learned.accepted,
        rate(report.learned)
    );
    render_uplift(&mut out, report);
    if let Some(c) = report.configured {
        let _ = writeln!(
            out,
            "configured arbitration: {} offers, {} accepted ({:.4})",
            c.offers,
            c.accepted,
            rate(c)
        );
        if let Some(g) = report.gain() {
            let _ = writeln!(
                out,
                "gain in acceptance: {:+.4} (95% interval {:+.4} .. {:+.4}){}",
                g.value,
                g.low,
                g.high,
                if g.significant() {
                    ", significant"
                } else {
                    ", not significant"
                }
            );
        }
    }
    out
}

/// The uplift table: per offer rule, treated against control with the 95% intervals, and the
/// simulator's truth.
fn render_uplift(out: &mut String, report: &WorldReport) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "uplift against the control group (window {} d):",
        report.uplift_window_ms / 86_400_000
    );
    let _ = writeln!(
        out,
        "{:<36} {:>15} {:>13} {:>26} {:>8} {:>24} {:>7}",
        "offer rule", "treated", "control", "uplift (95%)", "truth", "lift (95%)", "truth"
    );
    let rate = |a: nbo_stream::learning::uplift::Arm| format!("{}/{}", a.converted, a.customers);
    for row in &report.uplift {
        let (uplift, lift) = match row.uplift() {
            Some(u) => (
                format!(
                    "{:+.4} ({:+.4}..{:+.4})",
                    u.absolute.value, u.absolute.low, u.absolute.high
                ),
                u.lift.map_or("-".into(), |l| {
                    format!("{:+.2} ({:+.2}..{:+.2})", l.value, l.low, l.high)
                }),
            ),
            None => ("-".into(), "-".into()),
        };
        let _ = writeln!(
            out,
            "{:<36} {:>15} {:>13} {:>26} {:>+8.4} {:>24} {:>7}",
            row.rule_id,
            rate(row.groups.treated),
            rate(row.groups.control),
            uplift,
            row.truth,
            lift,
            row.truth_lift.map_or("-".into(), |t| format!("{t:+.2}")),
        );
    }
}
