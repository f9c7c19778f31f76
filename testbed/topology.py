"""The two-site bed of the core issue, on one private Open vSwitch.

    site A (bridge A, dp 0xa)                      site B (bridge B, dp 0xb)
    hostA   lan    port 1  10.1.0.10  fd00:1::10    serverB lan    port 1  10.2.0.10  fd00:2::10
    routerA wan    port 2  10.1.0.1   fd00:1::1     routerB wan    port 2  10.2.0.1   fd00:2::1
    tunnel         port 3  <-- veth pair, or -->    tunnel         port 3
                           two OpenVPN TAP peers (UDP on 127.0.0.1)
    endpoint LOCAL         10.1.0.2/24 (no gateway route: everything on-link)
    ana1..N  ports 11..    listening analyzers for mirror sessions (optional)

Hosts use their router as default gateway; routers have no route to the other site and
do not forward, so the only way between the sites is the tunnel. Behind routerA is an
off-subnet address, 192.0.2.1 (TEST-NET-1), for the endpoint's own traffic.
"""
import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

import yaml

from app import config as app_config
from app.ovs import cli as ovs_cli
from flows import tables
from testbed.controller import Controller
from testbed.netns import Namespace, add_address, delete_link, veth_pair, veth_to_namespace
from testbed.openvpn import OpenVpnPair
from testbed.ovs import PrivateOvs
from testbed.proc import free_port, run, wait_for

FAR_V4 = "192.0.2.1"
TUNNELS = ("veth", "openvpn")  # what joins the two sites' tunnel ports


class Host:
    def __init__(self, ns, mac, ipv4, ipv6, port, outside):
        self.ns, self.mac, self.ipv4, self.ipv6 = ns, mac, ipv4, ipv6
        self.port, self.outside = port, outside

    def __getattr__(self, name):  # ping, run, popen, ... of the namespace
        return getattr(self.ns, name)


SITES = {
    "a": {"dp_id": 0xA, "v4": "10.1.0", "v6": "fd00:1:", "mac": "02:a0:00:00:00",
          "lan": "hostA", "wan": "routerA", "remote_v4": "10.2.0.0/16",
          "remote_v6": "fd00:2::/48"},
    "b": {"dp_id": 0xB, "v4": "10.2.0", "v6": "fd00:2:", "mac": "02:b0:00:00:00",
          "lan": "serverB", "wan": "routerB", "remote_v4": "10.1.0.0/16",
          "remote_v6": "fd00:1::/48"},
}


_ADDRESS_FIELDS = ("nw_src", "nw_dst", "ipv6_src", "ipv6_dst")  # as dump-flows names them


