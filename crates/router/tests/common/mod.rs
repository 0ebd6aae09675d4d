//! Test support: real backends (axum on loopback ports), a real router started the way
//! `hearth server` will start it, and clients that reach it by `Host`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router as Axum;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use bytes::Bytes;
use futures_util::StreamExt;
use hearth_router::{AccessRecord, EndpointSpec, Router, RouterConfig, RouterHandle, TableHandle};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

/// A backend app instance: answers with its name and remembers the headers it got.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub seen: Arc<Mutex<Vec<HeaderMap>>>,
    pub in_flight: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct BackendState {
    name: String,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    in_flight: Arc<AtomicUsize>,
}

#[derive(serde::Deserialize)]
struct Params {
    ms: Option<u64>,
    mb: Option<u64>,
}

impl Backend {
    pub async fn start(name: &str) -> Backend {
        let state = BackendState { name: name.into(), seen: Arc::default(), in_flight: Arc::default() };
        let app = Axum::new()
            .route("/slow", get(slow))
            .route("/session", get(session))
            .route("/upload", post(upload))
            .route("/download", get(download))
            .fallback(any(hello))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Backend { addr, name: name.into(), seen: state.seen, in_flight: state.in_flight }
    }

    pub fn endpoint(&self, index: u32) -> EndpointSpec {
        EndpointSpec {
            addr: self.addr,
            instance_id: format!("instance-{}", self.name),
            index,
            app_guid: format!("app-{}", self.name),
            process_guid: format!("process-{}", self.name),
        }
    }

    pub fn last_headers(&self) -> HeaderMap {
        self.seen.lock().unwrap().last().cloned().expect("the backend saw no request")
    }
}

fn remember(state: &BackendState, headers: &HeaderMap) {
    state.seen.lock().unwrap().push(headers.clone());
}

async fn hello(State(state): State<BackendState>, headers: HeaderMap, uri: axum::http::Uri) -> impl IntoResponse {
    remember(&state, &headers);
    ([("x-backend", state.name.clone())], format!("{} {}", state.name, uri.path()))
}

async fn slow(State(state): State<BackendState>, Query(p): Query<Params>, headers: HeaderMap) -> impl IntoResponse {
    remember(&state, &headers);
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(p.ms.unwrap_or(1000))).await;
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    ([("x-backend", state.name.clone())], format!("{} slow", state.name))
}

async fn session(State(state): State<BackendState>, headers: HeaderMap) -> impl IntoResponse {
    remember(&state, &headers);
    (
        [("x-backend", state.name.clone()), ("set-cookie", "JSESSIONID=s1; Path=/; Max-Age=600".to_string())],
        state.name.clone(),
    )
}

/// Reads the body as it streams in and answers with its length.
async fn upload(State(state): State<BackendState>, headers: HeaderMap, body: Body) -> impl IntoResponse {
    remember(&state, &headers);
    let mut stream = body.into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => total += c.len() as u64,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
    (StatusCode::OK, total.to_string())
}

/// `mb` MiB made of one repeated 64 KiB chunk (nothing big is held).
async fn download(Query(p): Query<Params>) -> impl IntoResponse {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let chunks = p.mb.unwrap_or(1) * 16;
    let stream = futures_util::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    ([(header::CONTENT_LENGTH, (chunks * 64 * 1024).to_string())], Body::from_stream(stream))
}

/// A running router with its table, access records and shutdown token.
pub struct TestRouter {
    pub handle: RouterHandle,
    pub table: TableHandle,
    pub records: UnboundedReceiver<AccessRecord>,
    pub shutdown: CancellationToken,
    pub addr: SocketAddr,
}

pub fn config() -> RouterConfig {
    RouterConfig { workers: 2, drain_timeout: Duration::from_secs(10), ..RouterConfig::default() }
}

pub async fn start(config: RouterConfig) -> TestRouter {
    start_with(Router::new(config, TableHandle::new())).await
}

pub async fn start_with(router: Router) -> TestRouter {
    let (tx, records) = tokio::sync::mpsc::unbounded_channel();
    let shutdown = CancellationToken::new();
    let table = router_table(&router);
    let handle = router.access_log(Arc::new(tx)).start(shutdown.clone()).await.expect("the router starts");
    let addr = handle.http_addr();
    TestRouter { handle, table, records, shutdown, addr }
}

fn router_table(router: &Router) -> TableHandle {
    router.table().clone()
}

impl TestRouter {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `GET path` with `Host: host`.
    pub async fn get(&self, host: &str, path: &str) -> reqwest::Response {
        client().get(self.url(path)).header("host", host).send().await.expect("the router answers")
    }

    /// The next access record (waits briefly: records are written when bodies end).
    pub async fn record(&mut self) -> AccessRecord {
        tokio::time::timeout(Duration::from_secs(5), self.records.recv()).await.expect("an access record").unwrap()
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle.stopped()).await.expect("the router stops");
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

pub fn key(host: &str, path: &str) -> hearth_router::RouteKey {
    hearth_router::RouteKey::new(host, path).unwrap()
}

/// A loopback port nothing listens on.
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}
