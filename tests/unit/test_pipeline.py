"""What one sggw bridge does with packets: the transparent wire, capture into the tunnel and
the reverse paths it learns, and flushing what was learned through a port.

Each test programs a FakeSwitch with the pipeline built from a YAML config and asserts what
hosts would see: which ports a frame leaves by, and with which headers.
"""
import pytest

import fakeswitch as fs
from flows import tables
from flows.ofp import OFPVID_PRESENT, delete_flows
from sites import (
    HOST_A1, HOST_A2, INTERNET, LAN1, LAN2, LOCAL, ROUTER_A, ROUTER_B, SERVER_B, TUNNEL, WAN,
    WIRE, site_a, switch)

OTHER_ROUTER = "02:00:00:0a:00:fe"  # a second gateway MAC (VRRP/HSRP failover)


def others(port):
    return sorted(p for p in WIRE if p != port)


def seen(sw, host, port, vlan=None):
    """``host`` sends an ARP reply from ``port``: the bridge learns where it is."""
    sw.process(fs.arp_reply(port, host.mac, ROUTER_A.mac, host.ip, ROUTER_A.ip, vlan=vlan))


def flush(sw, port):
    """What the controller does when ``port`` goes down; returns the flows deleted."""
    cookie, mask = tables.learned_through(port)
    return sw.apply(delete_flows(cookie=cookie, cookie_mask=mask))


# --- the transparent wire -------------------------------------------------------------------

@pytest.mark.parametrize("in_port", WIRE)
def test_broadcast_floods_to_every_other_wire_port_and_never_the_tunnel(in_port):
    sw = site_a()
    pkt = fs.arp_request(in_port, HOST_A1.mac, HOST_A1.ip, HOST_A2.ip)
    result = sw.process(pkt)
    assert result.ports == others(in_port)
    assert all(sent == fs.without_in_port(pkt) for _, sent in result.outputs)
    assert not result.packet_ins


def test_unknown_unicast_floods_unchanged():
    sw = site_a()
    pkt = fs.tcp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip)
    result = sw.process(pkt)
    assert result.ports == [LAN2, WAN, LOCAL]
    assert all(sent == fs.without_in_port(pkt) for _, sent in result.outputs)


def test_known_destination_gets_the_frame_on_its_port_only():
    sw = site_a()
    seen(sw, HOST_A2, LAN2)
    pkt = fs.tcp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip)
    assert sw.process(pkt).outputs == [(LAN2, fs.without_in_port(pkt))]
    # and the answer goes straight back: the first frame taught where HOST_A1 is
    back = fs.reply(pkt, LAN2, HOST_A2.mac, HOST_A1.mac)
    assert sw.process(back).outputs == [(LAN1, fs.without_in_port(back))]


def test_a_host_that_moves_is_followed():
    sw = site_a()
    seen(sw, HOST_A2, LAN2)
    seen(sw, HOST_A2, WAN)
    pkt = fs.udp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip)
    assert sw.process(pkt).ports == [WAN]


def test_uncaptured_ip_to_the_router_is_bridged_unchanged():
    sw = site_a()
    seen(sw, ROUTER_A, WAN)
    pkt = fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, INTERNET, dport=443)
    assert sw.process(pkt).outputs == [(WAN, fs.without_in_port(pkt))]


def test_multicast_floods():
    sw = site_a()
    seen(sw, HOST_A2, LAN2)
    pkt = fs.udp(LAN1, HOST_A1.mac, "01:00:5e:00:00:fb", HOST_A1.ip, "224.0.0.251", 5353, 5353)
    assert sw.process(pkt).ports == [LAN2, WAN, LOCAL]


def test_vlan_tagged_frames_pass_unchanged_and_macs_are_learned_per_vlan():
    sw = site_a()
    seen(sw, HOST_A2, LAN2, vlan=10)
    to_a2 = fs.tcp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip, vlan=10)
    result = sw.process(to_a2)
    assert result.outputs == [(LAN2, fs.without_in_port(to_a2))]
    assert result.sent(LAN2)["vlan_vid"] == OFPVID_PRESENT | 10
    # the same MAC is unknown in another VLAN and untagged
    for vlan in (20, None):
        other = fs.tcp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip, vlan=vlan)
        result = sw.process(other)
        assert result.ports == [LAN2, WAN, LOCAL]
        assert all(sent == fs.without_in_port(other) for _, sent in result.outputs)


