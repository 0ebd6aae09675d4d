//! Tasks (`cf run-task`): one-off commands run from an app's droplet. A create records the
//! CC task (PENDING, numbered per app) and the scheduler's task of the same guid in one go;
//! the scheduler auctions it to a cell, which runs it; its state follows the scheduler's
//! (`task_states`). A cancel makes it CANCELING and cancels the scheduler's task; it ends
//! FAILED with "task was cancelled". The command is shown only to those who may read the
//! space's secrets, as CF does.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_scheduler::TaskEvent;
use hearth_store::{
    self as store, App, CcTask, Cond, Conn, Droplet, FeatureFlag, Metadata, Process, Space, Value as SqlValue,
};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{apply_metadata, audit, metadata_of};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::task_states::{self, CANCELING, PENDING};
use crate::{ApiState, render};

/// Memory and disk a task gets unless it (or its template process) says otherwise (CC's
/// `default_app_memory`, `default_app_disk_in_mb`).
const DEFAULT_MB: i64 = 1024;

fn sched_err(e: hearth_scheduler::Error) -> ApiError {
    ApiError::Internal(format!("scheduler: {e}"))
}

pub fn render(ctx: &Ctx, t: &CcTask, md: Option<&Metadata>, show_command: bool) -> Value {
    let path = format!("/v3/tasks/{}", t.guid);
    let mut v = json!({
        "guid": t.guid,
        "sequence_id": t.sequence_id,
        "name": t.name,
        "command": t.command,
        "state": t.state,
        "memory_in_mb": t.memory_in_mb,
        "disk_in_mb": t.disk_in_mb,
        "log_rate_limit_in_bytes_per_second": t.log_rate_limit_in_bytes_per_second,
        "result": {"failure_reason": t.failure_reason},
        "droplet_guid": t.droplet_guid,
        "relationships": {"app": render::rel(Some(&t.app_guid))},
        "metadata": render::metadata(md),
        "created_at": render::time(&t.created_at),
        "updated_at": render::time(&t.updated_at),
        "links": {
            "self": render::link(ctx, &path),
            "app": render::link(ctx, &format!("/v3/apps/{}", t.app_guid)),
            "cancel": {"href": ctx.url(&format!("{path}/actions/cancel")), "method": "POST"},
            "droplet": render::link(ctx, &format!("/v3/droplets/{}", t.droplet_guid)),
        },
    });
    if !show_command && let Some(o) = v.as_object_mut() {
        o.remove("command");
    }
    v
}

