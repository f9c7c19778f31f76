"""Two sites joined by their tunnel ports: traffic one site captures is delivered at the
other, and the replies find their way back with no routing anywhere.

Site A is 10.1.0.0/24 (HOST_A1 on lan1, ROUTER_A on wan0), site B 10.2.0.0/24 (SERVER_B on
lan1, ROUTER_B on wan0). Each captures the other site's prefixes into the tunnel.
"""
import ipaddress

import pytest
from scapy.layers.l2 import ARP, Ether

import fakeswitch as fs
from flows import pipeline, probes, tables
from sites import (
    HOST_A1, HOST_A2, INTERNET, LAN1, LAN2, ROUTER_A, ROUTER_B, SERVER_B, TUNNEL, WAN,
    TwoSites, site_a, site_b, switch)


def introduce(net, site, host, port=LAN1, how="udp"):
    """``host`` makes itself known at ``site``, the way hosts do in real life."""
    router = ROUTER_A if site == "a" else ROUTER_B
    if how == "udp":  # e.g. a DNS query to the internet, via its router
        pkt = fs.udp(port, host.mac, router.mac, host.ip, INTERNET)
    elif how == "udp6":
        pkt = fs.udp(port, host.mac, router.mac, host.ip6, "2001:db8::53")
    elif how == "arp request":  # it looks for its router
        pkt = fs.arp_request(port, host.mac, host.ip, router.ip)
    elif how == "arp reply":  # it answers an ARP (e.g. sggw's probe, sent from 0.0.0.0)
        pkt = fs.arp_reply(port, host.mac, "02:00:00:00:00:fe", host.ip, "0.0.0.0")
    else:  # an IPv6 neighbour advertisement answering a probe (DAD form, to all nodes)
        pkt = fs.nd(port, host.mac, "33:33:00:00:00:01", host.ip6, "ff02::1", host.ip6, 136)
    net.send(site, pkt)


def test_tcp_from_a_to_b_and_back_with_no_routes():
    net = TwoSites(b=site_b(local_ip="10.2.0.2/24"))
    introduce(net, "a", ROUTER_A, WAN, "arp request")
    introduce(net, "b", SERVER_B)  # B learns SERVER_B and its gateway ROUTER_B
    syn = fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip, 40000, 80)

    arrived = net.send("a", syn)

    assert arrived.packet_ins == []
    [(site, port, delivered)] = arrived.outputs
    assert (site, port) == ("b", LAN1)
    # SERVER_B gets it addressed to its MAC, "from its gateway", IP and TCP untouched
    assert delivered == fs.without_in_port(dict(syn, eth_dst=SERVER_B.mac, eth_src=ROUTER_B.mac))

    syn_ack = fs.reply(syn, LAN1, SERVER_B.mac, ROUTER_B.mac)
    back = net.send("b", syn_ack)

    assert back.packet_ins == []
    [(site, port, delivered)] = back.outputs
    assert (site, port) == ("a", LAN1)
    # HOST_A1 sees its own MAC as destination and its router's as source, as if routed
    assert (delivered["eth_dst"], delivered["eth_src"]) == (HOST_A1.mac, ROUTER_A.mac)
    assert delivered == fs.without_in_port(dict(syn_ack, eth_dst=HOST_A1.mac,
                                                eth_src=ROUTER_A.mac))


def test_without_a_local_ip_the_remote_senders_mac_is_kept_as_source():
    """Site B has no local_ip, so no gateway to stand in as source: the frame keeps the
    source MAC it had in the tunnel."""
    net = TwoSites()
    introduce(net, "b", SERVER_B)
    syn = fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip)
    [(_, _, delivered)] = net.send("a", syn).outputs
    assert (delivered["eth_dst"], delivered["eth_src"]) == (SERVER_B.mac, HOST_A1.mac)


