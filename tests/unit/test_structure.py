"""Cheap structural checks of the static pipeline, and reconciling it with a switch.

They guard properties that behaviour tests would only show indirectly: tables exist and are
reached forward, cookies put every flow in sggw's cookie space, OVS would accept every flow,
and a reconnect to a switch that already has the pipeline changes nothing.
"""
import shutil
import subprocess
from types import SimpleNamespace

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

import fakeswitch as fs
from flows import pipeline, reconcile, tables
from sites import (
    HOST_A1, HOST_A2, LAN1, LAN2, PORT_NAMES, ROUTER_A, SERVER_B, TO_B, TUNNEL, WAN,
    datapath, portmap, static_flows)

RICH_RULES = [
    {"name": "web", "in_port": ["lan2"], "vlan": 7, "ipv4_dst": "10.2.0.0/24",
     "ip_proto": "tcp", "dst_port": 443},
    {"name": "dns6", "in_port": "lan", "ipv6_src": "fd00:1::/64", "ipv6_dst": "fd00:2::53/128",
     "ip_proto": "udp", "src_port": 5353},
    {"name": "ping", "ip_proto": "icmp"},
    {"name": "uplink", "in_port": ["wan", "local"], "ipv4_src": "10.9.0.0/16"},
    {"name": "any-b", "ipv4_dst": "10.2.0.0/16"},
]
NO_TUNNEL_PORT = {n: name for n, name in PORT_NAMES.items() if n != TUNNEL}
CONFIGS = {
    "wire only": (dict(tunnel=False), None),
    "tunnel, nothing captured": (dict(), None),
    "site a": (dict(capture=TO_B), None),
    "endpoint": (dict(capture=TO_B, local_ip="10.1.0.2/24"), None),
    "host pair": (dict(capture=TO_B, reverse_path={"match": "host_pair"}), None),
    "rich rules": (dict(capture=RICH_RULES, local_ip="10.1.0.2/24",
                        reverse_path={"idle_timeout": 30, "fin_idle_timeout": 2}), None),
    "tunnel port missing": (dict(capture=TO_B), NO_TUNNEL_PORT),
}


@pytest.fixture(scope="module", params=CONFIGS.values(), ids=CONFIGS.keys())
def flows(request):
    kwargs, switch_ports = request.param
    return static_flows(datapath(**kwargs), switch_ports)


def actions(mod):
    return [a for inst in mod.instructions for a in getattr(inst, "actions", ())]


def gotos(mod):
    return [i.table_id for i in mod.instructions if isinstance(i, parser.OFPInstructionGotoTable)]


def resubmits(mod):
    return [a.table_id for a in actions(mod) if isinstance(a, parser.NXActionResubmitTable)]


def learns(mod):
    return [a for a in actions(mod) if isinstance(a, parser.NXActionLearn)]


def test_static_flows_live_in_declared_tables_that_are_not_learned(flows):
    for mod in flows:
        assert mod.table_id in tables.BY_ID, mod
        assert not tables.BY_ID[mod.table_id].learned, mod


def test_gotos_go_forward_to_declared_static_tables(flows):
    """Learned tables are only ever resubmitted to: their flows cannot goto anywhere."""
    for mod in flows:
        for target in gotos(mod):
            assert target > mod.table_id, mod
            assert target in tables.BY_ID and not tables.BY_ID[target].learned, mod


def test_resubmits_reach_declared_tables_and_never_the_same_table(flows):
    for mod in flows:
        for target in resubmits(mod):
            assert target in tables.BY_ID and target != mod.table_id, mod


def test_every_table_reached_has_flows_and_a_catch_all(flows):
    """Nothing falls into an empty table, and every drop is a flow of its own (counted)."""
    present = {mod.table_id for mod in flows}
    reached = {t for mod in flows for t in gotos(mod) + resubmits(mod)} | {tables.INGRESS.id}
    for table_id in reached:
        if tables.BY_ID[table_id].learned:
            continue
        assert table_id in present, tables.BY_ID[table_id]
        assert any(mod.priority == 0 and not mod.match.items()
                   for mod in flows if mod.table_id == table_id), tables.BY_ID[table_id]


def test_learn_writes_only_learned_tables(flows):
    for mod in flows:
        for learn in learns(mod):
            assert tables.BY_ID[learn.table_id].learned, learn
            assert learn.priority == tables.LEARNED_PRIORITY


def test_static_flows_carry_a_static_sggw_cookie(flows):
    value, mask = tables.STATIC_COOKIES
    for mod in flows:
        assert mod.cookie & mask == value, hex(mod.cookie)
        assert tables.cookie_kind(mod.cookie) in (tables.KIND_STATIC, tables.KIND_CAPTURE)


