//! A declared source (the IoT example's `WearableEvent`) through recorded files, as a user runs
//! them: `generate --out` with the example's configuration writes its records beside the
//! built-in ones as JSON lines; `backtest` reads them back, computes the source's features and
//! fires a rule on them; a line that breaks the source's schema is a dead record naming the field;
//! and an Avro recorded file is refused up front, saying to write JSON lines.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_nbo-stream");
const CONFIG: &str = "examples/iot/nbo.toml";

/// The CLI, run from the repository root (the example's paths are relative to it).
fn nbo(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NBO_CUSTOMER_KEY_SECRET", "declared-recorded-test-secret")
        .output()
        .expect("nbo-stream runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A rule over the example's features: any customer wearing two or more devices, once.
const TWO_DEVICES: &str = r#"
id = "alert-two-devices"
version = 1
description = "Two or more wearable devices"
triggers = ["WearableEvent"]
condition = "features.wearable_devices_30d >= 2.0 && event.device_type != 'OTHER'"

[alert]
kind = "FRAUD"
severity = "LOW"
cooldown = "30d"
"#;

fn backtest(file: &Path, rules: &Path) -> serde_json::Value {
    let out = ok(nbo(&[
        "backtest",
        "--events",
        file.to_str().unwrap(),
        "--config",
        CONFIG,
        "--rules",
        rules.to_str().unwrap(),
        "--json",
    ]));
    serde_json::from_str(&out).expect("the report is JSON")
}

#[test]
fn generate_writes_declared_records_and_backtest_reads_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("iot.jsonl");
    let summary = ok(nbo(&[
        "generate",
        "--out",
        file.to_str().unwrap(),
        "--events",
        "6000",
        "--customers",
        "40",
        "--config",
        CONFIG,
    ]));
    let written: u64 = summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("WearableEvent"))
        .unwrap_or_else(|| panic!("no WearableEvent line in the summary:\n{summary}"))
        .trim()
        .parse()
        .unwrap();
    assert!(written > 300, "{summary}");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("WearableEvent"))
        .expect("a wearable line");
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["type"], "bank.nbo.iot.WearableEvent");
    assert!(line["key"].as_str().unwrap().starts_with('C'));
    assert!(line["record"]["device_id"].is_string());

    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("two-devices.toml"), TWO_DEVICES).unwrap();
    let report = backtest(&file, &rules);
    let results = &report["results"];
    assert_eq!(results["dead"], 0, "{results}");
    assert_eq!(results["events_by_type"]["WearableEvent"], written);
    let alerts = results["decisions_by_rule"]["alert-two-devices"]["ALERTED"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(results["alerts"], alerts, "{results}");
    assert!(
        alerts > 0 && alerts <= 40,
        "the rule reads the declared source's distinct_count feature: {results}"
    );
}

#[test]
fn a_line_that_breaks_the_schema_is_a_dead_record_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.jsonl");
    let good = r#"{"type":"bank.nbo.iot.WearableEvent","key":"c-1","record":{"event_id":"w-1","event_time":1700000000000,"device_id":"d-1","device_type":"SMART_RING","action":"PAYMENT_TAP","amount_minor":500,"heart_rate":null}}"#;
    let bad_symbol = good
        .replace("w-1", "w-2")
        .replace("PAYMENT_TAP", "TELEPORT");
    let missing = good
        .replace("w-1", "w-3")
        .replace(r#""device_id":"d-1","#, "");
    std::fs::write(&file, format!("{good}\n{bad_symbol}\n{missing}\n")).unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(rules.join("two-devices.toml"), TWO_DEVICES).unwrap();
    let results = backtest(&file, &rules)["results"].clone();
    assert_eq!(results["events_by_type"]["WearableEvent"], 1, "{results}");
    assert_eq!(results["dead"], 2, "{results}");
    let samples = results["dead_samples"].to_string();
    assert!(
        samples.contains("action") && samples.contains("TELEPORT"),
        "{samples}"
    );
    assert!(
        samples.contains("device_id") && samples.contains("missing"),
        "{samples}"
    );
}

#[test]
fn an_avro_file_with_declared_sources_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("iot.avro");
    let out = nbo(&[
        "generate",
        "--out",
        file.to_str().unwrap(),
        "--events",
        "10",
        "--config",
        CONFIG,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".jsonl"), "{err}");
    assert!(!file.exists(), "nothing half-written");
}
