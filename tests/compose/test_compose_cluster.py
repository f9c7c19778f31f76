"""The compose cluster run for real: three hosts, each a network namespace of its own on one
bridge, each running ``docker-compose.yml`` with ``docker-compose.cluster.yml`` as
docs/deployment.md says: host 1 the switch, a store member and sggw instance 1 (the two-site
bed on its bridges), host 2 a store member and instance 2, host 3 a store member only.
Killing the master's container under traffic loses no ping and the other becomes master.

Slow (it needs the images), so not in the default run: ``bash scripts/test-compose``.
"""
import contextlib
import functools
import os
import re
import secrets
import shutil
import signal
import tempfile
import time

import pytest
import yaml

from testbed.compose import (
    CLUSTER_FILE, COMPOSE_FILE, CONTAINER_PATHS, ContainerController, Deployment,
    ensure_base_image, podman)
from testbed.netns import Namespace, add_address, veth_to_namespace
from testbed.proc import run, wait_for
from testbed.topology import TwoSites
from tests.compose.test_compose import PROJECT_ENV

pytestmark = pytest.mark.compose
SUBNET = "198.18.1"  # RFC 2544's test range: host i is SUBNET.i
PING_INTERVAL = 0.05


def address(host):
    return "%s.%d" % (SUBNET, host)


@pytest.fixture(scope="module")
def hosts():
    """Three hosts' deployments (host 1's ovs and store up), on one bridge in this namespace
    (host 1's) that reaches the other two's; the images are those scripts/test-compose
    built, or built here."""
    if os.geteuid() != 0:
        pytest.fail("the compose test needs root (podman, network namespaces)")
    workdir = tempfile.mkdtemp(prefix="sggw-cluster-")
    tag = secrets.token_hex(2)
    built = Deployment(os.environ.get(PROJECT_ENV) or "sggwtest" + secrets.token_hex(3))
    built_here = not built.built()
    with contextlib.ExitStack() as undo:
        undo.callback(shutil.rmtree, workdir, ignore_errors=True)
        if built_here:
            ensure_base_image()
            built.build()
            undo.callback(built.remove_images)
        bridge = "sgc%sbr" % tag
        run("ip", "link", "add", "name", bridge, "type", "bridge")
        undo.callback(run, "ip", "link", "del", bridge, check=False)
        run("ip", "addr", "add", address(1) + "/24", "dev", bridge)
        run("ip", "link", "set", bridge, "up")
        deployments = []
        for host in (1, 2, 3):
            netns = None
            if host > 1:
                ns = Namespace("sgc%s-h%d" % (tag, host))
                undo.callback(ns.delete)
                veth_to_namespace("sgc%sh%d" % (tag, host), ns)
                run("ip", "link", "set", "sgc%sh%d" % (tag, host), "master", bridge)
                add_address(ns, address(host) + "/24")
                netns = ns.name
            env = {"STORE_ADDRESS": address(host)}
            if host > 1:
                env["STORE_JOIN"] = address(1)
            config = {1: "sggw.yaml", 2: "sggw-2.yaml"}.get(host)  # host 3: no instance
            deployment = Deployment("sgc%sh%d" % (tag, host),
                                    config and os.path.join(workdir, config),
                                    files=(COMPOSE_FILE, CLUSTER_FILE), env=env, netns=netns)
            deployment.tag_images(built)
            undo.callback(deployment.remove_images)
            undo.callback(deployment.down)
            deployments.append(deployment)
        deployments[0].up("ovs", "store")
        yield deployments


class ClusterSites(TwoSites):
    """The two-site bed on host 1's switch, its controller instance 1 of the cluster; the
    config of instance ``host`` is :meth:`instance_config`."""

    def instance_config(self, host):
        cfg = dict(super().config(), **CONTAINER_PATHS)
        cfg["openflow"] = {"host": "0.0.0.0", "port": self.of_port}
        cfg["api"] = {"host": "0.0.0.0", "port": self.api_port}
        if host != 1:  # host 1's switch, over TCP (it listens: see the fixture)
            cfg["ovsdb"] = "tcp:%s:6640" % address(1)
        cfg["cluster"] = {
            "name": "sggw-%d" % host,
            "store": ",".join("tcp:%s:6641" % address(h) for h in (1, 2, 3)),
            "api_url": "http://%s:%d" % (address(host), self.api_port),
            "controllers": [self.target(h) for h in (1, 2) if h != host]}
        return cfg

    def config(self):
        return self.instance_config(1)

    def target(self, host):
        return "tcp:%s:%d" % (address(host), self.of_port)


def instance_api(bed, host):
    return "http://%s:%d" % (address(host), bed.api_port)


