"""The whole ``sggw.yaml``, declared once: its datapaths (ports, reverse paths, capture rules
and mirror sessions), listeners, OVSDB, state file and cluster. :func:`parse` checks a file's
data into a :class:`app.config.model.Config`; :func:`json_schema` describes the file for
editors (shipped as ``sggw.schema.json`` beside this module, and served at
``GET /v1/config-schema.json``).
"""
import ssl
from dataclasses import replace

from app.config.fields import (
    NAME, PORT_REF, TARGET, Address, DpId, FilePath, Interface, Members, Ovsdb, Secret)
from app.config.model import (
    DEFAULT_OVSDB, DEFAULT_STATE_FILE, MATCH_MODES, MAX_CONFIG_OBJECTS, Cluster, Config,
    Datapath, Listen, Ports, ReversePath, StoreTls)
from app.config.objects import CAPTURE_RULE, MIRROR, MirrorPorts
from app.config.schema import (
    JSON_SCHEMA, Choice, ConfigError, Field, Int, ListOf, MapOf, Record, Text)

SCHEMA_FILE = "sggw.schema.json"  # the copy of json_schema() shipped beside this module
TLS_FILES = ("private_key", "certificate", "ca_cert")


def _ports(read):
    ports = Ports(**read.all())
    seen = {}
    single_lan = not isinstance(read.value["lan"], list)
    for role, ref, where in ports.roles():
        if single_lan and role == "lan":
            where = "ports.lan"
        if ref in seen:
            raise read.error(where[len("ports."):], "%r is already used as %s"
                             % (ref, seen[ref]))
        seen[ref] = where
    return ports


PORTS = Record(
    Field("lan", ListOf(PORT_REF, single=True, min_items=1, empty="needs at least one port",
                        description="toward the protected hosts: a port or a list"),
          required=True),
    Field("wan", PORT_REF.but(description="toward the upstream router"), required=True),
    Field("tunnel", PORT_REF.but(description="the VPN port (e.g. OpenVPN's tap0); needed by "
                                             "capture rules")),
    build=_ports, description="OpenFlow port numbers or interface names, by role")


def _reverse_path(read):
    out = ReversePath(**read.all())
    if out.fin_idle_timeout > out.idle_timeout:
        raise read.error("fin_idle_timeout", "%d is longer than idle_timeout %d (it shortens "
                                             "the idle timeout after FIN/RST)"
                         % (out.fin_idle_timeout, out.idle_timeout))
    return out


REVERSE_PATH = Record(
    Field("match", Choice(MATCH_MODES, default=ReversePath.match,
                          description="learn() per 5-tuple, learn() per host pair (far fewer "
                                      "upcalls), or conntrack")),
    Field("idle_timeout", Int(1, 65535, default=ReversePath.idle_timeout,
                              description="seconds")),
    Field("fin_idle_timeout", Int(0, 65535, default=ReversePath.fin_idle_timeout,
                                  description="seconds after TCP FIN/RST")),
    Field("max_flows", Int(1, 10_000_000, default=ReversePath.max_flows,
                           description="bound of each learned table (or the conntrack "
                                       "zone); when full, nothing new is learned")),
    Field("ct_zone", Int(1, 65535, description="conntrack: this bridge's zone (default: "
                                               "the dp_id's low 16 bits)"),
          needs=(lambda done: done.get("match") == "conntrack",
                 "only used with match: conntrack")),
    build=_reverse_path)


def _numbered(read, key, ports):
    """The objects under ``key`` numbered 1.. in file order (their stable ids); their
    names must be unique."""
    objects = tuple(replace(obj, id=i + 1)
                    for i, obj in enumerate(read.get(key, default=(), ctx=ports)))
    seen = {}
    for i, obj in enumerate(objects):
        if obj.name in seen:
            raise read.error("%s[%d].name" % (key, i), "%r is already used by %s[%d]"
                             % (obj.name, key, seen[obj.name]))
        seen[obj.name] = i
    return objects


def _datapath(read):
    ports = read.get("ports")
    capture = _numbered(read, "capture", ports)
    if capture and ports.tunnel is None:
        raise read.error("capture", "capture rules need ports.tunnel")
    mirrors = _numbered(read, "mirrors", ports)
    used = MirrorPorts()
    for i, session in enumerate(mirrors):
        used.check(session, "%s.mirrors[%d]" % (read.path, i))
        used.add(session)
    dp_id = read.get("dp_id")
    reverse_path = read.get("reverse_path", default=ReversePath())
    if reverse_path.conntrack and reverse_path.ct_zone is None:
        reverse_path = replace(reverse_path, ct_zone=dp_id & 0xFFFF or 1)
    return Datapath(name=read.ctx, dp_id=dp_id, ports=ports, local_ip=read.get("local_ip"),
                    reverse_path=reverse_path, capture=capture, mirrors=mirrors)


DATAPATH = Record(
    Field("dp_id", DpId(description="the bridge's other-config:datapath-id (0x-hex, "
                                    "decimal, or 16 hex digits)"), required=True),
    Field("ports", PORTS, required=True),
    Field("local_ip", Interface(description="the endpoint's one IP with its prefix length, "
                                            "on the bridge's LOCAL port")),
    Field("reverse_path", REVERSE_PATH),
    Field("capture", ListOf(CAPTURE_RULE, "rules", max_items=MAX_CONFIG_OBJECTS,
                            description="ordered rules: matching traffic goes into the "
                                        "tunnel")),
    Field("mirrors", ListOf(MIRROR, "sessions", max_items=MAX_CONFIG_OBJECTS,
                            description="mirror sessions (SPAN)")),
    build=_datapath)


