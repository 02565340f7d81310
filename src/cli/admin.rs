//! The administration verbs: `topics create`, `schemas check|register` and `features show`
//! (the `rules` verbs are in `cli/rules.rs`).

use super::args::SchemasCommand;
use anyhow::{bail, Context, Result};
use nbo_stream::config::Settings;
use nbo_stream::{registry, source, state, telemetry, topics};
use std::path::PathBuf;

/// `topics create`: the missing topics from the specs; existing ones are left alone.
pub(crate) async fn topics_create(
    config: PathBuf,
    specs: Option<PathBuf>,
    partitions: Option<i32>,
) -> Result<()> {
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
    Ok(())
}

/// `features show`: a customer's public feature hash from Redis.
pub(crate) async fn features_show(customer_id: String, config: PathBuf) -> Result<()> {
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
    Ok(())
}

/// `schemas check` and `schemas register`.
pub(crate) async fn schemas(command: SchemasCommand) -> Result<()> {
    use registry::tooling::{self, RegisterError};
    let (SchemasCommand::Check { config } | SchemasCommand::Register { config }) = &command;
    let settings = load_lenient(Some(config))?;
    telemetry::init_logs(&settings.telemetry);
    let registry = registry::Registry::new(&settings.schema_registry)?;
    let url = registry.url().to_string();
    let mut local = tooling::local_schemas(&settings.topics);
    local.extend(tooling::declared_schemas(&settings.catalog));
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

/// Topic administration and backtests touch no Redis key, so need no customer-key secret:
/// validate everything else.
pub(crate) fn load_lenient(path: Option<&std::path::Path>) -> Result<Settings> {
    if std::env::var_os("NBO_CUSTOMER_KEY_SECRET").is_none() {
        std::env::set_var("NBO_CUSTOMER_KEY_SECRET", "unused-without-redis-access");
    }
    Ok(Settings::load(path)?)
}
