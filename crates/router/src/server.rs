//! Starting and stopping the router: one thread per worker, each with a single-threaded
//! tokio runtime and its own `SO_REUSEPORT` listeners on the shared addresses, serving
//! HTTP/1.1 (and HTTP/2 over TLS) with hyper. Shutdown stops accepting at once and lets
//! in-flight requests finish within the drain timeout.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::access_log::AccessLog;
use crate::config::RouterConfig;
use crate::error::RouterError;
use crate::fallback::Fallback;
use crate::metrics::{self, Metrics};
use crate::proxy::{self, ConnInfo, Front};
use crate::table::TableHandle;

const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every worker shares (read-only after start).
pub(crate) struct Shared {
    pub(crate) config: RouterConfig,
    pub(crate) table: TableHandle,
    pub(crate) fallback: Option<Fallback>,
    pub(crate) access_log: Option<Arc<dyn AccessLog>>,
    system_hosts: HashSet<String>,
    workers: Vec<Arc<Metrics>>,
}

impl Shared {
    /// System hosts and bare IP addresses go to the fallback service.
    pub(crate) fn is_system_host(&self, host: &str) -> bool {
        self.system_hosts.contains(host) || host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok()
    }

    pub(crate) fn render_metrics(&self) -> String {
        let table = self.table.snapshot();
        metrics::render(&self.workers, table.route_count(), table.endpoint_count())
    }
}

/// The router, configured; `start` runs it.
pub struct Router {
    config: RouterConfig,
    table: TableHandle,
    fallback: Option<Fallback>,
    access_log: Option<Arc<dyn AccessLog>>,
}

/// A running router: its bound addresses, and a way to wait for it to stop.
pub struct RouterHandle {
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    status_addr: Option<SocketAddr>,
    done: Vec<oneshot::Receiver<()>>,
    shared: Arc<Shared>,
}

impl RouterHandle {
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_addr
    }

    /// The Prometheus text the status address serves.
    pub fn metrics_text(&self) -> String {
        self.shared.render_metrics()
    }

    /// Resolves when every worker has stopped (after the shutdown token fired and the
    /// in-flight requests finished or the drain timeout passed).
    pub async fn stopped(self) {
        for done in self.done {
            let _ = done.await;
        }
    }
}

impl Router {
    pub fn new(config: RouterConfig, table: TableHandle) -> Router {
        Router { config, table, fallback: None, access_log: None }
    }

    /// The table this router reads.
    pub fn table(&self) -> &TableHandle {
        &self.table
    }

    /// The platform's own service for `system_hosts` and bare IP addresses.
    pub fn fallback(mut self, fallback: Fallback) -> Router {
        self.fallback = Some(fallback);
        self
    }

    /// Where access records go.
    pub fn access_log(mut self, log: Arc<dyn AccessLog>) -> Router {
        self.access_log = Some(log);
        self
    }

    /// Binds every address, starts the workers and returns once all are ready to serve.
    /// They run until `shutdown` fires. A bad config or a busy address fails here and
    /// leaves nothing running.
    pub async fn start(self, shutdown: CancellationToken) -> Result<RouterHandle, RouterError> {
        let config = self.config;
        if config.workers == 0 {
            return Err(RouterError::Config("workers must be at least 1".into()));
        }
        let tls = match &config.tls {
            Some(tls) => Some((tls.listen, TlsAcceptor::from(crate::tls::server_config(&tls.certs)?))),
            None => None,
        };
        let http = bind_group(config.listen, config.workers)?;
        let http_addr = local_addr(&http[0], config.listen)?;
        let https = match &tls {
            Some((addr, _)) => Some(bind_group(*addr, config.workers)?),
            None => None,
        };
        let https_addr = match &https {
            Some(group) => Some(local_addr(&group[0], config.listen)?),
            None => None,
        };
        let status = match config.status_listen {
            Some(addr) => Some(bind_group(addr, 1)?),
            None => None,
        };
        let status_addr = match &status {
            Some(group) => Some(local_addr(&group[0], config.listen)?),
            None => None,
        };
        let workers: Vec<Arc<Metrics>> = (0..config.workers).map(|_| Arc::default()).collect();
        let system_hosts = config.system_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        let shared = Arc::new(Shared {
            config,
            table: self.table,
            fallback: self.fallback,
            access_log: self.access_log,
            system_hosts,
            workers: workers.clone(),
        });

        let (mut https, mut status) = (https.map(Vec::into_iter), status.map(Vec::into_iter));
        let mut ready = Vec::new();
        let mut done = Vec::new();
        for (index, http_listener) in http.into_iter().enumerate() {
            let mut listeners = vec![(http_listener, Front::Http)];
            if let Some(l) = https.as_mut().and_then(Iterator::next) {
                listeners.push((l, Front::Https));
            }
            if let Some(l) = status.as_mut().and_then(Iterator::next) {
                listeners.push((l, Front::Status));
            }
            let worker = Worker {
                shared: shared.clone(),
                metrics: workers[index].clone(),
                tls: tls.as_ref().map(|(_, acceptor)| acceptor.clone()),
                shutdown: shutdown.clone(),
            };
            let (ready_tx, ready_rx) = oneshot::channel();
            let (done_tx, done_rx) = oneshot::channel();
            std::thread::Builder::new()
                .name(format!("router-{index}"))
                .spawn(move || worker.run(listeners, ready_tx, done_tx))
                .map_err(|source| RouterError::Worker { index, source })?;
            ready.push(ready_rx);
            done.push(done_rx);
        }
        for (index, r) in ready.into_iter().enumerate() {
            r.await
                .map_err(|_| RouterError::Worker { index, source: std::io::Error::other("the worker exited") })??;
        }
        Ok(RouterHandle { http_addr, https_addr, status_addr, done, shared })
    }
}

