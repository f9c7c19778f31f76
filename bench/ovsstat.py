"""What ovs-vswitchd says about its own work: the datapath flow limit it chose and how long
its revalidators took (``upcall/show``), event counters (``coverage/show``), CPU time per
thread (``/proc``) and its log's complaints about long main-loop iterations.

A snapshot before and after a run, and ``delta`` between them, tell which part of
ovs-vswitchd a run kept busy: the main thread (which, with the userspace datapath and
non-PMD ports, also forwards every packet), the revalidators or the handlers."""
import os
import re
import time

from bench.measure import HZ

# coverage/show counters worth a look at scale (present in OVS 3.1; missing ones read 0)
COUNTERS = ("upcall_flow_limit_hit", "upcall_ukey_replace", "revalidate_missed_dp_flow",
            "dumped_duplicate_flow", "rev_flow_table", "rev_reconfigure", "xlate_actions",
            "ofproto_dpif_expired", "ofproto_flush", "ukey_dp_change", "upcall_ukey_contention",
            "dpif_flow_put", "dpif_flow_del", "dpif_execute", "datapath_drop_upcall_error",
            "poll_create_node", "poll_zero_timeout", "hmap_expand", "cmap_expand",
            "cmap_shrink", "long_poll_interval")
_UPCALL = re.compile(r"\(current (\d+)\) \(avg (\d+)\) \(max (\d+)\) \(limit (\d+)\)")
_DUMP = re.compile(r"dump duration : (\d+)ms")
_LONG = re.compile(r"Unreasonably long (\d+)ms poll interval")


def upcall(ovs):
    """{flows, flows_max, flow_limit, dump_ms} of the first datapath in ``upcall/show``."""
    out = ovs.appctl("upcall/show")
    flows, dump = _UPCALL.search(out), _DUMP.search(out)
    return {"dp_flows": int(flows.group(1)), "dp_flows_max": int(flows.group(3)),
            "flow_limit": int(flows.group(4)), "dump_ms": int(dump.group(1)) if dump else None}


def settle(ovs, most=100, timeout=30):
    """Wait (up to ``timeout`` s) until a burst's datapath flows have idled out of the
    datapath (at most ``most`` left): until then the revalidators re-check every one of them
    twice a second, on the same cores that forward the next run's packets."""
    deadline = time.monotonic() + timeout
    while upcall(ovs)["dp_flows"] > most and time.monotonic() < deadline:
        time.sleep(1)


def coverage(ovs):
    """Totals of COUNTERS since ovs-vswitchd started."""
    totals = {}
    for line in ovs.appctl("coverage/show").splitlines():
        parts = line.split()
        if parts and parts[0] in COUNTERS and "total:" in parts:
            totals[parts[0]] = int(parts[parts.index("total:") + 1])
    return {name: totals.get(name, 0) for name in COUNTERS}


def thread_cpu(pid):
    """CPU seconds per thread kind ("main", "revalidator", "handler", "pmd", ...)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as handle:
                raw = handle.read()
        except OSError:
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(") ", 1)[1].split()
        kind = "main" if int(tid) == pid else re.sub(r"\d+$", "", name)
        out[kind] = out.get(kind, 0) + (int(fields[11]) + int(fields[12])) / HZ
    return out


def long_polls(ovs):
    """(count, worst ms) of "Unreasonably long poll interval" warnings in the log so far."""
    try:
        with open(os.path.join(ovs.rundir, "ovs-vswitchd.log")) as handle:
            spans = [int(m.group(1)) for m in _LONG.finditer(handle.read())]
    except OSError:
        spans = []
    return len(spans), max(spans, default=0)


def rules(ovs):
    """OpenFlow rules in all bridges (``memory/show``): what the expiry walks visit."""
    found = re.search(r"rules:(\d+)", ovs.appctl("memory/show"))
    return int(found.group(1)) if found else None


def snapshot(ovs, pid):
    polls, worst = long_polls(ovs)
    return {"upcall": dict(upcall(ovs), rules=rules(ovs)), "coverage": coverage(ovs),
            "cpu": thread_cpu(pid), "long_polls": polls, "long_poll_worst_ms": worst}


def delta(before, after):
    """What happened between two snapshots: counter and CPU increments, the upcall state at
    the end (flow limit, dump duration) and the long-poll warnings that appeared."""
    out = dict(after["upcall"])
    out.update({name: after["coverage"][name] - before["coverage"][name]
                for name in COUNTERS if after["coverage"][name] != before["coverage"][name]})
    out.update({"cpu_%s_s" % kind: round(secs - before["cpu"].get(kind, 0), 2)
                for kind, secs in after["cpu"].items()
                if round(secs - before["cpu"].get(kind, 0), 2)})
    out["long_polls"] = after["long_polls"] - before["long_polls"]
    return out
