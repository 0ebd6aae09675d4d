//! The logged-in HTTP session: sends requests to the API and UAA with the
//! saved token, renews the token when it has expired or the server rejects it,
//! follows pagination and waits for asynchronous jobs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LOCATION};
use serde_json::Value;

use crate::api_error::ApiError;
use crate::config::Config;
use crate::jwt::{Claims, now_secs};
use crate::uaa::{self, Grant};

/// What the user is told when there is no usable token.
pub const NOT_LOGGED_IN: &str = "Not logged in. Use 'hearth login' to log in.";

/// What the user is told when no API is set.
pub const NO_API: &str = "No API endpoint set. Use 'hearth api URL' to set one, or 'hearth login -a URL'.";

/// Renew a token this many seconds before it expires.
const EXPIRY_SKEW_SECS: i64 = 30;

/// How long to wait for an asynchronous job.
const JOB_TIMEOUT: Duration = Duration::from_secs(300);

/// A raw HTTP answer (used by `curl` and by callers that read headers).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub version: reqwest::Version,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    fn into_result(self) -> Result<Self> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(ApiError::from_body(self.status, &String::from_utf8_lossy(&self.body)).into())
        }
    }

    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> Result<Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).context("the server's answer is not JSON")
    }
}

/// One request, kept so it can be sent again after a token refresh.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// The saved config plus an HTTP client configured from it.
pub struct Session {
    pub config: Config,
    path: PathBuf,
    client: reqwest::Client,
}

impl Session {
    /// Loads the config from `$HEARTH_HOME` (or `~/.hearth`).
    pub fn load() -> Result<Self> {
        let path = Config::default_path()?;
        let config = Config::load(&path)?;
        let client = build_client(config.skip_ssl_validation)?;
        Ok(Self { config, path, client })
    }

    /// The HTTP client (honours `--skip-ssl-validation`).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Turns TLS certificate checks off or on for this and later runs.
    pub fn set_skip_ssl_validation(&mut self, skip: bool) -> Result<()> {
        self.config.skip_ssl_validation = skip;
        self.client = build_client(skip)?;
        Ok(())
    }

    /// Writes the config back to disk.
    pub fn save(&self) -> Result<()> {
        self.config.save(&self.path)
    }

    /// The targeted API URL.
    pub fn api(&self) -> Result<String> {
        self.config.api.clone().ok_or_else(|| anyhow!(NO_API))
    }

    /// The UAA URL that issues tokens and serves SCIM.
    pub fn uaa_url(&self) -> Result<String> {
        self.config.uaa_url.clone().ok_or_else(|| anyhow!(NO_API))
    }

    /// Fails with the usual hint unless an API is set and there is a token.
    pub fn require_login(&self) -> Result<()> {
        self.api()?;
        if !self.config.is_logged_in() {
            bail!(NOT_LOGGED_IN);
        }
        Ok(())
    }

    /// The claims of the current access token.
    pub fn claims(&self) -> Claims {
        self.config.access_token.as_deref().and_then(Claims::parse).unwrap_or_default()
    }

    /// The name of whoever is logged in, for progress lines ("as admin").
    pub fn user_name(&self) -> String {
        self.claims().display_name().unwrap_or("unknown user").to_owned()
    }

    /// Stores the tokens of a fresh grant.
    pub fn store_tokens(&mut self, token: uaa::TokenResponse) {
        self.config.access_token = Some(token.access_token);
        self.config.refresh_token = token.refresh_token;
        self.config.token_type = Some(token.token_type.unwrap_or_else(|| "bearer".into()));
    }

    /// Gets a new access token (refresh_token grant, or client_credentials
    /// again for clients) and saves it. Fails with "Not logged in" otherwise.
    pub async fn refresh(&mut self) -> Result<()> {
        let uaa = self.uaa_url()?;
        let token = if self.config.client_credentials {
            let (Some(id), Some(secret)) = (self.config.client_id.clone(), self.config.client_secret.clone()) else {
                bail!(NOT_LOGGED_IN);
            };
            uaa::request_token(&self.client, &uaa, Grant::ClientCredentials { client_id: &id, client_secret: &secret })
                .await
        } else {
            let Some(refresh_token) = self.config.refresh_token.clone() else {
                bail!(NOT_LOGGED_IN);
            };
            uaa::request_token(&self.client, &uaa, Grant::RefreshToken { refresh_token: &refresh_token }).await
        };
        let token = match token {
            Ok(token) => token,
            // The server refused the grant: the login is over.
            Err(e) if e.downcast_ref::<ApiError>().is_some() => bail!(NOT_LOGGED_IN),
            // The server could not be reached: say so, the login may still be fine.
            Err(e) => return Err(e),
        };
        let refresh_token = token.refresh_token.clone().or_else(|| self.config.refresh_token.clone());
        self.store_tokens(token);
        if !self.config.client_credentials {
            self.config.refresh_token = refresh_token;
        }
        self.save()
    }

