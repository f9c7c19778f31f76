"""The learn() actions: how the data plane remembers MACs, neighbours, gateways and replies.

Each builder returns one ``NXActionLearn``. The flows it writes answer lookups the way
:mod:`flows.tables` describes: they load ``REG_OUT`` and rewrite MACs, never goto.
The port the learning packet came in on is a constant here (every learn sits in a flow
for one port), and it is also in the learned flow's cookie, so flushing a port is one
delete by cookie.
"""
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows import tables
from flows.ofp import ETH_TYPE_IP, ETH_TYPE_IPV6, IPPROTO_TCP, IPPROTO_UDP, nxm_name

# Idle timeouts (seconds) of learned wire state; the reverse-path timeouts come from config.
MAC_IDLE = 300
NEIGH_IDLE = 600
GATEWAY_IDLE = 3600

_VLAN = ("vlan_tci", 0)  # bits 0..11 VID, bit 12 "tag present"
_VLAN_BITS = 13


def _field(name):
    return (nxm_name(name), 0)


def _match(src, dst, n_bits):
    """Learned flow matches ``dst`` == (learning packet's ``src`` field, or constant)."""
    src = _field(src) if isinstance(src, str) else src
    return parser.NXFlowSpecMatch(src=src, dst=_field(dst), n_bits=n_bits)


def _load(src, dst, n_bits):
    """Learned flow loads ``dst`` := (learning packet's ``src`` field, or constant)."""
    src = _field(src) if isinstance(src, str) else src
    return parser.NXFlowSpecLoad(src=src, dst=_field(dst), n_bits=n_bits)


def _same_vlan():
    return parser.NXFlowSpecMatch(src=_VLAN, dst=_VLAN, n_bits=_VLAN_BITS)


def _learn(table, kind, port, specs, idle_timeout, fin_idle_timeout=0):
    return parser.NXActionLearn(
        table_id=table.id,
        specs=specs,
        idle_timeout=idle_timeout,
        priority=tables.LEARNED_PRIORITY,
        cookie=tables.cookie(kind, port),
        fin_idle_timeout=fin_idle_timeout,
    )


def mac(port):
    """MAC table: frames to this (VLAN, source MAC) go out ``port``."""
    return _learn(tables.MAC, tables.KIND_LEARNED_MAC, port, [
        _same_vlan(),
        _match("eth_src", "eth_dst", 48),
        _load(port, tables.REG_OUT, 32),
    ], MAC_IDLE)


def neighbour(port, family, from_arp=False):
    """NEIGH table: IP packets to this source address get its MAC and go out ``port``.

    ``from_arp`` learns IPv4 neighbours from ARP (sender address and MAC) instead.
    """
    if family == 4:
        eth_type, dst_field, n_bits = ETH_TYPE_IP, "ipv4_dst", 32
        src_ip, src_mac = ("arp_spa", "arp_sha") if from_arp else ("ipv4_src", "eth_src")
    else:
        eth_type, dst_field, n_bits = ETH_TYPE_IPV6, "ipv6_dst", 128
        src_ip, src_mac = "ipv6_src", "eth_src"
    return _learn(tables.NEIGH, tables.KIND_LEARNED_NEIGH, port, [
        _match(eth_type, "eth_type", 16),
        _same_vlan(),
        _match(src_ip, dst_field, n_bits),
        _load(src_mac, "eth_dst", 48),
        _load(port, tables.REG_OUT, 32),
    ], NEIGH_IDLE)


def gateway(port, mac_field):
    """GATEWAY table: one flow that sets eth_src to the gateway MAC (read from ``mac_field``).

    A LAN host's packet to an off-subnet address carries the gateway in eth_dst; a routed
    packet arriving from the wan carries it in eth_src. The newest one wins, so a changed
    gateway MAC heals with the next such packet.
    """
    return _learn(tables.GATEWAY, tables.KIND_LEARNED_GATEWAY, port, [
        _load(mac_field, "eth_src", 48),
    ], GATEWAY_IDLE)


def reverse(port, reply_from_tunnel, family, proto, reverse_cfg):
    """REVERSE table: the reply to this packet gets swapped MACs and goes back out ``port``.

    ``reply_from_tunnel`` says where replies arrive (1: the tunnel, for captured packets;
    0: a wire port, for packets that came in from the tunnel). ``proto`` is ``IPPROTO_TCP``
    or ``IPPROTO_UDP`` for a 5-tuple, None for a 3-tuple (source, destination, protocol);
    in ``host_pair`` mode only the addresses are matched.
    """
    if family == 4:
        eth_type, src_ip, dst_ip, n_bits = ETH_TYPE_IP, "ipv4_src", "ipv4_dst", 32
    else:
        eth_type, src_ip, dst_ip, n_bits = ETH_TYPE_IPV6, "ipv6_src", "ipv6_dst", 128
    specs = [
        _match(reply_from_tunnel, tables.REG_FROM_TUNNEL, 1),
        _match(eth_type, "eth_type", 16),
        _same_vlan(),
        _match(src_ip, dst_ip, n_bits),
        _match(dst_ip, src_ip, n_bits),
    ]
    fin_idle = 0
    if reverse_cfg.match == "five_tuple":
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            l4 = "tcp" if proto == IPPROTO_TCP else "udp"
            specs += [
                _match(proto, "ip_proto", 8),
                _match(l4 + "_src", l4 + "_dst", 16),
                _match(l4 + "_dst", l4 + "_src", 16),
            ]
            fin_idle = reverse_cfg.fin_idle_timeout if proto == IPPROTO_TCP else 0
        else:
            specs.append(_match("ip_proto", "ip_proto", 8))
    specs += [
        _load("eth_src", "eth_dst", 48),
        _load("eth_dst", "eth_src", 48),
        _load(port, tables.REG_OUT, 32),
    ]
    return _learn(tables.REVERSE, tables.KIND_LEARNED_REVERSE, port, specs,
                  reverse_cfg.idle_timeout, fin_idle)
