//! Compile errors (with positions), rendering of terms, feature slots, and a few evaluations.

use super::*;
use crate::event::*;
use crate::features::spec;

fn features() -> FeatureSet {
    spec::load(None).unwrap_or_else(|e| panic!("starter features: {e}"))
}

fn txn(amount_minor: i64, method: PaymentMethod) -> Event {
    Event::Transaction(TransactionEvent {
        event_id: "e1".into(),
        customer_id: "c1".into(),
        event_time: 1_790_000_000_000,
        account_id: "a1".into(),
        txn_type: TxnType::CardPayment,
        amount_minor,
        currency: "EUR".into(),
        payment_method: method,
        merchant_category: None,
        channel: TxnChannel::Pos,
        country: "DE".into(),
        balance_after_minor: Some(10_000),
    })
}

fn profile() -> ProfileState {
    ProfileState {
        updated_at: 0,
        lifecycle_stage: LifecycleStage::Growing,
        segment: "mass_affluent".into(),
        credit_score: None,
        consent_marketing: true,
        consent_profiling: false,
        contact_channels: vec![ContactChannel::Email, ContactChannel::Push],
    }
}

fn compile(src: &str) -> Result<Condition, ConditionError> {
    Condition::compile(src, &[EventKind::Transaction], &features())
}

fn error(src: &str) -> ConditionError {
    match compile(src) {
        Ok(_) => panic!("`{src}` compiled"),
        Err(e) => e,
    }
}

fn at(e: &ConditionError) -> (usize, usize) {
    (e.line, e.column)
}

#[test]
fn compile_errors_name_the_problem_and_where_it_is() {
    let e = error("features.debit_card_spend_30d >= 1500.0 &&\n  features.debit_spend_30d > 1.0");
    assert_eq!(at(&e), (2, 3), "{e}");
    assert!(
        e.message.contains("unknown feature `debit_spend_30d`"),
        "{e}"
    );
    assert!(
        e.message.contains("debit_card_spend_30d"),
        "suggests a near name: {e}"
    );

    let e = error("event.amount_minor > 1 && event.colour == 'RED'");
    assert_eq!(at(&e), (1, 27), "{e}");
    assert!(e.message.contains("no field `colour`"), "{e}");

    let e = error("customer.age > 30");
    assert_eq!(at(&e), (1, 1), "{e}");
    assert!(e.message.contains("unknown root `customer`"), "{e}");

    let e = error("profile.age > 30");
    assert!(e.message.contains("the profile has no field `age`"), "{e}");

    let e = error("event.payment_method == 'DEBIT'");
    assert_eq!(at(&e), (1, 25), "{e}");
    assert!(e.message.contains("'DEBIT' is not a valid symbol"), "{e}");
    assert!(
        e.message.contains("DEBIT_CARD"),
        "names the valid symbols: {e}"
    );

    let e = error("event.txn_type in ['CARD_PAYMENT', 'CARD']");
    assert_eq!(at(&e), (1, 36), "{e}");

    let e = error("'FAX' in profile.contact_channels");
    assert!(e.message.contains("EMAIL, SMS"), "{e}");

    let e = error("event.country >= 1");
    assert_eq!(at(&e), (1, 15), "{e}");
    assert!(
        e.message.contains("cannot order a string against a int"),
        "{e}"
    );

    let e = error("features.spend_24h + 1 > 2.0");
    assert!(e.message.contains("double and int"), "{e}");

    let e = error("features.spend_24h");
    assert!(e.message.contains("must be a boolean"), "{e}");

    let e = error("event.amount_minor > 1 &&\n\n   [1, 2].exists(x, x > 1)");
    assert_eq!(e.line, 3, "{e}");

    let e = error("matches(event.country, 'D.*')");
    assert!(e.message.contains("`matches` is not supported"), "{e}");

    let e = error("event.amount_minor > ");
    assert_eq!(e.line, 1, "{e}");
    assert!(!e.message.is_empty());

    let e = Condition::compile(
        "event.amount_minor > 100",
        &[EventKind::Transaction, EventKind::App],
        &features(),
    )
    .err()
    .unwrap_or_else(|| panic!("App has no amount_minor"));
    assert!(e.message.contains("AppEvent"), "{e}");
    assert_eq!(
        e.to_string(),
        format!("line 1, column {}: {}", e.column, e.message)
    );
}

#[test]
fn columns_count_characters() {
    let e = error("event.country == 'Ü' && event.nope");
    assert_eq!(at(&e), (1, 25), "{e}");
}

