"""The history of a fault run's REST writes, and its check: was any acknowledged write lost?

Each object (switch, kind, name) is written by one writer, one request at a time, and every
body sent carries a version of its own (an address no other write uses, see :func:`marker`),
so what is found in the store and on the switches tells which write put it there.

An answer is one of three :data:`OUTCOMES`: ``ok`` (2xx: it happened), ``refused`` (an
error answer: the API promises nothing changed; a 409 "already exists" also says the object
was there, a 404 that it was not) or unknown. Unknown comes in two sorts. The connection
broke (the instance was killed, or closed it): whatever the request did, it did before the
writer's next request, which is sent only after the break (``unknown``). The client gave up
waiting, or the answer was a 504 (the store has not settled the change): the request may
still take effect at any later time, or never (``late``).

:func:`replay` follows one object's requests and keeps every state it may be in (a version,
or absent); a request whose answer no possible state allows (a 404 after an acknowledged
create, a create acknowledged while the object must exist) is a problem at once, and so is
a final state, as found, that no possible state explains (a lost write, a deleted object
back). Where it is found matters too: the store, each instance's REST API and the switches
must all show the same version (:func:`check`), or a write is half applied.
"""
import json
from collections import Counter
from dataclasses import dataclass, field

OK, REFUSED, UNKNOWN, LATE = "ok", "refused", "unknown", "late"
OUTCOMES = (OK, REFUSED, UNKNOWN, LATE)
CREATE, REPLACE, DELETE = "create", "replace", "delete"
ABSENT = None
NETS = {"captures": 128, "mirrors": 144}  # each kind's versions are in 10.<net + 0..15>.0.0/16
MAX_VERSION = (1 << 20) - 1


def marker(kind, version):
    """The address a body of ``version`` (1..2**20-1, one counter for all objects of a
    kind) carries: each version its own /32, so a flow tells which write made it."""
    if not 1 <= version <= MAX_VERSION:
        raise ValueError("version %d out of 1..%d" % (version, MAX_VERSION))
    return "10.%d.%d.%d/32" % (NETS[kind] + (version >> 16), version >> 8 & 0xFF,
                               version & 0xFF)


def version_of(kind, address):
    """The version whose :func:`marker` is ``address`` (with or without /32), or None."""
    try:
        octets = [int(x) for x in address.split("/")[0].split(".")]
    except (AttributeError, ValueError):
        return None
    if len(octets) != 4 or octets[0] != 10 or not 0 <= octets[1] - NETS[kind] < 16:
        return None
    return ((octets[1] - NETS[kind]) << 16 | octets[2] << 8 | octets[3]) or None


@dataclass
class Request:
    """One REST write and its answer (the last one, after redirects were followed)."""

    writer: str
    key: tuple  # (switch, kind, name)
    op: str
    version: int  # the version written (None for a delete)
    sent_to: str  # the instance it was sent to
    started: float  # seconds since the start of the run
    ended: float = None
    status: int = None  # HTTP status, None without an answer
    error: str = None  # without an answer: why ("reset", "timeout", "refused connection")
    message: str = ""  # the answer's error text
    redirects: list = field(default_factory=list)  # the 3xx answers followed on the way

    @property
    def outcome(self):
        if self.status == 504:  # the store has not settled it: it may still be made
            return LATE
        if self.status is not None:
            return OK if 200 <= self.status < 300 else REFUSED
        if self.error == "timeout":
            return LATE
        if self.error == "refused connection":  # nothing was sent
            return REFUSED
        return UNKNOWN

    def describe(self):
        what = "%s %s/%s/%s%s" % (self.op, *self.key,
                                  " v%d" % self.version if self.version else "")
        answer = (str(self.status) if self.status is not None else self.error or "?")
        via = "".join(" %s->" % code for code in self.redirects)
        text = "%8.3f %7.3f %-9s %-40s ->%s%s %s" % (
            self.started, (self.ended or self.started) - self.started, self.writer, what,
            self.sent_to, via, answer)
        return text + (": " + self.message if self.message else "")


def _valid(op, state):
    return (state is ABSENT) == (op.op == CREATE)


def _result(op):
    return ABSENT if op.op == DELETE else op.version


