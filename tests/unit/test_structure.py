"""Cheap structural checks of the desired state, and reconciling it with a switch.

They guard properties that behaviour tests would only show indirectly: tables exist and are
reached forward, cookies put every flow in sggw's cookie space, groups exist and are used,
OVS would accept every message, a reconnect to a switch that already has everything changes
nothing, and a change (a rule, a port, a mirror session) touches only what it must.
"""
import dataclasses
import shutil
import subprocess

import pytest
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

import fakeswitch as fs
from app.config import CaptureRule
from flows import desired, mirror, reconcile, tables
from flows.capture import CAPTURE_TOP_PRIORITY
from flows.ofp import NXActionClone, meter_mod
from sites import (
    HOST_A1, HOST_A2, LAN1, LAN2, MIRROR_PORT_NAMES, MON1, MON2, PORT_NAMES, ROUTER_A, SERVER_B,
    TO_B, TUNNEL, WAN, datapath, everything, fake_switch, portmap, static_flows)

RICH_RULES = [
    {"name": "web", "in_port": ["lan2"], "vlan": 7, "ipv4_dst": "10.2.0.0/24",
     "ip_proto": "tcp", "dst_port": 443},
    {"name": "dns6", "in_port": "lan", "ipv6_src": "fd00:1::/64", "ipv6_dst": "fd00:2::53/128",
     "ip_proto": "udp", "src_port": 5353},
    {"name": "ping", "ip_proto": "icmp"},
    {"name": "uplink", "in_port": ["wan", "local"], "ipv4_src": "10.9.0.0/16"},
    {"name": "any-b", "ipv4_dst": "10.2.0.0/16"},
]
SESSIONS = [
    {"name": "lan", "sources": [{"port": "lan"}], "destinations": [{"port": "mon1"}]},
    {"name": "web", "sources": [{"port": "wan", "direction": "tx"},
                                {"port": "tunnel", "direction": "rx"}],
     "destinations": [{"port": "mon1", "vlan": 10},
                      {"port": "mon2", "eth_dst": "02:00:00:00:00:99"}],
     "filter": {"ip_proto": "tcp", "dst_port": 443}, "snaplen": 128,
     "rate_limit": {"pps": 100}},
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
    "mirrors": (dict(capture=TO_B, local_ip="10.1.0.2/24", mirrors=SESSIONS),
                MIRROR_PORT_NAMES),
}


@pytest.fixture(scope="module", params=CONFIGS.values(), ids=CONFIGS.keys())
def part(request):
    """Everything desired for one config: flows, groups and meters."""
    kwargs, switch_ports = request.param
    return everything(datapath(**kwargs), switch_ports)


@pytest.fixture(scope="module")
def flows(part):
    return list(part.flows)


def actions(mod):
    return list(nested(a for inst in mod.instructions for a in getattr(inst, "actions", ())))


def nested(actions_):
    """``actions_`` and the actions inside their clones."""
    for a in actions_:
        yield a
        if isinstance(a, NXActionClone):
            yield from nested(a.actions)


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
    """Nothing falls into an empty table, and every drop is a flow of its own (counted).
    Except MIRROR: a copy no session selects is simply not made (and with no session, no
    copy is ever made)."""
    present = {mod.table_id for mod in flows}
    reached = {t for mod in flows for t in gotos(mod) + resubmits(mod)} | {tables.INGRESS.id}
    for table_id in reached:
        if tables.BY_ID[table_id].learned or table_id == tables.MIRROR.id:
            continue
        assert table_id in present, tables.BY_ID[table_id]
        assert any(mod.priority == 0 and not mod.match.items()
                   for mod in flows if mod.table_id == table_id), tables.BY_ID[table_id]


