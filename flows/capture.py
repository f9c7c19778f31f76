"""Capture rules as flows, and rules (or mirror filters) as OpenFlow matches.

One rule can become several matches: one per ingress port it names and per IP version it
covers. Matches are written in the canonical form OVS reports back (no mask on a full
prefix, no field for a /0), so the controller can compare them with the switch's flows.
"""
from flows import tables
from flows.ofp import ETH_TYPE_IP, ETH_TYPE_IPV6, IPPROTO_TCP, OFPVID_PRESENT, flow, match
from flows.tables import CAPTURE, CAPTURE_LEARN

# Rules keep their place by id (config rules 1.., REST rules from 1001 in creation order):
# adding or removing one never moves another.
CAPTURE_TOP_PRIORITY = 65000
MAX_RULE_ID = CAPTURE_TOP_PRIORITY - 2  # priorities 0 and 1 are the table's own flows


def rule_flows(rule, ports):
    """The CAPTURE flows of one rule: matching wire packets go to CAPTURE_LEARN, which
    learns their way back and sends them into the tunnel."""
    return [flow(CAPTURE, CAPTURE_TOP_PRIORITY - rule.id, match(**fields),
                 goto=CAPTURE_LEARN, cookie=tables.cookie(tables.KIND_CAPTURE, rule.id))
            for fields in rule_matches(rule, ports)]


def _prefix(net):
    if net.prefixlen == 0:
        return None
    if net.prefixlen == net.max_prefixlen:
        return str(net.network_address)
    return (str(net.network_address), str(net.netmask))


def rule_matches(rule, ports):
    """OFPMatch keyword dicts for ``rule`` on a switch with ``ports`` (a PortMap).

    A rule whose ``in_port`` names only ports the switch lacks yields no match at all.
    """
    in_ports = ports.select(rule.in_port) if rule.in_port else (None,)
    out = []
    for port in in_ports:
        for family in rule.families:
            fields = {}
            if port is not None:
                fields["in_port"] = port
            if rule.vlan is not None:
                fields["vlan_vid"] = OFPVID_PRESENT | rule.vlan
            fields["eth_type"] = ETH_TYPE_IP if family == 4 else ETH_TYPE_IPV6
            for side in ("src", "dst"):
                net = getattr(rule, "ipv%d_%s" % (family, side))
                if net is not None and _prefix(net) is not None:
                    fields["ipv%d_%s" % (family, side)] = _prefix(net)
            if rule.ip_proto is not None:
                fields["ip_proto"] = rule.ip_proto
                l4 = "tcp" if rule.ip_proto == IPPROTO_TCP else "udp"
                if rule.src_port is not None:
                    fields[l4 + "_src"] = rule.src_port
                if rule.dst_port is not None:
                    fields[l4 + "_dst"] = rule.dst_port
            out.append(fields)
    return out
