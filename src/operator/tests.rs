use super::*;
use crate::event::*;
use crate::features::FeatureValue;
use crate::output::{DecisionAudit, NextBestOffer, RiskAlert};

pub(super) const H: i64 = 3_600_000;
pub(super) const T0: i64 = 1_800_000_000_000;

fn operator() -> Operator {
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let rules = crate::rules::load::rule_set(None, &features).unwrap();
    Operator::new(
        features,
        rules,
        &crate::config::OperatorSettings::default(),
        0,
    )
}

pub(super) fn card(
    n: usize,
    t: i64,
    amount_minor: i64,
    method: PaymentMethod,
    country: &str,
) -> Event {
    Event::Transaction(TransactionEvent {
        event_id: format!("E{n}").into(),
        customer_id: "C1".into(),
        event_time: t,
        account_id: "A1".into(),
        txn_type: TxnType::CardPayment,
        amount_minor,
        currency: "EUR".into(),
        payment_method: method,
        merchant_category: None,
        channel: TxnChannel::Pos,
        country: country.into(),
        balance_after_minor: None,
    })
}

pub(super) fn profile(consent: bool) -> Event {
    Event::Profile(CustomerProfile {
        customer_id: "C1".into(),
        updated_at: T0 - H,
        lifecycle_stage: LifecycleStage::Growing,
        segment: "MASS".into(),
        credit_score: Some(700),
        consent_marketing: consent,
        consent_profiling: true,
        contact_channels: vec![ContactChannel::Email],
    })
}

pub(super) struct Run {
    pub(super) op: Operator,
    pub(super) state: CustomerState,
    pub(super) out: Vec<Decision>,
    pub(super) stats: BatchStats,
    offset: i64,
}

