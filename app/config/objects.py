"""Capture rules and mirror sessions, declared once: the config file's ``capture:`` and
``mirrors:``, the REST API's bodies (:func:`capture_rule`, :func:`mirror`), the state file's
objects, and the schemas the OpenAPI document and ``sggw.yaml``'s JSON Schema show.

What a schema cannot know is checked here too: an ``in_port`` must be one of the datapath's
ports (``ctx``: its :class:`app.config.model.Ports`), a destination may not be a role's port
or a source of the same session, and no port is a destination of one session and a source
of another (:class:`MirrorPorts`).
"""
from collections import Counter

from app.config import remote
from app.config.fields import L4_PORT, NAME, PORT_REF, VLAN, IpProto, Mac, Prefix
from app.config.model import (
    DIRECTIONS, FILTER_NAME, IP_PROTOS, SOURCE_ROLES, CaptureRule, Mirror, MirrorDestination,
    MirrorSource)
from app.config.schema import Choice, ConfigError, Field, Int, ListOf, Node, Record, join

ICMP, TCP, UDP, ICMPV6 = (IP_PROTOS[name] for name in ("icmp", "tcp", "udp", "icmpv6"))
_L4 = (lambda done: done.get("ip_proto") in (TCP, UDP), "L4 ports need ip_proto: tcp or udp")
_TUNNEL = "traffic from the tunnel cannot be captured into it"


class InPort(Node):
    """Where a captured packet comes from: a role (lan, wan, local) or a port of the
    datapath (``ctx``), never the tunnel."""

    def check(self, value, path, ports):
        if value in ("lan", "wan", "local"):
            return value
        if value == "tunnel":
            raise ConfigError(path, _TUNNEL)
        ref = PORT_REF.check(value, path, None)
        if ref not in [r for _, r, _ in ports.roles()]:
            raise ConfigError(path, "%r is not one of this datapath's ports" % (ref,))
        if ref == ports.tunnel:
            raise ConfigError(path, _TUNNEL)
        return ref

    def describe(self, dialect):
        return PORT_REF.describe(dialect)


def _capture_rule(read):
    out = read.all()
    v4 = any(k in out for k in ("ipv4_src", "ipv4_dst"))
    v6 = any(k in out for k in ("ipv6_src", "ipv6_dst"))
    if v4 and v6:
        raise read.error(None, "mixes IPv4 and IPv6 prefixes; write two rules")
    if out.get("ip_proto") == ICMP and v6:
        raise read.error("ip_proto", "icmp is IPv4; use icmpv6 with IPv6")
    if out.get("ip_proto") == ICMPV6 and v4:
        raise read.error("ip_proto", "icmpv6 is IPv6; use icmp with IPv4")
    return CaptureRule(**dict({"name": FILTER_NAME}, **out))


CAPTURE_RULE = Record(
    Field("name", NAME, required=True),
    Field("in_port", ListOf(InPort(), single=True, min_items=1,
                            empty="must name at least one port or role",
                            description="role (lan, wan, local) or configured port; default: "
                                        "any port but the tunnel")),
    Field("vlan", VLAN),
    Field("ipv4_src", Prefix(4)), Field("ipv4_dst", Prefix(4)),
    Field("ipv6_src", Prefix(6)), Field("ipv6_dst", Prefix(6)),
    Field("ip_proto", IpProto()),
    Field("src_port", L4_PORT, needs=_L4), Field("dst_port", L4_PORT, needs=_L4),
    build=_capture_rule,
    description="Packets matching every given field go into the tunnel. Rules without IP "
                "prefixes apply to IPv4 and IPv6; src_port/dst_port need ip_proto tcp/udp.")
# a mirror session's filter: a capture rule's match, with neither name nor in_port (the
# session's sources say where traffic comes from)
FILTER = CAPTURE_RULE.derived(drop=("name", "in_port"), nullable=True,
                              description="copy only matching packets")


def capture_rule(value, path, ports, name_required=True):
    """One capture rule (with ``name_required=False``: a mirror session's filter)."""
    return (CAPTURE_RULE if name_required else FILTER).check(value, path, ports)


# --- mirror sessions ------------------------------------------------------------------------

class SourcePort(Node):
    """A mirror source: a role (all its ports) or a port."""

    def check(self, value, path, ctx):
        return value if value in SOURCE_ROLES else PORT_REF.check(value, path, ctx)

    def describe(self, dialect):
        return PORT_REF.describe(dialect)


class AnalyzerPort(Node):
    """A local destination: one port that has no role."""

    def check(self, value, path, ctx):
        if value in SOURCE_ROLES:
            raise ConfigError(path, "a destination is one analyzer port, not the role %r"
                              % value)
        return PORT_REF.check(value, path, ctx)

    def describe(self, dialect):
        return PORT_REF.describe(dialect)


def _new_source(source, before, where, ctx):
    if any(s.port == source.port for s in before):
        raise ConfigError(join(where, "port"), "%r is already a source of this session"
                          % (source.port,))


