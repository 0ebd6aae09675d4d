//! The one place errors become CF's error JSON and HTTP status:
//! `{"errors":[{"code":10010,"title":"CF-ResourceNotFound","detail":"App not found"}]}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed API request, in CF's terms (codes and titles from cloud_controller_ng's errors/v2.yml).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 10010: the resource does not exist or the caller may not see it.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 10010 with CC's own wording, e.g. `Service instance 'db' not found`.
    #[error("{0}")]
    ResourceNotFound(String),
    /// 10000: no such endpoint.
    #[error("Unknown request")]
    UnknownRequest,
    /// 10002: no token.
    #[error("Authentication error")]
    NotAuthenticated,
    /// 1000: a token that is malformed, forged, wrongly signed or expired.
    #[error("Invalid Auth Token")]
    InvalidAuthToken,
    /// 10003: the caller may see but not do this.
    #[error("You are not authorized to perform the requested action")]
    NotAuthorized,
    /// 10008: well-formed but invalid.
    #[error("{0}")]
    Unprocessable(String),
    /// 1001: the body is not valid JSON.
    #[error("Request invalid due to parse error: {0}")]
    MessageParse(String),
    /// 10005: a bad query parameter.
    #[error("The query parameter is invalid: {0}")]
    BadQueryParameter(String),
    /// 10004: a bad request that is not a parse error.
    #[error("The request is invalid: {0}")]
    InvalidRequest(String),
    /// 330002: an action not allowed by a feature flag.
    #[error("Feature Disabled: {0}")]
    FeatureDisabled(String),
    /// 10014 (CF-AssociationNotEmpty), e.g. deleting a domain with routes.
    #[error("{0}")]
    AssociationNotEmpty(String),
    /// 413: an upload, an unpacked archive or a body over its configured limit.
    #[error("Request Entity Too Large: {}", limit.refusal(*bytes))]
    PayloadTooLarge { limit: crate::limits::Limit, bytes: u64 },
    /// 10015: a part of the platform this request needs is not running here.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// 10001: an unexpected failure; the cause is logged, not shown.
    #[error("An unknown error occurred.")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) | ApiError::ResourceNotFound(_) | ApiError::UnknownRequest => StatusCode::NOT_FOUND,
            ApiError::NotAuthenticated | ApiError::InvalidAuthToken => StatusCode::UNAUTHORIZED,
            ApiError::NotAuthorized | ApiError::FeatureDisabled(_) => StatusCode::FORBIDDEN,
            ApiError::Unprocessable(_) | ApiError::AssociationNotEmpty(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::MessageParse(_) | ApiError::BadQueryParameter(_) | ApiError::InvalidRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code_and_title(&self) -> (u32, &'static str) {
        match self {
            ApiError::NotFound(_) | ApiError::ResourceNotFound(_) => (10010, "CF-ResourceNotFound"),
            ApiError::UnknownRequest => (10000, "CF-NotFound"),
            ApiError::NotAuthenticated => (10002, "CF-NotAuthenticated"),
            ApiError::InvalidAuthToken => (1000, "CF-InvalidAuthToken"),
            ApiError::NotAuthorized => (10003, "CF-NotAuthorized"),
            ApiError::Unprocessable(_) => (10008, "CF-UnprocessableEntity"),
            ApiError::MessageParse(_) => (1001, "CF-MessageParseError"),
            ApiError::BadQueryParameter(_) => (10005, "CF-BadQueryParameter"),
            ApiError::InvalidRequest(_) => (10004, "CF-InvalidRequest"),
            ApiError::FeatureDisabled(_) => (330002, "CF-FeatureDisabled"),
            ApiError::AssociationNotEmpty(_) => (10006, "CF-AssociationNotEmpty"),
            ApiError::PayloadTooLarge { .. } => (10013, "CF-RequestEntityTooLarge"),
            ApiError::ServiceUnavailable(_) => (10015, "CF-ServiceUnavailable"),
            ApiError::Internal(_) => (10001, "CF-ServerError"),
        }
    }

    /// The error as an entry of CF's `errors` array (also used for failed jobs).
    pub fn to_json(&self) -> serde_json::Value {
        let (code, title) = self.code_and_title();
        serde_json::json!({"detail": self.to_string(), "title": title, "code": code})
    }
}

impl From<hearth_store::Error> for ApiError {
    fn from(e: hearth_store::Error) -> Self {
        match e {
            hearth_store::Error::NotFound => ApiError::Internal("row vanished during the request".into()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "request failed");
        }
        (self.status(), Json(serde_json::json!({"errors": [self.to_json()]}))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
