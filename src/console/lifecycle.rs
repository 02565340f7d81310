//! A rule's lifecycle from the rules page: promote its challenger (the shadow version becomes the
//! version in force and the old one retires) or drop it (the version in force keeps running).
//! Publishers only, with their CSRF token. The audit record of the change is written first; when
//! it cannot be written nothing is published, so the audit never misses a change.

use super::*;
use crate::rules::publish::{self, Publication};

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

fn message(user: &User, status: StatusCode, text: &str) -> Response {
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
    let (plan, ruleset_version) = {
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
        let plan = items.map(|items| Plan {
            items,
            version,
            what: if promote {
                "challenger promoted"
            } else {
                "challenger dropped"
            },
        });
        (plan, book.version())
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(e) => return message(&user, StatusCode::CONFLICT, &e.to_string()),
    };
    let action = audit::Action {
        outcome: crate::event::DecisionOutcome::RulePublished,
        customer_id: "",
        rule_id: &form.id,
        rule_version: plan.version,
        ruleset_version,
        what: format!("{} (v{}): {}", plan.what, plan.version, who.comment),
    };
    if let Err(e) = app.audit.record(&user, action).await {
        tracing::error!(user = %user.name, rule = %form.id, error = %e, "console: a rule change could not be audited; nothing published");
        return message(
            &user,
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "Nothing was changed: the audit record could not be written ({e}). Try again."
            ),
        );
    }
    let client = crate::source::client_config(&app.kafka);
    match publish::publish(&client, app.destination(), &plan.items, &who).await {
        Ok(_) => {
            tracing::info!(user = %user.name, rule = %form.id, version = plan.version, what = plan.what, "console: rule lifecycle");
            message(
                &user,
                StatusCode::OK,
                &format!(
                    "{} v{}: {}; the instances apply it within seconds.",
                    form.id, plan.version, plan.what
                ),
            )
        }
        Err(e) => {
            tracing::error!(user = %user.name, rule = %form.id, error = %e, "console: publishing failed");
            message(
                &user,
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("Not published: the rules topic refused it ({e}); try again."),
            )
        }
    }
}