def test_vlan_zero_tag_is_not_untagged():
    sw = site_a()
    seen(sw, HOST_A2, LAN2, vlan=0)
    pkt = fs.udp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip)
    assert sw.process(pkt).ports == [LAN2, WAN, LOCAL]


def test_arp_passes_on_l2_unchanged_even_for_captured_addresses():
    sw = site_a()
    request = fs.arp_request(LAN1, HOST_A1.mac, HOST_A1.ip, SERVER_B.ip)
    result = sw.process(request)
    assert result.ports == [LAN2, WAN, LOCAL]
    answer = fs.arp_reply(WAN, ROUTER_A.mac, HOST_A1.mac, SERVER_B.ip, HOST_A1.ip)  # proxy ARP
    assert sw.process(answer).outputs == [(LAN1, fs.without_in_port(answer))]


def test_ipv6_neighbour_discovery_passes_on_l2_unchanged_even_for_captured_addresses():
    sw = site_a()
    solicit = fs.nd(LAN1, HOST_A1.mac, "33:33:ff:00:00:11", HOST_A1.ip6, "ff02::1:ff00:11",
                    target=SERVER_B.ip6)
    result = sw.process(solicit)
    assert result.ports == [LAN2, WAN, LOCAL]
    assert all(sent == fs.without_in_port(solicit) for _, sent in result.outputs)
    advert = fs.nd(WAN, ROUTER_A.mac, HOST_A1.mac, ROUTER_A.ip6, HOST_A1.ip6,
                   target=SERVER_B.ip6, type_=136)
    assert sw.process(advert).outputs == [(LAN1, fs.without_in_port(advert))]


def test_router_solicitation_floods():
    sw = site_a()
    rs = fs.icmp(LAN1, HOST_A1.mac, "33:33:00:00:00:02", "fe80::11", "ff02::2", type_=133)
    assert sw.process(rs).ports == [LAN2, WAN, LOCAL]


def test_hairpin_outputs_nothing():
    """Two hosts behind the same port (a hub) talk to each other: the bridge stays out."""
    sw = site_a()
    seen(sw, HOST_A2, LAN1)
    pkt = fs.tcp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip)
    result = sw.process(pkt)
    assert result.outputs == [] and result.packet_ins == []


@pytest.mark.parametrize("bogus_source", [fs.BROADCAST, "01:00:5e:00:00:fb"])
def test_a_frame_with_a_multicast_source_does_not_stop_flooding(bogus_source):
    sw = site_a()
    sw.process(fs.udp(LAN2, bogus_source, ROUTER_A.mac, "10.1.0.66", INTERNET))
    broadcast = fs.arp_request(LAN1, HOST_A1.mac, HOST_A1.ip, HOST_A2.ip)
    multicast = fs.udp(LAN1, HOST_A1.mac, "01:00:5e:00:00:fb", HOST_A1.ip, "224.0.0.251",
                       5353, 5353)
    assert sw.process(broadcast).ports == [LAN2, WAN, LOCAL]
    assert sw.process(multicast).ports == [LAN2, WAN, LOCAL]


def test_non_ip_from_the_tunnel_is_dropped():
    sw = site_a()
    result = sw.process(fs.arp_request(TUNNEL, SERVER_B.mac, SERVER_B.ip, HOST_A1.ip))
    assert result.outputs == [] and result.packet_ins == []


def test_a_port_sggw_does_not_know_is_dropped():
    sw = site_a()
    result = sw.process(fs.arp_request(9, HOST_A1.mac, HOST_A1.ip, HOST_A2.ip))
    assert result.outputs == [] and result.packet_ins == []


# --- capture and reverse paths ---------------------------------------------------------------

def syn(port=LAN1, host=HOST_A1, gateway=ROUTER_A.mac, sport=40000, dport=80, **kwargs):
    return fs.tcp(port, host.mac, gateway, host.ip, SERVER_B.ip, sport, dport, **kwargs)


def from_tunnel(pkt, eth_src=ROUTER_B.mac, eth_dst="02:00:00:99:99:99"):
    """The answer to captured ``pkt`` as it comes out of the tunnel (its MACs are the remote
    side's business, so they are arbitrary here)."""
    return fs.reply(pkt, TUNNEL, eth_src, eth_dst)


def test_captured_packet_goes_out_of_the_tunnel_only_unchanged():
    sw = site_a()
    seen(sw, ROUTER_A, WAN)
    pkt = syn()
    result = sw.process(pkt)
    assert result.outputs == [(TUNNEL, fs.without_in_port(pkt))]
    assert len([f for f in result.learned if f.table_id == tables.REVERSE.id]) == 1


