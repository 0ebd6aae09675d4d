//! Long-lived and encrypted exchanges through the router: WebSocket upgrades, and TLS
//! with SNI and HTTP/2.

mod common;

use common::{Backend, config, key, start};
use futures_util::{SinkExt, StreamExt};
use hearth_router::{CertConfig, EndpointSpec, RouterConfig, TlsConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A WebSocket echo server (tungstenite's own handshake).
async fn websocket_backend() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else { return };
                while let Some(Ok(message)) = ws.next().await {
                    if message.is_text() || message.is_binary() {
                        let _ = ws.send(message).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_upgrades_are_tunnelled_both_ways() {
    let router = start(config()).await;
    let spec = EndpointSpec { addr: websocket_backend().await, ..Backend::start("ws").await.endpoint(0) };
    router.table.add_endpoint(&key("ws.example.com", ""), spec).unwrap();
    let mut request = format!("ws://{}/echo", router.addr).into_client_request().unwrap();
    request.headers_mut().insert("host", "ws.example.com".parse().unwrap());
    let stream = tokio::net::TcpStream::connect(router.addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async(request, stream).await.expect("the upgrade succeeds");
    assert_eq!(response.status(), 101);
    for i in 0..20 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(format!("hello {i}")));
    }
    let big = vec![7u8; 1 << 20];
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();
    router.stop().await;
}

fn cert(names: &[&str]) -> (CertConfig, reqwest::Certificate) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let made = rcgen::generate_simple_self_signed(names.clone()).unwrap();
    let pem = made.cert.pem();
    let config = CertConfig { names, cert_pem: pem.clone(), key_pem: made.signing_key.serialize_pem() };
    (config, reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
}

#[tokio::test]
async fn tls_picks_the_certificate_by_sni_and_speaks_http2() {
    let app = Backend::start("tls").await;
    let (a, a_root) = cert(&["a.example.com"]);
    let (b, b_root) = cert(&["*.b.example.com"]);
    let tls = TlsConfig { listen: "127.0.0.1:0".parse().unwrap(), certs: vec![a, b] };
    let router = start(RouterConfig { tls: Some(tls), ..config() }).await;
    router.table.add_endpoint(&key("a.example.com", ""), app.endpoint(0)).unwrap();
    router.table.add_endpoint(&key("x.b.example.com", ""), app.endpoint(0)).unwrap();
    let https = router.handle.https_addr().unwrap();

    // Each client trusts one certificate only, so a wrong pick fails verification.
    for (host, root) in [("a.example.com", a_root), ("x.b.example.com", b_root)] {
        let client = reqwest::Client::builder().no_proxy().tls_certs_only([root]).resolve(host, https).build().unwrap();
        let response = client.get(format!("https://{host}:{}/hello", https.port())).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "ALPN did not pick HTTP/2 for {host}");
        assert_eq!(response.text().await.unwrap(), "tls /hello");
        let h = app.last_headers();
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["host"].to_str().unwrap().split(':').next(), Some(host));
    }
    // Plain HTTP still works beside it.
    assert_eq!(router.get("a.example.com", "/plain").await.text().await.unwrap(), "tls /plain");
    router.stop().await;
}

#[tokio::test]
async fn a_bad_certificate_fails_start() {
    let (mut a, _) = cert(&["a.example.com"]);
    let (b, _) = cert(&["b.example.com"]);
    a.key_pem = b.key_pem; // a key that does not match
    let tls = TlsConfig { listen: "127.0.0.1:0".parse().unwrap(), certs: vec![a] };
    let result = hearth_router::Router::new(RouterConfig { tls: Some(tls), ..config() }, Default::default())
        .start(tokio_util::sync::CancellationToken::new())
        .await;
    let error = result.err().expect("a mismatched key is refused").to_string();
    assert!(error.contains("does not match"), "{error}");
    let tls = TlsConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        certs: vec![CertConfig { names: vec!["x".into()], cert_pem: "junk".into(), key_pem: "junk".into() }],
    };
    assert!(
        hearth_router::Router::new(RouterConfig { tls: Some(tls), ..config() }, Default::default())
            .start(tokio_util::sync::CancellationToken::new())
            .await
            .is_err()
    );
}
