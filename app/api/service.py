"""What sggw knows and can do: the config, the REST-made objects, the connected switches.

The Ryu shell (``app/sggw_app.py``) feeds it switch events; the REST API (``rest.py``) calls
its operations. A change (create, replace, delete a capture rule or mirror session) is
checked, written to a temporary file, applied to the switch (which confirms it), and only
then made the store; whichever step fails, the switch is put back and the store keeps its
old content: it either fully happens or nothing changes. (A cluster's store may lose its
answer: then it settles whether the change was made, and if it cannot yet, the answer is a
504 that says so.) Errors are :class:`ApiError` with an HTTP status.
"""
import heapq
import ipaddress
import logging
import time
from dataclasses import replace

from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from app import config
from app.api.metrics import render_metrics
from app.openflow.channel import Rejected, SwitchError
from app.openflow.switch import port_name
from app.store.store import FIRST_API_ID, IdsExhausted, StoreError, StoreUnknown
from flows import tables
from flows.ofp import ETH_TYPE_IP, ETH_TYPE_IPV6

LOG = logging.getLogger("sggw")
CONFIG_KEY = {"captures": "capture", "mirrors": "mirrors"}  # Datapath attribute per kind
NOUN = {"captures": "capture rule", "mirrors": "mirror session"}
LIST_TIMEOUT = 120  # seconds for listing learned paths
MAX_TRACKED = 10_000  # learned paths whose activity is remembered between listings
HEALTH_KEYS = ("connected", "state", "error", "answering", "learned_tables_bounded",
               "ovs_settings")


