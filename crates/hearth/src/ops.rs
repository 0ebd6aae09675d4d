//! Operators' endpoints for this machine's containers and images, under `/hearth/v1/`
//! (`hearth containers …` and `hearth images …` use them). Not part of the CF API: only
//! platform admins may use them (`cloud_controller.admin`; read-only admins may look).
//! Errors use CF's error format.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hearth_api::ApiError;
use hearth_auth::Auth;
use hearth_containers::{ContainerId, ContainerInfo, ExitStatus};
use hearth_images::{Credentials, ImageRecord, PullEvent, PullOptions};
use serde::Deserialize;
use serde_json::{Value, json};

use hearth_cell::node::{ContainerRequest, Node};

/// How long `POST …/wait` holds a request before answering that the process still runs.
const WAIT_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

#[derive(Clone)]
pub struct OpsState {
    pub auth: Auth,
    /// `Err` says why this server runs no containers (e.g. not root).
    pub node: Result<Arc<Node>, Arc<str>>,
}

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/hearth/v1/containers", get(list_containers).post(create_container))
        .route("/hearth/v1/containers/{id}", get(get_container).delete(destroy_container))
        .route("/hearth/v1/containers/{id}/wait", post(wait_container))
        .route("/hearth/v1/containers/{id}/output", get(container_output))
        .route("/hearth/v1/images", get(list_images))
        .route("/hearth/v1/images/pull", post(pull_image))
        .route("/hearth/v1/images/metrics", get(image_metrics))
        .route("/hearth/v1/images/gc", post(collect_images))
        .with_state(state)
}

/// A platform admin; read-only admins pass for `GET`s.
struct Admin;

impl FromRequestParts<OpsState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &OpsState) -> Result<Self, ApiError> {
        let token = hearth_auth::http::bearer_token(&parts.headers).ok_or(ApiError::NotAuthenticated)?;
        let claims = state.auth.verify_access_token(token).await.map_err(|_| ApiError::InvalidAuthToken)?;
        let has = |scope: &str| claims.scope.iter().any(|s| s == scope);
        let write = has("cloud_controller.admin");
        if !write && !has("cloud_controller.admin_read_only") {
            return Err(ApiError::NotAuthorized);
        }
        if !write && parts.method != axum::http::Method::GET {
            return Err(ApiError::NotAuthorized);
        }
        Ok(Admin)
    }
}

fn node(state: &OpsState) -> Result<&Arc<Node>, ApiError> {
    state.node.as_ref().map_err(|why| ApiError::ServiceUnavailable(format!("This server runs no containers: {why}")))
}

/// The node and a container on it that exists (404 otherwise).
async fn existing<'a>(state: &'a OpsState, id: &str) -> Result<(&'a Arc<Node>, ContainerId), ApiError> {
    let node = node(state)?;
    let id = container_id(id)?;
    match node.runtime().lookup(&id).await.map_err(internal)? {
        Some(_) => Ok((node, id)),
        None => Err(ApiError::NotFound("Container")),
    }
}

