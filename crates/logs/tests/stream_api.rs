//! The RLP gateway's `/v2/read` over real HTTP, read as server-sent events by a streaming
//! client: batches of camelCase envelopes in order, selectors (types, several sources), heart-
//! beats and the closing event, a slow reader that is told how many envelopes it missed while
//! a fast one on the same source misses none, bad queries (400) and authorization.

mod common;

use std::time::Duration;

use common::{line, start, start_default};
use futures_util::StreamExt;
use hearth_logs::{Envelope, HttpConfig, StoreConfig};
use serde_json::Value;

/// One server-sent event: its `event:` name (empty for plain data) and `data:`.
#[derive(Debug)]
struct Event {
    name: String,
    data: String,
}

struct SseReader {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: Vec<u8>,
}

mod bytes {
    pub use axum::body::Bytes;
}

impl SseReader {
    fn new(resp: reqwest::Response) -> SseReader {
        SseReader { body: Box::pin(resp.bytes_stream()), buf: Vec::new() }
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
                let text = String::from_utf8(raw).expect("events are UTF-8");
                let mut event = Event { name: String::new(), data: String::new() };
                for l in text.lines() {
                    if let Some(v) = l.strip_prefix("event: ") {
                        event.name = v.to_string();
                    } else if let Some(v) = l.strip_prefix("data: ") {
                        event.data = v.to_string();
                    }
                }
                return Some(event);
            }
            let chunk =
                tokio::time::timeout(Duration::from_secs(20), self.body.next()).await.expect("an event in time");
            self.buf.extend_from_slice(&chunk?.ok()?);
        }
    }

    /// The next data event's envelopes (skipping heartbeats).
    async fn next_batch(&mut self) -> Vec<Value> {
        loop {
            let event = self.next().await.expect("the stream is open");
            if event.name.is_empty() {
                let v: Value = serde_json::from_str(&event.data).expect("data is JSON");
                return v["batch"].as_array().expect("a batch").clone();
            }
        }
    }
}

async fn open(s: &common::Server, query: &str, token: &str) -> SseReader {
    let resp = s.get(&format!("/v2/read?{query}"), Some(token)).await;
    assert_eq!(resp.status(), 200, "{query}");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    SseReader::new(resp)
}

async fn wait_for_subscribers(s: &common::Server, n: usize) {
    for _ in 0..200 {
        if s.store.subscriber_count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} subscribers never registered");
}

#[tokio::test]
async fn a_stream_delivers_selected_envelopes_as_camel_case_batches() {
    let s = start_default().await;
    let mut reader = open(&s, "log&source_id=app-a", "alice").await;
    wait_for_subscribers(&s, 1).await;
    s.store.append(Envelope::gauge("app-a", "0", &[("cpu", "percentage", 1.0)])).unwrap();
    s.store.append(line("app-b", 1, "not selected")).unwrap();
    s.store.append(line("app-a", 5, "first").with_tag("source_type", "APP/PROC/WEB")).unwrap();
    s.store.append(line("app-a", 6, "second")).unwrap();

    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(reader.next_batch().await);
    }
    assert_eq!(got.iter().map(common::payload).collect::<Vec<_>>(), ["first", "second"]);
    assert_eq!(got[0]["sourceId"], "app-a");
    assert_eq!(got[0]["instanceId"], "0");
    assert_eq!(got[0]["timestamp"], "5");
    assert_eq!(got[0]["tags"]["source_type"], "APP/PROC/WEB");
    assert_eq!(got[0]["deprecatedTags"], serde_json::json!({}));
    assert!(got[0].get("source_id").is_none());
}

#[tokio::test]
async fn one_stream_follows_several_sources_and_the_firehose_follows_all() {
    let s = start_default().await;
    let mut both = open(&s, "gauge&log&source_id=app-a&source_id=app-b", "admin").await;
    let mut all = open(&s, "counter", "admin").await;
    wait_for_subscribers(&s, 3).await;
    s.store.append(line("app-a", 1, "a")).unwrap();
    s.store.append(Envelope::gauge("app-b", "1", &[("memory", "bytes", 7.0)])).unwrap();
    s.store.append(line("app-c", 1, "c")).unwrap();
    let mut counter = line("app-c", 2, "");
    counter.message =
        hearth_logs::Message::Counter(hearth_logs::envelope::Counter { name: "requests".into(), delta: 1, total: 9 });
    s.store.append(counter).unwrap();

    let mut got = Vec::new();
    while got.len() < 2 {
        got.extend(both.next_batch().await);
    }
    assert_eq!(got[0]["sourceId"], "app-a");
    assert_eq!(got[1]["gauge"]["metrics"]["memory"]["value"], 7);
    let firehose = all.next_batch().await;
    assert_eq!(firehose.len(), 1);
    assert_eq!(firehose[0]["counter"], serde_json::json!({ "name": "requests", "delta": "1", "total": "9" }));
}

