//! The rules in force and how a change from the rules topic is applied to them.
//!
//! A rule id holds up to two versions at once: the version in force (the champion: active or
//! paused) and a challenger (state shadow) that is evaluated on the same events and audited, and
//! sends nothing. The compacted topic `bank.rules.v1` keys the champion by the rule id and the
//! challenger by [`challenger_key`] (`<rule id>@shadow`), so compaction keeps both; an empty value
//! deletes what its key holds. A change is checked whole before it takes effect: the document must
//! parse, carry the key's id and the key's state, compile against the feature set, and raise the
//! version (republishing the same document is a no-op). A challenger's version is above the
//! champion's; a champion whose version reaches the challenger's retires it (that is how a
//! challenger is promoted: its document is published again as active under the rule id). A
//! rejected change leaves the rule set exactly as it was. The rule set's version is one more than
//! the topic offset of the last change applied, so every instance that has read the topic to the
//! same point reports the same version.

use super::document::{RuleDocument, RuleState};
use super::{compile, Rule, RuleError, RuleSet};
use crate::features::FeatureSet;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The suffix of a challenger's key on the rules topic.
pub const CHALLENGER_SUFFIX: &str = "@shadow";

/// The rules-topic key of rule `id`'s challenger.
pub fn challenger_key(id: &str) -> String {
    format!("{id}{CHALLENGER_SUFFIX}")
}

/// The rules-topic key a document is published under: its id, or [`challenger_key`] for a shadow
/// version.
pub fn key_of(doc: &RuleDocument) -> String {
    match doc.state {
        RuleState::Shadow => challenger_key(&doc.id),
        _ => doc.id.clone(),
    }
}

/// Which of a rule id's two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The version in force (active or paused).
    Champion,
    /// The version on trial beside it (shadow).
    Challenger,
}

impl Slot {
    /// `champion` or `challenger`, for labels and pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Champion => "champion",
            Slot::Challenger => "challenger",
        }
    }
}

/// Splits a rules-topic key into the rule id and the slot it names.
pub fn parse_key(key: &str) -> (&str, Slot) {
    match key.strip_suffix(CHALLENGER_SUFFIX) {
        Some(id) => (id, Slot::Challenger),
        None => (key, Slot::Champion),
    }
}

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A version was installed in a slot.
    Installed {
        /// Rule id.
        id: String,
        /// Its new version.
        version: i32,
        /// Champion or challenger.
        slot: Slot,
        /// The challenger this champion retired (its version), if any.
        retired: Option<i32>,
    },
    /// A slot was emptied.
    Deleted {
        /// Rule id.
        id: String,
        /// Champion or challenger.
        slot: Slot,
    },
    /// Nothing changed (the same document again, or a delete of an unknown rule).
    Unchanged,
}

/// One version in force: the document, its text as written, and its compiled rule.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The parsed document.
    pub doc: RuleDocument,
    /// The text as the author wrote it (what the editor shows and a rollback republishes).
    pub text: String,
    rule: Rule,
}

/// The versions of one rule id in force.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    /// The version in force (active or paused).
    pub champion: Option<Entry>,
    /// The shadow version on trial beside it.
    pub challenger: Option<Entry>,
}

impl Versions {
    fn slot(&self, slot: Slot) -> &Option<Entry> {
        match slot {
            Slot::Champion => &self.champion,
            Slot::Challenger => &self.challenger,
        }
    }

    fn slot_mut(&mut self, slot: Slot) -> &mut Option<Entry> {
        match slot {
            Slot::Champion => &mut self.champion,
            Slot::Challenger => &mut self.challenger,
        }
    }

    /// The highest version either slot holds (a new version must be above it).
    pub fn latest(&self) -> Option<i32> {
        [&self.champion, &self.challenger]
            .into_iter()
            .flatten()
            .map(|e| e.doc.version)
            .max()
    }
}

/// The rules in force, by id, with the documents they came from.
#[derive(Debug, Clone)]
pub struct RuleBook {
    features: Arc<FeatureSet>,
    rules: BTreeMap<String, Versions>,
    version: i64,
}

impl RuleBook {
    /// A book over `features` starting with `docs` (from files or the starter set) at version 0;
    /// a shadow document becomes its id's challenger. Their text is kept as TOML; see
    /// [`RuleBook::from_sources`] to keep the authors' text.
    pub fn new(features: Arc<FeatureSet>, docs: &[RuleDocument]) -> Result<Self, Vec<RuleError>> {
        let sources: Vec<(RuleDocument, String)> =
            docs.iter().map(|d| (d.clone(), d.to_toml())).collect();
        Self::from_sources(features, &sources)
    }

