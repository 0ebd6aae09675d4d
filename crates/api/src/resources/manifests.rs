//! `POST /v3/spaces/:guid/actions/apply_manifest`: the CF manifest (YAML) applied to a
//! space's apps. Every `cf push` sends one, even without a manifest file. As in the Cloud
//! Controller, the apps are found or created before the answer (the client looks them up
//! by name right after the 202) and the rest — scale, command, health checks, env, routes,
//! processes — is applied by the job the answer points at.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use hearth_store::{
    self as store, App, Cond, Conn, Domain, Process, Route, RouteMapping, ServiceBinding, ServiceInstance, Space,
    Value as SqlValue,
};
use serde_json::{Value, json};

use super::manifest_spec::{AppSpec, ProcessSpec, bad, parse};

use super::audit_events::Target;
use super::orgs::ctx_snapshot;
use super::{accepted, audit, spawn_job};
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::{ApiState, lrps};

pub async fn apply(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let specs = parse(&body)?;
    let mut tx = state.store.begin().await?;
    let space = super::spaces::find_visible(&mut tx, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&space.guid) {
        return Err(ApiError::NotAuthorized);
    }
    // Find or create every app now: the client looks them up by name after the 202.
    let mut apps = Vec::new();
    for spec in &specs {
        let found: Option<App> = store::find_one(
            &mut tx,
            &[
                Cond::Eq("space_guid", SqlValue::Text(space.guid.clone())),
                Cond::Eq("name", SqlValue::Text(spec.name.clone())),
            ],
        )
        .await?;
        let app = match found {
            Some(app) => {
                if spec.docker_image.is_some() && app.lifecycle_type == "buildpack" {
                    return Err(bad(&spec.name, "Docker cannot be configured for a buildpack lifecycle app."));
                }
                if spec.buildpacks.as_ref().is_some_and(|b| !b.is_empty()) && app.lifecycle_type == "docker" {
                    return Err(bad(&spec.name, "Buildpacks cannot be configured for a docker lifecycle app."));
                }
                app
            }
            None => {
                let lifecycle = lifecycle_of(&mut tx, spec).await?;
                super::apps::insert_app(&mut tx, &ctx, &space, &spec.name, lifecycle).await?
            }
        };
        apps.push(app);
    }
    tx.commit().await?;
    let st = state.clone();
    let actor = ctx_snapshot(&ctx);
    let space_guid = space.guid.clone();
    let job = spawn_job(&state, &ctx, "app.apply_manifest", "space", &space_guid, async move {
        for (spec, app) in specs.iter().zip(&apps) {
            apply_one(&st, &actor, &space, app, spec).await?;
        }
        st.routes_changed.notify_one();
        Ok(())
    })
    .await?;
    Ok(accepted(&ctx, &job))
}

/// Binds the instances `services` names (of the app's space) unless already bound, as CC's
/// manifest does; a missing instance fails the whole app's manifest (nothing of it applied).
async fn apply_services(conn: &mut Conn, ctx: &Ctx, app: &App, spec: &AppSpec) -> ApiResult<()> {
    for s in &spec.services {
        let found: Option<ServiceInstance> = store::find_one(
            conn,
            &[
                Cond::Eq("space_guid", SqlValue::Text(app.space_guid.clone())),
                Cond::Eq("name", SqlValue::Text(s.name.clone())),
            ],
        )
        .await?;
        let si = found.ok_or_else(|| ApiError::ResourceNotFound(format!("Service instance '{}' not found", s.name)))?;
        if s.parameters {
            return Err(bad(&app.name, "Binding parameters are not supported for user-provided service instances"));
        }
        let bound = store::count::<ServiceBinding>(
            conn,
            &[
                Cond::Eq("app_guid", SqlValue::Text(app.guid.clone())),
                Cond::Eq("service_instance_guid", SqlValue::Text(si.guid.clone())),
            ],
        )
        .await?;
        if bound == 0 {
            super::service_bindings::bind(conn, ctx, app, &si, s.binding_name.clone()).await?;
        }
    }
    Ok(())
}

async fn lifecycle_of(conn: &mut Conn, spec: &AppSpec) -> ApiResult<(String, Value)> {
    if spec.docker_image.is_some() {
        return Ok(("docker".into(), json!({})));
    }
    let stack = match &spec.stack {
        Some(s) => {
            let known: Option<store::Stack> =
                store::find_one(conn, &[Cond::Eq("name", SqlValue::Text(s.clone()))]).await?;
            known.ok_or_else(|| bad(&spec.name, format!("Stack '{s}' does not exist")))?.name
        }
        None => {
            let d: Option<store::Stack> = store::find_one(conn, &[Cond::Eq("is_default", SqlValue::Int(1))]).await?;
            d.map(|s| s.name).unwrap_or_else(|| "cflinuxfs4".into())
        }
    };
    Ok(("buildpack".into(), json!({"buildpacks": spec.buildpacks.clone().unwrap_or_default(), "stack": stack})))
}

