//! `nbo-stream console`: a web view for the people who own the decisions — marketing and fraud
//! analysts, compliance officers.
//!
//! A process of its own: it reads the output topics and the rules topic (see [`feed`]) and
//! serves pages rendered on the server ([`pages`]), so one console serves any number of `run`
//! instances. Its assets are compiled into the binary; nothing is fetched from elsewhere, and the
//! Content-Security-Policy allows nothing but the console itself. Who may see what is decided in
//! [`auth`]; what it remembers, and the bound on it, in [`store`].

pub mod audit;
pub mod auth;
pub mod backtest;
pub mod chart;
pub mod customer;
pub mod editor;
pub mod feed;
pub mod pages;
pub mod store;

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

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The console's assets, compiled in.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("assets/console.css"),
    ),
    (
        "live.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/live.js"),
    ),
];

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
    settings: Arc<Settings>,
    /// One backtest at a time.
    backtests: Arc<tokio::sync::Semaphore>,
}

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
    let features = Arc::new(settings.features.load()?);
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
    let (codec, _) = crate::pipeline::codec_and_registry(settings).await?;
    let audit = Arc::new(audit::AuditWriter::new(
        &settings.kafka,
        &settings.topics.decisions_audit,
        codec,
        settings.codec.output_framing,
    )?);
    let docs = settings
        .rules
        .documents()
        .map_err(|e| anyhow::anyhow!(crate::rules::load::describe(&e)))?;
    let book = crate::rules::book::RuleBook::new(features.clone(), &docs)
        .map_err(|e| anyhow::anyhow!(crate::rules::load::describe(&e)))?;
    let c = &settings.console;
    let shared = Shared {
        store: Arc::new(Mutex::new(Store::new(
            c.keep_decisions,
            c.chart_hours,
            c.keep_dead_letters,
        ))),
        rules: Arc::new(Mutex::new(book)),
        live: tokio::sync::broadcast::channel(1024).0,
    };
    let feed_settings = settings.clone();
    let feed_shared = shared.clone();
    tokio::spawn(async move {
        if let Err(e) = feed::run(&feed_settings, feed_shared).await {
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
        settings: Arc::new(settings.clone()),
        backtests: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    let listener = tokio::net::TcpListener::bind(&c.listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(app)).await {
            tracing::error!(error = %e, "console server stopped");
        }
    });
    Ok(addr)
}

fn router(app: App) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/live") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/live", get(live))
        .route("/live/stream", get(live_stream))
        .route("/rules", get(rules))
        .route("/health", get(health))
        .route("/customer", get(customer_form).post(customer_lookup))
        .route("/rules/edit", get(rule_edit))
        .route("/rules/check", post(rule_check))
        .route("/rules/publish", post(rule_publish))
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
    Csrf,
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
            Denied::Csrf => (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page",
            )
                .into_response(),
            Denied::Role(denied) => {
                let (user, need) = *denied;
                (
                    StatusCode::FORBIDDEN,
                    format!(
                        "{} ({}) may not do this: it needs the {} role",
                        user.name,
                        user.role.as_str(),
                        need.as_str()
                    ),
                )
                    .into_response()
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
        Err(Denied::Csrf)
    }
}

async fn login_page(State(app): State<App>) -> Response {
    match app.auth.mode() {
        ConsoleAuth::Users => Html(pages::login(None)).into_response(),
        ConsoleAuth::TrustedHeader => Redirect::to("/live").into_response(),
    }
}

#[derive(serde::Deserialize)]
struct LoginForm {
    name: String,
    password: String,
}

