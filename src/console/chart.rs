//! Charts drawn on the server as inline SVG: nothing to load, nothing from a CDN, readable
//! without JavaScript.

use super::store::Minutes;
use crate::event::DecisionOutcome as O;
use std::fmt::Write;

/// The series of the decisions chart: a label, a colour and the outcomes it adds up.
const SERIES: &[(&str, &str, &[O])] = &[
    ("offered", "#2b6cb0", &[O::Offered]),
    ("alerted", "#c53030", &[O::Alerted]),
    (
        "suppressed",
        "#a0aec0",
        &[
            O::SuppressedNoConsent,
            O::SuppressedContactPolicy,
            O::SuppressedCooldown,
            O::SuppressedRisk,
        ],
    ),
    ("control group", "#d69e2e", &[O::ControlGroup]),
    ("shadow", "#805ad5", &[O::Shadow]),
];

/// Decisions per minute by outcome, stacked bars over the minutes the ring holds, ending `now`.
pub fn decisions(minutes: &Minutes, now: i64) -> String {
    const W: f64 = 960.0;
    const H: f64 = 180.0;
    let buckets: Vec<_> = minutes.buckets().collect();
    let last = now.div_euclid(60_000);
    let first = buckets.first().map_or(last - 59, |b| b.0.min(last - 59));
    let span = (last - first + 1).max(1) as f64;
    let stacks: Vec<(i64, Vec<u64>)> = buckets
        .iter()
        .map(|(minute, counts)| {
            let per_series = SERIES
                .iter()
                .map(|(_, _, outs)| outs.iter().map(|o| u64::from(counts[*o as usize])).sum())
                .collect();
            (*minute, per_series)
        })
        .collect();
    let peak = stacks
        .iter()
        .map(|(_, s)| s.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar = (W / span).max(1.0);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {}\" role=\"img\" aria-label=\"Decisions per minute by outcome\">",
        H + 24.0
    );
    for (minute, series) in &stacks {
        let x = (minute - first) as f64 / span * W;
        let mut y = H;
        for (value, (label, colour, _)) in series.iter().zip(SERIES) {
            if *value == 0 {
                continue;
            }
            let h = *value as f64 / peak * H;
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{label}: {value}</title></rect>"
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"12\" class=\"axis\">{peak}/min</text><line x1=\"0\" y1=\"{H}\" x2=\"{W}\" y2=\"{H}\" stroke=\"#718096\"/>"
    );
    let mut x = 0.0;
    for (label, colour, _) in SERIES {
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\" class=\"axis\">{label}</text>",
            H + 10.0,
            x + 14.0,
            H + 19.0
        );
        x += 130.0;
    }
    svg.push_str("</svg>");
    svg
}