async fn apply_one(state: &ApiState, ctx: &Ctx, space: &Space, app: &App, spec: &AppSpec) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    let current: Option<App> = store::get(&mut tx, &app.guid).await?;
    let Some(mut app) = current else { return Ok(()) };
    if !spec.env.is_empty() || spec.buildpacks.is_some() || spec.stack.is_some() {
        if let Some(vars) = app.environment_variables.as_object_mut() {
            vars.extend(spec.env.clone());
        }
        if app.lifecycle_type == "buildpack" {
            let (_, data) = lifecycle_of(&mut tx, spec).await?;
            if spec.buildpacks.is_some() {
                app.lifecycle_data["buildpacks"] = data["buildpacks"].clone();
            }
            if spec.stack.is_some() {
                app.lifecycle_data["stack"] = data["stack"].clone();
            }
        }
        app.updated_at = store::now();
        store::update(&mut tx, &app).await?;
    }
    for p in &spec.processes {
        apply_process(&mut tx, &app, p).await?;
    }
    apply_sidecars(&mut tx, &app, spec).await?;
    apply_routes(&mut tx, space, &app, spec).await?;
    apply_services(&mut tx, ctx, &app, spec).await?;
    audit(
        &mut tx,
        ctx,
        "audit.app.apply_manifest",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"request": {"manifest": "applied"}}),
        Some(&space.guid),
        Some(&space.org_guid),
    )
    .await?;
    tx.commit().await?;
    lrps::sync_app(state, &app.guid, false).await
}

/// Each sidecar the manifest names is created or updated; others stay.
async fn apply_sidecars(conn: &mut Conn, app: &App, spec: &AppSpec) -> ApiResult<()> {
    for change in &spec.sidecars {
        let name = change.name.clone().unwrap_or_default();
        let existing: Option<hearth_store::Sidecar> = store::find_one(
            conn,
            &[Cond::Eq("app_guid", SqlValue::Text(app.guid.clone())), Cond::Eq("name", SqlValue::Text(name))],
        )
        .await?;
        super::sidecars::save(conn, app, existing, change.clone()).await.map_err(|e| match e {
            ApiError::Unprocessable(why) => super::manifest_spec::bad(&app.name, why),
            other => other,
        })?;
    }
    Ok(())
}

async fn apply_process(conn: &mut Conn, app: &App, p: &ProcessSpec) -> ApiResult<()> {
    let found: Option<Process> = store::find_one(
        conn,
        &[
            Cond::Eq("app_guid", SqlValue::Text(app.guid.clone())),
            Cond::Eq("process_type", SqlValue::Text(p.kind.clone())),
        ],
    )
    .await?;
    let (mut process, new) = match found {
        Some(found) => (found, false),
        None => {
            let mut fresh = super::apps::default_process(&app.guid);
            fresh.guid = store::new_guid();
            fresh.process_type = p.kind.clone();
            fresh.instances = 0;
            fresh.health_check = json!({"type": "process", "data": {"timeout": null, "invocation_timeout": null}});
            (fresh, true)
        }
    };
    if let Some(command) = &p.command {
        process.command = command.clone();
    }
    if let Some(n) = p.instances {
        process.instances = n;
    }
    if let Some(m) = p.memory_mb {
        process.memory_in_mb = m;
    }
    if let Some(d) = p.disk_mb {
        process.disk_in_mb = d;
    }
    if let Some(l) = p.log_rate {
        process.log_rate_limit_in_bytes_per_second = l;
    }
    if p.health_check_type.is_some() || p.endpoint.is_some() || p.timeout.is_some() || p.invocation_timeout.is_some() {
        let hc = &mut process.health_check;
        if let Some(t) = &p.health_check_type {
            hc["type"] = json!(t);
        }
        if let Some(t) = p.timeout {
            hc["data"]["timeout"] = json!(t);
        }
        if let Some(t) = p.invocation_timeout {
            hc["data"]["invocation_timeout"] = json!(t);
        }
        if hc["type"] == "http" {
            hc["data"]["endpoint"] = json!(p.endpoint.clone().unwrap_or_else(|| "/".into()));
        } else if let Some(data) = hc["data"].as_object_mut() {
            data.remove("endpoint");
        }
    }
    process.updated_at = store::now();
    if new {
        store::insert(conn, &process).await?;
    } else {
        store::update(conn, &process).await?;
    }
    Ok(())
}