@pytest.mark.parametrize("family", [4, 6])
def test_ping_both_ways(family):
    net = TwoSites()
    introduce(net, "b", SERVER_B, how="udp" if family == 4 else "udp6")
    src, dst = (HOST_A1.ip, SERVER_B.ip) if family == 4 else (HOST_A1.ip6, SERVER_B.ip6)
    echo = fs.icmp(LAN2, HOST_A1.mac, ROUTER_A.mac, src, dst)
    [(site, port, request)] = net.send("a", echo).outputs
    assert (site, port, request["eth_dst"]) == ("b", LAN1, SERVER_B.mac)

    answer = fs.reply(echo, LAN1, SERVER_B.mac, ROUTER_B.mac)
    [(site, port, delivered)] = net.send("b", answer).outputs
    assert (site, port) == ("a", LAN2)
    assert (delivered["eth_dst"], delivered["eth_src"]) == (HOST_A1.mac, ROUTER_A.mac)


@pytest.mark.parametrize("how", ["udp", "arp request", "arp reply"])
def test_remotely_initiated_traffic_reaches_a_neighbour_learned_from_its_traffic(how):
    """SERVER_B opens a connection to HOST_A1. Site A captures nothing itself: it delivers by
    the neighbour it learned, and the answer goes back through the tunnel by the reverse path
    learned when the first packet arrived."""
    net = TwoSites(a=switch(name="a"))
    introduce(net, "a", HOST_A1, LAN2, how)
    introduce(net, "b", SERVER_B)
    syn = fs.tcp(LAN1, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip, HOST_A1.ip, 50000, 22)

    [(site, port, delivered)] = net.send("b", syn).outputs
    assert (site, port, delivered["eth_dst"]) == ("a", LAN2, HOST_A1.mac)

    # HOST_A1 answers through its own gateway; A must not bridge it to ROUTER_A
    syn_ack = fs.reply(syn, LAN2, HOST_A1.mac, ROUTER_A.mac)
    result = net.sites["a"].process(syn_ack)
    assert result.ports == [TUNNEL]
    # into the tunnel with the MACs the first packet arrived with, swapped
    sent = result.sent(TUNNEL)
    assert (sent["eth_dst"], sent["eth_src"]) == (SERVER_B.mac, ROUTER_B.mac)
    [(site, port, delivered)] = net.send("a", syn_ack).outputs
    assert (site, port) == ("b", LAN1)
    assert (delivered["eth_dst"], delivered["eth_src"]) == (SERVER_B.mac, ROUTER_B.mac)


def test_remotely_initiated_ipv6_reaches_a_neighbour_learned_from_an_advertisement():
    net = TwoSites(a=switch(name="a"))
    introduce(net, "a", HOST_A1, LAN1, "nd")
    introduce(net, "b", SERVER_B, how="udp6")
    pkt = fs.udp(LAN1, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip6, HOST_A1.ip6, 5000, 5001)
    [(site, port, delivered)] = net.send("b", pkt).outputs
    assert (site, port, delivered["eth_dst"]) == ("a", LAN1, HOST_A1.mac)
    answer = fs.reply(pkt, LAN1, HOST_A1.mac, ROUTER_A.mac)
    [(site, port, delivered)] = net.send("a", answer).outputs
    assert (site, port, delivered["eth_dst"]) == ("b", LAN1, SERVER_B.mac)


def test_remotely_initiated_traffic_to_a_host_on_a_site_with_a_gateway_comes_from_the_gateway():
    net = TwoSites(a=switch(name="a", local_ip="10.1.0.2/24"))
    introduce(net, "a", HOST_A1)  # to the internet via ROUTER_A: the gateway is learned
    syn = fs.tcp(LAN1, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip, HOST_A1.ip, 50000, 22)
    [(site, port, delivered)] = net.send("b", syn).outputs
    assert (site, port) == ("a", LAN1)
    assert (delivered["eth_dst"], delivered["eth_src"]) == (HOST_A1.mac, ROUTER_A.mac)


def test_unknown_neighbour_is_punted_from_the_deliver_table_metered_and_not_output():
    sw = site_a()
    pkt = fs.tcp(TUNNEL, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip, "10.1.0.99", 50000, 22)
    result = sw.process(pkt)
    assert result.outputs == []
    [punt] = result.packet_ins
    assert punt.table_id == tables.DELIVER.id
    assert punt.max_len == pipeline.PUNT_MAX_LEN
    assert punt.packet["ipv4_dst"] == "10.1.0.99"  # what the controller probes for
    assert result.meters == [pipeline.PUNT_METER_ID]


