//! The console's pages, rendered on the server as plain HTML (see the README's "Console" for
//! why there is no front-end build). Every value from a record or a rule is escaped.

use super::auth::User;
use super::instances::channels::View as ChannelsView;
use super::instances::window::Estimate;
use super::instances::{Instance, State};
use super::lag::Lag;
use super::store::{Filter, Row, Store};
use crate::config::console::Role;
use crate::event::{ContactChannel, ProductCategory, Severity};
use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A customer id as a user of `role` may see it: whole for analysts, the last four characters
/// for viewers (who may not look customers up).
pub fn customer(id: &str, role: Role) -> String {
    if role >= Role::Analyst {
        return id.to_string();
    }
    let tail: String = id
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("…{tail}")
}

/// A time (ms since epoch) as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn time(ms: i64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64),
    )
    .to_string()
    .replace('T', " ")
    .trim_end_matches('Z')
    .to_string()
}

/// The page frame: navigation, the user and their role, sign-out.
pub fn layout(title: &str, user: &User, active: &str, body: &str) -> String {
    let mut nav = String::new();
    let mut links = vec![
        ("/live", "Live"),
        ("/rules", "Rules"),
        ("/health", "Health"),
    ];
    if user.can(Role::Analyst) {
        links.push(("/customer", "Customer"));
    }
    for (href, label) in links {
        let class = if href == active { " class=\"on\"" } else { "" };
        let _ = write!(nav, "<a href=\"{href}\"{class}>{label}</a>");
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"csrf\" content=\"{csrf}\"><title>{title} · nbo-stream</title>\
         <link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body>\
         <header><strong>nbo-stream</strong><nav>{nav}</nav><span class=\"who\">{name} ({role})\
         <form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button>Sign out</button></form></span></header><main><h1>{title}</h1>{body}</main></body></html>",
        csrf = esc(&user.csrf),
        title = esc(title),
        name = esc(&user.name),
        role = user.role.as_str(),
    )
}

/// The sign-in page, with an error line after a failed attempt.
pub fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in · nbo-stream</title>\
         <link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body><main class=\"login\">\
         <h1>nbo-stream console</h1>{error}<form method=\"post\" action=\"/login\">\
         <label>Name <input name=\"name\" autocomplete=\"username\" required></label>\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button>Sign in</button></form></main></body></html>"
    )
}

fn select(name: &str, label: &str, options: &[&str], chosen: &str) -> String {
    let mut out = format!("<label>{label} <select name=\"{name}\"><option value=\"\">any</option>");
    for o in options {
        let sel = if *o == chosen { " selected" } else { "" };
        let _ = write!(out, "<option{sel}>{}</option>", esc(o));
    }
    out.push_str("</select></label>");
    out
}

/// One live-view table row. For users who may look customers up, the customer id is a button
/// that looks the customer up (a POST with the user's CSRF token: ids never go in a URL).
pub fn row_html(row: &Row, user: &User) -> String {
    let who = if user.can(Role::Analyst) {
        format!(
            "<form method=\"post\" action=\"/customer\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"customer_id\" value=\"{id}\"><button class=\"link\">{id}</button></form>",
            esc(&user.csrf),
            id = esc(&row.customer_id)
        )
    } else {
        esc(&customer(&row.customer_id, user.role))
    };
    let what = match row.kind {
        "offer" => format!(
            "{} · {} · {}",
            esc(row.product.unwrap_or("")),
            esc(row.channel.unwrap_or("")),
            esc(row.offer_code.as_deref().unwrap_or(""))
        ),
        _ => format!(
            "<span class=\"sev {sev}\">{sev}</span> {}",
            esc(row.alert_kind.unwrap_or("")),
            sev = esc(row.severity.unwrap_or(""))
        ),
    };
    format!(
        "<tr data-seq=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{} v{}</td><td>{}</td><td>{}</td></tr>",
        row.seq,
        time(row.at),
        row.kind,
        who,
        esc(&row.rule_id),
        row.rule_version,
        what,
        esc(&row.reasons.join("; "))
    )
}

