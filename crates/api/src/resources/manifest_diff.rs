//! `POST /v3/spaces/:guid/manifest_diff`: what applying a manifest would change, as the
//! cf CLI v8 shows it before a push with a manifest file (`{"diff": [{"op", "path", "was",
//! "value"}]}`, JSON-pointer paths into the manifest). Compared: each app's existence, its
//! web process's instances, memory, disk quota, command and health check type, and its
//! environment variables.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use hearth_store::{self as store, App, Cond, Process, Value as SqlValue};
use serde_json::{Value, json};

use super::created;
use super::manifest_spec::parse;
use crate::ApiState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};

fn mb(n: i64) -> String {
    if n % 1024 == 0 { format!("{}G", n / 1024) } else { format!("{n}M") }
}

pub async fn diff(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let specs = parse(&body)?;
    let mut conn = state.store.conn().await?;
    let space = super::spaces::find_visible(&mut conn, &ctx, &guid).await?;
    if !ctx.viewer.can_develop_space(&space.guid) {
        return Err(ApiError::NotAuthorized);
    }
    let mut ops = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let base = format!("/applications/{i}");
        let app: Option<App> = store::find_one(
            &mut conn,
            &[
                Cond::Eq("space_guid", SqlValue::Text(space.guid.clone())),
                Cond::Eq("name", SqlValue::Text(spec.name.clone())),
            ],
        )
        .await?;
        let Some(app) = app else {
            ops.push(json!({"op": "add", "path": base, "value": {"name": spec.name}}));
            continue;
        };
        let web: Option<Process> = store::find_one(
            &mut conn,
            &[
                Cond::Eq("app_guid", SqlValue::Text(app.guid.clone())),
                Cond::Eq("process_type", SqlValue::Text("web".into())),
            ],
        )
        .await?;
        if let (Some(web), Some(want)) = (web, spec.processes.iter().find(|p| p.kind == "web")) {
            let mut compare = |key: &str, was: Value, value: Option<Value>| {
                if let Some(value) = value
                    && value != was
                {
                    ops.push(json!({"op": "replace", "path": format!("{base}/{key}"), "was": was, "value": value}));
                }
            };
            compare("instances", json!(web.instances), want.instances.map(|n| json!(n)));
            compare("memory", json!(mb(web.memory_in_mb)), want.memory_mb.map(|m| json!(mb(m))));
            compare("disk_quota", json!(mb(web.disk_in_mb)), want.disk_mb.map(|m| json!(mb(m))));
            compare("command", json!(web.command), want.command.clone().map(|c| json!(c)));
            compare(
                "health-check-type",
                web.health_check["type"].clone(),
                want.health_check_type.clone().map(|t| json!(t)),
            );
        }
        let current = app.environment_variables.as_object().cloned().unwrap_or_default();
        for (k, v) in &spec.env {
            let path = format!("{base}/env/{}", k.replace('~', "~0").replace('/', "~1"));
            match current.get(k) {
                None => ops.push(json!({"op": "add", "path": path, "value": v})),
                Some(was) if was != v => ops.push(json!({"op": "replace", "path": path, "was": was, "value": v})),
                Some(_) => {}
            }
        }
    }
    Ok(created(json!({"diff": ops})))
}
