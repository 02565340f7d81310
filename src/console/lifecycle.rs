//! A rule's lifecycle from the rules page: promote its challenger (the shadow version becomes the
//! version in force and the old one retires) or drop it (the version in force keeps running).
//! Publishers only, with their CSRF token. Every console change (these, the editor's publish, a
//! rollback, an approval) goes through [`change`]: the audit record first, and when it cannot be
//! written nothing is published, so the audit never misses a change; under four-eyes
//! (`console.require_approval`) the change is held as a request for a second publisher.

use super::*;
use crate::rules::history::Provenance;
use crate::rules_topic::publish::{self, Publication};

/// One rule change from the console.
pub(super) struct Change<'a> {
    /// Who and why (and, for an approval, the request it approves).
    pub who: &'a Provenance,
    /// The rule.
    pub rule_id: &'a str,
    /// The version the change is about.
    pub version: i32,
    /// In plain words, for the audit and the page.
    pub what: String,
    /// What it writes to the rules topic.
    pub items: Vec<Publication>,
}

/// Audits `c` by `user`, then publishes it, or (under four-eyes, unless it is itself an
/// approval) holds it as a request. The page's message, or the status and message of a failure.
pub(super) async fn change(
    app: &App,
    user: &User,
    c: Change<'_>,
) -> Result<String, (StatusCode, String)> {
    let held = app.settings.console.require_approval && c.who.approves.is_none();
    let ruleset_version = app.ruleset_version();
    let action = audit::Action {
        outcome: crate::event::DecisionOutcome::RulePublished,
        customer_id: "",
        rule_id: c.rule_id,
        rule_version: c.version,
        ruleset_version,
        what: format!(
            "{}{}: {}",
            c.what,
            if held {
                " (requested; awaits a second publisher)"
            } else {
                ""
            },
            c.who.comment
        ),
    };
    if let Err(e) = app.audit.record(user, action).await {
        tracing::error!(user = %user.name, rule = c.rule_id, error = %e, "console: a rule change could not be audited; nothing published");
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Nothing was changed: the audit record could not be written ({e}). Try again."),
        ));
    }
    let client = crate::source::client_config(&app.kafka);
    if held {
        // One request per change: its document or deletion (a promotion's tombstone follows
        // from its approval).
        let Some(item) = c.items.first() else {
            return Err((StatusCode::CONFLICT, "nothing to change".into()));
        };
        return match publish::request(&client, &app.history_topic, item, c.version, c.who).await {
            Ok(seq) => {
                tracing::info!(user = %user.name, rule = c.rule_id, what = %c.what, seq, "console: rule change requested");
                Ok(format!(
                    "{} v{}: {} requested (#{seq}); it waits for a second publisher's approval on the approvals page.",
                    c.rule_id, c.version, c.what,
                ))
            }
            Err(e) => Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Not requested: the rules history refused it ({e}); try again."),
            )),
        };
    }
    match publish::publish(&client, app.destination(), &c.items, c.who).await {
        Ok(written) => {
            let (_, partition, offset) = written.first().cloned().unwrap_or_default();
            tracing::info!(user = %user.name, rule = c.rule_id, version = c.version, what = %c.what, partition, offset, "console: rule change published");
            Ok(format!(
                "{} v{}: {} (rules topic partition {partition}, offset {offset}); the instances apply it within seconds.",
                c.rule_id, c.version, c.what
            ))
        }
        Err(e) => {
            tracing::error!(user = %user.name, rule = c.rule_id, error = %e, "console: publishing failed");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Not published: the rules topic refused it ({e}); try again."),
            ))
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct LifecycleForm {
    csrf: Option<String>,
    id: String,
    comment: Option<String>,
}

/// What a lifecycle action publishes, and how it reads in the audit and on the page.
struct Plan {
    items: Vec<Publication>,
    version: i32,
    what: &'static str,
}

pub(super) async fn promote(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<LifecycleForm>,
) -> Response {
    lifecycle(app, headers, form, true).await
}

pub(super) async fn drop_challenger(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<LifecycleForm>,
) -> Response {
    lifecycle(app, headers, form, false).await
}

pub(super) fn message(user: &User, status: StatusCode, text: &str) -> Response {
    let body = format!(
        "<p class=\"report\" id=\"report\">{}</p><p><a href=\"/rules\">Back to the rules</a></p>",
        pages::esc(text)
    );
    (status, Html(pages::layout("Rules", user, "/rules", &body))).into_response()
}

async fn lifecycle(app: App, headers: HeaderMap, form: LifecycleForm, promote: bool) -> Response {
    let user = match require_change(&app, &headers, Role::Publisher, form.csrf.as_deref()) {
        Ok(user) => user,
        Err(denied) => return denied.into_response(),
    };
    let action = if promote {
        crate::rules::history::Action::Promote
    } else {
        crate::rules::history::Action::Drop
    };
    let who = match crate::rules::history::Provenance::new(
        &user.name,
        form.comment.as_deref().unwrap_or_default(),
        action,
    ) {
        Ok(who) => who,
        Err(e) => return message(&user, StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let plan = {
        let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
        let version = book
            .versions(&form.id)
            .and_then(|v| v.challenger.as_ref())
            .map_or(0, |c| c.doc.version);
        let items = if promote {
            publish::promotion(&book, &form.id)
        } else {
            publish::drop_challenger(&book, &form.id)
        };
        items.map(|items| Plan {
            items,
            version,
            what: if promote {
                "challenger promoted"
            } else {
                "challenger dropped"
            },
        })
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => return message(&user, StatusCode::CONFLICT, &e.to_string()),
    };
    let result = change(
        &app,
        &user,
        Change {
            who: &who,
            rule_id: &form.id,
            version: plan.version,
            what: plan.what.to_string(),
            items: plan.items,
        },
    )
    .await;
    match result {
        Ok(text) => message(&user, StatusCode::OK, &text),
        Err((status, text)) => message(&user, status, &text),
    }
}
