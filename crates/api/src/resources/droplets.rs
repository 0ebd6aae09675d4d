//! Droplets: what staging made, and which one an app runs (its current droplet).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, App, Cond, Conn, Droplet, Metadata, Space, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::{accepted, audit, metadata_of, ok, spawn_job};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, d: &Droplet, md: Option<&Metadata>) -> Value {
    let path = format!("/v3/droplets/{}", d.guid);
    let docker = d.image.is_some();
    let mut links = json!({
        "self": render::link(ctx, &path),
        "app": render::link(ctx, &format!("/v3/apps/{}", d.app_guid)),
        "assign_current_droplet": {
            "href": ctx.url(&format!("/v3/apps/{}/relationships/current_droplet", d.app_guid)),
            "method": "PATCH",
        },
    });
    if let Some(package) = &d.package_guid {
        links["package"] = render::link(ctx, &format!("/v3/packages/{package}"));
    }
    if !docker {
        links["download"] = render::link(ctx, &format!("{path}/download"));
    }
    json!({
        "guid": d.guid,
        "state": d.state,
        "error": d.error,
        "lifecycle": d.lifecycle,
        "execution_metadata": d.execution_metadata,
        "process_types": d.process_types,
        "checksum": d.sha256.as_ref().map(|v| json!({"type": "sha256", "value": v})),
        "buildpacks": if docker { Value::Null } else { d.buildpacks.clone() },
        "stack": d.stack,
        "image": d.image,
        "created_at": render::time(&d.created_at),
        "updated_at": render::time(&d.updated_at),
        "relationships": {"app": render::rel(Some(&d.app_guid))},
        "metadata": render::metadata(md),
        "links": links,
    })
}

/// The droplet and its app, if the caller may see them.
pub async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<(Droplet, App)> {
    super::app_children::find_visible(conn, ctx, guid).await
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (d, _) = find_visible(&mut conn, &ctx, &guid).await?;
    let md = metadata_of(&mut conn, &d.guid).await?;
    Ok(ok(render(&ctx, &d, Some(&md))))
}

const RULES: ListRules = ListRules {
    filters: &["guids", "states", "app_guids", "space_guids", "organization_guids", "current"],
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
    super::app_children::scope::<Droplet>(ctx, &params, &mut conds);
    params.in_filters(&mut conds, &[("guids", "guid"), ("states", "state")]);
    if params.filter("current").is_some_and(|v| v.iter().any(|c| c == "true")) {
        conds.push(Cond::Sub(
            "droplets.guid IN (SELECT droplet_guid FROM apps WHERE guid IN ({}))",
            all_app_guids(&conds),
        ));
    }
    let mut conn = state.store.conn().await?;
    let page = store::list::<Droplet>(&mut conn, &params.spec(conds)).await?;
    let guids: Vec<String> = page.items.iter().map(|d| d.guid.clone()).collect();
    let md = store::metadata_for(&mut conn, &guids).await?;
    let resources: Vec<Value> = page.items.iter().map(|d| render(ctx, d, md.get(&d.guid))).collect();
    Ok(render::list(ctx, path, &params, page.total, resources, None))
}

/// The app guids an app-scoped list is limited to (for `current=true`).
fn all_app_guids(conds: &[Cond]) -> Vec<String> {
    conds
        .iter()
        .find_map(|c| match c {
            Cond::Eq("app_guid", SqlValue::Text(g)) => Some(vec![g.clone()]),
            _ => None,
        })
        .unwrap_or_default()
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_with(&state, &ctx, q.as_deref(), "/v3/droplets", vec![]).await
}

pub async fn list_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (path, conds) = super::app_children::app_list(&state, &ctx, &guid, "droplets").await?;
    list_with(&state, &ctx, q.as_deref(), &path, conds).await
}

pub async fn list_for_package(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, _) = super::packages::find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    let path = format!("/v3/packages/{}/droplets", p.guid);
    list_with(&state, &ctx, q.as_deref(), &path, vec![Cond::Eq("package_guid", SqlValue::Text(p.guid))]).await
}

