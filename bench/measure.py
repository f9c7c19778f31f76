"""Measuring with the tools' own numbers: iperf3's JSON, flowgen's JSON, /proc and sysfs."""
import json
import os
import statistics
import subprocess
import sys

from testbed.proc import stop_child, stop_pid, wait_for

HZ = os.sysconf("SC_CLK_TCK")
PYTHON = sys.executable


def summary(values):
    """Median and spread (min, max) of repeated measurements."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "runs": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


TRAFFIC_CPU = "1"  # iperf3 runs here; ovs-vswitchd gets CPU 0 (see BenchBed.pinned)


def iperf(client, server, address, seconds, reverse=False, port=5201):
    """TCP throughput in Gbit/s, as iperf3 counted it at the receiver."""
    proc = server.popen("taskset", "-c", TRAFFIC_CPU, "iperf3", "-s", "-1", "-p", port,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: server.run("ss", "-Hltn", "sport = :%d" % port).strip(), 10,
                 interval=0.05, what="iperf3 server listening")
        args = ["taskset", "-c", TRAFFIC_CPU, "iperf3", "-c", address, "-p", port,
                "-t", seconds, "-J"]
        out = client.run(*args + (["-R"] if reverse else []), timeout=seconds + 30,
                         check=False)
        data = json.loads(out)
        if "error" in data:
            raise RuntimeError("iperf3: %s" % data["error"])
        return data["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        stop_child(proc)


def pin(pid, cpus):
    """Run every thread of process ``pid`` on ``cpus`` (a taskset list like "0")."""
    subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True,
                   check=True)


def cpu_seconds(pid):
    """User + system CPU seconds a process used so far."""
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def packets(ns, ifname="eth0"):
    """(rx, tx) packet counters of an interface inside a namespace."""
    out = ns.run("cat", "/sys/class/net/%s/statistics/rx_packets" % ifname,
                 "/sys/class/net/%s/statistics/tx_packets" % ifname)
    rx, tx = (int(x) for x in out.split())
    return rx, tx


class FlowgenServer:
    """``bench.flowgen serve`` in a namespace, for the duration of a ``with``."""

    UDP, TCP = "9000-9007", "9100-9107"

    def __init__(self, ns):
        self.ns = ns
        self.proc = None

    def __enter__(self):
        self.proc = self.ns.popen(PYTHON, "-m", "bench.flowgen", "serve", "--udp-ports",
                                  self.UDP, "--tcp-ports", self.TCP, stdout=subprocess.PIPE,
                                  text=True)
        assert self.proc.stdout.readline().strip() == "ready"
        return self

    def __exit__(self, *exc):
        stop_child(self.proc)


def flowgen(client, address, proto, seconds, workers=2, concurrency=16):
    """Many short flows (a new 5-tuple each): the tool's JSON summary."""
    ports = FlowgenServer.UDP if proto == "udp" else FlowgenServer.TCP
    out = client.run(PYTHON, "-m", "bench.flowgen", "run", proto, "--target", address,
                     "--ports", ports, "--duration", seconds, "--workers", workers,
                     "--concurrency", concurrency, timeout=seconds + 60)
    return json.loads(out.strip().splitlines()[-1])


_STALL_WATCH = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
gap, prev = float(sys.argv[2]), time.monotonic()
while True:
    time.sleep(0.002)
    now = time.monotonic()
    if now - prev > gap:
        print("%f %f" % (prev, now), flush=True)
    prev = now
"""


class StallWatch:
    """One process per CPU that only sleeps 2 ms at a time, for the duration of a ``with``:
    when one wakes up much later than asked, its CPU stalled under everything running there
    (on this VM: 100-300 ms every 10-40 s, with or without sggw or OVS running). Latency
    samples that overlap such a stall can then be told apart from the controller's own
    slowness, and both are reported."""

    def __init__(self, gap_ms=40):
        self.gap_ms = gap_ms
        self.procs = []
        self.stalls = []

    def __enter__(self):
        self.procs = [subprocess.Popen([PYTHON, "-c", _STALL_WATCH, str(cpu),
                                        str(self.gap_ms / 1000)],
                                       stdout=subprocess.PIPE, text=True)
                      for cpu in sorted(os.sched_getaffinity(0))]
        return self

    def __exit__(self, *exc):
        for proc in self.procs:
            stop_pid(proc.pid)
            out, _ = proc.communicate(timeout=10)
            self.stalls += [tuple(float(x) for x in line.split()) for line in out.splitlines()]

    def overlaps(self, start, end):
        """Whether a stall fell within [start, end] (``time.monotonic`` seconds)."""
        return any(s < end and e > start for s, e in self.stalls)
