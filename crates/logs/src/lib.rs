//! Hearth's app logs (Loggregator's and log-cache's job): the v2 envelope model (`envelope`) and
//! its JSON (`wire`), a per-source cache with live subscriptions (`store`, `subscribe`), line
//! capture of a process's output (`capture`), container-metric gauges (`metrics`), and the HTTP
//! surface clients read (`http`: log-cache's `/api/v1/read`, `/api/v1/info`, `/api/v1/meta`;
//! `sse`: the RLP gateway's `/v2/read` stream). Authorization comes in through [`Authorize`];
//! the crate knows nothing of the API, the cell or the store of record.

pub mod capture;
pub mod envelope;
pub mod http;
pub mod metrics;
mod query;
mod sse;
pub mod store;
pub mod subscribe;
pub mod wire;

pub use capture::{LineSource, LineSplitter, MAX_LINE_BYTES, capture};
pub use envelope::{Envelope, EnvelopeType, LogStream, Message};
pub use http::{Access, Authorize, HttpConfig, router};
pub use metrics::ContainerMetrics;
pub use store::{ReadRequest, Store, StoreConfig};
pub use subscribe::{Batch, Filter, Sources, Subscription};

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A read or subscription asked for something log-cache would refuse (the message says what).
    #[error("{0}")]
    InvalidRequest(String),
    /// An envelope that cannot be stored.
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    #[error("invalid logs configuration: {0}")]
    InvalidConfig(String),
}
