//! Droplets made without staging, and droplet bits: `POST /v3/droplets` (an empty droplet
//! AWAITING_UPLOAD), `POST /v3/droplets/:guid/upload` (a CF droplet tgz, checked by the
//! blobstore's safe extraction before anything is stored; 202 and a job that imports it as
//! a layer and stores it, then STAGED), `POST /v3/droplets?source_guid=` (a copy for
//! another app: COPYING, then STAGED) and `GET /v3/droplets/:guid/download`.
//!
//! A droplet's states and the only moves between them are [`DropletState::on`].

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::{Multipart, Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_blobstore::Namespace;
use hearth_blobstore::archive::extract_tgz;
use hearth_store::{self as store, App, Droplet, Space};
use serde_json::{Value, json};

use super::audit_events::Target;
use super::droplets::{find_visible, render};
use super::{apply_metadata, audit, created, metadata_of, spawn_job};
use crate::body::Body;
use crate::context::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::limits::{Limit, Limits, blob_error, form_error, save_field};
use crate::{ApiState, Stager};

/// A droplet's state, as CF names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropletState {
    AwaitingUpload,
    ProcessingUpload,
    Copying,
    Staged,
    Failed,
    Expired,
}

/// What happens to a droplet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropletEvent {
    /// Its bits arrived and passed the checks.
    UploadAccepted,
    /// Its bits (uploaded or copied) are stored and its layer imported.
    Ready,
    /// Storing or importing its bits failed.
    Broke,
}

