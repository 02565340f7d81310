//! The Avro schemas of the contract, compiled into the binary from `avro_schemas/` so that
//! `demo`, `generate` and `run` need no files beside the executable: the built-in input records'
//! (the catalog's first rows, [`super::builtin`]) and the outputs'.

use crate::event::EventKind;

/// One record of the contract: its Avro name, its schema text and its default registry id.
#[derive(Debug, Clone, Copy)]
pub struct SchemaEntry {
    /// Avro record name (e.g. `TransactionEvent`).
    pub record: &'static str,
    /// File name under `avro_schemas/`.
    pub file: &'static str,
    /// The schema JSON.
    pub text: &'static str,
    /// Default Confluent schema id used when the config names none.
    pub default_id: u32,
}

macro_rules! entry {
    ($record:literal, $file:literal, $id:literal) => {
        SchemaEntry {
            record: $record,
            file: $file,
            text: include_str!(concat!("../../avro_schemas/", $file)),
            default_id: $id,
        }
    };
}

/// Every record in DESIGN.md: the twelve inputs in [`EventKind::ALL`] order, then the outputs.
pub const ALL: &[SchemaEntry] = &[
    entry!("TransactionEvent", "transaction_event.avsc", 1),
    entry!("ClickstreamEvent", "clickstream_event.avsc", 2),
    entry!("AppEvent", "app_event.avsc", 3),
    entry!("SocialEvent", "social_event.avsc", 4),
    entry!("FeedbackEvent", "feedback_event.avsc", 5),
    entry!("PartnerEvent", "partner_event.avsc", 6),
    entry!("CustomerProfile", "customer_profile.avsc", 7),
    entry!("OfferResponse", "offer_response.avsc", 8),
    entry!("ErasureRequest", "erasure_request.avsc", 9),
    entry!("ProductOpened", "product_opened.avsc", 14),
    entry!("InboundContact", "inbound_contact.avsc", 15),
    entry!("AlertOutcome", "alert_outcome.avsc", 16),
    entry!("NextBestOffer", "next_best_offer.avsc", 10),
    entry!("RiskAlert", "risk_alert.avsc", 11),
    entry!("DecisionAudit", "decision_audit.avsc", 12),
    entry!("DeadLetter", "dead_letter.avsc", 13),
];

/// Looks a record up by its Avro name.
pub fn by_record(record: &str) -> Option<&'static SchemaEntry> {
    ALL.iter().find(|e| e.record == record)
}

/// The schema of a built-in input record: the first twelve entries of [`ALL`] are the inputs, in
/// [`EventKind::ALL`] order (a declared source's schema is its catalog row's).
pub fn input(kind: EventKind) -> Option<&'static SchemaEntry> {
    ALL[..EventKind::ALL.len()]
        .get(kind.index())
        .filter(|_| !matches!(kind, EventKind::Declared(_)))
}

/// The schema of a built-in input record, for code that holds one.
///
/// # Panics
/// For a declared source, which has no built-in schema: code that may meet one asks
/// [`input`] or the [`super::Catalog`].
pub fn for_kind(kind: EventKind) -> &'static SchemaEntry {
    input(kind).unwrap_or_else(|| panic!("{kind:?} is not a built-in record; ask the catalog"))
}
