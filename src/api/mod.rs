//! `nbo-stream api`: inbound decisions. A channel (the app, the web site, the call centre, a
//! branch) asks `POST /v1/decisions` for the best offers for a customer now, and gets them
//! ranked, with the propensity, value, priority, reasons and feature values behind each, or the
//! reason there is none. `openapi/decisions-v1.json` is the contract, also served at
//! `GET /v1/openapi.json`.
//!
//! A process of its own, scaled apart from the stream: it holds no partitions. Per request it
//! reads the customer's state from the state store (one Redis read), decides with the rule set
//! in force (`catalog::inbound`, `operator::inbound`: the rules that name `InboundRequest`),
//! writes the decision's audit records to the outbox in Redis ([`outbox`], moved to the audit
//! topic behind the answer), then answers. No audit, no answer: a request whose audit cannot be
//! written, or whose state cannot be read, gets 503 and nothing is offered.
//!
//! Freshness: the state read is what the stream's last checkpoint stored, so a decision sees
//! the events the stream has taken in up to one `state.checkpoint_interval` (plus the stream's
//! own lag) before it. The rules are the rules topic's (followed as `run` follows it), and the
//! learned models are reloaded every `operator.learning.refresh`.
//!
//! Access: every request needs a configured key (`api.key`, stored as its SHA-256), and each key
//! has a token bucket (`rate_per_second`, `burst`). Bodies are bounded (`api.max_body_bytes`),
//! ids and context attributes too (`api.max_id_chars`). Errors are JSON with a stable code.
//!
//! Not yet: an inbound offer is a contact in the state the API decided on, but that state is
//! not written back, so the stream's next decisions do not see it (see the README).

pub mod error;
pub mod keys;
pub mod outbox;
pub mod request;
mod start;

pub use start::{start, start_with};

use crate::config::api::ApiSettings;
use crate::customer::CustomerState;
use crate::operator::inbound::InboundOutcome;
use crate::operator::Operator;
use crate::output::{Decision, DecisionAudit};
use crate::state::{KeyHasher, StateStore};
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
    store: Arc<dyn StateStore>,
    hasher: KeyHasher,
    audit: Arc<outbox::Outbox>,
}

impl Api {
    /// The API over `operator` (the rule set in force, swapped when it changes), `store` (the
    /// stream's state), `hasher` (the stream's customer keys) and `audit` (the outbox that takes
    /// the decisions' records before each answer).
    pub fn new(
        settings: ApiSettings,
        operator: Arc<ArcSwap<Operator>>,
        store: Arc<dyn StateStore>,
        hasher: KeyHasher,
        audit: Arc<outbox::Outbox>,
    ) -> Self {
        Self {
            keys: Keys::new(&settings.keys),
            settings,
            operator,
            store,
            hasher,
            audit,
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

/// `POST /v1/decisions`, for a client [`authorize`] let in: the body is checked, then the state
/// is read and the decision made and audited.
async fn decide(
    State(api): State<Arc<Api>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DecisionAnswer>, ApiError> {
    let started = std::time::Instant::now();
    let answer = answer(&api, body).await;
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
    let mut state = load(api, &customer_id).await?;
    let stages = &metrics().api_stage_seconds;
    stages
        .with_label_values(&["state"])
        .observe(stage.elapsed().as_secs_f64());
    let operator = api.operator.load_full();
    operator.align(&mut state);
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
    api.audit.put(&audits).await.map_err(|e| {
        ApiError::unavailable(format!("the audit outbox did not take the record: {e}"))
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

/// The customer's state as the stream last stored it (a new customer's is empty).
async fn load(api: &Api, customer_id: &str) -> Result<CustomerState, ApiError> {
    let key = api.hasher.key(customer_id);
    let loaded = api
        .store
        .load(std::slice::from_ref(&key))
        .await
        .map_err(|e| ApiError::unavailable(format!("the state store did not answer: {e}")))?;
    match loaded.into_iter().next().flatten() {
        None => Ok(CustomerState::default()),
        Some(bytes) => CustomerState::from_bytes(&bytes).map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "bad_state",
            message: format!("the customer's stored state does not read: {e}"),
        }),
    }
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
