"""Watch ovs-vswitchd while it holds many learned paths (as root, in a network namespace):

    python -m bench.scaleprobe [--paths 100000] [--match five_tuple] [--minutes 2]
                               [--other-config key=value ...]

Builds the bench bed, learns about 1,000 paths, then ``--paths`` paths in one burst, and
runs 5-second iperf3 TCP transfers and 2-second single-stream new-flow probes back to back
for ``--minutes``. One line per run: seconds since the burst, learned paths, Gbit/s,
new-flow p50, and what :mod:`bench.ovsstat` saw during the run (datapath flows and flow
limit, dump duration, counters, CPU seconds per ovs-vswitchd thread). ``--other-config``
sets an Open_vSwitch other_config key first (e.g. ``max-revalidator=2000``) to try a
tunable; ``--idle-only`` measures holding the paths (no traffic) and then their expiry.
"""
import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time

from bench import ovsstat
from bench.bed import BenchBed
from bench.measure import FlowgenServer, flowgen, iperf
from bench.scenarios import _learn
from testbed.signals import exit_cleanly_on_sigterm


def _idle(bed, started, seconds=20):
    """No traffic for ``seconds`` (once the burst's datapath flows are gone): what holding
    the learned flows alone costs."""
    if seconds > 10:
        ovsstat.settle(bed.ovs)
    before = ovsstat.snapshot(bed.ovs, bed.vswitchd_pid())
    time.sleep(seconds)
    line = {"phase": "idle %ds" % seconds, "t": round(time.monotonic() - started),
            "learned": bed.learned("a")}
    line.update(ovsstat.delta(before, ovsstat.snapshot(bed.ovs, bed.vswitchd_pid())))
    print(json.dumps(line), flush=True)


def _run(bed, label, started):
    host, server = bed["hostA"], bed["serverB"]
    before = ovsstat.snapshot(bed.ovs, bed.vswitchd_pid())
    gbps = iperf(host, server.ns, server.ipv4, 5)
    probe = flowgen(host.ns, server.ipv4, "udp", 2, workers=1, concurrency=1)
    after = ovsstat.snapshot(bed.ovs, bed.vswitchd_pid())
    line = {"phase": label, "t": round(time.monotonic() - started), "learned": bed.learned("a"),
            "gbps": round(gbps, 3), "p50_ms": probe["p50_ms"], "p99_ms": probe["p99_ms"]}
    line.update(ovsstat.delta(before, after))
    print(json.dumps(line), flush=True)


@contextlib.contextmanager
def _perf(pid, report):
    """``perf record`` (software clock, call graphs) of ``pid`` for the ``with`` body."""
    if not report:
        yield
        return
    data = report + ".data"
    proc = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-g", "--per-thread",
                             "-p", str(pid), "-o", data], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
        with open(report, "w") as out:
            subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                            "--sort", "comm,dso,symbol", "-g", "none", "--percent-limit",
                            "0.5"], stdout=out, stderr=subprocess.DEVNULL, check=False)


def main(argv=None):
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench.scaleprobe")
    parser.add_argument("--paths", type=int, default=100000)
    parser.add_argument("--match", default="five_tuple")
    parser.add_argument("--minutes", type=float, default=2)
    parser.add_argument("--other-config", action="append", default=[])
    parser.add_argument("--idle-timeout", type=int, default=60,
                        help="reverse_path.idle_timeout (the bench uses 60)")
    parser.add_argument("--idle-only", action="store_true",
                        help="stop after the idle measurement")
    parser.add_argument("--perf", metavar="FILE",
                        help="perf-record ovs-vswitchd during the burst, report to FILE")
    args = parser.parse_args(argv)
    with BenchBed() as bed:
        for item in args.other_config:
            bed.ovs.vsctl("set", "Open_vSwitch", ".", "other_config:" + item)
        bed.use_sggw(match=args.match, idle_timeout=args.idle_timeout)
        with FlowgenServer(bed["serverB"].ns):
            started = time.monotonic()
            _learn(bed, 1000)
            for _ in range(3):
                _run(bed, "1k", started)
            started = time.monotonic()
            before = ovsstat.snapshot(bed.ovs, bed.vswitchd_pid())
            with _perf(bed.vswitchd_pid(), args.perf):
                _learn(bed, args.paths)
            line = {"phase": "learned", "t": round(time.monotonic() - started),
                    "learned": bed.learned("a")}
            line.update(ovsstat.delta(before, ovsstat.snapshot(bed.ovs, bed.vswitchd_pid())))
            print(json.dumps(line), flush=True)
            _idle(bed, started)
            if args.idle_only:  # then watch the paths expire, with no traffic
                while bed.learned("a") > args.paths * 0.02:
                    _idle(bed, started, 10)
                return 0
            while time.monotonic() - started < args.minutes * 60:
                _run(bed, "big", started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
