//! Container metrics as the gauges Diego publishes and Cloud Controller reads back from
//! log-cache for `/v3/processes/:guid/stats` (what `cf app` shows): `cpu` (unit `percentage`),
//! `memory`, `disk`, `memory_quota`, `disk_quota` (unit `bytes`) in one envelope, and
//! `log_rate`, `log_rate_limit` (unit `B/s`) in another, all under the app guid with the
//! instance index as instance id.

use crate::envelope::{Envelope, tag};

/// One sample of one instance's usage.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ContainerMetrics {
    pub cpu_percentage: f64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub memory_quota_bytes: u64,
    pub disk_quota_bytes: u64,
    /// Log bytes per second, and its limit (-1 for unlimited, as CF writes it), if known.
    pub log_rate: Option<(u64, i64)>,
}

impl ContainerMetrics {
    /// The gauge envelopes for one instance, stamped now.
    pub fn envelopes(&self, app_guid: &str, index: u32) -> Vec<Envelope> {
        let instance = index.to_string();
        let usage = Envelope::gauge(
            app_guid,
            &instance,
            &[
                ("cpu", "percentage", self.cpu_percentage),
                ("memory", "bytes", self.memory_bytes as f64),
                ("disk", "bytes", self.disk_bytes as f64),
                ("memory_quota", "bytes", self.memory_quota_bytes as f64),
                ("disk_quota", "bytes", self.disk_quota_bytes as f64),
            ],
        );
        let mut out = vec![usage];
        if let Some((rate, limit)) = self.log_rate {
            let ts = out[0].timestamp;
            out.push(
                Envelope::gauge(
                    app_guid,
                    &instance,
                    &[("log_rate", "B/s", rate as f64), ("log_rate_limit", "B/s", limit as f64)],
                )
                .at(ts),
            );
        }
        out.into_iter().map(|e| e.with_tag(tag::SOURCE_ID, app_guid).with_tag(tag::APP_ID, app_guid)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Message;

    #[test]
    fn usage_and_log_rate_come_as_cf_names_and_units() {
        let m = ContainerMetrics {
            cpu_percentage: 3.5,
            memory_bytes: 10,
            disk_bytes: 20,
            memory_quota_bytes: 30,
            disk_quota_bytes: 40,
            log_rate: Some((5, -1)),
        };
        let envs = m.envelopes("guid", 2);
        assert_eq!(envs.len(), 2);
        let Message::Gauge(g) = &envs[0].message else { panic!("a gauge") };
        assert_eq!(g.metrics["cpu"].unit, "percentage");
        assert_eq!(g.metrics["cpu"].value, 3.5);
        assert_eq!(g.metrics["memory_quota"].value, 30.0);
        assert_eq!(g.metrics["disk"].unit, "bytes");
        assert_eq!(envs[0].instance_id, "2");
        let Message::Gauge(g) = &envs[1].message else { panic!("a gauge") };
        assert_eq!(g.metrics["log_rate_limit"].value, -1.0);
        assert_eq!(g.metrics["log_rate"].unit, "B/s");
        assert!(ContainerMetrics::default().envelopes("g", 0).len() == 1);
    }
}
