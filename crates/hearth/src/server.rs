//! `hearth server`: the whole platform in one process. First start creates the data
//! directory, the database, the signing key and the admin credentials.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use axum::Router;
use base64::Engine;
use hearth_api::{ApiConfig, ApiState};
use hearth_auth::bootstrap::Bootstrap;
use hearth_auth::{Auth, AuthConfig};
use hearth_store::Store;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::runner::{Group, Loop, Ready, Runner};
use hearth_cell::node::Node;
use hearth_cell::{CellConfig, Converger, Rep};
use hearth_router::{Fallback, RouterConfig, RouterHandle, TableHandle};
use hearth_scheduler::persist::SchedulerStore;
use hearth_scheduler::{Config as SchedulerConfig, Resources, SystemClock};

/// The admin credentials as kept in the data directory (owner-only).
#[derive(Serialize, Deserialize)]
struct Credentials {
    admin_username: String,
    admin_password: String,
    admin_client_id: String,
    admin_client_secret: String,
}

const CREDENTIALS_FILE: &str = "admin-credentials.toml";

fn generate_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 18]>())
}

/// Writes `text` to `path`, readable by its owner only.
pub(crate) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// A running platform.
pub struct Server {
    pub addr: SocketAddr,
    /// The HTTPS address, when TLS is configured.
    pub https_addr: Option<SocketAddr>,
    pub url: String,
    pub admin_password: String,
    pub admin_client_secret: String,
    /// Whether this start created the platform (first start).
    pub first_start: bool,
    pub store: Store,
    pub auth: Auth,
    /// This machine's containers and images, or why there are none.
    pub node: Result<Arc<Node>, Arc<str>>,
    /// Desired and actual LRPs, tasks and cells.
    pub scheduler: SchedulerStore,
    /// Where cells on other machines connect, and the token they join with.
    pub cell_endpoint: Option<(SocketAddr, String)>,
    shutdown: CancellationToken,
    group: Group,
}

