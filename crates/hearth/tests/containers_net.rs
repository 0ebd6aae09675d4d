//! Container networking with real kernel networking: bridges, veths, nftables, network
//! namespaces. Needs root (CI runs as root), nftables and Debian's `busybox-static`.
//! Each test has its own bridge, subnet, nftables table and host ports (`NetRuntime`),
//! so they run in parallel.

mod net_support;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hearth_containers::network::{EgressRule, PortMapping, Protocol};
use hearth_containers::{ContainerId, ContainerSpec, Error, NetworkSpec, Status};
use net_support::{NetRuntime, http_get, http_get_eventually, rootfs, sh, web};

fn mapped(ports: &[(u16, u16)]) -> NetworkSpec {
    let port_mappings = ports.iter().map(|&(container_port, host_port)| PortMapping { container_port, host_port });
    NetworkSpec { port_mappings: port_mappings.collect(), egress: Vec::new() }
}

fn allow(protocol: Protocol, destination: &str, ports: Option<&str>) -> EgressRule {
    EgressRule { protocol, destination: destination.parse().unwrap(), ports: ports.map(|p| p.parse().unwrap()) }
}

/// `nc` from inside a container: prints `open` if the TCP connection was made.
fn probe(addr: impl std::fmt::Display, port: u16) -> String {
    format!("if nc -w 1 {addr} {port} </dev/null >/dev/null 2>&1; then echo open; else echo closed; fi")
}

#[tokio::test]
async fn the_host_reaches_a_container_at_its_address_and_through_mapped_ports() {
    let rt = NetRuntime::new("reach", 1);
    let fixed = rt.network.host_ports.end() - 1;
    let spec = web("hello-web", 8080, mapped(&[(8080, 0), (9090, fixed)]));
    let (id, address) = rt.up("web", &spec).await;

    let info = rt.runtime.info(&id).await.unwrap();
    let network = info.network.clone().unwrap();
    assert!(rt.network.subnet.contains(address) && address != rt.gateway(), "{network:?}");
    assert_eq!((network.gateway, network.prefix_len), (rt.gateway(), 24));
    let auto_port = network.port_mappings.iter().find(|m| m.container_port == 8080).unwrap().host_port;
    assert!(rt.network.host_ports.contains(&auto_port), "allocated from the range: {network:?}");
    assert!(network.port_mappings.contains(&PortMapping { container_port: 9090, host_port: fixed }));

    let body = http_get_eventually(SocketAddr::from((address, 8080)));
    assert_eq!(body.as_deref(), Some("hello-web\n"), "the host reaches the container's address");
    for host in [Ipv4Addr::LOCALHOST, rt.gateway(), Ipv4Addr::new(192, 0, 2, 2)] {
        if host.octets()[0] == 192 && !host_has_address(host) {
            continue; // this host's own external address, where it has that one
        }
        let body = http_get(SocketAddr::from((host, auto_port)));
        assert_eq!(body.as_deref(), Some("hello-web\n"), "through {host}:{auto_port}\n{}", rt.table());
    }
    assert_eq!(http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, auto_port + 1))), None, "an unmapped port");

    // Inside: eth0 with the address, loopback up, the default route via the gateway.
    let script = "ip -4 -o addr show; ip route";
    let out = rt.run("look", &sh(script, NetworkSpec::default())).await;
    assert!(out.contains("1: lo    inet 127.0.0.1/8"), "{out}");
    assert!(
        out.contains(&format!("eth0    inet {}/24", rt.network.subnet.container_addresses().nth(1).unwrap())),
        "{out}"
    );
    assert!(out.contains(&format!("default via {} dev eth0", rt.gateway())), "{out}");

    rt.runtime.destroy(&id).await.unwrap();
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
    assert_eq!(http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, auto_port))), None, "the mapping went with it");
}

fn host_has_address(addr: Ipv4Addr) -> bool {
    TcpListener::bind((addr, 0)).is_ok()
}

