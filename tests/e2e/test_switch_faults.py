"""Switches that misbehave: a second bridge claiming a datapath id already in use, a
stalled ovs-vswitchd, a bridge that speaks only OpenFlow 1.0, and OVS settings changed
under a running controller. What a user sees: health, the log, REST answers, the flows.
"""
import os
import shlex
import signal
import time

import pytest

from app.ovs.settings import RECHECK
from flows import tables
from testbed.proc import run, wait_for
from testbed.topology import TwoSites

CAPTURE = {"name": "to-far", "ipv4_dst": "198.51.100.0/24"}


@pytest.fixture(scope="module")
def bed():
    with TwoSites() as two_sites:
        two_sites.warm_up()
        yield two_sites


def capture_flows(bed, site):
    cookie, mask = tables.kind_cookies(tables.KIND_CAPTURE)
    return [f for f in bed.flows(site) if f.cookie & mask == cookie]


def health(bed, site="site-a"):
    return bed.controller.health()["switches"][site]


def test_a_second_bridge_with_the_same_datapath_id_is_refused(bed):
    intruder = bed.prefix + "x"
    before = bed.ovs.static_flows(bed.bridge("a"))
    # as the issue reproduced it: another bridge, site A's dp_id, pointed at the controller
    bed.ovs.add_bridge(intruder, 0xA, bed.of_port)
    try:
        named = wait_for(lambda: health(bed).get("intruders"), 10, what="intruder in health")
        assert [i["bridge"] for i in named] == [intruder]
        assert bed.controller.health()["status"] == "degraded"
        assert health(bed)["connected"] and health(bed)["state"] == "programmed"
        status, body = bed.controller.call("POST", "/v1/switches/site-a/captures", CAPTURE)
        assert status == 201, body
        assert capture_flows(bed, "a")  # on the real bridge
        assert bed.ovs.flows(intruder) == []  # the intruder got nothing
        log = [line for line in bed.controller.log().splitlines() if intruder in line]
        assert len(log) == 1 and "left unprogrammed" in log[0], log
    finally:
        bed.ovs.vsctl("del-br", intruder)
    wait_for(lambda: "intruders" not in health(bed), 10, what="intruder gone from health")
    assert bed.controller.health()["status"] == "ok"
    status, _ = bed.controller.call("DELETE", "/v1/switches/site-a/captures/to-far")
    assert status == 204
    assert bed.ovs.static_flows(bed.bridge("a")) == before  # nothing of site A was lost
    assert bed["hostA"].ping(bed["serverB"].ipv4, count=2) == 2


def test_when_the_owner_leaves_the_waiting_bridge_takes_over_and_gives_it_back(bed):
    """First come, first served, and never a live bridge left unprogrammed: when the
    connection that programs a datapath goes, the one waiting with its dp_id takes over
    (as it would had it connected then); when that one goes, the real bridge is back."""
    real, other = bed.bridge("a"), bed.prefix + "y"
    before = bed.ovs.static_flows(real)
    bed.ovs.add_bridge(other, 0xA, bed.of_port)
    try:
        wait_for(lambda: health(bed).get("intruders"), 10, what="waiting bridge in health")
        bed.ovs.vsctl("del-controller", real)
        wait_for(lambda: "intruders" not in health(bed)
                 and health(bed)["state"] == "programmed", 15,
                 what="the waiting bridge programmed")
        assert bed.ovs.static_flows(other)  # the pipeline (its ports are not site A's)
        bed.ovs.vsctl("set-controller", real, "tcp:127.0.0.1:%d" % bed.of_port)
        wait_for(lambda: [i["bridge"] for i in health(bed).get("intruders", [])] == [real],
                 15, what="the real bridge waiting")
    finally:
        bed.ovs.vsctl("set-controller", real, "tcp:127.0.0.1:%d" % bed.of_port)
        bed.ovs.vsctl("del-br", other)
    wait_for(lambda: "intruders" not in health(bed) and health(bed)["state"] == "programmed",
             15, what="the real bridge programmed again")
    assert bed.ovs.static_flows(real) == before
    assert bed["hostA"].ping(bed["serverB"].ipv4, count=2) == 2