SOURCE = Record(
    Field("port", SourcePort(description="a port, or a role: lan, wan, tunnel, local"),
          required=True),
    Field("direction", Choice(DIRECTIONS, "rx, tx or both", default=MirrorSource.direction)),
    cls=MirrorSource)

LOCAL_DESTINATION = Record(
    Field("port", AnalyzerPort(description="an analyzer port (no role): it carries only "
                                           "copies"), required=True),
    Field("vlan", VLAN.but(nullable=True, description="push this 802.1Q tag on the copies")),
    Field("eth_dst", Mac(nullable=True, description="rewrite the copies' destination MAC")),
    refused={kind: "a destination is a port or a remote analyzer, not both"
             for kind in remote.KINDS},
    cls=MirrorDestination)


class Destination(Node):
    """Where a session's copies go: a local analyzer port, or a remote analyzer."""

    def check(self, value, path, ctx):
        if isinstance(value, dict) and "port" not in value and value:
            return MirrorDestination(None, remote=remote.DESTINATION.check(value, path, ctx))
        return LOCAL_DESTINATION.check(value, path, ctx)

    def describe(self, dialect):
        return {"oneOf": [LOCAL_DESTINATION.schema(dialect)]
                + remote.DESTINATION.describe(dialect)["oneOf"]}


def _new_destination(dest, before, where, ctx):
    """A destination checked against the session's sources and earlier destinations, and
    the datapath's roles (``ctx``: (Ports, sources))."""
    ports, sources = ctx
    if dest.remote:
        if dest in before:
            raise ConfigError(where, "%s is already a destination of this session" % dest.key)
        return
    where = join(where, "port")
    roles = {ref: role for role, ref, _ in ports.roles()}
    if dest.port in roles:
        raise ConfigError(where, "%r is the %s port; a destination carries only mirror "
                                 "copies" % (dest.port, roles[dest.port]))
    if any(s.port == dest.port for s in sources):
        raise ConfigError(where, "%r is also a source of this session" % (dest.port,))
    if any(d.port == dest.port for d in before):
        raise ConfigError(where, "%r is already a destination of this session" % (dest.port,))


def _rate_limit(read):
    unit = next(unit for unit in read.record.fields if unit in read)
    return (unit, read.get(unit))


def _mirror(read):
    sources = read.get("sources")
    return Mirror(name=read.get("name"), sources=sources,
                  destinations=read.get("destinations", ctx=(read.ctx, sources)),
                  filter=read.get("filter"), snaplen=read.get("snaplen"),
                  rate_limit=read.get("rate_limit"))


RATE = Int(1, 1_000_000_000)
MIRROR = Record(
    Field("name", NAME, required=True),
    Field("sources", ListOf(SOURCE, "sources", min_items=1, each=_new_source), required=True),
    Field("destinations", ListOf(Destination(), "destinations", min_items=1,
                                 each=_new_destination), required=True),
    Field("filter", FILTER),
    Field("snaplen", Int(64, 65535, nullable=True,
                         description="truncate copies to this many bytes")),
    Field("rate_limit", Record(Field("pps", RATE), Field("kbps", RATE), exactly_one=True,
                               build=_rate_limit, nullable=True,
                               description="cap the copies (never the original): one of "
                                           "pps, kbps")),
    build=_mirror)


def mirror(value, path, ports):
    """One mirror session; ``ports`` (config.Ports) tells roles from analyzer ports."""
    return MIRROR.check(value, path, ports)


class MirrorPorts:
    """How many sessions use each port as a source and as a (local) destination, kept up
    to date one session at a time: checking a new session against a thousand others costs
    what checking it against one does."""

    def __init__(self, sessions=()):
        self.sources, self.destinations = Counter(), Counter()
        for session in sessions:
            self.add(session)

    def add(self, session, sign=1):
        for counter, ports in ((self.sources, {s.port for s in session.sources}),
                               (self.destinations, {d.port for d in session.destinations
                                                    if not d.remote})):
            for port in ports:
                counter[port] += sign
                if counter[port] <= 0:
                    del counter[port]

    def remove(self, session):
        self.add(session, -1)

    def copy(self):
        out = MirrorPorts()
        out.sources, out.destinations = Counter(self.sources), Counter(self.destinations)
        return out

    def check(self, session, path):
        """Sessions may share sources and destinations, but no port is a destination of
        one session and a source of another (copies of copies)."""
        for i, dest in enumerate(session.destinations):
            if not dest.remote and dest.port in self.sources:
                raise ConfigError(join(path, "destinations[%d].port" % i), "%r is a source "
                                  "of another session" % (dest.port,))
        for i, source in enumerate(session.sources):
            if source.port in self.destinations:
                raise ConfigError(join(path, "sources[%d].port" % i), "%r is a destination "
                                  "of another session" % (source.port,))