impl DropletState {
    pub fn parse(s: &str) -> Option<DropletState> {
        Some(match s {
            "AWAITING_UPLOAD" => DropletState::AwaitingUpload,
            "PROCESSING_UPLOAD" => DropletState::ProcessingUpload,
            "COPYING" => DropletState::Copying,
            "STAGED" => DropletState::Staged,
            "FAILED" => DropletState::Failed,
            "EXPIRED" => DropletState::Expired,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DropletState::AwaitingUpload => "AWAITING_UPLOAD",
            DropletState::ProcessingUpload => "PROCESSING_UPLOAD",
            DropletState::Copying => "COPYING",
            DropletState::Staged => "STAGED",
            DropletState::Failed => "FAILED",
            DropletState::Expired => "EXPIRED",
        }
    }

    /// The one transition function: the next state, or `None` if `event` cannot happen now.
    pub fn on(self, event: DropletEvent) -> Option<DropletState> {
        use {DropletEvent as E, DropletState as S};
        match (self, event) {
            (S::AwaitingUpload, E::UploadAccepted) => Some(S::ProcessingUpload),
            (S::ProcessingUpload | S::Copying, E::Ready) => Some(S::Staged),
            (S::ProcessingUpload | S::Copying, E::Broke) => Some(S::Failed),
            _ => None,
        }
    }
}

/// Moves `d` by `event`; a droplet that cannot move that way is a 422 saying where it is.
fn advance(d: &mut Droplet, event: DropletEvent) -> ApiResult<()> {
    let next = DropletState::parse(&d.state).and_then(|s| s.on(event)).ok_or_else(|| match event {
        DropletEvent::UploadAccepted => {
            ApiError::Unprocessable(format!("Droplet may be uploaded only while AWAITING_UPLOAD; it is {}", d.state))
        }
        _ => ApiError::Unprocessable(format!("Droplet is {}; it cannot change that way", d.state)),
    })?;
    d.state = next.as_str().into();
    d.updated_at = store::now();
    Ok(())
}

fn new_droplet(app: &App, process_types: Value, state: DropletState) -> Droplet {
    let now = store::now();
    Droplet {
        guid: store::new_guid(),
        app_guid: app.guid.clone(),
        package_guid: None,
        state: state.as_str().into(),
        error: None,
        lifecycle: json!({"type": "buildpack", "data": {}}),
        process_types,
        execution_metadata: String::new(),
        buildpacks: json!([]),
        stack: app.lifecycle_data["stack"].as_str().map(str::to_string),
        image: None,
        blob_key: None,
        sha256: None,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// The app a new droplet is for: visible (else 422, as CF) and developed by the caller.
async fn target_app(conn: &mut store::Conn, ctx: &Ctx, guid: &str) -> ApiResult<App> {
    let app: Option<App> = store::get(conn, guid).await?;
    let app = app
        .filter(|a| ctx.viewer.can_read_space(&a.space_guid))
        .ok_or_else(|| ApiError::Unprocessable("App must exist and you must have access to it.".into()))?;
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    Ok(app)
}

async fn audit_create(tx: &mut store::Conn, ctx: &Ctx, app: &App, data: Value) -> ApiResult<()> {
    let space: Option<Space> = store::get(tx, &app.space_guid).await?;
    audit(
        tx,
        ctx,
        "audit.app.droplet.create",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        data,
        Some(&app.space_guid),
        space.as_ref().map(|s| s.org_guid.as_str()),
    )
    .await
}

/// `POST /v3/droplets`: a new droplet, or with `?source_guid=` a copy of one.
pub async fn create(
    State(state): State<ApiState>,
    ctx: Ctx,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    match super::app_children::copy_source(q.as_deref())? {
        None => create_empty(state, ctx, body).await,
        Some(source) => copy(state, ctx, &source, body).await,
    }
}

async fn create_empty(state: ApiState, ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["relationships", "process_types", "metadata"])?;
    body.check_relationships(&["app"])?;
    let app_guid = body.relationship_guid("app")?;
    let metadata = body.metadata()?;
    let process_types = match body.raw("process_types") {
        None | Some(Value::Null) => json!({"web": ""}),
        Some(Value::Object(types)) => {
            if types.keys().any(String::is_empty) {
                return Err(ApiError::Unprocessable("Process types key must not be empty".into()));
            }
            if types.values().any(|v| !v.is_string()) {
                return Err(ApiError::Unprocessable("Process types value must be a string".into()));
            }
            Value::Object(types.clone())
        }
        Some(_) => return Err(ApiError::Unprocessable("Process types must be an object".into())),
    };
    let mut tx = state.store.begin().await?;
    let app = target_app(&mut tx, &ctx, &app_guid).await?;
    if app.lifecycle_type == "docker" {
        return Err(ApiError::Unprocessable(
            "Droplet creation is not available for apps with docker lifecycles.".into(),
        ));
    }
    let droplet = new_droplet(&app, process_types, DropletState::AwaitingUpload);
    store::insert(&mut tx, &droplet).await?;
    apply_metadata(&mut tx, &droplet.guid, &metadata).await?;
    audit_create(&mut tx, &ctx, &app, json!({"droplet_guid": droplet.guid})).await?;
    let md = metadata_of(&mut tx, &droplet.guid).await?;
    tx.commit().await?;
    Ok(created(render(&ctx, &droplet, Some(&md))))
}

async fn copy(state: ApiState, ctx: Ctx, source: &str, body: Bytes) -> ApiResult<Response> {
    let body = Body::parse(&body, &["relationships"])?;
    body.check_relationships(&["app"])?;
    let app_guid = body.relationship_guid("app")?;
    let mut tx = state.store.begin().await?;
    let (src, _) = find_visible(&mut tx, &ctx, source).await?;
    let app = target_app(&mut tx, &ctx, &app_guid).await?;
    if DropletState::parse(&src.state) != Some(DropletState::Staged) {
        return Err(ApiError::Unprocessable(format!("Only a STAGED droplet can be copied; it is {}", src.state)));
    }
    if (app.lifecycle_type == "docker") != src.image.is_some() {
        return Err(ApiError::Unprocessable(format!(
            "Cannot copy a droplet to an app with the {} lifecycle: their lifecycles differ.",
            app.lifecycle_type
        )));
    }
    // Blobs are content-addressed and layers a function of the tgz: the copy shares both.
    let mut droplet = new_droplet(&app, src.process_types.clone(), DropletState::Copying);
    droplet.lifecycle = src.lifecycle.clone();
    droplet.buildpacks = src.buildpacks.clone();
    droplet.stack = src.stack.clone();
    droplet.image = src.image.clone();
    droplet.execution_metadata = src.execution_metadata.clone();
    store::insert(&mut tx, &droplet).await?;
    audit_create(&mut tx, &ctx, &app, json!({"droplet_guid": droplet.guid, "source_droplet_guid": src.guid})).await?;
    tx.commit().await?;
    let st = state.clone();
    let (guid, key, sha) = (droplet.guid.clone(), src.blob_key.clone(), src.sha256.clone());
    tokio::spawn(async move {
        let present = match &key {
            Some(k) => st.blobs.exists(Namespace::Droplets, k).await.map_err(|e| e.to_string()),
            None => Ok(true),
        };
        let outcome = match present {
            Ok(true) => Ok((key, sha)),
            Ok(false) => Err("the source droplet's bits are gone from the blobstore".to_string()),
            Err(e) => Err(e),
        };
        if let Err(e) = finish(&st, &guid, outcome.map(|(key, sha256)| Stored { key, sha256, layer: None })).await {
            tracing::warn!(droplet = %guid, error = %e, "recording a droplet copy failed");
        }
    });
    Ok(created(render(&ctx, &droplet, None)))
}

/// Where a droplet's bits ended up: its blob and, when imported anew, its layer.
struct Stored {
    key: Option<String>,
    sha256: Option<String>,
    layer: Option<String>,
}

/// Records the end of an upload or copy: STAGED with its blob (and layer, if imported
/// anew), or FAILED with why.
async fn finish(state: &ApiState, guid: &str, outcome: Result<Stored, String>) -> ApiResult<()> {
    let mut tx = state.store.begin().await?;
    let current: Option<Droplet> = store::get(&mut tx, guid).await?;
    let Some(mut d) = current else { return Ok(()) };
    match &outcome {
        Ok(Stored { key, sha256, layer }) => {
            advance(&mut d, DropletEvent::Ready)?;
            d.blob_key = key.clone();
            d.sha256 = sha256.clone();
            if let Some(layer) = layer {
                d.execution_metadata = json!({"layer": layer}).to_string();
            }
        }
        Err(reason) => {
            advance(&mut d, DropletEvent::Broke)?;
            d.error = Some(reason.clone());
        }
    }
    store::update(&mut tx, &d).await?;
    tx.commit().await?;
    outcome.map(|_| ()).map_err(ApiError::Unprocessable)
}

/// Reads the `bits` field of the upload into `dest` (at most `max_droplet_bytes`); any
/// other field is refused.
async fn read_bits(form: &mut Multipart, dest: &std::path::Path, limits: &Limits) -> ApiResult<()> {
    let bad_form = form_error(Limit::Droplet, limits);
    let mut got = false;
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        if field.name() != Some("bits") {
            let name = field.name().unwrap_or("").to_string();
            return Err(ApiError::Unprocessable(format!("Unknown upload field '{name}' (expected bits)")));
        }
        save_field(&mut field, dest, Limit::Droplet, limits).await?;
        got = true;
    }
    if !got {
        return Err(ApiError::Unprocessable("Upload must include bits: a droplet tgz".into()));
    }
    Ok(())
}

/// Extracts the tgz with the blobstore's safe extraction (hostile entries, bombs and
/// oversize are refused) and checks it has a droplet's `app/` directory.
async fn check_droplet(tgz: &std::path::Path, scratch: &std::path::Path, limits: &Limits) -> ApiResult<()> {
    let (t, dir, archive) = (tgz.to_path_buf(), scratch.to_path_buf(), limits.archive(Limit::Droplet));
    tokio::task::spawn_blocking(move || extract_tgz(&t, &dir, &archive))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| blob_error(e, Limit::Droplet))?;
    let has_app = std::fs::symlink_metadata(scratch.join("app")).is_ok_and(|m| m.is_dir());
    // The check's copy is not needed again (the job imports from the tgz).
    let _ = std::fs::remove_dir_all(scratch);
    if !has_app {
        return Err(ApiError::Unprocessable(
            "The droplet has no app/ directory: a Cloud Foundry droplet is a tgz of app/, deps/, profile.d/ \
             and staging_info.yml"
                .into(),
        ));
    }
    Ok(())
}