def test_a_stalled_switch_reads_degraded_within_5_s_and_ok_when_it_answers(bed):
    vswitchd = bed.ovs.pids["ovs-vswitchd"]
    os.kill(vswitchd, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        wait_for(lambda: not health(bed)["answering"], 5, interval=0.1,
                 what="stalled switch in health")
        seen = time.monotonic() - stopped
        # site B's bridge is on the same ovs-vswitchd: silent too, by now or very soon
        wait_for(lambda: not health(bed, "site-b")["answering"], 5, what="site B silent")
        assert bed.controller.health()["status"] == "degraded"
        started = time.monotonic()
        status, body = bed.controller.call("POST", "/v1/switches/site-a/captures", CAPTURE)
        assert status == 503 and "has not answered" in body["error"], body
        assert time.monotonic() - started < 1  # at once, not after the 10 s timeout
        started = time.monotonic()
        metrics = bed.controller.call("GET", "/metrics")[1]
        assert 'sggw_switch_answering{datapath="site-a"} 0' in metrics
        assert time.monotonic() - started < 1
    finally:
        os.kill(vswitchd, signal.SIGCONT)
    wait_for(lambda: bed.controller.health()["status"] == "ok", 10, what="ok again")
    print("stall seen after %.1f s" % seen)
    status, _ = bed.controller.call("GET", "/v1/switches/site-a/captures")
    assert status == 200


def test_when_ovsdb_server_goes_away_the_switch_reads_degraded_and_then_ok_again(bed):
    """OVS 3.1's userspace ovs-vswitchd stalls without its database: sggw sees a switch
    that does not answer."""
    bed.ovs.stop_ovsdb()
    try:
        wait_for(lambda: not health(bed)["answering"], 5, interval=0.1,
                 what="silent switch without ovsdb-server")
        assert bed.controller.health()["status"] == "degraded"
    finally:
        bed.ovs.start_ovsdb()
    wait_for(lambda: bed.controller.health()["status"] == "ok", RECHECK + 5,
             what="ok with ovsdb-server back")
    assert bed["hostA"].ping(bed["serverB"].ipv4, count=2) == 2


def test_a_bridge_that_speaks_only_openflow_1_0_gets_one_clear_line(bed):
    old = bed.prefix + "o"
    bed.ovs.vsctl("add-br", old, "--", "set", "bridge", old, "datapath_type=netdev",
                  "protocols=OpenFlow10", "other-config:datapath-id=%016x" % 0xC)
    logged = len(bed.controller.log().splitlines())
    try:
        bed.ovs.vsctl("set-controller", old, "tcp:127.0.0.1:%d" % bed.of_port)
        # OVS retries the connection (every 1 s, backing off): a second attempt gets the
        # same one line
        wait_for(lambda: bed.controller.log().count("does not speak OpenFlow 1.3") >= 2, 20,
                 what="the log line for two attempts")
    finally:
        bed.ovs.vsctl("del-br", old)
    new = bed.controller.log().splitlines()[logged:]
    assert new and all("does not speak OpenFlow 1.3" in line
                       and "ovs-vsctl set bridge" in line for line in new), new
    assert bed.controller.health()["status"] == "ok"


def test_ovs_settings_changed_later_are_fixed_or_reported_with_their_command(bed):
    bridge = bed.bridge("b")
    bed.ovs.vsctl("set", "bridge", bridge, "stp_enable=true", "fail_mode=standalone")
    try:
        found = wait_for(lambda: health(bed, "site-b")["ovs_settings"].get("problems"),
                         RECHECK + 3, what="the problem in health")
        assert len(found) == 1 and found[0].startswith("stp_enable is true"), found
        # sggw put fail_mode back by itself; STP it reports
        assert bed.ovs.vsctl("get", "bridge", bridge, "fail_mode").strip() == "secure"
        fix = health(bed, "site-b")["ovs_settings"]["fix"]
        assert fix == "ovs-vsctl --db=%s -- set Bridge %s stp_enable=false" % (
            bed.ovs.db, bridge)
        lines = [line for line in bed.controller.log().splitlines() if fix in line]
        assert len(lines) == 1, lines
        run(*shlex.split(fix))  # what the user runs
        wait_for(lambda: bed.controller.health()["status"] == "ok", RECHECK + 3,
                 what="ok after the fix")
    finally:
        bed.ovs.vsctl("set", "bridge", bridge, "stp_enable=false", "fail_mode=secure")
