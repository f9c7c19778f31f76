"""Prometheus text exposition of what sggw and its switches are doing (``GET /metrics``)."""
from ryu.ofproto import ofproto_v1_3_parser as parser

from app.openflow.channel import SwitchError
from flows import pipeline, tables


class _Family:
    def __init__(self, name, kind, doc):
        self.name, self.kind, self.doc = name, kind, doc
        self.samples = []

    def add(self, value, **labels):
        self.samples.append((labels, value))

    def render(self):
        lines = ["# HELP %s %s" % (self.name, self.doc), "# TYPE %s %s" % (self.name, self.kind)]
        for labels, value in self.samples:
            text = ",".join('%s="%s"' % (k, _escape(v)) for k, v in sorted(labels.items()))
            lines.append("%s{%s} %s" % (self.name, text, value))
        return "\n".join(lines)


def _escape(value):
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(sggw):
    connected = _Family("sggw_switch_connected", "gauge", "1 if the switch is connected.")
    programmed = _Family("sggw_switch_programmed", "gauge",
                         "1 if the switch holds the full pipeline.")
    answering = _Family("sggw_switch_answering", "gauge",
                        "1 if the switch answered its last echo request.")
    packet_ins = _Family("sggw_packet_ins_total", "counter",
                         "Packet-ins received (only unknown-neighbour probes cause any).")
    probes = _Family("sggw_neighbour_probes_total", "counter", "ARP/ND probes sent.")
    unknown = _Family("sggw_unknown_neighbour_packets_total", "counter",
                      "Packets from the tunnel for an address no local host was seen with.")
    learned = _Family("sggw_learned_flows", "gauge", "Flows in a learned table, read from OVS.")
    copies = _Family("sggw_mirror_packets_total", "counter",
                     "Copies a mirror session delivered to each of its destinations.")
    copy_bytes = _Family("sggw_mirror_bytes_total", "counter",
                         "Bytes of those copies (before any snaplen truncation).")
    limited = _Family("sggw_mirror_rate_limited_packets_total", "counter",
                      "Copies a session's rate limit dropped.")
    truncated = _Family("sggw_mirror_truncated_packets_total", "counter",
                        "Remote copies a session cut to fit the path MTU.")
    remote_ok = _Family("sggw_mirror_remote_destination_ok", "gauge",
                        "1 if OVS can route a remote destination's copies and knows the MAC.")
    families = [connected, programmed, answering, packet_ins, probes, unknown, learned, copies,
                copy_bytes, limited, truncated, remote_ok]
    for name, dp_cfg in sggw.config.datapaths.items():
        switch = sggw.switches.get(dp_cfg.dp_id)
        connected.add(int(switch is not None), datapath=name)
        programmed.add(int(switch is not None and switch.state == "programmed"), datapath=name)
        packet_ins.add(sggw.packet_ins.get(dp_cfg.dp_id, 0), datapath=name)
        answering.add(int(switch is not None and switch.answering), datapath=name)
        if switch is None:
            continue
        probes.add(switch.probes_sent, datapath=name)
        if not switch.answering:  # its counters would only time out
            continue
        try:
            counts = {t.table_id: t.active_count for t in switch.channel.stats(
                parser.OFPTableStatsRequest(None, 0))}
            # the punt meter sees every such packet in the datapath (flow counters can be
            # credited to the rules of a newer translation once the neighbour is learned)
            punts = switch.channel.stats(parser.OFPMeterStatsRequest(
                None, meter_id=pipeline.PUNT_METER_ID))
        except SwitchError:
            continue
        unknown.add(sum(m.packet_in_count for m in punts), datapath=name)
        for table in tables.LEARNED_TABLES:
            learned.add(counts.get(table.id, 0), datapath=name, table=table.name)
        if switch.conntrack:
            try:
                learned.add(switch.connection_count(), datapath=name, table="conntrack")
            except SwitchError:
                pass
        for session, counters in sggw.session_counters(name):
            copies.add(counters["packets"], datapath=name, session=session)
            copy_bytes.add(counters["bytes"], datapath=name, session=session)
            limited.add(counters["rate_limited"], datapath=name, session=session)
            if "truncated" in counters:
                truncated.add(counters["truncated"], datapath=name, session=session)
        for found in switch.remote_health:
            remote_ok.add(int(found["state"] == "ok"), datapath=name,
                          session=found["session"], destination=found["destination"])
    return "\n".join(f.render() for f in families) + "\n"
