//! Uplift in the operator: who counts as treated and as control (once per window), and which
//! product openings count as their conversions (once, within the window, of the offer's family).

use super::tests::{card, profile_profiling, savings_offer, Run, H, T0};
use super::*;
use crate::config::OperatorSettings;
use crate::event::*;

const DAY: i64 = 24 * H;

/// A run over one savings offer for salary payments (one-day cooldown), the control group
/// holding out `control_percent` of customers.
fn run(control_percent: u8) -> Run {
    run_with(control_percent, OperatorSettings::default())
}

fn run_with(control_percent: u8, settings: OperatorSettings) -> Run {
    let features = std::sync::Arc::new(crate::features::spec::load(None).unwrap());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        savings_offer(
            "offer-a",
            "event.txn_type == 'SALARY'",
            "{ intercept = 0.0 }",
        ),
    )
    .unwrap();
    let rules = crate::rules::load::rule_set(Some(dir.path()), &features).unwrap();
    let mut run = Run::new();
    run.op = Operator::new(features, rules, &settings, control_percent);
    run.op.align(&mut run.state);
    run.feed(profile_profiling(true));
    run
}

fn salary(n: usize, t: i64) -> Event {
    let Event::Transaction(mut e) = card(n, t, 300_000, PaymentMethod::Account, "DE") else {
        unreachable!("card() makes a transaction")
    };
    e.txn_type = TxnType::Salary;
    Event::Transaction(e)
}

fn opened(n: usize, product: ProductCategory, t: i64) -> Event {
    Event::ProductOpened(ProductOpened {
        event_id: format!("P{n}").into(),
        customer_id: "C1".into(),
        event_time: t,
        product_category: product,
        account_id: format!("A{n}").into(),
        channel: "BRANCH".into(),
        offer_id: None,
    })
}

/// The tallies so far as (group, converted, exposure id), emptied.
fn tallies(run: &mut Run) -> Vec<(Group, bool, String)> {
    run.stats
        .uplift
        .drain(..)
        .map(|t| {
            assert_eq!(t.rule_id, "offer-a");
            (t.group, t.converted, t.exposure_id)
        })
        .collect()
}

#[test]
fn a_treated_customer_counts_once_per_window_and_converts_once_by_the_offers_family() {
    let mut run = run(0);
    run.feed(salary(1, T0));
    let first = run.offers()[0].offer_id.clone();
    assert_eq!(tallies(&mut run), [(Group::Treated, false, first.clone())]);
    assert_eq!(run.stats.uplift.len(), 0);
    // A second offer of the rule within the window is not a second customer.
    run.feed(salary(2, T0 + 2 * DAY));
    assert_eq!(run.offers().len(), 2, "the cooldown is a day");
    assert!(tallies(&mut run).is_empty());
    // Another family, or an opening before the offer, converts nothing.
    run.feed(opened(1, ProductCategory::Loan, T0 + 3 * DAY));
    run.feed(opened(2, ProductCategory::Savings, T0 - DAY));
    assert!(tallies(&mut run).is_empty());
    run.feed(opened(3, ProductCategory::Savings, T0 + 5 * DAY));
    assert_eq!(tallies(&mut run), [(Group::Treated, true, first)]);
    run.feed(opened(4, ProductCategory::Savings, T0 + 6 * DAY));
    assert!(tallies(&mut run).is_empty(), "an exposure converts once");
    // Past the 30-day window the next offer is a new exposure.
    run.feed(salary(3, T0 + 31 * DAY));
    let third = run.offers()[2].offer_id.clone();
    assert_eq!(tallies(&mut run), [(Group::Treated, false, third)]);
}

#[test]
fn a_control_group_member_counts_at_the_first_offer_held_back_and_converts_within_the_window() {
    let mut run = run(100);
    run.feed(salary(1, T0));
    run.feed(salary(2, T0 + H));
    assert!(run.offers().is_empty());
    let held = run
        .out
        .iter()
        .filter(|d| matches!(d, Decision::Audit(a) if a.outcome == DecisionOutcome::ControlGroup))
        .count();
    assert_eq!(held, 2, "each held-back offer is audited");
    let counted = tallies(&mut run);
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!((counted[0].0, counted[0].1), (Group::Control, false));
    // Nothing the control group holds is an offer: no cooldown, no frequency cap from it.
    assert!(run.state.history.offers().is_empty());
    run.feed(opened(1, ProductCategory::Savings, T0 + 29 * DAY));
    assert_eq!(
        tallies(&mut run),
        [(Group::Control, true, counted[0].2.clone())]
    );
}

#[test]
fn an_opening_after_the_window_is_no_conversion() {
    let mut run = run(100);
    run.feed(salary(1, T0));
    assert_eq!(tallies(&mut run).len(), 1);
    run.feed(opened(1, ProductCategory::Savings, T0 + 30 * DAY));
    assert!(tallies(&mut run).is_empty());
}

#[test]
fn a_customer_treated_lately_who_joins_a_rotated_control_group_stays_treated() {
    let settings = OperatorSettings {
        control_group_period: Some(std::time::Duration::from_secs(86_400)),
        ..OperatorSettings::default()
    };
    let held =
        |k: i64| crate::decision::in_control_group("C1", "offer-a", 50, Some((T0 + k * DAY) / DAY));
    let treated_day = (0..20)
        .find(|k| !held(*k))
        .expect("a day out of the control group");
    let control_day = (treated_day + 2..treated_day + 25)
        .find(|k| held(*k))
        .expect("a later day in it");
    let mut run = run_with(50, settings);
    run.feed(salary(1, T0 + treated_day * DAY));
    assert_eq!(run.offers().len(), 1);
    let offer_id = run.offers()[0].offer_id.clone();
    assert_eq!(
        tallies(&mut run),
        [(Group::Treated, false, offer_id.clone())]
    );
    run.feed(salary(2, T0 + control_day * DAY));
    assert_eq!(run.offers().len(), 1, "held out on the later day");
    assert!(tallies(&mut run).is_empty(), "not counted in both groups");
    run.feed(opened(
        1,
        ProductCategory::Savings,
        T0 + (control_day + 1) * DAY,
    ));
    assert_eq!(tallies(&mut run), [(Group::Treated, true, offer_id)]);
}
