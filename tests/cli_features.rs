//! The product as an operator uses it, through the binary: a feature added to the features file —
//! no code change — shows up in `features show` after `run`; `run` drains and exits 0 on SIGTERM.
//! Real broker (Tansu) and real Redis.

mod common;

use common::*;
use nbo_stream::generator::personas::{EventFactory, Persona};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nbo-stream");
const EVENTS: u64 = 4_000;
const CUSTOMERS: u32 = 300;

fn nbo(args: &[&str], secret: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env("NBO_CUSTOMER_KEY_SECRET", secret)
        .output()
        .expect("run nbo-stream")
}

fn consumed(metrics_port: u16) -> u64 {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", metrics_port)) else {
        return 0;
    };
    use std::io::{Read, Write};
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with("nbo_events_consumed_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_feature_added_to_the_file_shows_in_features_show_after_a_run() {
    let (_broker, brokers) = start_tansu();
    let dir = tempfile::tempdir().unwrap();
    let secret = unique("cli-secret-0123456789");
    let starter =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/features/bank.toml"))
            .unwrap();
    let features = dir.path().join("features.toml");
    std::fs::write(
        &features,
        format!(
            "{starter}\n[[feature]]\nname = \"card_payments_2d\"\ndescription = \"added by the test\"\nsource = \"TransactionEvent\"\nfilter = 'txn_type == \"CARD_PAYMENT\"'\naggregation = \"count\"\nwindow = \"2d\"\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let config = dir.path().join("nbo.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{group}\"\nbatch_linger = \"10ms\"\n# Tansu 0.6 loses records on a pause (see common::TANSU_PAUSE_AFTER).\npause_after = \"60s\"\n\n[features]\nfile = \"{features}\"\n\n[redis]\nurl = \"{redis}\"\n\n[telemetry]\nlisten = \"127.0.0.1:{port}\"\n",
            group = unique("cli"),
            features = features.display(),
            redis = redis_url(),
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let out = nbo(
        &["topics", "create", "--config", config, "--partitions", "4"],
        &secret,
    );
    assert!(
        out.status.success(),
        "topics create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = nbo(
        &[
            "generate",
            "--brokers",
            &brokers,
            "--customers",
            &CUSTOMERS.to_string(),
            "--rate",
            "0",
            "--events",
            &EVENTS.to_string(),
            "--seed",
            "5",
        ],
        &secret,
    );
    assert!(
        out.status.success(),
        "generate: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut run = Command::new(BIN)
        .args(["run", "--config", config])
        .env("NBO_CUSTOMER_KEY_SECRET", &secret)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while consumed(port) < EVENTS && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(consumed(port), EVENTS, "run consumed every record");
    let kill = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let stopped = Instant::now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "run did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "run exits 0 after draining on SIGTERM: {status}"
    );

    let spender = EventFactory::new(CUSTOMERS, 5, 0)
        .customers()
        .iter()
        .find(|c| c.persona == Persona::CardHeavySpender)
        .map(|c| c.id.clone())
        .unwrap();
    let out = nbo(&["features", "show", &spender, "--config", config], &secret);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "features show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("card_payments_2d"))
        .unwrap_or_else(|| panic!("new feature missing:\n{text}"));
    let value: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(value >= 1.0, "{line}");
    assert!(
        text.contains("_updated_at") && text.contains("card_spend_30d"),
        "{text}"
    );
}
