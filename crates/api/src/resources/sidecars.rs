//! Sidecars: commands that run beside an app's processes of the named types, in the same
//! containers (CF's `/v3/apps/:guid/sidecars`, `/v3/sidecars/:guid`,
//! `/v3/processes/:guid/sidecars`). A change reaches running instances at their next start,
//! as in CF.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, App, Cond, Conn, Process, Sidecar, Value as SqlValue};
use serde_json::{Value, json};

use super::{created, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

/// Where a sidecar came from: the API (or a manifest), as CC's `origin: user`.
pub const ORIGIN_USER: &str = "user";

pub fn render(ctx: &Ctx, s: &Sidecar) -> Value {
    json!({
        "guid": s.guid,
        "name": s.name,
        "command": s.command,
        "process_types": s.process_types,
        "memory_in_mb": s.memory_in_mb,
        "origin": s.origin,
        "relationships": {"app": render::rel(Some(&s.app_guid))},
        "created_at": render::time(&s.created_at),
        "updated_at": render::time(&s.updated_at),
        "links": {
            "self": render::link(ctx, &format!("/v3/sidecars/{}", s.guid)),
            "app": render::link(ctx, &format!("/v3/apps/{}", s.app_guid)),
        },
    })
}

/// What a create or update asks for, checked as CC checks it.
#[derive(Debug, Default, Clone)]
pub struct SidecarChange {
    pub name: Option<String>,
    pub command: Option<String>,
    pub process_types: Option<Vec<String>>,
    /// `Some(None)`: set to null.
    pub memory_in_mb: Option<Option<i64>>,
}

impl SidecarChange {
    pub fn parse(bytes: &[u8], creating: bool) -> ApiResult<SidecarChange> {
        let body = Body::parse(bytes, &["name", "command", "process_types", "memory_in_mb"])?;
        let bad = |m: &str| Err(ApiError::Unprocessable(m.into()));
        let mut change = SidecarChange {
            name: body.opt_str("name")?,
            command: body.opt_str("command")?,
            memory_in_mb: body.opt_int("memory_in_mb")?,
            process_types: None,
        };
        if let Some(types) = body.raw("process_types") {
            let Some(types) = types.as_array() else { return bad("Process types must be an array") };
            let mut names = Vec::new();
            for t in types {
                let Some(t) = t.as_str() else { return bad("Process types must be an array of strings") };
                names.push(t.to_string());
            }
            change.process_types = Some(names);
        }
        if creating {
            match (&change.name, &change.command, &change.process_types) {
                (None, _, _) => return bad("Name can't be blank"),
                (_, None, _) => return bad("Command can't be blank"),
                (_, _, None) => return bad("Process types must have at least 1 process_type"),
                _ => {}
            }
        }
        change.check()?;
        Ok(change)
    }

    fn check(&self) -> ApiResult<()> {
        let bad = |m: &str| Err(ApiError::Unprocessable(m.into()));
        match &self.name {
            Some(n) if n.trim().is_empty() => return bad("Name can't be blank"),
            Some(n) if n.chars().count() > 255 => return bad("Name is too long (maximum is 255 characters)"),
            _ => {}
        }
        match &self.command {
            Some(c) if c.trim().is_empty() => return bad("Command can't be blank"),
            Some(c) if c.chars().count() > 4096 => return bad("Command is too long (maximum is 4096 characters)"),
            _ => {}
        }
        if let Some(types) = &self.process_types {
            if types.is_empty() {
                return bad("Process types must have at least 1 process_type");
            }
            if types.iter().any(|t| t.chars().count() > 255) {
                return bad("Process type is too long (maximum is 255 characters)");
            }
            if types.iter().any(|t| t.trim().is_empty()) {
                return bad("Process types can't contain a blank process type");
            }
        }
        if let Some(Some(m)) = self.memory_in_mb
            && m < 1
        {
            return bad("Memory in mb must be greater than 0");
        }
        Ok(())
    }
}

/// Creates or updates `existing` (or a new sidecar of `app`) in `conn`: a taken name and
/// memory that leaves a dependent process too little are refused as CC refuses them.
pub async fn save(conn: &mut Conn, app: &App, existing: Option<Sidecar>, change: SidecarChange) -> ApiResult<Sidecar> {
    let now = store::now();
    let creating = existing.is_none();
    let mut s = existing.unwrap_or_else(|| Sidecar {
        guid: uuid::Uuid::new_v4().to_string(),
        app_guid: app.guid.clone(),
        name: String::new(),
        command: String::new(),
        process_types: json!([]),
        memory_in_mb: None,
        origin: ORIGIN_USER.into(),
        created_at: now.clone(),
        updated_at: now.clone(),
    });
    if let Some(name) = change.name {
        s.name = name;
    }
    if let Some(command) = change.command {
        s.command = command;
    }
    if let Some(mut types) = change.process_types {
        types.sort();
        types.dedup();
        s.process_types = json!(types);
    }
    if let Some(memory) = change.memory_in_mb {
        s.memory_in_mb = memory;
    }
    s.updated_at = now;
    let others: Vec<Sidecar> =
        store::find_all(conn, vec![Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()))]).await?;
    let others: Vec<&Sidecar> = others.iter().filter(|o| o.guid != s.guid).collect();
    if others.iter().any(|o| o.name == s.name) {
        return Err(ApiError::Unprocessable(format!("Sidecar with name '{}' already exists for given app", s.name)));
    }
    if let Some(memory) = s.memory_in_mb {
        let processes: Vec<Process> =
            store::find_all(conn, vec![Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()))]).await?;
        for p in processes.iter().filter(|p| runs_beside(&s, &p.process_type)) {
            let beside: i64 =
                others.iter().filter(|o| runs_beside(o, &p.process_type)).filter_map(|o| o.memory_in_mb).sum();
            if beside + memory >= p.memory_in_mb {
                return Err(ApiError::Unprocessable(format!(
                    "The memory allocation defined is too large to run with the dependent \"{}\" process",
                    p.process_type
                )));
            }
        }
    }
    let saved = if creating { store::insert(conn, &s).await } else { store::update(conn, &s).await };
    match saved {
        Ok(_) => Ok(s),
        Err(store::Error::Conflict(_)) => {
            Err(ApiError::Unprocessable(format!("Sidecar with name '{}' already exists for given app", s.name)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Whether sidecar `s` runs beside processes of `process_type`.
pub fn runs_beside(s: &Sidecar, process_type: &str) -> bool {
    s.process_types.as_array().is_some_and(|types| types.iter().any(|t| t.as_str() == Some(process_type)))
}

/// The sidecar and its app, if the caller may read the app's space; otherwise a 404.
async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<(Sidecar, App)> {
    super::app_children::find_visible::<Sidecar>(conn, ctx, guid).await
}

pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(app_guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut tx = state.store.begin().await?;
    let app = super::apps::find_visible(&mut tx, &ctx, &app_guid).await?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let change = SidecarChange::parse(&body, true)?;
    let s = save(&mut tx, &app, None, change).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &s)))
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (s, _) = find_visible(&mut conn, &ctx, &guid).await?;
    Ok(ok(render(&ctx, &s)))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut tx = state.store.begin().await?;
    let (s, app) = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let change = SidecarChange::parse(&body, false)?;
    let s = save(&mut tx, &app, Some(s), change).await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &s)))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (s, app) = find_visible(&mut conn, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    store::delete::<Sidecar>(&mut conn, &s.guid).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

const RULES: ListRules = ListRules {
    filters: &["guids"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at")],
    default_order: "created_at",
    includes: &[],
    labels: false,
};

async fn list_with(state: &ApiState, ctx: &Ctx, q: Option<&str>, path: &str, conds: Vec<Cond>) -> ApiResult<Response> {
    let params = ListParams::parse(q, &RULES)?;
    let mut conds = conds;
    params.in_filters(&mut conds, &[("guids", "guid")]);
    let mut conn = state.store.conn().await?;
    let page = store::list::<Sidecar>(&mut conn, &params.spec(conds)).await?;
    let resources: Vec<Value> = page.items.iter().map(|s| render(ctx, s)).collect();
    Ok(render::list(ctx, path, &params, page.total, resources, None))
}

pub async fn list_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (path, conds) = super::app_children::app_list(&state, &ctx, &guid, "sidecars").await?;
    list_with(&state, &ctx, q.as_deref(), &path, conds).await
}

pub async fn list_for_process(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (p, _) = super::app_children::find_visible::<Process>(&mut conn, &ctx, &guid).await?;
    let all: Vec<Sidecar> = store::find_all(&mut conn, vec![Cond::Eq("app_guid", SqlValue::Text(p.app_guid))]).await?;
    drop(conn);
    let beside: Vec<String> = all.into_iter().filter(|s| runs_beside(s, &p.process_type)).map(|s| s.guid).collect();
    list_with(&state, &ctx, q.as_deref(), &format!("/v3/processes/{guid}/sidecars"), vec![Cond::In("guid", beside)])
        .await
}
