//! The fields of each input record, by name, for feature filters and aggregated values: resolved
//! once when a definition is compiled, read per event through a plain function pointer.

use crate::event::*;

/// A field's value in one event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    /// Absent (a null union branch).
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (ints, longs and doubles all read as f64).
    Num(f64),
    /// A string.
    Str(&'a str),
    /// An enum symbol: always an element of the enum's `symbols()` table.
    Sym(&'static str),
}

/// What a field holds, for checking expressions when they are compiled.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// A string.
    Str,
    /// An enum; the function returns its symbol table.
    Enum(fn() -> &'static [&'static str]),
    /// A number.
    Num,
    /// A boolean.
    Bool,
}

/// Reads one field of an event.
pub type Accessor = for<'a> fn(&'a Event) -> Val<'a>;

/// One field of a record type.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Field name, as in the Avro schema.
    pub name: &'static str,
    /// Type of the value.
    pub ty: FieldType,
    /// Whether it may be null.
    pub nullable: bool,
    /// How to read it.
    pub get: Accessor,
}

macro_rules! fields {
    ($variant:ident { $($name:ident : $kind:tt),+ $(,)? }) => {
        &[$(fields!(@one $variant $name $kind)),+]
    };
    (@one $variant:ident $name:ident str) => {
        Field { name: stringify!($name), ty: FieldType::Str, nullable: false,
            get: |e| match e { Event::$variant(x) => Val::Str(&x.$name), _ => Val::Null } }
    };
    (@one $variant:ident $name:ident opt_str) => {
        Field { name: stringify!($name), ty: FieldType::Str, nullable: true,
            get: |e| match e { Event::$variant(x) => x.$name.as_deref().map_or(Val::Null, Val::Str), _ => Val::Null } }
    };
    (@one $variant:ident $name:ident num) => {
        Field { name: stringify!($name), ty: FieldType::Num, nullable: false,
            get: |e| match e { Event::$variant(x) => Val::Num(x.$name as f64), _ => Val::Null } }
    };
    (@one $variant:ident $name:ident opt_num) => {
        Field { name: stringify!($name), ty: FieldType::Num, nullable: true,
            get: |e| match e { Event::$variant(x) => x.$name.map_or(Val::Null, |v| Val::Num(v as f64)), _ => Val::Null } }
    };
    (@one $variant:ident $name:ident bool) => {
        Field { name: stringify!($name), ty: FieldType::Bool, nullable: false,
            get: |e| match e { Event::$variant(x) => Val::Bool(x.$name), _ => Val::Null } }
    };
    (@one $variant:ident $name:ident ($enum:ty)) => {
        Field { name: stringify!($name), ty: FieldType::Enum(<$enum>::symbols), nullable: false,
            get: |e| match e { Event::$variant(x) => Val::Sym(x.$name.as_str()), _ => Val::Null } }
    };
    (@one $variant:ident $name:ident (opt $enum:ty)) => {
        Field { name: stringify!($name), ty: FieldType::Enum(<$enum>::symbols), nullable: true,
            get: |e| match e { Event::$variant(x) => x.$name.map_or(Val::Null, |v| Val::Sym(v.as_str())), _ => Val::Null } }
    };
}

const TRANSACTION: &[Field] = fields!(Transaction {
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
const CLICKSTREAM: &[Field] = fields!(Clickstream {
    event_id: str, customer_id: str, event_time: num, session_id: str, page_url: str,
    action: (ClickAction), product_category: (opt ProductCategory), dwell_ms: opt_num,
});
const APP: &[Field] = fields!(App {
    event_id: str, customer_id: str, event_time: num, device_id: str, platform: (AppPlatform),
    app_version: str, screen: str, action: (AppAction), product_category: (opt ProductCategory),
    latitude: opt_num, longitude: opt_num,
});
const SOCIAL: &[Field] = fields!(Social {
    event_id: str,
    customer_id: str,
    event_time: num,
    platform: str,
    interaction: (SocialInteraction),
    sentiment: num,
    topic: opt_str,
    mentions_bank: bool,
});
const FEEDBACK: &[Field] = fields!(Feedback {
    event_id: str, customer_id: str, event_time: num, channel: (FeedbackChannel),
    kind: (FeedbackKind), product_category: (opt ProductCategory), satisfaction: opt_num,
});
const PARTNER: &[Field] = fields!(Partner {
    event_id: str,
    customer_id: str,
    event_time: num,
    partner: str,
    category: str,
    amount_minor: num,
    currency: str,
});
const PROFILE: &[Field] = fields!(Profile {
    customer_id: str,
    updated_at: num,
    lifecycle_stage: (LifecycleStage),
    segment: str,
    credit_score: opt_num,
    consent_marketing: bool,
    consent_profiling: bool,
});
const OFFER_RESPONSE: &[Field] = fields!(OfferResponse {
    event_id: str,
    customer_id: str,
    event_time: num,
    offer_id: str,
    response: (OfferResponseKind),
});
const ERASURE: &[Field] = fields!(Erasure {
    request_id: str,
    customer_id: str,
    requested_at: num
});

/// The fields of a record type.
pub fn of(kind: EventKind) -> &'static [Field] {
    match kind {
        EventKind::Transaction => TRANSACTION,
        EventKind::Clickstream => CLICKSTREAM,
        EventKind::App => APP,
        EventKind::Social => SOCIAL,
        EventKind::Feedback => FEEDBACK,
        EventKind::Partner => PARTNER,
        EventKind::Profile => PROFILE,
        EventKind::OfferResponse => OFFER_RESPONSE,
        EventKind::Erasure => ERASURE,
    }
}

/// Looks a field up by name.
pub fn find(kind: EventKind, name: &str) -> Option<&'static Field> {
    of(kind).iter().find(|f| f.name == name)
}
