"""Remote analyzers as mirror destinations: ERSPAN v1/v2, GRE and VXLAN over IPv4 or IPv6.

A remote destination is written ``{erspan: {remote_ip, version, session_id, ...}}``,
``{gre: {remote_ip, key}}`` or ``{vxlan: {remote_ip, vni}}``; each may give ``mtu``, the
underlay's path MTU to the analyzer (default 1500). OVS sets DF on the outer packet and never
fragments, so a copy that would not fit is cut to ``max_len`` before it is encapsulated.
"""
from dataclasses import dataclass

from app.config.fields import Address
from app.config.schema import Choice, ConfigError, Field, Int, Node, Record, join

KINDS = ("erspan", "gre", "vxlan")
DEFAULT_MTU = 1500
ERSPAN_DIRECTIONS = ("ingress", "egress")  # ERSPAN v2's direction bit: 0, 1
# Bytes an encapsulation adds between the outer IP header and the copied frame: GRE with a
# sequence number (8) and the ERSPAN header (v1 8, v2 12); GRE with a key (8); UDP + VXLAN.
TUNNEL_HEADER = {("erspan", 1): 16, ("erspan", 2): 20, ("gre", None): 8, ("vxlan", None): 16}
IP_HEADER = {4: 20, 6: 40}


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


class Mtu(Node):
    """The underlay's path MTU to an analyzer at address ``ctx``: IPv6 needs 1280."""

    def check(self, value, path, address):
        return Int(1280 if address.version == 6 else 576, 65535).check(value, path, None)

    def describe(self, dialect):
        return Int(576, 65535).describe(dialect)


def _address_and_mtu(read):
    address = read.get("remote_ip")
    return address, read.get("mtu", ctx=address)


def _erspan(read):
    address, mtu = _address_and_mtu(read)
    version, session_id = read.get("version"), read.get("session_id")
    own, other = (("index",), ("direction", "hwid")) if version == 1 \
        else (("direction", "hwid"), ("index",))
    for name in other:
        if name in read.value:
            raise read.error(name, "is an ERSPAN v%d field; version %d has %s"
                             % (3 - version, version, " and ".join(own)))
    if version == 1:
        return Remote("erspan", address, session_id, version=1, index=read.get("index"),
                      mtu=mtu)
    return Remote("erspan", address, session_id, version=2, direction=read.get("direction"),
                  hwid=read.get("hwid"), mtu=mtu)


def _keyed(kind, key_name):
    def build(read):
        address, mtu = _address_and_mtu(read)
        return Remote(kind, address, read.get(key_name), mtu=mtu)
    return build


def _fields(*fields):
    return (Field("remote_ip", Address(unicast=True, description="IPv4 or IPv6 unicast"),
                  required=True),) + fields + (
        Field("mtu", Mtu(default=DEFAULT_MTU,
                         description="the underlay's path MTU: longer copies are cut to fit "
                                     "before encapsulation")),)


def _over(kind):
    return "a remote analyzer reached over %s" % kind.upper()


KIND = {
    "erspan": Record(*_fields(
        Field("version", Int(1, 2), required="is required (1 or 2)"),
        Field("session_id", Int(0, 1023), required="is required (0..1023)"),
        Field("index", Int(0, 2**20 - 1, default=0, description="version 1 only")),
        Field("direction", Choice(ERSPAN_DIRECTIONS, "ingress or egress",
                                  default="ingress", description="version 2 only")),
        Field("hwid", Int(0, 63, default=0, description="version 2 only"))),
        build=_erspan, description=_over("erspan")),
    "gre": Record(*_fields(Field("key", Int(0, 2**32 - 1, default=0))),
                  build=_keyed("gre", "key"), description=_over("gre")),
    "vxlan": Record(*_fields(Field("vni", Int(0, 2**24 - 1, default=0))),
                    build=_keyed("vxlan", "vni"), description=_over("vxlan")),
}


class RemoteDestination(Node):
    """``{kind: {...}}``: exactly one kind, nothing beside it."""

    def check(self, value, path, ctx):
        kinds = [k for k in KINDS if k in value]
        if len(kinds) != 1 or len(value) != 1:
            raise ConfigError(path, "a remote destination is exactly one of %s, alone"
                              % ", ".join(KINDS))
        return KIND[kinds[0]].check(value[kinds[0]], join(path, kinds[0]), ctx)

    def describe(self, dialect):
        return {"oneOf": [Record(Field(kind, KIND[kind], required=True)).schema(dialect)
                          for kind in KINDS]}


DESTINATION = RemoteDestination()