    /// The `Authorization` header value, renewed first if it has expired.
    pub async fn authorization(&mut self) -> Result<String> {
        if !self.config.is_logged_in() {
            bail!(NOT_LOGGED_IN);
        }
        if self.claims().is_expired(now_secs(), EXPIRY_SKEW_SECS) {
            self.refresh().await?;
        }
        self.config.authorization().ok_or_else(|| anyhow!(NOT_LOGGED_IN))
    }

    /// Sends a request with the token; on a 401 for a rejected token, renews
    /// the token once and sends it again. Any status is returned as is.
    pub async fn send(&mut self, request: &Request) -> Result<Response> {
        let auth = self.authorization().await?;
        let response = self.send_once(request, &auth).await?;
        if response.status == 401 {
            let err = ApiError::from_body(401, &String::from_utf8_lossy(&response.body));
            if err.is_invalid_token() {
                self.refresh().await?;
                let auth = self.authorization().await?;
                return self.send_once(request, &auth).await;
            }
        }
        Ok(response)
    }

    async fn send_once(&self, request: &Request, auth: &str) -> Result<Response> {
        let mut builder = self
            .client
            .request(request.method.clone(), &request.url)
            .header(AUTHORIZATION, auth)
            .header(ACCEPT, "application/json");
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(|e| anyhow!("{}", describe_transport_error(&e)))?;
        let status = response.status().as_u16();
        let version = response.version();
        let headers = response.headers().clone();
        let body = response.bytes().await.context("the server closed the connection")?.to_vec();
        Ok(Response { status, version, headers, body })
    }

