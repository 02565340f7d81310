//! The data verbs: `generate` (synthetic events to Kafka or to a recorded file) and `backtest`
//! (recorded events through the rules, in memory).

use super::admin::load_lenient;
use super::args::{BacktestArgs, GenerateArgs, TrainingArgs};
use anyhow::{bail, Context, Result};
use nbo_stream::clock::now_ms;
use nbo_stream::config::Settings;
use nbo_stream::{backtest, codec, generator, recorded, source, telemetry};
use std::path::PathBuf;
use std::sync::Arc;

/// `generate`: to a file with `--out`, otherwise to Kafka.
pub(crate) async fn generate(args: GenerateArgs) -> Result<()> {
    match args.out.clone() {
        Some(path) => to_file(args, path),
        None => to_kafka(args).await,
    }
}

/// `generate --out FILE`: a recorded file for `backtest`.
fn to_file(args: GenerateArgs, path: PathBuf) -> Result<()> {
    let GenerateArgs {
        format,
        customers,
        events,
        seed,
        start_ms,
        malformed_rate,
        config,
        own_conversions,
        ..
    } = args;
    let declared = match &config {
        Some(path) => declared_sources(&Settings::load(Some(path))?),
        None => Vec::new(),
    };
    if malformed_rate > 0.0 {
        bail!("--malformed-rate is for Kafka only: a recorded file holds valid records (corrupt a copy by hand to exercise dead records)");
    }
    let events = events.context("give --events (e.g. 1000000) with --out")?;
    let format =
        generator::file::format_for(&path, format.map(Into::into)).map_err(anyhow::Error::msg)?;
    if format == recorded::Format::Avro && !declared.is_empty() {
        bail!("the configuration declares sources, and Avro recorded files hold the built-in records only: write JSON lines (--out FILE.jsonl)");
    }
    let limit = generator::Limit::Events(events);
    let options = generator::file::FileOptions {
        path: path.clone(),
        format,
        customers,
        events,
        seed,
        start_ms: start_ms.unwrap_or_else(|| default_start(customers, 0, limit)),
        clock_cap_ms: Some(now_ms()),
        declared,
        progress: true,
        own_conversions: own_conversions.then(nbo_stream::generator::responder::Truth::default),
    };
    let written = tokio::task::block_in_place(|| generator::file::generate_to_file(&options))?;
    println!("start_ms={} seed={seed}", options.start_ms);
    print!("{}", written.summary);
    println!(
        "wrote {} ({}, {} bytes)",
        path.display(),
        format.as_str(),
        written.bytes
    );
    Ok(())
}

/// `generate --brokers B`: records produced to every input topic.
async fn to_kafka(args: GenerateArgs) -> Result<()> {
    let GenerateArgs {
        brokers,
        customers,
        rate,
        duration,
        events,
        seed,
        start_ms,
        malformed_rate,
        compression,
        config,
        own_conversions,
        ..
    } = args;
    let brokers = brokers.context("give --brokers, or --out FILE to write a file")?;
    let rate = rate.unwrap_or(1_000);
    let mut settings = match config {
        Some(path) => Settings::load(Some(&path))?,
        None => Settings::default(),
    };
    telemetry::init_logs(&settings.telemetry);
    settings.kafka.brokers = brokers;
    let limit = match (duration, events) {
        (Some(d), _) => generator::Limit::Duration(d),
        (None, Some(n)) => generator::Limit::Events(n),
        (None, None) => bail!("give --duration (e.g. 60s) or --events (e.g. 100000)"),
    };
    let options = generator::GeneratorOptions {
        customers,
        rate,
        limit,
        seed,
        start_ms: start_ms.unwrap_or_else(|| default_start(customers, rate, limit)),
        malformed_rate,
        framing: codec::Framing::Confluent,
        progress: true,
        declared: declared_sources(&settings),
        after_profiles: None,
        own_conversions: own_conversions.then(nbo_stream::generator::responder::Truth::default),
    };
    let mut codec_options = settings.codec_options();
    if settings.schema_registry.url.is_some() {
        // Frame every record with its schema's registry id, as a producer would.
        let registry = nbo_stream::registry::Registry::new(&settings.schema_registry)?;
        let side = nbo_stream::registry::Side::Inputs;
        let ids = nbo_stream::registry::ids_for(&registry, &settings.topics, side).await?;
        codec_options.schema_ids.extend(ids);
        let declared = nbo_stream::registry::tooling::declared_schemas(&settings.catalog);
        let ids = nbo_stream::registry::ids_of(&registry, &declared).await?;
        codec_options.schema_ids.extend(ids);
    }
    let codec = codec::Codec::new(&codec_options)?;
    let mut client = source::client_config(&settings.kafka);
    client.set("compression.type", compression.as_str());
    let stop = std::sync::atomic::AtomicBool::new(false);
    let summary = tokio::task::block_in_place(|| {
        generator::generate(&client, &settings.topics, &codec, &options, &stop)
    })?;
    println!("start_ms={} seed={seed}", options.start_ms);
    print!("{summary}");
    if summary.failed > 0 {
        bail!(
            "{} records were not acknowledged by the broker",
            summary.failed
        );
    }
    Ok(())
}

