//! Domain events: what the decoder produces and the operator consumes.
//!
//! Field names and enum symbols follow the Avro schemas in `avro_schemas/` exactly (the contract in
//! DESIGN.md); serde derives map them one to one, so the codec needs no hand-written field mapping.

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC), the unit of every `timestamp-millis` field.
pub type EpochMillis = i64;

/// A string field of an input event. Ids, codes and short names (up to 24 bytes) are stored
/// inline, so decoding a record allocates only for long strings (`cargo bench --bench operator`).
pub type Text = compact_str::CompactString;

macro_rules! avro_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $symbol:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[allow(missing_docs)]
        pub enum $name { $(#[serde(rename = $symbol)] $variant),+ }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Every symbol, in schema order: one static table, so a symbol has one address.
            pub fn symbols() -> &'static [&'static str] {
                static SYMBOLS: &[&str] = &[$($symbol),+];
                SYMBOLS
            }

            /// The Avro enum symbol (UPPER_SNAKE), as written in the schema.
            /// Always an element of [`Self::symbols`], so filters compare symbols by address.
            pub fn as_str(self) -> &'static str {
                Self::symbols()[self as usize]
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

avro_enum!(
    /// Kind of a transaction; the direction of money follows from it.
    TxnType { CardPayment = "CARD_PAYMENT", TransferIn = "TRANSFER_IN", TransferOut = "TRANSFER_OUT", Deposit = "DEPOSIT", Withdrawal = "WITHDRAWAL", Salary = "SALARY", LoanRepayment = "LOAN_REPAYMENT" }
);
avro_enum!(
    /// How a transaction was paid.
    PaymentMethod { CreditCard = "CREDIT_CARD", DebitCard = "DEBIT_CARD", Account = "ACCOUNT", Cash = "CASH", Wallet = "WALLET" }
);
avro_enum!(
    /// Where a transaction was made.
    TxnChannel { Pos = "POS", Online = "ONLINE", Atm = "ATM", Branch = "BRANCH", Mobile = "MOBILE" }
);
avro_enum!(
    /// What a web visitor did.
    ClickAction { PageView = "PAGE_VIEW", Click = "CLICK", FormStart = "FORM_START", FormSubmit = "FORM_SUBMIT", Search = "SEARCH" }
);
avro_enum!(
    /// The bank's product families.
    ProductCategory { Loan = "LOAN", Mortgage = "MORTGAGE", CreditCard = "CREDIT_CARD", Wealth = "WEALTH", Insurance = "INSURANCE", Savings = "SAVINGS", Other = "OTHER" }
);
avro_enum!(
    /// Mobile-app platform.
    AppPlatform { Ios = "IOS", Android = "ANDROID", Harmony = "HARMONY", Web = "WEB" }
);
avro_enum!(
    /// What a mobile-app user did.
    AppAction { ScreenView = "SCREEN_VIEW", Tap = "TAP", Login = "LOGIN", LoginFailed = "LOGIN_FAILED", ProductView = "PRODUCT_VIEW", ApplyStart = "APPLY_START" }
);
avro_enum!(
    /// Kind of social-media interaction.
    SocialInteraction { Post = "POST", Comment = "COMMENT", Like = "LIKE", Share = "SHARE", Mention = "MENTION" }
);
avro_enum!(
    /// Channel a piece of feedback came through.
    FeedbackChannel { Phone = "PHONE", Email = "EMAIL", Chat = "CHAT", Survey = "SURVEY", Branch = "BRANCH" }
);
avro_enum!(
    /// Kind of feedback.
    FeedbackKind { Complaint = "COMPLAINT", Praise = "PRAISE", Question = "QUESTION", SurveyResponse = "SURVEY_RESPONSE" }
);
avro_enum!(
    /// Customer lifecycle stage from the CRM.
    LifecycleStage { Prospect = "PROSPECT", New = "NEW", Growing = "GROWING", Mature = "MATURE", AtRisk = "AT_RISK", Dormant = "DORMANT" }
);
avro_enum!(
    /// A channel the bank may contact the customer through.
    ContactChannel { Email = "EMAIL", Sms = "SMS", Push = "PUSH", Call = "CALL", Branch = "BRANCH" }
);
avro_enum!(
    /// What a customer did with an offer.
    OfferResponseKind { Delivered = "DELIVERED", Clicked = "CLICKED", Accepted = "ACCEPTED", Declined = "DECLINED" }
);
avro_enum!(
    /// Family of a risk alert.
    AlertKind { Fraud = "FRAUD", CreditRisk = "CREDIT_RISK", ComplaintEscalation = "COMPLAINT_ESCALATION", Attrition = "ATTRITION" }
);
avro_enum!(
    /// Severity of a risk alert.
    Severity { Low = "LOW", Medium = "MEDIUM", High = "HIGH", Critical = "CRITICAL" }
);
avro_enum!(
    /// Outcome of one decision, as recorded in the audit.
    DecisionOutcome { Offered = "OFFERED", Alerted = "ALERTED", SuppressedNoConsent = "SUPPRESSED_NO_CONSENT", SuppressedContactPolicy = "SUPPRESSED_CONTACT_POLICY", SuppressedCooldown = "SUPPRESSED_COOLDOWN", SuppressedRisk = "SUPPRESSED_RISK", ControlGroup = "CONTROL_GROUP", Shadow = "SHADOW", RuleInstalled = "RULE_INSTALLED", RuleDeleted = "RULE_DELETED", RuleRejected = "RULE_REJECTED", ConsoleLookup = "CONSOLE_LOOKUP", RulePublished = "RULE_PUBLISHED", RuleBacktested = "RULE_BACKTESTED" }
);

/// A card or account transaction (`bank.transactions.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionEvent {
    /// Unique id set by the producing system.
    pub event_id: Text,
    /// Bank customer id (also the Kafka key).
    pub customer_id: Text,
    /// When it happened (UTC millis).
    pub event_time: EpochMillis,
    /// Account the transaction booked on.
    pub account_id: Text,
    /// Kind of transaction.
    pub txn_type: TxnType,
    /// Amount in minor units, positive.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: Text,
    /// How it was paid.
    pub payment_method: PaymentMethod,
    /// Merchant category, if a merchant was involved.
    pub merchant_category: Option<Text>,
    /// Where it was made.
    pub channel: TxnChannel,
    /// ISO 3166 alpha-2 country.
    pub country: Text,
    /// Balance after the transaction, minor units.
    pub balance_after_minor: Option<i64>,
}