def test_groups_exist_are_used_and_their_buckets_resubmit_to_tables_with_flows(part):
    """OVS refuses a flow whose group is missing; a group no flow uses is clutter. Buckets
    are action sets in OVS: no clone or learn in them, one output/group/resubmit."""
    groups = {g.group_id: g for g in part.groups}
    used = {a.group_id for mod in part.flows for a in actions(mod)
            if isinstance(a, parser.OFPActionGroup)}
    used |= {a.group_id for g in part.groups for bucket in g.buckets for a in bucket.actions
             if isinstance(a, parser.OFPActionGroup)}  # hook groups call chunk groups
    assert used == set(groups)
    present = {mod.table_id for mod in part.flows}
    for group in part.groups:
        assert group.type == ofp.OFPGT_ALL and tables.owned_group(group.group_id)
        for bucket in group.buckets:
            assert not [a for a in bucket.actions if isinstance(a, (NXActionClone,
                                                                    parser.NXActionLearn))]
            final = [a for a in bucket.actions if isinstance(
                a, (parser.OFPActionOutput, parser.OFPActionGroup, parser.NXActionResubmitTable))]
            assert len(final) == 1 and final[0] is bucket.actions[-1], bucket
            if isinstance(final[0], parser.NXActionResubmitTable):
                assert final[0].table_id in present, bucket


def test_learn_writes_only_learned_tables(flows):
    for mod in flows:
        for learn in learns(mod):
            assert tables.BY_ID[learn.table_id].learned, learn
            assert learn.priority == tables.LEARNED_PRIORITY


def test_static_flows_carry_a_static_sggw_cookie(flows):
    value, mask = tables.STATIC_COOKIES
    for mod in flows:
        assert mod.cookie & mask == value, hex(mod.cookie)
        assert tables.cookie_kind(mod.cookie) in (tables.KIND_STATIC, tables.KIND_CAPTURE,
                                                  tables.KIND_MIRROR)


def test_capture_flows_carry_their_rule_id_and_are_ordered_by_it():
    """Config rules are numbered 1.. in file order: the first rule has the top priority."""
    dp = datapath(capture=RICH_RULES)
    capture = [m for m in static_flows(dp) if tables.cookie_kind(m.cookie) == tables.KIND_CAPTURE]
    assert {m.cookie & tables.ID_MASK for m in capture} == set(range(1, len(RICH_RULES) + 1))
    assert all(m.priority == CAPTURE_TOP_PRIORITY - (m.cookie & tables.ID_MASK)
               for m in capture)


def test_mirror_flows_carry_their_session_id_and_groups_and_meters_are_in_sggw_ranges():
    kwargs, switch_ports = CONFIGS["mirrors"]
    part = everything(datapath(**kwargs), switch_ports)
    mirror = [m for m in part.flows if tables.cookie_kind(m.cookie) == tables.KIND_MIRROR]
    assert {m.table_id for m in mirror} == {tables.MIRROR.id, tables.MIRROR_OUT.id}
    assert {m.cookie & tables.ID_MASK for m in mirror} == {1, 2}
    assert all(tables.owned_group(g.group_id) for g in part.groups)
    assert sorted(m.meter_id for m in part.meters) == [tables.METER_PUNT,
                                                       tables.session_meter(2)]


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


def test_a_flow_identity_gives_back_its_match_on_the_wire(flows):
    """Removals are built from the identity alone (installed state keeps no messages): the
    delete must carry exactly the match the flow was added with."""
    for mod in flows:
        rebuilt = reconcile.match_of(reconcile.key(mod.table_id, mod.priority, mod.match))
        assert on_the_wire(rebuilt) == on_the_wire(mod.match)


def on_the_wire(match):
    buf = bytearray()
    match.serialize(buf, 0)
    return bytes(buf)


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
def test_open_vswitch_accepts_every_static_message(part, tmp_path):
    messages = list(part.meters) + list(part.groups) + list(part.flows)
    assert ovs_decode(messages, tmp_path) == (len(part.flows), [])


