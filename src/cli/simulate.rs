//! `simulate`: the customers of `generate` answering the offers a running pipeline sends.

use super::admin::load_lenient;
use super::args::SimulateArgs;
use super::serve::shutdown_signal;
use anyhow::{Context, Result};
use nbo_stream::config::Settings;
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
    if let Some(brokers) = args.brokers {
        settings.kafka.brokers = brokers;
    }
    let truth = match &args.truth {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the truth table {}", path.display()))?;
            Truth::from_toml(&text).map_err(anyhow::Error::msg)?
        }
        None => Truth::default(),
    };
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
        "answering offers on {} for {} customers (seed {}); Ctrl-C stops",
        settings.topics.offers, options.customers, options.seed
    );
    let summary = tokio::task::block_in_place(|| {
        generator::simulate::simulate(&client, &settings.topics, &codec, &options, &stop)
    })?;
    print!("{summary}");
    Ok(())
}
