//! `backtest` as a specification: the same generated events recorded as Avro and as JSON lines
//! replay to the same report; the report's decisions are exactly the Operator's on those events;
//! a damaged record is counted dead and the replay goes on; and the CLI does it end to end.
//! No broker, no Redis.

use nbo_stream::backtest::{self, report::BacktestReport, BacktestOptions};
use nbo_stream::config::Settings;
use nbo_stream::event::Event;
use nbo_stream::generator::file::{generate_to_file, FileOptions};
use nbo_stream::generator::personas::EventFactory;
use nbo_stream::operator::{BatchStats, Operator};
use nbo_stream::output::Decision;
use nbo_stream::recorded::Format;
use nbo_stream::state::CustomerState;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

const EVENTS: u64 = 20_000;
const CUSTOMERS: u32 = 500;
const SEED: u64 = 11;
const START: i64 = 1_700_000_000_000;
const NOW: i64 = 1_800_000_000_000;
const BIN: &str = env!("CARGO_BIN_EXE_nbo-stream");

fn record(path: &Path, format: Format) {
    generate_to_file(&FileOptions {
        path: path.to_path_buf(),
        format,
        customers: CUSTOMERS,
        events: EVENTS,
        seed: SEED,
        start_ms: START,
        clock_cap_ms: None,
        declared: Vec::new(),
        progress: false,
        own_conversions: None,
    })
    .unwrap();
}

fn options(path: &Path) -> BacktestOptions {
    BacktestOptions {
        events: path.to_path_buf(),
        rules: None,
        samples: 5,
        now_ms: NOW,
        progress: false,
        labels: None,
        label_window: backtest::DEFAULT_LABEL_WINDOW,
    }
}

fn run(path: &Path) -> BacktestReport {
    backtest::run(&Settings::default(), &options(path)).unwrap()
}

/// The decisions per rule and outcome of the Operator applied directly to the generated events.
fn direct() -> (BTreeMap<String, BTreeMap<String, u64>>, u64, u64) {
    let settings = Settings::default();
    let features = Arc::new(settings.features.load().unwrap());
    let rules = backtest::load_rules(None, &features).unwrap();
    let op = Operator::new(
        features,
        rules,
        &settings.operator,
        settings.operator.control_group_percent,
    );
    let mut factory = EventFactory::new(CUSTOMERS, SEED, START);
    let mut states: HashMap<String, CustomerState> = HashMap::new();
    let (mut by_rule, mut offers, mut alerts) = (BTreeMap::new(), 0, 0);
    let mut stats = BatchStats::default();
    for _ in 0..EVENTS {
        let event: Event = factory.next_event();
        let state = states
            .entry(event.customer_id().to_string())
            .or_insert_with(|| {
                let mut s = CustomerState::default();
                op.align(&mut s);
                s
            });
        let mut out = Vec::new();
        op.apply(state, &event, None, &mut out, &mut stats);
        for d in out {
            match d {
                Decision::Offer(_) => offers += 1,
                Decision::Alert(_) => alerts += 1,
                Decision::Audit(a) => {
                    *by_rule
                        .entry(a.rule_id)
                        .or_insert_with(BTreeMap::new)
                        .entry(a.outcome.as_str().to_string())
                        .or_insert(0) += 1;
                }
            }
        }
    }
    (by_rule, offers, alerts)
}

/// The line with an empty `customer_id` (decodes, fails validation).
fn blank_customer(line: &str) -> String {
    let key = "\"customer_id\":\"";
    let start = line.find(key).unwrap() + key.len();
    let end = start + line[start..].find('"').unwrap();
    format!("{}{}", &line[..start], &line[end..])
}

