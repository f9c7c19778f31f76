"""A simulated OpenFlow 1.3 switch, with the OVS extensions sggw uses, for unit tests.

Why: what the pipeline does lives in how its flows interact (resubmit, registers, learn(),
groups, clones, meters), which a list of flow mods cannot show. ``FakeSwitch`` runs Ryu flow,
group and meter mods (as built by ``flows/``) on packets given as plain dicts, in the spirit
of FAUCET's clib/fakeoftable.py, but with ``NXActionLearn``, ``NXActionResubmitTable``,
``NXActionRegMove``, ``NXActionClone`` and ``NXActionOutputTrunc``.

Packets are dicts of OXM field names: MAC and IP addresses as strings, everything else as
ints, plus ``in_port``. VLAN convention: ``vlan_vid`` holds the OXM value, 0 (OFPVID_NONE)
for an untagged frame and 0x1000 | VID (OFPVID_PRESENT) for a tagged one; ``eth_type`` is the
inner type. The NXM field ``vlan_tci`` that learn() reads and matches is derived from it as
``vlan_vid | vlan_pcp << 13``: its bits 0..11 are the VID and bit 12 is "tag present" (OVS's
CFI bit), so static ``vlan_vid`` matches and learned ``vlan_tci[0..12]`` matches agree.
``push_vlan`` on a tagged frame keeps the old tag as ``inner_vlan_vid``/``inner_vlan_pcp``.
Registers reg0..reg15 and metadata start at 0 and are not part of a packet as sent.

What OVS does, and so the simulator:

* a switch refuses a flow whose meter or group does not exist, and deleting a meter or group
  deletes the flows that use it;
* ``ports``, if given, are the ports the switch has: an output to any other port (such as
  ``flows.ofp.NEVER_A_PORT``) sends nothing;
* an output records its port and packet as an :class:`Output`, whose ``max_len`` is the
  truncation length of ``NXActionOutputTrunc`` (None: the whole packet);
* ``clone(actions)`` runs ``actions`` on a copy: packet and registers afterwards are as
  before it. So does each bucket of a group (type ALL: every bucket; other types: the first);
* group buckets are OpenFlow *action sets*, not action lists (OVS's
  ofpacts_execute_action_set): pop/push_vlan first, then set_field/load/move in order, then
  the one final action (group over output over resubmit); anything else, e.g. ``clone`` or
  ``learn``, is ignored, and without a final action the bucket does nothing;
* meters record the packets they pass (``Result.meters``); a meter in ``meters_drop`` drops
  every packet. As in OVS, where a meter is a datapath action, the drop ends the outputs of
  the rest of the packet's datapath actions, while the OpenFlow translation (table lookups,
  learn()) goes on. A clone whose own actions include an irreversible one (the simulator
  knows ``NXActionOutputTrunc``) is a real datapath clone, whose drop ends only the clone;
  any other clone, and a group bucket, is translated inline (OVS 3.1 ``reversible_actions``).

Not simulated: time (timeouts are recorded, never expire), counters, meter rates, flow limits
and eviction, write-actions, OFPFC_MODIFY, the FLOOD/ALL/NORMAL ports, packet bytes and
checksums, OVS's "clone as the last action runs inline" shortcut. ``problems()`` checks field
prerequisites the way OVS's consistency check does, since the switch itself runs whatever it
is given.
"""
import ipaddress
from collections import namedtuple
from dataclasses import dataclass, field
from types import SimpleNamespace

from ryu.ofproto import nicira_ext
from ryu.ofproto import ofproto_v1_3 as ofp
from ryu.ofproto import ofproto_v1_3_parser as parser

from flows.ofp import NXActionClone

MAX_DEPTH = 64  # OVS gives up on a packet after 64 nested resubmits/gotos
BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
_MACS = {"eth_src", "eth_dst", "arp_sha", "arp_tha", "ipv6_nd_sll", "ipv6_nd_tll"}
_IPV4 = {"ipv4_src", "ipv4_dst", "arp_spa", "arp_tpa"}
_IPV6 = {"ipv6_src", "ipv6_dst", "ipv6_nd_target"}
_WIDTH = {**dict.fromkeys(_MACS, 48), **dict.fromkeys(_IPV4, 32), **dict.fromkeys(_IPV6, 128),
          **{"reg%d" % i: 32 for i in range(16)}, "in_port": 32, "metadata": 64,
          "eth_type": 16, "vlan_tci": 16, "vlan_vid": 13, "ip_proto": 8, "arp_op": 16,
          "tcp_src": 16, "tcp_dst": 16, "udp_src": 16, "udp_dst": 16, "icmpv4_type": 8,
          "icmpv4_code": 8, "icmpv6_type": 8, "icmpv6_code": 8}
