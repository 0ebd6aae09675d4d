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
        env.push("TMPDIR=/home/vcap/tmp".into());
        request.cwd = Some("/home/vcap".into());
    }
    request.env = env;
    request.ports = desired.ports.clone();
    request.memory_bytes = Some(desired.memory_mb.saturating_mul(1 << 20));
    request.pids = (desired.max_pids > 0).then_some(i64::from(desired.max_pids));
    request.disk_limit = disk_limits.then(|| desired.disk_mb.saturating_mul(1 << 20));
    Ok(request)
}

/// What an instance learns once its container exists, as Diego sets it: the cell's
/// address (`CF_INSTANCE_IP`), the container's (`CF_INSTANCE_INTERNAL_IP`), the host port of
/// its first port (`CF_INSTANCE_PORT`, `CF_INSTANCE_ADDR`) and every mapping
/// (`CF_INSTANCE_PORTS`).
pub fn instance_env(host_ip: std::net::IpAddr, network: Option<&hearth_containers::NetworkInfo>) -> Vec<String> {
    let mut env = vec![format!("CF_INSTANCE_IP={host_ip}")];
    let Some(network) = network else { return env };
    env.push(format!("CF_INSTANCE_INTERNAL_IP={}", network.address));
    if let Some(first) = network.port_mappings.first() {
        env.push(format!("CF_INSTANCE_PORT={}", first.host_port));
        env.push(format!("CF_INSTANCE_ADDR={host_ip}:{}", first.host_port));
    }
    let ports: Vec<serde_json::Value> = network
        .port_mappings
        .iter()
        .map(|m| serde_json::json!({"external": m.host_port, "internal": m.container_port}))
        .collect();
    env.push(format!("CF_INSTANCE_PORTS={}", serde_json::Value::Array(ports)));
    env
}

/// This machine's address on its default route (no packet is sent), else loopback.
pub fn host_ip() -> std::net::IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]))
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
    fn an_instance_learns_its_addresses_and_host_ports_as_diego_sets_them() {
        let host: std::net::IpAddr = [192, 168, 1, 7].into();
        assert_eq!(instance_env(host, None), ["CF_INSTANCE_IP=192.168.1.7"]);
        let network = hearth_containers::NetworkInfo {
            address: [10, 254, 0, 9].into(),
            gateway: [10, 254, 0, 1].into(),
            prefix_len: 22,
            host_interface: "hv0afe0009".into(),
            port_mappings: vec![
                hearth_containers::network::PortMapping { container_port: 8080, host_port: 61003 },
                hearth_containers::network::PortMapping { container_port: 9090, host_port: 61004 },
            ],
        };
        assert_eq!(
            instance_env(host, Some(&network)),
            [
                "CF_INSTANCE_IP=192.168.1.7",
                "CF_INSTANCE_INTERNAL_IP=10.254.0.9",
                "CF_INSTANCE_PORT=61003",
                "CF_INSTANCE_ADDR=192.168.1.7:61003",
                r#"CF_INSTANCE_PORTS=[{"external":61003,"internal":8080},{"external":61004,"internal":9090}]"#,
            ]
        );
    }
    #[test]
    fn an_instance_gets_cf_s_environment_limits_and_ports() {
        let key = ActualLrpKey::ordinary("web-guid", 1);
        let r = plan(&desired(), &key, "abc-123", true).unwrap();
        assert_eq!(r.id.as_str(), "lrp-abc-123");
        assert_eq!(r.args, ["/bin/sh", "-c", "./server --port $PORT"]);
        for want in [
            "GREETING=hi",
            "PORT=8080",
            "CF_INSTANCE_INDEX=1",
            "CF_INSTANCE_GUID=abc-123",
            "HOME=/home/vcap",
            "TMPDIR=/home/vcap/tmp",
        ] {
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
