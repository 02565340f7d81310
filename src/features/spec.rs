//! The features file: declarative definitions a bank's data team edits without a release.
//!
//! ```toml
//! [[feature]]
//! name = "card_spend_30d"              # [a-z0-9_], unique
//! description = "Card spend, 30 days"  # plain words
//! source = "TransactionEvent"          # any input record
//! filter = 'txn_type == "CARD_PAYMENT"' # CEL subset over the record's fields; empty = all
//! aggregation = "sum"                  # count sum avg min max distinct_count last decayed_sum
//! field = "amount_minor"               # required except for count
//! scale = 0.01                         # optional multiplier (minor → major units)
//! window = "30d"                       # 1m ..= 365d
//! half_life = "7d"                     # decayed_sum only
//! ```

use super::{expr, tiles, Aggregation, FeatureDef, FeatureSet};
use crate::catalog::{Catalog, FieldType};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The starter features (also `features/bank.toml`), used when the config names no file.
pub const STARTER: &str = include_str!("../../features/bank.toml");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    feature: Vec<Spec>,
}

/// One definition as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Name.
    pub name: String,
    /// Plain-words description.
    #[serde(default)]
    pub description: String,
    /// Avro record name of the source.
    pub source: String,
    /// Filter expression.
    #[serde(default)]
    pub filter: String,
    /// Aggregation name.
    pub aggregation: String,
    /// Aggregated field.
    pub field: Option<String>,
    /// Multiplier for the field.
    pub scale: Option<f64>,
    /// Window length.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Half-life of a decayed sum.
    #[serde(default, with = "humantime_serde")]
    pub half_life: Option<Duration>,
}

/// A features file or definition that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FeatureError {
    /// The file does not read or parse.
    #[error("features file {file}: {reason}")]
    File {
        /// Path.
        file: String,
        /// Why.
        reason: String,
    },
    /// One definition is invalid.
    #[error("feature `{name}`: {reason}")]
    Definition {
        /// Feature name.
        name: String,
        /// Why.
        reason: String,
    },
}

const MIN_WINDOW: Duration = Duration::from_secs(60);
const MAX_WINDOW: Duration = Duration::from_secs(365 * 24 * 3600);