def _settle(states, ops):
    """Every state reachable by letting any of each state's late requests take effect."""
    out, frontier = set(states), list(states)
    while frontier:
        value, late = frontier.pop()
        for i in late:
            if _valid(ops[i], value):
                reached = (_result(ops[i]), late - {i})
                if reached not in out:
                    out.add(reached)
                    frontier.append(reached)
    return out


def constraint(op):
    """What a refusal says of the object then: True present, False absent, None nothing."""
    if op.status == 409 and "already exists" in op.message:
        return True
    if op.status == 404 and op.op != CREATE and "no " in op.message:
        return False
    return None


def _show(value):
    return "absent" if value is ABSENT else "v%d" % value


def replay(ops):
    """(the states ``ops`` may leave the object in, problems found on the way)."""
    states = {(ABSENT, frozenset())}
    problems = []
    for i, op in enumerate(ops):
        outcome = op.outcome
        if outcome == OK:
            states = _settle(states, ops)
            allowed = {s for s in states if _valid(op, s[0])}
            if not allowed:
                problems.append("%s acknowledged, but the object was %s then" % (
                    op.describe(), " or ".join(sorted(_show(v) for v, _ in states))))
            states = {(_result(op), late) for _, late in (allowed or states)}
        elif outcome == REFUSED:
            present = constraint(op)
            if present is not None:
                states = _settle(states, ops)
                kept = {s for s in states if (s[0] is not ABSENT) == present}
                if not kept:
                    problems.append("%s, but the object was %s then" % (
                        op.describe(), " or ".join(sorted(_show(v) for v, _ in states))))
                states = kept or states
        elif outcome == UNKNOWN:
            states = states | {(_result(op), late) for value, late in states
                               if _valid(op, value)}
        else:
            states = {(value, late | {i}) for value, late in states}
    return {value for value, _ in _settle(states, ops)}, problems


@dataclass
class Verdict:
    problems: list  # one line each
    objects: int
    counts: Counter  # outcome -> number of requests
    lost: int  # objects whose final state no history explains (lost or undone writes)
    half: int  # objects the store, the APIs and the switches disagree on

    @property
    def ok(self):
        return not self.problems


def check(requests, found):
    """Check the history against what was found at the end.

    ``found``: {where: {key: version or ABSENT}} for each place read (the store, each
    instance's API, the switches); a key missing from a place reads as absent there."""
    by_key = {}
    for request in requests:
        by_key.setdefault(request.key, []).append(request)
    keys = set(by_key) | {k for seen in found.values() for k in seen}
    problems, lost, half = [], 0, 0
    for key in sorted(keys):
        name = "/".join(key)
        ops = by_key.get(key, [])
        possible, wrong = replay(ops)
        where = {place: seen.get(key, ABSENT) for place, seen in found.items()}
        values = set(where.values())
        if len(values) > 1:
            half += 1
            problems.append("%s: half applied: %s" % (name, ", ".join(
                "%s %s" % (place, _show(v)) for place, v in sorted(where.items()))))
        elif values and not values <= possible:
            last = [op for op in ops if op.outcome == OK][-1:]
            wrong.append("found %s, but after its history it can only be %s%s" % (
                _show(values.pop()), " or ".join(sorted(_show(v) for v in possible)),
                " (last acknowledged: %s)" % last[0].describe() if last else ""))
        if wrong:
            lost += 1
            problems += ["%s: %s" % (name, p) for p in wrong]
    counts = Counter(r.outcome for r in requests)
    return Verdict(problems, len(keys), counts, lost, half)


def summary(requests, verdict):
    counts = verdict.counts
    return ("requests: %d, acknowledged: %d, refused: %d, unknown: %d (connection broke) "
            "+ %d (no answer in time); objects: %d; lost: %d, half applied: %d, problems: %d"
            % (len(requests), counts[OK], counts[REFUSED], counts[UNKNOWN], counts[LATE],
               verdict.objects, verdict.lost, verdict.half, len(verdict.problems)))


def dump(requests):
    """The history as JSON lines (to keep beside a run's logs)."""
    return "\n".join(json.dumps(dict(vars(r), key=list(r.key))) for r in requests)
