//! Connections to endpoints: each worker thread keeps its own idle HTTP/1.1 keep-alive
//! connections per endpoint address (a thread-local: the worker's runtime is
//! single-threaded, so there is no lock and no sharing). A connection goes back to the
//! pool only after its response body ended.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::Counted;

pub(crate) type ReqBody = Counted<Incoming>;
pub(crate) type Sender = SendRequest<ReqBody>;

thread_local! {
    static IDLE: RefCell<HashMap<SocketAddr, Vec<(Instant, Sender)>>> = RefCell::new(HashMap::new());
}

/// A connection ready for one request; `reused` when it came from the pool.
pub(crate) struct Conn {
    pub(crate) sender: Sender,
    pub(crate) reused: bool,
}

/// Why no connection could be had (nothing was sent).
#[derive(Debug)]
pub(crate) enum ConnectError {
    Io(std::io::Error),
    Timeout,
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "connect: {e}"),
            ConnectError::Timeout => write!(f, "connect: timed out"),
            ConnectError::Handshake(e) => write!(f, "handshake: {e}"),
        }
    }
}

/// An idle pooled connection to `addr` if one is alive, else a new one. A fresh
/// connection is used when `fresh` (upgrades take their connection away).
pub(crate) async fn checkout(
    addr: SocketAddr,
    connect_timeout: Duration,
    idle_timeout: Duration,
    fresh: bool,
) -> Result<Conn, ConnectError> {
    while !fresh && let Some(mut sender) = pop_idle(addr, idle_timeout) {
        if sender.ready().await.is_ok() {
            return Ok(Conn { sender, reused: true });
        }
    }
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ConnectError::Timeout)?
        .map_err(ConnectError::Io)?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) =
        http1::Builder::new().handshake::<_, ReqBody>(TokioIo::new(stream)).await.map_err(ConnectError::Handshake)?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(%addr, "endpoint connection ended: {e}");
        }
    });
    Ok(Conn { sender, reused: false })
}

fn pop_idle(addr: SocketAddr, idle_timeout: Duration) -> Option<Sender> {
    IDLE.with_borrow_mut(|idle| {
        let list = idle.get_mut(&addr)?;
        while let Some((since, sender)) = list.pop() {
            if since.elapsed() < idle_timeout && !sender.is_closed() {
                return Some(sender);
            }
        }
        idle.remove(&addr);
        None
    })
}

/// Returns a connection whose exchange completed; closed ones and extras are dropped.
pub(crate) fn checkin(addr: SocketAddr, sender: Sender, max_idle: usize) {
    if sender.is_closed() {
        return;
    }
    IDLE.with_borrow_mut(|idle| {
        let list = idle.entry(addr).or_default();
        list.retain(|(_, s)| !s.is_closed());
        if list.len() < max_idle {
            list.push((Instant::now(), sender));
        }
    });
}