fn compile_one(spec: &Spec, catalog: &Catalog) -> Result<FeatureDef, FeatureError> {
    let fail = |reason: String| FeatureError::Definition {
        name: spec.name.clone(),
        reason,
    };
    if spec.name.is_empty()
        || !spec
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(fail("name must be non-empty [a-z0-9_]".into()));
    }
    if spec.name.starts_with('_') {
        return Err(fail(
            "names starting with `_` are reserved (`_updated_at`)".into(),
        ));
    }
    // Features count what the stream takes in: an inbound request is decided on, not taken in,
    // and an alert's outcome labels the alert (`operator::outcomes`), counted in no window.
    let row = catalog
        .kind_of(&spec.source)
        .filter(|k| {
            *k != crate::event::EventKind::Declared(crate::event::EventKind::INBOUND)
                && *k != crate::event::EventKind::AlertOutcome
        })
        .and_then(|k| catalog.row(k))
        .ok_or_else(|| {
            fail(format!(
                "unknown source {:?} (one of {})",
                spec.source,
                catalog.record_names().join(", ")
            ))
        })?;
    let source = row.kind;
    let filter = expr::compile(&spec.filter, &row).map_err(|e| fail(format!("filter: {e}")))?;
    if spec.window < MIN_WINDOW || spec.window > MAX_WINDOW {
        return Err(fail(format!(
            "window {:?} is outside 1m..=365d",
            spec.window
        )));
    }
    if !spec.window.as_millis().is_multiple_of(60_000) {
        return Err(fail("window must be a whole number of minutes".into()));
    }
    let window_ms = spec.window.as_millis() as i64;
    let mut aggregation = match spec.aggregation.as_str() {
        "count" => Aggregation::Count,
        "sum" => Aggregation::Sum,
        "avg" => Aggregation::Avg,
        "min" => Aggregation::Min,
        "max" => Aggregation::Max,
        "distinct_count" => Aggregation::DistinctCount,
        "last" => Aggregation::Last,
        "decayed_sum" => {
            let half_life = spec.half_life.ok_or_else(|| fail("decayed_sum needs half_life".into()))?;
            if half_life.as_millis() == 0 {
                return Err(fail("half_life must be positive".into()));
            }
            Aggregation::DecayedSum { half_life_ms: half_life.as_millis() as i64 }
        }
        other => {
            return Err(fail(format!(
                "unknown aggregation {other:?} (count, sum, avg, min, max, distinct_count, last, decayed_sum)"
            )))
        }
    };
    if spec.half_life.is_some() && !matches!(aggregation, Aggregation::DecayedSum { .. }) {
        return Err(fail("half_life applies to decayed_sum only".into()));
    }
    let field = match (&spec.field, aggregation) {
        (None, Aggregation::Count) => None,
        (None, _) => {
            return Err(fail(format!(
                "aggregation {} needs a field",
                spec.aggregation
            )))
        }
        (Some(name), _) => {
            let f = row.field(name).ok_or_else(|| {
                fail(format!(
                    "{} has no field `{name}` (fields: {})",
                    spec.source,
                    row.field_names().join(", ")
                ))
            })?;
            let numeric = matches!(f.ty, FieldType::Num | FieldType::Int);
            let text = matches!(f.ty, FieldType::Str | FieldType::Enum(_));
            if text && aggregation == Aggregation::Last {
                aggregation = Aggregation::LastText;
            } else if !numeric
                && !matches!(aggregation, Aggregation::DistinctCount | Aggregation::Count)
            {
                return Err(fail(format!(
                    "field `{name}` is not numeric; {} needs a number",
                    spec.aggregation
                )));
            }
            Some(f.get)
        }
    };
    let scale = spec.scale.unwrap_or(1.0);
    if !scale.is_finite() || scale == 0.0 {
        return Err(fail("scale must be a finite, non-zero number".into()));
    }
    let identity = format!(
        "{}|{}|{}|{}|{:?}|{}|{}|{:?}",
        spec.name,
        spec.source,
        spec.filter,
        spec.aggregation,
        spec.field,
        scale,
        window_ms,
        spec.half_life
    );
    Ok(FeatureDef {
        id: tiles::fnv32(identity.as_bytes()),
        filter_id: 0,
        name: spec.name.as_str().into(),
        source,
        filter,
        aggregation,
        field,
        scale,
        window_ms,
        tile_ms: tiles::tile_width(window_ms),
        tiles_per_window: window_ms / tiles::tile_width(window_ms),
    })
}

/// Compiles the definitions in a features file's text over the built-in records.
pub fn compile(text: &str, file: &str) -> Result<FeatureSet, FeatureError> {
    compile_in(text, file, Catalog::builtin())
}

/// Compiles the definitions in a features file's text over the records of `catalog`.
pub fn compile_in(
    text: &str,
    file: &str,
    catalog: Arc<Catalog>,
) -> Result<FeatureSet, FeatureError> {
    let parsed: File = toml::from_str(text).map_err(|e| FeatureError::File {
        file: file.into(),
        reason: e.to_string(),
    })?;
    let mut defs = Vec::with_capacity(parsed.feature.len());
    let mut filters: Vec<(&str, &str)> = Vec::new();
    for spec in &parsed.feature {
        if defs.iter().any(|d: &FeatureDef| *d.name == *spec.name) {
            return Err(FeatureError::Definition {
                name: spec.name.clone(),
                reason: "defined twice".into(),
            });
        }
        let mut def = compile_one(spec, &catalog)?;
        let key = (spec.source.as_str(), spec.filter.trim());
        def.filter_id = match filters.iter().position(|f| *f == key) {
            Some(i) => i as u16,
            None => {
                filters.push(key);
                (filters.len() - 1) as u16
            }
        };
        defs.push(def);
    }
    if defs.is_empty() {
        return Err(FeatureError::File {
            file: file.into(),
            reason: "defines no feature".into(),
        });
    }
    Ok(FeatureSet::in_catalog(defs, catalog))
}

