//! The router's one error type.

use std::net::SocketAddr;

/// Everything the router library reports to its caller.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("invalid route host {host:?}: {reason}")]
    InvalidHost { host: String, reason: &'static str },
    #[error("invalid route path {path:?}: must be empty or start with '/' and hold no '?', '#' or whitespace")]
    InvalidPath { path: String },
    #[error("invalid endpoint {instance_id:?}: {reason}")]
    InvalidEndpoint { instance_id: String, reason: &'static str },
    #[error("route {route} is listed twice in one table")]
    DuplicateRoute { route: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("invalid router config: {0}")]
    Config(String),
    #[error("invalid TLS certificate for {names:?}: {reason}")]
    Certificate { names: Vec<String>, reason: String },
    #[error("cannot start router worker {index}: {source}")]
    Worker { index: usize, source: std::io::Error },
}