/// `POST /v3/droplets/:guid/upload` (multipart field `bits`, a droplet tgz).
pub async fn upload(
    State(state): State<ApiState>,
    ctx: Ctx,
    Path(guid): Path<String>,
    mut form: Multipart,
) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    let (mut d, app) = find_visible(&mut conn, &ctx, &guid).await?;
    drop(conn);
    if !ctx.viewer.can_develop_space(&app.space_guid) {
        return Err(ApiError::NotAuthorized);
    }
    advance(&mut d.clone(), DropletEvent::UploadAccepted)?;
    std::fs::create_dir_all(&state.work_dir).map_err(|e| ApiError::Internal(format!("work directory: {e}")))?;
    let work = tempfile::TempDir::new_in(&state.work_dir).map_err(|e| ApiError::Internal(e.to_string()))?;
    let tgz = work.path().join("droplet.tgz");
    read_bits(&mut form, &tgz, &state.config.limits).await?;
    check_droplet(&tgz, &work.path().join("check"), &state.config.limits).await?;
    let stager: std::sync::Arc<dyn Stager> = state.stager.clone().ok_or_else(|| {
        ApiError::Unprocessable("This platform runs no containers, so an uploaded droplet could not run here".into())
    })?;
    let mut tx = state.store.begin().await?;
    let current: Option<Droplet> = store::get(&mut tx, &d.guid).await?;
    d = current.ok_or(ApiError::NotFound("Droplet"))?;
    advance(&mut d, DropletEvent::UploadAccepted)?;
    store::update(&mut tx, &d).await?;
    tx.commit().await?;
    let st = state.clone();
    let droplet_guid = d.guid.clone();
    let job = spawn_job(&state, &ctx, "droplet.upload", "droplet", &d.guid, async move {
        let stored = async {
            let layer = stager.import_droplet(tgz.clone()).await?;
            let blob = st.blobs.put_file(Namespace::Droplets, &tgz).await.map_err(|e| e.to_string())?;
            Ok::<_, String>(Stored { key: Some(blob.key), sha256: Some(blob.sha256), layer: Some(layer) })
        }
        .await;
        drop(work);
        finish(&st, &droplet_guid, stored).await
    })
    .await?;
    let mut conn = state.store.conn().await?;
    let md = metadata_of(&mut conn, &d.guid).await?;
    let mut resp = (StatusCode::ACCEPTED, axum::Json(render(&ctx, &d, Some(&md)))).into_response();
    if let Ok(v) = ctx.url(&format!("/v3/jobs/{job}")).parse() {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /v3/droplets/:guid/download`: the droplet tgz (only STAGED buildpack droplets).
pub async fn download(State(state): State<ApiState>, ctx: Ctx, Path(guid): Path<String>) -> ApiResult<Response> {
    let mut conn = state.store.conn().await?;
    // As CF: whoever sees the droplet may download it (auditors and managers included).
    let (d, app) = find_visible(&mut conn, &ctx, &guid).await?;
    if d.image.is_some() {
        return Err(ApiError::Unprocessable("Cannot download droplets with 'docker' lifecycle.".into()));
    }
    let key = match (DropletState::parse(&d.state), &d.blob_key) {
        (Some(DropletState::Staged), Some(key)) => key.clone(),
        _ => return Err(ApiError::Unprocessable("Only staged droplets can be downloaded.".into())),
    };
    let reader = state.blobs.get(Namespace::Droplets, &key).await.map_err(|e| blob_error(e, Limit::Droplet))?;
    audit(
        &mut conn,
        &ctx,
        "audit.app.droplet.download",
        Target { guid: &app.guid, kind: "app", name: &app.name },
        json!({"droplet_guid": d.guid}),
        Some(&app.space_guid),
        None,
    )
    .await?;
    let body = HttpBody::from_stream(tokio_util::io::ReaderStream::new(reader));
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"droplet_{}.tgz\"", d.guid)),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn droplets_move_only_the_ways_cf_moves_them() {
        use {DropletEvent as E, DropletState as S};
        assert_eq!(S::AwaitingUpload.on(E::UploadAccepted), Some(S::ProcessingUpload));
        assert_eq!(S::ProcessingUpload.on(E::Ready), Some(S::Staged));
        assert_eq!(S::Copying.on(E::Broke), Some(S::Failed));
        assert_eq!(S::Staged.on(E::UploadAccepted), None, "a droplet is uploaded once");
        assert_eq!(S::AwaitingUpload.on(E::Ready), None);
        for s in [S::AwaitingUpload, S::ProcessingUpload, S::Copying, S::Staged, S::Failed, S::Expired] {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
    }
}
