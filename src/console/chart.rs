//! Charts drawn on the server as inline SVG: nothing to load, nothing from a CDN, readable
//! without JavaScript.

use super::facets::Series;
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

/// Steps between time-axis ticks, minutes: the smallest giving at most [`MAX_TICKS`] ticks.
const STEPS: &[i64] = &[1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];
/// Most ticks on the time axis.
const MAX_TICKS: i64 = 8;

/// The tick step for a window of `span` minutes.
fn tick_step(span: i64) -> i64 {
    STEPS
        .iter()
        .copied()
        .find(|step| span / step <= MAX_TICKS)
        .unwrap_or(1440)
}

/// `HH:MM` of minute index `minute` (UTC).
fn clock(minute: i64) -> String {
    let t = super::pages::time(minute * 60_000);
    t.get(11..16).unwrap_or(&t).to_string()
}

/// Decisions per minute by outcome as stacked bars, with a time axis (UTC) ending at `now` and
/// covering at least the last hour, at most `keep` minutes (what the console keeps).
pub fn decisions(series: &Series, now: i64, keep: usize) -> String {
    const LEFT: f64 = 48.0;
    const W: f64 = 960.0 - LEFT;
    const H: f64 = 180.0;
    let last = now.div_euclid(60_000);
    let oldest = last - keep.max(60) as i64 + 1;
    let first = series
        .first()
        .map_or(last - 59, |b| b.0.min(last - 59))
        .max(oldest);
    let span = last - first + 1;
    let stacks: Vec<(i64, Vec<u64>)> = series
        .iter()
        .filter(|(minute, _)| (first..=last).contains(minute))
        .map(|(minute, counts)| {
            let per_series = SERIES
                .iter()
                .map(|(_, _, outs)| outs.iter().map(|o| counts[*o as usize]).sum())
                .collect();
            (*minute, per_series)
        })
        .collect();
    let peak = stacks
        .iter()
        .map(|(_, s)| s.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let x_of = |minute: i64| LEFT + (minute - first) as f64 / span as f64 * W;
    let bar = (W / span as f64).max(1.0);
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"Decisions per minute by outcome, {} to {} UTC\">",
        LEFT + W,
        H + 64.0,
        super::pages::time(first * 60_000),
        super::pages::time(now)
    );
    // Room above the plot for the peak's label.
    svg.push_str("<g transform=\"translate(0,12)\">");
    // The value axis: 0, half and the peak, with grid lines.
    for (value, y) in [(0, H), (peak / 2, H / 2.0), (peak, 0.0)] {
        if value == 0 && y < H {
            continue;
        }
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{}\" y=\"{:.1}\" class=\"axis\" text-anchor=\"end\">{value}</text>",
            LEFT + W,
            LEFT - 4.0,
            y + 4.0
        );
    }
    for (minute, series) in &stacks {
        let x = x_of(*minute);
        let mut y = H;
        for (value, (label, colour, _)) in series.iter().zip(SERIES) {
            if *value == 0 {
                continue;
            }
            let h = *value as f64 / peak as f64 * H;
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"{colour}\"><title>{} {label}: {value}</title></rect>",
                clock(*minute)
            );
        }
    }
    if stacks.is_empty() {
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"middle\">No decisions in this window</text>",
            LEFT + W / 2.0,
            H / 2.0
        );
    }
    // The time axis: a tick and an HH:MM label every `step` minutes on the clock.
    let step = tick_step(span);
    let mut tick = first + (step - first.rem_euclid(step)) % step;
    while tick <= last {
        let x = x_of(tick);
        let _ = write!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{H}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#718096\"/>\
             <text x=\"{x:.1}\" y=\"{}\" class=\"axis tick\" text-anchor=\"middle\">{}</text>",
            H + 5.0,
            H + 17.0,
            clock(tick)
        );
        tick += step;
    }
    let _ = write!(
        svg,
        "<line x1=\"{LEFT}\" y1=\"{H}\" x2=\"{}\" y2=\"{H}\" stroke=\"#718096\"/>\
         <text x=\"{}\" y=\"{}\" class=\"axis\" text-anchor=\"end\">UTC, per minute</text>",
        LEFT + W,
        LEFT + W - 4.0,
        H + 45.0
    );
    let mut x = LEFT;
    for (label, colour, _) in SERIES {
        let _ = write!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"{}\" class=\"axis\">{label}</text>",
            H + 36.0,
            x + 14.0,
            H + 45.0
        );
        x += 120.0;
    }
    svg.push_str("</g></svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::store::OUTCOMES;

    #[test]
    fn ticks_are_on_the_clock_and_few() {
        assert_eq!(tick_step(60), 10);
        assert_eq!(tick_step(360), 60);
        assert_eq!(tick_step(5), 1);
        let now = (10 * 60 + 59) * 60_000; // 10:59 on the first day
        let svg = decisions(&vec![(10 * 60 + 30, [0; OUTCOMES])], now, 360);
        for label in ["10:00", "10:10", "10:50"] {
            assert!(
                svg.contains(&format!(">{label}</text>")),
                "{label} in {svg}"
            );
        }
        assert!(!svg.contains(">09:50<"), "the window starts at 10:00");
    }

    #[test]
    fn bars_stack_per_minute_and_say_what_they_count() {
        let mut counts = [0; OUTCOMES];
        counts[O::Offered as usize] = 3;
        counts[O::SuppressedCooldown as usize] = 2;
        counts[O::SuppressedRisk as usize] = 1;
        let now = 120 * 60_000;
        let svg = decisions(&vec![(119, counts)], now, 360);
        assert!(svg.contains("<title>01:59 offered: 3</title>"));
        assert!(svg.contains("<title>01:59 suppressed: 3</title>"));
        assert!(svg.contains(">6</text>"), "the peak on the value axis");
        let empty = decisions(&Vec::new(), now, 360);
        assert!(empty.contains("No decisions in this window"));
    }
}
