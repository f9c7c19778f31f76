"""Reverse paths kept by OVS conntrack instead of learn() (``reverse_path.match: conntrack``).

A captured (or remotely initiated) packet commits its connection in the datapath's
conntrack, in the datapath's own zone, with the way back in the entry: ``ct_mark`` holds the
port it came in on, ``ct_label`` its source MAC (bits 0..47) and destination MAC (48..95).
Each original-direction packet commits again, so a changed MAC or port heals with the next
one. A packet that conntrack says is a reply (``+est+rpl``) is re-addressed from the entry
and goes out of that port. No flow is learned, so a new connection costs no upcall: the
megaflows never match L4 ports. Timeouts and the bound are the zone's (see app/ovs/cli.py).
"""
from ryu.ofproto import nicira_ext
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows import tables
from flows.ofp import move, set_field

# the ct_state bits matched here
EST, RPL, TRK = 0x02, 0x08, 0x20
REPLY = (TRK | EST | RPL, TRK | EST | RPL)  # match: tracked, established, reply direction
TRACKED = (TRK, TRK)

_NO_RECIRC = 0xFF  # NX_CT_RECIRC_NONE


def lookup(zone, table):
    """Send the packet through conntrack (zone ``zone``) and continue in ``table``."""
    return parser.NXActionCT(flags=0, zone_src="", zone_ofs_nbits=zone,
                             recirc_table=table.id, alg=0, actions=[])


def commit(zone, port):
    """Commit the connection with the way back: ``port``, and this packet's MACs."""
    return parser.NXActionCT(
        flags=nicira_ext.NX_CT_F_COMMIT, zone_src="", zone_ofs_nbits=zone,
        recirc_table=_NO_RECIRC, alg=0,
        actions=[set_field(ct_mark=port),
                 move("eth_src", "ct_label", 48, dst_ofs=0),
                 move("eth_dst", "ct_label", 48, dst_ofs=48)])


def reply_actions():
    """A reply: eth_dst := the original's source MAC, eth_src := its destination MAC, out of
    the port the original came in on."""
    return [move("ct_label", "eth_dst", 48, src_ofs=0),
            move("ct_label", "eth_src", 48, src_ofs=48),
            move("ct_mark", tables.REG_OUT, 32)]
