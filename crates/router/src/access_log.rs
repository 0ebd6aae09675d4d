//! One record per proxied request, with the fields of Gorouter's `RTR` access line; the
//! logs component turns them into envelopes under the app's source id.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// What happened to one request, written when its response body has ended (or was dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRecord {
    pub host: String,
    /// When the request arrived.
    pub started_at: SystemTime,
    pub method: String,
    /// Path and query as the client sent them.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2.0`, …
    pub protocol: String,
    pub status: u16,
    /// Request body bytes read from the client (as far as the backend consumed it).
    pub bytes_received: u64,
    /// Response body bytes sent to the client.
    pub bytes_sent: u64,
    pub user_agent: Option<String>,
    pub remote_addr: SocketAddr,
    /// The endpoint that answered; `None` for 404s, system hosts and failures before any endpoint.
    pub backend_addr: Option<SocketAddr>,
    pub x_forwarded_for: Option<String>,
    pub x_forwarded_proto: Option<String>,
    pub vcap_request_id: Option<String>,
    /// From arrival to the end of the response body.
    pub response_time: Duration,
    pub app_id: Option<String>,
    pub app_index: Option<u32>,
    pub instance_id: Option<String>,
    pub process_id: Option<String>,
    /// `X-Cf-Routererror` when the router answered itself.
    pub router_error: Option<&'static str>,
}

/// Receives access records. Called on the router's worker threads: keep it quick (hand the
/// record to a channel).
pub trait AccessLog: Send + Sync + 'static {
    fn record(&self, record: AccessRecord);
}

impl AccessLog for tokio::sync::mpsc::UnboundedSender<AccessRecord> {
    fn record(&self, record: AccessRecord) {
        let _ = self.send(record);
    }
}
