"""A real 3-member clustered ovsdb-server (raft) holding sggw's schema, for tests.

Members are started and stopped by PID; each gets a raft port and a client port. Each
listens for clients as docs/deployment.md tells users to: through its own member database
(``app/store/sggw-member.ovsschema``), whose row sets the inactivity probe a hung client's
connection (and the lock it holds) is dropped by. With ``tls`` the members talk raft and
serve clients over TLS only (``ssl:``/``pssl:``).

By default every member is on 127.0.0.1. Given a :class:`MemberNetwork`, each runs in a
network namespace of its own behind a link of its own, as on a host of its own, and
:meth:`Cluster.cut` takes that link down: the member is cut off from the others and from
every client, and knows nothing of it.
"""
import json
import os
import signal
import socket
import subprocess
import time

from app.store.ovsdb_client import SCHEMA
from testbed.netns import Namespace, add_address, veth_to_namespace
from testbed.proc import run

DB_NAME = "SGGW"
MEMBER_SCHEMA = os.path.join(os.path.dirname(SCHEMA), "sggw-member.ovsschema")
PROBE_MS = 3000  # what docs/deployment.md recommends


def free_ports(count):
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


class MemberNetwork:
    """Member ``i`` in namespace ``<prefix>-s<i>`` at 198.18.0.<i+1>/24 (RFC 2544's test
    range), its veth's other end on a Linux bridge in the calling namespace, which has
    198.18.0.254: run it in a namespace of the test's own (``testbed.netns.inside``)."""

    SUBNET = "198.18.0"
    RAFT_PORT, CLIENT_PORT = 6644, 6641

    def __init__(self, prefix, size):
        self.bridge = prefix + "br"
        self.links = ["%ss%d" % (prefix, i) for i in range(size)]
        self.namespaces = []
        run("ip", "link", "add", "name", self.bridge, "type", "bridge")
        try:
            run("ip", "addr", "add", "%s.254/24" % self.SUBNET, "dev", self.bridge)
            run("ip", "link", "set", self.bridge, "up")
            for i, link in enumerate(self.links):
                ns = Namespace("%s-s%d" % (prefix, i))
                self.namespaces.append(ns)
                veth_to_namespace(link, ns)
                run("ip", "link", "set", link, "master", self.bridge)
                add_address(ns, "%s/24" % self.address(i))
        except BaseException:
            self.delete()
            raise

    def address(self, i):
        return "%s.%d" % (self.SUBNET, i + 1)

    def cut(self, i):
        run("ip", "link", "set", self.links[i], "down")

    def heal(self, i):
        run("ip", "link", "set", self.links[i], "up")

    def delete(self):
        for ns in self.namespaces:
            ns.delete()  # its end of the veth goes with it, and so the pair
        run("ip", "link", "del", self.bridge, check=False)


class Cluster:
    def __init__(self, directory, size=3, probe_ms=PROBE_MS, tls=None, network=None):
        """``tls``: (CA certificate, [(private key, certificate) of each member]);
        ``network``: a :class:`MemberNetwork` of ``size`` members (default: loopback)."""
        self.dir = str(directory)
        self.network = network
        if network is None:
            ports = free_ports(2 * size)
            self.hosts = ["127.0.0.1"] * size
            self.raft, self.client = ports[:size], ports[size:]
        else:
            self.hosts = [network.address(i) for i in range(size)]
            self.raft = [network.RAFT_PORT] * size
            self.client = [network.CLIENT_PORT] * size
        self.procs = [None] * size
        self.probe_ms = probe_ms
        self.tls = tls
        self.scheme = "ssl" if tls else "tcp"

    @property
    def remotes(self):
        return ",".join(self._address(i, self.client) for i in range(len(self.procs)))

    def _address(self, i, ports):
        return "%s:%s:%d" % (self.scheme, self.hosts[i], ports[i])

    def _path(self, i, suffix):
        return os.path.join(self.dir, "s%d.%s" % (i, suffix))

    def create(self):
        subprocess.run(["ovsdb-tool", "create-cluster", self._path(0, "db"), SCHEMA,
                        self._address(0, self.raft)], check=True)
        for i in range(1, len(self.raft)):
            subprocess.run(["ovsdb-tool", "join-cluster", self._path(i, "db"), DB_NAME,
                            self._address(i, self.raft), self._address(0, self.raft)],
                           check=True)
        for i in range(len(self.raft)):
            member = self._path(i, "member.db")
            if os.path.exists(member):
                os.unlink(member)
            subprocess.run(["ovsdb-tool", "create", member, MEMBER_SCHEMA], check=True)
            target = "p%s:%d:%s" % (self.scheme, self.client[i], self.hosts[i])
            subprocess.run(["ovsdb-tool", "transact", member, json.dumps(
                ["SGGW_Member", {"op": "insert", "table": "Connection", "uuid-name": "c",
                                 "row": {"target": target,
                                         "inactivity_probe": self.probe_ms}},
                 {"op": "insert", "table": "Member",
                  "row": {"connections": ["named-uuid", "c"]}}])],
                check=True, stdout=subprocess.DEVNULL)
            self.start(i)
        self.wait_leader()
        return self

    def start(self, i):
        log = open(self._path(i, "log"), "ab")
        tls = []
        if self.tls:
            ca_cert, (key, cert) = self.tls[0], self.tls[1][i]
            tls = ["--private-key=" + key, "--certificate=" + cert, "--ca-cert=" + ca_cert]
        netns = ["ip", "netns", "exec", self.network.namespaces[i].name] if self.network \
            else []  # ip execs ovsdb-server: the PID is the server's
        self.procs[i] = subprocess.Popen(
            [*netns, "ovsdb-server", "--unixctl=" + self._path(i, "ctl"),
             "--remote=db:SGGW_Member,Member,connections", "--no-chdir", *tls,
             self._path(i, "db"), self._path(i, "member.db")], stdout=log, stderr=log)
        log.close()

    def kill(self, i, sig=signal.SIGKILL):
        proc = self.procs[i]
        proc.send_signal(sig)
        proc.wait(10)
        self.procs[i] = None

    def cut(self, i):
        """Member ``i``'s link down: it runs on, reaching nobody and reached by nobody."""
        self.network.cut(i)

    def heal(self, i):
        self.network.heal(i)

    def status(self, i):
        out = subprocess.run(["ovs-appctl", "-t", self._path(i, "ctl"), "cluster/status",
                              DB_NAME], capture_output=True, text=True, timeout=5)
        return out.stdout

    def leader(self):
        """Index of the member that says it is the leader, or None."""
        for i, proc in enumerate(self.procs):
            if proc is not None and "Role: leader" in self.status(i):
                return i
        return None

    def wait_leader(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                found = self.leader()
            except subprocess.SubprocessError:
                found = None
            if found is not None:
                return found
            time.sleep(0.1)
        raise AssertionError("no raft leader within %d s" % timeout)

    def stop(self):
        for i, proc in enumerate(self.procs):
            if proc is not None:
                proc.kill()
                proc.wait(10)
                self.procs[i] = None

    def remove(self):
        """The members' files (stop them first): what is left is no store at all."""
        for i in range(len(self.procs)):
            for suffix in ("db", "member.db"):
                if os.path.exists(self._path(i, suffix)):
                    os.unlink(self._path(i, suffix))