PIPELINE_FIELDS = {"metadata", *("reg%d" % i for i in range(16))}  # start at 0, never sent
_ZERO_DEFAULTS = PIPELINE_FIELDS | {"vlan_vid", "vlan_pcp"}

_NXM_ONLY = {"nd_target": "ipv6_nd_target", "nd_sll": "ipv6_nd_sll", "nd_tll": "ipv6_nd_tll",
             "ipv6_label": "ipv6_flabel"}

PacketIn = namedtuple("PacketIn", "table_id in_port packet max_len")


class SwitchError(Exception):
    """The pipeline did something a real switch refuses, or loops."""


# --- field values ---------------------------------------------------------------------------

def oxm(name):
    """The OXM name of a field Ryu may also name in its NXM form ("eth_src_nxm", "nd_target"):
    OVS treats both as one field, and so does the simulator."""
    if name.endswith("_nxm"):
        return name[:-4]
    return _NXM_ONLY.get(name, name)


def to_int(name, value):
    """A field value as an int (addresses given as text are parsed)."""
    name = oxm(name)
    if isinstance(value, str) and name in _MACS:
        return int(value.replace(":", ""), 16)
    if isinstance(value, str) and name in _IPV4 | _IPV6:
        return int(ipaddress.ip_address(value))
    return value


def to_text(name, value):
    """A field value in its readable form (addresses as canonical text)."""
    name = oxm(name)
    if not isinstance(value, int):
        return value
    if name in _MACS:
        digits = "%012x" % value
        return ":".join(digits[i:i + 2] for i in range(0, 12, 2))
    if name in _IPV4:
        return str(ipaddress.IPv4Address(value))
    if name in _IPV6:
        return str(ipaddress.IPv6Address(value))
    return value


def normalize(packet):
    """``packet`` with canonical address text, so it compares equal to packets sent."""
    return {name: to_text(name, to_int(name, value)) for name, value in packet.items()}


def _ones(n_bits):
    return (1 << n_bits) - 1


def _read(state, name):
    name = oxm(name)
    if name == "vlan_tci":
        return state.get("vlan_vid", 0) | state.get("vlan_pcp", 0) << 13
    return state.get(name, 0 if name in _ZERO_DEFAULTS else None)


def _write(state, name, value):
    name = oxm(name)
    if name == "vlan_tci":
        state["vlan_vid"], state["vlan_pcp"] = value & 0x1FFF, value >> 13 & 0x7
    else:
        state[name] = value


def _read_bits(state, name, ofs, n_bits):
    value = _read(state, name)
    if value is None:  # OVS would have refused the flow: the field's prerequisite is missing
        raise SwitchError("reads %s, which the packet does not have" % name)
    return value >> ofs & _ones(n_bits)


def _write_bits(state, name, ofs, n_bits, value):
    mask = _ones(n_bits) << ofs
    _write(state, name, (_read(state, name) or 0) & ~mask | (value << ofs) & mask)


# --- matches ----------------------------------------------------------------------------------

def _field_match(name, value, mask):
    """(value, mask) with mask None for an exact match, the form every match is kept in."""
    if mask is not None and name in _WIDTH and mask == _ones(_WIDTH[name]):
        mask = None
    return (value if mask is None else value & mask, mask)


def _match(ofmatch):
    out = {}
    for name, value in ofmatch.items():
        value, mask = value if isinstance(value, tuple) else (value, None)
        out[oxm(name)] = _field_match(oxm(name), to_int(name, value), to_int(name, mask))
    return out


def _matches(match, state):
    for name, (value, mask) in match.items():
        have = _read(state, name)
        if have is None or (have if mask is None else have & mask) != value:
            return False
    return True


def _narrower(match, query):
    """A non-strict delete's test: ``match`` is at least as specific as ``query``."""
    for name, (value, mask) in query.items():
        if name not in match:
            return False
        have, have_mask = match[name]
        if mask is None and (have_mask is not None or have != value):
            return False
        if mask is not None and ((have_mask is not None and have_mask & mask != mask)
                                 or have & mask != value):
            return False
    return True


