#![allow(deprecated)] // from_avro_datum/to_avro_datum: the reference API, kept in this test on purpose.
//! Every `.avsc` in avro_schemas/ parses (with apache-avro, the reference implementation) and an
//! example of each record round-trips: encoded by the pipeline's codec, read back by apache-avro
//! against the schema file, and decoded again by the codec.

use nbo_stream::codec::{schemas, Codec, Framing};
use nbo_stream::event::*;
use nbo_stream::output::*;

const T: i64 = 1_790_000_000_000;

fn examples(codec: &Codec) -> Vec<(&'static str, Vec<u8>)> {
    let f = Framing::Plain;
    let features: FeatureValues = [("spend_24h", 12.5)].into_iter().collect();
    let mut out = Vec::new();
    let mut push = |name: &'static str, bytes: Result<Vec<u8>, nbo_stream::codec::EncodeError>| {
        out.push((name, bytes.unwrap()))
    };
    push(
        "TransactionEvent",
        codec.encode_framed(
            "TransactionEvent",
            &TransactionEvent {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                account_id: "a".into(),
                txn_type: TxnType::LoanRepayment,
                amount_minor: 1,
                currency: "EUR".into(),
                payment_method: PaymentMethod::Wallet,
                merchant_category: None,
                channel: TxnChannel::Mobile,
                country: "FR".into(),
                balance_after_minor: Some(-5),
            },
            f,
        ),
    );
    push(
        "ClickstreamEvent",
        codec.encode_framed(
            "ClickstreamEvent",
            &ClickstreamEvent {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                session_id: "s".into(),
                page_url: "/".into(),
                action: ClickAction::FormSubmit,
                product_category: Some(ProductCategory::Savings),
                dwell_ms: None,
            },
            f,
        ),
    );
    push(
        "AppEvent",
        codec.encode_framed(
            "AppEvent",
            &AppEvent {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                device_id: "d".into(),
                platform: AppPlatform::Harmony,
                app_version: "1".into(),
                screen: "s".into(),
                action: AppAction::ApplyStart,
                product_category: None,
                latitude: Some(51.5),
                longitude: Some(-0.1),
            },
            f,
        ),
    );
    push(
        "SocialEvent",
        codec.encode_framed(
            "SocialEvent",
            &SocialEvent {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                platform: "p".into(),
                interaction: SocialInteraction::Mention,
                sentiment: -0.5,
                topic: None,
                mentions_bank: true,
            },
            f,
        ),
    );
    push(
        "FeedbackEvent",
        codec.encode_framed(
            "FeedbackEvent",
            &FeedbackEvent {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                channel: FeedbackChannel::Survey,
                kind: FeedbackKind::SurveyResponse,
                product_category: Some(ProductCategory::Other),
                satisfaction: Some(3),
            },
            f,
        ),
    );
    push(
        "PartnerEvent",
        codec.encode_framed(
            "PartnerEvent",
            &PartnerEvent {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                partner: "p".into(),
                category: "TRAVEL".into(),
                amount_minor: 9,
                currency: "GBP".into(),
            },
            f,
        ),
    );
    push(
        "CustomerProfile",
        codec.encode_framed(
            "CustomerProfile",
            &CustomerProfile {
                customer_id: "c".into(),
                updated_at: T,
                lifecycle_stage: LifecycleStage::AtRisk,
                segment: "s".into(),
                credit_score: Some(700),
                consent_marketing: true,
                consent_profiling: false,
                contact_channels: vec![ContactChannel::Sms, ContactChannel::Branch],
            },
            f,
        ),
    );
    push(
        "OfferResponse",
        codec.encode_framed(
            "OfferResponse",
            &OfferResponse {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                offer_id: "o".into(),
                response: OfferResponseKind::Declined,
            },
            f,
        ),
    );
    push(
        "ErasureRequest",
        codec.encode_framed(
            "ErasureRequest",
            &ErasureRequest {
                request_id: "r".into(),
                customer_id: "c".into(),
                requested_at: T,
            },
            f,
        ),
    );
    push(
        "ProductOpened",
        codec.encode_framed(
            "ProductOpened",
            &ProductOpened {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                product_category: ProductCategory::Savings,
                account_id: "a".into(),
                channel: "BRANCH".into(),
                offer_id: None,
            },
            f,
        ),
    );
    push(
        "InboundContact",
        codec.encode_framed(
            "InboundContact",
            &InboundContact {
                event_id: "o".into(),
                customer_id: "c".into(),
                event_time: T,
                decision_id: "d".into(),
                channel: "APP".into(),
                rule_id: "r".into(),
                rule_version: 2,
                product_category: ProductCategory::Savings,
                propensity: 0.25,
                outcome: InboundContactKind::ControlGroup,
            },
            f,
        ),
    );
    push(
        "AlertOutcome",
        codec.encode_framed(
            "AlertOutcome",
            &AlertOutcome {
                event_id: "e".into(),
                customer_id: "c".into(),
                event_time: T,
                alert_id: "a".into(),
                label: AlertLabel::FalsePositive,
                fraud_party: None,
                amount_minor: Some(1),
                currency: Some("EUR".into()),
                closed_by: "x".into(),
            },
            f,
        ),
    );
    push(
        "NextBestOffer",
        codec.encode_framed(
            "NextBestOffer",
            &NextBestOffer {
                offer_id: "o".into(),
                customer_id: "c".into(),
                offer_code: "X".into(),
                product_category: ProductCategory::Mortgage,
                channel: ContactChannel::Call,
                score: 1.5,
                rule_id: "r".into(),
                rule_version: 2,
                reasons: vec!["why".into()],
                features: features.clone(),
                trigger_event_id: "e".into(),
                decided_at: T,
                expires_at: T + 1,
                propensity: Some(0.12),
                explored: false,
            },
            f,
        ),
    );
    push(
        "RiskAlert",
        codec.encode_framed(
            "RiskAlert",
            &RiskAlert {
                alert_id: "a".into(),
                customer_id: "c".into(),
                kind: AlertKind::Attrition,
                severity: Severity::Critical,
                rule_id: "r".into(),
                rule_version: 1,
                reasons: vec![],
                features: features.clone(),
                trigger_event_id: "e".into(),
                raised_at: T,
            },
            f,
        ),
    );
    push(
        "DecisionAudit",
        codec.encode_framed(
            "DecisionAudit",
            &DecisionAudit {
                audit_id: "a".into(),
                customer_id: "c".into(),
                trigger_event_id: "e".into(),
                rule_id: "r".into(),
                rule_version: 1,
                ruleset_version: 3,
                outcome: DecisionOutcome::SuppressedCooldown,
                decision_id: None,
                reasons: vec!["rolled up".into()],
                features,
                decided_at: T,
                shadow_outcome: None,
                features_as_of: None,
                propensity: None,
                // A roll-up record: the nested record in its union round-trips too.
                rolled_up: Some(nbo_stream::output::RolledUp {
                    count: 7,
                    last_trigger_event_id: "e9".into(),
                    last_decided_at: T + 1,
                }),
            },
            f,
        ),
    );
    push(
        "DeadLetter",
        codec.encode_framed(
            "DeadLetter",
            &DeadLetter {
                source_topic: "t".into(),
                source_partition: 1,
                source_offset: 2,
                key: Some(b"k".to_vec()),
                payload: None,
                error_kind: "bad_magic_byte".into(),
                error: "x".into(),
                at: T,
            },
            f,
        ),
    );
    out
}

