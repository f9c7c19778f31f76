"""The benchmark's outputs: a table on stdout, a JSON file, and a plot (PNG)."""
import json
import os
import platform
import subprocess
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (after choosing the file-only backend)

DETAILS = ("vs_normal", "vs_reactive", "vs_native", "vs_no_mirror", "p50_ms", "p99_ms",
           "failed", "packet_ins", "vswitchd_cpu_s", "learned_flows_a", "p99",
           "copies_minus_source_worst", "controller_sync_s", "flows", "new_flow_p50_ms",
           "new_flow_p99_ms", "vswitchd_rss_mb", "bound_held", "legit_ping_replies",
           "p99_outside_machine_stalls", "probes_in_machine_stalls", "runs", "vs_smallest",
           "main_cpu_s", "revalidator_cpu_s", "expired", "dump_ms_max", "flow_limit_min",
           "flow_limit_hits", "rules", "vs_before_listing", "listing_s")


def _fmt(value):
    if isinstance(value, list):  # every run, in order: a trend across runs shows
        return "[%s]" % " ".join(_fmt(v) for v in value)
    if value is None:
        return "-"
    if isinstance(value, float):
        return "%.3g" % value if abs(value) < 100 else "%.0f" % value
    return str(value)


def table(rows):
    """The results as a Markdown table, one section per scenario."""
    out = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        out += ["", "**%s**" % scenario, "",
                "| contender | measurement | median | min-max | unit | notes |",
                "|---|---|---|---|---|---|"]
        for r in (r for r in rows if r.scenario == scenario):
            spread = "-" if len(r.result["runs"]) < 2 else "%s-%s" % (
                _fmt(r.result["min"]), _fmt(r.result["max"]))
            notes = ", ".join("%s %s" % (k, _fmt(r.details[k])) for k in DETAILS
                              if r.details.get(k) is not None)
            out.append("| %s | %s | %s | %s | %s | %s |" % (
                r.contender, r.metric, _fmt(r.result["median"]), spread, r.unit, notes))
    return "\n".join(out) + "\n"


def machine():
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
        except OSError:
            return ""
    with open("/proc/cpuinfo") as handle:
        cpu = [line.split(":", 1)[1].strip() for line in handle
               if line.startswith("model name")]
    return {"cpus": os.cpu_count(), "cpu": cpu[0] if cpu else platform.processor(),
            "kernel": platform.release(), "python": platform.python_version(),
            "ovs": run("ovs-vswitchd", "--version").splitlines()[0:1]}


def write_json(rows, path, plan, seconds, host):
    data = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": host, "plan": vars(plan),
            "seconds": round(seconds), "rows": [vars(r) for r in rows]}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1, default=str)


def plot(rows, path):
    """New-flow rate and throughput per contender, side by side."""
    flows = [r for r in rows if r.scenario == "new flows"]
    through = [r for r in rows if r.scenario == "throughput"]
    panels = [p for p in ((flows, "new flows: completed exchanges/s (log)", True),
                          (through, "throughput: Gbit/s (iperf3 TCP)", False)) if p[0]]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.2), squeeze=False)
    for ax, (data, title, log) in zip(axes[0], panels):
        labels = ["%s\n%s" % (r.contender, r.metric) for r in data]
        values = [r.result["median"] or 0 for r in data]
        low = [v - (r.result["min"] or v) for v, r in zip(values, data)]
        high = [(r.result["max"] or v) - v for v, r in zip(values, data)]
        colors = ["#d95f02" if r.contender.startswith("sggw") else "#7570b3"
                  if r.contender == "reactive" else "#1b9e77" for r in data]
        ax.bar(range(len(values)), values, yerr=[low, high], color=colors, capsize=3)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
