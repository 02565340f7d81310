//! The console against a running pipeline on librdkafka's mock cluster: an alert the pipeline
//! raises reaches a signed-in viewer's live stream within 2 s, the rules page shows the rule
//! with its count, and sign-in, roles and CSRF hold.

mod common;

use common::console::*;
use common::*;
use nbo_stream::config::console::{ConsoleAuth, ConsoleUser, Role};
use nbo_stream::config::{Settings, StateBackend};
use nbo_stream::event::DecisionOutcome;
use nbo_stream::output::DecisionAudit;
use rdkafka::mocking::MockCluster;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_a_pipeline_alert_live_and_the_rule_counts_it() {
    let run = ConsoleRun::start().await;
    let (settings, state, base, brokers) = (&run.settings, &run.state, &run.base, &run.brokers);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Signed out: every page sends to sign-in; a wrong password gets no session.
    let r = http.get(format!("{base}/live")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(r.headers()["location"], "/login");
    assert!(sign_in(&http, base, "vera", "wrong").await.is_none());
    let viewer = sign_in(&http, base, "vera", "viewer-pass")
        .await
        .expect("viewer signs in");
    let (status, page) = get(&http, format!("{base}/live"), &viewer).await;
    assert_eq!(status, 200);
    assert!(page.contains("vera (viewer)"), "{page}");

    // The live stream, open before the alert is raised.
    let mut stream = http
        .get(format!("{base}/live/stream?severity=HIGH"))
        .header("cookie", &viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    // The console and the pipeline have their partitions before the event is sent.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let sent = Instant::now();
    produce_payment(settings, "CUST-000042", 1_250_000).await;
    let mut seen = String::new();
    let row = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let chunk = stream.chunk().await.unwrap().expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(at) = seen.find("event: row\ndata: ") {
                let line = seen[at + 17..]
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    return v;
                }
            }
        }
    })
    .await
    .expect("an alert on the live stream");
    let latency = sent.elapsed();
    assert!(
        latency < Duration::from_secs(2),
        "alert shown after {latency:?}"
    );
    assert_eq!(row["rule_id"], "test-big-payment");
    assert_eq!(row["kind"], "alert");
    assert_eq!(row["severity"], "HIGH");
    assert_eq!(
        row["customer_id"], "…0042",
        "a viewer sees a masked customer id"
    );

    // The rules page lists the rule with one firing in the last hour (once the audit is read).
    let mut counted = false;
    for _ in 0..50 {
        let (status, page) = get(&http, format!("{base}/rules"), &viewer).await;
        assert_eq!(status, 200);
        assert!(
            page.contains("test-big-payment") && page.contains("event.amount_minor &gt;= 900000")
        );
        if page.contains("<td>1</td><td>1</td><td>0</td><td>0</td><td class=\"muted\">–</td>") {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(counted, "the rule's firing is counted");
    let (status, page) = get(&http, format!("{base}/health"), &viewer).await;
    assert_eq!(status, 200);
    assert!(page.contains("Rule set versions in the audit"));

    // An analyst sees the whole customer id on the live page.
    let analyst = sign_in(&http, base, "ana", "analyst-pass").await.unwrap();
    let (_, page) = get(&http, format!("{base}/live"), &analyst).await;
    assert!(page.contains("CUST-000042"), "analysts see customer ids");
    let (_, page) = get(&http, format!("{base}/live"), &viewer).await;
    assert!(!page.contains("CUST-000042"), "viewers do not");

    // A customer lookup shows the values `features show` shows; a viewer may not look up.
    let form = |cookie: &str, path: &str, body: String| {
        http.post(format!("{base}{path}"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let analyst_csrf = csrf(&get(&http, format!("{base}/live"), &analyst).await.1);
    // The lookup reads what the pipeline's last checkpoint stored: the alert went out with its
    // batch, the customer's features reach Redis within `state.checkpoint_interval` (1 s).
    let key = hasher(settings).key("CUST-000042");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let expected = loop {
        let hash = state.feature_hash(&key).await.unwrap();
        if !hash.is_empty() || std::time::Instant::now() > deadline {
            break hash;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!expected.is_empty(), "the customer's features were stored");
    let page = form(
        &analyst,
        "/customer",
        format!("csrf={analyst_csrf}&customer_id=CUST-000042"),
    )
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    for (name, value) in &expected {
        let cell = format!("<td>{name}</td><td class=\"value\" data-raw=\"{value}\">");
        assert!(page.contains(&cell), "lookup lacks {cell}: {page}");
    }
    assert!(
        page.contains("test-big-payment v1</td><td>ALERTED"),
        "last decisions: {page}"
    );
    let viewer_csrf = csrf(&get(&http, format!("{base}/live"), &viewer).await.1);
    let (status, _) = get(&http, format!("{base}/customer"), &viewer).await;
    assert_eq!(status, 403);
    let r = form(
        &viewer,
        "/customer",
        format!("csrf={viewer_csrf}&customer_id=CUST-000042"),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a viewer may not look up");
    // An id over 128 bytes is refused before any audit record, and never echoed.
    let long = "X".repeat(200_000);
    let r = form(
        &analyst,
        "/customer",
        format!("csrf={analyst_csrf}&customer_id={long}"),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let page = r.text().await.unwrap();
    assert!(page.contains("at most 128 bytes") && !page.contains(&long[..129]));
    // A sign-in name with a control character is refused (it could forge a log line).
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=ana%0A2026-12-06T10%3A00%3A00Z+INFO+forged&password=x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // The editor places a typo at its line and column; the corrected rule is published as
    // shadow by a publisher (not by a viewer), and the running pipeline audits it as SHADOW.
    let publisher = sign_in(&http, base, "pat", "publisher-pass").await.unwrap();
    let publisher_csrf = csrf(&get(&http, format!("{base}/live"), &publisher).await.1);
    let typo = SHADOW_RULE.replace("event.amount_minor", "event.amount_minr");
    let r = form(
        &publisher,
        "/rules/check",
        format!("csrf={publisher_csrf}&document={}", urlencode(&typo)),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("line 6, column 1: condition:") && page.contains("amount_minr"),
        "{page}"
    );
    // Every problem is listed, each a link to its line, and the gutter marks both lines.
    let two = typo.replace("cooldown = \"1m\"", "cooldown = \"soon\"");
    let r = form(
        &publisher,
        "/rules/check",
        format!("csrf={publisher_csrf}&document={}", urlencode(&two)),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("data-line=\"6\" data-column=\"1\">line 6, column 1: condition:")
            && page
                .contains("data-line=\"12\" data-column=\"1\">line 12, column 1: alert.cooldown:")
            && page.contains("data-problem-lines=\"6 12\""),
        "{page}"
    );
    let r = form(
        &publisher,
        "/rules/check",
        format!("csrf={publisher_csrf}&document={}", urlencode(SHADOW_RULE)),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Valid: test-shadow-payment v1"));
    // A backtest of the rule over a recording from the console's folder, with its report.
    let r = form(
        &publisher,
        "/rules/backtest",
        format!(
            "csrf={publisher_csrf}&file=payments.jsonl&document={}",
            urlencode(SHADOW_RULE)
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("id=\"backtest-compare\"")
            && page.contains(
                "<tr data-outcome=\"ALERTED\"><td>ALERTED</td><td>0</td><td>2</td><td>+2</td></tr>"
            ),
        "a new rule beside nothing in force: {page}"
    );
    assert!(
        page.contains("<tr data-rule=\"test-shadow-payment\"><td>test-shadow-payment</td><td>ALERTED 2</td></tr>"),
        "{page}"
    );
    let r = form(
        &publisher,
        "/rules/backtest",
        format!(
            "csrf={publisher_csrf}&file=../../etc/passwd&document={}",
            urlencode(SHADOW_RULE)
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 400, "only listed recordings");
    let r = form(
        &viewer,
        "/rules/publish",
        format!(
            "csrf={viewer_csrf}&state=shadow&document={}",
            urlencode(SHADOW_RULE)
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 403, "a viewer may not publish");
    let r = form(
        &publisher,
        "/rules/publish",
        format!(
            "csrf={publisher_csrf}&state=shadow&comment=trying+a+lower+bound&document={}",
            urlencode(SHADOW_RULE)
        ),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("Published test-shadow-payment v1 as shadow"));
    // The console reads the rule back from the rules topic as the instances do.
    let mut installed = false;
    for _ in 0..100 {
        let (_, page) = get(&http, format!("{base}/rules"), &viewer).await;
        if page.contains("rule-test-shadow-payment") {
            installed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(installed, "the console read the published rule back");
    tokio::time::sleep(Duration::from_secs(2)).await;
    produce_payment(settings, "CUST-000077", 600_000).await;
    let mut audits: Vec<DecisionAudit> = Vec::new();
    for _ in 0..20 {
        let records = read_topic(
            brokers,
            &settings.topics.decisions_audit,
            1,
            Duration::from_secs(3),
        );
        audits = decode_outputs(&records, "DecisionAudit");
        if audits
            .iter()
            .any(|a| a.rule_id == "test-shadow-payment" && a.outcome == DecisionOutcome::Shadow)
        {
            break;
        }
    }
    assert!(
        audits.iter().any(|a| a.rule_id == "test-shadow-payment"
            && a.outcome == DecisionOutcome::Shadow
            && a.customer_id == "CUST-000077"),
        "the pipeline audits the published rule as SHADOW"
    );
    let lookups: Vec<&DecisionAudit> = audits
        .iter()
        .filter(|a| a.outcome == DecisionOutcome::ConsoleLookup)
        .collect();
    assert_eq!(
        lookups.len(),
        1,
        "one lookup happened and is audited: {lookups:?}"
    );
    assert_eq!(lookups[0].customer_id, "CUST-000042");
    assert_eq!(lookups[0].trigger_event_id, "console:ana");
    assert!(audits
        .iter()
        .any(|a| a.outcome == DecisionOutcome::RulePublished
            && a.rule_id == "test-shadow-payment"
            && a.trigger_event_id == "console:pat"));
    assert!(
        audits
            .iter()
            .any(|a| a.outcome == DecisionOutcome::RuleBacktested
                && a.rule_id == "test-shadow-payment"
                && a.trigger_event_id == "console:pat"),
        "the backtest is audited"
    );
    assert!(
        !audits.iter().any(|a| a.customer_id.len() > 128),
        "the long id reached no audit record"
    );
    // The rules page says what the shadow rule would have done.
    let mut would = String::new();
    for _ in 0..50 {
        let (_, page) = get(&http, format!("{base}/rules"), &viewer).await;
        if page.contains("Latest, as it would have decided") {
            would = page;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        would.contains("…0077: shadow rule: would raise a LOW FRAUD alert"),
        "what the shadow rule would have done: {would}"
    );

    // A change without the CSRF token is refused; with it, sign-out works and ends the session.
    let post = |cookie: &str, body: String| {
        http.post(format!("{base}/logout"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(
        post(&viewer, "csrf=forged".into())
            .await
            .unwrap()
            .status()
            .as_u16(),
        403
    );
    let token = viewer_csrf.clone();
    assert_eq!(
        post(&viewer, format!("csrf={token}"))
            .await
            .unwrap()
            .status()
            .as_u16(),
        303
    );
    let (status, _) = get(&http, format!("{base}/live"), &viewer).await;
    assert_eq!(status, 303, "signed out");

    // Five wrong passwords lock the name out: even the right one is refused for a while.
    for _ in 0..5 {
        assert!(sign_in(&http, base, "pat", "guess").await.is_none());
    }
    let r = http
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=pat&password=publisher-pass")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.text().await.unwrap().contains("Too many failed sign-ins"));

    run.stop().await;
}

/// An offer the pipeline made and the customer accepted counts towards its rule's acceptance
/// rate; the health page shows the instances' consumer lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accepted_offer_counts_towards_its_rule_and_health_shows_the_lag() {
    let run = ConsoleRun::start().await;
    let (settings, base, brokers) = (&run.settings, &run.base, &run.brokers);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let viewer = sign_in(&http, base, "vera", "viewer-pass").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    produce_consenting_profile(settings, "CUST-000500").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    produce_payment(settings, "CUST-000500", 400_000).await;
    let offers: Vec<nbo_stream::output::NextBestOffer> =
        outputs(brokers, &settings.topics.offers, "NextBestOffer", 1);
    assert_eq!(offers.len(), 1, "one offer: {offers:?}");
    assert_eq!(offers[0].rule_id, "test-card-offer");
    produce_response(
        settings,
        "CUST-000500",
        &offers[0].offer_id,
        nbo_stream::event::OfferResponseKind::Accepted,
    )
    .await;
    let mut page = String::new();
    for _ in 0..50 {
        page = get(&http, format!("{base}/rules"), &viewer).await.1;
        if page.contains("<td class=\"accepted\">100.0%") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = &page[page
        .find("rule-test-card-offer")
        .expect("the offer rule is listed")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(
        row.contains("<td class=\"accepted\">100.0%<br><span class=\"muted\">1 accepted<br>0 clicked<br>0 declined"),
        "acceptance of the offer rule: {row}"
    );

    // The customer opens the card: the offer rule's treated customer converted. With no control
    // group in this run, there is nothing yet to measure it against, and the page says so.
    let opened = nbo_stream::event::ProductOpened {
        event_id: "OPEN-500".into(),
        customer_id: "CUST-000500".into(),
        event_time: nbo_stream::clock::now_ms(),
        product_category: nbo_stream::event::ProductCategory::CreditCard,
        account_id: "CARD-500".into(),
        channel: "OFFER".into(),
        offer_id: Some(offers[0].offer_id.as_str().into()),
    };
    let topic = &settings.topics.product_openings;
    produce_input(settings, topic, "ProductOpened", "CUST-000500", &opened).await;
    let expected = "uplift against the control group: treated 1/1 converted, control 0/0: not measured until both groups have customers";
    for _ in 0..100 {
        page = get(&http, format!("{base}/rules"), &viewer).await.1;
        if page.contains(expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(page.contains(expected), "{page}");

    // The chart follows the filters: the offer counts under its product and its channel, not
    // under an alert severity or another channel; the live view redraws it from /live/chart.
    let chart = |query: &'static str| {
        let (http, viewer, base) = (&http, &viewer, base);
        async move {
            let (status, svg) = get(http, format!("{base}/live/chart?{query}"), viewer).await;
            assert_eq!(status, 200, "{query}");
            assert!(svg.starts_with("<svg"), "{svg}");
            svg
        }
    };
    for query in [
        "",
        "product=CREDIT_CARD",
        "channel=EMAIL",
        "rule=test-card-offer",
    ] {
        let svg = chart(query).await;
        assert!(svg.contains(" offered: 1</title>"), "{query}: {svg}");
        assert!(svg.contains("UTC, per minute"), "a time axis: {svg}");
    }
    for query in ["severity=HIGH", "channel=PUSH", "product=MORTGAGE"] {
        let svg = chart(query).await;
        assert!(!svg.contains(" offered: "), "{query}: {svg}");
    }
    let (_, live) = get(&http, format!("{base}/live?channel=EMAIL"), &viewer).await;
    assert!(
        live.contains("<div id=\"chart\"><svg") && live.contains("offers sent through EMAIL"),
        "{live}"
    );

    // Lag: every input topic listed; once the pipeline has committed, nothing left to read.
    let mut health = String::new();
    for _ in 0..100 {
        health = get(&http, format!("{base}/health"), &viewer).await.1;
        if health.contains("<strong id=\"lag-total\">0</strong>")
            && health.contains(&format!(
                "<tr><td>{}</td><td>2</td><td>",
                settings.topics.transactions
            ))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        health.contains(&format!("Group <code>{}</code>", settings.kafka.group_id)),
        "{health}"
    );
    assert!(
        health.contains("<strong id=\"lag-total\">0</strong>"),
        "no lag once the pipeline has committed: {health}"
    );
    for topic in settings.topics.inputs() {
        assert!(
            health.contains(&format!("<tr><td>{topic}</td>")),
            "{topic} in {health}"
        );
    }
    assert!(
        health.contains("id=\"no-instances\"") && health.contains("console.instances"),
        "with no instances listed, the page says how to list them: {health}"
    );
    run.stop().await;
}

/// With 10,000 offers and alerts and 10,000 audit records in the console's memory, every page
/// answers in under 200 ms (the median of three requests, over HTTP; `benches/console.rs`
/// measures the rendering alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_answers_within_200_ms_with_10_000_decisions_held() {
    use nbo_stream::event::{AlertKind, ContactChannel, ProductCategory, Severity};
    use nbo_stream::output::{FeatureValues, NextBestOffer, RiskAlert};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    const DECISIONS: usize = 10_000;
    let run = ConsoleRun::start().await;
    let (settings, base) = (&run.settings, &run.base);
    // The console has its partitions before the records are sent.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let codec = nbo_stream::codec::Codec::with_defaults().unwrap();
    let framing = nbo_stream::codec::Framing::Confluent;
    let producer: FutureProducer = nbo_stream::source::client_config(&settings.kafka)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let now = now_ms();
    let features = FeatureValues(vec![("card_spend_30d".into(), 2_500.0)]);
    let mut deliveries = Vec::with_capacity(2 * DECISIONS);
    for i in 0..DECISIONS {
        let customer = format!("CUST-{:06}", i % 2_000);
        let at = now - (DECISIONS - i) as i64 * 1_000;
        let (topic, record, payload) = if i % 3 == 0 {
            let alert = RiskAlert {
                alert_id: format!("al{i}"),
                customer_id: customer.clone(),
                kind: AlertKind::Fraud,
                severity: Severity::High,
                rule_id: "test-big-payment".into(),
                rule_version: 1,
                reasons: vec!["amount over 9,000".into()],
                features: features.clone(),
                trigger_event_id: format!("e{i}"),
                raised_at: at,
            };
            let bytes = codec.encode_framed("RiskAlert", &alert, framing).unwrap();
            (&settings.topics.alerts, "ALERTED", bytes)
        } else {
            let offer = NextBestOffer {
                offer_id: format!("of{i}"),
                customer_id: customer.clone(),
                offer_code: "CC-TEST-01".into(),
                product_category: ProductCategory::CreditCard,
                channel: ContactChannel::Email,
                score: 0.42,
                rule_id: "test-card-offer".into(),
                rule_version: 1,
                reasons: vec!["payment of 3,000 to 5,000".into()],
                features: features.clone(),
                trigger_event_id: format!("e{i}"),
                decided_at: at,
                expires_at: at + 7 * 86_400_000,
                propensity: Some(0.3),
                explored: false,
            };
            let bytes = codec
                .encode_framed("NextBestOffer", &offer, framing)
                .unwrap();
            (&settings.topics.offers, "OFFERED", bytes)
        };
        let audit = DecisionAudit {
            audit_id: format!("a{i}"),
            customer_id: customer.clone(),
            trigger_event_id: format!("e{i}"),
            rule_id: if record == "ALERTED" {
                "test-big-payment"
            } else {
                "test-card-offer"
            }
            .into(),
            rule_version: 1,
            ruleset_version: 1,
            outcome: if record == "ALERTED" {
                DecisionOutcome::Alerted
            } else {
                DecisionOutcome::Offered
            },
            decision_id: None,
            reasons: vec!["reason".into()],
            features: features.clone(),
            decided_at: at,
            shadow_outcome: None,
            features_as_of: None,
            propensity: None,
            rolled_up: None,
        };
        let audit = codec
            .encode_framed("DecisionAudit", &audit, framing)
            .unwrap();
        for (topic, payload) in [(topic, payload), (&settings.topics.decisions_audit, audit)] {
            let record = FutureRecord::to(topic).key(&customer).payload(&payload);
            deliveries.push(producer.send_result(record).map_err(|(e, _)| e).unwrap());
        }
    }
    for d in deliveries {
        d.await.unwrap().expect("acknowledged");
    }

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let analyst = sign_in(&http, base, "ana", "analyst-pass").await.unwrap();
    let held = format!("<dt>Offers and alerts held</dt><dd>{DECISIONS}</dd>");
    let mut full = false;
    for _ in 0..300 {
        if get(&http, format!("{base}/health"), &analyst)
            .await
            .1
            .contains(&held)
        {
            full = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(full, "the console holds {DECISIONS} decisions");
    let token = csrf(&get(&http, format!("{base}/live"), &analyst).await.1);
    for page in [
        "/live",
        "/live?rule=test-card-offer",
        "/rules",
        "/health",
        "/customer",
        "lookup",
    ] {
        let mut times = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let r = if page == "lookup" {
                http.post(format!("{base}/customer"))
                    .header("cookie", &analyst)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("csrf={token}&customer_id=CUST-000042"))
                    .send()
                    .await
                    .unwrap()
            } else {
                http.get(format!("{base}{page}"))
                    .header("cookie", &analyst)
                    .send()
                    .await
                    .unwrap()
            };
            assert_eq!(r.status().as_u16(), 200, "{page}");
            let body = r.text().await.unwrap();
            times.push(started.elapsed());
            assert!(!body.is_empty());
        }
        times.sort();
        eprintln!("{page}: median {:?}", times[1]);
        assert!(
            times[1] < Duration::from_millis(200),
            "{page} answered in {:?} (median of {times:?})",
            times[1]
        );
    }
    run.stop().await;
}

#[tokio::test]
async fn behind_a_proxy_only_configured_users_get_in() {
    let cluster = MockCluster::new(1).unwrap();
    let mut settings = test_settings(&cluster.bootstrap_servers(), StateBackend::Memory);
    settings.console.listen = "127.0.0.1:0".into();
    settings.console.auth = ConsoleAuth::TrustedHeader;
    settings.console.users = vec![ConsoleUser {
        name: "vera@bank.example".into(),
        role: Role::Viewer,
        password_hash: None,
    }];
    let addr = nbo_stream::console::start(&settings)
        .await
        .expect("console");
    let http = reqwest::Client::new();
    let page = |user: Option<&str>| {
        let mut r = http.get(format!("http://{addr}/health"));
        if let Some(u) = user {
            r = r.header("X-Forwarded-User", u);
        }
        r.send()
    };
    assert_eq!(page(None).await.unwrap().status().as_u16(), 401);
    assert_eq!(page(Some("mallory")).await.unwrap().status().as_u16(), 401);
    let ok = page(Some("vera@bank.example")).await.unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let csp = ok.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
}

#[test]
fn a_console_without_users_fails_at_start_naming_the_field() {
    let settings = Settings::default();
    let err = settings.console.check().unwrap_err();
    assert_eq!(err.0, "console.user");
}

/// `application/x-www-form-urlencoded` encoding of a form value.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_shows_the_api_instances_answers_by_channel() {
    // An API instance in this process, with its telemetry endpoint serving this process's
    // metrics, as `nbo-stream api` does.
    let health = nbo_stream::telemetry::http::Health::default();
    let telemetry = nbo_stream::telemetry::http::serve("127.0.0.1:0", health)
        .await
        .unwrap();
    let run = ConsoleRun::start_with(|s| {
        s.console.api_instances = vec![format!("http://{telemetry}")];
        s.console.instances_every = Duration::from_secs(1);
    })
    .await;
    let mut settings = run.settings.clone();
    settings.state.backend = StateBackend::Redis;
    settings.redis.url = redis_url();
    let store = std::sync::Arc::new(
        nbo_stream::state::redis::RedisStore::connect(&settings.redis)
            .await
            .unwrap(),
    );
    let (addr, key) = common::api::start_api(&mut settings, store).await;
    let url = format!("http://{addr}/v1/decisions");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let viewer = sign_in(&http, &run.base, "vera", "viewer-pass")
        .await
        .expect("viewer signs in");
    let (status, page) = get(&http, format!("{}/live", run.base), &viewer).await;
    assert_eq!(status, 200);
    assert!(page.contains("Inbound decisions by channel"), "{page}");

    // Answers on two channels (no inbound rule: each is NO_ELIGIBLE_RULE), until a reading
    // window holds them.
    let deadline = Instant::now() + Duration::from_secs(15);
    let table = loop {
        for channel in ["APP", "APP", "CALL_CENTRE"] {
            let body = common::api::decision("C1", channel);
            let (status, answer) = common::api::ask(&http, &url, Some(&key), body).await;
            assert_eq!(status, 200, "{answer}");
        }
        let (status, table) = get(&http, format!("{}/live/channels", run.base), &viewer).await;
        assert_eq!(status, 200);
        if table.contains("data-channel=\"APP\"") && table.contains("data-channel=\"CALL_CENTRE\"")
        {
            break table;
        }
        assert!(
            Instant::now() < deadline,
            "no channel rows in 15 s: {table}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(table.contains("1 API instance(s)"), "{table}");
    assert!(!table.contains("could not be read"), "{table}");
    // The APP row: answers per second above zero, none offered, all for want of a rule.
    let row = &table[table.find("data-channel=\"APP\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    let cells: Vec<&str> = row
        .split("<td>")
        .skip(1)
        .map(|c| c.trim_end_matches("</td>"))
        .collect();
    assert_eq!(cells[0], "APP", "{row}");
    let answers: f64 = cells[1].parse().unwrap();
    let no_rule: f64 = cells[6].parse().unwrap();
    assert!(answers > 0.0 && no_rule > 0.0, "{row}");
    assert_eq!(cells[2], "0%", "{row}");
    run.stop().await;
}

/// An investigator's closure of a pipeline alert shows on the rules page's quality table: the
/// alert, its closure as confirmed, the precision with its interval and the amount prevented.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alerts_closure_shows_in_the_rules_quality_table() {
    use nbo_stream::event::{AlertLabel, AlertOutcome, FraudParty};
    let run = ConsoleRun::start().await;
    let (settings, base, brokers) = (&run.settings, &run.base, &run.brokers);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let viewer = sign_in(&http, base, "vera", "viewer-pass").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    produce_payment(settings, "CUST-000077", 1_250_000).await;
    let alerts: Vec<nbo_stream::output::RiskAlert> =
        outputs(brokers, &settings.topics.alerts, "RiskAlert", 1);
    let closure = AlertOutcome {
        event_id: "case-77".into(),
        customer_id: "CUST-000077".into(),
        event_time: now_ms(),
        alert_id: alerts[0].alert_id.as_str().into(),
        label: AlertLabel::ConfirmedRisk,
        fraud_party: Some(FraudParty::ThirdParty),
        amount_minor: Some(1_250_000),
        currency: Some("EUR".into()),
        closed_by: "investigator-3".into(),
    };
    let topic = &settings.topics.alert_outcomes;
    produce_input(settings, topic, "AlertOutcome", "CUST-000077", &closure).await;

    // The day's row: one alert, closed, confirmed; precision 1 of 1 with Wilson's 20.7..100%.
    let expected = "<td>1</td><td>1</td><td>1</td><td>0</td><td class=\"precision\">100.0%<br>\
                    <span class=\"muted\">95% 20.7–100.0%</span></td><td>12500.00 EUR</td>\
                    <td>≤ 1 h</td>";
    let mut page = String::new();
    for _ in 0..100 {
        page = get(&http, format!("{base}/rules"), &viewer).await.1;
        if page.contains(expected) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = page
        .find("id=\"quality-test-big-payment-v1-1d\"")
        .map(|at| &page[at..(at + 600).min(page.len())])
        .unwrap_or("(no quality row)");
    assert!(page.contains(expected), "{row}");
    for period in ["7d", "30d"] {
        assert!(page.contains(&format!("id=\"quality-test-big-payment-v1-{period}\"")));
    }
    run.stop().await;
}
