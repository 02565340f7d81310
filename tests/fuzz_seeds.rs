//! The fuzz target's seed corpus (fuzz/seeds/decode/): one valid record per input kind and
//! framing, in the target's input layout (fuzz/fuzz_targets/decode.rs): a selector byte (bits 0-3
//! the kind, bit 4 plain framing, bits 5-6 a key follows, length-prefixed), then the value.
//!
//! This test checks that every seed still decodes to a valid event, so the fuzzer starts from
//! records the decoder accepts whole. After a schema change, regenerate the seeds with
//! `FUZZ_WRITE_SEEDS=1 cargo test --test fuzz_seeds` and commit them.

use nbo_stream::codec::{Codec, CodecOptions, Framing};
use nbo_stream::event::{Event, EventKind};
use nbo_stream::generator::{self, personas::EventFactory};
use std::path::PathBuf;

/// The fuzz target's clock (its `NOW_MS`): seeds must be valid as of then.
const FUZZ_NOW_MS: i64 = 1_800_000_000_000;

fn seeds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode")
}

/// One generated event of every input kind (the generator makes erasures and offer responses
/// rarely, so those two are built here).
fn one_of_each_kind() -> Vec<Event> {
    let mut factory = EventFactory::new(200, 3, FUZZ_NOW_MS - 10 * 86_400_000);
    factory.cap_clock(FUZZ_NOW_MS - 60_000);
    let mut found: Vec<Option<Event>> = vec![None; EventKind::ALL.len()];
    for _ in 0..5_000 {
        let e = factory.next_event();
        let i = e.kind().index();
        found[i].get_or_insert(e);
    }
    let at = FUZZ_NOW_MS - 1_000;
    found[EventKind::OfferResponse.index()].get_or_insert_with(|| {
        Event::OfferResponse(nbo_stream::event::OfferResponse {
            event_id: "R-1".into(),
            customer_id: "C0000001".into(),
            event_time: at,
            offer_id: "offer-1".into(),
            response: nbo_stream::event::OfferResponseKind::Declined,
        })
    });
    found[EventKind::Erasure.index()].get_or_insert_with(|| {
        Event::Erasure(nbo_stream::event::ErasureRequest {
            request_id: "ER-1".into(),
            customer_id: "C0000002".into(),
            requested_at: at,
        })
    });
    found[EventKind::ProductOpened.index()].get_or_insert_with(|| {
        Event::ProductOpened(nbo_stream::event::ProductOpened {
            event_id: "PO-1".into(),
            customer_id: "C0000003".into(),
            event_time: at,
            product_category: nbo_stream::event::ProductCategory::CreditCard,
            account_id: "A-77".into(),
            channel: "OFFER".into(),
            offer_id: Some("offer-1".into()),
        })
    });
    found[EventKind::InboundContact.index()].get_or_insert_with(|| {
        Event::InboundContact(nbo_stream::event::InboundContact {
            event_id: "offer-2".into(),
            customer_id: "C0000004".into(),
            event_time: at,
            decision_id: "in-1".into(),
            channel: "APP".into(),
            rule_id: "credit-card".into(),
            rule_version: 2,
            product_category: nbo_stream::event::ProductCategory::CreditCard,
            propensity: 0.25,
            outcome: nbo_stream::event::InboundContactKind::Offered,
        })
    });
    found[EventKind::AlertOutcome.index()].get_or_insert_with(|| {
        Event::AlertOutcome(nbo_stream::event::AlertOutcome {
            event_id: "case-1".into(),
            customer_id: "C0000005".into(),
            event_time: at,
            alert_id: "alert-1".into(),
            label: nbo_stream::event::AlertLabel::ConfirmedRisk,
            fraud_party: Some(nbo_stream::event::FraudParty::ThirdParty),
            amount_minor: Some(125_000),
            currency: Some("EUR".into()),
            closed_by: "investigator-7".into(),
        })
    });
    found.into_iter().map(|e| e.expect("a kind")).collect()
}

/// The seed for `event` with `framing`, keyed by its customer id.
fn seed(codec: &Codec, event: &Event, framing: Framing) -> Vec<u8> {
    let plain_bit = if framing == Framing::Plain { 0x10 } else { 0 };
    let key = event.customer_id().as_bytes();
    let mut out = vec![
        event.kind().index() as u8 | plain_bit | 0x20,
        key.len() as u8,
    ];
    out.extend_from_slice(key);
    out.extend(generator::encode_event(codec, event, framing).unwrap());
    out
}

