"""sggw: the Ryu application. Start it with

    SGGW_CONFIG=sggw.yaml ryu-manager app/sggw_app.py

Ryu's own flags keep working (``--ofp-tcp-listen-port``, ``--wsapi-port``, ...). The
OpenFlow listener and the REST API listen on 127.0.0.1 unless the YAML (``openflow:``,
``api:``) or those flags say otherwise. The REST API is served by :mod:`app.api.http_server`
(bounded), not by Ryu's own WSGI server.

This module is the thin shell: Ryu events go to :class:`app.openflow.switch.Switch` (which programs
a switch) and :class:`app.api.service.Sggw` (what the REST API works with); the flows come from
``flows/``.
"""
import gc
import logging
import os
import signal
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
from app.api.http_server import HttpServer
from app.api.page import StatusPage
from app.api.rest import API, MAX_BODY, RestApi, UnknownPath
from app.api.service import Sggw, peer
from app.cluster.election import Election
from app.cluster.roles import Roles
from app.openflow.channel import describe_error
from app.openflow.switch import Switch
from app.openflow.tls_listener import install as install_tls_listener
from app.ovs.settings_watch import SettingsWatch
from app.store.cluster_store import ClusterStore
from app.store.ovsdb_client import Ovsdb
from app.store.store import Store, StoreError
from flows import tables

LOG = logging.getLogger("sggw")
CONFIG_ENV = "SGGW_CONFIG"
REMOTE_CHECK_INTERVAL = 10  # seconds between underlay checks of remote mirror destinations
STORE_WAIT = 60  # seconds a cluster instance waits for its store at start


class _HelloFailed(logging.Filter):
    """Ryu's line for a switch that speaks no OpenFlow 1.3 (its handshake, in
    ``ryu.controller.ofp_handler``), reworded to say what to do."""

    def filter(self, record):
        if record.getMessage().startswith(("unsupported version", "no compatible version")):
            desc, address = record.args
            record.msg = ("switch at %s:%s does not speak OpenFlow 1.3 (%s): left alone; "
                          "fix: ovs-vsctl set bridge BRIDGE protocols=OpenFlow13")
            record.args = (address[0], address[1], desc.split(".")[0])
        return True


logging.getLogger("OFPHandler").addFilter(_HelloFailed())  # its app logger

install_tls_listener()

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
        return Sggw(loaded, _store(loaded).load(loaded))
    except (sggw_config.ConfigError, StoreError) as exc:
        sys.stderr.write("sggw: %s\n" % exc)
        raise SystemExit(2) from None


def listen_or_exit(routes):
    """The REST API's server, bound to the configured address, or one line and exit 2."""
    host, port = cfg.CONF.wsapi_host, cfg.CONF.wsapi_port
    try:
        return HttpServer(host, port, routes, MAX_BODY)
    except (OSError, ValueError) as exc:
        sys.stderr.write("sggw: cannot serve the REST API on %s:%s: %s\n"
                         % (host, port, getattr(exc, "strerror", None) or exc))
        raise SystemExit(2) from None


def _store(loaded):
    """The state file, or for a cluster the shared store once it answers."""
    if loaded.cluster is None:
        return Store(loaded.state_file)
    db = Ovsdb(loaded.cluster.store, tls=loaded.cluster.store_tls).start()
    if not db.wait_live(STORE_WAIT):
        raise StoreError("cluster.store: no leader of %s answered within %d s%s"
                         % (loaded.cluster.store, STORE_WAIT,
                            ": " + db.error if db.error else ""))
    return ClusterStore(db)


