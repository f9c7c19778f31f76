"""Tests for app/config/: YAML loading and validation into frozen dataclasses.

Every rejection must be a ConfigError whose str() is one line: ``file: key.path: reason``.
"""
import copy
import time
import dataclasses
from ipaddress import IPv4Interface, IPv4Network, IPv6Network

import pytest
import yaml

from app import config
from app.config import (CaptureRule, Config, ConfigError, Datapath, Listen, Ports,
                        ReversePath)

SOURCE = "sggw.yaml"

# The schema example from the issue, verbatim (comments included).
EXAMPLE = """\
datapaths:
  site-a:                     # a name used in logs and the API
    dp_id: 0x1                # the bridge's datapath id
    ports:                    # OpenFlow port numbers or interface names
      lan: [hosta-p]
      wan: routera-p
      tunnel: tun-a
    local_ip: 10.1.0.2/24     # optional: the endpoint's one IP, on the bridge's LOCAL port
    reverse_path:
      match: five_tuple       # or host_pair
      idle_timeout: 60        # seconds
      fin_idle_timeout: 5     # after TCP FIN/RST
      max_flows: 100000       # learned-table bound, evicting the oldest
    capture:                  # ordered "interesting traffic" rules -> tunnel
      - name: to-site-b
        ipv4_dst: 10.2.0.0/16
      - name: to-site-b-v6
        ipv6_dst: fd00:2::/48
        ip_proto: tcp         # also udp, icmp, icmpv6 or a number; tcp/udp allow ports
"""

# The smallest valid config: only the required keys.
MINIMAL = """\
datapaths:
  site-a:
    dp_id: 1
    ports:
      lan: [hosta-p]
      wan: routera-p
"""

DP = "datapaths.site-a"
DELETE = object()


# --- helpers ------------------------------------------------------------------------------

def edited(edits, base=EXAMPLE):
    """``base`` with ``edits`` ({"dotted.path.0.key": value or DELETE}) applied, as YAML."""
    data = copy.deepcopy(yaml.safe_load(base))
    for dotted, value in edits.items():
        *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
        node = data
        for key in parents:
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    return yaml.safe_dump(data, sort_keys=False)


def check_error(err, path, fragment, source=SOURCE):
    """``err`` is one line ``source: path: reason`` and the reason contains ``fragment``."""
    text = str(err)
    assert "\n" not in text and "\r" not in text, text
    prefix = "%s: %s: " % (source, path) if path != "(top)" else "%s: " % source
    assert text.startswith(prefix), text
    assert fragment in text[len(prefix):], text
    assert err.path == (None if path == "(top)" else path)
    assert err.source == source


def reject(text, path, fragment):
    with pytest.raises(ConfigError) as info:
        config.loads(text, SOURCE)
    check_error(info.value, path, fragment)
    return info.value


def write(tmp_path, text, name=SOURCE):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- the example and defaults ------------------------------------------------------

def test_example_parses_into_expected_objects():
    cfg = config.loads(EXAMPLE, SOURCE)
    assert isinstance(cfg, Config)
    assert cfg.source == SOURCE
    assert list(cfg.datapaths) == ["site-a"]
    assert cfg.datapaths["site-a"] == Datapath(
        name="site-a",
        dp_id=1,
        ports=Ports(lan=("hosta-p",), wan="routera-p", tunnel="tun-a"),
        local_ip=IPv4Interface("10.1.0.2/24"),
        reverse_path=ReversePath(match="five_tuple", idle_timeout=60, fin_idle_timeout=5,
                                 max_flows=100000),
        capture=(
            CaptureRule(name="to-site-b", ipv4_dst=IPv4Network("10.2.0.0/16"), id=1),
            CaptureRule(name="to-site-b-v6", ipv6_dst=IPv6Network("fd00:2::/48"), ip_proto=6,
                        id=2),
        ),
    )


def test_example_field_details():
    dp = config.loads(EXAMPLE, SOURCE).datapaths["site-a"]
    assert dp.dp_id == 0x1 and isinstance(dp.dp_id, int)
    assert dp.local_ip.ip.exploded == "10.1.0.2"
    assert dp.local_ip.network == IPv4Network("10.1.0.0/24")
    v4, v6 = dp.capture
    assert isinstance(v4.ipv4_dst, IPv4Network) and v4.ipv4_dst.prefixlen == 16
    assert isinstance(v6.ipv6_dst, IPv6Network) and v6.ipv6_dst.prefixlen == 48
    assert (v4.in_port, v4.vlan, v4.ip_proto) == ((), None, None)
    assert (v4.src_port, v4.dst_port) == (None, None)
    assert v4.families == (4,)
    assert v6.families == (6,)
    assert dp.ports.roles() == [("lan", "hosta-p", "ports.lan[0]"),
                                ("wan", "routera-p", "ports.wan"),
                                ("tunnel", "tun-a", "ports.tunnel")]


def test_example_top_level_defaults():
    cfg = config.loads(EXAMPLE, SOURCE)
    assert cfg.api == Listen("127.0.0.1", 8080)
    assert cfg.openflow == Listen("127.0.0.1", 6653)
    assert cfg.api_token is None
    assert cfg.ovsdb == "unix:/var/run/openvswitch/db.sock"


def test_minimal_datapath_defaults():
    dp = config.loads(MINIMAL, SOURCE).datapaths["site-a"]
    assert dp.ports == Ports(lan=("hosta-p",), wan="routera-p", tunnel=None)
    assert dp.local_ip is None
    assert dp.capture == ()
    assert dp.reverse_path == ReversePath(match="five_tuple", idle_timeout=60,
                                          fin_idle_timeout=5, max_flows=100000)


@pytest.mark.parametrize("section, expected", [
    ({"match": "host_pair"},
     ReversePath(match="host_pair", idle_timeout=60, fin_idle_timeout=5, max_flows=100000)),
    ({"idle_timeout": 300},
     ReversePath(match="five_tuple", idle_timeout=300, fin_idle_timeout=5, max_flows=100000)),
    ({"fin_idle_timeout": 0, "max_flows": 10_000_000},
     ReversePath(match="five_tuple", idle_timeout=60, fin_idle_timeout=0, max_flows=10_000_000)),
    ({"idle_timeout": 65535, "fin_idle_timeout": 65535, "max_flows": 1},
     ReversePath(match="five_tuple", idle_timeout=65535, fin_idle_timeout=65535, max_flows=1)),
    ({}, ReversePath()),
], ids=["match-only", "idle-only", "fin-and-max", "upper-bounds", "empty-section"])
def test_reverse_path_partial_sections_keep_defaults(section, expected):
    text = edited({"datapaths.site-a.reverse_path": section})
    assert config.loads(text, SOURCE).datapaths["site-a"].reverse_path == expected


def test_top_level_sections_parse():
    text = MINIMAL + """\
api:
  host: 0.0.0.0
  port: 8081
  token: s3cret-t0ken
openflow:
  host: "::1"
  port: 6633
ovsdb: tcp:127.0.0.1:6640
"""
    cfg = config.loads(text, SOURCE)
    assert cfg.api == Listen("0.0.0.0", 8081)
    assert cfg.api_token == "s3cret-t0ken"
    assert cfg.openflow == Listen("::1", 6633)
    assert cfg.ovsdb == "tcp:127.0.0.1:6640"


@pytest.mark.parametrize("extra, api, openflow", [
    ("api: {port: 9000}\n", Listen("127.0.0.1", 9000), Listen("127.0.0.1", 6653)),
    ("api: {host: 10.0.0.1}\n", Listen("10.0.0.1", 8080), Listen("127.0.0.1", 6653)),
    ("api: {}\nopenflow: {}\n", Listen("127.0.0.1", 8080), Listen("127.0.0.1", 6653)),
    ("openflow: {port: 6633}\n", Listen("127.0.0.1", 8080), Listen("127.0.0.1", 6633)),
], ids=["api-port", "api-host", "empty-sections", "openflow-port"])
def test_partial_listen_sections_keep_defaults(extra, api, openflow):
    cfg = config.loads(MINIMAL + extra, SOURCE)
    assert (cfg.api, cfg.openflow, cfg.api_token) == (api, openflow, None)


