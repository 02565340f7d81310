//! `[api]`: inbound decisions over HTTP (`nbo-stream api`), for the channels that ask for the
//! best offers for a customer now (the app, the web site, the call centre, the branch).

use serde::Deserialize;

/// The channels every deployment knows; `api.channels` adds its own.
pub const BUILTIN_CHANNELS: [&str; 4] = ["APP", "WEB", "CALL_CENTRE", "BRANCH"];

/// One client of the API: a channel's system, with its key and its rate.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who holds the key (logs and metrics name it; never the key).
    pub name: String,
    /// The key's SHA-256, in hex, as `nbo-stream api --hash-key` prints it. The key itself is a
    /// random secret of at least 32 characters that the client sends in `Authorization: Bearer`;
    /// the configuration holds only its hash.
    pub sha256: String,
    /// Requests per second allowed on average, per API instance (N instances allow N times
    /// it); beyond the burst, a request gets 429.
    #[serde(default = "default_rate")]
    pub rate_per_second: f64,
    /// Requests allowed at once above the rate (the token bucket's size).
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_rate() -> f64 {
    500.0
}

fn default_burst() -> u32 {
    100
}

/// The API's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSettings {
    /// Address the API serves on.
    pub listen: String,
    /// The clients allowed in, each with its key's hash and rate. None: nothing answers (every
    /// request gets 401), so an API started without keys is closed, not open.
    #[serde(rename = "key")]
    pub keys: Vec<ApiKey>,
    /// Channels beyond the built-in APP, WEB, CALL_CENTRE and BRANCH (upper-case words).
    pub channels: Vec<String>,
    /// The largest request body, in bytes; a larger one gets 413.
    pub max_body_bytes: usize,
    /// The longest customer id, placement or intent, in characters; a longer one gets 400.
    pub max_id_chars: usize,
    /// The most offers one request may ask for.
    pub max_offers: usize,
    /// The most records (audit records and contacts) the outbox in Redis may hold while their
    /// topics do not take them (a broker down); beyond it, requests get 503 (no audit, no
    /// answer) rather than fill the Redis that holds the stream's state.
    pub outbox_max: u64,
    /// How long the API keeps the contacts it made in the customer's pending list
    /// (`nbo:inbound:{<customer-key>}`), merged into the state it reads until the stream has
    /// taken them from `bank.inbound-contacts.v1` and stored them. Longer than the stream's lag
    /// plus two `state.checkpoint_interval`s at its worst: a contact that outlives its pending
    /// entry before the stream stores it is not seen by the API's next decisions meanwhile.
    #[serde(with = "humantime_serde")]
    pub pending_contacts_ttl: std::time::Duration,
    /// How long a client may take to send a request's headers, and again its body: past it the
    /// connection is closed (headers) or the request gets 408 (body), so slow or stalled
    /// clients cannot hold connections and memory. Also bounds the TLS handshake, and how long
    /// a kept-alive connection may sit idle between requests (the wait for the next request's
    /// headers): a client's pool should drop idle connections sooner than this.
    #[serde(with = "humantime_serde")]
    pub read_timeout: std::time::Duration,
    /// TLS, and mutual TLS with `client_ca` (`[api.tls]`). Unset: plain HTTP, for an API
    /// behind a TLS-terminating proxy or service mesh.
    pub tls: Option<ApiTls>,
}

/// `[api.tls]`: the API serves HTTPS; with `client_ca`, only to clients presenting a
/// certificate that CA signs (mutual TLS), on top of their API keys.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiTls {
    /// PEM file with the server's certificate chain (its own certificate first).
    pub cert: std::path::PathBuf,
    /// PEM file with the server certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: std::path::PathBuf,
    /// PEM file with the CA certificates that sign the clients' certificates. Set: a client
    /// without such a certificate fails the handshake (mutual TLS).
    pub client_ca: Option<std::path::PathBuf>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8090".into(),
            keys: Vec::new(),
            channels: Vec::new(),
            max_body_bytes: 4_096,
            max_id_chars: 64,
            max_offers: 5,
            outbox_max: 1_000_000,
            pending_contacts_ttl: std::time::Duration::from_secs(3600),
            read_timeout: std::time::Duration::from_secs(30),
            tls: None,
        }
    }
}

