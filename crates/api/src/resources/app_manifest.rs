//! `GET /v3/apps/:guid/manifest`: the app as a manifest (`cf create-app-manifest`), in the
//! Cloud Controller's order and units: name, env, lifecycle (docker image or buildpacks and
//! stack), bound services, routes, metadata, processes by type, sidecars. It includes the environment, so
//! only those who may read the space's secrets get it.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, App, Cond, Conn, Package, Process, Sidecar, Value as SqlValue};
use serde_json::Value;
use serde_yaml_ng::{Mapping, Value as Yaml};

use crate::ApiState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};

pub async fn get(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let app = super::apps::find_visible(&mut conn, &ctx, &guid).await?;
    if !ctx.viewer.can_read_secrets(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let manifest = manifest_of(&mut conn, &app).await?;
    let text = serde_yaml_ng::to_string(&manifest).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/x-yaml")], format!("---\n{text}")).into_response())
}

fn key(k: &str) -> Yaml {
    Yaml::String(k.into())
}

fn text(s: &str) -> Yaml {
    Yaml::String(s.into())
}

/// A JSON value (env values, labels) as YAML.
fn yaml_of(v: &Value) -> Yaml {
    serde_yaml_ng::to_value(v).unwrap_or(Yaml::Null)
}

async fn manifest_of(conn: &mut Conn, app: &App) -> ApiResult<Yaml> {
    let by_app = || vec![Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()))];
    let mut m = Mapping::new();
    m.insert(key("name"), text(&app.name));
    if app.environment_variables.as_object().is_some_and(|e| !e.is_empty()) {
        m.insert(key("env"), yaml_of(&app.environment_variables));
    }
    if app.lifecycle_type == "docker" {
        let packages: Vec<Package> = store::find_all(conn, by_app()).await?;
        let newest = packages.iter().max_by(|a, b| a.created_at.cmp(&b.created_at));
        if let Some(image) = newest.and_then(|p| p.data["image"].as_str()) {
            let mut docker = Mapping::new();
            docker.insert(key("image"), text(image));
            if let Some(user) = newest.and_then(|p| p.data["username"].as_str()) {
                docker.insert(key("username"), text(user));
            }
            m.insert(key("docker"), Yaml::Mapping(docker));
        }
    } else {
        let buildpacks: Vec<Yaml> = app.lifecycle_data["buildpacks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| b.as_str().map(text))
            .collect();
        if !buildpacks.is_empty() {
            m.insert(key("buildpacks"), Yaml::Sequence(buildpacks));
        }
        if let Some(stack) = app.lifecycle_data["stack"].as_str() {
            m.insert(key("stack"), text(stack));
        }
    }
    let bound = crate::services_env::bound(conn, &app.guid).await?;
    if !bound.is_empty() {
        let services = bound
            .iter()
            .map(|(binding, instance)| match &binding.name {
                Some(name) => Yaml::Mapping(Mapping::from_iter([
                    (key("name"), text(&instance.name)),
                    (key("binding_name"), text(name)),
                ])),
                None => text(&instance.name),
            })
            .collect();
        m.insert(key("services"), Yaml::Sequence(services));
    }
    let mut uris = super::destinations::app_uris(conn, &app.guid).await?;
    uris.sort_by_key(|u| u.to_lowercase());
    if !uris.is_empty() {
        let route =
            |u: &String| Yaml::Mapping(Mapping::from_iter([(key("route"), text(u)), (key("protocol"), text("http1"))]));
        m.insert(key("routes"), Yaml::Sequence(uris.iter().map(route).collect()));
    }
    let md = super::metadata_of(conn, &app.guid).await?;
    let rendered = crate::render::metadata(Some(&md));
    let has = |k: &str| rendered[k].as_object().is_some_and(|o| !o.is_empty());
    if has("labels") || has("annotations") {
        let mut meta = Mapping::new();
        for k in ["labels", "annotations"].into_iter().filter(|k| has(k)) {
            meta.insert(key(k), yaml_of(&rendered[k]));
        }
        m.insert(key("metadata"), Yaml::Mapping(meta));
    }
    let mut processes: Vec<Process> = store::find_all(conn, by_app()).await?;
    processes.sort_by(|a, b| a.process_type.cmp(&b.process_type));
    if !processes.is_empty() {
        m.insert(key("processes"), Yaml::Sequence(processes.iter().map(process_entry).collect()));
    }
    let mut sidecars: Vec<Sidecar> = store::find_all(conn, by_app()).await?;
    sidecars.sort_by(|a, b| a.name.cmp(&b.name));
    if !sidecars.is_empty() {
        m.insert(key("sidecars"), Yaml::Sequence(sidecars.iter().map(sidecar_entry).collect()));
    }
    let mut root = Mapping::new();
    root.insert(key("applications"), Yaml::Sequence(vec![Yaml::Mapping(m)]));
    Ok(Yaml::Mapping(root))
}

fn process_entry(p: &Process) -> Yaml {
    let mut e = Mapping::new();
    e.insert(key("type"), text(&p.process_type));
    e.insert(key("instances"), Yaml::from(p.instances));
    e.insert(key("memory"), text(&format!("{}M", p.memory_in_mb)));
    e.insert(key("disk_quota"), text(&format!("{}M", p.disk_in_mb)));
    let rate = p.log_rate_limit_in_bytes_per_second;
    e.insert(key("log-rate-limit-per-second"), if rate == -1 { Yaml::from(-1) } else { text(&human_bytes(rate)) });
    if let Some(command) = &p.command {
        e.insert(key("command"), text(command));
    }
    let hc = &p.health_check;
    if let Some(t) = hc["type"].as_str() {
        e.insert(key("health-check-type"), text(t));
    }
    if let Some(endpoint) = hc["data"]["endpoint"].as_str() {
        e.insert(key("health-check-http-endpoint"), text(endpoint));
    }
    if let Some(t) = hc["data"]["invocation_timeout"].as_i64() {
        e.insert(key("health-check-invocation-timeout"), Yaml::from(t));
    }
    if let Some(t) = hc["data"]["timeout"].as_i64() {
        e.insert(key("timeout"), Yaml::from(t));
    }
    Yaml::Mapping(e)
}

fn sidecar_entry(s: &Sidecar) -> Yaml {
    let mut e = Mapping::new();
    e.insert(key("name"), text(&s.name));
    e.insert(key("process_types"), yaml_of(&s.process_types));
    e.insert(key("command"), text(&s.command));
    if let Some(memory) = s.memory_in_mb {
        e.insert(key("memory"), text(&format!("{memory}M")));
    }
    Yaml::Mapping(e)
}

/// Bytes in the largest unit that divides them, as CC's byte converter writes them
/// (`1K`, `16M`, `2G`, `100B`).
fn human_bytes(bytes: i64) -> String {
    for (unit, size) in [("T", 1i64 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_rates_read_as_cc_writes_them() {
        assert_eq!(human_bytes(1024), "1K");
        assert_eq!(human_bytes(16 << 20), "16M");
        assert_eq!(human_bytes(3 << 30), "3G");
        assert_eq!(human_bytes(1500), "1500B");
    }
}