/// `GET /v3/apps/:guid/droplets/current`.
pub async fn current(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let app = super::apps::find_visible(&mut conn, &ctx, &guid).await?;
    let d: Option<Droplet> = match &app.droplet_guid {
        Some(g) => store::get(&mut conn, g).await?,
        None => None,
    };
    let d = d.ok_or(ApiError::NotFound("Droplet"))?;
    let md = metadata_of(&mut conn, &d.guid).await?;
    Ok(ok(render(&ctx, &d, Some(&md))))
}

fn current_relationship(ctx: &Ctx, app: &App) -> Value {
    let path = format!("/v3/apps/{}", app.guid);
    json!({
        "data": app.droplet_guid.as_ref().map(|g| json!({"guid": g})),
        "links": {
            "self": render::link(ctx, &format!("{path}/relationships/current_droplet")),
            "related": render::link(ctx, &format!("{path}/droplets/current")),
        },
    })
}

/// `GET /v3/apps/:guid/relationships/current_droplet`.
pub async fn get_current_relationship(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let app = super::apps::find_visible(&mut conn, &ctx, &guid).await?;
    if app.droplet_guid.is_none() {
        return Err(ApiError::NotFound("Droplet"));
    }
    Ok(ok(current_relationship(&ctx, &app)))
}

/// `PATCH /v3/apps/:guid/relationships/current_droplet`: which staged droplet the app runs
/// from its next start (a running app keeps its instances until restarted, as in CF).
pub async fn set_current(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["data"])?;
    let droplet_guid = body.sub("data", &["guid"])?.map(|d| d.req_str("guid")).transpose()?.ok_or_else(|| {
        ApiError::Unprocessable("Current droplet cannot be removed. Replace it with a preferable droplet.".into())
    })?;
    let mut tx = state.store.begin().await?;
    let mut app = super::apps::find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let d: Option<Droplet> = store::get(&mut tx, &droplet_guid).await?;
    let d = d.filter(|d| d.app_guid == app.guid).ok_or_else(|| {
        ApiError::Unprocessable(
            "Unable to assign current droplet. Ensure the droplet exists and belongs to this app.".into(),
        )
    })?;
    if d.state != "STAGED" {
        return Err(ApiError::Unprocessable("Unable to assign current droplet. Ensure the droplet is staged.".into()));
    }
    app.droplet_guid = Some(d.guid.clone());
    app.updated_at = store::now();
    store::update(&mut tx, &app).await?;
    let space: Option<Space> = store::get(&mut tx, &app.space_guid).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.app.droplet.mapped",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"request": {"droplet_guid": d.guid}}),
        Some(&app.space_guid),
        space.as_ref().map(|s| s.org_guid.as_str()),
    )
    .await?;
    tx.commit().await?;
    Ok(ok(current_relationship(&ctx, &app)))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (d, app) = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let droplet_guid = d.guid.clone();
    let job = spawn_job(&state, &ctx, "droplet.delete", "droplet", &droplet_guid, async move {
        let mut tx = st.store.begin().await?;
        let current: Option<App> = store::get(&mut tx, &app.guid).await?;
        if let Some(mut a) = current.filter(|a| a.droplet_guid.as_deref() == Some(d.guid.as_str())) {
            a.droplet_guid = None;
            store::update(&mut tx, &a).await?;
        }
        store::delete::<Droplet>(&mut tx, &d.guid).await?;
        audit(
            &mut tx,
            &actor,
            "audit.app.droplet.delete",
            Target { guid: &app.guid, kind: "app", name: &app.name },
            json!({"droplet_guid": d.guid}),
            Some(&app.space_guid),
            None,
        )
        .await?;
        tx.commit().await?;
        let blob = d.blob_key.clone().map(|k| (hearth_blobstore::Namespace::Droplets, k));
        crate::blob_refs::release(&st, blob.into_iter().collect()).await;
        crate::lrps::sync_app(&st, &app.guid, false).await
    })
    .await?;
    Ok(accepted(&ctx, &job))
}
