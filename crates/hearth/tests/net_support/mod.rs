//! Helpers for the container networking tests: a busybox rootfs, a runtime with its own
//! bridge, subnet, nftables table and host ports per test (so tests run in parallel), and
//! a count of everything networking leaves on the host.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_containers::{
    ContainerId, ContainerSpec, IdMap, NetworkConfig, NetworkSpec, Placement, Runtime, RuntimeConfig, cgroup,
};

#[path = "../common/container_fixtures.rs"]
mod fixtures;

pub use fixtures::{base_dir, rootfs};

/// A shell script as a networked container's main process.
pub fn sh(script: &str, network: NetworkSpec) -> ContainerSpec {
    let mut spec = ContainerSpec::new(rootfs(), vec!["/bin/sh".into(), "-c".into(), script.into()]);
    spec.network = Some(network);
    spec
}

/// busybox httpd serving `NAME` as its index page on `port`.
pub fn web(name: &str, port: u16, network: NetworkSpec) -> ContainerSpec {
    sh(&format!("mkdir /tmp/www && echo {name} > /tmp/www/index.html && exec httpd -f -p {port} -h /tmp/www"), network)
}

/// An HTTP GET of `/` from the host; the body, or `None` if it could not connect.
pub fn http_get(addr: SocketAddr) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// Polls `http_get` until it answers (the server in the container is starting).
pub fn http_get_eventually(addr: SocketAddr) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(body) = http_get(addr) {
            return Some(body);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A runtime of its own for one test: its own directory, cgroup parent, bridge, subnet
/// (`10.201.SLOT.0/24`), nftables table and host port range (200 ports from
/// 62000 + 200 × SLOT; SLOT at most 16).
pub struct NetRuntime {
    pub runtime: Runtime,
    pub root: PathBuf,
    cgroup_parent: String,
    pub network: NetworkConfig,
}

impl NetRuntime {
    pub fn new(name: &str, slot: u8) -> Self {
        let pid = std::process::id();
        let root = base_dir().join(name);
        let cgroup_parent = format!("hearth-nettest-{pid}-{name}");
        let first_port = 62000 + u16::from(slot) * 200;
        let network = NetworkConfig {
            bridge: format!("hnt{slot}-{}", pid % 100_000),
            subnet: format!("10.201.{slot}.0/24").parse().unwrap(),
            table: format!("hearth_test_{slot}_{pid}"),
            host_ports: first_port..=first_port + 199,
        };
        let runtime = Runtime::new(Self::config(&root, &cgroup_parent, &network));
        Self { runtime, root, cgroup_parent, network }
    }

    fn config(root: &Path, cgroup_parent: &str, network: &NetworkConfig) -> RuntimeConfig {
        RuntimeConfig {
            root: root.to_path_buf(),
            helper: PathBuf::from(env!("CARGO_BIN_EXE_hearth")),
            placement: Placement { id_map: IdMap::default(), cgroup_parent: cgroup_parent.to_string() },
            network: network.clone(),
        }
    }

    /// Another runtime with its own directory on the same bridge, subnet and port range:
    /// what a second server on the machine gets.
    pub fn beside(&self, name: &str) -> Self {
        let root = base_dir().join(name);
        let cgroup_parent = format!("hearth-nettest-{}-{name}", std::process::id());
        let runtime = Runtime::new(Self::config(&root, &cgroup_parent, &self.network));
        Self { runtime, root, cgroup_parent, network: self.network.clone() }
    }

    /// Another runtime on the same directory and network: what a restarted server gets.
    pub fn reopen(&self) -> Runtime {
        Runtime::new(Self::config(&self.root, &self.cgroup_parent, &self.network))
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.network.subnet.gateway()
    }

    /// Creates and starts a container; returns its address.
    pub async fn up(&self, id: &str, spec: &ContainerSpec) -> (ContainerId, Ipv4Addr) {
        let id = ContainerId::new(id).unwrap();
        let info = self.runtime.create(&id, spec).await.unwrap();
        self.runtime.start(&id).await.unwrap();
        (id, info.network.expect("a networked container has network info").address)
    }

    /// Runs a container to its end and returns its stdout (stderr on failure).
    pub async fn run(&self, id: &str, spec: &ContainerSpec) -> String {
        let id = ContainerId::new(id).unwrap();
        self.runtime.create(&id, spec).await.unwrap();
        let result = self.runtime.run(&id).await;
        self.runtime.destroy(&id).await.unwrap();
        let result = result.unwrap();
        assert!(result.exit.success(), "{:?}: {}", result.exit, String::from_utf8_lossy(&result.stderr));
        String::from_utf8(result.stdout).unwrap()
    }

    /// What networking of this runtime still holds on the host: veths on the bridge,
    /// host veths of the subnet, containers' nftables chains and map elements, and
    /// allocations. (The bridge and the table's base are the runtime's, not a container's.)
    pub fn net_leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        let brif = format!("/sys/class/net/{}/brif", self.network.bridge);
        for entry in std::fs::read_dir(&brif).into_iter().flatten().flatten() {
            found.push(format!("bridge port {}", entry.file_name().to_string_lossy()));
        }
        let gateway = u32::from(self.gateway());
        let prefix = format!("hv{:06x}", gateway >> 8);
        for entry in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with(&prefix) {
                found.push(format!("link {name}"));
            }
        }
        for family in ["inet", "bridge"] {
            let table = Command::new("nft").args(["list", "table", family, &self.network.table]).output().unwrap();
            let table = String::from_utf8(table.stdout).unwrap();
            for line in table.lines().map(str::trim) {
                if line.starts_with("chain c-") || line.starts_with("elements") {
                    found.push(format!("nft {family} {line}"));
                }
            }
        }
        // The bridge's allocations are machine-wide: only this runtime's entries count.
        let file = std::path::Path::new("/run/hearth/network").join(&self.network.bridge).join("allocations.json");
        let allocations = std::fs::read(file).unwrap_or_default();
        if !allocations.is_empty() {
            let allocations: serde_json::Value = serde_json::from_slice(&allocations).unwrap();
            let root = std::path::absolute(&self.root).unwrap();
            for kind in ["addresses", "host_ports"] {
                for (key, holder) in allocations[kind].as_object().unwrap() {
                    if holder["runtime"].as_str() == root.to_str() {
                        found.push(format!("allocated {kind} {key} to {holder}"));
                    }
                }
            }
        }
        found
    }

    /// The nftables table as text (for assertion messages).
    pub fn table(&self) -> String {
        let out = Command::new("nft").args(["list", "table", "inet", &self.network.table]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Leftover files and cgroups of containers (as the plain container tests count them).
    pub fn container_leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        for dir in [self.root.join("state"), self.root.join("containers")] {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                found.push(format!("file {}", entry.path().display()));
            }
        }
        for parent in cgroup::dirs(Path::new(&format!("/{}", self.cgroup_parent))) {
            for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                if entry.file_type().unwrap().is_dir() {
                    found.push(format!("cgroup {}", entry.path().display()));
                }
            }
        }
        found
    }
}

