//! Container addresses and host ports, handed out machine-wide per bridge: every runtime
//! on the bridge (two `hearth server`s, a test beside a server) shares
//! `/run/hearth/network/BRIDGE/allocations.json`, so no two containers on one bridge get
//! one address or host port. Each entry names its holder: the runtime's root and the
//! container. Every change holds an exclusive `flock` on the directory's `lock`: creates in
//! one process (each opens the lock file itself, and flock locks belong to the open file)
//! and in several processes are serialised. The directory is on tmpfs: after a reboot no
//! container holds anything, and neither does the file.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::id::ContainerId;
use crate::network::config::Subnet;
use crate::network::spec::PortMapping;

/// Where the allocations of every runtime on a bridge are kept.
pub const MACHINE_DIR: &str = "/run/hearth/network";

/// A container of one runtime (named by its root directory).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Holder {
    pub runtime: PathBuf,
    pub container: ContainerId,
}

impl Holder {
    pub fn new(runtime: &Path, container: &ContainerId) -> Self {
        Self { runtime: runtime.to_path_buf(), container: container.clone() }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "container {} (runtime {})", self.container, self.runtime.display())
    }
}

/// Who holds what. Serialised as the allocations file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocations {
    pub addresses: BTreeMap<Ipv4Addr, Holder>,
    pub host_ports: BTreeMap<u16, Holder>,
}

/// What one container got: its address and `(host_port, container_port)` pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub ports: Vec<(u16, u16)>,
}

impl Allocations {
    /// Gives `id` the lowest free address and the host ports its mappings ask for (a
    /// free one from `range` for each `host_port: 0`, skipping ports something on the
    /// host already listens on). Anything `id` held before is released first. Changes
    /// nothing when it fails.
    pub fn acquire(
        &mut self,
        id: &Holder,
        subnet: &Subnet,
        range: &RangeInclusive<u16>,
        mappings: &[PortMapping],
        port_is_free: impl Fn(u16) -> bool,
    ) -> Result<Lease, Error> {
        let mut next = self.clone();
        next.release(id);
        let address = subnet
            .container_addresses()
            .find(|a| !next.addresses.contains_key(a))
            .ok_or_else(|| Error::Network(format!("no free address left in {subnet}")))?;
        next.addresses.insert(address, id.clone());
        let mut ports = Vec::new();
        for m in mappings.iter().filter(|m| m.host_port != 0) {
            if let Some(holder) = next.host_ports.get(&m.host_port) {
                return Err(Error::Network(format!("host port {} is already mapped to {holder}", m.host_port)));
            }
            next.host_ports.insert(m.host_port, id.clone());
            ports.push((m.host_port, m.container_port));
        }
        for m in mappings.iter().filter(|m| m.host_port == 0) {
            let port = range
                .clone()
                .find(|p| !next.host_ports.contains_key(p) && port_is_free(*p))
                .ok_or_else(|| Error::Network(format!("no free host port left in {range:?}")))?;
            next.host_ports.insert(port, id.clone());
            ports.push((port, m.container_port));
        }
        *self = next;
        Ok(Lease { address, ports })
    }

    /// Frees everything `id` holds; nothing if it holds nothing.
    pub fn release(&mut self, id: &Holder) {
        self.addresses.retain(|_, holder| holder != id);
        self.host_ports.retain(|_, holder| holder != id);
    }

    /// Frees what holders of runtimes that are gone (their root directory removed) hold,
    /// unless one of their addresses is still in use on the host (`address_is_free` says
    /// no: its veth is still there, so is the container).
    pub fn prune(&mut self, runtime_exists: impl Fn(&Path) -> bool, address_is_free: impl Fn(Ipv4Addr) -> bool) {
        let mut dead: Vec<Holder> = self
            .addresses
            .values()
            .chain(self.host_ports.values())
            .filter(|h| !runtime_exists(&h.runtime))
            .cloned()
            .collect();
        dead.dedup();
        for holder in dead {
            let in_use = self.addresses.iter().any(|(a, h)| *h == holder && !address_is_free(*a));
            if !in_use {
                self.release(&holder);
            }
        }
    }