@dataclass(eq=False)
class Flow:
    """One flow entry; ``match`` maps a field to (int value, int mask or None for exact)."""

    table_id: int
    priority: int
    match: dict
    instructions: list
    cookie: int = 0
    idle_timeout: int = 0
    hard_timeout: int = 0
    fin_idle_timeout: int = 0
    fin_hard_timeout: int = 0
    learned: bool = False
    ofmatch: object = None  # the OFPMatch a static flow was added with

    @property
    def key(self):
        """What identifies a flow: OFPFC_ADD (and learn()) replace a flow with the same key."""
        return (self.table_id, self.priority, frozenset(self.match.items()))

    @property
    def fields(self):
        """The match as readable text: exact fields as values, masked ones as (value, mask)."""
        return {name: to_text(name, value) if mask is None
                else (to_text(name, value), to_text(name, mask))
                for name, (value, mask) in self.match.items()}

    @property
    def actions(self):
        return [a for inst in self.instructions for a in getattr(inst, "actions", ())]

    @property
    def meter(self):
        """The meter id of the flow's meter instruction, or None."""
        return next((i.meter_id for i in self.instructions
                     if isinstance(i, parser.OFPInstructionMeter)), None)


class Output(tuple):
    """``(port, packet as sent)``; ``max_len`` is the length a truncating output keeps
    (``NXActionOutputTrunc``), None for the whole packet."""

    def __new__(cls, port, packet, max_len=None):
        out = super().__new__(cls, (port, packet))
        out.max_len = max_len
        return out


@dataclass
class Result:
    """What one packet did: outputs, packet-ins, flows learned, meters and flows passed."""

    outputs: list = field(default_factory=list)  # Output (port, packet as sent)
    packet_ins: list = field(default_factory=list)  # PacketIn
    learned: list = field(default_factory=list)  # Flow
    meters: list = field(default_factory=list)  # meter ids of meter instructions passed
    dropped: list = field(default_factory=list)  # meter ids that dropped (meters_drop)
    trace: list = field(default_factory=list)  # the Flow hit in each table visited, in order

    @property
    def ports(self):
        return sorted(port for port, _ in self.outputs)

    def hits(self, table_id):
        """The flows this packet hit in table ``table_id``."""
        return [f for f in self.trace if f.table_id == table_id]

    def output(self, port):
        """The one Output of ``port``."""
        outs = [out for out in self.outputs if out[0] == port]
        assert len(outs) == 1, "%d packets out of port %s: %s" % (len(outs), port, self)
        return outs[0]

    def sent(self, port):
        """The one packet sent out of ``port``."""
        return self.output(port)[1]

    def to(self, port):
        """Every packet sent out of ``port``, in order."""
        return [pkt for out, pkt in self.outputs if out == port]


class _Path:
    """One datapath execution context: the packet, or a real datapath clone of it."""

    def __init__(self, result, dropped=False):
        self.result, self.dropped = result, dropped


# --- the switch -------------------------------------------------------------------------------

_ORDER = {parser.OFPInstructionMeter: 0, parser.OFPInstructionActions: 1,
          parser.OFPInstructionGotoTable: 5}  # OF1.3 runs instructions in this order
_IRREVERSIBLE = (parser.NXActionOutputTrunc,)  # a clone holding one is a datapath clone
# group buckets as action sets: slots (the last of each, in this order), then set/move
# actions in order, then the final action of the highest rank
_SET_SLOTS = (parser.OFPActionPopVlan, parser.OFPActionPushVlan)
_SET_OR_MOVE = (parser.OFPActionSetField, parser.NXActionRegLoad, parser.NXActionRegMove)
_SET_FINAL = (parser.NXActionResubmitTable, parser.OFPActionOutput, parser.OFPActionGroup)
_NOT_IN_SETS = (NXActionClone, parser.NXActionLearn, parser.NXActionOutputTrunc,
                parser.NXActionFinTimeout)


def _action_set(actions):
    """The action list OVS runs for action set ``actions`` (a group bucket)."""
    slots, sets, final = {}, [], None
    for a in actions:
        if isinstance(a, _SET_SLOTS):
            slots[type(a)] = a
        elif isinstance(a, _SET_OR_MOVE):
            sets.append(a)
        elif isinstance(a, _SET_FINAL):
            if final is None or _rank(a) >= _rank(final):
                final = a
        elif not isinstance(a, _NOT_IN_SETS):
            raise NotImplementedError("action %s in an action set" % type(a).__name__)
    if final is None:
        return []
    return [slots[t] for t in _SET_SLOTS if t in slots] + sets + [final]