impl Server {
    pub async fn start(config: ServerConfig) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the data directory {}", config.data_dir.display()))?;
        std::fs::set_permissions(&config.data_dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", config.data_dir.display()))?;
        let creds_path = config.data_dir.join(CREDENTIALS_FILE);
        let saved: Option<Credentials> = match std::fs::read_to_string(&creds_path) {
            Ok(text) => Some(toml::from_str(&text).with_context(|| format!("{} is corrupt", creds_path.display()))?),
            Err(_) => None,
        };
        let admin_password = config
            .admin_password
            .clone()
            .or_else(|| saved.as_ref().map(|c| c.admin_password.clone()))
            .unwrap_or_else(generate_secret);
        let admin_client_secret = config
            .admin_client_secret
            .clone()
            .or_else(|| saved.as_ref().map(|c| c.admin_client_secret.clone()))
            .unwrap_or_else(generate_secret);

        let store = Store::open(&config.database_url).await.context("cannot open the database")?;
        let listen = tokio::net::lookup_host(&config.listen)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .with_context(|| format!("cannot resolve the listen address {}", config.listen))?;
        // The router is the front address: apps by `Host`, the platform (below, once built)
        // for its own host names and bare IP addresses.
        let shutdown = CancellationToken::new();
        let stop_on_error = shutdown.clone().drop_guard();
        let table = TableHandle::new();
        let logs = hearth_logs::Store::new(hearth_logs::StoreConfig::default()).context("cannot set up app logs")?;
        let platform = Arc::new(OnceLock::new());
        let front = hearth_router::Router::new(router_config(&config, listen), table.clone())
            .fallback(Fallback::from_service(OnMainRuntime {
                runtime: tokio::runtime::Handle::current(),
                app: platform.clone(),
            }))
            .access_log(Arc::new(crate::routing::AccessLines(logs.clone())));
        let front = front
            .start(shutdown.clone())
            .await
            .with_context(|| format!("cannot listen on {} (is another server running? use --listen)", config.listen))?;
        let addr = front.http_addr();
        let https_addr = front.https_addr();
        let url = match &config.external_url {
            Some(u) => u.clone(),
            None if addr.ip().is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
            None => format!("http://{addr}"),
        };

        let mut auth_config = AuthConfig::new(&url);
        auth_config.access_token_validity_secs = config.access_token_validity_secs;
        auth_config.refresh_token_validity_secs = config.refresh_token_validity_secs;
        let auth = Auth::new(store.clone(), auth_config).await.context("cannot load the signing keys")?;
        let (_, first_start) = auth
            .bootstrap(&Bootstrap { admin_password: &admin_password, admin_client_secret: &admin_client_secret })
            .await
            .context("cannot create the admin user")?;
        if first_start || saved.is_none() {
            let creds = Credentials {
                admin_username: "admin".into(),
                admin_password: admin_password.clone(),
                admin_client_id: "admin".into(),
                admin_client_secret: admin_client_secret.clone(),
            };
            write_private(&creds_path, &toml::to_string(&creds)?)?;
        }
        let api_config =
            ApiConfig { external_url: url.clone(), app_domain: config.app_domain.clone(), limits: config.limits };
        hearth_api::seed(&store, &api_config).await.context("cannot create the platform's first resources")?;
        let scheduler = SchedulerStore::new(store.clone(), Arc::new(SystemClock));
        let node = match &config.node {
            Some(node_config) => match Node::open(node_config).await {
                Ok(node) => Ok(Arc::new(node)),
                Err(e) => {
                    tracing::warn!("no containers on this machine: {e:#}");
                    Err(Arc::from(format!("{e:#}")))
                }
            },
            None => Err(Arc::from("containers are turned off (--no-containers)")),
        };
        let puller = match &node {
            Ok(node) => node.puller().clone(),
            Err(_) => {
                let dir = config.data_dir.join("image-configs");
                let images = hearth_images::Store::open(&dir).context("cannot open the image config cache")?;
                hearth_images::Puller::new(images, registry_config(&config))
            }
        };
        let routes_changed = Arc::new(tokio::sync::Notify::new());
        let blobs = hearth_blobstore::BlobStore::open(&config.blobstore).context("cannot open the blobstore")?;
        let droplet_blobs = blobs.clone();
        let api_state = ApiState {
            store: store.clone(),
            auth: auth.clone(),
            config: Arc::new(api_config),
            scheduler: scheduler.clone(),
            images: Some(Arc::new(crate::routing::RegistryInspector(puller))),
            routes_changed: routes_changed.clone(),
            logs: logs.clone(),
            blobs,
            work_dir: config.data_dir.join("tmp"),
            stager: node.as_ref().ok().map(|node| {
                Arc::new(crate::staging::CellStager {
                    scheduler: scheduler.clone(),
                    node: node.clone(),
                    work_dir: config.data_dir.join("tmp"),
                    timeout: config.staging_timeout,
                }) as Arc<dyn hearth_api::Stager>
            }),
            answers: hearth_api::Answers::default(),
        };
        match hearth_api::fail_interrupted_builds(&store, &scheduler).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(builds = n, "failed the builds a stop interrupted while they staged"),
            Err(e) => tracing::warn!(error = ?e, "could not fail the builds a stop interrupted"),
        }
        hearth_api::install_builtin_buildpacks(&api_state)
            .await
            .map_err(|e| anyhow::anyhow!("cannot install the built-in buildpacks: {e:?}"))?;
        let log_endpoints = hearth_logs::router(
            logs.clone(),
            Arc::new(hearth_api::LogAccess(api_state.clone())),
            hearth_logs::HttpConfig::default(),
        );
        let api = hearth_api::router(api_state);
        let ops = crate::ops::router(crate::ops::OpsState { auth: auth.clone(), node: node.clone() });
        let router = hearth_auth::http::router(auth.clone()).merge(log_endpoints).merge(api).merge(ops);
        let _ = platform.set(router);

        let mut group = Group::new(shutdown.clone());
        group.spawn(Box::new(HttpFront { front }));
        let (table_store, table_scheduler) = (store.clone(), scheduler.clone());
        group.spawn(Loop::new("routes", move |shutdown| {
            crate::routing::run(table_store, table_scheduler, table, routes_changed, shutdown)
        }));
        let converger = Converger::new(scheduler.clone(), SchedulerConfig::default());
        let cell_endpoint = match &config.cell_listen {
            Some(listen) => {
                let authority = Arc::new(crate::cells::pki::Authority::open(&config.data_dir.join("cells"))?);
                let token = authority.join_token();
                let state = crate::cells::endpoint::EndpointState {
                    authority,
                    scheduler: scheduler.clone(),
                    converger: converger.clone(),
                    logs: logs.clone(),
                    droplets: Arc::new(crate::droplets::BlobDroplets {
                        store: store.clone(),
                        blobs: droplet_blobs.clone(),
                    }),
                    blobs: droplet_blobs.clone(),
                    work_dir: config.data_dir.join("tmp"),
                };
                Some((crate::cells::endpoint::start(state, listen, shutdown.clone()).await?, token))
            }
            None => None,
        };
        if let Ok(node) = &node
            && config.local_cell
        {
            let cell = Rep::start(cell_config(node), node.clone(), scheduler.clone())
                .await
                .context("cannot start this machine's cell")?;
            cell.send_output_to(logs.clone());
            cell.fetch_droplets_from(Arc::new(crate::droplets::BlobDroplets {
                store: store.clone(),
                blobs: droplet_blobs.clone(),
            }));
            cell.stage_with(Arc::new(crate::staging::BlobStagingBits {
                blobs: droplet_blobs.clone(),
                limits: config.limits.stored_archive(),
            }));
            converger.add_cell(cell.clone());
            // Heartbeats while the server runs; its instances keep running when the server
            // stops and are taken up again on the next start.
            group.spawn(Loop::new("cell", move |shutdown| async move { cell.heartbeat(shutdown).await }));
        }
        // Converge and auction on every change and every 30 s.
        group.spawn(Loop::new("scheduler", move |shutdown| async move { converger.run(shutdown).await }));
        // Instance crashes become the apps' `audit.app.process.crash` events.
        let (crash_store, crash_scheduler) = (store.clone(), scheduler.clone());
        group.spawn(Loop::new("crash-events", move |shutdown| {
            hearth_api::record_crashes(crash_store, crash_scheduler, shutdown)
        }));
        // CC tasks follow the scheduler's (RUNNING, SUCCEEDED, FAILED).
        let (task_store, task_scheduler) = (store.clone(), scheduler.clone());
        group.spawn(Loop::new("task-states", move |shutdown| {
            hearth_api::follow_tasks(task_store, task_scheduler, shutdown)
        }));
        group.ready().await?;
        stop_on_error.disarm();
        Ok(Server {
            addr,
            https_addr,
            url,
            admin_password,
            admin_client_secret,
            first_start,
            store,
            auth,
            node,
            scheduler,
            cell_endpoint,
            shutdown,
            group,
        })
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Asks every runner to stop and waits until they have.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the platform stops (shutdown asked or a runner failed).
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.group.wait().await;
        self.store.close().await;
        result
    }
}

