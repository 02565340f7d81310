//! The API's errors: a status, a stable code a client can branch on, and a message that says
//! what to change, as JSON (`{"error": "<code>", "message": "..."}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// One error answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Stable code (`bad_json`, `unknown_channel`, `no_key`, `unavailable`, ...).
    pub code: &'static str,
    /// What is wrong, in plain words.
    pub message: String,
}

impl ApiError {
    /// A 400: the request is wrong in the way `code` names.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// A 503: a dependency (Redis, Kafka) did not answer; nothing was decided or recorded.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable",
            message: message.into(),
        }
    }

    /// The answer to a refused key.
    pub fn refused(why: super::keys::Refused) -> Self {
        use super::keys::Refused;
        let (status, code, message) = match why {
            Refused::NoKey => (
                StatusCode::UNAUTHORIZED,
                "no_key",
                "send the API key as `Authorization: Bearer <key>`",
            ),
            Refused::WrongKey => (
                StatusCode::UNAUTHORIZED,
                "wrong_key",
                "the API key is not one this API knows",
            ),
            Refused::OverRate => (
                StatusCode::TOO_MANY_REQUESTS,
                "over_rate",
                "this key is over its rate (api.key[].rate_per_second); retry shortly",
            ),
        };
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.code, "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}
