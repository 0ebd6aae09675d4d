//! The platform's own HTTP service (API, auth, logs) behind the router, for system hosts
//! and bare IP addresses, so one front address serves the platform and its apps.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::{BoxError, RouterBody, full};

type Call = dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<RouterBody>> + Send>> + Send + Sync;

/// A cloneable handle on any tower service (an axum `Router`, say).
#[derive(Clone)]
pub struct Fallback(Arc<Call>);

impl Fallback {
    /// Wraps a service; its errors become a 502.
    pub fn from_service<S, B>(service: S) -> Fallback
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + Sync + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Fallback(Arc::new(move |req| {
            let mut service = service.clone();
            Box::pin(async move {
                let called = async {
                    std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                    service.call(req).await
                };
                match called.await {
                    Ok(response) => response.map(|b| b.map_err(Into::into).boxed_unsync()),
                    Err(e) => {
                        let e: BoxError = e.into();
                        tracing::warn!("the platform's service failed: {e}");
                        let mut response = Response::new(full("502 Bad Gateway\n"));
                        *response.status_mut() = StatusCode::BAD_GATEWAY;
                        response
                    }
                }
            })
        }))
    }

    pub(crate) fn call(&self, req: Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<RouterBody>> + Send>> {
        (self.0)(req)
    }
}
