"""The switch state sggw wants, as independent parts.

A datapath's state is the base pipeline, one part per capture rule, one per mirror session,
and per mirror hook (port, direction) one part for its group and one per chunk of sessions.
Each part comes with a *token*: everything it is built from. When a REST call adds a
session, :func:`update` plans only the parts of the sessions and rules that came or went,
and only the parts whose token changed are built and compared, so the cost of a change
does not grow with the number of rules and sessions.
"""
from collections import Counter
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import NamedTuple

from flows import capture, mirror, pipeline, remote, tables


_by_id = attrgetter("id")


@dataclass(frozen=True)
class Part:
    flows: tuple = ()
    groups: tuple = ()
    meters: tuple = ()


class Planned(NamedTuple):  # a tuple: a plan makes a thousand of them per full plan
    token: object  # equal tokens build equal parts
    build: object  # () -> Part


class Plan(dict):
    """{part key: Planned}, with what it was planned from: the datapath config, the ports,
    every session placed ({session id: mirror.Placed}), the hooks' members ({(direction,
    port, chunk): {session id: rate limited?}}) and the analyzer ports (a Counter). Never
    changed once made: :func:`update` makes a new one. ``rules`` and ``sessions`` are
    ``dp``'s, by identity ({id(object): object}); ``tunnels`` counts the remote
    destinations of each tunnel port kind."""

    def __init__(self, parts, dp, ports, placed, members, analyzers, tunnels, rules=None,
                 sessions=None):
        super().__init__(parts)
        self.dp, self.ports = dp, ports
        self.placed, self.members, self.analyzers = placed, members, analyzers
        self.tunnels = tunnels
        self.rules = _by_identity(dp.capture) if rules is None else rules
        self.sessions = _by_identity(dp.mirrors) if sessions is None else sessions

    @property
    def remote_kinds(self):
        """The tunnel port kinds the remote destinations need, sorted."""
        return sorted(self.tunnels)


def placements(dp, ports, installed=None):
    """Every mirror session of ``dp`` placed on the switch (ports looked up). A session
    whose installed part (in ``installed``, {part key: reconcile.PartState}) was placed from
    the very same session and port map objects keeps that placement."""
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
    """The Plan for datapath config ``dp`` on a switch with ``ports``; placements are reused
    from ``installed`` where they cannot have changed."""
    placed = {p.session.id: p for p in placements(dp, ports, installed)}
    members, analyzers = {}, Counter()
    for session in placed.values():
        _join(members, analyzers, session, 1)
    parts = {("base",): _base_part(dp, ports, members, analyzers)}
    for rule in dp.capture:
        parts[("capture", rule.id)] = _capture_part(rule, ports)
    for session in placed.values():
        if session.destinations:
            parts[("mirror", session.session.id)] = _mirror_part(session, ports)
    for direction, port in dict.fromkeys(k[:2] for k in members):
        parts[("hook", direction, port)] = _hook_part(members, direction, port)
    for hook_chunk in members:
        parts[("hook chunk",) + hook_chunk] = _chunk_part(members, hook_chunk)
    tunnels = Counter(kind for session in dp.mirrors for kind in _remote_kinds(session))
    return Plan(parts, dp, ports, placed, members, analyzers, tunnels)