/// `POST /v3/apps/:guid/tasks`.
pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(app_guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let allowed = [
        "command",
        "name",
        "memory_in_mb",
        "disk_in_mb",
        "log_rate_limit_in_bytes_per_second",
        "droplet_guid",
        "template",
        "metadata",
    ];
    let body = Body::parse(&body, &allowed)?;
    let command = body.opt_str("command")?;
    let name = body.opt_str("name")?;
    let memory = positive(&body, "memory_in_mb")?;
    let disk = positive(&body, "disk_in_mb")?;
    let log_rate = match body.opt_int("log_rate_limit_in_bytes_per_second")?.flatten() {
        Some(n) if n < -1 => {
            return Err(ApiError::Unprocessable("Log rate limit in bytes per second must be greater than -2".into()));
        }
        other => other.unwrap_or(-1),
    };
    let droplet_guid = body.opt_str("droplet_guid")?;
    let template = match body.sub("template", &["process"])? {
        Some(t) => t.sub("process", &["guid"])?.map(|p| p.req_str("guid")).transpose()?,
        None => None,
    };
    let metadata = body.metadata()?;
    if command.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::Unprocessable("Command can't be blank".into()));
    }

    let mut conn = state.store.conn().await?;
    let app = super::apps::find_visible(&mut conn, &ctx, &app_guid).await?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let flag: Option<FeatureFlag> = store::get(&mut conn, "task_creation").await?;
    if !ctx.viewer.is_admin() && flag.is_some_and(|f| !f.enabled) {
        return Err(ApiError::FeatureDisabled("task_creation".into()));
    }
    let droplet = task_droplet(&mut conn, &app, droplet_guid.as_deref()).await?;
    let process = match &template {
        Some(guid) => {
            let p: Option<Process> = store::get(&mut conn, guid).await?;
            Some(p.filter(|p| p.app_guid == app.guid).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "Template process with guid '{guid}' does not exist or belongs to another app"
                ))
            })?)
        }
        None => None,
    };
    let from_template = process.as_ref().and_then(|p| {
        p.command.clone().or_else(|| droplet.process_types[&p.process_type].as_str().map(str::to_string))
    });
    let command = command.or(from_template).filter(|c| !c.is_empty()).ok_or_else(|| {
        ApiError::Unprocessable("Command can't be blank: give a command or a template process that has one".into())
    })?;
    let memory = memory.or(process.as_ref().map(|p| p.memory_in_mb)).unwrap_or(DEFAULT_MB);
    let disk = disk.or(process.as_ref().map(|p| p.disk_in_mb)).unwrap_or(DEFAULT_MB);
    let guid = store::new_guid();
    let name = name.unwrap_or_else(|| guid.replace('-', "")[..8].to_string());
    super::check_name(&name)?;
    let spec = crate::lrps::TaskSpec { name: &name, command: &command, memory_mb: memory, disk_mb: disk };
    let definition = crate::lrps::task_definition(&mut conn, &state, &app, &droplet, &spec).await?;
    drop(conn);

    let mut tx = state.store.begin().await?;
    let siblings: Vec<CcTask> =
        store::find_all(&mut tx, vec![Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()))]).await?;
    let now = store::now();
    let task = CcTask {
        guid: guid.clone(),
        app_guid: app.guid.clone(),
        name,
        command,
        state: PENDING.into(),
        sequence_id: siblings.iter().map(|t| t.sequence_id).max().unwrap_or(0) + 1,
        memory_in_mb: memory,
        disk_in_mb: disk,
        log_rate_limit_in_bytes_per_second: log_rate,
        droplet_guid: droplet.guid.clone(),
        failure_reason: None,
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &task).await?;
    apply_metadata(&mut tx, &guid, &metadata).await?;
    let space: Option<Space> = store::get(&mut tx, &app.space_guid).await?;
    let request = json!({"name": task.name, "memory_in_mb": memory, "command": "[PRIVATE DATA HIDDEN]"});
    audit(
        &mut tx,
        &ctx,
        "audit.app.task.create",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"task_guid": guid, "request": request}),
        Some(&app.space_guid),
        space.as_ref().map(|s| s.org_guid.as_str()),
    )
    .await?;
    let md = metadata_of(&mut tx, &guid).await?;
    tx.commit().await?;
    // The scheduler's task follows the CC task (its events find the row); if it cannot be
    // made, the CC task goes again.
    if let Err(e) = state.scheduler.create_task(&guid, definition).await {
        let mut tx = state.store.begin().await?;
        store::delete::<CcTask>(&mut tx, &guid).await?;
        tx.commit().await?;
        return Err(sched_err(e));
    }
    let body = render(&ctx, &task, Some(&md), true);
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// A positive integer field (`None` when absent or null).
fn positive(body: &Body, key: &str) -> ApiResult<Option<i64>> {
    match body.opt_int(key)?.flatten() {
        Some(n) if n < 1 => {
            let field = if key == "memory_in_mb" { "Memory in mb" } else { "Disk in mb" };
            Err(ApiError::Unprocessable(format!("{field} must be greater than 0")))
        }
        other => Ok(other),
    }
}

/// The droplet a task runs from: the one named (it must be the app's and staged), else
/// the app's current droplet.
async fn task_droplet(conn: &mut Conn, app: &App, named: Option<&str>) -> ApiResult<Droplet> {
    let guid = match named.or(app.droplet_guid.as_deref()) {
        Some(g) => g.to_string(),
        None => {
            return Err(ApiError::Unprocessable(
                "Task must have a droplet. Assign a current droplet to the app.".into(),
            ));
        }
    };
    let droplet: Option<Droplet> = store::get(conn, &guid).await?;
    match droplet {
        Some(d) if d.app_guid == app.guid && d.state == "STAGED" => Ok(d),
        _ if named.is_some() => Err(ApiError::Unprocessable(format!(
            "Droplet with guid '{guid}' does not exist, is not staged or belongs to another app"
        ))),
        _ => Err(ApiError::Unprocessable("Task must have a droplet. Assign a current droplet to the app.".into())),
    }
}

/// The task and its app, if the caller may see them.
async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<(CcTask, App)> {
    super::app_children::find_visible(conn, ctx, guid).await
}

