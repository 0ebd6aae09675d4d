//! The server's endpoint for cells on other machines (`--cell-listen`): mutual TLS with the
//! cell CA, a join that issues a cell its certificate for the join token, and for joined
//! cells the scheduler calls, the command stream, log shipping and droplet downloads.
//!
//! Invariants: a request without a member certificate reaches only `/v1/ca` and `/v1/join`;
//! a cell acts only as itself (its registration, heartbeats and drain, the instances and
//! tasks it holds); scheduler-only events (unclaim, evacuate, fail placement, cancel, …)
//! are refused from cells.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use hearth_cell::rep::DropletSource;
use hearth_cell::{CellHandle, Command, Converger};
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{ActualLrpEvent, TaskEvent};
use tokio_util::sync::CancellationToken;

use super::pki::{Authority, Issued};
use super::wire::{ActualLrpEventWire, Call, Reply, Shipped, error_reply};

/// What the endpoint's handlers share.
#[derive(Clone)]
pub struct EndpointState {
    pub authority: Arc<Authority>,
    pub scheduler: SchedulerStore,
    pub converger: Converger,
    pub logs: hearth_logs::Store,
    pub droplets: Arc<dyn DropletSource>,
    /// Packages, buildpacks, build caches and staged droplets (staging on a cell).
    pub blobs: hearth_blobstore::BlobStore,
    pub work_dir: std::path::PathBuf,
}

/// The cell a request's client certificate belongs to, if any.
#[derive(Clone)]
struct Peer(Option<String>);

