"""Build a datapath's base pipeline from its config and the switch's ports.

``flows(dp, ports, hooks)`` returns every flow of the pipeline's skeleton (all with sggw
cookies) and ``meters()`` the meters they use; each capture rule and mirror session adds its
own flows (:mod:`flows.capture`, :mod:`flows.mirror`). The tables and registers are described
in :mod:`flows.tables`; this module only fills them. Pure: no I/O, no Ryu event loop.
"""
from dataclasses import dataclass

from flows import conntrack, learn, tables
from flows.mirror import copy_flows, hook_action
from flows.ofp import (
    ETH_TYPE_ARP, ETH_TYPE_IP, ETH_TYPE_IPV6, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
    MULTICAST_BIT, OFPP_CONTROLLER, OFPP_IN_PORT, UNICAST, ZERO_MAC, flow, load_out_port,
    match, meter_mod, move, output, resubmit, set_field)
from flows.probes import PROBE_MAC
from flows.tables import (
    ARP_PROXY, ARP_REPLY, CAPTURE, CAPTURE_LEARN, CT_LOCAL, CT_TUNNEL, DELIVER, EGRESS, FLOOD,
    GATEWAY, INGRESS, L2, LOCAL_IN, LOCAL_REPLY, MAC, NEIGH, REG_FROM_TUNNEL, REG_OUT,
    REG_SCRATCH, REVERSE, TUNNEL_IN, TUNNEL_MISS)

PUNT_METER_ID = tables.METER_PUNT  # caps packet-ins for unknown neighbours
PUNT_PPS = 50
PUNT_MAX_LEN = 128  # enough for the headers the controller needs to send a probe
ND_TYPES = range(133, 138)  # router/neighbour solicitation/advertisement, redirect
_FAMILIES = ((4, ETH_TYPE_IP), (6, ETH_TYPE_IPV6))


@dataclass(frozen=True)
class Hooks:
    """Where mirror sessions attach: ports whose received (rx) or transmitted (tx) packets
    are copied, and the analyzer ports that only carry copies."""

    rx: frozenset = frozenset()
    tx: frozenset = frozenset()
    analyzers: frozenset = frozenset()


NO_HOOKS = Hooks()


def meters():
    return [meter_mod(PUNT_METER_ID, PUNT_PPS)]


def flows(dp, ports, hooks=NO_HOOKS):
    """The skeleton for datapath config ``dp`` on a switch with ``ports`` (PortMap)."""
    return (ingress(dp, ports, hooks) + local_in(dp, ports) + capture(dp, ports)
            + capture_learn(dp, ports) + l2(ports) + tunnel_in(dp, ports)
            + arp_proxy(dp, ports, hooks) + egress(ports, hooks) + copy_flows())


def _rx(port, hooks):
    """The actions copying what ``port`` received, if a session wants it (first thing)."""
    return [hook_action("rx", port)] if port in hooks.rx else []


def _tx(port, hooks):
    """The actions copying what was just sent out of ``port``, if a session wants it."""
    return [hook_action("tx", port)] if port in hooks.tx else []


