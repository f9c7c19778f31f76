"""What sggw decides about a bridge's OVS settings (app/ovs/settings.review), from OVSDB rows.

The rows are what ``ovs-vsctl --format=json`` shows for a bridge set up as the README
says (``set-controller tcp:127.0.0.1:6653``, ``fail_mode=secure protocols=OpenFlow13``).
"""
import json
import shlex

import pytest

from app.config import DEFAULT_OVSDB
from app.ovs import settings as ovs_settings
from flows import tables

DP_ID = 0xA
MAX_FLOWS = 1000


def readme_bridge(**changes):
    """The Bridge row after the README's commands, on OVS's defaults."""
    return dict({"name": "br0", "fail_mode": "secure", "protocols": ["OpenFlow13"],
                 "datapath_type": None, "other_config": {}, "stp_enable": False,
                 "rstp_enable": False, "controller": "c1", "flow_tables": {}}, **changes)


OURS = {"_uuid": "c1", "target": "tcp:127.0.0.1:6653", "connection_mode": None}


def bounded():
    """(flow_tables, Flow_Table rows) as sggw sets them."""
    rows = {"t%d" % t.id: {"name": t.name, "flow_limit": MAX_FLOWS if t.learned else None,
                           "overflow_policy": "refuse" if t.learned else None}
            for t in tables.PIPELINE}
    return {t.id: "t%d" % t.id for t in tables.PIPELINE}, rows


def review(bridge, controllers=(OURS,), managers=(), table_rows=None):
    return {p.setting: p for p in ovs_settings.review(
        bridge, list(controllers), list(managers), table_rows or {}, DP_ID, MAX_FLOWS, 6653)}


def test_a_bridge_set_up_as_the_readme_says_needs_in_band_off_a_pinned_id_and_bounds():
    found = review(readme_bridge())
    assert set(found) == {"in-band control", "datapath id", "flow_tables"}
    assert all(p.auto for p in found.values())  # the controller is local: all safe to fix
    assert found["in-band control"].args == (
        "set", "Bridge", "br0", "other-config:disable-in-band=true")
    assert found["datapath id"].args[-1] == "other-config:datapath-id=000000000000000a"


def test_a_bridge_as_sggw_left_it_is_fine():
    flow_tables, rows = bounded()
    bridge = readme_bridge(flow_tables=flow_tables, other_config={
        "disable-in-band": "true", "datapath-id": "000000000000000a"})
    assert review(bridge, table_rows=rows) == {}


def test_in_band_is_off_when_every_controller_and_manager_is_out_of_band():
    flow_tables, rows = bounded()
    bridge = readme_bridge(flow_tables=flow_tables,
                           other_config={"datapath-id": "000000000000000a"})
    out_of_band = dict(OURS, connection_mode="out-of-band")
    assert review(bridge, [out_of_band], table_rows=rows) == {}
    manager = {"target": "tcp:127.0.0.1:6640", "connection_mode": None}
    assert set(review(bridge, [out_of_band], [manager], rows)) == {"in-band control"}
    passive = {"target": "ptcp:6640", "connection_mode": None}  # in-band needs an active one
    assert review(bridge, [out_of_band], [passive], rows) == {}


@pytest.mark.parametrize("target", ["tcp:192.0.2.10:6653", "ssl:[2001:db8::1]:6653"])
def test_in_band_is_left_on_when_a_controller_may_be_reached_through_the_bridge(target):
    remote = {"_uuid": "c1", "target": target, "connection_mode": None}
    found = review(readme_bridge(), [remote])["in-band control"]
    assert not found.auto and target in found.why


def test_standalone_fail_mode_is_fixed_and_unset_counts_as_standalone():
    for have in (None, "standalone"):
        found = review(readme_bridge(fail_mode=have))["fail_mode"]
        assert found.auto and found.args == ("set", "Bridge", "br0", "fail_mode=secure")


@pytest.mark.parametrize("changes, setting, fix", [
    ({"stp_enable": True}, "stp_enable", "stp_enable=false"),
    ({"rstp_enable": True}, "rstp_enable", "rstp_enable=false"),
    ({"protocols": ["OpenFlow10"]}, "protocols", "protocols=OpenFlow13"),
    ({"datapath_type": "dummy"}, "datapath_type", "datapath_type=netdev"),
])
def test_what_sggw_does_not_change_by_itself_is_reported_with_its_fix(changes, setting, fix):
    found = review(readme_bridge(**changes))[setting]
    assert not found.auto and found.args[-1] == fix


def test_protocols_unset_or_with_openflow13_and_the_usual_datapath_types_are_fine():
    for changes in ({"protocols": []}, {"protocols": ["OpenFlow10", "OpenFlow13"]},
                    {"datapath_type": "netdev"}, {"datapath_type": "system"}):
        found = review(readme_bridge(**changes))
        assert not {"protocols", "datapath_type"} & set(found), changes