/// The live view: filters, the chart, the latest offers and alerts (pushed on by `live.js`).
pub fn live(
    store: &Store,
    filter: &Filter,
    rules: &[String],
    chart: &str,
    inbound: &str,
    user: &User,
) -> String {
    let products: Vec<&str> = ProductCategory::symbols().to_vec();
    let channels: Vec<&str> = ContactChannel::symbols().to_vec();
    let severities: Vec<&str> = Severity::symbols().to_vec();
    let rule_ids: Vec<&str> = rules.iter().map(String::as_str).collect();
    let mut body = String::from("<form class=\"filters\" method=\"get\" action=\"/live\">");
    body.push_str(&select("rule", "Rule", &rule_ids, &filter.rule));
    body.push_str(&select(
        "severity",
        "Severity",
        &severities,
        &filter.severity,
    ));
    body.push_str(&select("product", "Product", &products, &filter.product));
    body.push_str(&select("channel", "Channel", &channels, &filter.channel));
    body.push_str("<button>Filter</button></form>");
    let _ = write!(
        body,
        "<h2>Decisions per minute{}</h2><div id=\"chart\">{chart}</div>",
        if filter.channel.is_empty() {
            String::new()
        } else {
            format!(
                " <span class=\"muted\">(offers sent through {}: a suppressed decision has no channel)</span>",
                esc(&filter.channel)
            )
        }
    );
    if !inbound.is_empty() {
        let _ = write!(
            body,
            "<h2>Inbound decisions by channel</h2><div id=\"channels\">{inbound}</div>"
        );
    }
    let _ = write!(
        body,
        "<h2>Latest offers and alerts <span id=\"status\" class=\"muted\">connecting…</span></h2>\
         <table id=\"live\"><thead><tr><th>At (UTC)</th><th>Kind</th><th>Customer</th><th>Rule</th>\
         <th>What</th><th>Reasons</th></tr></thead><tbody>"
    );
    for row in store.rows(filter, 200) {
        body.push_str(&row_html(&row, user));
    }
    body.push_str("</tbody></table><script src=\"/assets/live.js\"></script>");
    layout("Live", user, "/live", &body)
}

/// The API instances' answers by channel over the last window: answers per second, the share
/// offered, each suppression per second and the p99 latency (`live.js` redraws it).
pub fn channels(view: &ChannelsView, now: i64) -> String {
    const OUTCOMES: [(&str, &str); 4] = [
        ("NO_CONSENT", "No consent"),
        ("CONTACT_POLICY", "Contact policy"),
        ("CONTROL_GROUP", "Control group"),
        ("NO_ELIGIBLE_RULE", "No eligible rule"),
    ];
    if view.at == 0 {
        return "<p class=\"muted\">Not read yet.</p>".into();
    }
    let mut out = format!(
        "<p class=\"muted\">{} API instance(s), read {} s ago; rates over the last two readings.</p>",
        view.instances,
        ((now - view.at).max(0) / 1000)
    );
    for (url, why) in &view.errors {
        let _ = write!(
            out,
            "<p class=\"error\">{} could not be read: {}</p>",
            esc(url),
            esc(why)
        );
    }
    out.push_str(
        "<table id=\"channel-table\"><thead><tr><th>Channel</th><th>Answers/s</th><th>Offered</th>",
    );
    for (_, title) in OUTCOMES {
        let _ = write!(out, "<th>{title} /s</th>");
    }
    out.push_str("<th>p99</th></tr></thead><tbody>");
    if view.channels.is_empty() {
        out.push_str("<tr><td colspan=\"8\" class=\"muted\">No answers in the window.</td></tr>");
    }
    for c in &view.channels {
        let total = c.total();
        let rate = |outcome: &str| c.per_second.get(outcome).copied().unwrap_or(0.0);
        let offered = if total > 0.0 {
            format!("{:.0}%", 100.0 * rate("OFFERED") / total)
        } else {
            "-".into()
        };
        let _ = write!(
            out,
            "<tr data-channel=\"{0}\"><td>{0}</td><td>{1:.1}</td><td>{offered}</td>",
            esc(&c.name),
            total
        );
        for (outcome, _) in OUTCOMES {
            let _ = write!(out, "<td>{:.1}</td>", rate(outcome));
        }
        let p99 = match c.p99 {
            Some(Estimate::Within(s)) => latency(s),
            Some(Estimate::Above(s)) => format!("over {}", latency(s)),
            None => "-".into(),
        };
        let _ = write!(out, "<td>{p99}</td></tr>");
    }
    out.push_str("</tbody></table>");
    out
}

