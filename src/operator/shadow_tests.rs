//! Model checks of champions and challengers: a challenger never changes what its champion
//! decides or remembers, and is held to the same cooldowns and contact policy in a world of its
//! own, with its counts kept under its own version.

use super::*;
use crate::event::*;
use crate::rules::book::{challenger_key, RuleBook};
use crate::rules::document::{Format, RuleState};
use crate::rules::edit::restate;
use rand::{Rng, SeedableRng};

const MINUTE: i64 = 60_000;
const T0: i64 = 1_800_000_000_000;
const VELOCITY: &str = "alert-card-velocity";
const CARD_OFFER: &str = "offer-credit-card-heavy-debit";

fn starter(path_end: &str) -> &'static str {
    crate::rules::load::STARTER
        .iter()
        .find(|(p, _)| p.ends_with(path_end))
        .unwrap()
        .1
}

/// The starter rules, with challengers: card velocity at 5 payments an hour (v2) and the
/// credit-card offer at 800 of debit spend (v2).
fn operator(with_challengers: bool) -> Operator {
    operator_with(if with_challengers { ">= 5.0" } else { "" })
}

/// The starter rules, with challengers when `velocity` is a bound: card velocity at that bound
/// (v2) and the credit-card offer at 800 of debit spend (v2).
fn operator_with(velocity: &str) -> Operator {
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let docs = crate::rules::load::documents(None).unwrap();
    let mut book = RuleBook::new(features.clone(), &docs).unwrap();
    if !velocity.is_empty() {
        for (id, file, from, to) in [
            (VELOCITY, "card-velocity.toml", ">= 8.0", velocity),
            (
                CARD_OFFER,
                "credit-card-heavy-debit.toml",
                ">= 1500.0",
                ">= 800.0",
            ),
        ] {
            let text = starter(file).replace(from, to);
            let (_, text) = restate(&text, Format::Toml, RuleState::Shadow, Some(2)).unwrap();
            book.apply(&challenger_key(id), Some(text.as_bytes()), 1)
                .unwrap();
        }
    }
    Operator::new(
        features,
        book.rule_set(),
        &crate::config::OperatorSettings::default(),
        0,
    )
}

fn card(n: usize, customer: &str, t: i64, amount_minor: i64, method: PaymentMethod) -> Event {
    Event::Transaction(TransactionEvent {
        event_id: format!("E{n}").into(),
        customer_id: customer.into(),
        event_time: t,
        account_id: "A1".into(),
        txn_type: TxnType::CardPayment,
        amount_minor,
        currency: "EUR".into(),
        payment_method: method,
        merchant_category: None,
        channel: TxnChannel::Pos,
        country: "DE".into(),
        balance_after_minor: None,
    })
}

fn profile(customer: &str) -> Event {
    Event::Profile(CustomerProfile {
        customer_id: customer.into(),
        updated_at: T0 - MINUTE,
        lifecycle_stage: LifecycleStage::Growing,
        segment: "MASS".into(),
        credit_score: Some(700),
        consent_marketing: true,
        consent_profiling: true,
        contact_channels: vec![ContactChannel::Email],
    })
}

/// Feeds `events` to a fresh customer; returns the decisions and the state.
fn run(op: &Operator, events: &[Event]) -> (Vec<Decision>, CustomerState) {
    let mut state = CustomerState::default();
    op.align(&mut state);
    let mut out = Vec::new();
    let mut stats = BatchStats::default();
    for (i, e) in events.iter().enumerate() {
        let pos = SourcePos {
            kind: e.kind().index() as u8,
            partition: 0,
            offset: i as i64,
        };
        op.apply(&mut state, e, Some(pos), &mut out, &mut stats);
    }
    (out, state)
}

