//! Hearth's Cloud Controller V3 API: the resources, their exact CF JSON shapes, lists
//! with paging, filters and `include`, labels and annotations, async delete jobs, audit
//! events, and CF's authorization rules on every endpoint.
//!
//! Invariants:
//! - Only this crate knows the CF wire format; it converts explicitly from store rows.
//! - Every handler authenticates through [`context::Ctx`] and decides through
//!   [`authz::Viewer`]; a resource the caller may not see is a 404, one it may not change
//!   a 403.
//! - Every change runs in one store transaction, together with its audit event.

mod answers;
pub mod authz;
mod blob_refs;
mod body;
mod context;
mod crashes;
mod error;
mod limits;
mod log_access;
pub mod lrps;
mod params;
mod render;
mod resources;
mod services_env;
mod task_states;

use axum::Router;
use axum::body::Body as HttpBody;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hearth_auth::Auth;
use hearth_store::Store;

pub use answers::Answers;
pub use crashes::record_crashes;
pub use error::ApiError;
pub use limits::{Limit, Limits};
pub use log_access::LogAccess;
pub use resources::fail_interrupted_builds;
pub use task_states::follow_tasks;

/// The API version Hearth's behaviour matches (advertised as `cloud_controller_v3.meta.version`).
pub const CF_API_VERSION: &str = "3.181.0";

/// Settings of the API.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Where the platform is reached when a request carries no usable `Host`.
    pub external_url: String,
    /// The default shared app domain (e.g. `apps.localhost`).
    pub app_domain: String,
    /// How large uploads, unpacked archives and request bodies may be.
    pub limits: Limits,
}

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub auth: Auth,
    pub config: std::sync::Arc<ApiConfig>,
    /// Desired and actual LRPs: what runs for each process.
    pub scheduler: hearth_scheduler::persist::SchedulerStore,
    /// Reads image configs from registries (docker staging); `None` where no registry is reachable.
    pub images: Option<std::sync::Arc<dyn ImageInspector>>,
    /// Told whenever route mappings or what runs for them change (the router's table follows).
    pub routes_changed: std::sync::Arc<tokio::sync::Notify>,
    /// App logs (staging output goes here as `STG` lines).
    pub logs: hearth_logs::Store,
    /// Packages, droplets, buildpacks and the app-file cache.
    pub blobs: hearth_blobstore::BlobStore,
    /// Scratch space for uploads and package assembly (on local disk).
    pub work_dir: std::path::PathBuf,
    /// Runs buildpack staging; `None` where this platform runs no containers.
    pub stager: Option<std::sync::Arc<dyn Stager>>,
    /// Answers to repeated reads, kept while their data is unchanged.
    pub answers: Answers,
}

/// One buildpack staging: blob keys, not files, so any cell can stage it.
pub struct StagingJob {
    pub build_guid: String,
    pub app_guid: String,
    /// The package zip's key in the blobstore.
    pub package_key: String,
    /// (name, zip's blob key), in the order to try (detect) or run.
    pub buildpacks: Vec<(String, String)>,
    pub detect: bool,
    /// `NAME=value` for the builder.
    pub env: Vec<String>,
    pub memory_mb: u64,
    pub disk_mb: u64,
    /// The stack to stage on (cells must offer it).
    pub stack: String,
}

/// What buildpack staging made: the droplet stored in the blobstore and imported as a layer.
pub use hearth_scheduler::StagingResult;

/// Runs buildpack staging somewhere containers run (a staging task on a cell); the
/// builder's output goes to the app's logs as `STG` lines, the droplet tgz and the app's
/// build cache to the blobstore. Errors are CF's staging error texts
/// (`NoAppDetectedError - …`, `BuildpackCompileFailed - …`, `StagingTimeExpired - …`,
/// `InsufficientResources - …`, `StagingError - …`).
pub trait Stager: Send + Sync + 'static {
    fn stage(&self, job: StagingJob) -> BoxFuture<'static, Result<StagingResult, String>>;

    /// Imports a droplet tgz in CF's layout (already checked by the blobstore's safe
    /// extraction) as a layer where instances run; answers the layer (`sha256:…`), the
    /// same one staging gave the same tgz.
    fn import_droplet(&self, tgz: std::path::PathBuf) -> BoxFuture<'static, Result<String, String>>;
}

/// What docker staging learns of an image from its registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// The platform manifest's digest (`sha256:…`): instances run exactly this image.
    pub digest: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// Exposed TCP ports, ascending.
    pub ports: Vec<u16>,
}

/// A boxed future (the inspector is used as a trait object).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Reads an image's config from its registry without fetching layers. Errors are
/// sentences a user can act on (the build's error shows them).
pub trait ImageInspector: Send + Sync + 'static {
    fn inspect<'a>(
        &'a self,
        reference: &'a str,
        credentials: Option<(&'a str, &'a str)>,
    ) -> BoxFuture<'a, Result<ImageInfo, String>>;
}

/// The Cloud Controller's routes (`/`, `/v3/...`).
pub fn router(state: ApiState) -> Router {
    let limits = state.config.limits;
    let body_limit = usize::try_from(limits.request_body_bytes).unwrap_or(usize::MAX);
    resources::routes(&limits)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn(move |req: Request<HttpBody>, next: Next| cf_error_bodies(limits, req, next)))
        .with_state(state)
}

/// Turns the framework's plain-text rejections (body too large, wrong method, wrong
/// content type) into CF's error JSON. A too-large body was not read to its end, so that
/// answer also closes the connection: a client must not send its next request on it.
async fn cf_error_bodies(limits: Limits, req: Request<HttpBody>, next: Next) -> Response {
    let limit = limit_of_path(req.uri().path());
    let mut resp = rewrite_rejection(next.run(req).await, limit, limits.get(limit));
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    }
    resp
}

/// The body limit a request's path is under: the three uploads have their own.
fn limit_of_path(path: &str) -> Limit {
    match path.trim_end_matches('/').split('/').collect::<Vec<_>>().as_slice() {
        ["", "v3", "packages", _, "upload"] => Limit::Package,
        ["", "v3", "droplets", _, "upload"] => Limit::Droplet,
        ["", "v3", "buildpacks", _, "upload"] => Limit::Buildpack,
        _ => Limit::RequestBody,
    }
}

fn rewrite_rejection(resp: Response, limit: Limit, bytes: u64) -> Response {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || resp.status().is_success() || resp.status().is_redirection() {
        return resp;
    }
    match resp.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit, bytes }.into_response(),
        StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_FOUND => ApiError::UnknownRequest.into_response(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::BAD_REQUEST => {
            ApiError::MessageParse("the request body could not be read".into()).into_response()
        }
        _ => resp,
    }
}

/// Installs the built-in buildpacks (`binary_buildpack`) on a platform that has none of them.
/// The files of built-in buildpack `name` (`bin/detect`, … and what they use), as installed.
pub fn builtin_buildpack_files(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    resources::builtin_buildpacks::files(name)
}

pub async fn install_builtin_buildpacks(state: &ApiState) -> Result<(), ApiError> {
    resources::builtin_buildpacks::install_builtin(state).await
}

/// Creates what a fresh platform has: the default org quota, the shared app domain,
/// the default stack and the feature flags.
pub async fn seed(store: &Store, config: &ApiConfig) -> Result<(), hearth_store::Error> {
    resources::seed(store, config).await
}