@needs_ovs
def test_open_vswitch_accepts_every_learned_flow(tmp_path):
    """The flows learn() writes, as the simulator builds them, are flows OVS accepts (their
    matches have their prerequisites, loads fit): a check of learn.py and of the simulator."""
    kwargs, switch_ports = CONFIGS["rich rules"]
    sw = fake_switch(everything(datapath(**kwargs), switch_ports))
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
#
# The controller reads the switch (from_switch) or remembers what it installed (incremental),
# and sends Changes: meters_first, then one bundle, then meters_last. The FakeSwitch refuses a
# flow whose group or meter is missing and drops the flows of a deleted group or meter, as
# OVS does, so sending the Changes to it checks their order too.

def learn_some(sw):
    sw.process(fs.arp_reply(LAN2, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, ROUTER_A.ip))
    sw.process(fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip))
    sw.process(fs.udp(WAN, ROUTER_A.mac, HOST_A1.mac, "198.51.100.7", HOST_A1.ip))
    assert len(sw.flows(learned=True)) >= 5


def plan(dp, switch_ports=MIRROR_PORT_NAMES):
    return desired.plan(dp, portmap(dp, switch_ports))


def dumped(sw):
    """What the controller reads from a switch: its sggw flows, groups and meters."""
    return reconcile.reported(sw.flow_stats(*tables.STATIC_COOKIES), sw.group_desc(),
                              sw.meter_config(), tables.owned_group, tables.METER_RANGE)


def send(sw, changes):
    for msg in changes.meters_first + changes.bundle + changes.meters_last:
        sw.apply(msg)


def programmed(dp, switch_ports=MIRROR_PORT_NAMES):
    """A FakeSwitch programmed from empty by from_switch, and the parts it installed."""
    sw = fs.FakeSwitch(ports=switch_ports)
    changes, installed = reconcile.from_switch(plan(dp, switch_ports), dumped(sw))
    send(sw, changes)
    return sw, installed


def assert_in_sync(sw, dp, switch_ports=MIRROR_PORT_NAMES):
    """The switch holds exactly what ``dp`` wants: a reconnect would change nothing."""
    changes, _ = reconcile.from_switch(plan(dp, switch_ports), dumped(sw))
    assert not changes, changes


def static_keys(sw):
    return {f.key for f in sw.flows(learned=False)}


def flow_mods(changes, *commands):
    return [m for m in changes.bundle
            if isinstance(m, parser.OFPFlowMod) and m.command in commands]


def group_mods(changes, command):
    return [m.group_id for m in changes.bundle
            if isinstance(m, parser.OFPGroupMod) and m.command == command]


def kinds(mods):
    """{(cookie kind, id)} of the flow mods among ``mods``."""
    return {(tables.cookie_kind(m.cookie), m.cookie & tables.ID_MASK) for m in mods
            if isinstance(m, parser.OFPFlowMod)}


ADDS, DELETES = (ofp.OFPFC_ADD,), (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT)
RICH_MIRRORS = datapath(capture=RICH_RULES, local_ip="10.1.0.2/24", mirrors=SESSIONS)


def test_an_empty_switch_gets_everything_and_deletes_nothing():
    want = everything(RICH_MIRRORS, MIRROR_PORT_NAMES)
    sw = fs.FakeSwitch(ports=MIRROR_PORT_NAMES)
    changes, installed = reconcile.from_switch(plan(RICH_MIRRORS), dumped(sw))
    assert (changes.added, changes.removed) == (len(want.flows), 0)
    assert flow_mods(changes, *DELETES) == [] and group_mods(changes, ofp.OFPGC_DELETE) == []
    assert changes.meters_last == []
    assert sorted(group_mods(changes, ofp.OFPGC_ADD)) == sorted(g.group_id for g in want.groups)
    assert [m.meter_id for m in changes.meters_first] == [m.meter_id for m in want.meters]
    assert set(installed) == set(plan(RICH_MIRRORS))
    send(sw, changes)
    assert static_keys(sw) == static_keys(fake_switch(want, MIRROR_PORT_NAMES))
    assert_in_sync(sw, RICH_MIRRORS)


