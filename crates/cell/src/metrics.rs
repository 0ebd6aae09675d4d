//! An instance's container metrics into its app's logs, as Diego's executor publishes
//! them: every interval (and once as soon as the instance is watched) the cgroup's memory
//! and CPU time and the root filesystem's writable-layer bytes become `cpu`, `memory`,
//! `disk`, `memory_quota` and `disk_quota` gauges under the app's source id, tagged like
//! its log lines (`process_id`, `process_type`, …), so log-cache readers and the API's
//! `/stats` see the same numbers. CPU is the share of one core used since the previous
//! sample (100 = one core busy).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth_containers::ContainerId;
use hearth_logs::metrics::ContainerMetrics;
use hearth_logs::{Envelope, Store};
use hearth_scheduler::DesiredLrp;
use tokio_util::sync::CancellationToken;

use crate::node::Node;

/// CPU time between two samples as a percentage of one core over the wall time between them.
pub fn cpu_percentage(before: (u64, Instant), after: (u64, Instant)) -> f64 {
    let wall = after.1.saturating_duration_since(before.1).as_nanos() as f64;
    if wall <= 0.0 {
        return 0.0;
    }
    after.0.saturating_sub(before.0) as f64 / wall * 100.0
}

/// The envelopes of one sample, with the desired LRP's tags on each.
pub fn envelopes(desired: &DesiredLrp, index: u32, sample: &ContainerMetrics) -> Vec<Envelope> {
    sample
        .envelopes(&desired.log_source_id, index)
        .into_iter()
        .map(|e| desired.metric_tags.iter().fold(e, |e, (k, v)| e.with_tag(k, v)))
        .collect()
}

/// Samples container `id` into `logs` every `interval` until `done` fires.
pub fn sample(
    logs: Store,
    node: Arc<Node>,
    id: ContainerId,
    desired: DesiredLrp,
    index: u32,
    interval: Duration,
    done: CancellationToken,
) {
    tokio::spawn(async move {
        let mut previous: Option<(u64, Instant)> = None;
        loop {
            let info = match node.runtime().lookup(&id).await {
                Ok(Some(info)) => info,
                _ => return,
            };
            let now = Instant::now();
            let cpu = info.usage.cpu_nanos.map(|n| (n, now));
            let images = node.images().clone();
            let rootfs = id.as_str().to_string();
            let disk = tokio::task::spawn_blocking(move || images.disk_usage(&rootfs).ok())
                .await
                .ok()
                .flatten()
                .map_or(0, |d| d.bytes);
            let sample = ContainerMetrics {
                cpu_percentage: previous.zip(cpu).map_or(0.0, |(b, a)| cpu_percentage(b, a)),
                memory_bytes: info.usage.memory_bytes.unwrap_or(0),
                disk_bytes: disk,
                memory_quota_bytes: desired.memory_mb * 1024 * 1024,
                disk_quota_bytes: desired.disk_mb * 1024 * 1024,
                log_rate: None,
            };
            previous = cpu.or(previous);
            for envelope in envelopes(&desired, index, &sample) {
                let _ = logs.append(envelope);
            }
            tokio::select! {
                _ = done.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_the_share_of_one_core_between_samples() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(cpu_percentage((1_000_000_000, t0), (2_000_000_000, t1)), 50.0);
        assert_eq!(cpu_percentage((0, t0), (4_000_000_000, t1)), 200.0, "two cores busy");
        assert_eq!(cpu_percentage((5, t1), (5, t0)), 0.0, "no time passed: nothing to say");
        assert_eq!(cpu_percentage((9, t0), (5, t1)), 0.0, "a counter that went back (a new cgroup)");
    }
}
