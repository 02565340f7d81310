//! The customer page: one customer's current features (with their descriptions and windows), profile
//! and consent, contact history and last decisions, read from the state store and the audit
//! topic. The customer id travels only in a POST body: never in a URL or a log line.

use super::auth::User;
use super::pages::{esc, layout, time};
use crate::customer::CustomerState;
use crate::features::spec::Spec;
use crate::output::DecisionAudit;
use std::fmt::Write;

/// Everything shown about one customer.
pub struct Lookup<'a> {
    /// The id asked for.
    pub customer_id: &'a str,
    /// The public feature hash (`HGETALL nbo:features:{key}`).
    pub features: Vec<(String, String)>,
    /// The feature definitions, for descriptions and windows.
    pub specs: &'a [Spec],
    /// The stored state, if any.
    pub state: Option<CustomerState>,
    /// The customer's latest decisions the console has read from the audit topic.
    pub decisions: Vec<DecisionAudit>,
}

/// The lookup form, with an error line after a failed lookup.
pub fn form(user: &User, error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    let body = format!(
        "{error}<form method=\"post\" action=\"/customer\" class=\"filters\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Customer id <input name=\"customer_id\" id=\"customer_id\" required maxlength=\"128\" autocomplete=\"off\"></label>\
         <button id=\"lookup\">Look up</button></form>\
         <p class=\"muted\">Every lookup is recorded on the audit topic with your name.</p>",
        esc(&user.csrf)
    );
    layout("Customer", user, "/customer", &body)
}