def _rank(action):
    return next(i for i, t in enumerate(_SET_FINAL) if isinstance(action, t))


def _nested(actions):
    """``actions`` and the actions inside their clones."""
    for a in actions:
        yield a
        if isinstance(a, NXActionClone):
            yield from _nested(a.actions)


class FakeSwitch:
    """Flow tables, groups and meters, and a packet processor over them."""

    def __init__(self, flow_mods=(), group_mods=(), meter_mods=(), ports=None,
                 meters_drop=()):
        self.tables = {}  # table_id -> [Flow]
        self.groups = {}  # group_id -> OFPGroupMod
        self.meters = {}  # meter_id -> OFPMeterMod
        self.ports = None if ports is None else frozenset(ports)  # None: any port exists
        self.meters_drop = frozenset(meters_drop)
        for msg in list(meter_mods) + list(group_mods) + list(flow_mods):
            self.apply(msg)

    # flow, group and meter mods

    def apply(self, msg):
        """Apply a flow mod (ADD, DELETE, DELETE_STRICT), group mod or meter mod (ADD,
        MODIFY, DELETE). Returns the flows added or deleted."""
        if isinstance(msg, parser.OFPGroupMod):
            return self._group_mod(msg)
        if isinstance(msg, parser.OFPMeterMod):
            return self._meter_mod(msg)
        if msg.command == ofp.OFPFC_ADD:
            return self.add(msg)
        if msg.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            return self.delete(msg)
        raise NotImplementedError("flow mod command %d" % msg.command)

    def _group_mod(self, msg):
        gid = msg.group_id
        if msg.command == ofp.OFPGC_DELETE:
            gone = set(self.groups) if gid == ofp.OFPG_ALL else {gid} & set(self.groups)
            for g in gone:
                del self.groups[g]
            return self._remove(lambda f: any(isinstance(a, parser.OFPActionGroup)
                                              and a.group_id in gone
                                              for a in _nested(f.actions)))
        if msg.command == ofp.OFPGC_ADD and gid in self.groups:
            raise SwitchError("group %#x exists (OFPGMFC_GROUP_EXISTS)" % gid)
        if msg.command == ofp.OFPGC_MODIFY and gid not in self.groups:
            raise SwitchError("no group %#x (OFPGMFC_UNKNOWN_GROUP)" % gid)
        self.groups[gid] = msg
        return []

    def _meter_mod(self, msg):
        mid = msg.meter_id
        if msg.command == ofp.OFPMC_DELETE:
            gone = set(self.meters) if mid == ofp.OFPM_ALL else {mid} & set(self.meters)
            for m in gone:
                del self.meters[m]
            return self._remove(lambda f: f.meter in gone)
        if msg.command == ofp.OFPMC_ADD and mid in self.meters:
            raise SwitchError("meter %#x exists (OFPMMFC_METER_EXISTS)" % mid)
        if msg.command == ofp.OFPMC_MODIFY and mid not in self.meters:
            raise SwitchError("no meter %#x (OFPMMFC_UNKNOWN_METER)" % mid)
        self.meters[mid] = msg
        return []

    def _remove(self, doomed):
        removed = []
        for table in self.tables.values():
            removed += [f for f in table if doomed(f)]
            table[:] = [f for f in table if not doomed(f)]
        return removed

    def add(self, mod):
        """OFPFC_ADD: a flow with the same table, priority and match is replaced."""
        for inst in mod.instructions:
            if isinstance(inst, parser.OFPInstructionGotoTable) and inst.table_id <= mod.table_id:
                raise SwitchError("goto_table %d from table %d (OFPBIC_BAD_TABLE_ID)"
                                  % (inst.table_id, mod.table_id))
            if isinstance(inst, parser.OFPInstructionMeter) and inst.meter_id not in self.meters:
                raise SwitchError("no meter %#x (OFPMMFC_INVALID_METER)" % inst.meter_id)
        for a in _nested(a for inst in mod.instructions for a in getattr(inst, "actions", ())):
            if isinstance(a, parser.OFPActionGroup) and a.group_id not in self.groups:
                raise SwitchError("no group %#x (OFPBAC_BAD_OUT_GROUP)" % a.group_id)
        return self._install(Flow(mod.table_id, mod.priority, _match(mod.match),
                                  list(mod.instructions), mod.cookie, mod.idle_timeout,
                                  mod.hard_timeout, ofmatch=mod.match))

    def _install(self, flow):
        table = self.tables.setdefault(flow.table_id, [])
        table[:] = [f for f in table if f.key != flow.key] + [flow]
        return flow

    def delete(self, mod):
        """OFPFC_DELETE(_STRICT) by table, cookie/cookie_mask and match; returns what went."""
        if mod.out_port != ofp.OFPP_ANY or mod.out_group != ofp.OFPG_ANY:
            # Ryu's default out_port=0 would filter on port 0: a bug worth failing on
            raise NotImplementedError("delete filtered by out_port/out_group")
        strict = mod.command == ofp.OFPFC_DELETE_STRICT
        query = _match(mod.match)
        return self._remove(lambda f: (
            mod.table_id in (ofp.OFPTT_ALL, f.table_id)
            and f.cookie & mod.cookie_mask == mod.cookie & mod.cookie_mask
            and ((f.priority, f.match) == (mod.priority, query) if strict
                 else _narrower(f.match, query))))

    def flows(self, table_id=None, learned=None):
        """Flows (of one table, only learned or only static ones, if asked)."""
        return [f for tid in sorted(self.tables) for f in self.tables[tid]
                if table_id in (None, tid) and learned in (None, f.learned)]

    def flow_stats(self, cookie=0, cookie_mask=0):
        """Flow-stats entries as a switch reports them (match and instructions round-tripped
        through the wire format), for code like flows.reconcile that reads them."""
        out = []
        for f in self.flows():
            if f.cookie & cookie_mask != cookie & cookie_mask:
                continue
            match = f.ofmatch or parser.OFPMatch(**f.fields)
            out.append(SimpleNamespace(
                table_id=f.table_id, priority=f.priority, cookie=f.cookie,
                idle_timeout=f.idle_timeout, hard_timeout=f.hard_timeout,
                match=_round_trip(match, parser.OFPMatch),
                instructions=[_round_trip(i, parser.OFPInstruction) for i in f.instructions]))
        return out

    def group_desc(self):
        """Group-desc entries as a switch reports them (buckets round-tripped)."""
        return [parser.OFPGroupDescStats(g.type, gid, [_round_trip(b, parser.OFPBucket)
                                                       for b in g.buckets])
                for gid, g in sorted(self.groups.items())]

    def meter_config(self):
        """Meter-config entries as a switch reports them (bands round-tripped)."""
        return [parser.OFPMeterConfigStats(m.flags, mid, [
            _round_trip(b, parser.OFPMeterBandHeader) for b in m.bands])
            for mid, m in sorted(self.meters.items())]

    # packets

    def lookup(self, table_id, state):
        """The highest-priority flow of ``table_id`` matching ``state``, or None (a miss)."""
        hits = [f for f in self.tables.get(table_id, ()) if _matches(f.match, state)]
        if not hits:
            return None
        best = max(f.priority for f in hits)
        top = [f for f in hits if f.priority == best]
        if len(top) > 1 and len({str(f.instructions) for f in top}) > 1:  # undefined in OF
            raise SwitchError("table %d: %d different flows of priority %d match %s"
                              % (table_id, len(top), top[0].priority, state))
        return top[0]

    def process(self, packet):
        """Run ``packet`` (a dict with ``in_port``) through the pipeline from table 0."""
        if "in_port" not in packet:
            raise ValueError("a packet needs an in_port")
        state = {name: to_int(name, value) for name, value in packet.items()}
        result = Result()
        self._table(0, state, _Path(result), 0)
        return result

    def _table(self, table_id, state, path, depth):
        if depth > MAX_DEPTH:
            raise SwitchError("more than %d nested resubmits/gotos: a loop" % MAX_DEPTH)
        flow = self.lookup(table_id, state)
        if flow is None:
            return  # table miss: OpenFlow 1.3 drops
        path.result.trace.append(flow)
        for inst in sorted(flow.instructions, key=lambda i: _ORDER.get(type(i), 9)):
            if isinstance(inst, parser.OFPInstructionMeter):
                path.result.meters.append(inst.meter_id)
                if inst.meter_id in self.meters_drop and not path.dropped:
                    path.dropped = True
                    path.result.dropped.append(inst.meter_id)
            elif (isinstance(inst, parser.OFPInstructionActions)
                  and inst.type == ofp.OFPIT_APPLY_ACTIONS):
                self._actions(inst.actions, state, path, table_id, depth)
            elif isinstance(inst, parser.OFPInstructionGotoTable):
                self._table(inst.table_id, state, path, depth + 1)
            else:
                raise NotImplementedError("instruction %s" % type(inst).__name__)

    def _actions(self, actions, state, path, table_id, depth):
        for a in actions:
            if isinstance(a, parser.OFPActionOutput):
                self._output(a.port, state, path, table_id, a.max_len)
            elif isinstance(a, parser.NXActionOutputTrunc):
                self._output(a.port, state, path, table_id, a.max_len, truncate=True)
            elif isinstance(a, parser.OFPActionSetField):
                _write(state, a.key, to_int(a.key, a.value))
            elif isinstance(a, parser.OFPActionPushVlan):  # like OVS: a new tag, VID 0
                if state.get("vlan_vid", 0):
                    state["inner_vlan_vid"] = state["vlan_vid"]
                    if state.get("vlan_pcp"):
                        state["inner_vlan_pcp"] = state["vlan_pcp"]
                state["vlan_vid"] = ofp.OFPVID_PRESENT
                state.pop("vlan_pcp", None)  # 0, as a frame without the field has
            elif isinstance(a, parser.NXActionRegLoad):
                _write_bits(state, a.dst, a.ofs_nbits >> 6, (a.ofs_nbits & 0x3F) + 1, a.value)
            elif isinstance(a, parser.NXActionRegMove):
                _write_bits(state, a.dst_field, a.dst_ofs, a.n_bits,
                            _read_bits(state, a.src_field, a.src_ofs, a.n_bits))
            elif isinstance(a, parser.NXActionResubmitTable):
                # a subroutine: run the table (a miss does nothing), then carry on here
                saved = state["in_port"]
                if a.in_port != 0xFFF8:  # OFPP_IN_PORT (16 bit): keep the in_port
                    state["in_port"] = a.in_port
                self._table(table_id if a.table_id == 0xFF else a.table_id, state, path,
                            depth + 1)
                state["in_port"] = saved
            elif isinstance(a, parser.NXActionLearn):
                path.result.learned.append(self._install(self._learn(a, state)))
            elif isinstance(a, parser.OFPActionGroup):
                self._group(a.group_id, state, path, table_id, depth)
            elif isinstance(a, NXActionClone):
                isolated = any(isinstance(c, _IRREVERSIBLE) for c in a.actions)
                inner = _Path(path.result, path.dropped) if isolated else path
                self._actions(a.actions, dict(state), inner, table_id, depth + 1)
            elif not isinstance(a, parser.NXActionFinTimeout):  # that one needs time
                raise NotImplementedError("action %s" % type(a).__name__)

    def _output(self, port, state, path, table_id, max_len, truncate=False):
        if path.dropped:
            return  # a meter dropped this packet (or clone) before it got here
        in_port = state["in_port"]
        sent = {n: to_text(n, v) for n, v in state.items()
                if n not in PIPELINE_FIELDS and n != "in_port"}
        if port == ofp.OFPP_CONTROLLER and not truncate:
            path.result.packet_ins.append(PacketIn(table_id, in_port, sent, max_len))
            return
        if port == ofp.OFPP_IN_PORT:
            port = in_port
        elif port in (ofp.OFPP_FLOOD, ofp.OFPP_ALL, ofp.OFPP_NORMAL, ofp.OFPP_TABLE,
                      ofp.OFPP_CONTROLLER):
            raise NotImplementedError("output to reserved port %#x" % port)
        elif port == in_port:  # OpenFlow never sends a packet back where it came from...
            return  # ...unless told OFPP_IN_PORT
        if self.ports is None or port in self.ports:  # OVS skips a port it does not have
            path.result.outputs.append(Output(port, sent, max_len if truncate else None))

    def _group(self, group_id, state, path, table_id, depth):
        if group_id not in self.groups:
            raise SwitchError("no group %d (OFPBAC_BAD_OUT_GROUP)" % group_id)
        group = self.groups[group_id]
        buckets = group.buckets if group.type == ofp.OFPGT_ALL else group.buckets[:1]
        for bucket in buckets:  # each bucket works on its own copy; the original is untouched
            self._actions(_action_set(bucket.actions), dict(state), path, table_id, depth + 1)

    def _learn(self, learn, state):
        """The flow an NXActionLearn writes: matches and loads read from this packet (and,
        like OVS, a fin_timeout action first if the learn has fin timeouts)."""
        match, actions = {}, []
        if learn.fin_idle_timeout or learn.fin_hard_timeout:
            actions.append(parser.NXActionFinTimeout(learn.fin_idle_timeout,
                                                     learn.fin_hard_timeout))
        for spec in learn.specs:
            n_bits = spec.n_bits
            if isinstance(spec.src, tuple):
                value = _read_bits(state, spec.src[0], spec.src[1], n_bits)
            else:
                value = spec.src & _ones(n_bits)
            if isinstance(spec, parser.NXFlowSpecMatch):
                name, ofs = oxm(spec.dst[0]), spec.dst[1]
                old, old_mask = match.get(name, (0, 0))
                mask = _ones(n_bits) << ofs
                match[name] = (old & ~mask | value << ofs, old_mask | mask)
            elif isinstance(spec, parser.NXFlowSpecLoad):
                if n_bits > 64:
                    raise SwitchError("a learn load moves at most 64 bits")
                name, ofs = spec.dst
                actions.append(parser.NXActionRegLoad(
                    nicira_ext.ofs_nbits(ofs, ofs + n_bits - 1), name, value))
            else:  # NXFlowSpecOutput
                actions.append(parser.OFPActionOutput(value))
        return Flow(learn.table_id, learn.priority,
                    {name: _field_match(name, v, m) for name, (v, m) in match.items()},
                    [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions)],
                    learn.cookie, learn.idle_timeout, learn.hard_timeout,
                    learn.fin_idle_timeout, learn.fin_hard_timeout, learned=True)


