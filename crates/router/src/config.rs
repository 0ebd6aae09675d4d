//! What the router is told when it starts.

use std::net::SocketAddr;
use std::time::Duration;

use crate::table::Balance;

/// A certificate and key (PEM) for the host names it serves (`*.apps.example.com` allowed).
#[derive(Debug, Clone)]
pub struct CertConfig {
    pub names: Vec<String>,
    pub cert_pem: String,
    pub key_pem: String,
}

/// HTTPS on its own address; the first certificate is also the default when SNI matches none.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    pub certs: Vec<CertConfig>,
}

/// The router's settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Plain HTTP front address (port 0 picks one; see `RouterHandle::http_addr`).
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    /// A plain HTTP address answering only `/health` and `/metrics` (for load balancers
    /// and Prometheus).
    pub status_listen: Option<SocketAddr>,
    /// On the front address, `GET /health` for this host answers 200 too.
    pub health_host: Option<String>,
    /// Hosts served by the fallback service (the platform's API, auth, logs) besides bare IPs.
    pub system_hosts: Vec<String>,
    /// Threads, each with its own single-threaded runtime and `SO_REUSEPORT` listener.
    pub workers: usize,
    pub balance: Balance,
    /// Endpoints tried per request when connecting fails (refused, timed out).
    pub max_attempts: usize,
    pub connect_timeout: Duration,
    /// Idle keep-alive connections kept per backend per worker.
    pub max_idle_per_backend: usize,
    pub idle_timeout: Duration,
    /// How long shutdown waits for in-flight requests before closing connections.
    pub drain_timeout: Duration,
}

impl Default for RouterConfig {
    fn default() -> RouterConfig {
        RouterConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            status_listen: None,
            health_host: None,
            system_hosts: Vec::new(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            balance: Balance::RoundRobin,
            max_attempts: 3,
            connect_timeout: Duration::from_secs(5),
            max_idle_per_backend: 100,
            idle_timeout: Duration::from_secs(90),
            drain_timeout: Duration::from_secs(30),
        }
    }
}