@pytest.mark.parametrize("ovsdb", ["unix:/run/openvswitch/db.sock", "tcp:192.0.2.1:6640"])
def test_ovsdb_address_forms(ovsdb):
    assert config.loads(MINIMAL + "ovsdb: %s\n" % ovsdb, SOURCE).ovsdb == ovsdb


def test_port_refs_numbers_names_and_single_lan():
    text = MINIMAL.replace("lan: [hosta-p]", "lan: [1, \"2\", eth3]") \
                  .replace("wan: routera-p", "wan: 0x10\n      tunnel: \"4\"")
    assert config.loads(text, SOURCE).datapaths["site-a"].ports == \
        Ports(lan=(1, 2, "eth3"), wan=16, tunnel=4)
    single = MINIMAL.replace("lan: [hosta-p]", "lan: hosta-p")
    assert config.loads(single, SOURCE).datapaths["site-a"].ports.lan == ("hosta-p",)


def test_two_datapaths_and_lookup_by_dp_id():
    text = EXAMPLE + """\
  site-b:
    dp_id: 0x00000000000000b2
    ports: {lan: [hostb-p], wan: routerb-p}
"""
    cfg = config.loads(text, SOURCE)
    assert list(cfg.datapaths) == ["site-a", "site-b"]
    assert cfg.by_dp_id(1).name == "site-a"
    assert cfg.by_dp_id(0xb2).name == "site-b"
    assert cfg.by_dp_id(3) is None


@pytest.mark.parametrize("ip_proto, number", [
    ("tcp", 6), ("udp", 17), ("icmp", 1), ("icmpv6", 58), ("TCP", 6), ("Udp", 17),
    (6, 6), (47, 47), (0, 0), (255, 255),
])
def test_ip_proto_names_and_numbers(ip_proto, number):
    text = edited({"datapaths.site-a.capture.1": {"name": "r", "ip_proto": ip_proto}})
    assert config.loads(text, SOURCE).datapaths["site-a"].capture[1].ip_proto == number


@pytest.mark.parametrize("rule, families", [
    ({"ipv4_dst": "10.2.0.0/16"}, (4,)),
    ({"ipv4_src": "10.1.0.0/24", "ip_proto": "udp"}, (4,)),
    ({"ipv6_src": "fd00:1::/48"}, (6,)),
    ({"ip_proto": "icmp"}, (4,)),
    ({"ip_proto": "icmpv6"}, (6,)),
    ({"ip_proto": 58}, (6,)),
    ({"ip_proto": "tcp", "dst_port": 443}, (4, 6)),
    ({"vlan": 100}, (4, 6)),
    ({}, (4, 6)),
], ids=["v4-dst", "v4-src-udp", "v6-src", "icmp", "icmpv6", "proto-58", "tcp-only",
        "vlan-only", "name-only"])
def test_rule_families(rule, families):
    text = edited({"datapaths.site-a.capture.1": dict(name="r", **rule)})
    assert config.loads(text, SOURCE).datapaths["site-a"].capture[1].families == families


def test_capture_rule_with_every_field():
    rule = {"name": "web", "in_port": ["lan", "wan", "local", "hosta-p"], "vlan": 100,
            "ipv4_src": "10.1.0.0/24", "ipv4_dst": "10.2.0.0/16", "ip_proto": "tcp",
            "src_port": 1024, "dst_port": 443}
    text = edited({"datapaths.site-a.capture.1": rule})
    got = config.loads(text, SOURCE).datapaths["site-a"].capture[1]
    assert got == CaptureRule(name="web", in_port=("lan", "wan", "local", "hosta-p"), vlan=100,
                              ipv4_src=IPv4Network("10.1.0.0/24"),
                              ipv4_dst=IPv4Network("10.2.0.0/16"),
                              ip_proto=6, src_port=1024, dst_port=443, id=2)


@pytest.mark.parametrize("in_port, expected", [
    ("lan", ("lan",)), ("routera-p", ("routera-p",)), (["hosta-p"], ("hosta-p",)),
])
def test_in_port_scalar_or_list(in_port, expected):
    text = edited({"datapaths.site-a.capture.0.in_port": in_port})
    assert config.loads(text, SOURCE).datapaths["site-a"].capture[0].in_port == expected


def test_vlan_and_port_bounds_accepted():
    rules = [{"name": "v0", "vlan": 0}, {"name": "v4094", "vlan": 4094},
             {"name": "p", "ip_proto": "udp", "src_port": 1, "dst_port": 65535}]
    text = edited({"datapaths.site-a.capture": rules})
    got = config.loads(text, SOURCE).datapaths["site-a"].capture
    assert [(r.vlan, r.src_port, r.dst_port) for r in got] == \
        [(0, None, None), (4094, None, None), (None, 1, 65535)]


def test_objects_are_frozen():
    cfg = config.loads(EXAMPLE, SOURCE)
    dp = cfg.datapaths["site-a"]
    for obj, attr, value in [(cfg, "ovsdb", "x"), (dp, "dp_id", 2), (dp.ports, "wan", "x"),
                             (dp.reverse_path, "idle_timeout", 1), (dp.capture[0], "vlan", 1),
                             (cfg.api, "port", 1)]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, attr, value)


def test_capture_rule_to_dict_round_trips():
    dp = config.loads(edited({"datapaths.site-a.capture.2": {
        "name": "all", "in_port": ["lan"], "vlan": 7, "ipv6_src": "fd00:1::/48",
        "ip_proto": "udp", "src_port": 53}}), SOURCE).datapaths["site-a"]
    for i, rule in enumerate(dp.capture):
        again = config.capture_rule(rule.to_dict(), "capture[%d]" % i, dp.ports)
        assert again == dataclasses.replace(rule, id=0)  # the id is not part of the rule
    assert dp.capture[2].to_dict() == {"name": "all", "in_port": ["lan"], "vlan": 7,
                                       "ip_proto": 17, "src_port": 53,
                                       "ipv6_src": "fd00:1::/48"}


def test_capture_rule_as_mirror_filter_has_no_name():
    ports = Ports(lan=("hosta-p",), wan="routera-p", tunnel="tun-a")
    rule = config.capture_rule({"ip_proto": "icmp"}, "filter", ports, name_required=False)
    assert (rule.name, rule.ip_proto) == ("filter", 1)
    with pytest.raises(ConfigError) as info:
        config.capture_rule({"name": "x"}, "sessions.s1.filter", ports, name_required=False)
    assert str(info.value).startswith("sessions.s1.filter.name: unknown key")


def test_config_error_shape():
    err = ConfigError("a.b", "bad", "f.yaml")
    assert isinstance(err, ValueError)
    assert str(err) == "f.yaml: a.b: bad"
    assert str(ConfigError(None, "bad")) == "bad"
    assert str(ConfigError(None, "bad", "f.yaml")) == "f.yaml: bad"


# --- rejections: structure edits on the example -------------------------------------------

CLUSTER = {"name": "a", "store": "tcp:10.0.0.1:6641,tcp:10.0.0.2:6641,tcp:10.0.0.3:6641",
           "api_url": "http://10.0.0.1:8080"}


def test_a_cluster_section_names_this_instance_its_store_and_its_peers():
    cfg = config.parse(dict(yaml.safe_load(MINIMAL), cluster=dict(
        CLUSTER, controllers=["tcp:10.0.0.2:6653"])))
    assert cfg.cluster == config.Cluster("a", CLUSTER["store"], "http://10.0.0.1:8080",
                                         ("tcp:10.0.0.2:6653",))
    assert config.loads(MINIMAL).cluster is None


