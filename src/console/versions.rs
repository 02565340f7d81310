//! A rule's versions: every published change from the rules history (who, when, why, the text
//! as written), a diff of any two versions field by field, and, for publishers, a rollback that
//! publishes an earlier version's text again as a new version (audited first, like every change).

use super::*;
use crate::rules::history::{self, Action, HistoryEntry, Provenance};
use crate::rules_topic::publish::{Checked, Publication};
use pages::{esc, time};
use std::fmt::Write;

#[derive(serde::Deserialize)]
pub(super) struct VersionsQuery {
    id: String,
    from: Option<i32>,
    to: Option<i32>,
}

fn entries_of(app: &App, id: &str) -> Vec<HistoryEntry> {
    let history = app.shared.history.lock().unwrap_or_else(|p| p.into_inner());
    history
        .iter()
        .filter(|e| e.rule_id == id)
        .cloned()
        .collect()
}

/// `GET /rules/versions?id=..[&from=..&to=..]`.
pub(super) async fn page(
    State(app): State<App>,
    Signed(user, _): Signed<Viewer>,
    Query(q): Query<VersionsQuery>,
) -> Response {
    let entries = entries_of(&app, &q.id);
    let versions = history::versions_of(&entries, &app.files, &q.id);
    let id = esc(&q.id);
    let mut body = format!(
        "<p>Every change of <strong>{id}</strong> written to the rules topic, from the rules history \
         (<code>nbo-stream rules history {id}</code>). <a href=\"/rules\">Back to the rules</a></p>"
    );
    if let (Some(from), Some(to)) = (q.from, q.to) {
        body.push_str(&diff_section(&entries, &app.files, &q.id, from, to));
    }
    if versions.len() >= 2 {
        let options = |chosen: i32| -> String {
            versions
                .iter()
                .map(|v| {
                    let sel = if *v == chosen { " selected" } else { "" };
                    format!("<option value=\"{v}\"{sel}>v{v}</option>")
                })
                .collect()
        };
        let n = versions.len();
        let _ = write!(
            body,
            "<form method=\"get\" action=\"/rules/versions\" class=\"diff\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
             Compare <select name=\"from\" id=\"diff-from\">{}</select> with <select name=\"to\" id=\"diff-to\">{}</select> \
             <button id=\"diff\">Diff</button></form>",
            options(q.from.unwrap_or(versions[n - 2])),
            options(q.to.unwrap_or(versions[n - 1])),
        );
    }
    body.push_str(
        "<table class=\"versions\"><thead><tr><th>#</th><th>When</th><th>Version</th><th>Change</th>\
         <th>Who</th><th>Why</th><th>Text</th></tr></thead><tbody>",
    );
    for e in entries.iter().rev() {
        let what = match e.state {
            Some(s) => format!("v{} {}", e.version, crate::rules::edit::state_name(s)),
            None => format!("{} emptied", esc(&e.key)),
        };
        let mut text = String::new();
        if !e.text.is_empty() {
            let _ = write!(
                text,
                "<details><summary>as written</summary><pre>{}</pre></details>",
                esc(&e.text)
            );
            text.push_str(&rollback_form(&user, &q.id, e.version));
        }
        let _ = write!(
            body,
            "<tr id=\"change-{}\"><td>{}</td><td>{}</td><td>{what}</td><td>{}</td><td>{}</td><td>{}</td><td>{text}</td></tr>",
            e.seq,
            e.seq,
            time(e.at),
            e.action.as_str(),
            esc(&e.author),
            esc(&e.comment),
        );
    }
    for (doc, text) in app.files.iter().filter(|(d, _)| d.id == q.id) {
        let _ = write!(
            body,
            "<tr id=\"file-v{v}\"><td>–</td><td>start</td><td>v{v} {}</td><td>rule files</td><td>–</td><td>the version the processes start with</td>\
             <td><details><summary>as written</summary><pre>{}</pre></details>{}</td></tr>",
            crate::rules::edit::state_name(doc.state),
            esc(text),
            rollback_form(&user, &q.id, doc.version),
            v = doc.version,
        );
    }
    body.push_str("</tbody></table>");

    Html(pages::layout("Rule versions", &user, "/rules", &body)).into_response()
}

