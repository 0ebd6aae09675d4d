//! Shared fixtures: a real HTTP server on a loopback port serving the logs routes over a fresh
//! store, with an authorizer that knows four tokens: `admin` (everything), `alice` (only
//! `app-a`; other sources are hidden: 404), `bob` (known, allowed nothing: 403), and any other
//! token is not valid (401).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use hearth_logs::{Access, Authorize, Envelope, HttpConfig, LogStream, Store, StoreConfig};

pub struct Server {
    pub base: String,
    pub store: Store,
    pub client: reqwest::Client,
}

pub fn authorizer() -> Arc<dyn Authorize> {
    Arc::new(|token: String, source: Option<String>| async move {
        match (token.as_str(), source.as_deref()) {
            ("admin", _) => Access::Allowed,
            ("alice", Some("app-a")) => Access::Allowed,
            ("alice", _) => Access::NotFound,
            ("bob", _) => Access::Forbidden,
            _ => Access::Unauthenticated,
        }
    })
}

pub async fn start(store_config: StoreConfig, http: HttpConfig) -> Server {
    let store = Store::new(store_config).expect("a valid store config");
    let app = hearth_logs::router(store.clone(), authorizer(), http);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Server { base: format!("http://{addr}"), store, client }
}

pub async fn start_default() -> Server {
    start(StoreConfig::default(), HttpConfig::default()).await
}

impl Server {
    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", format!("bearer {t}"));
        }
        req.send().await.expect("the server answers")
    }

    pub async fn get_json(&self, path: &str, token: &str) -> (u16, serde_json::Value) {
        let resp = self.get(path, Some(token)).await;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text:?}"));
        (status, json)
    }
}

/// A log line of `source` at `ts`.
pub fn line(source: &str, ts: i64, text: &str) -> Envelope {
    Envelope::log(source, "0", LogStream::Out, text).at(ts)
}

/// Decodes a base64 log payload from the JSON.
pub fn payload(envelope: &serde_json::Value) -> String {
    use base64::Engine;
    let b64 = envelope["log"]["payload"].as_str().expect("a log payload");
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
}