#[tokio::test]
async fn containers_cannot_reach_each_other() {
    let rt = NetRuntime::new("isolated", 2);
    let (a, a_address) = rt.up("a", &web("a", 8080, mapped(&[(8080, 0)]))).await;
    assert_eq!(http_get_eventually(SocketAddr::from((a_address, 8080))).as_deref(), Some("a\n"), "a is listening");
    let a_port = rt.runtime.info(&a).await.unwrap().network.unwrap().port_mappings[0].host_port;

    let direct = probe(a_address, 8080);
    // Direct traffic never reaches a: the bridge's ports are isolated from each other,
    // whatever the egress rules say.
    let everything = NetworkSpec { port_mappings: vec![], egress: vec![allow(Protocol::All, "0.0.0.0/0", None)] };
    let out = rt.run("b", &sh(&direct, everything)).await;
    assert_eq!(out, "closed\n", "b reached a directly");
    // Without egress rules, a's mapped host port is closed to b as well.
    let script = format!("{direct}; {}", probe(rt.gateway(), a_port));
    let out = rt.run("c", &sh(&script, NetworkSpec::default())).await;
    assert_eq!(out, "closed\nclosed\n", "c reached a");
    assert_eq!(http_get(SocketAddr::from((a_address, 8080))).as_deref(), Some("a\n"), "a still listens");
    rt.runtime.destroy(&a).await.unwrap();
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
}

/// A UDP socket on all of the host's addresses.
fn udp_listener() -> (std::net::UdpSocket, u16) {
    let socket = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// The sources of the datagrams (DNS queries) for `name` that arrive within 3 seconds.
fn queries_for(socket: &std::net::UdpSocket, name: &str) -> Vec<std::net::IpAddr> {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut sources = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok((n, from)) = socket.recv_from(&mut buf)
            && buf[..n].windows(name.len()).any(|w| w == name.as_bytes())
        {
            sources.push(from.ip());
        }
    }
    sources
}

#[tokio::test]
async fn a_container_cannot_send_with_another_containers_address() {
    let rt = NetRuntime::new("spoof", 9);
    let (socket, port) = udp_listener();
    let gateway = rt.gateway();
    // a may send UDP to the host's port; b may not.
    let rule = allow(Protocol::Udp, &format!("{gateway}/32"), Some(&port.to_string()));
    // (busybox's nc has no UDP; its nslookup sends a UDP query to any server and port.)
    let send = |name: &str| format!("nslookup -port={port} -retry=1 -timeout=1 {name} {gateway}");
    let a_spec =
        sh(&format!("{}; sleep 60", send("from-a")), NetworkSpec { port_mappings: vec![], egress: vec![rule] });
    let (a, a_address) = rt.up("a", &a_spec).await;
    let from = queries_for(&socket, "from-a");
    assert!(from.contains(&std::net::IpAddr::V4(a_address)), "a's own datagram reaches the host: {from:?}");
    let (b, _) = rt.up("b", &sh("sleep 60", NetworkSpec::default())).await;
    let b_pid = rt.runtime.info(&b).await.unwrap().pid.unwrap();
    // What root in b could do with NET_ADMIN it does not have (or with raw sockets): send
    // from a's address. Done here from the host, inside b's network namespace.
    let spoof = format!(
        "ip addr add {a_address}/32 dev eth0 && ip route replace {gateway}/32 dev eth0 src {a_address} && \
         {}; true",
        send("spoofed")
    );
    let status = Command::new("nsenter")
        .arg(format!("--net=/proc/{b_pid}/ns/net"))
        .args(["/bin/busybox", "sh", "-c", &spoof])
        .status()
        .unwrap();
    assert!(status.success(), "the spoofing script ran");
    let from = queries_for(&socket, "spoofed");
    assert_eq!(from, Vec::<std::net::IpAddr>::new(), "a datagram from b with a's address reached the host");
    for id in [&a, &b] {
        rt.runtime.destroy(id).await.unwrap();
    }
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
}

/// A TCP listener on all of the host's addresses that accepts forever (the "platform port").
fn host_listener() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in listener.incoming() {});
    port
}

