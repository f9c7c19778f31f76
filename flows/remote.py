"""Copies for remote analyzers: cut to fit the path MTU, then encapsulated by OVS.

sggw keeps one flow-based tunnel port per port kind (``remote_ip=flow``, ``out_key=flow``):
a copy gets its tunnel metadata (destination IP, key, ERSPAN fields) set in an isolated
clone and is output to that port. GRE and ERSPAN over IPv6 have port kinds of their own
(``ip6gre``, ``ip6erspan``): OVS's kernel datapath sends them only through those (through
a ``gre`` or ``erspan`` port an IPv6 copy is dropped without a trace), and the userspace
datapath has them too; a VXLAN port takes both families. OVS sets DF and never fragments, so a copy longer than the
destination's ``max_len`` would vanish. ``check_pkt_larger`` sorts the longer copies to a
flow of their own in ``MIRROR_TRIM`` that cuts them (``output(port=N,max_len=L)`` cuts
before encapsulation) and counts them with the session's cut meter: a meter whose rate is
never reached, because OVS counts a check_pkt_larger branch's flows for every packet of
both branches, and a datapath meter counts only the packets that pass it. A session's own
snaplen, when it is not longer than ``max_len``, cuts every copy instead.

Every copy leaves through ``output(port=N,max_len=L)``, the whole ones with ``L`` =
:data:`WHOLE` (longer than any frame). A plain ``output`` to a tunnel port makes OVS 3.1
translate the underlay inline and leave a "tunnel header added" entry in the datapath
flow's stats cache with no matching "removed": from the flow's second packet on, every
group, bucket and flow translated after the copy (the session's group, the next
destination, the next session) is credited the outer header's bytes too (50 per ERSPAN v1
copy). With ``max_len`` OVS pushes the header and recirculates instead, and every counter
stays exact.
"""
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows import tables
from flows.ofp import (
    NXActionCheckPktLarger, flow, isolated, match, meter_mod, output, output_truncated, resubmit,
    set_field)
from flows.tables import MIRROR_TRIM, REG_CUT, REG_MIRROR_PORT, REG_SESSION

NEVER_REACHED_PPS = 1_000_000_000  # the cut meter's rate: it only counts
WHOLE = 0xFFFF  # max_len of a copy sent whole: no frame is longer
# A frame no analyzer takes for traffic: broadcast, IEEE local experimental EtherType.
PROBE_FRAME = bytes.fromhex("ffffffffffff" "020000000000" "88b5") + b"sggw underlay probe"


def destination_id(index):
    """REG_MIRROR_PORT of a session's ``index``-th destination when it is remote."""
    return tables.REMOTE_BASE + index


def copy_actions(port, remote, snaplen):
    """MIRROR_OUT's actions for one remote copy (``port``: the tunnel port of its kind)."""
    if snaplen and snaplen <= remote.max_len:
        return [isolated(tunnel_fields(remote) + [output_truncated(port, snaplen)])]
    return [isolated([NXActionCheckPktLarger(remote.max_len, REG_CUT), resubmit(MIRROR_TRIM)])]


def trim_flows(session_id, dest_id, port, remote, snaplen, cookie):
    """MIRROR_TRIM: a copy longer than ``max_len`` is counted and cut, any other goes whole."""
    if snaplen and snaplen <= remote.max_len:
        return []
    selected = {REG_SESSION: session_id, REG_MIRROR_PORT: dest_id}
    fields = tunnel_fields(remote)
    return [flow(MIRROR_TRIM, 20, match(**selected, **{REG_CUT: (1, 1)}),
                 fields + [output_truncated(port, remote.max_len)],
                 meter=tables.cut_meter(session_id), cookie=cookie),
            flow(MIRROR_TRIM, 10, match(**selected), fields + [output_truncated(port, WHOLE)],
                 cookie=cookie)]


def cut_meter(session):
    """The meter counting ``session``'s cut copies, if any copy of it may need cutting."""
    if not any(d.remote and not (session.snaplen and session.snaplen <= d.remote.max_len)
               for d in session.destinations):
        return None
    return meter_mod(tables.cut_meter(session.id), NEVER_REACHED_PPS)


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


# OVS's port type -> its interface name's suffix (an interface name has 15 characters)
PORT_KINDS = {"erspan": "erspan", "ip6erspan": "ip6ers", "gre": "gre", "ip6gre": "ip6gre",
              "vxlan": "vxlan"}


def port_kind(remote):
    """The kind of tunnel port (OVS's interface type) ``remote``'s copies leave through."""
    if remote.kind != "vxlan" and remote.remote_ip.version == 6:
        return "ip6" + remote.kind
    return remote.kind


def port_name(dp_id, kind):
    """The interface name of datapath ``dp_id``'s tunnel port of ``kind`` (one of
    PORT_KINDS; at most 15 characters, unique per datapath: interface names are global in
    an OVS database)."""
    return "sgw%06x%s" % (dp_id & 0xFFFFFF, PORT_KINDS[kind])
