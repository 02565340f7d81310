//! Every problem of a rule document's text in one pass, each placed at a line and column of the
//! text as typed: what `rules check` prints and the console's editor lists.
//!
//! A text that is not TOML (YAML) at all has one problem, where the parser stopped. Otherwise
//! every missing, unknown or mistyped field is reported (`schema.rs`), every value that is
//! not allowed, every trigger that is not an event type, every error of the condition and every
//! unknown feature of the propensity model; the condition is compiled whenever it and the
//! triggers read, even when other fields are wrong.

use super::document::{Format, RuleDocument};
use super::{compile_all, compile_condition, schema, CompileProblem};
use crate::features::FeatureSet;

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

impl Problem {
    /// A problem at `place` (line, column), when known.
    pub fn at(place: Option<(usize, usize)>, message: impl Into<String>) -> Problem {
        Problem {
            line: place.map(|p| p.0),
            column: place.map(|p| p.1),
            message: message.into(),
        }
    }

    /// A parser's message, `"line L, column C: what"` or without a place.
    fn from_parser(message: String) -> Problem {
        match located(&message) {
            Some((line, column, what)) => Problem::at(Some((line, column)), what),
            None => Problem::at(None, message),
        }
    }
}

/// What one pass over a document's text found.
#[derive(Debug, Clone)]
pub struct Findings {
    /// The document, when its fields read (it may still have problems).
    pub doc: Option<RuleDocument>,
    /// The rule id as written, when it reads (for checks against the rules in force).
    pub id: Option<String>,
    /// The version as written, when it reads.
    pub version: Option<i32>,
    /// Every problem, in the order of the text (those without a place last).
    pub problems: Vec<Problem>,
}

impl Findings {
    /// The document, or every problem.
    pub fn into_result(mut self) -> Result<RuleDocument, Vec<Problem>> {
        self.problems
            .sort_by_key(|p| (p.line.is_none(), p.line, p.column));
        match self.doc {
            Some(doc) if self.problems.is_empty() => Ok(doc),
            _ if self.problems.is_empty() => Err(vec![Problem::at(None, "not a rule document")]),
            _ => Err(self.problems),
        }
    }
}

/// Checks `text` (a document in `format`) against `features`: everything that can be checked
/// without the rules in force.
pub fn find(text: &str, format: Format, features: &FeatureSet) -> Findings {
    match RuleDocument::deserialize(text, format) {
        Ok(doc) => typed(text, doc, features),
        Err(e) => match schema::tree(text, format) {
            Some(tree) => untyped(text, &tree, e.message, features),
            None => Findings {
                doc: None,
                id: None,
                version: None,
                problems: vec![Problem::from_parser(e.message)],
            },
        },
    }
}

/// A document whose fields read: the values not allowed and what does not compile.
fn typed(text: &str, doc: RuleDocument, features: &FeatureSet) -> Findings {
    let mut problems: Vec<Problem> = doc
        .shape_problems()
        .into_iter()
        .map(|(field, message)| Problem::at(locate(text, field), message))
        .collect();
    if let Err(compiled) = compile_all(&doc, features) {
        // Neither or both of offer and alert: a shape problem already says so.
        let compiled = compiled
            .into_iter()
            .filter(|p| !matches!(p, CompileProblem::Field { field, .. } if field.is_empty()));
        problems.extend(placed(compiled, text, &doc.condition));
    }
    Findings {
        id: Some(doc.id.clone()),
        version: Some(doc.version),
        doc: Some(doc),
        problems,
    }
}

/// A document whose fields do not all read (`refused` is the typed parser's first complaint):
/// every field that is wrong, and the condition when it and the triggers read.
fn untyped(
    text: &str,
    tree: &serde_json::Value,
    refused: String,
    features: &FeatureSet,
) -> Findings {
    let wrong = schema::problems(tree);
    let mut problems: Vec<Problem> = if wrong.is_empty() {
        vec![Problem::from_parser(refused)]
    } else {
        wrong
            .into_iter()
            .map(|p| Problem::at(locate(text, &p.at), p.message))
            .collect()
    };
    let triggers = schema::read::<Vec<String>>(tree, "triggers");
    let condition = schema::read::<String>(tree, "condition");
    if let (Some(triggers), Some(condition)) = (triggers, condition) {
        let mut compiled = Vec::new();
        compile_condition(&triggers, &condition, features, &mut compiled);
        problems.extend(placed(compiled, text, &condition));
    }
    Findings {
        doc: None,
        id: schema::read(tree, "id"),
        version: schema::read(tree, "version"),
        problems,
    }
}

/// The compiler's problems, placed in `text` (whose condition is `condition`).
fn placed(
    compiled: impl IntoIterator<Item = CompileProblem>,
    text: &str,
    condition: &str,
) -> Vec<Problem> {
    compiled
        .into_iter()
        .map(|p| match p {
            CompileProblem::Field { field, message } => Problem::at(locate(text, &field), message),
            CompileProblem::Condition(e) => match in_document(text, condition, e.line, e.column) {
                Some(place) => Problem::at(Some(place), format!("condition: {}", e.message)),
                None => Problem::at(None, format!("condition, {e}")),
            },
        })
        .collect()
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

/// Where the field at `path` (`version`, `offer.cooldown`, `offer.propensity.weights.x`) is
/// written in a TOML or YAML text: the 1-based line and column of its key. Each part of the path
/// is looked for on the line of the part before it (an inline table), then on a later line that
/// starts with it (`key =`, `key:`) or a TOML header naming the path so far (`[offer]`).
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    if path.is_empty() {
        return None;
    }
    let lines: Vec<&str> = text.lines().collect();
    let parts: Vec<&str> = path.split('.').collect();
    let mut found: Option<(usize, usize)> = None; // 0-based line, byte column of the key
    for (depth, part) in parts.iter().enumerate() {
        if let Some((l, c)) = found {
            let rest = &lines[l][c..];
            if let Some(i) = key_in(rest, part, false) {
                found = Some((l, c + i));
                continue;
            }
        }
        let header = format!("[{}]", parts[..=depth].join("."));
        let from = found.map_or(0, |(l, _)| l + 1);
        let next = lines.iter().enumerate().skip(from).find_map(|(i, line)| {
            let indent = line.len() - line.trim_start().len();
            let trimmed = line.trim();
            if trimmed.replace(' ', "") == header {
                return Some((i, indent));
            }
            key_in(line.trim_start(), part, true).map(|k| (i, indent + k))
        });
        found = Some(next?);
    }
    let (line, byte) = found?;
    Some((line + 1, lines[line][..byte].chars().count() + 1))
}

/// The byte offset of `key` followed by `=` or `:` in `text` (at its start only, when
/// `at_start`; otherwise after a `{`, `,` or space, as in an inline table).
fn key_in(text: &str, key: &str, at_start: bool) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(key).map(|i| i + from) {
        let before_ok = if at_start {
            text[..i].chars().all(|c| c == '"' || c == '\'') && i <= 1
        } else {
            i == 0 || matches!(text.as_bytes()[i - 1], b'{' | b',' | b' ' | b'"' | b'\'')
        };
        let after = text[i + key.len()..].trim_start_matches(['"', '\'', ' ']);
        if before_ok && (after.starts_with('=') || after.starts_with(':')) {
            return Some(i);
        }
        if at_start {
            return None;
        }
        from = i + key.len();
    }
    None
}

#[cfg(test)]
mod tests;