def _round_trip(obj, cls):
    buf = bytearray()
    obj.serialize(buf, 0)
    return cls.parser(bytes(buf), 0)


# --- what OVS would refuse ------------------------------------------------------------------

_IP_TYPES = {0x0800, 0x86DD}


def _prerequisites(name):
    """(eth_types, ip_proto) that a match on, or an action using, field ``name`` needs."""
    name = oxm(name)
    for prefix, eth_types, proto in (
            ("arp_", {0x0806}, None), ("ipv4_", {0x0800}, None), ("icmpv4_", {0x0800}, 1),
            ("ipv6_nd_", {0x86DD}, 58), ("icmpv6_", {0x86DD}, 58), ("ipv6_", {0x86DD}, None),
            ("tcp_", _IP_TYPES, 6), ("udp_", _IP_TYPES, 17), ("ip_", _IP_TYPES, None)):
        if name.startswith(prefix):
            return eth_types, proto
    return None, None


def _satisfied(name, match):
    eth_types, proto = _prerequisites(name)
    return ((eth_types is None or match.get("eth_type", (None, None)) in
             {(t, None) for t in eth_types})
            and (proto is None or match.get("ip_proto") == (proto, None)))


def problems(mod):
    """Why OVS's consistency check would refuse flow mod ``mod`` (an empty list if it would
    not): matches and actions on fields whose prerequisites the flow's own match lacks."""
    match = _match(mod.match)
    out = ["match on %s lacks its prerequisites" % n for n in match if not _satisfied(n, match)]
    actions = [a for inst in mod.instructions for a in getattr(inst, "actions", ())]
    for a in actions:
        used = []
        if isinstance(a, parser.OFPActionSetField):
            used = [a.key]
        elif isinstance(a, parser.NXActionRegMove):
            used = [a.src_field, a.dst_field]
        elif isinstance(a, parser.NXActionLearn):
            learned = {}  # like OVS: a learned match field needs earlier immediate specs
            for spec in a.specs:
                if isinstance(spec.src, tuple):
                    used.append(spec.src[0])
                if isinstance(spec, parser.NXFlowSpecMatch):
                    if not _satisfied(spec.dst[0], learned):
                        out.append("learn matches %s without its prerequisites" % spec.dst[0])
                    if not isinstance(spec.src, tuple):
                        learned[oxm(spec.dst[0])] = (spec.src, None)
        out += ["%s uses %s without its prerequisites" % (type(a).__name__, n)
                for n in used if not _satisfied(n, match)]
    return out


