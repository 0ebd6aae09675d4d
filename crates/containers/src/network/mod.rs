//! Container networking (silk's job, for one host): each networked container gets its own
//! network namespace (made by libcontainer), a veth pair whose host end is an isolated
//! port of the runtime's bridge and whose other end is the container's `eth0`, an address
//! from the bridge's subnet, a default route via the bridge's address, and nftables rules:
//! masquerade for egress, DNAT from host ports, an egress allow list per container, no
//! traffic between containers and none to the host's own ports unless a rule allows it,
//! and no frame from a container's port but IPv4 and ARP from its own address.
//!
//! Invariants:
//! - Addresses and host ports are handed out machine-wide per bridge (several runtimes
//!   may share one bridge) from `/run/hearth/network/BRIDGE/allocations.json` under a
//!   lock ([`alloc`]); the allocations are the truth about what a container holds, so
//!   [`Network::detach`] can release everything from them alone (after a restart, after
//!   a create that failed half-way) and is safe to repeat.
//! - Everything the kernel holds for a container is named after its address: the veth
//!   `hv<hex address>`, the nftables chain `c-<hex address>`, map and set elements keyed
//!   by the address or the veth. A link with such a name belongs to the runtime.
//! - IPv4 only; port mappings are TCP. Needs root (netlink, nft, `setns`).
//! - Knows nothing of libcontainer: it is given the pid of the container's init.

pub mod alloc;
mod config;
mod netlink;
mod nft;
mod spec;
pub mod usermode;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

pub use config::{NetworkConfig, Subnet};
pub use spec::{Destination, EgressRule, NetworkSpec, PortMapping, PortRange, Protocol};

use crate::error::Error;
use crate::id::ContainerId;
use alloc::AllocationStore;
use netlink::Netlink;

/// The interface name of the container's end of its veth pair.
pub const CONTAINER_INTERFACE: &str = "eth0";

/// What a networked container got. Kept as `ROOT/containers/ID/network.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix_len: u8,
    /// The host end of the veth pair.
    pub host_interface: String,
    /// Each mapping with the host port it actually got.
    pub port_mappings: Vec<PortMapping>,
}

/// The hardware address of the container at `address`: locally administered, unicast,
/// and derived from the address, so a host's ARP entry for an address stays right when a
/// new container gets an address an old one had (otherwise the host keeps sending to the
/// gone container's MAC until the entry expires, tens of seconds).
pub fn container_mac(address: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = address.octets();
    [0x0a, 0x48, a, b, c, d]
}

/// The host interface of the veth pair of the container at `address`.
pub fn host_interface(address: Ipv4Addr) -> String {
    format!("hv{:08x}", u32::from(address))
}

/// One runtime's networking: its settings, its allocations, and whether the shared
/// parts (bridge, forwarding, the nftables table) are known to be in place.
pub struct Network {
    config: NetworkConfig,
    /// The runtime's root: names its containers' entries in the shared allocations.
    runtime_root: PathBuf,
    allocations: AllocationStore,
    shared_ready: Mutex<bool>,
}

impl Network {
    pub fn new(config: NetworkConfig, runtime_root: &Path) -> Self {
        let runtime_root = std::path::absolute(runtime_root).unwrap_or_else(|_| runtime_root.to_path_buf());
        let allocations = AllocationStore::for_bridge(&config.bridge);
        let network = Self { config, runtime_root, allocations, shared_ready: Mutex::new(false) };
        if let Err(e) = network.adopt_runtime_file() {
            tracing::warn!(error = %e, "could not move the runtime's own allocations file into the machine-wide one");
        }
        network
    }

