//! Service credential bindings (`/v3/service_credential_bindings`) of `type: app`: an app
//! bound to a user-provided service instance of its own space sees the instance in
//! `VCAP_SERVICES` from its next start, restart or restage (as CF: a running app's
//! environment does not change under it). `/details` shows the credentials to callers who
//! may read the space's secrets.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_store::{
    self as store, App, Cond, Conn, Metadata, ServiceBinding, ServiceInstance, Space, Value as SqlValue,
};
use serde_json::{Map, Value, json};

use super::audit_events::Target;
use super::{apply_metadata, audit, created, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules, only_params};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, b: &ServiceBinding, md: Option<&Metadata>) -> Value {
    let path = format!("/v3/service_credential_bindings/{}", b.guid);
    json!({
        "guid": b.guid,
        "created_at": render::time(&b.created_at),
        "updated_at": render::time(&b.updated_at),
        "name": b.name,
        "type": "app",
        "last_operation": {
            "type": "create",
            "state": "succeeded",
            "description": "",
            "created_at": render::time(&b.created_at),
            "updated_at": render::time(&b.updated_at),
        },
        "metadata": render::metadata(md),
        "relationships": {
            "app": render::rel(Some(&b.app_guid)),
            "service_instance": render::rel(Some(&b.service_instance_guid)),
        },
        "links": {
            "self": render::link(ctx, &path),
            "details": render::link(ctx, &format!("{path}/details")),
            "app": render::link(ctx, &format!("/v3/apps/{}", b.app_guid)),
            "service_instance": render::link(ctx, &format!("/v3/service_instances/{}", b.service_instance_guid)),
        },
    })
}

async fn render_many(conn: &mut Conn, ctx: &Ctx, items: &[ServiceBinding]) -> ApiResult<Vec<Value>> {
    let guids: Vec<String> = items.iter().map(|b| b.guid.clone()).collect();
    let md = store::metadata_for(conn, &guids).await?;
    Ok(items.iter().map(|b| render(ctx, b, md.get(&b.guid))).collect())
}

/// Bindings of apps in spaces the caller sees.
fn visibility(ctx: &Ctx) -> Option<Cond> {
    ctx.viewer
        .readable_spaces()
        .map(|s| Cond::Sub("service_bindings.app_guid IN (SELECT guid FROM apps WHERE space_guid IN ({}))", s))
}

/// The binding and its app if the caller may see them (404 otherwise).
async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<(ServiceBinding, App)> {
    let not_found = || ApiError::NotFound("Service credential binding");
    let b: Option<ServiceBinding> = store::get(conn, guid).await?;
    let b = b.ok_or_else(not_found)?;
    let app: Option<App> = store::get(conn, &b.app_guid).await?;
    let app = app.filter(|a| ctx.viewer.can_read_space(&a.space_guid)).ok_or_else(not_found)?;
    Ok((b, app))
}