def update(previous, dp, ports):
    """(Plan for ``dp`` on ``ports``, the part keys that may differ from Plan ``previous``).

    Rules and sessions are told apart by identity: one that is not the very object of
    ``previous.dp`` is new, and only its parts, its hooks' and the base are planned again.
    On other ports everything is planned again, and the keys are None (any may differ)."""
    if ports is not previous.ports or dp.dp_id != previous.dp.dp_id:
        return plan(dp, ports), None
    parts, changed = dict(previous), {("base",): None}
    rules, sessions = _by_identity(dp.capture), _by_identity(dp.mirrors)
    gone, came = _diff(previous.rules, rules)
    for rule in gone:
        parts.pop(("capture", rule.id), None)
        changed[("capture", rule.id)] = None
    for rule in came:
        parts[("capture", rule.id)] = _capture_part(rule, ports)
        changed[("capture", rule.id)] = None
    placed, members, analyzers = dict(previous.placed), dict(previous.members), \
        Counter(previous.analyzers)
    touched, tunnels = {}, Counter(previous.tunnels)
    gone, came = _diff(previous.sessions, sessions)
    for session in gone:
        tunnels.subtract(_remote_kinds(session))
        touched.update(_join(members, analyzers, placed.pop(session.id), -1))
        parts.pop(("mirror", session.id), None)
        changed[("mirror", session.id)] = None
    for session in came:
        tunnels.update(_remote_kinds(session))
        placed[session.id] = found = mirror.place(session, ports, dp.dp_id)
        touched.update(_join(members, analyzers, found, 1))
        if found.destinations:
            parts[("mirror", session.id)] = _mirror_part(found, ports)
        changed[("mirror", session.id)] = None
    for hook_chunk in touched:
        _set(parts, changed, ("hook chunk",) + hook_chunk,
             _chunk_part(members, hook_chunk) if hook_chunk in members else None)
    for direction, port in dict.fromkeys(k[:2] for k in touched):
        _set(parts, changed, ("hook", direction, port),
             _hook_part(members, direction, port))
    parts[("base",)] = _base_part(dp, ports, members, analyzers)
    return (Plan(parts, dp, ports, placed, members, analyzers, +tunnels, rules, sessions),
            list(changed))


def everything(dp, ports):
    """All parts of ``plan(dp, ports)`` built and merged into one Part."""
    built = [planned.build() for planned in plan(dp, ports).values()]
    return Part(flows=tuple(f for part in built for f in part.flows),
                groups=tuple(g for part in built for g in part.groups),
                meters=tuple(m for part in built for m in part.meters))


def _remote_kinds(session):
    return [remote.port_kind(dest.remote) for dest in session.destinations if dest.remote]


def _by_identity(items):
    return dict(zip(map(id, items), items))


def _diff(old, new):
    """(objects in ``old`` not in ``new``, objects in ``new`` not in ``old``), each in id
    order, from two ``{id(object): object}``: no Python loop over the objects that stay."""
    return (sorted(map(old.get, old.keys() - new.keys()), key=_by_id),
            sorted(map(new.get, new.keys() - old.keys()), key=_by_id))


def _join(members, analyzers, placed, sign):
    """Add (``sign`` 1) or remove (-1) a placed session to or from the hooks' members and
    the analyzer counts, copying what it changes (an older Plan shares the rest); the
    (direction, port, chunk) keys it touched, as a dict."""
    if not placed.destinations:
        return {}
    session, touched = placed.session, {}
    chunk = session.id // tables.HOOK_CHUNK
    for direction in ("rx", "tx"):
        for port in getattr(placed, direction):
            key = (direction, port, chunk)
            sessions = dict(members.get(key, ()))
            if sign > 0:
                sessions[session.id] = session.rate_limit is not None
            else:
                sessions.pop(session.id, None)
            if sessions:
                members[key] = sessions
            else:
                members.pop(key, None)
            touched[key] = None
    analyzers.update({port: sign for _, _, port in placed.destinations})
    for port in [p for p, count in analyzers.items() if count <= 0]:
        del analyzers[port]
    return touched


def _set(parts, changed, part_key, planned):
    if planned is None:
        parts.pop(part_key, None)
    else:
        parts[part_key] = planned
    changed[part_key] = None


def _base_part(dp, ports, members, analyzers):
    hooks = pipeline.Hooks(rx=frozenset(port for d, port, _ in members if d == "rx"),
                           tx=frozenset(port for d, port, _ in members if d == "tx"),
                           analyzers=frozenset(analyzers))
    return Planned((dp.local_ip, dp.reverse_path, ports, hooks), partial(_base, dp, ports, hooks))


def _capture_part(rule, ports):
    return Planned((rule, ports), partial(_capture, rule, ports))


def _mirror_part(placed, ports):
    return Planned((placed, ports), partial(_mirror, placed, ports))


def _hook_part(members, direction, port):
    """The hook group's part, or None if no session is left at the hook."""
    chunk_ids = tuple(sorted(c for d, p, c in members if (d, p) == (direction, port)))
    if not chunk_ids:
        return None
    return Planned(chunk_ids, partial(_hook, direction, port, chunk_ids))


def _chunk_part(members, hook_chunk):
    sessions = tuple(sorted(members[hook_chunk].items()))
    return Planned(sessions, partial(_hook_chunk, *hook_chunk, sessions))


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