fn local_addr(listener: &std::net::TcpListener, asked: SocketAddr) -> Result<SocketAddr, RouterError> {
    listener.local_addr().map_err(|source| RouterError::Listen { addr: asked, source })
}

/// `n` listeners on one address with `SO_REUSEPORT` (port 0: the first picks, the rest follow).
fn bind_group(addr: SocketAddr, n: usize) -> Result<Vec<std::net::TcpListener>, RouterError> {
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n {
        let listener = bind(at).map_err(|source| RouterError::Listen { addr, source })?;
        at = listener.local_addr().map_err(|source| RouterError::Listen { addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

struct Worker {
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
}

impl Worker {
    fn run(
        self,
        listeners: Vec<(std::net::TcpListener, Front)>,
        ready: oneshot::Sender<Result<(), RouterError>>,
        done: oneshot::Sender<()>,
    ) {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(source) => {
                let _ = ready.send(Err(RouterError::Worker { index: 0, source }));
                return;
            }
        };
        let this = Arc::new(self);
        runtime.block_on(async move {
            let mut tasks = Vec::new();
            for (listener, front) in listeners {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(source) => {
                        let _ = ready.send(Err(RouterError::Worker { index: 0, source }));
                        return;
                    }
                };
                tasks.push(tokio::spawn(this.clone().accept_loop(listener, front)));
            }
            let _ = ready.send(Ok(()));
            for task in tasks {
                let _ = task.await;
            }
        });
        // Dropping the runtime ends what is left (open upgrade tunnels).
        drop(runtime);
        let _ = done.send(());
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener, front: Front) {
        let graceful = GracefulShutdown::new();
        let plain = tokio_util::task::TaskTracker::new();
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(60));
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(60));
        loop {
            let (stream, remote) = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!("router accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let info = Arc::new(ConnInfo { shared: self.shared.clone(), metrics: self.metrics.clone(), remote, front });
            let service = service_fn(move |req| proxy::handle(info.clone(), req));
            match (front, &self.tls) {
                (Front::Https, Some(acceptor)) => {
                    let (acceptor, builder, watcher) = (acceptor.clone(), builder.clone(), graceful.watcher());
                    let shutdown = self.shutdown.clone();
                    tokio::spawn(async move {
                        let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                        let stream = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            s = handshake => match s { Ok(Ok(s)) => s, _ => return },
                        };
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                        let _ = watcher.watch(connection).await;
                    });
                }
                _ => {
                    // Plain HTTP is HTTP/1.1 only (as Gorouter): no protocol sniffing on each connection.
                    let connection = http1.serve_connection(TokioIo::new(stream), service).with_upgrades();
                    let shutdown = self.shutdown.clone();
                    plain.spawn(async move {
                        let mut connection = std::pin::pin!(connection);
                        tokio::select! {
                            _ = connection.as_mut() => return,
                            _ = shutdown.cancelled() => {}
                        }
                        connection.as_mut().graceful_shutdown();
                        let _ = connection.await;
                    });
                }
            }
        }
        drop(listener);
        let drain = self.shared.config.drain_timeout;
        plain.close();
        if tokio::time::timeout(drain, async { tokio::join!(graceful.shutdown(), plain.wait()) }).await.is_err() {
            tracing::warn!("router drain timed out after {drain:?}; closing the remaining connections");
        }
    }
}