REJECT_EDITS = [
    # unknown keys, at every level
    pytest.param({"bogus": 1}, "bogus",
                 "unknown key (expected one of: datapaths, api, openflow, ovsdb, state_file, "
                 "cluster)",
                 id="unknown-top"),
    pytest.param({"datapaths.site-a.dpid": 1}, DP + ".dpid",
                 "unknown key (expected one of: dp_id, ports, local_ip, reverse_path, capture, "
                 "mirrors)",
                 id="unknown-datapath"),
    pytest.param({"datapaths.site-a.ports.mirror": "eth9"}, DP + ".ports.mirror",
                 "unknown key (expected one of: lan, wan, tunnel)", id="unknown-ports"),
    pytest.param({"datapaths.site-a.reverse_path.timeout": 5}, DP + ".reverse_path.timeout",
                 "unknown key (expected one of: match, idle_timeout, fin_idle_timeout, "
                 "max_flows, ct_zone)", id="unknown-reverse-path"),
    pytest.param({"datapaths.site-a.capture.1.dst_ip": "10.2.0.0/16"},
                 DP + ".capture[1].dst_ip",
                 "unknown key (expected one of: name, in_port, vlan, ipv4_src, ipv4_dst, "
                 "ipv6_src, ipv6_dst, ip_proto, src_port, dst_port)", id="unknown-capture"),
    pytest.param({"api.bind": "0.0.0.0"}, "api.bind",
                 "unknown key (expected one of: host, port, token)", id="unknown-api"),
    pytest.param({"openflow.token": "s3cret-t0ken"}, "openflow.token",
                 "unknown key (expected one of: host, port)", id="token-under-openflow"),
    # missing required keys
    pytest.param({"datapaths": DELETE, "api": {}}, "datapaths", "is required",
                 id="missing-datapaths"),
    pytest.param({"datapaths.site-a.dp_id": DELETE}, DP + ".dp_id", "is required",
                 id="missing-dp_id"),
    pytest.param({"datapaths.site-a.ports": DELETE}, DP + ".ports", "is required",
                 id="missing-ports"),
    pytest.param({"datapaths.site-a.ports.lan": DELETE}, DP + ".ports.lan", "is required",
                 id="missing-lan"),
    pytest.param({"datapaths.site-a.ports.wan": DELETE}, DP + ".ports.wan", "is required",
                 id="missing-wan"),
    pytest.param({"datapaths.site-a.capture.0.name": DELETE}, DP + ".capture[0].name",
                 "is required", id="missing-rule-name"),
    # wrong types
    pytest.param({"datapaths.site-a.dp_id": "one"}, DP + ".dp_id",
                 "expected an integer, got 'one'", id="dp_id-word"),
    pytest.param({"datapaths.site-a.dp_id": 1.0}, DP + ".dp_id",
                 "expected an integer, got 1.0", id="dp_id-float"),
    pytest.param({"datapaths.site-a.dp_id": "00:00:00:00:00:00:00:01"}, DP + ".dp_id",
                 "expected an integer, got '00:00:00:00:00:00:00:01'", id="dp_id-colons"),
    pytest.param({"datapaths.site-a.reverse_path.idle_timeout": "sixty"},
                 DP + ".reverse_path.idle_timeout", "expected an integer, got 'sixty'",
                 id="idle_timeout-string"),
    pytest.param({"datapaths.site-a.reverse_path.max_flows": "1e5"},
                 DP + ".reverse_path.max_flows", "expected an integer, got '1e5'",
                 id="max_flows-exponent"),
    pytest.param({"datapaths.site-a.ports.wan": 1.5}, DP + ".ports.wan",
                 "expected a port number or interface name, got 1.5", id="wan-float"),
    pytest.param({"datapaths.site-a.ports.tunnel": True}, DP + ".ports.tunnel",
                 "expected a port number or interface name, got True", id="tunnel-bool"),
    pytest.param({"datapaths.site-a.ports.lan": ["hosta-p", False]}, DP + ".ports.lan[1]",
                 "expected a port number or interface name, got False", id="lan-item-bool"),
    pytest.param({"datapaths.site-a.ports.wan": "  "}, DP + ".ports.wan",
                 "expected a port number or interface name, got '  '", id="wan-blank"),
    pytest.param({"datapaths.site-a.ports.wan": None}, DP + ".ports.wan",
                 "expected a port number or interface name, got nothing", id="wan-empty"),
    pytest.param({"datapaths.site-a.ports": "hosta-p"}, DP + ".ports",
                 "expected a mapping, got 'hosta-p'", id="ports-string"),
    pytest.param({"datapaths.site-a": ["dp_id", 1]}, DP, "expected a mapping, got a list",
                 id="datapath-list"),
    pytest.param({"datapaths.site-a": None}, DP, "expected a mapping, got nothing",
                 id="datapath-empty"),
    pytest.param({"datapaths.site-a.reverse_path": None}, DP + ".reverse_path",
                 "expected a mapping, got nothing", id="reverse_path-empty"),
    pytest.param({"datapaths.site-a.reverse_path.match": "full"}, DP + ".reverse_path.match",
                 "expected one of five_tuple, host_pair, conntrack, got 'full'",
                 id="match-unknown"),
    pytest.param({"datapaths.site-a.capture": {"name": "x"}}, DP + ".capture",
                 "expected a list of rules, got a mapping", id="capture-mapping"),
    pytest.param({"datapaths.site-a.capture.0": "to-site-b"}, DP + ".capture[0]",
                 "expected a mapping, got 'to-site-b'", id="rule-string"),
    pytest.param({"datapaths.site-a.capture.1.name": "to site b"}, DP + ".capture[1].name",
                 "'to site b' is not a valid name", id="rule-name-space"),
    pytest.param({"datapaths.site-a.capture.1.name": "x" * 65}, DP + ".capture[1].name",
                 "is not a valid name (letters, digits, '_', '.', '-'; at most 64)",
                 id="rule-name-too-long"),
    pytest.param({"datapaths.site-a.capture.1.ip_proto": "gre"}, DP + ".capture[1].ip_proto",
                 "expected tcp, udp, icmp, icmpv6 or a number 0..255, got 'gre'",
                 id="ip_proto-name"),
    pytest.param({"datapaths.site-a.capture.1.ip_proto": True}, DP + ".capture[1].ip_proto",
                 "expected tcp, udp, icmp, icmpv6 or a number 0..255, got True",
                 id="ip_proto-bool"),
    pytest.param({"datapaths.site-a.capture.0.ipv4_dst": 10}, DP + ".capture[0].ipv4_dst",
                 "expected an IPv4 prefix like 10.2.0.0/16, got 10", id="ipv4_dst-int"),
    pytest.param({"datapaths.site-a.capture.1.ipv6_dst": ["fd00:2::/48"]},
                 DP + ".capture[1].ipv6_dst",
                 "expected an IPv6 prefix like fd00:2::/48, got a list", id="ipv6_dst-list"),
    pytest.param({"datapaths.site-a.capture.0.vlan": "ten"}, DP + ".capture[0].vlan",
                 "expected an integer, got 'ten'", id="vlan-word"),
    pytest.param({"datapaths.site-a.local_ip": 167837698}, DP + ".local_ip",
                 "expected an address with prefix length like 10.1.0.2/24, got 167837698",
                 id="local_ip-int"),
    pytest.param({"api": "127.0.0.1:8080"}, "api", "expected a mapping, got '127.0.0.1:8080'",
                 id="api-string"),
    pytest.param({"api.host": "localhost"}, "api.host", "expected an IP address, got 'localhost'",
                 id="api-host-name"),
    pytest.param({"openflow.host": "0.0.0.0:6653"}, "openflow.host",
                 "expected an IP address, got '0.0.0.0:6653'", id="openflow-host-with-port"),
    # out of range
    pytest.param({"datapaths.site-a.dp_id": 0}, DP + ".dp_id",
                 "0x0 is out of range 0x1..0xffffffffffffffff", id="dp_id-0"),
    pytest.param({"datapaths.site-a.dp_id": 2**64}, DP + ".dp_id",
                 "0x10000000000000000 is out of range 0x1..0xffffffffffffffff",
                 id="dp_id-2^64"),
    pytest.param({"datapaths.site-a.dp_id": -1}, DP + ".dp_id",
                 "-0x1 is out of range 0x1..0xffffffffffffffff", id="dp_id-negative"),
    pytest.param({"datapaths.site-a.reverse_path.idle_timeout": 0},
                 DP + ".reverse_path.idle_timeout", "0 is out of range 1..65535", id="idle-0"),
    pytest.param({"datapaths.site-a.reverse_path.idle_timeout": 70000},
                 DP + ".reverse_path.idle_timeout", "70000 is out of range 1..65535",
                 id="idle-70000"),
    pytest.param({"datapaths.site-a.reverse_path.fin_idle_timeout": -1},
                 DP + ".reverse_path.fin_idle_timeout", "-1 is out of range 0..65535",
                 id="fin-negative"),
    pytest.param({"datapaths.site-a.reverse_path.fin_idle_timeout": 65536},
                 DP + ".reverse_path.fin_idle_timeout", "65536 is out of range 0..65535",
                 id="fin-65536"),
    pytest.param({"datapaths.site-a.reverse_path.max_flows": 0},
                 DP + ".reverse_path.max_flows", "0 is out of range 1..10000000",
                 id="max_flows-0"),
    pytest.param({"datapaths.site-a.reverse_path.max_flows": 10_000_001},
                 DP + ".reverse_path.max_flows", "10000001 is out of range 1..10000000",
                 id="max_flows-too-big"),
    pytest.param({"datapaths.site-a.capture.0.vlan": 4096}, DP + ".capture[0].vlan",
                 "4096 is out of range 0..4094", id="vlan-4096"),
    pytest.param({"datapaths.site-a.capture.0.vlan": -1}, DP + ".capture[0].vlan",
                 "-1 is out of range 0..4094", id="vlan-negative"),
    pytest.param({"datapaths.site-a.capture.1.dst_port": 0}, DP + ".capture[1].dst_port",
                 "0 is out of range 1..65535", id="dst_port-0"),
    pytest.param({"datapaths.site-a.capture.1.src_port": 65536}, DP + ".capture[1].src_port",
                 "65536 is out of range 1..65535", id="src_port-65536"),
    pytest.param({"datapaths.site-a.capture.1.dst_port": "http"}, DP + ".capture[1].dst_port",
                 "expected an integer, got 'http'", id="dst_port-service-name"),
    pytest.param({"datapaths.site-a.capture.1.ip_proto": 256}, DP + ".capture[1].ip_proto",
                 "256 is out of range 0..255", id="ip_proto-256"),
    pytest.param({"datapaths.site-a.ports.wan": 0}, DP + ".ports.wan",
                 "0 is out of range 1..4294967040", id="wan-port-0"),
    pytest.param({"datapaths.site-a.ports.tunnel": 0xFFFFFFFE}, DP + ".ports.tunnel",
                 "4294967294 is out of range 1..4294967040", id="tunnel-reserved-LOCAL"),
    pytest.param({"datapaths.site-a.ports.lan": ["0"]}, DP + ".ports.lan[0]",
                 "0 is out of range 1..4294967040", id="lan-port-string-0"),
    pytest.param({"api.port": 0}, "api.port", "0 is out of range 1..65535", id="api-port-0"),
    pytest.param({"openflow.port": 70000}, "openflow.port", "70000 is out of range 1..65535",
                 id="openflow-port-70000"),
    # bad prefixes
    pytest.param({"datapaths.site-a.capture.0.ipv4_dst": "10.2.0.1/16"},
                 DP + ".capture[0].ipv4_dst",
                 "'10.2.0.1/16' is not an IPv4 prefix (10.2.0.1/16 has host bits set)",
                 id="v4-host-bits"),
    pytest.param({"datapaths.site-a.capture.0.ipv4_dst": "10.2.0.0/33"},
                 DP + ".capture[0].ipv4_dst", "'10.2.0.0/33' is not an IPv4 prefix",
                 id="v4-slash-33"),
    pytest.param({"datapaths.site-a.capture.0.ipv4_src": "10.2.0.256/32"},
                 DP + ".capture[0].ipv4_src", "'10.2.0.256/32' is not an IPv4 prefix",
                 id="v4-bad-octet"),
    pytest.param({"datapaths.site-a.capture.0.ipv4_dst": "fd00:2::/48"},
                 DP + ".capture[0].ipv4_dst", "'fd00:2::/48' is not an IPv4 prefix",
                 id="v6-under-ipv4_dst"),
    pytest.param({"datapaths.site-a.capture.1.ipv6_dst": "10.2.0.0/16"},
                 DP + ".capture[1].ipv6_dst", "'10.2.0.0/16' is not an IPv6 prefix",
                 id="v4-under-ipv6_dst"),
    pytest.param({"datapaths.site-a.capture.1.ipv6_dst": "fd00:2::1/48"},
                 DP + ".capture[1].ipv6_dst",
                 "'fd00:2::1/48' is not an IPv6 prefix (fd00:2::1/48 has host bits set)",
                 id="v6-host-bits"),
    pytest.param({"datapaths.site-a.capture.1.ipv6_src": "fd00:2::/129"},
                 DP + ".capture[1].ipv6_src", "'fd00:2::/129' is not an IPv6 prefix",
                 id="v6-slash-129"),
    # rule consistency
    pytest.param({"datapaths.site-a.capture.0.ipv6_src": "fd00:1::/48"}, DP + ".capture[0]",
                 "mixes IPv4 and IPv6 prefixes; write two rules", id="mixed-v4-v6"),
    pytest.param({"datapaths.site-a.capture.1.ip_proto": "icmp"}, DP + ".capture[1].ip_proto",
                 "icmp is IPv4; use icmpv6 with IPv6", id="icmp-with-v6"),
    pytest.param({"datapaths.site-a.capture.0.ip_proto": "icmpv6"},
                 DP + ".capture[0].ip_proto", "icmpv6 is IPv6; use icmp with IPv4",
                 id="icmpv6-with-v4"),
    pytest.param({"datapaths.site-a.capture.0.ip_proto": 58}, DP + ".capture[0].ip_proto",
                 "icmpv6 is IPv6; use icmp with IPv4", id="proto-58-with-v4"),
    pytest.param({"datapaths.site-a.capture.0.dst_port": 443}, DP + ".capture[0].dst_port",
                 "L4 ports need ip_proto: tcp or udp", id="port-without-proto"),
    pytest.param({"datapaths.site-a.capture.0.ip_proto": "icmp",
                  "datapaths.site-a.capture.0.src_port": 1},
                 DP + ".capture[0].src_port", "L4 ports need ip_proto: tcp or udp",
                 id="port-with-icmp"),
    pytest.param({"datapaths.site-a.capture.0.ip_proto": 47,
                  "datapaths.site-a.capture.0.dst_port": 1},
                 DP + ".capture[0].dst_port", "L4 ports need ip_proto: tcp or udp",
                 id="port-with-gre"),
    # port roles
    pytest.param({"datapaths.site-a.ports.wan": "hosta-p"}, DP + ".ports.wan",
                 "'hosta-p' is already used as ports.lan[0]", id="lan-and-wan"),
    pytest.param({"datapaths.site-a.ports.tunnel": "routera-p"}, DP + ".ports.tunnel",
                 "'routera-p' is already used as ports.wan", id="wan-and-tunnel"),
    pytest.param({"datapaths.site-a.ports.tunnel": "hosta-p"}, DP + ".ports.tunnel",
                 "'hosta-p' is already used as ports.lan[0]", id="lan-and-tunnel"),
    pytest.param({"datapaths.site-a.ports.lan": ["hosta-p", "hostc-p", "hosta-p"]},
                 DP + ".ports.lan[2]", "'hosta-p' is already used as ports.lan[0]",
                 id="lan-twice"),
    pytest.param({"datapaths.site-a.ports.lan": [3], "datapaths.site-a.ports.wan": "3"},
                 DP + ".ports.wan", "3 is already used as ports.lan[0]",
                 id="number-and-digit-string"),
    pytest.param({"datapaths.site-a.ports.lan": []}, DP + ".ports.lan", "needs at least one port",
                 id="lan-empty"),
    # capture rules vs ports
    pytest.param({"datapaths.site-a.capture.1.name": "to-site-b"}, DP + ".capture[1].name",
                 "'to-site-b' is already used by capture[0]", id="duplicate-rule-name"),
    pytest.param({"datapaths.site-a.ports.tunnel": DELETE}, DP + ".capture",
                 "capture rules need ports.tunnel", id="capture-without-tunnel"),
    pytest.param({"datapaths.site-a.capture.0.in_port": "tunnel"}, DP + ".capture[0].in_port",
                 "traffic from the tunnel cannot be captured into it", id="in_port-tunnel-role"),
    pytest.param({"datapaths.site-a.capture.0.in_port": ["lan", "tun-a"]},
                 DP + ".capture[0].in_port[1]",
                 "traffic from the tunnel cannot be captured into it", id="in_port-tunnel-name"),
    pytest.param({"datapaths.site-a.capture.0.in_port": ["lan", "eth9"]},
                 DP + ".capture[0].in_port[1]", "'eth9' is not one of this datapath's ports",
                 id="in_port-unknown-name"),
    pytest.param({"datapaths.site-a.capture.0.in_port": 7}, DP + ".capture[0].in_port",
                 "7 is not one of this datapath's ports", id="in_port-unknown-number"),
    pytest.param({"datapaths.site-a.capture.0.in_port": []}, DP + ".capture[0].in_port",
                 "must name at least one port or role", id="in_port-empty"),
    # local_ip
    pytest.param({"datapaths.site-a.local_ip": "10.1.0.2"}, DP + ".local_ip",
                 "expected an address with prefix length like 10.1.0.2/24, got '10.1.0.2'",
                 id="local_ip-no-prefix"),
    pytest.param({"datapaths.site-a.local_ip": "fd00:1::2/64"}, DP + ".local_ip",
                 "only an IPv4 local_ip is supported", id="local_ip-v6"),
    pytest.param({"datapaths.site-a.local_ip": "10.1.0.2/31"}, DP + ".local_ip",
                 "a /31 leaves no subnet to tell on-link from off-link", id="local_ip-31"),
    pytest.param({"datapaths.site-a.local_ip": "10.1.0.2/32"}, DP + ".local_ip",
                 "a /32 leaves no subnet to tell on-link from off-link", id="local_ip-32"),
    pytest.param({"datapaths.site-a.local_ip": "10.1.0.300/24"}, DP + ".local_ip",
                 "'10.1.0.300/24' is not an address with prefix length", id="local_ip-bad-octet"),
    pytest.param({"datapaths.site-a.local_ip": "10.1.0.2/33"}, DP + ".local_ip",
                 "'10.1.0.2/33' is not an address with prefix length", id="local_ip-slash-33"),
    # top level
    pytest.param({"datapaths": None}, "datapaths",
                 "expected a mapping of datapath names, got nothing", id="datapaths-null"),
    pytest.param({"datapaths": ["site-a"]}, "datapaths",
                 "expected a mapping of datapath names, got a list", id="datapaths-list"),
    pytest.param({"datapaths.site a": {"dp_id": 2}}, "datapaths.'site a'",
                 "'site a' is not a valid name", id="datapath-name-space"),
    pytest.param({"api.token": "short"}, "api.token",
                 "expected a string of at least 8 characters", id="token-short"),
    pytest.param({"api.token": 12345678}, "api.token",
                 "expected a string of at least 8 characters", id="token-number"),
    pytest.param({"ovsdb": "/var/run/openvswitch/db.sock"}, "ovsdb",
                 "expected unix:PATH or tcp:IP:PORT, got "
                 "'/var/run/openvswitch/db.sock'", id="ovsdb-bare-path"),
    pytest.param({"ovsdb": "ptcp:6640"}, "ovsdb",
                 "expected unix:PATH or tcp:IP:PORT, got 'ptcp:6640'",
                 id="ovsdb-passive"),
    pytest.param({"ovsdb": "tcp: 127.0.0.1:6640"}, "ovsdb",
                 "expected unix:PATH or tcp:IP:PORT, got 'tcp: 127.0.0.1:6640'",
                 id="ovsdb-space"),
    pytest.param({"ovsdb": 6640}, "ovsdb",
                 "expected unix:PATH or tcp:IP:PORT, got 6640", id="ovsdb-number"),
    pytest.param({"ovsdb": "ssl:127.0.0.1:6640"}, "ovsdb",
                 "'ssl:127.0.0.1:6640': ssl: is not supported for the switch's own OVSDB; use "
                 "unix:PATH (or tcp:IP:PORT on a trusted link)", id="ovsdb-ssl"),
    pytest.param({"cluster": {"name": "a", "api_url": "http://10.0.0.1:8080"}},
                 "cluster.store", "is required", id="cluster-no-store"),
    pytest.param({"cluster": dict(CLUSTER, store="tcp:10.0.0.1:6641,unix:/x")},
                 "cluster.store", "member 2: expected tcp:IP:PORT or ssl:IP:PORT, got "
                 "'unix:/x'", id="cluster-store-unix"),
    pytest.param({"cluster": dict(CLUSTER, name="a b")}, "cluster.name",
                 "'a b' is not a valid name", id="cluster-name"),
    pytest.param({"cluster": dict(CLUSTER, api_url="10.0.0.1:8080")}, "cluster.api_url",
                 "expected http://HOST:PORT", id="cluster-api-url"),
    pytest.param({"cluster": dict(CLUSTER, controllers=["tcp:10.0.0.2"])},
                 "cluster.controllers[0]", "expected tcp:IP:PORT or ssl:IP:PORT, got "
                 "'tcp:10.0.0.2'", id="cluster-controller"),
]


