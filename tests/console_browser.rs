//! The console in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which scripts/test.sh installs) driven over WebDriver against a running pipeline on the mock
//! cluster. An alert reaches the live table within 2 s through the page's own script; a customer
//! lookup shows the values `features show` shows; a typo is shown at its line and column; a
//! viewer is refused the lookup; and a rule's lifecycle: a challenger beside its champion,
//! promoted, then rolled back. With `NBO_SCREENSHOTS=<dir>` it saves the pages as PNGs (the
//! README's screenshots in docs/).

mod common;

use common::console::*;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_driver() -> Driver {
    let path = std::env::var("NBOTEST_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
    let port = free_port();
    let child = Command::new(&path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting {path}: {e}; install Debian's chromium and chromium-driver (scripts/test.sh does), or set NBOTEST_CHROMEDRIVER")
        });
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    let binary = std::env::var("NBOTEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let profile = tempfile::tempdir().unwrap().keep();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": binary,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-sync", "--disable-quic",
                "--disable-component-update", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a headless Chromium session")
}

async fn sign_in(b: &Client, base: &str, name: &str, password: &str) {
    b.goto(&format!("{base}/login")).await.unwrap();
    b.find(Locator::Css("input[name=name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    b.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    b.find(Locator::Css("main.login button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("#live"))
        .await
        .expect("signed in to the live view");
}

async fn sign_out(b: &Client) {
    b.find(Locator::Css("header form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("main.login"))
        .await
        .unwrap();
}

async fn screenshot(b: &Client, name: &str) {
    if let Ok(dir) = std::env::var("NBO_SCREENSHOTS") {
        let png = b.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_headless_chromium() {
    let driver = start_driver();
    let run = ConsoleRun::start().await;
    let base = run.base.clone();
    let b = browser(&driver).await;

    // Live: the page's script appends the alert the pipeline raises.
    sign_in(&b, &base, "vera", "viewer-pass").await;
    b.wait()
        .for_element(Locator::XPath("//span[@id='status'][text()='live']"))
        .await
        .expect("the live stream connects");
    // The pipeline and the console have their partitions before the event is sent (as in
    // tests/console.rs): what is timed is an alert's way to the page, not the start-up. Chromium
    // can be up before the pipeline's consumer has joined its group.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = Instant::now();
    produce_payment(&run.settings, "CUST-000042", 1_250_000).await;
    let row = b
        .wait()
        .at_most(Duration::from_secs(10))
        .every(Duration::from_millis(20))
        .for_element(Locator::XPath(
            "//table[@id='live']//tr[td[contains(., 'test-big-payment')]]",
        ))
        .await
        .expect("the alert in the live table");
    let shown = sent.elapsed();
    assert!(
        shown < Duration::from_secs(2),
        "alert shown after {shown:?}"
    );
    let text = row.text().await.unwrap();
    assert!(text.contains("HIGH") && text.contains("…0042"), "{text}");
    // The chart, drawn before the alert, is redrawn by the page with it, on a time axis.
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::XPath(
            "//div[@id='chart']//*[local-name()='title'][contains(., 'alerted: 1')]",
        ))
        .await
        .expect("the chart redrawn live with the alert");
    let axis = b
        .find(Locator::Css("#chart .tick"))
        .await
        .expect("time-axis labels")
        .text()
        .await
        .unwrap();
    assert!(
        axis.len() == 5 && axis.as_bytes()[2] == b':',
        "HH:MM: {axis}"
    );
    screenshot(&b, "console-live.png").await;

    // A viewer is refused the lookup.
    b.goto(&format!("{base}/customer")).await.unwrap();
    let body = b
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.contains("needs the analyst role"), "{body}");
    b.goto(&format!("{base}/live")).await.unwrap();
    sign_out(&b).await;

    // An analyst's lookup shows the values the state holds (what `features show` prints).
    sign_in(&b, &base, "ana", "analyst-pass").await;
    b.goto(&format!("{base}/customer")).await.unwrap();
    b.find(Locator::Css("#customer_id"))
        .await
        .unwrap()
        .send_keys("CUST-000042")
        .await
        .unwrap();
    b.find(Locator::Css("#lookup"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait()
        .for_element(Locator::Css("#features"))
        .await
        .unwrap();
    let key = hasher(&run.settings).key("CUST-000042");
    let expected = run.state.feature_hash(&key).await.unwrap();
    assert!(!expected.is_empty());
    for (name, value) in &expected {
        let cell = b
            .find(Locator::Css(&format!("tr[data-feature='{name}'] td.value")))
            .await
            .unwrap_or_else(|_| panic!("feature {name} on the page"));
        let raw = cell.attr("data-raw").await.unwrap().unwrap_or_default();
        assert_eq!(&raw, value, "feature {name}");
        let shown = cell.text().await.unwrap();
        if name != "_updated_at" {
            assert_eq!(
                shown,
                nbo_stream::console::customer::number(value),
                "feature {name}"
            );
        }
    }
    screenshot(&b, "console-customer.png").await;

    // The editor shows a typo at its line and column.
    b.goto(&format!("{base}/rules/edit?id=test-big-payment"))
        .await
        .unwrap();
    let area = b.find(Locator::Css("#document")).await.unwrap();
    let doc = area.prop("value").await.unwrap().unwrap_or_default();
    let typo = doc.replace("event.amount_minor", "event.amount_minr");
    assert_ne!(doc, typo, "the document holds the condition: {doc}");
    area.clear().await.unwrap();
    area.send_keys(&typo).await.unwrap();
    b.find(Locator::Css("#check"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let report = b
        .wait()
        .for_element(Locator::Css("ul#report"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let condition_line = typo
        .lines()
        .position(|l| l.contains("amount_minr"))
        .unwrap()
        + 1;
    assert!(
        report.contains(&format!("line {condition_line}, column "))
            && report.contains("amount_minr"),
        "{report}"
    );
    // The gutter numbers the lines and marks the problem's; clicking the problem puts the
    // caret on its line.
    let marked = b
        .find(Locator::Css(&format!(".gutter #line-{condition_line}")))
        .await
        .unwrap()
        .attr("class")
        .await
        .unwrap();
    assert_eq!(marked.as_deref(), Some("problem"));
    b.find(Locator::Css(&format!(
        "#report a.goto[data-line='{condition_line}']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let caret = b
        .execute(
            "var a = document.getElementById('document'); \
             return a.value.slice(0, a.selectionStart).split('\\n').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(caret.as_u64(), Some(condition_line as u64), "caret line");
    // The rules table is wide (two periods of six counts): a wider window shows all of it.
    b.set_window_size(1760, 900).await.unwrap();
    b.goto(&format!("{base}/rules")).await.unwrap();
    screenshot(&b, "console-rules.png").await;

    b.close().await.unwrap();
    run.stop().await;
}

/// The "offered / alerted" count of the last hour in the rules-page row of `version` of
/// test-big-payment (`challenger`: its shadow row), or `None` while the row is not shown.
async fn alerted(b: &Client, base: &str, version: i32, challenger: bool) -> Option<u64> {
    b.goto(&format!("{base}/rules")).await.unwrap();
    let rows = b
        .find_all(Locator::Css(&format!(
            "tr#rule-test-big-payment-v{version}"
        )))
        .await
        .unwrap();
    for row in rows {
        let class = row.attr("class").await.unwrap().unwrap_or_default();
        if (class == "challenger") != challenger {
            continue;
        }
        let cells = row.find_all(Locator::Css("td")).await.unwrap();
        return cells[4].text().await.unwrap().trim().parse().ok();
    }
    None
}

/// Polls `check` for up to 15 s.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("not within 15 s: {what}");
}

async fn fill_and_click(b: &Client, input: &str, text: &str, button: &str) -> String {
    b.find(Locator::Css(input))
        .await
        .unwrap_or_else(|_| panic!("{input} on the page"))
        .send_keys(text)
        .await
        .unwrap();
    b.find(Locator::Css(button))
        .await
        .unwrap_or_else(|_| panic!("{button} on the page"))
        .click()
        .await
        .unwrap();
    match b.wait().for_element(Locator::Css("#report")).await {
        Ok(report) => report.text().await.unwrap(),
        Err(e) => panic!(
            "no report after {button} ({e}): {}",
            b.source().await.unwrap_or_default()
        ),
    }
}

/// Whether the live table shows an alert of test-big-payment for `customer`.
async fn live_alert(b: &Client, base: &str, customer: &str) -> bool {
    b.goto(&format!("{base}/live")).await.unwrap();
    let rows = b.find_all(Locator::Css("table#live tr")).await.unwrap();
    for row in rows {
        let text = row.text().await.unwrap_or_default();
        if text.contains(customer) && text.contains("test-big-payment") {
            return true;
        }
    }
    false
}

/// The rule lifecycle as a publisher lives it: v2 of an active alert rule published as shadow
/// runs beside v1 (v1 keeps alerting, v2 counts what it would have done and sends nothing),
/// promoted it alerts in v1's place, and a rollback puts v1's text back in force as v3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rule_lifecycle_in_headless_chromium() {
    let driver = start_driver();
    let run = ConsoleRun::start().await;
    let base = run.base.clone();
    let b = browser(&driver).await;
    b.set_window_size(1760, 1000).await.unwrap();
    sign_in(&b, &base, "pat", "publisher-pass").await;

    // v2 with a lower bound (5,000 instead of 9,000), published as shadow from the editor.
    b.goto(&format!("{base}/rules/edit?id=test-big-payment"))
        .await
        .unwrap();
    let area = b.find(Locator::Css("#document")).await.unwrap();
    let v1 = area.prop("value").await.unwrap().unwrap_or_default();
    assert_eq!(v1, RULE, "the editor shows the author's text");
    let v2 = v1
        .replace("version = 1", "version = 2")
        .replace(">= 900000", ">= 500000");
    area.clear().await.unwrap();
    area.send_keys(&v2).await.unwrap();
    let report = fill_and_click(&b, "#comment", "catch smaller frauds", "#publish-shadow").await;
    assert!(
        report.contains("Published test-big-payment v2 as shadow"),
        "{report}"
    );
    until("the challenger row", || async {
        alerted(&b, &base, 2, true).await.is_some()
    })
    .await;

    // 6,000 fires v2 only; 12,500 fires both. v1 alerts, v2 only counts.
    produce_payment(&run.settings, "CUST-000043", 600_000).await;
    produce_payment(&run.settings, "CUST-000044", 1_250_000).await;
    until(
        "v1 alerted once and v2 would have alerted twice",
        || async {
            alerted(&b, &base, 1, false).await == Some(1)
                && alerted(&b, &base, 2, true).await == Some(2)
        },
    )
    .await;
    assert!(
        live_alert(&b, &base, "CUST-000044").await,
        "v1 keeps alerting"
    );
    assert!(
        !live_alert(&b, &base, "CUST-000043").await,
        "v2 sends nothing"
    );
    b.goto(&format!("{base}/rules")).await.unwrap();
    screenshot(&b, "console-challenger.png").await;

    // Promote v2: it alerts on 6,000, and v1's row is gone.
    b.goto(&format!("{base}/rules")).await.unwrap();
    let report = fill_and_click(
        &b,
        "#promote-comment-test-big-payment",
        "v2 caught more in shadow",
        "#promote-test-big-payment",
    )
    .await;
    assert!(report.contains("challenger promoted"), "{report}");
    until("v2 in force, v1 retired", || async {
        alerted(&b, &base, 2, false).await.is_some() && alerted(&b, &base, 1, false).await.is_none()
    })
    .await;
    produce_payment(&run.settings, "CUST-000045", 600_000).await;
    until("v2 alerts on 6,000", || async {
        live_alert(&b, &base, "CUST-000045").await
    })
    .await;

    // The versions page: a diff of v1 and v2, then a rollback to v1 (published as v3).
    b.goto(&format!(
        "{base}/rules/versions?id=test-big-payment&from=1&to=2"
    ))
    .await
    .unwrap();
    let diff = b
        .find(Locator::Css("#diff-table"))
        .await
        .expect("the diff table")
        .text()
        .await
        .unwrap();
    assert!(
        diff.contains("condition") && diff.contains(">= 500000"),
        "{diff}"
    );
    screenshot(&b, "console-versions.png").await;
    // v1 came from the rule files: the versions page offers it, and a rollback publishes its
    // text again as v3.
    let report = fill_and_click(
        &b,
        "#rollback-comment-v1",
        "v2 flooded the fraud queue",
        "#rollback-v1",
    )
    .await;
    assert!(report.contains("v1's text published as v3"), "{report}");
    until("v3 in force", || async {
        alerted(&b, &base, 3, false).await.is_some()
    })
    .await;
    produce_payment(&run.settings, "CUST-000046", 600_000).await;
    produce_payment(&run.settings, "CUST-000047", 1_000_000).await;
    until("v3 alerts on 10,000", || async {
        live_alert(&b, &base, "CUST-000047").await
    })
    .await;
    assert!(
        !live_alert(&b, &base, "CUST-000046").await,
        "v3 has v1's bound again: no alert on 6,000"
    );

    b.close().await.unwrap();
    run.stop().await;
}

/// Four-eyes: with `console.require_approval`, a publisher's change waits for a second
/// publisher; the first cannot approve it, the second's approval publishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_publisher_approves_a_change_in_headless_chromium() {
    let driver = start_driver();
    let run = ConsoleRun::start_with(|s| s.console.require_approval = true).await;
    let base = run.base.clone();
    let b = browser(&driver).await;
    b.set_window_size(1760, 1000).await.unwrap();
    sign_in(&b, &base, "pat", "publisher-pass").await;
    b.goto(&format!("{base}/rules/edit?id=test-big-payment"))
        .await
        .unwrap();
    let area = b.find(Locator::Css("#document")).await.unwrap();
    let v2 = RULE
        .replace("version = 1", "version = 2")
        .replace(">= 900000", ">= 500000");
    area.clear().await.unwrap();
    area.send_keys(&v2).await.unwrap();
    let report = fill_and_click(&b, "#comment", "catch smaller frauds", "#publish-shadow").await;
    assert!(report.contains("requested"), "{report}");
    // Held: not on the rules topic, so no challenger row.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(alerted(&b, &base, 2, true).await, None, "held for approval");
    // pat may not approve pat's own request.
    b.goto(&format!("{base}/rules/approvals")).await.unwrap();
    let row = b
        .wait()
        .for_element(Locator::Css("#approvals tr[id^=request-]"))
        .await
        .expect("the open request")
        .text()
        .await
        .unwrap();
    assert!(row.contains("your request"), "{row}");
    assert!(b.find(Locator::Css("button[id^=approve-]")).await.is_err());
    sign_out(&b).await;

    sign_in(&b, &base, "quinn", "second-publisher-pass").await;
    b.goto(&format!("{base}/rules/approvals")).await.unwrap();
    let button = b
        .find(Locator::Css("button[id^=approve-]"))
        .await
        .expect("quinn may approve");
    let id = button.attr("id").await.unwrap().unwrap_or_default();
    let seq = id.trim_start_matches("approve-").to_string();
    let report = fill_and_click(
        &b,
        &format!("#approve-comment-{seq}"),
        "reviewed the bound",
        &format!("#approve-{seq}"),
    )
    .await;
    assert!(report.contains("approval of request"), "{report}");
    until("the approved challenger runs", || async {
        alerted(&b, &base, 2, true).await.is_some()
    })
    .await;
    b.goto(&format!("{base}/rules/approvals")).await.unwrap();
    b.find(Locator::Css("#no-requests"))
        .await
        .expect("no open request left");

    b.close().await.unwrap();
    run.stop().await;
}
