"""Remote analyzers as mirror destinations: ERSPAN v1/v2, GRE and VXLAN over IPv4 or IPv6.

A remote destination is written ``{erspan: {remote_ip, version, session_id, ...}}``,
``{gre: {remote_ip, key}}`` or ``{vxlan: {remote_ip, vni}}``; each may give ``mtu``, the
underlay's path MTU to the analyzer (default 1500). OVS sets DF on the outer packet and never
fragments, so a copy that would not fit is cut to ``max_len`` before it is encapsulated.
"""
import ipaddress
from dataclasses import dataclass

from app.config.fields import ConfigError, integer, join, mapping, show

KINDS = ("erspan", "gre", "vxlan")
DEFAULT_MTU = 1500
ERSPAN_DIRECTIONS = ("ingress", "egress")  # ERSPAN v2's direction bit: 0, 1
# Bytes an encapsulation adds between the outer IP header and the copied frame: GRE with a
# sequence number (8) and the ERSPAN header (v1 8, v2 12); GRE with a key (8); UDP + VXLAN.
TUNNEL_HEADER = {("erspan", 1): 16, ("erspan", 2): 20, ("gre", None): 8, ("vxlan", None): 16}
IP_HEADER = {4: 20, 6: 40}
_KEYS = {
    "erspan": ("remote_ip", "version", "session_id", "index", "direction", "hwid", "mtu"),
    "gre": ("remote_ip", "key", "mtu"),
    "vxlan": ("remote_ip", "vni", "mtu"),
}


@dataclass(frozen=True)
class Remote:
    """Where and how a remote destination's copies are sent."""

    kind: str  # erspan, gre or vxlan
    remote_ip: object  # ipaddress.IPv4Address or IPv6Address
    key: int  # the ERSPAN session id, the GRE key or the VXLAN VNI (OVS's tun_id)
    version: int = None  # ERSPAN 1 or 2
    index: int = None  # ERSPAN v1: the port index
    direction: str = None  # ERSPAN v2: ingress or egress
    hwid: int = None  # ERSPAN v2: the hardware id
    mtu: int = DEFAULT_MTU

    @property
    def max_len(self):
        """The largest copied frame whose encapsulated packet fits ``mtu``."""
        return (self.mtu - IP_HEADER[self.remote_ip.version]
                - TUNNEL_HEADER[(self.kind, self.version)])

    @property
    def name(self):
        """How counters and health name it: ``erspan:10.9.0.2/7``, ``gre:[fd00::9]/100``."""
        ip = str(self.remote_ip)
        return "%s:%s/%d" % (self.kind, ip if self.remote_ip.version == 4 else "[%s]" % ip,
                             self.key)

    def to_dict(self):
        key_name = {"erspan": "session_id", "gre": "key", "vxlan": "vni"}[self.kind]
        out = {"remote_ip": str(self.remote_ip), key_name: self.key}
        for name in ("version", "index", "direction", "hwid"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        out["mtu"] = self.mtu
        return {self.kind: out}


def parse(item, path):
    """A remote destination from ``{kind: {...}}`` (exactly one kind, nothing beside it)."""
    kinds = [k for k in KINDS if k in item]
    if len(kinds) != 1 or len(item) != 1:
        raise ConfigError(path, "a remote destination is exactly one of %s, alone"
                          % ", ".join(KINDS))
    kind = kinds[0]
    where = join(path, kind)
    value = mapping(item[kind], where, _KEYS[kind], required=("remote_ip",))
    remote_ip = _address(value["remote_ip"], join(where, "remote_ip"))
    mtu = integer(value.get("mtu", DEFAULT_MTU), join(where, "mtu"),
                  1280 if remote_ip.version == 6 else 576, 65535)
    if kind == "gre":
        return Remote(kind, remote_ip, _number(value, "key", where, 2**32 - 1, 0), mtu=mtu)
    if kind == "vxlan":
        return Remote(kind, remote_ip, _number(value, "vni", where, 2**24 - 1, 0), mtu=mtu)
    if "version" not in value:
        raise ConfigError(join(where, "version"), "is required (1 or 2)")
    version = integer(value["version"], join(where, "version"), 1, 2)
    if "session_id" not in value:
        raise ConfigError(join(where, "session_id"), "is required (0..1023)")
    session_id = _number(value, "session_id", where, 1023, 0)
    own, other = (("index",), ("direction", "hwid")) if version == 1 \
        else (("direction", "hwid"), ("index",))
    for name in other:
        if name in value:
            raise ConfigError(join(where, name), "is an ERSPAN v%d field; "
                              "version %d has %s" % (3 - version, version,
                                                     " and ".join(own)))
    if version == 1:
        return Remote(kind, remote_ip, session_id, version=1,
                      index=_number(value, "index", where, 2**20 - 1, 0), mtu=mtu)
    direction = value.get("direction", "ingress")
    if direction not in ERSPAN_DIRECTIONS:
        raise ConfigError(join(where, "direction"), "expected ingress or "
                          "egress, got %s" % show(direction))
    return Remote(kind, remote_ip, session_id, version=2, direction=direction,
                  hwid=_number(value, "hwid", where, 63, 0), mtu=mtu)


def _number(value, name, where, high, default):
    return integer(value.get(name, default), join(where, name), 0, high)


def _address(value, path):
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(path, "expected an IPv4 or IPv6 address, got %s"
                          % show(value)) from None
    if (address.is_multicast or address.is_unspecified or address.is_loopback
            or address.is_link_local):
        raise ConfigError(path, "%s is not a unicast address an analyzer can have"
                          % address)
    return address
