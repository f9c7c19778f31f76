"""A real VPN tunnel for the bed: two OpenVPN 2.6 peers in TAP mode, talking UDP on loopback.

Each peer owns one TAP device, which a bridge takes as its ``tunnel`` port: frames a bridge
sends into its TAP come out of the other peer's TAP. The TAPs have no IP address, no IPv6
link-local address and no route; they are made beforehand (``ip tuntap add``), so their MTU
is the LAN's (1500, like the veths: a mismatch drops frames silently) whatever OpenVPN does.

Authentication: point-to-point TLS with self-signed certificates pinned by
``peer-fingerprint`` (new in OpenVPN 2.6, no CA), made by ``openssl`` in the bed's directory.
Static-key ``--secret`` is not used: Debian 12's 2.6 logs two deprecation lines for it
("OpenVPN 2.7 will remove" it, pointing to peer-fingerprint) and, without ``--cipher``, stops
on "Cipher BF-CBC not supported". The peers run as children and are stopped by PID.
"""
import hashlib
import os
import socket
import ssl
import subprocess
import time

from scapy.layers.inet import UDP

from testbed.proc import run, stop_child, wait_for

LOOPBACK = "127.0.0.1"
READY = b"Initialization Sequence Completed"


class OpenVpnPair:
    """``OpenVpnPair(workdir, "tapA", "tapB").start()`` ... ``.stop()`` (safe to call twice)."""

    def __init__(self, workdir, tap_one, tap_two, mtu=1500):
        self.workdir = os.path.abspath(workdir)
        self.taps = (tap_one, tap_two)
        self.mtu = mtu
        self.ports = ()
        self.procs = []
        self.fingerprints = []
        self.setup_seconds = None  # from nothing to both peers ready

    def start(self):
        began = time.monotonic()
        os.makedirs(self.workdir, exist_ok=True)
        self.fingerprints = [self._certificate(tap) for tap in self.taps]
        self.ports = _free_udp_ports(2)
        for tap in self.taps:
            _make_tap(tap, self.mtu)
        logged = self._logged()
        self.procs = [self._peer(0), self._peer(1)]
        self._wait_ready(logged)
        self.setup_seconds = time.monotonic() - began
        return self

    def stop_peer(self, index):
        """Stop one peer (its TAP stays, without carrier): the tunnel is down."""
        stop_child(self.procs[index])

    def start_peer(self, index):
        """Start a stopped peer again; returns when both peers have a new session."""
        logged = self._logged()
        self.procs[index] = self._peer(index)
        self._wait_ready(logged)

    def stop(self):
        for proc in self.procs:
            stop_child(proc)
        self.procs = []
        for tap in self.taps:
            run("ip", "link", "del", tap, check=False)

    def pids(self):
        return [proc.pid for proc in self.procs]

    def datagrams(self, packets):
        """Of captured ``packets`` (scapy, on loopback), the UDP datagrams between the peers."""
        return [p for p in packets if UDP in p and {p[UDP].sport, p[UDP].dport} == set(self.ports)]

    def _log(self, tap):
        return os.path.join(self.workdir, tap + ".log")

    def _logged(self):
        """How far each peer's log goes now (logs are appended to, across runs)."""
        return [os.path.getsize(path) if os.path.exists(path) else 0
                for path in map(self._log, self.taps)]

    def _certificate(self, tap):
        """A self-signed EC certificate and key for ``tap``'s peer; returns its SHA-256
        fingerprint in the form ``peer-fingerprint`` takes."""
        key, crt = (os.path.join(self.workdir, tap + ext) for ext in (".key", ".crt"))
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=" + tap,
            "-keyout", key, "-out", crt)
        with open(crt) as handle:
            digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(handle.read())).hexdigest()
        return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))

    def _peer(self, index):
        """Peer ``index`` (0 the TLS server, 1 the client), attached to its TAP by name: no
        ``ifconfig``, no ``route``."""
        tap, other = self.taps[index], 1 - index
        args = ["openvpn", "--dev", tap, "--dev-type", "tap", "--proto", "udp",
                "--local", LOOPBACK, "--lport", self.ports[index],
                "--remote", LOOPBACK, self.ports[other],
                "--cert", os.path.join(self.workdir, tap + ".crt"),
                "--key", os.path.join(self.workdir, tap + ".key"),
                "--peer-fingerprint", self.fingerprints[other], "--verb", "3"]
        args += ["--tls-server", "--dh", "none"] if index == 0 else ["--tls-client"]
        with open(self._log(tap), "ab") as log:
            return subprocess.Popen([str(a) for a in args], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _wait_ready(self, offsets):
        """Wait until each peer's log says it is ready past ``offsets`` (bytes)."""
        def ready():
            logs = [_read(self._log(tap))[at:] for tap, at in zip(self.taps, offsets)]
            for proc, tap, log in zip(self.procs, self.taps, logs):
                if proc.poll() is not None:
                    raise RuntimeError("openvpn for %s exited (%s):\n%s" % (
                        tap, proc.returncode, log[-2000:].decode(errors="replace")))
            return all(READY in log for log in logs)
        wait_for(ready, 30, what="both OpenVPN peers ready (logs in %s)" % self.workdir)


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def _make_tap(name, mtu):
    """A persistent TAP with the LAN's MTU, no IP (IPv6 off: no link-local address either),
    up; OpenVPN attaches to it by name. Checksum offload needs no ``ethtool``: a TAP opened
    without ``TUNSETOFFLOAD``, as OpenVPN opens it, has ``tx-checksumming`` off already."""
    run("ip", "tuntap", "add", "dev", name, "mode", "tap")
    run("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % name)
    run("ip", "link", "set", name, "mtu", mtu, "up")


def _free_udp_ports(count):
    """``count`` distinct UDP ports on 127.0.0.1 that nothing is bound to right now."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return tuple(sock.getsockname()[1] for sock in socks)
    finally:
        for sock in socks:
            sock.close()