def test_a_switch_that_has_everything_gets_no_changes_and_keeps_what_it_learned():
    """A reconnect: the switch reports its flows, groups and meters (round-tripped through
    the wire format, clones and truncating outputs included); learned flows are outside
    the static cookie space, so nothing is touched."""
    sw = fake_switch(everything(RICH_MIRRORS, MIRROR_PORT_NAMES), MIRROR_PORT_NAMES)
    learn_some(sw)
    changes, _ = reconcile.from_switch(plan(RICH_MIRRORS), dumped(sw))
    assert not changes and (changes.added, changes.removed) == (0, 0)
    assert changes.undo_meters == []


def test_a_changed_capture_rule_changes_only_its_flows_and_keeps_what_was_learned():
    old_rules = [{"name": "web", "ipv4_dst": "10.2.0.0/16", "ip_proto": "tcp", "dst_port": 80},
                 {"name": "b6", "ipv6_dst": "fd00:2::/48"}]
    new_rules = [dict(old_rules[0], dst_port=443), old_rules[1]]
    old, new = datapath(capture=old_rules), datapath(capture=new_rules)
    sw, installed = programmed(old)
    learn_some(sw)
    learned = len(sw.flows(learned=True))

    changes, now = reconcile.incremental(plan(new), installed)

    assert [(m.table_id, m.match["tcp_dst"]) for m in flow_mods(changes, *ADDS)] == [
        (tables.CAPTURE.id, 443)]
    assert [(m.table_id, m.command, m.match["tcp_dst"])
            for m in flow_mods(changes, *DELETES)] == [
        (tables.CAPTURE.id, ofp.OFPFC_DELETE_STRICT, 80)]
    assert len(changes.bundle) == 2 and not changes.meters_first and not changes.meters_last
    assert [k for k in now if now[k] is not installed[k]] == [("capture", 1)]
    send(sw, changes)
    assert_in_sync(sw, new)
    assert len(sw.flows(learned=True)) == learned
    https = fs.tcp(LAN1, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, SERVER_B.ip, 40001, 443)
    http = fs.tcp(LAN1, HOST_A2.mac, ROUTER_A.mac, HOST_A2.ip, SERVER_B.ip, 40001, 80)
    assert sw.process(https).ports == [TUNNEL]
    assert TUNNEL not in sw.process(http).ports
    # a MAC learned before the change is still used: no flood to it
    to_a1 = fs.udp(WAN, ROUTER_A.mac, HOST_A1.mac, SERVER_B.ip, HOST_A1.ip)
    assert sw.process(to_a1).ports == [LAN1]


RULES = [{"name": "a", "ipv4_dst": "10.2.0.0/16"}, {"name": "b", "ipv6_dst": "fd00:2::/48"}]


def test_a_rule_added_to_the_file_adds_its_flows_and_leaves_the_others_alone():
    sw, installed = programmed(datapath(capture=RULES))
    new = datapath(capture=RULES + [{"name": "c", "ipv4_dst": "10.3.0.0/16"}])
    for changes in (reconcile.incremental(plan(new), installed)[0],
                    reconcile.from_switch(plan(new), dumped(sw))[0]):
        assert flow_mods(changes, *DELETES) == [] and changes.removed == 0
        [add] = changes.bundle
        assert kinds([add]) == {(tables.KIND_CAPTURE, 3)}
        assert add.priority == CAPTURE_TOP_PRIORITY - 3