def test_another_controller_is_reported_and_the_fix_keeps_only_sggw():
    other = {"_uuid": "c2", "target": "tcp:127.0.0.1:6633", "connection_mode": None}
    found = review(readme_bridge(controller=["c1", "c2"]), [OURS, other])["controllers"]
    assert not found.auto
    assert found.args == ("set-controller", "br0", "tcp:127.0.0.1:6653")


def test_the_other_instances_of_its_cluster_are_not_foreign_controllers():
    peer = {"_uuid": "c2", "target": "tcp:10.0.0.2:6654", "connection_mode": None}
    stranger = {"_uuid": "c3", "target": "tcp:10.0.0.9:6633", "connection_mode": None}
    bridge = readme_bridge(controller=["c1", "c2", "c3"])
    found = {p.setting: p for p in ovs_settings.review(
        bridge, [OURS, peer, stranger], [], {}, DP_ID, MAX_FLOWS, 6653,
        ("tcp:10.0.0.2:6654",))}["controllers"]
    assert found.args == ("set-controller", "br0", "tcp:127.0.0.1:6653", "tcp:10.0.0.2:6654")


# None: unset (OVS refuses too, but sggw says so); "evict": as sggw set it before, which
# costs ovs-vswitchd a walk over every learned flow each second (docs/scale.md)
@pytest.mark.parametrize("policy", [None, "evict"])
def test_a_learned_table_without_its_bound_is_reported_and_fixed(policy):
    flow_tables, rows = bounded()
    rows["t%d" % tables.REVERSE.id]["overflow_policy"] = policy
    bridge = readme_bridge(flow_tables=flow_tables, other_config={
        "disable-in-band": "true", "datapath-id": "000000000000000a"})
    found = review(bridge, table_rows=rows)
    assert set(found) == {"flow_tables"}
    assert found["flow_tables"].auto
    assert "overflow_policy=refuse" in found["flow_tables"].args


def test_the_fix_is_one_ovs_vsctl_command_line():
    problems = ovs_settings.review(readme_bridge(stp_enable=True), [OURS], [], {}, DP_ID,
                                   MAX_FLOWS, 6653)
    line = ovs_settings.command(DEFAULT_OVSDB, problems)
    argv = shlex.split(line)
    assert argv[0] == "ovs-vsctl" and not any(a.startswith("--db") for a in argv)
    parts = " ".join(argv[1:]).split(" -- ")
    assert "set Bridge br0 stp_enable=false" in [p.strip("- ") for p in parts]
    assert "--db=unix:/x.sock" in ovs_settings.command("unix:/x.sock", problems)


def test_ovsdb_json_rows_are_read_as_python_values():
    """A line of ``ovs-vsctl --format=json find Bridge ...`` as OVS 3.1 prints it."""
    line = ('{"data":[["b1","secure","OpenFlow13","netdev",["map",[["datapath-id",'
            '"000000000000000a"]]],false,false,["set",[["uuid","95"],["uuid","ec"]]],'
            '["map",[[20,["uuid","f0"]]]]]],"headings":["name","fail_mode","protocols",'
            '"datapath_type","other_config","stp_enable","rstp_enable","controller",'
            '"flow_tables"]}')
    [row] = ovs_settings._rows(json.loads(line))
    assert row == {"name": "b1", "fail_mode": "secure", "protocols": "OpenFlow13",
                   "datapath_type": "netdev", "other_config": {"datapath-id": "000000000000000a"},
                   "stp_enable": False, "rstp_enable": False, "controller": ["95", "ec"],
                   "flow_tables": {20: "f0"}}
    assert ovs_settings._value(["set", []]) is None  # an unset optional column


def test_a_switch_not_checked_yet_is_not_reported_ok():
    """Health stays degraded between a switch's programming and its first check."""
    pending = ovs_settings.Review(pending=True)
    assert not pending.ok and not pending.tables_bounded
    assert pending.to_dict() == {"ok": False, "pending": "not checked yet"}
    assert ovs_settings.Review().ok


def test_fixes_of_many_bridges_fit_one_command():
    """Each bridge's new Flow_Table rows have their own names, so one ovs-vsctl (one
    transaction) fixes a whole round's bridges."""
    fixes = [p for name in ("br0", "sc-001", "br1") for p in ovs_settings.review(
        readme_bridge(name=name), [OURS], [], {}, DP_ID, MAX_FLOWS, 6653)
        if p.setting == "flow_tables"]
    argv = shlex.split(ovs_settings.command(DEFAULT_OVSDB, fixes))
    symbols = [a.split("=", 1)[1] for a in argv if a.startswith("--id=")]
    assert len(set(symbols)) == len(symbols) == 3 * len(tables.PIPELINE)
    assert "@sc_001_t20" in symbols and "flow_tables:20=@sc_001_t20" in argv
