//! Builds: one staging of a package. A build starts STAGING and ends STAGED with a
//! droplet, or FAILED with CF's error text. Docker packages stage by reading the image's
//! config from its registry (no layers are fetched): the droplet names the image pinned to
//! its digest and keeps its entrypoint, cmd, user and ports as `execution_metadata`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use hearth_store::{self as store, App, Build, Cond, Droplet, Metadata, Package};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{apply_metadata, audit, created, metadata_of, ok};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::params::{ListParams, ListRules};
use crate::{ApiState, render};

pub fn render(ctx: &Ctx, b: &Build, md: Option<&Metadata>) -> Value {
    let path = format!("/v3/builds/{}", b.guid);
    json!({
        "guid": b.guid,
        "created_at": render::time(&b.created_at),
        "updated_at": render::time(&b.updated_at),
        "state": b.state,
        "staging_memory_in_mb": b.staging_memory_in_mb,
        "staging_disk_in_mb": b.staging_disk_in_mb,
        "staging_log_rate_limit_bytes_per_second": b.staging_log_rate_limit_bytes_per_second,
        "error": b.error,
        "lifecycle": b.lifecycle,
        "package": {"guid": b.package_guid},
        "droplet": b.droplet_guid.as_ref().map(|g| json!({"guid": g})),
        "created_by": b.created_by,
        "relationships": {"app": render::rel(Some(&b.app_guid))},
        "metadata": render::metadata(md),
        "links": {
            "self": render::link(ctx, &path),
            "app": render::link(ctx, &format!("/v3/apps/{}", b.app_guid)),
        },
    })
}

fn positive(body: &Body, key: &str, default: i64) -> ApiResult<i64> {
    match body.opt_int(key)? {
        Some(Some(n)) if n >= 1 => Ok(n),
        Some(Some(_)) => Err(ApiError::Unprocessable(format!("{key} must be greater than 0"))),
        _ => Ok(default),
    }
}

pub async fn create(State(state): State<ApiState>, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(
        &body,
        &[
            "package",
            "lifecycle",
            "staging_memory_in_mb",
            "staging_disk_in_mb",
            "staging_log_rate_limit_bytes_per_second",
            "metadata",
        ],
    )?;
    let package_guid = body
        .sub("package", &["guid"])?
        .map(|p| p.req_str("guid"))
        .transpose()?
        .ok_or_else(|| ApiError::Unprocessable("Package guid must be a string".into()))?;
    let memory = positive(&body, "staging_memory_in_mb", 1024)?;
    let disk = positive(&body, "staging_disk_in_mb", 4096)?;
    let log_rate = match body.opt_int("staging_log_rate_limit_bytes_per_second")? {
        Some(Some(n)) if n >= -1 => n,
        Some(Some(_)) => {
            return Err(ApiError::Unprocessable(
                "Staging log rate limit bytes per second must be greater than or equal to -1".into(),
            ));
        }
        _ => -1,
    };
    let metadata = body.metadata()?;
    let mut tx = state.store.begin().await?;
    let unusable = || {
        ApiError::Unprocessable(
            "Unable to use package. Ensure that the package exists and you have access to it.".into(),
        )
    };
    let package: Option<Package> = store::get(&mut tx, &package_guid).await?;
    let package = package.ok_or_else(unusable)?;
    let app: Option<App> = store::get(&mut tx, &package.app_guid).await?;
    let app = app.filter(|a| ctx.viewer.can_read_space(&a.space_guid)).ok_or_else(unusable)?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if package.state != "READY" {
        return Err(ApiError::Unprocessable(
            "Unable to stage: the package is not ready (upload its bits first).".into(),
        ));
    }
    let lifecycle = match (package.kind.as_str(), body.sub("lifecycle", &["type", "data"])?) {
        ("docker", _) => json!({"type": "docker", "data": {}}),
        (_, Some(lc)) => {
            let data = lc.raw("data").cloned().unwrap_or(json!({}));
            json!({"type": lc.req_str("type")?, "data": data})
        }
        (_, None) => json!({"type": app.lifecycle_type, "data": app.lifecycle_data}),
    };
    let now = store::now();
    let build = Build {
        guid: store::new_guid(),
        app_guid: app.guid.clone(),
        package_guid: package.guid.clone(),
        droplet_guid: None,
        state: "STAGING".into(),
        error: None,
        lifecycle,
        staging_memory_in_mb: memory,
        staging_disk_in_mb: disk,
        staging_log_rate_limit_bytes_per_second: log_rate,
        created_by: json!({
            "guid": ctx.viewer.guid,
            "name": ctx.claims.user_name.clone().unwrap_or_else(|| ctx.claims.client_id.clone()),
            "email": ctx.claims.email.clone().unwrap_or_default(),
        }),
        created_at: now.clone(),
        updated_at: now,
    };
    store::insert(&mut tx, &build).await?;
    apply_metadata(&mut tx, &build.guid, &metadata).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.app.build.create",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"build_guid": build.guid, "package_guid": package.guid}),
        Some(&app.space_guid),
        None,
    )
    .await?;
    let md = metadata_of(&mut tx, &build.guid).await?;
    tx.commit().await?;
    let st = state.clone();
    let (b, p) = (build.clone(), package);
    tokio::spawn(async move {
        staging_log(&st, &b, hearth_logs::LogStream::Out, "Staging...");
        let outcome = stage(&st, &b, &p).await;
        match &outcome {
            Ok(d) => {
                let command = d.process_types["web"].as_str().unwrap_or_default();
                staging_log(&st, &b, hearth_logs::LogStream::Out, &format!("Start command: {command}"));
                staging_log(&st, &b, hearth_logs::LogStream::Out, "Staging complete");
            }
            Err(reason) => staging_log(&st, &b, hearth_logs::LogStream::Err, &format!("Staging failed: {reason}")),
        }
        if let Err(e) = finish(&st, &b, outcome).await {
            tracing::warn!(build = %b.guid, error = %e, "recording a build's outcome failed");
        }
    });
    Ok(created(render(&ctx, &build, Some(&md))))
}

