//! `nbo-stream api`: inbound decisions. A channel (the app, the web site, the call centre, a
//! branch) asks `POST /v1/decisions` for the best offers for a customer now, and gets them
//! ranked, with the propensity, value, priority, reasons and feature values behind each, or the
//! reason there is none. `openapi/decisions-v1.json` is the contract, also served at
//! `GET /v1/openapi.json`.
//!
//! A process of its own, scaled apart from the stream: it holds no partitions. Per request it
//! reads the customer's state and pending contacts (one Redis round trip), decides with the
//! rule set in force (`catalog::inbound`, `operator::inbound`: the rules that name
//! `InboundRequest`), writes the decision's audit records and contacts to the outbox in Redis
//! ([`outbox`], moved to their topics behind the answer) and its contacts to the pending list
//! (one round trip), then answers. No audit, no answer: a request whose records cannot be
//! written, or whose state cannot be read, gets 503 and nothing is offered.
//!
//! Freshness: the state read is what the stream's last checkpoint stored, so a decision sees
//! the events the stream has taken in up to one `state.checkpoint_interval` and the write of its
//! checkpoint (plus the stream's own lag) before it. The rules are the rules topic's (followed as `run` follows it), and the
//! learned models are reloaded every `operator.learning.refresh`.
//!
//! Access: every request needs a configured key (`api.key`, stored as its SHA-256), and each key
//! has a token bucket (`rate_per_second`, `burst`). Bodies are bounded (`api.max_body_bytes`),
//! ids and context attributes too (`api.max_id_chars`), and slow clients by `api.read_timeout`.
//! `[api.tls]` serves HTTPS, and with `client_ca` only to clients with a certificate that CA
//! signs ([`serve`]). Errors are JSON with a stable code.
//!
//! One contact policy: each contact an answer makes (an offer, a control-group member held out)
//! is written with its audit to the outbox, from which it reaches `bank.inbound-contacts.v1` and
//! the stream's contact history, and to the customer's pending list, which the API merges into
//! the state it reads until the stream has stored the contact ([`contacts`]).

pub mod contacts;
pub mod error;
pub mod keys;
pub mod outbox;
pub mod request;
pub mod serve;
mod start;

pub use start::{start, start_with};

use crate::config::api::ApiSettings;
use crate::customer::CustomerState;
use crate::event::InboundContact;
use crate::operator::inbound::InboundOutcome;
use crate::operator::Operator;
use crate::output::{Decision, DecisionAudit};
use crate::state::redis::RedisStore;
use crate::state::{CustomerKey, KeyHasher};
use crate::telemetry::metrics;
use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use error::ApiError;
use keys::Keys;
use request::{DecisionAnswer, DecisionRequest, OfferAnswer, SuppressedAnswer};
use std::sync::Arc;

/// The contract, as served at `GET /v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../../openapi/decisions-v1.json");

/// What every request reads.
pub struct Api {
    settings: ApiSettings,
    keys: Keys,
    operator: Arc<ArcSwap<Operator>>,
    redis: Arc<RedisStore>,
    hasher: KeyHasher,
    outbox: Arc<outbox::Outbox>,
}

impl Api {
    /// The API over `operator` (the rule set in force, swapped when it changes), `redis` (the
    /// stream's state, and the pending contacts), `hasher` (the stream's customer keys) and
    /// `outbox` (which takes the decisions' audit records and contacts before each answer).
    pub fn new(
        settings: ApiSettings,
        operator: Arc<ArcSwap<Operator>>,
        redis: Arc<RedisStore>,
        hasher: KeyHasher,
        outbox: Arc<outbox::Outbox>,
    ) -> Self {
        Self {
            keys: Keys::new(&settings.keys),
            settings,
            operator,
            redis,
            hasher,
            outbox,
        }
    }
}

/// The API's routes.
pub fn router(api: Arc<Api>) -> Router {
    let limit = api.settings.max_body_bytes;
    // The key is checked before the body is read: an unknown client costs no body read.
    let authorized = axum::middleware::from_fn_with_state(api.clone(), authorize);
    Router::new()
        .route("/v1/decisions", post(decide).route_layer(authorized))
        .route(
            "/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .layer(DefaultBodyLimit::max(limit))
        .with_state(api)
}

/// Lets a request with a configured key, within its rate, on to the handler; answers the rest
/// 401 or 429 before their body is read.
async fn authorize(
    State(api): State<Arc<Api>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match api.keys.admit(authorization) {
        Ok(client) => {
            tracing::trace!(client = %client.name, "inbound request admitted");
            next.run(request).await
        }
        Err(why) => {
            let e = ApiError::refused(why);
            metrics().api_refused.with_label_values(&[e.code]).inc();
            e.into_response()
        }
    }
}

/// `POST /v1/decisions`, for a client [`authorize`] let in: the body is read (within
/// `api.read_timeout`, else 408) and checked, then the state is read and the decision made and
/// audited.
async fn decide(
    State(api): State<Arc<Api>>,
    request: axum::extract::Request,
) -> Result<Json<DecisionAnswer>, ApiError> {
    use axum::extract::FromRequest;
    // The body within `api.read_timeout` (the headers' bound is the connection's, `serve`).
    let read = api.settings.read_timeout;
    let body = tokio::time::timeout(read, Bytes::from_request(request, &())).await;
    // Timed from the whole request in: the client's upload is not the decision's latency.
    let started = std::time::Instant::now();
    let answer = match body {
        Ok(body) => answer(&api, body).await,
        Err(_) => Err(ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            code: "slow_body",
            message: format!("the body did not arrive within {read:?} (api.read_timeout)"),
        }),
    };
    match &answer {
        Ok((channel, a)) => {
            let outcome = a
                .suppressed
                .as_ref()
                .map_or("OFFERED", |s| s.reason.as_str());
            let m = metrics();
            m.api_decisions
                .with_label_values(&[channel.as_str(), outcome])
                .inc();
            m.api_decision_seconds
                .with_label_values(&[channel.as_str()])
                .observe(started.elapsed().as_secs_f64());
        }
        Err(e) => metrics().api_refused.with_label_values(&[e.code]).inc(),
    }
    answer.map(|(_, a)| Json(a))
}

