//! Domain events: what the decoder produces and the operator consumes.
//!
//! Field names and enum symbols follow the Avro schemas in `avro_schemas/` exactly (the contract in
//! DESIGN.md); serde derives map them one to one, so the codec needs no hand-written field mapping.
//!
//! The records' types are in [`records`] (re-exported here); this module lists the built-in
//! records once (`builtin_records!`) and makes from the list what holds any of them: [`Event`],
//! [`EventKind`] with its index, and [`KindTable`].

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (UTC), the unit of every `timestamp-millis` field.
pub type EpochMillis = i64;

/// A string field of an input event. Ids, codes and short names (up to 24 bytes) are stored
/// inline, so decoding a record allocates only for long strings (`cargo bench --bench operator`).
pub type Text = compact_str::CompactString;

pub mod records;

pub use records::*;

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
            InboundContact(InboundContact),
            AlertOutcome(AlertOutcome),
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
    InboundContact,
    AlertOutcome,
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