def ingress(dp, ports, hooks=NO_HOOKS):
    """Classify by in_port; wire ports learn MAC, IP neighbour and (with local_ip) gateway."""
    out = [flow(INGRESS, 0),  # a port sggw does not know: drop
           # a group address is never a frame's source: drop before it poisons MAC learning
           flow(INGRESS, 200, match(eth_src=MULTICAST_BIT))]
    # analyzer ports carry only copies: whatever arrives on them is dropped
    out += [flow(INGRESS, 210, match(in_port=port)) for port in sorted(hooks.analyzers)]
    # a mirrored port with no role: copy what it receives, forward nothing
    out += [flow(INGRESS, 100, match(in_port=port), _rx(port, hooks))
            for port in sorted(hooks.rx - set(ports.all))]
    subnet = _subnet(dp)
    for port in ports.wire:
        rx = _rx(port, hooks)
        mac = learn.mac(port)
        v4 = rx + [mac, learn.neighbour(port, 4)]
        out += [
            flow(INGRESS, 100, match(in_port=port), rx + [mac], goto=LOCAL_IN),
            flow(INGRESS, 110, match(in_port=port, eth_type=ETH_TYPE_ARP),
                 rx + [mac, learn.neighbour(port, 4, from_arp=True)], goto=LOCAL_IN),
            flow(INGRESS, 110, match(in_port=port, eth_type=ETH_TYPE_IP), v4, goto=LOCAL_IN),
            flow(INGRESS, 110, match(in_port=port, eth_type=ETH_TYPE_IPV6),
                 rx + [mac, learn.neighbour(port, 6)], goto=LOCAL_IN),
            # unspecified sources (DHCP, ARP probes, DAD) are nobody's address
            flow(INGRESS, 120, match(in_port=port, eth_type=ETH_TYPE_ARP, arp_spa="0.0.0.0"),
                 rx + [mac], goto=LOCAL_IN),
            flow(INGRESS, 120, match(in_port=port, eth_type=ETH_TYPE_IP, ipv4_src="0.0.0.0"),
                 rx + [mac], goto=LOCAL_IN),
            flow(INGRESS, 120, match(in_port=port, eth_type=ETH_TYPE_IPV6, ipv6_src="::"),
                 rx + [mac], goto=LOCAL_IN),
        ]
        if subnet is None or port == ports.local:
            # the endpoint's own packets carry the gateway MAC the proxy ARP gave it: learning
            # from them would keep a stale gateway alive
            continue
        if port == ports.wan:
            # a routed packet (source off the subnet) arrives from the gateway's MAC
            on_link = match(in_port=port, eth_type=ETH_TYPE_IP, ipv4_src=subnet)
            routed = match(in_port=port, eth_type=ETH_TYPE_IP)
            learn_gw = learn.gateway(port, "eth_src")
        else:
            # a host's unicast packet to an off-subnet address is sent to its gateway's MAC
            on_link = match(in_port=port, eth_type=ETH_TYPE_IP, ipv4_dst=subnet)
            routed = match(in_port=port, eth_type=ETH_TYPE_IP, eth_dst=UNICAST)
            learn_gw = learn.gateway(port, "eth_dst")
        out += [flow(INGRESS, 115, on_link, v4, goto=LOCAL_IN),
                flow(INGRESS, 113, routed, v4 + [learn_gw], goto=LOCAL_IN)]
    if ports.tunnel is not None:
        out.append(flow(INGRESS, 100, match(in_port=ports.tunnel),
                        _rx(ports.tunnel, hooks) + [set_field(**{REG_FROM_TUNNEL: 1})],
                        goto=TUNNEL_IN))
    return out


def local_in(dp, ports):
    """Wire traffic: ND, broadcast and multicast stay on L2; IP meets the capture rules."""
    out = [flow(LOCAL_IN, 0, goto=L2)]
    out += [flow(LOCAL_IN, 10, match(eth_type=eth_type), goto=CAPTURE)
            for _, eth_type in _FAMILIES]
    out.append(flow(LOCAL_IN, 20, match(eth_dst=MULTICAST_BIT), goto=L2))
    # an answer to sggw's neighbour probe: INGRESS learned from it, nobody else wants it
    out.append(flow(LOCAL_IN, 50, match(eth_dst=PROBE_MAC)))
    out += [flow(LOCAL_IN, 20, match(eth_type=ETH_TYPE_IPV6, ip_proto=IPPROTO_ICMPV6,
                                     icmpv6_type=nd_type), goto=L2)
            for nd_type in ND_TYPES]
    subnet = _subnet(dp)
    if subnet is not None:
        request = dict(in_port=ports.local, eth_type=ETH_TYPE_ARP, arp_op=1)
        out += [flow(LOCAL_IN, 40, match(arp_tpa=subnet, **request), goto=L2),
                flow(LOCAL_IN, 35, match(**request), goto=ARP_PROXY)]
    return out