#[tokio::test]
async fn host_ports_are_closed_to_containers_unless_an_egress_rule_opens_one() {
    let rt = NetRuntime::new("hostports", 3);
    let (p, q) = (host_listener(), host_listener());
    let gateway = rt.gateway();
    let script = format!("{}; {}", probe(gateway, p), probe(gateway, q));

    let out = rt.run("default", &sh(&script, NetworkSpec::default())).await;
    assert_eq!(out, "closed\nclosed\n", "no egress rule: the host's ports are closed");

    let rule = allow(Protocol::Tcp, &format!("{gateway}/32"), Some(&p.to_string()));
    let out = rt.run("allowed", &sh(&script, NetworkSpec { port_mappings: vec![], egress: vec![rule] })).await;
    assert_eq!(out, "open\nclosed\n", "a rule for port {p} opens {p} and not {q}");

    let udp_only = allow(Protocol::Udp, &format!("{gateway}-{gateway}"), None);
    let out = rt.run("udp", &sh(&script, NetworkSpec { port_mappings: vec![], egress: vec![udp_only] })).await;
    assert_eq!(out, "closed\nclosed\n", "a udp rule opens no tcp port");
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
}

/// A second network namespace acting as a host outside: a veth from this host with its
/// own subnet (`192.168.S.0/24`, this host .1, the outside host .2) and no route back to
/// the containers' subnet. It serves a CGI page that answers the address it sees.
struct OutsideHost {
    netns: String,
    address: Ipv4Addr,
    server: Child,
    dir: std::path::PathBuf,
}

impl OutsideHost {
    fn new(slot: u8) -> Self {
        let pid = std::process::id();
        let netns = format!("hno{slot}-{pid}");
        let link = format!("hvo{slot}-{}", pid % 100_000);
        let ip = |args: &str| {
            let status = Command::new("ip").args(args.split_whitespace()).status().unwrap();
            assert!(status.success(), "ip {args}");
        };
        ip(&format!("netns add {netns}"));
        ip(&format!("link add {link} type veth peer name eth0 netns {netns}"));
        ip(&format!("addr add 192.168.{slot}.1/24 dev {link}"));
        ip(&format!("link set {link} up"));
        ip(&format!("-n {netns} addr add 192.168.{slot}.2/24 dev eth0"));
        ip(&format!("-n {netns} link set eth0 up"));
        ip(&format!("-n {netns} link set lo up"));
        let dir = net_support::base_dir().join(format!("outside-{slot}"));
        std::fs::create_dir_all(dir.join("cgi-bin")).unwrap();
        let cgi = dir.join("cgi-bin/whoami");
        std::fs::write(&cgi, "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"seen-from $REMOTE_ADDR\"\n")
            .unwrap();
        std::fs::set_permissions(&cgi, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let server = Command::new("ip")
            .args(["netns", "exec", &netns, "/bin/busybox", "httpd", "-f", "-p", "9000", "-h"])
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        Self { netns, address: Ipv4Addr::new(192, 168, slot, 2), server, dir }
    }
}

impl Drop for OutsideHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn egress_to_the_outside_is_masqueraded_behind_the_host() {
    let rt = NetRuntime::new("nat", 4);
    let outside = OutsideHost::new(204);
    let rule = allow(Protocol::Tcp, "192.168.204.0/24", Some("9000"));
    // (busybox's static wget crashes on its NSS lookups: a plain request through nc.)
    let get = format!(
        "printf 'GET /cgi-bin/whoami HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {} 9000 | grep seen-from",
        outside.address
    );
    // The outside server may still be starting: a few tries.
    let script = format!("for i in 1 2 3 4 5 6 7 8 9 10; do {get} && exit 0; sleep 0.2; done; exit 1");
    let out = rt.run("nat", &sh(&script, NetworkSpec { port_mappings: vec![], egress: vec![rule] })).await;
    // busybox httpd listens on IPv6 and sees IPv4 peers as mapped addresses.
    assert_eq!(out, "seen-from [::ffff:192.168.204.1]\n", "the outside host sees this host's address");

    let out = rt.run("no-rule", &sh(&format!("{get} || echo refused"), NetworkSpec::default())).await;
    assert_eq!(out, "refused\n", "without a rule nothing leaves");

