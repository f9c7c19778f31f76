"""The endpoint's own traffic (a datapath with ``local_ip``): it has one IP and no gateway
route, so the bridge answers its ARP for off-subnet addresses with the upstream gateway's
MAC, which the data plane learned from other traffic.
"""
import pytest

import fakeswitch as fs
from flows import tables
from sites import (
    ENDPOINT_A, HOST_A1, HOST_A2, INTERNET, LAN1, LAN2, LOCAL, ROUTER_A, SERVER_B, WAN, site_a)

NEW_ROUTER = "02:00:00:0a:00:fe"


def endpoint():
    return site_a(local_ip="10.1.0.2/24")


def ask(sw, address):
    """The endpoint ARPs for ``address`` (it has an on-link default route, no gateway)."""
    return sw.process(fs.arp_request(LOCAL, ENDPOINT_A.mac, ENDPOINT_A.ip, address))


def proxy_answer(address, gateway_mac):
    return fs.without_in_port(fs.frame(
        LOCAL, gateway_mac, ENDPOINT_A.mac, 0x0806, arp_op=2, arp_spa=address,
        arp_tpa=ENDPOINT_A.ip, arp_sha=gateway_mac, arp_tha=ENDPOINT_A.mac))


TEACHERS = {
    # a LAN host's unicast packet to an off-subnet address is addressed to its gateway
    "lan host to the internet": fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, INTERNET),
    "lan host to the other site": fs.icmp(LAN2, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip,
                                          SERVER_B.ip),
    # a routed packet from the wan comes from the gateway's MAC
    "routed packet from the wan": fs.udp(WAN, ROUTER_A.mac, HOST_A1.mac, INTERNET, HOST_A1.ip),
}


@pytest.mark.parametrize("teacher", TEACHERS.values(), ids=TEACHERS.keys())
@pytest.mark.parametrize("address", [INTERNET, SERVER_B.ip])
def test_arp_for_an_off_subnet_address_is_answered_with_the_gateway_mac(teacher, address):
    sw = endpoint()
    sw.process(teacher)
    result = ask(sw, address)
    assert result.outputs == [(LOCAL, proxy_answer(address, ROUTER_A.mac))]


def test_without_a_learned_gateway_the_request_is_dropped():
    sw = endpoint()
    result = ask(sw, INTERNET)
    assert result.outputs == [] and result.packet_ins == []


NOT_TEACHERS = {
    "lan host to an on-subnet host": fs.tcp(LAN1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip,
                                            HOST_A2.ip),
    "lan broadcast to an off-subnet address": fs.udp(
        LAN1, HOST_A1.mac, fs.BROADCAST, HOST_A1.ip, "255.255.255.255", 68, 67),
    "lan host without an address yet": fs.udp(
        LAN1, HOST_A1.mac, ROUTER_A.mac, "0.0.0.0", INTERNET, 68, 67),
    "on-subnet source from the wan": fs.udp(WAN, ROUTER_A.mac, HOST_A1.mac, ROUTER_A.ip,
                                            HOST_A1.ip),
    "arp from the router": fs.arp_request(WAN, ROUTER_A.mac, ROUTER_A.ip, HOST_A1.ip),
}


@pytest.mark.parametrize("packet", NOT_TEACHERS.values(), ids=NOT_TEACHERS.keys())
def test_on_subnet_traffic_teaches_no_gateway(packet):
    sw = endpoint()
    sw.process(packet)
    assert ask(sw, INTERNET).outputs == []


def test_the_newest_gateway_mac_wins():
    sw = endpoint()
    sw.process(TEACHERS["lan host to the internet"])
    sw.process(fs.udp(WAN, NEW_ROUTER, HOST_A1.mac, INTERNET, HOST_A1.ip))  # failover
    assert ask(sw, INTERNET).outputs == [(LOCAL, proxy_answer(INTERNET, NEW_ROUTER))]


def test_the_endpoints_stale_arp_cache_does_not_undo_a_gateway_change():
    sw = endpoint()
    sw.process(fs.udp(WAN, ROUTER_A.mac, HOST_A1.mac, INTERNET, HOST_A1.ip))
    assert ask(sw, INTERNET).sent(LOCAL)["arp_sha"] == ROUTER_A.mac  # endpoint caches it
    sw.process(fs.udp(WAN, NEW_ROUTER, HOST_A1.mac, INTERNET, HOST_A1.ip))  # failover
    sw.process(fs.udp(LOCAL, ENDPOINT_A.mac, ROUTER_A.mac, ENDPOINT_A.ip, INTERNET, 1194, 1194))
    assert ask(sw, INTERNET).outputs == [(LOCAL, proxy_answer(INTERNET, NEW_ROUTER))]


def test_arp_for_an_on_subnet_address_floods_normally():
    sw = endpoint()
    sw.process(TEACHERS["lan host to the internet"])
    request = fs.arp_request(LOCAL, ENDPOINT_A.mac, ENDPOINT_A.ip, HOST_A2.ip)
    result = sw.process(request)
    assert result.ports == [LAN1, LAN2, WAN]
    assert all(sent == fs.without_in_port(request) for _, sent in result.outputs)


def test_arp_from_a_lan_host_for_an_off_subnet_address_is_not_proxied():
    sw = endpoint()
    sw.process(TEACHERS["lan host to the internet"])
    request = fs.arp_request(LAN1, HOST_A1.mac, HOST_A1.ip, INTERNET)
    assert sw.process(request).ports == [LAN2, WAN, LOCAL]


def test_then_the_endpoints_own_traffic_goes_to_the_gateway_out_of_the_wan():
    sw = endpoint()
    sw.process(TEACHERS["routed packet from the wan"])
    answer = ask(sw, INTERNET).sent(LOCAL)
    own = fs.udp(LOCAL, ENDPOINT_A.mac, answer["arp_sha"], ENDPOINT_A.ip, INTERNET, 1194, 1194)
    assert sw.process(own).outputs == [(WAN, fs.without_in_port(own))]


def test_without_local_ip_the_endpoints_arp_is_just_bridged():
    sw = site_a()
    sw.process(TEACHERS["lan host to the internet"])
    assert ask(sw, INTERNET).ports == [LAN1, LAN2, WAN]
    assert not sw.flows(tables.GATEWAY.id)
