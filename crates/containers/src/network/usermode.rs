//! User-mode networking for rootless runtimes: an ordinary user may make no bridge, veth
//! or nftables rule, so each networked container gets a `pasta` process (Debian's
//! `passt`) that joins the container's user and network namespaces, puts a tap `eth0` with
//! a fixed address in it, and carries its traffic through the user's own sockets: egress
//! as the user, and host TCP ports forwarded to the container (net-in).
//!
//! Invariants:
//! - The container's side is the same in every container (`10.0.2.100/24`, gateway
//!   `10.0.2.2`): each has its own namespace. The host's own ports are not reachable
//!   through the gateway (`--no-map-gw`), and nothing is forwarded from the container to
//!   the host's ports (`-T none -U none`). IPv4 only; port mappings are TCP.
//! - Egress rules are not enforced (pasta has no filter): the container reaches whatever
//!   the user can. The runtime says so once.
//! - Host ports are chosen at create (from the configured range, checked free by binding)
//!   and recorded; pasta starts once the container has started (it needs a process of the
//!   container it may inspect) and binds them. A port taken by someone else in between
//!   fails the start.
//! - The pasta process is known by its pid file (`ROOT/containers/ID/pasta.pid`, named on
//!   its command line); [`UserMode::detach`] ends it and is safe to repeat.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use crate::error::Error;
use crate::id::ContainerId;
use crate::network::alloc::host_port_is_free;
use crate::network::{NetworkInfo, NetworkSpec, PortMapping};

/// The container's address, prefix and gateway behind pasta.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const PREFIX_LEN: u8 = 24;
/// What `NetworkInfo::host_interface` says for a user-mode container: there is no host
/// interface, only the pasta process.
pub const HOST_INTERFACE: &str = "pasta";
const PROGRAM: &str = "pasta";
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// A rootless runtime's networking.
pub struct UserMode {
    host_ports: RangeInclusive<u16>,
    /// Serialises port choice within this runtime (pasta's bind is the final check).
    choosing: Mutex<()>,
    warned_egress: std::sync::Once,
}

impl UserMode {
    pub fn new(host_ports: RangeInclusive<u16>) -> Self {
        Self { host_ports, choosing: Mutex::new(()), warned_egress: std::sync::Once::new() }
    }

    /// Chooses the container's host ports and records them in `record` (at create: the
    /// start environment may name them). Blocking.
    pub fn plan(&self, id: &ContainerId, spec: &NetworkSpec, record: &Path) -> Result<NetworkInfo, Error> {
        spec.validate()?;
        if !spec.egress.is_empty() {
            self.warned_egress.call_once(|| {
                tracing::warn!(
                    "rootless networking cannot enforce egress rules: containers reach whatever the user running \
                     the runtime can"
                );
            });
        }
        let _choosing = self.choosing.lock().expect("port choice lock");
        let info = NetworkInfo {
            address: ADDRESS,
            gateway: GATEWAY,
            prefix_len: PREFIX_LEN,
            host_interface: HOST_INTERFACE.into(),
            port_mappings: self.choose_ports(id, &spec.port_mappings)?,
        };
        let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Network(e.to_string()))?;
        std::fs::write(record, json).map_err(Error::io(record))?;
        Ok(info)
    }

    /// Starts pasta for the planned container, in the namespaces of its process `pid` —
    /// after start: before, its only process is libcontainer's init, which is not
    /// dumpable, so an ordinary user may not open its namespaces. Blocking. On failure,
    /// [`detach`](Self::detach) ends whatever was started.
    pub fn connect(&self, id: &ContainerId, pid: i32, info: &NetworkInfo, pid_file: &Path) -> Result<(), Error> {
        let forwards: Vec<String> =
            info.port_mappings.iter().map(|m| format!("{}:{}", m.host_port, m.container_port)).collect();
        let forwards = if forwards.is_empty() { "none".to_string() } else { forwards.join(",") };
        let output = std::process::Command::new(PROGRAM)
            .args(["--config-net", "--quiet", "-4", "--no-map-gw", "-T", "none", "-U", "none", "-u", "none"])
            .args(["-I", crate::network::CONTAINER_INTERFACE])
            .args(["-a", &ADDRESS.to_string(), "-n", &PREFIX_LEN.to_string(), "-g", &GATEWAY.to_string()])
            .args(["-t", &forwards])
            .arg("-P")
            .arg(pid_file)
            .arg(pid.to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| Error::Network(format!("container {id}: run {PROGRAM} (Debian package `passt`): {e}")))?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tun = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun");
        let hint = match tun {
            Err(e) => format!(" (/dev/net/tun: {e}; it must be open to every user, mode 0666)"),
            Ok(_) => String::new(),
        };
        Err(Error::Network(format!("container {id}: {PROGRAM} failed: {}{hint}", stderr.trim())))
    }

    fn choose_ports(&self, id: &ContainerId, wanted: &[PortMapping]) -> Result<Vec<PortMapping>, Error> {
        let mut taken: Vec<u16> = wanted.iter().map(|m| m.host_port).filter(|&p| p != 0).collect();
        let mut chosen = Vec::new();
        for mapping in wanted {
            let host_port = match mapping.host_port {
                0 => {
                    let free = self.host_ports.clone().find(|p| !taken.contains(p) && host_port_is_free(*p));
                    free.ok_or_else(|| {
                        Error::Network(format!("container {id}: no free host port in {:?}", self.host_ports))
                    })?
                }
                port if host_port_is_free(port) => port,
                port => return Err(Error::Network(format!("container {id}: host port {port} is in use"))),
            };
            taken.push(host_port);
            chosen.push(PortMapping { container_port: mapping.container_port, host_port });
        }
        Ok(chosen)
    }

    /// Ends the container's pasta, if it runs. Safe to repeat.
    pub fn detach(&self, id: &ContainerId, pid_file: &Path) -> Result<(), Error> {
        let Some(pid) = pasta_pid(pid_file) else { return Ok(()) };
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + EXIT_WAIT;
        while pasta_pid(pid_file).is_some() {
            if std::time::Instant::now() > deadline {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                return Err(Error::Network(format!("container {id}: {PROGRAM} {pid} did not end on SIGTERM")));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = std::fs::remove_file(pid_file);
        Ok(())
    }
}

/// The pid in `pid_file` if that process is alive and is the pasta started with this pid
/// file (a recycled pid is some other process).
fn pasta_pid(pid_file: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let file = PathBuf::from(pid_file).into_os_string().into_encoded_bytes();
    let ours = cmdline.split(|&b| b == 0).any(|arg| arg == file.as_slice());
    (ours && crate::runtime::is_alive(pid)).then_some(pid)
}