#[test]
fn terms_render_the_top_level_conjuncts() {
    let c = compile(
        "features.debit_card_spend_30d >= 1500.0 && features.credit_card_txn_count_30d == 0.0 \
         && event.payment_method == \"DEBIT_CARD\" && (event.amount_minor > 10 || !has(event.merchant_category)) \
         && (event.amount_minor - 1) * 2 > -3 && event.country in ['DE', 'it\\'s']",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let terms: Vec<&str> = c.terms().iter().map(|t| &**t).collect();
    assert_eq!(
        terms,
        [
            "features.debit_card_spend_30d >= 1500.0",
            "features.credit_card_txn_count_30d == 0.0",
            "event.payment_method == 'DEBIT_CARD'",
            "event.amount_minor > 10 || !has(event.merchant_category)",
            "(event.amount_minor - 1) * 2 > -3",
            "event.country in ['DE', 'it\\'s']",
        ]
    );
    let c = compile("event.country.startsWith('D') ? size(event.currency) == 3 : 1u < 2u")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.terms(),
        [Arc::from(
            "event.country.startsWith('D') ? size(event.currency) == 3 : 1u < 2u"
        )]
    );
}

#[test]
fn feature_slots_are_sorted_and_distinct() {
    let fs = features();
    let c = Condition::compile(
        "features.spend_24h > 1.0 && has(features.txn_count_24h) && features.spend_24h < 9.0",
        &[EventKind::Transaction],
        &fs,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut want = vec![
        fs.slot("spend_24h").unwrap_or(usize::MAX),
        fs.slot("txn_count_24h").unwrap_or(usize::MAX),
    ];
    want.sort_unstable();
    assert_eq!(c.feature_slots(), want);
}

#[test]
fn evaluates_the_typical_offer_condition() {
    let fs = features();
    let c = Condition::compile(
        "features.debit_card_spend_30d >= 1500.0 && features.credit_card_txn_count_30d == 0.0 \
         && event.payment_method == 'DEBIT_CARD'",
        &[EventKind::Transaction],
        &fs,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let debit = fs.slot("debit_card_spend_30d").unwrap_or(usize::MAX);
    let mut values = |slot: usize| Some(if slot == debit { 1600.0 } else { 0.0 });
    assert!(c.eval(&txn(100, PaymentMethod::DebitCard), None, &mut values));
    assert!(!c.eval(&txn(100, PaymentMethod::CreditCard), None, &mut values));
    // A missing feature value is an error, so false.
    assert!(!c.eval(&txn(100, PaymentMethod::DebitCard), None, &mut |_| None));
}

#[test]
fn errors_are_absorbed_only_where_cel_absorbs_them() {
    let p = profile();
    let ev = txn(100, PaymentMethod::DebitCard);
    let check = |src: &str, want: bool| {
        let c = compile(src).unwrap_or_else(|e| panic!("{src}: {e}"));
        assert_eq!(c.eval(&ev, Some(&p), &mut |_| None), want, "{src}");
    };
    check(
        "features.spend_24h > 1.0 || event.amount_minor == 100",
        true,
    );
    check(
        "event.amount_minor == 100 || features.spend_24h > 1.0",
        true,
    );
    check(
        "!(features.spend_24h > 1.0 && event.amount_minor == 1)",
        true,
    );
    check(
        "!(features.spend_24h > 1.0 && event.amount_minor == 100)",
        false,
    );
    check(
        "!has(features.spend_24h) && !has(profile.credit_score)",
        true,
    );
    check(
        "profile.credit_score > 600 || 'PUSH' in profile.contact_channels",
        true,
    );
    check("event.amount_minor / 0 == 1 || true", true);
    check("event.amount_minor / 0 == 1 || false", false);
    check(
        "9223372036854775807 + event.amount_minor > 0 || false",
        false,
    );
    check(
        "event.amount_minor > 99.5 && profile.lifecycle_stage == 'GROWING'",
        true,
    );
    check(
        "profile.segment.startsWith('mass') && size(profile.segment) == 13",
        true,
    );
    // Not a trigger kind: false.
    let c = compile("true").unwrap_or_else(|e| panic!("{e}"));
    let app = Event::Erasure(ErasureRequest {
        request_id: "r".into(),
        customer_id: "c".into(),
        requested_at: 0,
    });
    assert!(!c.eval(&app, None, &mut |_| None));
}

#[test]
fn compile_all_lists_every_error_in_the_order_of_the_source() {
    let src =
        "features.nope_a > 1.0 && (event.colour == 'RED' || 'a' >= 1)\n  && features.nope_b < 2.0";
    let errors = Condition::compile_all(src, &[EventKind::Transaction], &features()).unwrap_err();
    let at: Vec<(usize, usize)> = errors.iter().map(at).collect();
    assert_eq!(at, [(1, 1), (1, 27), (1, 56), (2, 6)], "{errors:?}");
    assert!(errors[0].message.contains("nope_a"), "{errors:?}");
    assert!(errors[1].message.contains("colour"), "{errors:?}");
    assert!(errors[2].message.contains("cannot order"), "{errors:?}");
    assert!(errors[3].message.contains("nope_b"), "{errors:?}");
    assert_eq!(error(src), errors[0], "compile reports the first");

    // A field missing in two trigger kinds is reported once, with the first kind.
    let kinds = [EventKind::Transaction, EventKind::Feedback];
    let errors = Condition::compile_all("event.colour == 'RED'", &kinds, &features()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.ends_with("(for TransactionEvent events)"),
        "{errors:?}"
    );
}
