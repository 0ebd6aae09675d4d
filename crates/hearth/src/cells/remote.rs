//! A cell on another machine (`hearth server --roles cell --join URL --token T`): joins
//! the server (trusting only the CA the token names), keeps its certificate under the node
//! directory, and runs the same `Rep` as the server's own cell with the scheduler reached
//! over mutual TLS: calls as JSON, commands as a stream it reads (reconnecting, and
//! catching up from the store after a gap), its instances' output shipped in batches,
//! droplets downloaded when missing. SIGTERM drains it: its instances start elsewhere
//! first, then it exits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hearth_cell::rep::{BoxFuture, DropletSource};
use hearth_cell::staging_task::{Bits, StagingBits, StoredDroplet};
use hearth_cell::{CellHandle, Command, Rep, SchedulerLink};
use hearth_scheduler::{ActualLrp, ActualLrpEvent, ActualLrpKey, Cell, CellEvent, DesiredLrp, Result, Task, TaskEvent};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_util::sync::CancellationToken;

use super::pki::{self, Issued, SERVER_NAME};
use super::wire::{Call, Reply, Shipped, reply_error};

/// Checks the server's certificate against the cell CA for [`SERVER_NAME`], whatever
/// address the cell dialled.
#[derive(Debug)]
struct CellCaVerifier(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for CellCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from(SERVER_NAME).expect("a valid name");
        self.0.verify_server_cert(end_entity, intermediates, &name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// An HTTPS client that trusts only the cell CA, presenting `identity` when given.
fn client(ca_pem: &str, identity: Option<&Issued>) -> anyhow::Result<reqwest::Client> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki::pem_to_der(ca_pem)?.into())?;
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(CellCaVerifier(inner)));
    let config = match identity {
        Some(id) => {
            let cert = CertificateDer::from(pki::pem_to_der(&id.cert_pem)?);
            let key = rustls::pki_types::PrivateKeyDer::try_from(pki::pem_block_der(&id.key_pem, "PRIVATE KEY")?)
                .map_err(|e| anyhow::anyhow!("the cell key: {e}"))?;
            builder.with_client_auth_cert(vec![cert], key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .connect_timeout(Duration::from_secs(5))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()?)
}

/// Joins `url` with `token` as `cell_id` (or takes up the identity kept in `dir` from an
/// earlier join) and answers a client that presents it.
pub async fn join(url: &str, token: &str, cell_id: &str, dir: &Path) -> anyhow::Result<reqwest::Client> {
    let (pinned, secret) = pki::parse_token(token)?;
    let kept = dir.join("identity.json");
    if let Ok(text) = std::fs::read_to_string(&kept) {
        let issued: Issued = serde_json::from_str(&text).context("the kept cell identity is corrupt")?;
        if pki::sha256_hex(&pki::pem_to_der(&issued.ca_pem)?) == pinned {
            return client(&issued.ca_pem, Some(&issued));
        }
    }
    // The CA comes over a connection not yet trusted; the token's fingerprint decides.
    let insecure = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let ca_pem = insecure
        .get(format!("{url}/v1/ca"))
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the server's cell endpoint at {url} (is it started with --cell-listen?)")
        })?
        .error_for_status()?
        .text()
        .await?;
    anyhow::ensure!(
        pki::sha256_hex(&pki::pem_to_der(&ca_pem)?) == pinned,
        "the server at {url} is not the one the token names (its CA differs): check the URL and the token"
    );
    let response = client(&ca_pem, None)?
        .post(format!("{url}/v1/join"))
        .json(&serde_json::json!({ "cell_id": cell_id, "secret": secret }))
        .send()
        .await?;
    if !response.status().is_success() {
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        anyhow::bail!(
            "the server refused the join ({status}): {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    let issued: Issued = response.json().await?;
    std::fs::create_dir_all(dir)?;
    crate::server::write_private(&kept, &serde_json::to_string(&issued)?)?;
    client(&issued.ca_pem, Some(&issued))
}

/// The scheduler over HTTP.
#[derive(Clone)]
pub struct RemoteScheduler {
    pub http: reqwest::Client,
    pub url: String,
}

impl RemoteScheduler {
    async fn call(&self, call: Call) -> Result<Reply> {
        let unreachable = |e: String| hearth_scheduler::Error::Invalid { what: "the scheduler".into(), why: e };
        let response = self
            .http
            .post(format!("{}/v1/scheduler", self.url))
            .timeout(Duration::from_secs(30))
            .json(&call)
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(unreachable(format!("{status}: {body}")));
        }
        match response.json::<Reply>().await.map_err(|e| unreachable(e.to_string()))? {
            Reply::Error { kind, message, what, expected } => Err(reply_error(&kind, message, what, expected)),
            reply => Ok(reply),
        }
    }
}

