//! The router between real clients and real backends on loopback: routing, balancing,
//! retries, Gorouter's errors and headers, sticky sessions, access records, metrics,
//! the platform's fallback service, route removal and graceful shutdown.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Backend, client, config, key, refused_addr, start};
use hearth_router::{Balance, EndpointSpec, Fallback, Router, RouterConfig, TableHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn body(response: reqwest::Response) -> String {
    response.text().await.unwrap()
}

#[tokio::test]
async fn routes_by_host_and_the_longest_path_prefix() {
    let (root, api) = (Backend::start("root").await, Backend::start("api").await);
    let router = start(config()).await;
    router.table.add_endpoint(&key("app.example.com", ""), root.endpoint(0)).unwrap();
    router.table.add_endpoint(&key("app.example.com", "/api"), api.endpoint(0)).unwrap();

    assert_eq!(body(router.get("app.example.com", "/").await).await, "root /");
    assert_eq!(body(router.get("APP.Example.COM:8080", "/x").await).await, "root /x");
    assert_eq!(body(router.get("app.example.com", "/api").await).await, "api /api");
    assert_eq!(body(router.get("app.example.com", "/api/v1/things?q=1").await).await, "api /api/v1/things");
    assert_eq!(body(router.get("app.example.com", "/apis").await).await, "root /apis");
    router.stop().await;
}

#[tokio::test]
async fn round_robin_spreads_requests_evenly() {
    let backends = [Backend::start("a").await, Backend::start("b").await, Backend::start("c").await];
    let router = start(config()).await;
    let route = key("rr.example.com", "");
    router.table.replace(vec![(route, backends.iter().map(|b| b.endpoint(0)).collect())]).unwrap();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let response = router.get("rr.example.com", "/").await;
        *counts.entry(response.headers()["x-backend"].to_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|n| *n == 10), "not an even spread: {counts:?}");
    router.stop().await;
}

#[tokio::test]
async fn least_connection_avoids_the_busy_instance() {
    let (a, b) = (Backend::start("a").await, Backend::start("b").await);
    let router = start(RouterConfig { balance: Balance::LeastConnection, ..config() }).await;
    router.table.replace(vec![(key("lc.example.com", ""), vec![a.endpoint(0), b.endpoint(1)])]).unwrap();
    let url = router.url("/slow?ms=1500");
    let slow = tokio::spawn(async move { client().get(url).header("host", "lc.example.com").send().await });
    while a.in_flight.load(std::sync::atomic::Ordering::SeqCst) + b.in_flight.load(std::sync::atomic::Ordering::SeqCst)
        == 0
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let busy = if a.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 1 { "a" } else { "b" };
    for _ in 0..6 {
        let response = router.get("lc.example.com", "/").await;
        assert_ne!(response.headers()["x-backend"], busy, "a request went to the busy instance");
    }
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.headers()["x-backend"], busy);
    router.stop().await;
}

#[tokio::test]
async fn a_refused_endpoint_is_retried_on_another() {
    let live = Backend::start("live").await;
    let router = start(config()).await;
    let dead = EndpointSpec { addr: refused_addr(), ..Backend::start("dead").await.endpoint(1) };
    router.table.replace(vec![(key("retry.example.com", ""), vec![dead, live.endpoint(0)])]).unwrap();
    for _ in 0..6 {
        let response = router.get("retry.example.com", "/").await;
        assert_eq!(response.status(), 200);
        assert_eq!(body(response).await, "live /");
    }
    let metrics = router.handle.metrics_text();
    let errors: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hearth_router_backend_errors_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(errors >= 3, "refused connections were not counted: {errors}");
    router.stop().await;
}

#[tokio::test]
async fn unknown_routes_get_404_and_unreachable_ones_502_as_gorouter() {
    let mut router = start(config()).await;
    let response = router.get("nowhere.example.com", "/x").await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["x-cf-routererror"], "unknown_route");
    assert_eq!(body(response).await, "404 Not Found: Requested route ('nowhere.example.com') does not exist.\n");
    let record = router.record().await;
    assert_eq!((record.status, record.router_error, record.backend_addr), (404, Some("unknown_route"), None));

    let dead = EndpointSpec { addr: refused_addr(), ..Backend::start("dead").await.endpoint(0) };
    router.table.add_endpoint(&key("down.example.com", ""), dead).unwrap();
    let response = router.get("down.example.com", "/").await;
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["x-cf-routererror"], "endpoint_failure");
    assert_eq!(body(response).await, "502 Bad Gateway: Registered endpoint failed to handle the request.\n");
    router.stop().await;
}