async fn login(State(app): State<App>, Form(form): Form<LoginForm>) -> Response {
    if app.auth.mode() != ConsoleAuth::Users {
        return StatusCode::NOT_FOUND.into_response();
    }
    let auth = app.auth.clone();
    let name = form.name.clone();
    // argon2 is slow on purpose: off the async threads.
    let signed = tokio::task::spawn_blocking(move || auth.sign_in(&form.name, &form.password))
        .await
        .ok()
        .flatten();
    match signed {
        Some((token, user)) => {
            tracing::info!(user = %user.name, role = user.role.as_str(), "console sign-in");
            let secure = if app.settings.console.secure_cookie {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict{secure}",
                auth::COOKIE
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/live")).into_response()
        }
        None => {
            tracing::warn!(user = %name, "console sign-in refused");
            (
                StatusCode::UNAUTHORIZED,
                Html(pages::login(Some("Wrong name or password."))),
            )
                .into_response()
        }
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(denied) = require_change(&app, &headers, Role::Viewer, form.csrf.as_deref()) {
        return denied.into_response();
    }
    app.auth.sign_out(&headers);
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0",
        auth::COOKIE
    );
    ([(header::SET_COOKIE, clear)], Redirect::to("/login")).into_response()
}

fn rule_ids(app: &App) -> Vec<String> {
    let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
    book.documents().map(|d| d.id.clone()).collect()
}

async fn live(
    State(app): State<App>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    let user = match require(&app, &headers, Role::Viewer) {
        Ok(u) => u,
        Err(denied) => return denied.into_response(),
    };
    let rules = rule_ids(&app);
    let store = lock(&app.shared.store);
    Html(pages::live(&store, &filter, &rules, &user, now_ms())).into_response()
}

/// New offers and alerts as server-sent events: `row` events carry the table row's HTML and
/// its data; a `lagged` event says how many rows a slow reader missed.
async fn live_stream(
    State(app): State<App>,
    headers: HeaderMap,
    Query(filter): Query<Filter>,
) -> Response {
    let user = match require(&app, &headers, Role::Viewer) {
        Ok(u) => u,
        Err(denied) => return denied.into_response(),
    };
    let rx = app.shared.live.subscribe();
    let stream = futures::stream::unfold((rx, filter, user), |(mut rx, filter, user)| async move {
        loop {
            let event = match rx.recv().await {
                Ok(row) if filter.matches(&row) => {
                    let mut data = serde_json::to_value(&row).unwrap_or_default();
                    data["customer_id"] = pages::customer(&row.customer_id, user.role).into();
                    data["html"] = pages::row_html(&row, user.role).into();
                    Event::default().event("row").data(data.to_string())
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok::<_, std::convert::Infallible>(event), (rx, filter, user)));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn rules(State(app): State<App>, headers: HeaderMap) -> Response {
    let user = match require(&app, &headers, Role::Viewer) {
        Ok(u) => u,
        Err(denied) => return denied.into_response(),
    };
    let (docs, version) = {
        let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
        (
            book.documents().cloned().collect::<Vec<_>>(),
            book.version(),
        )
    };
    let store = lock(&app.shared.store);
    Html(pages::rules(&docs, version, &store, &user, now_ms())).into_response()
}

async fn health(State(app): State<App>, headers: HeaderMap) -> Response {
    let user = match require(&app, &headers, Role::Viewer) {
        Ok(u) => u,
        Err(denied) => return denied.into_response(),
    };
    let version = app
        .shared
        .rules
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .version();
    let store = lock(&app.shared.store);
    Html(pages::health(
        &store,
        version,
        app.grafana.as_deref(),
        &user,
        now_ms(),
    ))
    .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn customer_form(State(app): State<App>, headers: HeaderMap) -> Response {
    match require(&app, &headers, Role::Analyst) {
        Ok(user) => Html(customer::form(&user, None)).into_response(),
        Err(denied) => denied.into_response(),
    }
}

#[derive(serde::Deserialize)]
struct LookupForm {
    csrf: Option<String>,
    customer_id: String,
}

/// A customer lookup: audited first (no record, no lookup), then read from the state store and
/// the audit the console holds.
async fn customer_lookup(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<LookupForm>,
) -> Response {
    let user = match require_change(&app, &headers, Role::Analyst, form.csrf.as_deref()) {
        Ok(u) => u,
        Err(denied) => return denied.into_response(),
    };
    let id = form.customer_id.trim();
    if id.is_empty() {
        return Html(customer::form(&user, Some("Type a customer id."))).into_response();
    }
    let Some((store, hasher)) = &app.state else {
        return Html(customer::form(&user, Some("This console has no state store to read (state.backend = \"memory\" lives in the run process).")))
            .into_response();
    };
    let ruleset_version = app
        .shared
        .rules
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .version();
    let action = audit::Action {
        outcome: crate::event::DecisionOutcome::ConsoleLookup,
        customer_id: id,
        rule_id: "",
        rule_version: 0,
        ruleset_version,
        what: "customer lookup".into(),
    };
    if let Err(e) = app.audit.record(&user, action).await {
        tracing::error!(user = %user.name, error = %e, "console: a lookup could not be audited; refused");
        return (StatusCode::SERVICE_UNAVAILABLE, Html(customer::form(&user, Some("The lookup could not be recorded on the audit topic, so it was not made. Try again shortly.")))).into_response();
    }
    let key = hasher.key(id);
    let features = store.feature_hash(&key).await;
    let state = store.load(std::slice::from_ref(&key)).await;
    let (features, state) = match (features, state) {
        (Ok(f), Ok(mut s)) => (
            f,
            s.pop()
                .flatten()
                .and_then(|bytes| crate::state::CustomerState::from_bytes(&bytes).ok()),
        ),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "console: reading customer state");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(customer::form(
                    &user,
                    Some("The state store did not answer. Try again shortly."),
                )),
            )
                .into_response();
        }
    };
    let decisions = lock(&app.shared.store).audits_of(id, 20);
    let lookup = customer::Lookup {
        customer_id: id,
        features,
        specs: &app.specs,
        state,
        decisions,
    };
    Html(customer::page(&user, &lookup)).into_response()
}

#[derive(serde::Deserialize)]
struct EditQuery {
    id: Option<String>,
}

async fn rule_edit(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<EditQuery>,
) -> Response {
    let user = match require(&app, &headers, Role::Analyst) {
        Ok(u) => u,
        Err(denied) => return denied.into_response(),
    };
    let text =
        q.id.and_then(|id| {
            let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
            book.document(&id).map(|d| d.to_toml())
        })
        .unwrap_or_else(|| editor::TEMPLATE.to_string());
    Html(editor_page(&app, &user, &text, editor::Report::None)).into_response()
}

#[derive(serde::Deserialize)]
struct RuleForm {
    csrf: Option<String>,
    document: String,
    state: Option<String>,
    file: Option<String>,
}

/// The editor page with the recordings this console offers.
fn editor_page(app: &App, user: &User, text: &str, report: editor::Report<'_>) -> String {
    let recordings = backtest::recordings(app.settings.console.recordings.as_deref());
    editor::page(user, text, report, &recordings, "", "")
}

/// Backtests an edited rule over a recording and shows the report under the editor.
async fn rule_backtest(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<RuleForm>,
) -> Response {
    let (user, doc) = match checked_form(&app, &headers, &form, Role::Analyst) {
        Ok(ok) => ok,
        Err(page) => return *page,
    };
    let folder = app.settings.console.recordings.clone();
    let name = form.file.clone().unwrap_or_default();
    let Some(file) = backtest::recording(folder.as_deref(), &name) else {
        return (StatusCode::BAD_REQUEST, "choose a recording from the list").into_response();
    };
    let Ok(_permit) = app.backtests.clone().try_acquire_owned() else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "another backtest is running: try again when it has finished",
        )
            .into_response();
    };
    let book = app
        .shared
        .rules
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (settings, features, rule) = (app.settings.clone(), app.features.clone(), doc.clone());
    tracing::info!(user = %user.name, rule = %doc.id, file = %name, "console: backtest");
    let result =
        tokio::task::spawn_blocking(move || backtest::run(&settings, features, &book, &rule, file))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
    let recordings = backtest::recordings(folder.as_deref());
    match result {
        Ok(report) => {
            let html = backtest::report_html(&report, &doc.id);
            Html(editor::page(
                &user,
                &form.document,
                editor::Report::Valid(&doc),
                &recordings,
                &name,
                &html,
            ))
            .into_response()
        }
        Err(e) => {
            let problems = [editor::Problem {
                line: None,
                column: None,
                message: format!("backtest failed: {e}"),
            }];
            Html(editor::page(
                &user,
                &form.document,
                editor::Report::Problems(&problems),
                &recordings,
                &name,
                "",
            ))
            .into_response()
        }
    }
}

/// Checks a form's user, role and CSRF token, then the document; the page to answer with when
/// anything fails.
fn checked_form(
    app: &App,
    headers: &HeaderMap,
    form: &RuleForm,
    role: Role,
) -> Result<(User, crate::rules::document::RuleDocument), Box<Response>> {
    let user = require_change(app, headers, role, form.csrf.as_deref())
        .map_err(|d| Box::new(d.into_response()))?;
    let checked = {
        let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
        editor::check(&form.document, &app.features, &book)
    };
    match checked {
        Ok(doc) => Ok((user, doc)),
        Err(problems) => Err(Box::new(
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(editor_page(
                    app,
                    &user,
                    &form.document,
                    editor::Report::Problems(&problems),
                )),
            )
                .into_response(),
        )),
    }
}

