//! The rule editor's checks: a document edited in the browser is checked as `rules check` and a
//! running instance check it (parse, compile against the feature set, a version above the one in
//! force), and every problem is placed at a line and column of the document as typed.

use crate::features::FeatureSet;
use crate::rules::book::RuleBook;
use crate::rules::document::{Format, RuleDocument, RuleState};

/// One thing wrong with a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the document, where known.
    pub line: Option<usize>,
    /// 1-based column in that line, where known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// Splits `"line L, column C: message"` into its parts.
fn located(text: &str) -> Option<(usize, usize, &str)> {
    let rest = text.strip_prefix("line ")?;
    let (line, rest) = rest.split_once(", column ")?;
    let (column, message) = rest.split_once(": ")?;
    Some((line.parse().ok()?, column.parse().ok()?, message))
}

/// The document position of `line`/`column` of the condition, when the condition's text appears
/// verbatim in the document (a literal or multi-line literal string).
fn in_document(text: &str, condition: &str, line: usize, column: usize) -> Option<(usize, usize)> {
    if condition.is_empty() {
        return None;
    }
    let start = text.find(condition)?;
    let before = &text[..start];
    let first_line = before.matches('\n').count() + 1;
    let first_column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    if line == 1 {
        Some((first_line, first_column + column - 1))
    } else {
        Some((first_line + line - 1, column))
    }
}

/// Checks `text` against `features` and the rules in force in `book`: the parsed document, or
/// every problem found.
pub fn check(
    text: &str,
    features: &FeatureSet,
    book: &RuleBook,
) -> Result<RuleDocument, Vec<Problem>> {
    let doc = RuleDocument::parse_guessing(text).map_err(|e| {
        vec![match located(&e.message) {
            Some((line, column, message)) => Problem {
                line: Some(line),
                column: Some(column),
                message: message.to_string(),
            },
            None => Problem {
                line: None,
                column: None,
                message: e.message,
            },
        }]
    })?;
    if let Err(e) = crate::rules::compile(&doc, features) {
        let problem = match e
            .reason
            .strip_prefix("condition, ")
            .and_then(located)
            .and_then(|(l, c, m)| in_document(text, &doc.condition, l, c).map(|p| (p, m)))
        {
            Some(((line, column), message)) => Problem {
                line: Some(line),
                column: Some(column),
                message: format!("condition: {message}"),
            },
            None => Problem {
                line: None,
                column: None,
                message: e.reason,
            },
        };
        return Err(vec![problem]);
    }
    if let Some(old) = book.document(&doc.id) {
        if doc.version <= old.version && *old != doc {
            return Err(vec![Problem {
                line: text
                    .lines()
                    .position(|l| l.trim_start().starts_with("version"))
                    .map(|i| i + 1),
                column: Some(1),
                message: format!(
                    "version {} does not replace version {} in force: raise the version",
                    doc.version, old.version
                ),
            }]);
        }
    }
    Ok(doc)
}

/// The document to publish: `text` (as the author wrote it) in `state`, every other byte kept.
pub fn for_publish(text: &str, state: RuleState) -> Result<(RuleDocument, String), Problem> {
    crate::rules::edit::restate(text, Format::guess(text), state, None).map_err(|message| Problem {
        line: None,
        column: None,
        message,
    })
}

