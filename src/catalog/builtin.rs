//! The twelve built-in input records: the catalog's first rows, coded in the binary with typed
//! structs ([`crate::event`]) and typed decoders. Each row names its record, its default topic,
//! its schema (from [`super::schemas`]) and its fields; everything else that speaks of a built-in
//! record by name (features, rules, the codec, recorded files, the registry tooling) reads it
//! here or through the [`super::Catalog`].
//!
//! Adding a thirteenth built-in record: its struct and enum types in `event/records.rs`, its line
//! in `builtin_records!` of `event/mod.rs` (which makes its `Event` variant and `EventKind`), its schema in `avro_schemas/` with a line in
//! [`super::schemas::ALL`], its field table and row below, its topic under `[topics]`, and its
//! arms where the typed fast paths match on the kind (the README lists them).

use super::field::{Accessor, Field, FieldType, Symbols, Val};
use super::schemas::{self, SchemaEntry};
use crate::event::*;

/// One built-in input record.
#[derive(Debug)]
pub struct Builtin {
    /// Its kind: the row's position is [`EventKind::index`].
    pub kind: EventKind,
    /// The topic it arrives on unless `[topics]` names another (the contract's name).
    pub topic: &'static str,
    /// Its reader schema; the schema's record name is the record's name.
    pub schema: &'static SchemaEntry,
    /// Its fields in schema order, read from the typed struct.
    pub fields: &'static [Field],
}

impl Builtin {
    /// The Avro record name (e.g. `TransactionEvent`).
    pub fn record(&self) -> &'static str {
        self.schema.record
    }
}

/// The rows, in [`EventKind::ALL`] order.
pub static ROWS: [Builtin; BUILTIN_KINDS] = [
    row(
        EventKind::Transaction,
        "bank.transactions.v1",
        0,
        TRANSACTION,
    ),
    row(
        EventKind::Clickstream,
        "bank.clickstream.v1",
        1,
        CLICKSTREAM,
    ),
    row(EventKind::App, "bank.app.v1", 2, APP),
    row(EventKind::Social, "bank.social.v1", 3, SOCIAL),
    row(EventKind::Feedback, "bank.feedback.v1", 4, FEEDBACK),
    row(EventKind::Partner, "bank.partner.v1", 5, PARTNER),
    row(EventKind::Profile, "bank.customer-profile.v1", 6, PROFILE),
    row(
        EventKind::OfferResponse,
        "bank.offer-responses.v1",
        7,
        OFFER_RESPONSE,
    ),
    row(EventKind::Erasure, "bank.erasure-requests.v1", 8, ERASURE),
    row(
        EventKind::ProductOpened,
        "bank.product-openings.v1",
        9,
        PRODUCT_OPENED,
    ),
    row(
        EventKind::InboundContact,
        "bank.inbound-contacts.v1",
        10,
        INBOUND_CONTACT,
    ),
    row(
        EventKind::AlertOutcome,
        "bank.alert-outcomes.v1",
        11,
        ALERT_OUTCOME,
    ),
];

const fn row(
    kind: EventKind,
    topic: &'static str,
    schema: usize,
    fields: &'static [Field],
) -> Builtin {
    Builtin {
        kind,
        topic,
        schema: &schemas::ALL[schema],
        fields,
    }
}

/// The row of a built-in kind (none for a declared source: see [`super::Catalog::row`]).
pub fn row_of(kind: EventKind) -> Option<&'static Builtin> {
    ROWS.get(kind.index()).filter(|r| r.kind == kind)
}

/// The fields of a built-in record; a declared source's are its catalog row's
/// ([`super::Catalog::fields`]), so this answers none for one.
pub fn fields(kind: EventKind) -> &'static [Field] {
    row_of(kind).map_or(&[], |r| r.fields)
}

/// Looks a built-in record's field up by name (see [`fields`]).
pub fn find(kind: EventKind, name: &str) -> Option<&'static Field> {
    fields(kind).iter().find(|f| f.name == name)
}

impl EventKind {
    /// The Avro record name of a built-in kind; a declared source's name is in the
    /// configuration's [`super::Catalog`] ([`super::Catalog::record_name`]), and this answers
    /// `"(declared source)"` for one.
    pub fn record_name(self) -> &'static str {
        row_of(self).map_or("(declared source)", Builtin::record)
    }

    /// The contract's topic for a built-in kind (`[topics]` may name another); for a declared
    /// source see [`super::Catalog::topic`].
    pub fn default_topic(self) -> &'static str {
        row_of(self).map_or("(declared source)", |r| r.topic)
    }
}

