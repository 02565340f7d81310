//! Starting `nbo-stream api`: the rule set (files, then the rules topic followed), the learned
//! models (loaded, then reloaded every `operator.learning.refresh`), the audit producer, the
//! state store, and the HTTP listener. Anything that cannot start fails the start, saying what.

use super::outbox::{Outbox, Sealer};
use super::{router, Api};
use crate::config::Settings;
use crate::rules::book::RuleBook;
use crate::rules_topic::watch::{operator_builder, RuleWatcher};
use crate::state::redis::RedisStore;
use crate::state::{KeyHasher, StateStore};
use anyhow::Context;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Starts the API with the state store of `settings` (Redis), serving until the process ends;
/// answers the address it listens on.
pub async fn start(settings: &Settings) -> anyhow::Result<SocketAddr> {
    let store = match settings.state.backend {
        crate::config::StateBackend::Redis => Arc::new(
            crate::state::redis::RedisStore::connect(&settings.redis)
                .await
                .with_context(|| format!("connecting to Redis at {}", settings.redis.url))?,
        ),
        crate::config::StateBackend::Memory => anyhow::bail!(
            "state.backend = \"memory\" lives inside one `run` process: the API reads the \
             stream's state from Redis (state.backend = \"redis\")"
        ),
    };
    start_with(settings, store).await
}

/// [`start`] with the Redis store given (tests).
pub async fn start_with(settings: &Settings, store: Arc<RedisStore>) -> anyhow::Result<SocketAddr> {
    settings
        .api
        .check()
        .map_err(|(field, reason)| anyhow::anyhow!("invalid configuration: {field}: {reason}"))?;
    // Certificates are read first: a bad file fails the start before anything connects.
    let tls = settings
        .api
        .tls
        .as_ref()
        .map(super::serve::acceptor)
        .transpose()?;
    let secret = settings.customer_key_secret.as_ref().context(
        "set NBO_CUSTOMER_KEY_SECRET (the `run` instances' key) to read the customers' state",
    )?;
    let (codec, _) =
        crate::pipeline::codec_and_registry(settings, &[crate::event::InboundContact::RECORD])
            .await?;
    let features = Arc::new(settings.features.load_in(&settings.catalog)?);
    let docs = settings
        .rules
        .sources()
        .map_err(|e| anyhow::anyhow!(crate::rules::load::describe(&e)))?;
    let book = RuleBook::from_sources(features.clone(), &docs)
        .map_err(|e| anyhow::anyhow!(crate::rules::load::describe(&e)))?;
    let models = crate::learning::model::Models::new();
    let build = operator_builder(features, &settings.operator, models, false);
    let operator = Arc::new(ArcSwap::from_pointee(build(book.rule_set())));
    if settings.rules.watch_topic {
        let mut watcher = RuleWatcher::new(
            crate::source::rules_consumer_config(&settings.kafka).create()?,
            &settings.topics.rules,
            book,
            build,
            operator.clone(),
            None,
        );
        watcher.catch_up(settings.rules.startup_timeout).await?;
        // Followed for the life of the process: the task holds the sender, which never sends.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _never = stop;
            watcher.run(stopped).await;
        });
    }
    if let Some(store) = store.models(&settings.kafka.group_id) {
        crate::worker::load_models(&*store, &operator.load())
            .await
            .context("loading the learned models")?;
        let (operator, every) = (operator.clone(), settings.operator.learning.refresh);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = crate::worker::load_models(&*store, &operator.load()).await {
                    tracing::warn!(error = %e, "learned models not reloaded; decisions use what they have");
                }
            }
        });
    }
    // Answers wait for the outbox, not the broker: its drainer batches as the producer likes,
    // reading through a connection of its own.
    let producer = crate::sink::config::producer_config(&settings.kafka).create()?;
    let sealer = Sealer::new(secret.expose().as_bytes());
    let outbox = Arc::new(Outbox::new(
        &settings.kafka.group_id,
        codec,
        sealer,
        settings.api.outbox_max,
    ));
    let reader = RedisStore::connect(&settings.redis)
        .await
        .with_context(|| {
            format!(
                "connecting the audit outbox to Redis at {}",
                settings.redis.url
            )
        })?;
    outbox.clone().spawn_drainer(
        reader,
        producer,
        settings.topics.decisions_audit.clone(),
        settings.topics.inbound_contacts.clone(),
    );
    let api = Arc::new(Api::new(
        settings.api.clone(),
        operator,
        store,
        KeyHasher::new(secret.expose().as_bytes()),
        outbox,
    ));
    let listener = tokio::net::TcpListener::bind(&settings.api.listen)
        .await
        .with_context(|| format!("binding api.listen {}", settings.api.listen))?;
    let addr = listener.local_addr()?;
    let app = router(api);
    tokio::spawn(super::serve::serve(
        listener,
        app,
        tls,
        settings.api.read_timeout,
    ));
    Ok(addr)
}
