//! From a desired LRP and one of its instances to the container that runs it: command,
//! environment as Cloud Foundry sets it, limits, ports, layers. Pure: no I/O.

use hearth_containers::ContainerId;
use hearth_images::Digest;
use hearth_scheduler::{ActualLrpKey, DesiredLrp, RootFs};

use crate::node::ContainerRequest;

/// Cell containers' ids start with this; the cell treats others (operators') as not its own.
pub const CONTAINER_PREFIX: &str = "lrp-";

/// The container id of an instance.
pub fn container_id(instance_guid: &str) -> Result<ContainerId, String> {
    ContainerId::new(format!("{CONTAINER_PREFIX}{instance_guid}")).map_err(|e| e.to_string())
}

/// How the container for `key` of `desired` is made. `disk_limits` turns the per-instance
/// disk limit on (it costs a loop-mounted file system per instance).
pub fn plan(
    desired: &DesiredLrp,
    key: &ActualLrpKey,
    instance_guid: &str,
    disk_limits: bool,
) -> Result<ContainerRequest, String> {
    let id = container_id(instance_guid)?;
    // An image with no command of ours runs its own entrypoint and cmd.
    let args = match desired.start_command.as_str() {
        "" => Vec::new(),
        command => vec!["/bin/sh".into(), "-c".into(), command.to_string()],
    };
    let mut request = ContainerRequest::new(id, args);
    request.image = match &desired.rootfs {
        RootFs::Image(reference) => Some(reference.clone()),
        RootFs::Stack(_) => None,
    };
    if let Some(droplet) = &desired.droplet {
        request.layers.push(Digest::parse(droplet).map_err(|e| format!("droplet {droplet}: {e}"))?);
    }
    let mut env: Vec<String> = desired.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(port) = desired.ports.first() {
        env.push(format!("PORT={port}"));
    }
    env.push(format!("CF_INSTANCE_INDEX={}", key.index));
    env.push(format!("INSTANCE_INDEX={}", key.index));
    env.push(format!("CF_INSTANCE_GUID={instance_guid}"));
    env.push(format!("INSTANCE_GUID={instance_guid}"));
    if matches!(desired.rootfs, RootFs::Stack(_)) {
        env.push("HOME=/home/vcap".into());
        env.push("LANG=en_US.UTF-8".into());
        request.cwd = Some("/home/vcap".into());
    }
    request.env = env;
    request.ports = desired.ports.clone();
    request.memory_bytes = Some(desired.memory_mb.saturating_mul(1 << 20));
    request.pids = (desired.max_pids > 0).then_some(i64::from(desired.max_pids));
    request.disk_limit = disk_limits.then(|| desired.disk_mb.saturating_mul(1 << 20));
    Ok(request)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use hearth_scheduler::HealthCheck;

    use super::*;

    fn desired() -> DesiredLrp {
        DesiredLrp {
            process_guid: "web-guid".into(),
            app_guid: "app".into(),
            instances: 2,
            memory_mb: 256,
            disk_mb: 512,
            max_pids: 1024,
            rootfs: RootFs::Stack("cflinuxfs4".into()),
            image_credentials: None,
            droplet: None,
            start_command: "./server --port $PORT".into(),
            env: BTreeMap::from([("GREETING".to_string(), "hi".to_string())]),
            ports: vec![8080],
            health_check: HealthCheck::default(),
            routes: vec![],
            log_source_id: "app".into(),
            metric_tags: BTreeMap::new(),
            placement_tags: BTreeSet::new(),
            version: 0,
        }
    }

    #[test]
    fn an_instance_gets_cf_s_environment_limits_and_ports() {
        let key = ActualLrpKey::ordinary("web-guid", 1);
        let r = plan(&desired(), &key, "abc-123", true).unwrap();
        assert_eq!(r.id.as_str(), "lrp-abc-123");
        assert_eq!(r.args, ["/bin/sh", "-c", "./server --port $PORT"]);
        for want in ["GREETING=hi", "PORT=8080", "CF_INSTANCE_INDEX=1", "CF_INSTANCE_GUID=abc-123", "HOME=/home/vcap"] {
            assert!(r.env.iter().any(|e| e == want), "{want} in {:?}", r.env);
        }
        assert_eq!(r.memory_bytes, Some(256 << 20));
        assert_eq!(r.disk_limit, Some(512 << 20));
        assert_eq!(r.pids, Some(1024));
        assert_eq!(r.ports, [8080]);
        assert_eq!(r.image, None);
        assert_eq!(plan(&desired(), &key, "abc-123", false).unwrap().disk_limit, None);
    }

    #[test]
    fn images_and_droplets_become_the_root_filesystem() {
        let key = ActualLrpKey::ordinary("web-guid", 0);
        let mut d = desired();
        d.rootfs = RootFs::Image("registry.example/app:1".into());
        let r = plan(&d, &key, "g", false).unwrap();
        assert_eq!(r.image.as_deref(), Some("registry.example/app:1"));
        assert!(!r.env.iter().any(|e| e.starts_with("HOME=")), "an image keeps its own HOME");
        d.droplet = Some(format!("sha256:{}", "a".repeat(64)));
        assert_eq!(plan(&d, &key, "g", false).unwrap().layers.len(), 1);
        d.droplet = Some("not-a-digest".into());
        assert!(plan(&d, &key, "g", false).unwrap_err().contains("droplet"));
        assert!(plan(&desired(), &key, "bad/guid", false).is_err());
    }
}