def test_rest_rules_come_and_go_without_moving_any_other_rule():
    """REST rules have ids from 1001: adding one, or removing any rule, touches only the
    flows of that rule."""
    dp = datapath(capture=RULES)
    sw, installed = programmed(dp)
    rest = CaptureRule(name="rest", ipv4_dst=dp.capture[0].ipv4_dst, ip_proto=6, id=1001)
    with_rest = dataclasses.replace(dp, capture=dp.capture + (rest,))
    changes, installed = reconcile.incremental(plan(with_rest), installed)
    assert flow_mods(changes, *DELETES) == []
    assert kinds(changes.bundle) == {(tables.KIND_CAPTURE, 1001)}
    send(sw, changes)
    without_first = dataclasses.replace(with_rest, capture=with_rest.capture[1:])
    changes, _ = reconcile.incremental(plan(without_first), installed)
    assert flow_mods(changes, *ADDS) == []
    assert kinds(changes.bundle) == {(tables.KIND_CAPTURE, 1)}
    send(sw, changes)
    assert_in_sync(sw, without_first)
    # the REST rule sits below the config rules: a packet both match goes by the config rule
    pkt = fs.tcp(LAN1, HOST_A1.mac, ROUTER_A.mac, HOST_A1.ip, SERVER_B.ip)
    assert [f.cookie & tables.ID_MASK for f in sw.process(pkt).hits(tables.CAPTURE.id)] == [
        1001]


def test_reordered_rules_change_only_capture_flows():
    """Rules of the file are numbered in file order: reordering them renumbers them."""
    sw, installed = programmed(datapath(capture=RULES))
    changes, _ = reconcile.from_switch(plan(datapath(capture=RULES[::-1])), dumped(sw))
    assert {m.table_id for m in changes.bundle} == {tables.CAPTURE.id}
    assert (changes.added, changes.removed) == (2, 2)


def test_a_new_lan_port_adds_flows_and_removes_none():
    old_ports = {n: p for n, p in MIRROR_PORT_NAMES.items() if n != LAN2}
    new_ports = {**old_ports, 5: "lan3"}
    sw, installed = programmed(datapath(capture=TO_B, lan=("lan1",)), old_ports)
    new = datapath(capture=TO_B, lan=("lan1", "lan3"))
    for changes in (reconcile.from_switch(plan(new, new_ports), dumped(sw))[0],
                    reconcile.incremental(plan(new, new_ports), installed)[0]):
        # only FLOOD's flood flow is rewritten in place (same key); nothing is deleted
        assert changes.removed == 0 and flow_mods(changes, *DELETES) == []
        adds = flow_mods(changes, *ADDS)
        assert len(adds) == changes.added == len(changes.bundle)
        assert [a.table_id for a in adds].count(tables.FLOOD.id) == 1
        assert all(a.table_id == tables.FLOOD.id or 5 in {a.match.get("in_port"),
                                                          a.match.get("reg0")}
                   for a in adds)
    send(sw, changes)
    assert_in_sync(sw, new, new_ports)


def meters(sw):
    return {c.meter_id: reconcile.meter_state(c)[1] for c in sw.meter_config()}


def test_meters_are_added_once_and_then_left_alone():
    dp = datapath()
    sw = fs.FakeSwitch(ports=PORT_NAMES)
    changes, _ = reconcile.from_switch(plan(dp), dumped(sw))
    assert [m.meter_id for m in changes.meters_first] == [tables.METER_PUNT]
    assert [(m.command, m.meter_id) for m in changes.undo_meters] == [
        (ofp.OFPMC_DELETE, tables.METER_PUNT)]
    send(sw, changes)
    assert_in_sync(sw, dp)
    # a meter in sggw's range that nothing wants goes, after the bundle; others stay
    sw.apply(meter_mod(tables.session_meter(5), 10))
    sw.apply(meter_mod(tables.METER_RANGE.stop, 10))
    changes, _ = reconcile.from_switch(plan(dp), dumped(sw))
    assert changes.meters_first == [] and changes.bundle == []
    assert [(m.command, m.meter_id) for m in changes.meters_last] == [
        (ofp.OFPMC_DELETE, tables.session_meter(5))]
    send(sw, changes)
    assert sorted(sw.meters) == [tables.METER_PUNT, tables.METER_RANGE.stop]