/// What the editor page reports under the document.
pub enum Report<'a> {
    /// Nothing yet (the page as opened).
    None,
    /// The document passed every check.
    Valid(&'a RuleDocument),
    /// What is wrong, each at its place.
    Problems(&'a [Problem]),
    /// Published: rule id, version, state, partition and offset on the rules topic.
    Published(String),
}

/// The editor: the document in a text area, the checks' report, and the actions the user's role
/// allows (check for analysts, publish as shadow or active for publishers).
pub fn page(
    user: &super::auth::User,
    text: &str,
    report: Report<'_>,
    recordings: &[String],
    chosen: &str,
    extra: &str,
) -> String {
    use super::pages::esc;
    use crate::config::console::Role;
    let report = match report {
        Report::None => String::new(),
        Report::Valid(d) => format!(
            "<p class=\"ok\" id=\"report\">Valid: {} v{} ({}), triggers {}.</p>",
            esc(&d.id),
            d.version,
            if d.is_offer() { "offer" } else { "alert" },
            esc(&d.triggers.join(", "))
        ),
        Report::Problems(problems) => {
            let items: String = problems
                .iter()
                .map(|p| format!("<li>{}</li>", esc(&p.to_string())))
                .collect();
            format!("<ul class=\"error\" id=\"report\">{items}</ul>")
        }
        Report::Published(what) => format!("<p class=\"ok\" id=\"report\">{}</p>", esc(&what)),
    };
    let publish = if user.can(Role::Publisher) {
        "<label>Why <input name=\"comment\" id=\"comment\" maxlength=\"2000\" size=\"40\" placeholder=\"required to publish\"></label> \
         <button formaction=\"/rules/publish\" name=\"state\" value=\"shadow\" id=\"publish-shadow\">Publish as shadow</button>\
         <button formaction=\"/rules/publish\" name=\"state\" value=\"active\" id=\"publish-active\">Publish as active</button>"
    } else {
        "<span class=\"muted\">Publishing needs the publisher role.</span>"
    };
    let backtest = if recordings.is_empty() {
        "<span class=\"muted\">No recordings folder (console.recordings) to backtest on.</span>"
            .to_string()
    } else {
        let options: String = recordings
            .iter()
            .map(|n| {
                let sel = if n == chosen { " selected" } else { "" };
                format!("<option{sel}>{}</option>", esc(n))
            })
            .collect();
        format!(
            "<label>Recording <select name=\"file\" id=\"file\">{options}</select></label> \
             <button formaction=\"/rules/backtest\" id=\"backtest-run\">Backtest</button>"
        )
    };
    let body = format!(
        "{report}<form method=\"post\" action=\"/rules/check\" class=\"editor\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <textarea name=\"document\" id=\"document\" rows=\"24\" spellcheck=\"false\">\n{text}</textarea>\
         <p><button id=\"check\">Check</button> {backtest} {publish}</p></form>{extra}\
         <p class=\"muted\">Checked as <code>nbo-stream rules check</code> and a running instance check it: \
         the document parses, the condition compiles against the features, and the version is above the one in force. \
         Publishing writes the document to the rules topic; every instance applies it, and the audit records who published it.</p>",
        csrf = esc(&user.csrf),
        text = esc(text),
    );
    super::pages::layout("Edit rule", user, "/rules", &body)
}

/// A new rule's starting text.
pub const TEMPLATE: &str = r#"id = "my-new-rule"
version = 1
state = "shadow"
description = "What the rule does, in plain words"
triggers = ["TransactionEvent"]
condition = '''
event.amount_minor >= 100000
'''

[alert]
kind = "FRAUD"
severity = "MEDIUM"
cooldown = "6h"
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn book() -> (Arc<FeatureSet>, RuleBook) {
        let features = Arc::new(crate::features::spec::load(None).unwrap());
        let book = RuleBook::new(features.clone(), &[]).unwrap();
        (features, book)
    }

    #[test]
    fn a_typo_in_the_condition_is_placed_in_the_document() {
        let (features, book) = book();
        let text = "id = \"r\"\nversion = 1\ndescription = \"d\"\ntriggers = [\"TransactionEvent\"]\ncondition = '''\nevent.amount_minor > 5\n  && features.spend_24hh > 3\n'''\n[alert]\nkind = \"FRAUD\"\nseverity = \"LOW\"\ncooldown = \"1h\"\n";
        let problems = check(text, &features, &book).unwrap_err();
        assert_eq!(problems[0].line, Some(7), "{problems:?}");
        assert_eq!(problems[0].column, Some(6), "{problems:?}");
        assert!(problems[0].message.contains("spend_24hh"), "{problems:?}");
    }

    #[test]
    fn a_syntax_error_has_its_line_and_column() {
        let (features, book) = book();
        let problems = check("id = \"r\"\nversion = = 1\n", &features, &book).unwrap_err();
        assert_eq!(problems[0].line, Some(2), "{problems:?}");
        assert!(problems[0].column.is_some());
    }
}
