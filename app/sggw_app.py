"""sggw: the Ryu application. Start it with

    SGGW_CONFIG=sggw.yaml ryu-manager app/sggw_app.py

Ryu's own flags keep working (``--ofp-tcp-listen-port``, ``--wsapi-port``, ...). The
OpenFlow listener and the REST API listen on 127.0.0.1 unless the YAML (``openflow:``,
``api:``) or those flags say otherwise.

This module is the thin shell: event handlers hand work to :class:`app.switch.Switch`
(which programs a switch) and the REST API; the flows themselves come from ``flows/``.
"""
import logging
import os
import sys

from ryu import cfg
from ryu.app.wsgi import WSGIApplication
from ryu.base import app_manager
from ryu.controller import controller as _ofp_controller  # noqa: F401 (registers ofp_* opts)
from ryu.controller import ofp_event
from ryu.controller.handler import (
    CONFIG_DISPATCHER, DEAD_DISPATCHER, HANDSHAKE_DISPATCHER, MAIN_DISPATCHER, set_ev_cls)
from ryu.lib import hub
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from app import config as sggw_config
from app.channel import describe_error
from app.metrics import render_metrics
from app.rest import API, RestApi
from app.switch import Switch
from flows import tables

LOG = logging.getLogger("sggw")
CONFIG_ENV = "SGGW_CONFIG"

# Ryu logs every HTTP request at INFO through this logger: keep health polls out of the log.
logging.getLogger("ryu.lib.hub").setLevel(logging.WARNING)

# Safe by default: both listeners on loopback unless configured (flags still win).
cfg.CONF.set_default("wsapi_host", "127.0.0.1")
cfg.CONF.set_default("ofp_listen_host", "127.0.0.1")


