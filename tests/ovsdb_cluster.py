"""A real 3-member clustered ovsdb-server (raft) on loopback holding sggw's schema, for tests.

Members are started and stopped by PID; each gets a raft port and a client port. Each
listens for clients as docs/deployment.md tells users to: through its own member database
(``app/store/sggw-member.ovsschema``), whose row sets the inactivity probe a hung client's
connection (and the lock it holds) is dropped by. With ``tls`` the members talk raft and
serve clients over TLS only (``ssl:``/``pssl:``).
"""
import json
import os
import signal
import socket
import subprocess
import time

from app.store.ovsdb_client import SCHEMA

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


class Cluster:
    def __init__(self, directory, size=3, probe_ms=PROBE_MS, tls=None):
        """``tls``: (CA certificate, [(private key, certificate) of each member])."""
        self.dir = str(directory)
        ports = free_ports(2 * size)
        self.raft = ports[:size]
        self.client = ports[size:]
        self.procs = [None] * size
        self.probe_ms = probe_ms
        self.tls = tls
        self.scheme = "ssl" if tls else "tcp"

    @property
    def remotes(self):
        return ",".join(self._address(p) for p in self.client)

    def _address(self, port):
        return "%s:127.0.0.1:%d" % (self.scheme, port)

    def _path(self, i, suffix):
        return os.path.join(self.dir, "s%d.%s" % (i, suffix))

    def create(self):
        subprocess.run(["ovsdb-tool", "create-cluster", self._path(0, "db"), SCHEMA,
                        self._address(self.raft[0])], check=True)
        for i in range(1, len(self.raft)):
            subprocess.run(["ovsdb-tool", "join-cluster", self._path(i, "db"), DB_NAME,
                            self._address(self.raft[i]), self._address(self.raft[0])],
                           check=True)
        for i in range(len(self.raft)):
            member = self._path(i, "member.db")
            subprocess.run(["ovsdb-tool", "create", member, MEMBER_SCHEMA], check=True)
            target = "p%s:%d:127.0.0.1" % (self.scheme, self.client[i])
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
        self.procs[i] = subprocess.Popen(
            ["ovsdb-server", "--unixctl=" + self._path(i, "ctl"),
             "--remote=db:SGGW_Member,Member,connections", "--no-chdir", *tls,
             self._path(i, "db"), self._path(i, "member.db")], stdout=log, stderr=log)

    def kill(self, i, sig=signal.SIGKILL):
        proc = self.procs[i]
        proc.send_signal(sig)
        proc.wait(10)
        self.procs[i] = None

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