def test_after_the_probe_is_answered_the_next_packet_is_delivered():
    sw = switch(name="a")
    pkt = fs.tcp(TUNNEL, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip, HOST_A2.ip, 50000, 22)
    assert sw.process(pkt).packet_ins
    sw.process(fs.arp_reply(LAN2, HOST_A2.mac, "02:00:00:0a:00:02", HOST_A2.ip, "0.0.0.0"))
    result = sw.process(pkt)
    assert result.ports == [LAN2] and not result.packet_ins


def test_the_answer_to_sggws_probe_teaches_the_neighbour_and_goes_nowhere_else():
    """The probe comes from PROBE_MAC, not the bridge's MAC: OVS's in-band control (on by
    default) sends ARP replies to the bridge's MAC to NORMAL before table 0."""
    frame = Ether(probes.probe_frame(None, ipaddress.IPv4Address(HOST_A2.ip)))
    assert (frame.src, frame[ARP].hwsrc, frame[ARP].psrc) == (probes.PROBE_MAC,) * 2 + (
        "0.0.0.0",)
    sw = switch(name="a", local_ip="10.1.0.2/24")  # even with a local_ip: it claims none
    pkt = fs.tcp(TUNNEL, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip, HOST_A2.ip, 50000, 22)
    assert sw.process(pkt).packet_ins
    answer = sw.process(fs.arp_reply(LAN2, HOST_A2.mac, probes.PROBE_MAC, HOST_A2.ip,
                                     "0.0.0.0"))
    assert answer.outputs == []
    result = sw.process(pkt)
    assert result.ports == [LAN2] and not result.packet_ins


def test_an_arp_probe_from_the_unspecified_address_teaches_no_neighbour():
    sw = switch(name="a")
    sw.process(fs.arp_request(LAN1, HOST_A1.mac, "0.0.0.0", HOST_A1.ip))  # DAD-style probe
    pkt = fs.tcp(TUNNEL, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip, "0.0.0.0", 50000, 22)
    assert sw.process(pkt).outputs == []


def test_a_reply_to_a_captured_flow_is_not_treated_as_remotely_initiated():
    """The reverse path wins over the neighbour table: the reply reaches the port the
    connection came from even though the host is known elsewhere as a neighbour."""
    sw = site_a()
    sw.process(fs.arp_reply(LAN2, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, ROUTER_A.ip))
    syn = fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip)
    sw.process(syn)
    result = sw.process(fs.reply(syn, TUNNEL, ROUTER_B.mac, "02:00:00:00:00:99"))
    assert result.ports == [LAN1]
    assert [f.table_id for f in result.learned] == []  # nothing new learned for a reply


def test_a_path_learned_the_wrong_way_round_hides_no_capture_rule():
    """The reply of a captured conversation came first (after a flush, OVS may count it
    before the request) and was learned as remotely initiated: the way back into the tunnel.
    The conversation's next request still meets its capture rule, learns its path from the
    tunnel, and the next reply takes that path, not the neighbour table."""
    sw = site_a()
    sw.process(fs.arp_reply(LAN2, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, ROUTER_A.ip))
    syn = fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip)
    syn_ack = fs.reply(syn, TUNNEL, ROUTER_B.mac, "02:00:00:00:00:99")
    assert sw.process(syn_ack).ports == [LAN2]  # by the neighbour, learning the wrong way
    result = sw.process(syn)
    assert result.ports == [TUNNEL]
    assert result.hits(tables.CAPTURE_LEARN.id)
    assert tables.REVERSE.id in [f.table_id for f in result.learned]
    assert sw.process(syn_ack).ports == [LAN1]  # the path the request just learned


@pytest.mark.parametrize("eth_dst, ip_dst", [
    ("ff:ff:ff:ff:ff:ff", "255.255.255.255"), ("01:00:5e:00:00:fb", "224.0.0.251")])
def test_broadcast_and_multicast_from_the_tunnel_are_dropped_not_punted(eth_dst, ip_dst):
    sw = site_a()
    result = sw.process(fs.udp(TUNNEL, SERVER_B.mac, eth_dst, SERVER_B.ip, ip_dst, 5353, 5353))
    assert result.outputs == [] and result.packet_ins == [] and result.learned == []
