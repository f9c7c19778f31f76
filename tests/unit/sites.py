"""The test network: two sites' bridges, their hosts and configs, built into FakeSwitches.

Each bridge has ports lan1=1, lan2=2, wan0=3 (toward the site's router), tap0=4 (the tunnel)
and LOCAL (the endpoint itself); with ``MIRROR_PORT_NAMES`` also mon1=6 and mon2=7, analyzer
ports for mirror sessions. Site A is 10.1.0.0/24 + fd00:1::/64, site B 10.2.0.0/24 +
fd00:2::/64; each site captures the traffic for the other one into the tunnel.
"""
from collections import namedtuple

import yaml

from app import config
from fakeswitch import FakeSwitch
from flows import desired, ports
from flows.ofp import OFPP_LOCAL

LAN1, LAN2, WAN, TUNNEL, LOCAL = 1, 2, 3, 4, OFPP_LOCAL
PORT_NAMES = {LAN1: "lan1", LAN2: "lan2", WAN: "wan0", TUNNEL: "tap0", LOCAL: "br0"}
WIRE = (LAN1, LAN2, WAN, LOCAL)  # the transparent wire: everything but the tunnel
MON1, MON2 = 6, 7  # analyzer ports for mirror sessions: on the switch, in no role
MIRROR_PORT_NAMES = {**PORT_NAMES, MON1: "mon1", MON2: "mon2"}

Host = namedtuple("Host", "mac ip ip6")
HOST_A1 = Host("02:00:00:0a:00:11", "10.1.0.11", "fd00:1::11")
HOST_A2 = Host("02:00:00:0a:00:12", "10.1.0.12", "fd00:1::12")
ROUTER_A = Host("02:00:00:0a:00:01", "10.1.0.1", "fd00:1::1")
ENDPOINT_A = Host("02:00:00:0a:00:02", "10.1.0.2", "fd00:1::2")  # the bridge's LOCAL port
SERVER_B = Host("02:00:00:0b:00:11", "10.2.0.11", "fd00:2::11")
ROUTER_B = Host("02:00:00:0b:00:01", "10.2.0.1", "fd00:2::1")
INTERNET = "198.51.100.7"  # somewhere beyond the wan routers, never captured

TO_B = [{"name": "to-b", "ipv4_dst": "10.2.0.0/16"}, {"name": "to-b6", "ipv6_dst": "fd00:2::/48"}]
TO_A = [{"name": "to-a", "ipv4_dst": "10.1.0.0/16"}, {"name": "to-a6", "ipv6_dst": "fd00:1::/48"}]


def datapath(capture=(), local_ip=None, reverse_path=None, tunnel=True, name="site",
             lan=("lan1", "lan2"), mirrors=()):
    """A datapath config, written as YAML and loaded the way the controller loads it."""
    body = {"dp_id": 1, "ports": {"lan": list(lan), "wan": "wan0"}}
    if tunnel:
        body["ports"]["tunnel"] = "tap0"
    if capture:
        body["capture"] = list(capture)
    if mirrors:
        body["mirrors"] = list(mirrors)
    if local_ip:
        body["local_ip"] = local_ip
    if reverse_path:
        body["reverse_path"] = reverse_path
    return config.loads(yaml.safe_dump({"datapaths": {name: body}})).datapaths[name]


def portmap(dp, switch_ports=None):
    return ports.resolve(dp.ports, PORT_NAMES if switch_ports is None else switch_ports)


def everything(dp, switch_ports=None):
    """The whole desired state (flows, groups, meters) of ``dp`` on a switch."""
    return desired.everything(dp, portmap(dp, switch_ports))


def static_flows(dp, switch_ports=None):
    return list(everything(dp, switch_ports).flows)


def fake_switch(part, switch_ports=None, **kwargs):
    """A FakeSwitch holding desired Part ``part``, with the ports of ``switch_ports``."""
    ports = PORT_NAMES if switch_ports is None else switch_ports
    return FakeSwitch(part.flows, part.groups, part.meters, ports=ports, **kwargs)


_BUILT = {}


def switch(switch_ports=None, fake=None, **kwargs):
    """A FakeSwitch programmed with everything desired for ``datapath(**kwargs)``; ``fake``
    are FakeSwitch options (meters_drop).

    The messages of a config are built once: FakeSwitch never changes them."""
    key = repr((switch_ports, sorted(kwargs.items())))
    if key not in _BUILT:
        _BUILT[key] = everything(datapath(**kwargs), switch_ports)
    return fake_switch(_BUILT[key], switch_ports, **(fake or {}))


def site_a(**kwargs):
    return switch(**dict(dict(capture=TO_B, name="a"), **kwargs))


def site_b(**kwargs):
    return switch(**dict(dict(capture=TO_A, name="b"), **kwargs))


# outputs: [(site, port, packet)], packet_ins: [(site, PacketIn)]
Delivered = namedtuple("Delivered", "outputs packet_ins")


class TwoSites:
    """Sites A and B with their tunnel ports joined, as the veth/OpenVPN link joins them."""

    def __init__(self, a=None, b=None):
        self.sites = {"a": a or site_a(), "b": b or site_b()}

    def send(self, site, packet):
        """Inject ``packet`` at ``site``; follow it through the tunnel (both ways) and return
        where it left the two bridges other than by the tunnel, and any packet-ins."""
        outputs, packet_ins, queue = [], [], [(site, packet)]
        for _ in range(10):  # a packet bouncing between the sites more often is a bug
            if not queue:
                return Delivered(outputs, packet_ins)
            site, packet = queue.pop(0)
            result = self.sites[site].process(packet)
            packet_ins += [(site, p) for p in result.packet_ins]
            for port, sent in result.outputs:
                if port == TUNNEL:
                    queue.append(("b" if site == "a" else "a", dict(sent, in_port=TUNNEL)))
                else:
                    outputs.append((site, port, sent))
        raise AssertionError("packet loops through the tunnel")
