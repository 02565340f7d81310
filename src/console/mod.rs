//! `nbo-stream console`: a web view for the people who own the decisions — marketing and fraud
//! analysts, compliance officers.
//!
//! A process of its own: it reads the output topics and the rules topic (see [`feed`]) and
//! serves pages rendered on the server ([`pages`]), so one console serves any number of `run`
//! instances; the health page also reads each listed instance's `/readyz` and `/metrics`
//! ([`instances`]). Its assets are compiled into the binary; nothing is fetched from elsewhere,
//! and the Content-Security-Policy allows nothing but the console itself. Who may see what is
//! decided in [`auth`]; what it remembers, and the bound on it, in [`store`].

mod actions;
mod approvals;
pub mod audit;
pub mod auth;
pub mod backtest;
pub mod chart;
pub mod customer;
pub mod editor;
pub mod event_lag;
pub mod facets;
pub mod feed;
pub mod instances;
pub mod lag;
mod lifecycle;
pub mod minutes;
pub mod pages;
pub mod quality;
pub mod rows;
pub mod rules_page;
pub mod store;
mod versions;
mod views;

use crate::config::console::{ConsoleAuth, Role};
use crate::config::Settings;
use crate::state::{KeyHasher, StateStore};
use auth::{Auth, User};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use feed::{lock, Shared};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use store::{Filter, Store};

pub use crate::clock::now_ms;

/// The console's assets, compiled in.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "editor.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/editor.js"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    ),
];

impl App {
    /// The version of the rule set this console holds (what its audit records carry).
    fn ruleset_version(&self) -> i64 {
        self.shared
            .rules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .version()
    }

    /// Where rule changes go.
    fn destination(&self) -> crate::rules_topic::publish::Destination<'_> {
        crate::rules_topic::publish::Destination {
            rules: &self.rules_topic,
            history: &self.history_topic,
        }
    }
}

/// What every handler reads.
#[derive(Clone)]
struct App {
    auth: Arc<Auth>,
    shared: Shared,
    grafana: Option<String>,
    features: Arc<crate::features::FeatureSet>,
    specs: Arc<Vec<crate::features::spec::Spec>>,
    /// Customer state, for lookups (none: lookups say so).
    state: Option<(Arc<dyn StateStore>, KeyHasher)>,
    audit: Arc<audit::AuditWriter>,
    kafka: crate::config::KafkaSettings,
    rules_topic: String,
    history_topic: String,
    /// The rule files the console started with, with their text: versions before the history.
    files: Arc<Vec<(crate::rules::document::RuleDocument, String)>>,
    /// The latest reading of each of `console.instances` (the feed has no part in it, so it is
    /// here rather than in [`Shared`]).
    instances: instances::Slot,
    /// The latest view of `console.api_instances`: inbound answers by channel.
    channels: instances::channels::Slot,
    /// Four-eyes requests being answered, or answered, from this console.
    claims: Arc<Mutex<std::collections::HashSet<i64>>>,
    settings: Arc<Settings>,
    /// One backtest at a time.
    backtests: Arc<tokio::sync::Semaphore>,
    /// At most [`PASSWORD_CHECKS`] argon2 checks at a time.
    password_checks: Arc<tokio::sync::Semaphore>,
}

/// Password checks run at once (each takes argon2's 19 MiB and tens of milliseconds of a core).
const PASSWORD_CHECKS: usize = 2;

/// Checks the console settings, connects to the state store the settings name, starts reading
/// Kafka and serves on `console.listen`. Returns the bound address (port 0 picks one); the
/// console runs until the process ends.
pub async fn start(settings: &Settings) -> anyhow::Result<SocketAddr> {
    let store: Option<Arc<dyn StateStore>> = match settings.state.backend {
        crate::config::StateBackend::Redis => Some(Arc::new(
            crate::state::redis::RedisStore::connect(&settings.redis)
                .await
                .map_err(|e| {
                    anyhow::anyhow!("connecting to Redis at {}: {e}", settings.redis.url)
                })?,
        )),
        // An in-memory store lives in the `run` process: a console of its own cannot read it.
        crate::config::StateBackend::Memory => None,
    };
    start_with(settings, store).await
}