#[test]
fn every_schema_file_parses_and_every_record_round_trips() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("avro_schemas");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        files.len(),
        schemas::ALL.len(),
        "one .avsc per record of the contract"
    );
    let codec = Codec::with_defaults().unwrap();
    let examples = examples(&codec);
    assert_eq!(examples.len(), schemas::ALL.len());
    for (record, bytes) in examples {
        let entry = schemas::by_record(record).unwrap();
        let text = std::fs::read_to_string(dir.join(entry.file)).unwrap();
        assert_eq!(
            text, entry.text,
            "{record}: the embedded schema is the file"
        );
        let schema =
            apache_avro::Schema::parse_str(&text).unwrap_or_else(|e| panic!("{record}: {e}"));
        let value = apache_avro::from_avro_datum(&schema, &mut bytes.as_slice(), None)
            .unwrap_or_else(|e| panic!("{record}: {e}"));
        assert!(value.validate(&schema), "{record}: decoded value validates");
        let again = apache_avro::to_avro_datum(&schema, value).unwrap();
        assert_eq!(
            again, bytes,
            "{record}: apache-avro re-encodes the same bytes"
        );
    }
}

#[test]
fn enum_symbols_match_the_domain_enums() {
    let text = schemas::by_record("DecisionAudit").unwrap().text;
    for outcome in DecisionOutcome::ALL {
        assert!(
            text.contains(&format!("\"{}\"", outcome.as_str())),
            "{outcome}"
        );
    }
    let text = schemas::by_record("TransactionEvent").unwrap().text;
    for t in TxnType::ALL {
        assert!(text.contains(&format!("\"{}\"", t.as_str())), "{t}");
    }
}
