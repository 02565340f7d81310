use super::*;
use crate::event::*;

const NOW: i64 = 1_800_000_000_000;

fn txn() -> TransactionEvent {
    TransactionEvent {
        event_id: "E1".into(),
        customer_id: "C1".into(),
        event_time: NOW - 1000,
        account_id: "A1".into(),
        txn_type: TxnType::CardPayment,
        amount_minor: 12_345,
        currency: "EUR".into(),
        payment_method: PaymentMethod::DebitCard,
        merchant_category: Some("GROCERY".into()),
        channel: TxnChannel::Pos,
        country: "DE".into(),
        balance_after_minor: None,
    }
}

fn encoded(codec: &Codec, t: &TransactionEvent) -> Vec<u8> {
    codec
        .encode_framed("TransactionEvent", t, Framing::Confluent)
        .unwrap()
}

#[test]
fn confluent_round_trip_gives_the_same_event() {
    let codec = Codec::with_defaults().unwrap();
    let bytes = encoded(&codec, &txn());
    assert_eq!(&bytes[..5], &[0, 0, 0, 0, 1]);
    let event = codec
        .decode(EventKind::Transaction, Some(b"C1"), Some(&bytes), NOW)
        .unwrap();
    assert_eq!(event, Event::Transaction(txn()));
}

#[test]
fn plain_framing_is_configurable_per_topic() {
    let mut options = CodecOptions::default();
    options.input_framing[EventKind::Transaction.index()] = Framing::Plain;
    let codec = Codec::new(&options).unwrap();
    let bytes = codec
        .encode_framed("TransactionEvent", &txn(), Framing::Plain)
        .unwrap();
    assert!(codec
        .decode(EventKind::Transaction, Some(b"C1"), Some(&bytes), NOW)
        .is_ok());
    assert_eq!(
        codec
            .decode(EventKind::Transaction, None, Some(&bytes), NOW)
            .unwrap_err()
            .kind(),
        "missing_key"
    );
}

#[test]
fn every_malformed_shape_is_an_error_with_a_stable_kind() {
    let codec = Codec::with_defaults().unwrap();
    let good = encoded(&codec, &txn());
    let decode = |bytes: &[u8]| {
        codec
            .decode(EventKind::Transaction, Some(b"C1"), Some(bytes), NOW)
            .unwrap_err()
            .kind()
    };

    let mut bad_magic = good.clone();
    bad_magic[0] = 1;
    assert_eq!(decode(&bad_magic), "bad_magic_byte");
    assert_eq!(decode(&[0, 0, 1]), "truncated_header");
    let mut other_id = good.clone();
    other_id[4] = 2;
    assert_eq!(decode(&other_id), "unknown_schema_id");
    assert_eq!(decode(&good[..good.len() - 4]), "avro_decode");
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(decode(&trailing), "trailing_bytes");
    assert_eq!(
        codec
            .decode(EventKind::Transaction, Some(b"C1"), None, NOW)
            .unwrap_err()
            .kind(),
        "empty_payload"
    );
    assert_eq!(
        codec
            .decode(EventKind::Transaction, Some(b"C2"), Some(&good), NOW)
            .unwrap_err()
            .kind(),
        "key_mismatch"
    );
}

