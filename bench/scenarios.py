"""The six benchmark scenarios. Each returns rows: (scenario, contender, metric, unit,
summary of repeated measurements, details). Every contender gets the same warm-up, the same
traffic and the same number of repetitions."""
import json
import statistics
import time
from dataclasses import dataclass, field

from bench import ovsstat
from bench.flowgen import percentile
from bench.measure import (
    PYTHON, FlowgenServer, StallWatch, cpu_seconds, flowgen, iperf, packets, rss_mb, summary)
from testbed.proc import wait_for
from testbed.underlay import ANALYZER_V4


@dataclass(frozen=True)
class Plan:
    runs: int  # repetitions of each measurement (a full run: at least 3)
    seconds: int  # length of one iperf3 / flowgen run
    rest_probes: int  # timed create/delete cycles per REST level
    rest_levels: tuple = (1, 100, 1000)
    scale_sizes: tuple = (1000, 100000)


FULL = Plan(runs=5, seconds=5, rest_probes=200)
QUICK = Plan(runs=1, seconds=1, rest_probes=20)


@dataclass
class Row:
    scenario: str
    contender: str
    metric: str
    unit: str
    result: dict
    details: dict = field(default_factory=dict)


def _ratio(value, base):
    return round(value / base, 2) if value and base else None


# --- 1. throughput ------------------------------------------------------------------------------

def throughput(bed, plan):
    """iperf3 TCP hostA -> peer and back: the wire (one bridge) and the captured path (two
    bridges and the tunnel veth). NORMAL crosses the same bridges with the hosts on-link.
    Contenders alternate within every round; ovs-vswitchd runs on CPU 0, iperf3 on CPU 1."""
    host, router, server = bed["hostA"], bed["routerA"], bed["serverB"]
    paths = {"normal": (("wire", router), ("two bridges", server)),
             "sggw": (("wire", router), ("captured + reverse", server)),
             "sggw conntrack": (("wire", router), ("captured + reverse", server))}
    contenders = (("normal", bed.use_normal), ("sggw", bed.use_sggw),
                  ("sggw conntrack", lambda: bed.use_sggw(match="conntrack")))
    values = {}
    with bed.pinned():
        for round_ in range(plan.runs):
            first = round_ % len(contenders)  # each round starts with another: no order bias
            for contender, setup in contenders[first:] + contenders[:first]:
                setup()
                for path, peer in paths[contender]:
                    iperf(host, peer.ns, peer.ipv4, 1)  # warm-up, not counted
                    for reverse in (False, True):
                        key = (contender, "%s %s" % (path, "reply" if reverse else "forward"))
                        values.setdefault(key, []).append(
                            iperf(host, peer.ns, peer.ipv4, plan.seconds, reverse))
    rows = [Row("throughput", contender, metric, "Gbit/s", summary(runs))
            for (contender, metric), runs in values.items()]
    for row in rows:
        base = values[("normal", row.metric.replace("captured + reverse", "two bridges"))]
        row.details["vs_normal"] = _paired_ratio(row.result["runs"], base)
    return rows


def _paired_ratio(runs, base_runs):
    """The median of round-by-round ratios: each round ran both contenders back to back, so
    drift of the machine between rounds cancels out."""
    ratios = [v / b for v, b in zip(runs, base_runs) if v and b]
    return round(statistics.median(ratios), 2) if ratios else None


# --- 2. new-flow rate ---------------------------------------------------------------------------

