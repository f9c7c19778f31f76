"""A change fully happens or nothing changes, on the real switch and the real file system
(issue 9): after a failure at any step, what the switch holds, what the state file holds
and what the API lists agree, no temporary file is left, and a retry succeeds.

The state file lives on a small tmpfs of the test's own, so it can be filled up; a
read-only bind mount makes its replacement fail; SIGSTOP stalls ovs-vswitchd; deleting a
group behind the controller's back makes the switch refuse the next change."""
import contextlib
import glob
import json
import os
import re
import tempfile
import time

import pytest
import yaml

from flows import tables
from testbed import faults
from testbed.proc import wait_for
from testbed.topology import TwoSites

SITE = "site-a"
MIRRORS = "/v1/switches/site-a/mirrors"


@pytest.fixture(scope="module")
def state_dir():
    with faults.tmpfs(tempfile.mkdtemp(prefix="sggw-state-fs-")) as path:
        yield path
    os.rmdir(path)


@pytest.fixture(scope="module")
def bed(state_dir):
    state = os.path.join(state_dir, "state.json")
    with TwoSites(analyzers=2, extra_config={"state_file": state}) as two_sites:
        two_sites.state_file = state
        yield two_sites


def call(bed, method, path="", body=None):
    return bed.controller.call(method, MIRRORS + path, body)


def session(bed, name, analyzer, **options):
    return dict(name=name, sources=[{"port": bed["hostA"].outside, "direction": "both"}],
                destinations=[{"port": bed[analyzer].outside}], **options)


def stored(bed):
    """{name: stored body} of site A's REST-made mirror sessions in the state file."""
    with open(bed.state_file) as handle:
        data = json.load(handle)
    return {m["name"]: m for m in data["datapaths"].get(SITE, {}).get("mirrors", [])}


def switch_state(bed):
    """What bridge A holds of sggw's: static flows, groups, meters (no counters)."""
    bridge = bed.bridge("a")
    return bed.ovs.static_flows(bridge), bed.ovs.groups(bridge), bed.ovs.meters(bridge)


def _ids(lines, pattern, base, size=0x10000):
    found = {int(v, 0) for line in lines for v in re.findall(pattern, line)}
    return {v - base for v in found if base <= v < base + size}


def assert_agree(bed):
    """The state file, the API and the switch show the same sessions, and no temporary
    file is left next to the state file."""
    store = stored(bed)
    listed = {m["name"]: m for m in bed.controller.get(MIRRORS) if m["source"] == "api"}
    assert set(listed) == set(store)
    for name, body in store.items():
        assert {k: listed[name][k] for k in body if k != "id"} == \
            {k: v for k, v in body.items() if k != "id"}
    flows, groups, meters = switch_state(bed)
    ids = {body["id"] for body in store.values()}
    assert _ids(groups, r"group_id=(\d+)", tables.GROUP_SESSION_BASE) == ids
    assert _ids(groups, r"set_field:(0x[0-9a-f]+|\d+)->reg5", 0) == ids  # hooked
    assert _ids(flows, r"cookie=(0x[0-9a-f]+)", tables.cookie(tables.KIND_MIRROR),
                1 << 32) == ids
    assert _ids(meters, r"meter=(\d+)", tables.METER_SESSION_BASE) == \
        {body["id"] for body in store.values() if body.get("rate_limit")}
    assert glob.glob(os.path.join(os.path.dirname(bed.state_file), ".sggw-state-*")) == []


def ensure_state_file(bed):
    if not os.path.exists(bed.state_file):
        assert call(bed, "POST", "", session(bed, "first", "ana1"))[0] == 201
        assert call(bed, "DELETE", "/first")[0] == 204


# --- case 1: the store's final rename fails -----------------------------------------------

def test_a_state_file_bind_mounted_on_its_own_works(bed, tmp_path):
    ensure_state_file(bed)
    source = tmp_path / "state.json"
    source.write_text(open(bed.state_file).read())
    with faults.bind_file(str(source), bed.state_file):
        status, body = call(bed, "POST", "", session(bed, "bound", "ana1"))
        assert status == 201, body
        assert_agree(bed)
        assert [m["name"] for m in json.loads(source.read_text())["datapaths"][SITE]
                ["mirrors"]] == ["bound"]
        bed.controller.stop()  # it comes back from the bind-mounted file
        bed.controller.start().wait_programmed()
        assert [m["name"] for m in bed.controller.get(MIRRORS)] == ["bound"]
        assert call(bed, "DELETE", "/bound")[0] == 204
        assert_agree(bed)
        assert json.loads(source.read_text())["datapaths"][SITE]["mirrors"] == []


