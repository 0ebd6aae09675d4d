//! 100 MiB request and response bodies stream through the router without sitting in
//! memory: the process's resident size is sampled throughout. Alone in its own test
//! binary, so no other test's allocations blur the measurement.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{Backend, client, config, key, start};

/// This process's resident memory in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .unwrap()
}

/// Samples RSS until stopped; returns the highest value seen.
fn watch_rss() -> (Arc<AtomicBool>, tokio::task::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::spawn(async move {
        let mut peak = 0;
        while !flag.load(Ordering::Relaxed) {
            peak = peak.max(rss_kib());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    });
    (stop, task)
}

const MIB: u64 = 1024 * 1024;
const BIG: u64 = 100 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabyte_bodies_stream_through_without_being_held() {
    let app = Backend::start("big").await;
    let router = start(config()).await;
    router.table.add_endpoint(&key("big.example.com", ""), app.endpoint(0)).unwrap();
    // Warm up allocators and pools so the baseline is honest.
    assert_eq!(router.get("big.example.com", "/download?mb=1").await.bytes().await.unwrap().len() as u64, MIB);
    let before = rss_kib();
    let (stop, peak) = watch_rss();

    // Upload: the client produces 100 MiB in 64 KiB chunks; the backend only counts them.
    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    let chunks = (0..BIG / (64 * 1024)).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
    let upload = client()
        .post(router.url("/upload"))
        .header("host", "big.example.com")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 200);
    assert_eq!(upload.text().await.unwrap(), BIG.to_string());

    // Download: read 100 MiB chunk by chunk, slowly at first.
    let mut download = router.get("big.example.com", "/download?mb=100").await;
    assert_eq!(download.status(), 200);
    let received = AtomicU64::new(0);
    let mut n = 0;
    while let Some(chunk) = download.chunk().await.unwrap() {
        received.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        n += 1;
        if n < 50 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(received.load(Ordering::Relaxed), BIG);
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.unwrap();
    let grown_mib = peak.saturating_sub(before) / 1024;
    assert!(grown_mib < 40, "memory grew by {grown_mib} MiB while 2 × 100 MiB streamed through");
    router.stop().await;
}
