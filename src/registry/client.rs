//! [`Registry`]: the Confluent Schema Registry REST calls this program makes, on the
//! `schema_registry_converter` crate, with every failure sorted into [`RegistryError`].
//!
//! The crate makes the calls it has a function for (schema by id, register, latest version,
//! subjects). The compatibility check is made here with the same HTTP settings, because the
//! crate's answers only `true`/`false` and a release pipeline needs the registry's reasons
//! (`?verbose=true`).

use super::RegistryError;
use crate::config::{RegistrySettings, Secret};
use schema_registry_converter::async_impl::schema_registry as sr;
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    RawError, SchemaType, SrCall, SuppliedSchema,
};
use std::collections::HashMap;
use std::error::Error as _;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The media type of every Schema Registry request and answer.
const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A Schema Registry client: cheap to clone (one `Arc`), `Send + Sync`, safe to share between
/// workers. Its `Debug` shows the URL and user, never the password.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    /// Base URL without a trailing `/`.
    url: String,
    /// The crate's settings: URL, basic auth, HTTP client.
    sr: sr::SrSettings,
    /// An HTTP client with the same TLS and timeout, for the calls made here.
    http: reqwest::Client,
    username: Option<String>,
    password: Option<Secret>,
    timeout: Duration,
    /// Schema text by id. A registry never changes the schema of an id, so an answer is kept
    /// for the life of the client (and its clones): each id is fetched once.
    by_id: RwLock<HashMap<u32, String>>,
}

/// The latest version of a subject, as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The subject, e.g. `bank.transactions.v1-value`.
    pub subject: String,
    /// Version within the subject, from 1.
    pub version: u32,
    /// Global schema id (what the Confluent framing carries).
    pub id: u32,
    /// The schema JSON text.
    pub schema: String,
}

