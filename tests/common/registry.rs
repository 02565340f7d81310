//! A Confluent Schema Registry for tests, served from the test process.
//!
//! The real one is a Java service (a Docker image or Maven artefact) that cannot be installed on
//! the build machines, so the tests serve the documented REST subset this program uses:
//!
//! | call | answer |
//! |---|---|
//! | `GET /schemas/ids/{id}` | `{"schema"}`; 40403 if unknown |
//! | `GET /subjects` | the subjects |
//! | `GET /subjects/{s}/versions` | the versions; 40401 if no such subject |
//! | `GET /subjects/{s}/versions/{v\|latest}` | `{"subject","version","id","schema"}`; 40401, 40402 |
//! | `POST /subjects/{s}/versions` | register: `{"id"}`; the same schema (parsed canonical form) keeps its id, ids are global and increase from 1; a schema the latest version refuses (BACKWARD) is 409 |
//! | `POST /subjects/{s}` | lookup: `{"subject","version","id","schema"}`; 40401, 40403 |
//! | `POST /compatibility/subjects/{s}/versions[/{v\|latest}]` | `{"is_compatible","messages"}` |
//!
//! BACKWARD, as Confluent's default: the new schema must read what the old one wrote
//! (`SchemaCompatibility::can_read(writer = old, reader = new)`, fully; a partial match, such as
//! an enum symbol of the old schema missing from the new one with no default, is refused).
//! Errors are Confluent's bodies (`{"error_code","message"}`) with its media type. Optional
//! basic auth: without the configured user and password every call is 401. Optional TLS, with
//! or without client certificates ([`TestRegistry::start_tls`]).
//!
//! The server runs on its own runtime thread for as long as the [`TestRegistry`] lives, so that
//! sync tests and `nbo-stream` subprocesses can use it too. No method needs a tokio context:
//! sync tests call the async ones through `futures::executor::block_on`.

use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::Schema;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const MEDIA_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A Schema Registry on `127.0.0.1:<port>`; stops when dropped.
pub struct TestRegistry {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    runtime: Option<tokio::runtime::Runtime>,
    server: Mutex<Option<Server>>,
}

/// The serving task and its stop switch.
struct Server {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    state: Mutex<State>,
    /// Expected `Authorization` header, if auth is on.
    authorization: Option<String>,
}

#[derive(Default)]
struct State {
    /// Schema of id `i + 1`: (text as first registered, parsed canonical form).
    schemas: Vec<(String, String)>,
    /// Per subject, the id of each version (version `v` at index `v - 1`).
    subjects: BTreeMap<String, Vec<u32>>,
    /// `GET /schemas/ids/{id}` served, per id.
    id_requests: HashMap<u32, usize>,
}

/// An error answer: status, Confluent error code, message.
type Refusal = (StatusCode, u32, String);

impl TestRegistry {
    /// A registry without auth on a free port.
    pub async fn start() -> TestRegistry {
        Self::launch(None, None)
    }

    /// A registry that answers 401 unless the request carries basic auth `user`/`pass`.
    pub async fn start_with_auth(user: &str, pass: &str) -> TestRegistry {
        Self::launch(
            Some(format!(
                "Basic {}",
                base64(format!("{user}:{pass}").as_bytes())
            )),
            None,
        )
    }