# --- packets ----------------------------------------------------------------------------------

def frame(in_port, eth_src, eth_dst, eth_type, vlan=None, **fields):
    """An Ethernet frame; ``vlan`` is a VID (tagged) or None (untagged)."""
    vid = 0 if vlan is None else ofp.OFPVID_PRESENT | vlan
    return normalize(dict(in_port=in_port, eth_src=eth_src, eth_dst=eth_dst, vlan_vid=vid,
                          eth_type=eth_type, **fields))


def _ip(ip_src, ip_dst, proto):
    if ipaddress.ip_address(ip_src).version == 4:
        return 0x0800, dict(ipv4_src=ip_src, ipv4_dst=ip_dst, ip_proto=proto)
    return 0x86DD, dict(ipv6_src=ip_src, ipv6_dst=ip_dst, ip_proto=proto)


def tcp(in_port, eth_src, eth_dst, ip_src, ip_dst, sport=40000, dport=80, vlan=None, **extra):
    """A TCP segment over IPv4 or IPv6 (picked by the address family); ``extra`` fields are
    added or override."""
    eth_type, ip = _ip(ip_src, ip_dst, 6)
    return frame(in_port, eth_src, eth_dst, eth_type, vlan,
                 **{**ip, "tcp_src": sport, "tcp_dst": dport, **extra})


