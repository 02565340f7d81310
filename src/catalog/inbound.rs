//! The inbound request as rules read it: `InboundRequest`, a row of every catalog that no topic
//! carries. `nbo-stream api` turns each `POST /v1/decisions` into one such record (a
//! [`DeclaredEvent`] of source [`EventKind::INBOUND`]), and the rules that name it as a trigger
//! decide on it as on any event: their conditions read `event.channel`, `event.placement` and
//! `event.intent` beside the customer's features and profile. Its schema is
//! `api/inbound_request.avsc`.

use super::{compile, Declared, DeclaredEvent, SourceSpec, Value};
use crate::event::{EpochMillis, EventKind, Text};
use std::sync::{Arc, OnceLock};

/// The record name rules give as their trigger.
pub const RECORD: &str = "InboundRequest";

/// The schema's text.
pub const SCHEMA: &str = include_str!("../../api/inbound_request.avsc");

/// The request's row, built once per process.
pub fn declared() -> &'static Arc<Declared> {
    static ROW: OnceLock<Arc<Declared>> = OnceLock::new();
    ROW.get_or_init(|| {
        let spec = SourceSpec {
            record: RECORD.into(),
            topic: "(inbound requests: no topic)".into(),
            schema: "api/inbound_request.avsc".into(),
            id: EventKind::INBOUND,
            event_id: "event_id".into(),
            event_time: "event_time".into(),
        };
        // The schema is the binary's own: a failure is a build defect, caught by the tests.
        Arc::new(compile(&spec, SCHEMA.to_string()).expect("api/inbound_request.avsc compiles"))
    })
}

/// One request, in the slots of the schema's fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The decision id given to the request.
    pub decision_id: Text,
    /// The customer.
    pub customer_id: Text,
    /// When it was received.
    pub at: EpochMillis,
    /// The channel asking.
    pub channel: Text,
    /// Where the offer would show.
    pub placement: Option<Text>,
    /// Why the customer came.
    pub intent: Option<Text>,
}

impl Request {
    /// The request as the event its rules decide on.
    pub fn event(self) -> crate::event::Event {
        let text = |t: Option<Text>| t.map_or(Value::Null, Value::Str);
        crate::event::Event::Declared(Box::new(DeclaredEvent {
            source: EventKind::INBOUND,
            customer_id: self.customer_id.clone(),
            event_id: self.decision_id.clone(),
            event_time: self.at,
            values: vec![
                Value::Str(self.decision_id),
                Value::Str(self.customer_id),
                Value::Int(self.at),
                Value::Str(self.channel),
                text(self.placement),
                text(self.intent),
            ],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_has_the_schema_fields_in_the_order_requests_fill_them() {
        let row = declared().row();
        assert_eq!(row.record, RECORD);
        assert_eq!(
            row.field_names(),
            [
                "event_id",
                "customer_id",
                "event_time",
                "channel",
                "placement",
                "intent"
            ]
        );
        let catalog = super::super::Catalog::default();
        assert_eq!(
            catalog.kind_of(RECORD),
            Some(EventKind::Declared(EventKind::INBOUND))
        );
        assert!(
            catalog.kinds().all(|k| k != row.kind),
            "no topic carries it"
        );
    }
}
