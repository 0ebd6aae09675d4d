//! What a container asks of the network: port mappings (net-in) and egress rules shaped
//! like Cloud Foundry security groups (protocol, destination, ports). Pure: parsing and
//! validation, no I/O.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A networked container: its own network namespace with `eth0` on the runtime's bridge.
/// `ContainerSpec::network = None` keeps the loopback-only namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSpec {
    /// TCP ports of the container reachable through the host's addresses.
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// The allow list for traffic leaving the container (besides replies). Empty: nothing.
    #[serde(default)]
    pub egress: Vec<EgressRule>,
}

/// Host TCP port `host_port` forwards to `container_port` on the container's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub container_port: u16,
    /// 0: take a free one from the runtime's host port range.
    #[serde(default)]
    pub host_port: u16,
}

/// One allowed kind of outgoing traffic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRule {
    pub protocol: Protocol,
    pub destination: Destination,
    /// Destination ports, only for `tcp` and `udp`; `None` means all ports.
    #[serde(default)]
    pub ports: Option<PortRange>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    All,
    Tcp,
    Udp,
    Icmp,
}

/// IPv4 destinations: a CIDR (`10.0.0.0/8`, a bare address is a /32) or an inclusive
/// range (`10.0.0.1-10.0.0.9`), written as strings in JSON like CF's security groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Destination {
    Cidr(Ipv4Addr, u8),
    Range(Ipv4Addr, Ipv4Addr),
}

/// An inclusive port range (`8080` or `8000-8100`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Destination {
    /// Whether `addr` is one of the destination's addresses.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        match *self {
            Destination::Cidr(net, len) => mask(u32::from(addr), len) == u32::from(net),
            Destination::Range(a, b) => (a..=b).contains(&addr),
        }
    }
}

/// The network part of an address (`len` leading bits).
pub(crate) fn mask(addr: u32, len: u8) -> u32 {
    if len == 0 { 0 } else { addr & (u32::MAX << (32 - u32::from(len))) }
}

/// Parses `a.b.c.d/len`, refusing host bits set after the prefix.
pub(crate) fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = s.split_once('/').unwrap_or((s, "32"));
    let addr: Ipv4Addr = addr.parse().map_err(|_| format!("{s:?} is not an IPv4 address or CIDR"))?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| format!("{s:?}: prefix length must be 0-32"))?;
    if mask(u32::from(addr), len) != u32::from(addr) {
        return Err(format!(
            "{s:?} has host bits set (did you mean {}/{len}?)",
            Ipv4Addr::from(mask(addr.into(), len))
        ));
    }
    Ok((addr, len))
}

impl FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some((a, b)) = s.split_once('-') {
            let parse = |p: &str| p.trim().parse::<Ipv4Addr>().map_err(|_| format!("{s:?} is not an IPv4 range a-b"));
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(format!("{s:?}: the range's first address is after its last"));
            }
            return Ok(Destination::Range(a, b));
        }
        let (addr, len) = parse_cidr(s)?;
        Ok(Destination::Cidr(addr, len))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Cidr(addr, len) => write!(f, "{addr}/{len}"),
            Destination::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

