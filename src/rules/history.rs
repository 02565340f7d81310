//! Every published rule version, kept: the history topic (`bank.rules-history.v1`, never
//! compacted, kept forever) holds one [`HistoryEntry`] per record written to the rules topic,
//! with who wrote it, when, their comment and the document text as written. The rules topic is
//! compacted and holds only what is in force; the history is what `rules history`, `rules diff`
//! and `rules rollback` (and the console's versions page) read.
//!
//! An entry is written, and acknowledged, before its rules record: a change the history does not
//! hold never reaches the instances. A crash between the two leaves an entry whose change was not
//! published (its `version` is then missing from the rules topic); publishing again writes a
//! second entry.

use super::book::{parse_key, RuleBook, Slot};
use super::document::{AlertSpec, Format, OfferSpec, RuleDocument, RuleState};
use super::edit::{restate, state_name};
use super::RuleError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a change did, as the history names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A document published (by `rules publish` or the editor).
    Publish,
    /// A challenger made the version in force.
    Promote,
    /// A challenger dropped.
    Drop,
    /// A rule deleted.
    Delete,
    /// An earlier version published again as a new one.
    Rollback,
    /// A change held for a second publisher's approval (four-eyes; `requested` says which).
    Request,
    /// A request turned down by a second publisher (`approves` names it).
    Reject,
}

impl Action {
    /// The action's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Promote => "promote",
            Action::Drop => "drop",
            Action::Delete => "delete",
            Action::Rollback => "rollback",
            Action::Request => "request",
            Action::Reject => "reject",
        }
    }
}

/// Who publishes and why: every change carries it into the history.
#[derive(Debug, Clone)]
pub struct Provenance {
    /// Who (a console user, or `--author` / the OS user for the CLI).
    pub author: String,
    /// Why, in their words (required).
    pub comment: String,
    /// What kind of change.
    pub action: Action,
    /// The request (its history `seq`) this change approves or rejects, under four-eyes.
    pub approves: Option<i64>,
}

impl Provenance {
    /// A provenance, refused without a comment.
    pub fn new(author: &str, comment: &str, action: Action) -> Result<Self, String> {
        let comment = comment.trim();
        if comment.is_empty() {
            return Err("a comment saying why is required for every rule change".into());
        }
        if comment.len() > 2_000 || author.len() > 256 {
            return Err("the comment is limited to 2,000 bytes and the author to 256".into());
        }
        if author.chars().any(char::is_control) || author.trim().is_empty() {
            return Err("the author must be a name without control characters".into());
        }
        Ok(Self {
            author: author.to_string(),
            comment: comment.to_string(),
            action,
            approves: None,
        })
    }
}

/// One record of the history topic (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The rule id.
    pub rule_id: String,
    /// The rules-topic key written (the rule id, or `<id>@shadow` for a challenger).
    pub key: String,
    /// The document's version (0 for a delete).
    pub version: i32,
    /// The document's state (none for a delete).
    pub state: Option<RuleState>,
    /// What kind of change.
    pub action: Action,
    /// The document as written (empty for a delete).
    pub text: String,
    /// Who.
    pub author: String,
    /// Why.
    pub comment: String,
    /// When (UTC ms).
    pub at: i64,
    /// Position in the history topic (set when read; its offset).
    #[serde(default)]
    pub seq: i64,
    /// For a request: the change asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<Action>,
    /// For an approved change or a rejection: the request's `seq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approves: Option<i64>,
}

impl HistoryEntry {
    /// The entry for writing `text` (empty: a delete) under `key`.
    pub fn new(key: &str, text: &str, who: &Provenance, at: i64) -> Self {
        let doc = RuleDocument::parse_guessing(text).ok();
        Self {
            rule_id: parse_key(key).0.to_string(),
            key: key.to_string(),
            version: doc.as_ref().map_or(0, |d| d.version),
            state: doc.as_ref().map(|d| d.state),
            // A published tombstone is a deletion.
            action: match who.action {
                Action::Publish if text.is_empty() => Action::Delete,
                action => action,
            },
            text: text.to_string(),
            author: who.author.clone(),
            comment: who.comment.clone(),
            at,
            seq: 0,
            requested: None,
            approves: who.approves,
        }
    }

    /// A request for `action` (writing `text` under `key`; empty: emptying it), held for a
    /// second publisher's approval.
    pub fn request(key: &str, text: &str, who: &Provenance, at: i64) -> Self {
        Self {
            action: Action::Request,
            requested: Some(who.action),
            ..Self::new(key, text, who, at)
        }
    }

    /// The entry's document, when it carries one.
    pub fn document(&self) -> Option<RuleDocument> {
        RuleDocument::parse_guessing(&self.text).ok()
    }