    // Net-in from outside: the outside host reaches a mapped port at this host's address
    // (DNAT in prerouting), and not the container's own address (forward lets only
    // DNATed traffic and replies onto the bridge).
    let (web_id, web_address) = rt.up("web", &web("web-outside", 8080, mapped(&[(8080, 0)]))).await;
    assert!(http_get_eventually(SocketAddr::from((web_address, 8080))).is_some());
    let port = rt.runtime.info(&web_id).await.unwrap().network.unwrap().port_mappings[0].host_port;
    let from_outside = |target: String| {
        let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {target} | tail -n 1");
        let out = Command::new("ip")
            .args(["netns", "exec", &outside.netns, "/bin/busybox", "sh", "-c", &script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(from_outside(format!("192.168.204.1 {port}")), "web-outside\n", "{}", rt.table());
    // Even with a route to the containers' subnet via this host, the address is closed.
    let route = format!("-n {} route add {} via 192.168.204.1", outside.netns, rt.network.subnet);
    assert!(Command::new("ip").args(route.split(' ')).status().unwrap().success());
    assert_eq!(from_outside(format!("{web_address} 8080")), "", "the container address from outside");
    rt.runtime.destroy(&web_id).await.unwrap();
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn after_a_restart_info_shows_the_network_and_destroy_still_cleans_up() {
    let rt = NetRuntime::new("restart", 5);
    let first = rt.reopen();
    let id = ContainerId::new("kept").unwrap();
    let created = first.create(&id, &web("kept", 8080, mapped(&[(8080, 0)]))).await.unwrap();
    first.start(&id).await.unwrap();
    let network = created.network.clone().unwrap();
    drop(first);

    let restarted = &rt.runtime;
    let info = restarted.info(&id).await.unwrap();
    assert_eq!((info.status, info.network.as_ref()), (Status::Running, Some(&network)));
    let port = network.port_mappings[0].host_port;
    assert_eq!(http_get_eventually(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).as_deref(), Some("kept\n"));

    // A new container after the restart does not get the kept one's address or port.
    let other = ContainerId::new("other").unwrap();
    let other_info = restarted.create(&other, &web("other", 8080, mapped(&[(8080, 0)]))).await.unwrap();
    let other_network = other_info.network.unwrap();
    assert_ne!(other_network.address, network.address);
    assert_ne!(other_network.port_mappings[0].host_port, port);

    for id in [&id, &other] {
        restarted.destroy(id).await.unwrap();
        restarted.destroy(id).await.unwrap();
    }
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
    assert_eq!(rt.container_leftovers(), Vec::<String>::new());
}

/// Two servers on one machine share the default bridge: their containers never get one
/// address or host port, even under the same container id, and each cleans up only its own.
#[tokio::test]
async fn runtimes_sharing_a_bridge_never_share_an_address_or_port() {
    let a = NetRuntime::new("shared-a", 10);
    // A runtime from before allocations were machine-wide: its own file is taken over.
    let old_file = net_support::base_dir().join("shared-old/network/allocations.json");
    std::fs::create_dir_all(old_file.parent().unwrap()).unwrap();
    let [x, y, z, _] = a.network.subnet.gateway().octets();
    let taken = format!("{x}.{y}.{z}.2");
    std::fs::write(&old_file, format!(r#"{{"addresses":{{"{taken}":"kept"}},"host_ports":{{}}}}"#)).unwrap();
    let old = a.beside("shared-old");
    assert!(!old_file.exists(), "the old file was taken over");
    let adopted = old.net_leftovers();
    assert!(adopted.len() == 1 && adopted[0].contains(&taken) && adopted[0].contains("kept"), "{adopted:?}");

    let b = a.beside("shared-b");
    let spec = |name: &str| web(name, 8080, mapped(&[(8080, 0)]));
    let (id, address_a) = a.up("web", &spec("a")).await;
    let (_, address_b) = b.up("web", &spec("b")).await;
    assert_ne!(address_a.to_string(), taken, "the adopted address stays taken");
    assert_ne!(address_a, address_b);
    for (rt, name) in [(&a, "a"), (&b, "b")] {
        let info = rt.runtime.info(&id).await.unwrap();
        let host_port = info.network.unwrap().port_mappings[0].host_port;
        let answer = http_get_eventually(SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)));
        assert_eq!(answer.as_deref(), Some(&*format!("{name}\n")), "runtime {name}'s container on port {host_port}");
    }

    // a's destroy leaves b's container alone.
    a.runtime.destroy(&id).await.unwrap();
    let b_port = b.runtime.info(&id).await.unwrap().network.unwrap().port_mappings[0].host_port;
    assert_eq!(http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, b_port))).as_deref(), Some("b\n"));
    b.runtime.destroy(&id).await.unwrap();
    old.runtime.destroy(&ContainerId::new("kept").unwrap()).await.unwrap();
    for rt in [&a, &b, &old] {
        assert_eq!(rt.net_leftovers(), Vec::<String>::new());
        assert_eq!(rt.container_leftovers(), Vec::<String>::new());
    }
}

#[tokio::test]
async fn bad_network_specs_are_refused_before_anything_is_made() {
    let rt = NetRuntime::new("refused", 6);
    let id = ContainerId::new("bad").unwrap();
    let cases = [
        (mapped(&[(0, 0)]), "container_port must be 1-65535, not 0"),
        (mapped(&[(80, 65100), (81, 65100)]), "host port 65100 is mapped twice"),
        (mapped(&[(80, 0), (80, 0)]), "container port 80 is mapped twice"),
    ];
    for (network, why) in cases {
        let err = rt.runtime.create(&id, &sh("true", network)).await.unwrap_err();
        assert!(matches!(&err, Error::InvalidSpec(m) if m.contains(why)), "{err}");
    }
    let err = serde_json::from_str::<NetworkSpec>(r#"{"egress":[{"protocol":"tcp","destination":"10.0.0.300/8"}]}"#)
        .unwrap_err();
    assert!(err.to_string().contains("\"10.0.0.300/8\" is not an IPv4 address or CIDR"), "{err}");
    let err = "10.1.2.3/8".parse::<hearth_containers::network::Destination>().unwrap_err();
    assert!(err.contains("has host bits set (did you mean 10.0.0.0/8?)"), "{err}");
    assert!(!rt.root.join("containers/bad").exists());
    assert!(!Command::new("ip").args(["link", "show", &rt.network.bridge]).output().unwrap().status.success());

    // A host port another container holds: refused, and what the create took goes back.
    let taken = rt.network.host_ports.start() + 7;
    let (holder, _) = rt.up("holder", &web("holder", 8080, mapped(&[(8080, taken)]))).await;
    let err = rt.runtime.create(&id, &web("bad", 8080, mapped(&[(8080, taken)]))).await.unwrap_err();
    assert!(err.to_string().contains(&format!("host port {taken} is already mapped to container holder")), "{err}");
    assert!(rt.runtime.lookup(&id).await.unwrap().is_none());
    rt.runtime.destroy(&holder).await.unwrap();
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
    assert_eq!(rt.container_leftovers(), Vec::<String>::new());
}

#[tokio::test]
async fn a_create_that_fails_half_way_releases_its_network() {
    let rt = NetRuntime::new("halfway", 11);
    // A link squats on the name the first container's veth will get: the create fails
    // after its address and port were allocated.
    let first_address = rt.network.subnet.container_addresses().next().unwrap();
    let squatter = hearth_containers::network::host_interface(first_address);
    let add = format!("link add {squatter} type veth peer name hsq-{}", std::process::id());
    assert!(Command::new("ip").args(add.split(' ')).status().unwrap().success());
    let id = ContainerId::new("c").unwrap();
    let spec = web("c", 8080, mapped(&[(8080, 0)]));
    let err = rt.runtime.create(&id, &spec).await.unwrap_err();
    assert!(err.to_string().contains("create the veth: File exists"), "{err}");
    assert!(rt.runtime.lookup(&id).await.unwrap().is_none());
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
    assert_eq!(rt.container_leftovers(), Vec::<String>::new());
    // A link with the runtime's veth name is the runtime's: the clean-up removed it.
    assert!(!std::path::Path::new(&format!("/sys/class/net/{squatter}")).exists());

    let info = rt.runtime.create(&id, &spec).await.unwrap();
    assert_eq!(info.network.unwrap().address, first_address, "the address came back");
    // Someone removes the tables (a firewall reload): the next create puts them back.
    for family in ["inet", "bridge"] {
        let status = Command::new("nft").args(["delete", "table", family, &rt.network.table]).status().unwrap();
        assert!(status.success());
    }
    let (other, other_address) = rt.up("other", &web("other", 8080, mapped(&[(8080, 0)]))).await;
    let port = rt.runtime.info(&other).await.unwrap().network.unwrap().port_mappings[0].host_port;
    assert_eq!(http_get_eventually(SocketAddr::from((other_address, 8080))).as_deref(), Some("other\n"));
    assert_eq!(http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).as_deref(), Some("other\n"), "{}", rt.table());
    for id in [&id, &other] {
        rt.runtime.destroy(id).await.unwrap();
    }
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn networking_adds_little_to_create_and_reports_how_much() {
    let rt = NetRuntime::new("latency", 7);
    // The first networked create also makes the bridge and the table: not counted.
    rt.run("warm", &sh("true", NetworkSpec::default())).await;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..20 {
        for networked in [false, true] {
            let id = ContainerId::new(format!("t-{i}-{networked}")).unwrap();
            let mut spec = ContainerSpec::new(rootfs(), vec!["/bin/true".into()]);
            if networked {
                spec.network = Some(mapped(&[(8080, 0)]));
            }
            let started = Instant::now();
            rt.runtime.create(&id, &spec).await.unwrap();
            let elapsed = started.elapsed();
            rt.runtime.destroy(&id).await.unwrap();
            if networked {
                with.push(elapsed)
            } else {
                without.push(elapsed)
            };
        }
    }
    let (with, without) = (median(with), median(without));
    // Tests run two at a time, so either median can be the larger one.
    let added_ms = (with.as_secs_f64() - without.as_secs_f64()) * 1e3;
    eprintln!("create, median of 20: without network {without:?}, with network {with:?} ({added_ms:+.1} ms)");
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_destroy_100_networked_containers_leaves_nothing() {
    let rt = NetRuntime::new("hundred", 8);
    let started = Instant::now();
    let mut ids = Vec::new();
    let egress = vec![allow(Protocol::Tcp, "192.0.2.0/24", Some("443")), allow(Protocol::Icmp, "0.0.0.0/0", None)];
    for i in 0..100 {
        let id = ContainerId::new(format!("n-{i}")).unwrap();
        let network = NetworkSpec {
            port_mappings: vec![PortMapping { container_port: 8080, host_port: 0 }],
            egress: egress.clone(),
        };
        rt.runtime.create(&id, &sh("sleep 60", network)).await.unwrap();
        match i % 3 {
            0 => {}
            1 => rt.runtime.start(&id).await.unwrap(),
            _ => {
                rt.runtime.start(&id).await.unwrap();
                rt.runtime.kill(&id, 9).await.unwrap();
                rt.runtime.wait(&id).await.unwrap();
            }
        }
        ids.push(id);
        if i == 40 {
            // 41 containers hold 41 addresses, ports, veths and chains.
            let held = rt.net_leftovers();
            // A killed container's namespace (and with it its veth) goes when the kernel
            // gets to it; the 28 living ones keep theirs.
            let ports = held.iter().filter(|l| l.starts_with("bridge port")).count();
            assert!((28..=41).contains(&ports), "{held:?}");
            assert_eq!(held.iter().filter(|l| l.starts_with("nft inet chain c-")).count(), 41);
            assert_eq!(held.iter().filter(|l| l.starts_with("allocated addresses")).count(), 41);
        }
    }
    for id in &ids {
        rt.runtime.destroy(id).await.unwrap();
    }
    for id in ids.iter().take(5) {
        rt.runtime.destroy(id).await.unwrap();
    }
    eprintln!("100 networked containers created and destroyed in {:?}", started.elapsed());
    assert_eq!(rt.net_leftovers(), Vec::<String>::new());
    assert_eq!(rt.container_leftovers(), Vec::<String>::new());
}
