//! A small synchronous rtnetlink client (messages from `netlink-packet-route`, the socket
//! from `netlink-sys`): the bridge, veth pairs, addresses and routes. A socket opened on a
//! thread that joined another network namespace stays in that namespace, which is how the
//! container's side is configured without running anything inside it.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

pub struct Netlink {
    socket: Socket,
    sequence: u32,
}

impl Netlink {
    /// A client for the network namespace of the calling thread.
    pub fn new() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.set_ext_ack(true).ok();
        Ok(Self { socket, sequence: 0 })
    }

    /// A client for the network namespace `netns` (e.g. `/proc/PID/ns/net`): opened on a
    /// short-lived thread that joins the namespace, so no other thread changes namespace.
    pub fn in_namespace(netns: &File) -> io::Result<Self> {
        let fd = netns.as_raw_fd();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a namespace fd we hold open; it changes only this thread,
                // which ends right after opening the socket.
                if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                Netlink::new()
            })
            .join()
            .map_err(|_| io::Error::other("the namespace thread panicked"))?
        })
    }

    /// Sends one request and waits for its acknowledgement; returns the messages that
    /// came before it (for `Get` requests).
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;

        let mut replies = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..n])
                    .map_err(|e| io::Error::other(format!("netlink reply: {e}")))?;
                let len = reply.header.length as usize;
                if reply.header.sequence_number == self.sequence {
                    match reply.payload {
                        NetlinkPayload::Error(e) if e.code.is_none() => return Ok(replies),
                        NetlinkPayload::Error(e) => return Err(e.to_io()),
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::InnerMessage(m) => replies.push(m),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
            }
        }
    }

    /// The index of the link called `name`, if there is one.
    pub fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(RouteNetlinkMessage::GetLink(message), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|r| match r {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes sure the bridge exists, has `address/prefix_len` and is up.
    pub fn ensure_bridge(&mut self, name: &str, address: Ipv4Addr, prefix_len: u8) -> io::Result<u32> {
        let index = match self.link_index(name)? {
            Some(index) => index,
            None => {
                let mut message = LinkMessage::default();
                message.attributes.push(LinkAttribute::IfName(name.into()));
                message.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
                ignore_exists(self.request(RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL))?;
                self.link_index(name)?.ok_or_else(|| io::Error::other(format!("bridge {name} vanished")))?
            }
        };
        self.add_address(index, address, prefix_len)?;
        self.set_up(index)?;
        Ok(index)
    }

    /// Creates a veth pair: `host` in this namespace, attached to the bridge `bridge`,
    /// and `peer` (with the hardware address `peer_mac`) created directly inside the
    /// namespace `netns`. Returns `host`'s index.
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_mac: [u8; 6],
        netns: &File,
        bridge: u32,
    ) -> io::Result<u32> {
        let mut peer_message = LinkMessage::default();
        peer_message.attributes.push(LinkAttribute::IfName(peer.into()));
        peer_message.attributes.push(LinkAttribute::Address(peer_mac.to_vec()));
        peer_message.attributes.push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(host.into()));
        message.attributes.push(LinkAttribute::Controller(bridge));
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.request(RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL)?;
        self.link_index(host)?.ok_or_else(|| io::Error::other(format!("veth {host} vanished")))
    }

    /// Bridge port isolation: an isolated port's frames never reach another isolated
    /// port of the same bridge (containers cannot talk to each other at layer 2).
    pub fn isolate_bridge_port(&mut self, index: u32) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(true)])),
        ]));
        // Port settings change through RTM_NEWLINK on the existing link (RTM_SETLINK
        // ignores them), as `ip link set DEV type bridge_slave isolated on` does.
        self.request(RouteNetlinkMessage::NewLink(message), 0).map(drop)
    }

    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(message), 0).map(drop)
    }

    /// Adds `address/prefix_len` to the link; an address it already has is fine.
    pub fn add_address(&mut self, index: u32, address: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.prefix_len = prefix_len;
        message.header.index = index;
        message.attributes.push(AddressAttribute::Local(IpAddr::V4(address)));
        message.attributes.push(AddressAttribute::Address(IpAddr::V4(address)));
        let broadcast = u32::from(address) | (u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0));
        message.attributes.push(AddressAttribute::Broadcast(Ipv4Addr::from(broadcast)));
        ignore_exists(self.request(RouteNetlinkMessage::NewAddress(message), NLM_F_CREATE | NLM_F_EXCL))
    }

    /// `default via gateway` in the main table.
    pub fn add_default_route(&mut self, gateway: Ipv4Addr) -> io::Result<()> {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::Boot;
        message.header.scope = RouteScope::Universe;
        message.header.kind = RouteType::Unicast;
        message.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        self.request(RouteNetlinkMessage::NewRoute(message), NLM_F_CREATE | NLM_F_EXCL).map(drop)
    }

    /// Deletes the link called `name`; `false` if there was none.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.into()));
        match self.request(RouteNetlinkMessage::DelLink(message), 0) {
            Ok(_) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn ignore_exists<T>(result: io::Result<T>) -> io::Result<()> {
    match result {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other.map(drop),
    }
}
