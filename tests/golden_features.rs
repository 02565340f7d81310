//! Golden cases as data: `tests/fixtures/golden/<case>/events.jsonl` (one event a line, with its record
//! `type`, in arrival order) and `expected.json` (every starter feature's value at `at`, null where
//! the window holds no value). The expected values were worked out by hand from the events.

use nbo_stream::config::OperatorSettings;
use nbo_stream::event::*;
use nbo_stream::features::spec;
use nbo_stream::operator::{BatchStats, Operator, SourcePos};
use nbo_stream::rules::RuleSet;
use nbo_stream::state::CustomerState;
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;

fn parse(line: &str) -> Event {
    let mut v: Value = serde_json::from_str(line).expect("json line");
    let kind = v["type"].as_str().expect("type").to_string();
    v.as_object_mut().expect("object").remove("type");
    fn de<T: serde::de::DeserializeOwned>(kind: &str, v: Value) -> T {
        serde_json::from_value(v).unwrap_or_else(|err| panic!("{kind}: {err}"))
    }
    let k = kind.as_str();
    match kind.as_str() {
        "TransactionEvent" => Event::Transaction(de(k, v)),
        "ClickstreamEvent" => Event::Clickstream(de(k, v)),
        "AppEvent" => Event::App(de(k, v)),
        "SocialEvent" => Event::Social(de(k, v)),
        "FeedbackEvent" => Event::Feedback(de(k, v)),
        "PartnerEvent" => Event::Partner(de(k, v)),
        "CustomerProfile" => Event::Profile(de(k, v)),
        "OfferResponse" => Event::OfferResponse(de(k, v)),
        "ErasureRequest" => Event::Erasure(de(k, v)),
        other => panic!("unknown record type {other}"),
    }
}

#[test]
fn golden_cases_match_their_expected_features() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden");
    let features = Arc::new(spec::load(None).unwrap());
    let rules = RuleSet {
        version: 0,
        offers: vec![],
        alerts: vec![],
    };
    let op = Operator::new(features.clone(), rules, &OperatorSettings::default(), 0);
    let mut cases = 0;
    for case in std::fs::read_dir(&dir).unwrap() {
        let case = case.unwrap().path();
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let events: Vec<Event> = std::fs::read_to_string(case.join("events.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(parse)
            .collect();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
                .unwrap();
        let mut state = CustomerState::default();
        op.align(&mut state);
        let (mut out, mut stats) = (Vec::new(), BatchStats::default());
        for (i, e) in events.iter().enumerate() {
            let pos = SourcePos {
                kind: e.kind().index() as u8,
                partition: 0,
                offset: i as i64,
            };
            op.apply(&mut state, e, Some(pos), &mut out, &mut stats);
        }
        let at = expected["at"].as_i64().unwrap();
        let want = expected["features"].as_object().unwrap();
        assert_eq!(
            want.len(),
            features.defs().len(),
            "{name}: every starter feature is listed"
        );
        for (slot, def) in features.defs().iter().enumerate() {
            let got = op.value_at(&state, slot, at);
            let w = want
                .get(&*def.name)
                .unwrap_or_else(|| panic!("{name}: {} missing", def.name))
                .as_f64();
            let ok = match (got, w) {
                (None, None) => true,
                (Some(g), Some(w)) => (g - w).abs() <= 1e-9 * w.abs().max(1.0),
                _ => false,
            };
            assert!(ok, "{name}: {} = {got:?}, expected {w:?}", def.name);
        }
        cases += 1;
    }
    assert!(cases >= 2, "golden cases found: {cases}");
}