/// A joining cell's request.
#[derive(serde::Deserialize)]
pub struct JoinRequest {
    pub cell_id: String,
    pub secret: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

fn valid_cell_id(id: &str) -> bool {
    (1..=63).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

pub fn router(state: EndpointState) -> Router {
    Router::new()
        .route("/v1/ca", get(ca))
        .route("/v1/join", post(join))
        .route("/v1/scheduler", post(call))
        .route("/v1/commands", get(commands))
        .route("/v1/logs", post(logs))
        .route("/v1/droplets/{layer}", get(droplet))
        .route("/v1/staged-droplets", post(store_droplet))
        .route("/v1/bits/{kind}/{key}", get(bits))
        .route("/v1/caches/{app}", get(cache).put(store_cache))
        .with_state(state)
}

async fn ca(State(state): State<EndpointState>) -> Response {
    state.authority.ca_pem().to_string().into_response()
}

async fn join(State(state): State<EndpointState>, Json(request): Json<JoinRequest>) -> Response {
    if !state.authority.secret_matches(&request.secret) {
        tracing::warn!(cell = %request.cell_id, "a cell tried to join with a wrong token");
        return refuse(StatusCode::UNAUTHORIZED, "wrong join token (the server prints it at start)");
    }
    if !valid_cell_id(&request.cell_id) {
        return refuse(StatusCode::BAD_REQUEST, "a cell id is 1-63 letters, digits, '-', '.' or '_'");
    }
    match state.authority.issue(&request.cell_id) {
        Ok(issued) => {
            tracing::info!(cell = %request.cell_id, "a cell joined");
            Json::<Issued>(issued).into_response()
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
    }
}

fn member(peer: &Peer) -> Result<&str, Box<Response>> {
    peer.0
        .as_deref()
        .ok_or_else(|| Box::new(refuse(StatusCode::UNAUTHORIZED, "join first: no cell certificate was presented")))
}

/// Whether cell `me` may make `call`.
async fn allowed(state: &EndpointState, me: &str, call: &Call) -> Result<(), String> {
    let mine = |id: &str| if id == me { Ok(()) } else { Err(format!("cell {me} may not act for cell {id}")) };
    match call {
        Call::RegisterCell { cell } => mine(&cell.id),
        Call::ChangeCell { id, .. } => mine(id),
        Call::ActualLrpsOnCell { cell_id } | Call::TasksOnCell { cell_id } => mine(cell_id),
        Call::DesiredLrp { .. } | Call::ActualLrp { .. } | Call::Task { .. } => Ok(()),
        Call::ChangeActual { key, event } => match event {
            ActualLrpEventWire::Claim { instance }
            | ActualLrpEventWire::Start { instance, .. }
            | ActualLrpEventWire::Crash { instance, .. } => mine(&instance.cell_id),
            ActualLrpEventWire::Remove => {
                let held = state.scheduler.actual_lrp(key).await.map_err(|e| e.to_string())?;
                match held.as_ref().and_then(|a| a.cell_id()) {
                    Some(cell) => mine(cell),
                    None => Ok(()),
                }
            }
            ActualLrpEventWire::Other { name } => Err(format!("only the scheduler makes '{name}' events")),
        },
        Call::ChangeTask { event, .. } => match event {
            TaskEvent::Start { cell_id } | TaskEvent::Complete { cell_id, .. } => mine(cell_id),
            _ => Err("only the scheduler makes that task event".into()),
        },
    }
}

async fn call(
    State(state): State<EndpointState>,
    Extension(peer): Extension<Peer>,
    Json(call): Json<Call>,
) -> Response {
    let me = match member(&peer) {
        Ok(me) => me.to_string(),
        Err(r) => return *r,
    };
    if let Err(why) = allowed(&state, &me, &call).await {
        tracing::warn!(cell = %me, %why, "refused a cell's call");
        return refuse(StatusCode::FORBIDDEN, why);
    }
    let s = &state.scheduler;
    let reply = match call {
        Call::RegisterCell { cell } => s.register_cell(cell).await.map(Reply::Cell),
        Call::ChangeCell { id, event } => s.change_cell(&id, event).await.map(Reply::Cell),
        Call::DesiredLrp { process_guid } => s.desired_lrp(&process_guid).await.map(Reply::Desired),
        Call::ActualLrp { key } => s.actual_lrp(&key).await.map(Reply::Actual),
        Call::ActualLrpsOnCell { cell_id } => s.actual_lrps_on_cell(&cell_id).await.map(Reply::Actuals),
        Call::ChangeActual { key, event } => {
            let event = match event {
                ActualLrpEventWire::Claim { instance } => ActualLrpEvent::Claim(instance),
                ActualLrpEventWire::Start { instance, address, ports, preferred_address } => {
                    ActualLrpEvent::Start { instance, address, ports, preferred_address }
                }
                ActualLrpEventWire::Crash { instance, reason } => ActualLrpEvent::Crash { instance, reason },
                ActualLrpEventWire::Remove => ActualLrpEvent::Remove,
                ActualLrpEventWire::Other { .. } => unreachable!("refused above"),
            };
            s.change_actual(&key, &event).await.map(Reply::Actual)
        }
        Call::Task { guid } => s.task(&guid).await.map(Reply::Task),
        Call::TasksOnCell { cell_id } => s.tasks().await.map(|tasks| {
            Reply::Tasks(tasks.into_iter().filter(|t| t.cell_id.as_deref() == Some(cell_id.as_str())).collect())
        }),
        Call::ChangeTask { guid, event } => s.change_task(&guid, &event).await.map(Reply::Task),
    };
    Json(reply.unwrap_or_else(|e| error_reply(&e))).into_response()
}

/// A connected cell, as the scheduler's loop reaches it: commands go down its stream.
struct RemoteCell {
    id: String,
    tx: tokio::sync::mpsc::UnboundedSender<Command>,
}

impl CellHandle for RemoteCell {
    fn id(&self) -> &str {
        &self.id
    }

    fn send(&self, command: Command) {
        // A closed stream loses the command; the cell catches up from the store.
        let _ = self.tx.send(command);
    }
}

/// Removes the cell's handle from the loop when its stream ends.
struct Disconnect {
    converger: Converger,
    handle: Arc<dyn CellHandle>,
}

impl Drop for Disconnect {
    fn drop(&mut self) {
        tracing::info!(cell = %self.handle.id(), "a cell's command stream ended");
        self.converger.remove_cell(self.handle.id(), Some(&self.handle));
    }
}

/// Newline-delimited commands for the cell, with an empty line every 10 s to keep the
/// connection (and the cell's read timeout) alive.
async fn commands(State(state): State<EndpointState>, Extension(peer): Extension<Peer>) -> Response {
    let me = match member(&peer) {
        Ok(me) => me.to_string(),
        Err(r) => return *r,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handle: Arc<dyn CellHandle> = Arc::new(RemoteCell { id: me.clone(), tx });
    state.converger.add_handle(handle.clone());
    tracing::info!(cell = %me, "a cell connected for commands");
    let guard = Disconnect { converger: state.converger.clone(), handle };
    let lines = futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let line = match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(command)) => {
                let mut line = serde_json::to_vec(&command).expect("commands serialise");
                line.push(b'\n');
                line
            }
            Ok(None) => return None,
            Err(_) => b"\n".to_vec(),
        };
        Some((Ok::<_, Infallible>(line), (rx, guard)))
    });
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(lines))
        .expect("a valid response")
}