#[test]
fn avro_and_json_lines_replay_to_the_operators_own_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let avro = dir.path().join("events.avro");
    let jsonl = dir.path().join("events.jsonl");
    record(&avro, Format::Avro);
    record(&jsonl, Format::Jsonl);

    let a = run(&avro);
    let j = run(&jsonl);
    assert_eq!(a.source.format, Format::Avro);
    assert_eq!(j.source.format, Format::Jsonl);
    assert_eq!(a.results, j.results, "same events, same report");

    let r = &a.results;
    assert_eq!(r.records_read, EVENTS);
    assert_eq!(r.events_decoded, EVENTS);
    assert_eq!(r.dead, 0);
    assert_eq!(r.customers, u64::from(CUSTOMERS));
    assert!(
        r.offers > 0 && r.alerts > 0,
        "offers {} alerts {}",
        r.offers,
        r.alerts
    );
    assert!(!r.samples.is_empty());

    let (by_rule, offers, alerts) = direct();
    assert_eq!(r.decisions_by_rule, by_rule);
    assert_eq!((r.offers, r.alerts), (offers, alerts));
    assert_eq!(
        r.decisions,
        by_rule.values().flat_map(|c| c.values()).sum::<u64>()
    );
    let offered = r.decisions_by_outcome.get("OFFERED").copied().unwrap_or(0);
    assert_eq!(offered, offers);
    let suppressed: u64 = r.suppressions_by_reason.values().sum();
    let suppressed_outcomes: u64 = r
        .decisions_by_outcome
        .iter()
        .filter(|(o, _)| o.starts_with("SUPPRESSED_"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(suppressed, suppressed_outcomes);
}

#[test]
fn damaged_records_are_counted_dead_and_the_replay_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("events.jsonl");
    record(&jsonl, Format::Jsonl);
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[700] = "{\"type\":\"bank.nbo.TransactionEvent\",\"record\":{\"oops\"".into();
    lines[900] = blank_customer(&lines[900]);
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let r = run(&jsonl).results;
    assert_eq!(r.records_read, EVENTS);
    assert!(r.dead >= 1, "{:?}", r.dead_by_reason);
    assert_eq!(r.dead_by_reason.get("json"), Some(&1));
    assert_eq!(r.dead_by_reason.get("invalid_field"), Some(&1));
    assert_eq!(r.events_decoded, EVENTS - r.dead);
    assert!(r.dead_samples.iter().any(|d| d.position == "line 701"));
    assert!(r.offers > 0);

    let avro = dir.path().join("events.avro");
    record(&avro, Format::Avro);
    let mut bytes = std::fs::read(&avro).unwrap();
    let at = bytes.len() / 3;
    bytes[at..at + 64].fill(0xff);
    std::fs::write(&avro, bytes).unwrap();
    let r = run(&avro).results;
    assert!(r.dead >= 1 && r.dead < EVENTS / 4, "dead {}", r.dead);
    assert_eq!(r.records_read, r.events_decoded + r.dead);
    assert!(r.events_decoded > EVENTS / 2);
}

#[test]
fn rule_documents_replay_what_they_say_and_broken_ones_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("e.avro");
    record(&file, Format::Avro);
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    // The starter card offer, in shadow: audited as SHADOW, never offered.
    let (_, card) = nbo_stream::rules::load::STARTER
        .iter()
        .find(|(p, _)| p.ends_with("credit-card-heavy-debit.toml"))
        .unwrap();
    let shadow = card.replace("version = 1", "version = 2\nstate = \"shadow\"");
    std::fs::write(rules.join("card.toml"), &shadow).unwrap();
    let mut o = options(&file);
    o.rules = Some(rules.clone());
    let report = backtest::run(&Settings::default(), &o).unwrap();
    let outcomes = &report.results.decisions_by_rule["offer-credit-card-heavy-debit"];
    assert!(
        outcomes.get("SHADOW").copied().unwrap_or(0) > 0,
        "{outcomes:?}"
    );
    assert!(!outcomes.contains_key("OFFERED"), "{outcomes:?}");
    assert_eq!(report.results.offers, 0, "only the shadow rule is loaded");

    std::fs::write(
        rules.join("card.toml"),
        shadow.replace("features.credit_card_txn_count_30d", "features.credit_txns"),
    )
    .unwrap();
    let err = backtest::run(&Settings::default(), &o)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rule offer-credit-card-heavy-debit: condition, line")
            && err.contains("credit_txns"),
        "{err}"
    );
}

