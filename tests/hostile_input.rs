//! Hostile input through the whole pipeline (librdkafka's mock cluster, in-memory store): a stream
//! of good generated records with over a thousand malformed ones interleaved, one builder per
//! class of damage. The pipeline must not stop; every malformed record must reach the dead-letter
//! topic exactly once, with its source position, its original bytes and the error kind of its
//! class; every good record must be processed as if the bad ones were not there.

mod common;

use common::*;
use nbo_stream::codec::{Codec, DecodeError, Framing};
use nbo_stream::config::{Settings, StateBackend};
use nbo_stream::event::{Event, EventKind};
use nbo_stream::generator::{self, personas::EventFactory};
use nbo_stream::output::{DeadLetter, DecisionAudit, NextBestOffer};
use nbo_stream::state::memory::MemoryStore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

const CUSTOMERS: u32 = 400;
/// Good records, profiles included.
const GOOD: usize = 6_000;
/// Malformed records of each class (24 classes: 1,200 in all).
const PER_CLASS: usize = 50;

/// A class of damage: how the builder breaks a record, and what the decoder must call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Class {
    /// The Avro body cut short (header intact).
    TruncatedBody,
    /// Fewer than the 5 bytes of the Confluent header.
    TruncatedHeader,
    /// A schema id this topic does not accept.
    WrongSchemaId,
    /// A first byte other than the Confluent magic 0.
    WrongMagicByte,
    /// Plain Avro on a topic that expects Confluent framing.
    NoFraming,
    /// A string field longer than the codec's `max_string_len`.
    HugeString,
    /// A string whose length varint claims 2 GiB.
    HugeDeclaredStringLength,
    /// An array block count of 2^30 items.
    HugeDeclaredArrayLength,
    /// `amount_minor` below zero.
    NegativeAmount,
    /// `amount_minor` past the codec's `max_amount_minor`.
    AbsurdAmount,
    /// An enum index past the last symbol.
    UnknownEnumSymbol,
    /// A string's bytes that are not UTF-8.
    InvalidUtf8,
    /// `customer_id` empty (keyed by the empty string, or with no key at all).
    EmptyCustomerId,
    /// `customer_id` of blanks, key equal to it.
    BlankCustomerId,
    /// Kafka key another customer's id.
    KeyMismatch,
    /// No Kafka key.
    MissingKey,
    /// An event time a day to centuries ahead of the clock.
    FutureTime,
    /// An event time at or before 1970-01-01.
    TimeBefore1970,
    /// A value of zero bytes.
    EmptyPayload,
    /// No value at all (null).
    NullPayload,
    /// Random bytes (first byte not the magic 0).
    RandomBytes,
    /// A valid header followed by random bytes opening with a negative string length.
    FramedRandomBody,
    /// A valid record with bytes appended.
    TrailingBytes,
    /// Fields Avro types allow but the contract does not (NaN sentiment, satisfaction 9,
    /// lower-case currency, non-ISO country).
    BadFieldValue,
}

impl Class {
    const ALL: [Class; 24] = [
        Class::TruncatedBody,
        Class::TruncatedHeader,
        Class::WrongSchemaId,
        Class::WrongMagicByte,
        Class::NoFraming,
        Class::HugeString,
        Class::HugeDeclaredStringLength,
        Class::HugeDeclaredArrayLength,
        Class::NegativeAmount,
        Class::AbsurdAmount,
        Class::UnknownEnumSymbol,
        Class::InvalidUtf8,
        Class::EmptyCustomerId,
        Class::BlankCustomerId,
        Class::KeyMismatch,
        Class::MissingKey,
        Class::FutureTime,
        Class::TimeBefore1970,
        Class::EmptyPayload,
        Class::NullPayload,
        Class::RandomBytes,
        Class::FramedRandomBody,
        Class::TrailingBytes,
        Class::BadFieldValue,
    ];

