//! SCIM `/Users`: create, list with filter, get, delete, change password.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, Cond, UaaGroup, UaaUser, Value};
use serde::Deserialize;
use serde_json::json;

use crate::bootstrap::{DEFAULT_USER_GROUPS, join_groups, new_user};
use crate::http::{parse_json, require_any_scope, require_token};
use crate::{Auth, Claims, OAuthError, password, scim_filter};

const SCHEMAS: &str = "urn:scim:schemas:core:1.0";

fn ms(stored: &Option<String>) -> serde_json::Value {
    stored.as_deref().and_then(store::unix_seconds).map(|s| json!(s * 1000)).unwrap_or(serde_json::Value::Null)
}

/// A user as SCIM shows it.
pub(crate) fn user_json(u: &UaaUser, groups: &[UaaGroup]) -> serde_json::Value {
    json!({
        "id": u.guid,
        "externalId": "",
        "meta": {
            "version": u.version,
            "created": store::format_cf_time(&u.created_at).replace('Z', ".000Z"),
            "lastModified": store::format_cf_time(&u.updated_at).replace('Z', ".000Z"),
        },
        "userName": u.username,
        "name": {"familyName": u.family_name.clone().unwrap_or_default(), "givenName": u.given_name.clone().unwrap_or_default()},
        "emails": [{"value": u.email, "primary": false}],
        "groups": groups.iter().map(|g| json!({"value": g.guid, "display": g.display_name, "type": "DIRECT"})).collect::<Vec<_>>(),
        "approvals": [],
        "phoneNumbers": [],
        "active": u.active,
        "verified": u.verified,
        "origin": u.origin,
        "zoneId": "uaa",
        "passwordLastModified": store::format_cf_time(&u.password_changed_at).replace('Z', ".000Z"),
        "lastLogonTime": ms(&u.last_logon_at),
        "previousLogonTime": ms(&u.previous_logon_at),
        "schemas": [SCHEMAS],
    })
}

async fn groups_of(conn: &mut store::Conn, user_guid: &str) -> Result<Vec<UaaGroup>, OAuthError> {
    Ok(store::find_all(
        conn,
        vec![Cond::Sub(
            "uaa_groups.guid IN (SELECT group_guid FROM uaa_group_members WHERE member_guid IN ({}))",
            vec![user_guid.to_string()],
        )],
    )
    .await?)
}

fn attr(u: &UaaUser, name: &str) -> Option<String> {
    match name {
        "id" => Some(u.guid.clone()),
        "username" => Some(u.username.clone()),
        "origin" => Some(u.origin.clone()),
        "email" | "emails.value" | "emails" => Some(u.email.clone()),
        "name.givenname" => u.given_name.clone(),
        "name.familyname" => u.family_name.clone(),
        "active" => Some(u.active.to_string()),
        "verified" => Some(u.verified.to_string()),
        _ => None,
    }
}

fn is_self(claims: &Claims, id: &str) -> bool {
    claims.user_id.as_deref() == Some(id)
}

pub(super) async fn list(
    State(auth): State<Auth>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.read", "uaa.admin"])?;
        let filter = match q.get("filter").filter(|f| !f.trim().is_empty()) {
            Some(f) => Some(scim_filter::parse(f).map_err(|e| {
                OAuthError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_filter",
                    format!("Invalid filter expression: [{f}] {e}"),
                )
            })?),
            None => None,
        };
        let start: usize = q.get("startIndex").and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
        let count: usize = q.get("count").and_then(|s| s.parse().ok()).unwrap_or(100).min(500);
        let mut conn = auth.store.conn().await?;
        let users: Vec<UaaUser> = store::find_all(&mut conn, vec![]).await?;
        let mut matched: Vec<UaaUser> =
            users.into_iter().filter(|u| filter.as_ref().is_none_or(|f| f.matches(&|a| attr(u, a)))).collect();
        matched.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let total = matched.len();
        let mut resources = Vec::new();
        for u in matched.iter().skip(start - 1).take(count) {
            let groups = groups_of(&mut conn, &u.guid).await?;
            resources.push(user_json(u, &groups));
        }
        Ok(json!({
            "resources": resources,
            "startIndex": start,
            "itemsPerPage": count,
            "totalResults": total,
            "schemas": [SCHEMAS],
        }))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUser {
    user_name: Option<String>,
    password: Option<String>,
    #[serde(default)]
    emails: Vec<Email>,
    name: Option<Name>,
    origin: Option<String>,
    active: Option<bool>,
    verified: Option<bool>,
}

