"""Compare the state sggw wants with what a switch has, and say what to change.

Flows are identified by (table, priority, match) as OpenFlow does, groups and meters by id.
Everything is compared in the form the switch reports it (serialized, parsed back by Ryu,
serialized again), so an unchanged flow compares equal and a reconnect changes nothing.

Two entry points, both pure: :func:`from_switch` compares a whole plan with the switch's
dumps (on connect), :func:`incremental` compares a new plan with the parts sggw installed
last time, building only the parts whose inputs changed (a REST call).
"""
from dataclasses import dataclass, field
from functools import lru_cache

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
    return _reparsed_raw(_wire(items), parse)


# Parsing back is most of what programming a switch costs the controller, and its outcome
# depends on the bytes alone: switches with the same pipeline (100 endpoints) share it.
CANONICAL_CACHE = 4096


@lru_cache(maxsize=CANONICAL_CACHE)
def _reparsed_raw(raw, parse):
    out, offset = [], 0
    while offset < len(raw):
        item = parse(raw, offset)
        out.append(item)
        offset += item.len
    return _wire(out)


def _canonical_match(match):
    buf = bytearray()
    match.serialize(buf, 0)
    return _canonical_match_wire(bytes(buf))


@lru_cache(maxsize=CANONICAL_CACHE)
def _canonical_match_wire(raw):
    parsed = parser.OFPMatch.parser(raw, 0)
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
    buckets = _wire(group.buckets) if reported else _reported_buckets(group.buckets)
    return group.group_id, (group.type, buckets)


_BUCKETS = {}  # a bucket's bytes as sggw sends them -> as the switch reports them
_BUCKETS_MAX = 1 << 16


def _reported_buckets(buckets):
    """The buckets as the switch reports them, each bucket reparsed once (a remembered
    pure function): a hook chunk's group has up to HOOK_CHUNK buckets and a change to one
    of its sessions rebuilds it whole."""
    out = []
    for bucket in buckets:
        raw = _wire((bucket,))
        canonical = _BUCKETS.get(raw)
        if canonical is None:
            if len(_BUCKETS) >= _BUCKETS_MAX:
                _BUCKETS.clear()
            canonical = _BUCKETS[raw] = _reparsed_raw(raw, parser.OFPBucket.parser)
        out.append(canonical)
    return b"".join(out)


def meter_state(meter):
    """(meter id, (flags, bands)) of a meter mod or a meter-config entry."""
    bands = tuple((b.type, b.rate, b.burst_size) for b in meter.bands)
    return meter.meter_id, (meter.flags, bands)


# --- parts ----------------------------------------------------------------------------------

@dataclass
class State:
    """Flows, groups and meters, each ``{id: canonical state}``. Plain bytes, ints and tuples:
    an installed state of a thousand sessions adds next to nothing to what Python's garbage
    collector walks (Ryu message objects would add ~90 000 objects and 50 ms pauses)."""

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


@dataclass
class Built:
    """A freshly built part: what it installs, and the messages that install it."""

    part: PartState
    messages: dict  # ("flow" | "group" | "meter", id) -> message


def build(planned):
    """Build a planned part and put it in canonical form."""
    part = planned.build()
    state, messages = State(), {}
    for kind, items, canonical, into in (("flow", part.flows, flow_state, state.flows),
                                         ("group", part.groups, group_state, state.groups),
                                         ("meter", part.meters, meter_state, state.meters)):
        for item in items:
            k, s = canonical(item)
            into[k] = s
            messages[kind, k] = item
    return Built(PartState(planned.token, state), messages)


def reported(flows, groups, meters, owned_group, meter_ids):
    """The switch's own flows (already filtered by cookie), and its groups and meters in the
    ids sggw owns (``owned_group(id)``, ``meter_ids``), as a State."""
    return State(
        flows=dict(flow_state(entry, reported=True) for entry in flows),
        groups=dict(group_state(entry, reported=True) for entry in groups
                    if owned_group(entry.group_id)),
        meters=dict(meter_state(entry) for entry in meters if entry.meter_id in meter_ids))


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
    net_flows: int = 0  # how many more flows sggw has on the switch after them

    def __bool__(self):
        return bool(self.meters_first or self.bundle or self.meters_last)


