"""Small constructors for OpenFlow 1.3 messages, so the builders read like flow tables.

Messages are built with ``datapath=None``; the controller sets the datapath when it sends
them (as FAUCET's ``valve_of`` does). Only OF1.3 plus the Nicira extensions OVS implements.
"""
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows import tables

OFPP_LOCAL = ofp.OFPP_LOCAL
OFPP_IN_PORT = ofp.OFPP_IN_PORT
OFPP_CONTROLLER = ofp.OFPP_CONTROLLER
OFPVID_PRESENT = ofp.OFPVID_PRESENT

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV6 = 0x86DD
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
MULTICAST_BIT = ("01:00:00:00:00:00", "01:00:00:00:00:00")  # (value, mask) for eth_dst
UNICAST = ("00:00:00:00:00:00", "01:00:00:00:00:00")
ZERO_MAC = "00:00:00:00:00:00"


def match(**fields):
    """An OFPMatch; masked fields are (value, mask) tuples."""
    return parser.OFPMatch(**fields)


def flow(table, priority, match_=None, actions=(), goto=None, meter=None, cookie=None):
    """An OFPFC_ADD flow mod: optional meter, apply ``actions``, then optional goto ``goto``.

    ``table`` and ``goto`` are :class:`flows.tables.Table`. With no actions and no goto the
    flow drops what it matches (and counts it).
    """
    instructions = []
    if meter is not None:
        instructions.append(parser.OFPInstructionMeter(meter))
    if actions:
        instructions.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions)))
    if goto is not None:
        assert goto.id > table.id, "goto_table must go forward: %s -> %s" % (table, goto)
        instructions.append(parser.OFPInstructionGotoTable(goto.id))
    return parser.OFPFlowMod(
        datapath=None,
        cookie=tables.cookie(tables.KIND_STATIC) if cookie is None else cookie,
        table_id=table.id,
        command=ofp.OFPFC_ADD,
        priority=priority,
        buffer_id=ofp.OFP_NO_BUFFER,
        match=match_ if match_ is not None else parser.OFPMatch(),
        instructions=instructions,
    )


def delete_flows(table_id=ofp.OFPTT_ALL, cookie=0, cookie_mask=0, match_=None, out_port=None,
                 strict_priority=None):
    """A flow delete; strict when ``strict_priority`` is given."""
    return parser.OFPFlowMod(
        datapath=None,
        cookie=cookie,
        cookie_mask=cookie_mask,
        table_id=table_id,
        command=ofp.OFPFC_DELETE if strict_priority is None else ofp.OFPFC_DELETE_STRICT,
        priority=strict_priority or 0,
        out_port=ofp.OFPP_ANY if out_port is None else out_port,
        out_group=ofp.OFPG_ANY,
        match=match_ if match_ is not None else parser.OFPMatch(),
    )


def output(port, max_len=0):
    return parser.OFPActionOutput(port, max_len)


def set_field(**field):
    return parser.OFPActionSetField(**field)


def resubmit(table):
    """Run ``table`` as a subroutine; the calling action list continues afterwards."""
    return parser.NXActionResubmitTable(table_id=table.id)


# OVS reports fields in learn specs and register moves in their NXM form whenever one
# exists; writing them that way lets the controller recognise its own flows (reconcile).
_NXM_TWINS = {"eth_src", "eth_dst", "eth_type", "ip_proto", "ipv4_src", "ipv4_dst", "ipv6_src",
              "ipv6_dst", "tcp_src", "tcp_dst", "udp_src", "udp_dst", "arp_op", "arp_spa",
              "arp_tpa", "arp_sha", "arp_tha"}


def nxm_name(field):
    """Ryu's name for the NXM form of OXM ``field`` (itself if it has none)."""
    return field + "_nxm" if field in _NXM_TWINS else field


def move(src, dst, n_bits, src_ofs=0, dst_ofs=0):
    return parser.NXActionRegMove(src_field=nxm_name(src), dst_field=nxm_name(dst),
                                  n_bits=n_bits, src_ofs=src_ofs, dst_ofs=dst_ofs)


def load_out_port(port):
    """Decide the output port (read by EGRESS)."""
    return set_field(**{tables.REG_OUT: port})


def meter_mod(meter_id, pktps, burst=None, command=ofp.OFPMC_ADD):
    """A packets-per-second meter that drops above ``pktps``."""
    band = parser.OFPMeterBandDrop(rate=pktps, burst_size=burst or pktps)
    return parser.OFPMeterMod(datapath=None, command=command,
                              flags=ofp.OFPMF_PKTPS | ofp.OFPMF_BURST, meter_id=meter_id,
                              bands=[band])
