//! A TCP proxy in front of a registry that drops the connection in the middle of the first
//! full (unranged) download of one blob, as a flaky network would.

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

impl CuttingProxy {
    /// Forwards to `upstream`; the first unranged GET of `digest` gets `keep` bytes of its
    /// response (headers included), then its connection closes.
    pub async fn start(upstream: &str, digest: &str, keep: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let (upstream, path) = (upstream.to_string(), format!("/blobs/{digest} "));
        let (armed, cuts) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicUsize::new(0)));
        let counted = cuts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (armed, cuts, path) = (armed.clone(), counted.clone(), path.clone());
                tokio::spawn(relay(client, server, armed, cuts, path, keep));
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

async fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    path: String,
    keep: usize,
) {
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
            if text.starts_with("get ")
                && text.contains(&path.to_ascii_lowercase())
                && !text.contains("\r\nrange:")
                && armed.swap(false, Ordering::SeqCst)
            {
                marked.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
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