def test_a_state_file_that_cannot_be_replaced_changes_the_switch_back(bed):
    ensure_state_file(bed)
    before, saved = switch_state(bed), stored(bed)
    with faults.read_only_file(bed.state_file):
        for _ in range(2):  # retries fail the same way and leave nothing behind
            status, body = call(bed, "POST", "", session(bed, "web", "ana1",
                                                         rate_limit={"pps": 50}))
            assert status == 500, body
            assert "nothing was changed (the switch was changed back)" in body["error"], body
            assert switch_state(bed) == before
            assert stored(bed) == saved
            assert_agree(bed)
    status, body = call(bed, "POST", "", session(bed, "web", "ana1", rate_limit={"pps": 50}))
    assert status == 201, body
    assert_agree(bed)
    assert call(bed, "DELETE", "/web")[0] == 204


# --- case 2: the switch stalls during a rate-limited create ---------------------------------

def test_a_stalled_switch_keeps_no_meter_and_the_retry_succeeds(bed):
    before = switch_state(bed)
    body = session(bed, "limited", "ana2", rate_limit={"pps": 100})
    with faults.stalled(bed.ovs.pids["ovs-vswitchd"]):
        status, answer = call(bed, "POST", "", body)
    assert status == 503, answer
    bed.controller.wait_programmed(60)
    assert switch_state(bed) == before  # the meter added before the stall is gone again
    assert_agree(bed)
    status, answer = call(bed, "POST", "", body)
    assert status == 201, answer
    assert_agree(bed)
    assert call(bed, "DELETE", "/limited")[0] == 204


# --- every step of create, update and delete, failed in turn -----------------------------

EXPECTED = {"switch error": 502, "switch stall": 503, "store write error": 500,
            "rename error": 500}


def refusing(bed):
    """The hook chunk groups deleted behind the controller's back: the switch refuses the
    next change to them (OFPGMFC_UNKNOWN_GROUP)."""
    bridge = bed.bridge("a")
    for group_id in _ids(bed.ovs.groups(bridge), r"group_id=(\d+)", 0, 1 << 32):
        if group_id in tables.CHUNK_RANGE:
            bed.ovs.ofctl("del-groups", bridge, "group_id=%d" % group_id)
    return contextlib.nullcontext()  # the controller's repair puts them back


def inject(bed, fault):
    if fault == "switch error":
        return refusing(bed)
    if fault == "switch stall":
        return faults.stalled(bed.ovs.pids["ovs-vswitchd"])
    if fault == "store write error":
        return faults.full(os.path.dirname(bed.state_file))
    return faults.read_only_file(bed.state_file)


def change(bed, op):
    """(status, answer) of the operation on session ``f``; it shares its hook with ``g``."""
    if op == "create":
        return call(bed, "POST", "", session(bed, "f", "ana2", rate_limit={"pps": 50}))
    if op == "update":
        return call(bed, "PUT", "/f", session(bed, "f", "ana2"))  # the rate limit goes
    return call(bed, "DELETE", "/f")


@pytest.fixture
def other_session(bed):
    """Session ``g`` on the same source: every change to ``f`` changes a shared group."""
    status, body = call(bed, "POST", "", session(bed, "g", "ana1"))
    assert status == 201, body
    yield
    for name in ("f", "g"):
        assert call(bed, "DELETE", "/" + name)[0] in (204, 404)