async fn rule_check(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<RuleForm>,
) -> Response {
    match checked_form(&app, &headers, &form, Role::Analyst) {
        Ok((user, doc)) => Html(editor_page(
            &app,
            &user,
            &form.document,
            editor::Report::Valid(&doc),
        ))
        .into_response(),
        Err(page) => *page,
    }
}

/// Publishes a checked document to the rules topic in the state chosen, then audits who did.
async fn rule_publish(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<RuleForm>,
) -> Response {
    use crate::rules::document::RuleState;
    use crate::rules::publish::{publish, Checked, Publication};
    let (user, doc) = match checked_form(&app, &headers, &form, Role::Publisher) {
        Ok(ok) => ok,
        Err(page) => return *page,
    };
    let state = match form.state.as_deref() {
        Some("shadow") => RuleState::Shadow,
        Some("active") => RuleState::Active,
        _ => return (StatusCode::BAD_REQUEST, "state must be shadow or active").into_response(),
    };
    let (doc, text) = editor::for_publish(doc, state);
    let item = Publication::Document(Box::new(Checked {
        doc: doc.clone(),
        text: text.clone(),
        path: format!("console:{}", user.name),
    }));
    let client = crate::source::client_config(&app.kafka);
    let written = match publish(&client, &app.rules_topic, &[item]).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, rule = %doc.id, "console: publishing failed");
            let problems = [editor::Problem {
                line: None,
                column: None,
                message: format!("not published: the rules topic refused it ({e}); try again"),
            }];
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(editor_page(
                    &app,
                    &user,
                    &text,
                    editor::Report::Problems(&problems),
                )),
            )
                .into_response();
        }
    };
    let (_, partition, offset) = written.first().cloned().unwrap_or_default();
    let state_name = if state == RuleState::Shadow {
        "shadow"
    } else {
        "active"
    };
    tracing::info!(user = %user.name, rule = %doc.id, version = doc.version, state = state_name, partition, offset, "console: rule published");
    let action = audit::Action {
        outcome: crate::event::DecisionOutcome::RulePublished,
        customer_id: "",
        rule_id: &doc.id,
        rule_version: doc.version,
        ruleset_version: offset + 1,
        what: format!("rule published as {state_name}"),
    };
    let mut report = format!("Published {} v{} as {state_name} (rules topic partition {partition}, offset {offset}); the instances apply it within seconds.", doc.id, doc.version);
    if let Err(e) = app.audit.record(&user, action).await {
        tracing::error!(user = %user.name, error = %e, "console: a publish could not be audited");
        report.push_str(
            " Warning: the audit record of this publish could not be written; tell compliance.",
        );
    }
    Html(editor_page(
        &app,
        &user,
        &text,
        editor::Report::Published(report),
    ))
    .into_response()
}
