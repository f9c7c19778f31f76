"""Compare the state sggw wants with what a switch has, and say what to change.

Flows are identified by (table, priority, match) as OpenFlow does, groups and meters by id.
Everything is compared in the form the switch reports it (serialized, parsed back by Ryu,
serialized again), so an unchanged flow compares equal and a reconnect changes nothing.

Two entry points, both pure: :func:`from_switch` compares a whole plan with the switch's
dumps (on connect), :func:`incremental` compares a new plan with the parts sggw installed
last time, building only the parts whose inputs changed (a REST call).
"""
from dataclasses import dataclass, field

from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows.ofp import delete_flows


# --- canonical forms ------------------------------------------------------------------------

def _wire(items):
    buf = bytearray()
    for item in items:
        item.serialize(buf, len(buf))
    return bytes(buf)


def _reparsed(items, parse):
    """``items`` serialized, parsed back and serialized again: how the switch reports them."""
    raw = _wire(items)
    out, offset = [], 0
    while offset < len(raw):
        item = parse(raw, offset)
        out.append(item)
        offset += item.len
    return _wire(out)


def _canonical_match(match):
    buf = bytearray()
    match.serialize(buf, 0)
    parsed = parser.OFPMatch.parser(bytes(buf), 0)
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in parsed.items()))


def key(table_id, priority, match):
    """The identity of a flow: what OFPFC_ADD replaces and OFPFC_DELETE_STRICT removes."""
    return (table_id, priority, _canonical_match(match))


def flow_state(flow, reported=False):
    """(key, (cookie, instructions)) of a flow mod, or of a flow-stats entry (``reported``)."""
    instructions = (_wire(flow.instructions) if reported
                    else _reparsed(flow.instructions, parser.OFPInstruction.parser))
    return key(flow.table_id, flow.priority, flow.match), (flow.cookie, instructions)


def group_state(group, reported=False):
    """(group id, (type, buckets)) of a group mod, or of a group-desc entry (``reported``)."""
    buckets = (_wire(group.buckets) if reported
               else _reparsed(group.buckets, parser.OFPBucket.parser))
    return group.group_id, (group.type, buckets)


def meter_state(meter):
    """(meter id, (flags, bands)) of a meter mod or a meter-config entry."""
    bands = tuple((b.type, b.rate, b.burst_size) for b in meter.bands)
    return meter.meter_id, (meter.flags, bands)


# --- parts ----------------------------------------------------------------------------------

@dataclass
class State:
    """Flows, groups and meters, each ``{id: (canonical state, message or stats entry)}``."""

    flows: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    meters: dict = field(default_factory=dict)

    def merge(self, other):
        self.flows.update(other.flows)
        self.groups.update(other.groups)
        self.meters.update(other.meters)
        return self


@dataclass
class PartState:
    token: object
    state: State


def build(planned):
    """Build a planned part and put it in canonical form."""
    part = planned.build()
    state = State()
    for flow in part.flows:
        k, s = flow_state(flow)
        state.flows[k] = (s, flow)
    for group in part.groups:
        k, s = group_state(group)
        state.groups[k] = (s, group)
    for meter in part.meters:
        k, s = meter_state(meter)
        state.meters[k] = (s, meter)
    return PartState(planned.token, state)


def reported(flows, groups, meters, owned_group, meter_ids):
    """The switch's own flows (already filtered by cookie), and its groups and meters in the
    ids sggw owns (``owned_group(id)``, ``meter_ids``), as a State."""
    state = State()
    for entry in flows:
        k, s = flow_state(entry, reported=True)
        state.flows[k] = (s, entry)
    for entry in groups:
        if owned_group(entry.group_id):
            k, s = group_state(entry, reported=True)
            state.groups[k] = (s, entry)
    for entry in meters:
        if entry.meter_id in meter_ids:
            k, s = meter_state(entry)
            state.meters[k] = (s, entry)
    return state


# --- changes --------------------------------------------------------------------------------

@dataclass
class Changes:
    """What to send, in order: ``meters_first`` (adds, modifies), ``bundle`` (atomically: new
    and changed groups, removed flows, new and changed flows, removed groups), then
    ``meters_last`` (deletes). ``undo_meters`` reverts ``meters_first`` if the bundle fails."""

    meters_first: list = field(default_factory=list)
    bundle: list = field(default_factory=list)
    meters_last: list = field(default_factory=list)
    undo_meters: list = field(default_factory=list)
    added: int = 0
    removed: int = 0

    def __bool__(self):
        return bool(self.meters_first or self.bundle or self.meters_last)


def changes(want, have):
    """Messages that turn State ``have`` into State ``want``."""
    out = Changes()
    for meter_id, (state, mod) in want.meters.items():
        old = have.meters.get(meter_id)
        if old is None:
            out.meters_first.append(mod)
            out.undo_meters.append(_meter_mod(ofp.OFPMC_DELETE, meter_id))
        elif old[0] != state:
            out.meters_first.append(_meter_mod(ofp.OFPMC_MODIFY, meter_id, mod))
            out.undo_meters.append(_meter_mod(ofp.OFPMC_MODIFY, meter_id, old[1]))
    out.meters_last = [_meter_mod(ofp.OFPMC_DELETE, meter_id)
                       for meter_id in have.meters if meter_id not in want.meters]
    for group_id, (state, mod) in want.groups.items():
        old = have.groups.get(group_id)
        if old is None:
            out.bundle.append(mod)
        elif old[0] != state:
            out.bundle.append(_group_mod(ofp.OFPGC_MODIFY, group_id, mod))
    removed = [delete_flows(table_id=k[0], cookie=entry.cookie, cookie_mask=(1 << 64) - 1,
                            match_=entry.match, strict_priority=k[1])
               for k, (_, entry) in have.flows.items() if k not in want.flows]
    added = [mod for k, (state, mod) in want.flows.items()
             if have.flows.get(k, (None,))[0] != state]
    out.bundle += removed + added
    out.bundle += [_group_mod(ofp.OFPGC_DELETE, group_id)
                   for group_id in have.groups if group_id not in want.groups]
    out.added, out.removed = len(added), len(removed)
    return out


def from_switch(plan, switch_state):
    """(Changes, installed parts) making the switch match ``plan`` from scratch."""
    installed = {part_key: build(planned) for part_key, planned in plan.items()}
    want = State()
    for part in installed.values():
        want.merge(part.state)
    return changes(want, switch_state), installed


def incremental(plan, installed):
    """(Changes, new installed parts) from the parts installed before to ``plan``; only
    parts whose token changed are built."""
    new_installed, want, have = {}, State(), State()
    for part_key, planned in plan.items():
        old = installed.get(part_key)
        if old is not None and old.token == planned.token:
            new_installed[part_key] = old
            continue
        new_installed[part_key] = build(planned)
        want.merge(new_installed[part_key].state)
        if old is not None:
            have.merge(old.state)
    for part_key, old in installed.items():
        if part_key not in plan:
            have.merge(old.state)
    return changes(want, have), new_installed


def _meter_mod(command, meter_id, template=None):
    return parser.OFPMeterMod(datapath=None, command=command, meter_id=meter_id,
                              flags=template.flags if template else 0,
                              bands=list(template.bands) if template else [])


def _group_mod(command, group_id, template=None):
    return parser.OFPGroupMod(datapath=None, command=command,
                              type_=template.type if template else ofp.OFPGT_ALL,
                              group_id=group_id,
                              buckets=list(template.buckets) if template else [])
