//! The three roots a condition reads — `event`, `features`, `profile` — resolved by name when a
//! condition is compiled into typed readers that [`super::eval`] calls per event without lookups.
//!
//! Numbers keep their CEL type: Avro `int`/`long` fields read as `int` (exactly, as `i64`), `double`
//! fields as `double`, features as `double`.

use crate::catalog::{Accessor, FieldType, Row};
use crate::customer::ProfileState;
use crate::event::{ContactChannel, Event, EventKind, LifecycleStage};

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Bool,
    Int,
    UInt,
    Double,
    /// A string; enum fields carry their symbol table so literals can be checked.
    Str(Option<&'static [&'static str]>),
    Null,
    /// `profile.contact_channels`: only valid on the right of `in`.
    Channels,
}

impl Ty {
    /// CEL's name of the type, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::UInt => "uint",
            Ty::Double => "double",
            Ty::Str(None) => "string",
            Ty::Str(Some(_)) => "enum (string)",
            Ty::Null => "null",
            Ty::Channels => "list(string)",
        }
    }

    pub(crate) fn is_num(self) -> bool {
        matches!(self, Ty::Int | Ty::UInt | Ty::Double)
    }

    pub(crate) fn is_str(self) -> bool {
        matches!(self, Ty::Str(_))
    }
}

/// Reads an integer field of an event; `None` when it is null.
pub(crate) type IntAccessor = fn(&Event) -> Option<i64>;

/// How an `event.<field>` is read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EventRead {
    /// Strings, enum symbols, booleans and doubles, through the shared field table.
    Field(Accessor),
    /// Avro `int`/`long` fields, read exactly.
    Int(IntAccessor),
    /// Avro `int`/`long` fields of a declared source, read exactly from their slot.
    SlotInt(Accessor),
}

/// Avro `double` fields (every other numeric field is an `int` or `long`).
const DOUBLE_FIELDS: &[&str] = &["sentiment", "latitude", "longitude", "propensity"];

/// The exact reader of an integer field, by kind and name.
fn int_accessor(kind: EventKind, name: &str) -> Option<IntAccessor> {
    let get: IntAccessor = match (kind, name) {
        (EventKind::Profile, "updated_at") | (EventKind::Erasure, "requested_at") => {
            |e| Some(e.event_time())
        }
        (_, "event_time") => |e| Some(e.event_time()),
        (EventKind::Transaction | EventKind::Partner, "amount_minor") => |e| match e {
            Event::Transaction(x) => Some(x.amount_minor),
            Event::Partner(x) => Some(x.amount_minor),
            _ => None,
        },
        // Typed like every numeric field, though no rule triggers on an alert's outcome.
        (EventKind::AlertOutcome, "amount_minor") => |e| match e {
            Event::AlertOutcome(x) => x.amount_minor,
            _ => None,
        },
        (EventKind::Transaction, "balance_after_minor") => |e| match e {
            Event::Transaction(x) => x.balance_after_minor,
            _ => None,
        },
        (EventKind::Clickstream, "dwell_ms") => |e| match e {
            Event::Clickstream(x) => x.dwell_ms,
            _ => None,
        },
        (EventKind::Feedback, "satisfaction") => |e| match e {
            Event::Feedback(x) => x.satisfaction.map(i64::from),
            _ => None,
        },
        (EventKind::InboundContact, "rule_version") => |e| match e {
            Event::InboundContact(x) => Some(i64::from(x.rule_version)),
            _ => None,
        },
        (EventKind::Profile, "credit_score") => |e| match e {
            Event::Profile(x) => x.credit_score.map(i64::from),
            _ => None,
        },
        _ => return None,
    };
    Some(get)
}

/// Resolves `event.<name>` for events of a record (its catalog row): how to read it and its type.
pub(crate) fn event_field(row: &Row, name: &str) -> Result<(EventRead, Ty), String> {
    let kind = row.kind;
    let Some(field) = row.field(name) else {
        return Err(format!(
            "event `{}` ({}) has no field `{name}`; its fields: {}",
            row.record,
            row.topic,
            row.field_names().join(", ")
        ));
    };
    Ok(match field.ty {
        FieldType::Str => (EventRead::Field(field.get), Ty::Str(None)),
        FieldType::Enum(symbols) => (EventRead::Field(field.get), Ty::Str(Some(symbols.get()))),
        FieldType::Bool => (EventRead::Field(field.get), Ty::Bool),
        FieldType::Int => (EventRead::SlotInt(field.get), Ty::Int),
        FieldType::Num if matches!(field.get, Accessor::Slot(_)) => {
            (EventRead::Field(field.get), Ty::Double)
        }
        FieldType::Num if DOUBLE_FIELDS.contains(&name) => {
            (EventRead::Field(field.get), Ty::Double)
        }
        FieldType::Num => match int_accessor(kind, name) {
            Some(get) => (EventRead::Int(get), Ty::Int),
            None => {
                return Err(format!(
                    "event field `{name}` of `{}` has no known numeric type",
                    row.record
                ))
            }
        },
    })
}

/// A field of the customer's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProfileField {
    LifecycleStage,
    Segment,
    CreditScore,
    ConsentMarketing,
    ConsentProfiling,
    ContactChannels,
}

/// The profile fields conditions may read, by name.
pub(crate) const PROFILE_FIELDS: &[(&str, ProfileField)] = &[
    ("lifecycle_stage", ProfileField::LifecycleStage),
    ("segment", ProfileField::Segment),
    ("credit_score", ProfileField::CreditScore),
    ("consent_marketing", ProfileField::ConsentMarketing),
    ("consent_profiling", ProfileField::ConsentProfiling),
    ("contact_channels", ProfileField::ContactChannels),
];

impl ProfileField {
    /// Resolves `profile.<name>`.
    pub(crate) fn find(name: &str) -> Result<ProfileField, String> {
        PROFILE_FIELDS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
            .ok_or_else(|| {
                let names: Vec<&str> = PROFILE_FIELDS.iter().map(|(n, _)| *n).collect();
                format!(
                    "the profile has no field `{name}`; its fields: {}",
                    names.join(", ")
                )
            })
    }

    /// The field's type.
    pub(crate) fn ty(self) -> Ty {
        match self {
            ProfileField::LifecycleStage => Ty::Str(Some(LifecycleStage::symbols())),
            ProfileField::Segment => Ty::Str(None),
            ProfileField::CreditScore => Ty::Int,
            ProfileField::ConsentMarketing | ProfileField::ConsentProfiling => Ty::Bool,
            ProfileField::ContactChannels => Ty::Channels,
        }
    }

    /// Whether the field has a value in `profile` (a missing score has none).
    pub(crate) fn present(self, profile: &ProfileState) -> bool {
        self != ProfileField::CreditScore || profile.credit_score.is_some()
    }
}

/// The symbols of the channels the customer permits.
pub(crate) fn channel_symbols() -> &'static [&'static str] {
    ContactChannel::symbols()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_event_field_has_a_cel_type() {
        let catalog = crate::catalog::Catalog::builtin();
        for kind in EventKind::ALL {
            let row = catalog.row(kind).unwrap();
            for f in row.fields {
                assert!(event_field(&row, f.name).is_ok(), "{kind:?}.{}", f.name);
            }
        }
    }
}