async fn answer(
    api: &Api,
    body: Result<Bytes, BytesRejection>,
) -> Result<(String, DecisionAnswer), ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                code: "too_large",
                message: format!(
                    "the body is larger than {} bytes (api.max_body_bytes)",
                    api.settings.max_body_bytes
                ),
            }
        } else {
            ApiError::bad("bad_body", e.body_text())
        }
    })?;
    let at = crate::clock::now_ms();
    let decision_id = new_decision_id();
    let (request, wanted) = DecisionRequest::parse(&body, &api.settings, &decision_id, at)?;
    let channel = request.channel.to_string();
    let customer_id = request.customer_id.to_string();
    tracing::debug!(%channel, "inbound decision");
    let stage = std::time::Instant::now();
    let key = api.hasher.key(&customer_id);
    let (mut state, pending) = load(api, &key, &customer_id).await?;
    let stages = &metrics().api_stage_seconds;
    stages
        .with_label_values(&["state"])
        .observe(stage.elapsed().as_secs_f64());
    let operator = api.operator.load_full();
    operator.align(&mut state);
    for c in &pending {
        operator.take_contact(&mut state, c);
    }
    let mut out = Vec::new();
    let outcome = operator.decide_inbound(&mut state, request, wanted, &mut out);
    let audits: Vec<&DecisionAudit> = out
        .iter()
        .filter_map(|d| match d {
            Decision::Audit(a) => Some(a),
            _ => None,
        })
        .collect();
    let stage = std::time::Instant::now();
    record(api, &key, &audits, &outcome.contacts)
        .await
        .map_err(|e| {
            ApiError::unavailable(format!(
                "the outbox did not take the decision's records: {e}"
            ))
        })?;
    stages
        .with_label_values(&["audit"])
        .observe(stage.elapsed().as_secs_f64());
    let answer = DecisionAnswer {
        decision_id,
        customer_id,
        channel: channel.clone(),
        decided_at: at,
        ruleset_version: operator.rules().version,
        offers: offers(&operator, &out),
        suppressed: suppressed(&outcome),
    };
    Ok((channel, answer))
}

/// The customer's state as the stream last stored it (a new customer's is empty), and the
/// contacts the API made that are pending ([`contacts`]): one round trip.
async fn load(
    api: &Api,
    key: &CustomerKey,
    customer_id: &str,
) -> Result<(CustomerState, Vec<InboundContact>), ApiError> {
    let mut get = redis::cmd("GET");
    get.arg(key.state_key());
    let mut pending = redis::cmd("LRANGE");
    pending.arg(key.pending_contacts_key()).arg(0).arg(-1);
    let answers = api
        .redis
        .each(&[(key.0.clone(), get), (key.0.clone(), pending)])
        .await
        .map_err(|e| ApiError::unavailable(format!("the state store did not answer: {e}")))?;
    let state = match answers.first() {
        Some(redis::Value::BulkString(bytes)) => {
            CustomerState::from_bytes(bytes).map_err(|e| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "bad_state",
                message: format!("the customer's stored state does not read: {e}"),
            })?
        }
        _ => CustomerState::default(),
    };
    let pending = answers
        .get(1)
        .map_or_else(Vec::new, |v| contacts::read(customer_id, v));
    Ok((state, pending))
}

/// Makes a decision durable before its answer, in one round trip: its audit records and
/// contacts to the outbox (all or none), and its contacts to the customer's pending list. The
/// two are not one transaction (on a Redis Cluster they live in different slots): when the
/// second fails the request gets 503 while its records still reach their topics, so the
/// contact is counted though the channel may not have shown it (the policy errs towards fewer
/// contacts, never more).
async fn record(
    api: &Api,
    key: &CustomerKey,
    audits: &[&DecisionAudit],
    made: &[InboundContact],
) -> Result<(), crate::state::StateError> {
    let mut writes = Vec::with_capacity(2);
    writes.extend(api.outbox.put(audits, made)?);
    if !made.is_empty() {
        writes.push(contacts::note(
            key,
            made,
            api.settings.pending_contacts_ttl,
        )?);
    }
    api.redis.each(&writes).await.map(|_| ())
}

/// The offers made, best first, with their rules' values.
fn offers(operator: &Operator, out: &[Decision]) -> Vec<OfferAnswer> {
    out.iter()
        .filter_map(|d| match d {
            Decision::Offer(o) => {
                let value = operator
                    .rules()
                    .offers
                    .iter()
                    .find(|r| r.head.id == o.rule_id)
                    .map_or(0.0, |r| r.value);
                Some(OfferAnswer::of(o, value))
            }
            _ => None,
        })
        .collect()
}

fn suppressed(outcome: &InboundOutcome) -> Option<SuppressedAnswer> {
    outcome.suppressed.map(|s| SuppressedAnswer {
        reason: s.as_str().to_string(),
        detail: outcome
            .detail
            .clone()
            .unwrap_or_else(|| "no offer rule serving this channel holds for the customer".into()),
    })
}

/// A fresh decision id: `in-` and 128 random bits in hex.
fn new_decision_id() -> String {
    let mut id = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut id);
    format!("in-{}", hex::encode(id))
}
