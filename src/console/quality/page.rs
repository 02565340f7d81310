//! The rules page's quality table: each alert rule version in force over the last day, 7 days
//! and 30 days, from [`AlertQuality`].

use super::{AlertQuality, Counts};
use crate::console::pages::esc;
use crate::rules::book::Slot;
use crate::rules::document::RuleDocument;
use std::fmt::Write;

/// The periods, by name and length.
const PERIODS: [(&str, &str, i64); 3] = [
    ("1d", "last day", 86_400_000),
    ("7d", "7 days", 7 * 86_400_000),
    ("30d", "30 days", 30 * 86_400_000),
];

/// Amounts prevented, in major units by currency ("–" when none).
fn prevented(c: &Counts) -> String {
    if c.prevented.is_empty() {
        return "–".into();
    }
    c.prevented
        .iter()
        .map(|(currency, minor)| format!("{:.2} {}", *minor as f64 / 100.0, esc(currency)))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// One period's cells.
fn cells(c: &Counts) -> String {
    let precision = c.precision().map_or_else(
        || "–".to_string(),
        |p| {
            format!(
                "{:.1}%<br><span class=\"muted\">95% {:.1}–{:.1}%</span>",
                p.value * 100.0,
                p.low * 100.0,
                p.high * 100.0
            )
        },
    );
    let to_close = c
        .median_to_close_hours()
        .map_or_else(|| "–".to_string(), |h| format!("≤ {h} h"));
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"precision\">{precision}</td><td>{}</td><td>{to_close}</td>",
        c.alerts,
        c.closed,
        c.confirmed,
        c.false_positives,
        prevented(c)
    )
}

/// The table, for the alert rules among `docs` (champions: a challenger raises no alert).
pub fn table(docs: &[(Slot, RuleDocument)], quality: &AlertQuality, now: i64) -> String {
    let mut out = String::from(
        "<h2 id=\"quality\">Alert rules: how their alerts turned out</h2>\
         <p class=\"muted\">From the investigators' closures (bank.alert-outcomes.v1). Precision is \
         confirmed ÷ closed (duplicates left out), with its 95% Wilson interval; time to close is \
         the bound half the cases closed within. A challenger raises no alert: compare it with \
         <code>backtest --labels</code>, or promote it and read its own row.</p>\
         <table class=\"quality\"><thead><tr><th>Rule</th><th>Period</th><th>alerts</th><th>closed</th>\
         <th>confirmed</th><th>false positives</th><th>precision</th><th>prevented</th>\
         <th>time to close</th></tr></thead><tbody>",
    );
    for (_, d) in docs
        .iter()
        .filter(|(slot, d)| *slot == Slot::Champion && !d.is_offer())
    {
        for (i, (key, name, length)) in PERIODS.iter().enumerate() {
            let c = quality.since(&d.id, d.version, now - length);
            let rule = if i == 0 {
                format!(
                    "<td rowspan=\"{}\"><strong>{}</strong> v{}</td>",
                    PERIODS.len(),
                    esc(&d.id),
                    d.version
                )
            } else {
                String::new()
            };
            let _ = write!(
                out,
                "<tr id=\"quality-{}-v{}-{key}\">{rule}<td>{name}</td>{}</tr>",
                esc(&d.id),
                d.version,
                cells(&c)
            );
        }
    }
    out.push_str("</tbody></table>");
    let unattributed = quality.unattributed();
    if unattributed > 0 {
        let _ = write!(
            out,
            "<p class=\"muted\">{unattributed} closures of alerts the console does not know \
             (raised before what it read, or past console.keep_alert_ids).</p>"
        );
    }
    out
}
