//! `[schema_registry]`: where the Confluent Schema Registry is and how to authenticate to it.

use super::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// The `[schema_registry]` section of the configuration.
///
/// ```toml
/// [schema_registry]
/// url = "https://schema-registry.kafka:8081"
/// username = "nbo-stream"              # the password comes from NBO_SCHEMA_REGISTRY__PASSWORD
/// ca_file = "/etc/nbo-stream/tls/registry-ca.pem"
/// timeout = "5s"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrySettings {
    /// Base URL of the Schema Registry (`http://` or `https://`, no user or password in it).
    /// Unset: no registry; input schema ids are the static `codec.schema_ids`.
    pub url: Option<String>,
    /// Basic-auth user (for Confluent Cloud, the API key).
    pub username: Option<String>,
    /// Basic-auth password (Confluent Cloud: the API secret). Only from the environment
    /// variable `NBO_SCHEMA_REGISTRY__PASSWORD`: a configuration file that sets it is refused.
    /// Prints as `***`.
    pub password: Option<Secret>,
    /// PEM bundle of the CA certificates that sign the registry's TLS certificate, added to the
    /// system's roots. Only with an `https://` URL.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; set with `client_key_file` or not at all.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Longest one request (connect, send, answer) may take before it counts as the registry
    /// being unavailable and is retried.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for RegistrySettings {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            // A registry answers a lookup in milliseconds; 5 s rides out a GC pause or a leader
            // change without holding a partition's first record of a new id for long.
            timeout: Duration::from_secs(5),
        }
    }
}

impl RegistrySettings {
    /// The settings' own rules, as `(field, reason)`; `config::Settings::validate` reports them.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(url) = &self.url {
            let rest = url
                .strip_prefix("https://")
                .or_else(|| url.strip_prefix("http://"));
            let Some(rest) = rest else {
                return Err((
                    "schema_registry.url",
                    format!("{url:?} must start with http:// or https://"),
                ));
            };
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.is_empty() {
                return Err(("schema_registry.url", format!("{url:?} names no host")));
            }
            if authority.contains('@') {
                return Err((
                    "schema_registry.url",
                    "must not carry a user or password: set schema_registry.username and NBO_SCHEMA_REGISTRY__PASSWORD".into(),
                ));
            }
            let tls_files = self.ca_file.is_some() || self.client_cert_file.is_some();
            if tls_files && url.starts_with("http://") {
                return Err((
                    "schema_registry.ca_file",
                    "TLS files are set but the url is http://; use https://".into(),
                ));
            }
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err((
                "schema_registry.client_cert_file",
                "mutual TLS needs both client_cert_file and client_key_file, or neither".into(),
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err((
                "schema_registry.username",
                "NBO_SCHEMA_REGISTRY__PASSWORD is set but no username".into(),
            ));
        }
        if self.timeout.is_zero() {
            return Err(("schema_registry.timeout", "must be positive".into()));
        }
        Ok(())
    }
}