fn unexpected<T>(reply: Reply) -> Result<T> {
    Err(hearth_scheduler::Error::Invalid { what: "the scheduler's answer".into(), why: format!("{reply:?}") })
}

impl SchedulerLink for RemoteScheduler {
    fn register_cell(&self, cell: Cell) -> BoxFuture<'_, Result<Cell>> {
        Box::pin(async move {
            match self.call(Call::RegisterCell { cell }).await? {
                Reply::Cell(c) => Ok(c),
                other => unexpected(other),
            }
        })
    }

    fn change_cell<'a>(&'a self, id: &'a str, event: CellEvent) -> BoxFuture<'a, Result<Cell>> {
        Box::pin(async move {
            match self.call(Call::ChangeCell { id: id.into(), event }).await? {
                Reply::Cell(c) => Ok(c),
                other => unexpected(other),
            }
        })
    }

    fn desired_lrp<'a>(&'a self, process_guid: &'a str) -> BoxFuture<'a, Result<Option<DesiredLrp>>> {
        Box::pin(async move {
            match self.call(Call::DesiredLrp { process_guid: process_guid.into() }).await? {
                Reply::Desired(d) => Ok(d),
                other => unexpected(other),
            }
        })
    }

    fn actual_lrp<'a>(&'a self, key: &'a ActualLrpKey) -> BoxFuture<'a, Result<Option<ActualLrp>>> {
        Box::pin(async move {
            match self.call(Call::ActualLrp { key: key.clone() }).await? {
                Reply::Actual(a) => Ok(a),
                other => unexpected(other),
            }
        })
    }

    fn actual_lrps_on_cell<'a>(&'a self, cell_id: &'a str) -> BoxFuture<'a, Result<Vec<ActualLrp>>> {
        Box::pin(async move {
            match self.call(Call::ActualLrpsOnCell { cell_id: cell_id.into() }).await? {
                Reply::Actuals(a) => Ok(a),
                other => unexpected(other),
            }
        })
    }

    fn change_actual<'a>(
        &'a self,
        key: &'a ActualLrpKey,
        event: ActualLrpEvent,
    ) -> BoxFuture<'a, Result<Option<ActualLrp>>> {
        Box::pin(async move {
            match self.call(Call::ChangeActual { key: key.clone(), event: event.into() }).await? {
                Reply::Actual(a) => Ok(a),
                other => unexpected(other),
            }
        })
    }

    fn task<'a>(&'a self, guid: &'a str) -> BoxFuture<'a, Result<Option<Task>>> {
        Box::pin(async move {
            match self.call(Call::Task { guid: guid.into() }).await? {
                Reply::Task(t) => Ok(t),
                other => unexpected(other),
            }
        })
    }

    fn tasks_on_cell<'a>(&'a self, cell_id: &'a str) -> BoxFuture<'a, Result<Vec<Task>>> {
        Box::pin(async move {
            match self.call(Call::TasksOnCell { cell_id: cell_id.into() }).await? {
                Reply::Tasks(t) => Ok(t),
                other => unexpected(other),
            }
        })
    }

    fn change_task<'a>(&'a self, guid: &'a str, event: TaskEvent) -> BoxFuture<'a, Result<Option<Task>>> {
        Box::pin(async move {
            match self.call(Call::ChangeTask { guid: guid.into(), event }).await? {
                Reply::Task(t) => Ok(t),
                other => unexpected(other),
            }
        })
    }
}

/// Droplets from the server's blobstore.
struct RemoteDroplets(RemoteScheduler);

