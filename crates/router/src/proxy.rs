//! One request through the router: find the route, pick an endpoint (sticky, balanced,
//! retrying refused connections on others), rewrite headers in place, stream both bodies,
//! tunnel upgrades, and answer itself with Gorouter's errors, `/health` and `/metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::backend;
use crate::body::{Counted, Epilogue, RouterBody, Tracked, full};
use crate::headers::{self, X_CF_APPLICATION_ID, X_CF_INSTANCE_ID, X_CF_INSTANCE_INDEX, X_CF_ROUTER_ERROR};
use crate::server::Shared;
use crate::table::{Endpoint, Pool, normalize_host};

/// Which kind of listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    Http,
    Https,
    /// The status address: `/health` and `/metrics` only.
    Status,
}

/// Per connection: where it came from.
pub(crate) struct ConnInfo {
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    pub(crate) remote: SocketAddr,
    pub(crate) front: Front,
}

/// What the access record needs, gathered before the request goes on.
struct Started {
    at: Instant,
    wall: SystemTime,
    host: String,
    method: String,
    path: String,
    protocol: String,
    user_agent: Option<String>,
}

pub(crate) async fn handle(
    conn: Arc<ConnInfo>,
    mut req: Request<Incoming>,
) -> Result<Response<RouterBody>, Infallible> {
    let host = match req.uri().authority() {
        Some(a) => a.as_str().to_string(),
        None => req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string(),
    };
    let started = Started {
        at: Instant::now(),
        wall: SystemTime::now(),
        method: req.method().to_string(),
        path: req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string(),
        protocol: format!("{:?}", req.version()),
        user_agent: req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_string),
        host,
    };
    let route_host = normalize_host(&started.host).into_owned();
    let shared = &conn.shared;

    if conn.front == Front::Status || shared.config.health_host.as_deref() == Some(route_host.as_str()) {
        if let Some(response) = status_page(shared, req.uri().path()) {
            return Ok(response);
        }
        if conn.front == Front::Status {
            return Ok(plain(StatusCode::NOT_FOUND, "404 Not Found\n"));
        }
    }

    let tls = conn.front == Front::Https;
    if shared.is_system_host(&route_host)
        && let Some(fallback) = &shared.fallback
    {
        headers::add_forwarding(req.headers_mut(), conn.remote.ip(), tls);
        let response = fallback.call(req).await;
        conn.metrics.observe(response.status().as_u16(), started.at.elapsed());
        return Ok(response);
    }

    let pool = shared.table.snapshot().lookup(&route_host, req.uri().path()).cloned();
    let Some(pool) = pool else {
        conn.metrics.unknown_route();
        let body = format!("404 Not Found: Requested route ('{}') does not exist.\n", started.host);
        return Ok(router_error(&conn, started, StatusCode::NOT_FOUND, "unknown_route", body, None));
    };
    proxy(conn, req, pool, started, tls).await
}

async fn proxy(
    conn: Arc<ConnInfo>,
    mut req: Request<Incoming>,
    pool: Arc<Pool>,
    started: Started,
    tls: bool,
) -> Result<Response<RouterBody>, Infallible> {
    let config = &conn.shared.config;
    let upgrade = req.version() == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    if !parts.headers.contains_key(header::HOST)
        && let Ok(value) = HeaderValue::from_str(&started.host)
    {
        parts.headers.insert(header::HOST, value);
    }
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    let request_id = headers::add_forwarding(&mut parts.headers, conn.remote.ip(), tls);
    let text = |name| parts.headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_string);
    let forwarded = Forwarded {
        request_id: request_id.to_str().ok().map(str::to_string),
        forwarded_for: text(headers::X_FORWARDED_FOR),
        forwarded_proto: text(headers::X_FORWARDED_PROTO),
    };
    let sticky = headers::sticky_instance(&parts.headers).map(str::to_string);
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        let origin = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::try_from(origin).unwrap_or_else(|_| Uri::from_static("/"));
    }
    parts.version = Version::HTTP_11;
    let received = Arc::new(AtomicU64::new(0));
    let mut req = Request::from_parts(parts, Counted { inner: body, bytes: received.clone() });

    let mut tried: Vec<usize> = Vec::new();
    let mut attempts = 0;
    let mut outcome = None;
    while attempts < config.max_attempts.max(1) {
        let Some((i, endpoint)) = pool.choose(config.balance, sticky.as_deref(), &tried) else { break };
        let endpoint = endpoint.clone();
        attempts += 1;
        let mut conn_to =
            match backend::checkout(endpoint.spec.addr, config.connect_timeout, config.idle_timeout, upgrade).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(addr = %endpoint.spec.addr, "endpoint unreachable: {e}");
                    conn.metrics.backend_error();
                    tried.push(i);
                    continue;
                }
            };
        set_instance_headers(&mut req, &endpoint);
        let guard = endpoint.begin();
        match conn_to.sender.try_send_request(req).await {
            Ok(response) => {
                outcome = Some((response, endpoint, conn_to, guard));
                break;
            }
            Err(mut e) => {
                conn.metrics.backend_error();
                match e.take_message() {
                    // Not sent: the connection was dead. Try again (a pooled one may just have expired).
                    Some(back) => {
                        req = back;
                        if !conn_to.reused {
                            tried.push(i);
                        }
                    }
                    None => {
                        tracing::debug!(addr = %endpoint.spec.addr, "endpoint failed mid-request: {}", e.error());
                        break;
                    }
                }
            }
        }
    }
    let Some((response, endpoint, conn_to, guard)) = outcome else {
        let body = "502 Bad Gateway: Registered endpoint failed to handle the request.\n".to_string();
        return Ok(router_error(&conn, started, StatusCode::BAD_GATEWAY, "endpoint_failure", body, None));
    };

    let (mut parts, body) = response.into_parts();
    let switching = upgrade && parts.status == StatusCode::SWITCHING_PROTOCOLS;
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    headers::add_sticky_cookie(&mut parts.headers, &endpoint.spec.instance_id);
    conn.metrics.observe(parts.status.as_u16(), started.at.elapsed());
    let status = parts.status;
    let mut conn_back = Some(conn_to);
    if switching && let Some(client_upgrade) = client_upgrade {
        let mut backend_response = Response::from_parts(parts.clone(), ());
        let backend_upgrade = hyper::upgrade::on(&mut backend_response);
        let keep = conn_back.take();
        tokio::spawn(async move {
            let _keep = keep;
            if let (Ok(client), Ok(backend)) = tokio::join!(client_upgrade, backend_upgrade) {
                let (mut client, mut backend) =
                    (hyper_util::rt::TokioIo::new(client), hyper_util::rt::TokioIo::new(backend));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
            }
        });
    }
    let finish = Finish {
        conn: conn.clone(),
        started,
        status,
        endpoint: Some(endpoint),
        forwarded,
        received,
        sender: conn_back.map(|c| c.sender),
        _guard: Some(guard),
        router_error: None,
    };
    Ok(Response::from_parts(parts, Tracked::new(body, Box::new(finish)).boxed_unsync()))
}

