"""Small constructors for OpenFlow 1.3 messages, so the builders read like flow tables.

Messages are built with ``datapath=None``; the controller sets the datapath when it sends
them (as FAUCET's ``valve_of`` does). Only OF1.3 plus the Nicira extensions OVS implements.
"""
import struct

from ryu.lib import type_desc
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser
from ryu.ofproto import oxm_fields

from flows import tables

OFPP_LOCAL = ofp.OFPP_LOCAL
OFPP_IN_PORT = ofp.OFPP_IN_PORT
OFPP_CONTROLLER = ofp.OFPP_CONTROLLER
OFPVID_PRESENT = ofp.OFPVID_PRESENT

ETH_TYPE_IP = 0x0800
ETH_TYPE_ARP = 0x0806
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_VLAN = 0x8100
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


def meter_mod(meter_id, rate, unit="pps", command=ofp.OFPMC_ADD):
    """A meter that drops above ``rate`` packets (``pps``) or kilobits (``kbps``) per second;
    the burst allowance is one second's worth."""
    band = parser.OFPMeterBandDrop(rate=rate, burst_size=rate)
    unit_flag = ofp.OFPMF_PKTPS if unit == "pps" else ofp.OFPMF_KBPS
    return parser.OFPMeterMod(datapath=None, command=command,
                              flags=unit_flag | ofp.OFPMF_BURST, meter_id=meter_id,
                              bands=[band])


def group_mod(group_id, buckets, command=ofp.OFPGC_ADD):
    """A group of type ALL: every bucket (a list of actions) gets its own copy."""
    return parser.OFPGroupMod(
        datapath=None, command=command, type_=ofp.OFPGT_ALL, group_id=group_id,
        buckets=[parser.OFPBucket(weight=0, watch_port=ofp.OFPP_ANY, watch_group=ofp.OFPG_ANY,
                                  actions=list(actions)) for actions in buckets])


def push_vlan():
    """Push an 802.1Q tag (set its VID with ``set_field(vlan_vid=...)``)."""
    return parser.OFPActionPushVlan(ETH_TYPE_VLAN)


def group(group_id):
    return parser.OFPActionGroup(group_id)


def output_truncated(port, max_len):
    """Output at most ``max_len`` bytes of the packet (OVS ``output(port=,max_len=)``)."""
    return parser.NXActionOutputTrunc(port=port, max_len=max_len)


class NXActionClone(parser.NXAction):
    """OVS ``clone(actions)``: run ``actions`` on a copy of the packet, then carry on with the
    packet as it was. Ryu 4.34 lacks it (Nicira subtype 42); registered so replies parse."""

    _subtype = 42
    _fmt_str = "!6x"

    def __init__(self, actions, type_=None, len_=None, experimenter=None, subtype=None):
        super().__init__()
        self.actions = list(actions)

    @classmethod
    def parser(cls, buf):
        rest, actions = buf[struct.calcsize(cls._fmt_str):], []
        while rest:
            action = parser.OFPAction.parser(rest, 0)
            actions.append(action)
            rest = rest[action.len:]
        return cls(actions)

    def serialize_body(self):
        data = bytearray(struct.calcsize(self._fmt_str))
        for action in self.actions:
            action.serialize(data, len(data))
        return data


parser.NXAction.register(NXActionClone)

# OVS 3.1 runs a meter reached through resubmit inline, so a meter drop would also drop
# the original packet and every later action. It emits a real datapath clone (in which a
# drop ends only the clone) only when the clone's own actions include an irreversible one
# (ofproto-dpif-xlate.c: reversible_actions). A truncating output to a port number no
# bridge ever has is such an action, and OVS drops it while translating. A clone is not
# allowed in a group bucket (OVS runs buckets as action sets and drops it). Verified:
# tests/e2e/test_mirrors.py (a rate limit never touches the original).
NEVER_A_PORT = 0xFEFF


def isolated(actions):
    """``clone(actions)`` that OVS 3.1 really executes on a copy (see NEVER_A_PORT)."""
    return NXActionClone([output_truncated(NEVER_A_PORT, 0xFFFF)] + list(actions))


# OVS's ERSPAN tunnel metadata (experimenter OXM fields, NXOXM_ET_ERSPAN_*), which Ryu 4.34
# does not know: added to its field table so flows can set them and replies parse.
ofp.oxm_types.extend([
    oxm_fields.NiciraExperimenter("tun_erspan_idx", 11, type_desc.Int4),
    oxm_fields.NiciraExperimenter("tun_erspan_ver", 12, type_desc.Int1),
    oxm_fields.NiciraExperimenter("tun_erspan_dir", 13, type_desc.Int1),
    oxm_fields.NiciraExperimenter("tun_erspan_hwid", 14, type_desc.Int1),
])
oxm_fields.generate(ofp.__name__)


class NXActionCheckPktLarger(parser.NXAction):
    """OVS ``check_pkt_larger(LEN)->REG[OFS]``: 1 in that bit if the frame is longer than
    LEN bytes, else 0. Ryu 4.34 lacks it (Nicira subtype 49)."""

    _subtype = 49
    _fmt_str = "!HH"

    def __init__(self, pkt_len, dst, ofs=0, type_=None, len_=None, experimenter=None,
                 subtype=None):
        super().__init__()
        self.pkt_len, self.dst, self.ofs = pkt_len, dst, ofs

    @classmethod
    def parser(cls, buf):
        pkt_len, ofs = struct.unpack_from(cls._fmt_str, buf, 0)
        n, _ = ofp.oxm_parse_header(buf, struct.calcsize(cls._fmt_str))
        return cls(pkt_len, ofp.oxm_to_user_header(n), ofs)

    def serialize_body(self):
        data = bytearray(struct.pack(self._fmt_str, self.pkt_len, self.ofs))
        ofp.oxm_serialize_header(ofp.oxm_from_user_header(self.dst), data, len(data))
        return bytes(data) + bytes(24 - 10 - len(data))  # the action is 24 bytes long


parser.NXAction.register(NXActionCheckPktLarger)