#[test]
fn field_checks_reject_what_avro_types_allow() {
    let codec = Codec::with_defaults().unwrap();
    let cases: Vec<(TransactionEvent, &str)> = vec![
        (
            TransactionEvent {
                amount_minor: -5,
                ..txn()
            },
            "amount_minor",
        ),
        (
            TransactionEvent {
                amount_minor: i64::MAX,
                ..txn()
            },
            "amount_minor",
        ),
        (
            TransactionEvent {
                event_time: -1,
                ..txn()
            },
            "event_time",
        ),
        (
            TransactionEvent {
                event_time: NOW + 3_600_000,
                ..txn()
            },
            "event_time",
        ),
        (
            TransactionEvent {
                customer_id: "".into(),
                ..txn()
            },
            "customer_id",
        ),
        (
            TransactionEvent {
                currency: "euro".into(),
                ..txn()
            },
            "currency",
        ),
        (
            TransactionEvent {
                country: "Germany".into(),
                ..txn()
            },
            "country",
        ),
        (
            TransactionEvent {
                account_id: "x".repeat(10_000).into(),
                ..txn()
            },
            "account_id",
        ),
    ];
    for (event, field) in cases {
        let bytes = encoded(&codec, &event);
        let key = event.customer_id.as_bytes();
        let err = codec
            .decode(EventKind::Transaction, Some(key), Some(&bytes), NOW)
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_field", "{field}: {err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}

#[test]
fn unknown_enum_index_and_invalid_utf8_are_decode_errors() {
    let codec = Codec::with_defaults().unwrap();
    let good = encoded(&codec, &txn());
    // Body starts with event_id: zig-zag length 2 ("E1"). Corrupt its bytes into invalid UTF-8.
    let mut bad_utf8 = good.clone();
    bad_utf8[6] = 0xff;
    assert_eq!(
        codec
            .decode(EventKind::Transaction, Some(b"C1"), Some(&bad_utf8), NOW)
            .unwrap_err()
            .kind(),
        "avro_decode"
    );
    // A profile whose lifecycle_stage index is out of range.
    let profile = CustomerProfile {
        customer_id: "C1".into(),
        updated_at: NOW - 1,
        lifecycle_stage: LifecycleStage::Dormant,
        segment: "".into(),
        credit_score: None,
        consent_marketing: true,
        consent_profiling: true,
        contact_channels: vec![],
    };
    let mut bytes = codec
        .encode_framed("CustomerProfile", &profile, Framing::Confluent)
        .unwrap();
    // Layout: header(5) "C1"(3) updated_at(varint) stage(1 byte: index 5 → zig-zag 10).
    let stage_at = bytes.iter().rposition(|b| *b == 10).unwrap();
    bytes[stage_at] = 40;
    let err = codec
        .decode(EventKind::Profile, Some(b"C1"), Some(&bytes), NOW)
        .unwrap_err();
    assert_eq!(err.kind(), "avro_decode", "{err}");
}

fn app() -> AppEvent {
    AppEvent {
        event_id: "E2".into(),
        customer_id: "C1".into(),
        event_time: NOW - 1000,
        device_id: "D1".into(),
        platform: AppPlatform::Ios,
        app_version: "7.1.0".into(),
        screen: "home".into(),
        action: AppAction::ScreenView,
        product_category: None,
        latitude: Some(51.5),
        longitude: Some(-0.12),
    }
}

fn social() -> SocialEvent {
    SocialEvent {
        event_id: "E3".into(),
        customer_id: "C1".into(),
        event_time: NOW - 1000,
        platform: "x".into(),
        interaction: SocialInteraction::Post,
        sentiment: 0.5,
        topic: Some("fees".into()),
        mentions_bank: true,
    }
}

/// Decodes `value` encoded as `record` and returns the error's kind and text (or "ok").
fn verdict<T: serde::Serialize>(codec: &Codec, kind: EventKind, record: &str, value: &T) -> String {
    let bytes = codec
        .encode_framed(record, value, Framing::Confluent)
        .unwrap();
    match codec.decode(kind, Some(b"C1"), Some(&bytes), NOW) {
        Ok(_) => "ok".into(),
        Err(e) => format!("{}: {e}", e.kind()),
    }
}

#[test]
fn every_string_field_is_bounded_including_app_version_and_social_topic() {
    // Regression (tests/hostile_input.rs): app_version and topic took strings of any length.
    let codec = Codec::with_defaults().unwrap();
    let huge: Text = "v".repeat(4097).into();
    assert_eq!(verdict(&codec, EventKind::App, "AppEvent", &app()), "ok");
    let long_version = AppEvent {
        app_version: huge.clone(),
        ..app()
    };
    let err = verdict(&codec, EventKind::App, "AppEvent", &long_version);
    assert!(
        err.starts_with("invalid_field: invalid field `app_version`: 4097 bytes"),
        "{err}"
    );
    assert_eq!(
        verdict(&codec, EventKind::Social, "SocialEvent", &social()),
        "ok"
    );
    let long_topic = SocialEvent {
        topic: Some(huge),
        ..social()
    };
    let err = verdict(&codec, EventKind::Social, "SocialEvent", &long_topic);
    assert!(
        err.starts_with("invalid_field: invalid field `topic`: 4097 bytes"),
        "{err}"
    );
}

#[test]
fn coordinates_must_be_on_the_globe_and_dwell_not_negative() {
    let codec = Codec::with_defaults().unwrap();
    for (latitude, longitude, field) in [
        (Some(f64::NAN), Some(0.0), "latitude"),
        (Some(90.5), Some(0.0), "latitude"),
        (Some(0.0), Some(f64::INFINITY), "longitude"),
        (Some(0.0), Some(-180.5), "longitude"),
    ] {
        let event = AppEvent {
            latitude,
            longitude,
            ..app()
        };
        let err = verdict(&codec, EventKind::App, "AppEvent", &event);
        assert!(
            err.starts_with(&format!("invalid_field: invalid field `{field}`")),
            "{latitude:?},{longitude:?}: {err}"
        );
    }
    let no_position = AppEvent {
        latitude: None,
        longitude: None,
        ..app()
    };
    assert_eq!(
        verdict(&codec, EventKind::App, "AppEvent", &no_position),
        "ok"
    );

    let click = |dwell_ms| ClickstreamEvent {
        event_id: "E4".into(),
        customer_id: "C1".into(),
        event_time: NOW - 1000,
        session_id: "S1".into(),
        page_url: "/loans".into(),
        action: ClickAction::PageView,
        product_category: None,
        dwell_ms,
    };
    let record = "ClickstreamEvent";
    assert_eq!(
        verdict(&codec, EventKind::Clickstream, record, &click(Some(0))),
        "ok"
    );
    assert_eq!(
        verdict(&codec, EventKind::Clickstream, record, &click(None)),
        "ok"
    );
    let err = verdict(&codec, EventKind::Clickstream, record, &click(Some(-1)));
    assert!(
        err.starts_with("invalid_field: invalid field `dwell_ms`: -1 is negative"),
        "{err}"
    );
}

#[test]
fn a_future_time_is_reported_without_overflow_whatever_the_clock() {
    // The message computed `event_time - now`, which overflows (a panic in debug builds) when the
    // clock is far negative; the clock is the caller's, so the codec must not trust it.
    let codec = Codec::with_defaults().unwrap();
    let bytes = encoded(&codec, &txn());
    let err = codec
        .decode(EventKind::Transaction, Some(b"C1"), Some(&bytes), i64::MIN)
        .unwrap_err();
    assert_eq!(err.kind(), "invalid_field");
    assert!(err.to_string().contains("in the future"), "{err}");
    let far = TransactionEvent {
        event_time: i64::MAX,
        ..txn()
    };
    let err = codec
        .decode(
            EventKind::Transaction,
            Some(b"C1"),
            Some(&encoded(&codec, &far)),
            NOW,
        )
        .unwrap_err();
    assert!(err.to_string().contains("in the future"), "{err}");
}

/// TransactionEvent v2 (fields reordered, a new optional field, a new enum symbol first).
const TXN_V2: &str = include_str!("../../tests/fixtures/schemas/transaction_event_v2.avsc");
const TXN_V1: &str = include_str!("../../avro_schemas/transaction_event.avsc");

/// `t` as a v2 producer writes it, framed with schema id `id`.
#[allow(deprecated)] // apache-avro's one-call datum functions: the reference writer here.
fn written_as_v2(codec: &Codec, t: &TransactionEvent, id: u32) -> Vec<u8> {
    let (v1, v2) = (
        apache_avro::Schema::parse_str(TXN_V1).unwrap(),
        apache_avro::Schema::parse_str(TXN_V2).unwrap(),
    );
    let plain = codec
        .encode_framed("TransactionEvent", t, Framing::Plain)
        .unwrap();
    let value = apache_avro::from_avro_datum(&v1, &mut &plain[..], Some(&v2)).unwrap();
    let mut out = vec![0];
    out.extend_from_slice(&id.to_be_bytes());
    out.extend(apache_avro::to_avro_datum(&v2, value).unwrap());
    out
}

fn registry_codec() -> Codec {
    Codec::new(&CodecOptions {
        registry: true,
        ..CodecOptions::default()
    })
    .unwrap()
}

#[test]
fn with_a_registry_a_new_writer_id_is_fetched_once_then_resolved() {
    let codec = registry_codec();
    let v1 = encoded(&codec, &txn()); // id 1
    let v2 = written_as_v2(&codec, &txn(), 101);
    assert_ne!(v1[5..], v2[5..], "v2 bytes differ (fields reordered)");
    assert_eq!(
        codec.missing_writer(EventKind::Transaction, Some(&v2)),
        Some(101)
    );
    assert_eq!(
        codec
            .decode(EventKind::Transaction, Some(b"C1"), Some(&v2), NOW)
            .unwrap_err()
            .kind(),
        "schema_not_fetched"
    );
    assert_eq!(
        codec.add_writer(EventKind::Transaction, 101, Some(TXN_V2)),
        WriterOutcome::Resolved
    );
    // Reordered fields, an added field and moved enum indexes all read by name: no transcoding.
    assert!(codec.writer_is_direct(EventKind::Transaction, 101));
    assert_eq!(
        codec.add_writer(EventKind::Transaction, 1, Some(TXN_V1)),
        WriterOutcome::Identity
    );
    assert_eq!(
        codec.missing_writer(EventKind::Transaction, Some(&v2)),
        None
    );
    // The same id on another topic is another writer (resolved against that topic's reader).
    assert_eq!(
        codec.missing_writer(EventKind::Partner, Some(&v2)),
        Some(101)
    );
    for bytes in [&v1, &v2] {
        let event = codec
            .decode(EventKind::Transaction, Some(b"C1"), Some(bytes), NOW)
            .unwrap();
        assert_eq!(event, Event::Transaction(txn()));
    }
    // Every payment method survives the moved enum indexes.
    for method in PaymentMethod::ALL {
        let t = TransactionEvent {
            payment_method: *method,
            ..txn()
        };
        let event = codec
            .decode(
                EventKind::Transaction,
                Some(b"C1"),
                Some(&written_as_v2(&codec, &t, 101)),
                NOW,
            )
            .unwrap();
        assert_eq!(event, Event::Transaction(t));
    }
}

#[test]
fn a_direct_record_the_plan_cannot_read_gets_the_transcoders_error() {
    let codec = registry_codec();
    codec.add_writer(EventKind::Transaction, 101, Some(TXN_V2));
    assert!(codec.writer_is_direct(EventKind::Transaction, 101));
    let bytes = written_as_v2(&codec, &txn(), 101);
    let decode = |b: &[u8]| codec.decode(EventKind::Transaction, Some(b"C1"), Some(b), NOW);
    // Cut anywhere in the body: the plan fails, the transcoder's error stands (no panic).
    for end in 5..bytes.len() {
        let e = decode(&bytes[..end]).unwrap_err();
        assert_eq!(e.kind(), "avro_decode", "cut at {end}: {e}");
        assert!(e.to_string().contains("writer schema 101"), "{e}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(decode(&longer).unwrap_err().kind(), "trailing_bytes");
    // A record that decodes but fails validation is refused as the transcoded one would be.
    let mut far = txn();
    far.event_time = NOW + 3_600_000;
    let far = written_as_v2(&codec, &far, 101);
    assert_eq!(decode(&far).unwrap_err().kind(), "invalid_field");
}

#[test]
fn unknown_ids_and_incompatible_writers_are_refused_with_their_reasons() {
    let codec = registry_codec();
    let mut payload = encoded(&codec, &txn());
    payload[1..5].copy_from_slice(&77u32.to_be_bytes());
    assert_eq!(
        codec.add_writer(EventKind::Transaction, 77, None),
        WriterOutcome::Unknown
    );
    let e = codec
        .decode(EventKind::Transaction, Some(b"C1"), Some(&payload), NOW)
        .unwrap_err();
    assert_eq!(e.kind(), "unknown_schema_id");
    assert!(e.to_string().contains("77"), "{e}");

    // A writer without customer_id: the reader's required field has no default.
    let mut writer: serde_json::Value = serde_json::from_str(TXN_V1).unwrap();
    writer["fields"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["name"] != "customer_id");
    let outcome = codec.add_writer(EventKind::Transaction, 78, Some(&writer.to_string()));
    assert!(
        matches!(&outcome, WriterOutcome::Incompatible(r) if r.contains("customer_id") && r.contains("no default")),
        "{outcome:?}"
    );
    payload[1..5].copy_from_slice(&78u32.to_be_bytes());
    let e = codec
        .decode(EventKind::Transaction, Some(b"C1"), Some(&payload), NOW)
        .unwrap_err();
    assert_eq!(e.kind(), "incompatible_schema");
    assert!(e.to_string().contains("customer_id"), "{e}");

    let outcome = codec.add_writer(EventKind::Transaction, 79, Some("{not json"));
    assert!(matches!(outcome, WriterOutcome::Incompatible(r) if r.contains("does not parse")));
}

#[test]
fn a_symbol_the_reader_lacks_is_dead_lettered_when_its_enum_has_no_default() {
    // v2's BNPL is not in the v1 reader, whose PaymentMethod has no default.
    let codec = registry_codec();
    codec.add_writer(EventKind::Transaction, 101, Some(TXN_V2));
    let mut bytes = written_as_v2(&codec, &txn(), 101);
    // payment_method follows customer_id, amount_minor, currency and txn_type in v2; its index
    // (DEBIT_CARD = 2 in v2, zig-zag 4) becomes BNPL (0).
    let v2 = apache_avro::Schema::parse_str(TXN_V2).unwrap();
    #[allow(deprecated)]
    let mut value = apache_avro::from_avro_datum(&v2, &mut &bytes[5..], None).unwrap();
    if let apache_avro::types::Value::Record(fields) = &mut value {
        for (name, v) in fields.iter_mut() {
            if name == "payment_method" {
                *v = apache_avro::types::Value::Enum(0, "BNPL".into());
            }
        }
    }
    #[allow(deprecated)]
    let body = apache_avro::to_avro_datum(&v2, value).unwrap();
    bytes.truncate(5);
    bytes.extend(body);
    let e = codec
        .decode(EventKind::Transaction, Some(b"C1"), Some(&bytes), NOW)
        .unwrap_err();
    assert_eq!(e.kind(), "unknown_enum_symbol");
    assert!(e.to_string().contains("BNPL"), "{e}");
}

#[test]
fn without_a_registry_only_the_static_id_is_accepted() {
    let codec = Codec::with_defaults().unwrap();
    let v2 = written_as_v2(&codec, &txn(), 101);
    assert_eq!(
        codec.missing_writer(EventKind::Transaction, Some(&v2)),
        None
    );
    assert_eq!(
        codec
            .decode(EventKind::Transaction, Some(b"C1"), Some(&v2), NOW)
            .unwrap_err()
            .kind(),
        "unknown_schema_id"
    );
}