/// `GET /v3/tasks/:guid`.
pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (task, app) = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    let mut rows = [task];
    task_states::refresh(&state.store, &state.scheduler, &mut rows).await?;
    let mut conn = state.store.conn().await?;
    let md = metadata_of(&mut conn, &guid).await?;
    Ok(super::ok(render(&ctx, &rows[0], Some(&md), ctx.viewer.can_read_secrets(&app.space_guid))))
}

const RULES: ListRules = ListRules {
    filters: &["guids", "names", "states", "app_guids", "space_guids", "organization_guids", "sequence_ids"],
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
    super::app_children::scope::<CcTask>(ctx, &params, &mut conds);
    params.in_filters(&mut conds, &[("guids", "guid"), ("names", "name"), ("states", "state")]);
    if let Some(ids) = params.filter("sequence_ids") {
        let ids: Vec<SqlValue> = ids.iter().filter_map(|i| i.parse::<i64>().ok()).map(SqlValue::Int).collect();
        conds.push(if ids.is_empty() {
            Cond::False
        } else {
            Cond::Or(ids.into_iter().map(|i| Cond::Eq("sequence_id", i)).collect())
        });
    }
    let mut conn = state.store.conn().await?;
    let mut page = store::list::<CcTask>(&mut conn, &params.spec(conds)).await?;
    drop(conn);
    task_states::refresh(&state.store, &state.scheduler, &mut page.items).await?;
    let mut conn = state.store.conn().await?;
    let guids: Vec<String> = page.items.iter().map(|t| t.guid.clone()).collect();
    let md = store::metadata_for(&mut conn, &guids).await?;
    let mut secrets = std::collections::HashMap::new();
    let mut resources = Vec::new();
    for t in &page.items {
        if !secrets.contains_key(&t.app_guid) {
            let app: Option<App> = store::get(&mut conn, &t.app_guid).await?;
            let show = app.is_some_and(|a| ctx.viewer.can_read_secrets(&a.space_guid));
            secrets.insert(t.app_guid.clone(), show);
        }
        resources.push(render(ctx, t, md.get(&t.guid), secrets[&t.app_guid]));
    }
    Ok(render::list(ctx, path, &params, page.total, resources, None))
}

/// `GET /v3/tasks`.
pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_with(&state, &ctx, q.as_deref(), "/v3/tasks", vec![]).await
}

/// `GET /v3/apps/:guid/tasks`.
pub async fn list_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (path, conds) = super::app_children::app_list(&state, &ctx, &guid, "tasks").await?;
    list_with(&state, &ctx, q.as_deref(), &path, conds).await
}

/// `POST /v3/tasks/:guid/actions/cancel`: CANCELING now, FAILED ("task was cancelled") once
/// the scheduler has it.
pub async fn cancel(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut tx = state.store.begin().await?;
    let (mut task, app) = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if task_states::is_final(&task.state) {
        return Err(ApiError::Unprocessable(format!("Task state is {} and therefore cannot be canceled", task.state)));
    }
    task.state = CANCELING.into();
    task.updated_at = store::now();
    store::update(&mut tx, &task).await?;
    let space: Option<Space> = store::get(&mut tx, &app.space_guid).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.app.task.cancel",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"task_guid": task.guid, "request": {"name": task.name}}),
        Some(&app.space_guid),
        space.as_ref().map(|s| s.org_guid.as_str()),
    )
    .await?;
    let md = metadata_of(&mut tx, &guid).await?;
    tx.commit().await?;
    match state.scheduler.change_task(&guid, &TaskEvent::Cancel).await {
        // Completed meanwhile: its result stands (the follower records it).
        Ok(_) | Err(hearth_scheduler::Error::NotFound { .. } | hearth_scheduler::Error::TaskTransition { .. }) => {}
        Err(e) => return Err(sched_err(e)),
    }
    let body = render(&ctx, &task, Some(&md), ctx.viewer.can_read_secrets(&app.space_guid));
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}

/// Cancels the scheduler's tasks of an app being deleted (their CC rows go with the app).
pub async fn cancel_all_for_app(state: &ApiState, app_guid: &str) -> ApiResult<()> {
    let tasks = state.scheduler.tasks().await.map_err(sched_err)?;
    for t in tasks.iter().filter(|t| t.definition.app_guid == app_guid) {
        match state.scheduler.change_task(&t.guid, &TaskEvent::Cancel).await {
            Ok(_) | Err(hearth_scheduler::Error::NotFound { .. } | hearth_scheduler::Error::TaskTransition { .. }) => {}
            Err(e) => return Err(sched_err(e)),
        }
    }
    Ok(())
}
