//! Processes: what runs for an app (type, command, instances, limits, health checks).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, App, Cond, Conn, Droplet, Metadata, OrgQuota, Process, Space, Value as SqlValue};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{apply_metadata, audit, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

/// The process types of each app's current droplet, by app guid.
async fn detected_of(conn: &mut Conn, apps: &[App]) -> ApiResult<HashMap<String, Value>> {
    let droplets: Vec<String> = apps.iter().filter_map(|a| a.droplet_guid.clone()).collect();
    if droplets.is_empty() {
        return Ok(HashMap::new());
    }
    let found: Vec<Droplet> = store::find_all(conn, vec![Cond::In("guid", droplets)]).await?;
    Ok(found.into_iter().map(|d| (d.app_guid, d.process_types)).collect())
}

/// CF's `specified_or_detected_command`: the process's own command, else its type's in the
/// app's current droplet; hidden from those who may not read the space's secrets.
fn command_of(ctx: &Ctx, p: &Process, space_guid: &str, detected: &HashMap<String, Value>) -> Value {
    let command =
        p.command.clone().or_else(|| detected.get(&p.app_guid)?.get(&p.process_type)?.as_str().map(str::to_string));
    match command {
        Some(_) if !ctx.viewer.can_read_secrets(space_guid) => json!("[PRIVATE DATA HIDDEN]"),
        command => json!(command),
    }
}

pub fn render(ctx: &Ctx, p: &Process, space_guid: &str, command: Value, md: Option<&Metadata>) -> Value {
    let path = format!("/v3/processes/{}", p.guid);
    json!({
        "guid": p.guid,
        "type": p.process_type,
        "command": command,
        "user": "vcap",
        "instances": p.instances,
        "memory_in_mb": p.memory_in_mb,
        "disk_in_mb": p.disk_in_mb,
        "log_rate_limit_in_bytes_per_second": p.log_rate_limit_in_bytes_per_second,
        "health_check": p.health_check,
        "readiness_health_check": p.readiness_health_check,
        "relationships": {"app": render::rel(Some(&p.app_guid)), "revision": render::rel(None)},
        "metadata": render::metadata(md),
        "created_at": render::time(&p.created_at),
        "updated_at": render::time(&p.updated_at),
        "version": p.updated_at,
        "links": {
            "self": render::link(ctx, &path),
            "scale": {"href": ctx.url(&format!("{path}/actions/scale")), "method": "POST"},
            "app": render::link(ctx, &format!("/v3/apps/{}", p.app_guid)),
            "space": render::link(ctx, &format!("/v3/spaces/{space_guid}")),
            "stats": render::link(ctx, &format!("{path}/stats")),
            "process_instances": render::link(ctx, &format!("{path}/process_instances")),
        },
    })
}

async fn render_many(conn: &mut Conn, ctx: &Ctx, procs: &[Process]) -> ApiResult<Vec<Value>> {
    let guids: Vec<String> = procs.iter().map(|p| p.guid.clone()).collect();
    let app_guids: Vec<String> = procs.iter().map(|p| p.app_guid.clone()).collect();
    let apps: Vec<App> = store::find_all(conn, vec![Cond::In("guid", app_guids)]).await?;
    let md = store::metadata_for(conn, &guids).await?;
    let detected = detected_of(conn, &apps).await?;
    Ok(procs
        .iter()
        .map(|p| {
            let space = apps.iter().find(|a| a.guid == p.app_guid).map(|a| a.space_guid.as_str()).unwrap_or("");
            render(ctx, p, space, command_of(ctx, p, space, &detected), md.get(&p.guid))
        })
        .collect())
}

const RULES: ListRules = ListRules {
    filters: &["guids", "types", "app_guids", "space_guids", "organization_guids"],
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
    super::app_children::scope::<Process>(ctx, &params, &mut conds);
    params.in_filters(&mut conds, &[("guids", "guid"), ("types", "process_type")]);
    let mut conn = state.store.conn().await?;
    let page = store::list::<Process>(&mut conn, &params.spec(conds)).await?;
    let resources = render_many(&mut conn, ctx, &page.items).await?;
    Ok(render::list(ctx, path, &params, page.total, resources, None))
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_with(&state, &ctx, q.as_deref(), "/v3/processes", vec![]).await
}

pub async fn list_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (path, conds) = super::app_children::app_list(&state, &ctx, &guid, "processes").await?;
    list_with(&state, &ctx, q.as_deref(), &path, conds).await
}

/// The process and its app, if the caller may see them.
async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<(Process, App)> {
    super::app_children::find_visible(conn, ctx, guid).await
}