@pytest.mark.parametrize("port", [LAN1, LAN2, WAN, LOCAL])
def test_the_reply_returns_to_the_ingress_port_with_the_original_macs_swapped(port):
    sw = site_a()
    pkt = syn(port)
    sw.process(pkt)
    result = sw.process(from_tunnel(pkt))
    assert result.ports == [port]
    sent = result.sent(port)
    assert (sent["eth_dst"], sent["eth_src"]) == (HOST_A1.mac, ROUTER_A.mac)
    assert sent == fs.without_in_port(fs.reply(pkt, TUNNEL, ROUTER_A.mac, HOST_A1.mac))


@pytest.mark.parametrize("make", [
    lambda gw, sport: syn(gateway=gw, sport=sport),
    lambda gw, sport: fs.udp(LAN1, HOST_A1.mac, gw, HOST_A1.ip, SERVER_B.ip, sport, 53),
    lambda gw, sport: fs.tcp(LAN1, HOST_A1.mac, gw, HOST_A1.ip6, SERVER_B.ip6, sport, 22),
], ids=["tcp", "udp", "tcp6"])
def test_five_tuple_mode_keeps_one_reverse_path_per_connection(make):
    """Two connections between the same hosts, sent via different gateway MACs: each reply
    comes back "from" the gateway its own connection used."""
    sw = site_a()
    first, second = make(ROUTER_A.mac, 40001), make(OTHER_ROUTER, 40002)
    sw.process(first)
    sw.process(second)
    assert sw.process(from_tunnel(first)).sent(LAN1)["eth_src"] == ROUTER_A.mac
    assert sw.process(from_tunnel(second)).sent(LAN1)["eth_src"] == OTHER_ROUTER
    assert len(sw.flows(tables.REVERSE.id)) == 2


def test_five_tuple_mode_keeps_one_reverse_path_per_protocol_for_icmp():
    sw = site_a()
    ping = fs.icmp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip)
    other = fs.frame(LAN1, HOST_A1.mac, ROUTER_A.mac, 0x0800, ipv4_src=HOST_A1.ip,
                     ipv4_dst=SERVER_B.ip, ip_proto=47)  # GRE: a 3-tuple as well
    for pkt in (ping, ping, other):
        sw.process(pkt)
    [icmp_flow, gre_flow] = sw.flows(tables.REVERSE.id)
    assert {n for n in icmp_flow.fields if not n.startswith("reg")} == {
        "eth_type", "vlan_tci", "ipv4_src", "ipv4_dst", "ip_proto"}
    assert (icmp_flow.fields["ip_proto"], gre_flow.fields["ip_proto"]) == (1, 47)
    echo_reply = sw.process(from_tunnel(ping))
    assert echo_reply.sent(LAN1)["eth_dst"] == HOST_A1.mac


def test_host_pair_mode_keeps_one_reverse_path_per_pair_of_hosts():
    sw = site_a(reverse_path={"match": "host_pair"})
    packets = [syn(sport=40001), syn(sport=40002),
               fs.udp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip),
               fs.icmp(LAN1, HOST_A1.mac, OTHER_ROUTER, HOST_A1.ip, SERVER_B.ip)]
    for pkt in packets:
        sw.process(pkt)
    assert len(sw.flows(tables.REVERSE.id)) == 1
    for pkt in packets:  # the newest packet decided the MACs for all of them
        sent = sw.process(from_tunnel(pkt)).sent(LAN1)
        assert (sent["eth_dst"], sent["eth_src"]) == (HOST_A1.mac, OTHER_ROUTER)


def test_a_new_gateway_mac_heals_the_reverse_path_with_one_packet():
    sw = site_a()
    sw.process(syn())
    sw.process(syn(gateway=OTHER_ROUTER))  # the VRRP master changed
    sent = sw.process(from_tunnel(syn())).sent(LAN1)
    assert sent["eth_src"] == OTHER_ROUTER
    assert len(sw.flows(tables.REVERSE.id)) == 1


def test_a_host_that_moved_port_gets_its_replies_on_the_new_port():
    sw = site_a()
    sw.process(syn(LAN1))
    sw.process(syn(LAN2))
    assert sw.process(from_tunnel(syn())).ports == [LAN2]
    # what is left is owned by the new port: flushing the old one does not touch it
    flush(sw, LAN1)
    assert sw.process(from_tunnel(syn())).ports == [LAN2]