def session(name="s", sources=({"port": "lan"},), destinations=({"port": "mon1"},), **more):
    return dict(name=name, sources=list(sources), destinations=list(destinations), **more)


def test_a_new_rate_changes_the_meter_before_the_bundle_and_undo_puts_it_back():
    """A session's rate_limit changes only its meter; a new rate-limited session adds one.
    If the bundle fails, undo_meters puts every meter back as it was."""
    old = datapath(mirrors=[session("a", rate_limit={"pps": 100})])
    new = datapath(mirrors=[session("a", rate_limit={"kbps": 500}),
                            session("b", sources=[{"port": "wan"}], rate_limit={"pps": 7})])
    sw, installed = programmed(old)
    before = meters(sw)
    changes, _ = reconcile.incremental(plan(new), installed)
    assert [(m.command, m.meter_id) for m in changes.meters_first] == [
        (ofp.OFPMC_MODIFY, tables.session_meter(1)), (ofp.OFPMC_ADD, tables.session_meter(2))]
    # b's flows, and the base's for wan's first hooks; none of a's
    assert kinds(changes.bundle) <= {(tables.KIND_MIRROR, 2), (tables.KIND_STATIC, 0)}
    for msg in changes.meters_first:
        sw.apply(msg)
    assert meters(sw) != before
    for msg in changes.undo_meters:
        sw.apply(msg)
    assert meters(sw) == before
    rate_only = datapath(mirrors=[session("a", rate_limit={"pps": 200})])
    changes, _ = reconcile.incremental(plan(rate_only), installed)
    assert changes.bundle == [] and len(changes.meters_first) == 1


def test_a_removed_session_loses_its_flows_then_its_group_then_its_meter():
    both = datapath(mirrors=[session("a", rate_limit={"pps": 100}, snaplen=100),
                             session("b", destinations=[{"port": "mon2"}])])
    sw, installed = programmed(both)
    only_b = dataclasses.replace(both, mirrors=both.mirrors[1:])
    changes, _ = reconcile.incremental(plan(only_b), installed)
    assert changes.meters_first == []
    assert [(m.command, m.meter_id) for m in changes.meters_last] == [
        (ofp.OFPMC_DELETE, tables.session_meter(1))]
    deletes = flow_mods(changes, *DELETES)
    assert len(deletes) == changes.removed
    # its MIRROR and MIRROR_OUT flows, and the drop of what arrives on mon1, no analyzer now
    assert kinds(deletes) == {(tables.KIND_MIRROR, 1), (tables.KIND_STATIC, 0)}
    assert [dict(m.match.items()) for m in deletes
            if tables.cookie_kind(m.cookie) == tables.KIND_STATIC] == [{"in_port": MON1}]
    assert group_mods(changes, ofp.OFPGC_DELETE) == [tables.session_group(1)]
    assert changes.bundle.index(deletes[-1]) < len(changes.bundle) - 1  # the group goes last
    # b still copies lan: the chunk of its hooks is modified, not deleted
    assert sorted(group_mods(changes, ofp.OFPGC_MODIFY)) == sorted(
        tables.hook_chunk_group(d, p, 0) for d in ("rx", "tx") for p in (LAN1, LAN2))
    send(sw, changes)
    assert_in_sync(sw, only_b)


def rebuilt(before, after):
    return {k for k in after if after[k] is not before.get(k)}


