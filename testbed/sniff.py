"""Capture what really crossed a wire: tcpdump in a namespace, read back with scapy."""
import os
import select
import signal
import subprocess
import tempfile
import time

from scapy.layers import inet, inet6, l2  # noqa: F401 (registers the dissectors)
from scapy.utils import rdpcap

from testbed.proc import popen, stop_pid, wait_for


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
        # Packets may still be on their way to this interface (OVS outputs a mirror copy
        # after its original; a veth hands frames over in a softirq): nothing shows them, so
        # they get ``settle``. What did arrive is in the file once tcpdump sleeps in poll():
        # in immediate mode the kernel wakes it for every packet, and -U writes each at once
        # (SIGINT would drop what it has not read yet).
        time.sleep(settle)
        wait_for(lambda: _asleep_in_poll(self._proc.pid), 10, interval=0.01,
                 what="tcpdump to write what it captured")
        stop_pid(self._proc.pid, sig=signal.SIGINT)
        self._proc.wait(timeout=5)
        self._proc.stderr.close()
        self._proc = None
        try:
            self.packets = list(rdpcap(self._file))
        finally:
            os.unlink(self._file)
        return self.packets


def _asleep_in_poll(pid):
    """Whether process ``pid`` sleeps in poll(), waiting for input (not woken up yet)."""
    try:
        with open("/proc/%d/stat" % pid) as stat, open("/proc/%d/wchan" % pid) as wchan:
            return stat.read().rsplit(") ", 1)[1][0] == "S" and "poll" in wchan.read()
    except OSError:
        return True  # gone: nothing left to write