def test_reverse_paths_keep_the_vlan():
    sw = site_a()
    pkt = syn(vlan=7)
    assert sw.process(pkt).sent(TUNNEL)["vlan_vid"] == OFPVID_PRESENT | 7
    reply = from_tunnel(pkt)
    sent = sw.process(reply).sent(LAN1)
    assert (sent["vlan_vid"], sent["eth_dst"]) == (OFPVID_PRESENT | 7, HOST_A1.mac)
    # the same 5-tuple in another VLAN is a different flow: no reverse path for it
    untagged = dict(reply, vlan_vid=0)
    assert sw.process(untagged).packet_ins  # unknown neighbour in that VLAN: asks


def test_reverse_paths_expire_as_configured_and_tcp_ones_early_after_fin():
    sw = site_a(reverse_path={"idle_timeout": 30, "fin_idle_timeout": 2})
    timeouts = {}
    for name, pkt in (
            ("tcp", syn()),
            ("udp", fs.udp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip)),
            ("icmp", fs.icmp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip)),
            ("remote tcp", fs.tcp(TUNNEL, SERVER_B.mac, ROUTER_B.mac, SERVER_B.ip, HOST_A2.ip))):
        [flow] = [f for f in sw.process(pkt).learned if f.table_id == tables.REVERSE.id]
        timeouts[name] = (flow.idle_timeout, flow.fin_idle_timeout)
    assert timeouts == {"tcp": (30, 2), "udp": (30, 0), "icmp": (30, 0), "remote tcp": (30, 2)}


def test_first_matching_rule_counts_the_packet():
    rules = [{"name": "web", "ipv4_dst": "10.2.0.0/24", "ip_proto": "tcp", "dst_port": 80},
             {"name": "site-b", "ipv4_dst": "10.2.0.0/16"}]
    sw = switch(capture=rules)
    web, ssh = syn(dport=80), syn(dport=22)
    for pkt, rule in ((web, 1), (ssh, 2)):  # config rules are numbered 1.. in file order
        result = sw.process(pkt)
        assert result.ports == [TUNNEL]
        assert [f.cookie for f in result.hits(tables.CAPTURE.id)] == [
            tables.cookie(tables.KIND_CAPTURE, rule)]
    # reversed order: the broad rule, now rule 1, wins for both
    sw = switch(capture=rules[::-1])
    for pkt in (web, ssh):
        assert [f.cookie for f in sw.process(pkt).hits(tables.CAPTURE.id)] == [
            tables.cookie(tables.KIND_CAPTURE, 1)]


def capture_one(rule, pkt):
    """The ports ``pkt`` leaves by on a bridge whose only capture rule is ``rule``."""
    sw = switch(capture=[dict(rule, name="r")])
    seen(sw, ROUTER_A, WAN)
    return sw.process(pkt).ports


@pytest.mark.parametrize("rule, pkt, captured", [
    ({"in_port": "lan", "ipv4_dst": "10.2.0.0/16"}, syn(LAN1), True),
    ({"in_port": "lan", "ipv4_dst": "10.2.0.0/16"}, syn(LAN2), True),
    ({"in_port": "lan", "ipv4_dst": "10.2.0.0/16"}, syn(LOCAL), False),
    ({"in_port": "lan2", "ipv4_dst": "10.2.0.0/16"}, syn(LAN1), False),
    ({"in_port": "lan2", "ipv4_dst": "10.2.0.0/16"}, syn(LAN2), True),
    ({"in_port": "local", "ipv4_dst": "10.2.0.0/16"}, syn(LOCAL), True),
    ({"in_port": ["wan", "local"]}, syn(WAN), True),
    ({"in_port": ["wan", "local"]}, syn(LAN1), False),
    ({"vlan": 7}, syn(vlan=7), True),
    ({"vlan": 7}, syn(vlan=8), False),
    ({"vlan": 7}, syn(), False),
    ({"ipv4_src": "10.1.0.0/28"}, syn(), True),
    ({"ipv4_src": "10.1.0.0/29"}, syn(), False),
    ({"ipv4_dst": "10.2.0.11/32"}, syn(), True),
    ({"ipv4_dst": "10.2.0.12/32"}, syn(), False),
    ({"ip_proto": "tcp", "dst_port": 443}, syn(dport=443), True),
    ({"ip_proto": "tcp", "dst_port": 443}, syn(dport=80), False),
    ({"ip_proto": "tcp", "src_port": 40000}, syn(sport=40000), True),
    ({"ip_proto": "udp", "dst_port": 443},
     fs.udp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip, dport=443), True),
    ({"ip_proto": "udp", "dst_port": 443}, syn(dport=443), False),
    ({"ip_proto": "icmp"},
     fs.icmp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip), True),
    ({"ip_proto": "icmp"}, syn(), False),
    ({"ipv6_dst": "fd00:2::/48"},
     fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip6, SERVER_B.ip6), True),
    ({"ipv6_dst": "fd00:2::/48"}, syn(), False),
    ({"ip_proto": "icmpv6"},
     fs.icmp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip6, SERVER_B.ip6), True),
    ({"ip_proto": "tcp"},  # no address family given: both
     fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip6, SERVER_B.ip6), True),
    ({"ip_proto": "tcp"}, syn(), True),
])
def test_capture_rule_fields(rule, pkt, captured):
    ports = capture_one(rule, pkt)
    if captured:
        assert ports == [TUNNEL]
    else:  # bridged (flooded when the router is not known in that VLAN)
        assert ports and TUNNEL not in ports


