//! The console in a real browser: headless Chromium (Debian's `chromium` and `chromium-driver`,
//! which scripts/test.sh installs) driven over WebDriver against a running pipeline on the mock
//! cluster. An alert reaches the live table within 2 s through the page's own script; a customer
//! lookup shows the values `features show` shows; a typo is shown at its line and column; a
//! viewer is refused the lookup. With `NBO_SCREENSHOTS=<dir>` it saves the pages as PNGs (the
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
        assert_eq!(&cell.text().await.unwrap(), value, "feature {name}");
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
    // The rules table is wide (two periods of six counts): a wider window shows all of it.
    b.set_window_size(1760, 900).await.unwrap();
    b.goto(&format!("{base}/rules")).await.unwrap();
    screenshot(&b, "console-rules.png").await;

    b.close().await.unwrap();
    run.stop().await;
}
