"""The sggw pipeline declared in one place: tables, registers and the cookie layout.

Read this file first. A packet enters table ``INGRESS`` and takes one of two paths:

* from a *wire* port (``lan``, ``wan``, ``local``): ``LOCAL_IN`` -> (a reply to a remotely
  initiated flow? ``REVERSE`` lookup) -> ``CAPTURE`` rules (send to the tunnel, learning the
  reverse path in ``CAPTURE_LEARN``) -> else the L2 wire (``L2`` -> ``MAC`` lookup ->
  ``FLOOD``).
* from the ``tunnel`` port: ``TUNNEL_IN`` -> ``REVERSE`` lookup (a reply to a captured flow)
  -> else remotely initiated: learn the way back into the tunnel and deliver by the learned
  IP neighbour (``TUNNEL_MISS`` -> ``NEIGH`` -> ``DELIVER``).

Every path ends in ``EGRESS``, which outputs to the port in ``REG_OUT``. The lookup tables
(``REVERSE``, ``MAC``, ``NEIGH``, ``GATEWAY``) hold only flows written by OVS ``learn()``;
they are reached with ``resubmit`` and answer by loading ``REG_OUT`` (0 = no answer) and
rewriting MACs. Learned flows cannot ``goto``, so the table after each lookup dispatches on
``REG_OUT``.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """One OpenFlow table of the pipeline."""

    id: int
    name: str
    doc: str
    learned: bool = False  # filled by learn(); bounded by OVS flow_limit with eviction


INGRESS = Table(0, "ingress", "classify by in_port; learn MAC, neighbour and gateway")
LOCAL_IN = Table(1, "local_in", "wire-port traffic: ND/broadcast to L2, proxy ARP, reverse lookup")
CAPTURE = Table(2, "capture", "ordered capture rules; a reverse-path hit goes straight out")
CAPTURE_LEARN = Table(3, "capture_learn", "learn the reverse path of a captured packet, to tunnel")
L2 = Table(4, "l2", "look the destination MAC up")
FLOOD = Table(5, "flood", "unknown/broadcast destinations go to every wire port")
TUNNEL_IN = Table(6, "tunnel_in", "tunnel traffic: IP only, reverse lookup")
TUNNEL_MISS = Table(7, "tunnel_miss", "remotely initiated: learn the way back, find the neighbour")
DELIVER = Table(8, "deliver", "unknown neighbour: count and ask the controller to probe")
ARP_PROXY = Table(9, "arp_proxy", "answer the endpoint's ARP for off-subnet addresses")
ARP_REPLY = Table(10, "arp_reply", "send the proxy answer back, if the gateway is known")
REVERSE = Table(20, "reverse", "learned reverse paths", learned=True)
MAC = Table(21, "mac", "learned MAC -> port", learned=True)
NEIGH = Table(22, "neigh", "learned IP -> (MAC, port)", learned=True)
GATEWAY = Table(23, "gateway", "learned upstream gateway MAC", learned=True)
EGRESS = Table(30, "egress", "output to REG_OUT")

PIPELINE = (INGRESS, LOCAL_IN, CAPTURE, CAPTURE_LEARN, L2, FLOOD, TUNNEL_IN, TUNNEL_MISS,
            DELIVER, ARP_PROXY, ARP_REPLY, REVERSE, MAC, NEIGH, GATEWAY, EGRESS)
LEARNED_TABLES = tuple(t for t in PIPELINE if t.learned)
BY_ID = {t.id: t for t in PIPELINE}

# Registers (Nicira extension fields, all zero when a packet enters table 0).
REG_OUT = "reg0"  # output port decided so far; 0 = none yet
REG_FROM_TUNNEL = "reg1"  # 1 when the packet came in on the tunnel port
REG_SCRATCH = "reg2"  # temporary for swapping ARP addresses

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


# (cookie, mask) pairs for flow-stats requests and deletes.
STATIC_COOKIES = (COOKIE_SIGNATURE, SIGNATURE_MASK | (0xF0 << KIND_SHIFT))
LEARNED_COOKIES = (COOKIE_SIGNATURE | _LEARNED_BIT, SIGNATURE_MASK | (0xF0 << KIND_SHIFT))


def learned_through(port):
    """(cookie, mask) selecting every flow learned on ``port``, of any learned kind."""
    return (COOKIE_SIGNATURE | _LEARNED_BIT | (port & ID_MASK),
            SIGNATURE_MASK | (0xF0 << KIND_SHIFT) | ID_MASK)