/// A web clickstream event (`bank.clickstream.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClickstreamEvent {
    /// Unique id set by the producing system.
    pub event_id: Text,
    /// Bank customer id.
    pub customer_id: Text,
    /// When it happened (UTC millis).
    pub event_time: EpochMillis,
    /// Web session.
    pub session_id: Text,
    /// Page visited.
    pub page_url: Text,
    /// What the visitor did.
    pub action: ClickAction,
    /// Product the page is about, if any.
    pub product_category: Option<ProductCategory>,
    /// Time on page.
    pub dwell_ms: Option<i64>,
}

/// A mobile-app event (`bank.app.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppEvent {
    /// Unique id set by the producing system.
    pub event_id: Text,
    /// Bank customer id.
    pub customer_id: Text,
    /// When it happened (UTC millis).
    pub event_time: EpochMillis,
    /// Device identifier.
    pub device_id: Text,
    /// Platform of the app.
    pub platform: AppPlatform,
    /// App version string.
    pub app_version: Text,
    /// Screen name.
    pub screen: Text,
    /// What the user did.
    pub action: AppAction,
    /// Product the screen is about, if any.
    pub product_category: Option<ProductCategory>,
    /// Latitude, if shared.
    pub latitude: Option<f64>,
    /// Longitude, if shared.
    pub longitude: Option<f64>,
}

/// A social-media interaction (`bank.social.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SocialEvent {
    /// Unique id set by the producing system.
    pub event_id: Text,
    /// Bank customer id.
    pub customer_id: Text,
    /// When it happened (UTC millis).
    pub event_time: EpochMillis,
    /// Social network.
    pub platform: Text,
    /// Kind of interaction.
    pub interaction: SocialInteraction,
    /// Sentiment in -1..1.
    pub sentiment: f64,
    /// Topic, if classified.
    pub topic: Option<Text>,
    /// Whether the bank is mentioned.
    pub mentions_bank: bool,
}

