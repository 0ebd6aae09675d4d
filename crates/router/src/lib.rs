//! Hearth's router (Gorouter's job): HTTP/1.1, HTTP/2 over TLS and WebSocket traffic on
//! one front address, routed by `Host` and path prefix to app instances from a route table
//! the scheduler keeps current, with the platform's own service behind system hosts.
//!
//! It knows nothing of the scheduler, the API or the logs component: it is told routes
//! through [`TableHandle`], given the platform's service as a [`Fallback`], and hands one
//! [`AccessRecord`] per request to an [`AccessLog`].

mod access_log;
mod backend;
mod body;
mod config;
mod error;
mod fallback;
mod headers;
mod metrics;
mod proxy;
mod server;
mod table;
mod tls;

pub use access_log::{AccessLog, AccessRecord};
pub use body::{BoxError, RouterBody};
pub use config::{CertConfig, RouterConfig, TlsConfig};
pub use error::RouterError;
pub use fallback::Fallback;
pub use server::{Router, RouterHandle};
pub use table::{Balance, EndpointSpec, Pool, RouteKey, RouteTable, TableHandle};
