"""Human output: aligned tables in the habit of ``ovs-vsctl``/``fctl`` (``--json`` skips this)."""
from app.config import IP_PROTOS

PROTO_NAMES = {number: name for name, number in IP_PROTOS.items()}


def table(headers, rows):
    """Columns padded to their widest cell; None shows as ``-``."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in [list(headers)] + cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [list(headers)] + cells)


def _cell(value):
    if value is None or value == "" or value == []:
        return "-"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def status(api, health, switches):
    rows = [(s["name"], s["dp_id"], s["connected"], s.get("state"),
             s.get("learned_tables_bounded"), _ports_up(s), s.get("packet_ins"),
             s.get("error") or s.get("learned_tables_error"))
            for s in switches]
    return "controller %s: %s\n%s" % (api, health["status"], table(
        ("SWITCH", "DP_ID", "CONNECTED", "STATE", "TABLES_BOUNDED", "PORTS_UP", "PACKET_INS",
         "ERROR"), rows))


def switches(found):
    return table(("SWITCH", "DP_ID", "CONNECTED", "STATE", "FLOWS", "LAST_SYNC_S",
                  "PACKET_INS", "PROBES"),
                 [(s["name"], s["dp_id"], s["connected"], s.get("state"),
                   (s.get("last_sync") or {}).get("flows"),
                   (s.get("last_sync") or {}).get("seconds"), s.get("packet_ins"),
                   s.get("neighbour_probes")) for s in found])


def ports(switch):
    out = [table(("PORT_NO", "NAME", "ROLE", "UP"),
                 [(p["port_no"], p["name"], p["role"], p["up"])
                  for p in switch.get("ports", [])])]
    for missing in switch.get("missing_ports", []):
        out.append("missing: %s port %s (picked up when it appears)"
                   % (missing["role"], missing["port"]))
    return "\n".join(out)


def paths(name, listing, shown):
    rows = []
    for p in shown:
        reply, to = p["reply"], p["to"]
        rows.append((reply.get("from"), reply.get("proto"),
                     _end(reply.get("src"), reply.get("src_port")),
                     _end(reply.get("dst"), reply.get("dst_port")), reply.get("vlan"),
                     to.get("port") or to.get("port_no"), to.get("eth_dst"), to.get("eth_src"),
                     p.get("packets"), p.get("idle_age")))
    head = "%s: %d of %d learned reverse paths" % (name, len(shown), listing["total"])
    if not rows:
        return head
    return head + "\n" + table(("FROM", "PROTO", "REPLY_SRC", "REPLY_DST", "VLAN", "OUT",
                                "ETH_DST", "ETH_SRC", "PACKETS", "IDLE_AGE"), rows)


def _end(address, port):
    if port is None:
        return address
    return "[%s]:%s" % (address, port) if ":" in (address or "") else "%s:%s" % (address, port)


def captures(found):
    return table(("NAME", "FROM", "MATCH", "PACKETS", "BYTES"),
                 [(c["name"], c["source"], match(c), _count(c, "packets"),
                   _count(c, "bytes")) for c in found])


def mirrors(found):
    return table(("NAME", "FROM", "SOURCES", "DESTINATIONS", "FILTER", "PACKETS", "BYTES",
                  "RATE_LIMITED"),
                 [(m["name"], m["source"], _sources(m), _destinations(m),
                   match(m.get("filter") or {}), _count(m, "packets"),
                   _count(m, "bytes"), _count(m, "rate_limited")) for m in found])


def capture(c):
    return _fields([("name", c["name"]), ("from", c["source"]), ("match", match(c)),
                    ("packets", _count(c, "packets")), ("bytes", _count(c, "bytes"))])


def mirror(m):
    limit = m.get("rate_limit") or {}
    out = _fields([("name", m["name"]), ("from", m["source"]), ("sources", _sources(m)),
                   ("filter", match(m.get("filter") or {})), ("snaplen", m.get("snaplen")),
                   ("rate_limit", " ".join("%s %s" % (v, k) for k, v in limit.items())),
                   ("packets", _count(m, "packets")), ("bytes", _count(m, "bytes")),
                   ("rate_limited", _count(m, "rate_limited"))])
    per_dest = _count(m, "destinations") or {}
    rows = [(d["port"], d.get("vlan"), d.get("eth_dst"),
             per_dest.get(str(d["port"]), {}).get("packets"),
             per_dest.get(str(d["port"]), {}).get("bytes")) for d in m["destinations"]]
    return out + "\n" + table(("DESTINATION", "VLAN", "ETH_DST", "PACKETS", "BYTES"), rows)


def match(obj):
    """A capture rule's (or filter's) match as ``key=value`` words."""
    words = []
    for key in ("in_port", "vlan", "ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst", "ip_proto",
                "src_port", "dst_port"):
        value = obj.get(key)
        if key == "ip_proto":
            value = PROTO_NAMES.get(value, value)
        if value is not None:
            words.append("%s=%s" % (key, ",".join(map(str, value)) if isinstance(value, list)
                                    else value))
    return " ".join(words) or "any"


def _sources(m):
    return " ".join("%s(%s)" % (s["port"], s.get("direction", "both")) for s in m["sources"])


def _destinations(m):
    return " ".join(str(d["port"]) for d in m["destinations"])


def _count(obj, key):
    """A counter, or None when the switch is not connected (the API then gives none)."""
    return (obj.get("counters") or {}).get(key)


def _ports_up(switch):
    if "ports" not in switch:
        return None
    return "%d/%d" % (sum(p["up"] for p in switch["ports"]), len(switch["ports"]))


def _fields(pairs):
    width = max(len(k) for k, _ in pairs)
    return "\n".join("%s  %s" % (k.ljust(width), _cell(v)) for k, v in pairs)