/// The consumer lag of the instances' group by input topic.
fn lag_section(lag: Option<&Lag>, now: i64) -> String {
    let Some(lag) = lag else {
        return "<h2>Consumer lag</h2><p>Not read yet.</p>".into();
    };
    let mut out = format!(
        "<h2>Consumer lag</h2><p>Group <code>{}</code>, read {} s ago: \
         <strong id=\"lag-total\">{}</strong> records still to read.</p>",
        esc(&lag.group),
        ((now - lag.at).max(0) / 1000),
        lag.total()
    );
    if let Some(error) = &lag.error {
        let _ = write!(
            out,
            "<p class=\"error\">The latest reading failed: {}</p>",
            esc(error)
        );
    }
    out.push_str(
        "<table id=\"lag\"><thead><tr><th>Topic</th><th>Partitions</th><th>Committed on</th>\
         <th>Lag (records)</th></tr></thead><tbody>",
    );
    for t in &lag.topics {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&t.topic),
            t.partitions,
            t.committed,
            t.lag
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// A latency in seconds as milliseconds (or seconds from 10 s on).
fn latency(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{:.1} ms", seconds * 1000.0)
    } else {
        format!("{seconds:.1} s")
    }
}

/// Each `run` instance's readiness, processing p99 and rate, or how to list the instances.
fn instances_section(instances: &[Instance], now: i64) -> String {
    let mut out = String::from("<h2>Instances</h2>");
    if instances.is_empty() {
        out.push_str(
            "<p id=\"no-instances\">No instances listed. Set <code>console.instances</code> to the \
             base URL of each <code>run</code> instance's telemetry endpoint (its \
             <code>telemetry.listen</code>), such as <code>[\"http://10.0.0.5:9464\"]</code>, \
             to see here whether each is ready and its processing latency.</p>",
        );
        return out;
    }
    out.push_str(
        "<table id=\"instances\"><thead><tr><th>Instance</th><th>State</th>\
         <th>Processing p99 (since the previous reading)</th><th>Events/s</th><th>Read</th>\
         </tr></thead><tbody>",
    );
    for i in instances {
        let Some(r) = &i.latest else {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"state\">not read yet</td><td class=\"p99\">–</td>\
                 <td class=\"rate\">–</td><td class=\"read\">–</td></tr>",
                esc(&i.url)
            );
            continue;
        };
        let mut state = match &r.state {
            State::Ready => "ready".to_string(),
            State::NotReady(status) => format!(
                "<span class=\"error\">not ready</span> <span class=\"muted\">({})</span>",
                esc(status)
            ),
            State::Unreachable(why) => format!(
                "<span class=\"error\">unreachable</span> <span class=\"muted\">{}</span>",
                esc(why)
            ),
        };
        if let Some(why) = &r.metrics_error {
            let _ = write!(state, "<br><span class=\"muted\">{}</span>", esc(why));
        }
        let p99 = match r.p99 {
            Some(Estimate::Within(s)) => latency(s),
            Some(Estimate::Above(s)) => format!("over {}", latency(s)),
            None => "–".into(),
        };
        let rate = r
            .per_second
            .map_or_else(|| "–".to_string(), |n| format!("{n:.1}"));
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"state\">{state}</td><td class=\"p99\">{p99}</td>\
             <td class=\"rate\">{rate}</td><td class=\"read\">{} s ago</td></tr>",
            esc(&i.url),
            (now - r.at).max(0) / 1000
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// Throughput, the instances, consumer lag, dead letters by reason with the latest few, ruleset
/// versions, a Grafana link.
pub fn health(
    store: &Store,
    lag: Option<&Lag>,
    instances: &[Instance],
    book_version: i64,
    grafana: Option<&str>,
    user: &User,
    now: i64,
) -> String {
    let last5 = store.chart().total_since(now - 5 * 60_000);
    let per_minute = last5.iter().sum::<u64>() as f64 / 5.0;
    let event_lag = match store.event_time_lag().since(now - 5 * 60_000) {
        Some((mean, max)) => format!(
            "{} mean, {} at most",
            crate::rules::history::short(std::time::Duration::from_millis(mean.max(0) as u64)),
            crate::rules::history::short(std::time::Duration::from_millis(max.max(0) as u64))
        ),
        None => "–".into(),
    };
    let mut body = format!(
        "<dl class=\"facts\"><dt>Decisions per minute (last 5 minutes, by when they were made)</dt><dd id=\"per-minute\">{per_minute:.1}</dd>\
         <dt>Event-time lag (last 5 minutes: decision made − event time)</dt><dd id=\"event-time-lag\">{event_lag}</dd>\
         <dt>Records read by this console</dt><dd>{}</dd>\
         <dt>Offers and alerts held</dt><dd>{}</dd>\
         <dt>Rule set on the rules topic</dt><dd>version {book_version}</dd>\
         <dt>Rule set versions in the audit (last 10 minutes)</dt><dd id=\"versions\">{}</dd></dl>",
        store.records(),
        store.row_count(),
        store
            .versions()
            .iter()
            .map(|(v, at)| format!("{v} (last {})", time(*at)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    body.push_str(&instances_section(instances, now));
    body.push_str(&lag_section(lag, now));
    let _ = write!(
        body,
        "<p>Responses to offers older than the console remembers (not counted towards a rule): \
         <span id=\"unattributed\">{}</span></p>",
        store.unattributed_responses()
    );
    if let Some(url) = grafana {
        let _ = write!(
            body,
            "<p><a href=\"{}\">Grafana dashboard</a> for lag, latency and resources.</p>",
            esc(url)
        );
    }
    body.push_str("<h2>Dead letters by reason</h2>");
    if store.dead_letters().is_empty() {
        body.push_str("<p>None since the console started.</p>");
    }
    for (reason, r) in store.dead_letters() {
        let _ = write!(
            body,
            "<h3 class=\"reason\">{} <span class=\"muted\">{} records</span></h3><table><thead><tr><th>At (UTC)</th>\
             <th>Source</th><th>Error</th></tr></thead><tbody>",
            esc(reason),
            r.count
        );
        for d in r.latest.iter().rev() {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{} [{}] @{}</td><td>{}</td></tr>",
                time(d.at),
                esc(&d.source_topic),
                d.source_partition,
                d.source_offset,
                esc(&d.error)
            );
        }
        body.push_str("</tbody></table>");
    }
    layout("Health", user, "/health", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_viewers_see_a_masked_customer() {
        assert_eq!(esc("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
        assert_eq!(customer("C0012345", Role::Viewer), "…2345");
        assert_eq!(customer("C0012345", Role::Analyst), "C0012345");
        assert_eq!(time(0), "1970-01-01 00:00:00");
    }

    #[test]
    fn instances_say_how_to_list_them_and_escape_what_an_instance_said() {
        let none = instances_section(&[], 0);
        assert!(none.contains("<code>console.instances</code>"), "{none}");
        let reading = |state, p99| super::super::instances::Reading {
            at: 1_000,
            state,
            p99,
            per_second: Some(12.0),
            metrics_error: None,
        };
        let listed = [
            Instance {
                url: "http://a:9464".into(),
                latest: Some(reading(State::Ready, Some(Estimate::Within(0.0241)))),
            },
            Instance {
                url: "http://b:9464".into(),
                latest: Some(reading(State::Unreachable("<refused>".into()), None)),
            },
            Instance {
                url: "http://c:9464".into(),
                latest: Some(reading(State::Ready, Some(Estimate::Above(131.072)))),
            },
            Instance {
                url: "http://d:9464".into(),
                latest: None,
            },
        ];
        let page = instances_section(&listed, 4_500);
        assert!(page.contains(
            "<tr><td>http://a:9464</td><td class=\"state\">ready</td><td class=\"p99\">24.1 ms</td>\
             <td class=\"rate\">12.0</td><td class=\"read\">3 s ago</td></tr>"
        ), "{page}");
        assert!(
            page.contains("unreachable</span> <span class=\"muted\">&lt;refused&gt;"),
            "{page}"
        );
        assert!(
            page.contains("<td class=\"p99\">over 131.1 s</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td class=\"state\">not read yet</td>"),
            "{page}"
        );
    }
}