def test_capture_flows_carry_their_rule_number():
    dp = datapath(capture=RICH_RULES)
    capture = [m for m in static_flows(dp) if tables.cookie_kind(m.cookie) == tables.KIND_CAPTURE]
    assert {m.cookie & tables.ID_MASK for m in capture} == set(range(len(RICH_RULES)))


def test_learned_flows_carry_a_learned_cookie_naming_the_port_they_were_learned_on(flows):
    value, mask = tables.LEARNED_COOKIES
    pm = portmap(datapath(), None)
    for mod in flows:
        for learn in learns(mod):
            assert learn.cookie & mask == value, hex(learn.cookie)
            assert tables.cookie_kind(learn.cookie) in tables.LEARNED_KINDS
            assert learn.cookie & tables.ID_MASK in pm.all
            # and the flush of that port selects it
            port_value, port_mask = tables.learned_through(learn.cookie & tables.ID_MASK)
            assert learn.cookie & port_mask == port_value


def test_no_two_static_flows_have_the_same_table_priority_and_match(flows):
    """An OFPFC_ADD with the same key would silently replace the other one."""
    keys = [reconcile.key(m.table_id, m.priority, m.match) for m in flows]
    assert len(keys) == len(set(keys))


def test_fields_have_their_prerequisites(flows):
    """OVS refuses a flow that matches, sets or moves a field its match does not imply
    (e.g. arp_sha without eth_type=arp): OFPBAC_MATCH_INCONSISTENT."""
    assert {(m.table_id, m.priority): fs.problems(m) for m in flows if fs.problems(m)} == {}


class _Datapath:
    ofproto = ofp
    ofproto_parser = parser


def ovs_decode(messages, tmp_path):
    """What ``ovs-ofctl ofp-parse`` says about ``messages``: OVS's own decoder, consistency
    checks included, without a running switch. Returns (flow mods decoded, errors)."""
    data = bytearray()
    for xid, msg in enumerate(messages, 1):
        msg.datapath = _Datapath()
        msg.set_xid(xid)
        msg.serialize()
        data += msg.buf
        msg.datapath = msg.xid = msg.buf = None  # as built: fixtures share messages
    path = tmp_path / "messages.of"
    path.write_bytes(bytes(data))
    out = subprocess.run(["ovs-ofctl", "ofp-parse", str(path)], capture_output=True,
                         text=True, timeout=30, check=False)
    errors = [line for line in (out.stdout + out.stderr).splitlines()
              if "error" in line.lower() or "WARN" in line]
    if out.returncode:
        errors.append("exit status %d" % out.returncode)
    return out.stdout.count("OFPT_FLOW_MOD"), errors


needs_ovs = pytest.mark.skipif(shutil.which("ovs-ofctl") is None, reason="needs ovs-ofctl")


@needs_ovs
def test_open_vswitch_accepts_every_static_message(flows, tmp_path):
    assert ovs_decode(pipeline.meters() + flows, tmp_path) == (len(flows), [])


@needs_ovs
def test_open_vswitch_accepts_every_learned_flow(tmp_path):
    """The flows learn() writes, as the simulator builds them, are flows OVS accepts (their
    matches have their prerequisites, loads fit): a check of learn.py and of the simulator."""
    kwargs, switch_ports = CONFIGS["rich rules"]
    sw = fs.FakeSwitch(static_flows(datapath(**kwargs), switch_ports))
    learn_some(sw)
    for pkt in (fs.tcp(LAN2, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, SERVER_B.ip, dport=443,
                       vlan=7),
                fs.udp(LAN1, HOST_A1.mac, ROUTER_A.mac, "fd00:1::11", "fd00:2::53", 5353),
                fs.icmp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip),
                fs.tcp(TUNNEL, "02:00:00:0b:00:11", "02:00:00:0b:00:01", SERVER_B.ip,
                       HOST_A1.ip, 50000, 22),
                fs.udp(TUNNEL, "02:00:00:0b:00:11", "02:00:00:0b:00:01", "fd00:2::11",
                       "fd00:1::11", 5000, 5001)):
        sw.process(pkt)
    learned = sw.flows(learned=True)
    assert {f.table_id for f in learned} == {t.id for t in tables.LEARNED_TABLES}
    mods = [parser.OFPFlowMod(None, cookie=f.cookie, table_id=f.table_id, priority=f.priority,
                              idle_timeout=f.idle_timeout, match=parser.OFPMatch(**f.fields),
                              instructions=f.instructions)
            for f in learned]
    assert ovs_decode(mods, tmp_path) == (len(mods), [])


# --- reconcile ----------------------------------------------------------------------------------

def rich():
    kwargs, switch_ports = CONFIGS["rich rules"]
    return static_flows(datapath(**kwargs), switch_ports)


def small(rules):
    """A bridge with fewer ports (reconcile is slow on big pipelines: Ryu's to_jsondict)."""
    return static_flows(datapath(capture=rules, lan=("lan1",)))


