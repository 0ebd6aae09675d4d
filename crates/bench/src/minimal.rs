//! The baseline: a trivial axum route on another loopback port that answers fixed
//! bytes, the ceiling any handler returning that body could reach here.

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running minimal server.
pub struct Minimal {
    pub url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Minimal {
    /// Serves `body` with `content_type` at `GET path` on 127.0.0.1.
    pub async fn start(path: &str, content_type: &str, body: Bytes) -> anyhow::Result<Minimal> {
        let content_type = HeaderValue::from_str(content_type).context("the captured content type is invalid")?;
        let router = Router::new().route(
            path,
            get(move || {
                let (content_type, body) = (content_type.clone(), body.clone());
                async move { ([(header::CONTENT_TYPE, content_type)], body) }
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.context("cannot bind the minimal server")?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Minimal { url, stop, task })
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("the minimal server panicked")?.context("the minimal server failed")
    }
}
