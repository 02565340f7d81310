//! `nbo-stream console`: a web view for the people who own the decisions — marketing and fraud
//! analysts, compliance officers.
//!
//! A process of its own: it reads the output topics and the rules topic (see [`feed`]) and
//! serves pages rendered on the server ([`pages`]), so one console serves any number of `run`
//! instances. Its assets are compiled into the binary; nothing is fetched from elsewhere, and the
//! Content-Security-Policy allows nothing but the console itself. Who may see what is decided in
//! [`auth`]; what it remembers, and the bound on it, in [`store`].

pub mod auth;
pub mod chart;
pub mod feed;
pub mod pages;
pub mod store;

use crate::config::console::{ConsoleAuth, Role};
use crate::config::Settings;
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
}

/// Checks the console settings, starts reading Kafka and serves on `console.listen`. Returns
/// the bound address (port 0 picks one); the console runs until the process ends.
pub async fn start(settings: &Settings) -> anyhow::Result<SocketAddr> {
    settings
        .console
        .check()
        .map_err(|(field, reason)| anyhow::anyhow!("invalid configuration: {field}: {reason}"))?;
    let features = Arc::new(settings.features.load()?);
    let docs = settings
        .rules
        .documents()
        .map_err(|e| anyhow::anyhow!(crate::rules::load::describe(&e)))?;
    let book = crate::rules::book::RuleBook::new(features, &docs)
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
            let cookie = format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict",
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
    let user = match require(&app, &headers, Role::Viewer) {
        Ok(u) => u,
        Err(denied) => return denied.into_response(),
    };
    if !Auth::csrf_ok(&user, &headers, form.csrf.as_deref()) {
        return (
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the page",
        )
            .into_response();
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