#[tokio::test]
async fn an_idle_stream_sends_heartbeats_and_closes_at_its_timeout() {
    let http = HttpConfig {
        heartbeat: Duration::from_millis(50),
        stream_timeout: Duration::from_millis(600),
        ..HttpConfig::default()
    };
    let s = start(StoreConfig::default(), http).await;
    let mut reader = open(&s, "log&source_id=app-a", "alice").await;
    let mut names = Vec::new();
    while let Some(event) = reader.next().await {
        if event.name == "heartbeat" {
            let secs: i64 = event.data.parse().expect("unix seconds");
            assert!(secs > 1_700_000_000);
        }
        names.push(event.name);
    }
    assert!(names.iter().filter(|n| *n == "heartbeat").count() >= 3, "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("closing"));
    for _ in 0..100 {
        if s.store.subscriber_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.store.subscriber_count(), 0, "a closed stream leaves no subscriber behind");
    assert_eq!(s.store.source_count(), 0, "nor an empty source");
}

#[tokio::test]
async fn a_slow_reader_is_told_what_it_missed_and_a_fast_one_misses_nothing() {
    const TOTAL: usize = 20_000;
    const CHUNK: usize = 500;
    let s = start(StoreConfig { subscriber_buffer: 1_000, ..StoreConfig::default() }, HttpConfig::default()).await;
    let mut slow = open(&s, "log&source_id=app-a", "admin").await;
    let mut fast = open(&s, "log&source_id=app-a", "admin").await;
    wait_for_subscribers(&s, 2).await;

    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let fast_reader = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(TOTAL + 1);
        while seen.len() <= TOTAL {
            for e in fast.next_batch().await {
                assert_ne!(e["tags"]["source_type"], "LGR", "the fast reader never falls behind");
                seen.push(common::payload(&e));
            }
            let _ = progress_tx.send(seen.len());
        }
        seen
    });
    let filler = "x".repeat(1000);
    for start in (0..TOTAL).step_by(CHUNK) {
        for i in start..start + CHUNK {
            s.store
                .append(Envelope::log("app-a", "0", hearth_logs::LogStream::Out, format!("{i:06} {filler}")))
                .unwrap();
        }
        // Pace the writer to the fast reader; the slow one is not read at all meanwhile.
        while progress.recv().await.expect("the fast reader runs") < start + CHUNK {}
    }
    s.store.append(Envelope::log("app-a", "0", hearth_logs::LogStream::Out, "END")).unwrap();

    let seen = fast_reader.await.unwrap();
    let expected: Vec<String> = (0..TOTAL).map(|i| format!("{i:06} {filler}")).chain(["END".to_string()]).collect();
    assert!(seen == expected, "the fast reader got every envelope, in order");

    let (mut received, mut missed, mut last) = (0usize, 0u64, -1i64);
    'read: loop {
        for e in slow.next_batch().await {
            if e["tags"]["source_type"] == "LGR" {
                let text = common::payload(&e);
                let n: u64 = text.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("Dropped N ...");
                assert!(text.starts_with("Dropped "), "{text}");
                assert_eq!(e["log"]["type"], "ERR");
                assert_eq!(e["sourceId"], "app-a");
                missed += n;
                continue;
            }
            let text = common::payload(&e);
            if text == "END" {
                break 'read;
            }
            let i: i64 = text[..6].parse().unwrap();
            assert!(i > last, "what the slow reader gets stays in order");
            last = i;
            received += 1;
        }
    }
    assert!(missed > 0, "the slow reader fell behind its buffer");
    assert_eq!(received as u64 + missed, TOTAL as u64, "received + told missed = sent");
}

#[tokio::test]
async fn bad_queries_get_a_400_and_no_subscription() {
    let s = start_default().await;
    for (query, name) in [
        ("", "empty_query"),
        ("source_id=app-a", "missing_envelope_type"),
        ("log&source_id=", "invalid_source_id"),
        ("counter.name=&source_id=app-a", "missing_counter_name"),
        ("gauge.name=cpu,&source_id=app-a", "missing_gauge_name"),
    ] {
        let resp = s.get(&format!("/v2/read?{query}"), Some("admin")).await;
        assert_eq!(resp.status(), 400, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], name, "{query}");
        assert!(!body["message"].as_str().unwrap().is_empty());
    }
    assert_eq!(s.store.subscriber_count(), 0);
    assert_eq!(s.store.source_count(), 0);
}

#[tokio::test]
async fn streams_are_only_for_callers_who_may_see_every_source_asked_for() {
    let s = start_default().await;
    for (query, token, status) in [
        ("log&source_id=app-a", None, 401),
        ("log&source_id=app-a", Some("forged"), 401),
        ("log&source_id=app-a", Some("bob"), 403),
        ("log&source_id=app-a&source_id=app-b", Some("alice"), 404),
        ("log", Some("alice"), 404),
    ] {
        let resp = s.get(&format!("/v2/read?{query}"), token).await;
        assert_eq!(resp.status(), status, "{token:?} asking {query}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string());
    }
    assert_eq!(s.store.subscriber_count(), 0, "no refused request subscribed");
}

#[tokio::test]
async fn a_reader_that_hangs_up_leaves_no_subscriber_behind() {
    let http = HttpConfig { heartbeat: Duration::from_millis(50), ..HttpConfig::default() };
    let s = start(StoreConfig::default(), http).await;
    let mut readers = Vec::new();
    for _ in 0..10 {
        readers.push(open(&s, "log&source_id=app-a", "alice").await);
    }
    wait_for_subscribers(&s, 10).await;
    drop(readers);
    for _ in 0..200 {
        if s.store.subscriber_count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.store.subscriber_count(), 0, "every hung-up stream unsubscribed");
    assert_eq!(s.store.source_count(), 0);
}
