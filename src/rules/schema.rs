//! The fields of a rule document, checked one by one over the parsed TOML or YAML tree, so a
//! document with several missing or wrong fields has every one reported in one pass (serde stops
//! at the first).
//!
//! The typed [`RuleDocument`](super::document::RuleDocument) stays the authority: this walk is
//! only asked once it has refused a document, and when the walk finds nothing the typed error is
//! what the author sees. The tables below follow the document's structs field by field; a test
//! checks that a complete document passes the walk.

use super::document::{Format, RuleState};
use crate::event::{AlertKind, ContactChannel, ProductCategory, Severity};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// A field that is missing, unknown or holds a value of the wrong kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldProblem {
    /// The path of the field to point at (`offer.cooldown`); for a missing field, its table's
    /// (empty at the top of the document).
    pub at: String,
    /// What is wrong, naming the field.
    pub message: String,
}

/// How a field's value is checked: as a value of a type, or as a table of fields.
enum Kind {
    Value(fn(&Value) -> Result<(), String>),
    Table(&'static [Field]),
}

struct Field {
    name: &'static str,
    required: bool,
    kind: Kind,
}

const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: true,
        kind,
    }
}

const fn optional(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        required: false,
        kind,
    }
}

/// Whether `value` reads as a `T`.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(value.clone())
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Whether `value` reads as a duration (`"30d"`, `"1h 30m"`).
fn duration(value: &Value) -> Result<(), String> {
    humantime_serde::deserialize::<Duration, _>(value.clone())
        .map(drop)
        .map_err(|e: serde_json::Error| e.to_string())
}

const DOCUMENT: &[Field] = &[
    required("id", Kind::Value(typed::<String>)),
    required("version", Kind::Value(typed::<i32>)),
    optional("state", Kind::Value(typed::<RuleState>)),
    required("description", Kind::Value(typed::<String>)),
    required("triggers", Kind::Value(typed::<Vec<String>>)),
    required("condition", Kind::Value(typed::<String>)),
    optional("offer", Kind::Table(OFFER)),
    optional("alert", Kind::Table(ALERT)),
];

const OFFER: &[Field] = &[
    required("offer_code", Kind::Value(typed::<String>)),
    required("product", Kind::Value(typed::<ProductCategory>)),
    required("value", Kind::Value(typed::<f64>)),
    optional("weight", Kind::Value(typed::<f64>)),
    required("channels", Kind::Value(typed::<Vec<ContactChannel>>)),
    required("cooldown", Kind::Value(duration)),
    optional("validity", Kind::Value(duration)),
    required("propensity", Kind::Table(PROPENSITY)),
];

const PROPENSITY: &[Field] = &[
    required("intercept", Kind::Value(typed::<f64>)),
    optional("weights", Kind::Value(typed::<BTreeMap<String, f64>>)),
    optional("evidence", Kind::Value(typed::<f64>)),
    optional("segment", Kind::Value(typed::<String>)),
];

const ALERT: &[Field] = &[
    required("kind", Kind::Value(typed::<AlertKind>)),
    required("severity", Kind::Value(typed::<Severity>)),
    required("cooldown", Kind::Value(duration)),
];

/// `text` in `format` as a tree of values, or `None` when it is not TOML (YAML) at all.
pub(crate) fn tree(text: &str, format: Format) -> Option<Value> {
    match format {
        Format::Toml => toml::from_str(text).ok(),
        Format::Yaml => serde_yaml_ng::from_str(text).ok(),
    }
}

/// Every missing, unknown or mistyped field of a document's tree.
pub(crate) fn problems(tree: &Value) -> Vec<FieldProblem> {
    let mut out = Vec::new();
    table("", tree, DOCUMENT, &mut out);
    out
}

/// The top-level field `name` of a tree, when it reads as a `T` (what can still be checked in a
/// document whose other fields are wrong).
pub(crate) fn read<T: DeserializeOwned>(tree: &Value, name: &str) -> Option<T> {
    serde_json::from_value(tree.get(name)?.clone()).ok()
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn table(path: &str, value: &Value, fields: &[Field], out: &mut Vec<FieldProblem>) {
    let Some(map) = value.as_object() else {
        out.push(FieldProblem {
            at: path.to_string(),
            message: if path.is_empty() {
                "a rule document is a table of fields".into()
            } else {
                format!("{path} must be a table")
            },
        });
        return;
    };
    for (name, value) in map {
        let at = join(path, name);
        match fields.iter().find(|f| f.name == name) {
            None => {
                let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
                out.push(FieldProblem {
                    message: format!("unknown field `{at}`, expected one of {}", names.join(", ")),
                    at,
                });
            }
            // YAML's empty value for an optional field (`validity:`) reads as absent.
            Some(f) if !f.required && value.is_null() => {}
            Some(Field {
                kind: Kind::Table(sub),
                ..
            }) => table(&at, value, sub, out),
            Some(Field {
                kind: Kind::Value(check),
                ..
            }) => {
                if let Err(m) = check(value) {
                    out.push(FieldProblem {
                        message: format!("{at}: {m}"),
                        at,
                    });
                }
            }
        }
    }
    for f in fields
        .iter()
        .filter(|f| f.required && !map.contains_key(f.name))
    {
        out.push(FieldProblem {
            at: path.to_string(),
            message: format!("missing field `{}`", join(path, f.name)),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER_RULE: &str = r#"
id = "offer-x"
version = 2
state = "shadow"
description = "An offer"
triggers = ["TransactionEvent"]
condition = "features.spend_24h > 10.0"
[offer]
offer_code = "X-1"
product = "CREDIT_CARD"
value = 100.0
weight = 2.0
channels = ["EMAIL"]
cooldown = "30d"
validity = "7d"
propensity = { intercept = -1.0, weights = { spend_24h = 0.01 } }
"#;

    const ALERT_RULE: &str = "id: a\nversion: 1\ndescription: d\ntriggers: [TransactionEvent]\n\
         condition: 'true'\nalert:\n  kind: FRAUD\n  severity: LOW\n  cooldown: 1h\n";

    #[test]
    fn complete_documents_pass_the_walk() {
        for (text, format) in [(OFFER_RULE, Format::Toml), (ALERT_RULE, Format::Yaml)] {
            super::super::document::RuleDocument::parse(text, format).unwrap();
            let tree = tree(text, format).unwrap();
            assert_eq!(problems(&tree), vec![], "{text}");
        }
    }

    #[test]
    fn every_wrong_field_is_reported() {
        let text = OFFER_RULE
            .replace("version = 2", "version = \"two\"")
            .replace("cooldown = \"30d\"", "cooldown = \"soon\"")
            .replace("product = \"CREDIT_CARD\"", "colour = 1")
            .replace("intercept = -1.0, ", "");
        let found = problems(&tree(&text, Format::Toml).unwrap());
        let mut at: Vec<&str> = found.iter().map(|p| p.at.as_str()).collect();
        at.sort_unstable();
        assert_eq!(
            at,
            [
                "offer",
                "offer.colour",
                "offer.cooldown",
                "offer.propensity",
                "version"
            ],
            "{found:?}"
        );
        let all = format!("{found:?}");
        for part in [
            "unknown field `offer.colour`",
            "offer.cooldown: ",
            "missing field `offer.propensity.intercept`",
            "missing field `offer.product`",
            "version: invalid type",
        ] {
            assert!(all.contains(part), "{part:?} not in {all}");
        }
    }
}
