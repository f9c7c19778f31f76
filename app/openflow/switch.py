"""One connected bridge: what sggw wants on it, what it has, and every change to it.

Changes go through :meth:`Switch.sync` (compare the whole desired state with the switch's
own dumps: on connect and when ports come or go), :meth:`Switch.apply` (a new datapath
config from the REST API: only the parts that changed), or :meth:`Switch.forget_port`.
Flows and groups change in one atomic bundle and meters around it; a change that fails
part-way (refused, or the switch stalls and its answers are lost) is undone by comparing
the switch's own dumps with the config in force, at once or in the background until the
switch answers. All of these block on the switch's answers, so they run in their own green
thread, one at a time per switch.
"""
import logging
import time

from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from app.openflow.channel import Channel, Rejected, SwitchError
from app.openflow.liveness import Liveness
from app.ovs import cli as ovs_cli
from app.ovs import settings as ovs_settings
from app.ovs import tunnels
from flows import desired, probes, reconcile, remote, tables
from flows.ofp import OFPP_LOCAL, delete_flows
from flows.ports import resolve

LOG = logging.getLogger("sggw.switch")
PROBE_INTERVAL = 1.0  # seconds between probes for the same address
TUNNEL_PORT_WAIT = 5.0  # seconds a new tunnel port may take to reach the switch's port list
RESOLVE_WAIT = 1.0  # seconds to wait for OVS to learn a remote analyzer's MAC
NEIGHBOUR_REFRESH = 300  # seconds between re-setting a remote next hop's MAC (OVS: 900)
REPAIR_INTERVAL = 1.0  # seconds before putting a switch back after a failed change is retried
MAX_REPAIR_INTERVAL = 30.0  # ... doubling up to this


def port_is_up(port):
    return not (port.state & ofp.OFPPS_LINK_DOWN or port.config & ofp.OFPPC_PORT_DOWN)


def port_name(port):
    return port.name.decode() if isinstance(port.name, bytes) else port.name


