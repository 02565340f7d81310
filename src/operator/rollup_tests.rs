//! The audit's roll-up of cooldown repeats (`operator.audit_rollup`): fewer records, every
//! decision still counted, the same offers and alerts.

use super::tests::{card, profile, Run, H, T0};
use super::*;
use crate::event::*;
use crate::output::DecisionAudit;

/// An operator with the built-in rules and `operator.audit_rollup = window`.
fn operator(window: std::time::Duration) -> Operator {
    let features = Arc::new(crate::features::spec::load(None).unwrap());
    let rules = crate::rules::load::rule_set(None, &features).unwrap();
    let settings = crate::config::OperatorSettings {
        audit_rollup: window,
        ..Default::default()
    };
    Operator::new(features, rules, &settings, 0)
}

/// A heavy card spender paying every 5 minutes for `n` payments, abroad now and then: the
/// credit-card offer and the alert rules (card velocity: 8 payments in an hour, cooled down for
/// an hour) hold again and again, within their cooldowns and past them.
fn busy(n: usize) -> Vec<Event> {
    let mut events = vec![profile(true)];
    for i in 0..n {
        let country = if i % 3 == 0 { "FR" } else { "DE" };
        let at = T0 + i as i64 * H / 12;
        events.push(card(i, at, 90_000, PaymentMethod::DebitCard, country));
    }
    events
}

fn audits(run: &Run) -> Vec<&DecisionAudit> {
    run.out
        .iter()
        .filter_map(|d| match d {
            Decision::Audit(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// Decisions per (rule, outcome), a roll-up record counting as what it stands for.
fn decided(run: &Run) -> std::collections::BTreeMap<(String, DecisionOutcome), u64> {
    let mut counts = std::collections::BTreeMap::new();
    for a in audits(run) {
        *counts.entry((a.rule_id.clone(), a.outcome)).or_default() += a.decisions();
    }
    counts
}

fn run(window_h: u64, events: &[Event]) -> Run {
    let mut run = Run::with(operator(std::time::Duration::from_secs(window_h * 3600)));
    for e in events {
        run.feed(e.clone());
    }
    run
}

#[test]
fn cooldown_repeats_go_out_as_roll_ups_and_every_decision_is_counted() {
    let mut events = busy(60);
    // A payment a day later closes every window still open.
    events.push(card(99, T0 + 48 * H, 100, PaymentMethod::DebitCard, "DE"));
    let each = run(0, &events);
    let rolled = run(6, &events);

    let cooling = |r: &Run| {
        audits(r)
            .iter()
            .filter(|a| a.outcome == DecisionOutcome::SuppressedCooldown)
            .count()
    };
    assert!(
        cooling(&each) > 30,
        "the scenario repeats cooldowns: {}",
        cooling(&each)
    );
    assert!(
        cooling(&rolled) * 4 < cooling(&each),
        "rolled up: {} records instead of {}",
        cooling(&rolled),
        cooling(&each)
    );
    assert_eq!(decided(&rolled), decided(&each), "every decision counted");
    assert_eq!(rolled.offers(), each.offers());
    assert_eq!(rolled.alerts(), each.alerts());
    assert!(
        rolled
            .state
            .rollups
            .open()
            .iter()
            .all(|w| w.counted.is_none()),
        "every repeat is out: a window still open (the last payment's) counts none"
    );

    // A rule that acts again starts a new cooldown: its first suppression has a record of its
    // own, with its features.
    let mut acted_again = 0;
    for acted in audits(&rolled).into_iter().filter(|a| {
        matches!(
            a.outcome,
            DecisionOutcome::Alerted | DecisionOutcome::Offered
        )
    }) {
        // The first suppression after it, decided one by one.
        let first = audits(&each)
            .into_iter()
            .filter(|a| {
                a.rule_id == acted.rule_id
                    && a.outcome == DecisionOutcome::SuppressedCooldown
                    && a.decided_at > acted.decided_at
            })
            .min_by_key(|a| a.decided_at);
        if let Some(first) = first {
            let own = audits(&rolled).into_iter().find(|a| {
                a.rule_id == first.rule_id
                    && a.trigger_event_id == first.trigger_event_id
                    && a.rolled_up.is_none()
            });
            assert_eq!(own, Some(first), "after {acted:?}");
            acted_again += 1;
        }
    }
    assert!(
        acted_again > 1,
        "the scenario raises an alert again after its cooldown"
    );

    // Each roll-up names the first and last repeat it counts, within its window, after the
    // record of its own that opened it.
    for r in audits(&rolled).iter().filter(|a| a.rolled_up.is_some()) {
        let up = r.rolled_up.as_ref().unwrap();
        assert!(up.count >= 1 && r.features.0.is_empty());
        assert!(r.decided_at <= up.last_decided_at);
        assert!(up.last_decided_at - r.decided_at < 6 * H);
        let first = audits(&each)
            .into_iter()
            .find(|a| a.rule_id == r.rule_id && a.trigger_event_id == r.trigger_event_id)
            .unwrap();
        assert_eq!(first.outcome, DecisionOutcome::SuppressedCooldown);
        assert_eq!(first.decided_at, r.decided_at);
        let opened = audits(&rolled).into_iter().any(|a| {
            a.rule_id == r.rule_id
                && a.outcome == DecisionOutcome::SuppressedCooldown
                && a.rolled_up.is_none()
                && a.decided_at <= r.decided_at
                && r.decided_at - a.decided_at < 6 * H
        });
        assert!(opened, "{r:?} follows a record of its own");
    }
}

/// The counts are part of the stored state: a customer written and read back mid-window (a
/// checkpoint, an eviction, another instance) goes on as if it had stayed in memory.
#[test]
fn open_windows_survive_a_reload() {
    let events = busy(40);
    let straight = run(6, &events);
    let mut halves = run(6, &events[..20]);
    assert!(!halves.state.rollups.is_empty(), "windows open mid-way");
    let bytes = halves.state.to_bytes().unwrap();
    halves.state = CustomerState::from_bytes(&bytes).unwrap();
    halves.op.align(&mut halves.state);
    for e in &events[20..] {
        halves.feed(e.clone());
    }
    assert_eq!(halves.out, straight.out);
    assert_eq!(halves.state.rollups, straight.state.rollups);
}

/// An erasure closes the windows first: the decisions made before it are audited.
#[test]
fn an_erasure_closes_the_open_windows() {
    let mut events = busy(30);
    events.push(Event::Erasure(ErasureRequest {
        request_id: "X1".into(),
        customer_id: "C1".into(),
        requested_at: T0 + 11 * H,
    }));
    let each = run(0, &events);
    let rolled = run(24, &events);
    assert!(audits(&rolled).iter().any(|a| a.rolled_up.is_some()));
    assert_eq!(decided(&rolled), decided(&each));
    assert!(rolled.state.rollups.is_empty());
}

/// Off (the default), nothing is counted in state and every decision has its record.
#[test]
fn off_by_default() {
    let events = busy(30);
    let run = run(0, &events);
    assert!(run.state.rollups.is_empty());
    assert!(audits(&run).iter().all(|a| a.rolled_up.is_none()));
    assert_eq!(
        crate::config::OperatorSettings::default().audit_rollup,
        std::time::Duration::ZERO
    );
}
