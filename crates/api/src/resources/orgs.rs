//! Organizations.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, Cond, Conn, Metadata, Org, OrgQuota, Role, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{accepted, apply_metadata, audit, check_name, created, metadata_of, ok, spawn_job};
use crate::answers::Found;
use crate::authz::RoleType;
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, o: &Org, md: Option<&Metadata>) -> Value {
    let path = format!("/v3/organizations/{}", o.guid);
    let mut links = json!({
        "self": render::link(ctx, &path),
        "domains": render::link(ctx, &format!("{path}/domains")),
        "default_domain": render::link(ctx, &format!("{path}/domains/default")),
    });
    if let Some(q) = &o.quota_guid {
        links["quota"] = render::link(ctx, &format!("/v3/organization_quotas/{q}"));
    }
    json!({
        "guid": o.guid,
        "created_at": render::time(&o.created_at),
        "updated_at": render::time(&o.updated_at),
        "name": o.name,
        "suspended": o.suspended,
        "relationships": {"quota": render::rel(o.quota_guid.as_deref())},
        "links": links,
        "metadata": render::metadata(md),
    })
}

/// The org, if the caller may see it; else CF's 404.
pub async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<Org> {
    let org: Option<Org> = store::get(conn, guid).await?;
    org.filter(|o| ctx.viewer.can_read_org(&o.guid)).ok_or(ApiError::NotFound("Organization"))
}

/// Renders many orgs with their metadata.
pub async fn render_many(conn: &mut Conn, ctx: &Ctx, orgs: &[Org]) -> ApiResult<Vec<Value>> {
    let guids: Vec<String> = orgs.iter().map(|o| o.guid.clone()).collect();
    let md = store::metadata_for(conn, &guids).await?;
    Ok(orgs.iter().map(|o| render(ctx, o, md.get(&o.guid))).collect())
}

const RULES: ListRules = ListRules {
    filters: &["names", "guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name")],
    default_order: "created_at",
    includes: &[],
    labels: true,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds = Vec::new();
    if let Some(orgs) = ctx.viewer.readable_orgs() {
        conds.push(Cond::In("guid", orgs));
    }
    params.in_filters(&mut conds, &[("names", "name"), ("guids", "guid")]);
    let mut conn = state.store.conn().await?;
    // Orgs and their metadata only: tables the data generation follows.
    let pending = match state.answers.find(&mut conn, &ctx, "/v3/organizations", q.as_deref()).await? {
        Found::Answer(answer) => return Ok(answer),
        Found::Missing(pending) => pending,
    };
    let page = store::list::<Org>(&mut conn, &params.spec(conds)).await?;
    let resources = render_many(&mut conn, &ctx, &page.items).await?;
    Ok(pending.keep(render::list(&ctx, "/v3/organizations", &params, page.total, resources, None)).await)
}

