//! `rules check`, `rules publish`, `rules promote` and `rules drop`: validate documents the way a
//! running instance will, and write them to the rules topic.

use crate::features::FeatureSet;
use crate::rules::book::{challenger_key, RuleBook};
use crate::rules::document::{Format, RuleDocument, RuleState};
use crate::rules::edit::restate;
use crate::rules::history::{Action, HistoryEntry, Provenance};
use crate::rules::{load, problems, RuleError};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::path::Path;
use std::time::Duration;

/// A document that passed every check, with its text as written.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The parsed document.
    pub doc: RuleDocument,
    /// The text as written (what `publish` sends, so the topic holds the author's document).
    pub text: String,
    /// Where it came from.
    pub path: String,
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = &self.doc;
        write!(
            f,
            "ok  {} v{} ({}, {}; triggers {}) {}",
            d.id,
            d.version,
            if d.is_offer() { "offer" } else { "alert" },
            format!("{:?}", d.state).to_lowercase(),
            d.triggers.join(", "),
            self.path
        )
    }
}

/// Reads, parses and compiles every document under `path` against `features`: all the good
/// ones, or every problem of every document (with rule id, file, and line and column).
pub fn check(path: &Path, features: &FeatureSet) -> Result<Vec<Checked>, Vec<RuleError>> {
    let files = load::files(path).map_err(|e| vec![e])?;
    if files.is_empty() {
        return Err(vec![RuleError {
            rule_id: path.display().to_string(),
            reason: "no rule documents (*.toml, *.yaml, *.yml) here".into(),
        }]);
    }
    let mut good: Vec<Checked> = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        let shown = file.display().to_string();
        let (text, format) = match load::read_text(&file) {
            Ok(read) => read,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let findings = problems::find(&text, format, features);
        let rule_id = findings.id.clone().unwrap_or_else(|| shown.clone());
        match findings.into_result() {
            Err(problems) => errors.extend(problems.into_iter().map(|p| RuleError {
                rule_id: rule_id.clone(),
                reason: format!("{p} (in {shown})"),
            })),
            Ok(doc) => match good.iter().find(|c| c.doc.id == doc.id) {
                Some(first) => errors.push(RuleError {
                    rule_id: doc.id.clone(),
                    reason: format!("defined twice: in {} and in {shown}", first.path),
                }),
                None => good.push(Checked {
                    doc,
                    text,
                    path: shown,
                }),
            },
        }
    }
    if errors.is_empty() {
        Ok(good)
    } else {
        Err(errors)
    }
}

/// What to write to the rules topic.
#[derive(Debug, Clone)]
pub enum Publication {
    /// A document (key = its id, or `<id>@shadow` for a shadow version; value = its text).
    Document(Box<Checked>),
    /// A delete (key as given: a rule id deletes the version in force, `<id>@shadow` the
    /// challenger; empty value).
    Delete(String),
}

/// What promoting rule `id`'s challenger publishes: the challenger's text as written, in state
/// active, under the rule id (which retires the challenger and the old version in force), then
/// the challenger key's tombstone so compaction forgets it.
pub fn promotion(book: &RuleBook, id: &str) -> Result<Vec<Publication>, RuleError> {
    let fail = |reason: String| RuleError {
        rule_id: id.to_string(),
        reason,
    };
    let challenger = book
        .versions(id)
        .and_then(|v| v.challenger.as_ref())
        .ok_or_else(|| fail("has no challenger (a shadow version) to promote".into()))?;
    let (doc, text) = restate(
        &challenger.text,
        Format::guess(&challenger.text),
        RuleState::Active,
        None,
    )
    .map_err(fail)?;
    Ok(vec![
        Publication::Document(Box::new(Checked {
            doc,
            text,
            path: format!("promotion of {id} v{}", challenger.doc.version),
        })),
        Publication::Delete(challenger_key(id)),
    ])
}

/// What dropping rule `id`'s challenger publishes: the challenger key's tombstone (the version in
/// force keeps running).
pub fn drop_challenger(book: &RuleBook, id: &str) -> Result<Vec<Publication>, RuleError> {
    if book
        .versions(id)
        .and_then(|v| v.challenger.as_ref())
        .is_none()
    {
        return Err(RuleError {
            rule_id: id.to_string(),
            reason: "has no challenger (a shadow version) to drop".into(),
        });
    }
    Ok(vec![Publication::Delete(challenger_key(id))])
}