    /// Only what containers of the runtime at `root` hold.
    pub fn of_runtime(&self, root: &Path) -> Allocations {
        Allocations {
            addresses: self.addresses.iter().filter(|(_, h)| h.runtime == root).map(|(a, h)| (*a, h.clone())).collect(),
            host_ports: self
                .host_ports
                .iter()
                .filter(|(_, h)| h.runtime == root)
                .map(|(p, h)| (*p, h.clone()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.addresses.is_empty() && self.host_ports.is_empty()
    }
}

/// Whether nothing on the host listens on TCP `port` (a listener there would be
/// shadowed by the mapping).
pub fn host_port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok()
}

/// An allocations file (in `dir`), read and written under the lock.
#[derive(Clone, Debug)]
pub struct AllocationStore {
    dir: PathBuf,
}

impl AllocationStore {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    /// The machine-wide store of the runtimes on `bridge`.
    pub fn for_bridge(bridge: &str) -> Self {
        Self::new(&Path::new(MACHINE_DIR).join(bridge))
    }

    fn file(&self) -> PathBuf {
        self.dir.join("allocations.json")
    }

    /// The current allocations (empty when there is no file yet).
    pub fn load(&self) -> Result<Allocations, Error> {
        let file = self.file();
        match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Network(format!("{}: {e}", file.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Allocations::default()),
            Err(e) => Err(Error::io(file)(e)),
        }
    }

    /// Runs `change` on the allocations under the lock and saves the result (atomically:
    /// a temporary file renamed over the old one) if it succeeds.
    pub fn update<T>(&self, change: impl FnOnce(&mut Allocations) -> Result<T, Error>) -> Result<T, Error> {
        std::fs::create_dir_all(&self.dir).map_err(Error::io(&self.dir))?;
        let lock_path = self.dir.join("lock");
        let lock = std::fs::File::create(&lock_path).map_err(Error::io(&lock_path))?;
        lock.lock().map_err(Error::io(&lock_path))?;
        let mut allocations = self.load()?;
        let result = change(&mut allocations)?;
        let tmp = self.dir.join("allocations.json.tmp");
        let json = serde_json::to_vec_pretty(&allocations).map_err(|e| Error::Network(e.to_string()))?;
        let mut out = std::fs::File::create(&tmp).map_err(Error::io(&tmp))?;
        // No fsync: the file must survive a restart of the server, which rename alone
        // gives; after a crash of the machine no container survives either.
        out.write_all(&json).map_err(Error::io(&tmp))?;
        std::fs::rename(&tmp, self.file()).map_err(Error::io(self.file()))?;
        Ok(result)
        // The lock is released when `lock` is closed.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> Holder {
        Holder::new(Path::new("/var/lib/hearth/containers"), &ContainerId::new(s).unwrap())
    }

    #[test]
    fn addresses_and_ports_are_the_lowest_free_and_come_back_on_release() {
        let subnet: Subnet = "10.9.0.0/29".parse().unwrap();
        let range = 7000..=7002;
        let mut a = Allocations::default();
        let map = |container_port, host_port| PortMapping { container_port, host_port };
        let first = a.acquire(&id("a"), &subnet, &range, &[map(80, 0), map(81, 9000)], |_| true).unwrap();
        assert_eq!(first, Lease { address: Ipv4Addr::new(10, 9, 0, 2), ports: vec![(9000, 81), (7000, 80)] });
        // 7001 is in use on the host: skipped.
        let second = a.acquire(&id("b"), &subnet, &range, &[map(80, 0)], |p| p != 7001).unwrap();
        assert_eq!(second, Lease { address: Ipv4Addr::new(10, 9, 0, 3), ports: vec![(7002, 80)] });

        let before = a.clone();
        let err = a.acquire(&id("c"), &subnet, &range, &[map(80, 9000)], |_| true).unwrap_err();
        assert!(err.to_string().contains("host port 9000 is already mapped to container a (runtime"), "{err}");
        let err = a.acquire(&id("c"), &subnet, &range, &[map(80, 0)], |p| p != 7001).unwrap_err();
        assert!(err.to_string().contains("no free host port"), "{err}");
        assert_eq!(a, before, "a failed acquire changes nothing");

        a.release(&id("a"));
        let third = a.acquire(&id("c"), &subnet, &range, &[map(80, 0)], |_| true).unwrap();
        assert_eq!(third, Lease { address: Ipv4Addr::new(10, 9, 0, 2), ports: vec![(7000, 80)] });
        for c in ["a", "b", "c"] {
            a.release(&id(c));
        }
        assert!(a.is_empty());
    }

    #[test]
    fn a_full_subnet_is_refused() {
        let subnet: Subnet = "10.9.0.0/30".parse().unwrap(); // gateway .1, one container (.2)
        let mut a = Allocations::default();
        a.acquire(&id("a"), &subnet, &(1..=1), &[], |_| true).unwrap();
        let err = a.acquire(&id("b"), &subnet, &(1..=1), &[], |_| true).unwrap_err();
        assert!(err.to_string().contains("no free address left in 10.9.0.0/30"), "{err}");
    }

    #[test]
    fn concurrent_acquires_through_separate_opens_never_share_an_address_or_port() {
        let dir = std::env::temp_dir().join(format!("hearth-alloc-race-{}", std::process::id()));
        let subnet: Subnet = "10.9.0.0/24".parse().unwrap();
        let map = [PortMapping { container_port: 80, host_port: 0 }];
        // Each thread has its own store (its own open of the lock file), as another
        // process would.
        let leases: Vec<Lease> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|t| {
                    let (dir, subnet) = (&dir, &subnet);
                    s.spawn(move || {
                        let store = AllocationStore::new(dir);
                        (0..25)
                            .map(|i| {
                                let id = id(&format!("t{t}-{i}"));
                                store.update(|a| a.acquire(&id, subnet, &(7000..=7999), &map, |_| true)).unwrap()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        let addresses: std::collections::HashSet<_> = leases.iter().map(|l| l.address).collect();
        let ports: std::collections::HashSet<_> = leases.iter().map(|l| l.ports[0].0).collect();
        assert_eq!((addresses.len(), ports.len()), (200, 200), "every lease is its own");
        let stored = AllocationStore::new(&dir).load().unwrap();
        assert_eq!((stored.addresses.len(), stored.host_ports.len()), (200, 200), "no update was lost");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_store_keeps_allocations_across_instances() {
        let dir = std::env::temp_dir().join(format!("hearth-alloc-test-{}", std::process::id()));
        let store = AllocationStore::new(&dir);
        let subnet: Subnet = "10.9.0.0/24".parse().unwrap();
        let lease = store.update(|a| a.acquire(&id("a"), &subnet, &(7000..=7001), &[], |_| true)).unwrap();
        let again = AllocationStore::new(&dir).load().unwrap();
        assert_eq!(again.addresses.get(&lease.address), Some(&id("a")));
        store
            .update(|a| {
                a.release(&id("a"));
                Ok(())
            })
            .unwrap();
        assert!(store.load().unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn gone_runtimes_are_pruned_unless_their_containers_are_still_up() {
        let subnet: Subnet = "10.9.0.0/24".parse().unwrap();
        let mut a = Allocations::default();
        let map = [PortMapping { container_port: 80, host_port: 0 }];
        a.acquire(&id("a"), &subnet, &(7000..=7010), &map, |_| true).unwrap();
        let gone = Holder::new(Path::new("/nonexistent/runtime"), &ContainerId::new("b").unwrap());
        let lease_b = a.acquire(&gone, &subnet, &(7000..=7010), &map, |_| true).unwrap();
        let alive = |p: &Path| p != Path::new("/nonexistent/runtime");
        // Its runtime is gone but its veth is still up: kept.
        a.prune(alive, |x| x != lease_b.address);
        assert_eq!(a.addresses.get(&lease_b.address), Some(&gone));
        // Its veth went too: freed, and only its entries.
        a.prune(alive, |_| true);
        assert_eq!(a.addresses.len(), 1);
        assert_eq!(a.host_ports.len(), 1);
        assert_eq!(a.of_runtime(Path::new("/var/lib/hearth/containers")), a);
        assert!(a.of_runtime(Path::new("/elsewhere")).is_empty());
    }
}
