//! UAA's HTTP surface: `/oauth/token`, `/token_keys`, `/userinfo`, `/login`, OpenID
//! discovery and SCIM `/Users` and `/Groups`, answering exactly as UAA does.

mod clients;
mod info;
mod scim_groups;
mod scim_users;
mod token;

use axum::Router;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HOST};
use axum::routing::{delete, get, post, put};

use crate::tokens::TokenRejection;
use crate::{Auth, Claims, OAuthError};

/// The routes UAA serves. They sit beside the API's on the one front address.
pub fn router(auth: Auth) -> Router {
    Router::new()
        .route("/oauth/token", post(token::token))
        .route("/oauth/token/revoke/{jti}", delete(token::revoke))
        .route("/oauth/clients/{id}", get(clients::get_one))
        .route("/token_keys", get(info::token_keys))
        .route("/token_key", get(info::token_key))
        .route("/userinfo", get(info::userinfo))
        .route("/login", get(info::login_info))
        .route("/info", get(info::login_info))
        .route("/.well-known/openid-configuration", get(info::openid_configuration))
        .route("/Users", get(scim_users::list).post(scim_users::create))
        .route("/Users/{id}", get(scim_users::get_one).delete(scim_users::delete_one))
        .route("/Users/{id}/password", put(scim_users::change_password))
        .route("/Groups", get(scim_groups::list).post(scim_groups::create))
        .route("/Groups/{id}", get(scim_groups::get_one).delete(scim_groups::delete_one))
        .route("/Groups/{id}/members", get(scim_groups::members).post(scim_groups::add_member))
        .route("/Groups/{id}/members/{member}", delete(scim_groups::remove_member))
        .with_state(auth)
}

/// The base URL a client reached us at (`http://HOST`), for links in documents that
/// must work from the client's side without DNS set-up.
pub fn request_base_url(headers: &HeaderMap, fallback: &str) -> String {
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)));
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    match host {
        Some(h) => format!("{proto}://{h}"),
        None => fallback.trim_end_matches('/').to_string(),
    }
}

/// The bearer token of a request, if it has one (the scheme is case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// The caller's claims, or UAA's 401 answer.
pub(crate) async fn require_token(auth: &Auth, headers: &HeaderMap) -> Result<Claims, OAuthError> {
    let Some(token) = bearer_token(headers) else {
        return Err(OAuthError::unauthorized("Full authentication is required to access this resource"));
    };
    auth.verify_access_token(token).await.map_err(|r| match r {
        TokenRejection::Expired => OAuthError::invalid_token("The token expired"),
        TokenRejection::Invalid => OAuthError::invalid_token("The token could not be verified"),
    })
}

/// UAA's 403 for a token without any of the needed scopes.
pub(crate) fn require_any_scope(claims: &Claims, scopes: &[&str]) -> Result<(), OAuthError> {
    if scopes.iter().any(|s| claims.has_scope(s)) {
        return Ok(());
    }
    Err(OAuthError::new(
        axum::http::StatusCode::FORBIDDEN,
        "insufficient_scope",
        format!("Insufficient scope for this resource: one of {} is needed", scopes.join(", ")),
    ))
}

/// Parses a JSON request body, answering UAA's 400 when it is malformed.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8], kind: &'static str) -> Result<T, OAuthError> {
    serde_json::from_slice(body)
        .map_err(|e| OAuthError::new(axum::http::StatusCode::BAD_REQUEST, kind, format!("Malformed request body: {e}")))
}
