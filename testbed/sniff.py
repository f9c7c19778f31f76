"""Capture what really crossed a wire: tcpdump in a namespace, read back with scapy."""
import os
import select
import signal
import subprocess
import tempfile
import time

from scapy.layers import inet, inet6, l2  # noqa: F401 (registers the dissectors)
from scapy.utils import rdpcap

from testbed.proc import popen, stop_pid


class Sniffer:
    """``with Sniffer(ns, "eth0", "icmp") as cap: ...`` then ``cap.packets`` (scapy)."""

    def __init__(self, ns, ifname="eth0", bpf="", snaplen=0, direction=None):
        self.ns, self.ifname, self.bpf = ns, ifname, bpf
        self.snaplen, self.direction = snaplen, direction
        self.packets = []
        self._proc = None
        self._file = None

    def __enter__(self):
        fd, self._file = tempfile.mkstemp(suffix=".pcap", prefix="sggw-")
        os.close(fd)
        args = ["tcpdump", "--immediate-mode", "-Z", "root", "-i", self.ifname, "-nn", "-U",
                "-s", str(self.snaplen), "-B", "16384",  # KiB: no drops in a burst
                "-w", self._file]
        if self.direction:
            args += ["-Q", self.direction]
        if self.bpf:
            args.append(self.bpf)
        self._proc = popen(*args, ns=self.ns.name if self.ns else None,
                           stderr=subprocess.PIPE)
        self._wait_listening()
        return self

    def _wait_listening(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        buf = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._proc.stderr], [], [], 0.1)
            if ready:
                chunk = os.read(self._proc.stderr.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
                if b"listening on" in buf:
                    return
        raise RuntimeError("tcpdump did not start: %s" % buf.decode(errors="replace"))

    def __exit__(self, *exc):
        self.stop()

    def stop(self, settle=0.3):
        if self._proc is None:
            return self.packets
        time.sleep(settle)  # let the last packets reach the file
        stop_pid(self._proc.pid, sig=signal.SIGINT)
        self._proc.wait(timeout=5)
        self._proc.stderr.close()
        self._proc = None
        try:
            self.packets = list(rdpcap(self._file))
        finally:
            os.unlink(self._file)
        return self.packets
