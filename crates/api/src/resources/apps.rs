//! Apps: their lifecycle settings, environment variables and state.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, App, Cond, Conn, Metadata, Org, Process, Space, Stack, Value as SqlValue};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::{accepted, apply_metadata, audit, check_name, created, metadata_of, ok, spawn_job};
use crate::answers::Found;
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules, only_params};
use crate::render::{Href, Joined, LinkBase, MetadataJson, Rel};
use crate::{ApiState, render};

/// An app as CF shows it.
#[derive(Serialize)]
pub struct AppJson<'a> {
    guid: &'a str,
    name: &'a str,
    state: &'a str,
    created_at: String,
    updated_at: String,
    lifecycle: Lifecycle<'a>,
    relationships: AppRelationships<'a>,
    metadata: MetadataJson<'a>,
    links: AppLinks<'a>,
}

#[derive(Serialize)]
struct Lifecycle<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a Value,
}

#[derive(Serialize)]
struct AppRelationships<'a> {
    space: Rel<'a>,
}

#[derive(Serialize)]
struct AppLinks<'a> {
    #[serde(rename = "self")]
    this: Joined<'a>,
    space: Href,
    processes: Joined<'a>,
    packages: Joined<'a>,
    environment_variables: Joined<'a>,
    current_droplet: Joined<'a>,
    droplets: Joined<'a>,
    tasks: Joined<'a>,
    start: Joined<'a>,
    stop: Joined<'a>,
    revisions: Joined<'a>,
    deployed_revisions: Joined<'a>,
    features: Joined<'a>,
}

/// Renders apps that share one `base` (`ctx.url("/v3/apps/")` + guid is built once per app).
pub fn render<'a>(ctx: &Ctx, a: &'a App, md: Option<&'a Metadata>, base: &'a str) -> AppJson<'a> {
    let base = LinkBase::new(base);
    let l = |s: &'static str| Joined::link(base, s);
    AppJson {
        guid: &a.guid,
        name: &a.name,
        state: &a.state,
        created_at: render::time(&a.created_at),
        updated_at: render::time(&a.updated_at),
        lifecycle: Lifecycle { kind: &a.lifecycle_type, data: &a.lifecycle_data },
        relationships: AppRelationships { space: Rel::to(Some(&a.space_guid)) },
        metadata: MetadataJson::of(md),
        links: AppLinks {
            this: l(""),
            space: Href { href: [ctx.url("/v3/spaces/").as_str(), &a.space_guid].concat() },
            processes: l("/processes"),
            packages: l("/packages"),
            environment_variables: l("/environment_variables"),
            current_droplet: l("/droplets/current"),
            droplets: l("/droplets"),
            tasks: l("/tasks"),
            start: Joined::action(base, "/actions/start"),
            stop: Joined::action(base, "/actions/stop"),
            revisions: l("/revisions"),
            deployed_revisions: l("/revisions/deployed"),
            features: l("/features"),
        },
    }
}

/// The URL of an app (the base its links extend).
pub fn app_url(ctx: &Ctx, a: &App) -> String {
    [ctx.url("/v3/apps/").as_str(), &a.guid].concat()
}

async fn metadata_of_many(conn: &mut Conn, apps: &[App]) -> ApiResult<BTreeMap<String, Metadata>> {
    let guids: Vec<String> = apps.iter().map(|a| a.guid.clone()).collect();
    Ok(store::metadata_for(conn, &guids).await?)
}

pub async fn find_visible(conn: &mut Conn, ctx: &Ctx, guid: &str) -> ApiResult<App> {
    let app: Option<App> = store::get(conn, guid).await?;
    app.filter(|a| ctx.viewer.can_read_space(&a.space_guid)).ok_or(ApiError::NotFound("App"))
}