/// Replaces the `X-CF-*` headers naming the instance (a retry may pick another one).
fn set_instance_headers<B>(req: &mut Request<B>, endpoint: &Endpoint) {
    let h = req.headers_mut();
    let spec = &endpoint.spec;
    if let Ok(v) = HeaderValue::from_str(&spec.app_guid) {
        h.insert(X_CF_APPLICATION_ID, v);
    }
    if let Ok(v) = HeaderValue::from_str(&spec.instance_id) {
        h.insert(X_CF_INSTANCE_ID, v);
    }
    h.insert(X_CF_INSTANCE_INDEX, HeaderValue::from(spec.index));
}

fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<RouterBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn status_page(shared: &Shared, path: &str) -> Option<Response<RouterBody>> {
    match path {
        "/health" => Some(plain(StatusCode::OK, "ok\n")),
        "/metrics" => {
            let mut response = plain(StatusCode::OK, shared.render_metrics());
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
            Some(response)
        }
        _ => None,
    }
}

fn router_error(
    conn: &Arc<ConnInfo>,
    started: Started,
    status: StatusCode,
    code: &'static str,
    body: String,
    endpoint: Option<Arc<Endpoint>>,
) -> Response<RouterBody> {
    conn.metrics.observe(status.as_u16(), started.at.elapsed());
    let mut response = plain(status, body);
    response.headers_mut().insert(X_CF_ROUTER_ERROR, HeaderValue::from_static(code));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    let finish = Finish {
        conn: conn.clone(),
        started,
        status,
        endpoint,
        forwarded: Forwarded::default(),
        received: Arc::new(AtomicU64::new(0)),
        sender: None,
        _guard: None,
        router_error: Some(code),
    };
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Tracked::new(body, Box::new(finish)).boxed_unsync())
}

/// The forwarding headers as sent to the endpoint, for the access record.
#[derive(Default)]
struct Forwarded {
    request_id: Option<String>,
    forwarded_for: Option<String>,
    forwarded_proto: Option<String>,
}

/// The end of a request: its access record, its endpoint's in-flight count, its connection.
struct Finish {
    conn: Arc<ConnInfo>,
    started: Started,
    status: StatusCode,
    endpoint: Option<Arc<Endpoint>>,
    forwarded: Forwarded,
    received: Arc<AtomicU64>,
    sender: Option<backend::Sender>,
    _guard: Option<crate::table::ActiveGuard>,
    router_error: Option<&'static str>,
}

impl Epilogue for Finish {
    fn finish(self: Box<Self>, bytes_sent: u64, ended: bool) {
        let Finish { conn, started, status, endpoint, forwarded, received, sender, router_error, .. } = *self;
        if ended && let (Some(sender), Some(endpoint)) = (sender, &endpoint) {
            backend::checkin(endpoint.spec.addr, sender, conn.shared.config.max_idle_per_backend);
        }
        let Some(log) = &conn.shared.access_log else { return };
        let spec = endpoint.as_ref().map(|e| &e.spec);
        log.record(crate::access_log::AccessRecord {
            host: started.host,
            started_at: started.wall,
            method: started.method,
            path: started.path,
            protocol: started.protocol,
            status: status.as_u16(),
            bytes_received: received.load(std::sync::atomic::Ordering::Relaxed),
            bytes_sent,
            user_agent: started.user_agent,
            remote_addr: conn.remote,
            backend_addr: spec.map(|s| s.addr),
            x_forwarded_for: forwarded.forwarded_for,
            x_forwarded_proto: forwarded.forwarded_proto,
            vcap_request_id: forwarded.request_id,
            response_time: started.at.elapsed(),
            app_id: spec.map(|s| s.app_guid.clone()),
            app_index: spec.map(|s| s.index),
            instance_id: spec.map(|s| s.instance_id.clone()),
            process_id: spec.map(|s| s.process_guid.clone()),
            router_error,
        });
    }
}
