//! `/v3/processes/:guid/stats`: one entry per desired instance from the scheduler's view,
//! with each running instance's `usage` from the newest container metrics gauges the cell
//! published into the app's logs (as Cloud Controller reads them back from log-cache):
//! `cpu` as a fraction of one core, `mem` and `disk` in bytes, `time` of the sample.

use std::collections::HashMap;

use hearth_logs::{EnvelopeType, Message, ReadRequest};
use hearth_scheduler::{ActualLrp, ActualState, Presence};
use hearth_store::Process;
use serde_json::{Value, json};

/// How far back a sample may be and still count as an instance's usage.
const FRESH_NANOS: i64 = 120 * 1_000_000_000;

/// The newest usage sample of each instance (by index) of process `process_guid`.
pub fn usage_by_index(logs: &hearth_logs::Store, app_guid: &str, process_guid: &str) -> HashMap<u32, Value> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64;
    let request = ReadRequest {
        start_time: now - FRESH_NANOS,
        end_time: None,
        envelope_types: vec![EnvelopeType::Gauge],
        limit: Some(1000),
        descending: true,
    };
    let mut usage = HashMap::new();
    for envelope in logs.read(app_guid, &request).unwrap_or_default() {
        if envelope.tags.get("process_id").map(String::as_str) != Some(process_guid) {
            continue;
        }
        let (Message::Gauge(gauge), Ok(index)) = (&envelope.message, envelope.instance_id.parse::<u32>()) else {
            continue;
        };
        let value = |name: &str| gauge.metrics.get(name).map(|m| m.value);
        let (Some(cpu), Some(mem)) = (value("cpu"), value("memory")) else { continue };
        usage.entry(index).or_insert_with(|| {
            let time = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(envelope.timestamp))
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
            json!({
                "time": time,
                "cpu": cpu / 100.0,
                "cpu_entitlement": null,
                "mem": mem as u64,
                "disk": value("disk").unwrap_or(0.0) as u64,
                "log_rate": 0,
            })
        });
    }
    usage
}

/// One entry of `/stats` per desired instance, from what the scheduler knows of it:
/// RUNNING (healthy), STARTING (placed or starting), CRASHED (with the reason in
/// `details`), DOWN (nothing runs: a stopped app, or not placed yet).
pub fn stats_json(p: &Process, actual: &[ActualLrp], usage: &HashMap<u32, Value>, now: time::OffsetDateTime) -> Value {
    let resources: Vec<Value> = (0..p.instances.max(0))
        .map(|index| {
            let instance = actual
                .iter()
                .filter(|a| i64::from(a.key.index) == index)
                .min_by_key(|a| (a.state != ActualState::Running, a.key.presence != Presence::Ordinary));
            let state = match instance.map(|a| a.state) {
                Some(ActualState::Running) => "RUNNING",
                Some(ActualState::Claimed | ActualState::Unclaimed) => "STARTING",
                Some(ActualState::Crashed) => "CRASHED",
                None => "DOWN",
            };
            let running = instance.filter(|a| a.state == ActualState::Running);
            let address = running.and_then(|a| a.address.clone()).filter(|a| !a.is_empty());
            let ports: Vec<Value> = running
                .map(|a| {
                    a.ports
                        .iter()
                        .map(|m| json!({"external": m.host_port, "internal": m.container_port,
                                        "external_tls_proxy_port": null, "internal_tls_proxy_port": null}))
                        .collect()
                })
                .unwrap_or_default();
            let uptime = running.map(|a| (now - a.since).whole_seconds().max(0)).unwrap_or(0);
            json!({
                "type": p.process_type,
                "index": index,
                "state": state,
                "routable": running.is_some(),
                "usage": running.and_then(|_| usage.get(&(index as u32)).cloned()).unwrap_or_else(|| json!({})),
                "host": address.clone().unwrap_or_default(),
                "instance_internal_ip": address,
                "instance_ports": ports,
                "uptime": uptime,
                "mem_quota": p.memory_in_mb * 1024 * 1024,
                "disk_quota": p.disk_in_mb * 1024 * 1024,
                "fds_quota": 16384,
                "isolation_segment": null,
                "log_rate_limit": if p.log_rate_limit_in_bytes_per_second < 0 { Value::Null } else { json!(p.log_rate_limit_in_bytes_per_second) },
                "details": instance.filter(|a| a.state == ActualState::Crashed).and_then(|a| a.crash_reason.clone()),
            })
        })
        .collect();
    json!({"resources": resources})
}

#[cfg(test)]
mod tests {
    use hearth_logs::ContainerMetrics;

    use super::*;

    #[test]
    fn usage_is_the_newest_sample_of_each_instance_of_the_process() {
        let logs = hearth_logs::Store::new(hearth_logs::StoreConfig::default()).unwrap();
        let sample = |process: &str, index: u32, cpu: f64, mem: u64| {
            let m = ContainerMetrics { cpu_percentage: cpu, memory_bytes: mem, disk_bytes: 7, ..Default::default() };
            for e in m.envelopes("app", index) {
                logs.append(e.with_tag("process_id", process)).unwrap();
            }
        };
        sample("web", 0, 50.0, 100);
        sample("web", 1, 10.0, 200);
        sample("web", 0, 25.0, 300);
        sample("worker", 2, 99.0, 999);
        let usage = usage_by_index(&logs, "app", "web");
        assert_eq!(usage.len(), 2, "{usage:?}");
        assert_eq!((usage[&0]["cpu"].as_f64(), usage[&0]["mem"].as_u64()), (Some(0.25), Some(300)));
        assert_eq!((usage[&1]["cpu"].as_f64(), usage[&1]["disk"].as_u64()), (Some(0.1), Some(7)));
        assert!(usage[&0]["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{}", usage[&0]);
        assert!(usage_by_index(&logs, "other-app", "web").is_empty());
    }
}
