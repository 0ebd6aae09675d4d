//! SCIM `/Groups`: the scopes users hold, and their members.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, Cond, GroupMember, UaaGroup, UaaUser, Value};
use serde::Deserialize;
use serde_json::json;

use crate::http::{parse_json, require_any_scope, require_token};
use crate::{Auth, OAuthError, scim_filter};

const SCHEMAS: &str = "urn:scim:schemas:core:1.0";

async fn group_json(conn: &mut store::Conn, g: &UaaGroup) -> Result<serde_json::Value, OAuthError> {
    let members: Vec<GroupMember> =
        store::find_all(conn, vec![Cond::Eq("group_guid", Value::Text(g.guid.clone()))]).await?;
    Ok(json!({
        "id": g.guid,
        "meta": {
            "version": g.version,
            "created": store::format_cf_time(&g.created_at).replace('Z', ".000Z"),
            "lastModified": store::format_cf_time(&g.updated_at).replace('Z', ".000Z"),
        },
        "displayName": g.display_name,
        "description": g.description.clone().unwrap_or_default(),
        "members": members.iter().map(|m| json!({"origin": "uaa", "type": "USER", "value": m.member_guid})).collect::<Vec<_>>(),
        "zoneId": "uaa",
        "schemas": [SCHEMAS],
    }))
}

fn respond(result: Result<serde_json::Value, OAuthError>, status: StatusCode) -> Response {
    match result {
        Ok(v) => (status, Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn find_group(conn: &mut store::Conn, id: &str) -> Result<UaaGroup, OAuthError> {
    let g: Option<UaaGroup> = store::get(conn, id).await?;
    g.ok_or_else(|| OAuthError::scim_not_found(format!("Group {id} does not exist")))
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
                OAuthError::new(StatusCode::BAD_REQUEST, "invalid_filter", format!("Invalid filter expression: [{f}] {e}"))
            })?),
            None => None,
        };
        let start: usize = q.get("startIndex").and_then(|s| s.parse().ok()).unwrap_or(1).max(1);
        let count: usize = q.get("count").and_then(|s| s.parse().ok()).unwrap_or(100).min(500);
        let mut conn = auth.store.conn().await?;
        let groups: Vec<UaaGroup> = store::find_all(&mut conn, vec![]).await?;
        let matched: Vec<&UaaGroup> = groups
            .iter()
            .filter(|g| {
                filter.as_ref().is_none_or(|f| {
                    f.matches(&|a| match a {
                        "displayname" => Some(g.display_name.clone()),
                        "id" => Some(g.guid.clone()),
                        _ => None,
                    })
                })
            })
            .collect();
        let mut resources = Vec::new();
        for g in matched.iter().skip(start - 1).take(count) {
            resources.push(group_json(&mut conn, g).await?);
        }
        Ok(json!({"resources": resources, "startIndex": start, "itemsPerPage": count, "totalResults": matched.len(), "schemas": [SCHEMAS]}))
    }
    .await;
    respond(result, StatusCode::OK)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewGroup {
    display_name: String,
    description: Option<String>,
}

pub(super) async fn create(State(auth): State<Auth>, headers: HeaderMap, body: Bytes) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.write", "uaa.admin"])?;
        let req: NewGroup = parse_json(&body, "invalid_scim_resource")?;
        if req.display_name.trim().is_empty() {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scim_resource",
                "A group name must be provided.",
            ));
        }
        let mut tx = auth.store.begin().await?;
        let existing: Option<UaaGroup> =
            store::find_one(&mut tx, &[Cond::Eq("display_name", Value::Text(req.display_name.clone()))]).await?;
        if existing.is_some() {
            return Err(OAuthError::new(
                StatusCode::CONFLICT,
                "scim_resource_already_exists",
                format!("A group with displayName: {} already exists.", req.display_name),
            ));
        }
        let now = store::now();
        let g = UaaGroup {
            guid: store::new_guid(),
            display_name: req.display_name,
            description: req.description,
            created_at: now.clone(),
            updated_at: now,
            version: 0,
        };
        store::insert(&mut tx, &g).await?;
        let v = group_json(&mut tx, &g).await?;
        tx.commit().await?;
        Ok(v)
    }
    .await;
    respond(result, StatusCode::CREATED)
}