const RULES: ListRules = ListRules {
    filters: &["names", "guids", "space_guids", "organization_guids", "stacks", "lifecycle_type"],
    order_by: &[("created_at", "created_at"), ("updated_at", "updated_at"), ("name", "name"), ("state", "state")],
    default_order: "created_at",
    includes: &["space", "space.organization"],
    labels: true,
};

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = ListParams::parse(q.as_deref(), &RULES)?;
    let mut conds = Vec::new();
    if let Some(spaces) = ctx.viewer.readable_spaces() {
        conds.push(Cond::In("space_guid", spaces));
    }
    params.in_filters(
        &mut conds,
        &[("names", "name"), ("guids", "guid"), ("space_guids", "space_guid"), ("lifecycle_type", "lifecycle_type")],
    );
    if let Some(v) = params.filter("organization_guids") {
        conds.push(Cond::Sub("apps.space_guid IN (SELECT guid FROM spaces WHERE org_guid IN ({}))", v.clone()));
    }
    let mut conn = state.store.conn().await?;
    // The page reads apps, spaces, organizations and metadata only (included spaces and
    // orgs too): the tables the data generation follows.
    let pending = match state.answers.find(&mut conn, &ctx, "/v3/apps", q.as_deref()).await? {
        Found::Answer(answer) => return Ok(answer),
        Found::Missing(pending) => pending,
    };
    let mut page = store::list::<App>(&mut conn, &params.spec(conds)).await?;
    if let Some(stacks) = params.filter("stacks") {
        page.items.retain(|a| {
            a.lifecycle_data.get("stack").and_then(Value::as_str).is_some_and(|s| stacks.iter().any(|x| x == s))
        });
    }
    let md = metadata_of_many(&mut conn, &page.items).await?;
    let prefix = ctx.url("/v3/apps/");
    let bases: Vec<String> = page.items.iter().map(|a| [prefix.as_str(), &a.guid].concat()).collect();
    let resources: Vec<AppJson> =
        page.items.iter().zip(&bases).map(|(a, base)| render(&ctx, a, md.get(&a.guid), base)).collect();
    let included = if params.include.is_empty() {
        None
    } else {
        let guids: Vec<String> = page.items.iter().map(|a| a.space_guid.clone()).collect();
        let spaces: Vec<Space> = store::find_all(&mut conn, vec![Cond::In("guid", guids)]).await?;
        let mut inc = Map::new();
        inc.insert("spaces".into(), Value::Array(super::spaces::render_many(&mut conn, &ctx, &spaces).await?));
        if params.includes("space.organization") {
            let refs: Vec<&Space> = spaces.iter().collect();
            inc.insert("organizations".into(), super::spaces::included_orgs(&mut conn, &ctx, &refs).await?);
        }
        Some(Value::Object(inc))
    };
    let answer = render::list(&ctx, "/v3/apps", &params, page.total, resources, included);
    Ok(pending.keep(answer).await)
}

/// Checks and normalises a `lifecycle` object; answers (type, data).
async fn lifecycle(conn: &mut Conn, body: &Body) -> ApiResult<(String, Value)> {
    let default_stack = {
        let s: Option<Stack> = store::find_one(conn, &[Cond::Eq("is_default", SqlValue::Int(1))]).await?;
        s.map(|s| s.name).unwrap_or_else(|| "cflinuxfs4".into())
    };
    let Some(lc) = body.sub("lifecycle", &["type", "data"])? else {
        return Ok(("buildpack".into(), json!({"buildpacks": [], "stack": default_stack})));
    };
    let kind = lc.req_str("type")?;
    match kind.as_str() {
        "buildpack" => {
            let data = lc.sub("data", &["buildpacks", "stack"])?;
            let mut buildpacks = Vec::new();
            let mut stack = default_stack;
            if let Some(d) = data {
                if let Some(s) = d.opt_str("stack")? {
                    let known: Option<Stack> =
                        store::find_one(conn, &[Cond::Eq("name", SqlValue::Text(s.clone()))]).await?;
                    if known.is_none() {
                        return Err(ApiError::Unprocessable("Stack must be an existing stack".to_string()));
                    }
                    stack = s;
                }
                if let Some(Value::Array(list)) = body_value(&d, "buildpacks") {
                    for b in list {
                        match b {
                            Value::String(s) => buildpacks.push(s),
                            _ => return Err(ApiError::Unprocessable("Buildpacks can only contain strings".into())),
                        }
                    }
                } else if d.has("buildpacks") && body_value(&d, "buildpacks") != Some(Value::Null) {
                    return Err(ApiError::Unprocessable("Buildpacks must be an array".into()));
                }
            }
            Ok(("buildpack".into(), json!({"buildpacks": buildpacks, "stack": stack})))
        }
        "docker" => Ok(("docker".into(), json!({}))),
        other => {
            Err(ApiError::Unprocessable(format!("Lifecycle type must be one of 'buildpack', 'docker', not '{other}'")))
        }
    }
}