/// The customer page.
pub fn page(user: &User, l: &Lookup<'_>) -> String {
    let mut body = form_inline(user);
    let _ = write!(
        body,
        "<h2>Customer <span id=\"customer\">{}</span></h2>",
        esc(l.customer_id)
    );
    if l.features.is_empty() && l.state.is_none() {
        body.push_str("<p>No state for this customer: never seen, expired, or erased.</p>");
    }
    body.push_str(
        "<h2>Features</h2><table id=\"features\"><thead><tr><th>Feature</th><th>Value</th>\
         <th>Window</th><th>What it is</th></tr></thead><tbody>",
    );
    for (name, value) in &l.features {
        let spec = l.specs.iter().find(|s| &s.name == name);
        let shown = if name == "_updated_at" {
            value
                .parse()
                .map_or(value.clone(), |ms: i64| format!("{} UTC", time(ms)))
        } else {
            number(value)
        };
        let _ = write!(
            body,
            "<tr data-feature=\"{n}\"><td>{n}</td><td class=\"value\" data-raw=\"{raw}\">{v}</td><td>{w}</td><td>{d}</td></tr>",
            n = esc(name),
            raw = esc(value),
            v = esc(&shown),
            w = spec.map_or(String::new(), |s| window(s.window)),
            d = esc(spec.map_or("", |s| s.description.as_str())),
        );
    }
    body.push_str("</tbody></table>");
    if let Some(state) = &l.state {
        body.push_str("<h2>Profile and consent</h2>");
        match &state.profile {
            Some(p) => {
                let channels: Vec<&str> = p.contact_channels.iter().map(|c| c.as_str()).collect();
                let _ = write!(
                    body,
                    "<dl class=\"facts\"><dt>Segment</dt><dd>{}</dd><dt>Lifecycle</dt><dd>{}</dd>\
                     <dt>Credit score</dt><dd>{}</dd><dt>Marketing consent</dt><dd>{}</dd>\
                     <dt>Profiling consent</dt><dd>{}</dd><dt>Channels</dt><dd>{}</dd>\
                     <dt>Profile updated</dt><dd>{}</dd></dl>",
                    esc(&p.segment),
                    p.lifecycle_stage.as_str(),
                    p.credit_score.map_or("unknown".into(), |s| s.to_string()),
                    if p.consent_marketing { "yes" } else { "no" },
                    if p.consent_profiling { "yes" } else { "no" },
                    esc(&channels.join(", ")),
                    time(p.updated_at)
                );
            }
            None => body.push_str("<p>No profile received (no marketing offer without one).</p>"),
        }
        body.push_str(
            "<h2>Contact history</h2><table id=\"contacts\"><thead><tr><th>At (UTC)</th><th>What</th>\
             <th>Rule</th><th>Response</th></tr></thead><tbody>",
        );
        let mut contacts: Vec<(i64, String, &str, String)> = state
            .history
            .offers()
            .iter()
            .map(|o| {
                let response = o.response.map_or("none yet".into(), |r| {
                    format!(
                        "{} {}",
                        r.as_str(),
                        o.responded_at.map(time).unwrap_or_default()
                    )
                });
                (
                    o.at,
                    format!("offer {} ({})", o.offer_id, o.product.as_str()),
                    o.rule_id.as_str(),
                    response,
                )
            })
            .chain(
                state
                    .history
                    .alerts()
                    .iter()
                    .map(|a| (a.at, "alert".to_string(), a.rule_id.as_str(), String::new())),
            )
            .collect();
        contacts.sort_by_key(|c| std::cmp::Reverse(c.0));
        for (at, what, rule, response) in contacts {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time(at),
                esc(&what),
                esc(rule),
                esc(&response)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(
        "<h2>Last decisions</h2><table id=\"decisions\"><thead><tr><th>At (UTC)</th><th>Rule</th>\
         <th>Outcome</th><th>Reasons</th><th>Feature values used</th></tr></thead><tbody>",
    );
    if l.decisions.is_empty() {
        body.push_str("<tr><td colspan=\"5\">None in the audit the console holds.</td></tr>");
    }
    for d in &l.decisions {
        let features: Vec<String> = d
            .features
            .0
            .iter()
            .map(|(k, v)| format!("{k} = {}", number(&v.to_string())))
            .collect();
        let reasons: Vec<&str> = d.reasons.iter().map(|r| &**r).collect();
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{} v{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(d.decided_at),
            esc(&d.rule_id),
            d.rule_version,
            d.outcome.as_str(),
            esc(&reasons.join("; ")),
            esc(&features.join(", "))
        );
    }
    body.push_str("</tbody></table>");
    layout("Customer", user, "/customer", &body)
}

/// A feature value as people read it: whole numbers with thousands separators, others to two
/// decimals (`10847.009999999998` → `10,847.01`); text as it is.
pub fn number(text: &str) -> String {
    let Ok(v) = text.parse::<f64>() else {
        return text.to_string();
    };
    if !v.is_finite() {
        return text.to_string();
    }
    let fixed = if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    };
    let (sign, digits) = fixed
        .strip_prefix('-')
        .map_or(("", fixed.as_str()), |d| ("-", d));
    let (int, frac) = digits
        .split_once('.')
        .map_or((digits, None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A window as its definition writes it: `90d`, `24h`, `10m`.
pub fn window(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        _ if s.is_multiple_of(86_400) && s >= 2 * 86_400 => format!("{}d", s / 86_400),
        _ if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

fn form_inline(user: &User) -> String {
    format!(
        "<form method=\"post\" action=\"/customer\" class=\"filters\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label>Customer id <input name=\"customer_id\" required maxlength=\"128\" autocomplete=\"off\"></label>\
         <button>Look up</button></form>",
        esc(&user.csrf)
    )
}

#[cfg(test)]
mod tests {
    use super::{number, window};
    use std::time::Duration;

    #[test]
    fn windows_read_as_written() {
        assert_eq!(window(Duration::from_secs(90 * 86_400)), "90d");
        assert_eq!(window(Duration::from_secs(86_400)), "24h");
        assert_eq!(window(Duration::from_secs(600)), "10m");
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(number("10847.009999999998"), "10,847.01");
        assert_eq!(number("1500"), "1,500");
        assert_eq!(number("-1234567.5"), "-1,234,567.50");
        assert_eq!(number("3"), "3");
        assert_eq!(number("DE"), "DE");
    }
}
