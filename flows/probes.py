"""Probes that find an unknown neighbour: an ARP request or an IPv6 neighbour solicitation.

When a packet from the tunnel is for an address no local host has been seen with, the
DELIVER table sends it (metered) to the controller, which floods one of these on the wire
ports. The host's answer passes table INGRESS, which learns it; the sender's next packet
is delivered by the data plane.

Sent from the unspecified address (ARP probe / DAD form), so the probe claims no address
on the LAN and no host caches anything from it, and from :data:`PROBE_MAC`, not the
bridge's own MAC: with OVS's in-band control on (its default), hidden flows ahead of
table 0 send every ARP reply addressed to the bridge's MAC to ``NORMAL``, so an answer
to the bridge's MAC would never reach the pipeline. Answers to PROBE_MAC end in LOCAL_IN,
once INGRESS has learned from them.
"""
import ipaddress

from ryu.lib.packet import arp, ethernet, icmpv6, ipv4, ipv6, packet, vlan
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows.ofp import ETH_TYPE_ARP, ETH_TYPE_IPV6, OFPP_CONTROLLER, output

PROBE_MAC = "0e:53:67:00:00:01"  # locally administered unicast: "Sg" probes


def wanted_address(data):
    """(vlan id or None, destination IP) of a punted packet, or None if it is not IP."""
    pkt = packet.Packet(data)
    tag = pkt.get_protocol(vlan.vlan)
    vid = tag.vid if tag else None
    ip4 = pkt.get_protocol(ipv4.ipv4)
    if ip4 is not None:
        return vid, ipaddress.IPv4Address(ip4.dst)
    ip6 = pkt.get_protocol(ipv6.ipv6)
    if ip6 is not None:
        return vid, ipaddress.IPv6Address(ip6.dst)
    return None


def _frame(src_mac, dst_mac, vid, ethertype, *payload):
    pkt = packet.Packet()
    if vid is None:
        pkt.add_protocol(ethernet.ethernet(dst_mac, src_mac, ethertype))
    else:
        pkt.add_protocol(ethernet.ethernet(dst_mac, src_mac, 0x8100))
        pkt.add_protocol(vlan.vlan(vid=vid, ethertype=ethertype))
    for proto in payload:
        pkt.add_protocol(proto)
    pkt.serialize()
    return bytes(pkt.data)


def probe_frame(vid, address):
    """The probe for ``address`` (IPv4Address or IPv6Address) on VLAN ``vid`` (or None)."""
    if address.version == 4:
        request = arp.arp(opcode=arp.ARP_REQUEST, src_mac=PROBE_MAC, src_ip="0.0.0.0",
                          dst_mac="00:00:00:00:00:00", dst_ip=str(address))
        return _frame(PROBE_MAC, "ff:ff:ff:ff:ff:ff", vid, ETH_TYPE_ARP, request)
    group = ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0"))
                                  | (int(address) & 0xFFFFFF))
    group_mac = "33:33:" + ":".join("%02x" % b for b in group.packed[-4:])
    return _frame(PROBE_MAC, group_mac, vid, ETH_TYPE_IPV6,
                  ipv6.ipv6(src="::", dst=str(group), nxt=58, hop_limit=255),
                  icmpv6.icmpv6(type_=icmpv6.ND_NEIGHBOR_SOLICIT,
                                data=icmpv6.nd_neighbor(dst=str(address))))


def packet_out(frame, ports):
    """A packet-out sending ``frame`` once out of each of ``ports``."""
    return parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER,
                               in_port=OFPP_CONTROLLER, actions=[output(p) for p in ports],
                               data=frame)
