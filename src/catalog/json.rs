//! A declared source's record as JSON, for recorded files (`generate --out`, `backtest`): the
//! reader schema's fields by name, enum symbols as strings, optional fields as `null` or the
//! value, times as epoch milliseconds: Avro's JSON encoding without the union wrappers, as the
//! built-in records are written.

use super::field::FieldType;
use super::Declared;
use crate::event::{DeclaredEvent, Value};
use serde_json::{Map, Number, Value as Json};

impl Declared {
    /// Builds an event from its field values in schema order; the event id and time come from
    /// the fields the declaration names.
    pub fn event(&self, customer_id: &str, values: Vec<Value>) -> Result<DeclaredEvent, String> {
        let (Some(Value::Str(event_id)), Some(Value::Int(event_time))) = (
            values.get(self.event_id_slot),
            values.get(self.event_time_slot),
        ) else {
            return Err("event id or event time missing from the record".into());
        };
        Ok(DeclaredEvent {
            source: self.id,
            customer_id: customer_id.into(),
            event_id: event_id.clone(),
            event_time: *event_time,
            values,
        })
    }

    /// Reads a record object: every field of the reader schema by name. A missing optional
    /// field reads as `null`; a missing required one, a value of the wrong type, an enum symbol
    /// the schema does not list, or a field the schema does not have is an error naming it.
    pub fn from_json(
        &self,
        customer_id: &str,
        record: &Map<String, Json>,
    ) -> Result<DeclaredEvent, String> {
        if let Some(extra) = record
            .keys()
            .find(|k| !self.fields.iter().any(|f| f.name == k.as_str()))
        {
            return Err(format!(
                "field {extra:?} is not in the {} schema",
                self.record
            ));
        }
        let mut values = Vec::with_capacity(self.fields.len());
        for f in self.fields {
            let value = match record.get(f.name) {
                None | Some(Json::Null) if f.nullable => Value::Null,
                None => return Err(format!("field {:?} is missing", f.name)),
                Some(json) => read(f.ty, json).ok_or_else(|| {
                    format!("field {:?}: {json} is not {}", f.name, expected(f.ty))
                })?,
            };
            values.push(value);
        }
        self.event(customer_id, values)
    }

    /// The record object of an event of this source (the customer id is not a field: it is
    /// written beside the record, as it is the Kafka key).
    pub fn to_json(&self, event: &DeclaredEvent) -> Map<String, Json> {
        self.fields
            .iter()
            .zip(&event.values)
            .map(|(f, v)| {
                let json = match v {
                    Value::Null => Json::Null,
                    Value::Bool(b) => Json::Bool(*b),
                    Value::Int(i) => Json::Number((*i).into()),
                    Value::Double(d) => Number::from_f64(*d).map_or(Json::Null, Json::Number),
                    Value::Str(s) => Json::String(s.to_string()),
                    Value::Sym(s) => Json::String((*s).to_string()),
                };
                (f.name.to_string(), json)
            })
            .collect()
    }
}

fn read(ty: FieldType, json: &Json) -> Option<Value> {
    Some(match ty {
        FieldType::Bool => Value::Bool(json.as_bool()?),
        FieldType::Int => Value::Int(json.as_i64()?),
        FieldType::Num => Value::Double(json.as_f64()?),
        FieldType::Str => Value::Str(json.as_str()?.into()),
        FieldType::Enum(symbols) => {
            let s = json.as_str()?;
            Value::Sym(symbols.get().iter().find(|sym| **sym == s)?)
        }
    })
}

fn expected(ty: FieldType) -> &'static str {
    match ty {
        FieldType::Bool => "a boolean",
        FieldType::Int => "an integer",
        FieldType::Num => "a number",
        FieldType::Str => "a string",
        FieldType::Enum(_) => "one of the enum's symbols",
    }
}