const RULES: ListRules = ListRules {
    filters: &["names", "guids", "app_guids", "app_names", "service_instance_guids", "service_instance_names", "type"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name")],
    default_order: "created_at",
    includes: &["app", "service_instance"],
    labels: true,
};

async fn included(conn: &mut Conn, ctx: &Ctx, items: &[ServiceBinding], include: &[String]) -> ApiResult<Value> {
    let mut out = Map::new();
    for inc in include {
        match inc.as_str() {
            "app" => {
                let guids: Vec<String> = items.iter().map(|b| b.app_guid.clone()).collect();
                let apps: Vec<App> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
                let md = store::metadata_for(conn, &apps.iter().map(|a| a.guid.clone()).collect::<Vec<_>>()).await?;
                let mut list = Vec::new();
                for a in &apps {
                    let base = super::apps::app_url(ctx, a);
                    list.push(
                        serde_json::to_value(super::apps::render(ctx, a, md.get(&a.guid), &base))
                            .map_err(|e| ApiError::Internal(e.to_string()))?,
                    );
                }
                out.insert("apps".into(), Value::Array(list));
            }
            "service_instance" => {
                let guids: Vec<String> = items.iter().map(|b| b.service_instance_guid.clone()).collect();
                let sis: Vec<ServiceInstance> = store::find_all(conn, vec![Cond::In("guid", guids)]).await?;
                let md = store::metadata_for(conn, &sis.iter().map(|s| s.guid.clone()).collect::<Vec<_>>()).await?;
                let list = sis.iter().map(|s| super::service_instances::render(ctx, s, md.get(&s.guid))).collect();
                out.insert("service_instances".into(), Value::Array(list));
            }
            _ => {}
        }
    }
    Ok(Value::Object(out))
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds: Vec<Cond> = visibility(&ctx).into_iter().collect();
    params.in_filters(
        &mut conds,
        &[
            ("names", "name"),
            ("guids", "guid"),
            ("app_guids", "app_guid"),
            ("service_instance_guids", "service_instance_guid"),
        ],
    );
    if let Some(v) = params.filter("app_names") {
        conds.push(Cond::Sub("service_bindings.app_guid IN (SELECT guid FROM apps WHERE name IN ({}))", v.clone()));
    }
    if let Some(v) = params.filter("service_instance_names") {
        conds.push(Cond::Sub(
            "service_bindings.service_instance_guid IN (SELECT guid FROM service_instances WHERE name IN ({}))",
            v.clone(),
        ));
    }
    if let Some(t) = params.filter("type")
        && !t.iter().any(|t| t == "app")
    {
        // Keys need a broker or a user-provided instance's key, neither of which exists yet.
        conds.push(Cond::In("guid", vec![]));
    }
    let mut conn = state.store.conn().await?;
    let page = store::list::<ServiceBinding>(&mut conn, &params.spec(conds)).await?;
    let resources = render_many(&mut conn, &ctx, &page.items).await?;
    let inc = if params.include.is_empty() {
        None
    } else {
        Some(included(&mut conn, &ctx, &page.items, &params.include).await?)
    };
    Ok(render::list(&ctx, "/v3/service_credential_bindings", &params, page.total, resources, inc))
}

pub async fn get_one(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let pairs = only_params(q.as_deref(), &["include"])?;
    let include: Vec<String> =
        pairs.iter().filter(|(k, _)| k == "include").flat_map(|(_, v)| v.split(',').map(str::to_string)).collect();
    if let Some(bad) = include.iter().find(|i| !RULES.includes.contains(&i.as_str())) {
        return Err(ApiError::BadQueryParameter(format!("Invalid included resource: '{bad}'")));
    }
    let mut conn = state.store.conn().await?;
    let (b, _) = find_visible(&mut conn, &ctx, &guid).await?;
    let md = super::metadata_of(&mut conn, &b.guid).await?;
    let mut out = render(&ctx, &b, Some(&md));
    if !include.is_empty() {
        out["included"] = included(&mut conn, &ctx, std::slice::from_ref(&b), &include).await?;
    }
    Ok(ok(out))
}

pub async fn details(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (b, app) = find_visible(&mut conn, &ctx, &guid).await?;
    if !ctx.viewer.can_read_secrets(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let si: Option<ServiceInstance> = store::get(&mut conn, &b.service_instance_guid).await?;
    let si = si.ok_or(ApiError::NotFound("Service instance"))?;
    Ok(ok(json!({"credentials": si.credentials, "syslog_drain_url": si.syslog_drain_url, "volume_mounts": []})))
}

/// Binds `app` to `si` in the caller's transaction: the checks and messages of CC's
/// `ServiceCredentialBindingAppCreate` (same space, not bound yet, binding names unique per
/// app) and its audit event. The manifest's `services:` binds through this too.
pub async fn bind(
    conn: &mut Conn,
    ctx: &Ctx,
    app: &App,
    si: &ServiceInstance,
    name: Option<String>,
) -> ApiResult<ServiceBinding> {
    if app.space_guid != si.space_guid {
        return Err(ApiError::Unprocessable("The service instance and the app are in different spaces".into()));
    }
    let by_app = Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()));
    let existing: Vec<ServiceBinding> = store::find_all(conn, vec![by_app]).await?;
    if existing.iter().any(|b| b.service_instance_guid == si.guid) {
        return Err(ApiError::Unprocessable("The app is already bound to the service instance".into()));
    }
    if let Some(n) = &name
        && existing.iter().any(|b| b.name.as_deref() == Some(n))
    {
        return Err(ApiError::Unprocessable(format!(
            "The binding name is invalid. App binding names must be unique. The app already has a binding with name '{n}'."
        )));
    }
    let now = store::now();
    let b = ServiceBinding {
        guid: store::new_guid(),
        name,
        app_guid: app.guid.clone(),
        service_instance_guid: si.guid.clone(),
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(conn, &b).await?;
    let space: Option<Space> = store::get(conn, &app.space_guid).await?;
    let target = Target { guid: &b.guid, kind: "service_binding", name: b.name.as_deref().unwrap_or("") };
    let data = json!({"request": {
        "type": "app",
        "name": b.name,
        "relationships": {
            "app": {"data": {"guid": app.guid}},
            "service_instance": {"data": {"guid": si.guid}},
        },
    }});
    let org = space.as_ref().map(|s| s.org_guid.as_str());
    audit(conn, ctx, "audit.service_binding.create", target, data, Some(&app.space_guid), org).await?;
    Ok(b)
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["type", "name", "relationships", "parameters", "metadata"])?;
    body.check_relationships(&["service_instance", "app"])?;
    match body.opt_str("type")?.as_deref() {
        Some("app") => {}
        Some("key") => {
            return Err(ApiError::Unprocessable(
                "Service credential bindings of type 'key' are not supported for user-provided service instances."
                    .into(),
            ));
        }
        _ => return Err(ApiError::Unprocessable("Type must be one of 'app', 'key'".into())),
    }
    let name = body.opt_str("name")?;
    if let Some(n) = &name {
        super::check_name(n)?;
    }
    let si_guid = body.relationship_guid("service_instance")?;
    let app_guid = body.relationship_guid("app")?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let si: Option<ServiceInstance> = store::get(&mut tx, &si_guid).await?;
    let si = si
        .filter(|s| ctx.viewer.can_read_space(&s.space_guid))
        .ok_or_else(|| ApiError::Unprocessable(format!("The service instance could not be found: {si_guid}")))?;
    let app: Option<App> = store::get(&mut tx, &app_guid).await?;
    let app = app
        .filter(|a| ctx.viewer.can_read_space(&a.space_guid))
        .ok_or_else(|| ApiError::Unprocessable(format!("The app could not be found: {app_guid}")))?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if body.has("parameters") {
        return Err(ApiError::Unprocessable(
            "Binding parameters are not supported for user-provided service instances".into(),
        ));
    }
    let b = bind(&mut tx, &ctx, &app, &si, name).await?;
    apply_metadata(&mut tx, &b.guid, &metadata).await?;
    let md = super::metadata_of(&mut tx, &b.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &b, Some(&md))))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut tx = state.store.begin().await?;
    let (b, app) = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    store::delete::<ServiceBinding>(&mut tx, &b.guid).await?;
    let space: Option<Space> = store::get(&mut tx, &app.space_guid).await?;
    let target = Target { guid: &b.guid, kind: "service_binding", name: b.name.as_deref().unwrap_or("") };
    let data = json!({"request": {"app_guid": b.app_guid, "service_instance_guid": b.service_instance_guid}});
    let org = space.as_ref().map(|s| s.org_guid.as_str());
    audit(&mut tx, &ctx, "audit.service_binding.delete", target, data, Some(&app.space_guid), org).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
