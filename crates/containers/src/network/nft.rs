//! The nftables side: the runtime's tables (`inet T`: NAT, port mappings, isolation from
//! the host, egress allow lists; `bridge T`: anti-spoofing on the containers' ports) as
//! `nft -f -` batches. Text generation is
//! pure; [`apply`] runs one batch.
//!
//! Static rules live in base chains that are rewritten whole (flush + add) when a runtime
//! first networks a container, so repeating that is harmless. Everything per container
//! is an element of a map (`egress`: source address → jump to the container's own chain;
//! `ports`: host port → address . port) or the container's chain, so removing a container
//! never needs rule handles.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};

use crate::error::Error;
use crate::network::config::NetworkConfig;
use crate::network::host_interface;
use crate::network::spec::{Destination, EgressRule, Protocol};

/// The table's base: maps, the NAT chains and the filter chains.
pub fn base(config: &NetworkConfig) -> String {
    let t = format!("inet {}", config.table);
    let b = &config.bridge;
    let subnet = config.subnet;
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("add table {t}"));
    line(format!("add map {t} egress {{ type ipv4_addr : verdict; }}"));
    line(format!("add map {t} ports {{ type inet_service : ipv4_addr . inet_service; }}"));
    let mut chain = |name: &str, hook: &str, rules: &[String]| {
        line(format!("add chain {t} {name} {{ {hook}; policy accept; }}"));
        line(format!("flush chain {t} {name}"));
        for rule in rules {
            line(format!("add rule {t} {name} {rule}"));
        }
    };
    // Port mappings: traffic to any of the host's own addresses, from outside
    // (prerouting) or from the host itself (output).
    let dnat = "meta nfproto ipv4 fib daddr type local dnat ip to tcp dport map @ports".to_string();
    chain("prerouting", "type nat hook prerouting priority dstnat", std::slice::from_ref(&dnat));
    chain("output", "type nat hook output priority -100", &[dnat]);
    chain(
        "postrouting",
        "type nat hook postrouting priority srcnat",
        &[
            // Egress NAT: the subnet leaving through any other interface.
            format!("ip saddr {subnet} oifname != \"{b}\" masquerade"),
            // The host's loopback to a mapped port: the container answers the gateway.
            format!("oifname \"{b}\" ip saddr 127.0.0.0/8 masquerade"),
        ],
    );
    // From containers: replies, then the container's allow list, then nothing. To
    // containers: replies and mapped ports only (the host's own connections do not pass
    // forward; they leave through output).
    let from_containers = [
        format!("iifname \"{b}\" ct state established,related accept"),
        format!("iifname \"{b}\" ip saddr vmap @egress"),
        format!("iifname \"{b}\" drop"),
    ];
    let mut forward = from_containers.to_vec();
    forward.push(format!("oifname \"{b}\" ct state established,related accept"));
    forward.push(format!("oifname \"{b}\" ct status dnat accept"));
    forward.push(format!("oifname \"{b}\" drop"));
    chain("forward", "type filter hook forward priority filter", &forward);
    // The host's own ports (the platform's API, anything listening) are egress too.
    chain("input", "type filter hook input priority filter", &from_containers);
    // Anti-spoofing at layer 2, before anything else sees a frame from a container's
    // port: IPv4 and ARP only, and only with the container's own address (so no
    // container borrows another's egress rules or takes over its address on the host).
    let l2 = format!("bridge {}", config.table);
    line(format!("add table {l2}"));
    line(format!("add set {l2} veths {{ type ifname; }}"));
    line(format!("add set {l2} owned {{ type ifname . ipv4_addr; }}"));
    line(format!("add chain {l2} prerouting {{ type filter hook prerouting priority -200; policy accept; }}"));
    line(format!("flush chain {l2} prerouting"));
    for rule in [
        "iifname @veths ether type ip iifname . ip saddr != @owned drop",
        "iifname @veths ether type arp iifname . arp saddr ip != @owned drop",
        "iifname @veths ether type != { ip, arp } drop",
    ] {
        line(format!("add rule {l2} prerouting {rule}"));
    }
    s
}

/// The container's chain name (from its address: unique while the address is held).
pub fn chain_name(address: Ipv4Addr) -> String {
    format!("c-{:08x}", u32::from(address))
}

/// Adds one container: its allow-list chain, its dispatch entry, its port mappings.
pub fn add_container(config: &NetworkConfig, address: Ipv4Addr, egress: &[EgressRule], ports: &[(u16, u16)]) -> String {
    let t = format!("inet {}", config.table);
    let c = chain_name(address);
    let veth = host_interface(address);
    let mut s = format!("add element bridge {0} veths {{ \"{veth}\" }}\n", config.table);
    s.push_str(&format!("add element bridge {0} owned {{ \"{veth}\" . {address} }}\n", config.table));
    s.push_str(&format!("add chain {t} {c}\n"));
    for rule in egress {
        s.push_str(&format!("add rule {t} {c} {}\n", egress_rule(rule)));
    }
    s.push_str(&format!("add element {t} egress {{ {address} : jump {c} }}\n"));
    if !ports.is_empty() {
        let elements: Vec<String> = ports.iter().map(|(host, port)| format!("{host} : {address} . {port}")).collect();
        s.push_str(&format!("add element {t} ports {{ {} }}\n", elements.join(", ")));
    }
    s
}