def new_flows(bed, plan):
    """Short flows, each a new 5-tuple (UDP request/response, TCP connect/close), from hostA
    to serverB: completed exchanges/s and their latency (= the new flow's first packet)."""
    host, server = bed["hostA"], bed["serverB"]
    contenders = [("normal", bed.use_normal),
                  ("sggw five_tuple", lambda: bed.use_sggw(match="five_tuple")),
                  ("sggw host_pair", lambda: bed.use_sggw(match="host_pair")),
                  ("sggw conntrack", lambda: bed.use_sggw(match="conntrack")),
                  ("reactive", bed.use_reactive)]
    rows = []
    for contender, setup in contenders:
        setup()
        with FlowgenServer(server.ns):
            flowgen(host.ns, server.ipv4, "udp", 1)  # warm-up: ARP, MACs, neighbours
            for proto in ("udp", "tcp"):
                runs, details = [], {"p50_ms": [], "p99_ms": [], "vswitchd_cpu_s": [],
                                     "failed": [], "packet_ins": []}
                for _ in range(plan.runs):
                    bed.forget_flows()
                    cpu, ins = cpu_seconds(bed.vswitchd_pid()), bed.packet_ins()
                    result = flowgen(host.ns, server.ipv4, proto, plan.seconds)
                    runs.append(result["rate"])
                    details["p50_ms"].append(result["p50_ms"])
                    details["p99_ms"].append(result["p99_ms"])
                    details["failed"].append(result["failed"])
                    details["vswitchd_cpu_s"].append(
                        round(cpu_seconds(bed.vswitchd_pid()) - cpu, 2))
                    details["packet_ins"].append(bed.packet_ins() - ins)
                details["learned_flows_a"] = (
                    bed.sites.connections("a") if contender == "sggw conntrack" else
                    bed.learned("a") if contender.startswith("sggw") else None)
                rows.append(Row("new flows", contender, proto, "exchanges/s", summary(runs),
                                {k: _median(v) if isinstance(v, list) else v
                                 for k, v in details.items()}))
    base = {r.metric: r.result["median"] for r in rows if r.contender == "normal"}
    reactive = {r.metric: r.result["median"] for r in rows if r.contender == "reactive"}
    for row in rows:
        row.details["vs_normal"] = _ratio(row.result["median"], base.get(row.metric))
        row.details["vs_reactive"] = _ratio(row.result["median"], reactive.get(row.metric))
    return rows


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


# --- 3. mirroring -------------------------------------------------------------------------------

def mirroring(bed, plan):
    """Throughput of a mirrored TCP flow (hostA -> routerA) and the copies each analyzer got,
    compared with the packets that crossed hostA's port: sggw group mirror vs OVS Mirror
    rows (one per analyzer) vs no mirror, for 1, 2 and 4 analyzers. The cases alternate
    within every round; ovs-vswitchd runs on CPU 0, iperf3 on CPU 1."""
    host, router = bed["hostA"], bed["routerA"]
    bed.use_sggw()
    values, worst = {}, {}
    with bed.pinned():
        for round_ in range(plan.runs):
            kinds = ("sggw", "native") if round_ % 2 == 0 else ("native", "sggw")  # no order bias
            for kind, count in [("none", 0)] + [(kind, n) for n in (1, 2, 4) for kind in kinds]:
                analyzers = ["ana%d" % i for i in range(1, count + 1)]
                _mirror_on(bed, kind, analyzers)
                try:
                    iperf(host, router.ns, router.ipv4, 1)  # warm-up
                    before = _counts(bed, analyzers)
                    values.setdefault((kind, count), []).append(
                        iperf(host, router.ns, router.ipv4, plan.seconds))
                    time.sleep(0.5)
                    after = _counts(bed, analyzers)
                finally:
                    _mirror_off(bed, kind)
                source = after["source"] - before["source"]
                for name in analyzers:  # 0: every packet copied exactly once
                    off = abs((after[name] - before[name]) - source)
                    worst[(kind, count)] = max(worst.get((kind, count), 0), off)
    rows = [Row("mirroring", kind, "%d analyzer%s" % (count, "" if count == 1 else "s"),
                "Gbit/s", summary(runs), {"copies_minus_source_worst": worst.get((kind, count))})
            for (kind, count), runs in values.items()]
    for row in rows:
        count = int(row.metric.split()[0])
        if row.contender != "none":
            row.details["vs_native"] = _paired_ratio(row.result["runs"],
                                                     values[("native", count)])
        row.details["vs_no_mirror"] = _paired_ratio(row.result["runs"], values[("none", 0)])
    return rows