    /// One line for `rules history`.
    pub fn line(&self) -> String {
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(self.at.max(0) as u64),
        );
        let what = match self.state {
            Some(s) => format!("v{} {}", self.version, state_name(s)),
            None => format!("{} emptied", self.key),
        };
        format!(
            "#{:<5} {when}  {:<36} {:<20} {:<9} {}: {}",
            self.seq,
            self.rule_id,
            what,
            self.action.as_str(),
            self.author,
            self.comment
        )
    }
}

/// The history of rule `id` (every rule when `None`), oldest first.
pub fn of_rule<'a>(
    entries: &'a [HistoryEntry],
    id: Option<&'a str>,
) -> impl Iterator<Item = &'a HistoryEntry> {
    entries
        .iter()
        .filter(move |e| id.is_none_or(|id| e.rule_id == id))
}

/// The rules a process starts with (files or the starter set), with their text: the versions
/// before the history's first change of a rule.
pub type Files = [(RuleDocument, String)];

/// The text of version `version` of rule `id`: as last published (the history), else as the
/// rule files hold it.
pub fn text_of<'a>(
    entries: &'a [HistoryEntry],
    files: &'a Files,
    id: &str,
    version: i32,
) -> Option<&'a str> {
    entries
        .iter()
        .rev()
        .find(|e| {
            e.rule_id == id
                && e.version == version
                && !e.text.is_empty()
                && e.action != Action::Request
        })
        .map(|e| e.text.as_str())
        .or_else(|| {
            files
                .iter()
                .find(|(d, _)| d.id == id && d.version == version)
                .map(|(_, t)| t.as_str())
        })
}

/// The requests no later entry approves or rejects, oldest first.
pub fn pending(entries: &[HistoryEntry]) -> Vec<&HistoryEntry> {
    entries
        .iter()
        .filter(|r| {
            r.action == Action::Request && !entries.iter().any(|e| e.approves == Some(r.seq))
        })
        .collect()
}

/// The versions of rule `id` whose text is known (history and files), ascending.
pub fn versions_of(entries: &[HistoryEntry], files: &Files, id: &str) -> Vec<i32> {
    let mut v: Vec<i32> = entries
        .iter()
        .filter(|e| e.rule_id == id && !e.text.is_empty())
        .map(|e| e.version)
        .chain(
            files
                .iter()
                .filter(|(d, _)| d.id == id)
                .map(|(d, _)| d.version),
        )
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// One field that differs between two versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    /// The field (`condition`, `alert.cooldown`, `offer.propensity.weights.x`, ...).
    pub field: String,
    /// Its value in the first version ("–" when absent).
    pub from: String,
    /// Its value in the second.
    pub to: String,
}

/// A duration as an author writes it: whole days, hours, minutes or seconds where exact.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, secs) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= secs && s.is_multiple_of(secs) {
            return format!("{}{unit}", s / secs);
        }
    }
    format!("{s}s")
}