class SggwApp(app_manager.RyuApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sggw = start_or_exit()
        conf = self.sggw.config
        for opt, value in (("wsapi_host", conf.api.host), ("wsapi_port", conf.api.port),
                           ("ofp_listen_host", conf.openflow.host),
                           ("ofp_tcp_listen_port", conf.openflow.port),
                           ("ofp_ssl_listen_port", conf.openflow.port)):  # with --ctl-privkey
            cfg.CONF.set_default(opt, value)
        routes = WSGIApplication()
        routes.register(RestApi, {API: self.sggw})
        routes.register(StatusPage)
        routes.register(UnknownPath)
        self.http = listen_or_exit(routes)
        # SIGTERM (docker stop, systemctl stop) ends the process like Ctrl-C: ryu-manager
        # then closes its apps and exits 0. Without a handler, as a container's PID 1 it
        # would ignore SIGTERM until the SIGKILL comes.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        hub.spawn(self._watch_remotes)
        self.settings = SettingsWatch(self.sggw.switches)
        hub.spawn(self.settings.run)
        self.roles = None
        if conf.cluster is not None:
            self.roles = Roles(self.sggw, self.settings)
            db = self.sggw.store.db
            self.sggw.election = Election(db, conf.cluster.name, conf.cluster.api_url,
                                          self.roles.became_master, self.roles.became_standby,
                                          floor=self.roles.generation_floor)
            self.sggw.store.election = self.sggw.election
            db.listeners.append(self.roles.follow_store)
            self.sggw.election.review()
        # What exists now (Ryu, eventlet, the config) lives as long as the process: keep it
        # out of every future full garbage collection, whose pause adds to REST latency.
        gc.collect()
        gc.freeze()
        LOG.info("sggw: %d datapaths configured from %s; OpenFlow on %s:%s, REST on %s:%s",
                 len(conf.datapaths), conf.source, cfg.CONF.ofp_listen_host,
                 "%s%s" % (openflow_port(), " (TLS)" if tls() else ""), cfg.CONF.wsapi_host,
                 cfg.CONF.wsapi_port)

    def start(self):
        """Ryu's event loop, and the REST API's server (whose thread ryu-manager joins)."""
        super().start()
        return hub.spawn(self.http.serve_forever)

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
            if old is not None and not old.channel.closed and old.answering:
                self.sggw.intruders.setdefault(datapath.id, []).append(datapath)
                LOG.error("%s: another connection (%s) claims its datapath id: left "
                          "unprogrammed; %s keeps it. Give that bridge its own "
                          "other-config:datapath-id", old.name, describe_peer(datapath),
                          describe_peer(old.datapath))
                return
            if old is not None:  # gone or silent: the newcomer is the switch back
                old.close()
            self._adopt(datapath, dp_cfg)
        elif ev.state == DEAD_DISPATCHER and datapath.id is not None:
            intruders = self.sggw.intruders.get(datapath.id, [])
            if datapath in intruders:
                intruders.remove(datapath)
                LOG.warning("datapath %#x: the second connection (%s) is gone",
                            datapath.id, describe_peer(datapath))
                return
            switch = self._owner(datapath)
            if switch is not None:
                del switches[datapath.id]
                switch.close()
                LOG.warning("%s: disconnected (its flows stay; it keeps forwarding)",
                            switch.name)
                self._promote(datapath.id)

    def _adopt(self, datapath, dp_cfg):
        """Make ``datapath`` the connection that programs datapath ``dp_cfg``."""
        cluster = self.sggw.config.cluster
        switch = Switch(self.sggw.effective(dp_cfg.name), datapath,
                        self.sggw.config.ovsdb, openflow_port(),
                        cluster.controllers if cluster else ())
        switch.liveness.on_silent = lambda: self._owner_silent(switch)
        self.sggw.switches[datapath.id] = switch
        LOG.info("%s: connected (%s)", switch.name, describe_peer(datapath))
        if self.roles is None:
            hub.spawn(switch.start, self.settings)
        else:
            self.roles.adopted(switch)

    def _owner_silent(self, switch):
        """A silent owner gives way to a connection that waits with its datapath id, as it
        would had that one connected now (a half-open connection must not keep a live
        bridge unprogrammed)."""
        if self._owner(switch.datapath) is switch and self.sggw.intruders.get(
                switch.datapath.id):
            del self.sggw.switches[switch.datapath.id]
            switch.close()
            self._promote(switch.datapath.id)

    def _promote(self, dp_id):
        """The newest waiting connection with ``dp_id`` that is still open takes over."""
        waiting = self.sggw.intruders.get(dp_id, [])
        while waiting:
            datapath = waiting.pop()
            if datapath.is_active:
                dp_cfg = self.sggw.config.by_dp_id(dp_id)
                LOG.warning("%s: the connection that programmed it is gone; %s takes over",
                            dp_cfg.name, describe_peer(datapath))
                self._adopt(datapath, dp_cfg)
                return

    def _owner(self, datapath):
        """The Switch this connection programs (not one that merely claims its dp_id)."""
        switch = self.sggw.switches.get(datapath.id)
        return switch if switch is not None and switch.datapath is datapath else None

    @set_ev_cls(ofp_event.EventOFPPortStateChange, MAIN_DISPATCHER)
    def _port_state_change(self, ev):
        switch = self._owner(ev.datapath)
        if switch is None or not switch.channel.writable:
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
                switch.watch_remotes()

    # --- replies for Channel -------------------------------------------------------------------

    @set_ev_cls([ofp_event.EventOFPBarrierReply, ofp_event.EventONFBundleCtrlMsg,
                 ofp_event.EventOFPFlowStatsReply, ofp_event.EventOFPAggregateStatsReply,
                 ofp_event.EventOFPTableStatsReply, ofp_event.EventOFPEchoReply,
                 ofp_event.EventOFPGroupDescStatsReply, ofp_event.EventOFPGroupStatsReply,
                 ofp_event.EventOFPMeterConfigStatsReply, ofp_event.EventOFPMeterStatsReply,
                 ofp_event.EventOFPRoleReply],
                MAIN_DISPATCHER)
    def _reply(self, ev):
        switch = self._owner(ev.msg.datapath)
        if switch is not None:
            switch.channel.dispatch(ev.msg)

    @set_ev_cls(ofp_event.EventOFPErrorMsg,
                [HANDSHAKE_DISPATCHER, CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def _error(self, ev):
        msg = ev.msg
        if msg.datapath.id is None:  # still in the handshake: no datapath id yet
            refused_ours = msg.type == ofp.OFPET_BAD_REQUEST and msg.data[1:2] == bytes(
                [ofp.OFPT_ERROR])  # the switch's answer to Ryu's "hello failed": said already
            LOG.log(logging.DEBUG if refused_ours else logging.ERROR,
                    "%s: error in the OpenFlow handshake: %s", describe_peer(msg.datapath),
                    describe_error(msg))
            return
        switch = self._owner(msg.datapath)
        if switch is None or not switch.channel.dispatch(msg):
            LOG.error("datapath %#x sent an unexpected error: %s", msg.datapath.id,
                      describe_error(msg))

    @set_ev_cls(ofp_event.EventOFPExperimenter, MAIN_DISPATCHER)
    def _experimenter(self, ev):
        """A role status (the switch demoted this controller) fences that switch."""
        switch = self._owner(ev.msg.datapath)
        if switch is not None and self.roles is not None:
            self.roles.role_status(switch, ev.msg)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        switch = self._owner(msg.datapath)
        if switch is None or not switch.channel.writable:
            return
        dp_id = msg.datapath.id
        self.sggw.packet_ins[dp_id] = self.sggw.packet_ins.get(dp_id, 0) + 1
        if msg.table_id == tables.DELIVER.id:
            switch.probe(msg.data)


def tls():
    """OpenFlow over TLS: Ryu's --ctl-privkey and --ctl-cert (and --ca-certs to require
    the switches' certificates) make it listen with TLS instead of TCP."""
    return cfg.CONF.ctl_privkey is not None and cfg.CONF.ctl_cert is not None


def openflow_port():
    """The port the switches connect to (Ryu's TLS or TCP listener)."""
    return (cfg.CONF.ofp_ssl_listen_port if tls() else cfg.CONF.ofp_tcp_listen_port) or 6653


def describe_peer(datapath):
    """A connection in a log line: its bridge, when known, and address."""
    found = peer(datapath)
    return ("bridge %(bridge)s at %(address)s" if found["bridge"] else "switch at %(address)s") \
        % found