impl DropletSource for RemoteDroplets {
    fn fetch<'a>(&'a self, layer: &'a str, dest: &'a Path) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            use tokio::io::AsyncWriteExt;
            let mut response =
                self.0.http.get(format!("{}/v1/droplets/{layer}", self.0.url)).send().await?.error_for_status()?;
            let mut file = tokio::fs::File::create(dest).await?;
            while let Some(chunk) = response.chunk().await? {
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
            Ok(())
        })
    }
}

/// Staging's bits from and to the server's blobstore.
struct RemoteStagingBits(RemoteScheduler);

/// The staging bits a cell on another machine uses, over `http` (a joined client) at `url`.
pub fn staging_bits(http: reqwest::Client, url: &str) -> Arc<dyn StagingBits> {
    Arc::new(RemoteStagingBits(RemoteScheduler { http, url: url.trim_end_matches('/').to_string() }))
}

impl RemoteStagingBits {
    async fn download(&self, path: &str, dest: &Path) -> anyhow::Result<bool> {
        use tokio::io::AsyncWriteExt;
        let mut response = self.0.http.get(format!("{}{path}", self.0.url)).send().await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && path.starts_with("/v1/caches/") {
            return Ok(false);
        }
        if !status.is_success() {
            anyhow::bail!("{path}: {status}: {}", response.text().await.unwrap_or_default());
        }
        let mut file = tokio::fs::File::create(dest).await?;
        while let Some(chunk) = response.chunk().await? {
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        Ok(true)
    }

    async fn upload(&self, method: reqwest::Method, path: &str, file: &Path) -> anyhow::Result<reqwest::Response> {
        let file = tokio::fs::File::open(file).await?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let response = self.0.http.request(method, format!("{}{path}", self.0.url)).body(body).send().await?;
        let status = response.status();
        anyhow::ensure!(status.is_success(), "{path}: {status}: {}", response.text().await.unwrap_or_default());
        Ok(response)
    }
}

impl StagingBits for RemoteStagingBits {
    fn unpack<'a>(&'a self, bits: Bits, key: &'a str, dir: &'a Path) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let kind = match bits {
                Bits::Package => "package",
                Bits::Buildpack => "buildpack",
            };
            let zip = dir.with_extension("zip");
            let fetched = self.download(&format!("/v1/bits/{kind}/{key}"), &zip).await;
            let extracted = match fetched {
                Ok(_) => {
                    let (z, d) = (zip.clone(), dir.to_path_buf());
                    let limits = hearth_blobstore::archive::Limits::DEFAULT;
                    tokio::task::spawn_blocking(move || hearth_blobstore::archive::extract_zip(&z, &d, &limits))
                        .await
                        .map_err(anyhow::Error::from)
                        .and_then(|r| r.map(|_| ()).map_err(anyhow::Error::from))
                }
                Err(e) => Err(e),
            };
            let _ = std::fs::remove_file(&zip);
            extracted
        })
    }

    fn fetch_cache<'a>(&'a self, app_guid: &'a str, dest: &'a Path) -> BoxFuture<'a, anyhow::Result<bool>> {
        Box::pin(async move { self.download(&format!("/v1/caches/{app_guid}"), dest).await })
    }

    fn store_cache<'a>(&'a self, app_guid: &'a str, tgz: &'a Path) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.upload(reqwest::Method::PUT, &format!("/v1/caches/{app_guid}"), tgz).await?;
            Ok(())
        })
    }

    fn store_droplet<'a>(&'a self, tgz: &'a Path) -> BoxFuture<'a, anyhow::Result<StoredDroplet>> {
        Box::pin(async move {
            let response = self.upload(reqwest::Method::POST, "/v1/staged-droplets", tgz).await?;
            let stored: serde_json::Value = response.json().await?;
            Ok(StoredDroplet {
                key: stored["key"].as_str().context("the server answered no droplet key")?.to_string(),
                sha256: stored["sha256"].as_str().context("the server answered no droplet sha256")?.to_string(),
            })
        })
    }
}