    /// The `error_kind` the dead letter of this class must carry.
    fn error_kind(self) -> &'static str {
        match self {
            Class::TruncatedBody
            | Class::HugeDeclaredStringLength
            | Class::HugeDeclaredArrayLength
            | Class::UnknownEnumSymbol
            | Class::InvalidUtf8
            | Class::FramedRandomBody => "avro_decode",
            Class::TruncatedHeader => "truncated_header",
            Class::WrongSchemaId => "unknown_schema_id",
            Class::WrongMagicByte | Class::NoFraming | Class::RandomBytes => "bad_magic_byte",
            Class::HugeString
            | Class::NegativeAmount
            | Class::AbsurdAmount
            | Class::EmptyCustomerId
            | Class::BlankCustomerId
            | Class::FutureTime
            | Class::TimeBefore1970
            | Class::BadFieldValue => "invalid_field",
            Class::KeyMismatch => "key_mismatch",
            Class::MissingKey => "missing_key",
            Class::EmptyPayload | Class::NullPayload => "empty_payload",
            Class::TrailingBytes => "trailing_bytes",
        }
    }

    /// Which template events the builder can damage this way.
    fn accepts(self, event: &Event) -> bool {
        match self {
            Class::NegativeAmount | Class::AbsurdAmount => {
                matches!(event, Event::Transaction(_) | Event::Partner(_))
            }
            Class::UnknownEnumSymbol => matches!(
                event,
                Event::Transaction(_) | Event::Clickstream(_) | Event::Profile(_)
            ),
            Class::HugeDeclaredArrayLength => matches!(event, Event::Profile(_)),
            Class::BadFieldValue => matches!(
                event,
                Event::Transaction(_) | Event::Partner(_) | Event::Social(_) | Event::Feedback(_)
            ),
            _ => true,
        }
    }
}

/// One record to produce.
struct Outgoing {
    kind: EventKind,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    /// None for a good record.
    damage: Option<Damage>,
}

/// What the builder did, and what the dead letter's `error` must mention.
struct Damage {
    class: Class,
    mentions: String,
}

/// Builds malformed records from real events: encodes them with the codec, then breaks fields
/// or bytes. Templates come from a second generator so the good stream stays whole.
struct Builder {
    codec: Codec,
    templates: EventFactory,
    /// Profiles of the template stream (it starts with one per customer, then never again).
    profiles: Vec<Event>,
    rng: ChaCha8Rng,
    now_ms: i64,
    max_string_len: usize,
    max_amount_minor: i64,
}

impl Builder {
    fn template(&mut self, class: Class) -> Event {
        let mut event = if class == Class::HugeDeclaredArrayLength {
            let i = self.rng.random_range(0..self.profiles.len());
            self.profiles[i].clone()
        } else {
            loop {
                let e = self.templates.next_event();
                if let Event::Profile(_) = e {
                    self.profiles.push(e.clone());
                }
                if class.accepts(&e) {
                    break e;
                }
            }
        };
        // Ids no good record has, so nothing downstream can mistake a damaged record for one.
        match &mut event {
            Event::Transaction(e) => e.event_id.insert(0, 'X'),
            Event::Clickstream(e) => e.event_id.insert(0, 'X'),
            Event::App(e) => e.event_id.insert(0, 'X'),
            Event::Social(e) => e.event_id.insert(0, 'X'),
            Event::Feedback(e) => e.event_id.insert(0, 'X'),
            Event::Partner(e) => e.event_id.insert(0, 'X'),
            Event::Profile(_) => {}
            Event::OfferResponse(e) => e.event_id.insert(0, 'X'),
            Event::Erasure(e) => e.request_id.insert(0, 'X'),
            Event::ProductOpened(e) => e.event_id.insert(0, 'X'),
            Event::InboundContact(e) => e.event_id.insert(0, 'X'),
            Event::AlertOutcome(e) => e.event_id.insert(0, 'X'),
            Event::Declared(e) => e.event_id.insert(0, 'X'),
        }
        event
    }

    fn encode(&self, event: &Event, framing: Framing) -> Vec<u8> {
        generator::encode_event(&self.codec, event, framing).expect("encode a template")
    }