    /// A registry without auth, over TLS with the PEM certificate chain `cert` and key `key`
    /// (for `localhost`); with `client_ca`, a client must present a certificate it signs.
    pub async fn start_tls(cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> TestRegistry {
        // The API's own acceptor: the same rustls configuration, from the PEM texts.
        let tls = nbo_stream::api::serve::acceptor_from_pem(cert, key, client_ca)
            .unwrap_or_else(|(field, why)| panic!("test TLS {field}: {why}"));
        Self::launch(None, Some(tls))
    }

    fn launch(
        authorization: Option<String>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> TestRegistry {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("test-registry")
            .enable_all()
            .build()
            .expect("test registry runtime");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind test registry");
        let addr = listener.local_addr().expect("test registry address");
        let shared = Arc::new(Shared {
            state: Mutex::default(),
            authorization,
        });
        let server = serve(&runtime, listener, shared.clone(), tls.clone());
        TestRegistry {
            shared,
            addr,
            tls,
            runtime: Some(runtime),
            server: Mutex::new(Some(server)),
        }
    }

    /// `http://127.0.0.1:<port>`, or `https://localhost:<port>` with TLS.
    pub fn url(&self) -> String {
        match self.tls {
            None => format!("http://{}", self.addr),
            Some(_) => format!("https://localhost:{}", self.addr.port()),
        }
    }

    /// Registers `schema_json` under `subject` directly, without HTTP and without the
    /// compatibility check (to set up any history, compatible or not); returns its id.
    pub fn register(&self, subject: &str, schema_json: &str) -> u32 {
        let mut state = self.shared.state.lock().unwrap();
        match state.register(subject, schema_json, false) {
            Ok(id) => id,
            Err((_, _, message)) => panic!("TestRegistry::register({subject}): {message}"),
        }
    }

    /// Stops listening, as in a real outage: new connections are refused and open ones are
    /// closed. The registered schemas are kept.
    pub async fn down(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            let _ = server.stop.send(true);
            let _ = server.task.await;
        }
    }

    /// Listens again, on the same port.
    pub async fn up(&self) {
        if self.server.lock().unwrap().is_some() {
            return;
        }
        let mut tries = 0;
        let listener = loop {
            match std::net::TcpListener::bind(self.addr) {
                Ok(listener) => break listener,
                Err(e) if tries < 50 => {
                    tries += 1;
                    eprintln!("test registry: rebinding {}: {e}", self.addr);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("test registry: cannot listen on {} again: {e}", self.addr),
            }
        };
        let runtime = self.runtime.as_ref().expect("runtime lives until drop");
        let server = serve(runtime, listener, self.shared.clone(), self.tls.clone());
        *self.server.lock().unwrap() = Some(server);
    }

    /// How many `GET /schemas/ids/{id}` requests were answered for `id`.
    pub fn requests_for_id(&self, id: u32) -> usize {
        let state = self.shared.state.lock().unwrap();
        state.id_requests.get(&id).copied().unwrap_or(0)
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        if let Ok(mut server) = self.server.lock() {
            if let Some(server) = server.take() {
                let _ = server.stop.send(true);
            }
        }
        // Never blocks, so a registry may be dropped inside an async test.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Serves `listener` on `runtime` until the returned switch is flipped; then the listener and
/// every open connection are closed.
fn serve(
    runtime: &tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Server {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let shared = shared.clone();
            async move { handle(&shared, method, uri, headers, body) }
        },
    );
    let task = runtime.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let service = TowerToHyperService::new(app.clone());
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let http = hyper::server::conn::http1::Builder::new();
                        let _ = match tls {
                            None => http.serve_connection(TokioIo::new(stream), service).await,
                            Some(tls) => match tls.accept(stream).await {
                                Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                                Err(_) => return,
                            },
                        };
                    });
                }
            }
        }
        // Dropping the set aborts every connection; dropping the listener refuses new ones.
        connections.shutdown().await;
    });
    Server { stop, task }
}

fn handle(shared: &Shared, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(expected) = &shared.authorization {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if given != Some(expected.as_str()) {
            let mut response = answer(Err((StatusCode::UNAUTHORIZED, 401, "Unauthorized".into())));
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"SchemaRegistry\""),
            );
            return response;
        }
    }
    let segments: Vec<String> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut state = shared.state.lock().unwrap();
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, ["schemas", "ids", id]) => state.schema_by_id(id),
        (&Method::GET, ["subjects"]) => Ok(json!(state.subjects.keys().collect::<Vec<_>>())),
        (&Method::GET, ["subjects", subject, "versions"]) => state
            .versions(subject)
            .map(|ids| json!((1..=ids.len()).collect::<Vec<_>>())),
        (&Method::GET, ["subjects", subject, "versions", version]) => {
            state.version(subject, version)
        }
        (&Method::POST, ["subjects", subject, "versions"]) => schema_in(&body)
            .and_then(|schema| state.register(subject, &schema, true))
            .map(|id| json!({ "id": id })),
        (&Method::POST, ["subjects", subject]) => {
            schema_in(&body).and_then(|schema| state.lookup(subject, &schema))
        }
        (&Method::POST, ["compatibility", "subjects", subject, "versions"]) => {
            schema_in(&body).and_then(|schema| state.compatibility(subject, "latest", &schema))
        }
        (&Method::POST, ["compatibility", "subjects", subject, "versions", version]) => {
            schema_in(&body).and_then(|schema| state.compatibility(subject, version, &schema))
        }
        _ => Err((StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found".into())),
    };
    answer(result)
}

impl State {
    fn schema_by_id(&mut self, id: &str) -> Result<Value, Refusal> {
        let not_found = || {
            (
                StatusCode::NOT_FOUND,
                40403,
                format!("Schema {id} not found"),
            )
        };
        let id: u32 = id.parse().map_err(|_| not_found())?;
        let (text, _) = self
            .schemas
            .get((id as usize).wrapping_sub(1))
            .ok_or_else(not_found)?;
        let text = text.clone();
        *self.id_requests.entry(id).or_default() += 1;
        Ok(json!({ "schema": text }))
    }

