"""What a validated config is: immutable objects, built by :mod:`app.config.loader`.

Every other part of sggw reads these (and the REST-made objects are the same classes).
"""
import ipaddress
import re
from dataclasses import dataclass, field

ROLES = ("lan", "wan", "tunnel")
SOURCE_ROLES = ("lan", "wan", "tunnel", "local")  # a mirror source may name a whole role
DIRECTIONS = ("rx", "tx", "both")
MAX_CONFIG_OBJECTS = 1000  # config captures/mirrors get ids 1..1000; REST ones above
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
MATCH_MODES = ("five_tuple", "host_pair", "conntrack")
IP_PROTOS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58}
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
OFPP_MAX = 0xFFFFFF00
DEFAULT_OVSDB = "unix:/var/run/openvswitch/db.sock"
DEFAULT_STATE_FILE = "/var/lib/sggw/state.json"


@dataclass(frozen=True)
class CaptureRule:
    """Traffic matching all given fields goes into the tunnel (or, as a filter, is mirrored)."""

    name: str
    in_port: tuple = ()  # role names and/or port refs; empty = any non-tunnel port
    vlan: int = None
    ipv4_src: ipaddress.IPv4Network = None
    ipv4_dst: ipaddress.IPv4Network = None
    ipv6_src: ipaddress.IPv6Network = None
    ipv6_dst: ipaddress.IPv6Network = None
    ip_proto: int = None
    src_port: int = None
    dst_port: int = None
    id: int = 0  # stable: orders rules (config first, then REST ones) and names their flows

    @property
    def families(self):
        """The IP versions (4, 6) this rule applies to."""
        if self.ipv4_src or self.ipv4_dst or self.ip_proto == IP_PROTOS["icmp"]:
            return (4,)
        if self.ipv6_src or self.ipv6_dst or self.ip_proto == IP_PROTOS["icmpv6"]:
            return (6,)
        return (4, 6)

    def to_dict(self):
        out = {} if self.name == FILTER_NAME else {"name": self.name}
        if self.in_port:
            out["in_port"] = list(self.in_port)
        for key in ("vlan", "ip_proto", "src_port", "dst_port"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        for key in ("ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst"):
            if getattr(self, key) is not None:
                out[key] = str(getattr(self, key))
        return out


FILTER_NAME = "filter"  # the name of a CaptureRule used as a mirror filter


@dataclass(frozen=True)
class MirrorSource:
    port: object  # a role (lan, wan, tunnel, local) or a port number or name
    direction: str = "both"

    @property
    def rx(self):
        return self.direction in ("rx", "both")

    @property
    def tx(self):
        return self.direction in ("tx", "both")


@dataclass(frozen=True)
class MirrorDestination:
    port: object  # a port number or name that has no role: it carries only copies
    vlan: int = None  # push this 802.1Q tag on the copies (RSPAN-like)
    eth_dst: str = None  # rewrite the copies' destination MAC (like TEE --gateway)
    remote: object = None  # app.config.remote.Remote: a remote analyzer (then no port)

    @property
    def key(self):
        """The destination's name in counters and health."""
        return self.remote.name if self.remote else str(self.port)

    def to_dict(self):
        if self.remote:
            return self.remote.to_dict()
        return {"port": self.port, "vlan": self.vlan, "eth_dst": self.eth_dst}


@dataclass(frozen=True)
class Mirror:
    """A SPAN-style session: copies of its sources' traffic to every destination."""

    name: str
    sources: tuple
    destinations: tuple
    filter: CaptureRule = None
    snaplen: int = None
    rate_limit: tuple = None  # ("pps", n) or ("kbps", n)
    id: int = 0

    def to_dict(self):
        return {
            "name": self.name,
            "sources": [{"port": s.port, "direction": s.direction} for s in self.sources],
            "filter": self.filter.to_dict() if self.filter else None,
            "destinations": [d.to_dict() for d in self.destinations],
            "snaplen": self.snaplen,
            "rate_limit": dict([self.rate_limit]) if self.rate_limit else None,
        }


@dataclass(frozen=True)
class ReversePath:
    match: str = "five_tuple"  # learn() per 5-tuple, learn() per host pair, or conntrack
    idle_timeout: int = 60
    fin_idle_timeout: int = 5
    max_flows: int = 100000
    ct_zone: int = None  # conntrack mode: this bridge's zone (default: dp_id's low 16 bits)

    @property
    def conntrack(self):
        """Reverse paths kept by conntrack rather than learned flows."""
        return self.match == "conntrack"


@dataclass(frozen=True)
class Ports:
    lan: tuple = ()
    wan: object = None  # int port number or str interface name
    tunnel: object = None

    def roles(self):
        """(role, ref, key path) for every configured port."""
        out = [("lan", ref, "ports.lan[%d]" % i) for i, ref in enumerate(self.lan)]
        out += [(role, getattr(self, role), "ports." + role)
                for role in ("wan", "tunnel") if getattr(self, role) is not None]
        return out


@dataclass(frozen=True)
class Datapath:
    name: str
    dp_id: int
    ports: Ports
    local_ip: ipaddress.IPv4Interface = None
    reverse_path: ReversePath = field(default_factory=ReversePath)
    capture: tuple = ()
    mirrors: tuple = ()


@dataclass(frozen=True)
class Listen:
    host: str
    port: int


@dataclass(frozen=True)
class StoreTls:
    """PEM files this instance opens ``ssl:`` store members with (as ovsdb-server's
    --private-key, --certificate and --ca-cert)."""

    private_key: str
    certificate: str  # this instance's, signed by a CA the members trust
    ca_cert: str  # the CA that signed the members' certificates


@dataclass(frozen=True)
class Cluster:
    """This instance in a cluster of controllers sharing a clustered OVSDB store."""

    name: str  # this instance, as health and the store show it
    store: str  # the store's members: "tcp:IP:PORT,tcp:IP:PORT,..." (or ssl:)
    api_url: str  # where the other instances send REST writes to this one
    controllers: tuple = ()  # the OpenFlow targets of the other instances (tcp:IP:PORT)
    store_tls: StoreTls = None  # required when a member is ssl:


@dataclass(frozen=True)
class Config:
    source: str
    datapaths: dict
    api: Listen = Listen("127.0.0.1", 8080)
    api_token: str = None
    openflow: Listen = Listen("127.0.0.1", 6653)
    ovsdb: str = DEFAULT_OVSDB
    state_file: str = DEFAULT_STATE_FILE
    cluster: "Cluster" = None  # None: one controller, objects in state_file

    def by_dp_id(self, dp_id):
        return next((d for d in self.datapaths.values() if d.dp_id == dp_id), None)
