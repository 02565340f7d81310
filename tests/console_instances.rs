//! The health page's instances: a console reading three `console.instances` — a stand-in
//! instance that is ready and processes 100 records between readings, one answering `/readyz`
//! with 503, and an address nobody listens on — shows each one's state, and for the ready one
//! the p99 of the records processed between two readings.

mod common;

use common::test_settings;
use nbo_stream::config::console::{ConsoleAuth, ConsoleUser, Role};
use nbo_stream::config::StateBackend;
use prometheus::{exponential_buckets, Encoder, Histogram, HistogramOpts, Registry};
use rdkafka::mocking::MockCluster;
use std::time::Duration;

/// The latency one reading window holds: 50 records in (2, 4] ms, 40 in (4, 8], 8 in (8, 16]
/// and 2 in (16, 32]. The 99th of 100 is halfway through (16, 32] ms: 24 ms interpolated.
const WINDOW: [(usize, f64); 4] = [(50, 0.003), (40, 0.006), (8, 0.012), (2, 0.020)];

/// An instance's telemetry endpoint as far as the console reads it: `/readyz` answers
/// "ready", and every `/metrics` read finds [`WINDOW`] processed since the read before, in
/// `nbo_processing_latency_seconds` with the instances' buckets, encoded as they encode it.
/// Below `/starting` it answers `/readyz` with 503 and has no `/metrics`.
async fn stand_in_instance() -> String {
    let registry = Registry::new();
    let latency = Histogram::with_opts(
        HistogramOpts::new(
            "nbo_processing_latency_seconds",
            "Record received to delivered",
        )
        .buckets(exponential_buckets(0.001, 2.0, 18).unwrap()),
    )
    .unwrap();
    registry.register(Box::new(latency.clone())).unwrap();
    // Records before the console's first reading: fast ones, which must not count.
    for _ in 0..10_000 {
        latency.observe(0.0005);
    }
    let metrics = move || {
        for (records, seconds) in WINDOW {
            for _ in 0..records {
                latency.observe(seconds);
            }
        }
        let mut body = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&registry.gather(), &mut body)
            .unwrap();
        String::from_utf8(body).unwrap()
    };
    let app = axum::Router::new()
        .route("/readyz", axum::routing::get(|| async { "ready" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let body = metrics();
                async move { body }
            }),
        )
        .route(
            "/starting/readyz",
            axum::routing::get(|| async {
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "not ready")
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// The health page's row for `url`.
fn row<'a>(page: &'a str, url: &str) -> &'a str {
    let at = page
        .find(&format!("<tr><td>{url}</td>"))
        .unwrap_or_else(|| panic!("a row for {url}: {page}"));
    let row = &page[at..];
    &row[..row.find("</tr>").unwrap()]
}

/// The text of the cell of class `class` in `row`.
fn cell<'a>(row: &'a str, class: &str) -> &'a str {
    let open = format!("<td class=\"{class}\">");
    let at = row
        .find(&open)
        .unwrap_or_else(|| panic!("{class} in {row}"))
        + open.len();
    &row[at..at + row[at..].find("</td>").unwrap()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_each_instance_ready_or_not_with_its_p99_between_two_readings() {
    let ready = stand_in_instance().await;
    let starting = format!("{ready}/starting");
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let cluster = MockCluster::new(1).unwrap();
    let mut settings = test_settings(&cluster.bootstrap_servers(), StateBackend::Memory);
    settings.console.listen = "127.0.0.1:0".into();
    settings.console.auth = ConsoleAuth::TrustedHeader;
    settings.console.users = vec![ConsoleUser {
        name: "vera@bank.example".into(),
        role: Role::Viewer,
        password_hash: None,
    }];
    settings.console.instances = vec![ready.clone(), starting.clone(), gone.clone()];
    // Long enough that the page is seen between the first two readings.
    settings.console.instances_every = Duration::from_secs(2);
    let addr = nbo_stream::console::start(&settings)
        .await
        .expect("console");
    let http = reqwest::Client::new();
    let health = || async {
        let r = http
            .get(format!("http://{addr}/health"))
            .header("X-Forwarded-User", "vera@bank.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.text().await.unwrap()
    };

    // After the first reading: ready, but no window yet.
    let mut page = health().await;
    for _ in 0..50 {
        if cell(row(&page, &ready), "read").ends_with("s ago") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = health().await;
    }
    let first = row(&page, &ready);
    assert_eq!(cell(first, "state"), "ready", "{first}");
    assert_eq!(cell(first, "p99"), "–", "one reading is no window: {first}");
    assert_eq!(cell(first, "rate"), "–", "{first}");

    // After the second: the window's p99 (not the 0.5 ms of every record since start).
    for _ in 0..60 {
        if cell(row(&page, &ready), "p99") != "–" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = health().await;
    }
    let second = row(&page, &ready);
    assert_eq!(cell(second, "state"), "ready", "{second}");
    assert_eq!(cell(second, "p99"), "24.0 ms", "{second}");
    let rate: f64 = cell(second, "rate").parse().unwrap();
    assert!(
        (35.0..=70.0).contains(&rate),
        "100 records in about 2 s: {rate}/s"
    );

    let starting_row = row(&page, &starting);
    assert!(
        cell(starting_row, "state").contains("not ready")
            && starting_row.contains("503 Service Unavailable"),
        "{starting_row}"
    );
    assert_eq!(cell(starting_row, "p99"), "–");
    let gone_row = row(&page, &gone);
    let state = cell(gone_row, "state");
    assert!(
        state.contains("unreachable") && state.contains("refused"),
        "{gone_row}"
    );
    assert_eq!(cell(gone_row, "p99"), "–");
}