fn body_value(b: &Body, key: &str) -> Option<Value> {
    b.raw(key).cloned()
}

/// Checks environment variable names and values; `null` values delete (in a patch).
fn env_patch(obj: &Map<String, Value>) -> ApiResult<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for (k, v) in obj {
        if k.is_empty() {
            return Err(ApiError::Unprocessable("Environment variable names must not be empty".into()));
        }
        if k.starts_with("VCAP_") {
            return Err(ApiError::Unprocessable("Environment variable names cannot start with VCAP_".into()));
        }
        if k == "PORT" {
            return Err(ApiError::Unprocessable("Environment variable names cannot be PORT".into()));
        }
        let v = match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
            _ => {
                return Err(ApiError::Unprocessable(format!(
                    "Environment variable '{k}' must be a string, a number or a boolean"
                )));
            }
        };
        out.push((k.clone(), v));
    }
    Ok(out)
}

pub(super) fn default_process(app_guid: &str) -> Process {
    let now = store::now();
    Process {
        guid: app_guid.into(),
        app_guid: app_guid.into(),
        process_type: "web".into(),
        command: None,
        instances: 1,
        memory_in_mb: 1024,
        disk_in_mb: 1024,
        log_rate_limit_in_bytes_per_second: -1,
        health_check: json!({"type": "port", "data": {"timeout": null, "invocation_timeout": null}}),
        readiness_health_check: json!({"type": "process", "data": {"invocation_timeout": null}}),
        created_at: now.clone(),
        updated_at: now,
    }
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "relationships", "lifecycle", "environment_variables", "metadata"])?;
    body.check_relationships(&["space"])?;
    let name = body.req_str("name")?;
    check_name(&name)?;
    let space_guid = body.relationship_guid("space")?;
    let env = env_patch(&body.opt_object("environment_variables")?.unwrap_or_default())?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let space: Option<Space> = store::get(&mut tx, &space_guid).await?;
    let space = space.filter(|s| ctx.viewer.can_read_space(&s.guid)).ok_or_else(|| {
        ApiError::Unprocessable("Invalid space. Ensure that the space exists and you have access to it.".into())
    })?;
    if !ctx.viewer.can_develop_space(&space.guid) {
        return Err(ApiError::NotAuthorized);
    }
    let lc = lifecycle(&mut tx, &body).await?;
    let mut app = insert_app(&mut tx, &ctx, &space, &name, lc).await?;
    let vars: Map<String, Value> = env.into_iter().filter_map(|(k, v)| v.map(|v| (k, Value::String(v)))).collect();
    if !vars.is_empty() {
        app.environment_variables = Value::Object(vars);
        store::update(&mut tx, &app).await?;
    }
    apply_metadata(&mut tx, &app.guid, &metadata).await?;
    let md = metadata_of(&mut tx, &app.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &app, Some(&md), &app_url(&ctx, &app))))
}

/// Creates an app (STOPPED, with its web process) in `space`, refusing a name taken there.
pub(super) async fn insert_app(
    conn: &mut Conn,
    ctx: &Ctx,
    space: &Space,
    name: &str,
    (lc_type, lc_data): (String, Value),
) -> ApiResult<App> {
    let clash: Option<App> = store::find_one(
        conn,
        &[Cond::Eq("space_guid", SqlValue::Text(space.guid.clone())), Cond::Eq("name", SqlValue::Text(name.into()))],
    )
    .await?;
    if clash.is_some() {
        return Err(ApiError::Unprocessable(format!("App with the name '{name}' already exists.")));
    }
    let now = store::now();
    let app = App {
        guid: store::new_guid(),
        name: name.into(),
        space_guid: space.guid.clone(),
        state: "STOPPED".into(),
        lifecycle_type: lc_type,
        lifecycle_data: lc_data,
        environment_variables: Value::Object(Map::new()),
        droplet_guid: None,
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(conn, &app).await?;
    // As in CF, the web process exists from the start (sharing the app's guid).
    store::insert(conn, &default_process(&app.guid)).await?;
    audit(
        conn,
        ctx,
        "audit.app.create",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"request": {"name": app.name, "lifecycle": {"type": app.lifecycle_type}}}),
        Some(&space.guid),
        Some(&space.org_guid),
    )
    .await?;
    Ok(app)
}