/// Customer feedback (`bank.feedback.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackEvent {
    /// Unique id set by the producing system.
    pub event_id: Text,
    /// Bank customer id.
    pub customer_id: Text,
    /// When it happened (UTC millis).
    pub event_time: EpochMillis,
    /// Channel it came through.
    pub channel: FeedbackChannel,
    /// Kind of feedback.
    pub kind: FeedbackKind,
    /// Product concerned, if any.
    pub product_category: Option<ProductCategory>,
    /// Satisfaction 1..5, if given.
    pub satisfaction: Option<i32>,
}

/// Partner-reported spend (`bank.partner.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartnerEvent {
    /// Unique id set by the producing system.
    pub event_id: Text,
    /// Bank customer id.
    pub customer_id: Text,
    /// When it happened (UTC millis).
    pub event_time: EpochMillis,
    /// Partner name.
    pub partner: Text,
    /// Partner's category (e.g. TRAVEL, CAR).
    pub category: Text,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: Text,
}

/// CRM profile, credit data and consent (`bank.customer-profile.v1`, compacted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerProfile {
    /// Bank customer id.
    pub customer_id: Text,
    /// When the CRM last changed it (UTC millis).
    pub updated_at: EpochMillis,
    /// Lifecycle stage.
    pub lifecycle_stage: LifecycleStage,
    /// Marketing segment.
    pub segment: Text,
    /// Credit score, if known.
    pub credit_score: Option<i32>,
    /// Customer agreed to marketing contact.
    pub consent_marketing: bool,
    /// Customer agreed to profiling.
    pub consent_profiling: bool,
    /// Channels the customer permits.
    pub contact_channels: Vec<ContactChannel>,
}

/// Feedback from marketing about an offer (`bank.offer-responses.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OfferResponse {
    /// Unique id set by the producing system.
    pub event_id: Text,
    /// Bank customer id.
    pub customer_id: Text,
    /// When it happened (UTC millis).
    pub event_time: EpochMillis,
    /// The offer responded to.
    pub offer_id: Text,
    /// The response.
    pub response: OfferResponseKind,
}

/// A product the customer opened, from the CRM (`bank.product-openings.v1`): a conversion,
/// whether an offer led to it or not. Uplift counts it against the offers of its product family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductOpened {
    /// Unique id set by the producing system.
    pub event_id: Text,
    /// Bank customer id.
    pub customer_id: Text,
    /// When it was opened (UTC millis).
    pub event_time: EpochMillis,
    /// The product family opened.
    pub product_category: ProductCategory,
    /// The new account or contract.
    pub account_id: Text,
    /// Where it was opened, as the CRM names it (`BRANCH`, `WEB`, `APP`, `OFFER`...).
    pub channel: Text,
    /// The offer it answered, when the CRM knows one.
    pub offer_id: Option<Text>,
}

/// A right-to-erasure request (`bank.erasure-requests.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureRequest {
    /// Request id.
    pub request_id: Text,
    /// Customer to erase.
    pub customer_id: Text,
    /// When it was requested (UTC millis).
    pub requested_at: EpochMillis,
}

/// One value of a declared record's field.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A null branch of an optional field.
    Null,
    /// An Avro `boolean`.
    Bool(bool),
    /// An Avro `int` or `long` (timestamps included).
    Int(i64),
    /// An Avro `float` or `double`.
    Double(f64),
    /// An Avro `string`.
    Str(Text),
    /// An Avro enum symbol: an element of the source's symbol table for the field, so filters
    /// compare symbols by address.
    Sym(&'static str),
}

/// A decoded record of a source declared in `[[source]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredEvent {
    /// The source's `id` (see `SourceSpec::id` in the catalog).
    pub source: u8,
    /// The customer: the record's Kafka key.
    pub customer_id: Text,
    /// The field named by the source's `event_id`.
    pub event_id: Text,
    /// The field named by the source's `event_time`, UTC millis.
    pub event_time: EpochMillis,
    /// Every top-level field of the reader schema, in schema order.
    pub values: Vec<Value>,
}

