"""The kinds of values sggw's objects are made of (names, ports, prefixes, addresses, ...),
each declared once as a node of :mod:`app.config.schema`: how it is checked, and how JSON
Schema describes it."""
import ipaddress
import re

from app.config.model import IP_PROTOS, MAC_RE, NAME_RE, OFPP_MAX
from app.config.schema import ConfigError, Int, Node, Text, show

REMOTE_TCP = r"(tcp|ssl):(\[[0-9a-fA-F:]+\]|[0-9.]+):[0-9]{1,5}"  # an OVSDB or OpenFlow target

NAME = Text(NAME_RE.pattern,
            "%s is not a valid name (letters, digits, '_', '.', '-'; at most 64)")
VLAN = Int(0, 4094)
L4_PORT = Int(1, 65535)
TARGET = Text(REMOTE_TCP, "expected tcp:IP:PORT or ssl:IP:PORT, got %s")


class PortRef(Node):
    """An OpenFlow port number or an interface name."""

    NUMBER = Int(1, OFPP_MAX)

    def check(self, value, path, ctx):
        if isinstance(value, str) and value.strip():
            if value.isdigit():
                return self.NUMBER.check(value, path, ctx)
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return self.NUMBER.check(value, path, ctx)
        raise ConfigError(path, "expected a port number or interface name, got %s"
                          % show(value))

    def describe(self, dialect):
        return {"oneOf": [self.NUMBER.schema(dialect),
                          {"type": "string", "pattern": r"^\S*[^0-9\s]\S*$",
                           "description": "an interface name (numbers go as integers)"}]}


PORT_REF = PortRef()


class Prefix(Node):
    """An IPv4 or IPv6 prefix without host bits."""

    PATTERN = {4: r"^(\d{1,3}\.){3}\d{1,3}(/\d{1,2})?$",
               6: r"^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*(/\d{1,3})?$"}
    EXAMPLE = {4: "10.2.0.0/16", 6: "fd00:2::/48"}

    def __init__(self, version, **kw):
        super().__init__(description="an IPv%d prefix without host bits, e.g. %s"
                                     % (version, self.EXAMPLE[version]), **kw)
        self.version = version

    def check(self, value, path, ctx):
        kind = "IPv%d prefix" % self.version
        if not isinstance(value, str):
            raise ConfigError(path, "expected an %s like %s, got %s" % (
                kind, self.EXAMPLE[self.version], show(value)))
        try:
            net = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise ConfigError(path, "%r is not an %s (%s)" % (value, kind, exc)) from None
        if net.version != self.version:
            raise ConfigError(path, "%r is not an %s" % (value, kind))
        return net

    def describe(self, dialect):
        return {"type": "string", "pattern": self.PATTERN[self.version]}


class IpProto(Node):
    """An IP protocol: a name sggw knows or a number."""

    NUMBER = Int(0, 255)

    def check(self, value, path, ctx):
        if isinstance(value, str) and value.lower() in IP_PROTOS:
            return IP_PROTOS[value.lower()]
        if isinstance(value, (int, str)) and not isinstance(value, bool) \
                and str(value).strip().isdigit():
            return self.NUMBER.check(value, path, ctx)
        raise ConfigError(path, "expected tcp, udp, icmp, icmpv6 or a number 0..255, got %s"
                          % show(value))

    def describe(self, dialect):
        return {"oneOf": [{"type": "string", "enum": sorted(IP_PROTOS)},
                          self.NUMBER.schema(dialect)]}


class Mac(Node):
    """A unicast MAC address (returned in lower case)."""

    def check(self, value, path, ctx):
        if not isinstance(value, str) or not MAC_RE.fullmatch(value):
            raise ConfigError(path, "expected a MAC like 02:00:00:00:00:01, got %s"
                              % show(value))
        if int(value[:2], 16) & 1:
            raise ConfigError(path, "%s is a group address; copies need a unicast "
                                    "destination" % value)
        return value.lower()

    def describe(self, dialect):
        return {"type": "string", "pattern": "^%s$" % MAC_RE.pattern}


class DpId(Node):
    """A datapath id: an integer, 0x-hex, or 16 hex digits as ``ovs-ofctl show`` prints it."""

    NUMBER = Int(1, 2**64 - 1, fmt="%#x")

    def check(self, value, path, ctx):
        if isinstance(value, str) and re.fullmatch(r"[0-9a-fA-F]{16}", value.strip()):
            value = int(value.strip(), 16)
        return self.NUMBER.check(value, path, ctx)

    def describe(self, dialect):
        return {"oneOf": [self.NUMBER.schema(dialect),
                          {"type": "string", "pattern": r"^([0-9a-fA-F]{16}|0[xX][0-9a-fA-F]+)$"}]}


