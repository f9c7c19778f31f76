"""One bed for every contender: the two sites of :mod:`testbed.topology`, re-programmed.

Each contender gets the same bridges, namespaces, veth pairs and traffic; only what
programs the switch changes (and, for the contenders that only switch L2, a route that puts
the other site on-link, since nothing routes for them):

* ``normal``   -- no controller, one ``actions=NORMAL`` flow per bridge (hosts on-link);
* ``sggw``     -- the sggw controller with a config variant (hosts use their gateways);
* ``reactive`` -- a Ryu ``simple_switch_13``-style controller installing a flow per 5-tuple
  after a packet-in (hosts on-link).

Between contenders every flow, group, meter and mirror is removed, and the datapath cache,
the conntrack table and the hosts' neighbour caches are flushed.
"""
import contextlib
import json
import os
import time

from bench.measure import pin
from bench.reactive_app import FLOW_COOKIE as REACTIVE_FLOW_COOKIE
from flows import tables
from testbed.controller import ROOT, RYU_MANAGER
from testbed.proc import free_port, popen, stop_child, wait_for
from testbed.topology import TwoSites
from testbed.underlay import Underlay

BENCH_REVERSE_PATH = {"idle_timeout": 60, "fin_idle_timeout": 5, "max_flows": 200000}


