//! The `nbo-stream` command line: parses arguments, loads configuration, starts telemetry and
//! calls into the library. Nothing else lives here.

use anyhow::{bail, Context, Result};
use nbo_stream::clock::now_ms;

/// mimalloc: the pipeline allocates many small, short-lived strings per batch (decoded fields,
/// decision records); mimalloc serves them markedly faster than glibc malloc
/// (`cargo bench --bench operator`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use clap::{Parser, Subcommand};
use nbo_stream::config::{Settings, StateBackend, TelemetrySettings};
use nbo_stream::{
    backtest, codec, demo, generator, pipeline, recorded, registry, source, state, telemetry,
    topics,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "nbo-stream",
    version,
    about = "Real-time customer events → windowed features → next-best offers and risk alerts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline against real Kafka and Redis.
    Run {
        /// TOML configuration (see deploy/config/); NBO_* variables override it.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The web console for marketing, fraud and compliance: live offers and alerts, the rules
    /// with their counts, health. Reads the output and rules topics itself (any number of `run`
    /// instances) and serves on console.listen; users and roles are under [console] (see
    /// deploy/config/production.toml).
    Console {
        /// TOML configuration with a [console] section; NBO_* variables override it.
        #[arg(long, short, required_unless_present = "hash_password")]
        config: Option<PathBuf>,
        /// Read a password on standard input, print its argon2 hash for a [[console.user]]
        /// block's password_hash, and exit.
        #[arg(long)]
        hash_password: bool,
    },
    /// The whole system in one process with nothing installed: embedded mock broker, in-memory
    /// state, built-in generator. The mock broker stalls past ~57,000 records per partition, so
    /// --events is capped at 400,000; use `run` with a real broker for more.
    Demo {
        /// Records to generate (1..=400000).
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// Synthetic customers.
        #[arg(long, default_value_t = 2_000)]
        customers: u32,
        /// Random seed (same seed, same customers and events).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Partitions per topic.
        #[arg(long, default_value_t = 8)]
        partitions: i32,
        /// Address for /metrics, /healthz, /readyz while the demo runs.
        #[arg(long, default_value = "127.0.0.1:9464")]
        listen: String,
        /// Fraction of records replaced by malformed bytes, to show dead letters.
        #[arg(long, default_value_t = 0.002)]
        malformed_rate: f64,
        /// Serve the web console beside the pipeline (prints its URL and a sign-in), and keep
        /// serving after the run until Ctrl-C.
        #[arg(long)]
        console: bool,
        /// Address of the console with --console.
        #[arg(long, default_value = "127.0.0.1:8088")]
        console_listen: String,
    },
    /// Produce synthetic bank-customer events (Avro) to every input topic, or with --out write the
    /// same stream to a file (Avro container or JSON lines) for `backtest`.
    Generate {
        /// Bootstrap servers (not with --out).
        #[arg(long, required_unless_present = "out", conflicts_with = "out")]
        brokers: Option<String>,
        /// Write the records to this file instead of Kafka (no broker needed); the format follows
        /// the extension (.avro, .jsonl) unless --format says otherwise.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Format of --out: an Avro object container file, or JSON lines.
        #[arg(long, value_enum, requires = "out")]
        format: Option<FileFormat>,
        /// Synthetic customers.
        #[arg(long, default_value_t = 10_000)]
        customers: u32,
        /// Records per second (0 = as fast as the broker takes them); default 1000. Kafka only.
        #[arg(long, conflicts_with = "out")]
        rate: Option<u64>,
        /// Stop after this long (e.g. 60s, 10m). Kafka only: a file takes --events.
        #[arg(long, conflicts_with_all = ["events", "out"], value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Stop after this many records.
        #[arg(long)]
        events: Option<u64>,
        /// Random seed.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Simulated time of the first event, ms since epoch (default: on the hour, far enough back
        /// that the stream ends about now). Fix it to reproduce a stream exactly; event times
        /// never pass the wall clock.
        #[arg(long)]
        start_ms: Option<i64>,
        /// Fraction of records replaced by malformed bytes. Kafka only.
        #[arg(long, default_value_t = 0.0)]
        malformed_rate: f64,
        /// Compression of the produced batches (Kafka's `compression.type`). Kafka only.
        #[arg(long, value_enum, default_value_t = Compression::Lz4, conflicts_with = "out")]
        compression: Compression,
        /// Optional config file: topic names and Kafka security settings, and the sources declared
        /// in `[[source]]`, whose synthetic records (drawn from their schemas) join the stream.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Replay recorded events (a file from `generate --out`: Avro container or JSON lines)
    /// through the same features, rules and decisioning as `run`, with in-memory state, and
    /// report what the rules would have decided.
    Backtest {
        /// The recorded events (format detected from the content).
        #[arg(long)]
        events: PathBuf,
        /// Rule documents (a file or a folder) to replay instead of the built-in starter rules.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Configuration: features file, operator and contact policy, codec limits; NBO_*
        /// variables override it. Default: the built-in defaults.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Sample decisions to show (the first of each rule and outcome).
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Topic administration.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Feature inspection.
    Features {
        #[command(subcommand)]
        command: FeaturesCommand,
    },
    /// Rule documents: check them, publish them to the rules topic.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// This program's Avro schemas in a Confluent Schema Registry: check, register.
    ///
    /// The registry is `[schema_registry]` in the configuration; subjects follow
    /// TopicNameStrategy (`<topic>-value`).
    Schemas {
        #[command(subcommand)]
        command: SchemasCommand,
    },
}

/// Exit status of `schemas check` and `schemas register`.
const SCHEMAS_EXIT_STATUS: &str = "Exit status: 0 every schema passes; 1 a schema is incompatible \
(each subject is named with the registry's reasons); 2 the check could not be made (registry \
unreachable or refusing the credentials, configuration).";

#[derive(Subcommand)]
enum SchemasCommand {
    /// Check the local schemas against the registry's, for a release pipeline.
    ///
    /// Each local schema (the reader schema of every input topic, the schema of every output
    /// topic) is checked against the latest version of its subject `<topic>-value`, by the
    /// subject's compatibility level (BACKWARD unless changed: the local schema must read every
    /// record written with the registered one). A subject not registered yet is reported as
    /// new and passes.
    #[command(after_help = SCHEMAS_EXIT_STATUS)]
    Check {
        /// Configuration: `[schema_registry]` (url, username; password from
        /// NBO_SCHEMA_REGISTRY__PASSWORD) and topic names.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Register the local schemas under `<topic>-value`, after checking them.
    ///
    /// Checks as `check` does, then registers every local schema under its topic's subject and
    /// prints each subject's version and id. Nothing is registered unless every schema passes; a
    /// schema already registered keeps its version and id.
    #[command(after_help = SCHEMAS_EXIT_STATUS)]
    Register {
        /// Configuration: `[schema_registry]` and topic names.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Parse and compile rule documents (a file or a folder) the way a running instance will;
    /// explain every error with the rule id and position. Exit 1 on any error.
    Check {
        /// A rule document (.toml, .yaml, .yml) or a folder of them.
        path: PathBuf,
        /// Configuration whose features file the rules are checked against (default: the
        /// starter features).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check, then write documents to the rules topic (key = rule id); running instances apply
    /// them without a restart. Nothing is sent unless every document passes.
    Publish {
        /// A rule document or a folder of them.
        path: Option<PathBuf>,
        /// Configuration (brokers, security, topic names, features).
        #[arg(long, short)]
        config: PathBuf,
        /// Delete these rule ids (an empty value on the topic).
        #[arg(long = "delete", value_name = "RULE_ID")]
        delete: Vec<String>,
    },
}

/// Format of `generate --out`.
/// Compression of the batches `generate` produces.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Compression {
    /// None: the broker and the consumers spend no CPU on it (the benchmark harness uses it).
    None,
    /// LZ4: fast, the common choice for event streams.
    Lz4,
    /// Zstandard: smaller, more CPU.
    Zstd,
    /// Snappy.
    Snappy,
    /// Gzip: smallest of the old codecs, slowest.
    Gzip,
}

impl Compression {
    /// The value of Kafka's `compression.type`.
    fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Snappy => "snappy",
            Compression::Gzip => "gzip",
        }
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FileFormat {
    /// Avro object container file (schema: union of the input records).
    Avro,
    /// JSON lines: {"type":"bank.nbo.<Record>","record":{...}} per line.
    Jsonl,
}

impl From<FileFormat> for recorded::Format {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Avro => recorded::Format::Avro,
            FileFormat::Jsonl => recorded::Format::Jsonl,
        }
    }
}

#[derive(Subcommand)]
enum TopicsCommand {
    /// Create the missing topics from the specs; leave existing ones alone.
    Create {
        /// Configuration (brokers, security, topic names).
        #[arg(long, short)]
        config: PathBuf,
        /// Folder of topic specs (default: the specs built into the binary, same as topics/).
        #[arg(long)]
        specs: Option<PathBuf>,
        /// Override every spec's partition count.
        #[arg(long)]
        partitions: Option<i32>,
    },
}

#[derive(Subcommand)]
enum FeaturesCommand {
    /// Print a customer's current features from Redis.
    Show {
        /// Customer id (hashed with NBO_CUSTOMER_KEY_SECRET to find the key).
        customer_id: String,
        /// Configuration (Redis connection).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// The registered sources a configuration declares, for the generator.
fn declared_sources(settings: &Settings) -> Vec<&'static nbo_stream::catalog::Declared> {
    settings
        .sources
        .iter()
        .filter_map(|s| nbo_stream::catalog::get(s.id))
        .collect()
}

/// Prints errors as one readable chain (`error: what: why`), without a backtrace, and exits 1
/// (`schemas`: 1 for an incompatible schema, 2 when the check could not be made).
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let schemas = matches!(cli.command, Command::Schemas { .. });
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            let incompatible = e
                .downcast_ref::<registry::tooling::Incompatible>()
                .is_some();
            std::process::ExitCode::from(if schemas && !incompatible { 2 } else { 1 })
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run { config } => {
            let settings = Settings::load(Some(&config))?;
            telemetry::init_logs(&settings.telemetry);
            let store: Arc<dyn state::StateStore> = match settings.state.backend {
                StateBackend::Redis => Arc::new(
                    state::redis::RedisStore::connect(&settings.redis)
                        .await
                        .with_context(|| {
                            format!("connecting to Redis at {}", settings.redis.url)
                        })?,
                ),
                StateBackend::Memory => Arc::new(state::memory::MemoryStore::new()),
            };
            let health = telemetry::http::Health::default();
            let addr = telemetry::http::serve(&settings.telemetry.listen, health.clone())
                .await
                .with_context(|| {
                    format!("binding telemetry.listen {}", settings.telemetry.listen)
                })?;
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
        }
        Command::Demo {
            events,
            customers,
            seed,
            partitions,
            listen,
            malformed_rate,
            console,
            console_listen,
        } => {
            telemetry::init_logs(&TelemetrySettings {
                log_level: "warn".into(),
                ..TelemetrySettings::default()
            });
            let options = demo::DemoOptions {
                events,
                customers,
                seed,
                partitions,
                listen,
                malformed_rate,
                progress: true,
                console: console.then_some(console_listen),
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
        }
        Command::Generate {
            out: Some(path),
            format,
            customers,
            events,
            seed,
            start_ms,
            malformed_rate,
            config,
            ..
        } => {
            let declared = match &config {
                Some(path) => declared_sources(&Settings::load(Some(path))?),
                None => Vec::new(),
            };
            if malformed_rate > 0.0 {
                bail!("--malformed-rate is for Kafka only: a recorded file holds valid records (corrupt a copy by hand to exercise dead records)");
            }
            let events = events.context("give --events (e.g. 1000000) with --out")?;
            let format = generator::file::format_for(&path, format.map(Into::into))
                .map_err(anyhow::Error::msg)?;
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
            };
            let written =
                tokio::task::block_in_place(|| generator::file::generate_to_file(&options))?;
            println!("start_ms={} seed={seed}", options.start_ms);
            print!("{}", written.summary);
            println!(
                "wrote {} ({}, {} bytes)",
                path.display(),
                format.as_str(),
                written.bytes
            );
        }
        Command::Generate {
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
            ..
        } => {
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
            };
            let mut codec_options = settings.codec_options();
            if settings.schema_registry.url.is_some() {
                // Frame every record with its schema's registry id, as a producer would.
                let registry = nbo_stream::registry::Registry::new(&settings.schema_registry)?;
                let side = nbo_stream::registry::Side::Inputs;
                let ids = nbo_stream::registry::ids_for(&registry, &settings.topics, side).await?;
                codec_options.schema_ids.extend(ids);
                let declared = nbo_stream::registry::tooling::declared_schemas(&settings.sources);
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
        }
        Command::Backtest {
            events,
            rules,
            config,
            samples,
            json,
        } => {
            let settings = load_lenient(config.as_deref())?;
            let options = backtest::BacktestOptions {
                events,
                rules,
                samples,
                now_ms: now_ms(),
                progress: true,
            };
            let report = tokio::task::block_in_place(|| backtest::run(&settings, &options))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
        }
        Command::Console {
            config,
            hash_password,
        } => {
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
        }
        Command::Topics {
            command:
                TopicsCommand::Create {
                    config,
                    specs,
                    partitions,
                },
        } => {
            let settings = load_lenient(Some(&config))?;
            telemetry::init_logs(&settings.telemetry);
            let mut specs = match specs {
                Some(dir) => topics::load_dir(&dir)?,
                None => topics::embedded()?,
            };
            topics::apply_names(&mut specs, &settings.topics);
            topics::add_declared(&mut specs, &settings.sources);
            let report =
                topics::create(&source::client_config(&settings.kafka), &specs, partitions).await?;
            let mut failed = 0;
            for (name, action) in &report {
                match action {
                    topics::TopicAction::Created(p, r) => {
                        println!("created  {name} (partitions {p}, replication {r})")
                    }
                    topics::TopicAction::Exists => println!("exists   {name} (left alone)"),
                    topics::TopicAction::Failed(why) => {
                        failed += 1;
                        println!("FAILED   {name}: {why}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} topic(s) could not be created");
            }
        }
        Command::Rules { command } => rules_command(command).await?,
        Command::Schemas { command } => schemas_command(command).await?,
        Command::Features {
            command:
                FeaturesCommand::Show {
                    customer_id,
                    config,
                },
        } => {
            let settings = Settings::load(Some(&config))?;
            let store = state::redis::RedisStore::connect(&settings.redis)
                .await
                .with_context(|| format!("connecting to Redis at {}", settings.redis.url))?;
            let secret = settings
                .customer_key_secret
                .as_ref()
                .context("set NBO_CUSTOMER_KEY_SECRET")?;
            let key = state::KeyHasher::new(secret.expose().as_bytes()).key(&customer_id);
            let features = state::StateStore::feature_hash(&store, &key).await?;
            if features.is_empty() {
                bail!("no features for customer {customer_id} (never seen, expired, or another NBO_CUSTOMER_KEY_SECRET)");
            }
            println!("customer {customer_id} ({})", key.features_key());
            for (name, value) in features {
                println!("  {name:<28} {value}");
            }
        }
    }
    Ok(())
}

/// `rules check` and `rules publish`.
async fn rules_command(command: RulesCommand) -> Result<()> {
    use nbo_stream::rules::publish::{self, Publication};
    let (path, config) = match &command {
        RulesCommand::Check { path, config } => (Some(path), config.clone()),
        RulesCommand::Publish { path, config, .. } => (path.as_ref(), Some(config.clone())),
    };
    let settings = load_lenient(config.as_deref())?;
    telemetry::init_logs(&settings.telemetry);
    let features = settings.features.load()?;
    let checked = match path {
        None => Vec::new(),
        Some(path) => match publish::check(path, &features) {
            Ok(checked) => checked,
            Err(errors) => {
                for e in &errors {
                    eprintln!("error {e}");
                }
                bail!(
                    "{} rule document error(s); nothing was published",
                    errors.len()
                );
            }
        },
    };
    match command {
        RulesCommand::Check { .. } => {
            for c in &checked {
                println!("{c}");
            }
            println!("{} rule document(s) valid", checked.len());
        }
        RulesCommand::Publish { delete, .. } => {
            if checked.is_empty() && delete.is_empty() {
                bail!("nothing to publish: give a rule document or folder, or --delete RULE_ID");
            }
            let items: Vec<Publication> = checked
                .into_iter()
                .map(|c| Publication::Document(Box::new(c)))
                .chain(delete.into_iter().map(Publication::Delete))
                .collect();
            let topic = &settings.topics.rules;
            let sent = publish::publish(&source::client_config(&settings.kafka), topic, &items)
                .await
                .with_context(|| format!("publishing to {topic}"))?;
            for (id, partition, offset) in sent {
                println!("published {id} to {topic} [{partition}] at offset {offset}");
            }
        }
    }
    Ok(())
}

/// `schemas check` and `schemas register`.
async fn schemas_command(command: SchemasCommand) -> Result<()> {
    use registry::tooling::{self, RegisterError};
    let (SchemasCommand::Check { config } | SchemasCommand::Register { config }) = &command;
    let settings = load_lenient(Some(config))?;
    telemetry::init_logs(&settings.telemetry);
    let registry = registry::Registry::new(&settings.schema_registry)?;
    let url = registry.url().to_string();
    let mut local = tooling::local_schemas(&settings.topics);
    local.extend(tooling::declared_schemas(&settings.sources));
    match command {
        SchemasCommand::Check { .. } => {
            let report = tooling::check(&registry, &local)
                .await
                .context("checking the schemas")?;
            print!("{report}");
            report.refusal()?;
            println!("{} schema(s) pass against {url}", report.rows.len());
        }
        SchemasCommand::Register { .. } => match tooling::register(&registry, &local).await {
            Ok(report) => {
                print!("{report}");
                println!("{} schema(s) registered in {url}", report.rows.len());
            }
            Err(RegisterError::Incompatible(report)) => {
                print!("{report}");
                report.refusal().context("nothing was registered")?;
            }
            Err(RegisterError::Registry(e)) => return Err(e).context("registering the schemas"),
        },
    }
    Ok(())
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

/// Topic administration and backtests touch no Redis key, so need no customer-key secret:
/// validate everything else.
fn load_lenient(path: Option<&std::path::Path>) -> Result<Settings> {
    if std::env::var_os("NBO_CUSTOMER_KEY_SECRET").is_none() {
        std::env::set_var("NBO_CUSTOMER_KEY_SECRET", "unused-without-redis-access");
    }
    Ok(Settings::load(path)?)
}

async fn shutdown_signal() {
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