fn shadow_audits<'a>(out: &'a [Decision], rule: &str) -> Vec<&'a crate::output::DecisionAudit> {
    out.iter()
        .filter_map(|d| match d {
            Decision::Audit(a) if a.outcome == DecisionOutcome::Shadow && a.rule_id == rule => {
                Some(a)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn the_champion_keeps_alerting_and_the_challenger_counts_its_own_cooldown() {
    let op = operator(true);
    let mut events = vec![profile("C1")];
    events.extend((0..12).map(|i| {
        card(
            i,
            "C1",
            T0 + i as i64 * MINUTE,
            2_000,
            PaymentMethod::DebitCard,
        )
    }));
    let (out, state) = run(&op, &events);

    let alerts: Vec<_> = out
        .iter()
        .filter_map(|d| match d {
            Decision::Alert(a) => Some((
                a.rule_id.as_str(),
                a.rule_version,
                a.trigger_event_id.as_str(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(alerts, [(VELOCITY, 1, "E7")], "v1 alerts, v2 sends nothing");

    let shadow = shadow_audits(&out, VELOCITY);
    assert!(shadow.iter().all(|a| a.rule_version == 2));
    let would: Vec<_> = shadow
        .iter()
        .map(|a| (a.trigger_event_id.as_str(), a.shadow_outcome))
        .collect();
    assert_eq!(would[0], ("E4", Some(DecisionOutcome::Alerted)));
    assert_eq!(would.len(), 8, "E4..E11 hold for v2: {would:?}");
    assert!(
        would[1..]
            .iter()
            .all(|(_, o)| *o == Some(DecisionOutcome::SuppressedCooldown)),
        "held back by its own cooldown, counted as such: {would:?}"
    );
    assert!(shadow[1]
        .reasons
        .iter()
        .any(|r| r.contains("within its cooldown")));

    // Each version remembers its own alerts.
    assert_eq!(state.history.alerts().len(), 1);
    assert_eq!(state.history.alerts()[0].at, T0 + 7 * MINUTE);
    assert_eq!(state.shadow.alerts().len(), 1);
    assert_eq!(state.shadow.alerts()[0].at, T0 + 4 * MINUTE);
}

#[test]
fn an_offer_challenger_is_held_to_its_own_cooldown_and_the_champions_history_is_untouched() {
    let (with, without) = (operator(true), operator(false));
    let mut events = vec![profile("C1")];
    // 300 of debit spend a day: v2 qualifies on day 3 (900), v1 on day 5 (1,500).
    events.extend((0..8).map(|i| {
        card(
            i,
            "C1",
            T0 + i as i64 * 1_440 * MINUTE,
            30_000,
            PaymentMethod::DebitCard,
        )
    }));
    let (out, state) = run(&with, &events);
    let (alone, state_alone) = run(&without, &events);

    let offers: Vec<_> = out
        .iter()
        .filter_map(|d| match d {
            Decision::Offer(o) => Some((o.rule_version, o.trigger_event_id.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(offers, [(1, "E4")], "only the champion sends");
    let shadow = shadow_audits(&out, CARD_OFFER);
    let would: Vec<_> = shadow
        .iter()
        .map(|a| (a.trigger_event_id.as_str(), a.shadow_outcome))
        .collect();
    assert_eq!(would[0], ("E2", Some(DecisionOutcome::Offered)));
    assert!(
        would[1..]
            .iter()
            .all(|(_, o)| *o == Some(DecisionOutcome::SuppressedCooldown)),
        "{would:?}"
    );
    assert_eq!(would.len(), 6);

    assert_eq!(state.history.offers(), state_alone.history.offers());
    assert_eq!(state.shadow.offers().len(), 1);
    assert_eq!(state.shadow.offers()[0].at, T0 + 2 * 1_440 * MINUTE);
    let champions = |d: &[Decision]| -> Vec<Decision> {
        d.iter()
            .filter(|d| !matches!(d, Decision::Audit(a) if a.outcome == DecisionOutcome::Shadow))
            .cloned()
            .map(|mut d| {
                if let Decision::Audit(a) = &mut d {
                    a.ruleset_version = 0;
                }
                d
            })
            .collect()
    };
    assert_eq!(champions(&out), champions(&alone));
}

/// Random customers' histories, with and without challengers: every champion decision and the
/// whole real contact history are the same, and no challenger would act twice within its
/// cooldown.
#[test]
fn challengers_never_change_what_champions_decide() {
    let (with, without) = (operator(true), operator(false));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(22);
    let (mut shadows, mut champions) = (0, 0);
    for customer in 0..200 {
        let id = format!("C{customer}");
        let mut events = vec![profile(&id)];
        let mut t = T0;
        for n in 0..rng.random_range(5..60) {
            t += rng.random_range(0..6 * 60) * MINUTE;
            let method = if rng.random_bool(0.8) {
                PaymentMethod::DebitCard
            } else {
                PaymentMethod::CreditCard
            };
            events.push(card(n, &id, t, rng.random_range(1_000..60_000), method));
        }
        let (out, state) = run(&with, &events);
        let (alone, state_alone) = run(&without, &events);
        let real = |d: &[Decision]| -> Vec<(String, i32, Option<String>)> {
            d.iter()
                .filter_map(|d| match d {
                    Decision::Audit(a) if a.outcome != DecisionOutcome::Shadow => Some((
                        a.outcome.as_str().to_string(),
                        a.rule_version,
                        a.decision_id.clone(),
                    )),
                    Decision::Audit(_) => None,
                    Decision::Offer(o) => {
                        Some(("offer".into(), o.rule_version, Some(o.offer_id.clone())))
                    }
                    Decision::Alert(a) => {
                        Some(("alert".into(), a.rule_version, Some(a.alert_id.clone())))
                    }
                })
                .collect()
        };
        assert_eq!(real(&out), real(&alone), "{id}");
        shadows += out.len() - real(&out).len();
        champions += real(&out).len();
        assert_eq!(state.history, state_alone.history, "{id}");
        assert_eq!(
            state.last_high_alert_at, state_alone.last_high_alert_at,
            "{id}"
        );
        let acted: Vec<i64> = shadow_audits(&out, VELOCITY)
            .iter()
            .filter(|a| a.shadow_outcome == Some(DecisionOutcome::Alerted))
            .map(|a| a.decided_at)
            .collect();
        assert!(
            acted.windows(2).all(|w| w[1] - w[0] >= 60 * MINUTE),
            "{id}: {acted:?}"
        );
    }
    assert!(
        shadows > 200 && champions > 200,
        "{shadows} shadow, {champions} champion records"
    );
}

/// Eight payments in eight minutes raise the champion's velocity alert; its closure names the
/// challenger with what it did on the same trigger: the looser one (5 an hour) had alerted three
/// payments before and was in its cooldown, the stricter one (10 an hour) stayed silent, and one
/// as strict as the champion alerted too.
#[test]
fn a_champions_closed_alert_says_whether_each_challenger_fired_on_it_too() {
    use crate::customer::Verdict;
    for (bound, verdict) in [
        (">= 5.0", Verdict::Cooling),
        (">= 10.0", Verdict::Silent),
        (">= 8.0", Verdict::Alerted),
    ] {
        let op = operator_with(bound);
        let mut events = vec![profile("C1")];
        events.extend((0..8).map(|i| {
            card(
                i,
                "C1",
                T0 + i as i64 * MINUTE,
                2_000,
                PaymentMethod::DebitCard,
            )
        }));
        let (out, mut state) = run(&op, &events);
        let alert_id = out
            .iter()
            .find_map(|d| match d {
                Decision::Alert(a) if a.rule_id == VELOCITY => Some(a.alert_id.clone()),
                _ => None,
            })
            .expect("the champion alerts");
        let closure = Event::AlertOutcome(AlertOutcome {
            event_id: "case-1".into(),
            customer_id: "C1".into(),
            event_time: T0 + 60 * MINUTE,
            alert_id: alert_id.as_str().into(),
            label: AlertLabel::ConfirmedRisk,
            fraud_party: None,
            amount_minor: None,
            currency: None,
            closed_by: "investigator".into(),
        });
        let mut stats = BatchStats::default();
        let pos = SourcePos {
            kind: closure.kind().index() as u8,
            partition: 0,
            offset: 99,
        };
        op.apply(&mut state, &closure, Some(pos), &mut Vec::new(), &mut stats);
        assert_eq!(stats.closed.len(), 1, "{:?}", stats.rejected);
        assert_eq!(stats.closed[0].version, 1);
        assert_eq!(
            stats.closed[0].challengers,
            vec![(2, verdict)],
            "challenger {bound}"
        );
    }
}