def test_a_new_session_changes_only_its_parts():
    """Its own part, the hooks of its sources, and the base only if a port gets its first
    hook (or a new analyzer port appears)."""
    first = datapath(mirrors=[session("a", sources=[{"port": "lan", "direction": "rx"}])])
    sw, installed = programmed(first)
    same_ports = datapath(mirrors=[session("a", sources=[{"port": "lan", "direction": "rx"}]),
                                   session("b", sources=[{"port": "lan1", "direction": "rx"}],
                                           filter={"ip_proto": "udp"})])
    changes, now = reconcile.incremental(plan(same_ports), installed)
    # only the hook's chunk of sessions changes: the hook group still calls the same chunk
    assert rebuilt(installed, now) == {("mirror", 2), ("hook chunk", "rx", LAN1, 0)}
    assert kinds(changes.bundle) == {(tables.KIND_MIRROR, 2)}
    assert group_mods(changes, ofp.OFPGC_ADD) == [tables.session_group(2)]
    assert group_mods(changes, ofp.OFPGC_MODIFY) == [tables.hook_chunk_group("rx", LAN1, 0)]
    new_port = datapath(mirrors=[session("a", sources=[{"port": "lan", "direction": "rx"}]),
                                 session("c", sources=[{"port": "wan", "direction": "tx"}])])
    changes, now = reconcile.incremental(plan(new_port), installed)
    assert rebuilt(installed, now) == {("mirror", 2), ("hook", "tx", WAN),
                                       ("hook chunk", "tx", WAN, 0), ("base",)}
    assert changes.removed == 0
    assert [(m.table_id, dict(m.match.items())) for m in flow_mods(changes, *ADDS)
            if tables.cookie_kind(m.cookie) == tables.KIND_STATIC] == [
        (tables.EGRESS.id, {"reg0": WAN})]
    send(sw, changes)
    assert_in_sync(sw, new_port)


def test_a_plan_reuses_a_placement_only_for_the_same_session_on_the_same_ports():
    """The switch passes its installed parts to plan(): what comes out is the plan made from
    scratch, but a session already placed on the same port map is not placed again."""
    dp = datapath(mirrors=[session("a"), session("b", destinations=[{"port": "mon2"}])])
    pm = portmap(dp, MIRROR_PORT_NAMES)
    _, installed = reconcile.from_switch(desired.plan(dp, pm), reconcile.State())

    def tokens(planned):
        return {k: p.token for k, p in planned.items()}

    again = desired.plan(dp, pm, installed)
    assert tokens(again) == tokens(desired.plan(dp, pm))
    assert again[("mirror", 1)].token[0] is installed[("mirror", 1)].token[0]
    changed = dataclasses.replace(dp, mirrors=(dataclasses.replace(dp.mirrors[0], snaplen=64),
                                               dp.mirrors[1]))
    assert tokens(desired.plan(changed, pm, installed)) == tokens(desired.plan(changed, pm))
    without_mon2 = portmap(dp, {n: name for n, name in MIRROR_PORT_NAMES.items() if n != MON2})
    replanned = desired.plan(dp, without_mon2, installed)
    assert tokens(replanned) == tokens(desired.plan(dp, without_mon2))
    assert ("mirror", 2) not in replanned  # its one analyzer is gone