    fn versions(&self, subject: &str) -> Result<&Vec<u32>, Refusal> {
        self.subjects.get(subject).ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                40401,
                format!("Subject '{subject}' not found."),
            )
        })
    }

    /// `(version, id)` of `version` (a number or `latest`) in `subject`.
    fn resolve(&self, subject: &str, version: &str) -> Result<(u32, u32), Refusal> {
        let ids = self.versions(subject)?;
        let not_found = || {
            (
                StatusCode::NOT_FOUND,
                40402,
                format!("Version {version} not found."),
            )
        };
        let number = match version {
            "latest" | "-1" => ids.len(),
            v => v.parse().map_err(|_| not_found())?,
        };
        let id = *ids.get(number.wrapping_sub(1)).ok_or_else(not_found)?;
        Ok((number as u32, id))
    }

    fn version(&self, subject: &str, version: &str) -> Result<Value, Refusal> {
        let (version, id) = self.resolve(subject, version)?;
        Ok(self.described(subject, version, id))
    }

    fn described(&self, subject: &str, version: u32, id: u32) -> Value {
        let text = &self.schemas[id as usize - 1].0;
        json!({ "subject": subject, "version": version, "id": id, "schema": text })
    }

    fn register(&mut self, subject: &str, text: &str, check: bool) -> Result<u32, Refusal> {
        let canonical = parse(text)?.canonical_form();
        let existing = self.schemas.iter().position(|(_, c)| *c == canonical);
        let id = existing.map(|i| i as u32 + 1);
        let versions = self.subjects.get(subject);
        if let (Some(id), Some(versions)) = (id, versions) {
            if versions.contains(&id) {
                return Ok(id);
            }
        }
        if check && versions.is_some() {
            let verdict = self.backward(subject, "latest", text)?;
            if !verdict.0 {
                return Err((
                    StatusCode::CONFLICT,
                    409,
                    format!(
                        "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]",
                        verdict.1.join(", ")
                    ),
                ));
            }
        }
        let id = id.unwrap_or_else(|| {
            self.schemas.push((text.to_string(), canonical));
            self.schemas.len() as u32
        });
        self.subjects
            .entry(subject.to_string())
            .or_default()
            .push(id);
        Ok(id)
    }

    fn lookup(&self, subject: &str, text: &str) -> Result<Value, Refusal> {
        let canonical = parse(text)?.canonical_form();
        let ids = self.versions(subject)?;
        ids.iter()
            .position(|id| self.schemas[*id as usize - 1].1 == canonical)
            .map(|i| self.described(subject, i as u32 + 1, ids[i]))
            .ok_or_else(|| (StatusCode::NOT_FOUND, 40403, "Schema not found".into()))
    }

    fn compatibility(&self, subject: &str, version: &str, text: &str) -> Result<Value, Refusal> {
        let (compatible, messages) = self.backward(subject, version, text)?;
        Ok(json!({ "is_compatible": compatible, "messages": messages }))
    }

    /// BACKWARD: can `text` (the new schema, as reader) read what `version` wrote?
    fn backward(
        &self,
        subject: &str,
        version: &str,
        text: &str,
    ) -> Result<(bool, Vec<String>), Refusal> {
        let new = parse(text)?;
        let (number, id) = self.resolve(subject, version)?;
        let old = parse(&self.schemas[id as usize - 1].0)?;
        Ok(match SchemaCompatibility::can_read(&old, &new) {
            Ok(Compatibility::Full) => (true, Vec::new()),
            Ok(Compatibility::Partial) => (
                false,
                vec![format!(
                    "the new schema can read only some records of version {number}: a symbol or union branch of version {number} is missing from it, with no default {{compatibility: 'BACKWARD'}}"
                )],
            ),
            Err(e) => (
                false,
                vec![format!(
                    "{} (reading what version {number} wrote) {{compatibility: 'BACKWARD'}}",
                    chain(&e)
                )],
            ),
        })
    }
}

fn parse(text: &str) -> Result<Schema, Refusal> {
    Schema::parse_str(text).map_err(|e| {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
            format!("Invalid schema: {e}"),
        )
    })
}

/// The `schema` of a register, lookup or compatibility request body.
fn schema_in(body: &[u8]) -> Result<String, Refusal> {
    let unprocessable = |message: String| (StatusCode::UNPROCESSABLE_ENTITY, 422, message);
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| unprocessable(format!("Unrecognized request body: {e}")))?;
    if let Some(kind) = value.get("schemaType").and_then(Value::as_str) {
        if kind != "AVRO" {
            return Err(unprocessable(format!(
                "schemaType {kind} is not served here"
            )));
        }
    }
    value
        .get("schema")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(|| unprocessable("the body has no \"schema\" string".into()))
}

fn answer(result: Result<Value, Refusal>) -> Response {
    let (status, body) = match result {
        Ok(value) => (StatusCode::OK, value),
        Err((status, code, message)) => (status, json!({ "error_code": code, "message": message })),
    };
    (
        status,
        [(header::CONTENT_TYPE, MEDIA_TYPE)],
        body.to_string(),
    )
        .into_response()
}

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

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Standard base64 with padding (for the expected basic-auth header).
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
