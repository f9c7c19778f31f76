"""Compare the flows sggw wants with the flows a switch has, and say what to change.

A flow is identified by (table, priority, match), as OpenFlow does. Desired flows are put
into the form the switch reports (serialize, then parse back) so that an unchanged flow
compares equal and a reconnect changes nothing. Pure functions.
"""
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows.ofp import delete_flows


def _canonical_match(match):
    buf = bytearray()
    match.serialize(buf, 0)
    parsed = parser.OFPMatch.parser(bytes(buf), 0)
    return tuple(sorted((k, _hashable(v)) for k, v in parsed.items()))


def _wire(instructions):
    buf = bytearray()
    for inst in instructions:
        inst.serialize(buf, len(buf))
    return bytes(buf)


def _canonical_instructions(instructions):
    """The instructions' bytes after a parse: how Ryu re-encodes what the switch reports."""
    raw = _wire(instructions)
    parsed, offset = [], 0
    while offset < len(raw):
        inst = parser.OFPInstruction.parser(raw, offset)
        parsed.append(inst)
        offset += inst.len
    return _wire(parsed)


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def key(table_id, priority, match):
    """The identity of a flow: what OFPFC_ADD replaces and OFPFC_DELETE_STRICT removes."""
    return (table_id, priority, _canonical_match(match))


def flow_state(flow):
    """(key, (cookie, instructions)) of a flow mod or a flow-stats entry."""
    return (key(flow.table_id, flow.priority, flow.match),
            (flow.cookie, _canonical_instructions(flow.instructions)))


def diff(desired, installed):
    """Flow mods that turn ``installed`` (flow stats) into ``desired`` (flow mods).

    Returns (deletes, adds): strict deletes of flows sggw no longer wants, and adds of
    flows that are missing or differ (an add replaces a flow with the same key atomically,
    so forwarding never sees a gap). Unchanged flows produce nothing.
    """
    want, want_msgs = {}, {}
    for f in desired:
        k, state = flow_state(f)
        want[k], want_msgs[k] = state, f
    have = {}
    have_entries = {}
    for entry in installed:
        k, state = flow_state(entry)
        have[k] = state
        have_entries[k] = entry
    adds = [want_msgs[k] for k, state in want.items() if have.get(k) != state]
    deletes = [delete_flows(table_id=k[0], cookie=have_entries[k].cookie,
                            cookie_mask=0xFFFFFFFFFFFFFFFF, match_=have_entries[k].match,
                            strict_priority=k[1])
               for k in have if k not in want]
    return deletes, adds


def meter_diff(desired, installed, owned):
    """Meter mods turning ``installed`` (meter config stats) into ``desired`` (meter mods).

    Meters carry no cookie, so sggw owns the meter ids in ``owned`` (a range): meters there
    that it does not want are deleted, meters outside it are never touched.
    """
    have = {m.meter_id: m for m in installed}
    out = []
    for mod in desired:
        current = have.get(mod.meter_id)
        if current is None:
            out.append(mod)
        elif (current.flags, _bands(current.bands)) != (mod.flags, _bands(mod.bands)):
            out.append(parser.OFPMeterMod(datapath=None, command=ofp.OFPMC_MODIFY,
                                          flags=mod.flags, meter_id=mod.meter_id,
                                          bands=mod.bands))
    wanted = {mod.meter_id for mod in desired}
    out += [parser.OFPMeterMod(datapath=None, command=ofp.OFPMC_DELETE, meter_id=meter_id)
            for meter_id in have if meter_id in owned and meter_id not in wanted]
    return out


def _bands(bands):
    return tuple((b.type, b.rate, b.burst_size) for b in bands)