/// The commands that remove one container, each on its own (see [`remove`]).
pub fn remove_container(config: &NetworkConfig, address: Ipv4Addr, host_ports: &[u16]) -> Vec<String> {
    let t = format!("inet {}", config.table);
    let c = chain_name(address);
    let veth = host_interface(address);
    let mut commands = vec![
        format!("delete element bridge {} veths {{ \"{veth}\" }}", config.table),
        format!("delete element bridge {} owned {{ \"{veth}\" . {address} }}", config.table),
        format!("delete element {t} egress {{ {address} }}"),
    ];
    for port in host_ports {
        commands.push(format!("delete element {t} ports {{ {port} }}"));
    }
    commands.push(format!("delete chain {t} {c}"));
    commands
}

fn egress_rule(rule: &EgressRule) -> String {
    let daddr = match rule.destination {
        Destination::Cidr(addr, len) => format!("ip daddr {addr}/{len}"),
        Destination::Range(a, b) => format!("ip daddr {a}-{b}"),
    };
    let ports = |proto: &str| match rule.ports {
        Some(p) => format!(" {proto} dport {p}"),
        None => format!(" meta l4proto {proto}"),
    };
    let what = match rule.protocol {
        Protocol::All => String::new(),
        Protocol::Tcp => ports("tcp"),
        Protocol::Udp => ports("udp"),
        Protocol::Icmp => " meta l4proto icmp".into(),
    };
    format!("{daddr}{what} accept")
}

/// Runs one batch with `nft -f -` (atomic: all of it or nothing).
pub fn apply(batch: &str) -> Result<(), Error> {
    Pending::start(batch)?.finish()
}

/// A batch `nft` is applying while the caller does other work.
pub struct Pending {
    child: Child,
    batch: String,
}

impl Pending {
    pub fn start(batch: &str) -> Result<Self, Error> {
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::Network(format!("cannot run nft (install nftables): {e}")))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        // A batch is far smaller than a pipe's buffer: this does not block on nft.
        let written = stdin.write_all(batch.as_bytes());
        drop(stdin);
        let pending = Pending { child, batch: batch.to_string() };
        match written {
            Ok(()) => Ok(pending),
            Err(e) => {
                let _ = pending.finish();
                Err(Error::Network(format!("nft: {e}")))
            }
        }
    }

    /// Waits for nft and reports whether it applied the batch.
    pub fn finish(self) -> Result<(), Error> {
        let output = self.child.wait_with_output().map_err(|e| Error::Network(format!("nft: {e}")))?;
        if output.status.success() {
            Ok(())
        } else {
            let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
            Err(Error::Network(format!("nft refused the batch: {message}\n{}", self.batch)))
        }
    }
}

/// Removes what [`remove_container`] names: in one batch, or, if part of it is already
/// gone (a repeated destroy, a half-made create), command by command, ignoring what is
/// missing.
pub fn remove(commands: &[String]) -> Result<(), Error> {
    if apply(&commands.join("\n")).is_ok() {
        return Ok(());
    }
    for command in commands {
        if let Err(e) = apply(command) {
            let missing = e.to_string().contains("No such file or directory");
            if !missing {
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_is_a_chain_a_dispatch_entry_and_port_elements() {
        let config = NetworkConfig::default();
        let addr = Ipv4Addr::new(10, 254, 0, 2);
        let rules: Vec<EgressRule> = serde_json::from_str(
            r#"[{"protocol":"tcp","destination":"10.1.0.0/16","ports":"80-90"},
                {"protocol":"udp","destination":"10.2.0.1"},
                {"protocol":"icmp","destination":"10.0.0.1-10.0.0.9"},
                {"protocol":"all","destination":"0.0.0.0/0"}]"#,
        )
        .unwrap();
        let batch = add_container(&config, addr, &rules, &[(61000, 8080), (61001, 9090)]);
        assert_eq!(
            batch,
            "add element bridge hearth veths { \"hv0afe0002\" }\n\
             add element bridge hearth owned { \"hv0afe0002\" . 10.254.0.2 }\n\
             add chain inet hearth c-0afe0002\n\
             add rule inet hearth c-0afe0002 ip daddr 10.1.0.0/16 tcp dport 80-90 accept\n\
             add rule inet hearth c-0afe0002 ip daddr 10.2.0.1/32 meta l4proto udp accept\n\
             add rule inet hearth c-0afe0002 ip daddr 10.0.0.1-10.0.0.9 meta l4proto icmp accept\n\
             add rule inet hearth c-0afe0002 ip daddr 0.0.0.0/0 accept\n\
             add element inet hearth egress { 10.254.0.2 : jump c-0afe0002 }\n\
             add element inet hearth ports { 61000 : 10.254.0.2 . 8080, 61001 : 10.254.0.2 . 9090 }\n"
        );
        assert_eq!(
            remove_container(&config, addr, &[61000]),
            [
                "delete element bridge hearth veths { \"hv0afe0002\" }",
                "delete element bridge hearth owned { \"hv0afe0002\" . 10.254.0.2 }",
                "delete element inet hearth egress { 10.254.0.2 }",
                "delete element inet hearth ports { 61000 }",
                "delete chain inet hearth c-0afe0002"
            ]
        );
    }

    #[test]
    fn the_base_isolates_the_bridge_and_names_the_configured_table_and_subnet() {
        let base = base(&NetworkConfig::default());
        assert!(base.starts_with("add table inet hearth\n"));
        assert!(
            base.contains("add rule inet hearth postrouting ip saddr 10.254.0.0/22 oifname != \"hearth0\" masquerade")
        );
        assert!(base.contains("add rule inet hearth input iifname \"hearth0\" drop"));
        assert!(base.contains("add rule inet hearth forward oifname \"hearth0\" ct status dnat accept"));
    }
}