fn seed_name(kind: EventKind, framing: Framing) -> String {
    format!("{}-{framing:?}", kind.record_name()).to_lowercase()
}

#[test]
fn every_seed_is_a_valid_record_of_its_kind_and_framing() {
    let codec = Codec::with_defaults().unwrap();
    let plain = Codec::new(&CodecOptions {
        input_framing: [Framing::Plain; nbo_stream::event::BUILTIN_KINDS],
        ..CodecOptions::default()
    })
    .unwrap();
    let dir = seeds_dir();
    if std::env::var_os("FUZZ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for event in one_of_each_kind() {
            for framing in [Framing::Confluent, Framing::Plain] {
                let path = dir.join(seed_name(event.kind(), framing));
                std::fs::write(path, seed(&codec, &event, framing)).unwrap();
            }
        }
    }
    for kind in EventKind::ALL {
        for framing in [Framing::Confluent, Framing::Plain] {
            let path = dir.join(seed_name(kind, framing));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (FUZZ_WRITE_SEEDS=1 writes it)", path.display())
            });
            // The target's layout, read back as the target reads it.
            let selector = bytes[0];
            assert_eq!(
                EventKind::ALL[usize::from(selector & 0x0f) % EventKind::ALL.len()],
                kind
            );
            assert_eq!(selector & 0x10 != 0, framing == Framing::Plain);
            assert_ne!(selector & 0x60, 0, "seeds carry a key");
            let key_len = usize::from(bytes[1]);
            let (key, value) = bytes[2..].split_at(key_len);
            let codec = if framing == Framing::Plain {
                &plain
            } else {
                &codec
            };
            let event = codec
                .decode(kind, Some(key), Some(value), FUZZ_NOW_MS)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(event.kind(), kind);
        }
    }
}

/// TransactionEvent v2, the writer the fuzz target's registry codec gives id 1.
const TRANSACTION_V2: &str = include_str!("fixtures/schemas/transaction_event_v2.avsc");

/// The seed of the registry path (selector kind nibble 9): a transaction written as v2 with id
/// 1, which the target's registry codec transcodes to the reader schema.
#[test]
#[allow(deprecated)] // apache-avro's one-call datum functions: the reference writer here.
fn the_registry_seed_is_a_v2_transaction_that_resolves() {
    let codec = Codec::with_defaults().unwrap();
    let path = seeds_dir().join("transactionevent-v2-registry");
    if std::env::var_os("FUZZ_WRITE_SEEDS").is_some() {
        let event = one_of_each_kind().remove(EventKind::Transaction.index());
        let plain = generator::encode_event(&codec, &event, Framing::Plain).unwrap();
        let v1 = apache_avro::Schema::parse_str(
            nbo_stream::codec::schemas::for_kind(EventKind::Transaction).text,
        )
        .unwrap();
        let v2 = apache_avro::Schema::parse_str(TRANSACTION_V2).unwrap();
        let value = apache_avro::from_avro_datum(&v1, &mut &plain[..], Some(&v2)).unwrap();
        let key = event.customer_id().as_bytes();
        let mut out = vec![EventKind::ALL.len() as u8 | 0x20, key.len() as u8];
        out.extend_from_slice(key);
        out.extend_from_slice(&[0, 0, 0, 0, 1]);
        out.extend(apache_avro::to_avro_datum(&v2, value).unwrap());
        std::fs::write(&path, out).unwrap();
    }
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (FUZZ_WRITE_SEEDS=1 writes it)", path.display()));
    assert_eq!(
        usize::from(bytes[0] & 0x0f),
        EventKind::ALL.len(),
        "the registry codec's nibble"
    );
    let (key, value) = bytes[2..].split_at(usize::from(bytes[1]));
    let registry = Codec::new(&CodecOptions {
        registry: true,
        ..CodecOptions::default()
    })
    .unwrap();
    registry.add_writer(EventKind::Transaction, 1, Some(TRANSACTION_V2));
    let event = registry
        .decode(EventKind::Transaction, Some(key), Some(value), FUZZ_NOW_MS)
        .unwrap();
    assert_eq!(event.kind(), EventKind::Transaction);
    assert!(
        codec
            .decode(EventKind::Transaction, Some(key), Some(value), FUZZ_NOW_MS)
            .is_err(),
        "v2 bytes do not read as v1"
    );
}
