"""sggw: the Ryu application. Start it with

    SGGW_CONFIG=sggw.yaml ryu-manager app/sggw_app.py

Ryu's own flags keep working (``--ofp-tcp-listen-port``, ``--wsapi-port``, ...). The
OpenFlow listener and the REST API listen on 127.0.0.1 unless the YAML (``openflow:``,
``api:``) or those flags say otherwise.

This module is the thin shell: Ryu events go to :class:`app.switch.Switch` (which programs
a switch) and :class:`app.service.Sggw` (what the REST API works with); the flows come from
``flows/``.
"""
import gc
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

from app import config as sggw_config
from app.channel import describe_error
from app.rest import API, RestApi, UnknownPath
from app.service import Sggw
from app.store import Store, StoreError
from app.switch import Switch
from flows import tables

LOG = logging.getLogger("sggw")
CONFIG_ENV = "SGGW_CONFIG"
REMOTE_CHECK_INTERVAL = 10  # seconds between underlay checks of remote mirror destinations

# Ryu logs every HTTP request at INFO through this logger: keep health polls out of the log.
logging.getLogger("ryu.lib.hub").setLevel(logging.WARNING)

# Safe by default: both listeners on loopback unless configured (flags still win).
cfg.CONF.set_default("wsapi_host", "127.0.0.1")
cfg.CONF.set_default("ofp_listen_host", "127.0.0.1")


def start_or_exit():
    """The validated config and REST-made objects, or one line on stderr and exit status 2."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        sys.stderr.write("sggw: %s is not set: point it at the YAML config "
                         "(SGGW_CONFIG=sggw.yaml ryu-manager app/sggw_app.py)\n" % CONFIG_ENV)
        raise SystemExit(2)
    try:
        loaded = sggw_config.load(path)
        return Sggw(loaded, Store(loaded.state_file).load(loaded))
    except (sggw_config.ConfigError, StoreError) as exc:
        sys.stderr.write("sggw: %s\n" % exc)
        raise SystemExit(2) from None


class SggwApp(app_manager.RyuApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    _CONTEXTS = {"wsgi": WSGIApplication}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sggw = start_or_exit()
        conf = self.sggw.config
        for opt, value in (("wsapi_host", conf.api.host), ("wsapi_port", conf.api.port),
                           ("ofp_listen_host", conf.openflow.host),
                           ("ofp_tcp_listen_port", conf.openflow.port)):
            cfg.CONF.set_default(opt, value)
        kwargs["wsgi"].register(RestApi, {API: self.sggw})
        kwargs["wsgi"].register(UnknownPath)
        hub.spawn(self._watch_remotes)
        # What exists now (Ryu, eventlet, the config) lives as long as the process: keep it
        # out of every future full garbage collection, whose pause adds to REST latency.
        gc.collect()
        gc.freeze()
        LOG.info("sggw: %d datapaths configured from %s; OpenFlow on %s:%s, REST on %s:%s",
                 len(conf.datapaths), conf.source, cfg.CONF.ofp_listen_host,
                 cfg.CONF.ofp_tcp_listen_port or 6653, cfg.CONF.wsapi_host,
                 cfg.CONF.wsapi_port)

    # --- switch life cycle -------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPStateChange, [MAIN_DISPATCHER, DEAD_DISPATCHER])
    def _state_change(self, ev):
        datapath, switches = ev.datapath, self.sggw.switches
        if ev.state == MAIN_DISPATCHER:
            dp_cfg = self.sggw.config.by_dp_id(datapath.id)
            if dp_cfg is None:
                LOG.warning("datapath %#x is not in %s: left unprogrammed", datapath.id,
                            self.sggw.config.source)
                return
            old = switches.get(datapath.id)
            if old is not None:
                old.close()
            switch = Switch(self.sggw.effective(dp_cfg.name), datapath,
                            self.sggw.config.ovsdb)
            switches[datapath.id] = switch
            LOG.info("%s: connected", switch.name)
            hub.spawn(switch.sync)
        elif ev.state == DEAD_DISPATCHER and datapath.id is not None:
            switch = switches.get(datapath.id)
            if switch is not None and switch.datapath is datapath:
                del switches[datapath.id]
                switch.close()
                LOG.warning("%s: disconnected (its flows stay; it keeps forwarding)",
                            switch.name)

    @set_ev_cls(ofp_event.EventOFPPortStateChange, MAIN_DISPATCHER)
    def _port_state_change(self, ev):
        switch = self.sggw.switches.get(ev.datapath.id)
        if switch is None:
            return
        todo = switch.port_changed(ev.port_no)
        if todo == "resync":
            hub.spawn(switch.sync)
        elif todo == "forget":
            hub.spawn(switch.forget_port, ev.port_no)

    def _watch_remotes(self):
        """Health follows the underlay to remote analyzers, and OVS's MACs for them stay
        fresh (an expired one would cost copies while OVS resolves it again)."""
        while True:
            hub.sleep(REMOTE_CHECK_INTERVAL)
            for switch in list(self.sggw.switches.values()):
                if switch.programmed:
                    switch.check_remotes()

    # --- replies for Channel -------------------------------------------------------------------

    @set_ev_cls([ofp_event.EventOFPBarrierReply, ofp_event.EventONFBundleCtrlMsg,
                 ofp_event.EventOFPFlowStatsReply, ofp_event.EventOFPAggregateStatsReply,
                 ofp_event.EventOFPTableStatsReply,
                 ofp_event.EventOFPGroupDescStatsReply, ofp_event.EventOFPGroupStatsReply,
                 ofp_event.EventOFPMeterConfigStatsReply, ofp_event.EventOFPMeterStatsReply],
                MAIN_DISPATCHER)
    def _reply(self, ev):
        switch = self.sggw.switches.get(ev.msg.datapath.id)
        if switch is not None:
            switch.channel.dispatch(ev.msg)

    @set_ev_cls(ofp_event.EventOFPErrorMsg,
                [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev):
        switch = self.sggw.switches.get(ev.msg.datapath.id)
        if switch is None or not switch.channel.dispatch(ev.msg):
            LOG.error("datapath %#x sent an unexpected error: %s", ev.msg.datapath.id,
                      describe_error(ev.msg))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        dp_id = msg.datapath.id
        self.sggw.packet_ins[dp_id] = self.sggw.packet_ins.get(dp_id, 0) + 1
        switch = self.sggw.switches.get(dp_id)
        if switch is not None and msg.table_id == tables.DELIVER.id:
            switch.probe(msg.data)