impl ApiSettings {
    /// Checks the settings; the first problem as (field, reason).
    pub fn check(&self) -> Result<(), (String, String)> {
        for (i, key) in self.keys.iter().enumerate() {
            let field = |f: &str| format!("api.key[{i}].{f}");
            if key.name.trim().is_empty() {
                return Err((field("name"), "must not be empty".into()));
            }
            if key.sha256.len() != 64 || !key.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err((
                    field("sha256"),
                    "must be 64 hex digits, the SHA-256 of the key (`nbo-stream api --hash-key`)"
                        .into(),
                ));
            }
            if !(key.rate_per_second > 0.0 && key.rate_per_second.is_finite()) {
                return Err((field("rate_per_second"), "must be above 0".into()));
            }
            if key.burst == 0 {
                return Err((field("burst"), "must be at least 1".into()));
            }
            if self.keys[..i]
                .iter()
                .any(|k| k.sha256.eq_ignore_ascii_case(&key.sha256))
            {
                return Err((field("sha256"), "the same key is given twice".into()));
            }
        }
        for (i, c) in self.channels.iter().enumerate() {
            if c.is_empty() || !c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
                return Err((
                    format!("api.channels[{i}]"),
                    format!("{c:?}: a channel is an upper-case word (A-Z and _)"),
                ));
            }
        }
        if self.max_body_bytes < 256 {
            return Err(("api.max_body_bytes".into(), "must be at least 256".into()));
        }
        if self.read_timeout < std::time::Duration::from_millis(10) {
            return Err((
                "api.read_timeout".into(),
                "must be at least 10ms (30s by default)".into(),
            ));
        }
        if self.pending_contacts_ttl < std::time::Duration::from_secs(1) {
            return Err((
                "api.pending_contacts_ttl".into(),
                "must be at least 1s (longer than the stream's lag; an hour by default)".into(),
            ));
        }
        if self.max_id_chars == 0 || self.max_offers == 0 {
            let field = if self.max_offers == 0 {
                "api.max_offers"
            } else {
                "api.max_id_chars"
            };
            return Err((field.into(), "must be at least 1".into()));
        }
        Ok(())
    }

    /// Whether `channel` is one the API answers.
    pub fn knows_channel(&self, channel: &str) -> bool {
        BUILTIN_CHANNELS.contains(&channel) || self.channels.iter().any(|c| c == channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(sha256: &str) -> ApiKey {
        ApiKey {
            name: "app".into(),
            sha256: sha256.into(),
            rate_per_second: 10.0,
            burst: 5,
        }
    }

    #[test]
    fn a_bad_setting_is_refused_with_its_field() {
        let hash = "ab".repeat(32);
        let ok = ApiSettings {
            keys: vec![key(&hash)],
            channels: vec!["ATM".into()],
            ..ApiSettings::default()
        };
        assert_eq!(ok.check(), Ok(()));
        let field = |s: ApiSettings| s.check().unwrap_err().0;
        let short = ApiSettings {
            keys: vec![key("abc")],
            ..ok.clone()
        };
        assert_eq!(field(short), "api.key[0].sha256");
        let twice = ApiSettings {
            keys: vec![key(&hash), key(&hash)],
            ..ok.clone()
        };
        assert_eq!(field(twice), "api.key[1].sha256");
        let slow = ApiSettings {
            keys: vec![ApiKey {
                rate_per_second: 0.0,
                ..key(&hash)
            }],
            ..ok.clone()
        };
        assert_eq!(field(slow), "api.key[0].rate_per_second");
        let lower = ApiSettings {
            channels: vec!["kiosk".into()],
            ..ok.clone()
        };
        assert_eq!(field(lower), "api.channels[0]");
        let none = ApiSettings {
            max_offers: 0,
            ..ok
        };
        assert_eq!(field(none), "api.max_offers");
    }
}