class Switch:
    """A configured datapath that is connected now."""

    def __init__(self, dp, datapath, ovsdb_address, of_port, members=()):
        self.dp = dp  # the datapath config in force: the file's plus REST-made objects
        self.datapath = datapath
        self.channel = Channel(datapath)
        self.liveness = Liveness(self.channel, self.name)
        self.ovsdb_address = ovsdb_address
        self.of_port = of_port  # where sggw listens for OpenFlow
        self.members = members  # OpenFlow targets of the other instances of its cluster
        self.role = None  # in a cluster: the OpenFlow role the switch last granted
        self.generation = None  # in a cluster: the highest role generation it has told
        self.lock = hub.Semaphore(1)
        self.state = "connecting"  # -> programmed | failed
        self.error = None
        self.ovs = ovs_settings.Review(pending=True)  # the last check of the OVS settings
        self.conntrack_error = None
        self.portmap = None
        self.installed = {}  # part key -> reconcile.PartState
        self.plan = None  # the desired.Plan that self.installed holds
        self.port_up = {no: port_is_up(p) for no, p in datapath.ports.items()}
        self.last_sync = {}
        # learned path listed lately -> (packets, when they last changed, first seen)
        self.path_activity = {}
        self.probes_sent = 0
        self._repairing = False  # a background repair is under way
        self._probed = {}  # (vid, address) -> monotonic time of the last probe
        self.remote_health = []  # per remote destination: what its copies meet (tunnels.check)
        self._refreshed = {}  # (bridge, next hop, MAC) -> monotonic time it was last set

    @property
    def name(self):
        return "%s (%#x)" % (self.dp.name, self.dp.dp_id)

    @property
    def programmed(self):
        return self.state == "programmed"

    # --- programming ----------------------------------------------------------------------

    def sync(self):
        """Make the switch hold exactly the desired state (compared with its own dumps)."""
        with self.lock:
            return self._sync()

    def _sync(self):
        if not self.channel.writable:  # a cluster standby: the master programs it
            self.state = "standby"
            return False
        started = time.monotonic()
        try:
            if self.state == "connecting" and self.conntrack:
                self._bound_conntrack()
            self._add_tunnel_ports(self.dp, _remote_kinds(self.dp))
            self.portmap = self._resolve_ports()
            plan = desired.plan(self.dp, self.portmap)
            self._warn_missing()
            changes, installed = reconcile.from_switch(plan, self._dump())
            self._send(changes)
            self._remove_tunnel_ports(self.dp, plan.remote_kinds)
            self.check_remotes(self.dp)
        except SwitchError as exc:
            self.state, self.error = "failed", str(exc)
            LOG.error("%s: programming failed, switch left as it was: %s", self.name, exc)
            return False
        self.installed, self.plan = installed, plan
        self.state, self.error = "programmed", None
        self._record(changes, started, sum(len(p.state.flows) for p in installed.values()))
        return True

    def apply(self, dp):
        """Put datapath config ``dp`` on the switch, changing only what differs from now.

        Raises SwitchError and keeps the old config: the switch is then put back to it, at
        once if it answers, else by a repair in the background (state ``repairing``)."""
        with self.lock:
            if not self.programmed:
                raise SwitchError("the switch is not programmed yet (%s)"
                                  % (self.error or self.state))
            self._change(dp)

    def revert(self, dp):
        """Put ``dp`` back after a change that must not stay (it could not be saved). Never
        raises: returns whether the switch holds ``dp`` now; if not, a background repair
        is on its way there."""
        with self.lock:
            self.dp = dp
            if not self.programmed:  # a sync or repair under way takes the new self.dp
                if self.state == "failed":
                    self._repair_later(self.error)
                return False
            try:
                self._change(dp)
            except Exception:  # noqa: BLE001 -- _change has put the repair under way
                return False
            return True

    def _change(self, dp):
        started = time.monotonic()
        plan, changed = desired.update(self.plan, dp, self.portmap)
        # nothing sent yet: an error leaves all as it was
        if self._add_tunnel_ports(dp, plan.remote_kinds):
            self._wait_tunnel_ports(dp, plan.remote_kinds)
            plan, changed = desired.update(self.plan, dp, self.portmap)  # on the new ports
        if plan.remote_kinds or self.remote_health:  # else it would find nothing to check
            self.check_remotes(dp)  # before copies flow: the first must find the MAC known
        changes, installed = reconcile.incremental(plan, self.installed, changed)
        try:
            self._send(changes)
        except Exception as exc:  # noqa: BLE001 -- whatever stopped it, nothing stays half
            self._restore(exc)
            raise
        self.dp, self.installed, self.plan = dp, installed, plan
        self._record(changes, started, self.last_sync["flows"] + changes.net_flows)
        self._remove_tunnel_ports(dp, plan.remote_kinds)

    def _restore(self, exc):
        """After a failed change, make the switch hold ``self.dp`` again. Any step may have
        taken effect (a meter added, a bundle committed whose answer was lost), so the
        switch's own dumps are compared: at once if it answered, else (it stalled or went
        away) in the background until it answers."""
        LOG.error("%s: change failed (%s): putting the switch back as it was", self.name, exc)
        if isinstance(exc, Rejected) and self._sync():
            return
        self._repair_later(str(exc))

    def _repair_later(self, reason):
        self.state, self.error = "repairing", reason
        if not self._repairing:
            self._repairing = True
            hub.spawn(self._repair)

    def _repair(self):
        interval = REPAIR_INTERVAL
        try:
            while not self.channel.closed and self.channel.writable:
                if self.sync():
                    LOG.info("%s: repaired: the switch holds the saved state again", self.name)
                    return
                hub.sleep(interval)
                interval = min(interval * 2, MAX_REPAIR_INTERVAL)
        finally:
            self._repairing = False

    # --- remote destinations ------------------------------------------------------------------

    def _resolve_ports(self):
        return resolve(self.dp.ports, {
            no: port_name(port) for no, port in self.datapath.ports.items()})

    def _add_tunnel_ports(self, dp, kinds):
        """Create the tunnel ports of ``kinds`` (``dp``'s remote destinations need them);
        whether any was new."""
        if not kinds:
            return False
        missing = [k for k in kinds if self.portmap is None
                   or self.portmap.lookup(remote.port_name(dp.dp_id, k)) is None]
        if missing:
            try:
                tunnels.add_ports(self.ovsdb_address, dp.dp_id, missing)
            except ovs_cli.OvsError as exc:
                raise SwitchError("could not create tunnel ports: %s" % exc) from None
        return bool(missing)

    def _wait_tunnel_ports(self, dp, kinds):
        """Wait until the switch reports the new tunnel ports, then look ports up again."""
        names = {remote.port_name(dp.dp_id, k) for k in kinds}
        deadline = time.monotonic() + TUNNEL_PORT_WAIT
        while not names <= {port_name(p) for p in self.datapath.ports.values()}:
            if time.monotonic() > deadline:
                try:  # what the old config does not use goes again
                    tunnels.remove_ports(self.ovsdb_address, dp.dp_id, _remote_kinds(self.dp))
                except ovs_cli.OvsError as exc:
                    LOG.error("%s: could not remove tunnel ports: %s", self.name, exc)
                raise SwitchError("ovs-vswitchd did not add tunnel ports %s (its log says "
                                  "why)" % ", ".join(sorted(names)))
            hub.sleep(0.05)
        self.portmap = self._resolve_ports()

    def _remove_tunnel_ports(self, dp, needed):
        if not any(self.portmap.lookup(remote.port_name(dp.dp_id, kind)) is not None
                   for kind in remote.PORT_KINDS if kind not in needed):
            return
        try:
            gone = tunnels.remove_ports(self.ovsdb_address, dp.dp_id, needed)
        except ovs_cli.OvsError as exc:
            LOG.error("%s: could not remove unused tunnel ports: %s", self.name, exc)
            return
        if gone:
            LOG.info("%s: removed unused tunnel ports %s", self.name, ", ".join(gone))

    def placements(self):
        """The sessions as placed on the switch now (flows.mirror.Placed)."""
        return desired.placements(self.dp, self.portmap, self.installed)

    def watch_remotes(self):
        """The periodic check_remotes, one at a time with changes (so a change's result
        is never overwritten by an older check's)."""
        with self.lock:
            if self.programmed:
                self.check_remotes(self.dp)

    def check_remotes(self, dp):
        """Check the underlay to every remote destination of ``dp`` (OVS's own on the
        userspace datapath, Linux's on the kernel's) and on the userspace datapath keep
        OVS's MAC for it fresh; an unresolved one is probed (the datapath then asks for the
        MAC) and waited for briefly, so the first copies find it resolved. Called with the
        lock held."""
        remotes = {}  # remote IP -> the first destination to it
        for session in dp.mirrors:
            for dest in session.destinations:
                if dest.remote is not None:
                    remotes.setdefault(dest.remote.remote_ip, dest.remote)
        found = {}
        if remotes:
            try:  # the datapath type decides who routes the copies
                _, dp_type = ovs_cli.bridge(self.ovsdb_address, dp.dp_id)
            except ovs_cli.OvsError as exc:
                found = {ip: {"state": "unknown", "error": str(exc)} for ip in remotes}
            else:
                found = {ip: self._check_remote(dest, dp_type) for ip, dest in remotes.items()}
        self.remote_health = [
            dict(found[d.remote.remote_ip], session=s.name, destination=d.key)
            for s in dp.mirrors for d in s.destinations if d.remote]

    def _check_remote(self, dest, dp_type):
        try:
            status = tunnels.check(self.ovsdb_address, dp_type, dest.remote_ip)
            if status["state"] == "unresolved" and self._probe_remote(dest):
                deadline = time.monotonic() + RESOLVE_WAIT
                while status["state"] == "unresolved" and time.monotonic() < deadline:
                    hub.sleep(0.05)
                    status = tunnels.check(self.ovsdb_address, dp_type, dest.remote_ip)
            if status["state"] == "ok":
                self._refresh_neighbour(dp_type, status)
            return status
        except ovs_cli.OvsError as exc:
            return {"state": "unknown", "error": str(exc)}

    def _refresh_neighbour(self, dp_type, status):
        key, now = (status["via"], status["next_hop"], status["mac"]), time.monotonic()
        if now - self._refreshed.get(key, -NEIGHBOUR_REFRESH) >= NEIGHBOUR_REFRESH:
            tunnels.refresh(self.ovsdb_address, dp_type, status)
            self._refreshed[key] = now

    def _probe_remote(self, dest):
        """Send a probe frame into the tunnel port: the datapath cannot send it yet and
        asks for the next hop's MAC (OVS's userspace datapath, or Linux)."""
        port = self.portmap.lookup(remote.port_name(self.dp.dp_id, remote.port_kind(dest)))
        if port is None:
            return False
        try:
            self.channel.send(remote.probe(port, dest))
        except SwitchError:
            return False
        return True

    def _dump(self):
        flows = self.channel.stats(parser.OFPFlowStatsRequest(
            None, table_id=ofp.OFPTT_ALL, cookie=tables.STATIC_COOKIES[0],
            cookie_mask=tables.STATIC_COOKIES[1]))
        groups = self.channel.stats(parser.OFPGroupDescStatsRequest(None))
        meters = self.channel.stats(parser.OFPMeterConfigStatsRequest(None))
        return reconcile.reported(flows, groups, meters, tables.owned_group, tables.METER_RANGE)

    def _send(self, changes):
        """Meters first, then flows and groups in one bundle (all or nothing), then meter
        deletes. If the switch refuses the bundle, the meters are put back as they were;
        if it does not answer, the caller's repair compares with its dumps instead."""
        self.channel.transact(changes.meters_first)
        try:
            self.channel.commit(changes.bundle)
        except Rejected:
            try:
                self.channel.transact(changes.undo_meters)
            except SwitchError as exc:
                LOG.error("%s: could not undo meter changes: %s", self.name, exc)
            raise
        self.channel.transact(changes.meters_last)

    def _record(self, changes, started, flows):
        self.last_sync = {"flows": flows,
                          "added": changes.added, "removed": changes.removed,
                          "messages": len(changes.bundle) + len(changes.meters_first)
                          + len(changes.meters_last),
                          "seconds": round(time.monotonic() - started, 3)}
        LOG.info("%s: programmed: %d flows (%d added, %d removed), %d messages in %.3f s",
                 self.name, self.last_sync["flows"], changes.added, changes.removed,
                 self.last_sync["messages"], self.last_sync["seconds"])

    def _warn_missing(self):
        for role, ref in self.portmap.missing:
            LOG.warning("%s: %s port %r is not on the switch; waiting for it",
                        self.name, role, ref)
        for placed in desired.placements(self.dp, self.portmap):
            for ref in placed.missing:
                LOG.warning("%s: mirror %s: port %r is not on the switch; waiting for it",
                            self.name, placed.session.name, ref)
            for ref in placed.refused:
                LOG.error("%s: mirror %s: destination %r is a lan/wan/tunnel/local port; "
                          "it stays a normal port and gets no copies", self.name,
                          placed.session.name, ref)

    @property
    def conntrack(self):
        return self.dp.reverse_path.conntrack

    def wanted_settings(self):
        """What the OVS settings check needs to know of this switch."""
        bridge = self.datapath.ports.get(OFPP_LOCAL)
        return ovs_settings.Wanted(self.dp.dp_id, port_name(bridge) if bridge else "BRIDGE",
                                   self.dp.reverse_path.max_flows, self.of_port,
                                   tuple(self.members))

    def settings_checked(self, review):
        """Take the outcome of a check of the OVS settings (app.ovs.settings_watch); log what
        sggw changed, and what is wrong when that changed."""
        if review.fixed:
            LOG.warning("%s: set the OVS settings sggw needs: %s", self.name,
                        "; ".join(p.describe() for p in review.fixed))
        if review.to_dict() != self.ovs.to_dict() and not review.ok:
            LOG.error("%s: %s; fix: %s", self.name, review.error or "OVS settings are wrong: "
                      + "; ".join(p.describe() for p in review.problems), review.command)
        elif review.ok and not self.ovs.ok and not self.ovs.pending:
            LOG.info("%s: OVS settings are as sggw needs them now", self.name)
        self.ovs = review

    def _bound_conntrack(self):
        rp = self.dp.reverse_path
        try:
            ovs_cli.configure_conntrack(self.ovsdb_address, self.dp.dp_id, rp.ct_zone,
                                        rp.idle_timeout, rp.fin_idle_timeout, rp.max_flows)
        except ovs_cli.OvsError as exc:
            self.conntrack_error = str(exc)
            LOG.error("%s: conntrack zone %d is NOT bounded (%s)", self.name, rp.ct_zone, exc)
            return
        self.conntrack_error = None
        LOG.info("%s: conntrack zone %d: %d connections, idle %d s", self.name, rp.ct_zone,
                 rp.max_flows, rp.idle_timeout)

    @property
    def bound_error(self):
        """Why the learned state may be unbounded, or None."""
        if self.ovs.error:
            return self.ovs.error
        if self.ovs.pending:
            return "the OVS settings are not checked yet"
        if not self.ovs.tables_bounded:
            return "flow_tables not set: %s" % self.ovs.command
        return self.conntrack_error

    def forget_port(self, port_no):
        """Delete every flow learned through ``port_no`` (it went down or away), and in the
        conntrack mode the connections whose way back is that port."""
        cookie, mask = tables.learned_through(port_no)
        self.flush(cookie, mask)
        if self.conntrack:
            self.forget_connections(lambda entry: entry["mark"] == port_no)
        LOG.info("%s: port %s down: flushed what was learned through it", self.name, port_no)

    def connections(self):
        """The conntrack mode's reverse paths: the zone's entries."""
        try:
            return ovs_cli.connections(self.ovsdb_address, self.dp.reverse_path.ct_zone)
        except ovs_cli.OvsError as exc:
            raise SwitchError("conntrack: %s" % exc) from None

    def connection_count(self):
        try:
            return ovs_cli.zone_count(self.ovsdb_address, self.dp.reverse_path.ct_zone)
        except ovs_cli.OvsError as exc:
            raise SwitchError("conntrack: %s" % exc) from None

    def forget_connections(self, selected):
        """Flush the zone's connections for which ``selected(entry)`` is true; their count."""
        chosen = [e for e in self.connections() if selected(e)]
        try:
            ovs_cli.forget_connections(self.ovsdb_address, self.dp.reverse_path.ct_zone,
                                       chosen)
        except ovs_cli.OvsError as exc:
            raise SwitchError("conntrack: %s" % exc) from None
        return len(chosen)

    def flush(self, cookie, mask, table_id=ofp.OFPTT_ALL, match=None):
        """Delete the learned flows selected by cookie/mask (and ``match``).

        A conversation whose datapath flows OVS still caches learns its path again only when
        the revalidator next counts its packets (up to half a second, more on a busy
        machine); a reply seen before that is delivered by its neighbour and learns a path
        the wrong way round, which the capture rules, coming first, never let stand in the
        conversation's way (flows.tables)."""
        with self.lock:
            try:
                self.channel.transact([delete_flows(table_id=table_id, cookie=cookie,
                                                    cookie_mask=mask, match_=match)])
            except SwitchError as exc:
                LOG.error("%s: could not flush learned flows: %s", self.name, exc)
                raise

    def port_changed(self, port_no):
        """A port was added, changed or deleted: returns what needs doing."""
        port = self.datapath.ports.get(port_no)
        was_up = self.port_up.pop(port_no, None)
        if port is None:
            return "resync"
        self.port_up[port_no] = port_is_up(port)
        if was_up is None:
            return "resync"
        if was_up and not self.port_up[port_no]:
            return "forget"
        return None

    # --- unknown neighbours ----------------------------------------------------------------

    def probe(self, data):
        """Send an ARP/ND probe for the destination of a punted packet (rate limited)."""
        wanted = probes.wanted_address(data)
        if wanted is None or self.portmap is None:
            return False
        now = time.monotonic()
        if now - self._probed.get(wanted, -PROBE_INTERVAL) < PROBE_INTERVAL:
            return False
        self._probed = {k: t for k, t in self._probed.items() if now - t < PROBE_INTERVAL}
        self._probed[wanted] = now
        vid, address = wanted
        LOG.info("%s: no neighbour known for %s%s: probing", self.name, address,
                 "" if vid is None else " (vlan %d)" % vid)
        frame = probes.probe_frame(vid, address)
        try:
            self.channel.send(probes.packet_out(frame, self.portmap.wire))
        except SwitchError:
            return False
        self.probes_sent += 1
        return True

    def start(self, settings):
        """Watch the switch (echoes), have ``settings`` (app.ovs.settings_watch) check its OVS
        settings soon (and fix them, now that it writes: a standby's check is kept till
        then), and program it."""
        hub.spawn(self.liveness.run)
        settings.request()
        self.sync()

    @property
    def answering(self):
        return self.liveness.answering

    def close(self):
        self.channel.close()


def _remote_kinds(dp):
    return sorted({remote.port_kind(d.remote) for m in dp.mirrors for d in m.destinations
                   if d.remote})
