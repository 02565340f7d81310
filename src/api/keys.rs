//! Who may ask: API keys, stored hashed in the configuration (`api.key`), each with a token
//! bucket that bounds its rate.
//!
//! A key is a random secret of at least 32 characters: a fast hash (SHA-256) is enough to keep
//! it out of the configuration, where a password would need a slow one. The lookup compares
//! hashes, so no comparison runs in time that depends on how much of a key was right.

use crate::config::api::ApiKey;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The shortest key accepted.
pub const MIN_KEY_CHARS: usize = 32;

/// The SHA-256 of `key`, in hex, as `api.key[].sha256` holds it.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key (48 hex characters of 192 random bits), for `nbo-stream api --new-key`.
pub fn new_key() -> String {
    let mut bytes = [0u8; 24];
    rand::Rng::fill(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

/// One client: its name and its bucket.
#[derive(Debug)]
pub struct Client {
    /// Who holds the key.
    pub name: String,
    rate: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl Client {
    /// Takes one token from the bucket: `false` when the client is over its rate.
    pub fn admit(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = *bucket;
        let now = Instant::now();
        let refilled = (tokens + now.duration_since(at).as_secs_f64() * self.rate).min(self.burst);
        if refilled < 1.0 {
            *bucket = (refilled, now);
            return false;
        }
        *bucket = (refilled - 1.0, now);
        true
    }
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No `Authorization: Bearer` key.
    NoKey,
    /// A key that is not configured.
    WrongKey,
    /// The key's client is over its rate.
    OverRate,
}

/// The configured keys, by hash.
#[derive(Debug, Default)]
pub struct Keys {
    by_hash: HashMap<[u8; 32], Client>,
}

impl Keys {
    /// The keys of `api.key` (checked by `ApiSettings::check`).
    pub fn new(keys: &[ApiKey]) -> Self {
        let by_hash = keys
            .iter()
            .filter_map(|k| {
                let hash: [u8; 32] = hex::decode(&k.sha256).ok()?.try_into().ok()?;
                let burst = f64::from(k.burst);
                let client = Client {
                    name: k.name.clone(),
                    rate: k.rate_per_second,
                    burst,
                    bucket: Mutex::new((burst, Instant::now())),
                };
                Some((hash, client))
            })
            .collect();
        Self { by_hash }
    }

    /// The client whose key is in `authorization` (the header's value), if it may ask now.
    pub fn admit(&self, authorization: Option<&str>) -> Result<&Client, Refused> {
        let key = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(Refused::NoKey)?;
        let hash: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let client = self.by_hash.get(&hash).ok_or(Refused::WrongKey)?;
        if client.admit() {
            Ok(client)
        } else {
            Err(Refused::OverRate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(rate: f64, burst: u32) -> (Keys, String) {
        let key = new_key();
        let config = ApiKey {
            name: "app".into(),
            sha256: hash_key(&key),
            rate_per_second: rate,
            burst,
        };
        (Keys::new(&[config]), key)
    }

    #[test]
    fn only_a_configured_key_is_let_in() {
        let (keys, key) = keys(100.0, 10);
        assert!(key.len() >= MIN_KEY_CHARS);
        assert_eq!(keys.admit(None).unwrap_err(), Refused::NoKey);
        assert_eq!(keys.admit(Some(&key)).unwrap_err(), Refused::NoKey);
        assert_eq!(
            keys.admit(Some("Bearer not-the-key")).unwrap_err(),
            Refused::WrongKey
        );
        assert_eq!(
            keys.admit(Some(&format!("Bearer {key}"))).unwrap().name,
            "app"
        );
    }

    #[test]
    fn a_client_over_its_burst_is_refused_until_the_rate_refills() {
        let (keys, key) = keys(1_000.0, 3);
        let header = format!("Bearer {key}");
        for _ in 0..3 {
            assert!(keys.admit(Some(&header)).is_ok());
        }
        assert_eq!(keys.admit(Some(&header)).unwrap_err(), Refused::OverRate);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(keys.admit(Some(&header)).is_ok(), "1,000/s refills in 1 ms");
    }
}
