"""sggw's tunnel ports and the underlay they send remote mirror copies through.

Ports: one flow-based port per kind (``remote_ip=flow``, ``out_key=flow``) on each bridge that
has remote destinations, named by :func:`flows.remote.port_name`; created through OVSDB
before flows use them and removed when no session does.

Underlay: OVS's userspace datapath routes tunnel packets by its own copy of the routing
table, and only through a route whose device is an OVS bridge's own (LOCAL) interface; it
then needs the next hop's MAC, and drops copies while it resolves it. :func:`check` asks
OVS (``ovs/route/lookup``, ``tnl/neigh/show``) what a copy to a remote analyzer would meet
and :func:`refresh` re-sets a known MAC (``tnl/neigh/set``), so it never ages out under
running copies (OVS 3.1 ages an entry out after 15 minutes).
"""
import ipaddress

from app.config.remote import KINDS
from app.ovs import cli as ovs_cli
from app.ovs.cli import OvsError
from flows.remote import port_name

OPTIONS = {
    "erspan": ("type=erspan", "options:remote_ip=flow", "options:out_key=flow",
               "options:erspan_ver=flow"),
    "gre": ("type=gre", "options:remote_ip=flow", "options:out_key=flow"),
    "vxlan": ("type=vxlan", "options:remote_ip=flow", "options:out_key=flow"),
}
# OVS refuses two tunnel ports that would receive the same packets, also on two bridges:
# each bridge's ports take (and never see) a key of their own. ERSPAN keys have 10 bits.
IN_KEY_BITS = {"erspan": 10, "gre": 32, "vxlan": 24}


def _in_key(dp_id, kind):
    return (1 << IN_KEY_BITS[kind]) - 1 - (dp_id % (1 << (IN_KEY_BITS[kind] - 1)))


def add_ports(db, dp_id, kinds):
    """Create the tunnel ports of ``kinds`` that the bridge of ``dp_id`` lacks."""
    bridge, _ = ovs_cli.bridge(db, dp_id)
    present = set(ovs_cli.vsctl(db, "list-ports", bridge).split())
    args = []
    for kind in sorted(set(kinds)):
        name = port_name(dp_id, kind)
        if name not in present:
            args += ["--", "add-port", bridge, name, "--", "set", "Interface", name,
                     *OPTIONS[kind], "options:in_key=%d" % _in_key(dp_id, kind)]
    if args:
        ovs_cli.vsctl(db, *args)
    return bridge


def remove_ports(db, dp_id, keep):
    """Delete the bridge's sggw tunnel ports of kinds not in ``keep``; their names."""
    bridge, _ = ovs_cli.bridge(db, dp_id)
    present = set(ovs_cli.vsctl(db, "list-ports", bridge).split())
    gone = [port_name(dp_id, kind) for kind in KINDS
            if kind not in keep and port_name(dp_id, kind) in present]
    args = []
    for name in gone:
        args += ["--", "del-port", bridge, name]
    if args:
        ovs_cli.vsctl(db, *args)
    return gone


def check(db, remote_ip):
    """What a copy to ``remote_ip`` meets in the underlay, as health shows it:
    ``{"state": "ok", "via", "source", "next_hop", "mac"}``, or ``state`` ``unroutable``
    or ``unresolved`` with an ``error``."""
    try:
        found = _fields(ovs_cli._appctl(db, "ovs/route/lookup", str(remote_ip)))
    except OvsError as exc:
        return {"state": "unroutable", "error": "OVS has no route to %s (%s)"
                % (remote_ip, str(exc).split(": ", 1)[-1])}
    dev, source = found.get("dev"), found.get("src")
    gateway = ipaddress.ip_address(found.get("gateway", "::"))
    next_hop = remote_ip if gateway.is_unspecified else _plain(gateway)
    out = {"via": dev, "source": source, "next_hop": str(next_hop)}
    try:
        ovs_cli.vsctl(db, "br-exists", dev or "")
    except OvsError:
        return dict(out, state="unroutable", error="the route to %s leaves through %s, "
                    "which is not an OVS bridge's own interface: userspace tunnels only "
                    "route through one" % (remote_ip, dev))
    mac = neighbour(db, dev, next_hop)
    if mac is None:
        return dict(out, state="unresolved", error="OVS does not know the MAC of %s on %s"
                    % (next_hop, dev))
    return dict(out, state="ok", mac=mac)


def refresh(db, status):
    """Set the MAC a successful :func:`check` found again, so its age starts anew. (Each
    set makes OVS revalidate its datapath flows: not something to do every few seconds.)"""
    ovs_cli._appctl(db, "tnl/neigh/set", status["via"], status["next_hop"], status["mac"])


def neighbour(db, bridge, address):
    """The MAC OVS's tunnel neighbour cache holds for ``address`` on ``bridge``, or None."""
    for line in ovs_cli._appctl(db, "tnl/neigh/show").splitlines()[2:]:
        words = line.split()
        if len(words) >= 3 and words[2] == bridge and _same(words[0], address):
            return words[1]
    return None


def _fields(text):
    """``ovs/route/lookup``'s answer (``src A``, ``gateway G``, ``dev D`` lines) as a dict."""
    return dict(line.split(None, 1) for line in text.splitlines() if len(line.split()) == 2)


def _plain(address):
    """An IPv4-mapped IPv6 address (as OVS prints IPv4 gateways) as IPv4."""
    return address.ipv4_mapped or address if address.version == 6 else address


def _same(text, address):
    try:
        return _plain(ipaddress.ip_address(text)) == address
    except ValueError:
        return False