async fn find_for_app(conn: &mut Conn, ctx: &Ctx, app_guid: &str, ptype: &str) -> ApiResult<(Process, App)> {
    let app = super::apps::find_visible(conn, ctx, app_guid).await?;
    let p: Option<Process> = store::find_one(
        conn,
        &[
            Cond::Eq("app_guid", SqlValue::Text(app.guid.clone())),
            Cond::Eq("process_type", SqlValue::Text(ptype.into())),
        ],
    )
    .await?;
    Ok((p.ok_or(ApiError::NotFound("Process"))?, app))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, app) = find_visible(&mut conn, &ctx, &guid).await?;
    let md = super::metadata_of(&mut conn, &p.guid).await?;
    let detected = detected_of(&mut conn, std::slice::from_ref(&app)).await?;
    Ok(ok(render(&ctx, &p, &app.space_guid, command_of(&ctx, &p, &app.space_guid, &detected), Some(&md))))
}

pub async fn get_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((guid, ptype)): Path<(String, String)>,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, app) = find_for_app(&mut conn, &ctx, &guid, &ptype).await?;
    let md = super::metadata_of(&mut conn, &p.guid).await?;
    let detected = detected_of(&mut conn, std::slice::from_ref(&app)).await?;
    Ok(ok(render(&ctx, &p, &app.space_guid, command_of(&ctx, &p, &app.space_guid, &detected), Some(&md))))
}

fn health_check(body: &Body, key: &str, readiness: bool) -> ApiResult<Option<Value>> {
    let Some(hc) = body.sub(key, &["type", "data"])? else { return Ok(None) };
    let kind = hc.req_str("type")?;
    let allowed: &[&str] = if readiness { &["http", "port", "process"] } else { &["http", "port", "process", "none"] };
    if !allowed.contains(&kind.as_str()) {
        return Err(ApiError::Unprocessable(format!("Health check type must be one of {}", allowed.join(", "))));
    }
    let mut data = json!({"invocation_timeout": null});
    if !readiness {
        data["timeout"] = Value::Null;
    }
    if let Some(d) = hc.sub("data", &["timeout", "invocation_timeout", "interval", "endpoint"])? {
        for k in ["timeout", "invocation_timeout", "interval"] {
            if let Some(v) = d.opt_int(k)? {
                if v.is_some_and(|n| n < 1) {
                    return Err(ApiError::Unprocessable(format!("{k} must be greater than or equal to 1")));
                }
                data[k] = json!(v);
            }
        }
        if let Some(ep) = d.opt_str("endpoint")? {
            if !ep.starts_with('/') {
                return Err(ApiError::Unprocessable("Health check endpoint must be a valid URI path".into()));
            }
            data["endpoint"] = json!(ep);
        }
    }
    if kind == "http" && data.get("endpoint").is_none() {
        data["endpoint"] = json!("/");
    }
    Ok(Some(json!({"type": kind, "data": data})))
}

async fn apply_update(state: &ApiState, ctx: &Ctx, mut p: Process, app: App, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["command", "health_check", "readiness_health_check", "metadata"])?;
    if !ctx.viewer.can_operate_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if body.has("command") {
        p.command = body.opt_str("command")?.filter(|c| !c.is_empty());
        if p.command.as_ref().is_some_and(|c| c.len() > 4096) {
            return Err(ApiError::Unprocessable("Command must be between 1 and 4096 characters".into()));
        }
    }
    if let Some(hc) = health_check(&body, "health_check", false)? {
        p.health_check = hc;
    }
    if let Some(hc) = health_check(&body, "readiness_health_check", true)? {
        p.readiness_health_check = hc;
    }
    let metadata = body.metadata()?;
    p.updated_at = store::now();
    let mut tx = state.store.begin().await?;
    store::update(&mut tx, &p).await?;
    apply_metadata(&mut tx, &p.guid, &metadata).await?;
    audit(
        &mut tx,
        ctx,
        "audit.app.process.update",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"process_guid": p.guid, "process_type": p.process_type}),
        Some(&app.space_guid),
        None,
    )
    .await?;
    let md = super::metadata_of(&mut tx, &p.guid).await?;
    let detected = detected_of(&mut tx, std::slice::from_ref(&app)).await?;
    tx.commit().await?;
    Ok(ok(render(ctx, &p, &app.space_guid, command_of(ctx, &p, &app.space_guid, &detected), Some(&md))))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, app) = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    apply_update(&state, &ctx, p, app, body).await
}

pub async fn update_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((guid, ptype)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, app) = find_for_app(&mut conn, &ctx, &guid, &ptype).await?;
    drop(conn);
    apply_update(&state, &ctx, p, app, body).await
}