def test_an_empty_switch_gets_everything_and_deletes_nothing():
    flows = rich()
    deletes, adds = reconcile.diff(flows, [])
    assert deletes == [] and adds == flows


def learn_some(sw):
    sw.process(fs.arp_reply(LAN2, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, ROUTER_A.ip))
    sw.process(fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip))
    sw.process(fs.udp(WAN, ROUTER_A.mac, HOST_A1.mac, "198.51.100.7", HOST_A1.ip))
    assert len(sw.flows(learned=True)) >= 5


def test_a_switch_that_has_the_pipeline_gets_no_changes_and_keeps_what_it_learned():
    """A reconnect: the switch reports its static flows (round-tripped through the wire
    format); learned flows are outside the static cookie space, so nothing is touched."""
    flows = rich()
    sw = fs.FakeSwitch(flows)
    learn_some(sw)
    installed = sw.flow_stats(*tables.STATIC_COOKIES)
    assert len(installed) == len(flows)
    assert reconcile.diff(flows, installed) == ([], [])


def static_keys(sw):
    return {f.key for f in sw.flows(learned=False)}


def test_a_changed_capture_rule_changes_only_its_flows_and_keeps_what_was_learned():
    old_rules = [{"name": "web", "ipv4_dst": "10.2.0.0/16", "ip_proto": "tcp", "dst_port": 80},
                 {"name": "b6", "ipv6_dst": "fd00:2::/48"}]
    new_rules = [dict(old_rules[0], dst_port=443), old_rules[1]]
    sw = fs.FakeSwitch(small(old_rules))
    learn_some(sw)
    learned = len(sw.flows(learned=True))
    new_flows = small(new_rules)

    deletes, adds = reconcile.diff(new_flows, sw.flow_stats(*tables.STATIC_COOKIES))

    assert [(m.table_id, m.match["tcp_dst"]) for m in adds] == [(tables.CAPTURE.id, 443)]
    assert [(m.table_id, m.command, m.match["tcp_dst"]) for m in deletes] == [
        (tables.CAPTURE.id, ofp.OFPFC_DELETE_STRICT, 80)]
    for msg in deletes + adds:
        sw.apply(msg)
    assert static_keys(sw) == static_keys(fs.FakeSwitch(new_flows))
    assert len(sw.flows(learned=True)) == learned
    https = fs.tcp(LAN1, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, SERVER_B.ip, 40001, 443)
    http = fs.tcp(LAN1, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, SERVER_B.ip, 40001, 80)
    assert sw.process(https).ports == [TUNNEL]
    assert TUNNEL not in sw.process(http).ports
    # a MAC learned before the change is still used: no flood to it
    to_a1 = fs.udp(WAN, ROUTER_A.mac, HOST_A1.mac, SERVER_B.ip, HOST_A1.ip)
    assert sw.process(to_a1).ports == [LAN1]


def test_reordered_rules_change_only_capture_priorities():
    rules = [{"name": "a", "ipv4_dst": "10.2.0.0/16"}, {"name": "b", "ipv4_dst": "10.3.0.0/16"}]
    deletes, adds = reconcile.diff(small(rules[::-1]), fs.FakeSwitch(small(rules)).flow_stats())
    assert {m.table_id for m in deletes + adds} == {tables.CAPTURE.id}
    assert len(adds) == 2 and len(deletes) == 2


def test_a_new_lan_port_adds_flows_and_removes_none():
    old = small(TO_B)
    new = static_flows(datapath(capture=TO_B, lan=("lan1", "lan3")), {**PORT_NAMES, 5: "lan3"})
    deletes, adds = reconcile.diff(new, fs.FakeSwitch(old).flow_stats())
    # only FLOOD's flood flow is rewritten in place (same key); nothing is deleted
    assert deletes == []
    assert [a.table_id for a in adds].count(tables.FLOOD.id) == 1
    assert all(a.table_id == tables.FLOOD.id or 5 in {a.match.get("in_port"),
                                                      a.match.get("reg0")}
               for a in adds)


def test_meters_are_added_once_and_then_left_alone():
    [meter] = pipeline.meters()
    assert reconcile.meter_diff([meter], [], range(1, 2)) == [meter]
    installed = SimpleNamespace(meter_id=meter.meter_id, flags=meter.flags, bands=meter.bands)
    assert reconcile.meter_diff([meter], [installed], range(1, 2)) == []
    stray = SimpleNamespace(meter_id=1, flags=meter.flags, bands=meter.bands)
    [delete] = reconcile.meter_diff([], [stray], range(1, 2))
    assert delete.command == ofp.OFPMC_DELETE
    foreign = SimpleNamespace(meter_id=7, flags=meter.flags, bands=meter.bands)
    assert reconcile.meter_diff([], [foreign], range(1, 2)) == []
