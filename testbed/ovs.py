"""Open vSwitch for the bed: one reached through its run directory (:class:`Ovs`, e.g. the
compose deployment's), or a private one with its own ovsdb-server and ovs-vswitchd
(:class:`PrivateOvs`).

Bridges use the userspace datapath (``datapath_type=netdev``, no kernel module) unless the
bed asks for the kernel one (``system``, where users run it: see testbed/vm.py for a machine
whose kernel has no ``openvswitch`` module). Stopping a private one asks ovs-vswitchd to
``exit --cleanup`` (which removes its tap devices, or its kernel datapath) through the
control socket named by its PID, then stops both daemons by PID.
"""
import os
import re
import shutil
import subprocess

from flows import tables
from testbed.proc import alive, run, stop_pid, wait_for, wait_gone

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
NETDEV_TAP = "ovs-netdev"
DATAPATHS = ("netdev", "system")  # OVS's userspace datapath, the Linux kernel's


class Ovs:
    """An Open vSwitch that runs already, reached through its run directory (the sockets);
    its bridges get ``datapath`` (one of DATAPATHS)."""

    def __init__(self, rundir, datapath="netdev"):
        if datapath not in DATAPATHS:
            raise ValueError("datapath: %r is not one of %s" % (datapath, ", ".join(DATAPATHS)))
        self.rundir = os.path.abspath(rundir)
        self.db = "unix:%s/db.sock" % self.rundir
        self.datapath = datapath

    # --- tools ------------------------------------------------------------------------------

    def vsctl(self, *args, timeout=30):
        return run("ovs-vsctl", "--db=" + self.db, "--timeout=%d" % timeout, *args,
                   timeout=timeout + 5)

    def appctl(self, *args):
        return run("ovs-appctl", "-t", self._control_socket(), *args)

    def _control_socket(self):
        """ovs-vswitchd's: named as given (``--unixctl``), else after the daemon's PID."""
        named = os.path.join(self.rundir, "ovs-vswitchd.ctl")
        if os.path.exists(named):
            return named
        with open(os.path.join(self.rundir, "ovs-vswitchd.pid")) as handle:
            return os.path.join(self.rundir, "ovs-vswitchd.%s.ctl" % handle.read().strip())

    def revalidated(self):
        """Return once ovs-vswitchd's datapath cache follows its flow tables as they are now.

        A flow change is confirmed (barrier) before the revalidator re-translates the cached
        datapath flows, and their packets take the old actions until it has. A
        ``revalidator/wait`` answers when the round under way ends, so the second one
        covers a whole round that started after this call."""
        for _ in range(2):
            self.appctl("revalidator/wait")

    def mgmt(self, bridge):
        return "unix:%s/%s.mgmt" % (self.rundir, bridge)

    def ofctl(self, command, bridge, *args, check=True):
        return run("ovs-ofctl", "-O", "OpenFlow13", command, self.mgmt(bridge), *args,
                   check=check)

    def add_bridge(self, name, dp_id, controller_port=None):
        """A bridge as the README's "Running it" sets it up: OVS's defaults (in-band control
        on, among others) plus fail_mode=secure, protocols=OpenFlow13 and the controller.
        The kernel datapath is OVS's default, as on a user's endpoint; the userspace one
        and a fixed datapath id are the test bed's own needs."""
        args = ["add-br", name, "--", "set", "bridge", name, "fail_mode=secure",
                "protocols=OpenFlow13", "other-config:datapath-id=%016x" % dp_id]
        if self.datapath != "system":
            args.append("datapath_type=" + self.datapath)
        self.vsctl(*args)
        if controller_port is not None:
            self.vsctl("set-controller", name, "tcp:127.0.0.1:%d" % controller_port)
        wait_for(lambda: os.path.exists("%s/%s.mgmt" % (self.rundir, name)), 10,
                 what="bridge %s" % name)

    def add_port(self, bridge, ifname, ofport):
        self.vsctl("add-port", bridge, ifname, "--", "set", "interface", ifname,
                   "ofport_request=%d" % ofport)

    def flows(self, bridge, table=None):
        """Parsed ``dump-flows`` of ``bridge`` (optionally one table)."""
        args = ["table=%d" % table] if table is not None else []
        return [Flow(line) for line in self.ofctl("dump-flows", bridge, *args).splitlines()
                if "actions=" in line]

    def static_flows(self, bridge):
        """sggw's own (non-learned) flows, sorted, without counters: compare before/after."""
        cookie, mask = tables.STATIC_COOKIES
        out = self.ofctl("dump-flows", bridge, "--no-stats", "cookie=%#x/%#x" % (cookie, mask))
        return sorted(line.strip() for line in out.splitlines() if "actions=" in line)

    def groups(self, bridge):
        """``dump-groups`` of ``bridge``: one sorted line per group."""
        return sorted(line.strip() for line in self.ofctl("dump-groups", bridge).splitlines()
                      if "group_id=" in line)

    def meters(self, bridge):
        """``dump-meters`` of ``bridge``: one line per meter (its bands joined in)."""
        text = self.ofctl("dump-meters", bridge).split("\n", 1)[-1]
        return sorted(" ".join(m.split()) for m in re.split(r"\n(?=meter=)", text) if m.strip())


