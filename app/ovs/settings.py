"""The Open vSwitch settings sggw depends on: checked through OVSDB when a switch connects
(and every :data:`RECHECK` seconds), the safe ones fixed, the rest reported.

OpenFlow can neither see nor change these, yet each one breaks sggw when it is wrong:

* ``fail_mode`` secure: in standalone mode OVS puts a hidden ``NORMAL`` flow above the
  pipeline whenever the controller is away.
* in-band control off (``other-config:disable-in-band=true``, or no in-band controller or
  manager): OVS's hidden in-band flows (priority ~180000, ahead of table 0) send the
  endpoint's own ARP and DHCP, and ARP answers to the bridge's MAC, to ``NORMAL``: past
  the ARP proxy, the mirrors and the wire's learning, flooded into every port.
* ``protocols`` allows OpenFlow 1.3.
* the datapath id pinned (``other-config:datapath-id``): unpinned, OVS derives it from a
  MAC that can change when ports come and go, and the bridge no longer matches the config.
* a datapath type sggw runs on: ``system`` (the kernel module) or ``netdev`` (userspace).
* STP and RSTP off: OVS would swallow the LAN's BPDUs (a bump in the wire must pass them)
  and stop outputs to ports it has not put in forwarding state.
* sggw the only controller: another one may delete or override its flows.
* every pipeline table named and each learned table bounded (``flow_limit``,
  ``overflow_policy=refuse``): OpenFlow 1.3 cannot bound a table.

:func:`review` decides what is wrong (pure, from OVSDB rows as dicts); :func:`check` reads
OVSDB once for many bridges, applies the fixes that are safe, reads back, and returns a
:class:`Review` per bridge.
"""
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field

from app.config import DEFAULT_OVSDB
from app.ovs import cli as ovs_cli
from flows import tables

RECHECK = 10.0  # seconds between two checks of a connected switch
# A full learned table learns nothing new until entries idle out, as a full conntrack zone.
# Not "evict": with it ovs-vswitchd walks every rule of the table once a second in the thread
# that forwards (at 100k learned paths, most of what holding them costs, docs/scale.md),
# and it evicts the established paths first, as the ones closest to their idle timeout.
OVERFLOW_POLICY = "refuse"
DATAPATH_TYPES = ("system", "netdev")
_BRIDGE_COLUMNS = ("name", "fail_mode", "protocols", "datapath_type", "other_config",
                   "stp_enable", "rstp_enable", "controller", "flow_tables")


@dataclass(frozen=True)
class Problem:
    """A setting that is not as sggw needs it. ``args`` are the ovs-vsctl command (without
    the leading ``--``) that fixes it; ``auto`` says sggw may run it by itself."""

    setting: str
    have: str
    want: str
    why: str
    args: tuple
    auto: bool = True

    def describe(self):
        return "%s is %s, needs %s (%s)" % (self.setting, self.have, self.want, self.why)


@dataclass
class Review:
    """What a check found: ``problems`` still wrong, ``fixed`` by sggw just now, and the
    ``error`` that kept it from reading or writing OVSDB (then nothing is known); or
    ``pending``: the switch is programmed, its first check has not finished yet."""

    problems: list = field(default_factory=list)
    fixed: list = field(default_factory=list)
    error: str = None
    command: str = None  # the one ovs-vsctl line that fixes what is wrong
    pending: bool = False

    @property
    def ok(self):
        return not self.pending and self.error is None and not self.problems

    @property
    def tables_bounded(self):
        return not self.pending and self.error is None and not any(
            p.setting == "flow_tables" for p in self.problems)

    def to_dict(self):
        out = {"ok": self.ok}
        if self.pending:
            out["pending"] = "not checked yet"
        if self.error:
            out["error"] = self.error
        if self.problems:
            out["problems"] = [p.describe() for p in self.problems]
        if self.command:
            out["fix"] = self.command
        return out


# --- the decisions (pure) ----------------------------------------------------------------------

