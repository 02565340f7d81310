//! The command line's arguments: every verb, its options and their help.

use clap::{Args, Parser, Subcommand};
use nbo_stream::recorded;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "nbo-stream",
    version,
    about = "Real-time customer events → windowed features → next-best offers and risk alerts"
)]
pub(crate) struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Inbound decisions over HTTP: `POST /v1/decisions` answers a channel (app, web, call
    /// centre, branch) with the best offers for a customer now, from the state the stream keeps
    /// in Redis and the same rules; every answer is audited. Serves on api.listen; keys, rates
    /// and bounds are under [api] (see deploy/config/production.toml and openapi/).
    Api {
        /// TOML configuration with an [api] section; NBO_* variables override it.
        #[arg(long, short, required_unless_present_any = ["hash_key", "new_key"])]
        config: Option<PathBuf>,
        /// Read an API key on standard input, print its SHA-256 for an [[api.key]] block's
        /// sha256, and exit.
        #[arg(long)]
        hash_key: bool,
        /// Print a new random API key and its SHA-256, and exit.
        #[arg(long, conflicts_with = "hash_key")]
        new_key: bool,
    },
    /// The whole system in one process with nothing installed: embedded mock broker, in-memory
    /// state, built-in generator. The mock broker stalls past ~57,000 records per partition, so
    /// --events is capped at 400,000; use `run` with a real broker for more.
    Demo(DemoArgs),
    /// Produce synthetic bank-customer events (Avro) to every input topic, or with --out write the
    /// same stream to a file (Avro container or JSON lines) for `backtest`.
    Generate(GenerateArgs),
    /// Answer the offers a running pipeline sends, as the customers of `generate` would (the same
    /// --customers and --seed): each persona accepts each product at its true propensity, clicks,
    /// declines or ignores; the answers go to the offer-responses topic.
    Simulate(SimulateArgs),
    /// Replay recorded events (a file from `generate --out`: Avro container or JSON lines)
    /// through the same features, rules and decisioning as `run`, with in-memory state, and
    /// report what the rules would have decided.
    Backtest(BacktestArgs),
    /// Training data for the bank's ML team: one row per decision in a time range, with the
    /// features as they stood at the decision and the label it earned inside the maturity
    /// window (offer responses, conversions, alert outcomes); erased customers never appear.
    Export {
        #[command(subcommand)]
        command: ExportCommand,
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
pub(crate) const SCHEMAS_EXIT_STATUS: &str =
    "Exit status: 0 every schema passes; 1 a schema is incompatible \
(each subject is named with the registry's reasons); 2 the check could not be made (registry \
unreachable or refusing the credentials, configuration).";

#[derive(Subcommand)]
pub(crate) enum SchemasCommand {
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

/// Who makes a rule change and why: every change carries both into the rules history.
#[derive(clap::Args, Clone)]
pub(crate) struct ChangeArgs {
    /// Configuration (brokers, security, topic names, features).
    #[arg(long, short)]
    pub(crate) config: PathBuf,
    /// Why, in plain words: kept with the change in the rules history (required).
    #[arg(long, short = 'm')]
    pub(crate) comment: String,
    /// Who makes the change (default: `NBO_AUTHOR`, else the OS user).
    #[arg(long)]
    pub(crate) author: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum RulesCommand {
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
    /// Check, then write documents to the rules topic; running instances apply them without a
    /// restart. A `state = "shadow"` document becomes the rule's challenger (key `<id>@shadow`)
    /// beside the version in force. Nothing is sent unless every document passes; each change is
    /// kept in the rules history with the author and comment first.
    Publish {
        /// A rule document or a folder of them.
        path: Option<PathBuf>,
        #[command(flatten)]
        change: ChangeArgs,
        /// Delete these rule ids (an empty value on the topic).
        #[arg(long = "delete", value_name = "RULE_ID")]
        delete: Vec<String>,
    },
    /// Promote a rule's challenger (its shadow version): it becomes the version in force, in
    /// state active, and the old version retires. Reads the rules topic for the challenger's text.
    Promote {
        /// The rule id.
        id: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Drop a rule's challenger (its shadow version); the version in force keeps running.
    Drop {
        /// The rule id.
        id: String,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Publish an earlier version of a rule again, as a new version in force (its text as
    /// written, from the rules history).
    Rollback {
        /// The rule id.
        id: String,
        /// The version to go back to.
        #[arg(long)]
        to: i32,
        #[command(flatten)]
        change: ChangeArgs,
    },
    /// Every published change (of one rule, or all): when, what, who and why.
    History {
        /// Only this rule.
        id: Option<String>,
        /// Configuration (brokers, security, topic names).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// What differs between two versions of a rule: condition, thresholds, state, each field.
    Diff {
        /// The rule id.
        id: String,
        /// The first version.
        from: i32,
        /// The second version.
        to: i32,
        /// Configuration (brokers, security, topic names).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Format of `generate --out`.
/// Compression of the batches `generate` produces.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Compression {
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
    pub(crate) fn as_str(self) -> &'static str {
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
pub(crate) enum FileFormat {
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
pub(crate) enum TopicsCommand {
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
pub(crate) enum FeaturesCommand {
    /// Print a customer's current features from Redis.
    Show {
        /// Customer id (hashed with NBO_CUSTOMER_KEY_SECRET to find the key).
        customer_id: String,
        /// Configuration (Redis connection).
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// Arguments of `demo`.
#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Records to generate (1..=400000).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) events: u64,
    /// Synthetic customers.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) customers: u32,
    /// Random seed (same seed, same customers and events).
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Partitions per topic.
    #[arg(long, default_value_t = 8)]
    pub(crate) partitions: i32,
    /// Address for /metrics, /healthz, /readyz while the demo runs.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub(crate) listen: String,
    /// Fraction of records replaced by malformed bytes, to show dead letters.
    #[arg(long, default_value_t = 0.002)]
    pub(crate) malformed_rate: f64,
    /// Serve the web console beside the pipeline (prints its URL and a sign-in), and keep
    /// serving after the run until Ctrl-C.
    #[arg(long)]
    pub(crate) console: bool,
    /// Address of the console with --console.
    #[arg(long, default_value = "127.0.0.1:8088")]
    pub(crate) console_listen: String,
}

/// Arguments of `generate`.
#[derive(clap::Args)]
pub(crate) struct GenerateArgs {
    /// Bootstrap servers (not with --out).
    #[arg(long, required_unless_present = "out", conflicts_with = "out")]
    pub(crate) brokers: Option<String>,
    /// Write the records to this file instead of Kafka (no broker needed); the format follows
    /// the extension (.avro, .jsonl) unless --format says otherwise.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Format of --out: an Avro object container file, or JSON lines.
    #[arg(long, value_enum, requires = "out")]
    pub(crate) format: Option<FileFormat>,
    /// Synthetic customers.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) customers: u32,
    /// Records per second (0 = as fast as the broker takes them); default 1000. Kafka only.
    #[arg(long, conflicts_with = "out")]
    pub(crate) rate: Option<u64>,
    /// Stop after this long (e.g. 60s, 10m). Kafka only: a file takes --events.
    #[arg(long, conflicts_with_all = ["events", "out"], value_parser = humantime::parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Stop after this many records.
    #[arg(long)]
    pub(crate) events: Option<u64>,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// Simulated time of the first event, ms since epoch (default: on the hour, far enough back
    /// that the stream ends about now). Fix it to reproduce a stream exactly; event times
    /// never pass the wall clock.
    #[arg(long)]
    pub(crate) start_ms: Option<i64>,
    /// Fraction of records replaced by malformed bytes. Kafka only.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) malformed_rate: f64,
    /// Compression of the produced batches (Kafka's `compression.type`). Kafka only.
    #[arg(long, value_enum, default_value_t = Compression::Lz4, conflicts_with = "out")]
    pub(crate) compression: Compression,
    /// Optional config file: topic names and Kafka security settings, and the sources declared
    /// in `[[source]]`, whose synthetic records (drawn from their schemas) join the stream.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Also write the products customers open on their own, without an offer, at the
    /// simulator's base rates (`bank.product-openings.v1`): the conversions uplift is measured
    /// on. `simulate` writes the products opened by accepted offers.
    #[arg(long)]
    pub(crate) own_conversions: bool,
}

/// Arguments of `simulate`.
#[derive(clap::Args)]
pub(crate) struct SimulateArgs {
    /// Configuration: brokers, topic names, group id (the simulator's group is
    /// `<kafka.group_id>-simulator`), codec framing; NBO_* variables override it.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Bootstrap servers (overrides the configuration's).
    #[arg(long)]
    pub(crate) brokers: Option<String>,
    /// The generator's customer count.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) customers: u32,
    /// The generator's seed; also seeds the answers.
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    /// A TOML file replacing cells of the true-propensity table (`[LoanShopper]` `LOAN = 0.4`;
    /// the defaults are in the README) and setting each alert rule's true precision
    /// (`[alert_precision]` `alert-card-velocity = 0.4`, `default = 0.3`).
    #[arg(long)]
    pub(crate) truth: Option<PathBuf>,
    /// How long after an offer its answer comes, in event time (never past the clock).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub(crate) delay: Duration,
    /// Stop once no offer has arrived for this long (default: run until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) idle_exit: Option<Duration>,
    /// Do not confirm each offer DELIVERED before answering it (by default every offer gets a
    /// delivery receipt, so the learned propensity counts unanswered offers too).
    #[arg(long)]
    pub(crate) no_receipts: bool,
    /// Do not close the alerts the pipeline raises (by default each alert's case is closed
    /// CONFIRMED_RISK at its rule's true precision, the truth file's [alert_precision] table,
    /// and FALSE_POSITIVE otherwise).
    #[arg(long)]
    pub(crate) no_closures: bool,
    /// How long after an alert was raised its case is closed, in event time (never past the
    /// clock).
    #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
    pub(crate) close_after: Duration,
    /// Run the whole loop in this process instead (generated events → the operator → these
    /// customers' answers → back to the operator), without Kafka or Redis, and report what the
    /// offers learned against the truth table.
    #[arg(long)]
    pub(crate) offline: bool,
    /// With --offline: stop once this many offers have been learned from.
    #[arg(long, default_value_t = 50_000)]
    pub(crate) responses: u64,
    /// With --offline: stop after this many generated events in any case.
    #[arg(long, default_value_t = 50_000_000)]
    pub(crate) max_events: u64,
    /// With --offline: split the customers in two halves, one ranked by learned propensities and
    /// one by the configured ones, and report the acceptance of each with the gain's interval.
    #[arg(long)]
    pub(crate) ab: bool,
    /// With --offline: a directory of rule documents (default: the configuration's rules).
    #[arg(long)]
    pub(crate) rules: Option<PathBuf>,
    /// With --offline: run this many seeds (the seed, the seed + 1, ...) and report how often
    /// each offer's uplift interval covered the simulator's true effect.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) seeds: u64,
}

/// Arguments of `backtest`.
#[derive(clap::Args)]
pub(crate) struct BacktestArgs {
    /// The recorded events (format detected from the content).
    #[arg(long)]
    pub(crate) events: PathBuf,
    /// Rule documents (a file or a folder) to replay instead of the built-in starter rules.
    #[arg(long)]
    pub(crate) rules: Option<PathBuf>,
    /// Configuration: features file, operator and contact policy, codec limits; NBO_*
    /// variables override it. Default: the built-in defaults.
    #[arg(long, short)]
    pub(crate) config: Option<PathBuf>,
    /// Sample decisions to show (the first of each rule and outcome).
    #[arg(long, default_value_t = 5)]
    pub(crate) samples: usize,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Known fraud, JSON lines: {"event_id": ...} or {"customer_id": ..., "at": RFC 3339 or
    /// epoch ms}, one per line. Each alert rule is then scored: precision (alerts that hit a
    /// fraud), recall (frauds its alerts hit) and alerts per 1,000 events.
    #[arg(long)]
    pub(crate) labels: Option<PathBuf>,
    /// With --labels: an alert within this long of a customer's fraud (either side) caught it.
    #[arg(long, default_value = "1day", value_parser = humantime::parse_duration, requires = "labels")]
    pub(crate) label_window: Duration,
}

/// What `export` writes.
#[derive(Debug, Subcommand)]
pub(crate) enum ExportCommand {
    /// One row per decision (the audit topic) joined with what it came to (offer responses,
    /// product openings naming the offer, alert outcomes): Parquet, or JSON lines for a `.jsonl`
    /// file. Customers are pseudonymised as the state store keys them; the columns are in the
    /// README ("Training data").
    Training(TrainingArgs),
}

/// `export training`.
#[derive(Debug, Args)]
pub(crate) struct TrainingArgs {
    /// Configuration: Kafka, topics, codec and feature set, as the `run` instances use; NBO_*
    /// variables override it. NBO_CUSTOMER_KEY_SECRET must be the instances' secret.
    #[arg(long, short)]
    pub(crate) config: PathBuf,
    /// Decisions made from this time: RFC 3339 (2026-11-01T00:00:00Z) or a duration ago (40d).
    #[arg(long, value_parser = parse_time)]
    pub(crate) from: i64,
    /// ... until this time (excluded): RFC 3339 or a duration ago. Default: now.
    #[arg(long, value_parser = parse_time)]
    pub(crate) until: Option<i64>,
    /// How long after a decision its label counts (responses, conversions, closures).
    #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
    pub(crate) maturity: std::time::Duration,
    /// Keep decisions whose maturity window has not closed yet (`label_final` false); by
    /// default they are left out, since their label may still come.
    #[arg(long)]
    pub(crate) include_immature: bool,
    /// The file to write: Parquet, or JSON lines when it ends in .jsonl, .ndjson or .json.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Print what was written and left out as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A time on the command line: RFC 3339, or a duration before now.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(nbo_stream::clock::now_ms() - ago.as_millis() as i64);
    }
    humantime::parse_rfc3339_weak(text)
        .map(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        })
        .map_err(|e| format!("{e}: give RFC 3339 (2026-11-01T00:00:00Z) or a duration ago (40d)"))
}
