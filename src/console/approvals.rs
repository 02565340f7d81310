//! Four-eyes (`console.require_approval`): the changes publishers requested, waiting for a second
//! publisher. Approving publishes the requested change (checked again against the rules in
//! force); rejecting closes the request. Nobody approves or rejects their own request. Both are
//! audited first and kept in the rules history with the approver, their comment and the request
//! they answer.

use super::lifecycle::{change, message, Change};
use super::*;
use crate::rules::history::{self, Action, HistoryEntry, Provenance};
use crate::rules_topic::publish;
use pages::{esc, time};
use std::fmt::Write;

fn pending(app: &App) -> Vec<HistoryEntry> {
    let history = app.shared.history.lock().unwrap_or_else(|p| p.into_inner());
    let entries: Vec<HistoryEntry> = history.iter().cloned().collect();
    history::pending(&entries).into_iter().cloned().collect()
}

/// `GET /rules/approvals`: the open requests.
pub(super) async fn page(State(app): State<App>, Signed(user, _): Signed<Viewer>) -> Response {
    let open = pending(&app);
    let mut body = String::from(
        "<p>Changes requested by a publisher, waiting for a second publisher (four-eyes: \
         <code>console.require_approval</code>). Nobody approves their own request.</p>",
    );
    if !app.settings.console.require_approval {
        body.push_str("<p class=\"muted\">Four-eyes is off on this console: changes are published at once.</p>");
    }
    body.push_str(
        "<table class=\"versions\" id=\"approvals\"><thead><tr><th>#</th><th>When</th><th>Rule</th><th>Change</th>\
         <th>Requested by</th><th>Why</th><th>Text</th><th></th></tr></thead><tbody>",
    );
    for r in &open {
        let what = r.requested.map_or("change", Action::as_str);
        let version = if r.version > 0 {
            format!(" v{}", r.version)
        } else {
            format!(" ({} emptied)", esc(&r.key))
        };
        let text = if r.text.is_empty() {
            String::new()
        } else {
            format!(
                "<details><summary>as written</summary><pre>{}</pre></details>",
                esc(&r.text)
            )
        };
        let decide = if user.can(Role::Publisher) && r.author != user.name {
            format!(
                "<form method=\"post\" action=\"/rules/approve\" class=\"lifecycle\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"seq\" value=\"{seq}\">\
                 <input name=\"comment\" id=\"approve-comment-{seq}\" required maxlength=\"2000\" placeholder=\"why\">\
                 <button name=\"decision\" value=\"approve\" id=\"approve-{seq}\">Approve</button>\
                 <button name=\"decision\" value=\"reject\" id=\"reject-{seq}\">Reject</button></form>",
                csrf = esc(&user.csrf),
                seq = r.seq
            )
        } else if r.author == user.name {
            "<span class=\"muted\">your request: another publisher approves it</span>".into()
        } else {
            String::new()
        };
        let _ = write!(
            body,
            "<tr id=\"request-{}\"><td>{}</td><td>{}</td><td>{}</td><td>{what}{version}</td><td>{}</td><td>{}</td><td>{text}</td><td>{decide}</td></tr>",
            r.seq,
            r.seq,
            time(r.at),
            esc(&r.rule_id),
            esc(&r.author),
            esc(&r.comment),
        );
    }
    body.push_str("</tbody></table>");
    if open.is_empty() {
        body.push_str("<p class=\"muted\" id=\"no-requests\">No open requests.</p>");
    }
    Html(pages::layout("Approvals", &user, "/rules", &body)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct DecisionForm {
    csrf: Option<String>,
    seq: i64,
    decision: String,
    comment: Option<String>,
}

/// `POST /rules/approve`: approve (publish) or reject request `seq`.
pub(super) async fn decide(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    let user = match require_change(&app, &headers, Role::Publisher, form.csrf.as_deref()) {
        Ok(user) => user,
        Err(denied) => return denied.into_response(),
    };
    let Some(request) = pending(&app).into_iter().find(|r| r.seq == form.seq) else {
        return message(
            &user,
            StatusCode::CONFLICT,
            &format!(
                "Request #{} is not open (approved, rejected or unknown).",
                form.seq
            ),
        );
    };
    if request.author == user.name {
        return message(
            &user,
            StatusCode::FORBIDDEN,
            "Nobody approves their own change: another publisher must.",
        );
    }
    // One answer per request from this console, however often the button is pressed: the
    // claim is taken before the audit and kept once the answer is written.
    {
        let mut claims = app.claims.lock().unwrap_or_else(|p| p.into_inner());
        if !claims.insert(request.seq) {
            return message(
                &user,
                StatusCode::CONFLICT,
                &format!("Request #{} is being answered already.", request.seq),
            );
        }
    }
    let response = answer(&app, &user, &form, &request).await;
    if response.status() != StatusCode::OK {
        app.claims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&request.seq);
    }
    response
}

async fn answer(app: &App, user: &User, form: &DecisionForm, request: &HistoryEntry) -> Response {
    let (app, user) = (app.clone(), user.clone());
    let request = request.clone();
    let approve = form.decision == "approve";
    let action = if approve {
        request.requested.unwrap_or(Action::Publish)
    } else {
        Action::Reject
    };
    let mut who = match Provenance::new(
        &user.name,
        form.comment.as_deref().unwrap_or_default(),
        action,
    ) {
        Ok(who) => who,
        Err(e) => return message(&user, StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    who.approves = Some(request.seq);
    let items = if approve {
        let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
        match publish::approval(&request, &book) {
            Ok(items) => items,
            Err(e) => {
                return message(
                    &user,
                    StatusCode::CONFLICT,
                    &format!(
                    "Request #{} can no longer be published: {e}. Reject it, and request again.",
                    request.seq
                ),
                )
            }
        }
    } else {
        Vec::new()
    };
    let what = format!(
        "{} of request #{} by {} ({})",
        if approve { "approval" } else { "rejection" },
        request.seq,
        request.author,
        request.requested.map_or("change", Action::as_str)
    );
    if !approve {
        // A rejection writes only its history entry (and its audit record).
        let result = reject(&app, &user, &who, &request, &what).await;
        return match result {
            Ok(text) => message(&user, StatusCode::OK, &text),
            Err((status, text)) => message(&user, status, &text),
        };
    }
    let result = change(
        &app,
        &user,
        Change {
            who: &who,
            rule_id: &request.rule_id,
            version: request.version,
            what,
            items,
        },
    )
    .await;
    match result {
        Ok(text) => message(&user, StatusCode::OK, &text),
        Err((status, text)) => message(&user, status, &text),
    }
}

async fn reject(
    app: &App,
    user: &User,
    who: &Provenance,
    request: &HistoryEntry,
    what: &str,
) -> Result<String, (StatusCode, String)> {
    let action = audit::Action {
        outcome: crate::event::DecisionOutcome::RulePublished,
        customer_id: "",
        rule_id: &request.rule_id,
        rule_version: request.version,
        ruleset_version: 0,
        what: format!("{what}: {}", who.comment),
    };
    if let Err(e) = app.audit.record(user, action).await {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Nothing was changed: the audit record could not be written ({e})."),
        ));
    }
    let client = crate::source::client_config(&app.kafka);
    publish::record(&client, &app.history_topic, &request.key, who)
        .await
        .map_err(|e| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The rejection could not be recorded ({e}); try again."),
            )
        })?;
    Ok(format!("Request #{} rejected.", request.seq))
}