/// A publisher's rollback form for version `v` (none for other roles). Several history entries
/// may carry the same version; the form's ids are per version, so the first one shown wins.
fn rollback_form(user: &User, id: &str, v: i32) -> String {
    if !user.can(Role::Publisher) {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"/rules/rollback\" class=\"lifecycle\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"id\" value=\"{}\">\
         <input type=\"hidden\" name=\"version\" value=\"{v}\">\
         <input name=\"comment\" id=\"rollback-comment-v{v}\" required maxlength=\"2000\" placeholder=\"why\">\
         <button id=\"rollback-v{v}\">Roll back to v{v}</button></form>",
        esc(&user.csrf),
        esc(id),
    )
}

fn diff_section(
    entries: &[HistoryEntry],
    files: &history::Files,
    id: &str,
    from: i32,
    to: i32,
) -> String {
    let doc = |v: i32| {
        history::text_of(entries, files, id, v)
            .and_then(|t| crate::rules::document::RuleDocument::parse_guessing(t).ok())
    };
    let (Some(a), Some(b)) = (doc(from), doc(to)) else {
        return format!("<p class=\"error\">v{from} or v{to} is not in the rules history.</p>");
    };
    let changes = history::diff(&a, &b);
    let mut out = format!(
        "<h2>v{from} → v{to}: {} field(s) differ</h2><table class=\"diff\" id=\"diff-table\"><thead><tr>\
         <th>Field</th><th>v{from}</th><th>v{to}</th></tr></thead><tbody>",
        changes.len()
    );
    for c in changes {
        let _ = write!(
            out,
            "<tr data-field=\"{0}\"><td>{0}</td><td class=\"from\"><code>{1}</code></td><td class=\"to\"><code>{2}</code></td></tr>",
            esc(&c.field),
            esc(&c.from),
            esc(&c.to)
        );
    }
    out.push_str("</tbody></table>");
    out
}

#[derive(serde::Deserialize)]
pub(super) struct RollbackForm {
    csrf: Option<String>,
    id: String,
    version: i32,
    comment: Option<String>,
}

use super::lifecycle::message;

/// `POST /rules/rollback`: version `version`'s text published again as a new version in force.
pub(super) async fn rollback(
    State(app): State<App>,
    headers: HeaderMap,
    Form(form): Form<RollbackForm>,
) -> Response {
    let user = match require_change(&app, &headers, Role::Publisher, form.csrf.as_deref()) {
        Ok(user) => user,
        Err(denied) => return denied.into_response(),
    };
    let who = match Provenance::new(
        &user.name,
        form.comment.as_deref().unwrap_or_default(),
        Action::Rollback,
    ) {
        Ok(who) => who,
        Err(e) => return message(&user, StatusCode::UNPROCESSABLE_ENTITY, &e),
    };
    let entries = entries_of(&app, &form.id);
    let planned = {
        let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
        history::rollback(&entries, &app.files, &book, &form.id, form.version)
    };
    let (doc, text) = match planned {
        Ok(p) => p,
        Err(e) => return message(&user, StatusCode::CONFLICT, &e.to_string()),
    };
    let version = doc.version;
    let item = Publication::Document(Box::new(Checked {
        doc,
        text,
        path: format!("console:{}", user.name),
    }));
    let result = lifecycle::change(
        &app,
        &user,
        lifecycle::Change {
            who: &who,
            rule_id: &form.id,
            version,
            what: format!(
                "rolled back: v{}'s text published as v{version}",
                form.version
            ),
            items: vec![item],
        },
    )
    .await;
    match result {
        Ok(text) => message(&user, StatusCode::OK, &text),
        Err((status, text)) => message(&user, status, &text),
    }
}