    /// Resolves a path against the API (`/v3/orgs`) or keeps an absolute URL.
    pub fn url(&self, path_or_url: &str) -> Result<String> {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            return Ok(path_or_url.to_owned());
        }
        let api = self.api()?;
        let sep = if path_or_url.starts_with('/') { "" } else { "/" };
        Ok(format!("{api}{sep}{path_or_url}"))
    }

    /// Sends a JSON request and fails on a non-2xx answer.
    pub async fn request(&mut self, method: Method, path: &str, body: Option<&Value>) -> Result<Response> {
        let mut headers = Vec::new();
        let body = match body {
            Some(value) => {
                headers.push((CONTENT_TYPE.as_str().to_owned(), "application/json".to_owned()));
                Some(serde_json::to_vec(value).context("cannot encode the request")?)
            }
            None => None,
        };
        let request = Request { method, url: self.url(path)?, headers, body };
        self.send(&request).await?.into_result()
    }

    /// Sends `request` authorised and answers the response with its body still unread
    /// (to be streamed); a non-2xx answer is the API's error.
    async fn send_streaming(&mut self, request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let auth = self.authorization().await?;
        let response = request
            .header(AUTHORIZATION, auth)
            .send()
            .await
            .map_err(|e| anyhow!("{}", describe_transport_error(&e)))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let body = response.text().await.unwrap_or_default();
            return Err(ApiError::from_body(status, &body).into());
        }
        Ok(response)
    }

    /// `POST`s a JSON document and hands each line of the answer to `on_line` as it
    /// arrives (for endpoints that stream progress as JSON lines). Fails on a non-2xx answer.
    pub async fn post_streaming(&mut self, path: &str, body: &Value, mut on_line: impl FnMut(&str)) -> Result<()> {
        let request = self.client.post(self.url(path)?).json(body);
        let mut response = self.send_streaming(request).await?;
        let mut pending = Vec::new();
        while let Some(chunk) = response.chunk().await.context("the server closed the connection")? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                on_line(String::from_utf8_lossy(&line).trim_end());
            }
        }
        if !pending.is_empty() {
            on_line(String::from_utf8_lossy(&pending).trim_end());
        }
        Ok(())
    }

    /// `GET`s a file into `dest` chunk by chunk (never whole in memory), through a temporary
    /// file beside it that is renamed once complete (removed if the transfer fails).
    /// `on_progress` hears the bytes so far and the total, when the server says it. Fails on
    /// a non-2xx answer; answers the bytes written.
    pub async fn download_to(
        &mut self,
        path: &str,
        dest: &std::path::Path,
        mut on_progress: impl FnMut(u64, Option<u64>),
    ) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let request = self.client.get(self.url(path)?);
        let mut response = self.send_streaming(request).await?;
        let total = response.content_length();
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let part = dest.with_file_name(format!(".{name}.part"));
        let written = async {
            let mut file =
                tokio::fs::File::create(&part).await.with_context(|| format!("cannot write {}", part.display()))?;
            let mut written = 0u64;
            on_progress(0, total);
            while let Some(chunk) = response.chunk().await.context("the server closed the connection")? {
                file.write_all(&chunk).await.with_context(|| format!("cannot write {}", part.display()))?;
                written += chunk.len() as u64;
                on_progress(written, total);
            }
            file.sync_all().await.with_context(|| format!("cannot write {}", part.display()))?;
            if let Some(total) = total.filter(|t| *t != written) {
                bail!("the download ended after {written} of {total} bytes; try again");
            }
            tokio::fs::rename(&part, dest).await.with_context(|| format!("cannot write {}", dest.display()))?;
            Ok(written)
        }
        .await;
        if written.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        written
    }

    /// Sends a body of any content type (YAML manifests, multipart uploads) and
    /// fails on a non-2xx answer.
    pub async fn request_raw(
        &mut self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Response> {
        let headers = vec![(CONTENT_TYPE.as_str().to_owned(), content_type.to_owned())];
        let request = Request { method, url: self.url(path)?, headers, body: Some(body) };
        self.send(&request).await?.into_result()
    }

    /// `PATCH` a JSON document and read the answer.
    pub async fn patch(&mut self, path: &str, body: &Value) -> Result<Value> {
        self.request(Method::PATCH, path, Some(body)).await?.json()
    }

    /// `GET` a JSON document.
    pub async fn get(&mut self, path: &str) -> Result<Value> {
        self.request(Method::GET, path, None).await?.json()
    }

    /// `POST` a JSON document and read the answer.
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<Value> {
        self.request(Method::POST, path, Some(body)).await?.json()
    }

    /// `DELETE` a resource and wait for the job the API starts for it.
    pub async fn delete_and_wait(&mut self, path: &str) -> Result<()> {
        let response = self.request(Method::DELETE, path, None).await?;
        if let Some(location) = response.headers.get(LOCATION).and_then(|l| l.to_str().ok()) {
            let location = location.to_owned();
            self.wait_for_job(&location).await?;
        }
        Ok(())
    }

    /// Polls a `/v3/jobs/:guid` until it is COMPLETE (ok) or FAILED (its errors).
    pub async fn wait_for_job(&mut self, location: &str) -> Result<()> {
        let started = Instant::now();
        let mut delay = Duration::from_millis(100);
        loop {
            let job = self.get(location).await?;
            match job.get("state").and_then(Value::as_str) {
                Some("COMPLETE") => return Ok(()),
                Some("FAILED") => {
                    let body = serde_json::to_string(&job).unwrap_or_default();
                    let err = ApiError::from_body(200, &body);
                    let detail = if job.get("errors").is_some_and(|e| e.as_array().is_some_and(|a| !a.is_empty())) {
                        err.to_string()
                    } else {
                        "the job failed without saying why".to_owned()
                    };
                    bail!("Job failed: {detail}");
                }
                _ => {}
            }
            if started.elapsed() > JOB_TIMEOUT {
                bail!(
                    "Timed out waiting for job {location}; it may still finish. Check it with 'hearth curl {location}'."
                );
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Every resource of a V3 list, following `pagination.next.href`.
    pub async fn list(&mut self, path: &str) -> Result<Vec<Value>> {
        Ok(self.list_including(path, "").await?.0)
    }

    /// Every resource of a V3 list and every `included.{kind}` resource
    /// (for `?include=kind`), following `pagination.next.href`.
    pub async fn list_including(&mut self, path: &str, kind: &str) -> Result<(Vec<Value>, Vec<Value>)> {
        let mut resources = Vec::new();
        let mut included = Vec::new();
        let mut next = Some(self.url(path)?);
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = next.take() {
            if !seen.insert(url.clone()) {
                break;
            }
            let page = self.get(&url).await?;
            if let Some(items) = page.get("resources").and_then(Value::as_array) {
                resources.extend(items.iter().cloned());
            }
            if let Some(items) = page.get("included").and_then(|i| i.get(kind)).and_then(Value::as_array) {
                included.extend(items.iter().cloned());
            }
            next = page.pointer("/pagination/next/href").and_then(Value::as_str).map(str::to_owned);
        }
        Ok((resources, included))
    }
}

/// Builds the HTTP client all commands use.
pub fn build_client(skip_ssl_validation: bool) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
        .danger_accept_invalid_certs(skip_ssl_validation)
        .connect_timeout(Duration::from_secs(15))
        .timeout(Duration::from_secs(300))
        .build()
        .context("cannot set up the HTTP client")
}

/// Says what a failed connection means and what to try, without a Debug dump.
pub fn describe_transport_error(err: &reqwest::Error) -> String {
    let mut cause = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let url = err.url().map(|u| u.as_str().to_owned()).unwrap_or_else(|| "the server".into());
    let lower = cause.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        format!(
            "Cannot connect to {url} securely: {cause}. If the server uses a self-signed certificate, run 'hearth api URL --skip-ssl-validation'."
        )
    } else if err.is_timeout() {
        format!("Request to {url} timed out. Check that the server is running and reachable.")
    } else if err.is_connect() {
        let why = if cause.is_empty() { err.to_string() } else { cause };
        format!("Cannot connect to {url}: {why}. Check that the server is running and that 'hearth api' points at it.")
    } else if cause.is_empty() {
        format!("Request to {url} failed: {err}")
    } else {
        format!("Request to {url} failed: {cause}")
    }
}
