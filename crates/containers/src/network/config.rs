//! The runtime's network settings: one bridge, one IPv4 subnet, one nftables table and a
//! range of host ports to hand out. Pure.

use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use crate::error::Error;
use crate::network::spec::{mask, parse_cidr};

/// Where a runtime's networked containers live on the host.
///
/// Defaults: bridge `hearth0`, subnet `10.254.0.0/22` (1021 containers; the first host
/// address, `10.254.0.1`, is the bridge's and every container's gateway), nftables table
/// `inet hearth`, host ports 61000-61999 (above Linux's default ephemeral range
/// 32768-60999, so allocated ports do not collide with outgoing connections).
/// Runtimes that share a host need distinct bridges, subnets, tables and port ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    pub bridge: String,
    pub subnet: Subnet,
    pub table: String,
    pub host_ports: RangeInclusive<u16>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            bridge: "hearth0".into(),
            subnet: "10.254.0.0/22".parse().expect("a valid default subnet"),
            table: "hearth".into(),
            host_ports: 61000..=61999,
        }
    }
}

impl NetworkConfig {
    /// Refuses settings that cannot work (names the kernel or nft would refuse, a subnet
    /// too small for a gateway and one container, an empty port range).
    pub fn validate(&self) -> Result<(), Error> {
        let refuse = |why: String| Err(Error::Network(format!("network settings: {why}")));
        let name_ok = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if self.bridge.is_empty() || self.bridge.len() > 15 || !name_ok(&self.bridge) {
            return refuse(format!("bridge name {:?} must be 1-15 characters from [A-Za-z0-9_-]", self.bridge));
        }
        if self.table.is_empty() || self.table.len() > 64 || !name_ok(&self.table) {
            return refuse(format!("nftables table {:?} must be 1-64 characters from [A-Za-z0-9_-]", self.table));
        }
        if self.subnet.len > 30 {
            return refuse(format!("subnet {} is too small (at most /30)", self.subnet));
        }
        if self.host_ports.is_empty() || *self.host_ports.start() == 0 {
            return refuse(format!("host port range {:?} is empty or starts at 0", self.host_ports));
        }
        Ok(())
    }
}

/// An IPv4 network: address and prefix length, no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    addr: Ipv4Addr,
    len: u8,
}

impl Subnet {
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// The bridge's address and every container's default gateway: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// The addresses containers may get: after the gateway, before the broadcast address.
    pub fn container_addresses(&self) -> impl Iterator<Item = Ipv4Addr> {
        let first = u32::from(self.addr) + 2;
        let broadcast = u32::from(self.addr) | (u32::MAX >> self.len);
        (first..broadcast).map(Ipv4Addr::from)
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        mask(addr.into(), self.len) == u32::from(self.addr)
    }
}

impl std::str::FromStr for Subnet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let (addr, len) = parse_cidr(s).map_err(|e| Error::Network(format!("subnet {e}")))?;
        Ok(Subnet { addr, len })
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_subnet_has_a_gateway_and_1021_container_addresses() {
        let config = NetworkConfig::default();
        config.validate().unwrap();
        assert_eq!(config.subnet.gateway(), Ipv4Addr::new(10, 254, 0, 1));
        let addresses: Vec<_> = config.subnet.container_addresses().collect();
        assert_eq!(addresses.len(), 1021);
        assert_eq!(addresses[0], Ipv4Addr::new(10, 254, 0, 2));
        assert_eq!(addresses[1020], Ipv4Addr::new(10, 254, 3, 254));
        assert!(config.subnet.contains(Ipv4Addr::new(10, 254, 3, 255)));
        assert!(!config.subnet.contains(Ipv4Addr::new(10, 254, 4, 0)));
    }

    #[test]
    fn bad_settings_are_refused() {
        let base = NetworkConfig::default();
        for bad in [
            NetworkConfig { bridge: "a-very-long-bridge-name".into(), ..base.clone() },
            NetworkConfig { table: "bad table".into(), ..base.clone() },
            NetworkConfig { subnet: "10.0.0.0/31".parse().unwrap(), ..base.clone() },
            NetworkConfig { host_ports: 0..=10, ..base.clone() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!("10.0.0.1/24".parse::<Subnet>().is_err());
    }
}