/// [`start`] with the state store given (the demo's in-memory store, tests).
pub async fn start_with(
    settings: &Settings,
    store: Option<Arc<dyn StateStore>>,
) -> anyhow::Result<SocketAddr> {
    settings
        .console
        .check()
        .map_err(|(field, reason)| anyhow::anyhow!("invalid configuration: {field}: {reason}"))?;
    let features = Arc::new(settings.features.load_in(&settings.catalog)?);
    let specs = Arc::new(crate::features::spec::specs(
        settings.features.file.as_deref(),
    )?);
    let hasher = settings
        .customer_key_secret
        .as_ref()
        .map(|s| KeyHasher::new(s.expose().as_bytes()));
    let state = match (store, hasher) {
        (Some(store), Some(hasher)) => Some((store, hasher)),
        (Some(_), None) => anyhow::bail!(
            "set NBO_CUSTOMER_KEY_SECRET (the `run` instances' key) to look customers up"
        ),
        _ => None,
    };
    // Built once, at start (a registry that cannot answer fails the start, saying so): the audit
    // writer frames with it, and the feed decodes offer responses with it.
    let (codec, fetcher) = crate::pipeline::codec_and_registry(settings, &[]).await?;
    let audit = Arc::new(audit::AuditWriter::new(
        &settings.kafka,
        &settings.topics.decisions_audit,
        codec.clone(),
        settings.codec.output_framing,
    )?);
    let docs = settings
        .rules
        .sources()
        .map_err(|e| anyhow::anyhow!(crate::rules::load::describe(&e)))?;
    let book = crate::rules::book::RuleBook::from_sources(features.clone(), &docs)
        .map_err(|e| anyhow::anyhow!(crate::rules::load::describe(&e)))?;
    let c = &settings.console;
    let shared = Shared {
        store: Arc::new(Mutex::new(
            Store::new(c.keep_decisions, c.chart_hours, c.keep_dead_letters)
                .keep_offer_ids(c.keep_offer_ids),
        )),
        rules: Arc::new(Mutex::new(book)),
        live: tokio::sync::broadcast::channel(1024).0,
        lag: Default::default(),
        history: Default::default(),
        quality: Arc::new(Mutex::new(quality::AlertQuality::new(
            c.quality_days,
            c.keep_alert_ids,
        ))),
    };
    let lag_settings = settings.clone();
    let lag_slot = shared.lag.clone();
    tokio::spawn(async move {
        if let Err(e) = lag::run(&lag_settings, lag_slot).await {
            tracing::error!(error = %e, "console: reading the consumer lag stopped");
        }
    });
    let instances_slot = instances::slot(&c.instances);
    let (every, slot) = (c.instances_every, instances_slot.clone());
    tokio::spawn(async move {
        if let Err(e) = instances::run(every, slot).await {
            tracing::error!(error = %e, "console: reading the instances stopped");
        }
    });
    let channels_slot = instances::channels::Slot::default();
    let (every, urls, slot) = (
        c.instances_every,
        c.api_instances.clone(),
        channels_slot.clone(),
    );
    tokio::spawn(async move {
        if let Err(e) = instances::channels::run(every, urls, slot).await {
            tracing::error!(error = %e, "console: reading the API instances stopped");
        }
    });
    let (quality_settings, quality_counts) = (settings.clone(), shared.quality.clone());
    let (quality_codec, quality_fetcher) = (codec.clone(), fetcher.clone());
    tokio::spawn(async move {
        let read = quality::feed::run(
            &quality_settings,
            quality_counts,
            quality_codec,
            quality_fetcher,
        );
        if let Err(e) = read.await {
            tracing::error!(error = %e, "console: reading alerts and closures stopped; the quality table shows what was read");
        }
    });
    let feed_settings = settings.clone();
    let feed_shared = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = feed::run(&feed_settings, feed_shared, codec, fetcher).await {
            tracing::error!(error = %e, "console: reading Kafka stopped; the pages show what was read");
        }
    });
    let app = App {
        auth: Arc::new(Auth::new(c)),
        shared,
        grafana: c.grafana_url.clone(),
        features,
        specs,
        state,
        audit,
        kafka: settings.kafka.clone(),
        rules_topic: settings.topics.rules.clone(),
        history_topic: settings.topics.rules_history.clone(),
        files: Arc::new(docs.clone()),
        instances: instances_slot,
        channels: channels_slot,
        claims: Default::default(),
        settings: Arc::new(settings.clone()),
        backtests: Arc::new(tokio::sync::Semaphore::new(1)),
        password_checks: Arc::new(tokio::sync::Semaphore::new(PASSWORD_CHECKS)),
    };
    let listener = tokio::net::TcpListener::bind(&c.listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            tracing::error!(error = %e, "console server stopped");
        }
    });
    Ok(addr)
}