/// The definitions as written in the features file at `path` (or the starter set): names,
/// descriptions and windows, for people reading feature values (the console).
pub fn specs(path: Option<&Path>) -> Result<Vec<Spec>, FeatureError> {
    let (text, file) = match path {
        None => (
            STARTER.to_string(),
            "features/bank.toml (built in)".to_string(),
        ),
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| FeatureError::File {
                file: p.display().to_string(),
                reason: e.to_string(),
            })?,
            p.display().to_string(),
        ),
    };
    let parsed: File = toml::from_str(&text).map_err(|e| FeatureError::File {
        file,
        reason: e.to_string(),
    })?;
    Ok(parsed.feature)
}

/// Loads the features file at `path`, or the starter set when `None`, over the built-in records.
pub fn load(path: Option<&Path>) -> Result<FeatureSet, FeatureError> {
    load_in(path, Catalog::builtin())
}

/// Loads the features file at `path`, or the starter set when `None`, over the records of
/// `catalog` (the configuration's: [`crate::config::FeatureSettings::load`]).
pub fn load_in(path: Option<&Path>, catalog: Arc<Catalog>) -> Result<FeatureSet, FeatureError> {
    match path {
        None => compile_in(STARTER, "features/bank.toml (built in)", catalog),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| FeatureError::File {
                file: p.display().to_string(),
                reason: e.to_string(),
            })?;
            compile_in(&text, &p.display().to_string(), catalog)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_file_compiles_with_about_twenty_features() {
        let set = load(None).unwrap();
        assert!(
            (18..=30).contains(&set.defs().len()),
            "{}",
            set.defs().len()
        );
        let id = |n: &str| set.defs()[set.slot(n).unwrap()].filter_id;
        assert_eq!(
            id("card_spend_7d"),
            id("card_spend_30d"),
            "same filter, evaluated once"
        );
        assert_ne!(id("card_spend_7d"), id("debit_card_spend_30d"));
        let on_disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("features/bank.toml");
        assert_eq!(load(Some(&on_disk)).unwrap().defs().len(), set.defs().len());
    }

    fn one(body: &str) -> Result<FeatureSet, FeatureError> {
        compile(&format!("[[feature]]\n{body}"), "test.toml")
    }

    #[test]
    fn invalid_definitions_name_the_feature_and_the_reason() {
        let cases = [
            ("name = \"x\"\nsource = \"Nope\"\naggregation = \"count\"\nwindow = \"1h\"", "unknown source"),
            ("name = \"x\"\nsource = \"TransactionEvent\"\naggregation = \"median\"\nwindow = \"1h\"", "unknown aggregation"),
            ("name = \"x\"\nsource = \"TransactionEvent\"\naggregation = \"sum\"\nwindow = \"1h\"", "needs a field"),
            ("name = \"x\"\nsource = \"TransactionEvent\"\naggregation = \"sum\"\nfield = \"country\"\nwindow = \"1h\"", "not numeric"),
            ("name = \"x\"\nsource = \"TransactionEvent\"\naggregation = \"count\"\nwindow = \"400d\"", "outside"),
            ("name = \"x\"\nsource = \"TransactionEvent\"\naggregation = \"count\"\nwindow = \"30s\"", "outside"),
            ("name = \"x\"\nsource = \"TransactionEvent\"\naggregation = \"count\"\nfilter = \"txn_type == 'NOPE'\"\nwindow = \"1h\"", "NOPE"),
            ("name = \"x\"\nsource = \"TransactionEvent\"\naggregation = \"decayed_sum\"\nfield = \"amount_minor\"\nwindow = \"1h\"", "half_life"),
            ("name = \"Bad Name\"\nsource = \"TransactionEvent\"\naggregation = \"count\"\nwindow = \"1h\"", "name"),
        ];
        for (body, why) in cases {
            let err = one(body).unwrap_err().to_string();
            assert!(
                err.contains("feature `") && err.contains(why),
                "{why}: {err}"
            );
        }
        let dup = "[[feature]]\nname = \"a\"\nsource = \"AppEvent\"\naggregation = \"count\"\nwindow = \"1h\"\n";
        let err = compile(&format!("{dup}{dup}"), "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("defined twice"), "{err}");
        let err = compile("[[feature]]\nnme = 1", "t")
            .unwrap_err()
            .to_string();
        assert!(err.contains("nme"), "{err}");
    }
}