/// The registry's verdict on a schema against a subject's latest version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatibility {
    /// True when the subject's compatibility level (BACKWARD unless changed) allows the schema.
    pub compatible: bool,
    /// The registry's reasons when it is not (empty when compatible).
    pub messages: Vec<String>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("url", &self.inner.url)
            .field("username", &self.inner.username)
            .field("password", &self.inner.password)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A client for the registry `settings` names. Fails when no URL is set, the settings break
    /// their rules, or a TLS file cannot be read or parsed. Makes no request.
    pub fn new(settings: &RegistrySettings) -> Result<Self, RegistryError> {
        let config = |reason: String| RegistryError::Config { reason };
        let Some(url) = settings.url.as_deref() else {
            return Err(config(
                "schema_registry.url is not set (or NBO_SCHEMA_REGISTRY__URL)".into(),
            ));
        };
        settings
            .check()
            .map_err(|(field, reason)| config(format!("{field}: {reason}")))?;
        let url = url.trim_end_matches('/').to_string();
        let tls = Tls::read(settings)?;
        let mut builder = sr::SrSettings::new_builder(url.clone());
        builder.set_timeout(settings.timeout);
        if let Some(user) = &settings.username {
            builder.set_basic_authorization(user, settings.password.as_ref().map(Secret::expose));
        }
        let sr = builder
            .build_with(tls.client_builder(settings.timeout))
            .map_err(|e| config(format!("cannot build the HTTP client: {}", e.error)))?;
        let http = tls
            .client_builder(settings.timeout)
            .build()
            .map_err(|e| config(format!("cannot build the HTTP client: {}", chain(&e))))?;
        Ok(Self {
            inner: Arc::new(Inner {
                url,
                sr,
                http,
                username: settings.username.clone(),
                password: settings.password.clone(),
                timeout: settings.timeout,
                by_id: RwLock::default(),
            }),
        })
    }

    /// The registry's base URL (for messages).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The writer schema (JSON text) of schema id `id`. Fetched once per id and kept. An id the
    /// registry does not know, or one whose schema is not Avro, is
    /// [`RegistryError::NotFound`].
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        if let Some(schema) = self.cached(id) {
            return Ok(schema);
        }
        let what = || format!("schema id {id}");
        let found = sr::get_schema_by_id(id, &self.inner.sr)
            .await
            .map_err(|e| self.classify(&e, what()))?;
        if found.schema_type != SchemaType::Avro {
            return Err(RegistryError::NotFound {
                what: format!("Avro schema with id {id} (it is {:?})", found.schema_type),
            });
        }
        if let Ok(mut cache) = self.inner.by_id.write() {
            cache.insert(id, found.schema.clone());
        }
        Ok(found.schema)
    }

    fn cached(&self, id: u32) -> Option<String> {
        self.inner.by_id.read().ok()?.get(&id).cloned()
    }

    /// Registers `schema_json` (Avro) under `subject` and returns its id. Registering the same
    /// schema again returns the same id and adds no version. A schema the subject's
    /// compatibility level refuses is [`RegistryError::Refused`] with status 409.
    pub async fn register(&self, subject: &str, schema_json: &str) -> Result<u32, RegistryError> {
        let schema = SuppliedSchema::new(None, SchemaType::Avro, schema_json.to_string());
        let registered = sr::post_schema(&self.inner.sr, subject.to_string(), schema)
            .await
            .map_err(|e| self.classify(&e, format!("subject {subject}")))?;
        Ok(registered.id)
    }

    /// The latest version of `subject`, or `None` when the subject does not exist.
    pub async fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, RegistryError> {
        match sr::get_schema_by_subject_and_version(&self.inner.sr, subject, None).await {
            Ok(found) => {
                let version = found.version.ok_or_else(|| RegistryError::Unavailable {
                    reason: format!(
                        "{}: the latest version of {subject} came without a version number",
                        self.inner.url
                    ),
                })?;
                Ok(Some(RegisteredSchema {
                    subject: subject.to_string(),
                    version,
                    id: found.id,
                    schema: found.schema,
                }))
            }
            Err(e) => match self.classify(&e, format!("subject {subject}")) {
                RegistryError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The version and id under which `subject` holds `schema_json` (compared by the registry,
    /// on the parsed schema), or `None` when the subject does not exist or does not hold it.
    pub async fn lookup(
        &self,
        subject: &str,
        schema_json: &str,
    ) -> Result<Option<RegisteredSchema>, RegistryError> {
        let body = serde_json::json!({ "schema": schema_json, "schemaType": "AVRO" }).to_string();
        let call = SrCall::PostForVersion(subject, &body);
        match sr::perform_sr_call(&self.inner.sr, call).await {
            Ok(raw) => match (raw.version, raw.id) {
                (Some(version), Some(id)) => Ok(Some(RegisteredSchema {
                    subject: subject.to_string(),
                    version,
                    id,
                    schema: raw.schema.unwrap_or_else(|| schema_json.to_string()),
                })),
                _ => Err(RegistryError::Unavailable {
                    reason: format!(
                        "{}: the lookup in {subject} came without a version or id",
                        self.inner.url
                    ),
                }),
            },
            Err(e) => match self.classify(&e, format!("subject {subject}")) {
                RegistryError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Whether `schema_json` may be registered under `subject` next, by the subject's
    /// compatibility level (BACKWARD unless changed: the new schema can read data written with
    /// the latest version), with the registry's reasons. A subject that does not exist is
    /// [`RegistryError::NotFound`]: there is nothing to be compatible with.
    pub async fn is_compatible(
        &self,
        subject: &str,
        schema_json: &str,
    ) -> Result<Compatibility, RegistryError> {
        #[derive(serde::Deserialize)]
        struct Answer {
            is_compatible: bool,
            #[serde(default)]
            messages: Vec<String>,
        }
        let url = format!(
            "{}/compatibility/subjects/{}/versions/latest?verbose=true",
            self.inner.url,
            path_segment(subject)
        );
        let body = serde_json::json!({ "schema": schema_json, "schemaType": "AVRO" }).to_string();
        let mut request = self
            .inner
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, MEDIA_TYPE)
            .header(reqwest::header::ACCEPT, MEDIA_TYPE)
            .body(body);
        if let Some(user) = &self.inner.username {
            request = request.basic_auth(user, self.inner.password.as_ref().map(Secret::expose));
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| self.transport(&e))?;
        if !(200..300).contains(&status) {
            let raw: Option<RawError> = serde_json::from_str(&text).ok();
            let (code, message) = raw.map_or((0, text), |r| (r.error_code, r.message));
            return Err(self.http_error(status, code, &message, format!("subject {subject}")));
        }
        let answer: Answer =
            serde_json::from_str(&text).map_err(|e| RegistryError::Unavailable {
                reason: format!(
                    "{}: compatibility answer not understood ({e})",
                    self.inner.url
                ),
            })?;
        Ok(Compatibility {
            compatible: answer.is_compatible,
            messages: if answer.is_compatible {
                Vec::new()
            } else {
                answer.messages
            },
        })
    }

    /// Every subject the registry holds.
    pub async fn subjects(&self) -> Result<Vec<String>, RegistryError> {
        sr::get_all_subjects(&self.inner.sr)
            .await
            .map_err(|e| self.classify(&e, "subjects".into()))
    }

    /// Sorts a failure of the crate's calls. An HTTP error answer carries the registry's
    /// `RawError` as its source and the status in its text; a failure to connect or to read
    /// the answer carries the `reqwest::Error`.
    fn classify(&self, e: &SRCError, what: String) -> RegistryError {
        let source = e.source();
        if let Some(raw) = source.and_then(|s| s.downcast_ref::<RawError>()) {
            let status = status_in(&e.error).unwrap_or(match raw.error_code {
                code @ 10_000..=59_999 => (code / 100) as u16,
                code @ 100..=599 => code as u16,
                _ => 0,
            });
            return self.http_error(status, raw.error_code, &raw.message, what);
        }
        if let Some(transport) = source.and_then(|s| s.downcast_ref::<reqwest::Error>()) {
            return self.transport(transport);
        }
        RegistryError::Unavailable {
            reason: format!("{}: answer not understood ({})", self.inner.url, e.error),
        }
    }

    /// Sorts an HTTP error answer by status and Confluent error code.
    fn http_error(&self, status: u16, code: u32, message: &str, what: String) -> RegistryError {
        let url = &self.inner.url;
        match status {
            // Confluent's 404s carry 404xx codes (40401 subject, 40402 version, 40403 schema);
            // a bare 404 comes from something else at that URL.
            404 if (40_400..40_500).contains(&code) => RegistryError::NotFound { what },
            404 => RegistryError::Refused {
                status,
                reason: format!(
                    "{url} answered 404 without a Schema Registry error code: check schema_registry.url"
                ),
            },
            408 | 429 | 500..=599 => RegistryError::Unavailable {
                reason: format!("{url} answered HTTP {status}: {message}"),
            },
            401 => RegistryError::Refused {
                status,
                reason: format!(
                    "{url} did not accept the credentials ({message}): check schema_registry.username and NBO_SCHEMA_REGISTRY__PASSWORD"
                ),
            },
            403 => RegistryError::Refused {
                status,
                reason: format!(
                    "{url} does not allow user {} this call on {what} ({message}): ask the registry's administrators for the permission",
                    self.inner.username.as_deref().unwrap_or("(anonymous)")
                ),
            },
            409 => RegistryError::Refused {
                status,
                reason: format!(
                    "{what}: {message} (the subject's compatibility level refuses this schema)"
                ),
            },
            422 => RegistryError::Refused {
                status,
                reason: format!("{what}: invalid schema or request: {message}"),
            },
            _ => RegistryError::Refused {
                status,
                reason: format!("{url}: {what}: {message}"),
            },
        }
    }

    /// A request that got no HTTP answer, or whose answer could not be read: transient.
    fn transport(&self, e: &reqwest::Error) -> RegistryError {
        let url = &self.inner.url;
        let reason = if e.is_timeout() {
            format!("{url}: no answer within {:?}", self.inner.timeout)
        } else if e.is_connect() {
            format!("{url}: cannot connect ({})", innermost(e))
        } else if e.is_decode() {
            format!("{url}: answer not understood ({})", innermost(e))
        } else {
            format!("{url}: {}", chain(e))
        };
        RegistryError::Unavailable { reason }
    }
}

/// The HTTP status in the crate's error text ("... failed with status 404 Not Found").
fn status_in(text: &str) -> Option<u16> {
    let (_, rest) = text.rsplit_once("status ")?;
    rest.get(..3)?.parse().ok()
}

/// A subject as one URL path segment (subjects may hold `/`; topic names never do).
fn path_segment(subject: &str) -> String {
    subject.replace('%', "%25").replace('/', "%2F")
}

/// The innermost cause of an error (e.g. "Connection refused (os error 111)").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// An error and its causes, `: `-separated.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// The TLS material of the settings, read once from its files.
struct Tls {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
}

impl Tls {
    fn read(settings: &RegistrySettings) -> Result<Self, RegistryError> {
        let read = |field: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|e| RegistryError::Config {
                reason: format!("schema_registry.{field} {}: {e}", path.display()),
            })
        };
        let roots = match &settings.ca_file {
            None => Vec::new(),
            Some(path) => {
                let pem = read("ca_file", path)?;
                let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    RegistryError::Config {
                        reason: format!(
                            "schema_registry.ca_file {}: not a PEM certificate bundle ({})",
                            path.display(),
                            chain(&e)
                        ),
                    }
                })?;
                if roots.is_empty() {
                    return Err(RegistryError::Config {
                        reason: format!(
                            "schema_registry.ca_file {}: holds no PEM certificate",
                            path.display()
                        ),
                    });
                }
                roots
            }
        };
        let identity = match (&settings.client_cert_file, &settings.client_key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read("client_cert_file", cert)?;
                pem.push(b'\n');
                pem.extend(read("client_key_file", key)?);
                let identity =
                    reqwest::Identity::from_pem(&pem).map_err(|e| RegistryError::Config {
                        reason: format!(
                            "schema_registry.client_cert_file {} with client_key_file {}: not a PEM certificate and key ({})",
                            cert.display(),
                            key.display(),
                            chain(&e)
                        ),
                    })?;
                Some(identity)
            }
            _ => None,
        };
        Ok(Self { roots, identity })
    }

    /// An HTTP client builder with these roots, this identity and `timeout` on every request.
    fn client_builder(&self, timeout: Duration) -> reqwest::ClientBuilder {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .tls_certs_merge(self.roots.iter().cloned());
        if let Some(identity) = &self.identity {
            builder = builder.identity(identity.clone());
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_from_the_crates_error_text() {
        assert_eq!(
            status_in("HTTP request to schema registry failed with status 404 Not Found"),
            Some(404)
        );
        assert_eq!(status_in("could not parse to RawRegisteredSchema"), None);
    }

    #[test]
    fn debug_never_shows_the_password() {
        let settings = RegistrySettings {
            url: Some("http://registry:8081".into()),
            username: Some("nbo".into()),
            password: Some(Secret::new("hunter2-registry")),
            ..RegistrySettings::default()
        };
        let registry = Registry::new(&settings).unwrap();
        let shown = format!("{registry:?} {settings:?}");
        assert!(!shown.contains("hunter2-registry"), "{shown}");
        assert!(shown.contains("registry:8081"), "{shown}");
    }

    #[test]
    fn no_url_and_unreadable_tls_files_are_config_errors() {
        let none = Registry::new(&RegistrySettings::default()).unwrap_err();
        assert!(matches!(none, RegistryError::Config { .. }), "{none}");
        let settings = RegistrySettings {
            url: Some("https://registry:8081".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..RegistrySettings::default()
        };
        let err = Registry::new(&settings).unwrap_err().to_string();
        assert!(
            err.contains("ca_file") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn http_errors_are_sorted_by_what_the_caller_should_do() {
        let registry = Registry::new(&RegistrySettings {
            url: Some("http://registry:8081".into()),
            username: Some("nbo".into()),
            ..RegistrySettings::default()
        })
        .unwrap();
        let sort = |status, code| registry.http_error(status, code, "msg", "schema id 7".into());
        for (status, code) in [(500, 50001), (502, 0), (503, 50301), (408, 0), (429, 42901)] {
            assert!(sort(status, code).is_transient(), "{status} is transient");
        }
        assert_eq!(
            sort(404, 40403),
            RegistryError::NotFound {
                what: "schema id 7".into()
            }
        );
        let bare_404 = sort(404, 404);
        assert!(
            matches!(&bare_404, RegistryError::Refused { status: 404, reason } if reason.contains("schema_registry.url")),
            "a 404 without a Schema Registry code is a wrong URL, not an unknown id: {bare_404:?}"
        );
        assert!(sort(401, 40101)
            .to_string()
            .contains("NBO_SCHEMA_REGISTRY__PASSWORD"));
        assert!(sort(403, 40301).to_string().contains("nbo"));
        for status in [401, 403, 409, 422] {
            assert!(!sort(status, 0).is_transient(), "{status} is permanent");
        }
    }

    #[test]
    fn the_crates_error_answers_are_read_for_status_and_code() {
        let registry = Registry::new(&RegistrySettings {
            url: Some("http://registry:8081".into()),
            ..RegistrySettings::default()
        })
        .unwrap();
        let crate_error = |status: &str, body: &str| {
            let raw: RawError = serde_json::from_str(body).unwrap();
            SRCError::non_retryable_with_cause(
                raw,
                &format!("HTTP request to schema registry failed with status {status}"),
            )
        };
        let not_found = crate_error(
            "404 Not Found",
            r#"{"error_code":40403,"message":"Schema 7 not found"}"#,
        );
        assert!(matches!(
            registry.classify(&not_found, "schema id 7".into()),
            RegistryError::NotFound { .. }
        ));
        let unavailable = crate_error(
            "500 Internal Server Error",
            r#"{"error_code":50001,"message":"Error in the backend data store"}"#,
        );
        assert!(registry
            .classify(&unavailable, "schema id 7".into())
            .is_transient());
        let odd = SRCError::non_retryable_without_cause("Could not get id from response");
        assert!(registry.classify(&odd, "schema id 7".into()).is_transient());
    }

    #[test]
    fn a_subject_is_one_path_segment() {
        assert_eq!(
            path_segment("bank.transactions.v1-value"),
            "bank.transactions.v1-value"
        );
        assert_eq!(path_segment("a/b"), "a%2Fb");
    }
}