/// Ships what the cell's instances write to the server's logs, in batches.
async fn ship_logs(logs: hearth_logs::Store, remote: RemoteScheduler, shutdown: CancellationToken) {
    let Ok(mut subscription) = logs.subscribe(hearth_logs::Sources::All, hearth_logs::Filter::default()) else {
        return;
    };
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => return,
            batch = subscription.next_batch(1000) => batch,
        };
        let shipped: Vec<Shipped> = batch.envelopes.iter().filter_map(|e| Shipped::from_envelope(e)).collect();
        if shipped.is_empty() {
            continue;
        }
        let sent = remote.http.post(format!("{}/v1/logs", remote.url)).json(&shipped).send().await;
        if let Err(e) = sent.and_then(|r| r.error_for_status()) {
            tracing::warn!(error = %e, lines = shipped.len(), "could not ship log lines to the server");
        }
    }
}

/// Reads the command stream and carries the commands out; reconnects after a gap and then
/// catches up from the store (commands sent meanwhile are lost).
async fn follow_commands(rep: Rep, remote: RemoteScheduler, shutdown: CancellationToken) {
    use futures_util::StreamExt;
    loop {
        let connected = remote.http.get(format!("{}/v1/commands", remote.url)).send().await;
        match connected.and_then(|r| r.error_for_status()) {
            Ok(response) => {
                if let Err(e) = rep.reconcile().await {
                    tracing::warn!(error = %e, "catching up with the store failed");
                }
                let mut body = response.bytes_stream();
                let mut pending = Vec::new();
                loop {
                    let chunk = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        // The server writes at least every 10 s.
                        chunk = tokio::time::timeout(Duration::from_secs(30), body.next()) => chunk,
                    };
                    let Ok(Some(Ok(chunk))) = chunk else { break };
                    pending.extend_from_slice(&chunk);
                    while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let line = &line[..line.len() - 1];
                        if line.is_empty() {
                            continue;
                        }
                        match serde_json::from_slice::<Command>(line) {
                            Ok(command) => rep.send(command),
                            Err(e) => tracing::warn!(error = %e, "an unreadable command"),
                        }
                    }
                }
                tracing::warn!("the command stream ended; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot reach the scheduler's command stream; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// How a cell on another machine is set up.
pub struct RemoteCellConfig {
    pub join_url: String,
    pub token: String,
    pub cell: hearth_cell::CellConfig,
    pub node: Arc<hearth_cell::Node>,
    /// Where the cell keeps its identity.
    pub state_dir: PathBuf,
}

/// A running cell on another machine.
pub struct RemoteCell {
    pub rep: Rep,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RemoteCell {
    pub async fn start(config: RemoteCellConfig) -> anyhow::Result<RemoteCell> {
        let url = config.join_url.trim_end_matches('/').to_string();
        let http = join(&url, &config.token, &config.cell.id, &config.state_dir).await?;
        let remote = RemoteScheduler { http, url };
        let rep =
            Rep::start(config.cell, config.node, remote.clone()).await.context("cannot register with the scheduler")?;
        let logs = hearth_logs::Store::new(hearth_logs::StoreConfig { max_per_source: 1000, ..Default::default() })?;
        rep.send_output_to(logs.clone());
        rep.fetch_droplets_from(Arc::new(RemoteDroplets(remote.clone())));
        rep.stage_with(Arc::new(RemoteStagingBits(remote.clone())));
        let shutdown = CancellationToken::new();
        let tasks = vec![
            tokio::spawn(ship_logs(logs, remote.clone(), shutdown.clone())),
            tokio::spawn(follow_commands(rep.clone(), remote.clone(), shutdown.clone())),
            {
                let (rep, shutdown) = (rep.clone(), shutdown.clone());
                tokio::spawn(async move { rep.heartbeat(shutdown).await })
            },
        ];
        Ok(RemoteCell { rep, shutdown, tasks })
    }

    /// Drains: the scheduler starts this cell's instances elsewhere and stops its copies;
    /// returns once none is left (or after `timeout`).
    pub async fn drain(&self, timeout: Duration) -> anyhow::Result<()> {
        self.rep.drain().await?;
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.rep.is_empty().await && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// Stops talking to the scheduler (containers keep running, as the server's own cell's).
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
