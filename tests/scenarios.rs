//! Decision scenarios as data: each file under `tests/scenarios/` is one customer's events in, and
//! the decisions expected out (rule, outcome, a reason). One test per file, named after it; one
//! more test checks that every starter rule fires in some scenario and every file has its test.
//!
//! A scenario file:
//! ```toml
//! description = "what it shows, in plain words"
//! control_group_percent = 0              # optional (default 0, so offers are not held out)
//! states = { "offer-x" = "shadow" }      # optional: run starter rules in another state
//! [profile]                              # merged onto a consenting MATURE profile, score 700
//! consent_marketing = false
//! [[event]]
//! at = "2h"                              # after the scenario's start
//! type = "TransactionEvent"              # Avro record name
//! repeat = 3                             # optional: the same event 3 times...
//! every = "10m"                          # ...this far apart
//! fields = { amount_minor = 250000 }     # merged onto the record's defaults
//! [[expect]]
//! rule = "offer-x"
//! outcome = "OFFERED"                    # an audit outcome
//! reason = "features.x >= 3.0"           # optional: a substring of one of the reasons
//! count = 1                              # optional: exactly this many (default: at least one)
//! ```
//! An `OfferResponse`'s `offer_id` may be written as `offer_of = "<rule id>"`: the id of the
//! latest offer that rule made in the scenario.

use nbo_stream::config::OperatorSettings;
use nbo_stream::event::*;
use nbo_stream::operator::{BatchStats, Operator, SourcePos};
use nbo_stream::output::Decision;
use nbo_stream::rules::document::RuleState;
use nbo_stream::rules::load;
use nbo_stream::state::CustomerState;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_800_000_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    description: String,
    #[serde(default)]
    control_group_percent: u8,
    #[serde(default)]
    states: BTreeMap<String, RuleState>,
    #[serde(default)]
    profile: Option<toml::Table>,
    #[serde(default)]
    no_profile: bool,
    event: Vec<EventSpec>,
    expect: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    #[serde(with = "humantime_serde")]
    at: Duration,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "one")]
    repeat: u32,
    #[serde(default, with = "humantime_serde")]
    every: Option<Duration>,
    #[serde(default)]
    fields: toml::Table,
    #[serde(default)]
    offer_of: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    rule: String,
    outcome: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    count: Option<usize>,
}