@pytest.mark.parametrize("edits, path, fragment", REJECT_EDITS)
def test_rejected(edits, path, fragment):
    reject(edited(edits), path, fragment)


def test_token_value_is_not_echoed():
    err = reject(edited({"api.token": "hunter2"}), "api.token", "at least 8 characters")
    assert "hunter2" not in str(err)


def test_duplicate_dp_id_names_the_other_datapath():
    text = EXAMPLE + """\
  site-b:
    dp_id: 2
    ports: {lan: [hostb-p], wan: routerb-p}
  site-c:
    dp_id: 1
    ports: {lan: [hostc-p], wan: routerc-p}
"""
    reject(text, "datapaths.site-c.dp_id", "0x1 is already used by datapaths.site-a")


def test_lan_as_a_mapping_is_rejected():
    text = edited({"datapaths.site-a.ports.lan": {"hosta-p": 1}})
    with pytest.raises(ConfigError) as info:
        config.loads(text, SOURCE)
    err = info.value
    assert "\n" not in str(err)
    assert err.path.startswith(DP + ".ports.lan")
    assert err.reason == "expected a port number or interface name, got a mapping"


def test_empty_datapaths_mapping_is_rejected():
    with pytest.raises(ConfigError) as info:
        config.loads("datapaths: {}\n", SOURCE)
    assert str(info.value) == "sggw.yaml: datapaths: needs at least one datapath"


