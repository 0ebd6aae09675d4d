//! `POST /oauth/token` and token revocation.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::{Auth, OAuthError};

/// Client credentials from HTTP Basic (RFC 6749 §2.3.1: form-urlencoded parts) or form fields.
fn client_credentials(headers: &HeaderMap, form: &HashMap<String, String>) -> Result<(String, String), OAuthError> {
    let basic = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    if let Some((_, b64)) = basic {
        let decoded = STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .ok_or_else(OAuthError::bad_credentials)?;
        let (id, secret) = decoded.split_once(':').unwrap_or((&decoded, ""));
        let unescape = |s: &str| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
                .ok()
                .and_then(|v| v.into_iter().next().map(|(_, v)| v))
                .unwrap_or_else(|| s.to_string())
        };
        return Ok((unescape(id), unescape(secret)));
    }
    match form.get("client_id") {
        Some(id) => Ok((id.clone(), form.get("client_secret").cloned().unwrap_or_default())),
        None => Err(OAuthError::unauthorized("An Authentication object was not found in the SecurityContext")),
    }
}

pub(super) async fn token(State(auth): State<Auth>, headers: HeaderMap, body: Bytes) -> Response {
    match issue(&auth, &headers, &body).await {
        Ok(resp) => {
            let mut r = Json(resp).into_response();
            r.headers_mut().insert(axum::http::header::CACHE_CONTROL, "no-store".parse().expect("static header"));
            r
        }
        Err(e) => e.into_response(),
    }
}

async fn issue(auth: &Auth, headers: &HeaderMap, body: &[u8]) -> Result<crate::tokens::TokenResponse, OAuthError> {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthError::invalid_request("The request body must be application/x-www-form-urlencoded"))?;
    let (client_id, secret) = client_credentials(headers, &form)?;
    let client = auth.authenticate_client(&client_id, &secret).await?;
    let scope = form.get("scope").map(String::as_str).unwrap_or("");
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    match field("grant_type") {
        "password" => auth.password_grant(&client, field("username"), field("password"), scope).await,
        "client_credentials" => auth.client_credentials_grant(&client, scope).await,
        "refresh_token" => {
            if field("refresh_token").is_empty() {
                return Err(OAuthError::invalid_request("A refresh_token is required"));
            }
            auth.refresh_grant(&client, field("refresh_token"), scope).await
        }
        "" => Err(OAuthError::invalid_request("Missing grant type")),
        other => Err(OAuthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("Unsupported grant type: {other}"),
        )),
    }
}

pub(super) async fn revoke(State(auth): State<Auth>, headers: HeaderMap, Path(jti): Path<String>) -> Response {
    // `cf logout` presents each token to revoke itself (the refresh token too).
    let Some(token) = crate::http::bearer_token(&headers) else {
        return OAuthError::unauthorized("Full authentication is required to access this resource").into_response();
    };
    let claims = match auth.verify_any_token(token).await {
        Ok(c) => c,
        Err(_) => return OAuthError::invalid_token("The token could not be verified").into_response(),
    };
    let base = |j: &str| j.trim_end_matches("-r").to_string();
    let own = base(&claims.jti) == base(&jti);
    if !own && !claims.has_scope("uaa.admin") && !claims.has_scope("tokens.revoke") {
        return OAuthError::access_denied("Access denied").into_response();
    }
    match auth.revoke(&jti).await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(e) => OAuthError::from(e).into_response(),
    }
}
