"""Hosts as Linux network namespaces, joined to bridges by veth pairs."""
import contextlib
import ctypes
import json
import re
import signal
import subprocess
import threading

from testbed.proc import popen, run, wait_for


class Namespace:
    """A network namespace that exists from construction until :meth:`delete`."""

    def __init__(self, name):
        self.name = name
        run("ip", "netns", "add", name)
        self.run("ip", "link", "set", "lo", "up")
        # no duplicate address detection delay; hosts do not route
        for key in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                    "net.ipv6.conf.all.forwarding=0", "net.ipv4.ip_forward=0"):
            self.run("sysctl", "-qw", key)

    def run(self, *cmd, check=True, timeout=30, input=None):
        return run(*cmd, ns=self.name, check=check, timeout=timeout, input=input)

    def popen(self, *cmd, **kwargs):
        return popen(*cmd, ns=self.name, **kwargs)

    def delete(self):
        run("ip", "netns", "del", self.name, check=False)

    def link(self, ifname):
        """``ip -j link show`` of ``ifname`` as a dict."""
        return json.loads(self.run("ip", "-j", "link", "show", ifname))[0]

    def mac(self, ifname="eth0"):
        return self.link(ifname)["address"]

    def neighbours(self):
        return json.loads(self.run("ip", "-j", "neigh", "show"))

    def routes(self, family=4):
        return json.loads(self.run("ip", "-j", "-%d" % family, "route", "show"))

    def ping(self, address, count=3, interval=0.2, timeout=10, check=True):
        """Ping ``address``; returns the number of replies received."""
        out = self.run("ping", "-n", "-c", count, "-i", interval, "-W", 1, address,
                       check=False, timeout=timeout + count * interval + 5)
        received = _ping_received(out)
        if check and received == 0:
            raise AssertionError("%s: no reply from %s:\n%s" % (self.name, address, out))
        return received

    def pinger(self, address, interval=0.05, count=None):
        """A ping to ``address`` running in the background (see :class:`Pinger`)."""
        return Pinger(self, address, interval, count)

    def __repr__(self):
        return "Namespace(%r)" % self.name


class Pinger:
    """A ping running in the background: wait for its replies while something else happens,
    then read what it sent and got."""

    def __init__(self, ns, address, interval, count=None):
        args = ["ping", "-n", "-i", interval, "-W", 1] + (["-c", count] if count else [])
        self.proc = ns.popen(*args, address, stdout=subprocess.PIPE, text=True)
        self.count = count
        self.replies = 0
        self._lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._lines.append(line)
            if " bytes from " in line:
                self.replies += 1

    def wait_replies(self, more, timeout=10):
        """Block until ``more`` replies have come in from now on."""
        wanted = self.replies + more
        wait_for(lambda: self.replies >= wanted, timeout, interval=0.02,
                 what="%d more ping replies (%d so far)" % (more, self.replies))

    def stop(self, timeout=30):
        """(sent, received) once it has ended: with ``count``, by itself within ``timeout``;
        without, at once (SIGINT)."""
        if self.proc.poll() is None and not self.count:
            self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        found = re.search(r"(\d+) packets transmitted, (\d+) received", "".join(self._lines))
        assert found, "".join(self._lines)
        return int(found.group(1)), int(found.group(2))


def _ping_received(output):
    for line in output.splitlines():
        if "packets transmitted" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def veth_to_namespace(outside, ns, inside="eth0", mac=None, mtu=1500, quiet=True):
    """A veth pair: ``outside`` stays in the root namespace (for a bridge, ``quiet``: no
    IPv6 of its own), ``inside`` in ``ns``.

    Checksum offload is turned off inside: the userspace datapath does not complete
    offloaded checksums, and TCP would silently break.
    """
    run("ip", "link", "add", outside, "mtu", mtu, "type", "veth", "peer", "name", inside,
        "mtu", mtu, "netns", ns.name)
    if quiet:
        _quiet(outside)
    if mac:
        ns.run("ip", "link", "set", inside, "address", mac)
    ns.run("ethtool", "-K", inside, "tx", "off")
    ns.run("ip", "link", "set", inside, "up")
    run("ip", "link", "set", outside, "up")


def veth_pair(one, two, mtu=1500):
    """A veth pair with both ends in the root namespace (e.g. joining two bridges)."""
    run("ip", "link", "add", one, "mtu", mtu, "type", "veth", "peer", "name", two, "mtu", mtu)
    for end in (one, two):
        _quiet(end)
        run("ethtool", "-K", end, "tx", "off")
        run("ip", "link", "set", end, "up")


def _quiet(ifname):
    """A bridge port in the root namespace must not speak itself (IPv6 RS, MLD, DAD)."""
    run("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % ifname)


def delete_link(name):
    run("ip", "link", "del", name, check=False)


def add_address(ns, address, dev="eth0"):
    args = ["ip", "addr", "add", address, "dev", dev]
    if ":" in address:
        args.append("nodad")
    ns.run(*args)


CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def inside(name):
    """Run this process, and everything it starts, in a new network namespace ``name``
    (deleted afterwards): a bed whose underlay needs addresses next to its ovs-vswitchd
    then adds them there, never to the namespace the tests were started in."""
    ns = Namespace(name)
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        with open("/proc/self/ns/net") as home, open("/run/netns/" + name) as target:
            if libc.setns(target.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into %s failed" % name)
            try:
                yield ns
            finally:
                libc.setns(home.fileno(), CLONE_NEWNET)
    finally:
        ns.delete()