/// The one front address: the router (apps by `Host`; API, auth and operators'
/// endpoints for the platform's own hosts). It runs until the shutdown token fires.
struct HttpFront {
    front: RouterHandle,
}

impl Runner for HttpFront {
    fn name(&self) -> &'static str {
        "http"
    }

    fn run(
        self: Box<Self>,
        ready: Ready,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> {
        Box::pin(async move {
            ready.signal();
            shutdown.cancelled().await;
            self.front.stopped().await;
            Ok(())
        })
    }
}

/// The platform's service, run on the main runtime: the router's workers only forward
/// to it, so API work (hashing passwords, database calls, staging) never holds up a
/// worker that proxies app traffic. Until the platform is built it answers 503.
#[derive(Clone)]
struct OnMainRuntime {
    runtime: tokio::runtime::Handle,
    app: Arc<OnceLock<Router>>,
}

impl tower_service::Service<axum::http::Request<hyper::body::Incoming>> for OnMainRuntime {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<hyper::body::Incoming>) -> Self::Future {
        use axum::response::IntoResponse;
        let app = self.app.get().cloned();
        let runtime = self.runtime.clone();
        Box::pin(async move {
            let Some(mut app) = app else {
                return Ok((axum::http::StatusCode::SERVICE_UNAVAILABLE, "the platform is starting\n").into_response());
            };
            let req = req.map(axum::body::Body::new);
            let handled = runtime.spawn(async move { tower_service::Service::call(&mut app, req).await });
            Ok(match handled.await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(e) => {
                    tracing::error!(error = %e, "an API request's task failed");
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            })
        })
    }
}

/// The router's settings: the front address, the platform's own host names.
fn router_config(config: &ServerConfig, listen: SocketAddr) -> RouterConfig {
    let mut system_hosts = vec!["localhost".to_string()];
    for name in ["api", "login", "uaa", "log-cache", "log-stream", "doppler"] {
        system_hosts.push(format!("{name}.{}", config.app_domain));
    }
    if let Some(host) = config.external_url.as_deref().and_then(|u| u.split("://").nth(1)) {
        let host = host.split('/').next().unwrap_or(host);
        let host =
            host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
        system_hosts.push(host.to_ascii_lowercase());
    }
    RouterConfig { listen, system_hosts, tls: config.tls.clone(), ..RouterConfig::default() }
}

fn registry_config(config: &ServerConfig) -> hearth_images::RegistryConfig {
    hearth_images::RegistryConfig {
        insecure_registries: config.node.as_ref().map(|n| n.insecure_registries.clone()).unwrap_or_default(),
        ..hearth_images::RegistryConfig::default()
    }
}

/// This machine as a cell: its memory, the free disk under the node directory, and room
/// for 256 containers; named after the host.
pub fn cell_config(node: &Node) -> CellConfig {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(4 << 20);
    let disk_mb = rustix::fs::statvfs(node.dir()).map(|s| s.f_bavail * s.f_frsize / (1 << 20)).unwrap_or(16 << 10);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "localhost".into());
    let mut cell = CellConfig::new(
        format!("cell-{}", host.trim()),
        Resources { memory_mb: memory_kb / 1024, disk_mb, containers: 256 },
    );
    if node.is_rootless() {
        // Instances sit behind pasta's host port forwards: the router dials 127.0.0.1:HOST_PORT.
        cell.advertise_address = Some(std::net::IpAddr::from([127, 0, 0, 1]));
    }
    cell
}