fn fields(doc: &RuleDocument) -> Vec<(String, String)> {
    let mut out = vec![
        ("state".to_string(), state_name(doc.state).to_string()),
        ("description".into(), doc.description.trim().to_string()),
        ("triggers".into(), doc.triggers.join(", ")),
        ("condition".into(), doc.condition.trim().to_string()),
    ];
    if let Some(OfferSpec {
        offer_code,
        product,
        value,
        weight,
        channels,
        cooldown,
        validity,
        propensity,
    }) = &doc.offer
    {
        out.extend([
            ("offer.offer_code".into(), offer_code.clone()),
            ("offer.product".into(), product.as_str().to_string()),
            ("offer.value".into(), value.to_string()),
            ("offer.weight".into(), weight.to_string()),
            (
                "offer.channels".into(),
                channels
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ("offer.cooldown".into(), short(*cooldown)),
            (
                "offer.validity".into(),
                validity.map_or("default".into(), short),
            ),
            (
                "offer.propensity.intercept".into(),
                propensity.intercept.to_string(),
            ),
        ]);
        for (name, w) in &propensity.weights {
            out.push((format!("offer.propensity.weights.{name}"), w.to_string()));
        }
        if let Some(evidence) = propensity.evidence {
            out.push(("offer.propensity.evidence".into(), evidence.to_string()));
        }
        if let Some(segment) = &propensity.segment {
            out.push(("offer.propensity.segment".into(), segment.clone()));
        }
    }
    if let Some(AlertSpec {
        kind,
        severity,
        cooldown,
    }) = &doc.alert
    {
        out.extend([
            ("alert.kind".into(), kind.as_str().to_string()),
            ("alert.severity".into(), severity.as_str().to_string()),
            ("alert.cooldown".into(), short(*cooldown)),
        ]);
    }
    out
}

/// The fields that differ between `a` and `b`, in document order.
pub fn diff(a: &RuleDocument, b: &RuleDocument) -> Vec<FieldChange> {
    let (fa, fb) = (fields(a), fields(b));
    let mut names: Vec<&String> = fa.iter().map(|(n, _)| n).collect();
    for (n, _) in &fb {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let get = |f: &[(String, String)], n: &str| {
        f.iter()
            .find(|(k, _)| k == n)
            .map_or("–".to_string(), |(_, v)| v.clone())
    };
    names
        .into_iter()
        .filter_map(|n| {
            let (from, to) = (get(&fa, n), get(&fb, n));
            (from != to).then(|| FieldChange {
                field: n.clone(),
                from,
                to,
            })
        })
        .collect()
}

/// The document a rollback of rule `id` to `version` publishes: that version's text as written,
/// active, under a version above every one of the rule's (in force or in the history), so it
/// replaces the version in force and retires any challenger.
pub fn rollback(
    entries: &[HistoryEntry],
    files: &Files,
    book: &RuleBook,
    id: &str,
    version: i32,
) -> Result<(RuleDocument, String), RuleError> {
    let fail = |reason: String| RuleError {
        rule_id: id.to_string(),
        reason,
    };
    let text = text_of(entries, files, id, version).ok_or_else(|| {
        fail(format!(
            "version {version} is in neither the rules history nor the rule files"
        ))
    })?;
    let newest = of_rule(entries, Some(id))
        .map(|e| e.version)
        .chain(book.versions(id).and_then(|v| v.latest()))
        .max()
        .unwrap_or(0);
    let (doc, text) = restate(
        text,
        Format::guess(text),
        RuleState::Active,
        Some(newest + 1),
    )
    .map_err(fail)?;
    book.admits(&doc)?;
    Ok((doc, text))
}

/// The slot a history entry's key wrote.
pub fn slot_of(entry: &HistoryEntry) -> Slot {
    parse_key(&entry.key).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::book::challenger_key;
    use crate::rules::load;
    use std::sync::Arc;

    fn velocity(version: i32, threshold: &str, cooldown: &str) -> String {
        load::STARTER
            .iter()
            .find(|(p, _)| p.ends_with("card-velocity.toml"))
            .unwrap()
            .1
            .replace("version = 1", &format!("version = {version}"))
            .replace(">= 8.0", threshold)
            .replace(
                "cooldown = \"1h\"",
                &format!("cooldown = \"{cooldown}\"  # kept"),
            )
    }

    fn who(action: Action) -> Provenance {
        Provenance::new("pat", "fewer false positives", action).unwrap()
    }

    #[test]
    fn a_diff_names_the_fields_that_changed_as_authors_write_them() {
        let a = RuleDocument::parse_guessing(&velocity(1, ">= 8.0", "1h")).unwrap();
        let b = RuleDocument::parse_guessing(&velocity(2, ">= 5.0", "60d")).unwrap();
        let d = diff(&a, &b);
        let names: Vec<&str> = d.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(names, ["condition", "alert.cooldown"], "{d:?}");
        assert_eq!((d[1].from.as_str(), d[1].to.as_str()), ("1h", "60d"));
        assert!(d[0].to.contains(">= 5.0"));
    }

    #[test]
    fn a_rollback_publishes_the_old_text_as_a_new_version() {
        let features = Arc::new(crate::features::spec::load(None).unwrap());
        let mut book = RuleBook::new(features, &load::documents(None).unwrap()).unwrap();
        let id = "alert-card-velocity";
        let v1 = velocity(1, ">= 8.0", "1h");
        let v2 = velocity(2, ">= 5.0", "60d");
        let mut entries = vec![
            HistoryEntry::new(id, &v1, &who(Action::Publish), 1),
            HistoryEntry::new(id, &v2, &who(Action::Publish), 2),
        ];
        book.apply(id, Some(v2.as_bytes()), 1).unwrap();
        let files = [(RuleDocument::parse_guessing(&v1).unwrap(), v1.clone())];
        let from_files = rollback(&entries[1..], &files, &book, id, 1).unwrap();
        assert_eq!(from_files.0.version, 3, "v1 from the rule files");
        let (doc, text) = rollback(&entries, &[], &book, id, 1).unwrap();
        assert_eq!((doc.version, doc.state), (3, RuleState::Active));
        assert!(
            text.contains(">= 8.0") && text.contains("cooldown = \"1h\"  # kept"),
            "{text}"
        );
        assert!(text.contains("version = 3"), "{text}");
        // A challenger v4 in the history pushes the rollback above it.
        let (_, v4) = restate(
            &v2.replace("version = 2", "version = 4"),
            Format::Toml,
            RuleState::Shadow,
            None,
        )
        .unwrap();
        entries.push(HistoryEntry::new(
            &challenger_key(id),
            &v4,
            &who(Action::Publish),
            3,
        ));
        assert_eq!(rollback(&entries, &[], &book, id, 1).unwrap().0.version, 5);
        assert!(
            rollback(&entries, &[], &book, id, 9).is_err(),
            "an unknown version"
        );
        assert!(
            Provenance::new("pat", "  ", Action::Publish).is_err(),
            "a comment is required"
        );
        assert!(Provenance::new("pat\nFAKE LOG", "x", Action::Publish).is_err());
    }
}
