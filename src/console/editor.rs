//! The rule editor's checks: a document edited in the browser is checked as `rules check` and a
//! running instance check it (parse, compile against the feature set, a version above the one in
//! force), and every problem found in one pass is placed at a line and column of the document as
//! typed ([`crate::rules::problems`]). The page is a plain form; `editor.js`, when it runs, adds
//! line numbers beside the text, marks the lines with problems and moves the caret to a problem
//! when its report line is clicked.

use crate::features::FeatureSet;
use crate::rules::book::RuleBook;
use crate::rules::document::{Format, RuleDocument, RuleState};
pub use crate::rules::problems::Problem;

/// Checks `text` against `features` and the rules in force in `book`: the parsed document, or
/// every problem found, in the order of the text.
pub fn check(
    text: &str,
    features: &FeatureSet,
    book: &RuleBook,
) -> Result<RuleDocument, Vec<Problem>> {
    let mut found = crate::rules::problems::find(text, Format::guess(text), features);
    let in_force = found.id.as_deref().and_then(|id| book.document(id));
    if let (Some(old), Some(version)) = (in_force, found.version) {
        if version <= old.version && found.doc.as_ref() != Some(old) {
            found.problems.push(Problem::at(
                crate::rules::problems::locate(text, "version"),
                format!(
                    "version {version} does not replace version {} in force: raise the version",
                    old.version
                ),
            ));
        }
    }
    found.into_result()
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
    let problem_lines = match &report {
        Report::Problems(problems) => problems
            .iter()
            .filter_map(|p| p.line.map(|l| l.to_string()))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
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
            let items: String = problems.iter().map(problem_item).collect();
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
         <div class=\"editor-area\"><textarea name=\"document\" id=\"document\" rows=\"24\" \
         spellcheck=\"false\" data-problem-lines=\"{problem_lines}\">\n{text}</textarea></div>\
         <p><button id=\"check\">Check</button> {backtest} {publish}</p></form>{extra}\
         <p class=\"muted\">Checked as <code>nbo-stream rules check</code> and a running instance check it: \
         the document parses, the condition compiles against the features, and the version is above the one in force. \
         Publishing writes the document to the rules topic; every instance applies it, and the audit records who published it.</p>\
         <script src=\"/assets/editor.js\"></script>",
        csrf = esc(&user.csrf),
        text = esc(text),
    );
    super::pages::layout("Edit rule", user, "/rules", &body)
}

/// One reported problem; one with a line links to it (`editor.js` moves the caret there).
fn problem_item(p: &Problem) -> String {
    let text = super::pages::esc(&p.to_string());
    match p.line {
        Some(line) => format!(
            "<li><a href=\"#document\" class=\"goto\" data-line=\"{line}\" data-column=\"{}\">{text}</a></li>",
            p.column.unwrap_or(1)
        ),
        None => format!("<li>{text}</li>"),
    }
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
    fn every_problem_is_listed_with_a_version_not_above_the_one_in_force() {
        let (features, _) = book();
        let (_, starter) = crate::rules::load::STARTER[0];
        let in_force = RuleDocument::parse_guessing(starter).unwrap();
        let book = RuleBook::new(features.clone(), std::slice::from_ref(&in_force)).unwrap();
        let text = format!(
            "id = \"{}\"\nversion = {}\ndescription = \"d\"\ntriggers = [\"TransactionEvent\"]\n\
             condition = '''\nfeatures.spend_24hh > 3.0\n  && features.debit_spend_30d > 1.0\n'''\n\
             [alert]\nkind = \"FRAUD\"\nseverity = \"LOW\"\ncooldown = \"soon\"\n",
            in_force.id, in_force.version
        );
        let problems = check(&text, &features, &book).unwrap_err();
        let lines: Vec<Option<usize>> = problems.iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            [Some(2), Some(6), Some(7), Some(12)],
            "{problems:#?}"
        );
        assert!(problems[0].message.contains("does not replace version"));
        assert!(problems[1].message.contains("spend_24hh"));
        assert!(problems[2].message.contains("debit_spend_30d"));
        assert!(problems[3].message.contains("alert.cooldown"));
        let user = crate::console::auth::User {
            name: "ana".into(),
            role: crate::config::console::Role::Analyst,
            csrf: "t".into(),
        };
        let html = page(&user, &text, Report::Problems(&problems), &[], "", "");
        assert!(html.contains("data-problem-lines=\"2 6 7 12\""), "{html}");
        assert!(
            html.contains("class=\"goto\" data-line=\"7\" data-column=\"6\""),
            "{html}"
        );
    }

    #[test]
    fn a_syntax_error_has_its_line_and_column() {
        let (features, book) = book();
        let problems = check("id = \"r\"\nversion = = 1\n", &features, &book).unwrap_err();
        assert_eq!(problems[0].line, Some(2), "{problems:?}");
        assert!(problems[0].column.is_some());
    }
}
