"""docker-compose.yml run for real: both images built with podman, started with
podman-compose (``network_mode: host``), the two-site bed on the containerized switch.

Slow (it builds two images), so not in the default run: ``bash scripts/test-compose``
builds the images, runs this module in a private network namespace and removes what it
made. Run on its own (``pytest -m compose tests/compose``, as root, in a namespace that
reaches the Debian mirror and PyPI) it builds and removes the images itself.
"""
import functools
import os
import secrets
import shutil
import tempfile

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from testbed.compose import CONTAINER_PATHS, ContainerController, Deployment, ensure_base_image
from testbed.proc import run
from testbed.sniff import Sniffer
from testbed.topology import TwoSites
from tests.e2e.test_mirrors import api, both, frames, session, to, watching

pytestmark = pytest.mark.compose
PROJECT_ENV = "SGGW_COMPOSE_PROJECT"  # images built already (scripts/test-compose)


@pytest.fixture(scope="module")
def deployment():
    """The ovs service up (the bed starts the controller service once its config exists);
    on exit its containers and volumes go, and the images if built here."""
    if os.geteuid() != 0:
        pytest.fail("the compose test needs root (podman, network namespaces)")
    workdir = tempfile.mkdtemp(prefix="sggw-compose-")
    project = os.environ.get(PROJECT_ENV) or "sggwtest" + secrets.token_hex(3)
    dep = Deployment(project, os.path.join(workdir, "sggw.yaml"))
    built_here = not dep.built()
    try:
        if built_here:
            ensure_base_image()
            dep.build()
        dep.up("ovs")
        yield dep
    finally:
        dep.down()
        if built_here:
            dep.remove_images()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def bed(deployment):
    with TwoSites(workdir=os.path.dirname(deployment.config), switch=deployment.switch(),
                  analyzers=1, controller=functools.partial(ContainerController, deployment),
                  extra_config=CONTAINER_PATHS) as two_sites:
        two_sites.warm_up()
        yield two_sites


def switch_setup(bed):
    """What the database says about the bed's bridges: ports, controller, datapath id."""
    return {bridge: (sorted(bed.ovs.vsctl("list-ports", bridge).split()),
                     bed.ovs.vsctl("get-controller", bridge).strip(),
                     bed.ovs.vsctl("get", "bridge", bridge, "other-config:datapath-id").strip())
            for bridge in (bed.bridge("a"), bed.bridge("b"))}


def assert_forwards_through_the_tunnel(bed):
    """hostA pings serverB (the other site, only reachable through the tunnel); the replies
    come from the gateway's MAC."""
    host, server, router = bed["hostA"], bed["serverB"], bed["routerA"]
    with Sniffer(host.ns, bpf="icmp") as at_host:
        assert host.ping(server.ipv4, count=3) == 3
    replies = [p for p in at_host.packets
               if IP in p and p[IP].src == server.ipv4 and p[ICMP].type == 0]
    assert len(replies) == 3
    assert {(p[Ether].dst, p[Ether].src) for p in replies} == {(host.mac, router.mac)}


def assert_mirrors_to_the_analyzer(bed):
    with watching(bed, ("ana1",), bpf="icmp") as cap:
        assert bed["hostA"].ping(bed["serverB"].ipv4, count=3) == 3
    assert len(cap["wire"].packets) == 6
    assert frames(cap["ana1"].packets) == frames(cap["wire"].packets)


def test_the_controller_programs_both_bridges_and_health_is_ok(bed):
    health = bed.controller.get("/v1/health")
    assert health["status"] == "ok", health  # ok needs ovs-vsctl in the controller image
    assert {s["state"] for s in health["switches"].values()} == {"programmed"}
    for site in "ab":
        assert bed.ovs.static_flows(bed.bridge(site))


def test_a_host_reaches_the_other_site_through_the_tunnel(bed):
    assert_forwards_through_the_tunnel(bed)


def test_a_mirror_session_made_over_rest_copies_to_the_analyzer(bed):
    with session(bed, "span", both(bed), to(bed, "ana1")):
        assert_mirrors_to_the_analyzer(bed)


def test_up_force_recreate_keeps_bridges_ports_the_session_and_forwarding(bed, deployment):
    before = switch_setup(bed)
    old = {s: deployment.inspect(s, ".Id") for s in ("ovs", "controller")}
    with session(bed, "kept", both(bed), to(bed, "ana1")):
        deployment.up(recreate=True)
        assert all(deployment.inspect(s, ".Id") != old[s] for s in old)  # new containers
        bed.controller.wait_programmed(timeout=60)
        assert switch_setup(bed) == before
        assert [(m["name"], m["source"]) for m in api(bed, "GET")[1]] == [("kept", "api")]
        assert bed.controller.get("/v1/health")["status"] == "ok"
        bed.warm_up()  # the new ovs-vswitchd learns the hosts again (flows are not kept)
        assert_forwards_through_the_tunnel(bed)
        assert_mirrors_to_the_analyzer(bed)


def test_stopping_takes_under_5_s_exits_0_and_keeps_the_database(bed, deployment):
    before = switch_setup(bed)
    seconds = deployment.stop()
    print("compose stop: %.1f s" % seconds)
    assert seconds < 5
    assert deployment.exit_codes() == {"ovs": 0, "controller": 0}
    # the stopped switch's database, read from the volume without a server
    query = '["Open_vSwitch",{"op":"select","table":"Bridge","where":[],"columns":["name"]}]'
    dump = run("ovsdb-tool", "query", os.path.join(deployment.volume("ovs-db"), "conf.db"),
               query)
    assert all('"%s"' % bridge in dump for bridge in before)
    # and it comes back as it was
    deployment.up()
    bed.controller.wait_programmed(timeout=60)
    assert switch_setup(bed) == before
    bed.warm_up()
    assert_forwards_through_the_tunnel(bed)
