"""Run the benchmarks: ``python -m bench [--quick] [--only a,b] [--json F] [--plot F]``
(as root; ``scripts/bench`` installs what it needs first).

Every scenario runs each contender back to back on the same private OVS, the same
namespaces and the same traffic, and prints one table; the JSON file keeps every run. It
all runs in a network namespace of its own (the remote-mirroring underlay puts addresses
next to ovs-vswitchd)."""
import argparse
import secrets
import sys
import time

from bench import report
from bench.bed import BenchBed
from bench.scenarios import FULL, QUICK, SCENARIOS
from testbed.netns import inside
from testbed.signals import exit_cleanly_on_sigterm


def main(argv=None):
    exit_cleanly_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true",
                        help="one run per measurement, shorter runs (about 6 minutes)")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help="scenarios to run, comma-separated: %s" % ", ".join(SCENARIOS))
    parser.add_argument("--json", default="bench/results/results.json")
    parser.add_argument("--plot", default="bench/results/performance.png")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        parser.error("unknown scenario(s): %s" % ", ".join(unknown))
    plan = QUICK if args.quick else FULL
    started, rows = time.monotonic(), []
    with inside("sgbench%s" % secrets.token_hex(2)), BenchBed() as bed:
        for name in chosen:
            t0 = time.monotonic()
            print("== %s ..." % name, file=sys.stderr, flush=True)
            rows += SCENARIOS[name](bed, plan)
            print("   %.0f s" % (time.monotonic() - t0), file=sys.stderr, flush=True)
    seconds = time.monotonic() - started
    print(report.table(rows))
    host = report.machine()
    print("(%s run in %.0f s on %s)" % ("quick" if args.quick else "full", seconds,
                                        host["cpu"]))
    report.write_json(rows, args.json, plan, seconds, host)
    report.plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
