"""Mirror sessions as OpenFlow: hook groups, the session's filter and meter, its group.

A packet meets a session at a hook: the group of (port, direction) has one bucket per
session that marks the packet with the session id and resubmits to ``MIRROR`` -- through
``MIRROR_COPY`` for a rate-limited session, whose one flow runs ``MIRROR`` on an isolated
copy (a meter drop there ends only the copy). In ``MIRROR`` the session's filter selects
what is copied, its meter caps it, and the session's group (type ALL, one bucket per
destination) sends one copy to each analyzer port via ``MIRROR_OUT``; a copy to be tagged,
re-addressed or truncated is shaped in an isolated clone of its own. An unlimited session
with plain destinations thus costs one output per analyzer, like OVS's own mirroring.
"""
from dataclasses import dataclass

from flows import remote, tables
from flows.capture import rule_matches
from flows.ofp import (
    OFPVID_PRESENT, flow, group, group_mod, isolated, match, meter_mod, output,
    output_truncated, push_vlan, resubmit, set_field)
from flows.tables import MIRROR, MIRROR_COPY, MIRROR_OUT, REG_MIRROR_PORT, REG_SESSION


@dataclass(frozen=True)
class Placed:
    """A session with its ports looked up on one switch."""

    session: object  # config.Mirror
    rx: tuple  # port numbers whose received traffic is copied
    tx: tuple  # port numbers whose transmitted traffic is copied
    destinations: tuple  # (REG_MIRROR_PORT value, config.MirrorDestination, output port)
    missing: tuple  # port refs the switch does not have
    refused: tuple = ()  # destination refs that turn out to be a role's port


def place(session, ports, dp_id):
    """Look ``session``'s ports up in ``ports`` (a PortMap of datapath ``dp_id``); a remote
    destination's port is sggw's tunnel port of its port kind."""
    rx, tx, missing = [], [], []
    for source in session.sources:
        found = ports.expand(source.port)
        if not found:
            missing.append(source.port)
        if source.rx:
            rx.extend(found)
        if source.tx:
            tx.extend(found)
    destinations, refused = [], []
    for index, dest in enumerate(session.destinations):
        ref = remote.port_name(dp_id, remote.port_kind(dest.remote)) if dest.remote \
            else dest.port
        port = ports.lookup(ref)
        if port is None:
            missing.append(ref)
        elif port in ports.all:
            refused.append(ref)  # a role's port under another name: never an analyzer
        else:
            dest_id = remote.destination_id(index) if dest.remote else port
            destinations.append((dest_id, dest, port))
    return Placed(session, tuple(dict.fromkeys(rx)), tuple(dict.fromkeys(tx)),
                  tuple(destinations), tuple(missing), tuple(refused))


def hook_group(direction, port, chunk_ids):
    """The group a hook point calls: one bucket per chunk group."""
    return group_mod(tables.hook_group(direction, port), [
        [group(tables.hook_chunk_group(direction, port, chunk))] for chunk in chunk_ids])


def hook_chunk_group(direction, port, chunk, sessions):
    """One bucket (one copy) per session of the chunk. Only a rate-limited session needs
    its copies isolated (MIRROR_COPY): nothing else in MIRROR can drop, so the others run
    inline, as cheap as OVS's own mirroring."""
    return group_mod(tables.hook_chunk_group(direction, port, chunk), [
        [set_field(**{REG_SESSION: session_id}),
         resubmit(MIRROR_COPY if rate_limited else MIRROR)]
        for session_id, rate_limited in sessions])


def copy_flows():
    """MIRROR_COPY: run the session in REG_SESSION on a copy that OVS really clones."""
    return [flow(MIRROR_COPY, 0, actions=[isolated([resubmit(MIRROR)])])]


def hook_action(direction, port):
    return group(tables.hook_group(direction, port))


def session_flows(placed, ports):
    """MIRROR (filter, meter, group), MIRROR_OUT (one shaped copy per destination) and, for
    remote destinations, MIRROR_TRIM."""
    session = placed.session
    cookie = tables.cookie(tables.KIND_MIRROR, session.id)
    meter = tables.session_meter(session.id) if session.rate_limit else None
    filters = rule_matches(session.filter, ports) if session.filter else [{}]
    out = [flow(MIRROR, 10, match(**{REG_SESSION: session.id}, **fields),
                [group(tables.session_group(session.id))], meter=meter, cookie=cookie)
           for fields in filters]
    for dest_id, dest, port in placed.destinations:
        selected = match(**{REG_SESSION: session.id, REG_MIRROR_PORT: dest_id})
        if dest.remote:
            actions = remote.copy_actions(port, dest.remote, session.snaplen)
            out += remote.trim_flows(session.id, dest_id, port, dest.remote, session.snaplen,
                                     cookie)
        else:
            actions = _copy(port, dest, session.snaplen)
        out.append(flow(MIRROR_OUT, 10, selected, actions, cookie=cookie))
    return out


def _copy(port, dest, snaplen):
    """Output one copy; a shaped one (tag, MAC, snaplen) is shaped in a clone of its own."""
    shape = _shape(dest)
    if not shape and not snaplen:
        return [output(port)]
    return [isolated(shape + [_out(port, snaplen)])]


def _shape(dest):
    actions = []
    if dest.vlan is not None:
        actions += [push_vlan(), set_field(vlan_vid=OFPVID_PRESENT | dest.vlan)]
    if dest.eth_dst is not None:
        actions.append(set_field(eth_dst=dest.eth_dst))
    return actions


def _out(port, snaplen):
    return output_truncated(port, snaplen) if snaplen else output(port)


def session_group(placed):
    """One bucket per destination (its counters are the destination's): each copy is then
    tagged, re-addressed and truncated on its own in MIRROR_OUT. (In a bucket, OVS would
    truncate by a byte count computed before other buckets' header changes.)"""
    return group_mod(tables.session_group(placed.session.id), [
        [set_field(**{REG_MIRROR_PORT: dest_id}), resubmit(MIRROR_OUT)]
        for dest_id, _, _ in placed.destinations])


def session_meter(session):
    unit, rate = session.rate_limit
    return meter_mod(tables.session_meter(session.id), rate, unit)
