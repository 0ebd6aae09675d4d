//! App bits: `POST /v3/resource_matches` (which files the platform already has, so a
//! re-push uploads only what changed), `POST /v3/packages/:guid/upload` (multipart:
//! `resources` — the matched files — and `bits`, a zip of the rest; streamed to disk, never
//! whole in memory) and `GET /v3/packages/:guid/download`. Hostile zips (escaping paths,
//! links, devices, bombs) are refused by the blobstore's extraction and store nothing.

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{Multipart, Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hearth_blobstore::Namespace;
use hearth_blobstore::resources::{PoolRule, Resource, assemble_package, match_resources};
use hearth_store::{self as store, Package};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::{audit, created, ok};
use crate::ApiState;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::limits::{Limit, blob_error, form_error, save_field};

/// The most resources one request may name.
const MAX_RESOURCES: usize = 100_000;

/// A resource as the cf CLI sends it (`checksum.value`, `size_in_bytes`, `path`, `mode`),
/// or in the older shape (`sha1`, `size`, `fn`).
fn parse_resource(v: &Value) -> ApiResult<Resource> {
    let sha1 = v["checksum"]["value"].as_str().or_else(|| v["sha1"].as_str());
    let size = v["size_in_bytes"].as_u64().or_else(|| v["size"].as_u64());
    let path = v["path"].as_str().or_else(|| v["fn"].as_str());
    let (Some(sha1), Some(size), Some(path)) = (sha1, size, path) else {
        return Err(ApiError::Unprocessable(
            "Each resource needs checksum.value (SHA-1), size_in_bytes and path".into(),
        ));
    };
    let mode = match &v["mode"] {
        Value::String(m) => Some(
            u32::from_str_radix(m, 8)
                .map_err(|_| ApiError::Unprocessable(format!("Resource mode '{m}' is not octal")))?
                & 0o7777,
        ),
        Value::Number(n) => n.as_u64().and_then(|m| u32::try_from(m).ok()).map(|m| m & 0o7777),
        _ => None,
    };
    Ok(Resource { sha1: sha1.to_string(), size, path: path.to_string(), mode })
}

/// Runs a blobstore future on a blocking thread of its own. (Its stream combinators are
/// `Send`, but rustc cannot prove it through the handler's future: a known limitation
/// with higher-ranked lifetimes in async closures.)
async fn off_thread<F, Fut, T>(make: F) -> ApiResult<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(make()))
        .await
        .map_err(|e| ApiError::Internal(format!("a blobstore task failed: {e}")))
}

fn parse_resources(v: &Value) -> ApiResult<Vec<Resource>> {
    let Some(list) = v.as_array() else { return Err(ApiError::Unprocessable("Resources must be an array".into())) };
    if list.len() > MAX_RESOURCES {
        return Err(ApiError::Unprocessable(format!("At most {MAX_RESOURCES} resources may be given")));
    }
    list.iter().map(parse_resource).collect()
}

fn render_resource(r: &Resource) -> Value {
    json!({
        "checksum": {"value": r.sha1},
        "size_in_bytes": r.size,
        "path": r.path,
        "mode": format!("{:o}", r.mode.unwrap_or(0o644)),
    })
}

pub async fn resource_matches(State(state): State<ApiState>, _ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let v: Value = serde_json::from_slice(&body).map_err(|e| ApiError::MessageParse(e.to_string()))?;
    let Some(obj) = v.as_object().filter(|o| o.keys().all(|k| k == "resources")) else {
        return Err(ApiError::Unprocessable("The body must be {\"resources\": [...]}".into()));
    };
    let wanted = parse_resources(obj.get("resources").unwrap_or(&Value::Null))?;
    let blobs = state.blobs.clone();
    let found = off_thread(move || async move { match_resources(&blobs, &PoolRule::DEFAULT, &wanted).await })
        .await?
        .map_err(|e| blob_error(e, Limit::Package))?;
    Ok(created(json!({"resources": found.iter().map(render_resource).collect::<Vec<_>>()})))
}

pub async fn upload(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    mut form: Multipart,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (package, app) = super::packages::find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    if package.kind != "bits" {
        return Err(ApiError::Unprocessable("Only bits packages can be uploaded to".into()));
    }
    if package.state != "AWAITING_UPLOAD" {
        return Err(ApiError::Unprocessable("Package has already been uploaded".into()));
    }
    std::fs::create_dir_all(&state.work_dir).map_err(|e| ApiError::Internal(format!("work directory: {e}")))?;
    let work = tempfile::TempDir::new_in(&state.work_dir).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resources = Vec::new();
    let mut zip: Option<std::path::PathBuf> = None;
    let limits = state.config.limits;
    let bad_form = form_error(Limit::Package, &limits);
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("resources") => {
                let text = field.text().await.map_err(bad_form)?;
                let v: Value =
                    serde_json::from_str(&text).map_err(|e| ApiError::MessageParse(format!("resources: {e}")))?;
                resources = parse_resources(&v)?;
            }
            Some("bits") => {
                let path = work.path().join("bits.zip");
                save_field(&mut field, &path, Limit::Package, &limits).await?;
                zip = Some(path);
            }
            Some(other) => {
                return Err(ApiError::Unprocessable(format!(
                    "Unknown upload field '{other}' (expected resources, bits)"
                )));
            }
            None => return Err(ApiError::Unprocessable("An upload field has no name".into())),
        }
    }
    if zip.is_none() && resources.is_empty() {
        return Err(ApiError::Unprocessable("Upload must include either resources or bits".into()));
    }
    let (blobs, work_dir) = (state.blobs.clone(), state.work_dir.clone());
    let assembled = off_thread(move || async move {
        let archive = limits.archive(Limit::Package);
        assemble_package(&blobs, &work_dir, zip.as_deref(), &resources, &archive, &PoolRule::DEFAULT).await
    })
    .await?
    .map_err(|e| blob_error(e, Limit::Package))?;
    let mut tx = state.store.begin().await?;
    let current: Option<Package> = store::get(&mut tx, &package.guid).await?;
    let mut package = current.ok_or(ApiError::NotFound("Package"))?;
    if package.state != "AWAITING_UPLOAD" {
        return Err(ApiError::Unprocessable("Package has already been uploaded".into()));
    }
    package.state = "READY".into();
    package.blob_key = Some(assembled.package.key.clone());
    package.sha256 = Some(assembled.package.sha256.clone());
    package.size_bytes = i64::try_from(assembled.package.size).ok();
    package.updated_at = store::now();
    store::update(&mut tx, &package).await?;
    audit(
        &mut tx,
        &ctx,
        "audit.app.package.upload",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"package_guid": package.guid}),
        Some(&app.space_guid),
        None,
    )
    .await?;
    let md = super::metadata_of(&mut tx, &package.guid).await?;
    tx.commit().await?;
    Ok(ok(super::packages::render(&ctx, &package, Some(&md))))
}

pub async fn download(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (package, app) = super::packages::find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !ctx.viewer.can_read_secrets(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    let Some(key) = package.blob_key.as_deref().filter(|_| package.kind == "bits") else {
        return Err(ApiError::Unprocessable("Package has no bits to download (upload them first)".into()));
    };
    let reader = state.blobs.get(Namespace::Packages, key).await.map_err(|e| blob_error(e, Limit::Package))?;
    let body = HttpBody::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{}.zip\"", package.guid)),
        ],
        body,
    )
        .into_response())
}
