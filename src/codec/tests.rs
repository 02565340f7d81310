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
