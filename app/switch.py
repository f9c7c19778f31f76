"""One connected bridge: what sggw wants on it, what it has, and every change to it.

All changes go through :meth:`Switch.sync` (reconcile static flows and meters with the
desired state, atomically) or :meth:`Switch.forget_port` (drop what was learned through a
port). Both block on the switch's answers, so they run in their own green thread, one at a
time per switch.
"""
import ipaddress
import logging
import time

from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from app import ovsdb
from app.channel import Channel, SwitchError
from flows import pipeline, probes, reconcile, tables
from flows.ofp import OFPP_LOCAL, delete_flows
from flows.ports import resolve

LOG = logging.getLogger("sggw.switch")
PROBE_INTERVAL = 1.0  # seconds between probes for the same address
PIPELINE_METERS = range(1, 2)  # meter ids sggw's pipeline owns


def port_is_up(port):
    return not (port.state & ofp.OFPPS_LINK_DOWN or port.config & ofp.OFPPC_PORT_DOWN)


class Switch:
    """A configured datapath that is connected now."""

    def __init__(self, cfg, datapath, ovsdb_address):
        self.cfg = cfg
        self.datapath = datapath
        self.channel = Channel(datapath)
        self.ovsdb_address = ovsdb_address
        self.lock = hub.Semaphore(1)
        self.state = "connecting"  # -> programmed | failed
        self.error = None
        self.table_bounds_error = None
        self.portmap = None
        self.port_up = {no: port_is_up(p) for no, p in datapath.ports.items()}
        self.last_sync = {}
        self.probes_sent = 0
        self._probed = {}  # (vid, address) -> monotonic time of the last probe

    @property
    def name(self):
        return "%s (%#x)" % (self.cfg.name, self.cfg.dp_id)

    # --- programming ----------------------------------------------------------------------

    def sync(self):
        """Reconcile the switch with the config and its current ports; never half-applies."""
        with self.lock:
            started = time.monotonic()
            try:
                if self.state == "connecting":
                    self._bound_tables()
                self.portmap = resolve(self.cfg.ports, {
                    no: port.name.decode() if isinstance(port.name, bytes) else port.name
                    for no, port in self.datapath.ports.items()})
                for role, ref in self.portmap.missing:
                    LOG.warning("%s: %s port %r is not on the switch; waiting for it",
                                self.name, role, ref)
                changes = self._reconcile()
            except SwitchError as exc:
                self.state, self.error = "failed", str(exc)
                LOG.error("%s: programming failed, switch left as it was: %s", self.name, exc)
                return False
            self.state, self.error = "programmed", None
            self.last_sync = dict(changes, seconds=round(time.monotonic() - started, 3))
            LOG.info("%s: programmed: %d flows (%d added, %d removed), %d meter changes "
                     "in %.3f s", self.name, changes["flows"], changes["added"],
                     changes["removed"], changes["meters"], self.last_sync["seconds"])
            return True

    def _bound_tables(self):
        limit = self.cfg.reverse_path.max_flows
        try:
            bridge = ovsdb.configure_tables(self.ovsdb_address, self.cfg.dp_id, limit)
        except ovsdb.OvsdbError as exc:
            self.table_bounds_error = str(exc)
            LOG.error("%s: learned tables are NOT bounded (%s)", self.name, exc)
            return
        self.table_bounds_error = None
        LOG.info("%s: bridge %s: learned tables bounded to %d flows each (evict)",
                 self.name, bridge, limit)

    def _reconcile(self):
        want_flows = pipeline.flows(self.cfg, self.portmap)
        have_flows = self.channel.stats(parser.OFPFlowStatsRequest(
            None, table_id=ofp.OFPTT_ALL, cookie=tables.STATIC_COOKIES[0],
            cookie_mask=tables.STATIC_COOKIES[1]))
        have_meters = self.channel.stats(parser.OFPMeterConfigStatsRequest(None))
        meter_mods = reconcile.meter_diff(pipeline.meters(), have_meters, PIPELINE_METERS)
        deletes, adds = reconcile.diff(want_flows, have_flows)
        # meters first (flows refer to them); flows all-or-nothing in one bundle
        self.channel.transact([m for m in meter_mods if m.command != ofp.OFPMC_DELETE])
        self.channel.commit(deletes + adds)
        self.channel.transact([m for m in meter_mods if m.command == ofp.OFPMC_DELETE])
        return {"flows": len(want_flows), "added": len(adds), "removed": len(deletes),
                "meters": len(meter_mods)}

    def forget_port(self, port_no):
        """Delete every flow learned through ``port_no`` (it went down or away)."""
        cookie, mask = tables.learned_through(port_no)
        with self.lock:
            try:
                self.channel.transact([delete_flows(cookie=cookie, cookie_mask=mask)])
            except SwitchError as exc:
                LOG.error("%s: could not flush flows learned on port %s: %s",
                          self.name, port_no, exc)
                return False
        LOG.info("%s: port %s down: flushed what was learned through it", self.name, port_no)
        return True

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
        local = self.datapath.ports.get(OFPP_LOCAL)
        if wanted is None or local is None or self.portmap is None:
            return False
        now = time.monotonic()
        if now - self._probed.get(wanted, -PROBE_INTERVAL) < PROBE_INTERVAL:
            return False
        self._probed = {k: t for k, t in self._probed.items() if now - t < PROBE_INTERVAL}
        self._probed[wanted] = now
        vid, address = wanted
        source = None
        if self.cfg.local_ip is not None and address.version == 4:
            source = ipaddress.IPv4Address(self.cfg.local_ip.ip)
        LOG.info("%s: no neighbour known for %s%s: probing", self.name, address,
                 "" if vid is None else " (vlan %d)" % vid)
        frame = probes.probe_frame(local.hw_addr, vid, address, source)
        try:
            self.channel.send(probes.packet_out(frame, self.portmap.wire))
        except SwitchError:
            return False
        self.probes_sent += 1
        return True

    def close(self):
        self.channel.close()
