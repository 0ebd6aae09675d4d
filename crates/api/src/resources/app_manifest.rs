//! `GET /v3/apps/:guid/manifest`: the app as a CF manifest (YAML), as the Cloud Controller
//! generates it — lifecycle, env, routes, bound services (by instance name, or with the
//! binding's name), processes. It holds the app's environment, so only callers who may
//! read the space's secrets get it.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hearth_store::{self as store, Cond, Process, Value as SqlValue};
use serde_json::{Map, Value, json};

use crate::ApiState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};

/// One process as a manifest's `processes` entry.
fn process(p: &Process) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!(p.process_type));
    out.insert("instances".into(), json!(p.instances));
    out.insert("memory".into(), json!(format!("{}M", p.memory_in_mb)));
    out.insert("disk_quota".into(), json!(format!("{}M", p.disk_in_mb)));
    if let Some(c) = &p.command {
        out.insert("command".into(), json!(c));
    }
    if let Some(t) = p.health_check["type"].as_str() {
        out.insert("health-check-type".into(), json!(t));
    }
    if let Some(e) = p.health_check["data"]["endpoint"].as_str() {
        out.insert("health-check-http-endpoint".into(), json!(e));
    }
    if let Some(t) = p.health_check["data"]["timeout"].as_i64() {
        out.insert("timeout".into(), json!(t));
    }
    Value::Object(out)
}

pub async fn get(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let app = super::apps::find_visible(&mut conn, &ctx, &guid).await?;
    if !ctx.viewer.can_read_secrets(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let mut out = Map::new();
    out.insert("name".into(), json!(app.name));
    if app.lifecycle_type == "buildpack" {
        if let Some(stack) = app.lifecycle_data["stack"].as_str() {
            out.insert("stack".into(), json!(stack));
        }
        if app.lifecycle_data["buildpacks"].as_array().is_some_and(|b| !b.is_empty()) {
            out.insert("buildpacks".into(), app.lifecycle_data["buildpacks"].clone());
        }
    }
    if app.environment_variables.as_object().is_some_and(|e| !e.is_empty()) {
        out.insert("env".into(), app.environment_variables.clone());
    }
    let uris = super::destinations::app_uris(&mut conn, &app.guid).await?;
    if uris.is_empty() {
        out.insert("no-route".into(), json!(true));
    } else {
        out.insert("routes".into(), uris.iter().map(|u| json!({"route": u})).collect());
    }
    let bound = crate::services_env::bound(&mut conn, &app.guid).await?;
    if !bound.is_empty() {
        let services: Vec<Value> = bound
            .iter()
            .map(|(b, si)| match &b.name {
                Some(n) => json!({"name": si.name, "binding_name": n}),
                None => json!(si.name),
            })
            .collect();
        out.insert("services".into(), Value::Array(services));
    }
    let mut processes: Vec<Process> =
        store::find_all(&mut conn, vec![Cond::Eq("app_guid", SqlValue::Text(app.guid.clone()))]).await?;
    processes
        .sort_by(|a, b| (a.process_type != "web", &a.process_type).cmp(&(b.process_type != "web", &b.process_type)));
    out.insert("processes".into(), processes.iter().map(process).collect());
    let doc = json!({"applications": [Value::Object(out)]});
    let yaml = serde_yaml_ng::to_string(&doc).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/x-yaml")], format!("---\n{yaml}")).into_response())
}
