//! `GET /oauth/clients/{id}`: a client's registration (never its secret).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, UaaClient};
use serde_json::json;

use crate::http::{require_any_scope, require_token};
use crate::{Auth, OAuthError};

fn list(s: &str) -> Vec<&str> {
    s.split(',').filter(|p| !p.is_empty()).collect()
}

pub(super) async fn get_one(State(auth): State<Auth>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["clients.read", "clients.admin", "uaa.admin"])?;
        let mut conn = auth.store.conn().await?;
        let client: Option<UaaClient> = store::get(&mut conn, &id).await?;
        let c = client.ok_or_else(|| {
            OAuthError::new(
                axum::http::StatusCode::NOT_FOUND,
                "invalid_client",
                format!("No client with requested id: {id}"),
            )
        })?;
        Ok(json!({
            "client_id": c.client_id,
            "scope": list(&c.scope),
            "resource_ids": ["none"],
            "authorized_grant_types": list(&c.authorized_grant_types),
            "authorities": list(&c.authorities),
            "access_token_validity": c.access_token_validity,
            "refresh_token_validity": c.refresh_token_validity,
            "autoapprove": [],
            "lastModified": store::unix_seconds(&c.created_at).map(|s| s * 1000),
        }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
