//! The RLP gateway's stream, `GET /v2/read?log&source_id=…`: server-sent events, one
//! `data: {"batch":[…]}` event per batch of envelopes (lowerCamelCase field names, as the
//! gateway writes them), `event: heartbeat` with the Unix time when nothing was sent for a
//! while, and `event: closing` when the stream times out. A reader that fell behind gets, at
//! the head of its next batch, one envelope per source saying how many it missed (source type
//! `LGR`: a log line if it reads logs, else a `dropped` counter).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::envelope::{Counter, Envelope, EnvelopeType, LogStream, Message, now_nanos, source_type, tag};
use crate::http::{Dialect, Logs, Refusal, bearer};
use crate::query;
use crate::subscribe::{Batch, Sources, Subscription};
use crate::wire::{self, Naming};

pub(crate) async fn stream(
    State(logs): State<Logs>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let token = bearer(Dialect::Gateway, &headers)?;
    let q = query::stream_query(raw.as_deref()).map_err(|q| Refusal::bad_query(Dialect::Gateway, q))?;
    logs.allow(Dialect::Gateway, &token, &q.source_ids).await?;
    let sources = if q.source_ids.is_empty() { Sources::All } else { Sources::Some(q.source_ids) };
    let wants_logs = q.filter.types.contains(&EnvelopeType::Log);
    let subscription = logs.store.subscribe(sources, q.filter).map_err(|e| Refusal::from_error(Dialect::Gateway, e))?;
    let now = Instant::now();
    let state = StreamState {
        subscription,
        wants_logs,
        batch_size: logs.config.batch_size,
        heartbeat: logs.config.heartbeat,
        next_heartbeat: now + logs.config.heartbeat,
        deadline: now + logs.config.stream_timeout,
        closed: false,
    };
    let body = futures_util::stream::unfold(state, |mut s| async move {
        let event = s.next_event().await?;
        Some((Ok::<Bytes, Infallible>(event), s))
    });
    let headers = [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")];
    Ok((headers, Body::from_stream(body)).into_response())
}

struct StreamState {
    subscription: Subscription,
    wants_logs: bool,
    batch_size: usize,
    heartbeat: std::time::Duration,
    next_heartbeat: Instant,
    deadline: Instant,
    closed: bool,
}

impl StreamState {
    async fn next_event(&mut self) -> Option<Bytes> {
        if self.closed {
            return None;
        }
        tokio::select! {
            batch = self.subscription.next_batch(self.batch_size) => {
                self.next_heartbeat = Instant::now() + self.heartbeat;
                Some(self.data_event(batch))
            }
            _ = tokio::time::sleep_until(self.next_heartbeat) => {
                self.next_heartbeat = Instant::now() + self.heartbeat;
                let secs = now_nanos() / 1_000_000_000;
                Some(Bytes::from(format!("event: heartbeat\ndata: {secs}\n\n")))
            }
            _ = tokio::time::sleep_until(self.deadline) => {
                self.closed = true;
                Some(Bytes::from_static(b"event: closing\ndata: closing due to stream timeout\n\n"))
            }
        }
    }

    fn data_event(&self, batch: Batch) -> Bytes {
        let missed: Vec<Envelope> = batch.missed.iter().map(|(id, n)| self.missed_envelope(id, *n)).collect();
        let envelopes = missed.iter().chain(batch.envelopes.iter().map(|e| e.as_ref()));
        let mut event = b"data: ".to_vec();
        event.extend_from_slice(&wire::batch_bytes(envelopes, Naming::Camel));
        event.extend_from_slice(b"\n\n");
        Bytes::from(event)
    }

    fn missed_envelope(&self, source_id: &str, n: u64) -> Envelope {
        let e = if self.wants_logs {
            let text = format!("Dropped {n} envelopes for this reader: it fell behind the stream");
            Envelope::log(source_id, "", LogStream::Err, text)
        } else {
            let mut e = Envelope::log(source_id, "", LogStream::Err, "");
            e.message = Message::Counter(Counter { name: "dropped".into(), delta: n, total: 0 });
            e
        };
        e.with_tag(tag::SOURCE_TYPE, source_type::LOGGREGATOR)
    }
}
