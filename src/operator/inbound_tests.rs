//! Inbound decisions in the operator: the rules that name `InboundRequest` answer, ranked, up to
//! the number wanted; their conditions read the request's channel; and each suppression says
//! why.

use super::inbound::{InboundOutcome, Suppression};
use super::tests::{profile_profiling, Run, H, T0};
use super::*;
use crate::catalog::inbound::Request;
use crate::config::OperatorSettings;
use crate::event::*;

/// An offer rule answering inbound requests: `condition` over the request and the customer.
fn inbound_offer(id: &str, condition: &str, intercept: f64, cooldown: &str) -> String {
    format!(
        r#"id = "{id}"
version = 1
description = "test"
triggers = ["InboundRequest"]
condition = "{condition}"
[offer]
offer_code = "{id}"
product = "SAVINGS"
value = 10.0
channels = ["PUSH"]
cooldown = "{cooldown}"
propensity = {{ intercept = {intercept} }}
"#
    )
}

/// A run over three inbound offers (the app's two, ranked by propensity, and the call
/// centre's), the control group holding out `control_percent` of customers.
fn run(control_percent: u8, settings: OperatorSettings) -> Run {
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let app = "event.channel == 'APP'";
    for (file, text) in [
        ("a.toml", inbound_offer("offer-app-best", app, 0.0, "1d")),
        ("b.toml", inbound_offer("offer-app-next", app, -1.0, "1d")),
        (
            "c.toml",
            inbound_offer("offer-call", "event.channel == 'CALL_CENTRE'", 1.0, "1d"),
        ),
    ] {
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let rules = crate::rules::load::rule_set(Some(dir.path()), &features).unwrap();
    let mut run = Run::new();
    run.op = Operator::new(features, rules, &settings, control_percent);
    run.op.align(&mut run.state);
    run
}

fn request(n: usize, channel: &str, at: i64) -> Request {
    Request {
        decision_id: format!("D{n}").into(),
        customer_id: "C1".into(),
        at,
        channel: channel.into(),
        placement: Some("home".into()),
        intent: None,
    }
}

/// Decides one request; answers the outcome and the rules offered, best first.
fn ask(
    run: &mut Run,
    n: usize,
    channel: &str,
    at: i64,
    wanted: usize,
) -> (InboundOutcome, Vec<String>) {
    run.out.clear();
    let outcome = run.op.decide_inbound(
        &mut run.state,
        request(n, channel, at),
        wanted,
        &mut run.out,
    );
    let offered = run.offers().iter().map(|o| o.rule_id.clone()).collect();
    (outcome, offered)
}

#[test]
fn the_rules_serving_the_channel_answer_best_first_up_to_the_number_wanted() {
    let mut run = run(0, OperatorSettings::default());
    run.feed(profile_profiling(true));
    let (outcome, offered) = ask(&mut run, 1, "APP", T0, 3);
    assert_eq!(offered, ["offer-app-best", "offer-app-next"]);
    assert_eq!((outcome.offers, outcome.suppressed), (2, None));
    // Every outcome is audited with the channel that asked.
    let audits: Vec<_> = run
        .out
        .iter()
        .filter_map(|d| match d {
            Decision::Audit(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(audits.len(), 2);
    assert!(audits.iter().all(|a| a.outcome == DecisionOutcome::Offered
        && a.reasons.iter().any(|r| &**r == "inbound request from APP")
        && a.trigger_event_id == "D1"));
    // One wanted: the best alone. The call centre's rule answers the call centre.
    let (_, offered) = ask(&mut run, 2, "CALL_CENTRE", T0, 1);
    assert_eq!(offered, ["offer-call"]);
}

#[test]
fn an_inbound_offer_is_a_contact_that_the_next_decision_sees() {
    let mut run = run(0, OperatorSettings::default());
    run.feed(profile_profiling(true));
    ask(&mut run, 1, "APP", T0, 1);
    // Within its cooldown the best is held back, and the next one answers.
    let (outcome, offered) = ask(&mut run, 2, "APP", T0 + H, 1);
    assert_eq!(offered, ["offer-app-next"]);
    assert_eq!(outcome.offers, 1);
    // Both cooling down: the contact policy is the answer.
    let (outcome, offered) = ask(&mut run, 3, "APP", T0 + 2 * H, 1);
    assert!(offered.is_empty());
    assert_eq!(outcome.suppressed, Some(Suppression::ContactPolicy));
}

#[test]
fn each_suppression_says_why() {
    // No profile yet, so no known consent.
    let mut run = run(0, OperatorSettings::default());
    let (outcome, _) = ask(&mut run, 1, "APP", T0, 1);
    assert_eq!(outcome.suppressed, Some(Suppression::NoConsent));
    // A channel no rule serves.
    run.feed(profile_profiling(true));
    let (outcome, _) = ask(&mut run, 2, "BRANCH", T0, 1);
    assert_eq!(outcome.suppressed, Some(Suppression::NoEligibleRule));
    // Everyone in the control group: held out, counted as control.
    let mut run = self::run(100, OperatorSettings::default());
    run.feed(profile_profiling(true));
    let (outcome, offered) = ask(&mut run, 3, "CALL_CENTRE", T0, 1);
    assert!(offered.is_empty());
    assert_eq!(outcome.suppressed, Some(Suppression::ControlGroup));
    assert_eq!(outcome.uplift.len(), 1);
}

#[test]
fn an_alert_rule_cannot_trigger_on_inbound_requests() {
    let err = super::tests::compile_error(&super::tests::alert_rule(
        "alert-inbound",
        "InboundRequest",
        "event.channel == 'APP'",
    ));
    assert!(err.contains("cannot trigger on InboundRequest"), "{err}");
}

#[test]
fn the_inbound_example_rules_compile_and_answer_inbound_requests_only() {
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/inbound/offers");
    let rules = crate::rules::load::rule_set(Some(&dir), &features).unwrap();
    let inbound = EventKind::Declared(EventKind::INBOUND);
    assert_eq!(rules.offers.len(), 4);
    assert!(rules.offers.iter().all(|r| r.head.triggers == [inbound]));
}

#[test]
fn an_inbound_offer_reaches_the_streams_history_once_and_cools_its_rule_there() {
    // The API's side: one offer made, one contact to publish.
    let mut api = run(0, OperatorSettings::default());
    api.feed(profile_profiling(true));
    let (outcome, offered) = ask(&mut api, 1, "APP", T0, 1);
    assert_eq!(offered, ["offer-app-best"]);
    let [contact] = &outcome.contacts[..] else {
        panic!("one contact: {:?}", outcome.contacts);
    };
    assert_eq!(contact.event_id, api.offers()[0].offer_id);
    assert_eq!(
        (
            &*contact.customer_id,
            &*contact.decision_id,
            &*contact.channel,
            &*contact.rule_id,
            contact.rule_version,
            contact.product_category,
            contact.event_time,
            contact.outcome,
        ),
        (
            "C1",
            "D1",
            "APP",
            "offer-app-best",
            1,
            ProductCategory::Savings,
            T0,
            InboundContactKind::Offered
        )
    );
    assert!(
        (contact.propensity - 0.5).abs() < 1e-12,
        "the configured propensity (intercept 0): {}",
        contact.propensity
    );
    // The stream's side takes it from its topic: recorded once (the outbox may deliver it
    // twice), counted as the rule's uplift exposure once.
    let mut stream = run(0, OperatorSettings::default());
    stream.feed(profile_profiling(true));
    stream.feed(Event::InboundContact(contact.clone()));
    stream.feed(Event::InboundContact(contact.clone()));
    let held: Vec<_> = stream
        .state
        .history
        .offers()
        .iter()
        .map(|o| {
            (
                o.offer_id.as_str(),
                o.rule_id.as_str(),
                o.configured,
                o.counted,
            )
        })
        .collect();
    assert_eq!(
        held,
        [(
            &*contact.event_id,
            "offer-app-best",
            contact.propensity,
            crate::customer::Counted::EXPOSED
        )]
    );
    assert_eq!(stream.stats.uplift.len(), 1);
    assert!(stream.out.is_empty(), "a contact taken in decides nothing");
    // The stream's state now holds the contact: its rule cools down for the next decision.
    let (_, offered) = ask(&mut stream, 2, "APP", T0 + H, 1);
    assert_eq!(offered, ["offer-app-next"]);
}

#[test]
fn a_control_group_member_held_out_inbound_is_the_streams_control_exposure() {
    let mut api = run(100, OperatorSettings::default());
    api.feed(profile_profiling(true));
    let (outcome, _) = ask(&mut api, 1, "CALL_CENTRE", T0, 1);
    assert_eq!(outcome.suppressed, Some(Suppression::ControlGroup));
    let [contact] = &outcome.contacts[..] else {
        panic!("one contact: {:?}", outcome.contacts);
    };
    assert_eq!(contact.outcome, InboundContactKind::ControlGroup);
    assert_eq!(contact.rule_id, "offer-call");
    let mut stream = run(100, OperatorSettings::default());
    stream.feed(profile_profiling(true));
    stream.feed(Event::InboundContact(contact.clone()));
    stream.feed(Event::InboundContact(contact.clone()));
    let [tally] = &stream.stats.uplift[..] else {
        panic!("one exposure: {:?}", stream.stats.uplift);
    };
    assert_eq!(tally.group, crate::learning::uplift::Group::Control);
    assert_eq!(tally.exposure_id, &*contact.event_id);
    assert!(
        stream.state.history.offers().is_empty(),
        "nothing was offered"
    );
}

#[test]
fn a_contact_made_before_an_erasure_is_not_taken() {
    let mut api = run(0, OperatorSettings::default());
    api.feed(profile_profiling(true));
    let (outcome, _) = ask(&mut api, 1, "APP", T0, 1);
    let contact = outcome.contacts[0].clone();
    let mut stream = run(0, OperatorSettings::default());
    stream.feed(Event::Erasure(ErasureRequest {
        request_id: "ER1".into(),
        customer_id: "C1".into(),
        requested_at: T0 + H,
    }));
    assert_eq!(stream.op.take_contact(&mut stream.state, &contact), None);
    stream.feed(Event::InboundContact(contact));
    assert!(stream.state.history.offers().is_empty());
    assert!(stream.stats.uplift.is_empty());
}