/// Where publications go: the rules topic and its history.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The compacted rules topic the instances follow.
    pub rules: &'a str,
    /// The history topic ([`crate::rules::history`]).
    pub history: &'a str,
}

/// Writes each publication to the rules topic, each preceded by its history entry (who, when,
/// why, the text), and waits for every acknowledgement; returns (key, partition, offset) of each
/// rules record, in order. A history entry that is not acknowledged stops the publish before its
/// change is written. The producer is idempotent with acks=all, so a retried publish cannot
/// reorder or duplicate a rule's versions.
pub async fn publish(
    client: &ClientConfig,
    to: Destination<'_>,
    items: &[Publication],
    who: &Provenance,
) -> Result<Vec<(String, i32, i64)>, rdkafka::error::KafkaError> {
    let mut config = client.clone();
    config.set("enable.idempotence", "true").set("acks", "all");
    let producer: FutureProducer = config.create()?;
    let mut out = Vec::new();
    for item in items {
        let (key, value): (String, &[u8]) = match item {
            Publication::Document(c) => (crate::rules::book::key_of(&c.doc), c.text.as_bytes()),
            Publication::Delete(key) => (key.clone(), &[]),
        };
        let entry = HistoryEntry::new(
            &key,
            std::str::from_utf8(value).unwrap_or_default(),
            who,
            crate::clock::now_ms(),
        );
        let json = serde_json::to_vec(&entry).unwrap_or_default();
        producer
            .send(
                FutureRecord::<str, [u8]>::to(to.history)
                    .key(&entry.rule_id)
                    .payload(&json),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)?;
        let mut record = FutureRecord::<str, [u8]>::to(to.rules).key(&key);
        if !value.is_empty() {
            record = record.payload(value);
        }
        let delivery = producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)?;
        out.push((key, delivery.partition, delivery.offset));
    }
    Ok(out)
}

/// Writes one history entry (keyed by its rule id) through an idempotent acks=all producer and
/// waits for the acknowledgement; returns its offset in the history topic.
async fn write_entry(
    client: &ClientConfig,
    history: &str,
    entry: &HistoryEntry,
) -> Result<i64, rdkafka::error::KafkaError> {
    let mut config = client.clone();
    config.set("enable.idempotence", "true").set("acks", "all");
    let producer: FutureProducer = config.create()?;
    let json = serde_json::to_vec(entry).unwrap_or_default();
    producer
        .send(
            FutureRecord::<str, [u8]>::to(history)
                .key(&entry.rule_id)
                .payload(&json),
            Duration::from_secs(30),
        )
        .await
        .map(|d| d.offset)
        .map_err(|(e, _)| e)
}

/// Holds a change for a second publisher's approval (four-eyes): one request entry in the history
/// topic, nothing on the rules topic. `item` is the change's document or deletion (a promotion's
/// document; its challenger tombstone is added when it is approved, see [`approval`]);
/// `version` the version it is about (for a deletion, the version it removes, so an approval
/// can refuse when that has changed). Returns the request's history offset.
pub async fn request(
    client: &ClientConfig,
    history: &str,
    item: &Publication,
    version: i32,
    who: &Provenance,
) -> Result<i64, rdkafka::error::KafkaError> {
    let (key, text) = match item {
        Publication::Document(c) => (crate::rules::book::key_of(&c.doc), c.text.as_str()),
        Publication::Delete(key) => (key.clone(), ""),
    };
    let mut entry = HistoryEntry::request(&key, text, who, crate::clock::now_ms());
    entry.version = version;
    write_entry(client, history, &entry).await
}

/// Writes one history entry for `key` with no change to the rules topic (a rejection).
pub async fn record(
    client: &ClientConfig,
    history: &str,
    key: &str,
    who: &Provenance,
) -> Result<i64, rdkafka::error::KafkaError> {
    let entry = HistoryEntry::new(key, "", who, crate::clock::now_ms());
    write_entry(client, history, &entry).await
}

