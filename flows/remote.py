"""Copies for remote analyzers: cut to fit the path MTU, then encapsulated by OVS.

sggw keeps one flow-based tunnel port per kind (``remote_ip=flow``, ``key=flow``): a copy
gets its tunnel metadata (destination IP, key, ERSPAN fields) set in an isolated clone and
is output to that port. OVS sets DF and never fragments, so a copy longer than the
destination's ``max_len`` would vanish: every copy is output with that length as its limit
(``output(port=N,max_len=L)`` cuts before encapsulation), or the session's snaplen if it is
shorter. (``check_pkt_larger``, which could count the cut copies, is no use here: OVS 3.1
translates everything after it into both of its branches, also past the clone it sits in,
and so repeats later copies.)
"""
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows import tables
from flows.ofp import isolated, output, output_truncated, set_field
# A frame no analyzer takes for traffic: broadcast, IEEE local experimental EtherType.
PROBE_FRAME = bytes.fromhex("ffffffffffff" "020000000000" "88b5") + b"sggw underlay probe"


def destination_id(index):
    """REG_MIRROR_PORT of a session's ``index``-th destination when it is remote."""
    return tables.REMOTE_BASE + index


def copy_actions(port, remote, snaplen):
    """MIRROR_OUT's actions for one remote copy (``port``: the tunnel port of its kind): cut
    to the session's snaplen or, if that is longer or unset, to fit the path MTU."""
    limit = min(snaplen or remote.max_len, remote.max_len)
    return [isolated(tunnel_fields(remote) + [output_truncated(port, limit)])]


def tunnel_fields(remote):
    """The set-fields that address a copy to ``remote`` through a flow-based tunnel port."""
    family = "tun_ipv4_dst" if remote.remote_ip.version == 4 else "tun_ipv6_dst"
    actions = [set_field(**{family: str(remote.remote_ip)}), set_field(tunnel_id=remote.key)]
    if remote.kind == "erspan":
        actions.append(set_field(tun_erspan_ver=remote.version))
        if remote.version == 1:
            actions.append(set_field(tun_erspan_idx=remote.index))
        else:
            actions += [set_field(tun_erspan_dir=int(remote.direction == "egress")),
                        set_field(tun_erspan_hwid=remote.hwid)]
    return actions


def probe(port, remote):
    """A packet-out into tunnel ``port`` toward ``remote``: while OVS does not know the next
    hop's MAC it drops the frame and asks for the MAC (ARP or neighbour solicitation)."""
    return parser.OFPPacketOut(datapath=None, buffer_id=ofp.OFP_NO_BUFFER,
                               in_port=ofp.OFPP_CONTROLLER,
                               actions=tunnel_fields(remote) + [output(port)],
                               data=PROBE_FRAME)


def port_name(dp_id, kind):
    """The interface name of datapath ``dp_id``'s tunnel port for ``kind`` (at most 15
    characters, unique per datapath: interface names are global in an OVS database)."""
    return "sgw%06x%s" % (dp_id & 0xFFFFFF, kind)
