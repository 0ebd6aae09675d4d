//! Documents UAA publishes: signing keys, user info, the login info the cf CLI reads,
//! and OpenID discovery.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, UaaUser};
use serde_json::json;

use crate::http::{request_base_url, require_any_scope, require_token};
use crate::{Auth, OAuthError};

pub(super) async fn token_keys(State(auth): State<Auth>) -> Json<serde_json::Value> {
    Json(auth.jwks().await)
}

pub(super) async fn token_key(State(auth): State<Auth>) -> Json<serde_json::Value> {
    Json(auth.primary_jwk().await)
}

fn millis(stored: &Option<String>) -> serde_json::Value {
    stored.as_deref().and_then(store::unix_seconds).map(|s| json!(s * 1000)).unwrap_or(serde_json::Value::Null)
}

pub(super) async fn userinfo(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["openid"])?;
        let Some(user_id) = claims.user_id.as_deref() else {
            return Err(OAuthError::access_denied("A user token is required"));
        };
        let mut conn = auth.store.conn().await?;
        let user: Option<UaaUser> = store::get(&mut conn, user_id).await?;
        let user = user.ok_or_else(|| OAuthError::scim_not_found(format!("User {user_id} does not exist")))?;
        let name = [user.given_name.as_deref(), user.family_name.as_deref()]
            .iter()
            .flatten()
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(json!({
            "user_id": user.guid,
            "sub": user.guid,
            "user_name": user.username,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "email": user.email,
            "phone_number": null,
            "previous_logon_time": millis(&user.previous_logon_at),
            "name": name,
            "email_verified": user.verified,
        }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn login_info(State(auth): State<Auth>, headers: HeaderMap) -> Json<serde_json::Value> {
    let base = request_base_url(&headers, auth.config.issuer.trim_end_matches("/oauth/token"));
    Json(json!({
        "app": {"version": "77.10.0"},
        "commit_id": env!("CARGO_PKG_VERSION"),
        "timestamp": store::format_cf_time(&store::now()),
        "zone_name": "uaa",
        "entityID": base.trim_start_matches("http://").trim_start_matches("https://"),
        "links": {"uaa": base, "login": base, "passwd": "/forgot_password", "register": "/create_account"},
        "idpDefinitions": {},
        "prompts": {"username": ["text", "Email"], "password": ["password", "Password"]},
    }))
}

pub(super) async fn openid_configuration(State(auth): State<Auth>, headers: HeaderMap) -> Json<serde_json::Value> {
    let base = request_base_url(&headers, auth.config.issuer.trim_end_matches("/oauth/token"));
    Json(json!({
        "issuer": auth.config.issuer,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
        "userinfo_endpoint": format!("{base}/userinfo"),
        "jwks_uri": format!("{base}/token_keys"),
        "scopes_supported": ["openid", "profile", "email", "phone", "roles", "user_attributes"],
        "response_types_supported": ["code", "code id_token", "id_token", "token id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "claim_types_supported": ["normal"],
        "claims_supported": ["sub", "user_name", "origin", "iss", "auth_time", "amr", "acr", "client_id", "aud",
            "zid", "grant_type", "user_id", "azp", "scope", "exp", "iat", "jti", "rev_sig", "cid", "given_name",
            "family_name", "phone_number", "email"],
        "grant_types_supported": ["password", "client_credentials", "refresh_token"],
        "claims_parameter_supported": false,
        "service_documentation": "https://docs.cloudfoundry.org/api/uaa/",
        "ui_locales_supported": ["en-US"],
    }))
}
