//! Bodies that stream through the router: request bodies count their bytes; response
//! bodies count theirs and, when they end or are dropped, run the request's epilogue
//! (access record, in-flight count, keep-alive connection back to the pool).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// Errors a body may carry.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response the router gives.
pub type RouterBody = UnsyncBoxBody<Bytes, BoxError>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> RouterBody {
    http_body_util::Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A client's request body on its way to an endpoint, counting the bytes the endpoint took.
pub(crate) struct Counted<B> {
    pub(crate) inner: B,
    pub(crate) bytes: Arc<AtomicU64>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What runs once a response is over: `ended` tells whether the body reached its end.
pub(crate) trait Epilogue: Send + 'static {
    fn finish(self: Box<Self>, bytes_sent: u64, ended: bool);
}

/// A response body that counts bytes and runs its epilogue exactly once.
pub(crate) struct Tracked<B: Body + Unpin> {
    inner: B,
    sent: u64,
    epilogue: Option<Box<dyn Epilogue>>,
}

impl<B: Body + Unpin> Tracked<B> {
    pub(crate) fn new(inner: B, epilogue: Box<dyn Epilogue>) -> Tracked<B> {
        Tracked { inner, sent: 0, epilogue: Some(epilogue) }
    }

    fn finish(&mut self, ended: bool) {
        if let Some(epilogue) = self.epilogue.take() {
            epilogue.finish(self.sent, ended);
        }
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.len() as u64;
                }
                if self.inner.is_end_stream() {
                    self.finish(true);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.finish(false);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                self.finish(true);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body + Unpin> Drop for Tracked<B> {
    fn drop(&mut self) {
        // An empty body (204, `Content-Length: 0`) may never be polled.
        let ended = self.inner.is_end_stream();
        self.finish(ended);
    }
}
