"""Remote mirror destinations: the config's checks, and the copies' flows."""
import dataclasses
import ipaddress

import pytest

from app import config
from app.config import remote
from flows import desired, mirror, remote as remote_flows, tables
from sites import MIRROR_PORT_NAMES, datapath, portmap
from test_structure import needs_ovs, ovs_decode

ERSPAN_V1 = {"erspan": {"remote_ip": "192.0.2.50", "version": 1, "session_id": 7, "index": 5}}
ERSPAN_V2 = {"erspan": {"remote_ip": "2001:db8::50", "version": 2, "session_id": 9,
                        "direction": "egress", "hwid": 3}}
GRE = {"gre": {"remote_ip": "192.0.2.51", "key": 1234, "mtu": 9000}}
VXLAN = {"vxlan": {"remote_ip": "2001:db8::51", "vni": 5001}}
TUNNEL_PORTS = {20 + i: remote_flows.port_name(1, kind)
                for i, kind in enumerate(remote_flows.PORT_KINDS)}


def session(*destinations, **more):
    return dict({"name": "far", "sources": [{"port": "lan1"}],
                 "destinations": list(destinations)}, **more)


def test_each_kind_parses_and_shows_as_written():
    dp = datapath(mirrors=[session(ERSPAN_V1, ERSPAN_V2, GRE, VXLAN, {"port": "mon1"})])
    dests = dp.mirrors[0].destinations
    assert [d.key for d in dests] == ["erspan:192.0.2.50/7", "erspan:[2001:db8::50]/9",
                                      "gre:192.0.2.51/1234", "vxlan:[2001:db8::51]/5001",
                                      "mon1"]
    assert dests[0].remote.remote_ip == ipaddress.ip_address("192.0.2.50")
    shown = dp.mirrors[0].to_dict()["destinations"]
    assert shown[1] == {"erspan": {"remote_ip": "2001:db8::50", "session_id": 9, "version": 2,
                                   "direction": "egress", "hwid": 3, "mtu": 1500}}
    assert shown[4] == {"port": "mon1", "vlan": None, "eth_dst": None}
    # what fits the path MTU: outer IP, then GRE+ERSPAN (v1 16, v2 20), GRE+key 8, UDP+VXLAN 16
    assert [d.remote.max_len for d in dests[:4]] == [1464, 1440, 8972, 1444]


@pytest.mark.parametrize("dest, field, reason", [
    ({"erspan": {"remote_ip": "192.0.2.1", "session_id": 1}}, "erspan.version", "is required"),
    ({"erspan": {"remote_ip": "192.0.2.1", "version": 1}}, "erspan.session_id",
     "is required"),
    ({"erspan": {"remote_ip": "192.0.2.1", "version": 1, "session_id": 1, "hwid": 2}},
     "erspan.hwid", "is an ERSPAN v2 field; version 1 has index"),
    ({"erspan": {"remote_ip": "192.0.2.1", "version": 2, "session_id": 1, "index": 2}},
     "erspan.index", "is an ERSPAN v1 field; version 2 has direction and hwid"),
    ({"erspan": {"remote_ip": "192.0.2.1", "version": 2, "session_id": 1,
                 "direction": "up"}}, "erspan.direction", "expected ingress or egress"),
    ({"erspan": {"remote_ip": "192.0.2.1", "version": 3, "session_id": 1}},
     "erspan.version", "3 is out of range 1..2"),
    ({"erspan": {"remote_ip": "192.0.2.1", "version": 1, "session_id": 1024}},
     "erspan.session_id", "1024 is out of range 0..1023"),
    ({"gre": {"remote_ip": "224.0.0.1"}}, "gre.remote_ip", "is not a unicast address"),
    ({"gre": {"remote_ip": "analyzer"}}, "gre.remote_ip", "expected an IPv4 or IPv6"),
    ({"gre": {"key": 1}}, "gre.remote_ip", "is required"),
    ({"vxlan": {"remote_ip": "192.0.2.1", "vni": 2**24}}, "vxlan.vni", "is out of range"),
    ({"vxlan": {"remote_ip": "2001:db8::1", "mtu": 1000}}, "vxlan.mtu",
     "1000 is out of range 1280..65535"),
    ({"vxlan": {"remote_ip": "192.0.2.1", "port": 1}}, "vxlan.port", "unknown key"),
    ({"gre": {"remote_ip": "192.0.2.1"}, "vxlan": {"remote_ip": "192.0.2.1"}}, "",
     "exactly one of erspan, gre, vxlan"),
    ({"port": "mon1", "gre": {"remote_ip": "192.0.2.1"}}, ".gre",
     "a destination is a port or a remote analyzer, not both"),
])
def test_a_bad_remote_destination_gets_a_precise_error(dest, field, reason):
    with pytest.raises(config.ConfigError) as info:
        datapath(mirrors=[session(dest)])
    where = "datapaths.site.mirrors[0].destinations[0]"
    assert info.value.path == (where + "." + field if field and field[0] != "." else
                               where + field)
    assert reason in info.value.reason


def test_the_same_remote_destination_twice_is_refused():
    with pytest.raises(config.ConfigError) as info:
        datapath(mirrors=[session(GRE, GRE)])
    assert info.value.reason == "gre:192.0.2.51/1234 is already a destination of this session"


