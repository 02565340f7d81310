//! Several problems of one document, each at its place in the text.

use super::*;

fn features() -> FeatureSet {
    crate::features::spec::load(None).unwrap()
}

/// (line, column, a part of the message) of each problem, in order.
fn places(text: &str, format: Format) -> Vec<(Option<usize>, Option<usize>, String)> {
    match find(text, format, &features()).into_result() {
        Ok(doc) => panic!("{doc:?} passed"),
        Err(problems) => problems
            .into_iter()
            .map(|p| (p.line, p.column, p.message))
            .collect(),
    }
}

fn assert_places(
    found: &[(Option<usize>, Option<usize>, String)],
    expected: &[(usize, usize, &str)],
) {
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for ((line, column, message), (l, c, part)) in found.iter().zip(expected) {
        assert_eq!(
            (*line, *column),
            (Some(*l), Some(*c)),
            "{message} ({found:#?})"
        );
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
}

#[test]
fn two_unknown_features_and_a_wrong_cooldown_are_all_listed() {
    let text = "id = \"r\"\nversion = 1\ndescription = \"d\"\ntriggers = [\"TransactionEvent\"]\n\
                condition = '''\nfeatures.spend_24hh > 3.0\n  && features.debit_spend_30d > 1.0\n'''\n\
                [alert]\nkind = \"FRAUD\"\nseverity = \"LOW\"\ncooldown = \"soon\"\n";
    assert_places(
        &places(text, Format::Toml),
        &[
            (6, 1, "condition: unknown feature `spend_24hh`"),
            (7, 6, "condition: unknown feature `debit_spend_30d`"),
            (12, 1, "alert.cooldown: "),
        ],
    );
}

#[test]
fn values_not_allowed_and_compile_errors_are_listed_together() {
    let text = r#"id = "offer-x"
version = 0
description = "An offer"
triggers = ["TransactionEvent", "NoSuchEvent"]
condition = "features.spend_24h > 10.0 && event.colour == 'RED'"
[offer]
offer_code = "X-1"
product = "CREDIT_CARD"
value = -1.0
channels = ["EMAIL"]
cooldown = "30d"
propensity = { intercept = -1.0, weights = { spend_24h = 0.01, no_such_feature = 1.0 } }
"#;
    assert_places(
        &places(text, Format::Toml),
        &[
            (2, 1, "version must be at least 1"),
            (4, 1, "unknown trigger \"NoSuchEvent\""),
            (5, 43, "condition: event `TransactionEvent`"),
            (9, 1, "offer.value must be a positive number"),
            (12, 64, "unknown feature `no_such_feature`"),
        ],
    );
}

#[test]
fn yaml_fields_missing_or_mistyped_are_all_listed_with_the_condition() {
    let text = "id: a\nversion: 1\ndescription: d\ntriggers: [TransactionEvent]\n\
                condition: features.nope > 1.0\nalert:\n  kind: THEFT\n  cooldown: 1h\n";
    assert_places(
        &places(text, Format::Yaml),
        &[
            (5, 12, "condition: unknown feature `nope`"),
            (6, 1, "missing field `alert.severity`"),
            (7, 3, "alert.kind: unknown variant `THEFT`"),
        ],
    );
}

#[test]
fn a_syntax_error_is_one_problem_where_the_parser_stopped() {
    let found = places("id = \"r\"\nversion = = 1\n", Format::Toml);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, Some(2), "{found:?}");
}

#[test]
fn a_good_document_has_no_problem() {
    let (_, text) = crate::rules::load::STARTER[0];
    let findings = find(text, Format::Toml, &features());
    assert_eq!(findings.problems, vec![]);
    assert!(findings.into_result().is_ok());
}

#[test]
fn fields_are_located_by_their_key() {
    let toml = "id = 'x'\n[offer]\ncooldown = '1d'\npropensity = { intercept = 1.0, weights = { a = 1.0 } }\n";
    assert_eq!(locate(toml, "id"), Some((1, 1)));
    assert_eq!(locate(toml, "offer"), Some((2, 1)));
    assert_eq!(locate(toml, "offer.cooldown"), Some((3, 1)));
    assert_eq!(locate(toml, "offer.propensity.weights.a"), Some((4, 45)));
    assert_eq!(locate(toml, "alert.cooldown"), None);
    let yaml = "id: x\noffer:\n  cooldown: 1d\n  propensity: {intercept: 1.0}\n";
    assert_eq!(locate(yaml, "offer.cooldown"), Some((3, 3)));
    assert_eq!(locate(yaml, "offer.propensity.intercept"), Some((4, 16)));
}