def _new_datapath(dp, before, where, ctx):
    """No two datapaths share a dp_id or a conntrack zone."""
    for other in before.values():
        if other.dp_id == dp.dp_id:
            raise ConfigError(where + ".dp_id", "%#x is already used by datapaths.%s"
                              % (dp.dp_id, other.name))
        zone = dp.reverse_path.ct_zone
        if zone is not None and other.reverse_path.ct_zone == zone:
            raise ConfigError(where + ".reverse_path.ct_zone", "conntrack zone %d is also "
                              "datapaths.%s's (zones are shared by every bridge of a "
                              "datapath)" % (zone, other.name))


def _listen(default, *more):
    return (Field("host", Address(text=True, default=default.host, description="an IP "
                                                                               "address")),
            Field("port", Int(1, 65535, default=default.port))) + more


TOKEN = Secret(8, description="then every request needs Authorization: Bearer TOKEN")
API = Record(*_listen(Config.api, Field("token", TOKEN)),
             build=lambda read: (Listen(read.get("host"), read.get("port")),
                                 read.get("token")),
             description="the REST API")
OPENFLOW = Record(*_listen(Config.openflow),
                  build=lambda read: Listen(read.get("host"), read.get("port")),
                  description="where the switches connect")


def _store_tls(read):
    """The files for ``ssl:`` members, each read now: a missing, unreadable or mismatched
    file is an error naming its key, not a store that never answers."""
    tls = StoreTls(**read.all())
    for key in ("certificate", "ca_cert"):
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(getattr(tls, key))
        except ssl.SSLError:
            raise read.error(key, "%s holds no PEM certificate" % getattr(tls, key)) \
                from None
    try:  # an empty password: an encrypted key is refused, never asked for on a terminal
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
            tls.certificate, tls.private_key, password=b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise read.error("private_key", "%s is not the key of %s"
                             % (tls.private_key, tls.certificate)) from None
        raise read.error("private_key", "%s holds no unencrypted PEM private key"
                         % tls.private_key) from None
    return tls


STORE_TLS = Record(
    Field("private_key", FilePath(readable=True), required=True),
    Field("certificate", FilePath(readable=True, description="this instance's, signed by a "
                                                             "CA the members trust"),
          required=True),
    Field("ca_cert", FilePath(readable=True, description="the CA that signed the members' "
                                                         "certificates"), required=True),
    build=_store_tls, nullable=True,
    description="PEM files for ssl: members (as ovsdb-server's --private-key, --certificate "
                "and --ca-cert)")


def _cluster(read):
    name, store, url = read.get("name"), read.get("store"), read.get("api_url")
    controllers = read.get("controllers", default=())
    secure = [m for m in store.split(",") if m.startswith("ssl:")]
    if "store_tls" not in read:
        if secure:
            raise read.error("store_tls", "is required: %s is an ssl: member (give "
                                          "private_key, certificate and ca_cert)" % secure[0])
    elif not secure:
        raise read.error("store_tls", "no member of cluster.store is ssl: (write "
                                      "ssl:IP:PORT to use TLS)")
    return Cluster(name, store, url, controllers, read.get("store_tls"))


CLUSTER = Record(
    Field("name", NAME.but(description="this instance, as health and the store show it"),
          required=True),
    Field("store", Members(description="the clustered store's members"), required=True),
    Field("api_url", Text(r"https?://[^/\s]+", "expected http://HOST:PORT (this instance's "
                                               "REST API as the others reach it), got %s",
                          description="this instance's REST API as the others reach it"),
          required=True),
    Field("controllers", ListOf(TARGET, "OpenFlow targets",
                                description="the other instances' OpenFlow targets")),
    Field("store_tls", STORE_TLS),
    build=_cluster, description="this instance in a cluster of controllers sharing a "
                                "clustered OVSDB store")


def _config(read):
    datapaths = read.get("datapaths")
    api, token = read.get("api", default=(Config.api, None))
    openflow = read.get("openflow", default=Config.openflow)
    if api == openflow:
        raise ConfigError("api.port", "%d is also the OpenFlow port" % api.port)
    return Config(source=read.ctx, datapaths=datapaths, api=api, api_token=token,
                  openflow=openflow, ovsdb=read.get("ovsdb"), state_file=read.get("state_file"),
                  cluster=read.get("cluster"))


CONFIG = Record(
    Field("datapaths", MapOf(NAME, DATAPATH, "datapath names", min_items=1,
                             empty="needs at least one datapath", each=_new_datapath,
                             description="the bridges sggw programs, by name"),
          required=True),
    Field("api", API),
    Field("openflow", OPENFLOW),
    Field("ovsdb", Ovsdb(default=DEFAULT_OVSDB, description="the switch's own OVSDB")),
    Field("state_file", FilePath(default=DEFAULT_STATE_FILE,
                                 description="where the REST-made objects are kept")),
    Field("cluster", CLUSTER),
    build=_config)


def parse(data, source="<config>"):
    """Validate already-parsed YAML ``data``."""
    return CONFIG.check(data, None, source)


def json_schema():
    """The JSON Schema (draft-07) of ``sggw.yaml``, for editors."""
    return dict(CONFIG.schema(JSON_SCHEMA), **{
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "sggw.yaml",
        "description": "The sggw controller's config (docs/configuration.md)."})
