//! Errors of the auth service and their OAuth wire form.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Internal failures of the auth service.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] hearth_store::Error),
    #[error("signing key error: {0}")]
    Key(String),
    #[error("token error: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// An error answered to an OAuth or SCIM client, as UAA answers it:
/// `{"error": "...", "error_description": "..."}`.
#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError { status, error, description: description.into() }
    }
    pub fn unauthorized(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::UNAUTHORIZED, "unauthorized", description)
    }
    pub fn bad_credentials() -> OAuthError {
        OAuthError::unauthorized("Bad credentials")
    }
    pub fn invalid_token(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::UNAUTHORIZED, "invalid_token", description)
    }
    pub fn invalid_request(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }
    pub fn access_denied(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::FORBIDDEN, "access_denied", description)
    }
    pub fn scim_not_found(description: impl Into<String>) -> OAuthError {
        OAuthError::new(StatusCode::NOT_FOUND, "scim_resource_not_found", description)
    }
}

impl From<AuthError> for OAuthError {
    fn from(e: AuthError) -> Self {
        tracing::error!(error = %e, "auth request failed");
        OAuthError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "Internal Server Error")
    }
}

impl From<hearth_store::Error> for OAuthError {
    fn from(e: hearth_store::Error) -> Self {
        AuthError::from(e).into()
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": self.error, "error_description": self.description});
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let value = format!("Bearer realm=\"UAA/oauth\", error=\"{}\"", self.error);
            if let Ok(v) = value.parse() {
                resp.headers_mut().insert(axum::http::header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }
}