    /// Runtimes before allocations were machine-wide kept them in `ROOT/network/`: what
    /// that file names moves into the bridge's file (the containers may still run).
    fn adopt_runtime_file(&self) -> Result<(), Error> {
        #[derive(Deserialize)]
        struct Old {
            addresses: std::collections::BTreeMap<Ipv4Addr, ContainerId>,
            host_ports: std::collections::BTreeMap<u16, ContainerId>,
        }
        let file = self.runtime_root.join("network/allocations.json");
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(&file)(e)),
        };
        let old: Old =
            serde_json::from_slice(&bytes).map_err(|e| Error::Network(format!("{}: {e}", file.display())))?;
        self.allocations.update(|a| {
            for (address, id) in old.addresses {
                a.addresses.entry(address).or_insert_with(|| alloc::Holder::new(&self.runtime_root, &id));
            }
            for (port, id) in old.host_ports {
                a.host_ports.entry(port).or_insert_with(|| alloc::Holder::new(&self.runtime_root, &id));
            }
            Ok(())
        })?;
        std::fs::remove_file(&file).map_err(Error::io(&file))
    }

    fn holder(&self, id: &ContainerId) -> alloc::Holder {
        alloc::Holder::new(&self.runtime_root, id)
    }

    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }

    /// What this runtime's containers hold (the bridge's file may name other runtimes').
    pub fn allocations(&self) -> Result<alloc::Allocations, Error> {
        Ok(self.allocations.load()?.of_runtime(&self.runtime_root))
    }

    /// Networks the created container whose init is `pid`, and records the result in
    /// `record`. Blocking (netlink, nft, a file lock): call it off the async threads. On
    /// failure, [`detach`](Self::detach) releases what was made.
    pub fn attach(&self, id: &ContainerId, pid: i32, spec: &NetworkSpec, record: &Path) -> Result<NetworkInfo, Error> {
        spec.validate()?;
        self.ensure_shared()?;
        let subnet = self.config.subnet;
        let holder = self.holder(id);
        let lease = self.allocations.update(|a| {
            a.prune(Path::exists, address_is_free);
            a.acquire(&holder, &subnet, &self.config.host_ports, &spec.port_mappings, alloc::host_port_is_free)
        })?;
        // nft works on the rules while the links are made (they name the veth, they do
        // not need it to exist yet).
        let rules = nft::add_container(&self.config, lease.address, &spec.egress, &lease.ports);
        let pending = nft::Pending::start(&rules)?;
        let links = self.make_links(id, pid, lease.address);
        let applied = pending.finish();
        links?;
        if applied.is_err() {
            // The tables may have been removed from outside (a firewall reload): put the
            // base back once and try again.
            *self.shared_ready.lock().expect("network lock") = false;
            self.ensure_shared()?;
            nft::apply(&rules)?;
        }

        let host_name = host_interface(lease.address);
        let info = NetworkInfo {
            address: lease.address,
            gateway: subnet.gateway(),
            prefix_len: subnet.prefix_len(),
            host_interface: host_name,
            port_mappings: lease
                .ports
                .iter()
                .map(|&(host_port, container_port)| PortMapping { container_port, host_port })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&info).map_err(|e| Error::Network(e.to_string()))?;
        std::fs::write(record, json).map_err(Error::io(record))?;
        Ok(info)
    }

    /// The veth pair (host end an isolated bridge port, other end `eth0` in the
    /// container's namespace) and, inside, the address, loopback and default route.
    fn make_links(&self, id: &ContainerId, pid: i32, address: Ipv4Addr) -> Result<(), Error> {
        let subnet = self.config.subnet;
        let failed = |what: &str| {
            let what = what.to_string();
            move |e: std::io::Error| Error::Network(format!("container {id}: {what}: {e}"))
        };
        let netns_path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let netns = File::open(&netns_path).map_err(failed("open its network namespace"))?;

        let mut host = Netlink::new().map_err(failed("netlink"))?;
        let bridge = host
            .link_index(&self.config.bridge)
            .map_err(failed("find the bridge"))?
            .ok_or_else(|| Error::Network(format!("bridge {} is gone", self.config.bridge)))?;
        let veth = host
            .add_veth(&host_interface(address), CONTAINER_INTERFACE, container_mac(address), &netns, bridge)
            .map_err(failed("create the veth"))?;
        host.isolate_bridge_port(veth).map_err(failed("isolate the bridge port"))?;
        host.set_up(veth).map_err(failed("bring the veth up"))?;

        let mut inside = Netlink::in_namespace(&netns).map_err(failed("enter its network namespace"))?;
        let lo = inside.link_index("lo").map_err(failed("find lo"))?.ok_or_else(|| Error::Network("no lo".into()))?;
        inside.set_up(lo).map_err(failed("bring lo up"))?;
        let eth0 = inside
            .link_index(CONTAINER_INTERFACE)
            .map_err(failed("find eth0"))?
            .ok_or_else(|| Error::Network(format!("container {id}: eth0 did not arrive")))?;
        inside.add_address(eth0, address, subnet.prefix_len()).map_err(failed("address eth0"))?;
        inside.set_up(eth0).map_err(failed("bring eth0 up"))?;
        inside.add_default_route(subnet.gateway()).map_err(failed("add the default route"))
    }

    /// Releases everything the container holds: its veth, its nftables chain and map
    /// elements, its address and host ports. Blocking. Safe to repeat; a container
    /// without networking holds nothing.
    pub fn detach(&self, id: &ContainerId) -> Result<(), Error> {
        let holder = self.holder(id);
        let held = self.allocations.load()?;
        let addresses: Vec<Ipv4Addr> = held.addresses.iter().filter(|(_, h)| **h == holder).map(|(a, _)| *a).collect();
        let ports: Vec<u16> = held.host_ports.iter().filter(|(_, h)| **h == holder).map(|(p, _)| *p).collect();
        if addresses.is_empty() && ports.is_empty() {
            return Ok(());
        }
        let failed = |e: std::io::Error| Error::Network(format!("container {id}: remove the veth: {e}"));
        let mut netlink = Netlink::new().map_err(failed)?;
        for address in &addresses {
            netlink.delete_link(&host_interface(*address)).map_err(failed)?;
            nft::remove(&nft::remove_container(&self.config, *address, &ports))?;
        }
        if addresses.is_empty() {
            // Ports without an address: a create that failed between the two.
            let t = format!("inet {}", self.config.table);
            let commands: Vec<String> = ports.iter().map(|p| format!("delete element {t} ports {{ {p} }}")).collect();
            nft::remove(&commands)?;
        }
        self.allocations.update(|a| {
            a.release(&holder);
            Ok(())
        })
    }

    /// Reads what `attach` recorded.
    pub fn read_record(record: &Path) -> Option<NetworkInfo> {
        serde_json::from_slice(&std::fs::read(record).ok()?).ok()
    }

    /// The bridge (with the gateway address, up), IPv4 forwarding, and the nftables
    /// table's base: made once per `Network`, each step idempotent.
    fn ensure_shared(&self) -> Result<(), Error> {
        let mut ready = self.shared_ready.lock().expect("network lock");
        if *ready {
            return Ok(());
        }
        self.config.validate()?;
        let config = &self.config;
        let mut netlink = Netlink::new().map_err(|e| Error::Network(format!("netlink: {e}")))?;
        netlink
            .ensure_bridge(&config.bridge, config.subnet.gateway(), config.subnet.prefix_len())
            .map_err(|e| Error::Network(format!("bridge {}: {e}", config.bridge)))?;
        // The host's loopback may reach mapped ports (DNAT in output, then masquerade).
        write_sysctl(&format!("/proc/sys/net/ipv4/conf/{}/route_localnet", config.bridge), "1")?;
        write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
        nft::apply(&nft::base(config))?;
        *ready = true;
        Ok(())
    }
}

/// Whether no veth on the host is named after `address` (none of any runtime's
/// containers has it).
fn address_is_free(address: Ipv4Addr) -> bool {
    !Path::new("/sys/class/net").join(host_interface(address)).exists()
}

fn write_sysctl(path: &str, value: &str) -> Result<(), Error> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(path, value).map_err(Error::io(path))
}