def test_captured_ipv6_reply_is_returned_with_swapped_macs():
    sw = site_a()
    pkt = fs.udp(LAN2, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip6, SERVER_B.ip6, 5000, 53)
    assert sw.process(pkt).ports == [TUNNEL]
    sent = sw.process(from_tunnel(pkt)).sent(LAN2)
    assert (sent["eth_dst"], sent["eth_src"], sent["ipv6_dst"]) == (
        HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip6)


def test_captured_traffic_is_dropped_not_leaked_while_the_tunnel_port_is_missing():
    sw = site_a(switch_ports={LAN1: "lan1", LAN2: "lan2", WAN: "wan0"})
    seen(sw, ROUTER_A, WAN)
    assert sw.process(syn()).outputs == []
    uncaptured = fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, INTERNET)
    assert sw.process(uncaptured).ports == [WAN]


def test_the_tunnel_side_reply_does_not_teach_the_wire_its_macs():
    """Replies from the tunnel carry the router's MAC as source; the bridge must keep
    believing the router is on the wan port."""
    sw = site_a()
    seen(sw, ROUTER_A, WAN)
    sw.process(syn())
    sw.process(from_tunnel(syn(), eth_src=ROUTER_A.mac))
    to_router = fs.tcp(LAN2, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, INTERNET)
    assert sw.process(to_router).ports == [WAN]


# --- flushing a port --------------------------------------------------------------------------

def test_flushing_a_port_forgets_only_what_was_learned_through_it():
    sw = site_a(local_ip="10.1.0.2/24")
    seen(sw, HOST_A1, LAN1)
    seen(sw, HOST_A2, LAN2)
    sw.process(syn(LAN1))  # reverse path, gateway and neighbour via LAN1
    sw.process(syn(LAN2, HOST_A2, sport=40002))
    static = len(sw.flows(learned=False))
    learned_on = {port: len([f for f in sw.flows(learned=True) if f.cookie & 0xFFFFFFFF == port])
                  for port in (LAN1, LAN2)}
    # MAC, neighbour and reverse path each; the one gateway flow belongs to its last teacher
    assert learned_on == {LAN1: 3, LAN2: 4}

    removed = flush(sw, LAN1)

    assert len(removed) == learned_on[LAN1]
    assert len(sw.flows(learned=False)) == static
    assert all(f.cookie & 0xFFFFFFFF != LAN1 for f in sw.flows(learned=True))
    # HOST_A1 is unknown again: frames to it flood, the reply to its connection is punted
    to_a1 = fs.udp(LAN2, HOST_A2.mac, HOST_A1.mac, HOST_A2.ip, HOST_A1.ip)
    assert sw.process(to_a1).ports == [LAN1, WAN, LOCAL]
    assert sw.process(from_tunnel(syn(LAN1))).packet_ins
    # HOST_A2 is still known
    to_a2 = fs.udp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip)
    assert sw.process(to_a2).ports == [LAN2]
    assert sw.process(from_tunnel(syn(LAN2, HOST_A2, sport=40002))).ports == [LAN2]


def test_flushing_the_local_port_uses_its_full_port_number():
    sw = site_a()
    seen(sw, HOST_A1, LAN1)
    seen(sw, ROUTER_A, LOCAL)
    flush(sw, LOCAL)
    assert sw.process(fs.udp(LAN2, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, INTERNET)).ports == [
        LAN1, WAN, LOCAL]
    assert sw.process(fs.udp(LAN2, HOST_A2.mac, HOST_A1.mac, HOST_A2.ip, HOST_A1.ip)).ports == [
        LAN1]
