//! The part of a container's runtime configuration that an image decides.

use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};

/// What the image config says a container runs by default (the OCI runtime spec's process
/// fields before the platform adds its own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    /// `KEY=value` pairs, in the image's order.
    pub env: Vec<String>,
    /// The working directory, if the image sets one.
    pub working_dir: Option<String>,
    /// `user`, `user:group`, `uid` or `uid:gid`, if the image sets one.
    pub user: Option<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// TCP ports the image exposes (`ExposedPorts`), ascending.
    #[serde(default)]
    pub exposed_ports: Vec<u16>,
}

impl RuntimeConfig {
    /// Takes the runtime fields from an image configuration.
    pub fn from_image(config: &ImageConfiguration) -> Self {
        let Some(c) = config.config() else { return Self::default() };
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Self {
            env: c.env().clone().unwrap_or_default(),
            working_dir: non_empty(c.working_dir()),
            user: non_empty(c.user()),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            exposed_ports: exposed_tcp_ports(c.exposed_ports().as_deref().unwrap_or_default()),
        }
    }

    /// The process arguments: entrypoint followed by cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// `8080/tcp`, `8080` → 8080; UDP and junk are left out.
fn exposed_tcp_ports(entries: &[String]) -> Vec<u16> {
    let mut ports: Vec<u16> = entries
        .iter()
        .filter_map(|e| {
            let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            (proto.eq_ignore_ascii_case("tcp")).then(|| port.parse().ok()).flatten()
        })
        .filter(|p| *p != 0)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_env_cwd_user_entrypoint_cmd() {
        let json = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Env":["PATH=/bin","A=b"],"WorkingDir":"/app","User":"vcap:vcap",
            "Entrypoint":["/bin/sh","-c"],"Cmd":["echo hi"],
            "ExposedPorts":{"9090/tcp":{},"8080/tcp":{},"53/udp":{},"x/tcp":{}}}}"#;
        let config = ImageConfiguration::from_reader(json.as_bytes()).unwrap();
        let rc = RuntimeConfig::from_image(&config);
        assert_eq!(rc.env, vec!["PATH=/bin", "A=b"]);
        assert_eq!(rc.working_dir.as_deref(), Some("/app"));
        assert_eq!(rc.user.as_deref(), Some("vcap:vcap"));
        assert_eq!(rc.argv(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(rc.exposed_ports, vec![8080, 9090]);
    }

    #[test]
    fn an_image_without_config_gives_empty_defaults() {
        let json = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"WorkingDir":"","User":""}}"#;
        let rc = RuntimeConfig::from_image(&ImageConfiguration::from_reader(json.as_bytes()).unwrap());
        assert_eq!(rc, RuntimeConfig::default());
    }
}