pub async fn get_one(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let pairs = only_params(q.as_deref(), &["include"])?;
    let mut conn = state.store.conn().await?;
    let app = find_visible(&mut conn, &ctx, &guid).await?;
    let md = metadata_of(&mut conn, &app.guid).await?;
    let mut out = serde_json::to_value(render(&ctx, &app, Some(&md), &app_url(&ctx, &app)))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let include: Vec<&str> = pairs.iter().filter(|(k, _)| k == "include").flat_map(|(_, v)| v.split(',')).collect();
    if let Some(bad) = include.iter().find(|i| !RULES.includes.contains(i)) {
        return Err(ApiError::BadQueryParameter(format!("Invalid included resource: '{bad}'")));
    }
    if !include.is_empty() {
        let space: Option<Space> = store::get(&mut conn, &app.space_guid).await?;
        let spaces: Vec<Space> = space.into_iter().collect();
        let mut inc = Map::new();
        inc.insert("spaces".into(), Value::Array(super::spaces::render_many(&mut conn, &ctx, &spaces).await?));
        if include.contains(&"space.organization") {
            let refs: Vec<&Space> = spaces.iter().collect();
            inc.insert("organizations".into(), super::spaces::included_orgs(&mut conn, &ctx, &refs).await?);
        }
        out["included"] = Value::Object(inc);
    }
    Ok(ok(out))
}

pub async fn update(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["name", "lifecycle", "metadata"])?;
    let name = body.opt_str("name")?;
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let mut app = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if let Some(name) = name {
        check_name(&name)?;
        if name != app.name {
            let clash: Option<App> = store::find_one(
                &mut tx,
                &[
                    Cond::Eq("space_guid", SqlValue::Text(app.space_guid.clone())),
                    Cond::Eq("name", SqlValue::Text(name.clone())),
                ],
            )
            .await?;
            if clash.is_some() {
                return Err(ApiError::Unprocessable(format!("App with the name '{name}' already exists.")));
            }
        }
        app.name = name;
    }
    if body.has("lifecycle") {
        let (t, d) = lifecycle(&mut tx, &body).await?;
        app.lifecycle_type = t;
        app.lifecycle_data = d;
    }
    app.updated_at = store::now();
    store::update(&mut tx, &app).await?;
    apply_metadata(&mut tx, &app.guid, &metadata).await?;
    let space: Option<Space> = store::get(&mut tx, &app.space_guid).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.app.update",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"request": {"name": app.name}}),
        Some(&app.space_guid),
        space.as_ref().map(|s| s.org_guid.as_str()),
    )
    .await?;
    let md = metadata_of(&mut tx, &app.guid).await?;
    tx.commit().await?;
    Ok(ok(render(&ctx, &app, Some(&md), &app_url(&ctx, &app))))
}