async fn logs(
    State(state): State<EndpointState>,
    Extension(peer): Extension<Peer>,
    Json(batch): Json<Vec<Shipped>>,
) -> Response {
    if let Err(r) = member(&peer) {
        return *r;
    }
    for envelope in batch.into_iter().filter_map(Shipped::into_envelope) {
        let _ = state.logs.append(envelope);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn droplet(
    State(state): State<EndpointState>,
    Extension(peer): Extension<Peer>,
    Path(layer): Path<String>,
) -> Response {
    if let Err(r) = member(&peer) {
        return *r;
    }
    if hearth_images::Digest::parse(&layer).is_err() {
        return refuse(StatusCode::BAD_REQUEST, "not a layer digest");
    }
    let tmp = match scratch(&state) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state.droplets.fetch(&layer, &tmp).await {
        Ok(()) => send_file(tmp).await,
        Err(e) => refuse(StatusCode::NOT_FOUND, format!("{e:#}")),
    }
}

/// A temp file in the endpoint's scratch space, or why not.
fn scratch(state: &EndpointState) -> Result<tempfile::TempPath, Box<Response>> {
    let fail =
        |e: std::io::Error| Box::new(refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("no scratch space: {e}")));
    std::fs::create_dir_all(&state.work_dir).map_err(fail)?;
    tempfile::NamedTempFile::new_in(&state.work_dir).map(|t| t.into_temp_path()).map_err(fail)
}

/// Streams a file (already fetched to a temp path) as the response.
async fn send_file(tmp: tempfile::TempPath) -> Response {
    match tokio::fs::File::open(&tmp).await {
        Ok(file) => {
            drop(tmp);
            Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response()
        }
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Writes a request body to a temp file.
async fn receive_file(state: &EndpointState, body: Body) -> Result<tempfile::TempPath, Box<Response>> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let tmp = scratch(state)?;
    let fail = |e: String| Box::new(refuse(StatusCode::BAD_REQUEST, e));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(|e| fail(e.to_string()))?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        file.write_all(&chunk.map_err(|e| fail(e.to_string()))?).await.map_err(|e| fail(e.to_string()))?;
    }
    file.flush().await.map_err(|e| fail(e.to_string()))?;
    Ok(tmp)
}

/// A blobstore error as the cell sees it: its input refused (400), or the store failed.
fn blob_error(e: &hearth_blobstore::Error) -> Response {
    match e.kind() {
        hearth_blobstore::ErrorKind::Unprocessable | hearth_blobstore::ErrorKind::TooLarge => {
            refuse(StatusCode::BAD_REQUEST, e.to_string())
        }
        hearth_blobstore::ErrorKind::NotFound => refuse(StatusCode::NOT_FOUND, e.to_string()),
        hearth_blobstore::ErrorKind::Internal => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A package's or buildpack's zip, for a staging on the cell.
async fn bits(
    State(state): State<EndpointState>,
    Extension(peer): Extension<Peer>,
    Path((kind, key)): Path<(String, String)>,
) -> Response {
    if let Err(r) = member(&peer) {
        return *r;
    }
    let ns = match kind.as_str() {
        "package" => hearth_blobstore::Namespace::Packages,
        "buildpack" => hearth_blobstore::Namespace::Buildpacks,
        _ => return refuse(StatusCode::NOT_FOUND, "bits are a package or a buildpack"),
    };
    let tmp = match scratch(&state) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state.blobs.get_to_file(ns, &key, &tmp).await {
        Ok(_) => send_file(tmp).await,
        Err(e) => refuse(StatusCode::NOT_FOUND, format!("{kind} {key}: {e}")),
    }
}

async fn cache(
    State(state): State<EndpointState>,
    Extension(peer): Extension<Peer>,
    Path(app): Path<String>,
) -> Response {
    if let Err(r) = member(&peer) {
        return *r;
    }
    let tmp = match scratch(&state) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state.blobs.get_to_file(hearth_blobstore::Namespace::BuildpackCache, &app, &tmp).await {
        Ok(_) => send_file(tmp).await,
        Err(e) if e.kind() == hearth_blobstore::ErrorKind::NotFound => StatusCode::NOT_FOUND.into_response(),
        Err(e) => blob_error(&e),
    }
}

async fn store_cache(
    State(state): State<EndpointState>,
    Extension(peer): Extension<Peer>,
    Path(app): Path<String>,
    body: Body,
) -> Response {
    if let Err(r) = member(&peer) {
        return *r;
    }
    let tmp = match receive_file(&state, body).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state.blobs.put_file_as(hearth_blobstore::Namespace::BuildpackCache, &app, &tmp).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => blob_error(&e),
    }
}

/// A staged droplet's tgz, stored; answers its key and SHA-256.
async fn store_droplet(State(state): State<EndpointState>, Extension(peer): Extension<Peer>, body: Body) -> Response {
    if let Err(r) = member(&peer) {
        return *r;
    }
    let tmp = match receive_file(&state, body).await {
        Ok(t) => t,
        Err(r) => return *r,
    };
    match state.blobs.put_file(hearth_blobstore::Namespace::Droplets, &tmp).await {
        Ok(blob) => Json(serde_json::json!({ "key": blob.key, "sha256": blob.sha256 })).into_response(),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The TLS settings: the server's certificate, client certificates from the cell CA
/// checked when presented (a joining cell has none yet).
pub fn tls_config(authority: &Authority) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(super::pki::pem_to_der(authority.ca_pem())?.into())?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let (cert, key) = authority.server_identity()?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![cert.into()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(key)),
        )?;
    Ok(Arc::new(config))
}

/// Serves `router` on `listener` with mutual TLS until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    authority: Arc<Authority>,
    router: Router,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, from) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a cell connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, authority, router, shutdown) =
            (acceptor.clone(), authority.clone(), router.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = serve_one(tcp, from, acceptor, authority, router, shutdown).await {
                tracing::debug!(%from, error = %e, "a cell connection ended");
            }
        });
    }
}

async fn serve_one(
    tcp: tokio::net::TcpStream,
    from: SocketAddr,
    acceptor: tokio_rustls::TlsAcceptor,
    authority: Arc<Authority>,
    router: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stream = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await??;
    let peer = stream.get_ref().1.peer_certificates().and_then(|c| c.first()).and_then(|c| authority.member(c));
    tracing::debug!(%from, cell = ?peer, "cell connection");
    let router = router.layer(Extension(Peer(peer)));
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, req.map(Body::new)).await }
    });
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        done = &mut connection => done?,
        _ = shutdown.cancelled() => {}
    }
    Ok(())
}

/// Binds `listen` and serves the cell endpoint there until `shutdown`; answers the bound
/// address.
pub async fn start(state: EndpointState, listen: &str, shutdown: CancellationToken) -> anyhow::Result<SocketAddr> {
    use anyhow::Context;
    let tls = tls_config(&state.authority)?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen for cells on {listen}"))?;
    let addr = listener.local_addr()?;
    let authority = state.authority.clone();
    tokio::spawn(serve(listener, tls, authority, router(state), shutdown));
    Ok(addr)
}
