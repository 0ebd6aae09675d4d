//! The desired state: what should run (Diego's DesiredLRP), checked on the way in.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where an instance's root filesystem comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RootFs {
    /// A stack the cell has preloaded (e.g. `cflinuxfs4`).
    Stack(String),
    /// An OCI image reference, pulled by the cell.
    Image(String),
}

/// How a health check decides an instance is healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckType {
    /// A TCP connect to the first port succeeds (the default for web processes).
    Port,
    /// `GET endpoint` answers 200.
    Http,
    /// The process is alive.
    Process,
}

/// A health check as Diego runs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub kind: HealthCheckType,
    /// The HTTP path for `http` checks.
    pub endpoint: Option<String>,
    /// Seconds an instance has to become healthy after it starts (Diego: 60, at most 180).
    pub start_timeout_secs: u32,
    /// Seconds one check may take.
    pub invocation_timeout_secs: u32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck { kind: HealthCheckType::Port, endpoint: None, start_timeout_secs: 60, invocation_timeout_secs: 1 }
    }
}

/// Registry credentials for a private image. Never printed: `Debug` hides the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ImageCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ImageCredentials({}, <redacted>)", self.username)
    }
}

/// A long-running process: `instances` copies of one definition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredLrp {
    pub process_guid: String,
    /// The app (Diego's domain) this process belongs to.
    pub app_guid: String,
    pub instances: u32,
    pub memory_mb: u64,
    pub disk_mb: u64,
    pub max_pids: u32,
    pub rootfs: RootFs,
    /// For a private image: how the cell logs in to pull it.
    #[serde(default)]
    pub image_credentials: Option<ImageCredentials>,
    /// The droplet to lay over a stack root filesystem; none for images.
    pub droplet: Option<String>,
    /// Run with `sh -c`; empty for an image means the image's entrypoint and cmd.
    pub start_command: String,
    pub env: BTreeMap<String, String>,
    pub ports: Vec<u16>,
    pub health_check: HealthCheck,
    /// Route URIs this process answers on.
    pub routes: Vec<String>,
    pub log_source_id: String,
    pub metric_tags: BTreeMap<String, String>,
    /// Only cells with exactly these tags run it (isolation segments).
    pub placement_tags: BTreeSet<String>,
    /// Bumped by every change; compare-and-swap in the store.
    pub version: i64,
}

/// The most instances one process may ask for.
pub const MAX_INSTANCES: u32 = 100_000;

impl DesiredLrp {
    /// Checks the definition; a bad one is refused with the field that is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Invalid { what: format!("desired LRP '{}'", self.process_guid), why });
        if self.process_guid.is_empty() || self.process_guid.contains('/') {
            return bad("process_guid must be non-empty and contain no '/'".into());
        }
        if self.app_guid.is_empty() {
            return bad("app_guid must not be empty".into());
        }
        if self.instances > MAX_INSTANCES {
            return bad(format!("instances {} exceeds {MAX_INSTANCES}", self.instances));
        }
        if self.memory_mb == 0 || self.disk_mb == 0 {
            return bad("memory_mb and disk_mb must be positive".into());
        }
        match &self.rootfs {
            RootFs::Stack(s) | RootFs::Image(s) if s.is_empty() => {
                return bad("rootfs must name a stack or image".into());
            }
            RootFs::Stack(_) | RootFs::Image(_) => {}
        }
        if self.start_command.is_empty() && !matches!(self.rootfs, RootFs::Image(_)) {
            return bad("start_command must not be empty (only an image has a command of its own)".into());
        }
        let hc = &self.health_check;
        if hc.start_timeout_secs == 0 || hc.start_timeout_secs > 180 {
            return bad(format!("health check start timeout {} s is outside 1..=180", hc.start_timeout_secs));
        }
        match hc.kind {
            HealthCheckType::Port if self.ports.is_empty() => return bad("a port health check needs a port".into()),
            HealthCheckType::Http if hc.endpoint.as_deref().is_none_or(|e| !e.starts_with('/')) => {
                return bad("an http health check needs an endpoint starting with '/'".into());
            }
            HealthCheckType::Port | HealthCheckType::Http | HealthCheckType::Process => {}
        }
        Ok(())
    }
}

/// A change to a desired LRP (Diego's DesiredLRPUpdate): scale, routes, tags for logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredLrpUpdate {
    pub instances: Option<u32>,
    pub routes: Option<Vec<String>>,
    pub metric_tags: Option<BTreeMap<String, String>>,
}

impl DesiredLrpUpdate {
    /// The LRP with this update applied and its version bumped, checked.
    pub fn apply(&self, lrp: &DesiredLrp) -> Result<DesiredLrp> {
        let mut next = lrp.clone();
        if let Some(n) = self.instances {
            next.instances = n;
        }
        if let Some(r) = &self.routes {
            next.routes = r.clone();
        }
        if let Some(t) = &self.metric_tags {
            next.metric_tags = t.clone();
        }
        next.version += 1;
        next.validate()?;
        Ok(next)
    }
}

#[cfg(test)]
pub(crate) fn sample(guid: &str, instances: u32, memory_mb: u64) -> DesiredLrp {
    DesiredLrp {
        process_guid: guid.into(),
        app_guid: format!("app-{guid}"),
        instances,
        memory_mb,
        disk_mb: 1024,
        max_pids: 1024,
        rootfs: RootFs::Stack("cflinuxfs4".into()),
        image_credentials: None,
        droplet: Some("droplet-1".into()),
        start_command: "./web".into(),
        env: BTreeMap::new(),
        ports: vec![8080],
        health_check: HealthCheck::default(),
        routes: vec![],
        log_source_id: guid.into(),
        metric_tags: BTreeMap::new(),
        placement_tags: BTreeSet::new(),
        version: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_definitions_are_refused_naming_the_field() {
        assert!(sample("web", 3, 256).validate().is_ok());
        type Breaker = fn(&mut DesiredLrp);
        let cases: Vec<(Breaker, &str)> = vec![
            (|l| l.process_guid = "a/b".into(), "process_guid"),
            (|l| l.memory_mb = 0, "memory_mb"),
            (|l| l.instances = MAX_INSTANCES + 1, "instances"),
            (|l| l.rootfs = RootFs::Image(String::new()), "rootfs"),
            (|l| l.health_check.start_timeout_secs = 181, "start timeout"),
            (|l| l.ports.clear(), "port health check"),
            (|l| l.health_check.kind = HealthCheckType::Http, "endpoint"),
        ];
        for (break_it, field) in cases {
            let mut lrp = sample("web", 3, 256);
            break_it(&mut lrp);
            let err = lrp.validate().unwrap_err().to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }

    #[test]
    fn an_update_scales_and_bumps_the_version_but_not_past_the_limit() {
        let lrp = sample("web", 3, 256);
        let up = DesiredLrpUpdate { instances: Some(5), ..Default::default() }.apply(&lrp).unwrap();
        assert_eq!((up.instances, up.version), (5, 1));
        let too_many = DesiredLrpUpdate { instances: Some(MAX_INSTANCES + 1), ..Default::default() };
        assert!(too_many.apply(&lrp).is_err());
    }
}