pub(super) async fn get_one(State(auth): State<Auth>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.read", "uaa.admin"])?;
        let mut conn = auth.store.conn().await?;
        let g = find_group(&mut conn, &id).await?;
        group_json(&mut conn, &g).await
    }
    .await;
    respond(result, StatusCode::OK)
}

pub(super) async fn delete_one(State(auth): State<Auth>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.write", "uaa.admin"])?;
        let mut tx = auth.store.begin().await?;
        let g = find_group(&mut tx, &id).await?;
        let v = group_json(&mut tx, &g).await?;
        store::delete::<UaaGroup>(&mut tx, &id).await?;
        tx.commit().await?;
        Ok(v)
    }
    .await;
    respond(result, StatusCode::OK)
}

pub(super) async fn members(State(auth): State<Auth>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.read", "uaa.admin"])?;
        let mut conn = auth.store.conn().await?;
        let g = find_group(&mut conn, &id).await?;
        let members: Vec<GroupMember> =
            store::find_all(&mut conn, vec![Cond::Eq("group_guid", Value::Text(g.guid))]).await?;
        Ok(json!(
            members
                .iter()
                .map(|m| json!({"origin": "uaa", "type": "USER", "value": m.member_guid}))
                .collect::<Vec<_>>()
        ))
    }
    .await;
    respond(result, StatusCode::OK)
}

#[derive(Deserialize)]
struct NewMember {
    value: String,
    #[serde(rename = "type")]
    kind: Option<String>,
}

pub(super) async fn add_member(
    State(auth): State<Auth>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.write", "uaa.admin"])?;
        let req: NewMember = parse_json(&body, "invalid_scim_resource")?;
        if req.kind.as_deref().is_some_and(|k| k != "USER") {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "invalid_scim_resource",
                "Only USER members are supported.",
            ));
        }
        let mut tx = auth.store.begin().await?;
        let g = find_group(&mut tx, &id).await?;
        let user: Option<UaaUser> = store::get(&mut tx, &req.value).await?;
        if user.is_none() {
            return Err(OAuthError::scim_not_found(format!("User {} does not exist", req.value)));
        }
        let m = GroupMember { group_guid: g.guid.clone(), member_guid: req.value.clone() };
        let existing: Option<GroupMember> = store::find_one(
            &mut tx,
            &[
                Cond::Eq("group_guid", Value::Text(g.guid.clone())),
                Cond::Eq("member_guid", Value::Text(req.value.clone())),
            ],
        )
        .await?;
        if existing.is_some() {
            return Err(OAuthError::new(
                StatusCode::CONFLICT,
                "member_already_exists",
                format!("Member {} already exists in group {}", req.value, g.display_name),
            ));
        }
        store::insert(&mut tx, &m).await?;
        tx.commit().await?;
        Ok(json!({"origin": "uaa", "type": "USER", "value": m.member_guid}))
    }
    .await;
    respond(result, StatusCode::CREATED)
}

pub(super) async fn remove_member(
    State(auth): State<Auth>,
    headers: HeaderMap,
    Path((id, member)): Path<(String, String)>,
) -> Response {
    let result: Result<serde_json::Value, OAuthError> = async {
        let claims = require_token(&auth, &headers).await?;
        require_any_scope(&claims, &["scim.write", "uaa.admin"])?;
        let mut tx = auth.store.begin().await?;
        let g = find_group(&mut tx, &id).await?;
        let n = store::execute(
            &mut tx,
            "DELETE FROM uaa_group_members WHERE group_guid = $1 AND member_guid = $2",
            vec![Value::Text(g.guid), Value::Text(member.clone())],
        )
        .await?;
        tx.commit().await?;
        if n == 0 {
            return Err(OAuthError::scim_not_found(format!("Member {member} does not exist in group {id}")));
        }
        Ok(json!({"origin": "uaa", "type": "USER", "value": member}))
    }
    .await;
    respond(result, StatusCode::OK)
}