#[tokio::test]
async fn forwarding_and_trace_headers_are_added_and_hop_by_hop_ones_removed() {
    let app = Backend::start("h").await;
    let router = start(config()).await;
    router.table.add_endpoint(&key("h.example.com", ""), app.endpoint(3)).unwrap();
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let response = client()
        .get(router.url("/"))
        .header("host", "h.example.com")
        .header("x-forwarded-for", "10.1.2.3")
        .header("connection", "keep-alive, x-private")
        .header("x-private", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eDp5")
        .header("te", "trailers")
        .header("x-kept", "yes")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let h = app.last_headers();
    assert_eq!(h["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["host"], "h.example.com");
    assert_eq!(h["x-kept"], "yes");
    let start: u64 = h["x-request-start"].to_str().unwrap().parse().unwrap();
    assert!(start >= before && start < before + 5000, "x-request-start {start} is not now ({before})");
    let request_id = h["x-vcap-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
    let trace = h["x-b3-traceid"].to_str().unwrap();
    let span = h["x-b3-spanid"].to_str().unwrap();
    assert_eq!((trace.len(), span.len()), (32, 16));
    assert_eq!(h["traceparent"].to_str().unwrap(), format!("00-{trace}-{span}-01"));
    assert_eq!(h["x-cf-applicationid"], "app-h");
    assert_eq!(h["x-cf-instanceid"], "instance-h");
    assert_eq!(h["x-cf-instanceindex"], "3");
    for gone in ["x-private", "keep-alive", "proxy-authorization", "te"] {
        assert!(!h.contains_key(gone), "{gone} reached the backend");
    }

    // A valid request id from the client is kept.
    let id = "0d6b7a5c-3f0e-4c59-9b0a-7e7d4f2b1a11";
    client().get(router.url("/")).header("host", "h.example.com").header("x-vcap-request-id", id).send().await.unwrap();
    assert_eq!(app.last_headers()["x-vcap-request-id"], id);
    router.stop().await;
}

/// A backend that answers every request with hop-by-hop headers it should not pass on.
async fn raw_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    head.extend_from_slice(&buf[..n]);
                }
                let response = "HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n\
                    Proxy-Authenticate: Basic\r\nX-End: 2\r\nContent-Length: 2\r\n\r\nok";
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn hop_by_hop_headers_of_responses_are_removed() {
    let router = start(config()).await;
    let spec = EndpointSpec { addr: raw_backend().await, ..Backend::start("unused").await.endpoint(0) };
    router.table.add_endpoint(&key("raw.example.com", ""), spec).unwrap();
    let response = router.get("raw.example.com", "/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-end"], "2");
    for gone in ["x-hop", "keep-alive", "proxy-authenticate"] {
        assert!(!response.headers().contains_key(gone), "{gone} reached the client");
    }
    assert_eq!(body(response).await, "ok");
    router.stop().await;
}

#[tokio::test]
async fn sticky_sessions_follow_vcap_id_while_the_instance_is_there() {
    let backends = [Backend::start("s1").await, Backend::start("s2").await, Backend::start("s3").await];
    let router = start(config()).await;
    let route = key("sticky.example.com", "");
    router.table.replace(vec![(route.clone(), backends.iter().map(|b| b.endpoint(0)).collect())]).unwrap();

    let response = router.get("sticky.example.com", "/session").await;
    let name = response.headers()["x-backend"].to_str().unwrap().to_string();
    let cookies: Vec<&str> = response.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap()).collect();
    let expected = format!("__VCAP_ID__=instance-{name}; Path=/; Max-Age=600; HttpOnly");
    assert!(cookies.contains(&expected.as_str()), "{cookies:?}");

    let sticky = |c: reqwest::RequestBuilder| {
        c.header("host", "sticky.example.com").header("cookie", format!("JSESSIONID=s1; __VCAP_ID__=instance-{name}"))
    };
    for _ in 0..9 {
        let response = sticky(client().get(router.url("/"))).send().await.unwrap();
        assert_eq!(response.headers()["x-backend"].to_str().unwrap(), name);
    }
    // Without its instance, the session goes elsewhere.
    assert!(router.table.remove_endpoint(&route, &format!("instance-{name}")));
    let response = sticky(client().get(router.url("/"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_ne!(response.headers()["x-backend"].to_str().unwrap(), name);
    router.stop().await;
}

#[tokio::test]
async fn every_request_leaves_an_access_record() {
    let app = Backend::start("log").await;
    let mut router = start(config()).await;
    router.table.add_endpoint(&key("log.example.com", ""), app.endpoint(2)).unwrap();
    let response = client()
        .post(router.url("/upload?x=1"))
        .header("host", "log.example.com")
        .header("user-agent", "hearth-test")
        .body("hello router")
        .send()
        .await
        .unwrap();
    assert_eq!(body(response).await, "12");
    let r = router.record().await;
    let h = app.last_headers();
    assert_eq!((r.host.as_str(), r.method.as_str(), r.path.as_str()), ("log.example.com", "POST", "/upload?x=1"));
    assert_eq!((r.status, r.protocol.as_str(), r.bytes_received, r.bytes_sent), (200, "HTTP/1.1", 12, 2));
    assert_eq!(r.user_agent.as_deref(), Some("hearth-test"));
    assert_eq!(r.backend_addr, Some(app.addr));
    assert_eq!(r.remote_addr.ip().to_string(), "127.0.0.1");
    assert_eq!(
        (r.app_id.as_deref(), r.app_index, r.instance_id.as_deref()),
        (Some("app-log"), Some(2), Some("instance-log"))
    );
    assert_eq!(r.process_id.as_deref(), Some("process-log"));
    assert_eq!(r.vcap_request_id.as_deref(), h["x-vcap-request-id"].to_str().ok());
    assert_eq!(r.x_forwarded_for.as_deref(), Some("127.0.0.1"));
    assert_eq!(r.x_forwarded_proto.as_deref(), Some("http"));
    assert!(r.response_time < Duration::from_secs(5));
    router.stop().await;
}

#[tokio::test]
async fn health_and_metrics_answer_on_the_status_address_and_health_host() {
    let app = Backend::start("m").await;
    let status_listen = Some("127.0.0.1:0".parse().unwrap());
    let router =
        start(RouterConfig { status_listen, health_host: Some("router.example.com".into()), ..config() }).await;
    router.table.add_endpoint(&key("m.example.com", ""), app.endpoint(0)).unwrap();
    for _ in 0..3 {
        assert_eq!(router.get("m.example.com", "/").await.status(), 200);
    }
    assert_eq!(router.get("gone.example.com", "/").await.status(), 404);
    let status = router.handle.status_addr().unwrap();
    let health = client().get(format!("http://{status}/health")).send().await.unwrap();
    assert_eq!((health.status().as_u16(), body(health).await.as_str()), (200, "ok\n"));
    let health = router.get("router.example.com", "/health").await;
    assert_eq!(health.status(), 200);
    let metrics = body(client().get(format!("http://{status}/metrics")).send().await.unwrap()).await;
    for line in [
        "hearth_router_requests_total{status=\"2xx\"} 3",
        "hearth_router_requests_total{status=\"4xx\"} 1",
        "hearth_router_request_duration_seconds_count 4",
        "hearth_router_unknown_route_total 1",
        "hearth_router_routes 1",
        "hearth_router_endpoints 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "no {line:?} in\n{metrics}");
    }
    router.stop().await;
}

#[tokio::test]
async fn system_hosts_and_bare_ips_reach_the_platforms_service() {
    let app = Backend::start("app").await;
    let platform = axum::Router::new().route("/v3", axum::routing::get(|| async { "platform v3" }));
    let config = RouterConfig { system_hosts: vec!["api.example.com".into()], ..config() };
    let router =
        common::start_with(Router::new(config, TableHandle::new()).fallback(Fallback::from_service(platform))).await;
    router.table.add_endpoint(&key("app.example.com", ""), app.endpoint(0)).unwrap();
    assert_eq!(body(router.get("api.example.com", "/v3").await).await, "platform v3");
    assert_eq!(body(client().get(router.url("/v3")).send().await.unwrap()).await, "platform v3");
    assert_eq!(body(router.get("app.example.com", "/v3").await).await, "app /v3");
    router.stop().await;
}

#[tokio::test]
async fn a_removed_route_lets_its_in_flight_request_finish_and_404s_new_ones() {
    let app = Backend::start("slow").await;
    let router = start(config()).await;
    let route = key("slow.example.com", "");
    router.table.add_endpoint(&route, app.endpoint(0)).unwrap();
    let url = router.url("/slow?ms=800");
    let slow = tokio::spawn(async move { client().get(url).header("host", "slow.example.com").send().await });
    while app.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(router.table.remove_endpoint(&route, "instance-slow"));
    let response = router.get("slow.example.com", "/").await;
    assert_eq!(response.status(), 404);
    let slow = slow.await.unwrap().unwrap();
    assert_eq!(slow.status(), 200);
    assert_eq!(body(slow).await, "slow slow");
    router.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_and_stops_accepting() {
    let app = Backend::start("g").await;
    let router = start(config()).await;
    router.table.add_endpoint(&key("g.example.com", ""), app.endpoint(0)).unwrap();
    let url = router.url("/slow?ms=800");
    let slow = tokio::spawn(async move { client().get(url).header("host", "g.example.com").send().await });
    while app.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let addr = router.addr;
    router.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "the router still accepts connections after shutdown");
    let slow = slow.await.unwrap().unwrap();
    assert_eq!((slow.status().as_u16(), body(slow).await.as_str()), (200, "g slow"));
    tokio::time::timeout(Duration::from_secs(5), router.handle.stopped()).await.expect("the router stopped");
}

#[tokio::test]
async fn a_busy_address_or_no_workers_fail_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = RouterConfig { listen: taken.local_addr().unwrap(), ..config() };
    let result = Router::new(config, TableHandle::new()).start(tokio_util::sync::CancellationToken::new()).await;
    assert!(matches!(result, Err(hearth_router::RouterError::Listen { .. })), "{:?}", result.err());
    let config = RouterConfig { workers: 0, ..common::config() };
    assert!(Router::new(config, TableHandle::new()).start(tokio_util::sync::CancellationToken::new()).await.is_err());
}
