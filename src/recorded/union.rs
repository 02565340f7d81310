//! The union of the built-in input records that an Avro recorded file holds: its schema (each
//! record's schema in [`EventKind::ALL`] order, named types defined once), an event as its union
//! branch for the writer, and a file's branch read back as a kind (refusing a record whose fields
//! differ from this build's).

use super::{kind_of, RecordedError};
use crate::codec::schemas;
use crate::event::*;
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::OnceLock;

/// The union schema's JSON: the input record schemas in [`EventKind::ALL`] order, each named type
/// (`ProductCategory`, ...) defined at its first use and referred to by full name afterwards, as
/// Avro requires.
pub fn union_schema_json() -> Result<String, RecordedError> {
    let mut defined = HashMap::new();
    let mut branches = Vec::new();
    for kind in EventKind::ALL {
        let entry = schemas::for_kind(kind);
        let mut schema: Json = serde_json::from_str(entry.text)
            .map_err(|e| RecordedError::Schema(format!("{}: {e}", entry.file)))?;
        dedupe_named(&mut schema, "", &mut defined)?;
        branches.push(schema);
    }
    serde_json::to_string(&Json::Array(branches)).map_err(|e| RecordedError::Schema(e.to_string()))
}

/// Replaces a repeated definition of a named type by its full name; refuses two different
/// definitions of one name.
fn dedupe_named(
    node: &mut Json,
    namespace: &str,
    defined: &mut HashMap<String, Json>,
) -> Result<(), RecordedError> {
    match node {
        Json::Array(items) => {
            for item in items {
                dedupe_named(item, namespace, defined)?;
            }
        }
        Json::Object(map) => {
            let kind = map.get("type").and_then(Json::as_str).unwrap_or("");
            let named = matches!(kind, "record" | "enum" | "fixed");
            let mut ns = namespace.to_string();
            if named {
                if let Some(n) = map.get("namespace").and_then(Json::as_str) {
                    ns = n.to_string();
                }
                let name = map.get("name").and_then(Json::as_str).unwrap_or("");
                let full = if name.contains('.') || ns.is_empty() {
                    name.to_string()
                } else {
                    format!("{ns}.{name}")
                };
                if let Some(first) = defined.get(&full) {
                    if first != &Json::Object(map.clone()) {
                        return Err(RecordedError::Schema(format!(
                            "{full} is defined twice, differently"
                        )));
                    }
                    *node = Json::String(full);
                    return Ok(());
                }
                defined.insert(full, Json::Object(map.clone()));
            }
            for (key, value) in map.iter_mut() {
                if key == "type" || key == "fields" || key == "items" || key == "values" {
                    dedupe_named(value, &ns, defined)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

pub(super) fn union_schema() -> Result<&'static apache_avro::Schema, RecordedError> {
    static SCHEMA: OnceLock<Result<apache_avro::Schema, String>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let text = union_schema_json().map_err(|e| e.to_string())?;
            apache_avro::Schema::parse_str(&text).map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| RecordedError::Schema(e.clone()))
}

macro_rules! branches {
    ($($variant:ident($ty:ident)),+ $(,)?) => {
        /// An event as a union value: the variant index is the branch ([`EventKind::index`]
        /// order), which is how apache-avro's serializer picks a union branch.
        #[derive(Serialize)]
        pub(super) enum Branch<'a> {
            $($variant(&'a $ty)),+
        }

        impl<'a> Branch<'a> {
            /// The union branch of a built-in record; none for a declared source's.
            pub(super) fn of(event: &'a Event) -> Option<Self> {
                Some(match event {
                    $(Event::$variant(e) => Branch::$variant(e),)+
                    Event::Declared(_) => return None,
                })
            }
        }
    };
}
builtin_records!(branches);

/// The input kind of a union branch (a record schema object, or a name).
pub(super) fn branch_kind(branch: &Json) -> Result<Option<EventKind>, String> {
    let (name, fields) = match branch {
        Json::String(name) => (name.as_str(), None),
        Json::Object(map) => (
            map.get("name").and_then(Json::as_str).unwrap_or(""),
            map.get("fields"),
        ),
        _ => return Ok(None),
    };
    let Some(kind) = kind_of(name) else {
        return Ok(None);
    };
    if let Some(fields) = fields {
        let ours: Json = serde_json::from_str(schemas::for_kind(kind).text)
            .map_err(|e| format!("{}: {e}", kind.record_name()))?;
        let theirs = field_names(fields);
        let expected = field_names(ours.get("fields").unwrap_or(&Json::Null));
        if theirs != expected {
            return Err(format!(
                "{name} in the file has fields {theirs:?}, this build's schema {expected:?}; re-record the events with this version's `nbo-stream generate --out`"
            ));
        }
    }
    Ok(Some(kind))
}

fn field_names(fields: &Json) -> Vec<&str> {
    fields
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|f| f.get("name").and_then(Json::as_str))
                .collect()
        })
        .unwrap_or_default()
}