/// One line of staging output (`STG`) in the app's logs.
fn staging_log(state: &ApiState, build: &Build, stream: hearth_logs::LogStream, line: &str) {
    let source = hearth_logs::LineSource::staging(&build.app_guid, stream);
    let _ = state.logs.append(source.envelope(line.as_bytes().to_vec()));
}

/// Stages a package; answers the droplet to record, or the reason staging failed.
async fn stage(state: &ApiState, build: &Build, package: &Package) -> Result<Droplet, String> {
    if package.kind != "docker" {
        return super::buildpack_staging::stage(state, build, package).await;
    }
    let image = package.data["image"].as_str().unwrap_or_default().to_string();
    let inspector = state.images.as_ref().ok_or("this platform cannot reach image registries")?;
    let username = package.data["username"].as_str();
    let credentials = username.zip(package.docker_password.as_deref());
    staging_log(state, build, hearth_logs::LogStream::Out, &format!("Reading the config of image {image}"));
    let info = inspector.inspect(&image, credentials).await?;
    let argv: Vec<String> = info.entrypoint.iter().chain(&info.cmd).cloned().collect();
    let ports: Vec<Value> = info.ports.iter().map(|p| json!({"Port": p, "Protocol": "tcp"})).collect();
    let mut metadata = json!({"cmd": info.cmd, "entrypoint": info.entrypoint, "ports": ports, "digest": info.digest});
    if let Some(user) = &info.user {
        metadata["user"] = json!(user);
    }
    if let Some(dir) = &info.working_dir {
        metadata["workdir"] = json!(dir);
    }
    let now = store::now();
    Ok(Droplet {
        guid: store::new_guid(),
        app_guid: build.app_guid.clone(),
        package_guid: Some(package.guid.clone()),
        state: "STAGED".into(),
        error: None,
        lifecycle: json!({"type": "docker", "data": {}}),
        process_types: json!({"web": shell_words(&argv)}),
        execution_metadata: metadata.to_string(),
        buildpacks: json!([]),
        stack: None,
        image: Some(image),
        blob_key: None,
        sha256: None,
        created_at: now.clone(),
        updated_at: now,
    })
}

