//! The rules page: every version in force with its counts over the last hour and day. A rule id
//! shows its champion (the version in force) and, beside it, its challenger (a shadow version on
//! trial) with the counts of what it would have decided, so the two compare column by column;
//! publishers promote or drop the challenger from here. Below, the alert rules' quality from
//! their closures ([`super::quality::page`]).

use super::auth::User;
use super::pages::{customer, esc, layout, time};
use super::store::{Minutes, Store, RESPONSES};
use crate::config::console::Role;
use crate::event::{DecisionOutcome, OfferResponseKind};
use crate::rules::book::Slot;
use crate::rules::document::RuleDocument;
use crate::rules::edit::state_name;
use std::fmt::Write;

/// The acceptance cell of an offer rule over a period: accepted responses against the offers
/// made, with clicks and declines beside them; "–" until a response arrives.
fn acceptance_cell(offered: u64, responses: &[u64; RESPONSES]) -> String {
    let n = |r: OfferResponseKind| responses[r as usize];
    let accepted = n(OfferResponseKind::Accepted);
    let answered: u64 = responses.iter().sum();
    let rate = if offered > 0 && answered > 0 {
        format!("{:.1}%", 100.0 * accepted as f64 / offered as f64)
    } else {
        "–".into()
    };
    format!(
        "<td class=\"accepted\">{rate}<br><span class=\"muted\">{accepted} accepted<br>{} clicked<br>{} declined</span></td>",
        n(OfferResponseKind::Clicked),
        n(OfferResponseKind::Declined)
    )
}

/// Counts of one rule version over a period, by what happened; `responses` for offer rules.
fn counts_cells(counts: &[u64], responses: Option<&[u64; RESPONSES]>) -> String {
    let n = |o: DecisionOutcome| counts[o as usize];
    let fired: u64 = DecisionOutcome::ALL
        .iter()
        .filter(|o| {
            !matches!(
                o,
                DecisionOutcome::RuleInstalled
                    | DecisionOutcome::RuleDeleted
                    | DecisionOutcome::RuleRejected
                    | DecisionOutcome::ConsoleLookup
                    | DecisionOutcome::RulePublished
                    | DecisionOutcome::RuleBacktested
            )
        })
        .map(|o| counts[*o as usize])
        .sum();
    let suppressed = [
        ("consent", DecisionOutcome::SuppressedNoConsent),
        ("contact policy", DecisionOutcome::SuppressedContactPolicy),
        ("cooldown", DecisionOutcome::SuppressedCooldown),
        ("risk", DecisionOutcome::SuppressedRisk),
    ]
    .iter()
    .filter(|(_, o)| n(*o) > 0)
    .map(|(label, o)| format!("{label} {}", n(*o)))
    .collect::<Vec<_>>()
    .join(", ");
    let made = n(DecisionOutcome::Offered) + n(DecisionOutcome::Alerted);
    let accepted = match responses {
        Some(r) => acceptance_cell(n(DecisionOutcome::Offered), r),
        None => "<td class=\"muted\">–</td>".into(),
    };
    format!(
        "<td>{fired}</td><td>{made}</td><td>{}</td><td>{}</td>{accepted}",
        if suppressed.is_empty() {
            "0".into()
        } else {
            esc(&suppressed)
        },
        n(DecisionOutcome::ControlGroup),
    )
}

/// A POST form of the lifecycle (`/rules/promote`, `/rules/drop`) for rule `id`, with the
/// comment every change requires.
fn lifecycle_button(user: &User, action: &str, id: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/rules/{action}\" class=\"lifecycle\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"id\" value=\"{}\">\
         <input name=\"comment\" id=\"{action}-comment-{}\" required maxlength=\"2000\" placeholder=\"why\">\
         <button type=\"submit\" id=\"{action}-{}\">{label}</button></form>",
        esc(&user.csrf),
        esc(id),
        esc(id),
        esc(id),
    )
}

