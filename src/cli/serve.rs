//! The long-running verbs: `run` (the pipeline), `console`, and `demo` (everything in one
//! process with nothing installed).

use super::args::DemoArgs;
use anyhow::{bail, Context, Result};
use nbo_stream::config::{Settings, StateBackend, TelemetrySettings};
use nbo_stream::{demo, pipeline, state, telemetry};
use std::path::PathBuf;
use std::sync::Arc;

/// `run`: the pipeline until a signal, then its drain (see `pipeline`).
pub(crate) async fn run(config: PathBuf) -> Result<()> {
    let settings = Settings::load(Some(&config))?;
    telemetry::init_logs(&settings.telemetry);
    let store: Arc<dyn state::StateStore> = match settings.state.backend {
        StateBackend::Redis => Arc::new(
            state::redis::RedisStore::connect(&settings.redis)
                .await
                .with_context(|| format!("connecting to Redis at {}", settings.redis.url))?,
        ),
        StateBackend::Memory => Arc::new(state::memory::MemoryStore::new()),
    };
    let health = telemetry::http::Health::default();
    let addr = telemetry::http::serve(&settings.telemetry.listen, health.clone())
        .await
        .with_context(|| format!("binding telemetry.listen {}", settings.telemetry.listen))?;
    tracing::info!(%addr, "metrics endpoint up");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let bound = settings.kafka.shutdown_timeout;
    tokio::spawn(async move {
        // First signal: drain and exit 0, within kafka.shutdown_timeout. Second signal, or
        // the bound passed: exit at once, non-zero. Either way nothing is committed past
        // work not done, so the restart replays from the last commit.
        shutdown_signal().await;
        tracing::info!(
            ?bound,
            "shutdown requested: draining (a second signal exits at once)"
        );
        let _ = stop_tx.send(true);
        tokio::select! {
            _ = shutdown_signal() => {
                tracing::warn!("second signal: exiting without draining");
                std::process::exit(130);
            }
            _ = tokio::time::sleep(bound) => {
                eprintln!("error: draining took longer than kafka.shutdown_timeout ({bound:?}); exiting without finishing it (the restart replays from the last commit)");
                std::process::exit(1);
            }
        }
    });
    let deps = pipeline::Dependencies {
        store,
        health,
        progress: Arc::default(),
    };
    pipeline::run(&settings, deps, stop_rx).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// `console`: the web console until a signal; with `--hash-password`, a password's argon2 hash.
pub(crate) async fn console(config: Option<PathBuf>, hash_password: bool) -> Result<()> {
    if hash_password {
        let mut password = String::new();
        std::io::stdin()
            .read_line(&mut password)
            .context("reading the password from standard input")?;
        let password = password.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(!password.is_empty(), "empty password: type one, then Enter");
        println!(
            "{}",
            nbo_stream::console::auth::hash_password(password)
                .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
        );
        return Ok(());
    }
    let config = config.context("--config is required")?;
    let settings = Settings::load(Some(&config))?;
    telemetry::init_logs(&settings.telemetry);
    let addr = nbo_stream::console::start(&settings).await?;
    println!("console: http://{addr}/");
    tracing::info!(%addr, "console up");
    shutdown_signal().await;
    tracing::info!("console stopped");
    Ok(())
}

/// `api`: inbound decisions until a signal; with `--hash-key` or `--new-key`, a key's hash.
pub(crate) async fn api(config: Option<PathBuf>, hash_key: bool, new_key: bool) -> Result<()> {
    use nbo_stream::api::keys;
    if new_key {
        let key = keys::new_key();
        println!("key:    {key}\nsha256: {}", keys::hash_key(&key));
        println!("(give the key to the client; put the sha256 in an [[api.key]] block)");
        return Ok(());
    }
    if hash_key {
        let mut key = String::new();
        std::io::stdin()
            .read_line(&mut key)
            .context("reading the key from standard input")?;
        let key = key.trim_end_matches(['\r', '\n']);
        anyhow::ensure!(
            key.chars().count() >= keys::MIN_KEY_CHARS,
            "a key needs at least {} characters: use `nbo-stream api --new-key`",
            keys::MIN_KEY_CHARS
        );
        println!("{}", keys::hash_key(key));
        return Ok(());
    }
    let config = config.context("--config is required")?;
    let settings = Settings::load(Some(&config))?;
    telemetry::init_logs(&settings.telemetry);
    let health = telemetry::http::Health::default();
    let metrics = telemetry::http::serve(&settings.telemetry.listen, health.clone())
        .await
        .with_context(|| format!("binding telemetry.listen {}", settings.telemetry.listen))?;
    let addr = nbo_stream::api::start(&settings).await?;
    health.set_ready(true);
    println!("api: http://{addr}/v1/decisions (metrics on http://{metrics}/metrics)");
    tracing::info!(%addr, "api up");
    shutdown_signal().await;
    tracing::info!("api stopped");
    Ok(())
}

/// `demo`: the embedded broker, in-memory state and the generator, with a report at the end.
pub(crate) async fn demo(args: DemoArgs) -> Result<()> {
    telemetry::init_logs(&TelemetrySettings {
        log_level: "warn".into(),
        ..TelemetrySettings::default()
    });
    let options = demo::DemoOptions {
        events: args.events,
        customers: args.customers,
        seed: args.seed,
        partitions: args.partitions,
        listen: args.listen,
        malformed_rate: args.malformed_rate,
        progress: true,
        console: args.console.then_some(args.console_listen),
    };
    let report = demo::run(&options).await?;
    println!("{report}");
    if report.offers == 0 || report.alerts == 0 || report.metrics_bytes.is_none() {
        bail!(
            "demo incomplete: offers {}, alerts {}, /metrics answered: {}",
            report.offers,
            report.alerts,
            report.metrics_bytes.is_some()
        );
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