    /// As [`RuleBook::new`], with each document's text as its author wrote it
    /// ([`super::load::sources`]).
    pub fn from_sources(
        features: Arc<FeatureSet>,
        sources: &[(RuleDocument, String)],
    ) -> Result<Self, Vec<RuleError>> {
        let mut book = Self {
            features,
            rules: BTreeMap::new(),
            version: 0,
        };
        let mut errors = Vec::new();
        for (doc, text) in sources {
            match compile(doc, &book.features) {
                Ok(rule) => {
                    let slot = match doc.state {
                        RuleState::Shadow => Slot::Challenger,
                        _ => Slot::Champion,
                    };
                    *book.rules.entry(doc.id.clone()).or_default().slot_mut(slot) = Some(Entry {
                        doc: doc.clone(),
                        text: text.clone(),
                        rule,
                    });
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(book)
    }

    /// The rule set in force: every champion and every challenger.
    pub fn rule_set(&self) -> RuleSet {
        RuleSet::new(
            self.version,
            self.entries()
                .map(|(_, e)| e.rule.clone())
                .collect::<Vec<_>>(),
        )
    }

    /// Version of the rule set in force.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Every version in force with its slot, by rule id (champion first).
    pub fn entries(&self) -> impl Iterator<Item = (Slot, &Entry)> {
        self.rules.values().flat_map(|v| {
            v.champion
                .iter()
                .map(|e| (Slot::Champion, e))
                .chain(v.challenger.iter().map(|e| (Slot::Challenger, e)))
        })
    }

    /// Every document in force (champions and challengers), by rule id.
    pub fn documents(&self) -> impl Iterator<Item = &RuleDocument> {
        self.entries().map(|(_, e)| &e.doc)
    }

    /// The rule ids in force.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.keys().map(String::as_str)
    }

    /// The versions of rule `id` in force.
    pub fn versions(&self, id: &str) -> Option<&Versions> {
        self.rules.get(id)
    }

    /// The document of rule `id` the editor starts from: the challenger when there is one (the
    /// newest text), else the champion.
    pub fn document(&self, id: &str) -> Option<&RuleDocument> {
        self.newest(id).map(|e| &e.doc)
    }

    /// The newest version of rule `id` in force (the challenger, else the champion).
    pub fn newest(&self, id: &str) -> Option<&Entry> {
        let v = self.rules.get(id)?;
        v.challenger.as_ref().or(v.champion.as_ref())
    }

    /// Checks that `doc` may be published as [`RuleBook::apply`] will take it: it compiles, and
    /// its version is above the champion's (for a champion) or above every version in force
    /// (for a challenger), unless it is the same document again.
    pub fn admits(&self, doc: &RuleDocument) -> Result<(), RuleError> {
        compile(doc, &self.features)?;
        let slot = match doc.state {
            RuleState::Shadow => Slot::Challenger,
            _ => Slot::Champion,
        };
        if let Some(v) = self.rules.get(&doc.id) {
            if v.slot(slot).as_ref().is_some_and(|e| e.doc == *doc) {
                return Ok(());
            }
            let floor = match slot {
                Slot::Champion => v.champion.as_ref().map(|e| e.doc.version),
                Slot::Challenger => v.latest(),
            };
            if let Some(floor) = floor.filter(|f| doc.version <= *f) {
                return Err(RuleError {
                    rule_id: doc.id.clone(),
                    reason: format!(
                        "version {} does not replace version {floor} in force: raise the version",
                        doc.version
                    ),
                });
            }
        }
        Ok(())
    }

    /// Applies the record at `offset` of the rules topic: `key` is the rule id (the champion) or
    /// [`challenger_key`], `value` the document text, or `None`/empty to delete. On error nothing
    /// changes.
    pub fn apply(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        offset: i64,
    ) -> Result<Change, RuleError> {
        let (id, slot) = parse_key(key);
        let fail = |reason: String| RuleError {
            rule_id: id.to_string(),
            reason,
        };
        let change = match value.filter(|v| !v.is_empty()) {
            None => self.delete(id, slot),
            Some(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| fail("the document is not UTF-8 text".into()))?;
                let doc = RuleDocument::parse_guessing(text).map_err(|e| fail(e.message))?;
                if doc.id != id {
                    return Err(fail(format!(
                        "the document's id is {:?}; the record key must be the rule id (or <id>{CHALLENGER_SUFFIX} for a shadow version)",
                        doc.id
                    )));
                }
                match (slot, doc.state) {
                    (Slot::Challenger, RuleState::Shadow) => {}
                    (Slot::Challenger, _) => {
                        return Err(fail(format!(
                            "key {key} holds a challenger, which is in state shadow; publish the version in force under key {id}"
                        )))
                    }
                    (Slot::Champion, RuleState::Shadow) => {
                        return Err(fail(format!(
                            "a shadow version is a challenger and goes under key {} (`rules publish` and the console do this), so the version in force keeps running",
                            challenger_key(id)
                        )))
                    }
                    (Slot::Champion, _) => {}
                }
                self.install(doc, text, slot)?
            }
        };
        if change != Change::Unchanged {
            self.version = self.version.max(offset + 1);
        }
        Ok(change)
    }

    fn delete(&mut self, id: &str, slot: Slot) -> Change {
        let Some(v) = self.rules.get_mut(id) else {
            return Change::Unchanged;
        };
        if v.slot_mut(slot).take().is_none() {
            return Change::Unchanged;
        }
        if v.champion.is_none() && v.challenger.is_none() {
            self.rules.remove(id);
        }
        Change::Deleted {
            id: id.to_string(),
            slot,
        }
    }

    fn install(&mut self, doc: RuleDocument, text: &str, slot: Slot) -> Result<Change, RuleError> {
        let fail = |reason: String| RuleError {
            rule_id: doc.id.clone(),
            reason,
        };
        let existing = self.rules.get(&doc.id);
        if let Some(old) = existing.and_then(|v| v.slot(slot).as_ref()) {
            if old.doc == doc {
                return Ok(Change::Unchanged);
            }
            if doc.version <= old.doc.version {
                return Err(fail(format!(
                    "version {} does not replace version {} in force: raise the version",
                    doc.version, old.doc.version
                )));
            }
        }
        if slot == Slot::Challenger {
            if let Some(champion) = existing.and_then(|v| v.champion.as_ref()) {
                if doc.version <= champion.doc.version {
                    return Err(fail(format!(
                        "a challenger's version must be above the version in force ({}); raise the version",
                        champion.doc.version
                    )));
                }
            }
        }
        let rule = compile(&doc, &self.features)?;
        let version = doc.version;
        let id = doc.id.clone();
        let v = self.rules.entry(id.clone()).or_default();
        *v.slot_mut(slot) = Some(Entry {
            doc,
            text: text.to_string(),
            rule,
        });
        // A champion that reaches the challenger's version retires it: promoted, or superseded.
        let retired = match (slot, &v.challenger) {
            (Slot::Champion, Some(c)) if c.doc.version <= version => {
                let retired = c.doc.version;
                v.challenger = None;
                Some(retired)
            }
            _ => None,
        };
        Ok(Change::Installed {
            id,
            version,
            slot,
            retired,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::document::Format;
    use crate::rules::edit::restate;
    use crate::rules::load;

    const VELOCITY: &str = "alert-card-velocity";

    fn book() -> RuleBook {
        let features = Arc::new(crate::features::spec::load(None).unwrap());
        RuleBook::new(features, &load::documents(None).unwrap()).unwrap()
    }

    fn velocity(version: i32, threshold: &str, state: RuleState) -> String {
        let text = load::STARTER
            .iter()
            .find(|(p, _)| p.ends_with("card-velocity.toml"))
            .unwrap()
            .1
            .replace(">= 8.0", threshold);
        restate(&text, Format::Toml, state, Some(version))
            .unwrap()
            .1
    }

    fn velocity_versions(b: &RuleBook) -> Vec<(i32, RuleState)> {
        b.rule_set()
            .alerts
            .iter()
            .filter(|r| r.head.id == VELOCITY)
            .map(|r| (r.head.version, r.head.state))
            .collect()
    }

    #[test]
    fn a_new_version_replaces_the_old_and_bumps_the_set_version() {
        let mut b = book();
        assert_eq!(b.version(), 0);
        let doc = velocity(2, ">= 5.0", RuleState::Active);
        let change = b.apply(VELOCITY, Some(doc.as_bytes()), 41).unwrap();
        assert_eq!(
            change,
            Change::Installed {
                id: VELOCITY.into(),
                version: 2,
                slot: Slot::Champion,
                retired: None,
            }
        );
        assert_eq!(b.version(), 42);
        assert_eq!(velocity_versions(&b), [(2, RuleState::Active)]);
        assert_eq!(
            b.newest(VELOCITY).unwrap().text,
            doc,
            "the author's text is kept"
        );
        // The same document again changes nothing.
        assert_eq!(
            b.apply(VELOCITY, Some(doc.as_bytes()), 43),
            Ok(Change::Unchanged)
        );
        assert_eq!(b.version(), 42);
    }

    #[test]
    fn a_challenger_runs_beside_the_champion_until_promoted_or_dropped() {
        let mut b = book();
        let shadow = velocity(2, ">= 5.0", RuleState::Shadow);
        // Under the champion's key a shadow version is refused: it would switch v1 off.
        let err = b.apply(VELOCITY, Some(shadow.as_bytes()), 1).unwrap_err();
        assert!(err.reason.contains("alert-card-velocity@shadow"), "{err}");
        assert_eq!(velocity_versions(&b), [(1, RuleState::Active)]);

        let key = challenger_key(VELOCITY);
        let change = b.apply(&key, Some(shadow.as_bytes()), 2).unwrap();
        assert!(matches!(
            change,
            Change::Installed {
                version: 2,
                slot: Slot::Challenger,
                ..
            }
        ));
        assert_eq!(
            velocity_versions(&b),
            [(1, RuleState::Active), (2, RuleState::Shadow)],
            "champion and challenger side by side"
        );
        // A challenger must be newer than the champion, and in state shadow.
        let old = velocity(1, ">= 4.0", RuleState::Shadow);
        assert!(b.apply(&key, Some(old.as_bytes()), 3).is_err());
        let active = velocity(3, ">= 4.0", RuleState::Active);
        assert!(b.apply(&key, Some(active.as_bytes()), 3).is_err());

        // Dropping the challenger leaves the champion.
        let mut dropped = b.clone();
        assert_eq!(
            dropped.apply(&key, None, 4),
            Ok(Change::Deleted {
                id: VELOCITY.into(),
                slot: Slot::Challenger
            })
        );
        assert_eq!(velocity_versions(&dropped), [(1, RuleState::Active)]);

        // Promoting: the challenger's text published as active retires the challenger.
        let promoted = restate(&shadow, Format::Toml, RuleState::Active, None)
            .unwrap()
            .1;
        let change = b.apply(VELOCITY, Some(promoted.as_bytes()), 5).unwrap();
        assert_eq!(
            change,
            Change::Installed {
                id: VELOCITY.into(),
                version: 2,
                slot: Slot::Champion,
                retired: Some(2)
            }
        );
        assert_eq!(velocity_versions(&b), [(2, RuleState::Active)]);
        // The challenger's tombstone that follows a promotion changes nothing.
        assert_eq!(b.apply(&key, None, 6), Ok(Change::Unchanged));
    }

    #[test]
    fn broken_or_stale_documents_are_rejected_and_the_old_rule_stays() {
        let mut b = book();
        let before = b.document(VELOCITY).cloned();
        let cases = [
            (
                velocity(2, ">= 'eight'", RuleState::Active),
                "condition, line",
            ),
            (
                velocity(1, ">= 5.0", RuleState::Active),
                "raise the version",
            ),
            (
                velocity(2, ">= 8.0 && features.nope > 1.0", RuleState::Active),
                "nope",
            ),
            ("id = [".to_string(), "line 1"),
        ];
        for (text, expected) in cases {
            let err = b.apply(VELOCITY, Some(text.as_bytes()), 7).unwrap_err();
            assert!(err.to_string().contains(expected), "{expected:?}: {err}");
        }
        let other = velocity(2, ">= 5.0", RuleState::Active);
        let err = b
            .apply("another-id", Some(other.as_bytes()), 8)
            .unwrap_err();
        assert!(
            err.reason.contains("record key must be the rule id"),
            "{err}"
        );
        assert_eq!(b.document(VELOCITY).cloned(), before);
        assert_eq!(b.version(), 0);
    }

    #[test]
    fn an_empty_value_deletes_the_rule() {
        let mut b = book();
        let n = b.rule_set().alerts.len();
        assert_eq!(
            b.apply(VELOCITY, None, 3),
            Ok(Change::Deleted {
                id: VELOCITY.into(),
                slot: Slot::Champion
            })
        );
        assert_eq!(b.rule_set().alerts.len(), n - 1);
        assert_eq!(b.apply(VELOCITY, Some(b""), 4), Ok(Change::Unchanged));
        assert_eq!(b.version(), 4);
    }
}
