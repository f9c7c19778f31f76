"""A real VPN tunnel for the bed: two OpenVPN 2.6 peers in TAP mode, talking UDP on loopback.

Each peer owns one TAP device, which a bridge takes as its ``tunnel`` port: frames a bridge
sends into its TAP come out of the other peer's TAP. The TAPs have no IP address, no IPv6
link-local address and no route; they are made beforehand (``ip tuntap add``), so their MTU
(the LAN's 1500) and offloads are set by the bed, not by OpenVPN.

Authentication: a point-to-point TLS set-up with self-signed certificates pinned by
``peer-fingerprint`` (OpenVPN 2.6), made by ``openssl`` in the bed's directory. The older
static-key ``--secret`` mode still runs in 2.6 but logs a deprecation warning and is due to
be removed; this needs no CA either. The peers run as children and are stopped by PID.
"""
import hashlib
import os
import socket
import ssl
import subprocess
import time

from testbed.proc import run, stop_child, wait_for

LOOPBACK = "127.0.0.1"
READY = "Initialization Sequence Completed"


class OpenVpnPair:
    """``OpenVpnPair(workdir, "tapA", "tapB").start()`` ... ``.stop()`` (safe to call twice)."""

    def __init__(self, workdir, tap_one, tap_two, mtu=1500):
        self.workdir = os.path.abspath(workdir)
        self.taps = (tap_one, tap_two)
        self.mtu = mtu
        self.ports = ()
        self.procs = []
        self.setup_seconds = None  # from nothing to both peers ready

    def start(self):
        began = time.monotonic()
        os.makedirs(self.workdir, exist_ok=True)
        fingerprints = [self._certificate(tap) for tap in self.taps]
        self.ports = _free_udp_ports(2)
        for tap in self.taps:
            _make_tap(tap, self.mtu)
        for me, (tap, role) in enumerate(zip(self.taps, ("tls-server", "tls-client"))):
            self.procs.append(self._peer(tap, role, self.ports[me], self.ports[1 - me],
                                         fingerprints[1 - me]))
        wait_for(self._ready, 30, what="both OpenVPN peers ready (%s)" % self._log(self.taps[0]))
        self.setup_seconds = time.monotonic() - began
        return self

    def stop(self):
        while self.procs:
            stop_child(self.procs.pop())
        for tap in self.taps:
            run("ip", "link", "del", tap, check=False)

    def pids(self):
        return [proc.pid for proc in self.procs]

    def _log(self, tap):
        return os.path.join(self.workdir, tap + ".log")

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

    def _peer(self, tap, role, lport, rport, peer_fingerprint):
        """One peer, attached to ``tap`` by name: no ``ifconfig``, no ``route``."""
        args = ["openvpn", "--dev", tap, "--dev-type", "tap", "--disable-dco",
                "--proto", "udp", "--local", LOOPBACK, "--lport", lport,
                "--remote", LOOPBACK, rport, "--" + role,
                "--cert", os.path.join(self.workdir, tap + ".crt"),
                "--key", os.path.join(self.workdir, tap + ".key"),
                "--peer-fingerprint", peer_fingerprint, "--verb", "3"]
        if role == "tls-server":
            args += ["--dh", "none"]  # ECDHE only
        with open(self._log(tap), "ab") as log:
            return subprocess.Popen([str(a) for a in args], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _ready(self):
        for proc, tap in zip(self.procs, self.taps):
            if proc.poll() is not None:
                raise RuntimeError("openvpn for %s exited (%s):\n%s"
                                   % (tap, proc.returncode, _read(self._log(tap))[-2000:]))
        return all(READY in _read(self._log(tap)) for tap in self.taps)


def _read(path):
    with open(path, errors="replace") as handle:
        return handle.read()


def _make_tap(name, mtu):
    """A persistent TAP with the LAN's MTU, no IP (IPv6 off: no link-local address either)
    and no checksum offload, up; OpenVPN attaches to it by name."""
    run("ip", "tuntap", "add", "dev", name, "mode", "tap")
    run("sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % name)
    run("ip", "link", "set", name, "mtu", mtu, "up")
    run("ethtool", "-K", name, "tx", "off")


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
