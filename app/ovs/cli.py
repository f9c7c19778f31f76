"""The switch's local management interfaces, through the tools operators know.

* OVSDB (``ovs-vsctl``): the bridge settings sggw depends on (read and fixed by
  :mod:`app.ovs.settings`); for the conntrack mode, the zone's timeout policy.
* ovs-vswitchd's control socket (``ovs-appctl``), for the conntrack mode: the zone's limit,
  and listing or flushing its connections; for a flush of learned flows, the datapath's
  cached flows. The socket is looked up next to the OVSDB socket
  (``unix:/var/run/openvswitch/db.sock``: ``ovs-vswitchd.ctl`` or ``ovs-vswitchd.PID.ctl``).
* Linux's routes and neighbours (``ip``), which the kernel datapath's tunnels go by.
"""
import os
import re
import subprocess
import threading

from app.config import IP_PROTOS

TIMEOUT = 10


class OvsError(Exception):
    pass


def _tool(argv):
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT + 2,
                              check=False)
    except FileNotFoundError:
        raise OvsError("%s is not installed" % argv[0]) from None
    except subprocess.TimeoutExpired:
        raise OvsError("%s did not answer" % " ".join(argv[:2])) from None
    if done.returncode != 0:
        raise OvsError("%s: %s" % (" ".join(argv[:3]), done.stderr.strip() or done.returncode))
    return done.stdout.strip()


def vsctl(db, *args):
    return _tool(["ovs-vsctl", "--db=" + db, "--timeout=%d" % TIMEOUT, *args])


def ip(*args):
    return _tool(["ip", *args])


def _appctl(db, *args):
    if not db.startswith("unix:"):
        raise OvsError("ovs-vswitchd's control socket is only found next to a unix: OVSDB "
                       "socket, not %s" % db)
    rundir = os.path.dirname(db[len("unix:"):])
    target = os.path.join(rundir, "ovs-vswitchd.ctl")
    if not os.path.exists(target):
        try:
            with open(os.path.join(rundir, "ovs-vswitchd.pid")) as handle:
                target = os.path.join(rundir, "ovs-vswitchd.%s.ctl" % handle.read().strip())
        except OSError:
            raise OvsError("no ovs-vswitchd control socket in %s" % rundir) from None
    return _tool(["ovs-appctl", "-t", target, "--timeout=%d" % TIMEOUT, *args])


def bridge(db, dp_id):
    """(name, datapath type) of the bridge with ``dp_id``."""
    found = vsctl(db, "--bare", "--columns=name,datapath_type", "find", "Bridge",
                  "datapath_id=%016x" % dp_id).split()
    if not found:
        raise OvsError("no bridge with datapath_id %016x in %s" % (dp_id, db))
    return found[0], (found[1] if len(found) > 1 else "system")


# Every bridge of one datapath type shares one Datapath row and its ct_zones map, and
# ovs-vsctl rewrites a map whole: two zones written at once (sggw programs every switch as
# it connects) lose one, which leaves that zone on OVS's default timeouts (30 s after a TCP
# FIN instead of fin_idle). sggw is the only writer of its zones, so one lock suffices.
_ZONE_WRITES = threading.Lock()