@pytest.mark.parametrize("text, fragment", [
    ("", "the file is empty"),
    ("# only a comment\n\n", "the file is empty"),
    ("- site-a\n- site-b\n", "expected a mapping, got a list"),
    ("datapaths\n", "expected a mapping, got 'datapaths'"),
], ids=["empty", "comment-only", "list", "scalar"])
def test_top_level_not_a_mapping(text, fragment):
    reject(text, "(top)", fragment)


# --- rejections at the YAML level ---------------------------------------------------------

@pytest.mark.parametrize("text, where, fragment", [
    (EXAMPLE + """\
  site-a:
    dp_id: 2
    ports: {lan: [x], wan: y}
""", "line 20 column 3", "invalid YAML: duplicate key 'site-a'"),
    (MINIMAL.replace("    dp_id: 1\n", "    dp_id: 1\n    dp_id: 2\n"), "line 4 column 5",
     "invalid YAML: duplicate key 'dp_id'"),
    (MINIMAL.replace("wan: routera-p", "wan: routera-p\n      lan: [hostb-p]"),
     "line 7 column 7", "invalid YAML: duplicate key 'lan'"),
    (EXAMPLE.replace("        ipv4_dst: 10.2.0.0/16\n",
                     "        ipv4_dst: 10.2.0.0/16\n        ipv4_dst: 10.3.0.0/16\n"),
     "line 17 column 9", "invalid YAML: duplicate key 'ipv4_dst'"),
    (MINIMAL + "    capture: [{name: a, name: b}]\n", "line 7 column 25",
     "invalid YAML: duplicate key 'name'"),
    (MINIMAL + "api: {}\napi: {port: 1}\n", "line 8 column 1", "invalid YAML: duplicate key 'api'"),
], ids=["datapath-name", "dp_id", "lan", "capture-field", "flow-mapping", "top-level"])
def test_duplicate_yaml_keys_are_rejected_not_merged(text, where, fragment):
    reject(text, where, fragment)