/// A route URL (`host.domain/path`) split on the longest domain the org may use.
async fn resolve_route(conn: &mut Conn, space: &Space, url: &str, app: &str) -> ApiResult<(Domain, String, String)> {
    let (host_domain, path) = match url.find('/') {
        Some(i) => (&url[..i], url[i..].to_string()),
        None => (url, String::new()),
    };
    if host_domain.contains(':') {
        return Err(bad(app, format!("The route '{url}' is a TCP route; TCP routing is not available")));
    }
    let domains: Vec<Domain> = store::find_all(conn, vec![super::domains::usable_by(&space.org_guid)]).await?;
    let found = domains
        .into_iter()
        .filter(|d| host_domain == d.name || host_domain.ends_with(&format!(".{}", d.name)))
        .max_by_key(|d| d.name.len())
        .ok_or_else(|| bad(app, format!("The route '{url}' did not match any existing domains.")))?;
    let host = host_domain.strip_suffix(&found.name).unwrap_or("").trim_end_matches('.').to_string();
    if !super::routes::valid_host(&host) || host.contains('.') && host != "*" {
        return Err(bad(app, format!("The route '{url}' has an invalid host '{host}'")));
    }
    super::routes::check_path(&path).map_err(|e| bad(app, e))?;
    Ok((found, host, path))
}

async fn map_route(conn: &mut Conn, space: &Space, app: &App, url: &str) -> ApiResult<()> {
    let (domain, host, path) = resolve_route(conn, space, url, &app.name).await?;
    if host.is_empty() && domain.org_guid.is_none() {
        return Err(bad(&app.name, format!("The route '{url}' needs a host: routes in shared domains must have one")));
    }
    let existing: Option<Route> = store::find_one(
        conn,
        &[
            Cond::Eq("domain_guid", SqlValue::Text(domain.guid.clone())),
            Cond::Eq("host", SqlValue::Text(host.clone())),
            Cond::Eq("path", SqlValue::Text(path.clone())),
        ],
    )
    .await?;
    let now = store::now();
    let route = match existing {
        Some(r) if r.space_guid != space.guid => {
            return Err(bad(&app.name, format!("The route '{url}' is already in use by another space.")));
        }
        Some(r) => r,
        None => {
            let r = Route {
                guid: store::new_guid(),
                host,
                path,
                port: None,
                domain_guid: domain.guid.clone(),
                space_guid: space.guid.clone(),
                created_at: now.clone(),
                updated_at: now.clone(),
            };
            store::insert(conn, &r).await?;
            r
        }
    };
    let mapped: Option<RouteMapping> = store::find_one(
        conn,
        &[
            Cond::Eq("route_guid", SqlValue::Text(route.guid.clone())),
            Cond::Eq("app_guid", SqlValue::Text(app.guid.clone())),
            Cond::Eq("process_type", SqlValue::Text("web".into())),
        ],
    )
    .await?;
    if mapped.is_none() {
        store::insert(
            conn,
            &RouteMapping {
                guid: store::new_guid(),
                route_guid: route.guid,
                app_guid: app.guid.clone(),
                process_type: "web".into(),
                app_port: super::destinations::DEFAULT_APP_PORT,
                weight: None,
                protocol: "http1".into(),
                created_at: now.clone(),
                updated_at: now,
            },
        )
        .await?;
    }
    Ok(())
}

/// A host name from an app name: lowercase letters, digits and dashes.
fn host_of(name: &str) -> String {
    let host: String =
        name.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let host = host.trim_matches('-');
    host.chars().take(63).collect::<String>().trim_end_matches('-').to_string()
}

async fn apply_routes(conn: &mut Conn, space: &Space, app: &App, spec: &AppSpec) -> ApiResult<()> {
    let app_cond = Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()));
    if spec.no_route {
        store::execute(conn, "DELETE FROM route_mappings WHERE app_guid = $1", vec![SqlValue::Text(app.guid.clone())])
            .await?;
        return Ok(());
    }
    if let Some(routes) = &spec.routes {
        for url in routes {
            map_route(conn, space, app, url).await?;
        }
        return Ok(());
    }
    let has_routes = store::count::<RouteMapping>(conn, std::slice::from_ref(&app_cond)).await? > 0;
    if has_routes || !(spec.default_route || spec.random_route) {
        return Ok(());
    }
    let spec_default = store::ListSpec {
        per_page: 1,
        ..store::ListSpec::all(vec![super::domains::usable_by(&space.org_guid), Cond::Eq("internal", SqlValue::Int(0))])
    };
    let domain = store::list::<Domain>(conn, &spec_default).await?.items.into_iter().next();
    let Some(domain) = domain else { return Err(bad(&app.name, "No domains exist for the default route")) };
    let mut host = host_of(&app.name);
    if spec.random_route {
        let suffix = &store::new_guid()[..8];
        host = format!("{}-{suffix}", host.chars().take(54).collect::<String>());
    }
    if host.is_empty() {
        return Err(bad(&app.name, "The app name gives no usable host for a default route"));
    }
    map_route(conn, space, app, &format!("{host}.{}", domain.name)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_hosts_come_from_app_names() {
        assert_eq!(host_of("My_App.v2"), "my-app-v2");
        assert_eq!(host_of("--x--"), "x");
    }
}
