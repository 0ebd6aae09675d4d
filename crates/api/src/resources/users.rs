//! Users as the Cloud Controller knows them: a guid (a UAA user's id, or a client id)
//! that may hold roles; names come from the auth store.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, CcUser, Cond, Conn, Metadata, UaaUser, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::{accepted, apply_metadata, audit, created, metadata_of, ok, spawn_job};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, u: &CcUser, uaa: Option<&UaaUser>, md: Option<&Metadata>) -> Value {
    let (username, origin) = match uaa {
        Some(x) => (json!(x.username), json!(x.origin)),
        None => (json!(u.guid), Value::Null),
    };
    json!({
        "guid": u.guid,
        "created_at": render::time(&u.created_at),
        "updated_at": render::time(&u.updated_at),
        "username": username,
        "presentation_name": username,
        "origin": origin,
        "metadata": render::metadata(md),
        "links": {"self": render::link(ctx, &format!("/v3/users/{}", u.guid))},
    })
}

pub async fn render_many(conn: &mut Conn, ctx: &Ctx, users: &[CcUser]) -> ApiResult<Vec<Value>> {
    let guids: Vec<String> = users.iter().map(|u| u.guid.clone()).collect();
    let uaa: Vec<UaaUser> = store::find_all(conn, vec![Cond::In("guid", guids.clone())]).await?;
    let uaa: BTreeMap<&str, &UaaUser> = uaa.iter().map(|u| (u.guid.as_str(), u)).collect();
    let md = store::metadata_for(conn, &guids).await?;
    Ok(users.iter().map(|u| render(ctx, u, uaa.get(u.guid.as_str()).copied(), md.get(&u.guid))).collect())
}

/// Makes sure the Cloud Controller has a user record for `guid` (as CC does on first use).
pub async fn ensure_cc_user(conn: &mut Conn, guid: &str) -> ApiResult<CcUser> {
    let existing: Option<CcUser> = store::get(conn, guid).await?;
    if let Some(u) = existing {
        return Ok(u);
    }
    let now = store::now();
    let user = CcUser { guid: guid.into(), created_at: now.clone(), updated_at: now };
    store::insert(conn, &user).await?;
    Ok(user)
}

/// Users the caller may see; `None` means all: itself, and whoever holds a role in an
/// org or space it can see.
fn visibility(ctx: &Ctx) -> Option<Cond> {
    let v = &ctx.viewer;
    if v.reads_all() {
        return None;
    }
    let orgs = v.readable_orgs().unwrap_or_default();
    Some(Cond::Or(vec![
        Cond::Eq("guid", SqlValue::Text(v.guid.clone())),
        Cond::Sub("users.guid IN (SELECT user_guid FROM roles WHERE org_guid IN ({}))", orgs.clone()),
        Cond::Sub(
            "users.guid IN (SELECT r.user_guid FROM roles r JOIN spaces s ON r.space_guid = s.guid WHERE s.org_guid IN ({}))",
            orgs,
        ),
    ]))
}