def capture(dp, ports):
    """What the capture rules (flows.capture) fall back to: IP that no rule captured may be
    the reply to a remotely initiated flow, which goes back into the tunnel; anything else
    takes the wire. The rules come first: a path learned the wrong way round (the reply of a
    captured conversation, seen first, taken for remotely initiated) must not hide them."""
    if dp.reverse_path.conntrack:
        zone = dp.reverse_path.ct_zone
        return [flow(CAPTURE, 1, match(eth_type=eth_type), [conntrack.lookup(zone, CT_LOCAL)])
                for _, eth_type in _FAMILIES] + [
                flow(CT_LOCAL, 0, actions=[resubmit(L2)]),
                flow(CT_LOCAL, 10, match(ct_state=conntrack.REPLY), conntrack.reply_actions(),
                     goto=EGRESS)]
    return [flow(CAPTURE, 0, actions=[resubmit(REVERSE)], goto=LOCAL_REPLY),
            flow(LOCAL_REPLY, 0, goto=EGRESS),  # the reverse lookup decided REG_OUT
            flow(LOCAL_REPLY, 1, match(**{REG_OUT: 0}), [resubmit(L2)])]  # goto: only forward


def _reverse_variants(dp):
    """(priority, ip_proto) of the flows that learn reverse paths in the configured mode."""
    if dp.reverse_path.match == "five_tuple":
        return ((30, IPPROTO_TCP), (30, IPPROTO_UDP), (20, None))
    return ((20, None),)


def capture_learn(dp, ports):
    """Captured packets learn their reverse path (per ingress port) and go to the tunnel."""
    out = [flow(CAPTURE_LEARN, 0)]  # no tunnel port on the switch: drop, never leak
    if ports.tunnel is None:
        return out
    for port in ports.wire:
        for family, eth_type in _FAMILIES:
            if dp.reverse_path.conntrack:
                out.append(flow(CAPTURE_LEARN, 20, match(in_port=port, eth_type=eth_type), [
                    conntrack.commit(dp.reverse_path.ct_zone, port),
                    load_out_port(ports.tunnel),
                ], goto=EGRESS))
                continue
            for priority, proto in _reverse_variants(dp):
                fields = dict(in_port=port, eth_type=eth_type)
                if proto is not None:
                    fields["ip_proto"] = proto
                out.append(flow(CAPTURE_LEARN, priority, match(**fields), [
                    learn.reverse(port, 1, family, proto, dp.reverse_path),
                    load_out_port(ports.tunnel),
                ], goto=EGRESS))
    return out


def l2(ports):
    """The transparent wire: learned MAC, else flood to every wire port."""
    flood = []
    for port in ports.wire:
        flood += [load_out_port(port), resubmit(EGRESS)]
    return [
        flow(L2, 0, actions=[resubmit(MAC)], goto=FLOOD),
        flow(FLOOD, 0, goto=EGRESS),
        flow(FLOOD, 1, match(**{REG_OUT: 0}), flood),
    ]