def review(bridge, controllers, managers, flow_tables, dp_id, max_flows, of_port, members=()):
    """The problems of ``bridge`` (a Bridge row: column -> value, sets as lists, maps as
    dicts), given its Controller rows, every Manager row and the Flow_Table rows by uuid.
    ``of_port`` is the port sggw listens on for OpenFlow and ``members`` the OpenFlow
    targets of the other instances of its cluster (any other target is someone else)."""
    name = bridge["name"]
    out = []

    def problem(setting, have, want, why, *args, auto=True):
        out.append(Problem(setting, have, want, why, args, auto))

    if bridge["fail_mode"] != "secure":
        problem("fail_mode", bridge["fail_mode"] or "unset (standalone)", "secure",
                "without the controller OVS would put NORMAL above the pipeline",
                "set", "Bridge", name, "fail_mode=secure")
    protocols = bridge["protocols"]
    if protocols and "OpenFlow13" not in protocols:
        problem("protocols", ",".join(protocols), "OpenFlow13", "sggw speaks OpenFlow 1.3",
                "set", "Bridge", name, "protocols=OpenFlow13", auto=False)
    other = bridge["other_config"]
    in_band = [c["target"] for c in controllers + managers if _in_band(c)]
    if other.get("disable-in-band") != "true" and in_band:
        remote = [t for t in in_band if not _local(t)]
        problem("in-band control", "on", "off (other-config:disable-in-band=true)",
                "its hidden flows send the endpoint's ARP and DHCP to NORMAL ahead of table 0"
                + ("; not changed by sggw: %s may be reached through this bridge"
                   % ", ".join(remote) if remote else ""),
                "set", "Bridge", name, "other-config:disable-in-band=true", auto=not remote)
    if "datapath-id" not in other:
        problem("datapath id", "not pinned", "other-config:datapath-id=%016x" % dp_id,
                "OVS derives an unpinned one from a MAC that can change",
                "set", "Bridge", name, "other-config:datapath-id=%016x" % dp_id)
    dp_type = bridge["datapath_type"] or "system"
    if dp_type not in DATAPATH_TYPES:
        problem("datapath_type", dp_type, " or ".join(DATAPATH_TYPES),
                "sggw needs learn(), meters and conntrack of a real datapath",
                "set", "Bridge", name, "datapath_type=netdev", auto=False)
    for column in ("stp_enable", "rstp_enable"):
        if bridge[column]:
            problem(column, "true", "false",
                    "OVS would take the LAN's BPDUs and block ports; the wire must pass them",
                    "set", "Bridge", name, column + "=false", auto=False)
    ours = [c["target"] for c in controllers
            if _port(c["target"]) == of_port or c["target"] in members]
    others = [c["target"] for c in controllers if c["target"] not in ours]
    if others:
        problem("controllers", " ".join(ours + others), " ".join(ours) or "sggw only",
                "another controller may delete or change sggw's flows",
                "set-controller", name, *(ours or ["tcp:127.0.0.1:%d" % of_port]),
                auto=False)
    if not _tables_as_wanted(bridge["flow_tables"], flow_tables, max_flows):
        problem("flow_tables", "unbounded",
                "learned tables %s: flow_limit=%d overflow_policy=%s"
                % (",".join(str(t.id) for t in tables.LEARNED_TABLES), max_flows,
                   OVERFLOW_POLICY),
                "OpenFlow 1.3 cannot bound a table", *table_args(name, max_flows))
    return out


def table_args(bridge_name, max_flows, which=tables.PIPELINE):
    """ovs-vsctl arguments naming the tables ``which`` and bounding each learned one. The
    new rows' symbols name the bridge, so that many bridges' fixes go in one command."""
    symbol = "@%s_t%%d" % re.sub(r"\W", "_", bridge_name)
    args = []
    for table in which:
        args += ["--id=" + symbol % table.id, "create", "Flow_Table", "name=" + table.name]
        if table.learned:
            args += ["flow_limit=%d" % max_flows, "overflow_policy=" + OVERFLOW_POLICY]
        args.append("--")
    return args + ["set", "Bridge", bridge_name] + [
        "flow_tables:%d=%s" % (t.id, symbol % t.id) for t in which]