class ApiError(Exception):
    """An answer other than success: HTTP ``status``, a message and, for bad input, the
    field (a key path into the request body) it is about."""

    def __init__(self, status, message, field=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


class Sggw:
    def __init__(self, cfg, store):
        self.config = cfg
        self.store = store
        self.switches = {}  # dp_id -> app.openflow.switch.Switch, while connected
        self.intruders = {}  # dp_id -> [Ryu datapaths that claim it while it is owned]
        self.packet_ins = {}  # dp_id -> count
        self._changing = hub.Semaphore(1)  # one change at a time: read, apply, persist
        self.election = None  # app.cluster.election.Election when this instance is in a cluster

    # --- datapaths ------------------------------------------------------------------------

    def effective(self, name, objects=None):
        """Datapath ``name`` as the switch should have it: the file's objects, then REST's
        (the store's, or those of ``objects``: {datapath: {kind: [object]}})."""
        dp = self.config.datapaths[name]
        made = (objects or self.store.objects).get(name, {})
        return replace(dp, capture=dp.capture + tuple(made.get("captures", ())),
                       mirrors=dp.mirrors + tuple(made.get("mirrors", ())))

    def resolve_dp(self, ref):
        """The config name for ``ref``: a datapath name, or its dp_id in decimal or 0x-hex."""
        if ref in self.config.datapaths:
            return ref
        try:
            dp_id = int(ref, 0)
        except ValueError:
            dp_id = None
        dp = self.config.by_dp_id(dp_id) if dp_id is not None else None
        if dp is None:
            raise ApiError(404, "no configured switch %r" % ref, "dp")
        return dp.name

    def switch(self, name):
        return self.switches.get(self.config.datapaths[name].dp_id)

    def _programmed_switch(self, name):
        switch = self.switch(name)
        if switch is None:
            raise ApiError(503, "switch %s is not connected: nothing was changed" % name)
        if not switch.programmed:
            raise ApiError(503, "switch %s is not programmed (%s): nothing was changed"
                           % (name, switch.error or switch.state))
        _check_answering(switch, name)
        return switch

    def describe_switch(self, name):
        dp = self.config.datapaths[name]
        switch = self.switch(name)
        out = {"name": name, "dp_id": "%#x" % dp.dp_id, "connected": switch is not None}
        if switch is None:
            return out
        out.update(state=switch.state, error=switch.error, answering=switch.answering,
                   last_sync=switch.last_sync,
                   learned_tables_bounded=switch.bound_error is None,
                   ovs_settings=switch.ovs.to_dict(),
                   packet_ins=self.packet_ins.get(dp.dp_id, 0),
                   neighbour_probes=switch.probes_sent)
        if switch.role is not None:
            out["role"] = switch.role
        if switch.bound_error:
            out["learned_tables_error"] = switch.bound_error
        intruders = self.intruders.get(dp.dp_id)
        if intruders:
            out["intruders"] = [peer(datapath) for datapath in intruders]
        out["ports"] = [{"port_no": no, "name": port_name(port),
                         "role": switch.portmap.role(no) if switch.portmap else None,
                         "up": switch.port_up.get(no, False)}
                        for no, port in sorted(switch.datapath.ports.items())]
        if switch.portmap and switch.portmap.missing:
            out["missing_ports"] = [{"role": r, "port": p} for r, p in switch.portmap.missing]
        return out

    def may_change(self, path):
        """Raises unless this instance may make a change now: a standby answers with a
        redirect to the master (307 keeps the method and body), an election with 503."""
        election = self.election
        if election is None or election.writable:
            return
        master = election.master
        if master is None or master[0] == election.name:
            raise ApiError(503, "a controller election is under way: retry in a moment",
                           headers={"Retry-After": "1"})
        raise ApiError(307, "this controller is a standby: the master is %s" % master[0],
                       headers={"Location": master[1] + path})

    def health(self):
        switches = {name: self.describe_switch(name) for name in self.config.datapaths}
        kept = [{"switch": dp_name, "kind": kind, "name": item.name, "reason": item.reason}
                for dp_name, kind, item in self.store.all_kept()]
        remotes = {name: self.switch(name).remote_health if s["connected"] else []
                   for name, s in switches.items()}
        ok = not kept and all(s["connected"] and s["state"] in ("programmed", "standby")
                              and s["answering"]
                              and s["learned_tables_bounded"] and s["ovs_settings"]["ok"]
                              and not s.get("intruders") for s in switches.values()) \
            and all(r["state"] == "ok" for found in remotes.values() for r in found)
        out = {"status": "ok" if ok else "degraded", "switches": {
            name: dict({k: s.get(k) for k in HEALTH_KEYS}, remote_destinations=remotes[name],
                       **{k: s[k] for k in ("intruders", "role") if k in s})
            for name, s in switches.items()}}
        if kept:
            out["kept_not_applied"] = kept  # stored, but the config does not fit them now
        if self.election is not None:
            out["cluster"] = self.election.health()
            if out["cluster"]["master"] is None:
                out["status"] = "degraded"
        return out

    def metrics(self):
        return render_metrics(self)

    def session_counters(self, name):
        """[(session name, counters)] of ``name``'s mirror sessions, if it is connected."""
        sessions = self.effective(name).mirrors
        counters = self._counters(name, "mirrors", sessions) or {}
        return [(s.name, counters[s.id]) for s in sessions if s.id in counters]

    # --- capture rules and mirror sessions ---------------------------------------------------

    def objects(self, name, kind):
        """Every capture rule or mirror session of ``name``, the file's first."""
        dp = self.effective(name)
        found = getattr(dp, CONFIG_KEY[kind])
        counters = self._counters(name, kind, found)
        return [self._describe(obj, kind, counters) for obj in found]

    def object(self, name, kind, obj_name):
        found = [o for o in getattr(self.effective(name), CONFIG_KEY[kind]) if o.name == obj_name]
        if not found:
            raise ApiError(404, "no %s %r on %s" % (NOUN[kind], obj_name, name), "name")
        return self._describe(found[0], kind, self._counters(name, kind, found))

    def _describe(self, obj, kind, counters):
        out = dict(obj.to_dict(),
                   source="config" if obj.id < FIRST_API_ID else "api")
        if counters is not None:
            out["counters"] = counters.get(obj.id, _zero(kind))
        return out

    def create(self, name, kind, body):
        with self._changing:
            obj = self._parse(name, kind, body)
            if self._find(name, kind, obj.name) is not None:
                raise ApiError(409, "%s %r already exists on %s" % (NOUN[kind], obj.name, name),
                               "name")
            kept = self._kept(name, kind, obj.name)
            if kept is not None:
                raise ApiError(409, "%s %r is kept in the store but not applied (%s): replace "
                               "or delete it" % (NOUN[kind], obj.name, kept.reason), "name")
            try:
                numbered = self.store.numbered(name, kind, obj, NOUN[kind])
            except IdsExhausted as exc:
                raise ApiError(409, str(exc)) from None
            self._commit(name, kind, numbered.put, numbered.drop)
            return self._describe(numbered.obj, kind, None)

    def replace(self, name, kind, obj_name, body):
        with self._changing:
            if isinstance(body, dict) and body.get("name", obj_name) != obj_name:
                raise ApiError(400, "the name in the body (%r) differs from the URL (%r)"
                               % (body.get("name"), obj_name), "name")
            if isinstance(body, dict):
                body = dict(body, name=obj_name)
            kept = None if self._find(name, kind, obj_name) else self._kept(name, kind, obj_name)
            old = kept or self._api_object(name, kind, obj_name)
            obj = replace(self._parse(name, kind, body, replacing=obj_name), id=old.id)
            self._commit(name, kind, put=[obj], unkeep=kept and kept.id)
            return self._describe(obj, kind, None)

    def delete(self, name, kind, obj_name):
        with self._changing:
            kept = self._kept(name, kind, obj_name)
            if kept is not None:  # not on the switch: only the store changes
                self._save(self.store.with_changed(name, kind, unkeep=kept.id))
                return
            old = self._api_object(name, kind, obj_name)
            self._commit(name, kind, drop=[old.id])

    def _kept(self, name, kind, obj_name):
        for item in self.store.kept_objects(name, kind):
            if item.name == obj_name:
                return item
        return None

    def _find(self, name, kind, obj_name):
        """The object called ``obj_name``: the config file's (a few), or the store's (by
        name, however many there are)."""
        for obj in getattr(self.config.datapaths[name], CONFIG_KEY[kind]):
            if obj.name == obj_name:
                return obj
        return self.store.named(name, kind, obj_name)

    def _api_object(self, name, kind, obj_name):
        obj = self._find(name, kind, obj_name)
        if obj is None:
            raise ApiError(404, "no %s %r on %s" % (NOUN[kind], obj_name, name), "name")
        if obj.id < FIRST_API_ID:
            raise ApiError(409, "%s %r is defined in %s; change it there"
                           % (NOUN[kind], obj_name, self.config.source), "name")
        return obj

    def _parse(self, name, kind, body, replacing=None):
        """The object in ``body``, checked against the config, the other objects and the
        switch's ports (so the switch accepts it)."""
        dp = self.config.datapaths[name]  # the ports: REST-made objects do not change them
        if not isinstance(body, dict):
            raise ApiError(400, "expected a JSON object", None)
        try:
            if kind == "captures":
                obj = config.capture_rule(body, None, dp.ports)
                if dp.ports.tunnel is None:
                    raise config.ConfigError(None, "capture rules need ports.tunnel, which "
                                                   "%s does not have" % name)
            else:
                obj = config.mirror(body, None, dp.ports)
                self.store.mirror_ports(name, dp.mirrors,
                                        leave_out={obj.name, replacing}).check(obj, None)
        except config.ConfigError as exc:
            raise ApiError(400, exc.reason, exc.path) from None
        switch = self._programmed_switch(name)
        if kind == "mirrors":
            _check_mirror_ports(obj, switch.portmap)
        return obj

    def _commit(self, name, kind, put=(), drop=(), unkeep=None):
        """Apply a change to ``name``'s REST-made ``kind`` (objects to ``put``, ids to
        ``drop``: see :meth:`Store.with_changed`) on the switch, then save it.

        All or nothing: the new store is written (and fsynced) to a temporary file first; a
        switch that fails is put back by :meth:`Switch.apply` itself; a store that cannot
        take the new file (rename, in-place write) gets the switch changed back here."""
        switch = self._programmed_switch(name)
        content = self.store.with_changed(name, kind, put, drop, unkeep)
        old, new = self.effective(name), self.effective(name, content.objects)
        temp = self._write(content)
        try:
            switch.apply(new)
            self.store.commit(temp, content)
        except Rejected as exc:
            raise ApiError(502, "the switch refused the change (%s): nothing was changed"
                           % exc) from None
        except SwitchError as exc:
            raise ApiError(503, "switch %s: %s: nothing was changed (the switch is being put "
                           "back as it was; see /v1/health)" % (name, exc)) from None
        except StoreUnknown as exc:
            raise _unknown(exc) from None
        except StoreError as exc:
            back = "was changed back" if switch.revert(old) \
                else "is being changed back (see /v1/health)"
            raise ApiError(500, "%s: nothing was changed (the switch %s)" % (exc, back)) \
                from None
        finally:
            self.store.discard(temp)  # renamed away if all went well

    def _save(self, content):
        """Save a change that does not touch any switch."""
        temp = self._write(content)
        try:
            self.store.commit(temp, content)
        except StoreUnknown as exc:
            raise _unknown(exc) from None
        except StoreError as exc:
            raise ApiError(500, "%s: nothing was changed" % exc) from None

    def _write(self, content):
        try:
            return self.store.write(content)
        except StoreError as exc:
            raise ApiError(500, "%s: nothing was changed" % exc) from None

    # --- counters ---------------------------------------------------------------------------

    def _counters(self, name, kind, objects):
        """{object id: counters} read from the switch, or None if it is not connected."""
        switch = self.switch(name)
        if switch is None or not switch.programmed or not switch.answering:
            return None
        try:
            if kind == "captures":
                return _capture_counters(switch)
            return _mirror_counters(switch, objects)
        except SwitchError:
            return None

    # --- learned reverse paths --------------------------------------------------------------

    def paths(self, name, limit, port=None, host=None):
        """The newest ``limit`` learned reverse paths (optionally only those whose replies
        go out of ``port``, or to or from ``host``) and how many there are. Only the newest
        are kept while the dump streams in: memory follows ``limit``, not the table."""
        switch = self._connected(name)
        selected = self._path_filter(switch, name, port, host)
        names = dict(switch.portmap.switch_ports)
        if switch.conntrack:
            try:
                # OVS sweeps expired entries only every 5 s and dumps them meanwhile with
                # timeout=0; they no longer carry replies, so they are not paths
                found = [_describe_connection(e, switch, names) for e in switch.connections()
                         if e["timeout"] > 0 and selected.connection(e)]
            except SwitchError as exc:
                raise ApiError(503, "switch %s: %s" % (name, exc)) from None
            found.sort(key=lambda p: (p["idle_age"], p["reply"]["src"]))
            return {"total": len(found), "paths": found[:limit]}
        now = time.monotonic()
        newest = _Smallest(limit)

        def take(entry):
            source = entry.match.get("ipv4_src") or entry.match.get("ipv6_src") or ""
            newest.add((entry.duration_sec, source), entry)
        try:  # a large table takes Ryu a while to parse (about 10 s per 100k paths)
            for request in selected.flow_requests():
                switch.channel.stream(request, take, timeout=LIST_TIMEOUT)
        except SwitchError as exc:
            raise ApiError(503, "switch %s: %s" % (name, exc)) from None
        return {"total": newest.seen,
                "paths": [dict(_describe_path(entry, names),
                               idle_age=_idle_age(switch.path_activity, entry, now))
                          for entry in newest.items()]}

    def flush_paths(self, name, port=None, host=None):
        switch = self._connected(name)
        selected = self._path_filter(switch, name, port, host)
        if switch.conntrack:
            try:
                return {"flushed": switch.forget_connections(selected.connection)}
            except SwitchError as exc:
                raise ApiError(503, "switch %s: %s" % (name, exc)) from None
        flushed = 0
        try:
            for request in selected.flow_requests():
                counted = switch.channel.request(parser.OFPAggregateStatsRequest(
                    None, 0, request.table_id, ofp.OFPP_ANY, ofp.OFPG_ANY, request.cookie,
                    request.cookie_mask, request.match))
                flushed += sum(reply.body.flow_count for reply in counted)
                switch.flush(request.cookie, request.cookie_mask, request.table_id,
                             request.match)
        except SwitchError as exc:
            raise ApiError(503, "switch %s: %s" % (name, exc)) from None
        return {"flushed": flushed}

    def _path_filter(self, switch, name, port, host):
        return _PathFilter(self._port_number(switch, name, port), _address(host))

    @staticmethod
    def _port_number(switch, name, port):
        if port is None:
            return None
        number = switch.portmap.lookup(_port_ref(port))
        if number is None:
            raise ApiError(400, "%r is not a port of %s" % (port, name), "port")
        return number

    def _connected(self, name):
        switch = self.switch(name)
        if switch is None or switch.portmap is None:
            raise ApiError(503, "switch %s is not connected" % name)
        _check_answering(switch, name)
        return switch


# --- helpers ------------------------------------------------------------------------------------

def _unknown(exc):
    """504: a change the store may or may not have made (a cluster store that lost its
    answer): the switches follow the store either way, as its master reconciles them."""
    return ApiError(504, "%s; the master makes the switches hold what the store holds"
                    % exc)


def _check_answering(switch, name):
    """A stalled switch fails a request at once rather than after the channel's timeout."""
    if not switch.answering:
        raise ApiError(503, "switch %s has not answered since %s: nothing was changed"
                       % (name, time.strftime("%H:%M:%S", time.localtime(
                           switch.liveness.silent_since))))


def peer(datapath):
    """Who a connection is: its address and, when known, its bridge (LOCAL port name)."""
    local = (getattr(datapath, "ports", None) or {}).get(ofp.OFPP_LOCAL)
    return {"address": "%s:%s" % tuple(datapath.address[:2]),
            "bridge": port_name(local) if local else None}


def _activity(previous, entry, now):
    """(packet count, when it last changed, when first seen) of a learned path. OpenFlow
    1.3 reports no idle time, so the controller watches the counters between listings: a
    path never used is idle since it was learned; a used one, since its count last changed
    (counted from the first listing if it never changed: a lower bound)."""
    if entry.packet_count == 0:
        return 0, now - entry.duration_sec, now
    if previous is None:
        return entry.packet_count, None, now
    count, since, first = previous
    return entry.packet_count, now if entry.packet_count != count else since, first


class _PathFilter:
    """Which learned reverse paths a listing or flush is about: those whose replies go out
    of port ``number``, those to or from ``address``, or (both None) all."""

    def __init__(self, number, address):
        self.number, self.address = number, address

    def flow_requests(self):
        """The flow-stats requests that select them in the reverse table (the switch
        filters: by the cookie's port, and by either address field, one request each)."""
        cookie, mask = tables.kind_cookies(tables.KIND_LEARNED_REVERSE, self.number)
        matches = [parser.OFPMatch()]
        if self.address is not None:
            family = "ipv4" if self.address.version == 4 else "ipv6"
            eth_type = ETH_TYPE_IP if self.address.version == 4 else ETH_TYPE_IPV6
            matches = [parser.OFPMatch(eth_type=eth_type,
                                       **{family + "_" + side: str(self.address)})
                       for side in ("src", "dst")]
        return [parser.OFPFlowStatsRequest(None, table_id=tables.REVERSE.id, cookie=cookie,
                                           cookie_mask=mask, match=match)
                for match in matches]

    def connection(self, entry):
        """Whether a conntrack-mode path (a zone entry) is selected."""
        return ((self.number is None or entry["mark"] == self.number)
                and (self.address is None or str(self.address) in (entry["orig"]["src"],
                                                                    entry["orig"]["dst"])))


def _path_key(entry):
    return repr(sorted(entry.match.items())), entry.cookie


def _idle_age(activity, entry, now):
    """A listed path's idle age, from what ``activity`` (a switch's path_activity) knew
    of it since an earlier listing; it is updated, and kept to the MAX_TRACKED paths listed
    most recently."""
    key = _path_key(entry)
    packets, since, first = activity[key] = _activity(activity.pop(key, None), entry, now)
    while len(activity) > MAX_TRACKED:
        del activity[next(iter(activity))]
    return None if first == now and since is None else round(now - (since or first))


def _zero(kind):
    if kind == "captures":
        return {"packets": 0, "bytes": 0}
    return {"packets": 0, "bytes": 0, "rate_limited": 0, "destinations": {}}


def _address(host):
    if host is None:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        raise ApiError(400, "%r is not an IP address" % host, "host") from None


def _port_ref(value):
    return int(value) if isinstance(value, str) and value.isdigit() else value


def _check_mirror_ports(session, ports):
    """Every port a session names must be on the switch, and destinations must be plain
    analyzer ports (not a role's port under another name or number)."""
    roles = {port: ports.role(port) for port in ports.all}
    sources = set()
    for i, source in enumerate(session.sources):
        found = ports.expand(source.port)
        if not found:
            what = "has no port on the switch" if source.port in config.SOURCE_ROLES \
                else "is not a port of the switch"
            raise ApiError(400, "%r %s" % (source.port, what), "sources[%d].port" % i)
        sources.update(found)
    for i, dest in enumerate(session.destinations):
        if dest.remote:
            continue  # sggw makes its tunnel port
        number = ports.lookup(dest.port)
        field = "destinations[%d].port" % i
        if number is None:
            raise ApiError(400, "%r is not a port of the switch" % (dest.port,), field)
        if number in roles:
            raise ApiError(400, "%r is the %s port; a destination carries only mirror copies"
                           % (dest.port, roles[number]), field)
        if number in sources:
            raise ApiError(400, "%r is also a source of this session" % (dest.port,), field)


def _capture_counters(switch):
    cookie, mask = tables.kind_cookies(tables.KIND_CAPTURE)
    entries = switch.channel.stats(parser.OFPFlowStatsRequest(
        None, table_id=tables.CAPTURE.id, cookie=cookie, cookie_mask=mask))
    out = {}
    for entry in entries:
        counts = out.setdefault(entry.cookie & tables.ID_MASK, {"packets": 0, "bytes": 0})
        counts["packets"] += entry.packet_count
        counts["bytes"] += entry.byte_count
    return out


def _mirror_counters(switch, sessions):
    """Per session: copies delivered (group counts less what the meter dropped), per
    destination likewise (bucket counts), and the meter's drops. The group counts every
    packet that reached the session; the meter stands between them and the analyzers."""
    groups = {g.group_id: g for g in switch.channel.stats(
        parser.OFPGroupStatsRequest(None, 0, ofp.OFPG_ALL))}
    placed = {p.session.id: p for p in switch.placements()}
    meters = {m.meter_id: m for m in switch.channel.stats(
        parser.OFPMeterStatsRequest(None, 0, ofp.OFPM_ALL))}
    out = {}
    for session in sessions:
        stats = groups.get(tables.session_group(session.id))
        if stats is None:
            continue
        meter = meters.get(tables.session_meter(session.id))
        dropped = sum(b.packet_band_count for b in meter.band_stats) if meter else 0
        dropped_bytes = sum(b.byte_band_count for b in meter.band_stats) if meter else 0
        destinations = {}
        buckets = placed[session.id].destinations if session.id in placed else ()
        for (_, dest, _), bucket in zip(buckets, stats.bucket_stats):
            destinations[dest.key] = {
                "packets": max(bucket.packet_count - dropped, 0),
                "bytes": max(bucket.byte_count - dropped_bytes, 0)}
        out[session.id] = {"packets": max(stats.packet_count - dropped, 0),
                           "bytes": max(stats.byte_count - dropped_bytes, 0),
                           "rate_limited": dropped, "destinations": destinations}
        cut = meters.get(tables.cut_meter(session.id))
        if cut is not None:
            out[session.id]["truncated"] = cut.packet_in_count
    return out


class _Smallest:
    """The ``limit`` items with the smallest keys (ties: first added first) among all
    added one by one, in key order: listing the newest 1000 of 100k learned paths keeps
    at most 2000 in memory, not 100k."""

    def __init__(self, limit):
        self.limit = limit
        self.seen = 0
        self._kept = []  # (key, arrival, item)

    def add(self, key, item):
        self.seen += 1
        self._kept.append((key, self.seen, item))
        if len(self._kept) >= 2 * self.limit:
            self._trim()

    def items(self):
        self._trim()
        return [item for _, _, item in self._kept]

    def _trim(self):  # sorted, and items are never compared
        self._kept = heapq.nsmallest(self.limit, self._kept, key=lambda kept: kept[:2])


_PROTOS = {number: name for name, number in config.IP_PROTOS.items()}


def _mac(value):
    """The low 48 bits of ``value`` as a MAC address."""
    return ":".join("%02x" % b for b in (value & (2**48 - 1)).to_bytes(6, "big"))


def _describe_connection(entry, switch, names):
    """A conntrack-mode reverse path: the entry's reply tuple, and the way back it keeps
    (ct_mark: the port; ct_label: the MACs). Userspace conntrack keeps no counters; the idle
    age is read from the time left before the entry expires."""
    reply = entry["reply"]
    out = {"family": 6 if ":" in reply["src"] else 4, "src": reply["src"],
           "dst": reply["dst"], "proto": entry["proto"], "vlan": None,
           "from": "wire" if entry["mark"] == switch.portmap.tunnel else "tunnel"}
    if "sport" in reply:
        out["src_port"], out["dst_port"] = int(reply["sport"]), int(reply["dport"])
    idle = switch.dp.reverse_path.idle_timeout
    return {"reply": out,
            "to": {"port_no": entry["mark"], "port": names.get(entry["mark"]),
                   "eth_dst": _mac(entry["labels"]), "eth_src": _mac(entry["labels"] >> 48)},
            "packets": None, "bytes": None, "duration": None, "idle_timeout": idle,
            "idle_age": max(0, idle - entry["timeout"])}


def _describe_path(entry, names):
    """A learned reverse path as the API shows it: the reply it waits for and where the
    reply goes (``names``: {port number: interface name})."""
    fields = dict(entry.match.items())
    v6 = fields.get("eth_type") == ETH_TYPE_IPV6
    reply = {"family": 6 if v6 else 4,
             "src": fields.get("ipv6_src" if v6 else "ipv4_src"),
             "dst": fields.get("ipv6_dst" if v6 else "ipv4_dst")}
    proto = fields.get("ip_proto")
    if proto is not None:
        reply["proto"] = _PROTOS.get(proto, proto)
    for l4 in ("tcp", "udp"):
        if l4 + "_src" in fields:
            reply["src_port"], reply["dst_port"] = fields[l4 + "_src"], fields[l4 + "_dst"]
    vlan = fields.get("vlan_vid")
    if isinstance(vlan, tuple):
        vlan = vlan[0]
    reply["vlan"] = vlan & 0xFFF if vlan and vlan & ofp.OFPVID_PRESENT else None
    from_tunnel = fields.get(tables.REG_FROM_TUNNEL)
    if isinstance(from_tunnel, tuple):
        from_tunnel = from_tunnel[0]
    reply["from"] = "tunnel" if from_tunnel else "wire"
    out = {}
    for inst in entry.instructions:
        for action in getattr(inst, "actions", []):
            key = getattr(action, "key", None) or getattr(action, "dst", None)
            value = getattr(action, "value", None)
            if key in ("eth_dst", "eth_src", "eth_dst_nxm", "eth_src_nxm"):
                out[key.replace("_nxm", "")] = value if isinstance(value, str) \
                    else _mac(int(value))
            elif key == tables.REG_OUT:
                out["port_no"] = value
    port_no = out.get("port_no")
    return {"reply": reply,
            "to": {"port_no": port_no, "port": names.get(port_no), "eth_dst": out.get("eth_dst"),
                   "eth_src": out.get("eth_src")},
            "packets": entry.packet_count, "bytes": entry.byte_count,
            "duration": entry.duration_sec, "idle_timeout": entry.idle_timeout}