    /// A malformed record of `class`.
    fn build(&mut self, class: Class) -> Outgoing {
        let mut event = self.template(class);
        let kind = event.kind();
        let mut key = Some(event.customer_id().as_bytes().to_vec());
        let mut mentions = String::new();
        let payload: Option<Vec<u8>> = match class {
            Class::TruncatedBody => {
                let good = self.encode(&event, Framing::Confluent);
                let cut = self.rng.random_range(5..good.len());
                Some(good[..cut].to_vec())
            }
            Class::TruncatedHeader => {
                let good = self.encode(&event, Framing::Confluent);
                Some(good[..self.rng.random_range(1..5)].to_vec())
            }
            Class::WrongSchemaId => {
                let mut bytes = self.encode(&event, Framing::Confluent);
                let expected = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                let id = loop {
                    let id: u32 = self.rng.random();
                    if id != expected {
                        break id;
                    }
                };
                bytes[1..5].copy_from_slice(&id.to_be_bytes());
                mentions = format!("schema id {id}");
                Some(bytes)
            }
            Class::WrongMagicByte => {
                let mut bytes = self.encode(&event, Framing::Confluent);
                bytes[0] = self.rng.random_range(1..=255);
                Some(bytes)
            }
            Class::NoFraming => Some(self.encode(&event, Framing::Plain)),
            Class::HugeString => {
                let len = self.max_string_len + self.rng.random_range(1..20_000);
                mentions = huge_string(&mut event, len).to_string();
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::HugeDeclaredStringLength => {
                // The body opens with a string (event_id, customer_id or request_id): claim 2 GiB.
                let bytes = self.encode(&event, Framing::Confluent);
                let after_len = skip_long(&bytes, 5);
                Some(splice(&bytes, 5..after_len, &varint(1 << 31)))
            }
            Class::HugeDeclaredArrayLength => {
                // contact_channels is the profile's last field: [count, symbols..., 0].
                let Event::Profile(p) = &event else {
                    unreachable!()
                };
                let n = p.contact_channels.len();
                let bytes = self.encode(&event, Framing::Confluent);
                let count_at = bytes.len() - 1 - if n > 0 { n + 1 } else { 0 };
                Some(splice(&bytes, count_at..count_at + 1, &varint(1 << 30)))
            }
            Class::NegativeAmount => {
                let amount = -self.rng.random_range(1..1_000_000_000_000i64);
                set_amount(&mut event, amount);
                mentions = "amount_minor".into();
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::AbsurdAmount => {
                let amount = self.rng.random_range(self.max_amount_minor + 1..=i64::MAX);
                set_amount(&mut event, amount);
                mentions = "amount_minor".into();
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::UnknownEnumSymbol => {
                let bytes = self.encode(&event, Framing::Confluent);
                let at = enum_position(&bytes, kind);
                // Index 20..60: past every enum's last symbol, one varint byte.
                let index = self.rng.random_range(20..60);
                Some(splice(&bytes, at..skip_long(&bytes, at), &varint(index)))
            }
            Class::InvalidUtf8 => {
                // The first character of the opening string becomes a lone continuation byte.
                let mut bytes = self.encode(&event, Framing::Confluent);
                bytes[6] = self.rng.random_range(0x80..=0xbf);
                Some(bytes)
            }
            Class::EmptyCustomerId => {
                set_customer(&mut event, "");
                key = if self.rng.random_bool(0.5) {
                    Some(Vec::new())
                } else {
                    None
                };
                mentions = "customer_id".into();
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::BlankCustomerId => {
                let blanks = " ".repeat(self.rng.random_range(1..8));
                set_customer(&mut event, &blanks);
                key = Some(blanks.into_bytes());
                mentions = "customer_id".into();
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::KeyMismatch => {
                let other = format!("C{:07}", self.rng.random_range(CUSTOMERS..2 * CUSTOMERS));
                key = Some(other.into_bytes());
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::MissingKey => {
                key = None;
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::FutureTime => {
                let ahead = self.rng.random_range(86_400_000..3_000_000_000_000i64);
                let time = if self.rng.random_bool(0.1) {
                    i64::MAX
                } else {
                    self.now_ms + ahead
                };
                mentions = format!("{}`: {time} is", set_time(&mut event, time));
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::TimeBefore1970 => {
                let time = match self.rng.random_range(0..4) {
                    0 => 0,
                    1 => i64::MIN,
                    _ => -self.rng.random_range(1..3_000_000_000_000i64),
                };
                mentions = format!("{}`: {time} is not after 1970", set_time(&mut event, time));
                Some(self.encode(&event, Framing::Confluent))
            }
            Class::EmptyPayload => Some(Vec::new()),
            Class::NullPayload => None,
            Class::RandomBytes => {
                let len = self.rng.random_range(1..200);
                let mut bytes: Vec<u8> = (0..len).map(|_| self.rng.random()).collect();
                bytes[0] = self.rng.random_range(1..=255);
                Some(bytes)
            }
            Class::FramedRandomBody => {
                let header = self.encode(&event, Framing::Confluent)[..5].to_vec();
                // An odd varint is a negative zig-zag length: no string can have it.
                let mut bytes = header;
                bytes.push(self.rng.random_range(0..64) * 2 + 1);
                let len = self.rng.random_range(0..200);
                bytes.extend((0..len).map(|_| self.rng.random::<u8>()));
                Some(bytes)
            }
            Class::TrailingBytes => {
                let mut bytes = self.encode(&event, Framing::Confluent);
                let extra = self.rng.random_range(1..16);
                bytes.extend((0..extra).map(|_| self.rng.random::<u8>()));
                mentions = format!("{extra} trailing bytes");
                Some(bytes)
            }
            Class::BadFieldValue => {
                mentions = bad_field_value(&mut event).into();
                Some(self.encode(&event, Framing::Confluent))
            }
        };
        Outgoing {
            kind,
            key,
            payload,
            damage: Some(Damage { class, mentions }),
        }
    }
}

/// Sets a string field of `event` to `len` bytes; returns the field's name.
fn huge_string(event: &mut Event, len: usize) -> &'static str {
    let huge: nbo_stream::event::Text = "x".repeat(len).into();
    match event {
        Event::Transaction(e) => {
            e.account_id = huge;
            "account_id"
        }
        Event::Clickstream(e) => {
            e.page_url = huge;
            "page_url"
        }
        Event::App(e) => {
            e.app_version = huge;
            "app_version"
        }
        Event::Social(e) => {
            e.topic = Some(huge);
            "topic"
        }
        Event::Feedback(e) => {
            e.event_id = huge;
            "event_id"
        }
        Event::Partner(e) => {
            e.partner = huge;
            "partner"
        }
        Event::Profile(e) => {
            e.segment = huge;
            "segment"
        }
        Event::OfferResponse(e) => {
            e.offer_id = huge;
            "offer_id"
        }
        Event::Erasure(e) => {
            e.request_id = huge;
            "request_id"
        }
        Event::ProductOpened(e) => {
            e.account_id = huge;
            "account_id"
        }
        Event::InboundContact(e) => {
            e.channel = huge;
            "channel"
        }
        Event::AlertOutcome(e) => {
            e.closed_by = huge;
            "closed_by"
        }
        Event::Declared(e) => {
            e.event_id = huge;
            "event_id"
        }
    }
}

fn set_amount(event: &mut Event, amount: i64) {
    match event {
        Event::Transaction(e) => e.amount_minor = amount,
        Event::Partner(e) => e.amount_minor = amount,
        other => panic!("no amount on {:?}", other.kind()),
    }
}

fn set_customer(event: &mut Event, id: &str) {
    let id: nbo_stream::event::Text = id.into();
    match event {
        Event::Transaction(e) => e.customer_id = id,
        Event::Clickstream(e) => e.customer_id = id,
        Event::App(e) => e.customer_id = id,
        Event::Social(e) => e.customer_id = id,
        Event::Feedback(e) => e.customer_id = id,
        Event::Partner(e) => e.customer_id = id,
        Event::Profile(e) => e.customer_id = id,
        Event::OfferResponse(e) => e.customer_id = id,
        Event::Erasure(e) => e.customer_id = id,
        Event::ProductOpened(e) => e.customer_id = id,
        Event::InboundContact(e) => e.customer_id = id,
        Event::AlertOutcome(e) => e.customer_id = id,
        Event::Declared(e) => e.customer_id = id,
    }
}

/// Sets the event's time field; returns its name.
fn set_time(event: &mut Event, millis: i64) -> &'static str {
    match event {
        Event::Transaction(e) => e.event_time = millis,
        Event::Clickstream(e) => e.event_time = millis,
        Event::App(e) => e.event_time = millis,
        Event::Social(e) => e.event_time = millis,
        Event::Feedback(e) => e.event_time = millis,
        Event::Partner(e) => e.event_time = millis,
        Event::Profile(e) => {
            e.updated_at = millis;
            return "updated_at";
        }
        Event::OfferResponse(e) => e.event_time = millis,
        Event::ProductOpened(e) => e.event_time = millis,
        Event::InboundContact(e) => e.event_time = millis,
        Event::AlertOutcome(e) => e.event_time = millis,
        Event::Erasure(e) => {
            e.requested_at = millis;
            return "requested_at";
        }
        Event::Declared(e) => e.event_time = millis,
    }
    "event_time"
}

/// Breaks a field the Avro type allows but the contract does not; returns the field's name.
fn bad_field_value(event: &mut Event) -> &'static str {
    match event {
        Event::Transaction(e) if e.event_id.len() % 2 == 0 => {
            e.country = "Germany".into();
            "country"
        }
        Event::Transaction(e) => {
            e.currency = "eur".into();
            "currency"
        }
        Event::Partner(e) => {
            e.currency = "EURO".into();
            "currency"
        }
        Event::Social(e) => {
            e.sentiment = f64::NAN;
            "sentiment"
        }
        Event::Feedback(e) => {
            e.satisfaction = Some(9);
            "satisfaction"
        }
        other => panic!("no bad value for {:?}", other.kind()),
    }
}

/// Zig-zag varint encoding of an Avro `long`.
fn varint(value: i64) -> Vec<u8> {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        if v < 0x80 {
            out.push(v as u8);
            return out;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
}

/// Position after the varint at `at`.
fn skip_long(bytes: &[u8], mut at: usize) -> usize {
    while bytes[at] & 0x80 != 0 {
        at += 1;
    }
    at + 1
}

/// Position after the Avro string at `at`.
fn skip_string(bytes: &[u8], at: usize) -> usize {
    let end = skip_long(bytes, at);
    let mut v = 0u64;
    for (i, b) in bytes[at..end].iter().enumerate() {
        v |= u64::from(b & 0x7f) << (7 * i);
    }
    let len = ((v >> 1) as i64) ^ -((v & 1) as i64);
    end + len as usize
}

/// Where the first enum of a Confluent-framed record of `kind` sits (see avro_schemas/).
fn enum_position(bytes: &[u8], kind: EventKind) -> usize {
    let mut at = 5;
    match kind {
        // event_id, customer_id, event_time, account_id → txn_type
        EventKind::Transaction => {
            at = skip_string(bytes, at);
            at = skip_string(bytes, at);
            at = skip_long(bytes, at);
            skip_string(bytes, at)
        }
        // event_id, customer_id, event_time, session_id, page_url → action
        EventKind::Clickstream => {
            at = skip_string(bytes, at);
            at = skip_string(bytes, at);
            at = skip_long(bytes, at);
            at = skip_string(bytes, at);
            skip_string(bytes, at)
        }
        // customer_id, updated_at → lifecycle_stage
        EventKind::Profile => {
            at = skip_string(bytes, at);
            skip_long(bytes, at)
        }
        other => panic!("no enum position for {other:?}"),
    }
}

fn splice(bytes: &[u8], range: std::ops::Range<usize>, with: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.splice(range, with.iter().copied());
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The stream: every customer's profile, then activity with a malformed record after every
/// few good ones, classes taking turns.
fn hostile_stream() -> Vec<Outgoing> {
    let now = now_ms();
    let start = now - generator::personas::span_ms(CUSTOMERS, GOOD as u64) - 3_600_000;
    let mut good = EventFactory::new(CUSTOMERS, 11, start);
    good.cap_clock(now);
    let mut templates = EventFactory::new(CUSTOMERS, 12, start);
    templates.cap_clock(now);
    let limits = nbo_stream::codec::Validation::default();
    let codec = Codec::with_defaults().unwrap();
    let mut builder = Builder {
        codec: Codec::with_defaults().unwrap(),
        templates,
        profiles: Vec::new(),
        rng: ChaCha8Rng::seed_from_u64(13),
        now_ms: now,
        max_string_len: limits.max_string_len,
        max_amount_minor: limits.max_amount_minor,
    };
    let malformed_total = PER_CLASS * Class::ALL.len();
    let activity = GOOD - CUSTOMERS as usize;
    let every = activity / malformed_total;
    let mut out = Vec::with_capacity(GOOD + malformed_total);
    let mut built = 0;
    for i in 0..GOOD {
        let event = good.next_event();
        out.push(Outgoing {
            kind: event.kind(),
            key: Some(event.customer_id().as_bytes().to_vec()),
            payload: Some(generator::encode_event(&codec, &event, Framing::Confluent).unwrap()),
            damage: None,
        });
        let after_profiles = i >= CUSTOMERS as usize;
        if after_profiles && i % every == 0 && built < malformed_total {
            out.push(builder.build(Class::ALL[built % Class::ALL.len()]));
            built += 1;
        }
    }
    while built < malformed_total {
        out.push(builder.build(Class::ALL[built % Class::ALL.len()]));
        built += 1;
    }
    out
}

/// Produces every record; returns each one's (partition, offset), in order.
async fn produce(settings: &Settings, records: &[Outgoing]) -> Vec<(i32, i64)> {
    let mut config = nbo_stream::source::client_config(&settings.kafka);
    config
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000");
    let producer: FutureProducer = config.create().expect("producer");
    let topics = settings.topics.inputs();
    let mut deliveries = Vec::with_capacity(records.len());
    for r in records {
        let mut record = FutureRecord::<[u8], [u8]>::to(topics[r.kind.index()]);
        if let Some(key) = &r.key {
            record = record.key(key.as_slice());
        }
        if let Some(payload) = &r.payload {
            record = record.payload(payload.as_slice());
        }
        let delivery = producer
            .send_result(record)
            .map_err(|(e, _)| e)
            .expect("enqueue");
        deliveries.push(delivery);
    }
    let mut positions = Vec::with_capacity(records.len());
    for d in deliveries {
        let delivered = d.await.expect("delivery").expect("acknowledged");
        positions.push((delivered.partition, delivered.offset));
    }
    positions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_record_is_dead_lettered_once_and_every_good_one_processed() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let settings = test_settings(&brokers, StateBackend::Memory);
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 4, 1).unwrap();
    }
    let records = hostile_stream();
    // The profiles (with consent) go first and are applied before any activity is sent, as a
    // bank's CRM load precedes the stream: the pipeline reads its input topics side by side, so
    // activity fetched before its customer's profile would be decided without consent.
    let (profiles, activity) = records.split_at(CUSTOMERS as usize);
    assert!(profiles
        .iter()
        .all(|r| r.kind == EventKind::Profile && r.damage.is_none()));
    let store = Arc::new(MemoryStore::new());
    let running = Running::start(&settings, store);
    let mut positions = produce(&settings, profiles).await;
    let loaded = running
        .processed(profiles.len() as u64, Duration::from_secs(60))
        .await;
    assert!(loaded, "the profiles were not processed within 60 s");
    positions.extend(produce(&settings, activity).await);
    let inputs = settings.topics.inputs();

    // What was injected, by source position.
    let mut injected: HashMap<(String, i32, i64), &Outgoing> = HashMap::new();
    let mut injected_by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    let mut classes: BTreeMap<Class, usize> = BTreeMap::new();
    for (r, (partition, offset)) in records.iter().zip(&positions) {
        if let Some(damage) = &r.damage {
            let topic = inputs[r.kind.index()].to_string();
            injected.insert((topic, *partition, *offset), r);
            *injected_by_kind
                .entry(damage.class.error_kind())
                .or_default() += 1;
            *classes.entry(damage.class).or_default() += 1;
        }
    }
    let malformed = injected.len();
    let good = records.len() - malformed;
    assert_eq!(good, GOOD);
    assert!(malformed >= 1_000, "{malformed} malformed");
    assert_eq!(classes.len(), Class::ALL.len(), "every class injected");
    assert!(classes.values().all(|n| *n == PER_CLASS), "{classes:?}");

    // The pipeline takes all of it and stops cleanly when asked.
    let done = running
        .processed(records.len() as u64, Duration::from_secs(180))
        .await;
    let progress = running.stop().await;
    assert!(
        done,
        "processed {} of {}",
        progress.records.load(Ordering::Relaxed),
        records.len()
    );
    assert_eq!(
        progress.records.load(Ordering::Relaxed),
        records.len() as u64,
        "every record processed exactly once"
    );
    assert_eq!(
        progress.events.load(Ordering::Relaxed),
        good as u64,
        "every good record reached the operator, and no bad one"
    );
    assert_eq!(
        progress.dead_letters.load(Ordering::Relaxed),
        malformed as u64,
        "one dead letter per malformed record"
    );

    // Every malformed record is on the dead-letter topic exactly once, as it was sent.
    let dead: Vec<DeadLetter> = outputs(
        &brokers,
        &settings.topics.dead_letters,
        "DeadLetter",
        malformed,
    );
    assert_eq!(dead.len(), malformed, "dead letters");
    let mut seen = HashSet::new();
    let mut dead_by_kind: BTreeMap<&str, u64> = BTreeMap::new();
    for d in &dead {
        let at = (d.source_topic.clone(), d.source_partition, d.source_offset);
        assert!(seen.insert(at.clone()), "dead-lettered twice: {at:?}");
        let sent = injected.get(&at).unwrap_or_else(|| {
            panic!("dead letter for a record not injected as bad: {at:?} {d:?}")
        });
        let damage = sent.damage.as_ref().unwrap();
        let kind = DecodeError::KINDS
            .iter()
            .copied()
            .find(|k| *k == d.error_kind)
            .unwrap_or_else(|| panic!("error_kind {:?} is not a known kind", d.error_kind));
        assert_eq!(
            kind,
            damage.class.error_kind(),
            "{:?} at {at:?}: {}",
            damage.class,
            d.error
        );
        assert!(
            d.error.contains(&damage.mentions),
            "{:?}: error {:?} should mention {:?}",
            damage.class,
            d.error,
            damage.mentions
        );
        assert_eq!(
            d.payload.clone().unwrap_or_default(),
            sent.payload.clone().unwrap_or_default(),
            "{:?}: original payload bytes",
            damage.class
        );
        assert_eq!(
            d.key.clone().unwrap_or_default(),
            sent.key.clone().unwrap_or_default(),
            "{:?}: original key",
            damage.class
        );
        *dead_by_kind.entry(kind).or_default() += 1;
    }
    assert_eq!(
        dead_by_kind, injected_by_kind,
        "dead letters per error kind"
    );

    // The good stream did its work: decisions exist, and none came from a damaged record.
    let offers: Vec<NextBestOffer> = outputs(&brokers, &settings.topics.offers, "NextBestOffer", 1);
    let audits: Vec<DecisionAudit> = outputs(
        &brokers,
        &settings.topics.decisions_audit,
        "DecisionAudit",
        1,
    );
    let mut by_outcome: BTreeMap<String, usize> = BTreeMap::new();
    for a in &audits {
        *by_outcome.entry(format!("{:?}", a.outcome)).or_default() += 1;
    }
    assert!(
        !offers.is_empty(),
        "no offers from the good records: {} counted by the pipeline, audits by outcome {by_outcome:?}",
        progress.offers.load(Ordering::Relaxed)
    );
    assert!(!audits.is_empty(), "no audits from the good records");
    assert!(
        audits.iter().all(|a| !a.trigger_event_id.starts_with('X')),
        "a decision was triggered by a damaged record"
    );
    assert_eq!(
        progress.offers.load(Ordering::Relaxed),
        offers.len() as u64,
        "offers counted and published alike"
    );
}

/// A malformed record as large as the broker takes: its dead letter (the payload plus source,
/// reason and key) would be larger still, so the worker cuts the payload it copies
/// (`worker::DEAD_LETTER_MAX_BYTES`) and says so in the reason; the pipeline goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_record_at_the_broker_size_limit_is_dead_lettered_not_fatal() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let settings = test_settings(&brokers, StateBackend::Memory);
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    // 999,900 bytes: accepted by the broker (message.max.bytes 1,000,000 with its overhead).
    let record = Outgoing {
        kind: EventKind::Transaction,
        key: Some(b"C0000001".to_vec()),
        payload: Some(vec![7u8; 999_900]),
        damage: None,
    };
    produce(&settings, std::slice::from_ref(&record)).await;

    let progress = Arc::new(nbo_stream::worker::Progress::default());
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let deps = nbo_stream::pipeline::Dependencies {
        store: Arc::new(MemoryStore::new()),
        health: Default::default(),
        progress: progress.clone(),
    };
    let run_settings = settings.clone();
    let handle =
        tokio::spawn(async move { nbo_stream::pipeline::run(&run_settings, deps, stop_rx).await });
    let p = progress.clone();
    wait_for(Duration::from_secs(30), || {
        p.records.load(Ordering::Relaxed) >= 1 || handle.is_finished()
    })
    .await;
    let _ = stop.send(true);
    let result = handle.await.unwrap();
    assert!(result.is_ok(), "the pipeline stopped: {:?}", result.err());
    assert_eq!(progress.dead_letters.load(Ordering::Relaxed), 1);
    let dead: Vec<DeadLetter> = outputs(&brokers, &settings.topics.dead_letters, "DeadLetter", 1);
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].error_kind, "bad_magic_byte");
}