def _tables_as_wanted(by_id, rows, max_flows):
    """Whether every learned table is bounded (the other tables' names are a nicety)."""
    for table in tables.LEARNED_TABLES:
        row = rows.get(by_id.get(table.id))
        if row is None or ((row["flow_limit"], row["overflow_policy"])
                           != (max_flows, OVERFLOW_POLICY)):
            return False
    return True


def command(db, problems):
    """The one ovs-vsctl command line that fixes ``problems``."""
    return shlex.join(["ovs-vsctl"] + ([] if db == DEFAULT_OVSDB else ["--db=" + db])
                      + _fix_args(problems))


def unchecked_command(db, bridge_name, dp_id, max_flows):
    """What to run when sggw cannot read OVSDB: every setting as sggw needs it."""
    base = ("set", "Bridge", bridge_name, "fail_mode=secure", "protocols=OpenFlow13",
            "other-config:disable-in-band=true", "other-config:datapath-id=%016x" % dp_id,
            "stp_enable=false", "rstp_enable=false")
    return command(db, [Problem("", "", "", "", base),
                        Problem("", "", "", "", tuple(table_args(
                            bridge_name, max_flows, tables.LEARNED_TABLES)))])


def _active(target):
    return target.split(":", 1)[0] in ("tcp", "ssl")