fn container_id(id: &str) -> Result<ContainerId, ApiError> {
    ContainerId::new(id).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn exit_json(exit: Option<ExitStatus>) -> Value {
    match exit {
        Some(ExitStatus::Code(code)) => json!({"code": code}),
        Some(ExitStatus::Signal(signal)) => json!({"signal": signal}),
        None => Value::Null,
    }
}

fn container_json(info: &ContainerInfo) -> Value {
    json!({
        "id": info.id.as_str(),
        "state": info.status,
        "pid": info.pid,
        "exit": exit_json(info.exit),
        "command": info.spec.args,
        "user": {"uid": info.spec.user.uid, "gid": info.spec.user.gid},
        "network": info.network.as_ref().map(|n| json!({
            "address": n.address.to_string(),
            "ports": n.port_mappings.iter().map(|m| json!({"container": m.container_port, "host": m.host_port})).collect::<Vec<_>>(),
        })),
        "usage": {
            "memory_bytes": info.usage.memory_bytes,
            "cpu_nanos": info.usage.cpu_nanos,
            "oom_kills": info.usage.oom_kills,
        },
    })
}

fn image_json(image: &ImageRecord) -> Value {
    json!({
        "reference": image.reference,
        "digest": image.manifest_digest.as_str(),
        "layers": image.layers.len(),
        "size": image.layers.iter().map(|l| l.size).sum::<u64>(),
        "entrypoint": image.runtime.entrypoint,
        "cmd": image.runtime.cmd,
    })
}

async fn list_containers(State(state): State<OpsState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let node = node(&state)?;
    let mut resources = Vec::new();
    for id in node.runtime().list().await.map_err(internal)? {
        if let Some(info) = node.runtime().lookup(&id).await.map_err(internal)? {
            resources.push(container_json(&info));
        }
    }
    Ok(Json(json!({"resources": resources})))
}

async fn get_container(
    State(state): State<OpsState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let node = node(&state)?;
    let info = node.runtime().lookup(&container_id(&id)?).await.map_err(internal)?;
    info.map(|i| Json(container_json(&i))).ok_or(ApiError::NotFound("Container"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateContainer {
    id: Option<String>,
    image: Option<String>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    ports: Vec<u16>,
    disk_mb: Option<u64>,
}

async fn create_container(
    State(state): State<OpsState>,
    _: Admin,
    body: Result<Json<CreateContainer>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let node = node(&state)?;
    let Json(body) = body.map_err(|e| ApiError::MessageParse(e.body_text()))?;
    let id = match &body.id {
        Some(id) => container_id(id)?,
        None => container_id(&format!("ops-{}", uuid_like()))?,
    };
    if let Some(bad) = body.env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
        return Err(ApiError::Unprocessable(format!("env entry {bad:?} is not NAME=value")));
    }
    if node.runtime().lookup(&id).await.map_err(internal)?.is_some() {
        return Err(ApiError::Unprocessable(format!("A container named {id} already exists")));
    }
    if let Some(reference) = &body.image
        && node.images().image(reference).is_err()
    {
        return Err(ApiError::Unprocessable(format!(
            "Image {reference} is not pulled; pull it first (hearth images pull {reference})"
        )));
    }
    if body.ports.contains(&0) {
        return Err(ApiError::Unprocessable("ports must be between 1 and 65535".into()));
    }
    let disk_limit = body.disk_mb.map(|mb| mb.saturating_mul(1 << 20));
    let mut request = ContainerRequest::new(id, body.command);
    request.image = body.image;
    request.env = body.env;
    request.ports = body.ports;
    request.disk_limit = disk_limit;
    let info = node.run(&request).await.map_err(|e| ApiError::Unprocessable(format!("{e:#}")))?;
    Ok((StatusCode::CREATED, Json(container_json(&info))))
}

fn uuid_like() -> String {
    let bytes: [u8; 6] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn wait_container(
    State(state): State<OpsState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (node, id) = existing(&state, &id).await?;
    match tokio::time::timeout(WAIT_LIMIT, node.runtime().wait(&id)).await {
        Ok(Ok(exit)) => Ok(Json(json!({"exit": exit_json(Some(exit))}))),
        Ok(Err(e)) => Err(internal(e)),
        Err(_) => Ok(Json(json!({"exit": null}))),
    }
}

async fn container_output(
    State(state): State<OpsState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (node, id) = existing(&state, &id).await?;
    let (stdout, stderr) = node.runtime().output(&id).await.map_err(internal)?;
    Ok(Json(json!({
        "stdout": String::from_utf8_lossy(&stdout),
        "stderr": String::from_utf8_lossy(&stderr),
    })))
}

async fn destroy_container(
    State(state): State<OpsState>,
    _: Admin,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (node, id) = existing(&state, &id).await?;
    node.destroy(&id).await.map_err(|e| internal(format!("{e:#}")))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_images(State(state): State<OpsState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let node = node(&state)?;
    let images = node.images().images().map_err(internal)?;
    Ok(Json(json!({"resources": images.iter().map(image_json).collect::<Vec<_>>()})))
}

async fn image_metrics(State(state): State<OpsState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let node = node(&state)?;
    Ok(Json(serde_json::to_value(node.images().metrics()).map_err(internal)?))
}

/// Removes unused layers (least recently used first) down to the store's threshold.
async fn collect_images(State(state): State<OpsState>, _: Admin) -> Result<Json<Value>, ApiError> {
    let images = node(&state)?.images().clone();
    let report = tokio::task::spawn_blocking(move || images.gc()).await.map_err(internal)?.map_err(internal)?;
    Ok(Json(serde_json::to_value(report).map_err(internal)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullImage {
    reference: String,
    username: Option<String>,
    password: Option<String>,
}

/// Pulls an image, answering with one JSON object per line as the pull goes (progress
/// events), the last of which is `{"image": …}` or `{"error": …}`.
async fn pull_image(
    State(state): State<OpsState>,
    _: Admin,
    body: Result<Json<PullImage>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let node = node(&state)?.clone();
    let Json(body) = body.map_err(|e| ApiError::MessageParse(e.body_text()))?;
    let credentials = match (body.username, body.password) {
        (Some(username), Some(password)) => Credentials::Basic { username, password },
        (None, None) => Credentials::Anonymous,
        _ => return Err(ApiError::Unprocessable("username and password go together".into())),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let progress_tx = tx.clone();
    let progress = move |event: PullEvent| {
        let line = match event {
            PullEvent::Resolved { manifest, layers, total_bytes } => {
                json!({"event": "resolved", "manifest": manifest.as_str(), "layers": layers, "total_bytes": total_bytes})
            }
            PullEvent::LayerCached { digest, size } => {
                json!({"event": "layer_cached", "digest": digest.as_str(), "size": size})
            }
            PullEvent::LayerBytes { digest, done, total } => {
                json!({"event": "layer_bytes", "digest": digest.as_str(), "done": done, "total": total})
            }
            PullEvent::LayerStored { digest, size } => {
                json!({"event": "layer_stored", "digest": digest.as_str(), "size": size})
            }
        };
        let _ = progress_tx.send(line);
    };
    let options = PullOptions { credentials, progress: Some(Arc::new(progress)) };
    tokio::spawn(async move {
        let last = match node.puller().pull(&body.reference, &options).await {
            Ok(image) => json!({"image": image_json(&image)}),
            Err(e) => json!({"error": e.to_string()}),
        };
        let _ = tx.send(last);
    });
    let lines = futures_util::stream::unfold(rx, |mut rx| async move {
        let value = rx.recv().await?;
        let mut line = serde_json::to_vec(&value).expect("JSON values serialize");
        line.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(line), rx))
    });
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(lines)).into_response())
}
