//! Spaces.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, Cond, Conn, Metadata, Org, Space, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::{accepted, apply_metadata, audit, check_name, created, metadata_of, ok, spawn_job};
use crate::answers::Found;
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules, only_params};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, s: &Space, md: Option<&Metadata>) -> Value {
    let path = format!("/v3/spaces/{}", s.guid);
    json!({
        "guid": s.guid,
        "created_at": render::time(&s.created_at),
        "updated_at": render::time(&s.updated_at),
        "name": s.name,
        "relationships": {
            "organization": render::rel(Some(&s.org_guid)),
            "quota": render::rel(None),
        },
        "links": {
            "self": render::link(ctx, &path),
            "features": render::link(ctx, &format!("{path}/features")),
            "organization": render::link(ctx, &format!("/v3/organizations/{}", s.org_guid)),
            "apply_manifest": {"href": ctx.url(&format!("{path}/actions/apply_manifest")), "method": "POST"},
        },
        "metadata": render::metadata(md),
    })
}

pub async fn render_many(conn: &mut Conn, ctx: &Ctx, spaces: &[Space]) -> ApiResult<Vec<Value>> {
    let guids: Vec<String> = spaces.iter().map(|s| s.guid.clone()).collect();
    let md = store::metadata_for(conn, &guids).await?;
    Ok(spaces.iter().map(|s| render(ctx, s, md.get(&s.guid))).collect())
}

/// The space, if the caller may see it; else CF's 404.
pub async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<Space> {
    let space: Option<Space> = store::get(conn, guid).await?;
    space.filter(|s| ctx.viewer.can_read_space(&s.guid)).ok_or(ApiError::NotFound("Space"))
}

/// `included.organizations` for a set of spaces.
pub async fn included_orgs(conn: &mut Conn, ctx: &Ctx, spaces: &[&Space]) -> ApiResult<Value> {
    let mut guids: Vec<String> = spaces.iter().map(|s| s.org_guid.clone()).collect();
    guids.sort();
    guids.dedup();
    let orgs: Vec<Org> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
    Ok(Value::Array(super::orgs::render_many(conn, ctx, &orgs).await?))
}

const RULES: ListRules = ListRules {
    filters: &["names", "guids", "organization_guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name")],
    default_order: "created_at",
    includes: &["organization"],
    labels: true,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds = Vec::new();
    if let Some(spaces) = ctx.viewer.readable_spaces() {
        conds.push(Cond::In("guid", spaces));
    }
    params.in_filters(&mut conds, &[("names", "name"), ("guids", "guid"), ("organization_guids", "org_guid")]);
    let mut conn = state.store.conn().await?;
    // Spaces, their orgs and metadata only: the tables the data generation follows.
    let pending = match state.answers.find(&mut conn, &ctx, "/v3/spaces", q.as_deref()).await? {
        Found::Answer(answer) => return Ok(answer),
        Found::Missing(pending) => pending,
    };
    let page = store::list::<Space>(&mut conn, &params.spec(conds)).await?;
    let resources = render_many(&mut conn, &ctx, &page.items).await?;
    let included = if params.includes("organization") {
        let refs: Vec<&Space> = page.items.iter().collect();
        Some(json!({"organizations": included_orgs(&mut conn, &ctx, &refs).await?}))
    } else {
        None
    };
    Ok(pending.keep(render::list(&ctx, "/v3/spaces", &params, page.total, resources, included)).await)
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "relationships", "metadata"])?;
    body.check_relationships(&["organization"])?;
    let name = body.req_str("name")?;
    check_name(&name)?;
    let org_guid = body.relationship_guid("organization")?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let org: Option<Org> = store::get(&mut tx, &org_guid).await?;
    let org = org.filter(|o| ctx.viewer.can_read_org(&o.guid)).ok_or_else(|| {
        ApiError::Unprocessable(
            "Invalid organization. Ensure the organization exists and you have access to it.".into(),
        )
    })?;
    if !ctx.viewer.can_manage_org(&org.guid) {
        return Err(ApiError::NotAuthorized);
    }
    let clash: Option<Space> = store::find_one(
        &mut tx,
        &[Cond::Eq("org_guid", SqlValue::Text(org.guid.clone())), Cond::Eq("name", SqlValue::Text(name.clone()))],
    )
    .await?;
    if clash.is_some() {
        return Err(ApiError::Unprocessable("Name must be unique per organization".to_string()));
    }
    let now = store::now();
    let space = Space {
        guid: store::new_guid(),
        name,
        org_guid: org.guid.clone(),
        allow_ssh: true,
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &space).await?;
    apply_metadata(&mut tx, &space.guid, &metadata).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.space.create",
        Target { guid: &space.guid, kind: "space", name: &space.name },
        json!({"request": {"name": space.name}}),
        Some(&space.guid),
        Some(&org.guid),
    )
    .await?;
    let md = metadata_of(&mut tx, &space.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &space, Some(&md))))
}

