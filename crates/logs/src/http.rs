//! The HTTP surface, as an axum `Router` to merge into the server's front address:
//! log-cache's `GET /api/v1/read/{source_id}` (`{"envelopes":{"batch":[…]}}`), `GET /api/v1/info`
//! (`{"version","vm_uptime"}`, no token needed, as log-cache), `GET /api/v1/meta`, and the RLP
//! gateway's `GET /v2/read` stream (`sse`). Every other request carries `Authorization: bearer
//! TOKEN`; an [`Authorize`] (the API's role checks) decides per source id. log-cache errors are
//! grpc-gateway's JSON (`{"code":3,"message":…,"details":[]}`); the RLP gateway's are
//! `{"error":…,"message":…}`. This is the one place errors become HTTP statuses.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::Error;
use crate::query::{self, BadQuery};
use crate::store::Store;
use crate::wire;

/// What the authorizer answers for a token and a source id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// The token is missing, malformed, expired or not signed by us (401).
    Unauthenticated,
    /// The caller is known but may not read these logs (403).
    Forbidden,
    /// The caller may not know the source exists (404, as log-cache answers).
    NotFound,
}

/// Decides who may read which logs. `source_id` `None` asks for every source (the firehose,
/// `meta` of all sources): admins only. Implemented by the API with its role checks; any
/// `Fn(String, Option<String>) -> impl Future<Output = Access>` closure is one.
pub trait Authorize: Send + Sync + 'static {
    fn authorize(&self, token: String, source_id: Option<String>) -> Pin<Box<dyn Future<Output = Access> + Send>>;
}

impl<F, Fut> Authorize for F
where
    F: Fn(String, Option<String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Access> + Send + 'static,
{
    fn authorize(&self, token: String, source_id: Option<String>) -> Pin<Box<dyn Future<Output = Access> + Send>> {
        Box::pin(self(token, source_id))
    }
}

/// Settings of the HTTP surface.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The log-cache version `/api/v1/info` reports (clients pick their API paths by it: at
    /// least 2.1.0 means `/api/v1/...`).
    pub version: String,
    /// A stream with nothing to send writes `event: heartbeat` this often.
    pub heartbeat: Duration,
    /// A stream ends (`event: closing`) after this long; clients reconnect.
    pub stream_timeout: Duration,
    /// At most this many envelopes per streamed batch.
    pub batch_size: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            version: "3.0.0".into(),
            heartbeat: Duration::from_secs(10),
            stream_timeout: Duration::from_secs(14 * 60),
            batch_size: 100,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Logs {
    pub(crate) store: Store,
    pub(crate) auth: Arc<dyn Authorize>,
    pub(crate) config: Arc<HttpConfig>,
    started: Instant,
}

/// The routes, ready to merge into the front address's router.
pub fn router(store: Store, auth: Arc<dyn Authorize>, config: HttpConfig) -> Router {
    let logs = Logs { store, auth, config: Arc::new(config), started: Instant::now() };
    Router::new()
        .route("/api/v1/read/{*source_id}", get(read))
        .route("/api/v1/info", get(info))
        .route("/api/v1/meta", get(meta))
        .route("/v2/read", get(crate::sse::stream))
        .with_state(logs)
}

/// Which API's error format to answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    LogCache,
    Gateway,
}

/// A refusal, rendered in the dialect of the endpoint that refused.
#[derive(Debug)]
pub(crate) struct Refusal {
    dialect: Dialect,
    status: StatusCode,
    name: &'static str,
    message: String,
}

impl Refusal {
    pub(crate) fn new(dialect: Dialect, status: StatusCode, name: &'static str, message: impl Into<String>) -> Self {
        Refusal { dialect, status, name, message: message.into() }
    }

    pub(crate) fn bad_query(dialect: Dialect, q: BadQuery) -> Self {
        Refusal::new(dialect, StatusCode::BAD_REQUEST, q.name, q.message)
    }

    fn access(dialect: Dialect, access: Access) -> Option<Self> {
        let (status, name, message) = match access {
            Access::Allowed => return None,
            Access::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthorized", "a valid bearer token is required"),
            Access::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "you may not read these logs"),
            Access::NotFound => (StatusCode::NOT_FOUND, "not_found", "resource not found"),
        };
        Some(Refusal::new(dialect, status, name, message))
    }
}