impl Run {
    pub(super) fn new() -> Self {
        Self::with(operator())
    }
    /// A run of `op` for customer C1, aligned.
    pub(super) fn with(op: Operator) -> Self {
        let mut state = CustomerState::default();
        op.align(&mut state);
        Self {
            op,
            state,
            out: Vec::new(),
            stats: BatchStats::default(),
            offset: 0,
        }
    }
    pub(super) fn feed(&mut self, e: Event) {
        self.offset += 1;
        let pos = SourcePos {
            kind: e.kind().index() as u8,
            partition: 0,
            offset: self.offset,
        };
        self.op.apply(
            &mut self.state,
            &e,
            Some(pos),
            &mut self.out,
            &mut self.stats,
        );
    }
    pub(super) fn offers(&self) -> Vec<&NextBestOffer> {
        self.out
            .iter()
            .filter_map(|d| match d {
                Decision::Offer(o) => Some(o),
                _ => None,
            })
            .collect()
    }
    pub(super) fn alerts(&self) -> Vec<&RiskAlert> {
        self.out
            .iter()
            .filter_map(|d| match d {
                Decision::Alert(a) => Some(a),
                _ => None,
            })
            .collect()
    }
    pub(super) fn outcomes(&self) -> Vec<DecisionOutcome> {
        self.out
            .iter()
            .filter_map(|d| match d {
                Decision::Audit(a) => Some(a.outcome),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn heavy_debit_spender_with_consent_gets_the_credit_card_offer_once() {
    let mut run = Run::new();
    run.feed(profile(true));
    for i in 0..4 {
        run.feed(card(
            i,
            T0 + i as i64 * 10 * H,
            50_000,
            PaymentMethod::DebitCard,
            "DE",
        ));
    }
    let offers = run.offers();
    assert_eq!(offers.len(), 1, "{:?}", run.outcomes());
    let o = offers[0];
    assert_eq!(o.rule_id, "offer-credit-card-heavy-debit");
    assert_eq!(o.product_category, ProductCategory::CreditCard);
    assert_eq!(o.channel, ContactChannel::Email);
    assert_eq!(o.features["debit_card_spend_30d"], 1500.0);
    assert_eq!(o.trigger_event_id, "E2");
    // The fourth payment also qualifies but the offer is in its cooldown.
    assert!(run
        .outcomes()
        .contains(&DecisionOutcome::SuppressedCooldown));
}

#[test]
fn audits_say_what_their_features_were_as_of_and_the_offers_propensity() {
    let mut run = Run::new();
    run.feed(profile(true));
    for i in 0..3 {
        let at = T0 + i as i64 * 10 * H;
        run.feed(card(i, at, 50_000, PaymentMethod::DebitCard, "DE"));
    }
    let offer = run.offers()[0].clone();
    let audit = |out: &[Decision], id: &str| -> DecisionAudit {
        out.iter()
            .find_map(|d| match d {
                Decision::Audit(a) if a.trigger_event_id == id => Some(a.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no audit of {id}"))
    };
    let offered = audit(&run.out, "E2");
    assert_eq!(offered.outcome, DecisionOutcome::Offered);
    assert_eq!(offered.features_as_of, Some(offered.decided_at));
    assert_eq!(offered.propensity, offer.propensity);
    assert!(offered.propensity.is_some());

    // A payment 30 minutes late (within the hour of allowed lateness) is decided at its own
    // time, with features that have taken in the payment after it.
    run.out.clear();
    run.feed(card(
        9,
        T0 + 20 * H - H / 2,
        50_000,
        PaymentMethod::DebitCard,
        "DE",
    ));
    let late = audit(&run.out, "E9");
    assert_eq!(late.decided_at, T0 + 20 * H - H / 2);
    assert_eq!(late.features_as_of, Some(T0 + 20 * H));
    assert_eq!(late.propensity, None, "{:?} is not an offer", late.outcome);
}

#[test]
fn no_offer_without_marketing_consent_but_an_audit_saying_why() {
    let mut run = Run::new();
    run.feed(profile(false));
    for i in 0..4 {
        run.feed(card(
            i,
            T0 + i as i64 * H,
            60_000,
            PaymentMethod::DebitCard,
            "DE",
        ));
    }
    assert!(run.offers().is_empty());
    assert!(run
        .outcomes()
        .iter()
        .all(|o| *o == DecisionOutcome::SuppressedNoConsent));
    assert!(!run.outcomes().is_empty());
}

#[test]
fn card_velocity_alerts_once_per_cooldown_and_blocks_marketing() {
    let (run, _) = velocity_alert_raised();
    let alerts = run.alerts();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].rule_id, "alert-card-velocity");
    assert_eq!(alerts[0].severity, Severity::High);
    assert_eq!(alerts[0].trigger_event_id, "E7");
    // Spend crossed the credit-card threshold after the alert: suppressed for risk.
    assert!(run.offers().is_empty());
    assert!(run.outcomes().contains(&DecisionOutcome::SuppressedRisk));
}

#[test]
fn replayed_offsets_are_not_counted_twice() {
    let mut run = Run::new();
    let e = card(1, T0, 10_000, PaymentMethod::DebitCard, "DE");
    let pos = SourcePos {
        kind: 0,
        partition: 3,
        offset: 7,
    };
    run.op
        .apply(&mut run.state, &e, Some(pos), &mut run.out, &mut run.stats);
    run.op
        .apply(&mut run.state, &e, Some(pos), &mut run.out, &mut run.stats);
    assert_eq!(run.stats.replayed, 1);
    let slot = run.op.features().slot("txn_count_24h").unwrap();
    assert_eq!(run.op.value_at(&run.state, slot, T0), Some(1.0));
}

#[test]
fn erasure_wipes_state_and_blocks_older_events() {
    let mut run = Run::new();
    run.feed(profile(true));
    run.feed(card(1, T0, 10_000, PaymentMethod::DebitCard, "DE"));
    run.feed(Event::Erasure(ErasureRequest {
        request_id: "R1".into(),
        customer_id: "C1".into(),
        requested_at: T0 + H,
    }));
    assert!(run.state.profile.is_none());
    run.feed(card(
        2,
        T0 + 30 * 60_000,
        10_000,
        PaymentMethod::DebitCard,
        "DE",
    ));
    assert_eq!(run.stats.erased, 1);
    assert!(run
        .op
        .public_values(&run.state)
        .iter()
        .all(|(_, v)| *v == FeatureValue::Num(0.0)));
}

#[test]
fn last_of_a_text_field_is_the_latest_by_event_time_and_rules_compare_it() {
    let features = std::sync::Arc::new(
        crate::features::spec::compile(
            r#"
[[feature]]
name = "last_country_24h"
source = "TransactionEvent"
aggregation = "last"
field = "country"
window = "24h"

[[feature]]
name = "last_method_24h"
source = "TransactionEvent"
aggregation = "last"
field = "payment_method"
window = "24h"
"#,
            "text.toml",
        )
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("abroad.toml"),
        r#"id = "alert-abroad"
version = 1
description = "The latest payment of the day was made in France"
triggers = ["TransactionEvent"]
condition = "features.last_country_24h == 'FR' && has(features.last_method_24h)"
[alert]
kind = "FRAUD"
severity = "LOW"
cooldown = "1h"
"#,
    )
    .unwrap();
    let rules = crate::rules::load::rule_set(Some(dir.path()), &features).unwrap();
    let mut run = Run::new();
    run.op = Operator::new(
        features,
        rules,
        &crate::config::OperatorSettings::default(),
        0,
    );
    run.op.align(&mut run.state);
    run.feed(card(1, T0, 1_000, PaymentMethod::DebitCard, "DE"));
    assert!(run.alerts().is_empty());
    let text = |run: &Run| {
        let v = run.op.public_values(&run.state);
        v.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        text(&run),
        ["last_country_24h=DE", "last_method_24h=DEBIT_CARD"]
    );
    run.feed(card(2, T0 + 60_000, 1_000, PaymentMethod::CreditCard, "FR"));
    assert_eq!(run.alerts().len(), 1, "the latest country is FR");
    // A late event (earlier event time) does not replace the latest.
    run.feed(card(3, T0 - 60_000, 1_000, PaymentMethod::Cash, "GB"));
    assert_eq!(
        text(&run),
        ["last_country_24h=FR", "last_method_24h=CREDIT_CARD"]
    );
    // A day later only the new event is in the window.
    run.feed(card(4, T0 + 26 * H, 1_000, PaymentMethod::Cash, "IT"));
    assert_eq!(text(&run), ["last_country_24h=IT", "last_method_24h=CASH"]);
    let restored = CustomerState::from_bytes(&run.state.to_bytes().unwrap()).unwrap();
    assert_eq!(
        restored.features, run.state.features,
        "text tiles survive the store"
    );
}

#[test]
fn events_older_than_the_longest_window_are_dropped_and_counted() {
    let mut run = Run::new();
    run.feed(card(1, T0, 10_000, PaymentMethod::DebitCard, "DE"));
    run.feed(card(
        2,
        T0 - 100 * 24 * H,
        10_000,
        PaymentMethod::DebitCard,
        "DE",
    ));
    assert_eq!(run.stats.too_late, 1);
}

#[test]
fn short_window_tiles_are_retired_even_when_a_long_window_feature_came_first() {
    let mut run = Run::new();
    run.feed(card(0, T0, 10_000, PaymentMethod::DebitCard, "DE"));
    for i in 1..=432 {
        // Every 10 minutes for 3 days.
        run.feed(card(
            i,
            T0 + i as i64 * 600_000,
            1_000,
            PaymentMethod::DebitCard,
            "DE",
        ));
    }
    let slot = run.op.features().slot("card_txn_count_1h").unwrap();
    let held = run.state.features[slot].1.len();
    // 1h window + 1h lateness in 2-minute tiles, one event per 10 minutes: about 12 tiles.
    assert!(held <= 15, "card_txn_count_1h holds {held} tiles");
    assert_eq!(
        run.op.value_at(&run.state, slot, T0 + 432 * 600_000),
        Some(6.0)
    );
}

#[test]
fn with_an_outbox_a_replayed_event_re_emits_its_stored_decisions_byte_for_byte() {
    let mut run = Run::new();
    run.op = operator().with_outbox(true);
    run.feed(profile(true));
    for n in 0..6 {
        run.feed(card(
            n,
            T0 + n as i64 * H,
            30_000,
            PaymentMethod::DebitCard,
            "GB",
        ));
    }
    let first: Vec<Decision> = run.out.clone();
    assert!(!run.offers().is_empty(), "the card offer was made");
    // Redis never holds a raw customer id: the outbox blanks it.
    let stored: Vec<&Decision> = run.state.outbox.iter().flat_map(|e| &e.decisions).collect();
    assert_eq!(stored.len(), first.len());
    assert!(stored.iter().all(|d| {
        let mut d = (*d).clone();
        d.customer_id_mut().is_empty()
    }));
    // The state survives a store round trip (postcard) with its outbox, once its features are
    // aligned as a load aligns them (the empty ones are not stored).
    let mut state = CustomerState::from_bytes(&run.state.to_bytes().unwrap()).unwrap();
    assert!(state.features.len() < run.state.features.len());
    run.op.align(&mut state);
    state.next_retire_at = run.state.next_retire_at; // recomputed after a load, not stored
    assert_eq!(state, run.state);
    run.state = state;

    // Replay everything (a crash before the transaction committed): the same records come out,
    // encoded to the same bytes, and nothing is counted twice.
    let before = run.state.features.clone();
    run.out.clear();
    run.offset = 0;
    run.feed(profile(true));
    for n in 0..6 {
        run.feed(card(
            n,
            T0 + n as i64 * H,
            30_000,
            PaymentMethod::DebitCard,
            "GB",
        ));
    }
    assert_eq!(run.out, first);
    let codec = crate::codec::Codec::with_defaults().unwrap();
    for (a, b) in run.out.iter().zip(&first) {
        if let (Decision::Offer(a), Decision::Offer(b)) = (a, b) {
            assert_eq!(
                codec.encode("NextBestOffer", a).unwrap(),
                codec.encode("NextBestOffer", b).unwrap()
            );
        }
    }
    assert_eq!(run.state.features, before);
    assert_eq!(run.stats.replayed, 7);

    // Once committed (the next batch starts past them), entries are pruned.
    run.state.prune_outbox(0, 0, 100);
    run.state.prune_outbox(6, 0, 100);
    assert!(run.state.outbox.is_empty());
}

#[test]
fn an_erasure_keeps_the_outbox_of_decisions_not_yet_committed() {
    let mut run = Run::new();
    run.op = operator().with_outbox(true);
    run.feed(profile(true));
    for n in 0..5 {
        run.feed(card(
            n,
            T0 + n as i64 * H,
            30_000,
            PaymentMethod::DebitCard,
            "GB",
        ));
    }
    let entries = run.state.outbox.len();
    assert!(entries > 0);
    run.feed(Event::Erasure(ErasureRequest {
        request_id: "R1".into(),
        customer_id: "C1".into(),
        requested_at: T0 + 6 * H,
    }));
    assert!(
        run.state.features.iter().all(|(_, t)| t.is_empty()),
        "features erased"
    );
    assert_eq!(
        run.state.outbox.len(),
        entries,
        "decisions already made still go out"
    );
}

/// A profile with marketing consent and the given profiling consent.
pub(super) fn profile_profiling(profiling: bool) -> Event {
    let Event::Profile(mut p) = profile(true) else {
        unreachable!("profile() makes a profile")
    };
    p.consent_profiling = profiling;
    Event::Profile(p)
}

#[test]
fn without_profiling_consent_no_offer_is_chosen_from_features_but_alerts_still_are() {
    let mut run = Run::new();
    run.feed(profile_profiling(false));
    // Enough debit-card spend for the credit-card offer, fast enough for the velocity alert.
    twelve_card_payments(&mut run, 60_000);
    assert!(run.offers().is_empty());
    let offer_audits = run
        .out
        .iter()
        .filter(|d| matches!(d, Decision::Audit(a) if a.rule_id.starts_with("offer-")))
        .count();
    assert_eq!(offer_audits, 0, "offer rules were not evaluated at all");
    assert_eq!(
        run.alerts().len(),
        1,
        "fraud alerts do not need profiling consent"
    );
    // The same customer with profiling consent gets the offer.
    let mut run = Run::new();
    run.feed(profile_profiling(true));
    for i in 0..4 {
        run.feed(card(
            i,
            T0 + i as i64 * 10 * H,
            50_000,
            PaymentMethod::DebitCard,
            "DE",
        ));
    }
    assert_eq!(run.offers().len(), 1);
}

/// A savings offer rule triggered by transactions: `id`, its condition and its `propensity`
/// table, worth 10, by e-mail, with a one-day cooldown.
pub(super) fn savings_offer(id: &str, condition: &str, propensity: &str) -> String {
    format!(
        r#"id = "{id}"
version = 1
description = "test"
triggers = ["TransactionEvent"]
condition = "{condition}"
[offer]
offer_code = "{id}"
product = "SAVINGS"
value = 10.0
channels = ["EMAIL"]
cooldown = "1d"
propensity = {propensity}
"#
    )
}

#[test]
fn without_profiling_consent_a_contextual_offer_still_goes_out() {
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let offer = savings_offer;
    let files = [
        (
            "contextual",
            offer(
                "offer-contextual",
                "event.txn_type == 'SALARY'",
                "{ intercept = -1.0 }",
            ),
        ),
        (
            "profiled",
            offer(
                "offer-profiled",
                "event.txn_type == 'SALARY' && features.deposits_30d >= 0.0",
                "{ intercept = 3.0 }",
            ),
        ),
        (
            "profiled-score",
            offer(
                "offer-profiled-score",
                "event.txn_type == 'SALARY'",
                "{ intercept = 3.0, weights = { deposits_30d = 0.001 } }",
            ),
        ),
    ];
    for (name, text) in &files {
        std::fs::write(dir.path().join(format!("{name}.toml")), text).unwrap();
    }
    let rules = crate::rules::load::rule_set(Some(dir.path()), &features).unwrap();
    let personalised: Vec<bool> = rules.offers.iter().map(|r| r.personalised()).collect();
    assert_eq!(personalised.iter().filter(|p| **p).count(), 2);
    let salary = |n: usize, t: i64| {
        let Event::Transaction(mut e) = card(n, t, 300_000, PaymentMethod::Account, "DE") else {
            unreachable!("card() makes a transaction")
        };
        e.txn_type = TxnType::Salary;
        Event::Transaction(e)
    };
    let run_with = |profiling: bool| {
        let mut run = Run::new();
        run.op = Operator::new(
            features.clone(),
            rules.clone(),
            &crate::config::OperatorSettings::default(),
            0,
        );
        run.op.align(&mut run.state);
        run.feed(profile_profiling(profiling));
        run.feed(salary(1, T0));
        run.offers()
            .iter()
            .map(|o| o.rule_id.clone())
            .collect::<Vec<_>>()
    };
    // With consent the profiled offers score higher and win arbitration; without it only the
    // contextual one is considered.
    let with_consent = run_with(true);
    assert!(
        matches!(with_consent.as_slice(), [r] if r.starts_with("offer-profiled")),
        "{with_consent:?}"
    );
    assert_eq!(run_with(false), ["offer-contextual"]);
}

/// A consenting customer's twelve card payments in twelve minutes: the velocity alert raised
/// (by the seventh), and its id.
fn velocity_alert_raised() -> (Run, String) {
    let mut run = Run::new();
    run.feed(profile(true));
    twelve_card_payments(&mut run, 20_000);
    let alert_id = run.alerts()[0].alert_id.clone();
    (run, alert_id)
}

/// Twelve debit-card payments of `amount_minor` in Germany, a minute apart from `T0`.
fn twelve_card_payments(run: &mut Run, amount_minor: i64) {
    for i in 0..12 {
        let at = T0 + i as i64 * 60_000;
        run.feed(card(i, at, amount_minor, PaymentMethod::DebitCard, "DE"));
    }
}

/// An alert rule document triggered by `trigger` when `condition` holds.
pub(super) fn alert_rule(id: &str, trigger: &str, condition: &str) -> String {
    format!(
        r#"id = "{id}"
version = 1
description = "test"
triggers = ["{trigger}"]
condition = "{condition}"
[alert]
kind = "FRAUD"
severity = "HIGH"
cooldown = "1h"
"#
    )
}

/// Why rule document `text` does not compile.
pub(super) fn compile_error(text: &str) -> String {
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let doc: crate::rules::document::RuleDocument = toml::from_str(text).unwrap();
    crate::rules::compile(&doc, &features)
        .unwrap_err()
        .to_string()
}

/// An investigator's closure of `alert_id` at `at`.
fn outcome(n: usize, alert_id: &str, label: AlertLabel, at: i64) -> Event {
    Event::AlertOutcome(AlertOutcome {
        event_id: format!("case-{n}").into(),
        customer_id: "C1".into(),
        event_time: at,
        alert_id: alert_id.into(),
        label,
        fraud_party: Some(FraudParty::ThirdParty),
        amount_minor: Some(250_000),
        currency: Some("EUR".into()),
        closed_by: "investigator-7".into(),
    })
}

#[test]
fn an_alerts_outcome_labels_it_once_and_an_unknown_one_is_refused_with_the_reason() {
    let (mut run, alert_id) = velocity_alert_raised();
    run.feed(outcome(1, &alert_id, AlertLabel::ConfirmedRisk, T0 + 2 * H));
    let [closed] = &run.stats.closed[..] else {
        panic!("one closed: {:?}", run.stats.closed);
    };
    assert_eq!(
        (closed.rule_id.as_str(), closed.version, closed.label),
        (
            "alert-card-velocity",
            run.alerts()[0].rule_version,
            AlertLabel::ConfirmedRisk
        )
    );
    assert_eq!(closed.amount, Some((250_000, "EUR".to_string())));
    assert_eq!(
        closed.to_close_ms,
        2 * H - 7 * 60_000,
        "from the alert (E7) to the closure"
    );
    // The same closure again (another offset: the case system sent it twice), or relabelled:
    // counted once.
    run.feed(outcome(1, &alert_id, AlertLabel::ConfirmedRisk, T0 + 2 * H));
    run.feed(outcome(2, &alert_id, AlertLabel::FalsePositive, T0 + 3 * H));
    assert_eq!(run.stats.closed.len(), 1);
    assert!(run.stats.rejected.is_empty());
    // An alert this customer never had: refused, with where it came from and why.
    run.feed(outcome(
        3,
        "alert-nobody-raised",
        AlertLabel::FalsePositive,
        T0 + 3 * H,
    ));
    let [refused] = &run.stats.rejected[..] else {
        panic!("one refused: {:?}", run.stats.rejected);
    };
    assert_eq!(refused.kind, "unknown_alert");
    assert!(
        refused.reason.contains("alert-nobody-raised"),
        "{}",
        refused.reason
    );
    assert!(refused.pos.is_some());
    // Erased since: refused as such, even for a case closed before the erasure.
    run.feed(Event::Erasure(ErasureRequest {
        request_id: "ER1".into(),
        customer_id: "C1".into(),
        requested_at: T0 + 4 * H,
    }));
    run.feed(outcome(4, &alert_id, AlertLabel::ConfirmedRisk, T0 + 3 * H));
    assert_eq!(run.stats.rejected.len(), 2);
    assert_eq!(run.stats.rejected[1].kind, "erased_alert");
    assert_eq!(run.stats.closed.len(), 1);
}

#[test]
fn a_refused_outcome_is_not_marked_applied_so_its_replay_is_refused_again() {
    let mut run = Run::new();
    let e = outcome(1, "alert-nobody-raised", AlertLabel::FalsePositive, T0);
    let pos = SourcePos {
        kind: e.kind().index() as u8,
        partition: 0,
        offset: 42,
    };
    for _ in 0..2 {
        run.op
            .apply(&mut run.state, &e, Some(pos), &mut run.out, &mut run.stats);
    }
    assert_eq!(run.stats.rejected.len(), 2, "refused again on the replay");
    assert!(run.stats.rejected.iter().all(|r| r.pos == Some(pos)));
    assert!(!run.state.is_applied(pos.kind, pos.partition, pos.offset));
}

#[test]
fn an_outcome_closed_after_the_window_is_refused_and_rules_cannot_trigger_on_outcomes() {
    let (mut run, alert_id) = velocity_alert_raised();
    run.feed(outcome(
        1,
        &alert_id,
        AlertLabel::ConfirmedRisk,
        T0 + 91 * 24 * H,
    ));
    assert!(run.stats.closed.is_empty());
    assert_eq!(run.stats.rejected[0].kind, "unknown_alert");
    assert!(run.stats.rejected[0]
        .reason
        .contains("alert_outcome_window"));

    let err = compile_error(&alert_rule("on-outcome", "AlertOutcome", "true"));
    assert!(err.contains("cannot trigger rules"), "{err}");
}