def tunnel_in(dp, ports):
    """From the tunnel: replies use their reverse path; anything else is remotely initiated."""
    if ports.tunnel is None:
        return []
    out = [flow(TUNNEL_IN, 0),  # non-IP from the tunnel: drop (counted)
           # nor is multicast/broadcast a remotely initiated flow to a local host
           flow(TUNNEL_IN, 20, match(eth_dst=MULTICAST_BIT))]
    out += _deliver()
    if dp.reverse_path.conntrack:
        return out + _tunnel_conntrack(dp, ports)
    out += [flow(TUNNEL_IN, 10, match(eth_type=eth_type), [resubmit(REVERSE)], goto=TUNNEL_MISS)
            for _, eth_type in _FAMILIES]
    out.append(flow(TUNNEL_MISS, 0, goto=EGRESS))  # reverse path hit
    for family, eth_type in _FAMILIES:
        for priority, proto in _reverse_variants(dp):
            fields = {REG_OUT: 0, "eth_type": eth_type}
            if proto is not None:
                fields["ip_proto"] = proto
            out.append(flow(TUNNEL_MISS, priority, match(**fields), [
                # learn first: it must read the MACs as they arrived
                learn.reverse(ports.tunnel, 0, family, proto, dp.reverse_path),
                resubmit(NEIGH),
                resubmit(GATEWAY),
            ], goto=DELIVER))
    return out


def _deliver():
    return [
        flow(DELIVER, 0, goto=EGRESS),
        # unknown neighbour: counted here; the controller sends an ARP/ND probe
        flow(DELIVER, 1, match(**{REG_OUT: 0}), [output(OFPP_CONTROLLER, PUNT_MAX_LEN)],
             meter=PUNT_METER_ID),
    ]


def _tunnel_conntrack(dp, ports):
    """From the tunnel, with conntrack: a reply goes back the way its original came; any
    other packet is remotely initiated: it commits (the way back is the tunnel) and goes to
    the learned neighbour."""
    zone = dp.reverse_path.ct_zone
    out = [flow(TUNNEL_IN, 10, match(eth_type=eth_type), [conntrack.lookup(zone, CT_TUNNEL)])
           for _, eth_type in _FAMILIES]
    out += [flow(CT_TUNNEL, 0),
            flow(CT_TUNNEL, 10, match(ct_state=conntrack.REPLY), conntrack.reply_actions(),
                 goto=EGRESS)]
    out += [flow(CT_TUNNEL, 5, match(ct_state=conntrack.TRACKED, eth_type=eth_type), [
        conntrack.commit(zone, ports.tunnel),
        resubmit(NEIGH),
        resubmit(GATEWAY),
        resubmit(DELIVER),
    ]) for _, eth_type in _FAMILIES]
    return out


def arp_proxy(dp, ports, hooks=NO_HOOKS):
    """Answer the endpoint's ARP for off-subnet addresses with the learned gateway MAC."""
    if _subnet(dp) is None:
        return []
    return [
        flow(ARP_PROXY, 0),
        flow(ARP_PROXY, 1, match(eth_type=ETH_TYPE_ARP, arp_op=1), [
            move("eth_src", "eth_dst", 48),
            move("arp_sha", "arp_tha", 48),
            move("arp_tpa", REG_SCRATCH, 32),
            move("arp_spa", "arp_tpa", 32),
            move(REG_SCRATCH, "arp_spa", 32),
            set_field(arp_op=2),
            set_field(eth_src=ZERO_MAC),
            resubmit(GATEWAY),  # eth_src := gateway MAC, if one was learned
            move("eth_src", "arp_sha", 48),
        ], goto=ARP_REPLY),
        flow(ARP_REPLY, 1, match(eth_src=ZERO_MAC)),  # no gateway learned yet: drop
        flow(ARP_REPLY, 0, actions=[output(OFPP_IN_PORT)] + _tx(ports.local, hooks)),
    ]


def egress(ports, hooks=NO_HOOKS):
    """Output to REG_OUT; never back out of the port a packet came in on."""
    out = [flow(EGRESS, 0)]
    for port in ports.all:
        out += [flow(EGRESS, 10, match(**{REG_OUT: port}), [output(port)] + _tx(port, hooks)),
                flow(EGRESS, 20, match(**{REG_OUT: port}, in_port=port))]
    return out


def _subnet(dp):
    """The endpoint's subnet as an OFPMatch (address, mask) pair, or None."""
    if dp.local_ip is None:
        return None
    net = dp.local_ip.network
    return (str(net.network_address), str(net.netmask))