/// Checks a scaled process against its org's quota.
async fn check_quota(conn: &mut Conn, p: &Process, app: &App) -> ApiResult<()> {
    let space: Option<Space> = store::get(conn, &app.space_guid).await?;
    let Some(space) = space else { return Ok(()) };
    let org: Option<store::Org> = store::get(conn, &space.org_guid).await?;
    let Some(quota_guid) = org.and_then(|o| o.quota_guid) else { return Ok(()) };
    let quota: Option<OrgQuota> = store::get(conn, &quota_guid).await?;
    let Some(quota) = quota else { return Ok(()) };
    let apps = &quota.spec["apps"];
    if let Some(per) = apps["per_process_memory_in_mb"].as_i64()
        && p.memory_in_mb > per
    {
        return Err(ApiError::Unprocessable(
            "memory_in_mb exceeds organization memory quota for a single process".into(),
        ));
    }
    let others: Vec<Process> = store::find_all(
        conn,
        vec![
            Cond::Sub("processes.app_guid IN (SELECT a.guid FROM apps a JOIN spaces s ON a.space_guid = s.guid WHERE s.org_guid IN ({}))", vec![space.org_guid.clone()]),
            Cond::Cmp("guid", "<>", SqlValue::Text(p.guid.clone())),
        ],
    )
    .await?;
    if let Some(total) = apps["total_memory_in_mb"].as_i64() {
        let used: i64 = others.iter().map(|o| o.memory_in_mb * o.instances).sum::<i64>() + p.memory_in_mb * p.instances;
        if used > total {
            return Err(ApiError::Unprocessable(
                "memory quota_exceeded: the organization's total memory limit would be exceeded".into(),
            ));
        }
    }
    if let Some(total) = apps["total_instances"].as_i64() {
        let used: i64 = others.iter().map(|o| o.instances).sum::<i64>() + p.instances;
        if used > total {
            return Err(ApiError::Unprocessable(
                "instance quota_exceeded: the organization's instance limit would be exceeded".into(),
            ));
        }
    }
    Ok(())
}

async fn apply_scale(state: &ApiState, ctx: &Ctx, mut p: Process, app: App, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["instances", "memory_in_mb", "disk_in_mb", "log_rate_limit_in_bytes_per_second"])?;
    if !ctx.viewer.can_operate_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if let Some(Some(n)) = body.opt_int("instances")? {
        if !(0..=2000).contains(&n) {
            return Err(ApiError::Unprocessable("Instances must be greater than or equal to 0".into()));
        }
        p.instances = n;
    }
    if let Some(Some(m)) = body.opt_int("memory_in_mb")? {
        if m < 1 {
            return Err(ApiError::Unprocessable("Memory in mb must be greater than 0".into()));
        }
        p.memory_in_mb = m;
    }
    if let Some(Some(d)) = body.opt_int("disk_in_mb")? {
        if d < 1 {
            return Err(ApiError::Unprocessable("Disk in mb must be greater than 0".into()));
        }
        p.disk_in_mb = d;
    }
    if let Some(Some(l)) = body.opt_int("log_rate_limit_in_bytes_per_second")? {
        if l < -1 {
            return Err(ApiError::Unprocessable(
                "Log rate limit in bytes per second must be greater than or equal to -1".into(),
            ));
        }
        p.log_rate_limit_in_bytes_per_second = l;
    }
    let mut tx = state.store.begin().await?;
    check_quota(&mut tx, &p, &app).await?;
    p.updated_at = store::now();
    store::update(&mut tx, &p).await?;
    audit(
        &mut tx,
        ctx,
        "audit.app.process.scale",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"process_guid": p.guid, "process_type": p.process_type, "request": {"instances": p.instances, "memory_in_mb": p.memory_in_mb, "disk_in_mb": p.disk_in_mb}}),
        Some(&app.space_guid),
        None,
    )
    .await?;
    let md = super::metadata_of(&mut tx, &p.guid).await?;
    let detected = detected_of(&mut tx, std::slice::from_ref(&app)).await?;
    tx.commit().await?;
    crate::lrps::sync_app(state, &app.guid, false).await?;
    let command = command_of(ctx, &p, &app.space_guid, &detected);
    Ok(super::accepted_with(render(ctx, &p, &app.space_guid, command, Some(&md))))
}

pub async fn scale(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, app) = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    apply_scale(&state, &ctx, p, app, body).await
}

pub async fn scale_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((guid, ptype)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, app) = find_for_app(&mut conn, &ctx, &guid, &ptype).await?;
    drop(conn);
    apply_scale(&state, &ctx, p, app, body).await
}

/// The stats of a process the caller may see.
async fn stats_of(state: &ApiState, p: &Process) -> ApiResult<Value> {
    let actual = match crate::lrps::current_lrp(state, p).await? {
        Some(lrp) => {
            state.scheduler.actual_lrps(Some(&lrp.process_guid)).await.map_err(|e| ApiError::Internal(e.to_string()))?
        }
        None => Vec::new(),
    };
    let usage = super::process_stats::usage_by_index(&state.logs, &p.app_guid, &p.guid);
    Ok(super::process_stats::stats_json(p, &actual, &usage, time::OffsetDateTime::now_utc()))
}

pub async fn stats(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, _) = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    Ok(ok(stats_of(&state, &p).await?))
}

pub async fn stats_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path((guid, ptype)): Path<(String, String)>,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, _) = find_for_app(&mut conn, &ctx, &guid, &ptype).await?;
    drop(conn);
    Ok(ok(stats_of(&state, &p).await?))
}