/// Every version in force with its counts over the last hour and day.
pub fn rules(
    docs: &[(Slot, RuleDocument)],
    version: i64,
    store: &Store,
    quality: &super::quality::AlertQuality,
    user: &User,
    now: i64,
) -> String {
    let mut body = format!(
        "<p>Rule set version {version} ({} rule versions), as the instances read it from the rules topic. \
         A challenger is a shadow version on trial beside the version in force: it sends nothing, and its \
         counts are what it would have decided under the same consent, contact policy and cooldowns, \
         against a contact history of its own.</p>\
         <table class=\"rules\"><thead><tr><th rowspan=\"2\">Rule</th><th rowspan=\"2\">State</th>\
         <th rowspan=\"2\">What it does</th><th colspan=\"5\">Last hour</th><th colspan=\"5\">Last day</th></tr>\
         <tr><th>fired</th><th>offered / alerted</th><th>suppressed</th><th>control</th><th>acceptance</th>\
         <th>fired</th><th>offered / alerted</th><th>suppressed</th><th>control</th><th>acceptance</th></tr></thead><tbody>",
        docs.len()
    );
    let empty = Minutes::new(1);
    let no_responses = Minutes::<RESPONSES>::new(1);
    for (slot, d) in docs {
        let challenger = *slot == Slot::Challenger;
        let minutes = store.rule(&d.id, d.version, challenger).unwrap_or(&empty);
        let hour = minutes.total_since(now - 3_600_000);
        let day = minutes.total_since(now - 86_400_000);
        let responses = store.responses(&d.id).unwrap_or(&no_responses);
        let (hour_r, day_r) = (
            responses.total_since(now - 3_600_000),
            responses.total_since(now - 86_400_000),
        );
        // Responses arrive for offers that went out: the champion's.
        let offer = d.is_offer() && *slot == Slot::Champion;
        let kind = if d.is_offer() { "offer" } else { "alert" };
        let mut actions = format!(
            "<br><a href=\"/rules/versions?id={0}\" id=\"versions-{0}-v{1}\">versions</a>",
            esc(&d.id),
            d.version
        );
        if user.can(Role::Analyst)
            && (challenger
                || !docs
                    .iter()
                    .any(|(s, o)| *s == Slot::Challenger && o.id == d.id))
        {
            let _ = write!(
                actions,
                "<br><a href=\"/rules/edit?id={}\">edit</a>",
                esc(&d.id)
            );
        }
        if challenger && user.can(Role::Publisher) {
            actions.push_str(&lifecycle_button(
                user,
                "promote",
                &d.id,
                &format!("Promote v{}", d.version),
            ));
            actions.push_str(&lifecycle_button(
                user,
                "drop",
                &d.id,
                &format!("Drop v{}", d.version),
            ));
        }
        let state = if challenger {
            "<span class=\"state shadow\">challenger</span><br><span class=\"muted\">shadow: sends nothing</span>".to_string()
        } else {
            format!("<span class=\"state {0}\">{0}</span>", state_name(d.state))
        };
        let _ = write!(
            body,
            "<tr id=\"rule-{id}-v{version}\" class=\"{slot}\"><td><strong>{id}</strong> v{version}<br><span class=\"muted\">{kind}</span>{actions}</td>\
             <td>{state}</td>\
             <td>{description}<br><span class=\"muted\">on {triggers}</span><br><code>{condition}</code>{would}</td>{hour}{day}</tr>",
            id = esc(&d.id),
            version = d.version,
            slot = slot.as_str(),
            description = esc(&d.description),
            triggers = esc(&d.triggers.join(", ")),
            condition = esc(&d.condition),
            would = if challenger {
                would_have(store, &d.id, d.version, user)
            } else if offer {
                propensity_line(store, &d.id, now) + &uplift_line(store, &d.id)
            } else {
                String::new()
            },
            hour = counts_cells(&hour, offer.then_some(&hour_r)),
            day = counts_cells(&day, offer.then_some(&day_r)),
        );
    }
    body.push_str("</tbody></table>");
    body.push_str(&super::quality::page::table(docs, quality, now));
    if user.can(Role::Analyst) {
        body.push_str("<p><a href=\"/rules/edit\">Write a new rule</a></p>");
    }
    body.push_str(
        "<p><a href=\"/rules/approvals\" id=\"approvals-link\">Changes awaiting approval</a></p>",
    );
    layout("Rules", user, "/rules", &body)
}

/// The propensity behind an offer rule's offers of the last day: their mean, and how many of
/// their decisions explored.
fn propensity_line(store: &Store, id: &str, now: i64) -> String {
    match store.propensity_since(id, now - 86_400_000) {
        Some((n, mean, explored)) => format!(
            "<br><span class=\"muted\" id=\"propensity-{}\">propensity: mean {mean:.3} over the last day's {n} offers, {explored} of them exploring</span>",
            esc(id)
        ),
        None => String::new(),
    }
}

/// What an offer rule caused against its control group: the two groups' conversions within the
/// uplift window, the uplift and lift with their 95% intervals, and the verdict.
fn uplift_line(store: &Store, id: &str) -> String {
    let Some(g) = store.uplift(id) else {
        return String::new();
    };
    let (t, c) = (g.treated, g.control);
    let measured = g.uplift().map_or_else(
        || "not measured until both groups have customers".to_string(),
        |u| u.to_string(),
    );
    format!(
        "<br><span class=\"muted\" id=\"uplift-{}\">uplift against the control group: \
         treated {}/{} converted, control {}/{}: {}</span>",
        esc(id),
        t.converted,
        t.customers,
        c.converted,
        c.customers,
        esc(&measured)
    )
}

/// A challenger's latest decisions, with the customer (masked for viewers), the time and what it
/// would have done.
fn would_have(store: &Store, id: &str, version: i32, user: &User) -> String {
    let latest: Vec<_> = store
        .shadow_latest(id)
        .filter(|a| a.rule_version == version)
        .collect();
    if latest.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("<div class=\"would\"><strong>Latest, as it would have decided</strong><ul>");
    for a in latest {
        let would = a
            .reasons
            .iter()
            .rev()
            .find(|r| r.starts_with("shadow rule"))
            .map_or("", |r| &**r);
        let _ = write!(
            out,
            "<li>{} {}: {}</li>",
            time(a.decided_at),
            esc(&customer(&a.customer_id, user.role)),
            esc(would)
        );
    }
    out.push_str("</ul></div>");
    out
}
