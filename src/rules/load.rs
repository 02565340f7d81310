//! Reading rule documents: from a file or a folder (recursively, `*.toml`, `*.yaml`, `*.yml`), or
//! the starter set built into the binary (the files under `rules/`).

use super::document::{Format, RuleDocument};
use super::{compile, RuleError, RuleSet};
use crate::features::FeatureSet;
use std::path::{Path, PathBuf};

macro_rules! starter {
    ($($path:literal),+ $(,)?) => {
        /// The starter rule documents (`rules/` in the repository), as (path, text).
        pub const STARTER: &[(&str, &str)] = &[
            $(($path, include_str!(concat!("../../rules/", $path)))),+
        ];
    };
}

starter!(
    "offers/credit-card-heavy-debit.toml",
    "offers/wealth-high-balance.toml",
    "offers/personal-loan-researcher.toml",
    "offers/mortgage-researcher.toml",
    "offers/insurance-travel-car.toml",
    "offers/retention-at-risk.toml",
    "alerts/card-velocity.toml",
    "alerts/amount-above-average.toml",
    "alerts/many-countries.toml",
    "alerts/failed-logins-then-transfer.toml",
    "alerts/complaint-escalation.toml",
    "alerts/credit-risk-overdrawn.toml",
    "alerts/attrition-signals.toml",
);

/// The rule document files under `path` (itself, if it is a file), sorted by path.
pub fn files(path: &Path) -> Result<Vec<PathBuf>, RuleError> {
    let unreadable = |e: std::io::Error| RuleError {
        rule_id: path.display().to_string(),
        reason: format!("cannot read: {e}"),
    };
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(unreadable)? {
            let p = entry.map_err(unreadable)?.path();
            if p.is_dir() {
                dirs.push(p);
            } else if Format::of_path(&p).is_some() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads and parses one document file.
pub fn read(path: &Path) -> Result<(RuleDocument, String), RuleError> {
    let fail = |reason: String| RuleError {
        rule_id: path.display().to_string(),
        reason,
    };
    let (text, format) = read_text(path)?;
    let doc = RuleDocument::parse(&text, format).map_err(|e| fail(e.message))?;
    Ok((doc, text))
}

/// The text of the document at `path` and its format (by extension, else guessed).
pub fn read_text(path: &Path) -> Result<(String, Format), RuleError> {
    let text = std::fs::read_to_string(path).map_err(|e| RuleError {
        rule_id: path.display().to_string(),
        reason: format!("cannot read: {e}"),
    })?;
    let format = Format::of_path(path).unwrap_or_else(|| Format::guess(&text));
    Ok((text, format))
}

/// Every document under `path` (or the starter set when `None`), parsed: all errors, not just
/// the first, so an author fixes a folder in one pass. Ids must be unique.
pub fn documents(path: Option<&Path>) -> Result<Vec<RuleDocument>, Vec<RuleError>> {
    Ok(sources(path)?.into_iter().map(|(d, _)| d).collect())
}

/// As [`documents`], each with its text as the author wrote it.
pub fn sources(path: Option<&Path>) -> Result<Vec<(RuleDocument, String)>, Vec<RuleError>> {
    let parsed: Vec<Result<(String, RuleDocument, String), RuleError>> = match path {
        None => STARTER
            .iter()
            .map(|(name, text)| {
                RuleDocument::parse(text, Format::Toml)
                    .map(|d| (name.to_string(), d, text.to_string()))
                    .map_err(|e| RuleError {
                        rule_id: name.to_string(),
                        reason: e.message,
                    })
            })
            .collect(),
        Some(p) => match files(p) {
            Err(e) => return Err(vec![e]),
            Ok(files) if files.is_empty() => {
                return Err(vec![RuleError {
                    rule_id: p.display().to_string(),
                    reason: "no rule documents (*.toml, *.yaml, *.yml) here".into(),
                }])
            }
            Ok(files) => files
                .iter()
                .map(|f| read(f).map(|(d, t)| (f.display().to_string(), d, t)))
                .collect(),
        },
    };
    let mut docs: Vec<(String, RuleDocument, String)> = Vec::new();
    let mut errors = Vec::new();
    for item in parsed {
        match item {
            Ok((origin, doc, text)) => match docs.iter().find(|(_, d, _)| d.id == doc.id) {
                Some((first, _, _)) => errors.push(RuleError {
                    rule_id: doc.id.clone(),
                    reason: format!("defined twice: in {first} and in {origin}"),
                }),
                None => docs.push((origin, doc, text)),
            },
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(docs.into_iter().map(|(_, d, t)| (d, t)).collect())
    } else {
        Err(errors)
    }
}

/// Documents under `path` (or the starter set) compiled into a rule set at version 0: the rules a
/// process starts with before the rules topic is read. Every error is returned.
pub fn rule_set(path: Option<&Path>, features: &FeatureSet) -> Result<RuleSet, Vec<RuleError>> {
    let docs = documents(path)?;
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for doc in &docs {
        match compile(doc, features) {
            Ok(r) => rules.push(r),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(RuleSet::new(0, rules))
    } else {
        Err(errors)
    }
}

/// Joins rule errors into one message, one per line.
pub fn describe(errors: &[RuleError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_set_is_every_file_under_rules_and_compiles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let on_disk: Vec<String> = files(&root)
            .unwrap()
            .iter()
            .map(|p| {
                p.strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        let mut embedded: Vec<String> = STARTER.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "add new files under rules/ to STARTER");
        let features = crate::features::spec::load(None).unwrap();
        let set = rule_set(None, &features).unwrap();
        assert_eq!(set.counts(), (6, 7));
        let from_dir = rule_set(Some(&root), &features).unwrap();
        assert_eq!(from_dir.counts(), set.counts());
    }

    #[test]
    fn a_folder_with_errors_reports_every_one() {
        let dir = tempfile::tempdir().unwrap();
        let (good, _) = STARTER[0];
        let text = STARTER[0].1;
        std::fs::write(dir.path().join("a.toml"), text).unwrap();
        std::fs::write(dir.path().join("b.toml"), text).unwrap();
        std::fs::write(dir.path().join("c.yaml"), "id: [").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let errors = documents(Some(dir.path())).unwrap_err();
        let all = describe(&errors);
        assert_eq!(errors.len(), 2, "{all} ({good})");
        assert!(all.contains("defined twice"), "{all}");
        assert!(all.contains("c.yaml"), "{all}");
    }
}