#[test]
fn generate_out_then_backtest_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["cli.avro", "cli.jsonl"] {
        let path = dir.path().join(name);
        let out = std::process::Command::new(BIN)
            .args([
                "generate",
                "--customers",
                "300",
                "--events",
                "5000",
                "--seed",
                "3",
                "--out",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("generated 5000 records"), "{stdout}");

        let out = std::process::Command::new(BIN)
            .args(["backtest", "--json", "--events"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: BacktestReport = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report.results.records_read, 5000);
        assert_eq!(report.results.dead, 0);
        assert!(report.results.decisions > 0);

        let out = std::process::Command::new(BIN)
            .args(["backtest", "--events"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("decisions by outcome"), "{text}");
    }
    let bad = std::process::Command::new(BIN)
        .args([
            "generate",
            "--events",
            "10",
            "--malformed-rate",
            "0.1",
            "--out",
        ])
        .arg(dir.path().join("x.avro"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Kafka only"));
}

/// Customers who open products on their own, and no response to any offer: what a backtest
/// measures of each offer's uplift is base-rate conversions on both sides, with nothing caused.
#[test]
fn a_backtest_measures_each_offers_uplift_from_the_products_opened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opened.jsonl");
    let truth = nbo_stream::generator::responder::Truth::from_toml(
        "[base_rate]\nCREDIT_CARD = 0.6\nWEALTH = 0.6\nLOAN = 0.6\nINSURANCE = 0.6\n",
    )
    .unwrap();
    generate_to_file(&FileOptions {
        path: path.clone(),
        format: Format::Jsonl,
        customers: 1_000,
        events: 60_000,
        seed: SEED,
        start_ms: START,
        clock_cap_ms: None,
        declared: Vec::new(),
        progress: false,
        own_conversions: Some(truth),
    })
    .unwrap();
    let mut settings = Settings::default();
    settings.operator.control_group_percent = 50;
    let report = backtest::run(&settings, &options(&path)).unwrap();
    let opened = report.results.events_by_type["ProductOpened"];
    assert!(opened > 100, "{opened} products opened");
    let card = report.results.uplift["offer-credit-card-heavy-debit"];
    let (t, c) = (card.treated, card.control);
    assert!(t.customers > 20 && c.customers > 20, "{card:?}");
    assert!(t.converted > 0 && c.converted > 0, "{card:?}");
    // Nobody answered an offer, so the offer caused nothing: zero is within the interval.
    for (rule, groups) in &report.results.uplift {
        if let Some(u) = groups.uplift() {
            assert!(
                u.absolute.low <= 0.0 && 0.0 <= u.absolute.high,
                "{rule}: {u}"
            );
        }
    }
    let text = report.to_string();
    assert!(
        text.contains("uplift against the control group") && text.contains("treated "),
        "{text}"
    );
}

/// `backtest --labels`: a hand-computed case. Five customers' payments, a rule alerting on 5,000
/// or more with an hour's cooldown, and five labelled frauds:
///
/// | label | | caught? |
/// |---|---|---|
/// | event E1 (C1, 6,000) | alerted | yes |
/// | event E2 (C1, 6,000 half an hour later) | in the cooldown, no alert | no |
/// | C4 two hours after its 8,000 payment | alerted, within the day | yes |
/// | C3 (a payment of 1.00) | no alert | no |
/// | C2 three days after its 7,000 payment | alerted, but not within the day | no |
///
/// Four alerts (C1, C2, C4, C5), of which two hit a fraud: precision 2/4; two of five frauds
/// caught: recall 2/5; four alerts in six events.
#[test]
fn backtest_labels_score_each_alert_rule_as_computed_by_hand() {
    const H: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let t = START;
    let payments = [
        ("E1", "C1", 600_000, t),
        ("E2", "C1", 600_000, t + H / 2),
        ("E3", "C2", 700_000, t),
        ("E4", "C3", 100, t),
        ("E5", "C4", 800_000, t + 5 * H),
        ("E6", "C5", 900_000, t),
    ];
    let events: String = payments
        .iter()
        .map(|(id, customer, amount, at)| {
            let txn = serde_json::json!({
                "event_id": id, "customer_id": customer, "event_time": at, "account_id": "A1",
                "txn_type": "CARD_PAYMENT", "amount_minor": amount, "currency": "EUR",
                "payment_method": "CREDIT_CARD", "merchant_category": null, "channel": "ONLINE",
                "country": "DE", "balance_after_minor": null,
            });
            format!("{{\"type\":\"bank.nbo.TransactionEvent\",\"record\":{txn}}}\n")
        })
        .collect();
    let events_path = dir.path().join("payments.jsonl");
    std::fs::write(&events_path, events).unwrap();
    let labels_path = dir.path().join("fraud.jsonl");
    let labels = format!(
        "{{\"event_id\":\"E1\"}}\n{{\"event_id\":\"E2\"}}\n\
         {{\"customer_id\":\"C4\",\"at\":{}}}\n{{\"customer_id\":\"C3\",\"at\":{t}}}\n\
         {{\"customer_id\":\"C2\",\"at\":{}}}\n",
        t + 7 * H,
        t + 72 * H
    );
    std::fs::write(&labels_path, labels).unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("big.toml"),
        r#"id = "alert-big-payment"
version = 2
description = "a payment of 5,000.00 or more"
triggers = ["TransactionEvent"]
condition = "event.amount_minor >= 500000"
[alert]
kind = "FRAUD"
severity = "HIGH"
cooldown = "1h"
"#,
    )
    .unwrap();

    let o = BacktestOptions {
        rules: Some(rules.clone()),
        labels: Some(labels_path.clone()),
        ..options(&events_path)
    };
    let report = backtest::run(&Settings::default(), &o).unwrap();
    let scores = report.results.labelled.expect("scored against the labels");
    assert_eq!(scores.labels, 5);
    let s = &scores.rules["alert-big-payment v2"];
    assert_eq!((s.alerts, s.hits, s.caught), (4, 2, 2), "{s:?}");
    assert_eq!(s.precision.unwrap().value, 0.5);
    assert_eq!(s.recall.unwrap().value, 0.4);
    assert!((s.alerts_per_1000_events - 4_000.0 / 6.0).abs() < 1e-9);
    assert_eq!(scores.missed, 3);
    assert_eq!(scores.late_features, 0, "the file is in time order");

    // The same through the binary, in words.
    let out = std::process::Command::new(BIN)
        .args(["backtest", "--events"])
        .arg(&events_path)
        .arg("--rules")
        .arg(&rules)
        .arg("--labels")
        .arg(&labels_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("against 5 labelled frauds"), "{text}");
    assert!(text.contains("precision 0.500"), "{text}");
    assert!(text.contains("recall    0.400"), "{text}");

    // A label that says neither an event nor a customer's time is refused with its line.
    std::fs::write(
        &labels_path,
        "{\"event_id\":\"E1\"}\n{\"customer_id\":\"C1\"}\n",
    )
    .unwrap();
    let err = backtest::run(&Settings::default(), &o)
        .unwrap_err()
        .to_string();
    assert!(err.contains("line 2"), "{err}");
}