/// Removes what a test left: containers (plain helper calls: this runs inside the test's
/// tokio runtime), the bridge and the nftables table.
impl Drop for NetRuntime {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(self.root.join("containers")).into_iter().flatten().flatten() {
            let _ = Command::new(env!("CARGO_BIN_EXE_hearth"))
                .args(["container-helper", "delete"])
                .arg(&self.root)
                .arg(entry.file_name())
                .status();
            let id = entry.file_name().to_string_lossy().to_string();
            for dir in cgroup::dirs(Path::new(&format!("/{}/{id}", self.cgroup_parent))) {
                let _ = std::fs::remove_dir(dir);
            }
        }
        for dir in cgroup::dirs(Path::new(&format!("/{}", self.cgroup_parent))) {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = Command::new("ip").args(["link", "del", &self.network.bridge]).output();
        for family in ["inet", "bridge"] {
            let _ = Command::new("nft").args(["delete", "table", family, &self.network.table]).output();
        }
        let _ = std::fs::remove_dir_all(&self.root);
        // The bridge's machine-wide allocations, once no runtime on it holds anything.
        let shared = Path::new("/run/hearth/network").join(&self.network.bridge);
        let file = std::fs::read(shared.join("allocations.json")).unwrap_or_default();
        let empty = |v: &serde_json::Value, kind: &str| v[kind].as_object().is_some_and(|o| o.is_empty());
        if serde_json::from_slice::<serde_json::Value>(&file)
            .is_ok_and(|v| empty(&v, "addresses") && empty(&v, "host_ports"))
        {
            let _ = std::fs::remove_dir_all(shared);
        }
    }
}