fn router(app: App) -> Router {
    use actions::*;
    use views::*;
    Router::new()
        .route("/", get(|| async { Redirect::to("/live") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/live", get(live))
        .route("/live/stream", get(live_stream))
        .route("/live/chart", get(live_chart))
        .route("/live/channels", get(live_channels))
        .route("/rules", get(rules))
        .route("/health", get(health))
        .route("/customer", get(customer_form).post(customer_lookup))
        .route("/rules/edit", get(rule_edit))
        .route("/rules/check", post(rule_check))
        .route("/rules/publish", post(rule_publish))
        .route("/rules/promote", post(lifecycle::promote))
        .route("/rules/drop", post(lifecycle::drop_challenger))
        .route("/rules/versions", get(versions::page))
        .route("/rules/approvals", get(approvals::page))
        .route("/rules/approve", post(approvals::decide))
        .route("/rules/rollback", post(versions::rollback))
        .route("/rules/backtest", post(rule_backtest))
        .route("/assets/{file}", get(asset))
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(app)
}

/// Headers on every answer: only the console's own scripts and styles, no framing, no referrer,
/// no caching of pages that hold customer data.
async fn secure_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Why a request was refused.
enum Denied {
    /// No session: sign in first.
    SignIn,
    /// No (known) user in the proxy's header.
    NoUser,
    /// The user's role is too small.
    Role(Box<(User, Role)>),
    /// A change without the user's CSRF token.
    Csrf(Box<User>),
}

/// An error page with the navigation, so a refused user can go on from it.
fn error_page(user: &User, status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<p class=\"error\" id=\"denied\">{}</p><p><a href=\"/live\">Back to the live view</a></p>",
        pages::esc(text)
    );
    (status, Html(pages::layout("Not allowed", user, "", &body))).into_response()
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::SignIn => Redirect::to("/login").into_response(),
            Denied::NoUser => (
                StatusCode::UNAUTHORIZED,
                "no signed-in user: reach the console through the sign-on proxy",
            )
                .into_response(),
            Denied::Csrf(user) => error_page(
                &user,
                StatusCode::FORBIDDEN,
                "This form's security token is missing or out of date (the page is older than your sign-in): reload the page and try again.",
            ),
            Denied::Role(denied) => {
                let (user, need) = *denied;
                let text = format!(
                    "{} ({}) may not do this: it needs the {} role",
                    user.name,
                    user.role.as_str(),
                    need.as_str()
                );
                error_page(&user, StatusCode::FORBIDDEN, &text)
            }
        }
    }
}

/// The user of a request who holds at least `role`: otherwise the sign-in page (no session),
/// 401 (no proxy header) or 403 (a role too small).
fn require(app: &App, headers: &HeaderMap, role: Role) -> Result<User, Denied> {
    match app.auth.identify(headers) {
        Some(user) if user.can(role) => Ok(user),
        Some(user) => Err(Denied::Role(Box::new((user, role)))),
        None if app.auth.mode() == ConsoleAuth::Users => Err(Denied::SignIn),
        None => Err(Denied::NoUser),
    }
}

/// The least role a page needs, as a type (see [`Signed`]).
trait Needs {
    /// That role.
    const ROLE: Role;
}

/// Pages every signed-in user may read.
struct Viewer;
impl Needs for Viewer {
    const ROLE: Role = Role::Viewer;
}

/// Pages for analysts and publishers.
struct Analyst;
impl Needs for Analyst {
    const ROLE: Role = Role::Analyst;
}

/// The signed-in user of a page's request, holding at least `R`'s role ([`require`]); a
/// handler that takes it answers only such users. Changes use [`require_change`] instead, which
/// also checks the CSRF token in the form.
struct Signed<R: Needs>(User, std::marker::PhantomData<R>);

impl<R: Needs> axum::extract::FromRequestParts<App> for Signed<R> {
    type Rejection = Denied;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        app: &App,
    ) -> Result<Self, Denied> {
        require(app, &parts.headers, R::ROLE).map(|user| Signed(user, std::marker::PhantomData))
    }
}

/// [`require`] for a change: the user must also send their CSRF token (`form_token` or the
/// `X-CSRF-Token` header).
fn require_change(
    app: &App,
    headers: &HeaderMap,
    role: Role,
    form_token: Option<&str>,
) -> Result<User, Denied> {
    let user = require(app, headers, role)?;
    if Auth::csrf_ok(&user, headers, form_token) {
        Ok(user)
    } else {
        Err(Denied::Csrf(Box::new(user)))
    }
}