def _mirror_on(bed, kind, analyzers):
    """Mirror to ``analyzers`` the ``kind`` way, then start from an empty datapath cache:
    OVS 3.1 re-translates its cached datapath flows after an OpenFlow change (sggw) but not
    after a Mirror row comes or goes (native), which would leave a running flow mirrored
    the way it was before."""
    if kind == "sggw":
        status, body = bed.controller.call("POST", "/v1/switches/site-a/mirrors", {
            "name": "bench", "sources": [{"port": bed["hostA"].outside, "direction": "both"}],
            "destinations": [{"port": bed[a].outside} for a in analyzers]})
        assert status == 201, body
    elif kind == "native":
        bed.add_native_mirrors(bed["hostA"].outside, analyzers)
    bed.ovs.flush_datapath_cache()


def _mirror_off(bed, kind):
    if kind == "sggw":
        bed.controller.call("DELETE", "/v1/switches/site-a/mirrors/bench")
    elif kind == "native":
        bed.clear_native_mirrors()


def _counts(bed, analyzers):
    """Packets the switch forwarded for the flow (out of routerA's and hostA's ports: at
    saturation it reads some it never forwards, and those have no copy) and packets each
    analyzer received."""
    out = {"source": (bed.port_tx("a", bed["routerA"].port)
                      + bed.port_tx("a", bed["hostA"].port))}
    for name in analyzers:
        out[name] = packets(bed[name].ns)[0]
    return out


# --- 4. control plane ---------------------------------------------------------------------------

def control_plane(bed, plan):
    """REST create-to-confirmed latency with 1, 100, 1000 sessions/rules present; connect
    to programmed with 1000 capture rules; controller memory as the learned paths grow."""
    rows = []
    for kind in ("mirrors", "captures"):
        bed.use_sggw()
        present = 0
        for level in plan.rest_levels:
            while present < level:
                status, body = bed.controller.call("POST", "/v1/switches/site-a/" + kind,
                                                   _rest_object(bed, kind, present))
                assert status == 201, body
                present += 1
            rows.append(_rest_latency(bed, plan, kind, level))
    rows += _connect_to_programmed(bed, plan)
    rows += _controller_memory(bed, plan)
    return rows


def _rest_latency(bed, plan, kind, level):
    """Timed create (until the switch confirmed) + delete of one probe object; p99 is also
    given without the probes a machine-wide stall fell into, with the number of those."""
    spans = []
    with StallWatch() as watch:
        for i in range(plan.rest_probes):
            probe = _rest_object(bed, kind, 50000 + i, name="probe")
            started = time.monotonic()
            status, body = bed.controller.call("POST", "/v1/switches/site-a/" + kind, probe)
            spans.append((started, time.monotonic()))
            assert status == 201, body
            assert bed.controller.call("DELETE", "/v1/switches/site-a/%s/probe"
                                       % kind)[0] == 204
    latencies = [(end - start) * 1000 for start, end in spans]
    clean = [ms for ms, span in zip(latencies, spans) if not watch.overlaps(*span)]
    return Row("control plane", "sggw", "REST create %s, %d present" % (kind[:-1], level),
               "ms", summary(latencies),
               {"p99": round(percentile(sorted(latencies), 99), 1),
                "p99_outside_machine_stalls": (round(percentile(sorted(clean), 99), 1)
                                               if clean else None),
                "probes_in_machine_stalls": len(latencies) - len(clean)})