def test_an_update_plans_only_what_came_or_went_and_ends_where_a_full_plan_would():
    """A REST change: update() plans the parts of the sessions and rules that are not the
    very objects of the previous plan, their hooks and the base, whatever the number of
    others; the switch then holds what a plan from scratch wants."""
    many = [session("m%d" % i, sources=[{"port": ["lan1", "wan0"][i % 2], "direction": "rx"}],
                    filter={"ip_proto": "udp", "dst_port": 1 + i}) for i in range(140)]
    dp = datapath(capture=RULES, mirrors=many)
    pm = portmap(dp, MIRROR_PORT_NAMES)
    sw, installed = programmed(dp)
    previous = desired.plan(dp, pm)
    probe = datapath(mirrors=[session("probe", sources=[{"port": "lan2", "direction": "tx"}],
                                      rate_limit={"pps": 10})]).mirrors[0]
    rule = datapath(capture=[{"name": "c", "ipv4_dst": "10.3.0.0/16"}]).capture[0]

    def replaced(mirrors=None, capture=None):
        base = previous.dp
        return dataclasses.replace(base, mirrors=base.mirrors if mirrors is None else mirrors,
                                   capture=base.capture if capture is None else capture)

    steps = [
        replaced(mirrors=dp.mirrors + (dataclasses.replace(probe, id=1001),)),  # new hook
        replaced(mirrors=dp.mirrors),  # and gone again
        replaced(mirrors=dp.mirrors[:70] + dp.mirrors[71:]),  # one from the middle
        replaced(mirrors=dp.mirrors[:70] + (dataclasses.replace(dp.mirrors[71], snaplen=64),)
                 + dp.mirrors[72:]),  # one changed (a new object, the same id)
        replaced(capture=dp.capture + (dataclasses.replace(rule, id=1001),)),
        replaced(capture=dp.capture[1:]),
        replaced(mirrors=dp.mirrors[1::2]),  # every session on lan1 gone
    ]
    flows = len(static_keys(sw))
    for new in steps:
        planned, changed = desired.update(previous, new, pm)
        assert {k: p.token for k, p in planned.items()} == {
            k: p.token for k, p in desired.plan(new, pm).items()}
        changes, installed = reconcile.incremental(planned, installed, changed)
        send(sw, changes)
        assert_in_sync(sw, new)
        flows += changes.net_flows
        assert flows == len(static_keys(sw)) == sum(len(p.state.flows) for p in installed.values())
        previous = planned
    more = replaced(mirrors=previous.dp.mirrors + (dataclasses.replace(probe, id=1001),))
    assert len(desired.update(previous, more, pm)[1]) == 4  # base, session, hook, chunk
    other_ports = portmap(dp, {n: name for n, name in MIRROR_PORT_NAMES.items() if n != MON2})
    assert desired.update(previous, dp, other_ports)[1] is None  # planned from scratch


def test_removing_the_last_session_removes_its_flows_group_meter_and_hooks():
    dp = datapath(mirrors=[session("a", rate_limit={"pps": 10}, snaplen=64)])
    sw, installed = programmed(dp)
    none = datapath()
    changes, now = reconcile.incremental(plan(none), installed)
    assert set(now) == {("base",)}
    assert sorted(group_mods(changes, ofp.OFPGC_DELETE)) == sorted(
        [tables.session_group(1)] + [g(d, p, *chunk) for d in ("rx", "tx")
                                     for p in (LAN1, LAN2)
                                     for g, chunk in ((tables.hook_group, ()),
                                                      (tables.hook_chunk_group, (0,)))])
    assert [m.meter_id for m in changes.meters_last] == [tables.session_meter(1)]
    send(sw, changes)
    assert_in_sync(sw, none)
    assert sw.groups == {} and sorted(sw.meters) == [tables.METER_PUNT]
    assert static_keys(sw) == static_keys(fake_switch(everything(none), MIRROR_PORT_NAMES))
    assert sw.process(fs.udp(MON1, HOST_A1.mac, HOST_A2.mac, HOST_A1.ip, HOST_A2.ip)).outputs == []
    # the same from the switch's dumps (a session removed while the controller was away)
    sw, _ = programmed(dp)
    changes, _ = reconcile.from_switch(plan(none), dumped(sw))
    assert [m.meter_id for m in changes.meters_last] == [tables.session_meter(1)]
    send(sw, changes)
    assert_in_sync(sw, none)
    assert sw.groups == {}


def test_a_group_is_compared_bucket_by_bucket_as_the_switch_reports_it():
    """Buckets are put in canonical form one at a time, and each once: the whole group's
    form is the same as when it is reparsed whole, the first time and every later time."""
    sessions = tuple((1001 + i, i % 3 == 0) for i in range(64))
    group = mirror.hook_chunk_group("rx", 1, 15, sessions)
    whole = reconcile._reparsed(group.buckets, parser.OFPBucket.parser)
    for _ in range(2):
        assert reconcile.group_state(group) == (group.group_id, (group.type, whole))
