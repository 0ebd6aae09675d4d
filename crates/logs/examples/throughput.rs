//! Measures app-log throughput end to end (a benchmark, not a test): a real process (`seq 1 N`)
//! writes N lines to a pipe; `capture` turns them into envelopes in the store; a streaming
//! client reads them back over HTTP from `/v2/read` as server-sent events. Reports lines per
//! second from the first byte written to the last line read, the envelopes the reader was told
//! it missed, and beside it the bare pipe (the same `seq` read and counted, nothing else).
//!
//! `cargo run -p hearth-logs --example throughput -- [N] [SUBSCRIBER_BUFFER]`

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hearth_logs::{Access, HttpConfig, LineSource, LogStream, Store, StoreConfig, capture};
use tokio::io::AsyncReadExt;
use tokio::process::Command;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(200_000, |a| a.parse().expect("N is a number"));
    let buffer: usize = args.next().map_or(StoreConfig::default().subscriber_buffer, |a| a.parse().expect("a number"));

    let bare = bare_pipe(n).await;
    let (elapsed, received, missed) = through_logs(n, buffer).await;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("lines: {n}, subscriber buffer: {buffer}");
    println!("bare pipe:          {:>8.0} ms  {:>12.0} lines/s", bare.as_secs_f64() * 1e3, rate(bare));
    println!(
        "pipe->store->SSE:   {:>8.0} ms  {:>12.0} lines/s  received {received}, told missed {missed}, lost untold {}",
        elapsed.as_secs_f64() * 1e3,
        rate(elapsed),
        n - received - missed as usize
    );
    println!("ratio (logs / bare time): {:.1}x", elapsed.as_secs_f64() / bare.as_secs_f64());
}

/// Only what the reader looks at, borrowed from the event (a client would do the same).
#[derive(serde::Deserialize)]
struct WireBatch<'a> {
    #[serde(borrow)]
    batch: Vec<WireEnvelope<'a>>,
}

#[derive(serde::Deserialize)]
struct WireEnvelope<'a> {
    #[serde(borrow)]
    tags: WireTags<'a>,
    #[serde(borrow)]
    log: WireLog<'a>,
}

#[derive(serde::Deserialize)]
struct WireTags<'a> {
    source_type: &'a str,
}

#[derive(serde::Deserialize)]
struct WireLog<'a> {
    payload: &'a str,
}

fn seq(n: usize) -> Command {
    let mut cmd = Command::new("seq");
    cmd.arg("1").arg(n.to_string()).stdout(Stdio::piped());
    cmd
}

/// The floor: the same process's output read from the pipe and its lines counted.
async fn bare_pipe(n: usize) -> Duration {
    let started = Instant::now();
    let mut child = seq(n).spawn().expect("seq runs");
    let mut out = child.stdout.take().unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let mut lines = 0;
    loop {
        let got = out.read(&mut buf).await.unwrap();
        if got == 0 {
            break;
        }
        lines += buf[..got].iter().filter(|b| **b == b'\n').count();
    }
    child.wait().await.unwrap();
    assert_eq!(lines, n);
    started.elapsed()
}

async fn through_logs(n: usize, buffer: usize) -> (Duration, usize, u64) {
    let store = Store::new(StoreConfig { subscriber_buffer: buffer, max_per_source: 10_000, ..StoreConfig::default() })
        .unwrap();
    let auth = Arc::new(|_token: String, _source: Option<String>| async { Access::Allowed });
    let app = hearth_logs::router(store.clone(), auth, HttpConfig { batch_size: 100, ..HttpConfig::default() });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let resp = reqwest::Client::new()
        .get(format!("http://{addr}/v2/read?log&source_id=app"))
        .header("Authorization", "bearer bench")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    while store.subscriber_count() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let last = n.to_string();
    let reader = tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut pending: Vec<u8> = Vec::new();
        let (mut received, mut missed) = (0usize, 0u64);
        while let Some(chunk) = body.next().await {
            pending.extend_from_slice(&chunk.unwrap());
            // Events end with a blank line; the JSON inside never holds a raw newline.
            let (mut start, mut scan) = (0, 0);
            while let Some(nl) = pending[scan..].iter().position(|b| *b == b'\n') {
                let end = scan + nl;
                match pending.get(end + 1) {
                    None => break,
                    Some(b'\n') => {}
                    Some(_) => {
                        scan = end + 1;
                        continue;
                    }
                }
                let event = &pending[start..end];
                (start, scan) = (end + 2, end + 2);
                let Some(data) = event.strip_prefix(b"data: ") else { continue };
                let batch: WireBatch = serde_json::from_slice(data).unwrap();
                for e in batch.batch {
                    use base64::Engine;
                    let text = base64::engine::general_purpose::STANDARD.decode(e.log.payload).unwrap();
                    if e.tags.source_type == "LGR" {
                        let text = String::from_utf8(text).unwrap();
                        missed += text.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
                        continue;
                    }
                    received += 1;
                    if text == last.as_bytes() {
                        return (received, missed);
                    }
                }
            }
            pending.drain(..start);
        }
        panic!("the stream ended early");
    });

    let started = Instant::now();
    let mut child = seq(n).spawn().expect("seq runs");
    let source = LineSource::app("app", "web", 0, LogStream::Out);
    let sink = store.clone();
    capture(child.stdout.take().unwrap(), &source, move |e| sink.append(e).unwrap()).await.unwrap();
    child.wait().await.unwrap();
    let (received, missed) = reader.await.unwrap();
    (started.elapsed(), received, missed)
}