def _rest_object(bed, kind, i, name=None):
    name = name or "%s%d" % (kind[0], i)
    if kind == "captures":
        prefix = "10.%d.%d.%d/32" % (100 + i // 65536, i // 256 % 256, i % 256)
        return {"name": name, "ipv4_dst": prefix}
    return {"name": name, "sources": [{"port": bed["hostA"].outside, "direction": "rx"}],
            "destinations": [{"port": bed["ana1"].outside}],
            "filter": {"ip_proto": "udp", "dst_port": 1 + i % 65535}}


def _connect_to_programmed(bed, plan):
    """From set-controller to the switch reported programmed, with 1000 capture rules, on an
    empty switch (cold) and on one that already has the pipeline (reconnect)."""
    sites = bed.sites
    rules = [{"name": "r%d" % i, "ipv4_dst": "10.%d.%d.0/24" % (200 + i // 256, i % 256)}
             for i in range(1000)]
    sites.capture = {"a": rules}  # site B keeps its default rules
    try:
        bed.use_sggw()
        rows = []
        bridge = sites.bridge("a")
        for cold in (True, False):
            values, syncs = [], []
            for _ in range(plan.runs):
                bed.ovs.vsctl("del-controller", bridge)
                wait_for(lambda: not bed.controller.get("/v1/switches/site-a")["connected"], 10,
                         what="site-a disconnected")
                if cold:
                    bed.ovs.ofctl("del-flows", bridge)
                    bed.ovs.ofctl("del-groups", bridge)
                started = time.monotonic()
                bed.ovs.vsctl("set-controller", bridge, "tcp:127.0.0.1:%d" % sites.of_port)
                state = wait_for(lambda: _programmed(bed), 60, interval=0.01,
                                 what="site-a programmed")
                values.append(time.monotonic() - started)
                syncs.append(state["last_sync"]["seconds"])
            rows.append(Row("control plane", "sggw", "connect to programmed, 1000 rules, %s"
                            % ("empty switch" if cold else "reconnect"), "s", summary(values),
                            {"controller_sync_s": _median(syncs),
                             "flows": state["last_sync"]["flows"]}))
        return rows
    finally:
        sites.capture = None


def _programmed(bed):
    state = bed.controller.get("/v1/switches/site-a")
    return state if state.get("state") == "programmed" else None


def _controller_memory(bed, plan):
    """The controller's RSS while OVS holds 0, 10k, 100k learned paths (counted by OVS):
    learning happens in the switch, so it should not move; listing paths is the exception."""
    bed.use_sggw()
    pid = bed.controller.pid
    rows = []
    for size in (0,) + tuple(s for s in plan.scale_sizes if s >= 10000):
        learned = _learn(bed, size) if size else bed.learned("a")
        rows.append(Row("control plane", "sggw", "controller RSS, %d learned paths" % learned,
                        "MB", summary([rss_mb(pid)])))
    before = rss_mb(pid)
    for listing in ("first", "second"):  # the second shows whether the first's memory stays
        # learning 100k paths can keep a loaded ovs-vswitchd from answering for a while
        wait_for(lambda: bed.controller.get("/v1/switches/site-a").get("answering"), 60,
                 what="site-a answering")
        # the controller gives a listing up to 120 s (Ryu parses about 10k flows a second)
        started = time.monotonic()
        listed = bed.controller.get("/v1/switches/site-a/paths?limit=10", timeout=130)["total"]
        seconds = time.monotonic() - started
        after = rss_mb(pid)
        rows.append(Row("control plane", "sggw", "controller RSS after the %s listing of %d "
                        "paths" % (listing, listed), "MB", summary([after]),
                        {"vs_before_listing": _ratio(after, before),
                         "listing_s": round(seconds, 1)}))
    return rows


# --- 5. scale -----------------------------------------------------------------------------------

SCALE_MODES = ("five_tuple", "host_pair", "conntrack")
WIDE_SOURCES = "10.64.0.0/10"  # 4M source addresses: every tuple is a new host pair
# No path may idle out while it is measured: learning 100k paths can take a minute on a
# loaded machine, and expiring them costs ovs-vswitchd's forwarding thread more than
# holding them (docs/scale.md measures that apart)
SCALE_IDLE = 600


def scale(bed, plan):
    """Per reverse-path mode: throughput (every run) and one-at-a-time new-flow latency as
    the learned paths (conntrack: connections) grow and are held, with what ovs-vswitchd
    spent during each run (:mod:`bench.ovsstat`); then a flood larger than max_flows against
    a smaller bound."""
    rows = []
    for mode in SCALE_MODES:
        rows += _scale_mode(bed, plan, mode)
    rows.append(_flood(bed))
    return rows


def _scale_mode(bed, plan, mode):
    host, server = bed["hostA"], bed["serverB"]
    bed.use_sggw(match=mode, idle_timeout=SCALE_IDLE)
    conntrack = mode == "conntrack"
    rows, base = [], None
    with FlowgenServer(server.ns):
        for size in plan.scale_sizes:
            paths = _learn(bed, size, src_net=WIDE_SOURCES if mode == "host_pair" else None,
                           count=(lambda: bed.sites.connections("a")) if conntrack else None)
            ovsstat.settle(bed.ovs)  # measure holding the paths, not the burst's aftermath
            gbps, spent = [], []
            for _ in range(plan.runs):
                before = ovsstat.snapshot(bed.ovs, bed.vswitchd_pid())
                gbps.append(iperf(host, server.ns, server.ipv4, plan.seconds))
                spent.append(ovsstat.delta(before, ovsstat.snapshot(bed.ovs,
                                                                    bed.vswitchd_pid())))
            newflow = flowgen(host.ns, server.ipv4, "udp", plan.seconds, workers=1,
                              concurrency=1)
            base = base or statistics.median(gbps)  # the smallest size: the baseline
            rows.append(Row("scale", "sggw " + mode, "%d %s" % (
                paths, "connections" if conntrack else "learned paths"), "Gbit/s",
                summary(gbps), {
                    "runs": [round(g, 3) for g in gbps],
                    "vs_smallest": [round(g / base, 2) for g in gbps],
                    "new_flow_p50_ms": newflow["p50_ms"],
                    "new_flow_p99_ms": newflow["p99_ms"],
                    "main_cpu_s": [s.get("cpu_main_s", 0) for s in spent],
                    "revalidator_cpu_s": [s.get("cpu_revalidator_s", 0) for s in spent],
                    "expired": [s.get("ofproto_dpif_expired", 0) for s in spent],
                    "dump_ms_max": max(s["dump_ms"] or 0 for s in spent),
                    "flow_limit_min": min(s["flow_limit"] for s in spent),
                    "flow_limit_hits": sum(s.get("upcall_flow_limit_hit", 0) for s in spent),
                    "rules": spent[-1]["rules"],
                    "vswitchd_rss_mb": round(rss_mb(bed.vswitchd_pid()))}))
    return rows


def _flood(bed):
    """100k spoofed tuples against max_flows 50000: the bound holds, a legitimate ping
    still gets its replies."""
    host, server = bed["hostA"], bed["serverB"]
    bound = 50000
    bed.use_sggw(max_flows=bound)
    sent = _blast(bed, 2 * bound, first=0)
    peak = bed.learned("a")
    ok = host.ping(server.ipv4, count=3, check=False)
    return Row("scale", "sggw", "flood of %d tuples, max_flows %d" % (sent, bound),
               "flows", summary([peak]), {"bound_held": peak <= bound,
                                          "legit_ping_replies": ok})


BLAST_RATE = 15000  # tuples/s: below OVS's measured ~20-25k learned flows/s ceiling


def _blast(bed, count, first, src_net=None):
    host, router, server = bed["hostA"], bed["routerA"], bed["serverB"]
    args = ["--src-net", src_net] if src_net else []
    out = host.run(PYTHON, "-m", "bench.blast", "--iface", "eth0", "--src-mac", host.mac,
                   "--dst-mac", router.mac, "--dst-ip", server.ipv4, "--count", count,
                   "--first", first, "--rate", BLAST_RATE, *args, timeout=count / 1000 + 120)
    return json.loads(out.strip().splitlines()[-1])["sent"]


def _learn(bed, size, src_net=None, count=None):
    """Grow site A's learned reverse paths (or what ``count`` counts) to about ``size``
    with spoofed captured flows (sending the same tuples again only refreshes them)."""
    count = count or (lambda: bed.learned("a"))
    for _ in range(5):
        missing = size - count()
        if missing <= size * 0.05:
            break
        _blast(bed, size, first=0, src_net=src_net)
        time.sleep(1)
    return count()


# --- 6. remote mirroring ------------------------------------------------------------------------

REMOTE_MTU = 1600  # the underlay's MTU: full-size copies fit whole, for both contenders
ERSPAN = {"version": 1, "session_id": 7, "index": 5}
NATIVE_ERSPAN_PORT = "benchersp"


def remote_mirroring(bed, plan):
    """Throughput of a TCP flow (hostA -> routerA) mirrored to a remote analyzer over
    ERSPAN v1, and the copies it received: sggw's remote destination (its flow-based ERSPAN
    port, length check included) vs an OVS Mirror row whose output is an ERSPAN port to the
    same analyzer, over the same underlay; the order alternates every round."""
    analyzer = bed.underlay(REMOTE_MTU).analyzer
    host, router = bed["hostA"], bed["routerA"]
    bed.use_sggw()
    bed.ovs.vsctl("--may-exist", "add-port", bed.sites.bridge("a"), NATIVE_ERSPAN_PORT, "--",
                  "set", "interface", NATIVE_ERSPAN_PORT, "type=erspan",
                  "options:remote_ip=%s" % ANALYZER_V4, "options:key=%d" % ERSPAN["session_id"],
                  "options:erspan_ver=1", "options:erspan_idx=%d" % ERSPAN["index"])
    values, worst = {}, {}
    with bed.pinned():
        for round_ in range(plan.runs):
            for kind in ("sggw", "native") if round_ % 2 == 0 else ("native", "sggw"):
                _remote_on(bed, kind)
                try:
                    iperf(host, router.ns, router.ipv4, 1)  # warm-up, MAC resolved
                    before = _remote_counts(bed, analyzer)
                    values.setdefault(kind, []).append(
                        iperf(host, router.ns, router.ipv4, plan.seconds))
                    time.sleep(0.5)
                    after = _remote_counts(bed, analyzer)
                finally:
                    _mirror_off(bed, kind)
                off = (after["copies"] - before["copies"]) - (after["source"] - before["source"])
                worst[kind] = max(worst.get(kind, 0), abs(off))
    bed.ovs.vsctl("del-port", bed.sites.bridge("a"), NATIVE_ERSPAN_PORT)
    rows = [Row("remote mirroring", kind, "ERSPAN v1, 1 analyzer", "Gbit/s", summary(runs),
                {"copies_minus_source_worst": worst[kind]}) for kind, runs in values.items()]
    for row in rows:
        row.details["vs_native"] = _paired_ratio(row.result["runs"], values["native"])
    return rows


def _remote_on(bed, kind):
    if kind == "sggw":
        status, body = bed.controller.call("POST", "/v1/switches/site-a/mirrors", {
            "name": "bench", "sources": [{"port": bed["hostA"].outside, "direction": "both"}],
            "destinations": [{"erspan": dict(ERSPAN, remote_ip=ANALYZER_V4, mtu=REMOTE_MTU)}]})
        assert status == 201, body
    else:
        bed.add_native_mirror(bed["hostA"].outside, NATIVE_ERSPAN_PORT, "bench")
    bed.ovs.flush_datapath_cache()


def _remote_counts(bed, analyzer):
    """Packets the switch forwarded for the flow (as in _counts) and the IPv4 packets the
    remote analyzer received: the copies, as nothing else sends it IPv4 (its kernel's
    ``Ip: InReceives``; ARP and IPv6 are not counted there)."""
    header, values = [line.split() for line in analyzer.run("cat", "/proc/net/snmp")
                      .splitlines() if line.startswith("Ip:")][:2]
    return {"source": (bed.port_tx("a", bed["routerA"].port)
                       + bed.port_tx("a", bed["hostA"].port)),
            "copies": int(values[header.index("InReceives")])}


SCENARIOS = {"throughput": throughput, "new_flows": new_flows, "mirroring": mirroring,
             "control_plane": control_plane, "scale": scale,
             "remote_mirroring": remote_mirroring}