async fn feature_enabled(conn: &mut Conn, name: &str) -> ApiResult<bool> {
    let flag: Option<store::FeatureFlag> = store::get(conn, name).await?;
    Ok(flag.is_some_and(|f| f.enabled))
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "suspended", "metadata"])?;
    let name = body.req_str("name")?;
    check_name(&name)?;
    let suspended = body.opt_bool("suspended")?.unwrap_or(false);
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    if !ctx.viewer.is_admin() {
        if !ctx.viewer.can_write || ctx.viewer.reads_all() {
            return Err(ApiError::NotAuthorized);
        }
        if !feature_enabled(&mut tx, "user_org_creation").await? {
            return Err(ApiError::NotAuthorized);
        }
    }
    let existing: Option<Org> = store::find_one(&mut tx, &[Cond::Eq("name", SqlValue::Text(name.clone()))]).await?;
    if existing.is_some() {
        return Err(ApiError::Unprocessable(format!("Organization '{name}' already exists.")));
    }
    let quota: Option<OrgQuota> =
        store::find_one(&mut tx, &[Cond::Eq("name", SqlValue::Text("default".into()))]).await?;
    let now = store::now();
    let org = Org {
        guid: store::new_guid(),
        name,
        suspended,
        quota_guid: quota.map(|q| q.guid),
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &org).await?;
    apply_metadata(&mut tx, &org.guid, &metadata).await?;
    if !ctx.viewer.is_admin() {
        // As CF does: a non-admin creator becomes the org's user and manager.
        super::users::ensure_cc_user(&mut tx, &ctx.viewer.guid).await?;
        for role in [RoleType::OrganizationUser, RoleType::OrganizationManager] {
            let now = store::now();
            let r = Role {
                guid: store::new_guid(),
                role_type: role.as_str().into(),
                user_guid: ctx.viewer.guid.clone(),
                org_guid: Some(org.guid.clone()),
                space_guid: None,
                created_at: now.clone(),
                updated_at: now,
            };
            store::insert(&mut tx, &r).await?;
        }
    }
    audit(
        &mut tx,
        &ctx,
        "audit.organization.create",
        Target { guid: &org.guid, kind: "organization", name: &org.name },
        json!({"request": {"name": org.name, "suspended": org.suspended}}),
        None,
        Some(&org.guid),
    )
    .await?;
    let md = metadata_of(&mut tx, &org.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &org, Some(&md))))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let org = find_visible(&mut conn, &ctx, &guid).await?;
    let md = metadata_of(&mut conn, &org.guid).await?;
    Ok(ok(render(&ctx, &org, Some(&md))))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "suspended", "metadata"])?;
    let name = body.opt_str("name")?;
    let suspended = body.opt_bool("suspended")?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let mut org = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_manage_org(&org.guid) || (suspended == Some(true) && !ctx.viewer.is_admin()) {
        return Err(ApiError::NotAuthorized);
    }
    if let Some(name) = name {
        check_name(&name)?;
        if name != org.name {
            let clash: Option<Org> =
                store::find_one(&mut tx, &[Cond::Eq("name", SqlValue::Text(name.clone()))]).await?;
            if clash.is_some() {
                return Err(ApiError::Unprocessable(format!("Organization '{name}' already exists.")));
            }
        }
        org.name = name;
    }
    if let Some(s) = suspended {
        org.suspended = s;
    }
    org.updated_at = store::now();
    store::update(&mut tx, &org).await?;
    apply_metadata(&mut tx, &org.guid, &metadata).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.organization.update",
        Target { guid: &org.guid, kind: "organization", name: &org.name },
        json!({"request": {"name": org.name}}),
        None,
        Some(&org.guid),
    )
    .await?;
    let md = metadata_of(&mut tx, &org.guid).await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &org, Some(&md))))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let org = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !ctx.viewer.is_admin() {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let job = spawn_job(&state, &ctx, "organization.delete", "organization", &guid, async move {
        let mut tx = st.store.begin().await?;
        delete_children_metadata(&mut tx, &org.guid).await?;
        store::delete::<Org>(&mut tx, &org.guid).await?;
        audit(
            &mut tx,
            &actor,
            "audit.organization.delete-request",
            Target { guid: &org.guid, kind: "organization", name: &org.name },
            json!({"request": {"recursive": true}}),
            None,
            Some(&org.guid),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}

/// Labels and annotations of everything inside an org go with it.
async fn delete_children_metadata(conn: &mut Conn, org_guid: &str) -> ApiResult<()> {
    let arg = vec![SqlValue::Text(org_guid.into())];
    for sql in [
        "DELETE FROM metadata WHERE resource_guid IN (SELECT guid FROM spaces WHERE org_guid = $1)",
        "DELETE FROM metadata WHERE resource_guid IN (SELECT a.guid FROM apps a JOIN spaces s ON a.space_guid = s.guid WHERE s.org_guid = $1)",
        "DELETE FROM metadata WHERE resource_guid IN (SELECT p.guid FROM processes p JOIN apps a ON p.app_guid = a.guid JOIN spaces s ON a.space_guid = s.guid WHERE s.org_guid = $1)",
        "DELETE FROM metadata WHERE resource_guid IN (SELECT r.guid FROM routes r JOIN spaces s ON r.space_guid = s.guid WHERE s.org_guid = $1)",
        "DELETE FROM metadata WHERE resource_guid IN (SELECT guid FROM domains WHERE org_guid = $1)",
    ] {
        store::execute(conn, sql, arg.clone()).await?;
    }
    Ok(())
}

/// A copy of the request's caller for work that outlives the request.
pub fn ctx_snapshot(ctx: &Ctx) -> Ctx {
    Ctx { viewer: ctx.viewer.clone(), claims: ctx.claims.clone(), base: ctx.base.clone(), no_cache: ctx.no_cache }
}