/// What approving `request` publishes, checked against the rules in force now: its document
/// (refused when it is already in force, or no longer raises the version), or the tombstone of
/// its key; a requested promotion also empties the challenger's key. A promotion or a drop is
/// refused when the challenger in force is no longer the version requested.
pub fn approval(request: &HistoryEntry, book: &RuleBook) -> Result<Vec<Publication>, RuleError> {
    let fail = |reason: String| RuleError {
        rule_id: request.rule_id.clone(),
        reason,
    };
    let challenger = book
        .versions(&request.rule_id)
        .and_then(|v| v.challenger.as_ref())
        .map(|c| c.doc.version);
    let requested = request.requested.unwrap_or(Action::Publish);
    if matches!(requested, Action::Promote | Action::Drop) && challenger != Some(request.version) {
        return Err(fail(format!(
            "the request was about challenger v{}; the challenger in force is {}",
            request.version,
            challenger.map_or("none".into(), |v| format!("v{v}"))
        )));
    }
    if request.text.is_empty() {
        return Ok(vec![Publication::Delete(request.key.clone())]);
    }
    let doc = RuleDocument::parse_guessing(&request.text).map_err(|e| fail(e.message))?;
    let slot = crate::rules::book::parse_key(&crate::rules::book::key_of(&doc)).1;
    let in_force = book.versions(&doc.id).and_then(|v| match slot {
        crate::rules::book::Slot::Champion => v.champion.as_ref(),
        crate::rules::book::Slot::Challenger => v.challenger.as_ref(),
    });
    if in_force.is_some_and(|e| e.doc == doc) {
        return Err(fail("this version is already in force".into()));
    }
    book.admits(&doc)?;
    let mut items = vec![Publication::Document(Box::new(Checked {
        doc,
        text: request.text.clone(),
        path: format!("request #{}", request.seq),
    }))];
    if requested == Action::Promote {
        items.push(Publication::Delete(challenger_key(&request.rule_id)));
    }
    Ok(items)
}

/// Reads the whole history topic through `consumer` (assigned, not in a group), oldest first;
/// records that are not history entries are skipped with a warning.
pub async fn read_history(
    consumer: &rdkafka::consumer::StreamConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<HistoryEntry>, super::watch::WatchError> {
    use rdkafka::Message;
    let mut entries = Vec::new();
    super::watch::read_to_end(consumer, topic, timeout, |m| {
        match serde_json::from_slice::<HistoryEntry>(m.payload().unwrap_or_default()) {
            Ok(mut e) => {
                e.seq = m.offset();
                entries.push(e);
            }
            Err(e) => tracing::warn!(topic, offset = m.offset(), error = %e, "not a rule history entry; skipped"),
        }
    })
    .await?;
    entries.sort_by_key(|e| e.seq);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reports_rule_id_file_and_position() {
        let features = crate::features::spec::load(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let good = load::STARTER[0].1;
        std::fs::write(dir.path().join("good.toml"), good).unwrap();
        let bad = load::STARTER[1]
            .1
            .replace("features.max_balance_30d", "features.max_balanse_30d")
            .replace("cooldown = \"60d\"", "cooldown = \"soon\"");
        std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
        let errors = check(dir.path(), &features).unwrap_err();
        assert_eq!(errors.len(), 2, "every problem of the file: {errors:?}");
        let text = errors[0].to_string();
        assert!(
            text.starts_with("rule offer-wealth-high-balance: line 6, column 14")
                && text.contains(": condition: unknown feature `max_balanse_30d`"),
            "{text}"
        );
        assert!(text.ends_with("bad.toml)"), "{text}");
        let text = errors[1].to_string();
        assert!(
            text.starts_with("rule offer-wealth-high-balance: line 13, column 1: offer.cooldown"),
            "{text}"
        );
        std::fs::remove_file(dir.path().join("bad.toml")).unwrap();
        let ok = check(dir.path(), &features).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].text, good, "the author's text is what gets published");
        assert!(ok[0]
            .to_string()
            .starts_with("ok  offer-credit-card-heavy-debit v1 (offer"));
    }
}