fn defaults(kind: &str, n: usize, at: i64) -> Value {
    let id = format!("E{n:04}");
    let base = json!({"event_id": id, "customer_id": "C1", "event_time": at});
    let extra = match kind {
        "TransactionEvent" => json!({"account_id": "A1", "txn_type": "CARD_PAYMENT",
            "amount_minor": 1000, "currency": "EUR", "payment_method": "DEBIT_CARD",
            "merchant_category": null, "channel": "POS", "country": "GB",
            "balance_after_minor": null}),
        "ClickstreamEvent" => json!({"session_id": "S1", "page_url": "/", "action": "PAGE_VIEW",
            "product_category": null, "dwell_ms": null}),
        "AppEvent" => json!({"device_id": "D1", "platform": "IOS", "app_version": "5.0",
            "screen": "home", "action": "SCREEN_VIEW", "product_category": null,
            "latitude": null, "longitude": null}),
        "SocialEvent" => json!({"platform": "X", "interaction": "POST", "sentiment": 0.0,
            "topic": null, "mentions_bank": true}),
        "FeedbackEvent" => json!({"channel": "EMAIL", "kind": "QUESTION",
            "product_category": null, "satisfaction": null}),
        "PartnerEvent" => json!({"partner": "P1", "category": "TRAVEL", "amount_minor": 10000,
            "currency": "EUR"}),
        "OfferResponse" => json!({"offer_id": "", "response": "DECLINED"}),
        "CustomerProfile" => json!({"customer_id": "C1", "updated_at": at,
            "lifecycle_stage": "MATURE", "segment": "MASS", "credit_score": 700,
            "consent_marketing": true, "consent_profiling": true,
            "contact_channels": ["EMAIL", "SMS", "PUSH", "CALL", "BRANCH"]}),
        other => panic!("unknown event type {other}"),
    };
    if kind == "CustomerProfile" {
        return extra;
    }
    let mut v = base;
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

fn parse<T: serde::de::DeserializeOwned>(kind: &str, v: Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn build(kind: &str, v: Value) -> Event {
    match kind {
        "TransactionEvent" => Event::Transaction(parse(kind, v)),
        "ClickstreamEvent" => Event::Clickstream(parse(kind, v)),
        "AppEvent" => Event::App(parse(kind, v)),
        "SocialEvent" => Event::Social(parse(kind, v)),
        "FeedbackEvent" => Event::Feedback(parse(kind, v)),
        "PartnerEvent" => Event::Partner(parse(kind, v)),
        "OfferResponse" => Event::OfferResponse(parse(kind, v)),
        "CustomerProfile" => Event::Profile(parse(kind, v)),
        other => panic!("unknown event type {other}"),
    }
}

fn merge(mut v: Value, fields: &toml::Table) -> Value {
    for (k, x) in fields {
        assert!(v.get(k).is_some(), "unknown field {k}");
        v[k] = serde_json::to_value(x).unwrap();
    }
    v
}

/// Runs a scenario file; returns the audit records' (rule, outcome, reasons) and the offers and
/// alerts, for the expectations.
fn run(name: &str) -> (Scenario, Vec<Decision>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let scenario: Scenario = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let features = Arc::new(nbo_stream::features::spec::load(None).unwrap());
    let mut rules = load::rule_set(None, &features).unwrap();
    for head in rules
        .offers
        .iter_mut()
        .map(|r| &mut r.head)
        .chain(rules.alerts.iter_mut().map(|r| &mut r.head))
    {
        if let Some(state) = scenario.states.get(&head.id) {
            head.state = *state;
        }
    }
    for id in scenario.states.keys() {
        assert!(rules.heads().any(|h| &h.id == id), "no starter rule {id}");
    }
    let settings = OperatorSettings {
        control_group_percent: scenario.control_group_percent,
        ..OperatorSettings::default()
    };
    let op = Operator::new(features, rules, &settings, scenario.control_group_percent);
    let mut state = CustomerState::default();
    op.align(&mut state);
    let (mut out, mut stats) = (Vec::new(), BatchStats::default());
    let mut events = Vec::new();
    if !scenario.no_profile {
        let p = merge(
            defaults("CustomerProfile", 0, T0 - 1),
            scenario.profile.as_ref().unwrap_or(&toml::Table::new()),
        );
        events.push((T0 - 1, "CustomerProfile".to_string(), p, None));
    }
    for spec in &scenario.event {
        for i in 0..spec.repeat {
            let every = spec.every.unwrap_or(Duration::from_secs(60)).as_millis() as i64;
            let at = T0 + spec.at.as_millis() as i64 + i64::from(i) * every;
            let v = merge(defaults(&spec.kind, events.len(), at), &spec.fields);
            events.push((at, spec.kind.clone(), v, spec.offer_of.clone()));
        }
    }
    for (offset, (_, kind, mut v, offer_of)) in events.into_iter().enumerate() {
        if let Some(rule) = offer_of {
            let id = out
                .iter()
                .rev()
                .find_map(|d| match d {
                    Decision::Offer(o) if o.rule_id == rule => Some(o.offer_id.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{name}: no offer of {rule} to respond to"));
            v["offer_id"] = json!(id);
        }
        let event = build(&kind, v);
        let pos = SourcePos {
            kind: event.kind().index() as u8,
            partition: 0,
            offset: offset as i64,
        };
        op.apply(&mut state, &event, Some(pos), &mut out, &mut stats);
    }
    (scenario, out)
}

fn check(name: &str) {
    let (scenario, out) = run(name);
    let audits: Vec<_> = out
        .iter()
        .filter_map(|d| match d {
            Decision::Audit(a) => Some(a),
            _ => None,
        })
        .collect();
    let shown: Vec<String> = audits
        .iter()
        .map(|a| format!("{} {} {:?}", a.rule_id, a.outcome, a.reasons))
        .collect();
    for e in &scenario.expect {
        let matching = audits
            .iter()
            .filter(|a| a.rule_id == e.rule && a.outcome.as_str() == e.outcome)
            .filter(|a| {
                e.reason
                    .as_ref()
                    .is_none_or(|r| a.reasons.iter().any(|x| x.contains(r.as_str())))
            })
            .count();
        let ok = match e.count {
            Some(n) => matching == n,
            None => matching > 0,
        };
        assert!(
            ok,
            "{name} ({}): expected {} {} {:?} x{:?}, found {matching}; decisions:\n{}",
            scenario.description,
            e.rule,
            e.outcome,
            e.reason,
            e.count,
            shown.join("\n")
        );
    }
    // What an audit says went out, went out: one offer per OFFERED, one alert per ALERTED.
    let offered = audits
        .iter()
        .filter(|a| a.outcome == DecisionOutcome::Offered)
        .count();
    let alerted = audits
        .iter()
        .filter(|a| a.outcome == DecisionOutcome::Alerted)
        .count();
    let offers = out
        .iter()
        .filter(|d| matches!(d, Decision::Offer(_)))
        .count();
    let alerts = out
        .iter()
        .filter(|d| matches!(d, Decision::Alert(_)))
        .count();
    assert_eq!((offered, alerted), (offers, alerts), "{name}");
}

macro_rules! scenarios {
    ($($name:ident),+ $(,)?) => {
        $(#[test] fn $name() { check(&stringify!($name).replace('_', "-")); })+
        const NAMES: &[&str] = &[$(stringify!($name)),+];
    };
}

scenarios!(
    offer_credit_card_heavy_debit,
    offer_wealth_high_balance,
    offer_personal_loan_researcher,
    offer_mortgage_researcher,
    offer_insurance_travel_car,
    offer_retention_at_risk,
    alert_card_velocity,
    alert_amount_above_average,
    alert_many_countries,
    alert_failed_logins_then_transfer,
    alert_complaint_escalation,
    alert_credit_risk_overdrawn,
    alert_attrition_signals,
    policy_no_marketing_consent,
    policy_no_permitted_channel,
    policy_no_profile,
    policy_offer_cooldown,
    policy_contact_frequency_cap,
    policy_decline_suppression,
    policy_complaint_quiet_period,
    policy_negative_social_quiet_period,
    policy_recent_high_alert,
    policy_control_group,
    policy_arbitration_best_score,
    policy_shadow_rule,
    policy_paused_rule,
    policy_late_event_updates_but_does_not_trigger,
    policy_alert_cooldown,
);

#[test]
fn every_scenario_file_has_a_test_and_every_starter_rule_fires_in_one() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().replace('-', "_"))
        .collect();
    files.sort();
    let mut names: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    names.sort();
    assert_eq!(files, names, "scenario files and tests differ");
    let features = nbo_stream::features::spec::load(None).unwrap();
    let rules = load::rule_set(None, &features).unwrap();
    for head in rules.heads() {
        let fires = NAMES.iter().any(|n| {
            let (s, _) = run(&n.replace('_', "-"));
            s.expect.iter().any(|e| {
                e.rule == head.id
                    && (e.outcome == "OFFERED" || e.outcome == "ALERTED")
                    && e.count != Some(0)
            })
        });
        assert!(fires, "no scenario shows {} firing", head.id);
    }
}
