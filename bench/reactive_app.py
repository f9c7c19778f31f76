"""The baseline most Ryu tutorials build: a learning switch with reactive per-flow entries.

    REACTIVE_STATS=/tmp/stats.json ryu-manager bench/reactive_app.py \\
        --ofp-tcp-listen-port 6653 --ofp-listen-host 127.0.0.1

OpenFlow 1.3 only. A switch gets one table-miss flow that sends every packet to the
controller (whole, no buffering). For each packet-in the controller learns source MAC ->
in_port for that switch; if the destination MAC is known it installs a flow for the packet's
flow (idle_timeout 60, priority 10) and sends the packet on with a packet-out:

- IPv4 TCP/UDP: in_port, MACs, eth_type, ip_proto, addresses and L4 ports (the 5-tuple),
- other IPv4 (ICMP, ...): in_port, MACs, eth_type, ip_proto and addresses,
- anything else (ARP, IPv6, VLAN-tagged, ...): no flow, every packet comes to the controller.

An unknown destination is flooded without installing anything. So every new flow costs at
least one round trip through the controller: the cost sggw's data-plane learning avoids.
Packets are decoded with Ryu's packet library, as the tutorials do.

No config file and no REST API. The packet-ins are counted per switch, logged in one line
when a switch disconnects, and, when the environment variable ``REACTIVE_STATS`` names a
file, written there as JSON ``{"<dpid in decimal>": packet_ins}`` (atomically, at most ten
times a second and only when a count changed; also on disconnect and on shutdown).
"""
import collections
import json
import os

from ryu.base import app_manager
from ryu.controller import ofp_event
from ryu.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER
from ryu.controller.handler import set_ev_cls
from ryu.lib import hub
from ryu.lib.packet import ether_types, ethernet, ipv4, packet, tcp, udp
from ryu.ofproto import ofproto_v1_3

STATS_ENV = "REACTIVE_STATS"
FLOW_PRIORITY = 10
FLOW_COOKIE = 0x5245  # marks the per-flow entries (the benchmark removes them between runs)
IDLE_TIMEOUT = 60


class ReactiveSwitch13(app_manager.RyuApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mac_to_port = {}                    # dpid -> {mac: port}
        self.counts = {}                         # dpid -> Counter(packet_in=, flow=, flood=)
        self.stats_path = os.environ.get(STATS_ENV) or None
        self._written = None                     # what the stats file holds now

    def start(self):
        super().start()
        if self.stats_path:
            self.threads.append(hub.spawn(self._stats_loop))

    def close(self):
        super().close()
        self._write_stats()

    # --- switch life cycle ---------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def _features(self, ev):
        datapath = ev.msg.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        self.mac_to_port[datapath.id] = {}
        self.counts.setdefault(datapath.id, collections.Counter())
        # start from an empty switch, whatever an earlier run left there
        datapath.send_msg(parser.OFPFlowMod(datapath, command=ofp.OFPFC_DELETE,
                                            table_id=ofp.OFPTT_ALL, out_port=ofp.OFPP_ANY,
                                            out_group=ofp.OFPG_ANY, match=parser.OFPMatch()))
        to_controller = [parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)]
        self._add_flow(datapath, 0, parser.OFPMatch(), to_controller, idle_timeout=0)
        self.logger.info("reactive: datapath %#x connected", datapath.id)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _disconnected(self, ev):
        dpid = ev.datapath.id
        if dpid is None or dpid not in self.counts:
            return
        c = self.counts[dpid]
        self.logger.info("reactive: datapath %#x disconnected: %d packet-ins, %d flows "
                         "installed, %d floods, %d MACs learned", dpid, c["packet_in"],
                         c["flow"], c["flood"], len(self.mac_to_port.get(dpid, ())))
        self._write_stats()

    # --- the learning switch -------------------------------------------------------------------

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev):
        msg = ev.msg
        datapath = msg.datapath
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        counts = self.counts.setdefault(datapath.id, collections.Counter())
        counts["packet_in"] += 1
        in_port = msg.match["in_port"]

        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None or eth.ethertype == ether_types.ETH_TYPE_LLDP:
            return
        macs = self.mac_to_port.setdefault(datapath.id, {})
        macs[eth.src] = in_port

        out_port = macs.get(eth.dst)
        if out_port is None:
            out_port = ofp.OFPP_FLOOD
            counts["flood"] += 1
        elif out_port == in_port:
            return                               # it is already where it is going
        else:
            match = self._flow_match(parser, pkt, eth, in_port)
            if match is not None:
                self._add_flow(datapath, FLOW_PRIORITY, match,
                               [parser.OFPActionOutput(out_port)], idle_timeout=IDLE_TIMEOUT)
                counts["flow"] += 1
        datapath.send_msg(parser.OFPPacketOut(
            datapath=datapath, buffer_id=ofp.OFP_NO_BUFFER, in_port=in_port,
            actions=[parser.OFPActionOutput(out_port)], data=msg.data))

    @staticmethod
    def _flow_match(parser, pkt, eth, in_port):
        """The 5-tuple (TCP/UDP) or 3-tuple (other IPv4) match; None for anything else."""
        if eth.ethertype != ether_types.ETH_TYPE_IP:
            return None
        ip = pkt.get_protocol(ipv4.ipv4)
        if ip is None:
            return None
        fields = dict(in_port=in_port, eth_src=eth.src, eth_dst=eth.dst,
                      eth_type=ether_types.ETH_TYPE_IP, ip_proto=ip.proto, ipv4_src=ip.src,
                      ipv4_dst=ip.dst)
        if ip.offset:            # a later fragment has no L4 header (OVS matches ports 0)
            return parser.OFPMatch(**fields)
        l4 = pkt.get_protocol(tcp.tcp) or pkt.get_protocol(udp.udp)
        if isinstance(l4, tcp.tcp):
            fields.update(tcp_src=l4.src_port, tcp_dst=l4.dst_port)
        elif isinstance(l4, udp.udp):
            fields.update(udp_src=l4.src_port, udp_dst=l4.dst_port)
        return parser.OFPMatch(**fields)

    @staticmethod
    def _add_flow(datapath, priority, match, actions, idle_timeout):
        ofp, parser = datapath.ofproto, datapath.ofproto_parser
        datapath.send_msg(parser.OFPFlowMod(
            datapath=datapath, priority=priority, idle_timeout=idle_timeout, match=match,
            cookie=FLOW_COOKIE if priority == FLOW_PRIORITY else 0,
            instructions=[parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)]))

    # --- packet-in counts for the benchmark ----------------------------------------------------

    def _stats_loop(self):
        while self.is_active:
            hub.sleep(0.1)  # the benchmark reads the counts right after each run
            self._write_stats()

    def _write_stats(self):
        if not self.stats_path:
            return
        stats = {str(dpid): c["packet_in"] for dpid, c in sorted(self.counts.items())}
        if stats == self._written:
            return
        tmp = "%s.%d.tmp" % (self.stats_path, os.getpid())
        try:
            with open(tmp, "w") as out:
                json.dump(stats, out)
            os.replace(tmp, self.stats_path)
        except OSError as exc:
            self.logger.error("reactive: cannot write %s: %s", self.stats_path, exc)
            return
        self._written = stats
