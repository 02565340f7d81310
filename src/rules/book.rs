//! The rules in force and how a change from the rules topic is applied to them.
//!
//! The compacted topic `bank.rules.v1` holds one document per rule (key = rule id; an empty value
//! deletes the rule). A change is checked whole before it takes effect: the document must parse,
//! carry the key's id, compile against the feature set, and raise the rule's version (republishing
//! the same document is a no-op). A rejected change leaves the rule set exactly as it was. The
//! rule set's version is one more than the topic offset of the last change applied, so every
//! instance that has read the topic to the same point reports the same version.

use super::document::RuleDocument;
use super::{compile, Rule, RuleError, RuleSet};
use crate::features::FeatureSet;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A rule was added or replaced by a new version.
    Installed {
        /// Rule id.
        id: String,
        /// Its new version.
        version: i32,
    },
    /// A rule was deleted.
    Deleted {
        /// Rule id.
        id: String,
    },
    /// Nothing changed (the same document again, or a delete of an unknown rule).
    Unchanged,
}

/// The rules in force, by id, with the documents they came from.
#[derive(Debug, Clone)]
pub struct RuleBook {
    features: Arc<FeatureSet>,
    rules: BTreeMap<String, (RuleDocument, Rule)>,
    version: i64,
}

impl RuleBook {
    /// A book over `features` starting with `docs` (from files or the starter set) at version 0.
    pub fn new(features: Arc<FeatureSet>, docs: &[RuleDocument]) -> Result<Self, Vec<RuleError>> {
        let mut rules = BTreeMap::new();
        let mut errors = Vec::new();
        for doc in docs {
            match compile(doc, &features) {
                Ok(rule) => {
                    rules.insert(doc.id.clone(), (doc.clone(), rule));
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            features,
            rules,
            version: 0,
        })
    }

    /// The rule set in force.
    pub fn rule_set(&self) -> RuleSet {
        RuleSet::new(self.version, self.rules.values().map(|(_, r)| r.clone()))
    }

    /// Version of the rule set in force.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Every document in force, by rule id.
    pub fn documents(&self) -> impl Iterator<Item = &RuleDocument> {
        self.rules.values().map(|(d, _)| d)
    }

    /// The document of rule `id`, if it is in force.
    pub fn document(&self, id: &str) -> Option<&RuleDocument> {
        self.rules.get(id).map(|(d, _)| d)
    }

    /// Applies the record at `offset` of the rules topic: `key` is the rule id, `value` the
    /// document text, or `None`/empty to delete. On error nothing changes.
    pub fn apply(
        &mut self,
        key: &str,
        value: Option<&[u8]>,
        offset: i64,
    ) -> Result<Change, RuleError> {
        let fail = |reason: String| RuleError {
            rule_id: key.to_string(),
            reason,
        };
        let change = match value.filter(|v| !v.is_empty()) {
            None => match self.rules.remove(key) {
                Some(_) => Change::Deleted { id: key.into() },
                None => Change::Unchanged,
            },
            Some(bytes) => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| fail("the document is not UTF-8 text".into()))?;
                let doc = RuleDocument::parse_guessing(text).map_err(|e| fail(e.message))?;
                if doc.id != key {
                    return Err(fail(format!(
                        "the document's id is {:?}; the record key must be the rule id",
                        doc.id
                    )));
                }
                if let Some((old, _)) = self.rules.get(key) {
                    if *old == doc {
                        return Ok(Change::Unchanged);
                    }
                    if doc.version <= old.version {
                        return Err(fail(format!(
                            "version {} does not replace version {} in force: raise the version",
                            doc.version, old.version
                        )));
                    }
                }
                let rule = compile(&doc, &self.features)?;
                let version = doc.version;
                self.rules.insert(key.to_string(), (doc, rule));
                Change::Installed {
                    id: key.into(),
                    version,
                }
            }
        };
        if change != Change::Unchanged {
            self.version = self.version.max(offset + 1);
        }
        Ok(change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::load;

    fn book() -> RuleBook {
        let features = Arc::new(crate::features::spec::load(None).unwrap());
        RuleBook::new(features, &load::documents(None).unwrap()).unwrap()
    }

    fn velocity(version: i32, threshold: &str) -> String {
        load::STARTER
            .iter()
            .find(|(p, _)| p.ends_with("card-velocity.toml"))
            .unwrap()
            .1
            .replace("version = 1", &format!("version = {version}"))
            .replace(">= 8.0", threshold)
    }

    #[test]
    fn a_new_version_replaces_the_old_and_bumps_the_set_version() {
        let mut b = book();
        assert_eq!(b.version(), 0);
        let doc = velocity(2, ">= 5.0");
        let change = b
            .apply("alert-card-velocity", Some(doc.as_bytes()), 41)
            .unwrap();
        assert_eq!(
            change,
            Change::Installed {
                id: "alert-card-velocity".into(),
                version: 2
            }
        );
        assert_eq!(b.version(), 42);
        let set = b.rule_set();
        let rule = set
            .alerts
            .iter()
            .find(|r| r.head.id == "alert-card-velocity")
            .unwrap();
        assert_eq!(rule.head.version, 2);
        // The same document again changes nothing.
        assert_eq!(
            b.apply("alert-card-velocity", Some(doc.as_bytes()), 43),
            Ok(Change::Unchanged)
        );
        assert_eq!(b.version(), 42);
    }

    #[test]
    fn broken_or_stale_documents_are_rejected_and_the_old_rule_stays() {
        let mut b = book();
        let before = b.document("alert-card-velocity").cloned();
        let cases = [
            (velocity(2, ">= 'eight'"), "condition, line"),
            (velocity(1, ">= 5.0"), "raise the version"),
            (velocity(2, ">= 8.0 && features.nope > 1.0"), "nope"),
            ("id = [".to_string(), "line 1"),
        ];
        for (text, expected) in cases {
            let err = b
                .apply("alert-card-velocity", Some(text.as_bytes()), 7)
                .unwrap_err();
            assert!(err.to_string().contains(expected), "{expected:?}: {err}");
        }
        let other = velocity(2, ">= 5.0");
        let err = b
            .apply("another-id", Some(other.as_bytes()), 8)
            .unwrap_err();
        assert!(
            err.reason.contains("record key must be the rule id"),
            "{err}"
        );
        assert_eq!(b.document("alert-card-velocity").cloned(), before);
        assert_eq!(b.version(), 0);
    }

    #[test]
    fn an_empty_value_deletes_the_rule() {
        let mut b = book();
        let n = b.rule_set().alerts.len();
        assert_eq!(
            b.apply("alert-card-velocity", None, 3),
            Ok(Change::Deleted {
                id: "alert-card-velocity".into()
            })
        );
        assert_eq!(b.rule_set().alerts.len(), n - 1);
        assert_eq!(
            b.apply("alert-card-velocity", Some(b""), 4),
            Ok(Change::Unchanged)
        );
        assert_eq!(b.version(), 4);
    }
}