def _port(target):
    if not _active(target):
        return None
    try:
        return int(target.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return 6653  # OVS's default OpenFlow port when a target has none


def _in_band(row):
    """Whether OVS runs in-band control for this controller or manager."""
    return _active(row["target"]) and row.get("connection_mode") in (None, "in-band")


def _local(target):
    host = target.split(":", 1)[1].rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- reading and fixing (I/O) ------------------------------------------------------------------

@dataclass(frozen=True)
class Wanted:
    """A bridge to check: its datapath id, its name (for the fix when OVSDB cannot be read)
    and what :func:`review` needs to know of sggw."""

    dp_id: int
    name: str
    max_flows: int
    of_port: int
    members: tuple = ()


class Snapshot:
    """The rows of every bridge in one OVSDB, read at once: one ``ovs-vsctl`` for all the
    bridges (with 100 bridges, one process per bridge each round cost seconds of CPU)."""

    def __init__(self, db):
        found = ovs_cli.vsctl(
            db, "--format=json", "--", "--columns=datapath_id," + ",".join(_BRIDGE_COLUMNS),
            "list", "Bridge", "--", "--columns=_uuid,target,connection_mode", "list",
            "Controller", "--", "--columns=target,connection_mode", "list", "Manager",
            "--", "--columns=_uuid,name,flow_limit,overflow_policy", "list", "Flow_Table")
        bridges, controllers, self.managers, flow_tables = [
            _rows(json.loads(line)) for line in found.splitlines()]
        self.db = db
        self.bridges = {}
        for bridge in bridges:  # the first of two with one datapath id, as ``find`` did
            self.bridges.setdefault(bridge.pop("datapath_id"), bridge)
        self.controllers = {row["_uuid"]: row for row in controllers}
        self.flow_tables = {row["_uuid"]: row for row in flow_tables}

    def read(self, dp_id):
        """(bridge, its controllers, managers, flow tables by uuid) of the bridge with
        ``dp_id``: :func:`review`'s first arguments."""
        bridge = self.bridges.get("%016x" % dp_id)
        if bridge is None:
            raise ovs_cli.OvsError("no bridge with datapath_id %016x in %s" % (dp_id, self.db))
        bridge = dict(bridge, flow_tables=bridge["flow_tables"] or {},
                      other_config=bridge["other_config"] or {},
                      protocols=_as_list(bridge["protocols"]))
        return (bridge, [self.controllers[u] for u in _as_list(bridge["controller"])
                         if u in self.controllers], self.managers, self.flow_tables)

    def review(self, wanted):
        return review(*self.read(wanted.dp_id), wanted.dp_id, wanted.max_flows,
                      wanted.of_port, wanted.members)


def read(db, dp_id):
    """(bridge, its controllers, managers, flow tables by uuid) of the bridge with ``dp_id``."""
    return Snapshot(db).read(dp_id)


def check(db, wanted, fix=True):
    """Review every bridge of ``wanted`` (:class:`Wanted`) from one read of OVSDB, apply
    the safe fixes (all bridges' in one transaction, so ovs-vswitchd reconfigures once; if
    that fails, each bridge's alone) unless not to ``fix`` (a cluster standby), and review
    the fixed ones again from a second read. Returns {dp_id: :class:`Review`}."""
    out, found = {}, {}
    try:
        snapshot = Snapshot(db)
    except _UNREADABLE as exc:
        return {w.dp_id: _unchecked(db, w, exc) for w in wanted}
    for w in wanted:
        try:
            found[w.dp_id] = snapshot.review(w)
        except _UNREADABLE as exc:
            out[w.dp_id] = _unchecked(db, w, exc)
    fixes = {dp_id: [p for p in problems if p.auto and fix]
             for dp_id, problems in found.items()}
    again = _fix(db, [w for w in wanted if fixes.get(w.dp_id)], fixes, out)
    try:
        snapshot = Snapshot(db) if again else None
        for w in again:
            found[w.dp_id] = snapshot.review(w)
            still = {p.setting for p in found[w.dp_id]}
            fixes[w.dp_id] = [p for p in fixes[w.dp_id] if p.setting not in still]
    except _UNREADABLE as exc:
        out.update((w.dp_id, _unchecked(db, w, exc)) for w in again)
    for w in wanted:
        if w.dp_id not in out:
            left = found[w.dp_id]
            out[w.dp_id] = Review(problems=left, fixed=fixes[w.dp_id],
                                  command=command(db, left) if left else None)
    return out


def _fix(db, bridges, fixes, out):
    """Apply ``fixes`` ({dp_id: problems}) of ``bridges``: the bridges fixed. A bridge whose
    fix failed gets its error in ``out``."""
    if not bridges:
        return []
    try:
        ovs_cli.vsctl(db, *_fix_args(p for w in bridges for p in fixes[w.dp_id]))
        return bridges
    except ovs_cli.OvsError as exc:
        if len(bridges) == 1:
            out[bridges[0].dp_id] = _unchecked(db, bridges[0], exc)
            return []
    done = []
    for w in bridges:  # one bad bridge (deleted meanwhile, say) keeps no other unfixed
        try:
            ovs_cli.vsctl(db, *_fix_args(fixes[w.dp_id]))
            done.append(w)
        except ovs_cli.OvsError as exc:
            out[w.dp_id] = _unchecked(db, w, exc)
    return done


def _fix_args(problems):
    return [arg for p in problems for arg in ("--",) + p.args]


_UNREADABLE = (ovs_cli.OvsError, ValueError, KeyError)  # unreadable answers too


def _unchecked(db, wanted, exc):
    return Review(error="cannot check the OVS settings through %s: %s" % (db, exc),
                  command=unchecked_command(db, wanted.name, wanted.dp_id, wanted.max_flows))


def _rows(table):
    return [{name: _value(value) for name, value in zip(table["headings"], row)}
            for row in table["data"]]


def _value(value):
    """An OVSDB JSON value as Python: maps as dicts, sets as lists, an empty set as None."""
    if not isinstance(value, list):
        return value
    kind, body = value
    if kind == "map":
        return {_value(k): _value(v) for k, v in body}
    if kind == "set":
        return [_value(v) for v in body] or None
    return body  # uuid


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
