//! The fields of each input record, by name, for feature filters and aggregated values: resolved
//! once when a definition is compiled, read per event through a plain function pointer (built-in
//! records) or a slot index (sources declared in configuration, [`crate::catalog`]).

use crate::catalog::Value;
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
    /// An enum, with its symbol table.
    Enum(Symbols),
    /// A number. Built-in records mark every number so (rules read their integers exactly
    /// through their own table); for declared sources, a `float` or `double`.
    Num,
    /// An `int` or `long` of a declared source (timestamps included); reads as a number in
    /// feature filters and as an integer in rules.
    Int,
    /// A boolean.
    Bool,
}

/// The symbol table of an enum field: one table per enum, so equal symbols share an address
/// and filters compare them by address.
#[derive(Clone, Copy)]
pub enum Symbols {
    /// A built-in enum's table (`symbols()` of the types in [`crate::event`]).
    Builtin(fn() -> &'static [&'static str]),
    /// A declared source's enum, built once when the source is registered.
    Declared(&'static [&'static str]),
}

impl Symbols {
    /// The symbols, in schema order.
    pub fn get(self) -> &'static [&'static str] {
        match self {
            Symbols::Builtin(table) => table(),
            Symbols::Declared(table) => table,
        }
    }
}

impl std::fmt::Debug for Symbols {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.get()).finish()
    }
}

/// Reads one field of an event.
#[derive(Debug, Clone, Copy)]
pub enum Accessor {
    /// A built-in record's field, through a function of its typed struct.
    Typed(for<'a> fn(&'a Event) -> Val<'a>),
    /// A declared source's field, by its slot in [`crate::catalog::DeclaredEvent::values`].
    Slot(u16),
}

impl Accessor {
    /// The field's value in `event` (`Null` when the event is of another record type).
    #[inline]
    pub fn read(self, event: &Event) -> Val<'_> {
        match self {
            Accessor::Typed(get) => get(event),
            Accessor::Slot(slot) => match event {
                Event::Declared(e) => match e.values.get(usize::from(slot)) {
                    Some(Value::Bool(b)) => Val::Bool(*b),
                    Some(Value::Int(n)) => Val::Num(*n as f64),
                    Some(Value::Double(n)) => Val::Num(*n),
                    Some(Value::Str(s)) => Val::Str(s),
                    Some(Value::Sym(s)) => Val::Sym(s),
                    Some(Value::Null) | None => Val::Null,
                },
                _ => Val::Null,
            },
        }
    }

    /// An integer field's exact value (`None` when absent or not an integer slot).
    pub fn int(self, event: &Event) -> Option<i64> {
        match (self, event) {
            (Accessor::Slot(slot), Event::Declared(e)) => match e.values.get(usize::from(slot)) {
                Some(Value::Int(n)) => Some(*n),
                _ => None,
            },
            _ => None,
        }
    }
}

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

/// The fields of a record type (none for a declared source that is not registered).
pub fn of(kind: EventKind) -> &'static [Field] {
    match kind {
        EventKind::Declared(id) => crate::catalog::get(id).map_or(&[], |d| d.fields),
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