def load_config_or_exit():
    """The validated config, or one line on stderr and exit status 2."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        sys.stderr.write("sggw: %s is not set: point it at the YAML config "
                         "(SGGW_CONFIG=sggw.yaml ryu-manager app/sggw_app.py)\n" % CONFIG_ENV)
        raise SystemExit(2)
    try:
        return sggw_config.load(path)
    except sggw_config.ConfigError as exc:
        sys.stderr.write("sggw: %s\n" % exc)
        raise SystemExit(2) from None


class SggwApp(app_manager.RyuApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config = load_config_or_exit()
        for opt, value in (("wsapi_host", self.config.api.host),
                           ("wsapi_port", self.config.api.port),
                           ("ofp_listen_host", self.config.openflow.host),
                           ("ofp_tcp_listen_port", self.config.openflow.port)):
            cfg.CONF.set_default(opt, value)
        self.switches = {}  # dp_id -> Switch (connected ones)
        self.packet_ins = {}  # dp_id -> count
        kwargs["wsgi"].register(RestApi, {API: self})
        LOG.info("sggw: %d datapaths configured from %s; OpenFlow on %s:%s, REST on %s:%s",
                 len(self.config.datapaths), self.config.source, cfg.CONF.ofp_listen_host,
                 cfg.CONF.ofp_tcp_listen_port or 6653, cfg.CONF.wsapi_host,
                 cfg.CONF.wsapi_port)

    # --- switch life cycle -------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev):
        datapath = ev.datapath
        if ev.state == MAIN_DISPATCHER:
            dp_cfg = self.config.by_dp_id(datapath.id)
            if dp_cfg is None:
                LOG.warning("datapath %#x is not in %s: left unprogrammed", datapath.id,
                            self.config.source)
                return
            old = self.switches.get(datapath.id)
            if old is not None:
                old.close()
            switch = Switch(dp_cfg, datapath, self.config.ovsdb)
            self.switches[datapath.id] = switch
            LOG.info("%s: connected", switch.name)
            hub.spawn(switch.sync)
        elif ev.state == DEAD_DISPATCHER and datapath.id is not None:
            switch = self.switches.get(datapath.id)
            if switch is not None and switch.datapath is datapath:
                del self.switches[datapath.id]
                switch.close()
                LOG.warning("%s: disconnected (its flows stay; it keeps forwarding)",
                            switch.name)

    @set_ev_cls(ofp_event.EventOFPPortStateChange, MAIN_DISPATCHER)
    def _port_state_change(self, ev):
        switch = self.switches.get(ev.datapath.id)
        if switch is None:
            return
        todo = switch.port_changed(ev.port_no)
        if todo == "resync":
            hub.spawn(switch.sync)
        elif todo == "forget":
            hub.spawn(switch.forget_port, ev.port_no)

    # --- replies for Channel -------------------------------------------------------------------

    @set_ev_cls([ofp_event.EventOFPBarrierReply, ofp_event.EventOFPFlowStatsReply,
                 ofp_event.EventOFPMeterConfigStatsReply, ofp_event.EventOFPMeterStatsReply,
                 ofp_event.EventOFPTableStatsReply,
                 ofp_event.EventONFBundleCtrlMsg], MAIN_DISPATCHER)
    def _reply(self, ev):
        switch = self.switches.get(ev.msg.datapath.id)
        if switch is not None:
            switch.channel.dispatch(ev.msg)

    @set_ev_cls(ofp_event.EventOFPErrorMsg,
                [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev):
        switch = self.switches.get(ev.msg.datapath.id)
        if switch is None or not switch.channel.dispatch(ev.msg):
            LOG.error("datapath %#x sent an unexpected error: %s", ev.msg.datapath.id,
                      describe_error(ev.msg))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp_id = msg.datapath.id
        self.packet_ins[dp_id] = self.packet_ins.get(dp_id, 0) + 1
        switch = self.switches.get(dp_id)
        if switch is not None and msg.table_id == tables.DELIVER.id:
            switch.probe(msg.data)

    # --- used by the REST API ----------------------------------------------------------------

    def find_switch(self, ref):
        """The config name for ``ref``: a datapath name, or its dp_id in decimal or 0x-hex."""
        if ref in self.config.datapaths:
            return ref
        try:
            dp_id = int(ref, 0)
        except ValueError:
            return None
        dp_cfg = self.config.by_dp_id(dp_id)
        return dp_cfg.name if dp_cfg else None

    def describe_switch(self, name):
        dp_cfg = self.config.datapaths[name]
        switch = self.switches.get(dp_cfg.dp_id)
        out = {"name": name, "dp_id": "%#x" % dp_cfg.dp_id, "connected": switch is not None}
        if switch is None:
            return out
        out.update(state=switch.state, error=switch.error, last_sync=switch.last_sync,
                   learned_tables_bounded=switch.table_bounds_error is None,
                   packet_ins=self.packet_ins.get(dp_cfg.dp_id, 0),
                   neighbour_probes=switch.probes_sent)
        if switch.table_bounds_error:
            out["learned_tables_error"] = switch.table_bounds_error
        ports = []
        for no, port in sorted(switch.datapath.ports.items()):
            role = switch.portmap.role(no) if switch.portmap else None
            ports.append({"port_no": no, "name": _text(port.name), "role": role,
                          "up": switch.port_up.get(no, False)})
        out["ports"] = ports
        if switch.portmap and switch.portmap.missing:
            out["missing_ports"] = [{"role": r, "port": p} for r, p in switch.portmap.missing]
        return out

    def health(self):
        switches = {name: self.describe_switch(name) for name in self.config.datapaths}
        ok = all(s["connected"] and s["state"] == "programmed"
                 and s["learned_tables_bounded"] for s in switches.values())
        return {"status": "ok" if ok else "degraded", "switches": {
            name: {k: s.get(k) for k in ("connected", "state", "error",
                                         "learned_tables_bounded")}
            for name, s in switches.items()}}

    def table_stats(self, switch):
        """{table id: active flow count}, asked from the switch (blocks)."""
        replies = switch.channel.stats(parser.OFPTableStatsRequest(None, 0))
        return {t.table_id: t.active_count for t in replies}

    def metrics(self):
        return render_metrics(self)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value
