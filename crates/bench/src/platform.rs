//! The real platform, in-process on a loopback port with a fresh SQLite data
//! directory, seeded through its own HTTP API as any client would.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::body::Bytes;
use hearth::config::ServerConfig;
use hearth::server::Server;
use reqwest::{Client, Request, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

const ADMIN_PASSWORD: &str = "bench-admin-password";
const ADMIN_CLIENT_SECRET: &str = "bench-client-secret";

/// A running platform and the data directory it owns.
pub struct Platform {
    server: Server,
    data_dir: PathBuf,
    pub url: String,
    http: Client,
}

impl Platform {
    pub async fn start() -> anyhow::Result<Platform> {
        let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos();
        let data_dir = std::env::temp_dir().join(format!("hearth-bench-{}-{stamp:x}", std::process::id()));
        let mut config = ServerConfig::for_dir(&data_dir, None);
        config.admin_password = Some(ADMIN_PASSWORD.into());
        config.admin_client_secret = Some(ADMIN_CLIENT_SECRET.into());
        let server = match Server::start(config).await {
            Ok(server) => server,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&data_dir);
                return Err(e.context("the platform did not start"));
            }
        };
        let url = server.url.clone();
        let platform = Platform { server, data_dir, url, http: Client::builder().no_proxy().build()? };
        if !platform.server.addr.ip().is_loopback() {
            let addr = platform.server.addr;
            platform.stop().await?;
            bail!("the platform listens on {addr}, not on loopback");
        }
        Ok(platform)
    }

    /// Stops the platform and removes its data directory.
    pub async fn stop(self) -> anyhow::Result<()> {
        let stopped = self.server.stop().await;
        std::fs::remove_dir_all(&self.data_dir)
            .with_context(|| format!("cannot remove {}", self.data_dir.display()))?;
        stopped
    }

    /// `POST /oauth/token`, password grant for `admin` through the public `cf` client.
    pub fn password_grant(&self) -> anyhow::Result<Request> {
        Ok(self
            .http
            .post(format!("{}/oauth/token", self.url))
            .basic_auth("cf", Some(""))
            .form(&[("grant_type", "password"), ("username", "admin"), ("password", ADMIN_PASSWORD)])
            .build()?)
    }

    /// `POST /oauth/token`, client_credentials grant for the `admin` client.
    pub fn client_credentials_grant(&self) -> anyhow::Result<Request> {
        Ok(self
            .http
            .post(format!("{}/oauth/token", self.url))
            .basic_auth("admin", Some(ADMIN_CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials")])
            .build()?)
    }

    /// A `GET` of `path` (with its query) carrying `token`.
    pub fn get(&self, path: &str, token: &str) -> anyhow::Result<Request> {
        Ok(self.http.get(format!("{}{path}", self.url)).bearer_auth(token).build()?)
    }

    /// As [`Platform::get`], asking for an answer built afresh (`Cache-Control: no-cache`).
    pub fn get_fresh(&self, path: &str, token: &str) -> anyhow::Result<Request> {
        let url = format!("{}{path}", self.url);
        Ok(self.http.get(url).bearer_auth(token).header(reqwest::header::CACHE_CONTROL, "no-cache").build()?)
    }

    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let response = self.http.execute(self.password_grant()?).await?;
        let body = expect(response, StatusCode::OK, "the admin login").await?;
        body["access_token"].as_str().map(str::to_string).context("the token response has no access_token")
    }

    /// Creates one org, one space in it and `apps` apps in that space, `concurrency`
    /// requests at a time; answers how long it took.
    pub async fn seed(&self, token: &str, apps: usize, concurrency: usize) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let org = self.create(token, "/v3/organizations", json!({"name": "bench-org"})).await?;
        let space = self
            .create(
                token,
                "/v3/spaces",
                json!({"name": "bench-space", "relationships": {"organization": {"data": {"guid": org}}}}),
            )
            .await?;
        let next = Arc::new(AtomicUsize::new(0));
        let mut workers = JoinSet::new();
        for _ in 0..concurrency.max(1) {
            let (next, http, url, token, space) =
                (next.clone(), self.http.clone(), self.url.clone(), token.to_string(), space.clone());
            workers.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= apps {
                        return anyhow::Ok(());
                    }
                    let body = json!({
                        "name": format!("bench-app-{i:04}"),
                        "relationships": {"space": {"data": {"guid": space}}},
                    });
                    let response = http.post(format!("{url}/v3/apps")).bearer_auth(&token).json(&body).send().await?;
                    expect(response, StatusCode::CREATED, "creating an app").await?;
                }
            });
        }
        while let Some(result) = workers.join_next().await {
            result.context("a seeding worker panicked")??;
        }
        Ok(started.elapsed())
    }

    async fn create(&self, token: &str, path: &str, body: Value) -> anyhow::Result<String> {
        let response = self.http.post(format!("{}{path}", self.url)).bearer_auth(token).json(&body).send().await?;
        let body = expect(response, StatusCode::CREATED, path).await?;
        body["guid"].as_str().map(str::to_string).with_context(|| format!("POST {path} answered no guid"))
    }

    /// One real response to `request`: its content type and body bytes.
    pub async fn capture(&self, request: Request) -> anyhow::Result<(String, Bytes)> {
        let response = self.http.execute(request).await?;
        ensure!(response.status() == StatusCode::OK, "capturing a response: status {}", response.status());
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_string();
        Ok((content_type, response.bytes().await?))
    }
}

/// The JSON body of a response with the `status` wanted, or an error naming `what`.
async fn expect(response: reqwest::Response, status: StatusCode, what: &str) -> anyhow::Result<Value> {
    let got = response.status();
    let text = response.text().await?;
    ensure!(got == status, "{what}: expected {status}, got {got}: {text}");
    serde_json::from_str(&text).with_context(|| format!("{what}: the body is not JSON"))
}