@pytest.mark.parametrize("fault", sorted(EXPECTED))
@pytest.mark.parametrize("op", ["create", "update", "delete"])
def test_a_failed_step_changes_nothing_and_the_retry_succeeds(bed, other_session, op, fault):
    if op != "create":
        status, body = call(bed, "POST", "", session(bed, "f", "ana2", rate_limit={"pps": 50}))
        assert status == 201, body
    before, saved = switch_state(bed), stored(bed)
    started = time.monotonic()
    with inject(bed, fault):
        status, answer = change(bed, op)
    assert status == EXPECTED[fault], answer
    assert "nothing was changed" in answer["error"], answer
    assert time.monotonic() - started < 25
    bed.controller.wait_programmed(60)
    wait_for(lambda: switch_state(bed) == before, 10, what="the switch as it was")
    assert stored(bed) == saved
    assert_agree(bed)
    status, answer = change(bed, op)
    assert status in (200, 201, 204), answer
    assert_agree(bed)


# --- case 3: what no longer fits the config is kept, and comes back ------------------------

def restart(bed, cfg=None):
    """Restart the controller with ``cfg`` (a config dict; default: the bed's own)."""
    bed.controller.stop()
    if cfg is None:
        bed.write_config()
    else:
        with open(bed.config_path, "w") as handle:
            yaml.safe_dump(cfg, handle, sort_keys=False)
    bed.controller.start().wait_programmed()


def test_objects_of_a_removed_datapath_are_kept_and_come_back(bed):
    rule = {"name": "kept-b", "ipv4_dst": "10.9.0.0/16"}
    captures_b = "/v1/switches/site-b/captures"
    assert bed.controller.call("POST", captures_b, rule)[0] == 201
    cookie = tables.cookie(tables.KIND_CAPTURE)
    on_b = [f for f in bed.flows("b", tables.CAPTURE.id) if f.cookie & ~0xFFFFFFFF == cookie]
    assert on_b
    cfg = bed.config()
    del cfg["datapaths"]["site-b"]
    try:
        restart(bed, cfg)
        health = bed.controller.health()
        assert health["status"] == "degraded"
        assert [(k["switch"], k["kind"], k["name"]) for k in health["kept_not_applied"]] == \
            [("site-b", "captures", "kept-b")]
        assert "datapath 'site-b' is not in the config" in health["kept_not_applied"][0]["reason"]
        assert "kept in the store but not applied" in bed.controller.log()
        # an unrelated change is saved without losing the kept rule
        status, body = call(bed, "POST", "", session(bed, "unrelated", "ana1"))
        assert status == 201, body
        with open(bed.state_file) as handle:
            data = json.load(handle)
        assert [c["name"] for c in data["datapaths"]["site-b"]["captures"]] == ["kept-b"]
    finally:
        restart(bed)
    health = bed.controller.health()
    assert "kept_not_applied" not in health and health["status"] == "ok", health
    assert [c["name"] for c in bed.controller.get(captures_b) if c["source"] == "api"] == \
        ["kept-b"]
    again = [f for f in bed.flows("b", tables.CAPTURE.id) if f.cookie & ~0xFFFFFFFF == cookie]
    assert [f.cookie for f in again] == [f.cookie for f in on_b]  # applied again
    assert bed.controller.call("DELETE", captures_b + "/kept-b")[0] == 204
    assert call(bed, "DELETE", "/unrelated")[0] == 204
    assert_agree(bed)


# --- case 4: ids stay inside the switch's id layout ---------------------------------------

def test_a_session_next_to_the_highest_id_does_not_collide_with_hook_groups(bed):
    ensure_state_file(bed)
    with open(bed.state_file) as handle:
        data = json.load(handle)
    top = {"name": "top", "sources": [{"port": bed["hostA"].outside, "direction": "both"}],
           "filter": None, "destinations": [{"port": bed["ana1"].outside, "vlan": None,
                                             "eth_dst": None}],
           "snaplen": None, "rate_limit": None, "id": tables.MAX_SESSION_ID}  # as sggw writes
    data["datapaths"].setdefault(SITE, {"captures": [], "mirrors": []})["mirrors"] = [top]
    bed.controller.stop()
    with open(bed.state_file, "w") as handle:
        json.dump(data, handle)
    restart(bed)
    assert_agree(bed)
    status, body = call(bed, "POST", "", session(bed, "next", "ana2"))
    assert status == 201, body  # before: id 65536, whose group is port 0's rx hook group
    assert stored(bed)["next"]["id"] == 1001
    assert_agree(bed)
    for name in ("top", "next"):
        assert call(bed, "DELETE", "/" + name)[0] == 204
    assert_agree(bed)
