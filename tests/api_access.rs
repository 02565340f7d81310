//! Access to `nbo-stream api` beyond its keys: HTTPS, mutual TLS (a client without a certificate
//! the configured CA signs is refused in the handshake, before any request is read), and slow
//! clients (a body that stalls gets 408 within `api.read_timeout`; headers that stall lose the
//! connection). The TLS material is the test-only set of `tests/fixtures/tls/`.

mod common;

use common::api::{ask, decision, start_api};
use common::*;
use nbo_stream::config::api::ApiTls;
use nbo_stream::config::{Settings, StateBackend};
use nbo_stream::state::redis::RedisStore;
use rdkafka::mocking::MockCluster;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// Settings over a mock cluster (kept alive by the caller) and the test Redis.
async fn settings(
    cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
) -> (Settings, Arc<RedisStore>) {
    let mut settings = test_settings(&cluster.bootstrap_servers(), StateBackend::Redis);
    settings.redis.url = redis_url();
    for topic in settings.topics.all() {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let store = Arc::new(RedisStore::connect(&settings.redis).await.unwrap());
    (settings, store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mutual_tls_only_clients_holding_a_certificate_of_the_ca_get_an_answer() {
    let cluster = MockCluster::new(1).unwrap();
    let (mut settings, store) = settings(&cluster).await;
    settings.api.tls = Some(ApiTls {
        cert: tls_file("server.pem"),
        key: tls_file("server.key"),
        client_ca: Some(tls_file("ca.pem")),
    });
    let (addr, key) = start_api(&mut settings, store.clone()).await;
    let url = format!("https://localhost:{}/v1/decisions", addr.port());
    let ca = reqwest::Certificate::from_pem(&std::fs::read(tls_file("ca.pem")).unwrap()).unwrap();
    let mut pem = std::fs::read(tls_file("client.pem")).unwrap();
    pem.extend(std::fs::read(tls_file("client.key")).unwrap());
    let identity = reqwest::Identity::from_pem(&pem).unwrap();

    // With the CA's client certificate and a key: answered.
    let with_cert = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .identity(identity)
        .build()
        .unwrap();
    let (status, body) = ask(&with_cert, &url, Some(&key), decision("C1", "WEB")).await;
    assert_eq!(status, 200, "{body}");
    // The certificate does not stand in for the key.
    let (status, body) = ask(&with_cert, &url, None, decision("C1", "WEB")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("no_key")),
        "{body}"
    );

    // No client certificate: the handshake fails; no HTTP answer at all.
    let without_cert = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .unwrap();
    let refused = without_cert
        .post(&url)
        .bearer_auth(&key)
        .body(decision("C1", "WEB"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "answered without a client certificate: {refused:?}"
    );
    // Plain HTTP on the TLS port: no answer either.
    let plain = reqwest::Client::new()
        .post(format!("http://{addr}/v1/decisions"))
        .bearer_auth(&key)
        .body(decision("C1", "WEB"))
        .send()
        .await;
    assert!(plain.is_err(), "answered over plain HTTP: {plain:?}");

    // A certificate file that is not there fails the start, naming the field.
    settings.api.tls = Some(ApiTls {
        cert: tls_file("missing.pem"),
        key: tls_file("server.key"),
        client_ca: None,
    });
    let err = nbo_stream::api::start_with(&settings, store)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("api.tls.cert"), "{err:#}");
}

/// Sends `head` (and no more) on a fresh connection to `addr`; answers what came back and when.
async fn stall_after(addr: std::net::SocketAddr, head: String) -> (String, Duration) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(
        read.is_ok(),
        "the connection stayed open 10 s after the client stalled"
    );
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_and_stalled_headers_lose_the_connection() {
    let cluster = MockCluster::new(1).unwrap();
    let (mut settings, store) = settings(&cluster).await;
    settings.api.read_timeout = Duration::from_millis(500);
    let (addr, key) = start_api(&mut settings, store).await;

    // The headers promise 200 bytes; 20 come, then nothing.
    let head = format!(
        "POST /v1/decisions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {key}\r\n\
         content-type: application/json\r\ncontent-length: 200\r\n\r\n{{\"customer_id\":\"C1\","
    );
    let (answer, after) = stall_after(addr, head).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"slow_body\""), "{answer}");
    assert!(after < Duration::from_secs(5), "408 after {after:?}");

    // Half the headers, then nothing: the connection is closed, nothing decided.
    let head = "POST /v1/decisions HTTP/1.1\r\nhost: localhost\r\n".to_string();
    let (answer, after) = stall_after(addr, head).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(after < Duration::from_secs(5), "closed after {after:?}");

    // A client that sends in time is answered as ever.
    let url = format!("http://{addr}/v1/decisions");
    let (status, body) = ask(
        &reqwest::Client::new(),
        &url,
        Some(&key),
        decision("C1", "WEB"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
