//! The input records' types, field for field as the Avro schemas in `avro_schemas/` name them:
//! the enums (`avro_enum!`), one struct per built-in record, and the field values of a record
//! of a declared source. What every record answers, and the [`super::Event`] that holds any of
//! them, are the parent module's.

use super::{EpochMillis, Text};
use serde::{Deserialize, Serialize};

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
    /// What an inbound decision recorded as a contact: an offer made, or a control-group member
    /// held out of one.
    InboundContactKind { Offered = "OFFERED", ControlGroup = "CONTROL_GROUP" }
);
avro_enum!(
    /// How an investigator closed the case of an alert. `CONFIRMED_RISK`: the risk was real
    /// (fraud, a default, a complaint that escalated); `VALUABLE_ALERT`: not confirmed, but worth
    /// the look (the customer was warned, a limit changed); `FALSE_POSITIVE`: nothing there;
    /// `DUPLICATE`: closed as another case's, so it says nothing of the rule and is not counted
    /// as closed.
    AlertLabel { ConfirmedRisk = "CONFIRMED_RISK", ValuableAlert = "VALUABLE_ALERT", FalsePositive = "FALSE_POSITIVE", Duplicate = "DUPLICATE" }
);
avro_enum!(
    /// Whose fraud a confirmed case was: the customer's own (first party) or someone else's
    /// using the customer's account or card (third party).
    FraudParty { FirstParty = "FIRST_PARTY", ThirdParty = "THIRD_PARTY" }
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

impl DecisionOutcome {
    /// Whether this is a decision of a rule about a customer (not a rule change or a console
    /// action).
    pub fn is_decision(self) -> bool {
        !matches!(
            self,
            DecisionOutcome::RuleInstalled
                | DecisionOutcome::RuleDeleted
                | DecisionOutcome::RuleRejected
                | DecisionOutcome::ConsoleLookup
                | DecisionOutcome::RulePublished
                | DecisionOutcome::RuleBacktested
        )
    }
}

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

/// A contact an inbound decision made (`bank.inbound-contacts.v1`, written by `nbo-stream api`):
/// an offer answered to a channel, or a control-group member held out of one. The stream takes
/// it into the customer's contact history as it takes its own offers, so the frequency cap, the
/// offer's cooldown, the decline suppression, learning and uplift count it (`operator::contacts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundContact {
    /// The offer's id (for a control-group member, the id of its held-out exposure).
    pub event_id: Text,
    /// Bank customer id.
    pub customer_id: Text,
    /// When the API decided (UTC millis).
    pub event_time: EpochMillis,
    /// The API's decision id (one per request; a request may make several offers).
    pub decision_id: Text,
    /// The channel that asked (APP, WEB, CALL_CENTRE, BRANCH, or one in `api.channels`).
    pub channel: Text,
    /// The offer rule.
    pub rule_id: Text,
    /// Its version when it decided.
    pub rule_version: i32,
    /// The product family offered.
    pub product_category: ProductCategory,
    /// The rule's configured propensity for the customer (what its learned model expects of
    /// the offer); 0 when not known.
    pub propensity: f64,
    /// Offered, or held out as a member of the control group.
    pub outcome: InboundContactKind,
}

impl InboundContact {
    /// Its Avro record name.
    pub const RECORD: &'static str = "InboundContact";
}

/// An investigator's closure of an alert's case (`bank.alert-outcomes.v1`, from the case
/// management system): how the alert turned out, which is how a fraud team judges the rule
/// that raised it. The stream labels the alert in the customer's state and counts it per rule
/// and version; an outcome for an alert it does not hold is dead-lettered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertOutcome {
    /// Unique id of the closure, set by the case system.
    pub event_id: Text,
    /// Bank customer id (the alert's).
    pub customer_id: Text,
    /// When the case was closed (UTC millis).
    pub event_time: EpochMillis,
    /// The alert closed (`RiskAlert.alert_id`).
    pub alert_id: Text,
    /// How it turned out.
    pub label: AlertLabel,
    /// Whose fraud, when confirmed fraud.
    pub fraud_party: Option<FraudParty>,
    /// The amount at risk that the alert prevented (or, not prevented, lost), in minor units.
    pub amount_minor: Option<i64>,
    /// ISO 4217 currency of `amount_minor`.
    pub currency: Option<Text>,
    /// Who closed it: an investigator's or a team's id in the case system.
    pub closed_by: Text,
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