impl TryFrom<String> for Destination {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Destination> for String {
    fn from(d: Destination) -> String {
        d.to_string()
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let parse = |p: &str| p.trim().parse::<u16>().ok().filter(|p| *p > 0);
        match (parse(a), parse(b)) {
            (Some(first), Some(last)) if first <= last => Ok(PortRange { first, last }),
            _ => Err(format!("{s:?} is not a port or port range within 1-65535")),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last { write!(f, "{}", self.first) } else { write!(f, "{}-{}", self.first, self.last) }
    }
}

impl TryFrom<String> for PortRange {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<PortRange> for String {
    fn from(p: PortRange) -> String {
        p.to_string()
    }
}

impl NetworkSpec {
    /// Refuses a spec that cannot be set up as written, before anything is made.
    pub fn validate(&self) -> Result<(), Error> {
        let refuse = |why: String| Err(Error::InvalidSpec(why));
        let mut container_ports = HashSet::new();
        let mut host_ports = HashSet::new();
        for m in &self.port_mappings {
            if m.container_port == 0 {
                return refuse("port mapping: container_port must be 1-65535, not 0".into());
            }
            if !container_ports.insert(m.container_port) {
                return refuse(format!("port mapping: container port {} is mapped twice", m.container_port));
            }
            if m.host_port != 0 && !host_ports.insert(m.host_port) {
                return refuse(format!("port mapping: host port {} is mapped twice", m.host_port));
            }
        }
        for rule in &self.egress {
            if rule.ports.is_some() && !matches!(rule.protocol, Protocol::Tcp | Protocol::Udp) {
                return refuse(format!("egress rule to {}: ports only apply to tcp and udp", rule.destination));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_as_cidrs_addresses_and_ranges() {
        assert_eq!("10.0.0.0/8".parse(), Ok(Destination::Cidr(Ipv4Addr::new(10, 0, 0, 0), 8)));
        assert_eq!("1.2.3.4".parse(), Ok(Destination::Cidr(Ipv4Addr::new(1, 2, 3, 4), 32)));
        let range: Destination = "10.0.0.1-10.0.0.9".parse().unwrap();
        assert!(range.contains(Ipv4Addr::new(10, 0, 0, 9)) && !range.contains(Ipv4Addr::new(10, 0, 0, 10)));
        assert!("0.0.0.0/0".parse::<Destination>().unwrap().contains(Ipv4Addr::new(8, 8, 8, 8)));
        for bad in ["10.0.0.0/33", "10.0.0.1/8", "10.0.0", "300.0.0.1/32", "10.0.0.9-10.0.0.1", "a-b", "", "::1"] {
            assert!(bad.parse::<Destination>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn port_ranges_parse_and_refuse_zero_and_reversed() {
        assert_eq!("80".parse(), Ok(PortRange { first: 80, last: 80 }));
        assert_eq!("8000-8100".parse(), Ok(PortRange { first: 8000, last: 8100 }));
        for bad in ["0", "90-80", "65536", "x", "1-"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn specs_round_trip_as_json_and_bad_ones_are_refused() {
        let json = r#"{"port_mappings":[{"container_port":8080}],
            "egress":[{"protocol":"tcp","destination":"10.1.0.0/16","ports":"443"},
                      {"protocol":"icmp","destination":"10.0.0.1-10.0.0.2"}]}"#;
        let spec: NetworkSpec = serde_json::from_str(json).unwrap();
        assert_eq!(spec.port_mappings, [PortMapping { container_port: 8080, host_port: 0 }]);
        assert_eq!(spec.egress[0].ports, Some(PortRange { first: 443, last: 443 }));
        spec.validate().unwrap();
        let again: NetworkSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
        assert!(
            serde_json::from_str::<NetworkSpec>(r#"{"egress":[{"protocol":"tcp","destination":"10.0.0.1/8"}]}"#)
                .is_err()
        );

        let with = |port_mappings: Vec<PortMapping>, egress: Vec<EgressRule>| NetworkSpec { port_mappings, egress };
        let map = |container_port, host_port| PortMapping { container_port, host_port };
        let icmp_with_ports = EgressRule {
            protocol: Protocol::Icmp,
            destination: "10.0.0.0/8".parse().unwrap(),
            ports: Some("80".parse().unwrap()),
        };
        for (bad, why) in [
            (with(vec![map(0, 0)], vec![]), "not 0"),
            (with(vec![map(80, 61000), map(81, 61000)], vec![]), "host port 61000 is mapped twice"),
            (with(vec![map(80, 0), map(80, 0)], vec![]), "container port 80 is mapped twice"),
            (with(vec![], vec![icmp_with_ports]), "only apply to tcp and udp"),
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
