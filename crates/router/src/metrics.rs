//! Prometheus counters. Each worker owns its own set (no shared cache lines on the request
//! path); a scrape adds them up.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// One worker's counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Responses by status class 1xx..5xx.
    by_class: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    backend_errors: AtomicU64,
    unknown_routes: AtomicU64,
}

impl Metrics {
    pub(crate) fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub(crate) fn backend_error(&self) {
        self.backend_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unknown_route(&self) {
        self.unknown_routes.fetch_add(1, Ordering::Relaxed);
    }
}

/// The Prometheus text exposition of all workers' counters plus the table's size.
pub(crate) fn render(workers: &[std::sync::Arc<Metrics>], routes: usize, endpoints: usize) -> String {
    let sum = |f: &dyn Fn(&Metrics) -> &AtomicU64| workers.iter().map(|m| f(m).load(Ordering::Relaxed)).sum::<u64>();
    let mut out = String::new();
    out.push_str("# HELP hearth_router_requests_total Responses sent, by status class.\n");
    out.push_str("# TYPE hearth_router_requests_total counter\n");
    for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
        let _ = writeln!(out, "hearth_router_requests_total{{status=\"{class}\"}} {}", sum(&|m| &m.by_class[i]));
    }
    out.push_str("# HELP hearth_router_request_duration_seconds Time from request to response headers.\n");
    out.push_str("# TYPE hearth_router_request_duration_seconds histogram\n");
    let mut cumulative = 0;
    for (i, bound) in BUCKETS.iter().enumerate() {
        cumulative += sum(&|m| &m.buckets[i]);
        let _ = writeln!(out, "hearth_router_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    let count = sum(&|m| &m.latency_count);
    let _ = writeln!(out, "hearth_router_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
    let micros = sum(&|m| &m.latency_micros);
    let _ = writeln!(out, "hearth_router_request_duration_seconds_sum {}", micros as f64 / 1e6);
    let _ = writeln!(out, "hearth_router_request_duration_seconds_count {count}");
    let gauges = [
        (
            "hearth_router_backend_errors_total",
            "counter",
            "Failed connections or exchanges with endpoints.",
            sum(&|m| &m.backend_errors),
        ),
        (
            "hearth_router_unknown_route_total",
            "counter",
            "Requests for a host with no route.",
            sum(&|m| &m.unknown_routes),
        ),
        ("hearth_router_routes", "gauge", "Routes in the table.", routes as u64),
        ("hearth_router_endpoints", "gauge", "Endpoints in the table.", endpoints as u64),
    ];
    for (name, kind, help, value) in gauges {
        let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn workers_add_up_and_buckets_are_cumulative() {
        let (a, b) = (Arc::new(Metrics::default()), Arc::new(Metrics::default()));
        a.observe(200, Duration::from_micros(300));
        b.observe(204, Duration::from_millis(20));
        b.observe(502, Duration::from_secs(10));
        b.backend_error();
        let text = render(&[a, b], 4, 7);
        assert!(text.contains("hearth_router_requests_total{status=\"2xx\"} 2\n"), "{text}");
        assert!(text.contains("hearth_router_requests_total{status=\"5xx\"} 1\n"));
        assert!(text.contains("hearth_router_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("hearth_router_request_duration_seconds_bucket{le=\"0.025\"} 2\n"));
        assert!(text.contains("hearth_router_request_duration_seconds_bucket{le=\"5\"} 2\n"));
        assert!(text.contains("hearth_router_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("hearth_router_backend_errors_total 1\n"));
        assert!(text.contains("hearth_router_routes 4\n") && text.contains("hearth_router_endpoints 7\n"));
    }
}