@pytest.mark.parametrize("text, where, fragment", [
    (MINIMAL.replace("wan: routera-p", "wan: routera-p: x"), "line 6 column 21",
     "invalid YAML: mapping values are not allowed in this context"),
    (MINIMAL.replace("    ports:", "   ports:"), "line 4 column 4",
     "invalid YAML: did not find expected key"),
    ("datapaths:\n  site-a: {dp_id: 1, ports: {lan: [a], wan: b}\n", "line 3 column 1",
     "invalid YAML: did not find expected ',' or '}'"),
    (MINIMAL + "\tapi: {}\n", "line 7 column 1",
     "invalid YAML: found a tab character that violates indentation"),
    (MINIMAL + "---\n" + MINIMAL, "line 7 column 1", "invalid YAML:"),
    (MINIMAL + "api: !!python/object:os.system {}\n", "line 7 column 6",
     "invalid YAML: could not determine a constructor"),
], ids=["colon-in-value", "bad-indent", "unclosed-flow", "tab", "two-documents",
        "python-tag"])
def test_invalid_yaml_gives_line_and_column(text, where, fragment):
    reject(text, where, fragment)


# --- load() on real files -----------------------------------------------------------------

def test_load_example_file(tmp_path):
    path = write(tmp_path, EXAMPLE)
    cfg = config.load(path)
    assert cfg.source == path
    assert cfg == config.loads(EXAMPLE, path)


