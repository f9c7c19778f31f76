"""Load and validate the sggw YAML config into immutable objects.

Every problem becomes one :class:`ConfigError` line: ``file: key.path: reason``. Unknown
keys, wrong types and bad values are rejected; nothing is guessed. The same field parsers
check capture rules that arrive over REST.

Check a file without starting the controller: ``python -m app.config sggw.yaml``.
"""
import ipaddress
import re
import ssl
import sys
from collections import Counter
from dataclasses import replace

import yaml

from app.config import fields, remote, strict_yaml
from app.config.fields import (
    ConfigError, integer, ip_proto, join, key_text, list_of, mapping, network, one_line,
    port_ref, readable_file, show)
from app.config.model import (
    DEFAULT_OVSDB, DEFAULT_STATE_FILE, DIRECTIONS, FILTER_NAME, IP_PROTOS, MAC_RE,
    MATCH_MODES, MAX_CONFIG_OBJECTS, ROLES, SOURCE_ROLES, CaptureRule, Cluster, Config,
    Datapath, Listen, Mirror, MirrorDestination, MirrorSource, Ports, ReversePath, StoreTls)


# --- loading ------------------------------------------------------------------------------

def load(path):
    """Read and validate ``path``; raises ConfigError (one line) on any problem."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(strict_yaml.MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(None, "cannot read: %s" % exc.strerror, path) from None
    if len(data) > strict_yaml.MAX_BYTES:
        raise ConfigError(None, strict_yaml.TOO_LARGE, path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(None, "not UTF-8 text (line %d)" % line, path) from None
    return loads(text, path)


def loads(text, source="<config>"):
    try:
        data = strict_yaml.load(text)
    except strict_yaml.LimitError as exc:
        raise ConfigError(_where(exc.problem_mark), exc.problem, source) from None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_where(exc.problem_mark), "invalid YAML: %s" % one_line(exc.problem),
                          source) from None
    except yaml.reader.ReaderError as exc:
        line = text[:exc.position].count("\n") + 1
        raise ConfigError("line %d" % line, "invalid YAML: character %#x is not allowed"
                          % exc.character, source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(None, "invalid YAML: %s" % one_line(str(exc)), source) from None
    if data is None:
        raise ConfigError(None, "the file is empty", source)
    try:
        return parse(data, source)
    except ConfigError as exc:
        exc.source = source
        raise


def _where(mark):
    return "line %d column %d" % (mark.line + 1, mark.column + 1) if mark else None


# --- capture rules ------------------------------------------------------------------------

MATCH_KEYS = ("in_port", "vlan", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "ip_proto",
              "src_port", "dst_port")


def capture_rule(value, path, ports, name_required=True):
    """Parse one capture rule (also a mirror filter, with ``name_required=False``: no name,
    no in_port, since a session's sources say where traffic comes from)."""
    allowed = ("name",) + MATCH_KEYS if name_required else MATCH_KEYS[1:]
    mapping(value, path, allowed, required=("name",) if name_required else ())
    out = {}
    if name_required:
        out["name"] = fields.name(value["name"], join(path, "name"))
    if "in_port" in value:
        out["in_port"] = _in_ports(value["in_port"], join(path, "in_port"), ports)
    if "vlan" in value:
        out["vlan"] = integer(value["vlan"], join(path, "vlan"), 0, 4094)
    for key, version in (("ipv4_src", 4), ("ipv4_dst", 4), ("ipv6_src", 6), ("ipv6_dst", 6)):
        if key in value:
            out[key] = network(value[key], join(path, key), version)
    if "ip_proto" in value:
        out["ip_proto"] = ip_proto(value["ip_proto"], join(path, "ip_proto"))
    for key in ("src_port", "dst_port"):
        if key in value:
            if out.get("ip_proto") not in (IP_PROTOS["tcp"], IP_PROTOS["udp"]):
                raise ConfigError(join(path, key), "L4 ports need ip_proto: tcp or udp")
            out[key] = integer(value[key], join(path, key), 1, 65535)
    v4 = any(k in out for k in ("ipv4_src", "ipv4_dst"))
    v6 = any(k in out for k in ("ipv6_src", "ipv6_dst"))
    if v4 and v6:
        raise ConfigError(path, "mixes IPv4 and IPv6 prefixes; write two rules")
    if out.get("ip_proto") == IP_PROTOS["icmp"] and v6:
        raise ConfigError(join(path, "ip_proto"), "icmp is IPv4; use icmpv6 with IPv6")
    if out.get("ip_proto") == IP_PROTOS["icmpv6"] and v4:
        raise ConfigError(join(path, "ip_proto"), "icmpv6 is IPv6; use icmp with IPv4")
    if not name_required:
        out["name"] = FILTER_NAME
    return CaptureRule(**out)


def _in_ports(value, path, ports):
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ConfigError(path, "must name at least one port or role")
    out = []
    for i, item in enumerate(items):
        where = "%s[%d]" % (path, i) if isinstance(value, list) else path
        if item in ("lan", "wan", "local"):
            out.append(item)
            continue
        if item == "tunnel":
            raise ConfigError(where, "traffic from the tunnel cannot be captured into it")
        ref = port_ref(item, where)
        known = [r for _, r, _ in ports.roles()]
        if ref not in known:
            raise ConfigError(where, "%r is not one of this datapath's ports" % (ref,))
        if ref == ports.tunnel:
            raise ConfigError(where, "traffic from the tunnel cannot be captured into it")
        out.append(ref)
    return tuple(out)


# --- sections -------------------------------------------------------------------------------

def _ports(value, path):
    mapping(value, path, ROLES, required=("lan", "wan"))
    if isinstance(value["lan"], list):
        if not value["lan"]:
            raise ConfigError(join(path, "lan"), "needs at least one port")
        lan = tuple(port_ref(v, "%s.lan[%d]" % (path, i)) for i, v in enumerate(value["lan"]))
    else:
        lan = (port_ref(value["lan"], join(path, "lan")),)
    ports = Ports(
        lan=lan,
        wan=port_ref(value["wan"], join(path, "wan")),
        tunnel=port_ref(value["tunnel"], join(path, "tunnel")) if "tunnel" in value else None,
    )
    seen = {}
    single_lan = not isinstance(value["lan"], list)
    for role, ref, where in ports.roles():
        if single_lan and role == "lan":
            where = "ports.lan"
        if ref in seen:
            raise ConfigError("%s.%s" % (path, where[len("ports."):]),
                              "%r is already used as %s" % (ref, seen[ref]))
        seen[ref] = where
    return ports


def _reverse_path(value, path):
    mapping(value, path, ("match", "idle_timeout", "fin_idle_timeout", "max_flows",
                          "ct_zone"))
    out = {}
    if "match" in value:
        if value["match"] not in MATCH_MODES:
            raise ConfigError(join(path, "match"), "expected one of %s, got %s"
                              % (", ".join(MATCH_MODES), show(value["match"])))
        out["match"] = value["match"]
    if "idle_timeout" in value:
        out["idle_timeout"] = integer(value["idle_timeout"], join(path, "idle_timeout"), 1, 65535)
    if "fin_idle_timeout" in value:
        out["fin_idle_timeout"] = integer(value["fin_idle_timeout"],
                                          join(path, "fin_idle_timeout"), 0, 65535)
    if "max_flows" in value:
        out["max_flows"] = integer(value["max_flows"], join(path, "max_flows"), 1, 10_000_000)
    if "ct_zone" in value:
        if out.get("match") != "conntrack":
            raise ConfigError(join(path, "ct_zone"), "only used with match: conntrack")
        out["ct_zone"] = integer(value["ct_zone"], join(path, "ct_zone"), 1, 65535)
    result = ReversePath(**out)
    if result.fin_idle_timeout > result.idle_timeout:
        raise ConfigError(join(path, "fin_idle_timeout"), "%d is longer than idle_timeout %d "
                          "(it shortens the idle timeout after FIN/RST)"
                          % (result.fin_idle_timeout, result.idle_timeout))
    return result


def _local_ip(value, path):
    try:
        iface = ipaddress.ip_interface(value) if isinstance(value, str) else None
    except ValueError as exc:
        raise ConfigError(path, "%r is not an address with prefix length (%s)" % (value, exc)) \
            from None
    if iface is None or "/" not in value:
        raise ConfigError(path, "expected an address with prefix length like 10.1.0.2/24, "
                                "got %s" % show(value))
    if iface.version != 4:
        raise ConfigError(path, "only an IPv4 local_ip is supported (no IPv6 ND proxy yet)")
    if iface.network.prefixlen >= 31:
        raise ConfigError(path, "a /%d leaves no subnet to tell on-link from off-link"
                          % iface.network.prefixlen)
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise ConfigError(path, "%s is the %s address of %s, not a host address" % (
            iface.ip, "network" if iface.ip == iface.network.network_address
            else "broadcast", iface.network))
    return iface


DATAPATH_KEYS = ("dp_id", "ports", "local_ip", "reverse_path", "capture", "mirrors")


def _datapath(name, value, path):
    mapping(value, path, DATAPATH_KEYS, required=("dp_id", "ports"))
    ports = _ports(value["ports"], join(path, "ports"))
    capture = _numbered(value, "capture", "rules", capture_rule, ports, path)
    if capture and ports.tunnel is None:
        raise ConfigError(join(path, "capture"), "capture rules need ports.tunnel")
    mirrors = _numbered(value, "mirrors", "sessions", mirror, ports, path)
    used = MirrorPorts()
    for i, session in enumerate(mirrors):
        used.check(session, "%s.mirrors[%d]" % (path, i))
        used.add(session)
    dp_id = fields.dp_id(value["dp_id"], join(path, "dp_id"))
    reverse_path = _reverse_path(value.get("reverse_path", {}), join(path, "reverse_path"))
    if reverse_path.conntrack and reverse_path.ct_zone is None:
        reverse_path = replace(reverse_path, ct_zone=dp_id & 0xFFFF or 1)
    return Datapath(
        name=name,
        dp_id=dp_id,
        ports=ports,
        local_ip=_local_ip(value["local_ip"], join(path, "local_ip"))
        if "local_ip" in value else None,
        reverse_path=reverse_path,
        capture=capture,
        mirrors=mirrors,
    )


def _numbered(value, key, what, parse, ports, path):
    """The list of named objects under ``key``, each parsed by ``parse`` and numbered 1..
    in file order (their stable ids); names must be unique."""
    items = value.get(key, [])
    if not isinstance(items, list):
        raise ConfigError(join(path, key), "expected a list of %s, got %s"
                          % (what, show(items)))
    if len(items) > MAX_CONFIG_OBJECTS:
        raise ConfigError(join(path, key), "at most %d %s in the file"
                          % (MAX_CONFIG_OBJECTS, what))
    objects = tuple(replace(parse(item, "%s.%s[%d]" % (path, key, i), ports), id=i + 1)
                    for i, item in enumerate(items))
    _unique_names(objects, "%s.%s" % (path, key))
    return objects


def _unique_names(objects, path):
    seen = {}
    for i, obj in enumerate(objects):
        if obj.name in seen:
            raise ConfigError("%s[%d].name" % (path, i), "%r is already used by %s[%d]"
                              % (obj.name, path.rsplit(".", 1)[-1], seen[obj.name]))
        seen[obj.name] = i


# --- mirror sessions -------------------------------------------------------------------------

MIRROR_KEYS = ("name", "sources", "destinations", "filter", "snaplen", "rate_limit")


def mirror(value, path, ports):
    """Parse one mirror session; ``ports`` (config.Ports) tells roles from analyzer ports."""
    mapping(value, path, MIRROR_KEYS, required=("name", "sources", "destinations"))
    name = fields.name(value["name"], join(path, "name"))
    role_refs = {ref: role for role, ref, _ in ports.roles()}
    sources = []
    for i, item in enumerate(list_of(value["sources"], join(path, "sources"), "sources")):
        where = "%s[%d]" % (join(path, "sources"), i)
        mapping(item, where, ("port", "direction"), required=("port",))
        port = item["port"]
        if port not in SOURCE_ROLES:
            port = port_ref(port, join(where, "port"))
        direction = item.get("direction", "both")
        if direction not in DIRECTIONS:
            raise ConfigError(join(where, "direction"), "expected rx, tx or both, got %s"
                              % show(direction))
        if any(s.port == port for s in sources):
            raise ConfigError(join(where, "port"), "%r is already a source of this session"
                              % (port,))
        sources.append(MirrorSource(port, direction))
    destinations = []
    for i, item in enumerate(list_of(value["destinations"], join(path, "destinations"),
                                     "destinations")):
        where = "%s[%d]" % (join(path, "destinations"), i)
        if isinstance(item, dict) and "port" not in item and item:
            dest = MirrorDestination(None, remote=remote.parse(item, where))
            if dest in destinations:
                raise ConfigError(where, "%s is already a destination of this session"
                                  % dest.key)
            destinations.append(dest)
            continue
        mapping(item, where, ("port", "vlan", "eth_dst") + remote.KINDS, required=("port",))
        for kind in remote.KINDS:
            if kind in item:
                raise ConfigError(join(where, kind), "a destination is a port or a remote "
                                  "analyzer, not both")
        if item["port"] in SOURCE_ROLES:
            raise ConfigError(join(where, "port"), "a destination is one analyzer port, not "
                              "the role %r" % item["port"])
        port = port_ref(item["port"], join(where, "port"))
        if port in role_refs:
            raise ConfigError(join(where, "port"), "%r is the %s port; a destination carries "
                              "only mirror copies" % (port, role_refs[port]))
        if any(s.port == port for s in sources):
            raise ConfigError(join(where, "port"), "%r is also a source of this session"
                              % (port,))
        if any(d.port == port for d in destinations):
            raise ConfigError(join(where, "port"), "%r is already a destination of this "
                              "session" % (port,))
        vlan = integer(item["vlan"], join(where, "vlan"), 0, 4094) \
            if item.get("vlan") is not None else None
        eth_dst = item.get("eth_dst")
        if eth_dst is not None:
            if not isinstance(eth_dst, str) or not MAC_RE.fullmatch(eth_dst):
                raise ConfigError(join(where, "eth_dst"), "expected a MAC like "
                                  "02:00:00:00:00:01, got %s" % show(eth_dst))
            if int(eth_dst[:2], 16) & 1:
                raise ConfigError(join(where, "eth_dst"), "%s is a group address; copies "
                                  "need a unicast destination" % eth_dst)
            eth_dst = eth_dst.lower()
        destinations.append(MirrorDestination(port, vlan, eth_dst))
    out = {"name": name, "sources": tuple(sources), "destinations": tuple(destinations)}
    if value.get("filter") is not None:
        out["filter"] = capture_rule(value["filter"], join(path, "filter"), ports,
                                     name_required=False)
    if value.get("snaplen") is not None:
        out["snaplen"] = integer(value["snaplen"], join(path, "snaplen"), 64, 65535)
    if value.get("rate_limit") is not None:
        out["rate_limit"] = _rate_limit(value["rate_limit"], join(path, "rate_limit"))
    return Mirror(**out)


def _rate_limit(value, path):
    mapping(value, path, ("pps", "kbps"))
    if len(value) != 1:
        raise ConfigError(path, "give exactly one of pps or kbps")
    unit, rate = next(iter(value.items()))
    return (unit, integer(rate, join(path, unit), 1, 1_000_000_000))


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
                raise ConfigError("%s.destinations[%d].port" % (path, i), "%r is a source of "
                                  "another session" % (dest.port,))
        for i, source in enumerate(session.sources):
            if source.port in self.destinations:
                raise ConfigError("%s.sources[%d].port" % (path, i), "%r is a destination of "
                                  "another session" % (source.port,))


def _listen(value, path, default):
    mapping(value, path, ("host", "port") + (("token",) if path == "api" else ()))
    host = value.get("host", default.host)
    try:
        if not isinstance(host, str):
            raise ValueError(host)
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(join(path, "host"), "expected an IP address, got %s"
                          % show(host)) from None
    port = integer(value.get("port", default.port), join(path, "port"), 1, 65535)
    return Listen(host, port)


_REMOTE_TCP = r"(tcp|ssl):(\[[0-9a-fA-F:]+\]|[0-9.]+):[0-9]{1,5}"


def parse(data, source="<config>"):
    """Validate already-parsed YAML ``data``."""
    mapping(data, None, ("datapaths", "api", "openflow", "ovsdb", "state_file", "cluster"),
            required=("datapaths",))
    dps = data["datapaths"]
    if not isinstance(dps, dict):
        raise ConfigError("datapaths", "expected a mapping of datapath names, got %s"
                          % show(dps))
    if not dps:
        raise ConfigError("datapaths", "needs at least one datapath")
    datapaths = {}
    owners, zones = {}, {}
    for name, value in dps.items():
        path = "datapaths.%s" % key_text(name)
        fields.name(name, path)
        dp = _datapath(name, value, path)
        if dp.dp_id in owners:
            raise ConfigError(path + ".dp_id", "%#x is already used by datapaths.%s"
                              % (dp.dp_id, owners[dp.dp_id]))
        owners[dp.dp_id] = name
        zone = dp.reverse_path.ct_zone
        if zone is not None:
            if zone in zones:
                raise ConfigError(path + ".reverse_path.ct_zone", "conntrack zone %d is also "
                                  "datapaths.%s's (zones are shared by every bridge of a "
                                  "datapath)" % (zone, zones[zone]))
            zones[zone] = name
        datapaths[name] = dp
    api = data.get("api", {})
    token = None
    if isinstance(api, dict) and "token" in api:
        token = api["token"]
        if not isinstance(token, str) or len(token) < 8:
            raise ConfigError("api.token", "expected a string of at least 8 characters")
    ovsdb = data.get("ovsdb", DEFAULT_OVSDB)
    if isinstance(ovsdb, str) and ovsdb.startswith("ssl:"):
        # ovs-vsctl would need key and certificate files that nothing configures
        raise ConfigError("ovsdb", "%s: ssl: is not supported for the switch's own OVSDB; use "
                          "unix:PATH (or tcp:IP:PORT on a trusted link)" % show(ovsdb))
    if not isinstance(ovsdb, str) or not re.fullmatch(r"unix:\S+|" + _REMOTE_TCP, ovsdb):
        raise ConfigError("ovsdb", "expected unix:PATH or tcp:IP:PORT, got %s" % show(ovsdb))
    api_listen = _listen(api, "api", Config.api)
    openflow = _listen(data.get("openflow", {}), "openflow", Config.openflow)
    if api_listen == openflow:
        raise ConfigError("api.port", "%d is also the OpenFlow port" % api_listen.port)
    state_file = data.get("state_file", DEFAULT_STATE_FILE)
    if not isinstance(state_file, str) or not state_file.strip():
        raise ConfigError("state_file", "expected a file path, got %s" % show(state_file))
    return Config(
        source=source,
        datapaths=datapaths,
        api=api_listen,
        api_token=token,
        openflow=openflow,
        ovsdb=ovsdb,
        state_file=state_file,
        cluster=_cluster(data["cluster"]) if "cluster" in data else None,
    )


def _cluster(value):
    mapping(value, "cluster", ("name", "store", "api_url", "controllers", "store_tls"),
            required=("name", "store", "api_url"))
    fields.name(value["name"], "cluster.name")
    store = value["store"]
    members = store.split(",") if isinstance(store, str) else []
    for i, member in enumerate(members):
        if not re.fullmatch(_REMOTE_TCP, member):
            raise ConfigError("cluster.store", "member %d: expected tcp:IP:PORT or ssl:IP:PORT, "
                              "got %s" % (i + 1, show(member)))
    if not members:
        raise ConfigError("cluster.store", "expected the store's members as \"tcp:IP:PORT,"
                          "tcp:IP:PORT,...\", got %s" % show(store))
    url = value["api_url"]
    if not isinstance(url, str) or not re.fullmatch(r"https?://[^/\s]+", url):
        raise ConfigError("cluster.api_url", "expected http://HOST:PORT (this instance's REST "
                          "API as the others reach it), got %s" % show(url))
    controllers = value.get("controllers", [])
    if not isinstance(controllers, list):
        raise ConfigError("cluster.controllers", "expected a list of OpenFlow targets, got %s"
                          % show(controllers))
    for i, target in enumerate(controllers):
        if not isinstance(target, str) or not re.fullmatch(_REMOTE_TCP, target):
            raise ConfigError("cluster.controllers[%d]" % i, "expected tcp:IP:PORT or "
                              "ssl:IP:PORT, got %s" % show(target))
    return Cluster(value["name"], store, url, tuple(controllers),
                   _store_tls(value.get("store_tls"), members))


TLS_FILES = ("private_key", "certificate", "ca_cert")


def _store_tls(value, members):
    """The files for ``ssl:`` members, each read now: a missing, unreadable or mismatched
    file is an error naming its key, not a store that never answers."""
    path = "cluster.store_tls"
    secure = [m for m in members if m.startswith("ssl:")]
    if value is None:
        if secure:
            raise ConfigError(path, "is required: %s is an ssl: member (give private_key, "
                                    "certificate and ca_cert)" % secure[0])
        return None
    if not secure:
        raise ConfigError(path, "no member of cluster.store is ssl: (write ssl:IP:PORT to "
                                "use TLS)")
    mapping(value, path, TLS_FILES, required=TLS_FILES)
    for key in TLS_FILES:
        readable_file(value[key], join(path, key))
    tls = StoreTls(**{key: value[key] for key in TLS_FILES})
    for key in ("certificate", "ca_cert"):
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(getattr(tls, key))
        except ssl.SSLError:
            raise ConfigError(join(path, key), "%s holds no PEM certificate"
                              % getattr(tls, key)) from None
    try:  # an empty password: an encrypted key is refused, never asked for on a terminal
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            tls.certificate, tls.private_key, password=b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ConfigError(join(path, "private_key"), "%s is not the key of %s"
                              % (tls.private_key, tls.certificate)) from None
        raise ConfigError(join(path, "private_key"), "%s holds no unencrypted PEM private "
                          "key" % tls.private_key) from None
    return tls


def main(argv=None, prog="python -m app.config"):
    """``python -m app.config FILE`` (also ``sggw check-config FILE``): exit 0 if FILE is
    valid, else print the error."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: %s sggw.yaml" % prog, file=sys.stderr)
        return 2
    try:
        cfg = load(args[0])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("%s: ok (%d datapaths)" % (args[0], len(cfg.datapaths)))
    return 0
