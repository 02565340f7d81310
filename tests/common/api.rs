//! Helpers for the tests of `nbo-stream api`: starting it with a key, and asking it.

use nbo_stream::config::api::ApiKey;
use nbo_stream::config::Settings;
use nbo_stream::state::redis::RedisStore;
use std::sync::Arc;

/// One request to the API: the status and the JSON body.
pub async fn ask(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    let mut request = client
        .post(url)
        .header("content-type", "application/json")
        .body(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// A request body: `customer` asking on `channel` from the home screen.
pub fn decision(customer: &str, channel: &str) -> String {
    serde_json::json!({"customer_id": customer, "channel": channel, "context": {"placement": "home"}})
        .to_string()
}

/// Starts the API of `settings` on a free port with one key (ids up to 16 characters);
/// answers its address and the key.
pub async fn start_api(
    settings: &mut Settings,
    store: Arc<RedisStore>,
) -> (std::net::SocketAddr, String) {
    let key = nbo_stream::api::keys::new_key();
    settings.api.listen = "127.0.0.1:0".into();
    settings.api.max_id_chars = 16;
    settings.api.keys = vec![ApiKey {
        name: "mobile-app".into(),
        sha256: nbo_stream::api::keys::hash_key(&key),
        rate_per_second: 1_000.0,
        burst: 100,
    }];
    let addr = nbo_stream::api::start_with(settings, store).await.unwrap();
    (addr, key)
}
