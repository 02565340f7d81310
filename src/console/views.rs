//! The console's pages (GET): what each role may read. Nothing here changes anything.

use super::*;

pub(super) async fn login_page(State(app): State<App>) -> Response {
    match app.auth.mode() {
        ConsoleAuth::Users => Html(pages::login(None)).into_response(),
        ConsoleAuth::TrustedHeader => Redirect::to("/live").into_response(),
    }
}

fn rule_ids(app: &App) -> Vec<String> {
    let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
    book.ids().map(str::to_string).collect()
}

/// The decisions chart for `filter`, drawn now: each rule's product and severity from the rule
/// set the console reads.
fn chart_svg(app: &App, filter: &Filter) -> String {
    let facts: std::collections::HashMap<String, facets::RuleFacts> = {
        let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
        book.documents()
            .map(|d| {
                let f = facets::RuleFacts {
                    product: d.offer.as_ref().map(|o| o.product.as_str()),
                    severity: d.alert.as_ref().map(|a| a.severity.as_str()),
                };
                (d.id.clone(), f)
            })
            .collect()
    };
    let facts = |rule: &str| facts.get(rule).cloned().unwrap_or_default();
    let series = lock(&app.shared.store).chart_for(filter, &facts);
    let keep = app.settings.console.chart_hours as usize * 60;
    chart::decisions(&series, now_ms(), keep)
}

pub(super) async fn live(
    State(app): State<App>,
    Signed(user, _): Signed<Viewer>,
    Query(filter): Query<Filter>,
) -> Response {
    let rules = rule_ids(&app);
    let chart = chart_svg(&app, &filter);
    let channels = channels_html(&app);
    let store = lock(&app.shared.store);
    Html(pages::live(
        &store, &filter, &rules, &chart, &channels, &user,
    ))
    .into_response()
}

/// The inbound channels' table as it stands (empty without `console.api_instances`).
fn channels_html(app: &App) -> String {
    if app.settings.console.api_instances.is_empty() {
        return String::new();
    }
    let view = app
        .channels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    pages::channels(&view, now_ms())
}

/// The inbound channels' table alone, for the live view to redraw (`live.js`).
pub(super) async fn live_channels(
    State(app): State<App>,
    Signed(_, _): Signed<Viewer>,
) -> Response {
    Html(channels_html(&app)).into_response()
}

/// The decisions chart alone, for the live view to redraw (`live.js`, every few seconds).
pub(super) async fn live_chart(
    State(app): State<App>,
    Signed(_, _): Signed<Viewer>,
    Query(filter): Query<Filter>,
) -> Response {
    Html(chart_svg(&app, &filter)).into_response()
}

/// New offers and alerts as server-sent events: `row` events carry the table row's HTML and
/// its data; a `lagged` event says how many rows a slow reader missed.
pub(super) async fn live_stream(
    State(app): State<App>,
    Signed(user, _): Signed<Viewer>,
    Query(filter): Query<Filter>,
) -> Response {
    let rx = app.shared.live.subscribe();
    let stream = futures::stream::unfold((rx, filter, user), |(mut rx, filter, user)| async move {
        loop {
            let event = match rx.recv().await {
                Ok(row) if filter.matches(&row) => {
                    let mut data = serde_json::to_value(&row).unwrap_or_default();
                    data["customer_id"] = pages::customer(&row.customer_id, user.role).into();
                    data["html"] = pages::row_html(&row, &user).into();
                    Event::default().event("row").data(data.to_string())
                }
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(n.to_string())
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            return Some((Ok::<_, std::convert::Infallible>(event), (rx, filter, user)));
        }
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

pub(super) async fn rules(State(app): State<App>, Signed(user, _): Signed<Viewer>) -> Response {
    let (docs, version) = {
        let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
        (
            book.entries()
                .map(|(slot, e)| (slot, e.doc.clone()))
                .collect::<Vec<_>>(),
            book.version(),
        )
    };
    let uplift = read_uplift(&app, &docs).await;
    let mut store = lock(&app.shared.store);
    if let Some(groups) = uplift {
        store.set_uplift(groups);
    }
    let quality = crate::console::quality::feed::lock(&app.shared.quality);
    Html(rules_page::rules(
        &docs,
        version,
        &store,
        &quality,
        &user,
        now_ms(),
    ))
    .into_response()
}

/// The offer rules' uplift groups from the state store, beside the pipeline's learned models
/// (`None`: no store, or it did not answer within two seconds; the page shows the last reading).
async fn read_uplift(
    app: &App,
    docs: &[(
        crate::rules::book::Slot,
        crate::rules::document::RuleDocument,
    )],
) -> Option<Vec<(String, crate::learning::uplift::Groups)>> {
    let (state, _) = app.state.as_ref()?;
    let models = state.models(&app.settings.kafka.group_id)?;
    let ids: Vec<String> = docs
        .iter()
        .filter(|(_, d)| d.is_offer())
        .map(|(_, d)| d.id.clone())
        .collect();
    let wait = std::time::Duration::from_secs(2);
    match tokio::time::timeout(wait, models.load_uplift(&ids)).await {
        Ok(Ok(groups)) => Some(groups),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "uplift not read for the rules page");
            None
        }
        Err(_) => {
            tracing::warn!("uplift not read for the rules page: the state store took over 2s");
            None
        }
    }
}

pub(super) async fn health(State(app): State<App>, Signed(user, _): Signed<Viewer>) -> Response {
    let version = app.ruleset_version();
    let lag = app
        .shared
        .lag
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let instances = app
        .instances
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let store = lock(&app.shared.store);
    Html(pages::health(
        &store,
        lag.as_ref(),
        &instances,
        version,
        app.grafana.as_deref(),
        &user,
        now_ms(),
    ))
    .into_response()
}

pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "max-age=300"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub(super) async fn customer_form(Signed(user, _): Signed<Analyst>) -> Response {
    Html(customer::form(&user, None)).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct EditQuery {
    id: Option<String>,
}

pub(super) async fn rule_edit(
    State(app): State<App>,
    Signed(user, _): Signed<Analyst>,
    Query(q): Query<EditQuery>,
) -> Response {
    let text =
        q.id.and_then(|id| {
            let book = app.shared.rules.lock().unwrap_or_else(|p| p.into_inner());
            // The newest version's text as its author wrote it.
            book.newest(&id).map(|e| e.text.clone())
        })
        .unwrap_or_else(|| editor::TEMPLATE.to_string());
    Html(editor_page(&app, &user, &text, editor::Report::None)).into_response()
}

/// The editor page with the recordings this console offers.
pub(super) fn editor_page(
    app: &App,
    user: &User,
    text: &str,
    report: editor::Report<'_>,
) -> String {
    let recordings = backtest::recordings(app.settings.console.recordings.as_deref());
    editor::page(user, text, report, &recordings, "", "")
}