pub async fn get_one(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let pairs = only_params(q.as_deref(), &["include"])?;
    let include_org = pairs.iter().any(|(k, v)| k == "include" && v.split(',').any(|i| i == "organization"));
    if let Some((_, v)) = pairs.iter().find(|(k, v)| k == "include" && v.split(',').any(|i| i != "organization")) {
        return Err(ApiError::BadQueryParameter(format!(
            "Invalid included resource: '{v}'. Valid included resources are: 'organization'"
        )));
    }
    let mut conn = state.store.conn().await?;
    let space = find_visible(&mut conn, &ctx, &guid).await?;
    let md = metadata_of(&mut conn, &space.guid).await?;
    let mut out = render(&ctx, &space, Some(&md));
    if include_org {
        out["included"] = json!({"organizations": included_orgs(&mut conn, &ctx, &[&space]).await?});
    }
    Ok(ok(out))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "metadata"])?;
    let name = body.opt_str("name")?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let mut space = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_manage_space(&space.guid, &space.org_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if let Some(name) = name {
        check_name(&name)?;
        if name != space.name {
            let clash: Option<Space> = store::find_one(
                &mut tx,
                &[
                    Cond::Eq("org_guid", SqlValue::Text(space.org_guid.clone())),
                    Cond::Eq("name", SqlValue::Text(name.clone())),
                ],
            )
            .await?;
            if clash.is_some() {
                return Err(ApiError::Unprocessable("Name must be unique per organization".into()));
            }
        }
        space.name = name;
    }
    space.updated_at = store::now();
    store::update(&mut tx, &space).await?;
    apply_metadata(&mut tx, &space.guid, &metadata).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.space.update",
        Target { guid: &space.guid, kind: "space", name: &space.name },
        json!({"request": {"name": space.name}}),
        Some(&space.guid),
        Some(&space.org_guid),
    )
    .await?;
    let md = metadata_of(&mut tx, &space.guid).await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &space, Some(&md))))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let space = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !ctx.viewer.can_manage_org(&space.org_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let job = spawn_job(&state, &ctx, "space.delete", "space", &guid, async move {
        let mut tx = st.store.begin().await?;
        let arg = vec![SqlValue::Text(space.guid.clone())];
        for sql in [
            "DELETE FROM metadata WHERE resource_guid IN (SELECT guid FROM apps WHERE space_guid = $1)",
            "DELETE FROM metadata WHERE resource_guid IN (SELECT p.guid FROM processes p JOIN apps a ON p.app_guid = a.guid WHERE a.space_guid = $1)",
            "DELETE FROM metadata WHERE resource_guid IN (SELECT guid FROM routes WHERE space_guid = $1)",
        ] {
            store::execute(&mut tx, sql, arg.clone()).await?;
        }
        store::delete::<Space>(&mut tx, &space.guid).await?;
        audit(
            &mut tx,
            &actor,
            "audit.space.delete-request",
            Target { guid: &space.guid, kind: "space", name: &space.name },
            json!({"request": {"recursive": true}}),
            Some(&space.guid),
            Some(&space.org_guid),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}

pub async fn features(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let space = find_visible(&mut conn, &ctx, &guid).await?;
    Ok(ok(json!({"resources": [{
        "name": "ssh",
        "description": "Enable SSHing into apps in the space.",
        "enabled": space.allow_ssh,
    }]})))
}
