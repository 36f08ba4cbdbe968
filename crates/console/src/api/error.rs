//! The API's errors: an HTTP status and `{"error", "message"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::kafka::{KafkaCallError, error_name};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// A Kafka error name (`TOPIC_ALREADY_EXISTS`) or a short code (`CSRF`).
    pub error: String,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// A Kafka error code answered by the broker, with the status a browser
    /// should see for it.
    pub fn kafka(code: i16, message: Option<&str>) -> Self {
        let name = error_name(code);
        let status = match name.as_str() {
            "UNKNOWN_TOPIC_OR_PARTITION" | "GROUP_ID_NOT_FOUND" | "UNKNOWN_TOPIC_ID" => {
                StatusCode::NOT_FOUND
            }
            "TOPIC_AUTHORIZATION_FAILED"
            | "GROUP_AUTHORIZATION_FAILED"
            | "CLUSTER_AUTHORIZATION_FAILED"
            | "TRANSACTIONAL_ID_AUTHORIZATION_FAILED" => StatusCode::FORBIDDEN,
            "TOPIC_ALREADY_EXISTS" | "NON_EMPTY_GROUP" => StatusCode::CONFLICT,
            "INVALID_TOPIC_EXCEPTION"
            | "INVALID_PARTITIONS"
            | "INVALID_REPLICATION_FACTOR"
            | "INVALID_CONFIG"
            | "INVALID_REQUEST"
            | "INVALID_RECORD"
            | "MESSAGE_TOO_LARGE"
            | "RECORD_LIST_TOO_LARGE"
            | "POLICY_VIOLATION" => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        };
        let message = message
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| name.clone());
        ApiError::new(status, name, message)
    }
}

impl From<KafkaCallError> for ApiError {
    fn from(e: KafkaCallError) -> Self {
        ApiError::new(StatusCode::BAD_GATEWAY, "BROKER", e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(Body {
            error: &self.error,
            message: &self.message,
        });
        (self.status, body).into_response()
    }
}

/// What API handlers return.
pub type ApiResult<T> = Result<T, ApiError>;
