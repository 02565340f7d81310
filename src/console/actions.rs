//! The console's changes (POST): sign-in and sign-out, customer lookups, rule checks, backtests
//! and publishing. Every one but sign-in requires a role and the user's CSRF token.

use super::views::editor_page;
use super::*;

#[derive(serde::Deserialize)]
pub(super) struct LoginForm {
    name: String,
    password: String,
}

/// The client's address: from the trusted proxy's header when `console.client_ip_header` is
/// set (its *last* address, the one the proxy appended: the ones before it are the client's to
/// write), else the TCP peer.
fn source(app: &App, headers: &HeaderMap, peer: SocketAddr) -> String {
    app.settings
        .console
        .client_ip_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().chars().take(64).collect())
        .unwrap_or_else(|| peer.ip().to_string())
}

pub(super) async fn login(
    State(app): State<App>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if app.auth.mode() != ConsoleAuth::Users {
        return StatusCode::NOT_FOUND.into_response();
    }
    if form.name.chars().any(char::is_control) {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::login(Some(
                "A sign-in name cannot contain control characters.",
            ))),
        )
            .into_response();
    }
    let source = source(&app, &headers, peer);
    let auth = app.auth.clone();
    let name = form.name.clone();
    // argon2 is slow and memory-hungry on purpose (19 MiB a check): a few checks at a time, off
    // the async threads, so a burst of sign-ins cannot exhaust the console's memory.
    let Ok(Ok(permit)) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.password_checks.clone().acquire_owned(),
    )
    .await
    else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(pages::login(Some(
                "Too many sign-ins at once; try again in a moment.",
            ))),
        )
            .into_response();
    };
    // The permit moves into the check: a client that hangs up does not free it while the
    // check still runs.
    let signed = tokio::task::spawn_blocking(move || {
        let _held = permit;
        auth.sign_in(&form.name, &form.password, &source)
    })
    .await
    .unwrap_or(Err(auth::Refusal::Wrong));
    match signed {
        Ok((token, user)) => {
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
        Err(auth::Refusal::Wrong) => {
            tracing::warn!(user = %name, "console sign-in refused");
            (
                StatusCode::UNAUTHORIZED,
                Html(pages::login(Some("Wrong name or password."))),
            )
                .into_response()
        }
        Err(auth::Refusal::LockedOut(wait)) => {
            tracing::warn!(user = %name, "console sign-in refused: locked out after repeated failures");
            let minutes = wait.as_secs().div_ceil(60);
            let message = format!(
                "Too many failed sign-ins for this name; try again in {minutes} minute{}, or ask an administrator.",
                if minutes == 1 { "" } else { "s" }
            );
            (
                StatusCode::TOO_MANY_REQUESTS,
                Html(pages::login(Some(&message))),
            )
                .into_response()
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct CsrfForm {
    csrf: Option<String>,
}

pub(super) async fn logout(
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

/// Longest customer id a lookup takes (ids are keys of Kafka records; banks' are far shorter).
pub const MAX_CUSTOMER_ID_BYTES: usize = 128;

#[derive(serde::Deserialize)]
pub(super) struct LookupForm {
    csrf: Option<String>,
    customer_id: String,
}

/// A customer lookup: audited first (no record, no lookup), then read from the state store and
/// the audit the console holds.
pub(super) async fn customer_lookup(
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
    if id.len() > MAX_CUSTOMER_ID_BYTES || id.chars().any(char::is_control) {
        // Refused before the audit and never echoed: nothing of it is written anywhere.
        return (
            StatusCode::BAD_REQUEST,
            Html(customer::form(
                &user,
                Some(&format!(
                    "A customer id is at most {MAX_CUSTOMER_ID_BYTES} bytes, without control characters; this one is not (nothing was looked up)."
                )),
            )),
        )
            .into_response();
    }
    let Some((store, hasher)) = &app.state else {
        return Html(customer::form(&user, Some("This console has no state store to read (state.backend = \"memory\" lives in the run process).")))
            .into_response();
    };
    let ruleset_version = app.ruleset_version();
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
                .and_then(|bytes| crate::customer::CustomerState::from_bytes(&bytes).ok()),
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
pub(super) struct RuleForm {
    csrf: Option<String>,
    document: String,
    comment: Option<String>,
    state: Option<String>,
    file: Option<String>,
}

/// Backtests an edited rule over a recording and shows the report under the editor.
pub(super) async fn rule_backtest(
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
    // Audited first, as every console action on rules is.
    let ruleset_version = book.version();
    let action = audit::Action {
        outcome: crate::event::DecisionOutcome::RuleBacktested,
        customer_id: "",
        rule_id: &doc.id,
        rule_version: doc.version,
        ruleset_version,
        what: format!("backtest of v{} on {name}", doc.version),
    };
    if let Err(e) = app.audit.record(&user, action).await {
        tracing::error!(user = %user.name, error = %e, "console: a backtest could not be audited; refused");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the backtest could not be recorded on the audit topic, so it was not run; try again",
        )
            .into_response();
    }
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

/// The editor with `text` and one problem that has no place in it (a refused publish).
fn refused(app: &App, user: &User, text: &str, status: StatusCode, message: String) -> Response {
    let problems = [editor::Problem {
        line: None,
        column: None,
        message,
    }];
    let page = editor_page(app, user, text, editor::Report::Problems(&problems));
    (status, Html(page)).into_response()
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

pub(super) async fn rule_check(
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

/// Audits who publishes, then publishes a checked document to the rules topic in the state
/// chosen (a shadow version as the rule's challenger, beside the version in force).
pub(super) async fn rule_publish(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<RuleForm>,
) -> Response {
    use crate::rules::document::RuleState;
    use crate::rules_topic::publish::{Checked, Publication};
    let (user, _) = match checked_form(&app, &headers, &form, Role::Publisher) {
        Ok(ok) => ok,
        Err(page) => return *page,
    };
    let state = match form.state.as_deref() {
        Some("shadow") => RuleState::Shadow,
        Some("active") => RuleState::Active,
        _ => return (StatusCode::BAD_REQUEST, "state must be shadow or active").into_response(),
    };
    let (doc, text) = match editor::for_publish(&form.document, state) {
        Ok(published) => published,
        Err(problem) => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(editor_page(
                    &app,
                    &user,
                    &form.document,
                    editor::Report::Problems(&[problem]),
                )),
            )
                .into_response()
        }
    };
    let who = match crate::rules::history::Provenance::new(
        &user.name,
        form.comment.as_deref().unwrap_or_default(),
        crate::rules::history::Action::Publish,
    ) {
        Ok(who) => who,
        Err(message) => {
            return refused(
                &app,
                &user,
                &text,
                StatusCode::UNPROCESSABLE_ENTITY,
                message,
            )
        }
    };
    let state_name = crate::rules::edit::state_name(state);
    let (id, version) = (doc.id.clone(), doc.version);
    let item = Publication::Document(Box::new(Checked {
        doc,
        text: text.clone(),
        path: format!("console:{}", user.name),
    }));
    let result = super::lifecycle::change(
        &app,
        &user,
        super::lifecycle::Change {
            who: &who,
            rule_id: &id,
            version,
            what: format!("published as {state_name}"),
            items: vec![item],
        },
    )
    .await;
    let report = match result {
        Ok(report) if app.settings.console.require_approval => report,
        Ok(report) => format!("Published {id} v{version} as {state_name}. {report}"),
        Err((status, message)) => return refused(&app, &user, &text, status, message),
    };
    Html(editor_page(
        &app,
        &user,
        &text,
        editor::Report::Published(report),
    ))
    .into_response()
}
