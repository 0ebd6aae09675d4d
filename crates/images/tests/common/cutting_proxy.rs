//! A TCP proxy in front of a registry that drops the connection in the middle of the first
//! download of one blob from its start, as a flaky network would; or that hides every `Range`
//! header from the registry, as a registry without range support behaves.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct CuttingProxy {
    /// `host:port` to pull from instead of the registry's.
    pub host: String,
    cuts: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// What the proxy does to the traffic it relays.
#[derive(Clone)]
struct Rules {
    /// `/blobs/<digest> `: the blob whose first download from its start is cut.
    path: String,
    /// Response bytes (headers included) that cut download gets.
    keep: usize,
    /// Whether `Range` headers are taken out of requests.
    strip_ranges: bool,
}

impl CuttingProxy {
    /// Forwards to `upstream`; the first GET of `digest` from its start (no range, or a range
    /// from byte 0) gets `keep` bytes of its response (headers included), then its connection
    /// closes.
    pub async fn start(upstream: &str, digest: &str, keep: usize) -> Self {
        let rules = Rules { path: format!("/blobs/{digest} "), keep, strip_ranges: false };
        Self::run(upstream, rules, true).await
    }

    /// Forwards to `upstream` without any `Range` header, so every blob comes whole (200);
    /// nothing is cut.
    pub async fn ignoring_ranges(upstream: &str) -> Self {
        let rules = Rules { path: "/blobs/".into(), keep: 0, strip_ranges: true };
        Self::run(upstream, rules, false).await
    }

    async fn run(upstream: &str, rules: Rules, armed: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_string();
        let (armed, cuts) = (Arc::new(AtomicBool::new(armed)), Arc::new(AtomicUsize::new(0)));
        let counted = cuts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (armed, cuts, rules) = (armed.clone(), counted.clone(), rules.clone());
                tokio::spawn(relay(client, server, armed, cuts, rules));
            }
        });
        Self { host, cuts, task }
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>, cuts: Arc<AtomicUsize>, rules: Rules) {
    let Rules { path, keep, strip_ranges } = rules;
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let cut_here = Arc::new(AtomicBool::new(false));
    let marked = cut_here.clone();
    let requests = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            let from_start = !text.contains("\r\nrange:") || text.contains("\r\nrange: bytes=0-");
            if text.starts_with("get ")
                && text.contains(&path.to_ascii_lowercase())
                && from_start
                && armed.swap(false, Ordering::SeqCst)
            {
                marked.store(true, Ordering::SeqCst);
            }
            let forwarded =
                if strip_ranges && text.starts_with("get ") { without_ranges(&buf[..n]) } else { buf[..n].to_vec() };
            if server_write.write_all(&forwarded).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 16 * 1024];
    let mut sent = 0usize;
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut_here.load(Ordering::SeqCst) {
            let room = keep.saturating_sub(sent).min(n);
            let _ = client_write.write_all(&buf[..room]).await;
            sent += room;
            if sent >= keep {
                cuts.fetch_add(1, Ordering::SeqCst);
                break;
            }
        } else if client_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    requests.abort();
}

/// A request's bytes without its `Range` header lines (a test request's headers arrive in one read).
fn without_ranges(request: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(request);
    let kept: Vec<&str> =
        text.split_inclusive("\r\n").filter(|line| !line.to_ascii_lowercase().starts_with("range:")).collect();
    kept.concat().into_bytes()
}