class Address(Node):
    """An IP address (``text``: kept as written); ``unicast``: one an analyzer can have."""

    def __init__(self, unicast=False, text=False, **kw):
        super().__init__(**kw)
        self.unicast, self.text = unicast, text

    def check(self, value, path, ctx):
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ConfigError(path, "expected an %sIP address, got %s" % (
                "IPv4 or IPv6 " if self.unicast else "", show(value))) from None
        if self.unicast and (address.is_multicast or address.is_unspecified
                             or address.is_loopback or address.is_link_local):
            raise ConfigError(path, "%s is not a unicast address an analyzer can have"
                              % address)
        return value if self.text else address

    def describe(self, dialect):
        return {"type": "string"}


class Interface(Node):
    """An IPv4 host address with its prefix length (``local_ip``)."""

    def check(self, value, path, ctx):
        try:
            iface = ipaddress.ip_interface(value) if isinstance(value, str) else None
        except ValueError as exc:
            raise ConfigError(path, "%r is not an address with prefix length (%s)"
                              % (value, exc)) from None
        if iface is None or "/" not in value:
            raise ConfigError(path, "expected an address with prefix length like "
                                    "10.1.0.2/24, got %s" % show(value))
        if iface.version != 4:
            raise ConfigError(path, "only an IPv4 local_ip is supported (no IPv6 ND proxy "
                                    "yet)")
        if iface.network.prefixlen >= 31:
            raise ConfigError(path, "a /%d leaves no subnet to tell on-link from off-link"
                              % iface.network.prefixlen)
        if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
            raise ConfigError(path, "%s is the %s address of %s, not a host address" % (
                iface.ip, "network" if iface.ip == iface.network.network_address
                else "broadcast", iface.network))
        return iface

    def describe(self, dialect):
        return {"type": "string", "pattern": r"^(\d{1,3}\.){3}\d{1,3}/\d{1,2}$"}


class FilePath(Node):
    """A file's path; ``readable``: one this process can open now."""

    def __init__(self, readable=False, **kw):
        super().__init__(**kw)
        self.readable = readable

    def check(self, value, path, ctx):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(path, "expected a file path, got %s" % show(value))
        if self.readable:
            try:
                with open(value, "rb"):
                    pass
            except OSError as exc:
                raise ConfigError(path, "cannot read %s: %s" % (value, exc.strerror)) \
                    from None
        return value

    def describe(self, dialect):
        return {"type": "string", "pattern": r"\S"}


class Secret(Node):
    """A string of at least ``length`` characters (a bearer token)."""

    def __init__(self, length, **kw):
        super().__init__(**kw)
        self.length = length

    def check(self, value, path, ctx):
        if not isinstance(value, str) or len(value) < self.length:
            raise ConfigError(path, "expected a string of at least %d characters"
                              % self.length)
        return value

    def describe(self, dialect):
        return {"type": "string", "minLength": self.length}


class Ovsdb(Node):
    """The switch's own OVSDB: ``unix:PATH`` or ``tcp:IP:PORT``."""

    PATTERN = r"unix:\S+|tcp:(\[[0-9a-fA-F:]+\]|[0-9.]+):[0-9]{1,5}"

    def check(self, value, path, ctx):
        if isinstance(value, str) and value.startswith("ssl:"):
            # ovs-vsctl would need key and certificate files that nothing configures
            raise ConfigError(path, "%s: ssl: is not supported for the switch's own OVSDB; "
                                    "use unix:PATH (or tcp:IP:PORT on a trusted link)"
                              % show(value))
        if not isinstance(value, str) or not re.fullmatch(self.PATTERN, value):
            raise ConfigError(path, "expected unix:PATH or tcp:IP:PORT, got %s" % show(value))
        return value

    def describe(self, dialect):
        return {"type": "string", "pattern": "^(?:%s)$" % self.PATTERN}


class Members(Node):
    """The members of a clustered OVSDB: ``tcp:IP:PORT,ssl:IP:PORT,...``."""

    def check(self, value, path, ctx):
        members = value.split(",") if isinstance(value, str) else []
        for i, member in enumerate(members):
            if not re.fullmatch(REMOTE_TCP, member):
                raise ConfigError(path, "member %d: expected tcp:IP:PORT or ssl:IP:PORT, "
                                        "got %s" % (i + 1, show(member)))
        if not members:
            raise ConfigError(path, "expected the store's members as \"tcp:IP:PORT,"
                                    "tcp:IP:PORT,...\", got %s" % show(value))
        return value

    def describe(self, dialect):
        return {"type": "string", "pattern": "^%s(,%s)*$" % (REMOTE_TCP, REMOTE_TCP)}
