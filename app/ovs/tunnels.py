"""sggw's tunnel ports and the underlay they send remote mirror copies through.

Ports: one flow-based port per port kind (``remote_ip=flow``, ``out_key=flow``; the kinds of
:data:`flows.remote.PORT_KINDS`) on each bridge that has remote destinations, named by
:func:`flows.remote.port_name`; created through OVSDB before flows use them and removed when
no session does.

Underlay, as the bridge's datapath type routes a copy (:func:`check`):

* The kernel datapath (``system``) hands tunnel packets to Linux, which routes them with its
  own table and resolves the next hop with its own neighbours (queueing the packets
  meanwhile). sggw asks the kernel (``ip route get``, ``ip neigh``) in its own network
  namespace, which on an endpoint is the switch's.
* The userspace datapath (``netdev``) routes them by its own copy of the routing table, and
  only through a route whose device is an OVS bridge's own (LOCAL) interface; it then needs
  the next hop's MAC, and drops copies while it resolves it. sggw asks OVS
  (``ovs/route/lookup``, ``tnl/neigh/show``), and :func:`refresh` re-sets a known MAC
  (``tnl/neigh/set``), so it never ages out under running copies (OVS 3.1 ages an entry
  out after 15 minutes).
"""
import ipaddress
import json

from app.ovs import cli as ovs_cli
from app.ovs.cli import OvsError
from flows.remote import PORT_KINDS, port_name

_FLOW_BASED = ("options:remote_ip=flow", "options:out_key=flow")
OPTIONS = {
    "erspan": ("type=erspan", *_FLOW_BASED, "options:erspan_ver=flow"),
    "ip6erspan": ("type=ip6erspan", *_FLOW_BASED, "options:erspan_ver=flow"),
    "gre": ("type=gre", *_FLOW_BASED),
    "ip6gre": ("type=ip6gre", *_FLOW_BASED),
    "vxlan": ("type=vxlan", *_FLOW_BASED),
}
# OVS refuses two tunnel ports that would receive the same packets, also on two bridges:
# each bridge's ports take (and never see) a key of their own. ERSPAN keys have 10 bits.
IN_KEY_BITS = {"erspan": 10, "ip6erspan": 10, "gre": 32, "ip6gre": 32, "vxlan": 24}
# the kernel's neighbour states in which it sends to the MAC it has
USABLE = {"REACHABLE", "STALE", "DELAY", "PROBE", "PERMANENT", "NOARP"}


def _in_key(dp_id, kind):
    return (1 << IN_KEY_BITS[kind]) - 1 - (dp_id % (1 << (IN_KEY_BITS[kind] - 1)))


def add_ports(db, dp_id, kinds):
    """Create the tunnel ports of ``kinds`` (port kinds) that the bridge of ``dp_id``
    lacks."""
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
    """Delete the bridge's sggw tunnel ports of port kinds not in ``keep``; their names."""
    bridge, _ = ovs_cli.bridge(db, dp_id)
    present = set(ovs_cli.vsctl(db, "list-ports", bridge).split())
    gone = [port_name(dp_id, kind) for kind in PORT_KINDS
            if kind not in keep and port_name(dp_id, kind) in present]
    args = []
    for name in gone:
        args += ["--", "del-port", bridge, name]
    if args:
        ovs_cli.vsctl(db, *args)
    return gone


def check(db, datapath_type, remote_ip):
    """What a copy to ``remote_ip`` meets in the underlay of a bridge of ``datapath_type``,
    as health shows it: ``{"state": "ok", "via", "source", "next_hop", "mac"}``, or
    ``state`` ``unroutable`` or ``unresolved`` with an ``error``."""
    if datapath_type == "netdev":
        return _check_userspace(db, remote_ip)
    return _check_kernel(remote_ip)


def _check_kernel(remote_ip):
    try:
        route = json.loads(ovs_cli.ip("-j", "route", "get", str(remote_ip)))[0]
    except OvsError as exc:
        return {"state": "unroutable", "error": "Linux has no route to %s (%s)"
                % (remote_ip, str(exc).split(": ", 1)[-1])}
    dev = route.get("dev")
    next_hop = ipaddress.ip_address(route.get("gateway", str(remote_ip)))
    out = {"via": dev, "source": route.get("prefsrc"), "next_hop": str(next_hop)}
    if route.get("type", "unicast") != "unicast":
        return dict(out, state="unroutable", error="Linux's route to %s is of type %s"
                    % (remote_ip, route["type"]))
    link = json.loads(ovs_cli.ip("-j", "link", "show", "dev", dev))[0]
    if "NOARP" in link.get("flags", []):  # a point-to-point device (tun, WireGuard): no MAC
        return dict(out, state="ok", mac=None)
    for entry in json.loads(ovs_cli.ip("-j", "neigh", "show", "to", str(next_hop),
                                       "dev", dev)):
        if entry.get("lladdr") and USABLE & set(entry.get("state", [])):
            return dict(out, state="ok", mac=entry["lladdr"])
    return dict(out, state="unresolved", error="Linux does not know the MAC of %s on %s"
                % (next_hop, dev))


def _check_userspace(db, remote_ip):
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


def refresh(db, datapath_type, status):
    """On the userspace datapath, set the MAC a successful :func:`check` found again, so
    its age starts anew. (Each set makes OVS revalidate its datapath flows: not something
    to do every few seconds.) The kernel keeps its own neighbours fresh while they are
    used."""
    if datapath_type == "netdev":
        ovs_cli._appctl(db, "tnl/neigh/set", status["via"], status["next_hop"],
                        status["mac"])


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