def udp(in_port, eth_src, eth_dst, ip_src, ip_dst, sport=40000, dport=53, vlan=None, **extra):
    eth_type, ip = _ip(ip_src, ip_dst, 17)
    return frame(in_port, eth_src, eth_dst, eth_type, vlan,
                 **{**ip, "udp_src": sport, "udp_dst": dport, **extra})


def icmp(in_port, eth_src, eth_dst, ip_src, ip_dst, type_=None, vlan=None, **extra):
    """An ICMP (IPv4) or ICMPv6 message; by default an echo request."""
    if ipaddress.ip_address(ip_src).version == 4:
        eth_type, ip = _ip(ip_src, ip_dst, 1)
        fields = dict(icmpv4_type=8 if type_ is None else type_, icmpv4_code=0)
    else:
        eth_type, ip = _ip(ip_src, ip_dst, 58)
        fields = dict(icmpv6_type=128 if type_ is None else type_, icmpv6_code=0)
    return frame(in_port, eth_src, eth_dst, eth_type, vlan, **{**ip, **fields, **extra})


def nd(in_port, eth_src, eth_dst, ip_src, ip_dst, target, type_=135, vlan=None):
    """An IPv6 neighbour solicitation (135) or advertisement (136) for ``target``."""
    return icmp(in_port, eth_src, eth_dst, ip_src, ip_dst, type_, vlan, ipv6_nd_target=target)