class TwoSites:
    """Build with ``with TwoSites() as bed:``; everything is removed on exit, even on error.

    Its files (config, logs) live in a temporary directory, removed too unless the
    environment has SGGW_KEEP_BED=1. ``tunnel`` is one of TUNNELS.

    By default the bed runs a private Open vSwitch, whose bridges use ``datapath`` (OVS's
    userspace datapath, ``netdev``, or the kernel's, ``system``), and the controller as a
    process. Given ``switch`` (an :class:`~testbed.ovs.Ovs` that runs already) it builds its
    bridges there and deletes them on exit; given ``controller`` (called like
    :class:`~testbed.controller.Controller`) it starts that instead.
    """

    def __init__(self, reverse_path=None, capture=None, workdir=None, token=None,
                 extra_config=None, analyzers=0, tunnel="veth", switch=None,
                 controller=Controller, datapath="netdev"):
        if tunnel not in TUNNELS:
            raise ValueError("tunnel: %r is not one of %s" % (tunnel, ", ".join(TUNNELS)))
        self.id = secrets.token_hex(2)
        self.prefix = "sg" + self.id
        self._own_workdir = workdir is None and not os.environ.get("SGGW_KEEP_BED")
        self.workdir = workdir or tempfile.mkdtemp(prefix="sggw-bed-")
        self.reverse_path = dict({"max_flows": 1000}, **(reverse_path or {}))
        self.capture = capture  # {"a": [...], "b": [...]} or None for the defaults
        self.token = token
        self.extra_config = extra_config or {}
        self.analyzers = analyzers  # listening hosts on bridge A (ports 11..), for mirrors
        self.tunnel = tunnel
        self.hosts = {}
        self._switch, self._controller = switch, controller
        self.datapath = switch.datapath if switch is not None else datapath
        self._undo = contextlib.ExitStack()
        self.ovs = self.controller = self.endpoint = self.vpn = None

    # --- names ------------------------------------------------------------------------------

    def bridge(self, site):
        return "%s%s" % (self.prefix, site)  # also the name of its LOCAL tap device

    def dp_name(self, site):
        return "site-" + site

    def tunnel_port(self, site):
        return "%st%s" % (self.prefix, site)

    def __getitem__(self, name):
        return self.hosts[name]

    # --- life cycle ---------------------------------------------------------------------------

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        if self._switch is None:
            self.ovs = PrivateOvs(os.path.join(self.workdir, "ovs"), self.datapath)
            self._undo.callback(self.ovs.stop)
            self.ovs.start()
        else:
            self.ovs = self._switch
        self.of_port, self.api_port = free_port(), free_port()
        for site in SITES:
            self._build_site(site)
        self._build_tunnel()
        self._build_endpoint()
        for i in range(1, self.analyzers + 1):
            self._build_analyzer(i)
        self.config_path = os.path.join(self.workdir, "sggw.yaml")
        self.write_config()
        self.controller = self._controller(self.config_path, self.api_port,
                                           os.path.join(self.workdir, "controller.log"),
                                           token=self.token)
        self._undo.callback(lambda: self.controller.stop())
        self.controller.start()
        self.controller.wait_programmed()
        return self

    def stop(self):
        # daemons first (by PID), so nothing holds the devices being deleted
        if self.controller is not None:
            self.controller.stop()
        if self._switch is None and self.ovs is not None:
            self.ovs.stop()
        self._undo.close()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _namespace(self, name):
        ns = Namespace("%s-%s" % (self.prefix, name))
        self._undo.callback(ns.delete)
        return ns

    def _build_site(self, site):
        spec = SITES[site]
        bridge = self.bridge(site)
        if self._switch is not None:
            self._undo.callback(self.ovs.vsctl, "--if-exists", "del-br", bridge)
        self.ovs.add_bridge(bridge, spec["dp_id"], self.of_port)
        self.ovs.vsctl("set", "bridge", bridge, "other-config:hwaddr=%s:02" % spec["mac"])
        for role, name, last, port in (("lan", spec["lan"], 10, 1), ("wan", spec["wan"], 1, 2)):
            ns = self._namespace(name)
            outside = "%s%s%s" % (self.prefix, site, role[0])
            mac = "%s:%02x" % (spec["mac"], last)
            veth_to_namespace(outside, ns, mac=mac)
            self.ovs.add_port(bridge, outside, port)
            v4, v6 = "%s.%d" % (spec["v4"], last), "%s:%x" % (spec["v6"], last)
            add_address(ns, v4 + "/24")
            add_address(ns, v6 + "/64")
            if role == "lan":
                ns.run("ip", "route", "add", "default", "via", spec["v4"] + ".1")
                ns.run("ip", "-6", "route", "add", "default", "via", spec["v6"] + ":1")
            self.hosts[name] = Host(ns, mac, v4, v6, port, outside)
        if site == "a":
            add_address(self.hosts["routerA"].ns, FAR_V4 + "/32", "lo")

    def _build_tunnel(self):
        """The sites' tunnel ports (port 3): a veth pair, or two OpenVPN peers' TAPs."""
        ta, tb = self.tunnel_port("a"), self.tunnel_port("b")
        if self.tunnel == "openvpn":
            self.vpn = OpenVpnPair(os.path.join(self.workdir, "openvpn"), ta, tb)
            self._undo.callback(self.vpn.stop)
            self.vpn.start()
        else:
            self._undo.callback(delete_link, ta)
            veth_pair(ta, tb)
        self.ovs.add_port(self.bridge("a"), ta, 3)
        self.ovs.add_port(self.bridge("b"), tb, 3)

    def _build_endpoint(self):
        """Bridge A's LOCAL port, moved into its own namespace: the endpoint's one IP."""
        ns = self._namespace("endpoint")
        tap = self.bridge("a")
        run("ip", "link", "set", tap, "netns", ns.name)
        ns.run("ethtool", "-K", tap, "tx", "off")
        ns.run("ip", "link", "set", tap, "up")
        add_address(ns, "10.1.0.2/24", tap)
        ns.run("ip", "route", "add", "default", "dev", tap)  # on-link: no gateway
        self.endpoint = Host(ns, SITES["a"]["mac"] + ":02", "10.1.0.2", None, "LOCAL", tap)
        self.hosts["endpoint"] = self.endpoint

    def _build_analyzer(self, i):
        """An analyzer host ``ana<i>`` on bridge A, port 10 + i: it only listens."""
        ns = self._namespace("ana%d" % i)
        outside = "%sn%d" % (self.prefix, i)
        veth_to_namespace(outside, ns, mac="02:a0:00:00:01:%02x" % i)
        ns.run("sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
        self.ovs.add_port(self.bridge("a"), outside, 10 + i)
        self.hosts["ana%d" % i] = Host(ns, None, None, None, 10 + i, outside)

    def config(self):
        """The YAML config the controller runs with (as a dict)."""
        datapaths = {}
        for site, spec in SITES.items():
            default = [{"name": "to-remote", "ipv4_dst": spec["remote_v4"]},
                       {"name": "to-remote-v6", "ipv6_dst": spec["remote_v6"]}]
            dp = {
                "dp_id": spec["dp_id"],
                "ports": {"lan": [self.hosts[spec["lan"]].outside],
                          "wan": self.hosts[spec["wan"]].outside,
                          "tunnel": self.tunnel_port(site)},
                "reverse_path": dict(self.reverse_path),
                "capture": (self.capture or {}).get(site, default),
            }
            if site == "a":
                dp["local_ip"] = "10.1.0.2/24"
            datapaths[self.dp_name(site)] = dp
        cfg = {"openflow": {"port": self.of_port}, "api": {"port": self.api_port},
               "ovsdb": self.ovs.db, "state_file": os.path.join(self.workdir, "state.json"),
               "datapaths": datapaths}
        if self.token:
            cfg["api"]["token"] = self.token
        cfg.update(self.extra_config)
        return cfg

    def write_config(self):
        with open(self.config_path, "w") as handle:
            yaml.safe_dump(self.config(), handle, sort_keys=False)

    # --- conveniences -------------------------------------------------------------------------

    def warm_up(self):
        """Every host talks to its gateway once, as hosts on a LAN do: the data plane learns
        their MACs and addresses (so later tests see no unknown neighbour)."""
        for lan, gw in (("hostA", "routerA"), ("serverB", "routerB")):
            self[lan].ping(self[gw].ipv4, count=1)
            self[lan].ping(self[gw].ipv6, count=1)

    def exchange(self, proto, address, port=5003, client="hostA", server="serverB"):
        """One request/response (``proto`` tcp or udp) to ``address`` on a fresh echo server;
        raises AssertionError unless the echo came back."""
        echo = [sys.executable, "-m", "testbed.echo"]
        proc = self[server].popen(*echo, "serve", proto, port, "--count", 1,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            message = "x-%s-%s" % (proto, port)
            out = self[client].run(*echo, "ask", proto, address, port, message, timeout=15)
            assert out.strip() == message, out
        finally:
            proc.kill()
            proc.wait()

    def flows(self, site, table=None):
        return self.ovs.flows(self.bridge(site), table)

    def forget(self, site, address):
        """Make ``site`` forget its neighbours and reverse paths (what its hosts' traffic
        taught it) until none is left for ``address`` and OVS's datapath cache follows: a
        flow OVS cached delivers until its revalidator re-translated it, and the host's own
        ARP or neighbour discovery may teach the site again meanwhile."""
        learned = (tables.REVERSE.id, tables.NEIGH.id)

        def forgotten():
            for table in learned:
                self.ovs.ofctl("del-flows", self.bridge(site), "table=%d" % table)
            self.ovs.revalidated()
            return not [f for table in learned for f in self.flows(site, table)
                        if address in (f.fields.get(k) for k in _ADDRESS_FIELDS)]
        wait_for(forgotten, 30, interval=0, what="site %s forgetting %s" % (site, address))

    def connections(self, site):
        """Connections in the site's conntrack zone: the reverse paths of match: conntrack
        (the zone as the controller reads it from the config)."""
        dp = app_config.load(self.config_path).datapaths[self.dp_name(site)]
        return ovs_cli.zone_count(self.ovs.db, dp.reverse_path.ct_zone)