/// The built-in input records, once: each an [`Event`] and [`EventKind`] variant with its typed
/// struct, in the order of the input topics (which is [`EventKind::index`]). A module that needs
/// a line per built-in record (the codec's typed decoders, recorded files, the generator's
/// encoder) expands its own from this list: `builtin_records!(its_macro)` calls
/// `its_macro! { Transaction(TransactionEvent), ... }`. The catalog's rows
/// (`catalog/builtin.rs`) give each its record name, topic, schema and fields.
#[macro_export]
#[doc(hidden)]
macro_rules! builtin_records {
    ($callback:ident) => {
        $callback! {
            Transaction(TransactionEvent),
            Clickstream(ClickstreamEvent),
            App(AppEvent),
            Social(SocialEvent),
            Feedback(FeedbackEvent),
            Partner(PartnerEvent),
            Profile(CustomerProfile),
            OfferResponse(OfferResponse),
            Erasure(ErasureRequest),
            ProductOpened(ProductOpened),
        }
    };
}
pub use builtin_records;

/// What every built-in record's struct answers, so [`Event`] answers it for each.
pub trait BuiltinRecord {
    /// Bank customer id (also the Kafka key).
    fn customer_id(&self) -> &str;
    /// Event time, UTC millis.
    fn event_time(&self) -> EpochMillis;
    /// A stable id of the event.
    fn event_id(&self) -> std::borrow::Cow<'_, str>;
}

/// [`BuiltinRecord`] for structs with `event_id`, `customer_id` and `event_time` fields.
macro_rules! activity_record {
    ($($ty:ty),+ $(,)?) => {$(
        impl BuiltinRecord for $ty {
            #[inline]
            fn customer_id(&self) -> &str {
                &self.customer_id
            }
            #[inline]
            fn event_time(&self) -> EpochMillis {
                self.event_time
            }
            #[inline]
            fn event_id(&self) -> std::borrow::Cow<'_, str> {
                std::borrow::Cow::Borrowed(&self.event_id)
            }
        }
    )+};
}

activity_record!(
    TransactionEvent,
    ClickstreamEvent,
    AppEvent,
    SocialEvent,
    FeedbackEvent,
    PartnerEvent,
    OfferResponse,
    ProductOpened,
);

impl BuiltinRecord for CustomerProfile {
    fn customer_id(&self) -> &str {
        &self.customer_id
    }
    /// When the CRM last changed it.
    fn event_time(&self) -> EpochMillis {
        self.updated_at
    }
    /// Derived from the customer and the change time: a profile carries no id of its own.
    fn event_id(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Owned(format!("profile:{}:{}", self.customer_id, self.updated_at))
    }
}

impl BuiltinRecord for ErasureRequest {
    fn customer_id(&self) -> &str {
        &self.customer_id
    }
    /// When it was requested.
    fn event_time(&self) -> EpochMillis {
        self.requested_at
    }
    /// The request id.
    fn event_id(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.request_id)
    }
}

impl BuiltinRecord for DeclaredEvent {
    fn customer_id(&self) -> &str {
        &self.customer_id
    }
    fn event_time(&self) -> EpochMillis {
        self.event_time
    }
    fn event_id(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(&self.event_id)
    }
}