def arp_request(in_port, eth_src, spa, tpa, vlan=None):
    """A broadcast "who has ``tpa``? tell ``spa``"."""
    return frame(in_port, eth_src, BROADCAST, 0x0806, vlan, arp_op=1, arp_spa=spa, arp_tpa=tpa,
                 arp_sha=eth_src, arp_tha=ZERO_MAC)


def arp_reply(in_port, eth_src, eth_dst, spa, tpa, vlan=None):
    """A unicast "``spa`` is at ``eth_src``" to ``eth_dst``/``tpa``."""
    return frame(in_port, eth_src, eth_dst, 0x0806, vlan, arp_op=2, arp_spa=spa, arp_tpa=tpa,
                 arp_sha=eth_src, arp_tha=eth_dst)


def reply(packet, in_port, eth_src, eth_dst):
    """The answer to IP ``packet``: addresses and L4 ports swapped, an echo request answered."""
    out = dict(packet, in_port=in_port, eth_src=eth_src, eth_dst=eth_dst)
    for a, b in (("ipv4_src", "ipv4_dst"), ("ipv6_src", "ipv6_dst"), ("tcp_src", "tcp_dst"),
                 ("udp_src", "udp_dst")):
        if a in packet:
            out[a], out[b] = packet[b], packet[a]
    if packet.get("icmpv4_type") == 8:
        out["icmpv4_type"] = 0
    if packet.get("icmpv6_type") == 128:
        out["icmpv6_type"] = 129
    return normalize(out)


def without_in_port(packet):
    """``packet`` as it looks on the wire (what an output reports)."""
    return {name: value for name, value in packet.items() if name != "in_port"}
