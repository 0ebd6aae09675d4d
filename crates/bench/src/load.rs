//! The load generator: N workers, each with its own HTTP/1.1 keep-alive connection,
//! send one request template back to back for a warm-up and then a measured window.
//! A request counts when it completes inside the window; every such latency is kept.

use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::{Client, Request, StatusCode};
use tokio::task::JoinSet;

use crate::cpu;

/// How hard and how long to drive one target.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one target did during the measured window.
#[derive(Debug)]
pub struct Measurement {
    /// Requests that completed in the window with the expected status.
    pub ok: u64,
    /// Requests that completed in the window with another status or a transport error.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    pub window: Duration,
    /// CPU cores this process kept busy on average during the window, when known.
    pub cpu_cores: Option<f64>,
    /// Latencies of the successful requests, sorted ascending.
    latencies: Vec<Duration>,
}

impl Measurement {
    /// One measurement of two windows on the same target, as if they were one.
    pub fn merge(self, other: Measurement) -> Measurement {
        let weight = |m: &Measurement| m.cpu_cores.map(|c| c * m.window.as_secs_f64());
        let cpu_cores = match (weight(&self), weight(&other)) {
            (Some(a), Some(b)) => Some((a + b) / (self.window + other.window).as_secs_f64()),
            _ => None,
        };
        let mut latencies = self.latencies;
        latencies.extend(other.latencies);
        latencies.sort_unstable();
        Measurement {
            ok: self.ok + other.ok,
            errors: self.errors + other.errors,
            first_error: self.first_error.or(other.first_error),
            window: self.window + other.window,
            cpu_cores,
            latencies,
        }
    }

    /// Successful requests per second of the window.
    pub fn per_second(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    /// The nearest-rank percentile (`p` in 0..=100) of the successful latencies.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        Some(self.latencies[rank.clamp(1, self.latencies.len()) - 1])
    }
}

/// One connection: a client whose pool holds a single idle connection, never a proxy.
fn connection_client() -> anyhow::Result<Client> {
    Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()
        .context("cannot build an HTTP client")
}

/// Drives `template` with `config.connections` workers; `expect` is the success status.
pub async fn run(config: LoadConfig, template: Request, expect: StatusCode) -> anyhow::Result<Measurement> {
    let start = Instant::now();
    let window = Window { from: start + config.warmup, until: start + config.warmup + config.duration };
    let cpu = tokio::spawn(cpu_busy(window));
    let mut workers = JoinSet::new();
    for _ in 0..config.connections {
        let request = template.try_clone().context("the request template must have a cloneable body")?;
        workers.spawn(worker(connection_client()?, request, expect, window));
    }
    let mut total = WorkerResult::default();
    while let Some(result) = workers.join_next().await {
        let result = result.context("a load worker panicked")?;
        total.latencies.extend(result.latencies);
        total.errors += result.errors;
        total.first_error = total.first_error.or(result.first_error);
    }
    total.latencies.sort_unstable();
    Ok(Measurement {
        ok: total.latencies.len() as u64,
        errors: total.errors,
        first_error: total.first_error,
        window: config.duration,
        cpu_cores: cpu.await.context("the CPU sampler panicked")?,
        latencies: total.latencies,
    })
}

/// The process's average busy cores over the window.
async fn cpu_busy(window: Window) -> Option<f64> {
    tokio::time::sleep_until(window.from.into()).await;
    let before = cpu::process_time()?;
    tokio::time::sleep_until(window.until.into()).await;
    let used = cpu::process_time()?.saturating_sub(before);
    Some(used.as_secs_f64() / (window.until - window.from).as_secs_f64())
}

#[derive(Debug, Clone, Copy)]
struct Window {
    from: Instant,
    until: Instant,
}

#[derive(Default)]
struct WorkerResult {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

async fn worker(client: Client, template: Request, expect: StatusCode, window: Window) -> WorkerResult {
    let mut result = WorkerResult::default();
    loop {
        let started = Instant::now();
        if started >= window.until {
            return result;
        }
        let request = template.try_clone().expect("the template was cloned once already");
        let outcome = send(&client, request, expect).await;
        let done = Instant::now();
        let counted = done >= window.from && done < window.until;
        match outcome {
            Ok(()) if counted => result.latencies.push(done - started),
            Ok(()) => {}
            Err(e) => {
                if counted {
                    result.errors += 1;
                    result.first_error.get_or_insert(e);
                }
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Sends one request and reads the whole body.
async fn send(client: &Client, request: Request, expect: StatusCode) -> Result<(), String> {
    let response = client.execute(request).await.map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("reading the body failed: {e}"))?;
    if status != expect {
        let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(format!("status {status}: {head}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(millis: &[u64]) -> Measurement {
        let mut latencies: Vec<Duration> = millis.iter().map(|m| Duration::from_millis(*m)).collect();
        latencies.sort_unstable();
        Measurement {
            ok: latencies.len() as u64,
            errors: 0,
            first_error: None,
            window: Duration::from_secs(2),
            cpu_cores: None,
            latencies,
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let m = measurement(&(1..=100).collect::<Vec<_>>());
        assert_eq!(m.percentile(50.0), Some(Duration::from_millis(50)));
        assert_eq!(m.percentile(99.0), Some(Duration::from_millis(99)));
        assert_eq!(m.percentile(100.0), Some(Duration::from_millis(100)));
        assert_eq!(m.percentile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(m.per_second(), 50.0);
        assert_eq!(measurement(&[]).percentile(50.0), None);
    }

    #[test]
    fn merging_adds_windows_and_pools_latencies() {
        let m = measurement(&[1, 2, 3]).merge(measurement(&[4, 5, 6, 7, 8]));
        assert_eq!((m.ok, m.window), (8, Duration::from_secs(4)));
        assert_eq!(m.per_second(), 2.0);
        assert_eq!(m.percentile(50.0), Some(Duration::from_millis(4)));
        assert_eq!(m.percentile(100.0), Some(Duration::from_millis(8)));
    }
}