impl Refusal {
    /// The one mapping of this crate's errors to HTTP statuses.
    pub(crate) fn from_error(dialect: Dialect, e: Error) -> Self {
        match e {
            Error::InvalidRequest(m) => Refusal::new(dialect, StatusCode::BAD_REQUEST, "invalid_request", m),
            Error::InvalidEnvelope(_) | Error::InvalidConfig(_) => {
                tracing::error!(error = %e, "logs request failed");
                Refusal::new(dialect, StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = match self.dialect {
            Dialect::LogCache => {
                // gRPC status codes, as grpc-gateway maps them to HTTP.
                let code = match self.status {
                    StatusCode::BAD_REQUEST => 3,
                    StatusCode::NOT_FOUND => 5,
                    StatusCode::FORBIDDEN => 7,
                    StatusCode::UNAUTHORIZED => 16,
                    _ => 13,
                };
                json!({ "code": code, "message": self.message, "details": [] })
            }
            Dialect::Gateway => json!({ "error": self.name, "message": self.message }),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// The token of `Authorization: bearer TOKEN` (scheme case-insensitive).
pub(crate) fn bearer(dialect: Dialect, headers: &HeaderMap) -> Result<String, Refusal> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (scheme, token) = value.trim().split_once(' ').unwrap_or(("", ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Refusal::access(dialect, Access::Unauthenticated).expect("a refusal"));
    }
    Ok(token.to_string())
}

impl Logs {
    /// Allowed for every source id given (`None`: the firehose), or the first refusal.
    pub(crate) async fn allow(&self, dialect: Dialect, token: &str, source_ids: &[String]) -> Result<(), Refusal> {
        if source_ids.is_empty() {
            let access = self.auth.authorize(token.to_string(), None).await;
            return Refusal::access(dialect, access).map_or(Ok(()), Err);
        }
        for id in source_ids {
            let access = self.auth.authorize(token.to_string(), Some(id.clone())).await;
            if let Some(refusal) = Refusal::access(dialect, access) {
                return Err(refusal);
            }
        }
        Ok(())
    }
}

async fn read(
    State(logs): State<Logs>,
    Path(source_id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let token = bearer(Dialect::LogCache, &headers)?;
    let req = query::read_request(raw.as_deref()).map_err(|q| Refusal::bad_query(Dialect::LogCache, q))?;
    logs.allow(Dialect::LogCache, &token, std::slice::from_ref(&source_id)).await?;
    let envelopes = logs.store.read(&source_id, &req).map_err(|e| Refusal::from_error(Dialect::LogCache, e))?;
    let body = wire::read_response_bytes(envelopes.iter().map(|e| e.as_ref()));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn info(State(logs): State<Logs>) -> Response {
    let uptime = host_uptime().unwrap_or_else(|| logs.started.elapsed().as_secs());
    let body = format!("{{\"version\":{},\"vm_uptime\":\"{uptime}\"}}\n", Value::String(logs.config.version.clone()));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Seconds since the machine booted (log-cache reports the VM's uptime).
fn host_uptime() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(secs as u64)
}

/// `{"meta":{SOURCE:{"count","expired","oldest_timestamp","newest_timestamp"}}}` for the sources
/// the caller may read (protobuf JSON: 64-bit integers as strings, zero values left out).
async fn meta(State(logs): State<Logs>, headers: HeaderMap) -> Result<Response, Refusal> {
    let token = bearer(Dialect::LogCache, &headers)?;
    let everything = match logs.auth.authorize(token.clone(), None).await {
        Access::Allowed => true,
        Access::Unauthenticated => {
            return Err(Refusal::access(Dialect::LogCache, Access::Unauthenticated).expect("a refusal"));
        }
        Access::Forbidden | Access::NotFound => false,
    };
    let mut out = Map::new();
    for (id, info) in logs.store.meta() {
        if !everything && logs.auth.authorize(token.clone(), Some(id.clone())).await != Access::Allowed {
            continue;
        }
        let mut m = Map::new();
        for (key, v) in [
            ("count", info.count as i64),
            ("expired", info.expired as i64),
            ("oldest_timestamp", info.oldest_timestamp),
            ("newest_timestamp", info.newest_timestamp),
        ] {
            if v != 0 {
                m.insert(key.into(), Value::String(v.to_string()));
            }
        }
        out.insert(id, Value::Object(m));
    }
    Ok(axum::Json(json!({ "meta": out })).into_response())
}