const RULES: ListRules = ListRules {
    filters: &["guids", "usernames", "origins"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at")],
    default_order: "created_at",
    includes: &[],
    labels: true,
};

async fn list_with(
    state: &ApiState,
    ctx: &Ctx,
    q: Option<&str>,
    path: &str,
    mut conds: Vec<Cond>,
) -> ApiResult<Response> {
    let params = ListParams::parse(q, &RULES)?;
    conds.extend(visibility(ctx));
    if let Some(v) = params.filter("guids") {
        conds.push(Cond::In("guid", v.clone()));
    }
    if let Some(v) = params.filter("usernames") {
        conds.push(Cond::Sub("users.guid IN (SELECT guid FROM uaa_users WHERE username IN ({}))", v.clone()));
    }
    if let Some(v) = params.filter("origins") {
        conds.push(Cond::Sub("users.guid IN (SELECT guid FROM uaa_users WHERE origin IN ({}))", v.clone()));
    }
    let mut conn = state.store.conn().await?;
    let page = store::list::<CcUser>(&mut conn, &params.spec(conds)).await?;
    let resources = render_many(&mut conn, ctx, &page.items).await?;
    Ok(render::list(ctx, path, &params, page.total, resources, None))
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_with(&state, &ctx, q.as_deref(), "/v3/users", vec![]).await
}

pub async fn list_for_org(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let org = super::orgs::find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    let cond = Cond::Sub("users.guid IN (SELECT user_guid FROM roles WHERE org_guid IN ({}))", vec![org.guid.clone()]);
    list_with(&state, &ctx, q.as_deref(), &format!("/v3/organizations/{}/users", org.guid), vec![cond]).await
}

pub async fn list_for_space(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let space = super::spaces::find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    let cond =
        Cond::Sub("users.guid IN (SELECT user_guid FROM roles WHERE space_guid IN ({}))", vec![space.guid.clone()]);
    list_with(&state, &ctx, q.as_deref(), &format!("/v3/spaces/{}/users", space.guid), vec![cond]).await
}

async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<CcUser> {
    let mut conds = vec![Cond::Eq("guid", SqlValue::Text(guid.into()))];
    conds.extend(visibility(ctx));
    let user: Option<CcUser> = store::find_one(conn, &conds).await?;
    user.ok_or(ApiError::NotFound("User"))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let user = find_visible(&mut conn, &ctx, &guid).await?;
    let rendered = render_many(&mut conn, &ctx, &[user]).await?;
    Ok(ok(rendered.into_iter().next().unwrap_or(Value::Null)))
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["guid", "username", "origin", "metadata"])?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let guid = match (body.opt_str("guid")?, body.opt_str("username")?) {
        (Some(guid), None) => {
            if guid.is_empty() || guid.len() > 250 {
                return Err(ApiError::Unprocessable("Guid must be between 1 and 200 characters".into()));
            }
            guid
        }
        (None, Some(username)) => {
            let origin = body.opt_str("origin")?.unwrap_or_else(|| "uaa".into());
            let uaa: Option<UaaUser> = store::find_one(
                &mut tx,
                &[
                    Cond::Eq("username", SqlValue::Text(username.clone())),
                    Cond::Eq("origin", SqlValue::Text(origin.clone())),
                ],
            )
            .await?;
            uaa.map(|u| u.guid).ok_or_else(|| {
                ApiError::Unprocessable(format!("No user exists with the username '{username}' and origin '{origin}'."))
            })?
        }
        _ => return Err(ApiError::Unprocessable("Provide either a guid, or a username and origin.".into())),
    };
    let existing: Option<CcUser> = store::get(&mut tx, &guid).await?;
    if existing.is_some() {
        return Err(ApiError::Unprocessable(format!("User with guid '{guid}' already exists.")));
    }
    let user = ensure_cc_user(&mut tx, &guid).await?;
    apply_metadata(&mut tx, &guid, &metadata).await?;
    audit(&mut tx, &ctx, "audit.user.create", Target { guid: &guid, kind: "user", name: &guid }, json!({}), None, None)
        .await?;
    let rendered = render_many(&mut tx, &ctx, &[user]).await?;
    tx.commit().await?;
    Ok(created(rendered.into_iter().next().unwrap_or(Value::Null)))
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
    let mut user = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    user.updated_at = store::now();
    store::update(&mut tx, &user).await?;
    apply_metadata(&mut tx, &guid, &metadata).await?;
    let _ = metadata_of(&mut tx, &guid).await?;
    let rendered = render_many(&mut tx, &ctx, &[user]).await?;
    tx.commit().await?;
    Ok(ok(rendered.into_iter().next().unwrap_or(Value::Null)))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let user = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let job = spawn_job(&state, &ctx, "user.delete", "user", &guid, async move {
        let mut tx = st.store.begin().await?;
        store::delete::<CcUser>(&mut tx, &user.guid).await?;
        audit(
            &mut tx,
            &actor,
            "audit.user.delete-request",
            Target { guid: &user.guid, kind: "user", name: &user.guid },
            json!({}),
            None,
            None,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}