macro_rules! events {
    ($($variant:ident($ty:ident)),+ $(,)?) => {
        /// Every input record, as the operator sees it.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $(
                #[doc = concat!("A `", stringify!($ty), "`.")]
                $variant($ty),
            )+
            /// From a source declared in configuration (`[[source]]`, see the catalog).
            Declared(Box<DeclaredEvent>),
        }

        /// The record type of an input event; also what a rule or feature names as its source.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum EventKind {
            $(
                #[doc = concat!("`", stringify!($ty), "`.")]
                $variant,
            )+
            /// A source declared in configuration, by its `id` (16..=255; see the catalog).
            Declared(u8),
        }

        /// A built-in kind's position in the list.
        #[allow(clippy::enum_variant_names)]
        enum Position {
            $($variant),+
        }

        impl EventKind {
            /// Every built-in kind, in the order of the input topics. Declared sources follow,
            /// from the configuration's catalog (`Catalog`); names, topics and fields are its rows.
            pub const ALL: [EventKind; BUILTIN_KINDS] = [$(EventKind::$variant),+];

            /// Position in [`EventKind::ALL`] for a built-in kind, the `id` for a declared one
            /// (below [`EventKind::TABLE_LEN`]); it indexes per-kind tables and tags applied
            /// offsets in state.
            #[inline]
            pub fn index(self) -> usize {
                match self {
                    $(EventKind::$variant => Position::$variant as usize,)+
                    EventKind::Declared(id) => usize::from(id),
                }
            }
        }

        impl Event {
            /// The record type.
            #[inline]
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Event::$variant(_) => EventKind::$variant,)+
                    Event::Declared(e) => EventKind::Declared(e.source),
                }
            }

            /// The customer the event belongs to.
            pub fn customer_id(&self) -> &str {
                match self {
                    $(Event::$variant(e) => e.customer_id(),)+
                    Event::Declared(e) => e.customer_id(),
                }
            }

            /// Event time (for profiles `updated_at`, for erasures `requested_at`).
            pub fn event_time(&self) -> EpochMillis {
                match self {
                    $(Event::$variant(e) => e.event_time(),)+
                    Event::Declared(e) => e.event_time(),
                }
            }

            /// A stable id of the event (for profiles and erasures one is derived from their
            /// fields).
            pub fn event_id(&self) -> std::borrow::Cow<'_, str> {
                match self {
                    $(Event::$variant(e) => e.event_id(),)+
                    Event::Declared(e) => e.event_id(),
                }
            }
        }
    };
}

/// How many built-in records there are.
pub const BUILTIN_KINDS: usize = {
    macro_rules! count {
        ($($variant:ident($ty:ident)),+ $(,)?) => {
            [$(stringify!($variant)),+].len()
        };
    }
    builtin_records!(count)
};

builtin_records!(events);

impl EventKind {
    /// Bound of [`EventKind::index`].
    pub const TABLE_LEN: usize = 256;

    /// The kind at an index ([`EventKind::index`] reversed): a built-in kind, or the declared
    /// source with that id (whether a configuration declares it is the catalog's
    /// to say).
    pub fn from_index(index: usize) -> Option<EventKind> {
        EventKind::ALL.get(index).copied().or_else(|| {
            let id = u8::try_from(index).ok()?;
            (id >= Self::MIN_DECLARED || id == Self::INBOUND).then_some(EventKind::Declared(id))
        })
    }

    /// The smallest id a declared source may take (below it sit the built-in kinds).
    pub const MIN_DECLARED: u8 = 16;

    /// The source id of the inbound request (`catalog::inbound`), below the declared ones: an
    /// `InboundRequest` is decided on, never consumed or stored.
    pub const INBOUND: u8 = 15;
}

/// Values per event kind, indexed by [`EventKind::index`]: dense for the built-ins, grown to the
/// highest declared source written into it.
#[derive(Debug, Clone)]
pub struct KindTable<T>(Vec<T>);

impl<T> Default for KindTable<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T: Default> KindTable<T> {
    /// The value of `kind`, if one was ever written.
    #[inline]
    pub fn get(&self, kind: EventKind) -> Option<&T> {
        self.0.get(kind.index())
    }

    /// The value of `kind`, made (as the default) if needed.
    pub fn entry(&mut self, kind: EventKind) -> &mut T {
        let i = kind.index();
        if self.0.len() <= i {
            self.0.resize_with(i + 1, T::default);
        }
        &mut self.0[i]
    }

    /// Every kind with a slot, and its value.
    pub fn iter(&self) -> impl Iterator<Item = (EventKind, &T)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((EventKind::from_index(i)?, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_symbols_are_upper_snake_as_in_the_schemas() {
        assert_eq!(TxnType::CardPayment.as_str(), "CARD_PAYMENT");
        assert_eq!(AppAction::LoginFailed.as_str(), "LOGIN_FAILED");
        assert_eq!(
            DecisionOutcome::SuppressedNoConsent.as_str(),
            "SUPPRESSED_NO_CONSENT"
        );
        assert_eq!(Severity::Critical.to_string(), "CRITICAL");
        let json = serde_json::to_string(&LifecycleStage::AtRisk).unwrap();
        assert_eq!(json, "\"AT_RISK\"");
    }
}
