//! Earlier formats' bytes read by `migrate.rs`: each test writes a state as that release wrote it
//! and reads it as this one.

use super::*;

#[test]
fn an_offer_in_a_format_4_outbox_reads_without_its_propensity() {
    let offer = OfferV4 {
        offer_id: "o1".into(),
        customer_id: String::new(),
        offer_code: "CC-1".into(),
        product_category: ProductCategory::CreditCard,
        channel: ContactChannel::Email,
        score: 12.5,
        rule_id: "offer-card".into(),
        rule_version: 2,
        reasons: vec!["x".into()],
        features: [("f", 1.0)].into_iter().collect(),
        trigger_event_id: "E1".into(),
        decided_at: 1_000,
        expires_at: 2_000,
    };
    let v4 = StateV4 {
        features: Vec::new(),
        profile: None,
        history: HistoryV4 {
            offers: vec![OfferRecordV4 {
                rule_id: "offer-card".into(),
                product: ProductCategory::CreditCard,
                offer_id: "o0".into(),
                at: 500,
                response: Some(OfferResponseKind::Clicked),
                responded_at: Some(600),
            }],
            alerts: Vec::new(),
        },
        last_high_alert_at: None,
        last_complaint_at: None,
        last_negative_social_at: None,
        applied: Vec::new(),
        max_event_time: 1_000,
        erased_before: None,
        outbox: vec![OutboxV4 {
            kind: 0,
            partition: 1,
            offset: 7,
            decisions: vec![DecisionV4::Offer(offer)],
        }],
        shadow: HistoryV4 {
            offers: Vec::new(),
            alerts: Vec::new(),
        },
    };
    let mut bytes = vec![FORMAT_4];
    bytes.extend(postcard::to_allocvec(&v4).unwrap());
    let state = CustomerState::from_bytes(&bytes).unwrap();
    let Decision::Offer(o) = &state.outbox[0].decisions[0] else {
        panic!("an offer")
    };
    assert_eq!((o.score, o.propensity, o.explored), (12.5, None, false));
    assert_eq!(o.offer_code, "CC-1");
    let held = &state.history.offers()[0];
    assert_eq!(
        (held.responded_at, held.counted, held.configured),
        (Some(600), 0, 0.0)
    );
    let again = CustomerState::from_bytes(&state.to_bytes().unwrap()).unwrap();
    assert_eq!(again, state);
}

#[test]
fn state_written_in_format_3_reads_with_its_outbox() {
    let audit = AuditV3 {
        audit_id: "a1".into(),
        customer_id: String::new(),
        trigger_event_id: "E1".into(),
        rule_id: "alert-card-velocity".into(),
        rule_version: 1,
        ruleset_version: 7,
        outcome: DecisionOutcome::Alerted,
        decision_id: Some("x".into()),
        reasons: vec!["card_txn_count_1h >= 8".into()],
        features: [("card_txn_count_1h", 9.0)].into_iter().collect(),
        decided_at: 1_000,
    };
    let v3 = StateV3 {
        features: Vec::new(),
        profile: None,
        contacts: Vec::new(),
        alerts: vec![AlertRecordV5 {
            rule_id: "alert-card-velocity".into(),
            at: 1_000,
        }],
        last_high_alert_at: Some(1_000),
        last_complaint_at: None,
        last_negative_social_at: None,
        applied: vec![AppliedOffset {
            kind: 0,
            partition: 2,
            offset: 41,
        }],
        max_event_time: 1_000,
        erased_before: None,
        outbox: vec![OutboxV3 {
            kind: 0,
            partition: 2,
            offset: 41,
            decisions: vec![DecisionV3::Audit(audit)],
        }],
    };
    let mut bytes = vec![FORMAT_3];
    bytes.extend(postcard::to_allocvec(&v3).unwrap());
    let state = CustomerState::from_bytes(&bytes).unwrap();
    assert!(state.is_applied(0, 2, 41));
    assert_eq!(state.history.alerts().len(), 1);
    assert_eq!(state.last_high_alert_at, Some(1_000));
    let Decision::Audit(a) = &state.outbox[0].decisions[0] else {
        panic!("an audit record")
    };
    assert_eq!((a.rule_version, a.shadow_outcome), (1, None));
    assert_eq!(state.shadow, ContactHistory::default());
    // What it becomes is written in the current format.
    let again = CustomerState::from_bytes(&state.to_bytes().unwrap()).unwrap();
    assert_eq!(again, state);
}
