//! Edits of a rule document that keep the author's text: a new state or version is written into
//! the text as written, so comments, key order and durations such as `60d` survive a publish,
//! a promotion or a rollback (a parse-and-serialize round trip would turn `60d` into
//! `1month 29days 13h 26m 24s` and drop every comment).

use super::document::{Format, RuleDocument, RuleState};

/// `state`'s name as documents write it.
pub fn state_name(state: RuleState) -> &'static str {
    match state {
        RuleState::Active => "active",
        RuleState::Shadow => "shadow",
        RuleState::Paused => "paused",
    }
}

/// `text` (a document in `format`) with its top-level `state` and, when given, `version` set;
/// every other byte is kept. The result is parsed again and must say what was asked.
pub fn restate(
    text: &str,
    format: Format,
    state: RuleState,
    version: Option<i32>,
) -> Result<(RuleDocument, String), String> {
    let edited = match format {
        Format::Toml => toml_set(text, state, version)?,
        Format::Yaml => yaml_set(text, state, version),
    };
    let doc = RuleDocument::parse(&edited, format).map_err(|e| e.message)?;
    if doc.state != state || version.is_some_and(|v| v != doc.version) {
        return Err("the edited document does not read back as asked".into());
    }
    Ok((doc, edited))
}

fn toml_set(text: &str, state: RuleState, version: Option<i32>) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| format!("{e}"))?;
    let mut set = |key: &str, value: toml_edit::Value| match doc
        .get_mut(key)
        .and_then(|i| i.as_value_mut())
    {
        Some(old) => {
            // Keep what surrounds the value (spacing and a trailing comment).
            let decor = old.decor().clone();
            *old = value;
            *old.decor_mut() = decor;
        }
        None => {
            doc.insert(key, toml_edit::Item::Value(value));
        }
    };
    set("state", state_name(state).into());
    if let Some(v) = version {
        set("version", i64::from(v).into());
    }
    Ok(doc.to_string())
}

/// Sets top-level `key: value` lines of a YAML document (no indentation), keeping a trailing
/// comment; a key that is missing is added after `id:`.
fn yaml_set(text: &str, state: RuleState, version: Option<i32>) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut put = |key: &str, value: String| {
        let prefix = format!("{key}:");
        match lines.iter().position(|l| l.starts_with(&prefix)) {
            Some(i) => {
                let comment = lines[i]
                    .find(" #")
                    .map(|c| lines[i][c..].to_string())
                    .unwrap_or_default();
                lines[i] = format!("{prefix} {value}{comment}");
            }
            None => {
                let at = lines
                    .iter()
                    .position(|l| l.starts_with("id:"))
                    .map_or(0, |i| i + 1);
                lines.insert(at, format!("{prefix} {value}"));
            }
        }
    };
    put("state", state_name(state).to_string());
    if let Some(v) = version {
        put("version", v.to_string());
    }
    let mut out = lines.join("\n");
    if text.ends_with('\n') {
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"# Wealth for high balances.
id = "offer-x"
version = 2   # raised for the spring campaign
description = "An offer"
triggers = ["TransactionEvent"]
condition = "features.spend_24h > 10.0"

[offer]
offer_code = "X-1"
product = "CREDIT_CARD"
value = 100.0
channels = ["EMAIL"]
cooldown = "60d"   # two months
propensity = { intercept = -1.0, weights = { spend_24h = 0.01 } }
"#;

    #[test]
    fn a_toml_edit_keeps_comments_and_durations() {
        let (doc, text) = restate(TOML, Format::Toml, RuleState::Shadow, Some(3)).unwrap();
        assert_eq!(doc.state, RuleState::Shadow);
        assert_eq!(doc.version, 3);
        assert!(text.contains("cooldown = \"60d\"   # two months"), "{text}");
        assert!(text.contains("# Wealth for high balances."), "{text}");
        assert!(
            text.contains("version = 3   # raised for the spring campaign"),
            "{text}"
        );
        // Setting it again changes only the state.
        let (_, again) = restate(&text, Format::Toml, RuleState::Active, None).unwrap();
        assert_eq!(again.replace("\"active\"", "\"shadow\""), text);
    }

    #[test]
    fn a_yaml_edit_keeps_comments_and_durations() {
        let yaml = "id: offer-x  # the id\nversion: 2\ndescription: An offer\ntriggers: [TransactionEvent]\n\
                    condition: features.spend_24h > 10.0\noffer:\n  offer_code: X-1\n  product: CREDIT_CARD\n  \
                    value: 100.0\n  channels: [EMAIL]\n  cooldown: 60d  # two months\n  propensity:\n    intercept: -1.0\n";
        let (doc, text) = restate(yaml, Format::Yaml, RuleState::Paused, Some(7)).unwrap();
        assert_eq!((doc.state, doc.version), (RuleState::Paused, 7));
        assert!(text.contains("cooldown: 60d  # two months"), "{text}");
        assert!(
            text.starts_with("id: offer-x  # the id\nstate: paused\nversion: 7\n"),
            "{text}"
        );
    }
}