macro_rules! fields {
    ($variant:ident { $($name:ident : $kind:tt),+ $(,)? }) => {
        &[$(fields!(@one $variant $name $kind)),+]
    };
    (@one $variant:ident $name:ident str) => {
        Field { name: stringify!($name), ty: FieldType::Str, nullable: false,
            get: Accessor::Typed(|e| match e { Event::$variant(x) => Val::Str(&x.$name), _ => Val::Null }) }
    };
    (@one $variant:ident $name:ident opt_str) => {
        Field { name: stringify!($name), ty: FieldType::Str, nullable: true,
            get: Accessor::Typed(|e| match e { Event::$variant(x) => x.$name.as_deref().map_or(Val::Null, Val::Str), _ => Val::Null }) }
    };
    (@one $variant:ident $name:ident num) => {
        Field { name: stringify!($name), ty: FieldType::Num, nullable: false,
            get: Accessor::Typed(|e| match e { Event::$variant(x) => Val::Num(x.$name as f64), _ => Val::Null }) }
    };
    (@one $variant:ident $name:ident opt_num) => {
        Field { name: stringify!($name), ty: FieldType::Num, nullable: true,
            get: Accessor::Typed(|e| match e { Event::$variant(x) => x.$name.map_or(Val::Null, |v| Val::Num(v as f64)), _ => Val::Null }) }
    };
    (@one $variant:ident $name:ident bool) => {
        Field { name: stringify!($name), ty: FieldType::Bool, nullable: false,
            get: Accessor::Typed(|e| match e { Event::$variant(x) => Val::Bool(x.$name), _ => Val::Null }) }
    };
    (@one $variant:ident $name:ident ($enum:ty)) => {
        Field { name: stringify!($name), ty: FieldType::Enum(Symbols::Builtin(<$enum>::symbols)), nullable: false,
            get: Accessor::Typed(|e| match e { Event::$variant(x) => Val::Sym(x.$name.as_str()), _ => Val::Null }) }
    };
    (@one $variant:ident $name:ident (opt $enum:ty)) => {
        Field { name: stringify!($name), ty: FieldType::Enum(Symbols::Builtin(<$enum>::symbols)), nullable: true,
            get: Accessor::Typed(|e| match e { Event::$variant(x) => x.$name.map_or(Val::Null, |v| Val::Sym(v.as_str())), _ => Val::Null }) }
    };
}

static TRANSACTION: &[Field] = fields!(Transaction {
    event_id: str,
    customer_id: str,
    event_time: num,
    account_id: str,
    txn_type: (TxnType),
    amount_minor: num,
    currency: str,
    payment_method: (PaymentMethod),
    merchant_category: opt_str,
    channel: (TxnChannel),
    country: str,
    balance_after_minor: opt_num,
});
static CLICKSTREAM: &[Field] = fields!(Clickstream {
    event_id: str, customer_id: str, event_time: num, session_id: str, page_url: str,
    action: (ClickAction), product_category: (opt ProductCategory), dwell_ms: opt_num,
});
static APP: &[Field] = fields!(App {
    event_id: str, customer_id: str, event_time: num, device_id: str, platform: (AppPlatform),
    app_version: str, screen: str, action: (AppAction), product_category: (opt ProductCategory),
    latitude: opt_num, longitude: opt_num,
});
static SOCIAL: &[Field] = fields!(Social {
    event_id: str,
    customer_id: str,
    event_time: num,
    platform: str,
    interaction: (SocialInteraction),
    sentiment: num,
    topic: opt_str,
    mentions_bank: bool,
});
static FEEDBACK: &[Field] = fields!(Feedback {
    event_id: str, customer_id: str, event_time: num, channel: (FeedbackChannel),
    kind: (FeedbackKind), product_category: (opt ProductCategory), satisfaction: opt_num,
});
static PARTNER: &[Field] = fields!(Partner {
    event_id: str,
    customer_id: str,
    event_time: num,
    partner: str,
    category: str,
    amount_minor: num,
    currency: str,
});
static PROFILE: &[Field] = fields!(Profile {
    customer_id: str,
    updated_at: num,
    lifecycle_stage: (LifecycleStage),
    segment: str,
    credit_score: opt_num,
    consent_marketing: bool,
    consent_profiling: bool,
});
static OFFER_RESPONSE: &[Field] = fields!(OfferResponse {
    event_id: str,
    customer_id: str,
    event_time: num,
    offer_id: str,
    response: (OfferResponseKind),
});
static ERASURE: &[Field] = fields!(Erasure {
    request_id: str,
    customer_id: str,
    requested_at: num
});
static PRODUCT_OPENED: &[Field] = fields!(ProductOpened {
    event_id: str,
    customer_id: str,
    event_time: num,
    product_category: (ProductCategory),
    account_id: str,
    channel: str,
    offer_id: opt_str,
});
static INBOUND_CONTACT: &[Field] = fields!(InboundContact {
    event_id: str,
    customer_id: str,
    event_time: num,
    decision_id: str,
    channel: str,
    rule_id: str,
    rule_version: num,
    product_category: (ProductCategory),
    propensity: num,
    outcome: (InboundContactKind),
});
static ALERT_OUTCOME: &[Field] = fields!(AlertOutcome {
    event_id: str,
    customer_id: str,
    event_time: num,
    alert_id: str,
    label: (AlertLabel),
    fraud_party: (opt FraudParty),
    amount_minor: opt_num,
    currency: opt_str,
    closed_by: str,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_row_sits_at_its_kinds_index_with_its_own_schema() {
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            let row = &ROWS[i];
            assert_eq!(row.kind, kind);
            assert_eq!(kind.index(), i);
            let schema: serde_json::Value = serde_json::from_str(row.schema.text).unwrap();
            assert_eq!(schema["name"], row.record(), "{kind:?}");
            let names: Vec<&str> = schema["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap())
                .filter(|n| *n != "contact_channels")
                .collect();
            let ours: Vec<&str> = row.fields.iter().map(|f| f.name).collect();
            assert_eq!(ours, names, "{kind:?}: the field table follows the schema");
        }
        assert!(row_of(EventKind::Declared(200)).is_none());
        assert_eq!(EventKind::Declared(200).record_name(), "(declared source)");
    }
}