class PrivateOvs(Ovs):
    """Its own ovsdb-server and ovs-vswitchd in ``rundir``, started and stopped by PID."""

    def __init__(self, rundir, datapath="netdev"):
        super().__init__(rundir, datapath)
        self.pids = {}

    def _env(self):
        return {"OVS_RUNDIR": self.rundir, "OVS_LOGDIR": self.rundir, "OVS_DBDIR": self.rundir}

    def _daemon(self, name, *args):
        pidfile = os.path.join(self.rundir, name + ".pid")
        env = dict(os.environ, **self._env())
        subprocess.run([name, *args, "--pidfile=" + pidfile, "--detach",
                        "--log-file=%s/%s.log" % (self.rundir, name)],
                       env=env, check=True, capture_output=True, timeout=30)
        with open(pidfile) as handle:
            self.pids[name] = int(handle.read().strip())

    def start(self):
        if self.datapath == "netdev":
            _no_netdev_tap()
        os.makedirs(self.rundir, exist_ok=True)
        conf = os.path.join(self.rundir, "conf.db")
        if os.path.exists(conf):
            os.unlink(conf)
        run("ovsdb-tool", "create", conf, SCHEMA)
        self.start_ovsdb()
        self.vsctl("--no-wait", "init")
        self.start_vswitchd()
        return self

    def start_ovsdb(self):
        """ovsdb-server on the bed's database (also to bring it back after stop_ovsdb)."""
        self._daemon("ovsdb-server", os.path.join(self.rundir, "conf.db"),
                     "--remote=punix:%s/db.sock" % self.rundir,
                     "--unixctl=%s/ovsdb-server.ctl" % self.rundir)

    def stop_ovsdb(self):
        stop_pid(self.pids.pop("ovsdb-server", None))

    def start_vswitchd(self):
        self._daemon("ovs-vswitchd", self.db, "--unixctl=%s/ovs-vswitchd.ctl" % self.rundir)

    def stop_vswitchd(self, kill=False):
        """Stop ovs-vswitchd (all OpenFlow flows are lost; bridges stay in the database)."""
        pid = self.pids.pop("ovs-vswitchd", None)
        if pid is None:
            return
        if not kill and alive(pid):
            run("ovs-appctl", "-t", "%s/ovs-vswitchd.ctl" % self.rundir, "exit", "--cleanup",
                check=False, timeout=10)
            wait_gone(pid, 10)
        stop_pid(pid, sig=9 if kill else 15)

    def stop(self):
        self.stop_vswitchd()
        self.stop_ovsdb()

    def remove(self):
        shutil.rmtree(self.rundir, ignore_errors=True)

    def flush_datapath_cache(self):
        """Forget cached datapath flows, so the next packets run (and learn) afresh."""
        self.appctl("dpctl/del-flows")


def _no_netdev_tap():
    """Every userspace datapath on a machine opens a tap named "ovs-netdev": two private
    vswitchds cannot run at once. Allow a moment for a previous one's to go away; if no
    vswitchd is alive, it is a leftover of a killed one and goes now."""
    try:
        wait_for(lambda: not os.path.exists("/sys/class/net/" + NETDEV_TAP), 5,
                 what="the previous ovs-netdev device to go away")
    except TimeoutError:
        if _vswitchd_running():
            raise RuntimeError("another ovs-vswitchd with a userspace datapath runs on "
                               "this machine (device %s exists): stop it first"
                               % NETDEV_TAP) from None
        run("ip", "link", "del", NETDEV_TAP, check=False)


def _vswitchd_running():
    """Whether any live (not zombie) ovs-vswitchd process exists on the machine."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/stat" % pid) as handle:
                name, state = handle.read().split(") ", 1)
        except OSError:
            continue
        if name.endswith("(ovs-vswitchd") and not state.startswith("Z"):
            return True
    return False


_FIELD = re.compile(r"([a-z_0-9]+)=([^,\s]+)")


class Flow:
    """One line of ``ovs-ofctl dump-flows``: ``fields`` before ``actions=``, and the rest."""

    def __init__(self, line):
        self.line = line.strip()
        head, self.actions = self.line.split("actions=", 1)
        self.fields = dict(_FIELD.findall(head))
        self.flags = [w for w in re.split(r"[,\s]+", head) if w and "=" not in w]

    def __getitem__(self, key):
        return self.fields[key]

    @property
    def table(self):
        return int(self.fields.get("table", 0))

    @property
    def cookie(self):
        return int(self.fields.get("cookie", "0"), 16)

    @property
    def n_packets(self):
        return int(self.fields.get("n_packets", 0))

    @property
    def priority(self):
        return int(self.fields.get("priority", 32768))

    def __repr__(self):
        return "Flow(%r)" % self.line