/// `backtest`: recorded events through the features and rules, and the report.
pub(crate) fn backtest(args: BacktestArgs) -> Result<()> {
    let BacktestArgs {
        events,
        rules,
        config,
        samples,
        json,
        labels,
        label_window,
    } = args;
    let settings = load_lenient(config.as_deref())?;
    let options = backtest::BacktestOptions {
        events,
        rules,
        samples,
        now_ms: now_ms(),
        progress: true,
        labels,
        label_window,
    };
    let report = tokio::task::block_in_place(|| backtest::run(&settings, &options))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `export training`: training rows to a file, with what was left out on stderr.
pub(crate) async fn export_training(args: TrainingArgs) -> Result<()> {
    let settings = Settings::load(Some(&args.config))?;
    let now = now_ms();
    let options = nbo_stream::export::TrainingOptions {
        from: args.from,
        until: args.until.unwrap_or(now),
        maturity: args.maturity,
        out: args.out.clone(),
        format: None,
        include_immature: args.include_immature,
        now,
        progress: !args.json,
    };
    let summary = nbo_stream::export::training(&settings, &options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let t = &summary.tally;
    println!(
        "wrote {} rows ({} labelled) to {}",
        t.rows,
        t.labelled,
        args.out.display()
    );
    println!(
        "read {} audit records, {} outcomes, {} erased customers",
        summary.audits_read, summary.outcomes_read, summary.erased_customers
    );
    println!(
        "left out: {} outside the range, {} of erased customers, {} with features later than the decision, {} without their features' time, {} roll-ups of cooldown repeats, {} still maturing, {} not decisions; {} undecodable records",
        t.outside_range, t.erased, t.late_features, t.as_of_unknown, t.rolled_up, t.immature, t.not_decisions, summary.undecodable
    );
    Ok(())
}

/// The sources a configuration declares, for the generator.
pub(crate) fn declared_sources(settings: &Settings) -> Vec<Arc<nbo_stream::catalog::Declared>> {
    settings.catalog.declared().to_vec()
}

/// A start time, on the hour, from which the expected number of records ends about now (each
/// customer acts about every six hours of simulated time); 7 days back when the count is unknown.
fn default_start(customers: u32, rate: u64, limit: generator::Limit) -> i64 {
    let expected = match limit {
        generator::Limit::Events(n) => Some(n),
        generator::Limit::Duration(d) if rate > 0 => Some(rate.saturating_mul(d.as_secs())),
        generator::Limit::Duration(_) => None,
    };
    let span = expected.map_or(7 * 24 * 3_600_000, |n| {
        generator::personas::span_ms(customers, n)
    });
    let start = now_ms() - span - 3_600_000;
    start - start.rem_euclid(3_600_000)
}
