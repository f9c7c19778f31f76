"""The switch state sggw wants, as independent parts.

A datapath's state is the base pipeline, one part per capture rule, one per mirror session,
and per mirror hook (port, direction) one part for its group and one per chunk of sessions.
Each part comes with a *token*: everything it is built from. When a REST call adds a
session, only the parts whose token changed are built and compared, so the cost of a change
does not grow with the number of rules and sessions.
"""
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

from flows import capture, mirror, pipeline, remote


@dataclass(frozen=True)
class Part:
    flows: tuple = ()
    groups: tuple = ()
    meters: tuple = ()


class Planned(NamedTuple):  # a tuple: a plan makes a thousand of them per REST call
    token: object  # equal tokens build equal parts
    build: object  # () -> Part


def placements(dp, ports, installed=None):
    """Every mirror session of ``dp`` placed on the switch (ports looked up). A session
    whose installed part (in ``installed``, {part key: reconcile.PartState}) was placed from
    the very same session and port map objects keeps that placement: with a thousand
    sessions, a REST call then places one session, not a thousand."""
    installed = installed or {}
    out = []
    for session in dp.mirrors:
        old = installed.get(("mirror", session.id))
        if old is not None and old.token[1] is ports and old.token[0].session is session:
            out.append(old.token[0])
        else:
            out.append(mirror.place(session, ports, dp.dp_id))
    return out


def plan(dp, ports, installed=None):
    """{part key: Planned} for datapath config ``dp`` on a switch with ``ports``; placements
    are reused from ``installed`` where they cannot have changed."""
    placed = placements(dp, ports, installed)
    hook_map = mirror.hooks(placed)
    hooks = pipeline.Hooks(
        rx=frozenset(port for direction, port in hook_map if direction == "rx"),
        tx=frozenset(port for direction, port in hook_map if direction == "tx"),
        analyzers=frozenset(port for p in placed for _, _, port in p.destinations))
    parts = {("base",): Planned((dp.local_ip, dp.reverse_path, ports, hooks),
                                partial(_base, dp, ports, hooks))}
    for rule in dp.capture:
        parts[("capture", rule.id)] = Planned((rule, ports), partial(_capture, rule, ports))
    for session in placed:
        if session.destinations:
            parts[("mirror", session.session.id)] = Planned(
                (session, ports), partial(_mirror, session, ports))
    for (direction, port), sessions in hook_map.items():
        chunked = mirror.chunks(sessions)
        parts[("hook", direction, port)] = Planned(
            tuple(chunked), partial(_hook, direction, port, tuple(chunked)))
        for chunk, members in chunked.items():
            parts[("hook chunk", direction, port, chunk)] = Planned(
                tuple(members), partial(_hook_chunk, direction, port, chunk, tuple(members)))
    return parts


def everything(dp, ports):
    """All parts of ``plan(dp, ports)`` built and merged into one Part."""
    built = [planned.build() for planned in plan(dp, ports).values()]
    return Part(flows=tuple(f for part in built for f in part.flows),
                groups=tuple(g for part in built for g in part.groups),
                meters=tuple(m for part in built for m in part.meters))


def _base(dp, ports, hooks):
    return Part(flows=tuple(pipeline.flows(dp, ports, hooks)), meters=tuple(pipeline.meters()))


def _capture(rule, ports):
    return Part(flows=tuple(capture.rule_flows(rule, ports)))


def _mirror(placed, ports):
    meters = (mirror.session_meter(placed.session),) if placed.session.rate_limit else ()
    cut = remote.cut_meter(placed.session)
    meters += (cut,) if cut is not None else ()
    return Part(flows=tuple(mirror.session_flows(placed, ports)),
                groups=(mirror.session_group(placed),), meters=meters)


def _hook(direction, port, chunk_ids):
    return Part(groups=(mirror.hook_group(direction, port, chunk_ids),))


def _hook_chunk(direction, port, chunk, sessions):
    return Part(groups=(mirror.hook_chunk_group(direction, port, chunk, sessions),))