#[derive(Deserialize)]
struct Email {
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Name {
    given_name: Option<String>,
    family_name: Option<String>,
}

pub(super) async fn create(State(auth): State<Auth>, headers: HeaderMap, body: Bytes) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.write", "scim.create", "uaa.admin"])?;
        let req: NewUser = parse_json(&body, "invalid_scim_resource")?;
        let username = req.user_name.filter(|u| !u.trim().is_empty()).ok_or_else(|| {
            OAuthError::new(StatusCode::BAD_REQUEST, "invalid_scim_resource", "A username must be provided.")
        })?;
        if username.len() > 255 {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scim_resource",
                "Username must be at most 255 characters.",
            ));
        }
        let origin = req.origin.filter(|o| !o.is_empty()).unwrap_or_else(|| "uaa".into());
        if origin != "uaa" {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scim_resource",
                format!("Unknown origin '{origin}': only 'uaa' users can be created here."),
            ));
        }
        let password = req.password.unwrap_or_default();
        if password.is_empty() {
            return Err(OAuthError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_password",
                "Password must be at least 1 characters in length.",
            ));
        }
        if password.len() > 255 {
            return Err(OAuthError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_password",
                "Password must be no more than 255 characters in length.",
            ));
        }
        let email = req.emails.first().map(|e| e.value.clone()).unwrap_or_else(|| {
            if username.contains('@') { username.clone() } else { format!("{username}@user.from.uaa.cf") }
        });
        let mut user = new_user(&username, &email, Some(password::hash(&password)?));
        if let Some(name) = req.name {
            user.given_name = name.given_name;
            user.family_name = name.family_name;
        }
        user.active = req.active.unwrap_or(true);
        user.verified = req.verified.unwrap_or(true);
        let mut tx = auth.store.begin().await?;
        let existing: Option<UaaUser> = store::find_one(
            &mut tx,
            &[Cond::Eq("username", Value::Text(username.clone())), Cond::Eq("origin", Value::Text(origin.clone()))],
        )
        .await?;
        if existing.is_some() {
            return Err(OAuthError::new(
                StatusCode::CONFLICT,
                "scim_resource_already_exists",
                format!("Username already in use: {username}"),
            ));
        }
        store::insert(&mut tx, &user).await?;
        join_groups(&mut tx, &user.guid, DEFAULT_USER_GROUPS).await.map_err(OAuthError::from)?;
        let groups = groups_of(&mut tx, &user.guid).await?;
        tx.commit().await?;
        tracing::info!(user = %user.username, by = %claims.actor_name(), "user created");
        Ok(user_json(&user, &groups))
    }
    .await;
    match result {
        Ok(v) => (StatusCode::CREATED, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn get_one(State(auth): State<Auth>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        if !is_self(&claims, &id) {
            require_any_scope(&claims, &["scim.read", "uaa.admin"])?;
        }
        let mut conn = auth.store.conn().await?;
        let user: Option<UaaUser> = store::get(&mut conn, &id).await?;
        let user = user.ok_or_else(|| OAuthError::scim_not_found(format!("User {id} does not exist")))?;
        let groups = groups_of(&mut conn, &id).await?;
        Ok(user_json(&user, &groups))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn delete_one(State(auth): State<Auth>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.write", "uaa.admin"])?;
        let mut tx = auth.store.begin().await?;
        let user: Option<UaaUser> = store::get(&mut tx, &id).await?;
        let user = user.ok_or_else(|| OAuthError::scim_not_found(format!("User {id} does not exist")))?;
        let groups = groups_of(&mut tx, &id).await?;
        store::delete::<UaaUser>(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(user_json(&user, &groups))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChange {
    old_password: Option<String>,
    password: String,
}

pub(super) async fn change_password(
    State(auth): State<Auth>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        let admin = claims.has_scope("uaa.admin") || claims.has_scope("password.write") && !claims.is_user();
        if !admin && !is_self(&claims, &id) {
            return Err(OAuthError::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "Not permitted to change another user's password",
            ));
        }
        let req: PasswordChange = parse_json(&body, "invalid_scim_resource")?;
        if req.password.is_empty() || req.password.len() > 255 {
            return Err(OAuthError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_password",
                "Password must be between 1 and 255 characters.",
            ));
        }
        let mut tx = auth.store.begin().await?;
        let user: Option<UaaUser> = store::get(&mut tx, &id).await?;
        let mut user = user.ok_or_else(|| OAuthError::scim_not_found(format!("User {id} does not exist")))?;
        if !admin || is_self(&claims, &id) {
            let old_ok = match (&req.old_password, &user.password_hash) {
                (Some(old), Some(hash)) => password::verify(old, hash),
                _ => false,
            };
            if !old_ok {
                return Err(OAuthError::unauthorized("Old password is incorrect"));
            }
        }
        if user.password_hash.as_deref().is_some_and(|h| password::verify(&req.password, h)) {
            return Err(OAuthError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_password",
                "Your new password cannot be the same as the old password.",
            ));
        }
        user.password_hash = Some(password::hash(&req.password)?);
        user.password_changed_at = store::now();
        user.updated_at = user.password_changed_at.clone();
        user.version += 1;
        store::update(&mut tx, &user).await?;
        // A new password revokes the user's refresh tokens.
        store::execute(&mut tx, "DELETE FROM uaa_refresh_tokens WHERE user_guid = $1", vec![Value::Text(id.clone())])
            .await?;
        tx.commit().await?;
        Ok(json!({"status": "ok", "message": "password updated"}))
    }
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
