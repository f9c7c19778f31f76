"""The sggw pipeline declared in one place: tables, registers and the cookie layout.

Read this file first. A packet enters table ``INGRESS`` and takes one of two paths:

* from a *wire* port (``lan``, ``wan``, ``local``): ``LOCAL_IN`` -> ``CAPTURE`` rules (send
  to the tunnel, learning the reverse path in ``CAPTURE_LEARN``) -> else a reply to a
  remotely initiated flow? (``REVERSE`` lookup, answered in ``LOCAL_REPLY``) -> else the L2
  wire (``L2`` -> ``MAC`` lookup -> ``FLOOD``). The rules come before the lookup: a path
  learned the wrong way round (a captured conversation's reply, seen first after its path
  was flushed, looks remotely initiated) never hides a rule, so the conversation's next
  packet learns its path again.
* from the ``tunnel`` port: ``TUNNEL_IN`` -> ``REVERSE`` lookup (a reply to a captured flow)
  -> else remotely initiated: learn the way back into the tunnel and deliver by the learned
  IP neighbour (``TUNNEL_MISS`` -> ``NEIGH`` -> ``DELIVER``).

Every path ends in ``EGRESS``, which outputs to the port in ``REG_OUT``.

Mirror sessions hook in at the two places a packet meets a port: first thing in
``INGRESS`` (rx) and right after the output in ``EGRESS`` (tx). A hook is a group with a
bucket per session that sets ``REG_SESSION`` and resubmits to ``MIRROR`` (a rate-limited
session through ``MIRROR_COPY``, which runs it on an isolated copy of the packet): the
session's filter, then its meter, then the session's group (one bucket per destination),
and ``MIRROR_OUT`` outputs (and shapes) each copy; a copy for a remote analyzer goes on to
``MIRROR_TRIM`` when it may be longer than the path MTU allows: there a copy that is gets cut
(and counted by the session's cut meter) before it is encapsulated into sggw's tunnel port of
its kind.
(OVS runs a group bucket as an OpenFlow action *set*: only set-field/push actions and one
output, group or resubmit survive, hence the extra table for the copy.) The lookup tables
(``REVERSE``, ``MAC``, ``NEIGH``, ``GATEWAY``) hold only flows written by OVS ``learn()``;
they are reached with ``resubmit`` and answer by loading ``REG_OUT`` (0 = no answer) and
rewriting MACs. Learned flows cannot ``goto``, so the table after each lookup dispatches on
``REG_OUT``. With ``reverse_path.match: conntrack`` the reverse paths live in OVS conntrack
instead (:mod:`flows.conntrack`): captured packets commit their connection, and packets that
may be replies pass through conntrack into ``CT_LOCAL`` / ``CT_TUNNEL``.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """One OpenFlow table of the pipeline."""

    id: int
    name: str
    doc: str
    learned: bool = False  # filled by learn(); bounded by OVS flow_limit (full: no new flow)


INGRESS = Table(0, "ingress", "classify by in_port; learn MAC, neighbour and gateway")
LOCAL_IN = Table(1, "local_in", "wire traffic: ND/broadcast to L2, proxy ARP, IP to capture")
CAPTURE = Table(2, "capture", "ordered capture rules; else the reverse lookup")
CAPTURE_LEARN = Table(3, "capture_learn", "learn the reverse path of a captured packet, to tunnel")
L2 = Table(4, "l2", "look the destination MAC up")
FLOOD = Table(5, "flood", "unknown/broadcast destinations go to every wire port")
TUNNEL_IN = Table(6, "tunnel_in", "tunnel traffic: IP only, reverse lookup")
TUNNEL_MISS = Table(7, "tunnel_miss", "remotely initiated: learn the way back, find the neighbour")
DELIVER = Table(8, "deliver", "unknown neighbour: count and ask the controller to probe")
ARP_PROXY = Table(9, "arp_proxy", "answer the endpoint's ARP for off-subnet addresses")
ARP_REPLY = Table(10, "arp_reply", "send the proxy answer back, if the gateway is known")
CT_LOCAL = Table(11, "ct_local", "conntrack mode: a wire packet that is a reply goes back")
CT_TUNNEL = Table(12, "ct_tunnel", "conntrack mode: a reply, or a remotely initiated packet")
LOCAL_REPLY = Table(13, "local_reply", "uncaptured wire IP: a reverse-path hit goes out")
REVERSE = Table(20, "reverse", "learned reverse paths", learned=True)
MAC = Table(21, "mac", "learned MAC -> port", learned=True)
NEIGH = Table(22, "neigh", "learned IP -> (MAC, port)", learned=True)
GATEWAY = Table(23, "gateway", "learned upstream gateway MAC", learned=True)
EGRESS = Table(30, "egress", "output to REG_OUT")
MIRROR_COPY = Table(40, "mirror_copy", "run the session (MIRROR) on an isolated copy")
MIRROR = Table(41, "mirror", "per session: filter, meter, then the session's group")
MIRROR_OUT = Table(42, "mirror_out", "one copy per destination: tag, MAC, snaplen, output")
MIRROR_TRIM = Table(43, "mirror_trim", "a remote copy: cut (and counted) to fit the path MTU")

PIPELINE = (INGRESS, LOCAL_IN, CAPTURE, CAPTURE_LEARN, L2, FLOOD, TUNNEL_IN, TUNNEL_MISS,
            DELIVER, ARP_PROXY, ARP_REPLY, CT_LOCAL, CT_TUNNEL, LOCAL_REPLY, REVERSE, MAC, NEIGH,
            GATEWAY, EGRESS, MIRROR_COPY, MIRROR, MIRROR_OUT, MIRROR_TRIM)
LEARNED_TABLES = tuple(t for t in PIPELINE if t.learned)
BY_ID = {t.id: t for t in PIPELINE}

# Registers (Nicira extension fields, all zero when a packet enters table 0).
REG_OUT = "reg0"  # output port decided so far; 0 = none yet
REG_FROM_TUNNEL = "reg1"  # 1 when the packet came in on the tunnel port
REG_SCRATCH = "reg2"  # temporary for swapping ARP addresses
REG_SESSION = "reg5"  # the mirror session a copy belongs to
REG_MIRROR_PORT = "reg6"  # the destination of a copy: its port, or REMOTE_BASE + index
REG_CUT = "reg7"  # bit 0: a remote copy is longer than its path MTU allows
REMOTE_BASE = 0xFFFF0000  # REG_MIRROR_PORT of a session's remote destination (+ its index)

# Priorities of learned flows (one per table: learned matches never overlap).
LEARNED_PRIORITY = 10

# Cookies: 0x5367 ("Sg") | kind (8 bits) | 8 spare bits | id (32 bits).
# Static flows have a kind below 0x10; learned flows carry the port they were learned on,
# so "forget everything learned through port P" is one delete by cookie mask.
COOKIE_SIGNATURE = 0x5367 << 48
SIGNATURE_MASK = 0xFFFF << 48
KIND_SHIFT = 40
KIND_STATIC = 0x01
KIND_CAPTURE = 0x02
KIND_MIRROR = 0x03
KIND_LEARNED_MAC = 0x10
KIND_LEARNED_NEIGH = 0x11
KIND_LEARNED_REVERSE = 0x12
KIND_LEARNED_GATEWAY = 0x13
LEARNED_KINDS = (KIND_LEARNED_MAC, KIND_LEARNED_NEIGH, KIND_LEARNED_REVERSE, KIND_LEARNED_GATEWAY)
_LEARNED_BIT = 0x10 << KIND_SHIFT
ID_MASK = 0xFFFFFFFF


def cookie(kind, ident=0):
    """The cookie of a flow of ``kind``; ``ident`` is a rule number or a port number."""
    return COOKIE_SIGNATURE | (kind << KIND_SHIFT) | (ident & ID_MASK)


def cookie_kind(value):
    """The kind of an sggw cookie, or None for a cookie that is not ours."""
    if value & SIGNATURE_MASK != COOKIE_SIGNATURE:
        return None
    return (value >> KIND_SHIFT) & 0xFF


def kind_cookies(kind, ident=None):
    """(cookie, mask) selecting every flow of ``kind``, or only the one with ``ident``."""
    if ident is None:
        return cookie(kind), SIGNATURE_MASK | (0xFF << KIND_SHIFT)
    return cookie(kind, ident), (1 << 64) - 1


# (cookie, mask) pairs for flow-stats requests and deletes.
STATIC_COOKIES = (COOKIE_SIGNATURE, SIGNATURE_MASK | (0xF0 << KIND_SHIFT))
LEARNED_COOKIES = (COOKIE_SIGNATURE | _LEARNED_BIT, SIGNATURE_MASK | (0xF0 << KIND_SHIFT))


# Groups and meters carry no cookie: sggw owns these id ranges and nothing outside them.
GROUP_SESSION_BASE = 0x53670000  # + session id (< 0x10000)
MAX_SESSION_ID = 0xFFFF  # above it the session's group would be port 0's rx hook group
GROUP_HOOK_BASE = {"rx": 0x53680000, "tx": 0x53690000}  # + port number (LOCAL: 0xfffe)
HOOK_CHUNK = 64  # sessions per chunk group: a change rebuilds one chunk, not every session
GROUP_CHUNK_BASE = 0x60000000  # | direction << 26 | port << 10 | chunk
GROUP_RANGE = range(0x53670000, 0x536A0000)
CHUNK_RANGE = range(0x60000000, 0x68000000)
METER_PUNT = 1
METER_SESSION_BASE = 0x1000  # + session id
METER_CUT_BASE = 0x11000  # + session id: counts remote copies cut to fit the path MTU
METER_RANGE = range(1, METER_CUT_BASE + 0x10000)


def session_group(session_id):
    return GROUP_SESSION_BASE + session_id


def hook_group(direction, port):
    return GROUP_HOOK_BASE[direction] + (port & 0xFFFF)


def hook_chunk_group(direction, port, chunk):
    """The group of the sessions with id // HOOK_CHUNK == ``chunk`` at a hook."""
    return (GROUP_CHUNK_BASE | (direction == "tx") << 26 | (port & 0xFFFF) << 10
            | (chunk & 0x3FF))


def owned_group(group_id):
    return group_id in GROUP_RANGE or group_id in CHUNK_RANGE


def session_meter(session_id):
    return METER_SESSION_BASE + session_id


def cut_meter(session_id):
    return METER_CUT_BASE + session_id


def learned_through(port):
    """(cookie, mask) selecting every flow learned on ``port``, of any learned kind."""
    return (COOKIE_SIGNATURE | _LEARNED_BIT | (port & ID_MASK),
            SIGNATURE_MASK | (0xF0 << KIND_SHIFT) | ID_MASK)