@pytest.mark.parametrize("text, where, fragment", [
    (EXAMPLE + "apii: {}\n", "apii", "unknown key"),
    (EXAMPLE.replace("idle_timeout: 60 ", "idle_timeout: 0  "),
     DP + ".reverse_path.idle_timeout", "0 is out of range 1..65535"),
    (EXAMPLE.replace("ip_proto: tcp  ", "ip_proto: icmp "), DP + ".capture[1].ip_proto",
     "icmp is IPv4; use icmpv6 with IPv6"),
    (EXAMPLE.replace("  site-a:   ", "  site-a:\n  site-a:"), "line 3 column 3",
     "invalid YAML: duplicate key 'site-a'"),
    ("datapaths:\n  site-a:\n    dp_id: [1\n", "line 4 column 1", "invalid YAML:"),
    ("", "(top)", "the file is empty"),
], ids=["unknown-key", "idle-0", "icmp-v6", "duplicate-key", "syntax", "empty-file"])
def test_load_errors_name_the_file(tmp_path, text, where, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    check_error(info.value, where, fragment, source=path)


def test_load_missing_file(tmp_path):
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(info.value) == "%s: cannot read: No such file or directory" % path


def test_load_directory(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(str(tmp_path))
    assert str(info.value) == "%s: cannot read: Is a directory" % tmp_path


def test_load_utf8_with_bom(tmp_path):
    path = tmp_path / SOURCE
    path.write_bytes(EXAMPLE.encode("utf-8-sig"))
    assert config.load(str(path)).datapaths["site-a"].dp_id == 1


# --- python -m app.config FILE ------------------------------------------------------------

def test_main_ok(tmp_path, capsys):
    site_b = "  site-b:\n    dp_id: 2\n    ports: {lan: [hostb-p], wan: routerb-p}\n"
    path = write(tmp_path, EXAMPLE + site_b)
    assert config.main([path]) == 0
    out, err = capsys.readouterr()
    assert out == "%s: ok (2 datapaths)\n" % path
    assert err == ""


@pytest.mark.parametrize("text, line", [
    (EXAMPLE.replace("dp_id: 0x1", "dp_id: 0x0"),
     "{path}: datapaths.site-a.dp_id: 0x0 is out of range 0x1..0xffffffffffffffff"),
    (EXAMPLE.replace("wan: routera-p", "wan: hosta-p"),
     "{path}: datapaths.site-a.ports.wan: 'hosta-p' is already used as ports.lan[0]"),
    (MINIMAL + "ovsdb: x\n",
     "{path}: ovsdb: expected unix:PATH or tcp:IP:PORT, got 'x'"),
    (MINIMAL + "datapaths: {}\n", "{path}: line 7 column 1: invalid YAML: duplicate key "
                                  "'datapaths'"),
], ids=["dp_id-0", "port-in-two-roles", "ovsdb", "duplicate-key"])
def test_main_bad_file(tmp_path, capsys, text, line):
    path = write(tmp_path, text)
    assert config.main([path]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == line.format(path=path) + "\n"


def test_main_missing_file(tmp_path, capsys):
    path = str(tmp_path / "missing.yaml")
    assert config.main([path]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "%s: cannot read: No such file or directory\n" % path)


@pytest.mark.parametrize("argv", [[], ["a.yaml", "b.yaml"]], ids=["no-args", "two-args"])
def test_main_usage(capsys, argv):
    assert config.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "usage: python -m app.config sggw.yaml\n"


# --- regressions: bugs found in review, fixed in app/config/ -----------------------------

@pytest.mark.parametrize("edit, path", [
    (("dp_id: 0x1", 'dp_id: "0000000000000010"'), DP + ".dp_id"),
    (("dp_id: 0x1", "dp_id: 0000000000000019"), DP + ".dp_id"),
    (("wan: routera-p", "wan: 08"), DP + ".ports.wan"),
    (("idle_timeout: 60", "idle_timeout: 09"), DP + ".reverse_path.idle_timeout"),
], ids=["dp_id-quoted-ovs-style", "dp_id-unquoted-non-octal", "wan-08", "idle-09"])
def test_leading_zero_numbers_give_config_error(edit, path):
    text = EXAMPLE.replace(*edit)
    try:
        cfg = config.loads(text, SOURCE)
    except ConfigError as err:
        check_error(err, path, "")
    else:  # accepting it as decimal is also a fix
        assert cfg.datapaths["site-a"] is not None


def test_dp_id_in_ovs_format_is_not_silently_octal():
    text = EXAMPLE.replace("dp_id: 0x1", "dp_id: 0000000000000010")
    try:
        dp_id = config.loads(text, SOURCE).datapaths["site-a"].dp_id
    except ConfigError as err:
        check_error(err, DP + ".dp_id", "")
    else:
        assert dp_id == 0x10


def test_control_character_error_is_one_line():
    with pytest.raises(ConfigError) as info:
        config.loads(MINIMAL + "# \x1b[0m\n", SOURCE)
    text = str(info.value)
    assert "\n" not in text, text
    assert "<unicode string>" not in text, text


@pytest.mark.parametrize("data", [
    ("# caf\xe9\n" + EXAMPLE).encode("latin-1"),
    EXAMPLE.encode("utf-16"),
], ids=["latin-1", "utf-16"])
def test_non_utf8_file_gives_config_error(tmp_path, data):
    path = tmp_path / SOURCE
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        config.load(str(path))
    assert str(info.value).startswith("%s: " % path)
    assert "\n" not in str(info.value)


def test_unhashable_yaml_key_gives_config_error():
    reject(MINIMAL + "? [a, b]\n: 1\n", "line 7 column 3", "a list cannot be a key")


def test_yaml_merge_key():
    text = EXAMPLE.replace("    reverse_path:\n", "    reverse_path: &rp\n") + """\
  site-b:
    dp_id: 2
    ports: {lan: [hostb-p], wan: routerb-p}
    reverse_path:
      <<: *rp
      idle_timeout: 30
"""
    rp = config.loads(text, SOURCE).datapaths["site-b"].reverse_path
    assert rp == ReversePath(match="five_tuple", idle_timeout=30, fin_idle_timeout=5,
                             max_flows=100000)


def test_empty_datapaths_message_is_not_self_contradicting():
    with pytest.raises(ConfigError) as info:
        config.loads("datapaths: {}\n", SOURCE)
    assert info.value.path == "datapaths"
    assert "got a mapping" not in info.value.reason


@pytest.mark.parametrize("lan", [{"hosta-p": 1}, 0, 1.5], ids=["mapping", "zero", "float"])
def test_single_lan_error_path_has_no_index(lan):
    with pytest.raises(ConfigError) as info:
        config.loads(edited({"datapaths.site-a.ports.lan": lan}), SOURCE)
    assert info.value.path == DP + ".ports.lan"


@pytest.mark.parametrize("host", ["5", "yes", "2130706433"])
def test_api_host_must_be_an_address_string(host):
    reject(MINIMAL + "api: {host: %s}\n" % host, "api.host", "expected an IP address")


@pytest.mark.parametrize("text", [
    MINIMAL.replace("  site-a:", '  "site-a\\n":'),
    EXAMPLE.replace("name: to-site-b\n", 'name: "to-site-b\\n"\n'),
    MINIMAL.replace("  site-a:", '  "site-a\\n":').replace("dp_id: 1", "dp_id: 0"),
    MINIMAL + '"api\\nx": {}\n',
], ids=["datapath-name", "rule-name", "message-after-name", "unknown-key"])
def test_names_and_keys_with_newlines(text):
    with pytest.raises(ConfigError) as info:
        config.loads(text, SOURCE)
    assert "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("local_ip", ["10.1.0.0/24", "10.1.0.255/24"],
                         ids=["network", "broadcast"])
def test_local_ip_is_a_host_address(local_ip):
    with pytest.raises(ConfigError) as info:
        config.loads(edited({"datapaths.site-a.local_ip": local_ip}), SOURCE)
    check_error(info.value, DP + ".local_ip", "")


# --- mirror sessions ----------------------------------------------------------------------------

MIRRORS = DP + ".mirrors"


def with_mirrors(*sessions):
    return edited({"datapaths.site-a.mirrors": list(sessions)})


def mirror(name="m", sources=({"port": "lan"},), destinations=({"port": "mon1"},), **more):
    return dict(name=name, sources=list(sources), destinations=list(destinations), **more)


def test_mirror_sessions_parse_with_defaults_and_ids_in_file_order():
    text = with_mirrors(
        mirror(),
        mirror("web",
               sources=[{"port": "tun-a", "direction": "rx"}, {"port": "local"}, {"port": 7}],
               destinations=[{"port": "mon1", "vlan": 10, "eth_dst": "02:AA:00:00:00:01"},
                             {"port": "9"}],
               filter={"ip_proto": "tcp", "dst_port": 443}, snaplen=128,
               rate_limit={"kbps": 5000}))
    dp = config.loads(text, SOURCE).datapaths["site-a"]
    plain, web = dp.mirrors
    assert plain == config.Mirror(name="m", sources=(config.MirrorSource("lan", "both"),),
                                  destinations=(config.MirrorDestination("mon1"),), id=1)
    assert web.id == 2 and [(s.port, s.rx, s.tx) for s in web.sources] == [
        ("tun-a", True, False), ("local", True, True), (7, True, True)]
    assert web.destinations == (config.MirrorDestination("mon1", 10, "02:aa:00:00:00:01"),
                                config.MirrorDestination(9))
    assert (web.filter.ip_proto, web.filter.dst_port, web.filter.name) == (6, 443, "filter")
    assert (web.snaplen, web.rate_limit) == (128, ("kbps", 5000))
    assert web.to_dict()["rate_limit"] == {"kbps": 5000}


def test_sessions_may_share_sources_and_destinations():
    dp = config.loads(with_mirrors(mirror("a"), mirror("b")), SOURCE).datapaths["site-a"]
    assert [m.id for m in dp.mirrors] == [1, 2]


MIRROR_REJECTS = [
    pytest.param([mirror(destinations=[{"port": "lan"}])], "[0].destinations[0].port",
                 "a destination is one analyzer port, not the role 'lan'", id="dest-role-name"),
    pytest.param([mirror(destinations=[{"port": "tun-a"}])], "[0].destinations[0].port",
                 "'tun-a' is the tunnel port", id="dest-role-port"),
    pytest.param([mirror(destinations=[{"port": "hosta-p"}])], "[0].destinations[0].port",
                 "'hosta-p' is the lan port", id="dest-lan-port"),
    pytest.param([mirror(sources=[{"port": "mon1"}])], "[0].destinations[0].port",
                 "'mon1' is also a source of this session", id="dest-is-source"),
    pytest.param([mirror(destinations=[{"port": "mon1"}, {"port": "mon2"}, {"port": "mon1"}])],
                 "[0].destinations[2].port", "'mon1' is already a destination of this session",
                 id="dest-twice"),
    pytest.param([mirror(sources=[{"port": "lan"}, {"port": "lan"}])], "[0].sources[1].port",
                 "'lan' is already a source of this session", id="source-twice"),
    pytest.param([mirror(destinations=[{"port": "mon1", "eth_dst": "01:00:5e:00:00:01"}])],
                 "[0].destinations[0].eth_dst", "01:00:5e:00:00:01 is a group address",
                 id="eth-dst-multicast"),
    pytest.param([mirror(destinations=[{"port": "mon1", "eth_dst": "ff:ff:ff:ff:ff:ff"}])],
                 "[0].destinations[0].eth_dst", "is a group address", id="eth-dst-broadcast"),
    pytest.param([mirror(destinations=[{"port": "mon1", "eth_dst": "02:00:00:00:01"}])],
                 "[0].destinations[0].eth_dst", "expected a MAC like", id="eth-dst-short"),
    pytest.param([mirror(destinations=[{"port": "mon1", "vlan": 4095}])],
                 "[0].destinations[0].vlan", "4095 is out of range 0..4094", id="dest-vlan"),
    pytest.param([mirror(sources=[{"port": "lan", "direction": "in"}])],
                 "[0].sources[0].direction", "expected rx, tx or both, got 'in'",
                 id="bad-direction"),
    pytest.param([mirror(sources=[{"port": "lan", "direction": ["rx"]}])],
                 "[0].sources[0].direction", "expected rx, tx or both, got a list",
                 id="direction-list"),
    pytest.param([mirror(sources=[{"port": "lan", "dir": "rx"}])], "[0].sources[0].dir",
                 "unknown key (expected one of: port, direction)", id="source-unknown-key"),
    pytest.param([mirror(sources=[])], "[0].sources", "expected a non-empty list of sources",
                 id="no-sources"),
    pytest.param([dict(mirror(), destinations={"port": "mon1"})], "[0].destinations",
                 "expected a non-empty list of destinations, got a mapping",
                 id="destinations-mapping"),
    pytest.param([mirror(rate_limit={"pps": 10, "kbps": 10})], "[0].rate_limit",
                 "give exactly one of pps or kbps", id="rate-both-units"),
    pytest.param([mirror(rate_limit={})], "[0].rate_limit", "give exactly one of pps or kbps",
                 id="rate-no-unit"),
    pytest.param([mirror(rate_limit={"bps": 10})], "[0].rate_limit.bps",
                 "unknown key (expected one of: pps, kbps)", id="rate-unit"),
    pytest.param([mirror(rate_limit={"pps": 0})], "[0].rate_limit.pps",
                 "0 is out of range 1..1000000000", id="rate-zero"),
    pytest.param([mirror(snaplen=63)], "[0].snaplen", "63 is out of range 64..65535",
                 id="snaplen-small"),
    pytest.param([mirror(snaplen=65536)], "[0].snaplen", "65536 is out of range 64..65535",
                 id="snaplen-big"),
    pytest.param([mirror(snaplen=True)], "[0].snaplen", "expected an integer, got True",
                 id="snaplen-bool"),
    pytest.param([mirror(filter={"in_port": "lan", "ip_proto": "tcp"})], "[0].filter.in_port",
                 "unknown key", id="filter-in-port"),
    pytest.param([mirror(filter={"name": "web"})], "[0].filter.name", "unknown key",
                 id="filter-name"),
    pytest.param([mirror(filter={"dst_port": 443})], "[0].filter.dst_port",
                 "L4 ports need ip_proto: tcp or udp", id="filter-port-without-proto"),
    pytest.param([mirror(bogus=1)], "[0].bogus",
                 "unknown key (expected one of: name, sources, destinations, filter, snaplen, "
                 "rate_limit)", id="session-unknown-key"),
    pytest.param([mirror(), mirror()], "[1].name", "'m' is already used by mirrors[0]",
                 id="name-twice"),
    pytest.param([mirror("a"), mirror("b", sources=[{"port": "mon1"}],
                                      destinations=[{"port": "mon2"}])],
                 "[1].sources[0].port", "'mon1' is a destination of another session",
                 id="source-is-other-dest"),
    pytest.param([mirror("a", sources=[{"port": "mon3"}]), mirror("b", destinations=[
        {"port": "mon2"}, {"port": "mon3"}])], "[1].destinations[1].port",
        "'mon3' is a source of another session", id="dest-is-other-source"),
    pytest.param({"name": "m"}, "", "expected a list of sessions, got a mapping",
                 id="mirrors-mapping"),
]


@pytest.mark.parametrize("sessions, where, fragment", MIRROR_REJECTS)
def test_mirror_rejected(sessions, where, fragment):
    text = edited({"datapaths.site-a.mirrors": sessions})
    reject(text, MIRRORS + where, fragment)


def test_mirror_ports_follow_sessions_added_and_removed():
    ports = Ports(lan=("hosta-p",), wan="routera-p", tunnel="tun-a")
    first = config.mirror(mirror("a", sources=[{"port": "eth5"}]), "s[0]", ports)
    second = config.mirror(mirror("b"), "s[1]", ports)
    third = config.mirror(mirror("c", destinations=[{"port": "eth5"}]), "s[2]", ports)
    used = config.MirrorPorts()
    used.check(first, "s[0]")
    used.add(first)
    used.add(second)
    with pytest.raises(ConfigError) as info:
        used.check(third, "s[2]")
    assert str(info.value) == "s[2].destinations[0].port: 'eth5' is a source of another session"
    again = used.copy()
    again.remove(first)
    again.check(third, "s[2]")  # the copy forgot eth5; the original did not
    with pytest.raises(ConfigError):
        used.check(third, "s[2]")


# --- bounds on YAML: size, nesting, aliases and merge keys -----------------------------------

def merge_bomb(fan, levels):
    """About 500 bytes of ``<<`` merge keys that PyYAML alone expands to fan**levels keys."""
    lines = ["a: &a0 {k: 0, j: 1}"]
    for i in range(1, levels + 1):
        lines.append("b%d: &a%d {<<: [%s]}" % (i, i, ", ".join(["*a%d" % (i - 1)] * fan)))
    return "\n".join(lines + ["datapaths: *a%d" % levels]) + "\n"


def alias_bomb(fan, levels):
    """Billion laughs: lists of aliases of lists."""
    lines = ["x0: &x0 [lol]"]
    for i in range(1, levels + 1):
        lines.append("x%d: &x%d [%s]" % (i, i, ", ".join(["*x%d" % (i - 1)] * fan)))
    return "\n".join(lines + ["datapaths: {site-a: *x%d}" % levels]) + "\n"


def loads_quickly(text, seconds=5):
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        config.loads(text, SOURCE)
    assert time.monotonic() - start < seconds
    return info.value


@pytest.mark.parametrize("text, where", [
    (merge_bomb(9, 8), "line 6 column 14"),
    (alias_bomb(9, 9), "line 7 column 5"),
], ids=["merge-keys", "aliases"])
def test_a_yaml_bomb_is_refused_quickly_with_one_line(text, where):
    assert len(text) < 600
    err = loads_quickly(text)
    check_error(err, where, "aliases and merge keys expand this to more than 200000 values")


@pytest.mark.parametrize("text, where", [
    ("datapaths: " + "[" * 20000 + "]" * 20000 + "\n", "line 1 column 43"),
    ("datapaths: " + "{a: " * 20000 + "1" + "}" * 20000 + "\n", "line 1 column 133"),
    ("datapaths: {}\napi:\n" + "".join("  " * i + "-\n" for i in range(40)) + "  " * 40 + "x\n",
     "line 34 column 63"),
], ids=["flow-lists", "flow-mappings", "block-lists"])
def test_yaml_nested_too_deeply_is_refused_with_one_line(text, where):
    check_error(loads_quickly(text), where, "nested deeper than 32 levels")


def test_nesting_through_aliases_counts_too():
    chain = ["a0: &a0 [x]"] + ["a%d: &a%d [*a%d]" % (i, i, i - 1) for i in range(1, 40)]
    text = "\n".join(chain) + "\ndatapaths: *a39\n"
    check_error(loads_quickly(text), "line 30 column 6",
                "nested deeper than 32 levels once aliases are expanded")


def test_an_alias_inside_its_own_anchor_is_refused():
    check_error(loads_quickly("datapaths: &a {site-a: *a}\n"), "line 1 column 12",
                "an alias refers to a node that contains it")


def test_too_many_values_or_bytes_are_refused(tmp_path):
    check_error(loads_quickly("datapaths: [" + "1," * 200_001 + "]\n", seconds=15),
                "line 1 column 400007", "more than 200000 values")
    big = write(tmp_path, MINIMAL + "#" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError) as info:
        config.load(big)
    check_error(info.value, "(top)", "the file is larger than 1048576 bytes", source=big)


def test_anchors_aliases_and_merge_keys_within_bounds_still_work():
    text = MINIMAL.replace("wan: routera-p", "wan: routera-p\n      tunnel: tun-a") + """\
    capture:
      - &web {name: web, ip_proto: tcp, dst_port: 443, ipv4_dst: 10.2.0.0/16}
      - {<<: *web, name: web-v6, ipv4_dst: null}
"""
    with pytest.raises(ConfigError) as info:  # the merged null is still checked
        config.loads(text, SOURCE)
    check_error(info.value, DP + ".capture[1].ipv4_dst", "expected an IPv4 prefix")
    cfg = config.loads(text.replace(", ipv4_dst: null", ", ipv4_dst: 10.3.0.0/16"), SOURCE)
    web, other = cfg.datapaths["site-a"].capture
    assert (other.name, other.dst_port, str(other.ipv4_dst)) == ("web-v6", 443, "10.3.0.0/16")
    assert web.ip_proto == other.ip_proto == 6