def configure_conntrack(db, dp_id, zone, idle, fin_idle, limit):
    """The zone's timeouts (idle, and after TCP FIN/RST) and its connection limit.

    The policy is written only when it differs, in one transaction that points the zone at
    a new policy row (``add-zone-tp`` refuses a zone that exists, and a delete and add in
    one call is refused as a whole)."""
    _, dp_type = bridge(db, dp_id)
    closing = max(fin_idle, 1)
    policy = {"udp_first": idle, "udp_single": idle, "udp_multiple": idle, "icmp_first": idle,
              "icmp_reply": idle, "tcp_established": idle, "tcp_fin_wait": closing,
              "tcp_close_wait": closing, "tcp_last_ack": closing, "tcp_time_wait": closing,
              "tcp_close": closing}
    with _ZONE_WRITES:
        row = vsctl(db, "--if-exists", "get", "Open_vSwitch", ".", "datapaths:" + dp_type)
        if not row or zone_policy(db, dp_type, zone) != policy:
            args = ["--", "--id=@tp", "create", "CT_Timeout_Policy",
                    *("timeouts:%s=%d" % item for item in sorted(policy.items())),
                    "--", "--id=@z", "create", "CT_Zone", "timeout_policy=@tp", "--"]
            if row:
                args += ["set", "Datapath", row, "ct_zones:%d=@z" % zone]
            else:
                args += ["--id=@dp", "create", "Datapath", "datapath_version=0",
                         "ct_zones:%d=@z" % zone, "--",
                         "set", "Open_vSwitch", ".", "datapaths:%s=@dp" % dp_type]
            vsctl(db, *args)
    _appctl(db, "dpctl/ct-set-limits", "zone=%d,limit=%d" % (zone, limit))


def zone_policy(db, dp_type, zone):
    """{timeout name: seconds} of ``zone``'s timeout policy on datapath type ``dp_type``."""
    for line in vsctl(db, "list-zone-tp", dp_type).splitlines():
        head, _, timeouts = line.partition(", Timeout Policies:")
        if head.strip() == "Zone:%d" % zone:
            return {key: int(value) for key, value in
                    (item.split("=", 1) for item in timeouts.split())}
    return None


_ENTRY = re.compile(r"^(?P<proto>\w+),orig=\((?P<orig>[^)]*)\),reply=\((?P<reply>[^)]*)\)"
                    r"(?P<rest>.*)$")


def connections(db, zone):
    """The zone's conntrack entries: dicts with proto, orig and reply (dicts of the tuple),
    timeout (seconds left), mark and labels."""
    out = []
    for line in _appctl(db, "dpctl/dump-conntrack", "-s", "zone=%d" % zone).splitlines():
        found = _ENTRY.match(line.strip())
        if not found:
            continue
        entry = {"proto": found["proto"], "orig": _fields(found["orig"]),
                 "reply": _fields(found["reply"])}
        rest = _fields(found["rest"].strip(","))
        entry["timeout"] = int(rest.get("timeout", 0))
        entry["mark"] = int(rest.get("mark", 0), 0)
        entry["labels"] = int(rest.get("labels", "0"), 0)
        out.append(entry)
    return out


def _fields(text):
    return dict(item.split("=", 1) for item in text.split(",") if "=" in item)


def forget_connections(db, zone, entries):
    """Flush ``entries`` (from connections()) from the zone, each by its original tuple."""
    for entry in entries:
        orig = entry["orig"]
        tuple_ = ["ct_nw_src=%s" % orig["src"], "ct_nw_dst=%s" % orig["dst"]]
        if ":" in orig["src"]:
            tuple_ = ["ct_ipv6_src=%s" % orig["src"], "ct_ipv6_dst=%s" % orig["dst"]]
        proto = IP_PROTOS.get(entry["proto"])
        if proto is None or proto == IP_PROTOS["icmpv6"]:
            # Flushing an ICMPv6 tuple aborts ovs-vswitchd before OVS commit 915d3c1a
            # (Debian's 3.1.0 has the bug): those entries idle out instead.
            continue
        tuple_.append("ct_nw_proto=%d" % proto)
        if "sport" in orig:
            tuple_ += ["ct_tp_src=%s" % orig["sport"], "ct_tp_dst=%s" % orig["dport"]]
        elif "id" in orig:
            tuple_ += ["icmp_id=%s" % orig["id"], "icmp_type=%s" % orig["type"],
                       "icmp_code=%s" % orig["code"]]
        try:
            _appctl(db, "dpctl/flush-conntrack", "zone=%d" % zone, ",".join(tuple_))
        except OvsError:
            pass  # gone meanwhile


def zone_count(db, zone):
    """How many connections the zone holds."""
    found = re.search(r"count=(\d+)", _appctl(db, "dpctl/ct-get-limits", "zone=%d" % zone))
    return int(found.group(1)) if found else 0