@pytest.fixture(scope="module")
def cluster(hosts):
    """The bed up with instance 1; then host 2 (store and instance 2) and host 3 (store);
    both bridges name both instances. {host: controller}."""
    one = hosts[0]
    bed = ClusterSites(workdir=os.path.dirname(one.config), switch=one.switch(), analyzers=0,
                       controller=functools.partial(ContainerController, one))
    with bed:
        bed.ovs.vsctl("set-manager", "ptcp:6640:%s" % address(1))
        two = hosts[1]
        with open(two.config, "w") as handle:
            yaml.safe_dump(bed.instance_config(2), handle, sort_keys=False)
        controllers = {1: bed.controller, 2: ContainerController(
            two, two.config, bed.api_port, os.path.join(bed.workdir, "controller-2.log"))}
        controllers[2].api = instance_api(bed, 2)
        controllers[1].api = instance_api(bed, 1)
        two.up()
        hosts[2].up("store")
        for site in "ab":  # remote controllers: in-band control off, as health tells
            bed.ovs.vsctl("set", "bridge", bed.bridge(site), "other-config:disable-in-band=true",
                          "--", "set-controller", bed.bridge(site), bed.target(1),
                          bed.target(2))
        bed.controllers = controllers
        wait_for(lambda: role(controllers[2]) == "standby" and healthy(controllers[2]), 120,
                 interval=1, what="instance 2 standing by")
        bed.warm_up()
        yield bed


def role(controller):
    health = controller.health()
    return health and health.get("cluster", {}).get("role")


def healthy(controller):
    health = controller.health()
    return health if health and health["status"] == "ok" else None


def store_servers(deployment):
    """The member list host ``deployment``'s store member has of the cluster."""
    out = podman("exec", deployment.container("store"), "ovs-appctl", "-t",
                 "/tmp/sggw-store.ctl", "cluster/status", "SGGW")
    return re.findall(r"\(\w+ at tcp:([\d.]+):6644\)", out)


def test_three_members_two_instances_one_master(cluster, hosts):
    wait_for(lambda: all(len(store_servers(d)) == 3 for d in hosts), 60, interval=1,
             what="three store members")
    assert sorted(store_servers(hosts[0])) == [address(h) for h in (1, 2, 3)]
    roles = {host: role(c) for host, c in cluster.controllers.items()}
    assert sorted(roles.values()) == ["master", "standby"], roles
    for host, controller in cluster.controllers.items():
        health = wait_for(lambda: healthy(controller), 30, what="instance %d ok" % host)
        assert len(health["cluster"]["store"]) == 3
        print("instance %d: %s, generation %s, status %s" % (
            host, health["cluster"]["role"], health["cluster"]["generation"],
            health["status"]))


def test_killing_the_masters_container_under_traffic_loses_no_ping(cluster, hosts):
    old = [h for h, c in cluster.controllers.items() if role(c) == "master"][0]
    new = 3 - old
    ping = cluster["hostA"].popen("ping", "-n", "-i", str(PING_INTERVAL), "-W", "1",
                                  cluster["serverB"].ipv4, stdout=-1, text=True)
    try:
        time.sleep(1)
        killed = time.monotonic()  # the command takes a second itself: counted in
        hosts[old - 1].compose("kill", "controller")
        wait_for(lambda: granted(cluster.controllers[new]), 30, interval=0.05,
                 what="instance %d master of both switches" % new)
        took = time.monotonic() - killed
        time.sleep(1)
    finally:
        ping.send_signal(signal.SIGINT)
        out = ping.communicate(timeout=10)[0]
    sent, got = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
    print("compose cluster: instance %d's container killed, instance %d master of both "
          "switches %.2f s after the kill command began; pings: %d sent, %d received"
          % (old, new, took, sent, got))
    assert sent >= 30 and got == sent, out
    assert wait_for(lambda: healthy(cluster.controllers[new]), 30, what="new master ok")
    wait_for(lambda: masters(cluster) == [cluster.target(new)] * 2, 15,
             what="OVS showing instance %d master of both bridges" % new)
    hosts[old - 1].up("controller")
    wait_for(lambda: role(cluster.controllers[old]) == "standby", 120, interval=1,
             what="instance %d back as standby" % old)


def masters(bed):
    """The targets the bridges' controller rows say are master (OVS writes them every few
    seconds)."""
    rows = bed.ovs.vsctl("--columns=target,role", "--format=csv", "--data=bare",
                         "--no-headings", "list", "controller").splitlines()
    return sorted(line.split(",")[0] for line in rows if line.endswith(",master"))


def granted(controller):
    health = controller.health()
    return health and health["cluster"]["role"] == "master" and all(
        s.get("role") == "master" and s["state"] == "programmed"
        for s in health["switches"].values())