class BenchBed:
    def __init__(self, analyzers=4):
        self.sites = TwoSites(analyzers=analyzers, reverse_path=dict(BENCH_REVERSE_PATH))
        self.contender = None
        self._reactive = None
        self._underlay = None
        self._undo = contextlib.ExitStack()

    def __enter__(self):
        self.sites.__enter__()
        for ns in self.sites.hosts.values():
            # room for many short flows: the whole port range, and TIME_WAIT reuse
            ns.run("sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535", check=False)
            ns.run("sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", check=False)
        self.contender = "sggw"
        return self

    def __exit__(self, *exc):
        self._stop_reactive()
        self.sites.__exit__(*exc)
        self._undo.close()

    def __getitem__(self, name):
        return self.sites[name]

    @property
    def ovs(self):
        return self.sites.ovs

    @property
    def controller(self):
        return self.sites.controller

    def bridges(self):
        return [self.sites.bridge(site) for site in "ab"]

    # --- contenders -------------------------------------------------------------------------

    def use_normal(self):
        self._detach()
        for bridge in self.bridges():
            self.ovs.ofctl("add-flow", bridge, "actions=NORMAL")
        self._hosts(on_link=True)
        self.contender = "normal"

    def use_sggw(self, **reverse_path):
        """The sggw controller with ``reverse_path`` settings over the bench defaults."""
        self._detach()
        self.sites.reverse_path = dict(BENCH_REVERSE_PATH, **reverse_path)
        self.sites.write_config()
        state = os.path.join(self.sites.workdir, "state.json")  # no REST objects carried over
        if os.path.exists(state):
            os.unlink(state)
        self.controller.start()
        self._attach(self.sites.of_port)
        self.controller.wait_programmed()
        self._hosts(on_link=False)
        self.contender = "sggw"

    def use_reactive(self):
        self._detach()
        port = free_port()
        stats = os.path.join(self.sites.workdir, "reactive-stats.json")
        log = open(os.path.join(self.sites.workdir, "reactive.log"), "ab")
        self._reactive = (popen(RYU_MANAGER, "bench/reactive_app.py", "--ofp-listen-host",
                                "127.0.0.1", "--ofp-tcp-listen-port", port, cwd=ROOT,
                                stdout=log, stderr=log,
                                env=dict(os.environ, REACTIVE_STATS=stats)), stats)
        log.close()
        self._attach(port)
        wait_for(lambda: self.ovs.vsctl("--bare", "--columns=is_connected", "list",
                                        "controller").split() == ["true", "true"], 20,
                 what="both bridges connected to the reactive controller")
        self._hosts(on_link=True)
        self.contender = "reactive"

    def packet_ins(self):
        """Packet-ins the current contender's controller received so far (per bridge)."""
        if self.contender == "sggw":
            return sum(self.controller.packet_ins(self.sites.dp_name(s)) for s in "ab")
        if self.contender == "reactive":
            try:
                with open(self._reactive[1]) as handle:
                    return sum(json.load(handle).values())
            except (OSError, ValueError):
                return 0
        return 0

    def forget_flows(self):
        """Nothing learned about flows, so one run does not slow or speed up the next: no
        sggw reverse path (learned flows, conntrack entries), no reactive per-flow entry,
        an empty datapath cache. MAC and neighbour entries stay."""
        for bridge in self.bridges():
            self.ovs.ofctl("del-flows", bridge, "table=%d" % tables.REVERSE.id)
            self.ovs.ofctl("del-flows", bridge, "cookie=%#x/-1" % REACTIVE_FLOW_COOKIE)
        self.ovs.appctl("dpctl/flush-conntrack")
        self.ovs.flush_datapath_cache()

    def _attach(self, port):
        for bridge in self.bridges():
            self.ovs.vsctl("set-controller", bridge, "tcp:127.0.0.1:%d" % port)

    def _detach(self):
        """No controller, and nothing left on the switches or in the hosts' caches."""
        self.controller.stop()
        self._stop_reactive()
        for bridge in self.bridges():
            self.ovs.vsctl("del-controller", bridge)
            self.ovs.vsctl("--if-exists", "clear", "bridge", bridge, "mirrors")
            self.ovs.ofctl("del-flows", bridge)
            self.ovs.ofctl("del-groups", bridge)
            self.ovs.ofctl("del-meters", bridge, check=False)
        self.ovs.flush_datapath_cache()
        self.ovs.appctl("dpctl/flush-conntrack")
        self.contender = None

    def _stop_reactive(self):
        if self._reactive is not None:
            stop_child(self._reactive[0])
            self._reactive = None

    def _hosts(self, on_link):
        """Routed (each host via its gateway) or on-link (the other site's subnet on eth0)."""
        for host, other in (("hostA", "10.2.0.0/24"), ("serverB", "10.1.0.0/24")):
            ns = self.sites[host].ns
            ns.run("ip", "route", "del", other, check=False)
            if on_link:
                ns.run("ip", "route", "add", other, "dev", "eth0")
        for ns in self.sites.hosts.values():
            ns.run("ip", "neigh", "flush", "all", check=False)
        time.sleep(0.2)

    # --- OVS native mirrors -------------------------------------------------------------------

    def add_native_mirrors(self, source, analyzers):
        """One OVS Mirror row per analyzer: everything ``source`` sends and receives."""
        for i, name in enumerate(analyzers):
            self.add_native_mirror(source, self.sites[name].outside, "bench%d" % i)

    def add_native_mirror(self, source, output, name):
        """An OVS Mirror row: everything ``source`` sends and receives, out of ``output``."""
        self.ovs.vsctl(
            "--", "--id=@src", "get", "port", source,
            "--", "--id=@out", "get", "port", output,
            "--", "--id=@m", "create", "mirror", "name=" + name,
            "select-src-port=@src", "select-dst-port=@src", "output-port=@out",
            "--", "add", "bridge", self.sites.bridge("a"), "mirrors", "@m")

    def underlay(self, mtu):
        """The routed underlay to a remote analyzer (:mod:`testbed.underlay`), built once;
        the bench runs in a network namespace of its own, so its addresses stay there."""
        if self._underlay is None:
            self._underlay = Underlay(self.ovs, self.sites.prefix, mtu).build(self._undo)
        return self._underlay

    def clear_native_mirrors(self):
        self.ovs.vsctl("--if-exists", "clear", "bridge", self.sites.bridge("a"), "mirrors")

    # --- what OVS says ------------------------------------------------------------------------

    @contextlib.contextmanager
    def pinned(self):
        """ovs-vswitchd on CPU 0 (traffic tools go to CPU 1): less noise between runs."""
        pin(self.vswitchd_pid(), "0")
        try:
            yield
        finally:
            pin(self.vswitchd_pid(), "0-%d" % (os.cpu_count() - 1))

    def port_tx(self, site, port):
        """Packets the switch sent out of ``port`` (its own counter)."""
        out = self.ovs.ofctl("dump-ports", self.sites.bridge(site), str(port))
        return int(out.split("tx pkts=")[1].split(",")[0])

    def vswitchd_pid(self):
        return self.ovs.pids["ovs-vswitchd"]

    def learned(self, site):
        """Learned reverse paths, as OVS counts them (no dump of 100k flows)."""
        out = self.ovs.ofctl("dump-aggregate", self.sites.bridge(site),
                             "table=%d" % tables.REVERSE.id)
        return int(out.split("flow_count=")[1].split()[0])
