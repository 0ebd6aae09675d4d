//! Stacks: the root filesystems apps run on.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, Cond, Conn, Metadata, Stack, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{apply_metadata, audit, created, metadata_of, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

/// The default stack: built from the host's own OS directories, so it works offline.
pub const DEFAULT_STACK: &str = "cflinuxfs4";

pub fn render(ctx: &Ctx, s: &Stack, md: Option<&Metadata>) -> Value {
    json!({
        "guid": s.guid,
        "created_at": render::time(&s.created_at),
        "updated_at": render::time(&s.updated_at),
        "name": s.name,
        "description": s.description,
        "state": "ACTIVE",
        "state_reason": null,
        "build_rootfs_image": s.build_rootfs_image,
        "run_rootfs_image": s.run_rootfs_image,
        "default": s.is_default,
        "metadata": render::metadata(md),
        "links": {"self": render::link(ctx, &format!("/v3/stacks/{}", s.guid))},
    })
}

const RULES: ListRules = ListRules {
    filters: &["names", "guids", "default"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name")],
    default_order: "created_at",
    includes: &[],
    labels: true,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds = Vec::new();
    params.in_filters(&mut conds, &[("names", "name"), ("guids", "guid")]);
    if let Some(v) = params.filter("default") {
        conds.push(Cond::Eq("is_default", SqlValue::Int(i64::from(v.first().is_some_and(|x| x == "true")))));
    }
    let mut conn = state.store.conn().await?;
    let page = store::list::<Stack>(&mut conn, &params.spec(conds)).await?;
    let md = store::metadata_for(&mut conn, &page.items.iter().map(|s| s.guid.clone()).collect::<Vec<_>>()).await?;
    let resources = page.items.iter().map(|s| render(&ctx, s, md.get(&s.guid))).collect();
    Ok(render::list(&ctx, "/v3/stacks", &params, page.total, resources, None))
}

async fn find(conn: &mut Conn, guid: &str) -> ApiResult<Stack> {
    let s: Option<Stack> = store::get(conn, guid).await?;
    s.ok_or(ApiError::NotFound("Stack"))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let s = find(&mut conn, &guid).await?;
    let md = metadata_of(&mut conn, &s.guid).await?;
    Ok(ok(render(&ctx, &s, Some(&md))))
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "description", "metadata"])?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let name = body.req_str("name")?;
    if name.is_empty() || name.len() > 250 {
        return Err(ApiError::Unprocessable("Name must be between 1 and 250 characters".into()));
    }
    let description = body.opt_str("description")?;
    if description.as_ref().is_some_and(|d| d.len() > 250) {
        return Err(ApiError::Unprocessable("Description is too long (maximum is 250 characters)".into()));
    }
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let clash: Option<Stack> = store::find_one(&mut tx, &[Cond::Eq("name", SqlValue::Text(name.clone()))]).await?;
    if clash.is_some() {
        return Err(ApiError::Unprocessable("Name must be unique".into()));
    }
    let now = store::now();
    let s = Stack {
        guid: store::new_guid(),
        name: name.clone(),
        description,
        build_rootfs_image: name.clone(),
        run_rootfs_image: name,
        is_default: false,
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &s).await?;
    apply_metadata(&mut tx, &s.guid, &metadata).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.stack.create",
        Target { guid: &s.guid, kind: "stack", name: &s.name },
        json!({}),
        None,
        None,
    )
    .await?;
    let md = metadata_of(&mut tx, &s.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &s, Some(&md))))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["metadata"])?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let mut s = find(&mut tx, &guid).await?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    s.updated_at = store::now();
    store::update(&mut tx, &s).await?;
    apply_metadata(&mut tx, &s.guid, &metadata).await?;
    let md = metadata_of(&mut tx, &s.guid).await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &s, Some(&md))))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut tx = state.store.begin().await?;
    let s = find(&mut tx, &guid).await?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let in_use =
        store::count::<store::App>(&mut tx, &[Cond::Eq("lifecycle_type", SqlValue::Text("buildpack".into()))]).await?;
    if in_use > 0 {
        let apps: Vec<store::App> =
            store::find_all(&mut tx, vec![Cond::Eq("lifecycle_type", SqlValue::Text("buildpack".into()))]).await?;
        if apps.iter().any(|a| a.lifecycle_data.get("stack").and_then(Value::as_str) == Some(s.name.as_str())) {
            return Err(ApiError::Unprocessable(format!(
                "Cannot delete stack '{}' because there are apps using it",
                s.name
            )));
        }
    }
    store::delete::<Stack>(&mut tx, &s.guid).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.stack.delete",
        Target { guid: &s.guid, kind: "stack", name: &s.name },
        json!({}),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn seed(conn: &mut Conn) -> Result<(), store::Error> {
    let existing: Option<Stack> =
        store::find_one(conn, &[Cond::Eq("name", SqlValue::Text(DEFAULT_STACK.into()))]).await?;
    if existing.is_none() {
        let now = store::now();
        store::insert(
            conn,
            &Stack {
                guid: store::new_guid(),
                name: DEFAULT_STACK.into(),
                description: Some(
                    "Hearth's offline default stack: the host's operating-system directories, read-only".into(),
                ),
                build_rootfs_image: DEFAULT_STACK.into(),
                run_rootfs_image: DEFAULT_STACK.into(),
                is_default: true,
                created_at: now.clone(),
                updated_at: now,
            },
        )
        .await?;
    }
    Ok(())
}