def placed(*destinations, **more):
    dp = datapath(mirrors=[session(*destinations, **more)])
    ports = portmap(dp, {**MIRROR_PORT_NAMES, **TUNNEL_PORTS})
    return dp, ports, mirror.place(dp.mirrors[0], ports, dp.dp_id)


def test_remote_copies_are_addressed_cut_and_sent_through_the_port_of_their_kind():
    dp, ports, found = placed(ERSPAN_V1, GRE, {"port": "mon1"}, snaplen=1000)
    assert [(dest_id, port) for dest_id, _, port in found.destinations] == [
        (tables.REMOTE_BASE, 20), (tables.REMOTE_BASE + 1, 22), (6, 6)]
    flows = {f.match[tables.REG_MIRROR_PORT]: f for f in mirror.session_flows(found, ports)
             if f.table_id == tables.MIRROR_OUT.id}
    clone = flows[tables.REMOTE_BASE].instructions[0].actions[0]
    fields = {a.key: a.value for a in clone.actions if hasattr(a, "key")}
    assert fields == {"tun_ipv4_dst": "192.0.2.50", "tunnel_id": 7, "tun_erspan_ver": 1,
                      "tun_erspan_idx": 5}
    assert (clone.actions[-1].port, clone.actions[-1].max_len) == (20, 1000)  # snaplen
    gre_out = flows[tables.REMOTE_BASE + 1].instructions[0].actions[0].actions[-1]
    assert (gre_out.port, gre_out.max_len) == (22, 1000)
    assert not [f for f in mirror.session_flows(found, ports)
                if f.table_id == tables.MIRROR_TRIM.id]  # the snaplen cuts every copy


def test_without_a_snaplen_copies_too_long_for_the_path_mtu_are_cut_and_counted():
    dp, ports, found = placed(ERSPAN_V1, snaplen=2000)
    flows = mirror.session_flows(found, ports)
    check = [f for f in flows if f.table_id == tables.MIRROR_OUT.id][0]
    larger, trim = check.instructions[0].actions[0].actions[1:]
    assert (larger.pkt_len, larger.dst, trim.table_id) == (1464, tables.REG_CUT,
                                                           tables.MIRROR_TRIM.id)
    cut, whole = [f for f in flows if f.table_id == tables.MIRROR_TRIM.id]
    assert cut.match[tables.REG_CUT] == (1, 1)
    assert cut.instructions[0].meter_id == tables.cut_meter(found.session.id)
    assert (cut.instructions[1].actions[-1].port, cut.instructions[1].actions[-1].max_len) \
        == (20, 1464)
    # sent whole, but with a max_len: OVS then counts the copy exactly (flows/remote.py)
    assert (whole.instructions[0].actions[-1].port,
            whole.instructions[0].actions[-1].max_len) == (20, remote_flows.WHOLE)
    part = desired.plan(dp, ports)[("mirror", found.session.id)].build()
    assert [m.meter_id for m in part.meters] == [tables.cut_meter(found.session.id)]


def test_gre_and_erspan_over_ipv6_leave_through_ports_of_their_own_vxlan_through_one():
    """OVS's kernel datapath sends GRE and ERSPAN over IPv6 only through ip6gre and
    ip6erspan ports (a gre or erspan port drops them silently)."""
    gre6 = {"gre": dict(GRE["gre"], remote_ip="2001:db8::51")}
    vxlan4 = {"vxlan": dict(VXLAN["vxlan"], remote_ip="192.0.2.52")}
    _, _, found = placed(ERSPAN_V1, ERSPAN_V2, GRE, gre6, VXLAN, vxlan4)
    assert [TUNNEL_PORTS[port] for _, _, port in found.destinations] == [
        "sgw000001erspan", "sgw000001ip6ers", "sgw000001gre", "sgw000001ip6gre",
        "sgw000001vxlan", "sgw000001vxlan"]
    assert max(map(len, TUNNEL_PORTS.values())) == 15  # Linux's longest interface name


def test_without_its_tunnel_port_a_remote_destination_waits():
    dp = datapath(mirrors=[session(VXLAN)])
    found = mirror.place(dp.mirrors[0], portmap(dp, MIRROR_PORT_NAMES), dp.dp_id)
    assert found.destinations == () and found.missing == ("sgw000001vxlan",)


@needs_ovs
def test_open_vswitch_accepts_remote_copies(tmp_path):
    dp = datapath(mirrors=[session(ERSPAN_V1, ERSPAN_V2, GRE, VXLAN)])
    part = desired.everything(dp, portmap(dp, {**MIRROR_PORT_NAMES, **TUNNEL_PORTS}))
    messages = list(part.meters) + list(part.groups) + list(part.flows)
    assert ovs_decode(messages, tmp_path) == (len(part.flows), [])


def test_a_session_reads_back_as_it_was_stored():
    """The state file keeps sessions as to_dict() shows them: they must parse back equal."""
    dp = datapath(mirrors=[session(ERSPAN_V1, ERSPAN_V2, GRE, VXLAN, {"port": "mon1"})])
    stored = dp.mirrors[0]
    again = config.mirror(stored.to_dict(), None, dp.ports)
    assert again == dataclasses.replace(stored, id=0)