def changes(want, messages, have):
    """Messages that turn State ``have`` into State ``want`` (installed by ``messages``)."""
    out = Changes()
    for meter_id, state in want.meters.items():
        old = have.meters.get(meter_id)
        if old is None:
            out.meters_first.append(messages["meter", meter_id])
            out.undo_meters.append(_meter_mod(ofp.OFPMC_DELETE, meter_id))
        elif old != state:
            out.meters_first.append(_meter_mod(ofp.OFPMC_MODIFY, meter_id, state))
            out.undo_meters.append(_meter_mod(ofp.OFPMC_MODIFY, meter_id, old))
    out.meters_last = [_meter_mod(ofp.OFPMC_DELETE, meter_id)
                       for meter_id in have.meters if meter_id not in want.meters]
    for group_id, state in want.groups.items():
        old = have.groups.get(group_id)
        if old is None:
            out.bundle.append(messages["group", group_id])
        elif old != state:
            out.bundle.append(_group_mod(ofp.OFPGC_MODIFY, group_id, messages["group", group_id]))
    removed = [delete_flows(table_id=k[0], cookie=cookie, cookie_mask=(1 << 64) - 1,
                            match_=match_of(k), strict_priority=k[1])
               for k, (cookie, _) in have.flows.items() if k not in want.flows]
    added = [messages["flow", k] for k, state in want.flows.items() if have.flows.get(k) != state]
    out.bundle += removed + added
    out.bundle += [_group_mod(ofp.OFPGC_DELETE, group_id)
                   for group_id in have.groups if group_id not in want.groups]
    out.added, out.removed = len(added), len(removed)
    out.net_flows = len(want.flows) - len(have.flows)
    return out


def match_of(flow_key):
    """The OFPMatch of a flow identity made by :func:`key`."""
    return parser.OFPMatch(**dict(flow_key[2]))


def from_switch(plan, switch_state):
    """(Changes, installed parts) making the switch match ``plan`` from scratch."""
    want, messages, installed = State(), {}, {}
    for part_key, planned in plan.items():
        built = build(planned)
        installed[part_key] = built.part
        want.merge(built.part.state)
        messages.update(built.messages)
    return changes(want, messages, switch_state), installed


def incremental(plan, installed, changed=None):
    """(Changes, new installed parts) from the parts installed before to ``plan``; only
    parts whose token changed are built. ``changed``: the only part keys that may differ
    (as :func:`flows.desired.update` says), or None to look at every one."""
    if changed is None:
        changed = list(plan) + [k for k in installed if k not in plan]
    new_installed, want, messages, have = dict(installed), State(), {}, State()
    for part_key in changed:
        planned, old = plan.get(part_key), installed.get(part_key)
        if planned is None:
            if old is not None:
                have.merge(old.state)
                del new_installed[part_key]
            continue
        if old is not None and old.token == planned.token:
            continue
        built = build(planned)
        new_installed[part_key] = built.part
        want.merge(built.part.state)
        messages.update(built.messages)
        if old is not None:
            have.merge(old.state)
    return changes(want, messages, have), new_installed


def _meter_mod(command, meter_id, state=None):
    """A meter mod from a canonical meter state (sggw's meters have drop bands only)."""
    flags, bands = state or (0, ())
    return parser.OFPMeterMod(datapath=None, command=command, meter_id=meter_id, flags=flags,
                              bands=[parser.OFPMeterBandDrop(rate=rate, burst_size=burst)
                                     for _, rate, burst in bands])


def _group_mod(command, group_id, template=None):
    return parser.OFPGroupMod(datapath=None, command=command,
                              type_=template.type if template else ofp.OFPGT_ALL,
                              group_id=group_id,
                              buckets=list(template.buckets) if template else [])