pub async fn delete_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let app = find_visible(&mut conn, &ctx, &guid).await?;
    let space: Option<Space> = store::get(&mut conn, &app.space_guid).await?;
    drop(conn);
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let org = space.map(|s| s.org_guid);
    let job = spawn_job(&state, &ctx, "app.delete", "app", &guid, async move {
        let mut tx = st.store.begin().await?;
        let blobs = crate::blob_refs::of_app(&mut tx, &app.guid).await?;
        store::execute(
            &mut tx,
            "DELETE FROM metadata WHERE resource_guid IN (SELECT guid FROM processes WHERE app_guid = $1)",
            vec![SqlValue::Text(app.guid.clone())],
        )
        .await?;
        store::delete::<App>(&mut tx, &app.guid).await?;
        audit(
            &mut tx,
            &actor,
            "audit.app.delete-request",
            Target { guid: &app.guid, kind: "app", name: &app.name },
            json!({"request": {"recursive": true}}),
            Some(&app.space_guid),
            org.as_deref(),
        )
        .await?;
        tx.commit().await?;
        crate::blob_refs::release(&st, blobs).await;
        // Its instances and tasks stop and its routes leave the router.
        crate::lrps::sync_app(&st, &app.guid, false).await?;
        super::tasks::cancel_all_for_app(&st, &app.guid).await?;
        st.routes_changed.notify_one();
        // Its build cache goes with it (none there is fine).
        if let Err(e) = st.blobs.delete(hearth_blobstore::Namespace::BuildpackCache, &app.guid).await {
            tracing::warn!(app = %app.guid, error = %e, "deleting the build cache failed");
        }
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}

fn env_vars_json(ctx: &Ctx, app: &App) -> Value {
    let p = format!("/v3/apps/{}", app.guid);
    json!({
        "var": app.environment_variables,
        "links": {"self": render::link(ctx, &format!("{p}/environment_variables")), "app": render::link(ctx, &p)},
    })
}

pub async fn get_env_vars(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let app = find_visible(&mut conn, &ctx, &guid).await?;
    if !ctx.viewer.can_read_secrets(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    Ok(ok(env_vars_json(&ctx, &app)))
}

pub async fn patch_env_vars(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = Body::parse(&body, &["var"])?;
    let patch = env_patch(&body.opt_object("var")?.unwrap_or_default())?;
    let mut tx = state.store.begin().await?;
    let mut app = find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_operate_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let mut vars = app.environment_variables.as_object().cloned().unwrap_or_default();
    for (k, v) in &patch {
        match v {
            Some(v) => vars.insert(k.clone(), Value::String(v.clone())),
            None => vars.remove(k),
        };
    }
    app.environment_variables = Value::Object(vars);
    app.updated_at = store::now();
    store::update(&mut tx, &app).await?;
    let space: Option<Space> = store::get(&mut tx, &app.space_guid).await?;
    // Values are secrets: the audit event names the keys only.
    let keys: Vec<&String> = patch.iter().map(|(k, _)| k).collect();
    audit(
        &mut tx,
        &ctx,
        "audit.app.update",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"request": {"environment_variables": "[PRIVATE DATA HIDDEN]", "keys": keys}}),
        Some(&app.space_guid),
        space.as_ref().map(|s| s.org_guid.as_str()),
    )
    .await?;
    tx.commit().await?;
    Ok(ok(env_vars_json(&ctx, &app)))
}

pub async fn env(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let app = find_visible(&mut conn, &ctx, &guid).await?;
    if !ctx.viewer.can_read_secrets(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let space: Option<Space> = store::get(&mut conn, &app.space_guid).await?;
    let space = space.ok_or(ApiError::NotFound("Space"))?;
    let org: Option<Org> = store::get(&mut conn, &space.org_guid).await?;
    let web: Option<Process> = store::find_one(
        &mut conn,
        &[
            Cond::Eq("app_guid", SqlValue::Text(app.guid.clone())),
            Cond::Eq("process_type", SqlValue::Text("web".into())),
        ],
    )
    .await?;
    let (mem, disk) = web.map(|p| (p.memory_in_mb, p.disk_in_mb)).unwrap_or((1024, 1024));
    // What the app's next start will see (bindings apply on a restart or restage, as CF).
    let (vcap_services, _) = crate::services_env::for_app(&mut conn, &app.guid).await?;
    Ok(ok(json!({
        "staging_env_json": {},
        "running_env_json": {},
        "environment_variables": app.environment_variables,
        "system_env_json": {"VCAP_SERVICES": vcap_services},
        "application_env_json": {"VCAP_APPLICATION": {
            "application_id": app.guid,
            "application_name": app.name,
            "application_uris": [],
            "cf_api": ctx.base,
            "limits": {"fds": 16384, "mem": mem, "disk": disk},
            "name": app.name,
            "organization_id": space.org_guid,
            "organization_name": org.map(|o| o.name).unwrap_or_default(),
            "space_id": space.guid,
            "space_name": space.name,
            "uris": [],
            "users": null,
        }},
    })))
}