/// The argv as one command line (for display; the image's own argv is what runs).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// At start: builds left STAGING by a stop of the server (nothing waits for them any
/// more) fail with a reason that says to stage again, and their staging tasks are
/// cancelled. Answers how many failed.
pub async fn fail_interrupted(
    store: &hearth_store::Store,
    scheduler: &hearth_scheduler::persist::SchedulerStore,
) -> ApiResult<usize> {
    let mut conn = store.conn().await?;
    let staging: Vec<Build> =
        store::find_all(&mut conn, vec![Cond::Eq("state", store::Value::Text("STAGING".into()))]).await?;
    drop(conn);
    for build in &staging {
        // The staging task has the build's guid; a cancelled one stops on its cell.
        if let Err(e) = scheduler.change_task(&build.guid, &hearth_scheduler::TaskEvent::Cancel).await
            && !matches!(e, hearth_scheduler::Error::NotFound { .. } | hearth_scheduler::Error::TaskTransition { .. })
        {
            tracing::warn!(build = %build.guid, error = %e, "could not cancel an interrupted staging");
        }
        let reason = "StagingError - Staging error: the platform restarted while this build was staging; stage the \
                      package again (cf restage, or push again)";
        let mut tx = store.begin().await?;
        let current: Option<Build> = store::get(&mut tx, &build.guid).await?;
        if let Some(mut b) = current.filter(|b| b.state == "STAGING") {
            b.updated_at = store::now();
            b.state = "FAILED".into();
            b.error = Some(reason.into());
            store::update(&mut tx, &b).await?;
        }
        tx.commit().await?;
    }
    Ok(staging.len())
}

async fn finish(state: &ApiState, build: &Build, outcome: Result<Droplet, String>) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    let current: Option<Build> = store::get(&mut tx, &build.guid).await?;
    let Some(mut b) = current else { return Ok(()) };
    b.updated_at = store::now();
    match outcome {
        Ok(droplet) => {
            store::insert(&mut tx, &droplet).await?;
            b.state = "STAGED".into();
            b.droplet_guid = Some(droplet.guid);
        }
        Err(reason) => {
            b.state = "FAILED".into();
            let named = [
                "NoAppDetectedError",
                "BuildpackCompileFailed",
                "BuildpackReleaseFailed",
                "StagingError",
                "StagingTimeExpired",
                "InsufficientResources",
                "NoCompatibleCell",
            ]
            .iter()
            .any(|name| reason.starts_with(name));
            b.error = Some(if named { reason } else { format!("StagingError - Staging error: {reason}") });
        }
    }
    store::update(&mut tx, &b).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn get_one(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (b, _) = super::app_children::find_visible::<Build>(&mut conn, &ctx, &guid).await?;
    let md = metadata_of(&mut conn, &b.guid).await?;
    Ok(ok(render(&ctx, &b, Some(&md))))
}

const RULES: ListRules = ListRules {
    filters: &["states", "app_guids", "package_guids"],
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
    super::app_children::scope::<Build>(ctx, &params, &mut conds);
    params.in_filters(&mut conds, &[("states", "state"), ("package_guids", "package_guid")]);
    let mut conn = state.store.conn().await?;
    let page = store::list::<Build>(&mut conn, &params.spec(conds)).await?;
    let guids: Vec<String> = page.items.iter().map(|b| b.guid.clone()).collect();
    let md = store::metadata_for(&mut conn, &guids).await?;
    let resources: Vec<Value> = page.items.iter().map(|b| render(ctx, b, md.get(&b.guid))).collect();
    Ok(render::list(ctx, path, &params, page.total, resources, None))
}

pub async fn list(State(state): State<ApiState>, ctx: Ctx, RawQuery(q): RawQuery) -> ApiResult<Response> {
    list_with(&state, &ctx, q.as_deref(), "/v3/builds", vec![]).await
}

pub async fn list_for_app(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (path, conds) = super::app_children::app_list(&state, &ctx, &guid, "builds").await?;
    list_with(&state, &ctx, q.as_deref(), &path, conds).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_quotes_what_a_shell_would_split() {
        let argv = ["/bin/sh", "-c", "echo 'hi' there", ""].map(String::from);
        assert_eq!(shell_words(&argv), r"/bin/sh -c 'echo '\''hi'\'' there' ''");
    }
}
