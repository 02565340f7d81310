//! Offers that learn, in the operator: what a response teaches (once per offer), whose
//! responses are not learned from, and how the learned counts move the propensity an offer is
//! ranked and recorded by.

use super::tests::{card, profile_profiling, savings_offer, Run, H, T0};
use super::*;
use crate::config::OperatorSettings;
use crate::event::*;
use crate::learning::model::{Counts, ModelTotals};
use crate::output::NextBestOffer;

/// Two contextual offers for a salary payment: `offer-a` (configured propensity 0.5) and
/// `offer-b` (0.269, one model per profile segment), of equal value.
fn two_offers() -> RuleSet {
    let features = crate::features::spec::load(None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let offer =
        |id: &str, propensity: &str| savings_offer(id, "event.txn_type == 'SALARY'", propensity);
    std::fs::write(
        dir.path().join("a.toml"),
        offer("offer-a", "{ intercept = 0.0 }"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        offer(
            "offer-b",
            r#"{ intercept = -1.0, evidence = 20, segment = "profile.segment" }"#,
        ),
    )
    .unwrap();
    crate::rules::load::rule_set(Some(dir.path()), &features).unwrap()
}

fn salary(n: usize, t: i64) -> Event {
    let Event::Transaction(mut e) = card(n, t, 300_000, PaymentMethod::Account, "DE") else {
        unreachable!("card() makes a transaction")
    };
    e.txn_type = TxnType::Salary;
    Event::Transaction(e)
}

fn response(n: usize, offer_id: &str, kind: OfferResponseKind, t: i64) -> Event {
    Event::OfferResponse(OfferResponse {
        event_id: format!("R{n}").into(),
        customer_id: "C1".into(),
        event_time: t,
        offer_id: offer_id.into(),
        response: kind,
    })
}

/// A run over [`two_offers`] with exploration off, so every decision takes the posterior mean.
fn run(models: Option<&[ModelTotals]>) -> Run {
    let mut settings = OperatorSettings::default();
    settings.learning.exploration = 0.0;
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let mut run = Run::new();
    run.op = Operator::new(features, two_offers(), &settings, 0);
    if let Some(totals) = models {
        run.op.models().unwrap().set(totals);
    }
    run.op.align(&mut run.state);
    run.feed(profile_profiling(true));
    run
}

/// offer-a's model after 1,000 offers at 0.5, 10 of them accepted.
fn offer_a_seldom_accepted() -> [ModelTotals; 1] {
    [ModelTotals {
        rule_id: "offer-a".into(),
        segment: String::new(),
        counts: Counts {
            trials: 1_000,
            positives: 10,
            expected: 500.0,
        },
        ranking: None,
    }]
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn without_responses_the_offer_records_its_configured_propensity() {
    let mut run = run(None);
    run.feed(salary(1, T0));
    let offers = run.offers();
    let o = offers[0];
    assert_eq!(o.rule_id, "offer-a");
    assert_eq!((o.propensity, o.explored), (Some(0.5), false));
    assert_eq!(o.score, 0.5 * 10.0);
    let said = |o: &NextBestOffer, words: &str| o.reasons.iter().any(|r| r.contains(words));
    assert!(said(
        o,
        "propensity 0.500 (configured; no responses learned from yet)"
    ));
}

#[test]
fn learned_counts_move_the_propensity_and_the_ranking() {
    // offer-a was offered 1,000 times at 0.5 and accepted 10 times: (0.5·50 + 10) / (50 + 1000).
    let learned = offer_a_seldom_accepted();
    let mut run = run(Some(&learned));
    run.feed(salary(1, T0));
    let offers = run.offers();
    let o = offers[0];
    assert_eq!(o.rule_id, "offer-b", "the learned rate ranks offer-a below");
    assert!((o.propensity.unwrap() - sigmoid(-1.0)).abs() < 1e-12);
    // The same counts for another segment than the customer's leave offer-b at its prior.
    let elsewhere = [ModelTotals {
        rule_id: "offer-b".into(),
        segment: "AFFLUENT".into(),
        counts: Counts {
            trials: 1_000,
            positives: 900,
            expected: 1_000.0 * sigmoid(-1.0),
        },
        ranking: None,
    }];
    let mut run = self::run(Some(&elsewhere));
    run.feed(salary(1, T0));
    assert_eq!(run.offers()[0].rule_id, "offer-a");
    // In the customer's own segment (MASS) they lift offer-b: (0.269·20 + 900) / (20 + 1000).
    let mass = [ModelTotals {
        segment: "MASS".into(),
        ..elsewhere[0].clone()
    }];
    let mut run = self::run(Some(&mass));
    run.feed(salary(1, T0));
    let o = run.offers()[0].clone();
    assert_eq!(o.rule_id, "offer-b");
    let expected = (sigmoid(-1.0) * 20.0 + 900.0) / 1_020.0;
    assert!((o.propensity.unwrap() - expected).abs() < 1e-12);
    assert!((o.score - expected * 10.0).abs() < 1e-9);
    let why = format!(
        "propensity {expected:.3} (1000 responses learned from, 900 accepted where 268.9 were expected; configured 0.269)"
    );
    assert!(o.reasons.iter().any(|r| **r == *why), "{:?}", o.reasons);
}

#[test]
fn each_offer_is_learned_from_once_however_many_responses_it_gets() {
    let mut run = run(None);
    run.feed(salary(1, T0));
    let offer_id = run.offers()[0].offer_id.clone();
    run.feed(response(
        1,
        &offer_id,
        OfferResponseKind::Delivered,
        T0 + 1_000,
    ));
    run.feed(response(2, &offer_id, OfferResponseKind::Clicked, T0 + H));
    run.feed(response(
        3,
        &offer_id,
        OfferResponseKind::Accepted,
        T0 + 2 * H,
    ));
    run.feed(response(
        4,
        &offer_id,
        OfferResponseKind::Accepted,
        T0 + 3 * H,
    ));
    run.feed(response(
        5,
        "not-an-offer-we-made",
        OfferResponseKind::Accepted,
        T0,
    ));
    let learned: Vec<(bool, bool)> = run
        .stats
        .learned
        .iter()
        .map(|o| (o.trial, o.positive))
        .collect();
    assert_eq!(learned, [(true, false), (false, true)]);
    let first = &run.stats.learned[0];
    assert_eq!(
        (first.rule_id.as_str(), first.segment.as_str()),
        ("offer-a", "")
    );
    assert_eq!(
        (first.offer_id.as_str(), first.offered_at),
        (&*offer_id, T0)
    );
}

#[test]
fn without_profiling_consent_responses_are_not_learned_from_nor_counts_used() {
    let learned = offer_a_seldom_accepted();
    let mut run = run(Some(&learned));
    run.feed(profile_profiling(false));
    run.feed(salary(1, T0));
    let offers = run.offers();
    let o = offers[0];
    // Contextual offers still go out, ranked by their configured propensity alone.
    assert_eq!((o.rule_id.as_str(), o.propensity), ("offer-a", Some(0.5)));
    assert!(o
        .reasons
        .iter()
        .any(|r| &**r == "propensity 0.500 (configured)"));
    let offer_id = o.offer_id.clone();
    run.feed(response(1, &offer_id, OfferResponseKind::Accepted, T0 + H));
    assert!(run.stats.learned.is_empty());
}

#[test]
fn with_learning_off_responses_teach_nothing() {
    let mut settings = OperatorSettings::default();
    settings.learning.enabled = false;
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let mut run = Run::new();
    run.op = Operator::new(features, two_offers(), &settings, 0);
    assert!(run.op.models().is_none());
    run.op.align(&mut run.state);
    run.feed(profile_profiling(true));
    run.feed(salary(1, T0));
    let offer_id = run.offers()[0].offer_id.clone();
    run.feed(response(1, &offer_id, OfferResponseKind::Accepted, T0 + H));
    assert!(run.stats.learned.is_empty());
}

/// A run over [`two_offers`] with a ramp: a new offer starts with a share of customers too small
/// for customer C1, and reaches everyone at 100 positives.
fn ramped_run(models: &[ModelTotals]) -> Run {
    let mut settings = OperatorSettings::default();
    settings.learning.exploration = 0.0;
    settings.learning.ramp_positives = 100;
    settings.learning.ramp_start = 1e-9;
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let mut run = Run::new();
    run.op = Operator::new(features, two_offers(), &settings, 0);
    run.op.models().unwrap().set(models);
    run.op.align(&mut run.state);
    run.feed(profile_profiling(true));
    run
}

#[test]
fn a_new_offer_ramps_up_with_its_positives() {
    // Neither offer has a positive: neither reaches C1, so nothing is offered.
    let mut run = ramped_run(&[]);
    run.feed(salary(1, T0));
    assert!(run.offers().is_empty(), "{:?}", run.offers());
    // offer-a has 100 positives (as expected of 200 offers at 0.5): it reaches everyone and
    // keeps its configured 0.5; offer-b, still new, reaches nobody yet.
    let proven = [ModelTotals {
        rule_id: "offer-a".into(),
        segment: String::new(),
        counts: Counts {
            trials: 200,
            positives: 100,
            expected: 100.0,
        },
        ranking: None,
    }];
    let mut run = ramped_run(&proven);
    run.feed(salary(1, T0));
    let offers = run.offers();
    assert_eq!(offers.len(), 1);
    assert_eq!(
        (offers[0].rule_id.as_str(), offers[0].propensity),
        ("offer-a", Some(0.5))
    );
}
