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

/// Every input record, as the operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// From `bank.transactions.v1`.
    Transaction(TransactionEvent),
    /// From `bank.clickstream.v1`.
    Clickstream(ClickstreamEvent),
    /// From `bank.app.v1`.
    App(AppEvent),
    /// From `bank.social.v1`.
    Social(SocialEvent),
    /// From `bank.feedback.v1`.
    Feedback(FeedbackEvent),
    /// From `bank.partner.v1`.
    Partner(PartnerEvent),
    /// From `bank.customer-profile.v1`.
    Profile(CustomerProfile),
    /// From `bank.offer-responses.v1`.
    OfferResponse(OfferResponse),
    /// From `bank.erasure-requests.v1`.
    Erasure(ErasureRequest),
    /// From a source declared in configuration (`[[source]]`, see the catalog).
    Declared(Box<DeclaredEvent>),
}

/// The record type of an input event; also what a rule or feature names as its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventKind {
    /// `TransactionEvent`.
    Transaction,
    /// `ClickstreamEvent`.
    Clickstream,
    /// `AppEvent`.
    App,
    /// `SocialEvent`.
    Social,
    /// `FeedbackEvent`.
    Feedback,
    /// `PartnerEvent`.
    Partner,
    /// `CustomerProfile`.
    Profile,
    /// `OfferResponse`.
    OfferResponse,
    /// `ErasureRequest`.
    Erasure,
    /// A source declared in configuration, by its `id` (16..=255; see the catalog).
    Declared(u8),
}

impl EventKind {
    /// Every built-in kind, in the order of the input topics. Declared sources follow, from the
    /// configuration's catalog (`Catalog`); names, topics and fields are its rows.
    pub const ALL: [EventKind; 9] = [
        EventKind::Transaction,
        EventKind::Clickstream,
        EventKind::App,
        EventKind::Social,
        EventKind::Feedback,
        EventKind::Partner,
        EventKind::Profile,
        EventKind::OfferResponse,
        EventKind::Erasure,
    ];

    /// Position in [`EventKind::ALL`] for a built-in kind, the `id` for a declared one (below
    /// [`EventKind::TABLE_LEN`]); it indexes per-kind tables and tags applied offsets in state.
    pub fn index(self) -> usize {
        match self {
            EventKind::Transaction => 0,
            EventKind::Clickstream => 1,
            EventKind::App => 2,
            EventKind::Social => 3,
            EventKind::Feedback => 4,
            EventKind::Partner => 5,
            EventKind::Profile => 6,
            EventKind::OfferResponse => 7,
            EventKind::Erasure => 8,
            EventKind::Declared(id) => usize::from(id),
        }
    }

    /// Bound of [`EventKind::index`].
    pub const TABLE_LEN: usize = 256;

    /// The kind at an index ([`EventKind::index`] reversed): a built-in kind, or the declared
    /// source with that id (whether a configuration declares it is the catalog's
    /// to say).
    pub fn from_index(index: usize) -> Option<EventKind> {
        EventKind::ALL.get(index).copied().or_else(|| {
            let id = u8::try_from(index).ok()?;
            (id >= Self::MIN_DECLARED).then_some(EventKind::Declared(id))
        })
    }

    /// The smallest id a declared source may take (below it sit the built-in kinds).
    pub const MIN_DECLARED: u8 = 16;
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

impl Event {
    /// The record type.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Transaction(_) => EventKind::Transaction,
            Event::Clickstream(_) => EventKind::Clickstream,
            Event::App(_) => EventKind::App,
            Event::Social(_) => EventKind::Social,
            Event::Feedback(_) => EventKind::Feedback,
            Event::Partner(_) => EventKind::Partner,
            Event::Profile(_) => EventKind::Profile,
            Event::OfferResponse(_) => EventKind::OfferResponse,
            Event::Erasure(_) => EventKind::Erasure,
            Event::Declared(e) => EventKind::Declared(e.source),
        }
    }

    /// The customer the event belongs to.
    pub fn customer_id(&self) -> &str {
        match self {
            Event::Transaction(e) => &e.customer_id,
            Event::Clickstream(e) => &e.customer_id,
            Event::App(e) => &e.customer_id,
            Event::Social(e) => &e.customer_id,
            Event::Feedback(e) => &e.customer_id,
            Event::Partner(e) => &e.customer_id,
            Event::Profile(e) => &e.customer_id,
            Event::OfferResponse(e) => &e.customer_id,
            Event::Erasure(e) => &e.customer_id,
            Event::Declared(e) => &e.customer_id,
        }
    }

    /// Event time (for profiles `updated_at`, for erasures `requested_at`).
    pub fn event_time(&self) -> EpochMillis {
        match self {
            Event::Transaction(e) => e.event_time,
            Event::Clickstream(e) => e.event_time,
            Event::App(e) => e.event_time,
            Event::Social(e) => e.event_time,
            Event::Feedback(e) => e.event_time,
            Event::Partner(e) => e.event_time,
            Event::Profile(e) => e.updated_at,
            Event::OfferResponse(e) => e.event_time,
            Event::Erasure(e) => e.requested_at,
            Event::Declared(e) => e.event_time,
        }
    }

    /// A stable id of the event (for profiles and erasures one is derived from their fields).
    pub fn event_id(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            Event::Transaction(e) => Cow::Borrowed(&e.event_id),
            Event::Clickstream(e) => Cow::Borrowed(&e.event_id),
            Event::App(e) => Cow::Borrowed(&e.event_id),
            Event::Social(e) => Cow::Borrowed(&e.event_id),
            Event::Feedback(e) => Cow::Borrowed(&e.event_id),
            Event::Partner(e) => Cow::Borrowed(&e.event_id),
            Event::OfferResponse(e) => Cow::Borrowed(&e.event_id),
            Event::Profile(e) => Cow::Owned(format!("profile:{}:{}", e.customer_id, e.updated_at)),
            Event::Erasure(e) => Cow::Borrowed(&e.request_id),
            Event::Declared(e) => Cow::Borrowed(&e.event_id),
        }
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
